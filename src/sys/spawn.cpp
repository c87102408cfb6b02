// The seam's spawn entry: starts a child without forking the parent.
//
// clone(CLONE_VM | CLONE_VFORK) runs the child on a stack of its own inside
// the parent's memory, while the calling thread waits until the child has
// called execve or exited: no page tables are copied, so the cost does not
// grow with the parent's size (process.md PROC-10, Better than Twisted), and
// the child reports a failure before exec simply by writing the request it
// was handed (the parent reads it once it runs again). glibc's posix_spawn
// works the same way; weft does it itself because posix_spawn cannot change
// uid, gid and groups.
//
// The child shares the parent's memory and its thread's TLS, so it must not
// allocate, take a lock or run instrumented code: it makes raw system calls
// only (syscall(2), which sets nothing but errno), and is built without
// sanitizers. Signals are blocked in the parent across the clone, so no
// handler runs on the child's stack; the child resets every caught or
// ignored signal to its default (PROC-9) and execs with an empty mask.
#include "sys/spawn.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "sys/syscalls.hpp"

// glibc's clone under its own name: the sanitizers' runtimes intercept
// `clone` and treat any child as a fork of the whole process (TSan then marks
// the parent "after a multi-threaded fork" and refuses new threads). This
// child never runs instrumented code, so they need not know of it.
extern "C" int __clone(int (*fn)(void*), void* stack, int flags, void* arg, ...);

namespace weft::sys {

const char* stepName(SpawnRequest::Step step) noexcept {
    switch (step) {
        case SpawnRequest::Step::none: return "spawn";
        case SpawnRequest::Step::signals: return "sigaction";
        case SpawnRequest::Step::session: return "setsid";
        case SpawnRequest::Step::descriptors: return "dup2";
        case SpawnRequest::Step::terminal: return "TIOCSCTTY";
        case SpawnRequest::Step::directory: return "chdir";
        case SpawnRequest::Step::groups: return "setgroups";
        case SpawnRequest::Step::gid: return "setgid";
        case SpawnRequest::Step::uid: return "setuid";
        case SpawnRequest::Step::exec: return "execve";
    }
    return "spawn";
}

namespace {

// The kernel's struct sigaction (rt_sigaction(2) takes this, not libc's).
struct KernelSigaction {
    void* handler;
    unsigned long flags;
    void* restorer;
    unsigned long mask;
};
constexpr unsigned long kSigsetBytes = sizeof(unsigned long);

#if defined(__clang__)
#define WEFT_CHILD_CODE __attribute__((noinline, no_sanitize("address", "thread", "undefined", "memory")))
#else
#define WEFT_CHILD_CODE __attribute__((noinline, no_sanitize("address", "thread", "undefined")))
#endif

// Runs in the child. Raw system calls only; on failure, records errno and the
// step in the request and exits with status 127 (the parent reaps it).
WEFT_CHILD_CODE int childMain(void* arg) {
    auto* req = static_cast<SpawnRequest*>(arg);
    using Step = SpawnRequest::Step;
    Step step = Step::signals;

    // Every caught or ignored signal back to its default (PROC-9).
    for (long sig = 1; sig < 65; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        KernelSigaction old{};
        if (::syscall(SYS_rt_sigaction, sig, nullptr, &old, kSigsetBytes) != 0) continue;  // glibc's own signals
        if (old.handler == reinterpret_cast<void*>(SIG_DFL)) continue;
        KernelSigaction dfl{reinterpret_cast<void*>(SIG_DFL), 0, nullptr, 0};
        if (::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, kSigsetBytes) != 0) goto fail;
    }

    step = Step::session;
    if (req->newSession) {
        if (::syscall(SYS_setsid) < 0) goto fail;
    } else if (req->newGroup) {
        if (::syscall(SYS_setpgid, 0, 0) != 0) goto fail;
    }

    step = Step::descriptors;
    for (int i = 0; i < req->count; ++i) {
        // A source above every target cannot be overwritten by a dup2 below: only
        // the others need a copy out of the way.
        long copy = req->from[i] > req->maxTarget ? req->from[i]
                                                  : ::syscall(SYS_fcntl, req->from[i], F_DUPFD, req->maxTarget + 1);
        if (copy < 0) goto fail;
        req->scratch[i] = static_cast<int>(copy);
    }
    for (int i = 0; i < req->count; ++i)
        if (::syscall(SYS_dup2, req->scratch[i], req->to[i]) < 0) goto fail;
    // Everything above the targets (the parent's copies included) ...
    if (::syscall(SYS_close_range, static_cast<unsigned>(req->maxTarget + 1), ~0U, 0U) != 0) {
        // Kernels before 5.9: close each one up to the descriptor limit.
        rlimit lim{};
        long top = ::syscall(SYS_getrlimit, RLIMIT_NOFILE, &lim) == 0 ? static_cast<long>(lim.rlim_cur) : 65536;
        if (top > (1L << 20)) top = 1L << 20;
        for (long fd = req->maxTarget + 1; fd < top; ++fd) ::syscall(SYS_close, fd);
    }
    // ... and every descriptor below them that is not one (FDMAP-3).
    for (int fd = 0; fd <= req->maxTarget; ++fd) {
        bool target = false;
        for (int i = 0; i < req->count && !target; ++i) target = req->to[i] == fd;
        if (!target) ::syscall(SYS_close, fd);
    }

    step = Step::terminal;
    if (req->ctty >= 0 && ::syscall(SYS_ioctl, req->ctty, TIOCSCTTY, 0) != 0) goto fail;

    step = Step::directory;
    if (req->cwd && ::syscall(SYS_chdir, req->cwd) != 0) goto fail;

    if (req->setIds) {
        step = Step::groups;
        if (::syscall(SYS_setgroups, req->groupCount, req->groups) != 0) goto fail;
        step = Step::gid;
        if (::syscall(SYS_setresgid, req->gid, req->gid, req->gid) != 0) goto fail;
        step = Step::uid;
        if (::syscall(SYS_setresuid, req->uid, req->uid, req->uid) != 0) goto fail;
    }

    step = Step::exec;
    {
        unsigned long none = 0;
        ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, kSigsetBytes);
    }
    ::syscall(SYS_execve, req->file, req->argv, req->envp);

fail:
    req->error = errno;
    req->failedStep = step;
    ::syscall(SYS_exit_group, 127);
    return 127;
}

constexpr std::size_t kChildStack = 64 * 1024;

}  // namespace

// The child's stack: one per thread, mapped at the thread's first spawn and
// reused (CLONE_VFORK suspends the thread until the child has exec'd or
// exited, so no two children of one thread ever share it), unmapped at
// thread exit. Mapping one per spawn cost two system calls and fresh page
// faults every time.
struct ChildStack {
    void* base = nullptr;
    ~ChildStack() {
        if (base) ::munmap(base, kChildStack);
    }
    void* get() {
        if (!base) {
            void* m =
                ::mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
            if (m == MAP_FAILED) return nullptr;
            base = m;
        }
        return base;
    }
};

pid_t kernelSpawn(SpawnRequest* req) {
    thread_local ChildStack childStack;
    void* stack = childStack.get();
    if (!stack) return -1;
    req->error = 0;
    req->failedStep = SpawnRequest::Step::none;

    // No handler may run in the child before it has reset them all.
    sigset_t all, saved;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = ::__clone(childMain, static_cast<char*>(stack) + kChildStack, CLONE_VM | CLONE_VFORK | SIGCHLD, req);
    int cloneError = errno;
    ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);

    if (pid < 0) {
        errno = cloneError;
        return -1;
    }
    if (req->error != 0) {
        // The child has exited: reap it here, so a failed spawn leaves no zombie.
        siginfo_t info{};
        while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED) != 0 && errno == EINTR) {}
        errno = req->error;
        return -1;
    }
    return pid;
}

bool reapOnOwnThread(pid_t pid, int pidfd) noexcept {
    try {
        std::thread([pid, pidfd] {
            const idtype_t kind = pidfd >= 0 ? P_PIDFD : P_PID;
            const auto which = static_cast<id_t>(pidfd >= 0 ? pidfd : pid);
            siginfo_t info{};
            while (::waitid(kind, which, &info, WEXITED) != 0 && errno == EINTR) {}
            if (pidfd >= 0) ::close(pidfd);
        }).detach();
        return true;
    } catch (...) {
        if (pidfd >= 0) ::close(pidfd);
        return false;
    }
}

}  // namespace weft::sys
