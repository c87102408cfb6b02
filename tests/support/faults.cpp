#include "support/faults.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <stdexcept>

namespace weft::test {

namespace {

// One Call kind per seam entry: a new sys::Ops member needs a kind and a hook.
static_assert(sizeof(sys::Ops) == kCallKinds * sizeof(void (*)()), "every sys::Ops entry has a Call kind");

std::atomic<ScopedFaults*> gCurrent{nullptr};

std::size_t idx(Call c) { return static_cast<std::size_t>(c); }

std::size_t iovTotal(const iovec* iov, int n) {
    std::size_t t = 0;
    for (int i = 0; i < n; ++i) t += iov[i].iov_len;
    return t;
}

/// Copies iovecs, trimming the total to at most `limit` bytes (at least one entry,
/// possibly of length 0, so the kernel call still happens).
std::vector<iovec> capIov(const iovec* iov, int n, std::size_t limit) {
    std::vector<iovec> out;
    for (int i = 0; i < n && (limit > 0 || out.empty()); ++i) {
        iovec v = iov[i];
        if (v.iov_len > limit) v.iov_len = limit;
        limit -= v.iov_len;
        out.push_back(v);
    }
    return out;
}

// Every hook: decide, act, record. `Kernel` performs the real call with a byte
// cap (SIZE_MAX for none).
template <class Kernel>
ssize_t run(Call c, int fd, std::size_t asked, const iovec* iov, int iovcnt, Kernel kernel, const char* path = nullptr,
            unsigned long request = 0) {
    ScopedFaults* f = ScopedFaults::current();
    if (!f) return kernel(SIZE_MAX);
    auto d = f->decide(c, fd, asked);
    if (!d.affected) return kernel(SIZE_MAX);
    CallRecord rec{c, fd, asked, {}, 0, 0, d.outcome.kind != Outcome::Kind::pass};
    if (iov) rec.iov.assign(iov, iov + iovcnt);
    if (path) rec.path = path;
    rec.request = request;
    ssize_t r;
    if (d.outcome.kind == Outcome::Kind::fail) {
        r = -1;
        errno = d.outcome.err;
    } else {
        r = kernel(d.outcome.kind == Outcome::Kind::cap ? d.outcome.limit : SIZE_MAX);
    }
    int saved = errno;
    rec.result = r;
    rec.err = r < 0 ? saved : 0;
    f->record(std::move(rec));
    errno = saved;
    return r;
}

ssize_t hookRead(int fd, void* buf, size_t n) {
    return run(Call::read, fd, n, nullptr, 0,
               [&](std::size_t cap) { return sys::kernelOps.read(fd, buf, std::min(n, cap)); });
}
ssize_t hookWrite(int fd, const void* buf, size_t n) {
    return run(Call::write, fd, n, nullptr, 0,
               [&](std::size_t cap) { return sys::kernelOps.write(fd, buf, std::min(n, cap)); });
}
ssize_t hookReadv(int fd, const iovec* iov, int n) {
    return run(Call::readv, fd, iovTotal(iov, n), iov, n, [&](std::size_t cap) {
        if (cap == SIZE_MAX) return sys::kernelOps.readv(fd, iov, n);
        auto v = capIov(iov, n, cap);
        return sys::kernelOps.readv(fd, v.data(), static_cast<int>(v.size()));
    });
}
ssize_t hookWritev(int fd, const iovec* iov, int n) {
    return run(Call::writev, fd, iovTotal(iov, n), iov, n, [&](std::size_t cap) {
        if (cap == SIZE_MAX) return sys::kernelOps.writev(fd, iov, n);
        auto v = capIov(iov, n, cap);
        return sys::kernelOps.writev(fd, v.data(), static_cast<int>(v.size()));
    });
}
ssize_t hookRecv(int fd, void* buf, size_t n, int flags) {
    return run(Call::recv, fd, n, nullptr, 0,
               [&](std::size_t cap) { return sys::kernelOps.recv(fd, buf, std::min(n, cap), flags); });
}
ssize_t hookSend(int fd, const void* buf, size_t n, int flags) {
    return run(Call::send, fd, n, nullptr, 0,
               [&](std::size_t cap) { return sys::kernelOps.send(fd, buf, std::min(n, cap), flags); });
}
ssize_t hookRecvmsg(int fd, msghdr* msg, int flags) {
    return run(Call::recvmsg, fd, iovTotal(msg->msg_iov, static_cast<int>(msg->msg_iovlen)), msg->msg_iov,
               static_cast<int>(msg->msg_iovlen), [&](std::size_t cap) {
                   if (cap == SIZE_MAX) return sys::kernelOps.recvmsg(fd, msg, flags);
                   auto v = capIov(msg->msg_iov, static_cast<int>(msg->msg_iovlen), cap);
                   msghdr m = *msg;
                   m.msg_iov = v.data();
                   m.msg_iovlen = v.size();
                   ssize_t r = sys::kernelOps.recvmsg(fd, &m, flags);
                   msg->msg_flags = m.msg_flags;
                   msg->msg_controllen = m.msg_controllen;
                   msg->msg_namelen = m.msg_namelen;
                   return r;
               });
}
ssize_t hookSendmsg(int fd, const msghdr* msg, int flags) {
    return run(Call::sendmsg, fd, iovTotal(msg->msg_iov, static_cast<int>(msg->msg_iovlen)), msg->msg_iov,
               static_cast<int>(msg->msg_iovlen), [&](std::size_t cap) {
                   if (cap == SIZE_MAX) return sys::kernelOps.sendmsg(fd, msg, flags);
                   auto v = capIov(msg->msg_iov, static_cast<int>(msg->msg_iovlen), cap);
                   msghdr m = *msg;
                   m.msg_iov = v.data();
                   m.msg_iovlen = v.size();
                   return sys::kernelOps.sendmsg(fd, &m, flags);
               });
}
int hookAccept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
    return static_cast<int>(run(Call::accept4, fd, 0, nullptr, 0,
                                [&](std::size_t) { return ssize_t{sys::kernelOps.accept4(fd, addr, len, flags)}; }));
}
int hookConnect(int fd, const sockaddr* addr, socklen_t len) {
    return static_cast<int>(run(Call::connect, fd, 0, nullptr, 0,
                                [&](std::size_t) { return ssize_t{sys::kernelOps.connect(fd, addr, len)}; }));
}
int hookClose(int fd) {
    return static_cast<int>(
        run(Call::close, fd, 0, nullptr, 0, [&](std::size_t) { return ssize_t{sys::kernelOps.close(fd)}; }));
}

// recvmmsg: "asked" and a cap count messages, not bytes.
int hookRecvmmsg(int fd, mmsghdr* msgs, unsigned vlen, int flags, timespec* timeout) {
    return static_cast<int>(run(Call::recvmmsg, fd, vlen, nullptr, 0, [&](std::size_t cap) {
        unsigned n = cap == SIZE_MAX ? vlen : static_cast<unsigned>(std::clamp<std::size_t>(cap, 1, vlen));
        return ssize_t{sys::kernelOps.recvmmsg(fd, msgs, n, flags, timeout)};
    }));
}

// Socket set-up and tear-down: a scripted errno or the kernel's answer.
template <class Kernel>
int plain(Call c, int fd, Kernel kernel) {
    return static_cast<int>(run(c, fd, 0, nullptr, 0, [&](std::size_t) { return ssize_t{kernel()}; }));
}
int hookSocket(int domain, int type, int protocol) {
    return plain(Call::socket, -1, [&] { return sys::kernelOps.socket(domain, type, protocol); });
}
int hookBind(int fd, const sockaddr* a, socklen_t n) {
    return plain(Call::bind, fd, [&] { return sys::kernelOps.bind(fd, a, n); });
}
int hookListen(int fd, int backlog) {
    return plain(Call::listen, fd, [&] { return sys::kernelOps.listen(fd, backlog); });
}
int hookShutdown(int fd, int how) {
    return plain(Call::shutdown, fd, [&] { return sys::kernelOps.shutdown(fd, how); });
}
int hookSetsockopt(int fd, int level, int name, const void* v, socklen_t n) {
    return plain(Call::setsockopt, fd, [&] { return sys::kernelOps.setsockopt(fd, level, name, v, n); });
}
int hookGetsockopt(int fd, int level, int name, void* v, socklen_t* n) {
    return plain(Call::getsockopt, fd, [&] { return sys::kernelOps.getsockopt(fd, level, name, v, n); });
}
int hookGetsockname(int fd, sockaddr* a, socklen_t* n) {
    return plain(Call::getsockname, fd, [&] { return sys::kernelOps.getsockname(fd, a, n); });
}
int hookGetpeername(int fd, sockaddr* a, socklen_t* n) {
    return plain(Call::getpeername, fd, [&] { return sys::kernelOps.getpeername(fd, a, n); });
}

// Files, descriptors and processes.
template <class Kernel>
int onPath(Call c, const char* path, Kernel kernel) {
    return static_cast<int>(run(
        c, -1, 0, nullptr, 0, [&](std::size_t) { return ssize_t{kernel()}; }, path));
}
int hookOpen(const char* path, int flags, mode_t mode) {
    return onPath(Call::open, path, [&] { return sys::kernelOps.open(path, flags, mode); });
}
int hookFcntl(int fd, int cmd, long arg) {
    return plain(Call::fcntl, fd, [&] { return sys::kernelOps.fcntl(fd, cmd, arg); });
}
int hookUnlink(const char* path) {
    return onPath(Call::unlink, path, [&] { return sys::kernelOps.unlink(path); });
}
int hookChmod(const char* path, mode_t mode) {
    return onPath(Call::chmod, path, [&] { return sys::kernelOps.chmod(path, mode); });
}
int hookSymlink(const char* target, const char* linkPath) {
    return onPath(Call::symlink, linkPath, [&] { return sys::kernelOps.symlink(target, linkPath); });
}
ssize_t hookReadlink(const char* path, char* buf, size_t n) {
    return run(
        Call::readlink, -1, n, nullptr, 0, [&](std::size_t) { return sys::kernelOps.readlink(path, buf, n); }, path);
}
int hookStat(const char* path, struct stat* st) {
    return onPath(Call::stat, path, [&] { return sys::kernelOps.stat(path, st); });
}
int hookLstat(const char* path, struct stat* st) {
    return onPath(Call::lstat, path, [&] { return sys::kernelOps.lstat(path, st); });
}
int hookKill(pid_t pid, int sig) {
    return plain(Call::kill, -1, [&] { return sys::kernelOps.kill(pid, sig); });
}
pid_t hookGetpid() {
    return static_cast<pid_t>(plain(Call::getpid, -1, [&] { return static_cast<int>(sys::kernelOps.getpid()); }));
}

// The reactor's waker and signal dispositions, and the pollers.
int hookEventfd(unsigned initval, int flags) {
    return plain(Call::eventfd, -1, [&] { return sys::kernelOps.eventfd(initval, flags); });
}
int hookSigaction(int sig, const struct sigaction* act, struct sigaction* old) {
    return plain(Call::sigaction, -1, [&] { return sys::kernelOps.sigaction(sig, act, old); });
}
int hookEpollCreate1(int flags) {
    return plain(Call::epoll_create1, -1, [&] { return sys::kernelOps.epoll_create1(flags); });
}
int hookEpollCtl(int ep, int op, int fd, epoll_event* ev) {  // filed under the target fd
    return plain(Call::epoll_ctl, fd, [&] { return sys::kernelOps.epoll_ctl(ep, op, fd, ev); });
}
int hookEpollWait(int ep, epoll_event* events, int max, int timeout) {
    return plain(Call::epoll_wait, ep, [&] { return sys::kernelOps.epoll_wait(ep, events, max, timeout); });
}
int hookPoll(pollfd* fds, nfds_t n, int timeout) {
    return plain(Call::poll, -1, [&] { return sys::kernelOps.poll(fds, n, timeout); });
}
int hookSelect(int n, fd_set* r, fd_set* w, fd_set* e, timeval* timeout) {
    return plain(Call::select, -1, [&] { return sys::kernelOps.select(n, r, w, e, timeout); });
}

// Child processes.
int hookPipe2(int* fds, int flags) {
    return plain(Call::pipe2, -1, [&] { return sys::kernelOps.pipe2(fds, flags); });
}
int hookAccess(const char* path, int mode) {
    return onPath(Call::access, path, [&] { return sys::kernelOps.access(path, mode); });
}
pid_t hookSpawn(sys::SpawnRequest* req) {
    return static_cast<pid_t>(plain(Call::spawn, -1, [&] { return static_cast<int>(sys::kernelOps.spawn(req)); }));
}
int hookPidfdOpen(pid_t pid, unsigned flags) {
    return plain(Call::pidfd_open, -1, [&] { return sys::kernelOps.pidfd_open(pid, flags); });
}
int hookPidfdSendSignal(int pidfd, int sig, siginfo_t* info, unsigned flags) {
    return plain(Call::pidfd_send_signal, pidfd,
                 [&] { return sys::kernelOps.pidfd_send_signal(pidfd, sig, info, flags); });
}
int hookWaitid(idtype_t type, id_t id, siginfo_t* info, int options) {
    return plain(Call::waitid, -1, [&] { return sys::kernelOps.waitid(type, id, info, options); });
}
int hookIoctl(int fd, unsigned long request, void* arg) {
    return static_cast<int>(run(
        Call::ioctl, fd, 0, nullptr, 0,
        [&](std::size_t) -> ssize_t {
            if (ScopedFaults* f = ScopedFaults::current())
                if (auto answer = f->answerIoctl(fd, request, arg)) return *answer;
            return sys::kernelOps.ioctl(fd, request, arg);
        },
        nullptr, request));
}
uid_t hookGeteuid() {
    return static_cast<uid_t>(plain(Call::geteuid, -1, [&] { return static_cast<int>(sys::kernelOps.geteuid()); }));
}
gid_t hookGetegid() {
    return static_cast<gid_t>(plain(Call::getegid, -1, [&] { return static_cast<int>(sys::kernelOps.getegid()); }));
}

int hookDup3(int from, int to, int flags) {
    return plain(Call::dup3, to, [&] { return sys::kernelOps.dup3(from, to, flags); });
}

int hookSocketpair(int domain, int type, int protocol, int* fds) {
    return plain(Call::socketpair, -1, [&] { return sys::kernelOps.socketpair(domain, type, protocol, fds); });
}

int hookInotifyInit1(int flags) {
    return plain(Call::inotify_init1, -1, [&] { return sys::kernelOps.inotify_init1(flags); });
}
int hookInotifyAddWatch(int fd, const char* path, uint32_t mask) {
    return plain(Call::inotify_add_watch, fd, [&] { return sys::kernelOps.inotify_add_watch(fd, path, mask); });
}
int hookInotifyRmWatch(int fd, int wd) {
    return plain(Call::inotify_rm_watch, fd, [&] { return sys::kernelOps.inotify_rm_watch(fd, wd); });
}
ssize_t hookGetdents64(int fd, void* buffer, size_t size) {
    return run(Call::getdents64, fd, 0, nullptr, 0,
               [&](std::size_t) { return sys::kernelOps.getdents64(fd, buffer, size); });
}

int hookFlock(int fd, int operation) {
    return plain(Call::flock, fd, [&] { return sys::kernelOps.flock(fd, operation); });
}

bool stormable(Call c) {
    switch (c) {
        case Call::read:
        case Call::readv:
        case Call::write:
        case Call::writev:
        case Call::recv:
        case Call::send:
        case Call::recvmsg:
        case Call::sendmsg: return true;
        default: return false;
    }
}

}  // namespace

ScopedFaults::ScopedFaults() {
    ScopedFaults* expected = nullptr;
    if (!gCurrent.compare_exchange_strong(expected, this))
        throw std::logic_error("ScopedFaults: another fault injector is already installed");
    saved_ = sys::ops;
    // Entries are appended without realigning the table.
    // clang-format off
    sys::ops = sys::Ops{hookRead,          hookWrite,
                        hookReadv,         hookWritev,
                        hookRecv,          hookSend,
                        hookRecvmsg,       hookSendmsg,
                        hookAccept4,       hookConnect,
                        hookClose,         hookRecvmmsg,
                        hookSocket,        hookBind,
                        hookListen,        hookShutdown,
                        hookSetsockopt,    hookGetsockopt,
                        hookGetsockname,   hookGetpeername,
                        hookOpen,          hookFcntl,
                        hookUnlink,        hookChmod,
                        hookSymlink,       hookReadlink,
                        hookStat,          hookLstat,
                        hookKill,          hookGetpid,
                        hookEventfd,       hookSigaction,
                        hookEpollCreate1,  hookEpollCtl,
                        hookEpollWait,     hookPoll,
                        hookSelect,        hookPipe2,
                        hookAccess,        hookSpawn,
                        hookPidfdOpen,     hookPidfdSendSignal,
                        hookWaitid,        hookIoctl,
                        hookGeteuid,       hookGetegid,
                        hookDup3,          hookSocketpair,
                        hookInotifyInit1,  hookInotifyAddWatch,
                        hookInotifyRmWatch, hookGetdents64,
                        hookFlock};
    // clang-format on
}

ScopedFaults::~ScopedFaults() {
    sys::ops = saved_;
    gCurrent.store(nullptr);
}

ScopedFaults* ScopedFaults::current() { return gCurrent.load(); }

ScopedFaults& ScopedFaults::script(Call c, std::initializer_list<Outcome> outcomes) {
    std::lock_guard lk(mu_);
    for (auto& o : outcomes) scripts_[idx(c)].push_back(o);
    return *this;
}
ScopedFaults& ScopedFaults::fail(Call c, int e, int times) {
    std::lock_guard lk(mu_);
    for (int i = 0; i < times; ++i) scripts_[idx(c)].push_back(Outcome::error(e));
    return *this;
}
ScopedFaults& ScopedFaults::shortCount(Call c, std::size_t n, int times) {
    std::lock_guard lk(mu_);
    for (int i = 0; i < times; ++i) scripts_[idx(c)].push_back(Outcome::shortCount(n));
    return *this;
}
ScopedFaults& ScopedFaults::pass(Call c, int times) {
    std::lock_guard lk(mu_);
    for (int i = 0; i < times; ++i) scripts_[idx(c)].push_back(Outcome::passThrough());
    return *this;
}
void ScopedFaults::clearScript(Call c) {
    std::lock_guard lk(mu_);
    scripts_[idx(c)].clear();
}
void ScopedFaults::clearScripts() {
    std::lock_guard lk(mu_);
    for (auto& s : scripts_) s.clear();
}
std::size_t ScopedFaults::pending(Call c) const {
    std::lock_guard lk(mu_);
    return scripts_[idx(c)].size();
}

void ScopedFaults::storm(std::uint64_t seed, StormOptions options) {
    std::lock_guard lk(mu_);
    rng_.seed(seed);
    storm_ = options;
}
void ScopedFaults::stopStorm() {
    std::lock_guard lk(mu_);
    storm_.reset();
}

ScopedFaults& ScopedFaults::onIoctl(IoctlHandler handler) {
    std::lock_guard lk(mu_);
    ioctlHandler_ = std::move(handler);
    return *this;
}

ScopedFaults& ScopedFaults::failIoctl(unsigned long request, int e) {
    return onIoctl([request, e](int, unsigned long r, void*) -> std::optional<int> {
        if (r != request) return std::nullopt;
        errno = e;
        return -1;
    });
}

std::optional<int> ScopedFaults::answerIoctl(int fd, unsigned long request, void* arg) {
    IoctlHandler handler;
    {
        std::lock_guard lk(mu_);
        if (!ioctlHandler_ || (!fds_.empty() && !fds_.count(fd))) return std::nullopt;
        handler = ioctlHandler_;
    }
    return handler(fd, request, arg);  // outside the lock: it may call the seam
}

ScopedFaults& ScopedFaults::onlyFd(int fd) {
    std::lock_guard lk(mu_);
    fds_.insert(fd);
    return *this;
}
void ScopedFaults::allFds() {
    std::lock_guard lk(mu_);
    fds_.clear();
}

std::size_t ScopedFaults::calls(Call c) const {
    std::lock_guard lk(mu_);
    return calls_[idx(c)];
}
std::size_t ScopedFaults::injected(Call c) const {
    std::lock_guard lk(mu_);
    return injected_[idx(c)];
}
std::vector<CallRecord> ScopedFaults::history() const {
    std::lock_guard lk(mu_);
    return history_;
}
std::vector<CallRecord> ScopedFaults::history(Call c) const {
    std::lock_guard lk(mu_);
    std::vector<CallRecord> out;
    for (auto& r : history_)
        if (r.call == c) out.push_back(r);
    return out;
}
void ScopedFaults::resetHistory() {
    std::lock_guard lk(mu_);
    history_.clear();
    for (auto& n : calls_) n = 0;
    for (auto& n : injected_) n = 0;
}

ScopedFaults::Decision ScopedFaults::decide(Call c, int fd, std::size_t asked) {
    std::lock_guard lk(mu_);
    if (!fds_.empty() && !fds_.count(fd)) return {Outcome::passThrough(), false};
    ++calls_[idx(c)];
    Outcome o;
    auto& s = scripts_[idx(c)];
    if (!s.empty()) {
        o = s.front();
        s.pop_front();
    } else if (storm_ && stormable(c)) {
        double x = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
        if (x < storm_->eintr) o = Outcome::error(EINTR);
        else if ((x -= storm_->eintr) < storm_->eagain) o = Outcome::error(EAGAIN);
        else if ((x -= storm_->eagain) < storm_->shortCount && asked > 1)
            o = Outcome::shortCount(std::uniform_int_distribution<std::size_t>(1, asked - 1)(rng_));
    }
    if (o.kind != Outcome::Kind::pass) ++injected_[idx(c)];
    return {o, true};
}

void ScopedFaults::record(CallRecord r) {
    std::lock_guard lk(mu_);
    history_.push_back(std::move(r));
}

}  // namespace weft::test
