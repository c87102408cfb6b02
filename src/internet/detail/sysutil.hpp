// Internal: small system-call helpers shared by the transports (tcp.cpp,
// unix.cpp, udp.cpp, process.cpp, the accept loop) and the TLS file reading.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "sys/syscalls.hpp"

namespace weft::detail {

// An owned descriptor, closed through the seam unless released.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~Fd() { reset(); }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset() noexcept {
        if (fd_ >= 0) sys::ops.close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

/// "ECONNRESET" for an errno value, or its number when it has no name.
inline std::string errnoName(int e) {
    const char* name = ::strerrorname_np(e);
    return name ? name : std::to_string(e);
}

/// An object's address in hex, for repr() strings.
inline std::string hexId(const void* p) { return fmt::format("{:#x}", reinterpret_cast<std::uintptr_t>(p)); }

/// A non-blocking, close-on-exec duplicate of `fd` (the adopt* methods: the
/// caller keeps its own copy). Throws std::system_error naming `what`.
inline int duplicateNonBlocking(int fd, const char* what) {
    int copy = sys::ops.fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throw std::system_error(errno, std::generic_category(), std::string(what) + ": dup");
    int flags = sys::ops.fcntl(copy, F_GETFL, 0);
    if (flags < 0 || sys::ops.fcntl(copy, F_SETFL, flags | O_NONBLOCK) != 0) {
        int e = errno;
        sys::ops.close(copy);
        throw std::system_error(e, std::generic_category(), std::string(what) + ": O_NONBLOCK");
    }
    return copy;
}

/// Checks that `fd`, given to an adopt* method, is a socket of `family` and
/// `type` (SOCK_STREAM, SOCK_DGRAM); throws std::invalid_argument naming what
/// it is instead, std::system_error for another failure.
inline void checkSocketKind(int fd, int family, int type, const char* what) {
    int domain = 0;
    socklen_t length = sizeof domain;
    if (sys::ops.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0) {
        if (errno == ENOTSOCK) throw std::invalid_argument(fmt::format("{}: descriptor {} is not a socket", what, fd));
        throw std::system_error(errno, std::generic_category(), fmt::format("{}: descriptor {}", what, fd));
    }
    if (domain != family)
        throw std::invalid_argument(
            fmt::format("{}: descriptor {} is a socket of family {}, not {}", what, fd, domain, family));
    int actual = 0;
    length = sizeof actual;
    if (sys::ops.getsockopt(fd, SOL_SOCKET, SO_TYPE, &actual, &length) == 0 && actual != type)
        throw std::invalid_argument(
            fmt::format("{}: descriptor {} is not a {} socket", what, fd, type == SOCK_STREAM ? "stream" : "datagram"));
}

}  // namespace weft::detail
