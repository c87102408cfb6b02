// Internal: the accept loop shared by TCP and UNIX listening ports (tcp.md
// TCP-11..TCP-16, unix.md: "UNIX stream sockets reuse the whole TCP machinery").
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include <weft/failure.hpp>

#include "internet/detail/sysutil.hpp"
#include "sys/syscalls.hpp"

namespace weft::detail {

/// A message a batch wants logged once it is over (TCP-15).
struct PendingLog {
    std::string message;
    std::optional<Failure> failure;
};

/// Keeps a spare descriptor in `fd` (for EMFILE recovery, TCP-14), if one can be had.
inline void reserveFd(int& fd) noexcept {
    if (fd < 0) fd = sys::ops.open("/dev/null", O_RDONLY | O_CLOEXEC, 0);
}
/// Gives the spare descriptor back.
inline void releaseFd(int& fd) noexcept {
    if (fd >= 0) sys::ops.close(fd);
    fd = -1;
}

/// Accepts up to numberAccepts connections on `listenFd` (TCP-11: the quota
/// grows by 20 when it was used up and shrinks to what was accepted), using
/// the spare `reservedFd` to recover from EMFILE (TCP-14). For each one,
/// `accepted(fd, peerLength)` is called with the peer's address in `peer`
/// (capacity bytes); it owns fd. `stop()` is asked after each connection
/// (a callback may have stopped the port). What the batch has to say is
/// appended to `logs`, to be emitted after the batch.
template <class Accepted, class Stop>
void acceptBatch(int listenFd, int& numberAccepts, int& reservedFd, sockaddr* peer, socklen_t capacity,
                 std::vector<PendingLog>& logs, Accepted&& accepted, Stop&& stop) {
    const int quota = numberAccepts > 0 ? numberAccepts : 1;
    int used = 0;
    while (used < quota) {
        socklen_t length = capacity;
        int s = sys::ops.accept4(listenFd, peer, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s < 0) {
            int e = errno;
            if (e == EINTR) continue;
            if (e == EAGAIN || e == EWOULDBLOCK) break;
            if (e == EPERM) {  // TCP-13: counts against the quota
                ++used;
                continue;
            }
            if (e == EMFILE && reservedFd >= 0) {
                // TCP-14: free the spare, accept and close what is pending, take it back.
                releaseFd(reservedFd);
                int closed = 0;
                while (used < quota) {
                    int t = sys::ops.accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
                    if (t < 0) {
                        if (errno == EINTR) continue;
                        break;
                    }
                    sys::ops.close(t);
                    ++closed;
                    ++used;
                }
                reserveFd(reservedFd);
                logs.push_back({fmt::format("EMFILE recovery: closed {} connection(s) the process had no "
                                            "descriptor for",
                                            closed),
                                std::nullopt});
                break;
            }
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == ECONNABORTED) {
                logs.push_back({fmt::format("Could not accept new connection ({})", errnoName(e)), std::nullopt});
                break;
            }
            logs.push_back({fmt::format("Could not accept new connection ({}: {})", errnoName(e), std::strerror(e)),
                            Failure(std::system_error(e, std::generic_category(), "accept"))});
            break;
        }
        ++used;
        try {
            accepted(s, length);
        } catch (...) {  // TCP-16
            logs.push_back({"Unhandled error while accepting a connection", Failure::current()});
        }
        if (stop()) break;  // stopListening() from makeConnection
    }
    numberAccepts = used == quota ? quota + 20 : (used > 0 ? used : 1);  // TCP-11
}

}  // namespace weft::detail
