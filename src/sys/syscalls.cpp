#include "sys/syscalls.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace weft::sys {

namespace {
// Fixed signatures for the variadic calls.
int openFile(const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); }
int fcntlCall(int fd, int cmd, long arg) { return ::fcntl(fd, cmd, arg); }
}  // namespace

// constexpr: both tables are filled in before any code runs (no initialization order).
constexpr Ops kernelOps{
    ::read,          ::write,      ::readv,       ::writev,      ::recv,   ::send,    ::recvmsg, ::sendmsg,
    ::accept4,       ::connect,    ::close,       ::recvmmsg,    ::socket, ::bind,    ::listen,  ::shutdown,
    ::setsockopt,    ::getsockopt, ::getsockname, ::getpeername, openFile, fcntlCall, ::unlink,  ::chmod,
    ::symlink,       ::readlink,   ::stat,        ::lstat,       ::kill,   ::getpid,  ::eventfd, ::sigaction,
    ::epoll_create1, ::epoll_ctl,  ::epoll_wait,  ::poll,        ::select,
};

Ops ops = kernelOps;

}  // namespace weft::sys
