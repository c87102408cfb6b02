// TCP transports: Port, Connection/Server/Client, Connector, and the Reactor's
// listenTCP/connectTCP/adopt* methods. Spec: tcp.md.
#include <weft/internet/tcp.hpp>
#include <weft/protocols/tls.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>

#include "internet/detail/accepting.hpp"
#include "internet/detail/connecting.hpp"
#include "internet/detail/sysutil.hpp"
#include "sys/syscalls.hpp"

namespace weft {
namespace tcp {

using namespace weft::error;

namespace {

std::error_code errnoCode(int e) { return {e, std::generic_category()}; }

bool setFlag(int fd, int level, int option, bool on) noexcept {
    int v = on ? 1 : 0;
    return sys::ops.setsockopt(fd, level, option, &v, sizeof v) == 0;
}

bool getFlag(int fd, int level, int option) {
    int v = 0;
    socklen_t len = sizeof v;
    if (sys::ops.getsockopt(fd, level, option, &v, &len) != 0) throw std::system_error(errnoCode(errno), "getsockopt");
    return v != 0;
}

using weft::detail::hexId;

}  // namespace

// ---- Connection ---------------------------------------------------------------------

void Connection::closeDescriptor(bool abort) noexcept {
    // getHost() answers after the close: from what is known, or from the kernel now.
    auto* r = rememberedIfAny();
    if (fd_ >= 0 && !(r && r->local) && knownLocal().length == 0) {
        try {
            remembered().local = SockAddr::localOf(fd_);
        } catch (const std::bad_alloc&) {
            // Nothing kept: getHost() after the close says NoAddress.
        }
    }
    SocketTransport::closeDescriptor(abort);
}

Address Connection::getHost() const {
    if (auto* r = rememberedIfAny(); r && r->local) return r->local->toAddress();
    if (SockAddr known = knownLocal(); known.length != 0) return known.toAddress();
    if (fd_ < 0) return NoAddress();
    return (remembered().local = SockAddr::localOf(fd_))->toAddress();
}

Address Connection::getPeer() const { return peer_.get().toAddress(); }

bool Connection::getTcpNoDelay() const { return getFlag(fd_, IPPROTO_TCP, TCP_NODELAY); }
void Connection::setTcpNoDelay(bool enabled) {
    if (!setFlag(fd_, IPPROTO_TCP, TCP_NODELAY, enabled)) throw std::system_error(errnoCode(errno), "TCP_NODELAY");
}
bool Connection::getTcpKeepAlive() const { return getFlag(fd_, SOL_SOCKET, SO_KEEPALIVE); }
void Connection::setTcpKeepAlive(bool enabled) {
    if (!setFlag(fd_, SOL_SOCKET, SO_KEEPALIVE, enabled)) throw std::system_error(errnoCode(errno), "SO_KEEPALIVE");
}

// ---- Server -------------------------------------------------------------------------

#if defined(__x86_64__) && defined(__GLIBCXX__)
// An idle accepted connection is mostly this object: with make_shared's 16-byte
// control block it fills a 224-byte heap block (bench/README.md, idle-10k). A
// field added here moves every connection into the 240-byte bin.
static_assert(sizeof(Server) <= 200, "tcp::Server no longer fits a 224-byte heap block with its control block");
#endif

Server::Server(Reactor& reactor, int fd, const SockAddr& peer, int sessionno, std::uint16_t portNumber,
               const SockAddr* local)
    : AcceptedTransport(sessionno, reactor, fd), portNumber_(portNumber) {
    peer_ = peer;
    // An IPv4 local address costs the connection 4 bytes instead of a getsockname
    // at the close; another is asked for when needed.
    if (local && local->family() == AF_INET && local->port() == portNumber) {
        localKnown_ = true;
        localIPv4_ = local->u.v4.sin_addr.s_addr;
    }
}

SockAddr Server::knownLocal() const noexcept {
    SockAddr a;
    if (!localKnown_) return a;
    a.u.v4.sin_family = AF_INET;
    a.u.v4.sin_port = htons(portNumber_);
    a.u.v4.sin_addr.s_addr = localIPv4_;
    a.length = sizeof(sockaddr_in);
    return a;
}

std::string Server::peerName() const {
    Address a = peer_.get().toAddress();
    return std::visit(
        [](const auto& x) -> std::string {
            if constexpr (requires { x.host; }) return x.host;
            else return "?";
        },
        a);
}

// ---- Client -------------------------------------------------------------------------

}  // namespace tcp

template class ConnectingTransport<tcp::Connection>;

namespace tcp {

Client::Client(Reactor& reactor, std::shared_ptr<Connector> connector)
    : ConnectingTransport(std::move(connector), reactor, -1) {}

const Connector& Client::connector() const noexcept { return static_cast<const Connector&>(*connector_); }

void Client::attempt() {
    const std::string& host = connector().host();
    std::uint16_t port = connector().port();
    if (auto literal = SockAddr::fromLiteral(host, port)) {
        resolved({*literal});
        return;
    }
    // Names are resolved on the thread pool, never on the loop (Better than
    // Twisted: both families).
    resolving_ = true;
    Reactor& reactor = this->reactor();
    auto self = std::static_pointer_cast<Client>(shared_from_this());
    reactor.callInThread([self, host, port, &reactor]() mutable {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* result = nullptr;
        int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &result);
        std::vector<SockAddr> found;
        for (addrinfo* ai = result; rc == 0 && ai; ai = ai->ai_next) {
            if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
            SockAddr a;
            if (ai->ai_addrlen > SockAddr::capacity) continue;
            std::memcpy(&a.u, ai->ai_addr, ai->ai_addrlen);
            a.length = ai->ai_addrlen;
            if (a.family() == AF_INET) a.u.v4.sin_port = htons(port);
            else a.u.v6.sin6_port = htons(port);
            found.push_back(a);
        }
        if (result) ::freeaddrinfo(result);
        std::string error = rc == 0 ? std::string() : std::string(::gai_strerror(rc));
        reactor.callFromThread([self = std::move(self), found = std::move(found), error = std::move(error),
                                host = std::move(host)]() mutable {
            if (!self->resolving_ || self->phase_ != Phase::waiting) return;
            self->resolving_ = false;
            if (found.empty()) {
                self->failIfNotConnected(Failure(DNSLookupError(host + ": " + (error.empty() ? "no address" : error))));
                return;
            }
            self->resolved(std::move(found));
        });
    });
}

void Client::resolved(std::vector<SockAddr> addresses) {
    candidates_ = std::move(addresses);
    next_ = 0;
    phase_ = Phase::connecting;
    tryNext();
}

void Client::attemptFailed(int error) {
    lastError_ = error;
    dropDescriptor();
    tryNext();
}

void Client::tryNext() {
    while (phase_ == Phase::connecting && next_ < candidates_.size()) {
        const SockAddr& target = candidates_[next_++];
        int s = sys::ops.socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0) {  // TCP-38
            int e = errno;
            failIfNotConnected(Failure(ConnectBindError(e, std::strerror(e))));
            return;
        }
        if (auto& bind = connector().bindAddress()) {
            auto local = SockAddr::fromLiteral(
                bind->host.empty() ? (target.family() == AF_INET6 ? "::" : "0.0.0.0") : bind->host, bind->port);
            if (local && local->family() != target.family()) {
                // This address is of the other family than the bind address: try the next one.
                sys::ops.close(s);
                lastError_ = EAFNOSUPPORT;
                continue;
            }
            int e = 0;
            if (!local) e = EINVAL;
            else if (sys::ops.bind(s, local->get(), local->length) != 0) e = errno;
            if (e != 0) {
                sys::ops.close(s);
                failIfNotConnected(
                    Failure(ConnectBindError(e, fmt::format("{}:{}: {}", bind->host, bind->port, std::strerror(e)))));
                return;
            }
        }
        setFlag(s, IPPROTO_TCP, TCP_NODELAY, true);  // on by default (TCP-23, Better than Twisted)
        fd_ = s;
        peer_ = target;
        connectTo(target.get(), target.length);  // done, in progress, or attemptFailed → here again
        return;
    }
    if (phase_ != Phase::connecting) return;
    int e = lastError_ ? lastError_ : EHOSTUNREACH;
    if (e == EAFNOSUPPORT && connector().bindAddress()) {  // no address of the bind address's family (TCP-38)
        auto& bind = *connector().bindAddress();
        failIfNotConnected(Failure(ConnectBindError(
            e, fmt::format("{}:{}: no destination address of the same family", bind.host, bind.port))));
        return;
    }
    failIfNotConnected(Failure(getConnectError(e, std::strerror(e))));
}

// ---- Port -----------------------------------------------------------------------------

Port::Port(Reactor& reactor, std::uint16_t port, std::shared_ptr<Factory> factory, int backlog, std::string interface)
    : StreamPort(reactor, std::move(factory), backlog, "listenTCP"), requestedPort_(port),
      interface_(std::move(interface)) {}

std::string Port::repr() const {
    std::string f = logPrefix();
    if (listening()) return fmt::format("<weft::tcp::Port of {} on {}>", f, realPort_);
    return fmt::format("<weft::tcp::Port of {} (not listening)>", f);
}

namespace {
bool isWildcard(const SockAddr& a) {
    if (a.family() == AF_INET) return a.u.v4.sin_addr.s_addr == htonl(INADDR_ANY);
    if (a.family() == AF_INET6) return IN6_IS_ADDR_UNSPECIFIED(&a.u.v6.sin6_addr);
    return true;
}
}  // namespace

void Port::startListening() {
    if (listening()) return;
    checkReactor();
    std::string host = interface_.empty() ? std::string("0.0.0.0") : interface_;
    auto addr = SockAddr::fromLiteral(host, requestedPort_);
    if (!addr)  // TCP-3, Better than Twisted: no name lookup on the loop
        throw CannotListenError(interface_, std::to_string(requestedPort_),
                                std::make_error_code(std::errc::invalid_argument),
                                "not an IPv4 or IPv6 address (a listening interface is never looked up by name)");
    int s = sys::ops.socket(addr->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) throw CannotListenError(interface_, requestedPort_, errnoCode(errno));
    setFlag(s, SOL_SOCKET, SO_REUSEADDR, true);  // TCP-2
    if (addr->family() == AF_INET6) setFlag(s, IPPROTO_IPV6, IPV6_V6ONLY, true);
    if (sys::ops.bind(s, addr->get(), addr->length) != 0 || sys::ops.listen(s, backlog_) != 0) {
        int e = errno;
        sys::ops.close(s);
        throw CannotListenError(interface_, requestedPort_, errnoCode(e));
    }
    family_ = addr->family();
    SockAddr bound = SockAddr::localOf(s);
    realPort_ = bound.port();
    // Bound to one address: every accepted connection's local address is this one.
    if (!isWildcard(bound)) local_ = bound;
    else local_.reset();
    beginListening(s, std::to_string(realPort_));
}

void Port::adopt(int fd, int family) {
    family_ = family;
    SockAddr bound = SockAddr::localOf(fd);
    realPort_ = bound.port();
    Address a = bound.toAddress();
    if (auto* v4 = std::get_if<IPv4Address>(&a)) interface_ = v4->host;
    else if (auto* v6 = std::get_if<IPv6Address>(&a)) interface_ = v6->host;
    if (!isWildcard(bound)) local_ = bound;
    beginListening(fd, std::to_string(realPort_));
}

Address Port::getHost() const {
    if (listening()) return SockAddr::localOf(fd_).toAddress();
    std::string host = interface_.empty() ? std::string("0.0.0.0") : interface_;
    if (family_ == AF_INET6) return IPv6Address("TCP", host, realPort_);
    return IPv4Address("TCP", host, realPort_);
}

void Port::accepted(int s, const sockaddr* peerAddress, socklen_t length) {
    SockAddr peer;
    std::memcpy(&peer.u, peerAddress, std::min<std::size_t>(length, sizeof peer.u));
    peer.length = length;
    // The address is rewritten in place: no strings made and dropped per connection.
    peer.assignTo(peerAddress_, "TCP");
    auto protocol = weft::detail::buildProtocolOrClose(*factory_, peerAddress_, s);  // TCP-12
    if (!protocol) return;
    // From here the Server owns the socket (its destructor closes it).
    auto server = std::make_shared<Server>(reactor_, s, peer, sessionno_++, realPort_, local_ ? &*local_ : nullptr);
    setFlag(s, IPPROTO_TCP, TCP_NODELAY, true);  // TCP-23, Better than Twisted
    server->start(std::move(protocol));
}

void Port::closed() {
    std::uint16_t was = realPort_;
    realPort_ = 0;
    // TCP-6; a listenSSL port (a TLS factory on a TCP port) says TLS, as Twisted's ssl.Port does (TLS-32).
    bool tls = dynamic_cast<const tls::TLSMemoryBIOFactory*>(factory().get()) != nullptr;
    log::info(logPrefix(), "({} Port {} Closed)", tls ? "TLS" : "TCP", was);
}

// ---- Connector --------------------------------------------------------------------------

Connector::Connector(Reactor& reactor, std::string host, std::uint16_t port, std::shared_ptr<ClientFactory> factory,
                     double timeout, std::optional<BindAddress> bindAddress)
    : BaseConnector(reactor, std::move(factory), timeout, "connectTCP"), host_(std::move(host)), port_(port),
      bindAddress_(std::move(bindAddress)) {}

std::shared_ptr<IConnectingTransport> Connector::makeTransport() {
    return std::make_shared<Client>(reactor(), std::static_pointer_cast<Connector>(shared_from_this()));
}

Address Connector::getDestination() const {
    if (isIPv6Address(host_) || host_.find(':') != std::string::npos) return IPv6Address("TCP", host_, port_);
    return IPv4Address("TCP", host_, port_);
}

}  // namespace tcp

// ---- Reactor methods -------------------------------------------------------------------------

using namespace weft::error;

std::shared_ptr<tcp::Port> Reactor::listenTCP(std::uint16_t port, std::shared_ptr<Factory> factory, int backlog,
                                              const std::string& interface) {
    auto p = std::make_shared<tcp::Port>(*this, port, std::move(factory), backlog, interface);
    p->startListening();
    return p;
}

std::shared_ptr<tcp::Connector> Reactor::connectTCP(const std::string& host, std::uint16_t port,
                                                    std::shared_ptr<ClientFactory> factory, double timeout,
                                                    std::optional<BindAddress> bindAddress) {
    auto c = std::make_shared<tcp::Connector>(*this, host, port, std::move(factory), timeout, std::move(bindAddress));
    c->connect();
    return c;
}

std::shared_ptr<tcp::Connector> Reactor::connectTCP(const std::string& host, const std::string& service,
                                                    std::shared_ptr<ClientFactory> factory, double timeout,
                                                    std::optional<BindAddress> bindAddress) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(service.data(), service.data() + service.size(), value);
    std::uint16_t port;
    if (!service.empty() && ec == std::errc() && end == service.data() + service.size() && value <= 65535) {
        port = static_cast<std::uint16_t>(value);
    } else {
        // TCP-37: the services database (a local file; no network lookup).
        servent entry{};
        servent* found = nullptr;
        char buffer[1024];
        if (::getservbyname_r(service.c_str(), "tcp", &entry, buffer, sizeof buffer, &found) != 0 || !found)
            throw ServiceNameUnknownError(0, "Service name given as port is unknown: " + service);
        port = ntohs(static_cast<std::uint16_t>(found->s_port));
    }
    return connectTCP(host, port, std::move(factory), timeout, std::move(bindAddress));
}

namespace {
// Checks what adopt* is given and returns a non-blocking, close-on-exec
// duplicate of fd (the caller keeps its own copy, TCP-50/51).
int duplicateForAdoption(int fd, int addressFamily, const std::shared_ptr<Factory>& factory, const char* what) {
    if (addressFamily != AF_INET && addressFamily != AF_INET6 && addressFamily != AF_UNIX)
        throw UnsupportedAddressFamily(std::to_string(addressFamily));
    if (!factory) throw std::invalid_argument(std::string(what) + ": null factory");
    weft::detail::checkSocketKind(fd, addressFamily, SOCK_STREAM, what);
    return weft::detail::duplicateNonBlocking(fd, what);
}
}  // namespace

std::shared_ptr<IListeningPort> Reactor::adoptStreamPort(int fd, int addressFamily, std::shared_ptr<Factory> factory) {
    // Only a listening stream socket can be served (a systemd: index that names
    // a plain file or a connected socket must fail here, not at the first wait).
    int listening = 0;
    socklen_t size = sizeof listening;
    if (sys::ops.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0) {
        if (errno == ENOTSOCK)
            throw std::invalid_argument(fmt::format("adoptStreamPort: descriptor {} is not a socket", fd));
        throw std::system_error(errno, std::generic_category(), fmt::format("adoptStreamPort: descriptor {}", fd));
    }
    if (!listening)
        throw std::invalid_argument(
            fmt::format("adoptStreamPort: descriptor {} is a socket that is not listening", fd));
    int copy = duplicateForAdoption(fd, addressFamily, factory, "adoptStreamPort");
    if (addressFamily == AF_UNIX) return adoptUNIXStreamPort(copy, std::move(factory));  // UNIX-21
    auto p = std::make_shared<tcp::Port>(*this, 0, std::move(factory), 50, "");
    p->adopt(copy, addressFamily);
    return p;
}

void Reactor::adoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory) {
    int copy = duplicateForAdoption(fd, addressFamily, factory, "adoptStreamConnection");
    // Only a connected socket is a connection: a listening or unconnected one
    // would sit idle, and its close would shut down the caller's socket. The
    // answer is the peer (a UNIX one is not kept: its transport asks itself).
    sockaddr_storage peerName{};
    socklen_t peerLength = sizeof peerName;
    if (sys::ops.getpeername(copy, reinterpret_cast<sockaddr*>(&peerName), &peerLength) != 0) {
        int e = errno;
        sys::ops.close(copy);
        if (e == ENOTCONN)
            throw std::invalid_argument(
                fmt::format("adoptStreamConnection: descriptor {} is a socket that is not connected", fd));
        throw std::system_error(e, std::generic_category(), fmt::format("adoptStreamConnection: descriptor {}", fd));
    }
    if (addressFamily == AF_UNIX) return adoptUNIXStreamConnection(copy, std::move(factory));  // UNIX-22
    SockAddr peer;
    peer.length = std::min<socklen_t>(peerLength, SockAddr::capacity);
    std::memcpy(peer.get(), &peerName, peer.length);
    auto protocol = weft::detail::buildProtocolOrClose(*factory, peer.toAddress(), copy);  // TCP-51
    if (!protocol) return;
    auto local = SockAddr{};
    local.length = SockAddr::capacity;
    if (sys::ops.getsockname(copy, local.get(), &local.length) != 0) local.length = 0;
    int one = 1;  // TCP-23: as for accepted sockets
    sys::ops.setsockopt(copy, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Better than Twisted: session number 0 for an adopted connection.
    auto server = std::make_shared<tcp::Server>(*this, copy, peer, 0, local.port(), local.length ? &local : nullptr);
    server->start(std::move(protocol));
}

}  // namespace weft
