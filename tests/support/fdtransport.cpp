#include "support/fdtransport.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "sys/syscalls.hpp"

namespace weft::test {

namespace {
Address unixName(int fd, bool peer) {
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len)
                  : ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    if (rc != 0 || sa.sun_family != AF_UNIX) return NoAddress();
    std::size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    std::string name(sa.sun_path, n);
    while (!name.empty() && name.back() == '\0') name.pop_back();
    return UNIXAddress(name);
}
}  // namespace

std::shared_ptr<FdTransport> FdTransport::create(Reactor& reactor, int fd, bool connected) {
    auto t = std::make_shared<FdTransport>(reactor, fd);
    if (connected) t->connect();
    return t;
}

FdTransport::FdTransport(Reactor& reactor, int fd)
    : FileDescriptor(reactor), fd_(fd), host_(unixName(fd, false)), peer_(unixName(fd, true)) {}

FdTransport::~FdTransport() {
    if (fd_ >= 0) ::close(fd_);
}

Reason FdTransport::doRead() {
    if (aborting_) return std::nullopt;
    buffer_.resize(bufferSize);
    ssize_t n;
    do n = sys::ops.read(fd_, buffer_.data(), buffer_.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        return Failure(ConnectionLost(std::error_code(errno, std::generic_category())));
    }
    if (n == 0) return Failure(ConnectionDone());
    ++reads;
    std::string_view data(buffer_.data(), static_cast<std::size_t>(n));
    received.append(data);
    if (onData) onData(data);
    return std::nullopt;
}

Reason FdTransport::doWrite() {
    if (aborting_) return std::nullopt;
    return FileDescriptor::doWrite();
}

WriteResult FdTransport::writeSomeData(std::span<const iovec> data) { return writeToFD(fd_, data); }

Reason FdTransport::closeWriteConnection() {
    ::shutdown(fd_, SHUT_WR);
    ++writeLost;
    if (onWriteLost) onWriteLost();
    return std::nullopt;
}

void FdTransport::readConnectionLost(const Failure& reason) {
    if (!halfCloseable) return connectionLost(reason);
    ++readLost;
    if (onReadLost) onReadLost();
}

void FdTransport::abortConnection() {
    if (disconnected() || aborting_) return;
    aborting_ = true;
    stopReading();
    stopWriting();
    reactor().callLater(0, [self = std::static_pointer_cast<FdTransport>(shared_from_this())] {
        self->connectionLost(Failure(ConnectionAborted()));
    });
}

void FdTransport::connectionLost(const Failure& reason) {
    if (disconnected()) return;  // FD-39: once
    FileDescriptor::connectionLost(reason);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ++lost;
    lostReason = reason;
    // Let go of the "protocol" before it hears of the loss (FD-40); this frame
    // keeps the hooks alive until they return.
    auto lostHook = std::move(onLost);
    auto data = std::move(onData);
    auto readHook = std::move(onReadLost);
    auto writeHook = std::move(onWriteLost);
    onLost = nullptr;
    onData = nullptr;
    onReadLost = nullptr;
    onWriteLost = nullptr;
    if (lostHook) lostHook(reason);
}

}  // namespace weft::test
