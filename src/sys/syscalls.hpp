// Private: the syscall seam. Every system call weft's library makes goes
// through `sys::ops` — the transports' read/write/writev/accept/connect/...,
// socket set-up and tear-down, the UNIX socket and lock files, descriptor
// duplication, the reactor's eventfd and signal dispositions, and the pollers'
// epoll/poll/select — so tests can script EINTR, EAGAIN, short counts,
// ECONNRESET, EPIPE, EMFILE or EACCES per call (tests/support/faults.hpp). The
// default table calls the kernel directly. tests/tool/no_direct_syscalls.sh
// (ctest label `lint`) fails when a source outside src/sys calls one directly.
//
// Not system calls, so not here: the resolver (getaddrinfo, freeaddrinfo,
// gai_strerror, getservbyname_r: libc and NSS, which may read files and talk
// to other processes on their own, behind one library call); if_nametoindex and
// if_indextoname (libc, one lookup each); inet_pton/inet_ntop, strerror and
// the like (pure libc); the log sink's stdio on stderr (src/log.cpp).
//
// One exemption: the signal handler (src/internet/base.cpp) writes to the
// reactor's eventfd with ::write directly. A handler may interrupt any code,
// including a fault-injector hook that holds the injector's mutex or is
// allocating, so it must not call through a table whose entries may be such
// hooks; the kernel's write(2) is async-signal-safe.
//
// Threads: `ops` is a plain table. Tests replace it only on the main thread,
// while no other thread is calling through it (the thread pool calls through
// the seam only via the reactor's wake-up, callFromThread).
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <weft/export.hpp>

namespace weft::sys {

struct SpawnRequest;  // src/sys/spawn.hpp

struct Ops {
    ssize_t (*read)(int, void*, size_t);
    ssize_t (*write)(int, const void*, size_t);
    ssize_t (*readv)(int, const iovec*, int);
    ssize_t (*writev)(int, const iovec*, int);
    ssize_t (*recv)(int, void*, size_t, int);
    ssize_t (*send)(int, const void*, size_t, int);
    ssize_t (*recvmsg)(int, msghdr*, int);
    ssize_t (*sendmsg)(int, const msghdr*, int);
    int (*accept4)(int, sockaddr*, socklen_t*, int);
    int (*connect)(int, const sockaddr*, socklen_t);
    int (*close)(int);
    int (*recvmmsg)(int, mmsghdr*, unsigned, int, timespec*);  // UDP/UNIX datagram batches
    // Socket set-up and tear-down: fault tests reach these too.
    int (*socket)(int, int, int);
    int (*bind)(int, const sockaddr*, socklen_t);
    int (*listen)(int, int);
    int (*shutdown)(int, int);
    int (*setsockopt)(int, int, int, const void*, socklen_t);
    int (*getsockopt)(int, int, int, void*, socklen_t*);
    int (*getsockname)(int, sockaddr*, socklen_t*);
    int (*getpeername)(int, sockaddr*, socklen_t*);
    // Files and descriptors: the accept loop's spare descriptor, /proc/net/unix,
    // UNIX socket files and PID lock files, descriptor duplication and probes.
    int (*open)(const char*, int, mode_t);  // open(2) with a fixed signature (it is variadic)
    int (*fcntl)(int, int, long);           // fcntl(2) with a fixed signature (it is variadic)
    int (*unlink)(const char*);
    int (*chmod)(const char*, mode_t);
    int (*symlink)(const char* target, const char* linkPath);
    ssize_t (*readlink)(const char*, char*, size_t);
    int (*stat)(const char*, struct stat*);
    int (*lstat)(const char*, struct stat*);
    // Processes: a lock's owner is probed with kill(pid, 0).
    int (*kill)(pid_t, int);
    pid_t (*getpid)();
    // The reactor's waker and its signal dispositions (the handler itself writes
    // with ::write directly: see the file comment).
    int (*eventfd)(unsigned, int);
    int (*sigaction)(int, const struct sigaction*, struct sigaction*);
    // The pollers (one indirect call per wait; no other cost).
    int (*epoll_create1)(int);
    int (*epoll_ctl)(int, int, int, epoll_event*);
    int (*epoll_wait)(int, epoll_event*, int, int);
    int (*poll)(pollfd*, nfds_t, int);
    int (*select)(int, fd_set*, fd_set*, fd_set*, timeval*);
    // Child processes (process.cpp): pipes, the search for a program, the
    // spawn itself (src/sys/spawn.cpp: a clone(CLONE_VM|CLONE_VFORK) child
    // that execs; -1 with errno for a failure of the parent or the child),
    // pidfds, waiting, terminals and the ids a child inherits.
    int (*pipe2)(int*, int);
    int (*access)(const char*, int);
    pid_t (*spawn)(SpawnRequest*);
    int (*pidfd_open)(pid_t, unsigned);
    int (*pidfd_send_signal)(int, int, siginfo_t*, unsigned);
    int (*waitid)(idtype_t, id_t, siginfo_t*, int);
    int (*ioctl)(int, unsigned long, void*);  // ioctl(2) with a fixed signature (it is variadic)
    uid_t (*geteuid)();
    gid_t (*getegid)();
    // Standard I/O: stdout is replaced by /dev/null once closed (stdio.cpp).
    int (*dup3)(int, int, int);
    // A child's output channels (process.cpp).
    int (*socketpair)(int, int, int, int*);
    // Filesystem notification (inotify.cpp).
    int (*inotify_init1)(int);
    int (*inotify_add_watch)(int, const char*, uint32_t);
    int (*inotify_rm_watch)(int, int);
    // Directory listing: inotify's recursive watches and catch-up scans.
    ssize_t (*getdents64)(int, void*, size_t);
    // Serial ports: the advisory lock that keeps a second user off a device (serialport.cpp).
    int (*flock)(int, int);
};

/// The table in use; tests swap entries, production never does.
WEFT_EXPORT extern Ops ops;
/// The kernel's own functions.
WEFT_EXPORT extern const Ops kernelOps;

}  // namespace weft::sys
