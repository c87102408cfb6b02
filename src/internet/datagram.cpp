// The datagram layer (weft/internet/datagram.hpp): DatagramSocket, shared by
// UDP ports and UNIX datagram ports. Spec: udp.md UDP-6..UDP-20, unix.md
// UNIX-23..UNIX-29.
#include <weft/internet/datagram.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include <weft/internet/abstract.hpp>
#include <weft/internet/error.hpp>
#include <weft/log.hpp>

#include "internet/detail/flagscope.hpp"
#include "internet/detail/sysutil.hpp"
#include "sys/syscalls.hpp"

namespace weft {

using namespace weft::error;

namespace {
using weft::detail::errnoName;

std::error_code errnoCode(int e) { return {e, std::generic_category()}; }

// Datagrams fetched by one recvmmsg() call at most. With the default 8 KiB
// maxPacketSize this is a 64 KiB buffer per port, made at its first read.
constexpr unsigned kBatch = 8;
}  // namespace

// ---- DatagramSocket -------------------------------------------------------------------

struct DatagramSocket::ReceiveBuffers {
    std::vector<std::byte> data;  // kBatch slots of maxPacketSize bytes
    std::array<mmsghdr, kBatch> messages{};
    std::array<iovec, kBatch> iov{};
    std::array<sockaddr_storage, kBatch> names{};
    // Datagrams of the last batch not yet delivered when a callback paused the
    // port: [pendingFrom, pendingTo), delivered first once it is resumed.
    int pendingFrom = 0, pendingTo = 0;
    bool pending() const noexcept { return pendingFrom < pendingTo; }

    explicit ReceiveBuffers(std::size_t slot) : data(slot * kBatch) {
        for (unsigned i = 0; i < kBatch; ++i) {
            iov[i] = {data.data() + i * slot, slot};
            messages[i].msg_hdr.msg_iov = &iov[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &names[i];
        }
    }
};

DatagramSocket::DatagramSocket(Reactor& reactor, std::shared_ptr<AbstractDatagramProtocol> protocol,
                               std::size_t maxPacketSize)
    : reactor_(reactor), protocol_(std::move(protocol)), maxPacketSize_(maxPacketSize) {
    if (!protocol_) throw std::invalid_argument("datagram port: null protocol");
    if (maxPacketSize_ == 0) throw std::invalid_argument("datagram port: maxPacketSize must be positive");
    // No datagram is larger (a UDP payload fits in 64 KiB, a UNIX datagram in
    // the socket's buffer); the receive buffers hold kBatch of them, so a size
    // near SIZE_MAX overflowed their size and a large one asked for terabytes.
    if (maxPacketSize_ > kMaxPacketSizeLimit)
        throw std::invalid_argument(
            fmt::format("datagram port: maxPacketSize {} is larger than any datagram (at most {})", maxPacketSize_,
                        kMaxPacketSizeLimit));
}

DatagramSocket::~DatagramSocket() {
    if (fd_ >= 0) sys::ops.close(fd_);
}

void DatagramSocket::closeDescriptor(int fd) noexcept { sys::ops.close(fd); }

std::string DatagramSocket::protocolPrefix() const { return FileDescriptor::getLogPrefix(*protocol_); }

std::string DatagramSocket::protocolClassName() const {
    const AbstractDatagramProtocol& protocol = *protocol_;
    return demangle(typeid(protocol).name());
}

void DatagramSocket::checkProtocolFree() const {
    if (protocol_->transport && protocol_->transport.get() != static_cast<const IDatagramTransport*>(this))
        throw std::logic_error(fmt::format("{} is already attached to a transport", protocolPrefix()));
}

void DatagramSocket::checkNotStopping() const {
    if (state_ == State::stopping)
        throw std::logic_error(
            fmt::format("{}: startListening() while stopListening() has not finished; start it again once the "
                        "Deferred stopListening() returned has fired",
                        protocolPrefix()));
}

void DatagramSocket::startReading() {
    if (reading_ || fd_ < 0) return;
    reactor_.addReader(shared_from_this());
    reading_ = true;
}

void DatagramSocket::stopReading() {
    if (!reading_) return;
    reactor_.removeReader(this);
    reading_ = false;
}

void DatagramSocket::pauseProducing() {
    paused_ = true;
    stopReading();
    if (state_ == State::listening && !shutdownWhilePaused_) {
        // Better than Twisted: a paused port is closed at shutdown too (stopProtocol
        // runs, the socket goes); it and its protocol would otherwise hold each other.
        shutdownWhilePaused_ = reactor_.addSystemEventTrigger("during", "shutdown", [weak = weak_from_this()] {
            auto self = weak.lock();
            if (!self) return;
            self->shutdownWhilePaused_.reset();  // it runs once: nothing to remove
            if (self->fd_ >= 0) self->connectionLost(Failure(error::ConnectionLost()));
        });
    }
}

void DatagramSocket::forgetShutdownTrigger() noexcept {
    if (auto id = std::exchange(shutdownWhilePaused_, std::nullopt)) {
        try {
            reactor_.removeSystemEventTrigger(*id);
        } catch (...) {}
    }
}

void DatagramSocket::resumeProducing() {
    paused_ = false;
    forgetShutdownTrigger();
    if (state_ != State::listening) return;
    startReading();
    if (rx_ && rx_->pending()) {
        // What a pause left of the last batch is the kernel's no longer: the
        // socket may never turn readable for it. Delivered on a later
        // iteration (never inside this call), as a read would be.
        reactor_.callLater(0, [weak = weak_from_this()] {
            auto self = weak.lock();
            if (self && self->stillReading() && self->rx_ && self->rx_->pending()) self->doRead();
        });
    }
}

void DatagramSocket::attach(int fd, const std::string& where) {
    fd_ = fd;
    state_ = State::listening;
    paused_ = false;
    if (rx_) rx_->pendingFrom = rx_->pendingTo = 0;                        // nothing of an earlier socket
    log::info(logPrefix(), "{} starting on {}", protocolPrefix(), where);  // UDP-5
    auto self = shared_from_this();
    auto protocol = protocol_;
    try {
        protocol->makeConnection(self);  // UDP-3: startProtocol() on the first port
    } catch (...) {
        // Nothing is registered yet: undo the listen so the caller sees a clean failure.
        if (protocol->transport.get() == static_cast<IDatagramTransport*>(this)) protocol->transport.reset();
        if (fd_ >= 0) closeDescriptor(fd_);
        fd_ = -1;
        state_ = State::closed;
        throw;
    }
    attached_ = true;
    // startProtocol() may have stopped (or paused) the port already (UDP-20).
    if (state_ == State::listening && !paused_) startReading();
}

Reason DatagramSocket::doRead() {
    if (fd_ < 0 || state_ != State::listening || inRead_) return std::nullopt;
    weft::detail::FlagScope reading(inRead_);
    // The protocol may drop the port's last outside reference, or the reactor's
    // (stopListening); the dispatch guard holds the port, this holds the protocol.
    auto protocolGuard = protocol_;
    // UDP-6, TUN-6: at most about maxThroughput bytes per readable event; what
    // is left waits for the next iteration, so one busy port cannot starve the loop.
    std::size_t read = 0;
    while (read < maxThroughput) {
        Received step = receiveSome(maxThroughput - read);
        read += step.bytes;
        if (!step.more || !stillReading()) break;
    }
    return std::nullopt;
}

DatagramSocket::Received DatagramSocket::receiveSome(std::size_t budget) {
    if (!rx_) rx_ = std::make_unique<ReceiveBuffers>(maxPacketSize_);
    ReceiveBuffers& rx = *rx_;
    if (rx.pending()) {
        // Left by a pause: delivered before anything new is read.
        Received step;
        bool stop = false;
        deliverBatch(rx, rx.pendingFrom, rx.pendingTo, step.bytes, stop);
        step.more = !stop;
        return step;
    }
    // UDP-6: ask for no more datagrams than the remaining budget could hold,
    // so one event reads about maxThroughput bytes, as one recv at a time would.
    std::size_t slots = (budget + maxPacketSize_ - 1) / maxPacketSize_;
    auto want = static_cast<unsigned>(std::clamp<std::size_t>(slots, 1, kBatch));
    for (unsigned i = 0; i < want; ++i) {
        rx.messages[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        rx.messages[i].msg_hdr.msg_flags = 0;
        rx.messages[i].msg_len = 0;
    }
    // MSG_TRUNC: msg_len is the datagram's real length, so a cut one can be reported.
    int n = sys::ops.recvmmsg(fd_, rx.messages.data(), want, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    if (n < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) return {};  // UDP-10
        if (e == ECONNREFUSED) {
            if (connectedToPeer()) reportRefusal();
            return {};
        }
        // Better than Twisted (UDP-10): one bad receive must not close a
        // listener; the pending error is consumed, so this does not spin.
        log::error(logPrefix(), "Error receiving a datagram ({}: {}); the port stays open", errnoName(e),
                   std::strerror(e));
        return {};
    }
    Received step;
    bool stop = false;
    deliverBatch(rx, 0, n, step.bytes, stop);
    // Fewer than asked: drained, which saves the call that would say EAGAIN.
    step.more = !stop && static_cast<unsigned>(n) == want;
    return step;
}

void DatagramSocket::reportRefusal() {
    auto protocol = protocol_;  // the callback may close the port
    try {
        protocol->connectionRefused();
    } catch (...) {
        // As from datagramReceived (UDP-9): logged, and the port stays open. It
        // escaped from the error-event path with the port no longer read and
        // nothing left to close it (the port and its protocol leaked).
        log::failure(logPrefix(), "Unhandled error in connectionRefused", Failure::current());
    }
}

void DatagramSocket::readConnectionLost(const Failure& reason) {
    reading_ = false;  // the reactor has stopped reading us
    if (fd_ < 0 || state_ != State::listening) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (sys::ops.getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) {
        connectionLost(reason);  // a hang-up with nothing pending: the socket is done
        return;
    }
    if (err == ECONNREFUSED) {
        if (connectedToPeer()) reportRefusal();  // UDP-10, UDP-19
    } else {
        log::error(logPrefix(), "Error pending on a datagram socket ({}: {}); the port stays open", errnoName(err),
                   std::strerror(err));
    }
    if (state_ == State::listening && !paused_) startReading();
}

void DatagramSocket::deliverBatch(ReceiveBuffers& rx, int first, int count, std::size_t& read, bool& stop) {
    rx.pendingFrom = rx.pendingTo = 0;
    for (int i = first; i < count; ++i) {
        const mmsghdr& m = rx.messages[static_cast<std::size_t>(i)];
        std::size_t length = m.msg_len;
        read += std::min(length, maxPacketSize_);
        if ((m.msg_hdr.msg_flags & MSG_TRUNC) || length > maxPacketSize_) {
            // Better than Twisted (UDP-7): never hand over a silently cut payload.
            ++truncated_;
            log::warn(logPrefix(), "Dropped a datagram of {} bytes: longer than maxPacketSize ({} bytes)", length,
                      maxPacketSize_);
            continue;
        }
        try {
            deliver(Bytes(static_cast<const std::byte*>(m.msg_hdr.msg_iov->iov_base), length),
                    static_cast<const sockaddr*>(m.msg_hdr.msg_name), m.msg_hdr.msg_namelen);
        } catch (...) {
            log::failure(logPrefix(), "Unhandled error in datagramReceived", Failure::current());  // UDP-9
        }
        // UDP-11: the callback may have stopped, paused or closed the port. A
        // pause keeps the rest of the batch for the resume; a close drops it.
        if (!stillReading()) {
            if (fd_ >= 0 && state_ == State::listening) {
                rx.pendingFrom = i + 1;
                rx.pendingTo = count;
            }
            stop = true;
            return;
        }
    }
}

std::size_t DatagramSocket::sendDatagram(const sockaddr* to, socklen_t toLength, std::span<const iovec> data,
                                         const Describe& describe) {
    if (fd_ < 0) return 0;  // a closed transport is inert
    msghdr m{};
    m.msg_name = const_cast<sockaddr*>(to);
    m.msg_namelen = to ? toLength : 0;
    m.msg_iov = const_cast<iovec*>(data.data());
    m.msg_iovlen = data.size();
    for (;;) {
        ssize_t n = sys::ops.sendmsg(fd_, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) return static_cast<std::size_t>(n);
        int e = errno;
        switch (e) {
            case EINTR: continue;  // UDP-14
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
            case ENOBUFS:
                // Better than Twisted (UDP-14): a full buffer is an ordinary UDP
                // loss, counted rather than thrown at the caller.
                ++dropped_;
                return 0;
            case EMSGSIZE: {
                std::size_t total = 0;
                for (const iovec& v : data) total += v.iov_len;
                throw MessageLengthError(fmt::format("{} bytes to {}", total, describe()));
            }
            case ECONNREFUSED:
                // UDP-14: an unconnected socket ignores it; UDP-18: a connected one reports it.
                if (connectedToPeer()) {
                    reportRefusal();
                    return 0;
                }
                if (ignoreUnconnectedRefusal_) return 0;
                [[fallthrough]];
            default: throw std::system_error(errnoCode(e), fmt::format("sending a datagram to {}", describe()));
        }
    }
}

std::size_t DatagramSocket::sendChunks(const sockaddr* to, socklen_t toLength, std::span<const Bytes> chunks,
                                       const Describe& describe) {
    auto toIovec = [](Bytes b) { return iovec{const_cast<std::byte*>(b.data()), b.size()}; };
    constexpr std::size_t kStackIov = 16;
    if (chunks.size() <= kStackIov) {
        std::array<iovec, kStackIov> iov;
        std::transform(chunks.begin(), chunks.end(), iov.begin(), toIovec);
        return sendDatagram(to, toLength, std::span(iov.data(), chunks.size()), describe);
    }
    if (chunks.size() <= IOV_MAX) {
        std::vector<iovec> iov(chunks.size());
        std::transform(chunks.begin(), chunks.end(), iov.begin(), toIovec);
        return sendDatagram(to, toLength, iov, describe);
    }
    // More chunks than one sendmsg takes: join them (rare; still one datagram).
    std::vector<std::byte> joined;
    for (Bytes b : chunks) joined.insert(joined.end(), b.begin(), b.end());
    iovec one{joined.data(), joined.size()};
    return sendDatagram(to, toLength, std::span(&one, 1), describe);
}

Deferred<void> DatagramSocket::stopListening() {
    if (fd_ < 0) return succeed();  // UDP-20: not listening
    Deferred<void> done;
    stopWaiters_.push_back(done);
    if (state_ == State::stopping) return done;
    state_ = State::stopping;
    stopReading();  // at once
    reactor_.callLater(0, [self = shared_from_this()] {
        try {
            self->connectionLost(error::connectionDone());
        } catch (...) {
            log::failure(self->logPrefix(), "Unhandled error closing a datagram port", Failure::current());
        }
    });
    return done;
}

void DatagramSocket::loseConnection() { stopListening(); }

void DatagramSocket::connectionLost(const Failure&) {
    if (fd_ < 0) return;             // once
    auto self = shared_from_this();  // doStop() lets go of the protocol's reference to us
    forgetShutdownTrigger();
    stopReading();
    closeDescriptor(fd_);
    fd_ = -1;
    state_ = State::closed;
    closed();
    auto waiters = std::move(stopWaiters_);
    stopWaiters_.clear();
    if (attached_) {
        attached_ = false;
        auto protocol = protocol_;
        try {
            protocol->doStop();  // clears transport; stopProtocol() on its last port
        } catch (...) {
            Failure f = Failure::current();
            for (auto& d : waiters) d.errback(f);
            if (waiters.empty()) throw;
            return;
        }
    }
    for (auto& d : waiters) d.callback();
}

}  // namespace weft
