// Test support: a fault injector over the syscall seam (weft::sys::ops).
//
// Faults come from the seam, not from luck (STYLE.md §5): a test scripts, per
// system call, what the "kernel" does next — fail with an errno, take or return
// fewer bytes than asked (a short count), or behave normally — and weft's
// transports see exactly that, deterministically.
//
//     weft::test::ScopedFaults faults;                  // installs itself
//     faults.onlyFd(pair.a);                            // leave other fds alone
//     faults.fail(Call::writev, EINTR)                  // next writev: EINTR,
//           .shortCount(Call::writev, 3)                // then one taking 3 bytes,
//           .fail(Call::writev, ECONNRESET);            // then ECONNRESET
//     ...
//     EXPECT_EQ(faults.calls(Call::writev), 4u);        // counted through the seam
//
// Rules:
//  * Each call kind has its own FIFO script. A call takes the next outcome from
//    its script; with an empty script it consults the storm (below), if any, and
//    otherwise passes through to the kernel.
//  * fail(e): returns -1 with errno = e, without touching the kernel (no data is
//    consumed or sent). Works for every call kind, accept4/connect/close included.
//  * shortCount(n): the kernel call is made with its byte count (or iovec total,
//    for readv/writev/recvmsg/sendmsg) capped at n, so at most n bytes move; the
//    kernel may still move fewer, or fail on its own. n = 0 makes a read return 0
//    (a fake EOF) and a write return 0. For accept4/connect/close it passes through;
//    for recvmmsg, n caps the number of messages (n = 0: one). Every kind from
//    socket on (socket set-up, files, processes, the reactor's eventfd and
//    signal dispositions, the pollers) is fail-or-pass only: a cap passes through.
//  * storm(seed, …): for calls with an empty script, a seeded PRNG picks EINTR,
//    EAGAIN, a random short count in [1, asked) or a pass-through with the given
//    probabilities. Storms apply to the byte-moving calls only (read, readv,
//    write, writev, recv, send, recvmsg, sendmsg). Same seed, same sequence.
//  * onlyFd(fd)…: restrict every fault (scripted and storm) to the listed
//    descriptors; calls on other fds pass through untouched and uncounted. By
//    default every fd is affected — mind the reactor's own descriptors: its
//    waker (an eventfd, read and written through the seam) and its poller
//    (epoll_ctl, epoll_wait) go through the injector too, so a storm or a
//    read/write script without onlyFd can lose a wake-up. (The signal handler
//    alone writes the eventfd directly, never through the injector.)
//    The fd a call is filed under: its descriptor argument; for epoll_ctl the
//    descriptor being added, changed or removed (not the epoll fd); for
//    epoll_wait the epoll fd; -1 for calls with none (socket, open, eventfd,
//    epoll_create1, poll, select, the path calls, kill, getpid, sigaction), so
//    onlyFd(-1) selects exactly those.
//  * The path calls (open, unlink, chmod, symlink, readlink, stat, lstat) record
//    the path in CallRecord::path (symlink: the link's own path). A failed
//    getpid returns -1, which the kernel never does.
//  * Every affected call is recorded (history()): kind, fd, bytes asked, the
//    iovecs handed in (for readv/writev/recvmsg/sendmsg: base and length, so a
//    test can check a gather write used the caller's buffers, no copy), the
//    result and errno.
//  * onIoctl(handler): every affected ioctl whose script lets it through is
//    first offered to the handler, which sees the request and its argument
//    (and may read or fill it): it returns the result to stand for the
//    kernel's (setting errno for -1), or std::nullopt to let the kernel
//    answer. For what a pty cannot do (modem lines, a driver that refuses a
//    speed). CallRecord::request holds each ioctl's request.
//  * The destructor restores the table that was installed before (normally
//    sys::kernelOps). Only one ScopedFaults may exist at a time (a second one
//    throws std::logic_error). Hooks take a mutex, so a thread-pool thread
//    calling through the seam is safe, but scripts are shared by all threads.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sys/syscalls.hpp"

namespace weft::test {

/// The system calls the injector can script, in sys::Ops order.
enum class Call {
    read,
    readv,
    write,
    writev,
    recv,
    send,
    recvmsg,
    sendmsg,
    accept4,
    connect,
    close,
    recvmmsg,
    // socket set-up and tear-down (fail or pass only; `fd` is -1 for socket)
    socket,
    bind,
    listen,
    shutdown,
    setsockopt,
    getsockopt,
    getsockname,
    getpeername,
    // files, descriptors and processes (fail or pass only)
    open,
    fcntl,
    unlink,
    chmod,
    symlink,
    readlink,
    stat,
    lstat,
    kill,
    getpid,
    // the reactor's waker and signal dispositions, and the pollers (fail or pass only)
    eventfd,
    sigaction,
    epoll_create1,
    epoll_ctl,
    epoll_wait,
    poll,
    select,
    // child processes (fail or pass only; `fd` is the pidfd for pidfd_send_signal,
    // the descriptor for ioctl, -1 for the others)
    pipe2,
    access,
    spawn,
    pidfd_open,
    pidfd_send_signal,
    waitid,
    ioctl,
    geteuid,
    getegid,
    dup3,  // filed under the new descriptor
    socketpair,
    // filesystem notification (fail or pass only; `fd` is the inotify descriptor, -1 for init)
    inotify_init1,
    inotify_add_watch,
    inotify_rm_watch,
    getdents64,  // directory listing (fail or pass only; `fd` is the directory)
    // serial ports (fail or pass only; `fd` is the device)
    flock
};
inline constexpr std::size_t kCallKinds = static_cast<std::size_t>(Call::flock) + 1;

/// What one scripted call does.
struct Outcome {
    enum class Kind { pass, fail, cap };
    Kind kind = Kind::pass;
    int err = 0;            ///< for fail
    std::size_t limit = 0;  ///< for cap: most bytes the call may move

    static Outcome passThrough() { return {}; }
    static Outcome error(int e) { return {Kind::fail, e, 0}; }
    static Outcome shortCount(std::size_t n) { return {Kind::cap, 0, n}; }
};

/// Probabilities for storm mode (each in [0, 1], summing to at most 1).
struct StormOptions {
    double eintr = 0.15;
    double eagain = 0.15;
    double shortCount = 0.4;  ///< a random cap in [1, asked)
};

/// One call that went through the injector.
struct CallRecord {
    Call call;
    int fd;
    std::size_t asked;       ///< bytes asked for (iovec total for vector calls)
    std::vector<iovec> iov;  ///< the caller's iovecs (vector calls only)
    ssize_t result;
    int err;                ///< errno when result < 0, else 0
    bool injected;          ///< a scripted or storm outcome other than pass-through
    std::string path = {};  ///< the path, for open/unlink/chmod/symlink/readlink/stat/lstat
    /// The request, for ioctl.
    unsigned long request = 0;
};

/// Answers an ioctl in the kernel's place (see onIoctl), or lets it through (std::nullopt).
using IoctlHandler = std::function<std::optional<int>(int fd, unsigned long request, void* arg)>;

/// Installs the fault injector for its lifetime. See the file comment.
class ScopedFaults {
public:
    ScopedFaults();
    ~ScopedFaults();
    ScopedFaults(const ScopedFaults&) = delete;
    ScopedFaults& operator=(const ScopedFaults&) = delete;

    /// Appends outcomes to c's script.
    ScopedFaults& script(Call c, std::initializer_list<Outcome> outcomes);
    /// Appends `times` failures with errno e.
    ScopedFaults& fail(Call c, int e, int times = 1);
    /// Appends `times` calls capped at n bytes.
    ScopedFaults& shortCount(Call c, std::size_t n, int times = 1);
    /// Appends `times` pass-throughs (to let some calls through before a fault).
    ScopedFaults& pass(Call c, int times = 1);
    /// Drops what is left of c's script (or of every script).
    void clearScript(Call c);
    void clearScripts();
    /// Outcomes still queued for c.
    std::size_t pending(Call c) const;

    /// Starts a seeded random storm for calls with an empty script.
    void storm(std::uint64_t seed, StormOptions options = {});
    void stopStorm();

    /// Offers every affected ioctl that its script lets through to `handler`
    /// first (replacing any earlier handler; an empty one removes it).
    ScopedFaults& onIoctl(IoctlHandler handler);
    /// onIoctl with a handler that fails every ioctl `request` with errno `e`
    /// and lets every other request through.
    ScopedFaults& failIoctl(unsigned long request, int e);

    /// Restricts faults and recording to these descriptors (cumulative).
    ScopedFaults& onlyFd(int fd);
    /// Affects every descriptor again.
    void allFds();

    /// Calls of kind c made on affected descriptors so far.
    std::size_t calls(Call c) const;
    /// Of those, how many got an injected (non-pass-through) outcome.
    std::size_t injected(Call c) const;
    /// Every affected call so far, in order.
    std::vector<CallRecord> history() const;
    /// The records of kind c.
    std::vector<CallRecord> history(Call c) const;
    /// Forgets counts and history (not scripts).
    void resetHistory();

    /// Internal: the hooks' entry point.
    static ScopedFaults* current();
    struct Decision {
        Outcome outcome;
        bool affected;
    };
    Decision decide(Call c, int fd, std::size_t asked);
    void record(CallRecord r);
    std::optional<int> answerIoctl(int fd, unsigned long request, void* arg);

private:
    mutable std::mutex mu_;
    sys::Ops saved_;
    std::deque<Outcome> scripts_[kCallKinds];
    std::optional<StormOptions> storm_;
    std::mt19937_64 rng_;
    std::set<int> fds_;
    std::size_t calls_[kCallKinds] = {};
    std::size_t injected_[kCallKinds] = {};
    std::vector<CallRecord> history_;
    IoctlHandler ioctlHandler_;
};

}  // namespace weft::test
