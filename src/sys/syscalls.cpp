#include "sys/syscalls.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys/spawn.hpp"

namespace weft::sys {

namespace {
// Fixed signatures for the variadic calls.
int openFile(const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); }
int fcntlCall(int fd, int cmd, long arg) { return ::fcntl(fd, cmd, arg); }
int ioctlCall(int fd, unsigned long request, void* arg) { return ::ioctl(fd, request, arg); }
// glibc 2.36 wraps neither pidfd call.
int pidfdOpen(pid_t pid, unsigned flags) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags)); }
int pidfdSendSignal(int pidfd, int sig, siginfo_t* info, unsigned flags) {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags));
}
}  // namespace

pid_t kernelSpawn(SpawnRequest* req);  // spawn.cpp

// constexpr: both tables are filled in before any code runs (no initialization order).
constexpr Ops kernelOps{
    ::read,
    ::write,
    ::readv,
    ::writev,
    ::recv,
    ::send,
    ::recvmsg,
    ::sendmsg,
    ::accept4,
    ::connect,
    ::close,
    ::recvmmsg,
    ::socket,
    ::bind,
    ::listen,
    ::shutdown,
    ::setsockopt,
    ::getsockopt,
    ::getsockname,
    ::getpeername,
    openFile,
    fcntlCall,
    ::unlink,
    ::chmod,
    ::symlink,
    ::readlink,
    ::stat,
    ::lstat,
    ::kill,
    ::getpid,
    ::eventfd,
    ::sigaction,
    ::epoll_create1,
    ::epoll_ctl,
    ::epoll_wait,
    ::poll,
    ::select,
    ::pipe2,
    ::access,
    kernelSpawn,
    pidfdOpen,
    pidfdSendSignal,
    ::waitid,
    ioctlCall,
    ::geteuid,
    ::getegid,
    ::dup3,
    ::socketpair,
    ::inotify_init1,
    ::inotify_add_watch,
    ::inotify_rm_watch,
    ::getdents64,
    ::flock,
};

Ops ops = kernelOps;

}  // namespace weft::sys
