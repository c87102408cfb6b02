// Private: the readiness-wait backends behind Reactor (epoll, poll, select).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace weft::detail {

/// Readiness bits exchanged between the reactor and its poller.
enum : unsigned {
    kReadable = 1u << 0,
    kWritable = 1u << 1,
    kHangup = 1u << 2,
    kError = 1u << 3,
    kInvalid = 1u << 4,  // the fd is not open (POLLNVAL, EBADF) or cannot be watched (>= FD_SETSIZE)
};

struct ReadyEvent {  // 16 bytes: the two 32-bit fields share the token's alignment
    int fd;
    unsigned events;
    std::uint64_t token;
};

/// One backend. Interest is keyed by fd number; the token is handed back
/// with every event so the reactor can drop events for a registration that
/// changed since the wait began.
class Poller {
public:
    virtual ~Poller() = default;
    /// Sets the interest for fd (kReadable|kWritable, possibly 0: then only errors
    /// are reported, where the backend can). `present` says whether fd is already
    /// known to the poller. Throws std::system_error on failure.
    virtual void set(int fd, std::uint64_t token, unsigned interest, bool present) = 0;
    /// Forgets fd (a no-op for an fd the kernel already dropped).
    virtual void remove(int fd) = 0;
    /// Waits up to `timeout` seconds (forever if nullopt) and appends ready events.
    /// Returns quietly on EINTR.
    virtual void wait(std::optional<double> timeout, std::vector<ReadyEvent>& out) = 0;
    /// Whether hang-up is reported apart from readability (false for select, R-41).
    virtual bool reportsHangup() const = 0;
    /// Whether set() on a descriptor not yet present refuses a closed one (EBADF),
    /// so registering it needs no check of its own (epoll_ctl does this; poll and
    /// select learn of a closed descriptor only at the next wait).
    virtual bool checksNewDescriptors() const { return false; }
};

std::unique_ptr<Poller> makeEpollPoller();
std::unique_ptr<Poller> makePollPoller();
std::unique_ptr<Poller> makeSelectPoller();

/// Milliseconds for poll/epoll_wait: rounded up so a wait never ends before a
/// timer is due; -1 for "forever".
int timeoutMillis(std::optional<double> timeout);

}  // namespace weft::detail
