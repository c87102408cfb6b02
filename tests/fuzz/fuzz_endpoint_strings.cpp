// libFuzzer target: endpoint description strings → endpoints (EP-5 … EP-14).
//
// Feeds the same bytes to endpoints::serverFromString (with the process
// environment, and with a fixed set of "inherited" systemd descriptors),
// clientFromString and datagramServerFromString, each against a fresh
// testing::MemoryReactor. endpoints.hpp documents two failures:
// InvalidEndpointDescription (and its UnknownEndpointType and
// UnsupportedEndpointType subclasses) and EndpointArgumentError. Any other
// exception escapes and aborts (a bug), as does a crash or undefined
// behaviour (ASan + UBSan). Checked properties, each a __builtin_trap() when
// violated:
//   1. a documented error has a non-empty what();
//   2. an endpoint is built only for the types the header lists, and is of
//      the class it documents for that type;
//   3. the endpoint's accessors, written back as a canonical description with
//      keywords and quoteStringArgument(), give an endpoint with the same
//      accessors;
//   4. parsing calls nothing on the reactor; listen() / connect() then make
//      exactly one call, the one the accessors describe (listenTCP
//      port/backlog/interface, connectTCP host/port/timeout/bindAddress,
//      listenUNIX, connectUNIX, listenUDP, adoptStreamPort), which the
//      MemoryReactor records; an adopted endpoint listens once.
//
// The MemoryReactor is no IReactorTime, so the TLS types ("ssl", "tls") throw
// UnsupportedEndpointType before reading any file (fuzz_tls_server fuzzes TLS).
// Nor is it a weft::Reactor, which "serial" needs: a serial description is
// also parsed against one real (never run) Reactor, and its endpoint checked
// as in 2 and 3; it is never connected (that would open the device).
// No socket is made: the MemoryReactor only records. "systemd:" with the
// process environment reads LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES (getenv,
// getpid) and changes nothing.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/serialport.hpp>
#include <weft/internet/testing.hpp>
#include <weft/testing/defer.hpp>

namespace ep = weft::endpoints;
namespace wt = weft::testing;

namespace {

// Descriptors "inherited" from systemd, named web, admin and dns: our own
// duplicates of /dev/null at fixed numbers, away from libFuzzer's. An
// AdoptedStreamServerEndpoint closes its descriptor once it has listened (the
// port has its own duplicate); restoreInherited() puts it back.
constexpr int kInheritedBase = 700;

void restoreInherited(int fd) {
    if (::fcntl(fd, F_GETFD) != -1) return;
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || ::dup3(null, fd, O_CLOEXEC) != fd) __builtin_trap();
    ::close(null);
}

const ep::ListenFDs& inherited() {
    static const ep::ListenFDs fds = [] {
        ep::ListenFDs out{{kInheritedBase, kInheritedBase + 1, kInheritedBase + 2}, {"web", "admin", "dns"}};
        for (int fd : out.descriptors) restoreInherited(fd);
        return out;
    }();
    return fds;
}

// The settled result of a Deferred that must have one; traps otherwise.
template <class T>
T succeeded(const weft::Deferred<T>& d) {
    try {
        return wt::successResultOf(d);
    } catch (const wt::AssertionFailed& e) {
        std::fprintf(stderr, "%s\n", e.what());
        __builtin_trap();
    }
}

std::shared_ptr<weft::Factory> aFactory() { return weft::Factory::forProtocol<weft::Protocol>(); }

// Nothing recorded: parsing must not touch the reactor.
bool untouched(const wt::MemoryReactor& r) {
    return r.tcpServers.empty() && r.tcpClients.empty() && r.unixServers.empty() && r.unixClients.empty() &&
           r.udpServers.empty() && r.adoptedPorts.empty() && r.connectors.empty();
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string q(std::string_view s) { return weft::quoteStringArgument(s); }

std::string num(long long v) { return std::to_string(v); }

std::string octal(int v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%o", static_cast<unsigned>(v));
    return buf;
}

// Runs f; the documented errors are expected (with a message), anything else escapes.
template <class F>
void expectOnlyDocumentedErrors(F&& f) {
    try {
        f();
    } catch (const weft::InvalidEndpointDescription& e) {  // also UnknownEndpointType, UnsupportedEndpointType
        if (!*e.what()) __builtin_trap();
    } catch (const weft::EndpointArgumentError& e) {
        if (!*e.what()) __builtin_trap();
    }
}

// ---- servers ------------------------------------------------------------------------

// Parses a canonical description built from an endpoint's accessors: it must
// not fail, so any exception here is reported and traps.
template <class F>
auto canonically(const std::string& description, F&& parse) {
    try {
        return parse(description);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "canonical description '%s' failed: %s\n", description.c_str(), e.what());
        __builtin_trap();
    }
}

std::shared_ptr<weft::IStreamServerEndpoint> serverAgain(wt::MemoryReactor& reactor, const std::string& description,
                                                         const ep::ListenFDs* fds = nullptr) {
    return canonically(description, [&](const std::string& d) {
        return fds ? ep::serverFromString(reactor, d, *fds) : ep::serverFromString(reactor, d);
    });
}

std::shared_ptr<weft::IStreamClientEndpoint> clientAgain(wt::MemoryReactor& reactor, const std::string& description) {
    return canonically(description, [&](const std::string& d) { return ep::clientFromString(reactor, d); });
}

std::shared_ptr<ep::IDatagramServerEndpoint> datagramAgain(wt::MemoryReactor& reactor, const std::string& description) {
    return canonically(description, [&](const std::string& d) { return ep::datagramServerFromString(reactor, d); });
}

void checkTCPServer(wt::MemoryReactor& reactor, ep::TCPServerEndpoint& e, bool v6) {
    std::string canonical =
        v6 ? "tcp6:port=" + num(e.port()) + ":backlog=" + num(e.backlog()) + ":interface=" + q(e.interface())
           : "tcp:port=" + num(e.port()) + ":interface=" + q(e.interface()) + ":backlog=" + num(e.backlog());
    auto again = std::dynamic_pointer_cast<ep::TCPServerEndpoint>(serverAgain(reactor, canonical));
    if (!again || again->port() != e.port() || again->backlog() != e.backlog() || again->interface() != e.interface())
        __builtin_trap();
    if (&e.reactor() != static_cast<weft::IReactorTCP*>(&reactor) || !untouched(reactor)) __builtin_trap();

    auto factory = aFactory();
    auto port = succeeded(e.listen(factory));
    if (reactor.tcpServers.size() != 1 || !port) __builtin_trap();
    const auto& call = reactor.tcpServers[0];
    if (call.port != e.port() || call.factory != factory || call.backlog != e.backlog() ||
        call.interface != e.interface())
        __builtin_trap();
    // TEST-11: the fake port is at the interface for an IPv6 literal, else at 0.0.0.0.
    auto host = port->getHost();
    if (weft::isIPv6Address(e.interface())) {
        auto* v6addr = std::get_if<weft::IPv6Address>(&host);
        if (!v6addr || v6addr->port != e.port() || v6addr->host != e.interface()) __builtin_trap();
    } else {
        auto* v4addr = std::get_if<weft::IPv4Address>(&host);
        if (!v4addr || v4addr->port != e.port() || v4addr->host != "0.0.0.0") __builtin_trap();
    }
}

void checkUNIXServer(wt::MemoryReactor& reactor, ep::UNIXServerEndpoint& e) {
    std::string canonical = "unix:address=" + q(e.address()) + ":mode=" + octal(e.mode()) +
                            ":backlog=" + num(e.backlog()) + ":lockfile=" + (e.wantPID() ? "1" : "0");
    auto again = std::dynamic_pointer_cast<ep::UNIXServerEndpoint>(serverAgain(reactor, canonical));
    if (!again || again->address() != e.address() || again->mode() != e.mode() || again->backlog() != e.backlog() ||
        again->wantPID() != e.wantPID())
        __builtin_trap();
    if (!untouched(reactor)) __builtin_trap();

    auto factory = aFactory();
    auto port = succeeded(e.listen(factory));
    if (reactor.unixServers.size() != 1 || !port) __builtin_trap();
    const auto& call = reactor.unixServers[0];
    if (call.address != e.address() || call.factory != factory || call.backlog != e.backlog() ||
        call.mode != e.mode() || call.wantPID != e.wantPID())
        __builtin_trap();
    if (port->getHost() != weft::Address(weft::UNIXAddress(e.address()))) __builtin_trap();
}

void checkAdopted(wt::MemoryReactor& reactor, ep::AdoptedStreamServerEndpoint& e, const ep::ListenFDs* fds) {
    std::string domain = e.addressFamily() == AF_INET    ? "INET"
                         : e.addressFamily() == AF_INET6 ? "INET6"
                         : e.addressFamily() == AF_UNIX  ? "UNIX"
                                                         : "";
    if (domain.empty()) __builtin_trap();
    if (!fds) __builtin_trap();  // nothing is inherited from the fuzzer's environment
    std::size_t index = 0;
    while (index < fds->descriptors.size() && fds->descriptors[index] != e.fileno()) ++index;
    if (index == fds->descriptors.size()) __builtin_trap();  // not an inherited descriptor
    auto byIndex = std::dynamic_pointer_cast<ep::AdoptedStreamServerEndpoint>(
        serverAgain(reactor, "systemd:domain=" + domain + ":index=" + num(static_cast<long long>(index)), fds));
    auto byName = std::dynamic_pointer_cast<ep::AdoptedStreamServerEndpoint>(
        serverAgain(reactor, "systemd:domain=" + domain + ":name=" + q(fds->names[index]), fds));
    for (const auto& again : {byIndex, byName})
        if (!again || again->fileno() != e.fileno() || again->addressFamily() != e.addressFamily()) __builtin_trap();
    if (!untouched(reactor)) __builtin_trap();

    // TEST-14: the MemoryReactor adopts AF_INET and AF_INET6 only.
    auto factory = aFactory();
    auto listening = e.listen(factory);
    if (e.addressFamily() == AF_UNIX) {
        wt::failureResultOf<weft::error::UnsupportedAddressFamily>(listening);
        if (!reactor.adoptedPorts.empty() || ::fcntl(e.fileno(), F_GETFD) == -1) __builtin_trap();  // left open
    } else {
        auto port = succeeded(listening);
        if (reactor.adoptedPorts.size() != 1 || !port) __builtin_trap();
        const auto& call = reactor.adoptedPorts[0];
        if (call.fd != e.fileno() || call.addressFamily != e.addressFamily() || call.factory != factory)
            __builtin_trap();
        if (::fcntl(e.fileno(), F_GETFD) != -1) __builtin_trap();  // the endpoint closed its copy
        restoreInherited(e.fileno());
    }
    // It listens once.
    wt::failureResultOf<weft::error::AlreadyListened>(e.listen(factory));
    if (reactor.adoptedPorts.size() > 1) __builtin_trap();
}

void checkServer(std::string_view text, const ep::ListenFDs* fds) {
    wt::MemoryReactor reactor;
    auto endpoint = fds ? ep::serverFromString(reactor, text, *fds) : ep::serverFromString(reactor, text);
    if (!endpoint) __builtin_trap();
    if (!untouched(reactor)) __builtin_trap();
    const std::string type = weft::parseEndpointDescription(text).type();
    if (type == "tcp") {
        auto* e = dynamic_cast<ep::TCP4ServerEndpoint*>(endpoint.get());
        if (!e) __builtin_trap();
        checkTCPServer(reactor, *e, false);
    } else if (type == "unix") {
        auto* e = dynamic_cast<ep::UNIXServerEndpoint*>(endpoint.get());
        if (!e) __builtin_trap();
        checkUNIXServer(reactor, *e);
    } else if (lower(type) == "tcp6") {
        auto* e = dynamic_cast<ep::TCP6ServerEndpoint*>(endpoint.get());
        if (!e) __builtin_trap();
        checkTCPServer(reactor, *e, true);
    } else if (lower(type) == "systemd") {
        auto* e = dynamic_cast<ep::AdoptedStreamServerEndpoint*>(endpoint.get());
        if (!e) __builtin_trap();
        checkAdopted(reactor, *e, fds);
    } else {
        __builtin_trap();  // an endpoint for a type serverFromString does not document
    }
}

// ---- clients ------------------------------------------------------------------------

void checkClient(std::string_view text) {
    wt::MemoryReactor reactor;
    auto endpoint = ep::clientFromString(reactor, text);
    if (!endpoint) __builtin_trap();
    if (!untouched(reactor)) __builtin_trap();
    const std::string type = lower(weft::parseEndpointDescription(text).type());
    if (type == "tcp") {
        auto* e = dynamic_cast<ep::TCP4ClientEndpoint*>(endpoint.get());
        if (!e) __builtin_trap();
        std::string canonical = "TCP:host=" + q(e->host()) + ":port=" + num(e->port()) +
                                ":timeout=" + num(static_cast<long long>(e->timeout()));
        if (e->bindAddress()) {
            if (e->bindAddress()->port != 0) __builtin_trap();
            canonical += ":bindAddress=" + q(e->bindAddress()->host);
        }
        auto again = std::dynamic_pointer_cast<ep::TCP4ClientEndpoint>(clientAgain(reactor, canonical));
        if (!again || again->host() != e->host() || again->port() != e->port() || again->timeout() != e->timeout() ||
            again->bindAddress() != e->bindAddress())
            __builtin_trap();
        if (!untouched(reactor)) __builtin_trap();

        // TEST-12: recorded, startedConnecting called, never connected.
        auto connecting = e->connect(aFactory());
        wt::assertNoResult(connecting);
        if (reactor.tcpClients.size() != 1 || reactor.connectors.size() != 1) __builtin_trap();
        const auto& call = reactor.tcpClients[0];
        if (call.host != e->host() || call.port != e->port() || call.timeout != e->timeout() ||
            call.bindAddress != e->bindAddress() || !call.factory)
            __builtin_trap();
    } else if (type == "unix") {
        auto* e = dynamic_cast<ep::UNIXClientEndpoint*>(endpoint.get());
        if (!e) __builtin_trap();
        std::string canonical = "unix:path=" + q(e->path()) + ":timeout=" + num(static_cast<long long>(e->timeout())) +
                                ":lockfile=" + (e->checkPID() ? "1" : "0");
        auto again = std::dynamic_pointer_cast<ep::UNIXClientEndpoint>(clientAgain(reactor, canonical));
        if (!again || again->path() != e->path() || again->timeout() != e->timeout() ||
            again->checkPID() != e->checkPID())
            __builtin_trap();
        if (!untouched(reactor)) __builtin_trap();

        auto connecting = e->connect(aFactory());
        wt::assertNoResult(connecting);
        if (reactor.unixClients.size() != 1 || reactor.connectors.size() != 1) __builtin_trap();
        const auto& call = reactor.unixClients[0];
        if (call.address != e->path() || call.timeout != e->timeout() || call.checkPID != e->checkPID() ||
            !call.factory)
            __builtin_trap();
        if (reactor.connectors[0]->getDestination() != weft::Address(weft::UNIXAddress(e->path()))) __builtin_trap();
    } else {
        __builtin_trap();  // an endpoint for a type clientFromString does not document
    }
}

// ---- serial clients ---------------------------------------------------------------------

// "serial" needs a weft::Reactor: one, never run, for every input.
weft::Reactor& realReactor() {
    static const std::unique_ptr<weft::Reactor> reactor = weft::Reactor::create(weft::Backend::poll);
    return *reactor;
}

void checkSerialClient(std::string_view text) {
    if (lower(weft::parseEndpointDescription(text).type()) != "serial") return;
    weft::Reactor& reactor = realReactor();
    auto endpoint = ep::clientFromString(reactor, text);
    auto* e = dynamic_cast<ep::SerialClientEndpoint*>(endpoint.get());
    if (!e || e->device().empty() || &e->reactor() != &reactor) __builtin_trap();
    const weft::serial::Options& o = e->options();
    try {
        weft::serial::validate(o);  // the parser let nothing through that the port would refuse
    } catch (const std::invalid_argument& bad) {
        std::fprintf(stderr, "parsed settings are invalid: %s\n", bad.what());
        __builtin_trap();
    }
    std::string canonical = "serial:device=" + q(e->device()) + ":baudrate=" + num(o.baudrate) +
                            ":bytesize=" + num(o.bytesize) + ":parity=" + std::string(1, o.parity) + ":stopbits=" +
                            (o.stopbits == 1   ? "1"
                             : o.stopbits == 2 ? "2"
                                               : "1.5") +
                            ":xonxoff=" + (o.xonxoff ? "1" : "0") + ":rtscts=" + (o.rtscts ? "1" : "0") +
                            ":exclusive=" + (o.exclusive ? "1" : "0");
    auto again = std::dynamic_pointer_cast<ep::SerialClientEndpoint>(
        canonically(canonical, [&](const std::string& d) { return ep::clientFromString(reactor, d); }));
    if (!again || again->device() != e->device()) __builtin_trap();
    const weft::serial::Options& a = again->options();
    if (a.baudrate != o.baudrate || a.bytesize != o.bytesize || a.parity != o.parity || a.stopbits != o.stopbits ||
        a.xonxoff != o.xonxoff || a.rtscts != o.rtscts || a.exclusive != o.exclusive)
        __builtin_trap();
}

// ---- datagram servers ------------------------------------------------------------------

void checkDatagramServer(std::string_view text) {
    wt::MemoryReactor reactor;
    auto endpoint = ep::datagramServerFromString(reactor, text);
    if (!endpoint) __builtin_trap();
    if (lower(weft::parseEndpointDescription(text).type()) != "udp") __builtin_trap();
    auto* e = dynamic_cast<ep::UDPServerEndpoint*>(endpoint.get());
    if (!e || e->maxPacketSize() < 1 || e->maxPacketSize() > 65535) __builtin_trap();
    std::string canonical = "udp:port=" + num(e->port()) + ":interface=" + q(e->interface()) +
                            ":maxPacketSize=" + num(static_cast<long long>(e->maxPacketSize()));
    auto again = std::dynamic_pointer_cast<ep::UDPServerEndpoint>(datagramAgain(reactor, canonical));
    if (!again || again->port() != e->port() || again->interface() != e->interface() ||
        again->maxPacketSize() != e->maxPacketSize())
        __builtin_trap();
    if (!untouched(reactor)) __builtin_trap();

    auto protocol = std::make_shared<weft::DatagramProtocol>();
    auto port = succeeded(e->listen(protocol));
    if (reactor.udpServers.size() != 1 || !port) __builtin_trap();
    const auto& call = reactor.udpServers[0];
    if (call.port != e->port() || call.protocol != protocol || call.interface != e->interface() ||
        call.maxPacketSize != e->maxPacketSize())
        __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    expectOnlyDocumentedErrors([&] { checkServer(text, nullptr); });
    expectOnlyDocumentedErrors([&] { checkServer(text, &inherited()); });
    expectOnlyDocumentedErrors([&] { checkClient(text); });
    expectOnlyDocumentedErrors([&] { checkSerialClient(text); });
    expectOnlyDocumentedErrors([&] { checkDatagramServer(text); });
    return 0;
}
