// The stream layer (weft/internet/stream.hpp): StreamTransport,
// SocketTransport, ClientTransport, BaseConnector and StreamPort, shared by
// the TCP and UNIX stream transports and by every byte stream still to come.
#include <weft/internet/stream.hpp>
#include <weft/internet/abort.hpp>

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <weft/internet/error.hpp>
#include <weft/internet/testing.hpp>
#include <weft/log.hpp>

#include "internet/detail/acceptloop.hpp"
#include "internet/detail/crosscast.hpp"
#include "internet/detail/scratch.hpp"
#include "sys/syscalls.hpp"

namespace weft {

using namespace weft::error;

namespace {
std::error_code errnoCode(int e) { return {e, std::generic_category()}; }
}  // namespace

// ---- StreamTransport ------------------------------------------------------------------

StreamTransport::StreamTransport(Reactor& reactor, int fd) noexcept : FileDescriptor(reactor), fd_(fd) {}

StreamTransport::~StreamTransport() { dropDescriptor(); }

void StreamTransport::dropDescriptor() noexcept {
    if (fd_ < 0) return;
    sys::ops.close(fd_);
    fd_ = -1;
}

void StreamTransport::startProtocol(std::shared_ptr<Protocol> protocol) {
    protocol_ = std::move(protocol);
    setConnected();
    startReading();
    auto keep = protocol_;
    keep->makeConnection(shared_from_this());
}

ssize_t StreamTransport::readSome(std::byte* into, std::size_t room, Reason&) { return sys::ops.read(fd_, into, room); }

Reason StreamTransport::doRead() {
    if (aborting() || fd_ < 0) return std::nullopt;
    const std::size_t want = bufferSize ? bufferSize : 1;
    weft::detail::BorrowedBuffer buffer(want);
    ssize_t n;
    Reason failure;
    do n = readSome(buffer.data(), want, failure);
    while (!failure && n < 0 && errno == EINTR);
    if (failure) return failure;
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        return Failure(ConnectionLost(errnoCode(errno)));  // TCP-19, Better than Twisted: keep errno
    }
    if (n == 0) return error::connectionDone();
    if (auto p = protocol_) p->dataReceived(Bytes(buffer.data(), static_cast<std::size_t>(n)));
    return std::nullopt;
}

Reason StreamTransport::doWrite() {
    if (aborting()) return std::nullopt;
    return FileDescriptor::doWrite();
}

WriteResult StreamTransport::writeSomeData(std::span<const iovec> data) { return writeToFD(fd_, data); }

Reason StreamTransport::closeWriteConnection() {
    if (fd_ >= 0) shutdownWrite();
    if (auto* hc = weft::detail::crossCast<IHalfCloseableProtocol>(protocol_.get())) {
        auto keep = protocol_;
        try {
            hc->writeConnectionLost();
        } catch (...) {
            Failure f = Failure::current();  // TCP-30: logged once, then closed with it
            log::failure(logPrefix(), "Unhandled error in writeConnectionLost", f);
            return f;
        }
    }
    // Both halves closed (TCP-28): end the stream without waiting for the protocol.
    if (aborting()) return std::nullopt;  // the abort reports ConnectionAborted
    if (readHalf_ == ReadHalf::ended) return error::connectionDone();
    return std::nullopt;
}

void StreamTransport::readConnectionLost(const Failure&) {
    if (disconnected() || aborting()) return;
    stopReading();
    readHalf_ = ReadHalf::ended;
    auto* hc = weft::detail::crossCast<IHalfCloseableProtocol>(protocol_.get());
    if (!hc) {
        // Better than Twisted (TCP-27): flush what is buffered, then ConnectionDone,
        // whatever producer the protocol registered: the close is ours, not its.
        if (state() == State::connected) loseConnectionDespiteProducer();
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
    if (!disconnected() && !aborting() && writeHalf() == WriteHalf::closed) connectionLost(error::connectionDone());
}

void StreamTransport::resumeProducing() {
    if (readHalf_ == ReadHalf::ended) return;  // the peer's stream has ended: nothing more to read
    FileDescriptor::resumeProducing();
}

void StreamTransport::abortConnection() {
    if (!beginAbort()) return;  // TCP-33
    reactor().callLater(0, [self = shared_from_this()] {
        if (!self->disconnected()) self->connectionLost(Failure(ConnectionAborted()));
    });
}

void StreamTransport::closeDescriptor(bool) noexcept { dropDescriptor(); }

namespace {
// The transport whose protocol's connectionLost() runs on this thread, and
// that protocol (protocolForLog). Saved and put back around each call, so a
// connectionLost that ends another connection leaves the outer one in place.
struct Losing {
    const StreamTransport* transport = nullptr;
    const Protocol* protocol = nullptr;
};
thread_local Losing tLosing;
}  // namespace

const Protocol* StreamTransport::protocolForLog() const noexcept {
    if (protocol_) return protocol_.get();
    return tLosing.transport == this ? tLosing.protocol : nullptr;
}

void StreamTransport::connectionLost(const Failure& reason) {
    if (disconnected()) return;
    FileDescriptor::connectionLost(reason);
    closeDescriptor(reason.check<ConnectionAborted>() != 0);
    // Let go of the protocol before it hears of the loss; this frame keeps it
    // alive until its connectionLost() has returned (docs/ownership.md). Its
    // log lines still carry the connection's prefix (FD-38, TCP-18).
    if (auto p = std::move(protocol_)) {
        struct Restore {
            Losing saved;
            ~Restore() { tLosing = saved; }
        } restore{tLosing};
        tLosing = {this, p.get()};
        try {
            p->connectionLost(reason);
        } catch (...) {
            (void)logPrefix();  // kept, so that whoever logs the error names the connection
            throw;
        }
    }
}

// ---- SocketTransport ------------------------------------------------------------------

ssize_t SocketTransport::readSome(std::byte* into, std::size_t room, Reason&) {
    return sys::ops.recv(fd_, into, room, 0);
}

WriteResult SocketTransport::writeSomeData(std::span<const iovec> data) {
    return writeToFD(fd_, data, FDKind::socket);  // TCP-21: MSG_NOSIGNAL, never SIGPIPE
}

void SocketTransport::shutdownWrite() noexcept { sys::ops.shutdown(fd_, SHUT_WR); }

void SocketTransport::closeDescriptor(bool abort) noexcept {
    if (fd_ < 0) return;
    if (abort) {
        linger l{1, 0};  // the close sends a reset (TCP-22)
        sys::ops.setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    } else {
        sys::ops.shutdown(fd_, SHUT_RDWR);
    }
    StreamTransport::closeDescriptor(abort);
}

// ---- BaseConnector ------------------------------------------------------------------------

BaseConnector::BaseConnector(Reactor& reactor, std::shared_ptr<ClientFactory> factory, double timeout, const char* what)
    : reactor_(reactor), factory_(std::move(factory)), timeout_(timeout) {
    if (!factory_) throw std::invalid_argument(std::string(what) + ": null factory");
    reactor_.bind(*this);  // told when the reactor is destroyed: reactorGone()
}

BaseConnector::~BaseConnector() {
    if (bound()) reactor_.unbind(*this);  // not once the reactor is gone
    if (!reactorGone_) cancelTimeout();
}

void BaseConnector::reactorGone() noexcept {
    reactorGone_ = true;
    // The reactor told every transport it had (disconnectAll); an attempt
    // made after that, from a callback, never starts. Its transport holds this
    // connector and this connector holds it: let go, so neither outlives the reactor.
    auto keep = weak_from_this().lock();
    timeoutCall_.reset();  // its reactor's timer, not to be cancelled through it any more
    auto attempt = std::move(transport_);
    if (state_ == State::connecting) state_ = State::disconnected;
    try {
        stopFactoryIfIdle();
    } catch (...) {
        log::failure(FileDescriptor::getLogPrefix(*factory_), "Unhandled error in stopFactory at the reactor's end",
                     Failure::current());
    }
}

void BaseConnector::connect() {
    if (reactorGone_) throw std::logic_error("can't connect: the connector's reactor was destroyed");
    if (state_ != State::disconnected) throw std::logic_error("can't connect in this state");  // TCP-48
    state_ = State::connecting;
    if (!factoryStarted_) {
        factory_->doStart();
        factoryStarted_ = true;
    }
    transport_ = makeTransport();
    transport_->scheduleAttempt();
    if (timeout_ > 0) {  // TCP-43: counted from connect(), resolution included
        timeoutCall_ = reactor_.callLater(timeout_, [weak = std::weak_ptr<IConnectingTransport>(transport_)] {
            if (auto t = weak.lock()) t->failIfNotConnected(Failure(TimeoutError()));
        });
    }
    factory_->startedConnecting(shared_from_this());
}

void BaseConnector::stopConnecting() {
    if (state_ != State::connecting) throw NotConnectingError();  // TCP-46
    state_ = State::disconnected;
    auto t = transport_;
    t->failIfNotConnected(Failure(UserError()));
}

void BaseConnector::disconnect() {
    if (state_ == State::connecting) stopConnecting();
    else if (state_ == State::connected && transport_) transport_->asTransport().loseConnection();  // TCP-47
}

void BaseConnector::cancelTimeout() {
    if (timeoutCall_) {
        if (timeoutCall_->active()) timeoutCall_->cancel();
        timeoutCall_.reset();
    }
}

void BaseConnector::stopFactoryIfIdle() {
    // TCP-48: the factory stops unless a callback connected again.
    if (state_ == State::disconnected && factoryStarted_) {
        factoryStarted_ = false;
        factory_->doStop();
    }
}

void BaseConnector::connectionFailed(const Failure& reason) {
    cancelTimeout();
    state_ = State::disconnected;
    auto self = shared_from_this();
    factory_->clientConnectionFailed(self, reason);
    stopFactoryIfIdle();
}

void BaseConnector::connectionLost(const Failure& reason) {
    state_ = State::disconnected;
    auto self = shared_from_this();
    factory_->clientConnectionLost(self, reason);
    stopFactoryIfIdle();
}

// ---- StreamPort ------------------------------------------------------------------------------

StreamPort::StreamPort(Reactor& reactor, std::shared_ptr<Factory> factory, int backlog, const char* what)
    : reactor_(reactor), factory_(std::move(factory)), backlog_(backlog) {
    if (!factory_) throw std::invalid_argument(std::string(what) + ": null factory");
    reactor_.bind(*this);  // told when the reactor is destroyed: reactorGone()
}

StreamPort::~StreamPort() {
    if (bound()) reactor_.unbind(*this);  // not once the reactor is gone
    if (fd_ >= 0) sys::ops.close(fd_);
    weft::detail::releaseFd(reservedFd_);
}

void StreamPort::reactorGone() noexcept {
    reactorGone_ = true;
    if (state_ == State::closed) return;
    // Paused, or stopping with its close still to come: closed now, while the
    // reactor's registrations still exist, so nothing reaches back later.
    auto keep = weak_from_this().lock();
    try {
        connectionLost(Failure(ConnectionLost()));
    } catch (...) {
        log::failure(logPrefix(), "Unhandled error closing a port at the reactor's end", Failure::current());
    }
    auto waiters = std::move(stopWaiters_);
    stopWaiters_.clear();
    for (auto& d : waiters) d.callback();
}

void StreamPort::checkReactor() const {
    if (reactorGone_) throw std::logic_error(logPrefix() + ": startListening() after its reactor was destroyed");
}

std::string StreamPort::logPrefix() const {
    const Factory& f = *factory_;
    return demangle(typeid(f).name());
}

void StreamPort::beginListening(int fd, const std::string& where) {
    fd_ = fd;
    state_ = State::listening;
    acceptPaused_ = false;
    numberAccepts = 100;
    // On failure nothing is kept (TCP-1): the socket closed, nothing registered,
    // the factory not started. Registering comes first because the backend may
    // refuse it (epoll_ctl: ENOMEM, ENOSPC).
    auto undo = [this] {
        reactor_.removeReader(this);
        sys::ops.close(fd_);
        fd_ = -1;
        weft::detail::releaseFd(reservedFd_);
        state_ = State::closed;
    };
    try {
        reactor_.addReader(shared_from_this());
    } catch (...) {
        undo();
        throw;
    }
    weft::detail::reserveFd(reservedFd_);
    log::info(logPrefix(), "{} starting on {}", FileDescriptor::getLogPrefix(*factory_), where);  // TCP-6
    try {
        factory_->doStart();  // TCP-5
    } catch (...) {
        undo();
        throw;
    }
}

Reason StreamPort::doRead() {
    if (state_ != State::listening || acceptPaused_) return std::nullopt;
    // TCP-15: what this batch logs is emitted after it, so logging cannot take
    // the descriptor freed for EMFILE recovery.
    std::vector<weft::detail::PendingLog> logs;
    sockaddr_storage peer;
    weft::detail::acceptBatch(
        fd_, numberAccepts, reservedFd_, reinterpret_cast<sockaddr*>(&peer), peerCapacity(), logs,
        [&](int s, socklen_t length) { accepted(s, reinterpret_cast<const sockaddr*>(&peer), length); },
        [this] { return state_ != State::listening || acceptPaused_; });
    for (auto& l : logs) {
        if (l.failure) log::failure(logPrefix(), l.message, *l.failure);
        else log::info(logPrefix(), "{}", l.message);
    }
    return std::nullopt;
}

void StreamPort::pauseAccepting() {
    if (state_ != State::listening || acceptPaused_) return;
    acceptPaused_ = true;
    reactor_.removeReader(this);
}

void StreamPort::resumeAccepting() {
    if (!acceptPaused_) return;
    if (state_ == State::listening) reactor_.addReader(shared_from_this());  // may throw: still paused then
    acceptPaused_ = false;
}

Deferred<void> StreamPort::stopListening() {
    if (state_ == State::closed) return succeed();
    Deferred<void> done;
    // Asked again while stopping: this caller's Deferred fires with the first's,
    // once the socket is closed (TCP-7), not at once while it is still open.
    stopWaiters_.push_back(done);
    if (state_ == State::stopping) return done;
    state_ = State::stopping;
    reactor_.removeReader(this);  // TCP-7: stop accepting at once
    reactor_.callLater(0, [self = shared_from_this()] {
        std::optional<Failure> failed;
        try {
            self->connectionLost(error::connectionDone());
        } catch (...) {
            failed = Failure::current();  // TCP-8
        }
        auto waiters = std::move(self->stopWaiters_);
        self->stopWaiters_.clear();
        for (auto& d : waiters) {
            if (failed) d.errback(*failed);
            else d.callback();
        }
    });
    return done;
}

void StreamPort::connectionLost(const Failure&) {
    if (state_ == State::closed) return;
    reactor_.removeReader(this);
    acceptPaused_ = false;
    // A listening socket is never shut down: an adopted one is shared (TCP-50).
    sys::ops.close(fd_);
    fd_ = -1;
    weft::detail::releaseFd(reservedFd_);
    state_ = State::closed;
    closed();
    factory_->doStop();  // TCP-8: may throw, the port is closed already
}

void abortTransport(ITransport& transport) {
    if (auto* tcp = dynamic_cast<ITCPTransport*>(&transport)) tcp->abortConnection();
    else if (auto* stream = dynamic_cast<StreamTransport*>(&transport)) stream->abortConnection();
    else if (auto* fake = dynamic_cast<testing::StringTransport*>(&transport)) fake->abortConnection();
    else if (ITransport* below = transport.transportBelow()) abortTransport(*below);  // a wrapper's transport
    else transport.loseConnectionDespiteProducer();
}

}  // namespace weft
