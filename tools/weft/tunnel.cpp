// weft tunnel: a tun/tap device joined to one UDP peer.
//
//   device ──TuntapPort──▶ packet ──udp::Port──▶ peer      one datagram per packet
//   device ◀─TuntapPort─── packet ◀─udp::Port─── peer      datagrams from anyone else: dropped, counted
//
// The device is created if it does not exist; the port never makes it
// persistent, so the kernel removes a device the tunnel created when the port
// closes, and one that existed before (`ip tuntap add`) stays. --mtu sets the
// device's MTU (put back at exit on a device that existed) and sizes both
// ports' packets: MTU bytes for a TUN, MTU + 18 (Ethernet header and a VLAN
// tag) for a TAP. Without it the device's MTU at start does the same.
//
// Packets go to the peer through a second socket on the --listen address,
// connected to the peer (see connectedTwin): the kernel keeps a connected
// socket's route, so a send skips the route lookup per datagram, and the
// peer's datagrams reach that socket through the kernel's early
// demultiplexing, one route lookup fewer on the way in. The --listen socket
// stays unconnected, so a datagram from anyone else still arrives there and is
// counted. A kernel that refuses a step leaves the tunnel on the one socket.
//
// A packet the peer cannot be sent (the socket buffer is full: UDP is lossy)
// is dropped and counted; so is a packet longer than the size above, from
// either side. The counts go to stderr at exit and on SIGUSR1.
#include "tunnel.hpp"
#include "options.hpp"
#include "signals.hpp"

#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/sockaddr.hpp>
#include <weft/internet/udp.hpp>
#include <weft/log.hpp>
#include <weft/pair/ethernet.hpp>
#include <weft/pair/raw.hpp>
#include <weft/pair/tuntap.hpp>
#include <weft/text.hpp>

namespace tool {

namespace {

// The counts, read by the SIGUSR1 handler: lock-free atomics, and the line's
// fixed text made before the handler is installed.
struct Counters {
    std::atomic<std::uint64_t> toPeer{0}, fromPeer{0}, strangers{0}, oversized{0}, sendDropped{0}, deviceErrors{0};
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

Counters* gCounters = nullptr;
char gReportPrefix[96] = "weft tunnel: ";

// Appends `v` in decimal; async-signal-safe (no locale, no allocation).
char* appendNumber(char* out, std::uint64_t v) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *out++ = digits[--n];
    return out;
}

char* appendText(char* out, const char* text) {
    while (*text) *out++ = *text++;
    return out;
}

// One line: "weft tunnel tun:NAME: 5 packets to the peer, 7 from the peer; dropped: 1 from strangers, …".
void writeReport() {
    if (!gCounters) return;
    const Counters& c = *gCounters;
    char line[512];
    char* p = appendText(line, gReportPrefix);
    p = appendNumber(p, c.toPeer.load(std::memory_order_relaxed));
    p = appendText(p, " packets to the peer, ");
    p = appendNumber(p, c.fromPeer.load(std::memory_order_relaxed));
    p = appendText(p, " from the peer; dropped: ");
    p = appendNumber(p, c.strangers.load(std::memory_order_relaxed));
    p = appendText(p, " datagrams from strangers, ");
    p = appendNumber(p, c.oversized.load(std::memory_order_relaxed));
    p = appendText(p, " oversized, ");
    p = appendNumber(p, c.sendDropped.load(std::memory_order_relaxed));
    p = appendText(p, " with the socket buffer full, ");
    p = appendNumber(p, c.deviceErrors.load(std::memory_order_relaxed));
    p = appendText(p, " refused by the device\n");
    // stderr directly: a handler may not take stdio's lock.
    for (const char* q = line; q < p;) {
        ssize_t n = ::write(STDERR_FILENO, q, static_cast<std::size_t>(p - q));
        if (n <= 0) break;
        q += n;
    }
}

extern "C" void onReportSignal(int) {
    int saved = errno;
    writeReport();
    errno = saved;
}

struct Peer {
    std::string host;  // an IP literal
    std::uint16_t port = 0;
    int family = AF_INET;
    weft::Address address;
};

// The UDP ports take datagrams up to the largest UDP payload, so that one
// longer than the packet size reaches Session::fromPeer and is counted as
// oversized there; a smaller limit would have the port drop it uncounted.
constexpr std::size_t kLargestDatagram = 65535;

// A port sizes each recvmmsg by its per-event budget over maxPacketSize
// (UDP-6): with the largest datagram as the size, the default 256 KiB budget
// would ask for 4 datagrams a call instead of the port's batch of 8. The budget
// is raised to 8 of them, so a tunnel's small packets still come 8 to a call.
void readFullBatches(weft::udp::Port& port) { port.maxThroughput = 8 * kLargestDatagram; }

struct Session {
    weft::Reactor& reactor;
    Counters counters;
    Peer peer;
    std::shared_ptr<weft::udp::Port> udp;     // the --listen port: unconnected, hears everyone
    std::shared_ptr<weft::udp::Port> toPeer;  // connected to the peer (null if the kernel refused)
    std::shared_ptr<weft::pair::TuntapPort> device;
    bool stopping = false;
    int status = 0;
    bool warnedOversized = false, warnedSend = false, warnedDevice = false;
    std::size_t packetSize = 0;  // the largest packet either way: the MTU (+ 18 for a TAP's frame header)

    bool isPeer(const weft::Address& from) const {
        if (auto* v4 = std::get_if<weft::IPv4Address>(&from)) return v4->port == peer.port && v4->host == peer.host;
        if (auto* v6 = std::get_if<weft::IPv6Address>(&from)) return v6->port == peer.port && v6->host == peer.host;
        return false;
    }

    void oversized(const char* from, std::size_t size) {
        counters.oversized.fetch_add(1, std::memory_order_relaxed);
        if (!std::exchange(warnedOversized, true))
            weft::log::warn("tunnel", "dropped a packet {} longer than the packet size ({} bytes or more; raise --mtu)",
                            from, size);
    }

    // A packet from the device: to the peer, as one datagram.
    void fromDevice(weft::Bytes packet, bool partial) {
        if (partial) return oversized("from the device", packet.size());
        if (!udp) return;
        try {
            const std::size_t sent = toPeer ? toPeer->write(packet) : udp->write(packet, peer.address);
            if (sent == 0) counters.sendDropped.fetch_add(1, std::memory_order_relaxed);
            else counters.toPeer.fetch_add(1, std::memory_order_relaxed);
        } catch (const weft::error::MessageLengthError&) {
            oversized("for the peer", packet.size());
        } catch (const std::exception& e) {
            counters.sendDropped.fetch_add(1, std::memory_order_relaxed);
            if (!std::exchange(warnedSend, true))
                weft::log::warn("tunnel", "cannot send to the peer: {}", weft::printable(e.what()));
        }
    }

    // A datagram from the network: into the device if the peer sent it.
    void fromNetwork(weft::Bytes datagram, const weft::Address& from) {
        if (!isPeer(from)) {
            counters.strangers.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        fromPeer(datagram);
    }

    // A datagram the peer sent (the connected socket hears no one else).
    void fromPeer(weft::Bytes datagram) {
        if (!device) return;
        if (datagram.size() > packetSize) return oversized("from the peer", datagram.size());
        try {
            device->write(datagram);
            counters.fromPeer.fetch_add(1, std::memory_order_relaxed);
        } catch (const std::exception& e) {
            counters.deviceErrors.fetch_add(1, std::memory_order_relaxed);
            if (!std::exchange(warnedDevice, true))
                weft::log::warn("tunnel", "the device refused a packet from the peer: {}", weft::printable(e.what()));
        }
    }

    // The device port ended without being asked (the interface was deleted, TUN-7).
    void deviceLost() {
        if (stopping) return;
        weft::log::error("tunnel", "the device {} went away; stopping", weft::quote(device->interface()));
        status = 1;
        if (reactor.running()) reactor.stop();
    }
};

// The device's side: a TUN carries IP packets, a TAP Ethernet frames (TUN-1).
class TunSide final : public weft::AbstractDatagramProtocol, public weft::pair::IRawPacketProtocol {
public:
    explicit TunSide(Session& s) : session_(s) { noisy = false; }
    void addProto(std::int64_t, std::shared_ptr<weft::pair::IRawDatagramProtocol>) override {
        throw std::logic_error("weft tunnel forwards packets; it dispatches none");
    }
    void datagramReceived(weft::Bytes data, bool partial, weft::Bytes, weft::Bytes,
                          std::optional<std::uint16_t>) override {
        session_.fromDevice(data, partial);
    }
    void stopProtocol() override { session_.deviceLost(); }

private:
    Session& session_;
};

class TapSide final : public weft::AbstractDatagramProtocol, public weft::pair::IEthernetProtocol {
public:
    explicit TapSide(Session& s) : session_(s) { noisy = false; }
    void addProto(std::int64_t, std::shared_ptr<weft::pair::IRawPacketProtocol>) override {
        throw std::logic_error("weft tunnel forwards frames; it dispatches none");
    }
    void datagramReceived(weft::Bytes frame, bool partial) override { session_.fromDevice(frame, partial); }
    void stopProtocol() override { session_.deviceLost(); }

private:
    Session& session_;
};

class NetSide final : public weft::DatagramProtocol {
public:
    // `peerOnly`: the port is connected to the peer, so the kernel has already
    // dropped every other source.
    NetSide(Session& s, bool peerOnly) : session_(s), peerOnly_(peerOnly) { noisy = false; }
    void datagramReceived(weft::Bytes datagram, const weft::Address& from) override {
        if (peerOnly_) session_.fromPeer(datagram);
        else session_.fromNetwork(datagram, from);
    }
    // Two ports share the --listen address: say which is which in the log.
    std::string logPrefix() const override { return peerOnly_ ? "PeerSide" : "NetSide"; }

private:
    Session& session_;
    const bool peerOnly_;
};

// A second socket on the address `bound` is bound to, connected to `peer`, or
// -1 with the reason in `why`. SO_REUSEPORT lets the two share the port while
// the second binds; it is cleared on both before this returns, so no other
// socket can join the port afterwards (a second tunnel on it, or anyone asking
// for SO_REUSEPORT, fails with EADDRINUSE: the kernel admits a newcomer as
// soon as one socket on the port shares with it), and a datagram from a
// stranger has one socket to go to, `bound`. The peer's datagrams go to the
// connected socket, which matches their source exactly. A datagram that
// reached the second socket in the microseconds before its connect and the
// clearing of SO_REUSEPORT may come from anyone: what it holds then is taken
// out here and handed to `queued` with its sender, to be checked as the
// --listen socket's datagrams are, so nothing unchecked is left for the port
// that serves it as the peer's alone.
int connectedTwin(int bound, const Peer& peer, std::string& why,
                  const std::function<void(weft::Bytes, const weft::Address&)>& queued) {
    auto fail = [&why](const char* step) {
        why = fmt::format("{}: {}", step, std::strerror(errno));
        return -1;
    };
    auto to = weft::SockAddr::fromLiteral(peer.host, peer.port);
    if (!to) {
        why = "the peer's address has an unknown scope";
        return -1;
    }
    const int on = 1, off = 0;
    if (::setsockopt(bound, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) return fail("SO_REUSEPORT");
    weft::SockAddr local = weft::SockAddr::localOf(bound);
    int twin = ::socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int result = twin;
    if (twin < 0) {
        result = fail("socket");
    } else {
        int v6only = 0;
        socklen_t length = sizeof v6only;
        if (local.family() == AF_INET6 && (::getsockopt(bound, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &length) != 0 ||
                                           ::setsockopt(twin, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0))
            result = fail("IPV6_V6ONLY");
        else if (::setsockopt(twin, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) result = fail("SO_REUSEPORT");
        else if (::bind(twin, local.get(), local.length) != 0) result = fail("bind");
        else if (::connect(twin, to->get(), to->length) != 0) result = fail("connect");
        else if (::setsockopt(twin, SOL_SOCKET, SO_REUSEPORT, &off, sizeof off) != 0)
            result = fail("clearing SO_REUSEPORT");
        if (result < 0) ::close(twin);
    }
    // Cleared on `bound` before the drain: while it is set, the kernel may
    // still pick the second socket for a stranger's datagram out of the pair.
    if (::setsockopt(bound, SOL_SOCKET, SO_REUSEPORT, &off, sizeof off) != 0) {
        if (result < 0) return result;
        // The port would stay open to other sockets: do without the twin.
        fail("clearing SO_REUSEPORT");
        ::close(twin);
        return -1;
    }
    if (result >= 0) {
        std::vector<std::byte> buffer(65536);
        for (;;) {
            weft::SockAddr from;
            from.length = weft::SockAddr::capacity;
            ssize_t n = ::recvfrom(twin, buffer.data(), buffer.size(), MSG_DONTWAIT, from.get(), &from.length);
            if (n < 0) break;
            queued(weft::Bytes(buffer.data(), static_cast<std::size_t>(n)), from.toAddress("UDP"));
        }
    }
    return result;
}

int badInput(const std::string& message) {
    std::fprintf(stderr, "weft tunnel: %s\n", weft::printable(message).c_str());
    return 2;
}

// "HOST:PORT" or "[IPV6]:PORT"; a name is resolved once, in `family`.
std::optional<Peer> parsePeer(const std::string& text, int family, std::string& error) {
    std::string host, port;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            error = "bad --peer " + weft::quote(text) + ": expected [IPV6]:PORT";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon) {
            error = "bad --peer " + weft::quote(text) + ": expected HOST:PORT (an IPv6 address goes in brackets)";
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    unsigned number = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535) {
        error = "bad --peer " + weft::quote(text) + ": the port must be a number in 1..65535";
        return std::nullopt;
    }
    if (host.empty()) {
        error = "bad --peer " + weft::quote(text) + ": no host";
        return std::nullopt;
    }
    Peer peer;
    peer.port = static_cast<std::uint16_t>(number);
    peer.family = family;
    const char* familyName = family == AF_INET6 ? "IPv6" : "IPv4";
    const bool literal = weft::isIPAddress(host) || weft::isIPv6Address(host);
    if (literal && (family == AF_INET6) != weft::isIPv6Address(host)) {
        error = fmt::format("--peer {} is not {}, as the --listen address is (give interface={} in --listen)",
                            weft::quote(text), familyName, family == AF_INET6 ? "0.0.0.0" : "\\:\\:");
        return std::nullopt;
    }
    // A name is resolved once; a literal is written the way the kernel's
    // addresses are ("fd00:0::2" is "fd00::2"), so datagrams from it match.
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = literal ? AI_NUMERICHOST : 0;
    addrinfo* found = nullptr;
    int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (rc != 0 || !found) {
        error = fmt::format("cannot resolve the --peer host {} to an {} address: {}", weft::quote(host), familyName,
                            rc ? ::gai_strerror(rc) : "no address");
        if (found) ::freeaddrinfo(found);
        return std::nullopt;
    }
    char canonical[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
    ::getnameinfo(found->ai_addr, found->ai_addrlen, canonical, sizeof canonical, nullptr, 0, NI_NUMERICHOST);
    ::freeaddrinfo(found);
    peer.host = canonical;
    if (family == AF_INET6) peer.address = weft::IPv6Address("UDP", peer.host, peer.port);
    else peer.address = weft::IPv4Address("UDP", peer.host, peer.port);
    return peer;
}

// Installs the SIGUSR1 report for its lifetime.
class ReportSignal {
public:
    explicit ReportSignal(Counters& c) {
        gCounters = &c;
        struct sigaction action {};
        action.sa_handler = onReportSignal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESTART;
        installed_ = ::sigaction(SIGUSR1, &action, &previous_) == 0;
    }
    ~ReportSignal() {
        if (installed_) ::sigaction(SIGUSR1, &previous_, nullptr);
        gCounters = nullptr;
    }
    ReportSignal(const ReportSignal&) = delete;
    ReportSignal& operator=(const ReportSignal&) = delete;

private:
    struct sigaction previous_ {};
    bool installed_ = false;
};

}  // namespace

std::shared_ptr<TunnelOptions> addTunnelCommand(CLI::App& app) {
    auto options = std::make_shared<TunnelOptions>();
    auto* cmd = app.add_subcommand("tunnel",
                                   "Join a tun/tap device to one UDP peer: a point-to-point tunnel, one packet per "
                                   "datagram");
    cmd->add_option("device", options->device,
                    "tun:NAME (IP packets) or tap:NAME (Ethernet frames); NAME may hold %d for the kernel to number "
                    "(weft%d → weft0). Created if it does not exist, and then removed at exit")
        ->required();
    cmd->add_option("--listen", options->listen,
                    "The UDP port to receive the peer's datagrams on (and send from): udp:PORT[:interface=ADDR]; an "
                    "IPv6 ADDR has its colons escaped (interface=fd00\\:\\:1) and takes an IPv6 peer")
        ->required();
    cmd->add_option("--peer", options->peer,
                    "The only source accepted, and where packets go: HOST:PORT, or [IPV6]:PORT (a name is resolved "
                    "once, at start)")
        ->required();
    cmd->add_option("--mtu", options->mtu,
                    "Set the device's MTU (put back at exit on a device that existed) and size packets to it")
        ->check(tool::wholeNumber(68, 65535));
    cmd->footer(
        "Each packet read from the device goes to the peer as one UDP datagram; each datagram from the peer\n"
        "is written into the device. Datagrams from any other source are dropped and counted. Addresses,\n"
        "routes and the link state are left to `ip`, as WireGuard leaves them. There is no encryption.\n"
        "Counts (packets each way; datagrams from strangers, oversized packets, sends dropped with the socket\n"
        "buffer full, packets the device refused) go to stderr as one line at exit and on SIGUSR1.\n"
        "Runs until SIGINT or SIGTERM (exit 0). Bad input exits 2; a device or port that cannot be set up,\n"
        "or a device deleted while running, exits 1.\n"
        "Example (two hosts, 192.0.2.1 and 192.0.2.2):\n"
        "  host 1: weft tunnel tun:weft0 --listen udp:5555 --peer 192.0.2.2:5555 --mtu 1420 &\n"
        "          ip addr add 10.0.0.1/24 dev weft0 && ip link set up dev weft0\n"
        "  host 2: weft tunnel tun:weft0 --listen udp:5555 --peer 192.0.2.1:5555 --mtu 1420 &\n"
        "          ip addr add 10.0.0.2/24 dev weft0 && ip link set up dev weft0\n"
        "  then:   ping 10.0.0.2 (from host 1); kill -USR1 <pid> prints the counts");
    options->command = cmd;
    return options;
}

int runTunnel(weft::Backend backend, const TunnelOptions& options) {
    // ---- the command line, checked before anything is opened ---------------------------
    auto colon = options.device.find(':');
    std::string kind = options.device.substr(0, colon);
    if (colon == std::string::npos || (kind != "tun" && kind != "tap"))
        return badInput("bad device " + weft::quote(options.device) + ": expected tun:NAME or tap:NAME");
    const bool tap = kind == "tap";
    std::string name = options.device.substr(colon + 1);
    if (name.empty())
        return badInput("bad device " + weft::quote(options.device) + ": give the interface a name, " + "e.g. " + kind +
                        ":weft0 or " + kind + ":weft%d");
    try {
        weft::pair::checkInterfaceName(name);
    } catch (const std::invalid_argument& e) {
        return badInput(e.what());
    }

    auto reactor = weft::Reactor::create(backend);
    std::shared_ptr<weft::endpoints::UDPServerEndpoint> listen;
    try {
        listen = std::dynamic_pointer_cast<weft::endpoints::UDPServerEndpoint>(
            weft::endpoints::datagramServerFromString(*reactor, options.listen));
    } catch (const std::exception& e) {
        return badInput("bad --listen endpoint " + weft::quote(options.listen) + ": " + e.what());
    }
    if (!listen) return badInput("bad --listen endpoint " + weft::quote(options.listen) + ": expected udp:PORT");
    const int family = weft::isIPv6Address(listen->interface()) ? AF_INET6 : AF_INET;
    std::string error;
    auto peer = parsePeer(options.peer, family, error);
    if (!peer) return badInput(error);

    // ---- the device --------------------------------------------------------------------
    Session session{*reactor, {}, *peer, nullptr, nullptr, nullptr};
    const bool existed = name.find("%d") == std::string::npos && weft::pair::interfaceExists(name);
    int mtu = options.mtu;
    std::optional<int> previousMTU;
    try {
        if (existed) {
            previousMTU = weft::pair::interfaceMTU(name);
            if (!mtu) mtu = *previousMTU;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft tunnel: %s\n", weft::printable(e.what()).c_str());
        return 1;
    }
    if (!mtu) mtu = 1500;  // what the kernel gives a new tun or tap device
    const std::size_t packetSize = static_cast<std::size_t>(mtu) + (tap ? 18 : 0);
    session.packetSize = packetSize;
    try {
        if (tap)
            session.device = std::make_shared<weft::pair::TuntapPort>(*reactor, name,
                                                                      std::make_shared<TapSide>(session), packetSize);
        else
            session.device = std::make_shared<weft::pair::TuntapPort>(*reactor, name,
                                                                      std::make_shared<TunSide>(session), packetSize);
        session.device->startListening();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft tunnel: %s\n", weft::printable(e.what()).c_str());
        return 1;
    }
    name = session.device->interface();
    // From here on every way out closes the device (and with it a device we created).
    auto closeDevice = [&] {
        session.stopping = true;
        if (session.device) session.device->stopListening();
        while (session.device && session.device->connected()) reactor->iterate(0);
    };
    bool mtuChanged = false;
    if (options.mtu && options.mtu != previousMTU.value_or(0)) {
        try {
            weft::pair::setInterfaceMTU(name, options.mtu);
            mtuChanged = existed;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "weft tunnel: %s\n", weft::printable(e.what()).c_str());
            closeDevice();
            return 1;
        }
    }

    // ---- the UDP side ------------------------------------------------------------------
    try {
        session.udp = reactor->listenUDP(listen->port(), std::make_shared<NetSide>(session, false), listen->interface(),
                                         kLargestDatagram);
        readFullBatches(*session.udp);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft tunnel: --listen %s: %s\n", weft::quote(options.listen).c_str(),
                     weft::printable(e.what()).c_str());
        closeDevice();
        return 1;
    }

    std::string why;
    auto queued = [&session](weft::Bytes datagram, const weft::Address& from) { session.fromNetwork(datagram, from); };
    if (int twin = connectedTwin(session.udp->getHandle(), *peer, why, queued); twin >= 0) {
        try {
            session.toPeer =
                reactor->adoptDatagramPort(twin, family, std::make_shared<NetSide>(session, true), kLargestDatagram);
            readFullBatches(*session.toPeer);
        } catch (const std::exception& e) {
            why = e.what();
        }
        ::close(twin);  // the port holds its own duplicate
    }
    if (!session.toPeer)
        weft::log::info("tunnel", "sending through the --listen socket (no socket connected to the peer: {})",
                        weft::printable(why));

    std::snprintf(gReportPrefix, sizeof gReportPrefix, "weft tunnel %s:%s: ", kind.c_str(),
                  weft::printable(name).c_str());
    ReportSignal report(session.counters);
    weft::log::info("tunnel", "{} device {} ({}, mtu {}) on {}, peer {}:{} ({} reactor); stop with Ctrl-C or SIGTERM",
                    kind, weft::quote(name), existed ? "existing: left in place at exit" : "created: removed at exit",
                    mtu, weft::addressStr(session.udp->getHost()),
                    peer->family == AF_INET6 ? "[" + peer->host + "]" : peer->host, peer->port,
                    weft::backendName(reactor->backend()));

    reactor->addSystemEventTrigger("before", "shutdown", [&]() -> weft::Deferred<void> {
        session.stopping = true;
        weft::Deferred<void> done;
        auto stopDevice = [&session, done](weft::Result<void>) mutable {
            session.device->stopListening().addBoth([done](weft::Result<void>) mutable { done.callback(); });
        };
        session.udp->stopListening().addBoth([&session, stopDevice](weft::Result<void> r) mutable {
            if (session.toPeer) session.toPeer->stopListening().addBoth(stopDevice);
            else stopDevice(std::move(r));
        });
        return done;
    });
    reactor->run();
    tool::logStopSignal(*reactor);
    if (mtuChanged && previousMTU) {
        try {
            weft::pair::setInterfaceMTU(name, *previousMTU);
        } catch (const std::exception& e) {
            weft::log::warn("tunnel", "could not put the MTU of {} back to {}: {}", weft::quote(name), *previousMTU,
                            weft::printable(e.what()));
        }
    }
    for (auto& dc : reactor->getDelayedCalls()) dc.cancel();
    writeReport();
    session.toPeer.reset();
    session.udp.reset();
    session.device.reset();
    return session.status;
}

}  // namespace tool
