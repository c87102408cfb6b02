// Private: the syscall seam. Every read/write/writev/accept/connect/... that
// weft's transports make goes through `sys::ops`, so tests can script EINTR,
// EAGAIN, short counts, ECONNRESET, EPIPE or EMFILE per call
// (tests/support/faults.hpp). The default table calls the kernel directly.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <weft/export.hpp>

namespace weft::sys {

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
};

/// The table in use; tests swap entries, production never does.
WEFT_EXPORT extern Ops ops;
/// The kernel's own functions.
WEFT_EXPORT extern const Ops kernelOps;

}  // namespace weft::sys
