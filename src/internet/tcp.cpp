// TCP transports: Port, Connection/Server/Client, Connector, and the Reactor's
// listenTCP/connectTCP/adopt* methods. Spec: tcp.md.
#include <weft/internet/tcp.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>

#include "internet/detail/acceptloop.hpp"
#include "internet/detail/scratch.hpp"
#include "internet/detail/sysutil.hpp"
#include "sys/syscalls.hpp"

namespace weft {
namespace tcp {

using namespace weft::error;

namespace {

std::error_code errnoCode(int e) { return {e, std::generic_category()}; }

bool setFlag(int fd, int level, int option, bool on) noexcept {
    int v = on ? 1 : 0;
    return ::setsockopt(fd, level, option, &v, sizeof v) == 0;
}

bool getFlag(int fd, int level, int option) {
    int v = 0;
    socklen_t len = sizeof v;
    if (::getsockopt(fd, level, option, &v, &len) != 0) throw std::system_error(errnoCode(errno), "getsockopt");
    return v != 0;
}

using weft::detail::hexId;

SockAddr localName(int fd) {
    SockAddr a;
    a.length = SockAddr::capacity;
    if (::getsockname(fd, a.get(), &a.length) != 0) a.length = 0;
    return a;
}

std::uint16_t portOf(const SockAddr& a) {
    if (a.family() == AF_INET) return ntohs(a.u.v4.sin_port);
    if (a.family() == AF_INET6) return ntohs(a.u.v6.sin6_port);
    return 0;
}

}  // namespace

// ---- SockAddr ---------------------------------------------------------------------

namespace {
// Dotted quad by hand: glibc's inet_ntop formats IPv4 through sprintf, the
// larger part of a datagram's cost when every one comes from a new sender.
// Returns the end of the text (at most 15 characters).
char* formatIPv4(const in_addr& address, char* out) {
    const auto* b = reinterpret_cast<const unsigned char*>(&address);
    char* p = out;
    for (int i = 0; i < 4; ++i) {
        if (i) *p++ = '.';
        p = std::to_chars(p, out + 15, b[i]).ptr;
    }
    return p;
}
}  // namespace

void SockAddr::assignTo(Address& a, const char* type) const {
    auto* v4 = std::get_if<IPv4Address>(&a);
    if (length != 0 && family() == AF_INET && v4 && v4->type == type) {
        char text[16];
        v4->host.assign(text, formatIPv4(u.v4.sin_addr, text));
        v4->port = ntohs(u.v4.sin_port);
        return;
    }
    a = toAddress(type);
}

Address SockAddr::toAddress(const char* type) const {
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
    if (length == 0) return NoAddress();
    if (family() == AF_INET) {
        auto* in = &u.v4;
        return IPv4Address(type, std::string(text, formatIPv4(in->sin_addr, text)), ntohs(in->sin_port));
    }
    if (family() == AF_INET6) {
        auto* in6 = &u.v6;
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        std::string host = text;
        if (in6->sin6_scope_id != 0) {
            char name[IF_NAMESIZE] = {};
            host += '%';
            host += ::if_indextoname(in6->sin6_scope_id, name) ? std::string(name) : std::to_string(in6->sin6_scope_id);
        }
        return IPv6Address(type, std::move(host), ntohs(in6->sin6_port), ntohl(in6->sin6_flowinfo),
                           in6->sin6_scope_id);
    }
    return NoAddress();
}

std::optional<SockAddr> SockAddr::fromLiteral(const std::string& host, std::uint16_t port) {
    SockAddr a;
    auto* in = &a.u.v4;
    if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        a.length = sizeof(sockaddr_in);
        return a;
    }
    auto* in6 = &a.u.v6;
    std::string addr = host;
    std::string scope;
    if (auto pct = host.find('%'); pct != std::string::npos) {
        addr = host.substr(0, pct);
        scope = host.substr(pct + 1);
        if (scope.empty()) return std::nullopt;
    }
    if (::inet_pton(AF_INET6, addr.c_str(), &in6->sin6_addr) != 1) return std::nullopt;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (!scope.empty()) {
        std::uint32_t id = 0;
        auto [end, ec] = std::from_chars(scope.data(), scope.data() + scope.size(), id);
        if (ec != std::errc() || end != scope.data() + scope.size()) id = ::if_nametoindex(scope.c_str());
        if (id == 0) return std::nullopt;
        in6->sin6_scope_id = id;
    }
    a.length = sizeof(sockaddr_in6);
    return a;
}

// ---- Connection ---------------------------------------------------------------------

Connection::Connection(Reactor& reactor, int fd) : FileDescriptor(reactor), fd_(fd) {}

Connection::~Connection() {
    if (fd_ >= 0) sys::ops.close(fd_);
}

void Connection::startProtocol(std::shared_ptr<Protocol> protocol) {
    protocol_ = std::move(protocol);
    setConnected();
    startReading();
    auto keep = protocol_;
    keep->makeConnection(shared_from_this());
}

Reason Connection::doRead() {
    if (aborting_ || fd_ < 0) return std::nullopt;
    std::size_t want = bufferSize ? bufferSize : 1;
    weft::detail::BorrowedBuffer buffer(want);
    ssize_t n;
    do n = sys::ops.recv(fd_, buffer.data(), want, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        return Failure(ConnectionLost(errnoCode(errno)));  // TCP-19, Better than Twisted: keep errno
    }
    if (n == 0) return error::connectionDone();
    if (auto p = protocol_) p->dataReceived(Bytes(buffer.data(), static_cast<std::size_t>(n)));
    return std::nullopt;
}

Reason Connection::doWrite() {
    if (aborting_) return std::nullopt;
    return FileDescriptor::doWrite();
}

WriteResult Connection::writeSomeData(std::span<const iovec> data) {
    return writeToFD(fd_, data, FDKind::socket);  // TCP-21: MSG_NOSIGNAL, never SIGPIPE
}

Reason Connection::closeWriteConnection() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);  // errors ignored: the peer may be gone (TCP-29)
    if (auto* hc = dynamic_cast<IHalfCloseableProtocol*>(protocol_.get())) {
        auto keep = protocol_;
        try {
            hc->writeConnectionLost();
        } catch (...) {
            Failure f = Failure::current();  // TCP-30: logged once, then closed with it
            log::failure(logPrefix(), "Unhandled error in writeConnectionLost", f);
            return f;
        }
    }
    // Both halves closed (TCP-28): end the connection without waiting for the protocol.
    if (aborting_) return std::nullopt;  // the abort reports ConnectionAborted
    if (readLost_) return error::connectionDone();
    return std::nullopt;
}

void Connection::readConnectionLost(const Failure&) {
    if (disconnected() || aborting_) return;
    stopReading();
    readLost_ = true;
    auto* hc = dynamic_cast<IHalfCloseableProtocol*>(protocol_.get());
    if (!hc) {
        // Better than Twisted (TCP-27): flush what is buffered, then ConnectionDone.
        if (state() == State::connected) loseConnection();
        return;
    }
    auto keep = protocol_;
    try {
        hc->readConnectionLost();
    } catch (...) {
        Failure f = Failure::current();  // TCP-30
        log::failure(logPrefix(), "Unhandled error in readConnectionLost", f);
        connectionLost(f);
        return;
    }
    // TCP-28: our write half is already shut, so both halves are now closed.
    if (!disconnected() && !aborting_ && writeHalf() == WriteHalf::closed) connectionLost(error::connectionDone());
}

void Connection::resumeProducing() {
    if (readLost_) return;  // the peer's stream has ended: nothing more to read
    FileDescriptor::resumeProducing();
}

void Connection::abortConnection() {
    if (disconnected() || aborting_) return;  // TCP-33
    aborting_ = true;
    stopReading();
    stopWriting();
    discardOutput();
    reactor().callLater(0, [self = shared_from_this()] {
        if (!self->disconnected()) self->connectionLost(Failure(ConnectionAborted()));
    });
}

void Connection::closeSocket(bool abort) noexcept {
    if (fd_ < 0) return;
    if (!host_) host_ = std::make_unique<SockAddr>(localName(fd_));  // getHost() answers after the close
    if (abort) {
        linger l{1, 0};  // the close sends a reset (TCP-22)
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    } else if (shouldShutdown_) {
        ::shutdown(fd_, SHUT_RDWR);
    }
    sys::ops.close(fd_);
    fd_ = -1;
}

void Connection::connectionLost(const Failure& reason) {
    if (disconnected()) return;
    FileDescriptor::connectionLost(reason);
    closeSocket(reason.check<ConnectionAborted>() != 0);
    // Let go of the protocol before it hears of the loss; this frame keeps it
    // alive until its connectionLost() has returned (docs/ownership.md).
    if (auto p = std::move(protocol_)) p->connectionLost(reason);
}

Address Connection::getHost() const {
    if (!host_ && fd_ >= 0) host_ = std::make_unique<SockAddr>(localName(fd_));
    return host_ ? host_->toAddress() : Address(NoAddress());
}

Address Connection::getPeer() const { return peer_.toAddress(); }

bool Connection::getTcpNoDelay() const { return getFlag(fd_, IPPROTO_TCP, TCP_NODELAY); }
void Connection::setTcpNoDelay(bool enabled) {
    if (!setFlag(fd_, IPPROTO_TCP, TCP_NODELAY, enabled)) throw std::system_error(errnoCode(errno), "TCP_NODELAY");
}
bool Connection::getTcpKeepAlive() const { return getFlag(fd_, SOL_SOCKET, SO_KEEPALIVE); }
void Connection::setTcpKeepAlive(bool enabled) {
    if (!setFlag(fd_, SOL_SOCKET, SO_KEEPALIVE, enabled)) throw std::system_error(errnoCode(errno), "SO_KEEPALIVE");
}

// ---- Server -------------------------------------------------------------------------

Server::Server(Reactor& reactor, int fd, const SockAddr& peer, int sessionno, std::uint16_t portNumber)
    : Connection(reactor, fd), sessionno_(sessionno), portNumber_(portNumber) {
    peer_ = peer;
}

std::string Server::logPrefix() const {
    if (prefix_) return *prefix_;
    Address a = peer_.toAddress();
    std::string host = std::visit(
        [](const auto& x) -> std::string {
            if constexpr (requires { x.host; }) return x.host;
            else return "?";
        },
        a);
    if (!protocol_) return fmt::format("-,{},{}", sessionno_, host);  // never asked while connected
    prefix_ = std::make_unique<std::string>(fmt::format("{},{},{}", getLogPrefix(*protocol_), sessionno_, host));
    return *prefix_;
}

std::string Server::repr() const {
    std::string name = protocol_ ? weft::className(*protocol_) : std::string("Server");
    return fmt::format("<{} #{} on {}>", name, sessionno_, portNumber_);
}

// ---- Client -------------------------------------------------------------------------

Client::Client(Reactor& reactor, std::shared_ptr<Connector> connector)
    : Connection(reactor, -1), connector_(std::move(connector)) {}

std::string Client::logPrefix() const {
    if (phase_ != Phase::done || !protocol_) return prefix_.empty() ? std::string("Uninitialized") : prefix_;
    if (prefix_.empty()) prefix_ = getLogPrefix(*protocol_) + ",client";
    return prefix_;
}

std::string Client::repr() const {
    Address dest = connector_ ? connector_->getDestination() : peer_.toAddress();
    return fmt::format("<weft::tcp::Client to {} at {}>", addressStr(dest), hexId(this));
}

void Client::begin() {
    // TCP-39: the attempt starts on a later iteration, never inside connectTCP.
    reactor().callLater(0, [self = std::static_pointer_cast<Client>(shared_from_this())] {
        if (self->phase_ != Phase::resolving || !self->connector_) return;
        const std::string& host = self->connector_->host();
        std::uint16_t port = self->connector_->port();
        if (auto literal = SockAddr::fromLiteral(host, port)) {
            self->resolved({*literal});
            return;
        }
        // Names are resolved on the thread pool, never on the loop (Better than
        // Twisted: both families).
        Reactor& reactor = self->reactor();
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
                if (self->phase_ != Phase::resolving) return;
                if (found.empty()) {
                    self->failIfNotConnected(
                        Failure(DNSLookupError(host + ": " + (error.empty() ? "no address" : error))));
                    return;
                }
                self->resolved(std::move(found));
            });
        });
    });
}

void Client::resolved(std::vector<SockAddr> addresses) {
    candidates_ = std::move(addresses);
    next_ = 0;
    phase_ = Phase::connecting;
    tryNext();
}

void Client::tryNext() {
    while (phase_ == Phase::connecting && next_ < candidates_.size()) {
        const SockAddr& target = candidates_[next_++];
        int s = ::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0) {  // TCP-38
            int e = errno;
            failIfNotConnected(Failure(ConnectBindError(e, std::strerror(e))));
            return;
        }
        if (auto& bind = connector_->bindAddress()) {
            auto local = SockAddr::fromLiteral(bind->host.empty() ? (target.family() == AF_INET6 ? "::" : "0.0.0.0")
                                                                  : bind->host,
                                               bind->port);
            if (local && local->family() != target.family()) {
                // This address is of the other family than the bind address: try the next one.
                ::close(s);
                lastError_ = EAFNOSUPPORT;
                continue;
            }
            int e = 0;
            if (!local) e = EINVAL;
            else if (::bind(s, local->get(), local->length) != 0) e = errno;
            if (e != 0) {
                ::close(s);
                failIfNotConnected(
                    Failure(ConnectBindError(e, fmt::format("{}:{}: {}", bind->host, bind->port, std::strerror(e)))));
                return;
            }
        }
        setFlag(s, IPPROTO_TCP, TCP_NODELAY, true);  // on by default (TCP-23, Better than Twisted)
        fd_ = s;
        peer_ = target;
        int rc = sys::ops.connect(s, target.get(), target.length);
        if (rc == 0 || errno == EISCONN) {
            connectDone();
            return;
        }
        if (errno == EINPROGRESS || errno == EINTR || errno == EALREADY) {
            // TCP-40: wait for real writability (not addWriterSoon), then read SO_ERROR.
            reactor().addWriter(shared_from_this());
            return;
        }
        lastError_ = errno;
        sys::ops.close(fd_);
        fd_ = -1;
    }
    if (phase_ != Phase::connecting) return;
    int e = lastError_ ? lastError_ : EHOSTUNREACH;
    if (e == EAFNOSUPPORT && connector_->bindAddress()) {  // no address of the bind address's family (TCP-38)
        auto& bind = *connector_->bindAddress();
        failIfNotConnected(Failure(ConnectBindError(
            e, fmt::format("{}:{}: no destination address of the same family", bind.host, bind.port))));
        return;
    }
    failIfNotConnected(Failure(getConnectError(e, std::strerror(e))));
}

Reason Client::finishConnect() {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) {
        // No error yet is not success: the handshake may still be running.
        SockAddr peer;
        peer.length = SockAddr::capacity;
        if (::getpeername(fd_, peer.get(), &peer.length) != 0) return std::nullopt;
    }
    if (err == 0 || err == EISCONN) {
        stopWriting();
        connectDone();
        return std::nullopt;
    }
    if (err == EINPROGRESS || err == EALREADY || err == EINTR) return std::nullopt;
    lastError_ = err;
    stopWriting();
    sys::ops.close(fd_);
    fd_ = -1;
    tryNext();
    return std::nullopt;
}

Reason Client::doRead() {
    if (phase_ == Phase::connecting) return finishConnect();
    return Connection::doRead();
}

Reason Client::doWrite() {
    if (phase_ == Phase::connecting) return finishConnect();
    return Connection::doWrite();
}

void Client::connectDone() {
    phase_ = Phase::done;
    auto connector = connector_;
    connector->cancelTimeout();
    connector->state_ = Connector::State::connected;
    std::shared_ptr<Protocol> protocol;
    try {
        protocol = connector->buildProtocol(peer_.toAddress());  // TCP-41: the resolved IP
    } catch (...) {
        Failure f = Failure::current();
        log::failure(logPrefix(), "Unhandled error in buildProtocol", f);
        phase_ = Phase::connecting;
        connector->state_ = Connector::State::connecting;
        failIfNotConnected(f);
        return;
    }
    bool placeholder = !protocol;
    if (placeholder) protocol = std::make_shared<Protocol>();  // TCP-42 absorbs the callbacks
    startProtocol(std::move(protocol));
    if (placeholder) loseConnection();
}

void Client::failIfNotConnected(const Failure& reason) {
    if (phase_ == Phase::done || disconnected()) return;
    phase_ = Phase::done;
    stopReading();
    stopWriting();
    if (fd_ >= 0) {
        sys::ops.close(fd_);
        fd_ = -1;
    }
    FileDescriptor::connectionLost(reason);
    if (auto c = std::move(connector_)) c->connectionFailed(reason);
}

void Client::connectionLost(const Failure& reason) {
    if (phase_ != Phase::done) {
        if (phase_ == Phase::connecting && fd_ >= 0) {
            // The kernel failed this attempt (an error/hang-up event): try the next address.
            auto* lost = reason.get<ConnectionLost>();
            if (lost && lost->code().value() != 0) {
                lastError_ = lost->code().value();
                stopWriting();
                sys::ops.close(fd_);
                fd_ = -1;
                tryNext();
                return;
            }
        }
        // Lost before it connected (e.g. reactor shutdown): a failed attempt (TCP-49).
        failIfNotConnected(Failure(ConnectError(0, reason.getErrorMessage())));
        return;
    }
    if (disconnected()) return;
    auto connector = std::move(connector_);
    try {
        Connection::connectionLost(reason);
    } catch (...) {
        if (connector) connector->connectionLost(reason);
        throw;
    }
    if (connector) connector->connectionLost(reason);  // TCP-45: after the protocol's
}

// ---- Port -----------------------------------------------------------------------------

Port::Port(Reactor& reactor, std::uint16_t port, std::shared_ptr<Factory> factory, int backlog,
           std::string interface)
    : reactor_(reactor), requestedPort_(port), factory_(std::move(factory)), backlog_(backlog),
      interface_(std::move(interface)) {
    if (!factory_) throw std::invalid_argument("listenTCP: null factory");
}

Port::~Port() {
    if (fd_ >= 0) ::close(fd_);
    if (reservedFd_ >= 0) ::close(reservedFd_);
}

void Port::reserveFd() noexcept { weft::detail::reserveFd(reservedFd_); }

std::string Port::logPrefix() const {
    const Factory& f = *factory_;
    return demangle(typeid(f).name());
}

std::string Port::repr() const {
    std::string f = logPrefix();
    if (fd_ >= 0) return fmt::format("<weft::tcp::Port of {} on {}>", f, realPort_);
    return fmt::format("<weft::tcp::Port of {} (not listening)>", f);
}

void Port::startListening() {
    if (fd_ >= 0) return;
    std::string host = interface_.empty() ? std::string("0.0.0.0") : interface_;
    auto addr = SockAddr::fromLiteral(host, requestedPort_);
    if (!addr)  // TCP-3, Better than Twisted: no name lookup on the loop
        throw CannotListenError(interface_, requestedPort_, std::make_error_code(std::errc::invalid_argument));
    int s = ::socket(addr->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) throw CannotListenError(interface_, requestedPort_, errnoCode(errno));
    setFlag(s, SOL_SOCKET, SO_REUSEADDR, true);  // TCP-2
    if (addr->family() == AF_INET6) setFlag(s, IPPROTO_IPV6, IPV6_V6ONLY, true);
    if (::bind(s, addr->get(), addr->length) != 0 || ::listen(s, backlog_) != 0) {
        int e = errno;
        ::close(s);
        throw CannotListenError(interface_, requestedPort_, errnoCode(e));
    }
    fd_ = s;
    family_ = addr->family();
    realPort_ = portOf(localName(s));
    adopted_ = false;
    reserveFd();
    log::info(logPrefix(), "{} starting on {}", FileDescriptor::getLogPrefix(*factory_), realPort_);  // TCP-6
    factory_->doStart();  // TCP-5
    numberAccepts = 100;
    reactor_.addReader(shared_from_this());
}

void Port::adopt(int fd, int family) {
    fd_ = fd;
    family_ = family;
    adopted_ = true;
    SockAddr local = localName(fd);
    realPort_ = portOf(local);
    Address a = local.toAddress();
    if (auto* v4 = std::get_if<IPv4Address>(&a)) interface_ = v4->host;
    else if (auto* v6 = std::get_if<IPv6Address>(&a)) interface_ = v6->host;
    reserveFd();
    log::info(logPrefix(), "{} starting on {}", FileDescriptor::getLogPrefix(*factory_), realPort_);
    factory_->doStart();
    reactor_.addReader(shared_from_this());
}

Address Port::getHost() const {
    if (fd_ >= 0) return localName(fd_).toAddress();
    std::string host = interface_.empty() ? std::string("0.0.0.0") : interface_;
    if (family_ == AF_INET6) return IPv6Address("TCP", host, realPort_);
    return IPv4Address("TCP", host, realPort_);
}

Reason Port::doRead() {
    if (fd_ < 0 || disconnecting_) return std::nullopt;
    // TCP-15: what this batch logs is emitted after it, so logging cannot take
    // the descriptor freed for EMFILE recovery.
    std::vector<weft::detail::PendingLog> logs;
    SockAddr peer;
    weft::detail::acceptBatch(
        fd_, numberAccepts, reservedFd_, peer.get(), SockAddr::capacity, logs,
        [&](int s, socklen_t length) {
            peer.length = length;
            std::shared_ptr<Protocol> protocol;
            try {
                protocol = factory_->buildProtocol(peer.toAddress());  // TCP-12
            } catch (...) {
                ::close(s);
                throw;
            }
            if (!protocol) {
                ::close(s);
                return;
            }
            // From here the Server owns the socket (its destructor closes it).
            auto server = std::make_shared<Server>(reactor_, s, peer, sessionno_++, realPort_);
            setFlag(s, IPPROTO_TCP, TCP_NODELAY, true);  // TCP-23, Better than Twisted
            server->start(std::move(protocol));
        },
        [this] { return fd_ < 0 || disconnecting_; });
    for (auto& l : logs) {
        if (l.failure) log::failure(logPrefix(), l.message, *l.failure);
        else log::info(logPrefix(), "{}", l.message);
    }
    return std::nullopt;
}

Deferred<void> Port::stopListening() {
    if (fd_ < 0 || disconnecting_) return succeed();
    disconnecting_ = true;
    reactor_.removeReader(this);  // TCP-7: stop accepting at once
    Deferred<void> done;
    reactor_.callLater(0, [self = shared_from_this(), done]() mutable {
        try {
            self->connectionLost(error::connectionDone());
        } catch (...) {
            done.errback(Failure::current());  // TCP-8
            return;
        }
        done.callback();
    });
    return done;
}

void Port::connectionLost(const Failure&) {
    if (fd_ < 0) return;
    reactor_.removeReader(this);
    // A listening socket is never shut down: an adopted one is shared (TCP-50).
    ::close(fd_);
    fd_ = -1;
    weft::detail::releaseFd(reservedFd_);
    std::uint16_t was = realPort_;
    realPort_ = 0;
    disconnecting_ = false;
    log::info(logPrefix(), "(TCP Port {} Closed)", was);  // TCP-6
    factory_->doStop();  // TCP-8: may throw, the port is closed already
}

// ---- Connector --------------------------------------------------------------------------

Connector::Connector(Reactor& reactor, std::string host, std::uint16_t port, std::shared_ptr<ClientFactory> factory,
                     double timeout, std::optional<BindAddress> bindAddress)
    : reactor_(reactor), host_(std::move(host)), port_(port), factory_(std::move(factory)), timeout_(timeout),
      bindAddress_(std::move(bindAddress)) {
    if (!factory_) throw std::invalid_argument("connectTCP: null factory");
}

Connector::~Connector() { cancelTimeout(); }

void Connector::connect() {
    if (state_ != State::disconnected) throw std::logic_error("can't connect in this state");  // TCP-48
    state_ = State::connecting;
    if (!factoryStarted_) {
        factory_->doStart();
        factoryStarted_ = true;
    }
    transport_ = std::make_shared<Client>(reactor_, shared_from_this());
    transport_->begin();
    if (timeout_ > 0) {  // TCP-43: counted from connect(), resolution included
        timeoutCall_ = reactor_.callLater(timeout_, [weak = std::weak_ptr<Client>(transport_)] {
            if (auto t = weak.lock()) t->failIfNotConnected(Failure(TimeoutError()));
        });
    }
    factory_->startedConnecting(shared_from_this());
}

void Connector::stopConnecting() {
    if (state_ != State::connecting) throw NotConnectingError();  // TCP-46
    state_ = State::disconnected;
    auto t = transport_;
    t->failIfNotConnected(Failure(UserError()));
}

void Connector::disconnect() {
    if (state_ == State::connecting) stopConnecting();
    else if (state_ == State::connected && transport_) transport_->loseConnection();  // TCP-47
}

Address Connector::getDestination() const {
    if (isIPv6Address(host_) || host_.find(':') != std::string::npos) return IPv6Address("TCP", host_, port_);
    return IPv4Address("TCP", host_, port_);
}

std::shared_ptr<Protocol> Connector::buildProtocol(const Address& peer) { return factory_->buildProtocol(peer); }

void Connector::cancelTimeout() {
    if (timeoutCall_) {
        if (timeoutCall_->active()) timeoutCall_->cancel();
        timeoutCall_.reset();
    }
}

void Connector::connectionFailed(const Failure& reason) {
    cancelTimeout();
    state_ = State::disconnected;
    auto self = shared_from_this();
    factory_->clientConnectionFailed(self, reason);
    if (state_ == State::disconnected && factoryStarted_) {  // TCP-48
        factoryStarted_ = false;
        factory_->doStop();
    }
}

void Connector::connectionLost(const Failure& reason) {
    state_ = State::disconnected;
    auto self = shared_from_this();
    factory_->clientConnectionLost(self, reason);
    if (state_ == State::disconnected && factoryStarted_) {
        factoryStarted_ = false;
        factory_->doStop();
    }
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
    int domain = 0;
    socklen_t length = sizeof domain;
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 && domain != addressFamily)
        throw std::invalid_argument(fmt::format("{}: descriptor {} is a socket of family {}, not {}", what, fd, domain,
                                                addressFamily));
    return weft::detail::duplicateNonBlocking(fd, what);
}
}  // namespace

std::shared_ptr<IListeningPort> Reactor::adoptStreamPort(int fd, int addressFamily, std::shared_ptr<Factory> factory) {
    int copy = duplicateForAdoption(fd, addressFamily, factory, "adoptStreamPort");
    if (addressFamily == AF_UNIX) return adoptUNIXStreamPort(copy, std::move(factory));  // UNIX-21
    auto p = std::make_shared<tcp::Port>(*this, 0, std::move(factory), 50, "");
    p->adopt(copy, addressFamily);
    return p;
}

void Reactor::adoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory) {
    int copy = duplicateForAdoption(fd, addressFamily, factory, "adoptStreamConnection");
    if (addressFamily == AF_UNIX) return adoptUNIXStreamConnection(copy, std::move(factory));  // UNIX-22
    tcp::SockAddr peer;
    peer.length = tcp::SockAddr::capacity;
    if (::getpeername(copy, peer.get(), &peer.length) != 0) peer.length = 0;
    std::shared_ptr<Protocol> protocol;
    try {
        protocol = factory->buildProtocol(peer.toAddress());
    } catch (...) {
        ::close(copy);
        throw;
    }
    if (!protocol) {  // TCP-51
        ::close(copy);
        return;
    }
    auto local = tcp::SockAddr{};
    local.length = tcp::SockAddr::capacity;
    ::getsockname(copy, local.get(), &local.length);
    int one = 1;  // TCP-23: as for accepted sockets
    ::setsockopt(copy, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Better than Twisted: session number 0 for an adopted connection.
    auto server = std::make_shared<tcp::Server>(*this, copy, peer, 0, tcp::portOf(local));
    server->start(std::move(protocol));
}

}  // namespace weft
