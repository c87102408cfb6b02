// Child processes: spawnProcess, the pipe ends, the PTY master and reaping
// through pidfds (weft/internet/process.hpp; spec: process.md).
#include <weft/internet/process.hpp>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>
#include <weft/log.hpp>
#include <weft/text.hpp>

#include "internet/detail/readchunk.hpp"
#include "internet/detail/sysutil.hpp"
#include "sys/spawn.hpp"
#include "sys/syscalls.hpp"

extern char** environ;

namespace weft {

// ---- ProcessProtocol ----------------------------------------------------------------

void ProcessProtocol::makeProcessConnection(std::shared_ptr<IProcessTransport> process) {
    processTransport = process;
    ITransport* side = &process->asTransport();
    makeConnection(std::shared_ptr<ITransport>(std::move(process), side));
}

void ProcessProtocol::childDataReceived(int childFD, Bytes data) {
    if (childFD == 1) outReceived(data);
    else if (childFD == 2) errReceived(data);
}
void ProcessProtocol::outReceived(Bytes) {}
void ProcessProtocol::errReceived(Bytes) {}
void ProcessProtocol::childConnectionLost(int childFD) {
    if (childFD == 0) inConnectionLost();
    else if (childFD == 1) outConnectionLost();
    else if (childFD == 2) errConnectionLost();
}
void ProcessProtocol::inConnectionLost() {}
void ProcessProtocol::outConnectionLost() {}
void ProcessProtocol::errConnectionLost() {}
void ProcessProtocol::processExited(const Failure&) {}
void ProcessProtocol::processEnded(const Failure&) {}

// ---- ChildFD, reasons, signal names ---------------------------------------------------

ChildFD::ChildFD(const char* mode) {
    std::string_view m = mode ? mode : "";
    if (m == "r") kind_ = Kind::parentReads;
    else if (m == "w") kind_ = Kind::parentWrites;
    else throw std::invalid_argument("childFDs: a value is \"r\", \"w\" or a parent descriptor, not " + quote(m));
}

ChildFD::ChildFD(int parentFd) : kind_(Kind::inherit), parentFd_(parentFd) {
    if (parentFd < 0) throw std::invalid_argument(fmt::format("childFDs: {} is not a descriptor", parentFd));
}

Failure processExitReason(int waitStatus) {
    if (WIFEXITED(waitStatus)) {
        int code = WEXITSTATUS(waitStatus);
        if (code == 0) return Failure(error::ProcessDone(waitStatus));
        return Failure(error::ProcessTerminated(code, std::nullopt, waitStatus));
    }
    if (WIFSIGNALED(waitStatus))
        return Failure(error::ProcessTerminated(std::nullopt, WTERMSIG(waitStatus), waitStatus));
    return Failure(error::ProcessTerminated(std::nullopt, std::nullopt, waitStatus));
}

namespace {
struct SignalName {
    std::string_view name;
    int number;
};
constexpr SignalName kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},     {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},   {"FPE", SIGFPE},     {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},     {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},   {"ALRM", SIGALRM},
    {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"POLL", SIGPOLL}, {"PWR", SIGPWR},       {"SYS", SIGSYS},
};
}  // namespace

int signalNumber(std::string_view name) {
    std::string upper(name);
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::string_view n = upper;
    if (!n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        int value = 0;
        auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), value);
        if (ec == std::errc() && end == n.data() + n.size() && value > 0 && value < NSIG) return value;
    }
    if (n.starts_with("SIG")) n.remove_prefix(3);
    for (const auto& s : kSignals)
        if (s.name == n) return s.number;
    throw std::invalid_argument("unknown signal name " + quote(name));
}

void IProcessTransport::signalProcess(std::string_view name) { signalProcess(signalNumber(name)); }

std::optional<WindowSize> parseWindowSize(std::string_view text) {
    auto x = text.find_first_of("xX");
    if (x == std::string_view::npos) return std::nullopt;
    auto number = [](std::string_view digits) -> std::optional<std::uint16_t> {
        if (digits.empty() || digits.size() > 5) return std::nullopt;
        unsigned long n = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return std::nullopt;
            n = n * 10 + static_cast<unsigned long>(c - '0');
        }
        if (n < 1 || n > 65535) return std::nullopt;
        return static_cast<std::uint16_t>(n);
    };
    auto rows = number(text.substr(0, x)), cols = number(text.substr(x + 1));
    if (!rows || !cols) return std::nullopt;
    return WindowSize{*rows, *cols};
}

namespace process {

namespace {

using weft::detail::Fd;

[[noreturn]] void throwErrno(int e, const std::string& what) {
    throw std::system_error(e, std::generic_category(), what);
}

// A close-on-exec copy of `fd`, ours to close.
Fd duplicate(int fd, const std::string& what) {
    int copy = sys::ops.fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throwErrno(errno, what);
    return Fd(copy);
}

// PROC-5: a name without "/" is looked up on the PATH of the environment the
// child will get, else on the system's default path. A relative entry of it
// ("." or an empty one among them) names a directory below the child's working
// directory, `cwd` when one is given (the child changes to it before exec, as
// Twisted's execvpe after chdir does): it is checked there and returned as is.
std::string resolveExecutable(const std::string& executable, const std::optional<Environment>& env,
                              const std::optional<std::string>& cwd) {
    if (executable.empty()) throwErrno(ENOENT, "spawnProcess: the executable name is empty");
    // The kernel would read the name only up to the NUL: another program than the one named.
    if (executable.find('\0') != std::string::npos)
        throw std::invalid_argument("spawnProcess: the executable name contains a NUL byte: " + quote(executable));
    if (cwd && cwd->find('\0') != std::string::npos)
        throw std::invalid_argument("spawnProcess: the working directory (path) contains a NUL byte: " + quote(*cwd));
    if (executable.find('/') != std::string::npos) return executable;
    std::string path;
    bool found = false;
    if (env) {
        if (auto it = env->find("PATH"); it != env->end()) {
            path = it->second;
            found = true;
        }
    } else if (const char* p = ::getenv("PATH")) {
        path = p;
        found = true;
    }
    if (!found) {
        char buf[256];
        std::size_t n = ::confstr(_CS_PATH, buf, sizeof buf);
        path = n > 0 && n <= sizeof buf ? std::string(buf, n - 1) : "/bin:/usr/bin";
    }
    int firstError = ENOENT;
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t end = path.find(':', start);
        if (end == std::string::npos) end = path.size();
        std::string dir = path.substr(start, end - start);
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + executable;
        // Where the child will find it: a relative candidate lies below `cwd`.
        std::string checked = cwd && !cwd->empty() && candidate.front() != '/' ? *cwd + "/" + candidate : candidate;
        struct stat st {};
        if (sys::ops.stat(checked.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
            if (sys::ops.access(checked.c_str(), X_OK) == 0) return candidate;
            firstError = EACCES;
        }
        start = end + 1;
    }
    throwErrno(firstError, "spawnProcess: " + quote(executable) +
                               (firstError == ENOENT ? " was not found on PATH " + quote(path) : " is not executable"));
}

// argv and envp as the child needs them: strings owned here, pointer arrays ending with null.
struct CStrings {
    std::vector<std::string> owned;
    std::vector<char*> pointers;
    void finish() {
        pointers.clear();
        for (auto& s : owned) pointers.push_back(s.data());
        pointers.push_back(nullptr);
    }
};

CStrings environmentOf(const std::optional<Environment>& env) {
    CStrings out;
    if (env) {
        for (const auto& [name, value] : *env) {
            if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos)
                throw std::invalid_argument("spawnProcess: bad environment variable name " + quote(name));
            if (value.find('\0') != std::string::npos)
                throw std::invalid_argument("spawnProcess: the value of environment variable " + quote(name) +
                                            " contains a NUL byte");
            out.owned.push_back(name + "=" + value);
        }
    } else {
        for (char** e = environ; e && *e; ++e) out.owned.emplace_back(*e);  // PROC-3: a copy taken now
    }
    out.finish();
    return out;
}

CStrings argvOf(const std::vector<std::string>& args) {
    CStrings out;
    for (const auto& a : args) {
        if (a.find('\0') != std::string::npos)
            throw std::invalid_argument("spawnProcess: an argument contains a NUL byte: " + quote(a));
        out.owned.push_back(a);
    }
    out.finish();
    return out;
}

// PROC-8: the ids and the target user's groups, resolved in the parent.
struct Ids {
    bool set = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
};

Ids idsFor(const ProcessOptions& options) {
    Ids ids;
    if (!options.uid && !options.gid) return ids;
    ids.set = true;
    ids.uid = options.uid ? *options.uid : sys::ops.geteuid();
    ids.gid = options.gid ? *options.gid : sys::ops.getegid();
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(ids.uid, &pw, buf.data(), buf.size(), &found) == 0 && found) {
        int n = 32;
        ids.groups.resize(static_cast<std::size_t>(n));
        while (::getgrouplist(pw.pw_name, ids.gid, ids.groups.data(), &n) < 0)
            ids.groups.resize(static_cast<std::size_t>(n));
        ids.groups.resize(static_cast<std::size_t>(n));
    } else {
        ids.groups = {ids.gid};  // no passwd entry: only the primary group
    }
    return ids;
}

// Everything about the program both kinds of child need, resolved in the
// parent before the child exists: the path, argv, the environment, the ids.
struct Program {
    Program(const std::string& executable, const std::vector<std::string>& args, const ProcessOptions& options)
        : file(resolveExecutable(executable, options.env, options.path)), argv(argvOf(args)),
          envp(environmentOf(options.env)), ids(idsFor(options)) {}
    /// Points the request at this program (and options.path); descriptors are the caller's.
    void describe(sys::SpawnRequest& req, const ProcessOptions& options) const {
        req.file = file.c_str();
        req.argv = argv.pointers.data();
        req.envp = envp.pointers.data();
        req.cwd = options.path ? options.path->c_str() : nullptr;
        req.setIds = ids.set;
        req.uid = ids.uid;
        req.gid = ids.gid;
        req.groups = ids.groups.data();
        req.groupCount = ids.groups.size();
    }

    std::string file;
    CStrings argv, envp;
    Ids ids;
};

// Runs the child; throws std::system_error with the child's errno.
pid_t runSpawn(sys::SpawnRequest& req, const std::string& executable) {
    pid_t pid = sys::ops.spawn(&req);
    if (pid < 0) {
        int e = errno;
        throwErrno(e, fmt::format("spawnProcess {}: {} failed", quote(executable), sys::stepName(req.failedStep)));
    }
    return pid;
}

// A pidfd for the child, or -1 where the kernel has none (or descriptors ran
// out): the child is then polled (BaseProcess::pollLater).
int openPidfd(pid_t pid) {
    int fd = sys::ops.pidfd_open(pid, 0);  // close-on-exec, as every pidfd is
    return fd < 0 ? -1 : fd;
}

int waitStatusOf(const siginfo_t& info) {
    switch (info.si_code) {
        case CLD_EXITED: return (info.si_status & 0xff) << 8;
        case CLD_KILLED: return info.si_status & 0x7f;
        case CLD_DUMPED: return (info.si_status & 0x7f) | 0x80;
        default: return 0;
    }
}

void logCallbackFailure(const char* what) {
    log::failure("Process", fmt::format("Unhandled error in {}", what), Failure::current());
}

}  // namespace

// ThreadSanitizer follows descriptors through the calls that create them;
// pidfd_open is not one it knows, so closing a pidfd would look like a write
// racing with whatever another thread did to an earlier descriptor of the
// same number (several reactors on several threads). The close is hidden
// from it; nothing else touches the pidfd outside its reactor's thread.
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif
#ifdef WEFT_TSAN
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace {
void closePidfd(int fd) {
#ifdef WEFT_TSAN
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
    sys::ops.close(fd);
#ifdef WEFT_TSAN
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#endif
}
}  // namespace

// ---- the pidfd watcher --------------------------------------------------------------------

// The reactor serves it as an internal reader (not listed by getReaders,
// not removed by removeAll): a pidfd polls readable once its child exits.
class BaseProcess::Watcher final : public IReadDescriptor {
public:
    Watcher(std::shared_ptr<BaseProcess> process, int pidfd) : process_(std::move(process)), pidfd_(pidfd) {}
    ~Watcher() override {
        if (pidfd_ >= 0) closePidfd(pidfd_);
    }
    int fileno() const override { return pidfd_; }
    std::string logPrefix() const override { return "ProcessWatcher"; }
    Reason doRead() override {
        if (auto p = process_) p->reapNow();
        return std::nullopt;
    }
    /// The reactor gave up watching the pidfd (select cannot watch an fd at or
    /// above FD_SETSIZE, R-41): the child is polled instead, through the same
    /// pidfd, so it is still reaped and processEnded still comes.
    void connectionLost(const Failure&) override {
        if (auto p = process_; p && p->phase_ == Phase::running) p->pollLater(0.01);
    }
    std::shared_ptr<BaseProcess> release() noexcept { return std::move(process_); }

private:
    std::shared_ptr<BaseProcess> process_;  // until the child is reaped
    int pidfd_;
};

// ---- BaseProcess --------------------------------------------------------------------------

BaseProcess::BaseProcess(Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol)
    : reactor_(reactor), protocol_(std::move(protocol)) {}

BaseProcess::~BaseProcess() {
    if (bound()) reactor_.unbind(*this);  // not once the reactor is gone
    if (detachedPidfd_ >= 0) closePidfd(detachedPidfd_);
}

std::optional<pid_t> BaseProcess::pid() const noexcept {
    if (phase_ != Phase::running || pid_ <= 0) return std::nullopt;
    return pid_;
}

void BaseProcess::watchChild(std::shared_ptr<BaseProcess> self, pid_t pid, int pidfd, bool ownGroup) {
    pid_ = pid;
    group_ = ownGroup ? pid : 0;
    self_ = self;
    reactor_.bind(*this);
    if (pidfd >= 0) {
        watcher_ = std::make_shared<Watcher>(std::move(self), pidfd);
        reactor_.addInternalReader(watcher_);
    } else {
        pollLater(0.01);
    }
}

void BaseProcess::pollLater(double delay) {
    pollCall_ = reactor_.callLater(delay, [weak = self_, delay] {
        auto self = weak.lock();
        if (!self || self->phase_ != Phase::running) return;
        self->reapNow();
        if (self->phase_ == Phase::running) self->pollLater(std::min(delay * 2, 0.2));
    });
    // The timer's closure holds the process only weakly; this keeps it alive
    // while the child runs, as the watcher does for a pidfd.
    if (!pollHold_) pollHold_ = self_.lock();
}

void BaseProcess::connectProtocol(std::shared_ptr<IProcessTransport> self) {
    try {
        protocol_->makeProcessConnection(std::move(self));
    } catch (...) {
        logCallbackFailure("connectionMade");  // CB-8: logged, nothing else stops
    }
}

void BaseProcess::reapNow() {
    if (phase_ != Phase::running) return;
    auto keep = self_.lock();  // the watcher may let go of us below
    siginfo_t info{};
    int rc;
    do {
        rc = watcher_ ? sys::ops.waitid(P_PIDFD, static_cast<id_t>(watcher_->fileno()), &info, WEXITED | WNOHANG)
                      : sys::ops.waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        if (errno == ECHILD) {
            // REAP-5, Better than Twisted: the kernel reaped it (SIGCHLD set to
            // SIG_IGN) and its status is gone; end it rather than wait forever.
            reaped(std::nullopt);
            return;
        }
        log::failure("Process", "waitid failed", Failure(std::system_error(errno, std::generic_category(), "waitid")));
        return;
    }
    if (info.si_pid == 0) return;  // still running
    reaped(waitStatusOf(info));
}

void BaseProcess::reaped(std::optional<int> waitStatus) {
    phase_ = Phase::exited;
    status_ = waitStatus.value_or(-1);
    reason_ =
        waitStatus ? processExitReason(*waitStatus) : Failure(error::ProcessTerminated(std::nullopt, std::nullopt, -1));
    auto keep = self_.lock();
    stopWatching();
    if (auto p = protocol_) {
        try {
            p->processExited(*reason_);
        } catch (...) {
            logCallbackFailure("processExited");
        }
    }
    maybeCallProcessEnded();
}

void BaseProcess::stopWatching() {
    if (bound()) reactor_.unbind(*this);
    if (watcher_) {
        reactor_.removeInternalReader(watcher_.get());
        auto released = watcher_->release();
        watcher_.reset();
    }
    if (pollCall_.active()) pollCall_.cancel();
    pollHold_.reset();
}

void BaseProcess::reactorGone() noexcept {
    auto keep = self_.lock();
    try {
        reapNow();
        if (phase_ != Phase::running) return;
        int forThread = -1;
        if (watcher_) {
            forThread = sys::ops.fcntl(watcher_->fileno(), F_DUPFD_CLOEXEC, 0);
            detachedPidfd_ = sys::ops.fcntl(watcher_->fileno(), F_DUPFD_CLOEXEC, 0);
        }
        stopWatching();
        phase_ = Phase::detached;
        if (!sys::reapOnOwnThread(pid_, forThread))
            log::warn("Process", "cannot start a thread to reap child {}: it will stay a zombie once it ends", pid_);
    } catch (...) {
        log::failure("Process", "releasing a child at the reactor's end", Failure::current());
    }
    auto p = std::move(protocol_);
}

void BaseProcess::maybeCallProcessEnded() {
    if (phase_ == Phase::ended || phase_ == Phase::detached || !streamsClosed()) return;
    if (phase_ == Phase::running) {
        reapNow();  // REAP-2: the last stream closed; the child has probably exited
        return;     // reaped() comes back here once it has
    }
    phase_ = Phase::ended;
    auto keep = self_.lock();
    auto p = std::move(protocol_);  // CB-5, CB-9: the reaper let go already
    if (!p) return;
    try {
        p->processEnded(*reason_);
    } catch (...) {
        logCallbackFailure("processEnded");
    }
}

void BaseProcess::signalProcess(int sig) {
    if (phase_ == Phase::detached) {
        // Its reactor is gone and a thread reaps it: only its pidfd names it safely.
        if (detachedPidfd_ < 0)
            throw std::logic_error(fmt::format(
                "signalProcess({}): child {} is no longer tracked (its reactor was destroyed) and there is no pidfd "
                "to signal it by",
                sig, pid_));
        if (sys::ops.pidfd_send_signal(detachedPidfd_, sig, nullptr, 0) != 0) {
            if (errno == ESRCH) throw error::ProcessExitedAlready();
            throwErrno(errno, fmt::format("signalProcess({})", sig));
        }
        return;
    }
    if (phase_ != Phase::running) throw error::ProcessExitedAlready();
    int rc = watcher_ ? sys::ops.pidfd_send_signal(watcher_->fileno(), sig, nullptr, 0) : sys::ops.kill(pid_, sig);
    if (rc != 0) {
        if (errno == ESRCH) throw error::ProcessExitedAlready();
        throwErrno(errno, fmt::format("signalProcess({})", sig));
    }
}

void BaseProcess::signalProcessGroup(int sig) {
    if (group_ <= 0)
        throw std::logic_error(
            "signalProcessGroup: the child shares its parent's process group "
            "(spawn it with newProcessGroup or usePTY)");
    if (sys::ops.kill(-group_, sig) != 0) {
        if (errno == ESRCH) throw error::ProcessExitedAlready();
        throwErrno(errno, fmt::format("signalProcessGroup({})", sig));
    }
}

// ---- pipe ends ----------------------------------------------------------------------------

namespace detail {

PipeEnd::PipeEnd(Reactor& reactor, std::shared_ptr<Process> process, int childFD, int fd)
    : FileDescriptor(reactor), process_(std::move(process)), fd_(fd), childFD_(childFD) {
    setConnected();
}

PipeEnd::~PipeEnd() {
    if (fd_ >= 0) sys::ops.close(fd_);
}

std::string PipeEnd::logPrefix() const { return fmt::format("ProcessPipe({})", childFD_); }

void PipeEnd::connectionLost(const Failure& reason) {
    if (disconnected()) return;
    FileDescriptor::connectionLost(reason);
    if (fd_ >= 0) sys::ops.close(fd_);
    fd_ = -1;
    if (auto p = std::move(process_)) p->childConnectionLost(childFD_);
}

}  // namespace detail

ProcessReader::ProcessReader(Reactor& reactor, std::shared_ptr<Process> process, int childFD, int fd)
    : PipeEnd(reactor, std::move(process), childFD, fd) {
    discardOutput();  // nothing is written here: loseConnection closes at once (PROC-14)
}

namespace {
// A child that writes a lot fills the buffer at every read: several reads per
// readiness event spare the waits in between (libuv reads up to 32 times).
// Bounded, so one busy child cannot starve the loop's other descriptors.
constexpr int kReadsPerEvent = 16;
}  // namespace

Reason ProcessReader::doRead() {
    // Stop as soon as a read comes back short or the protocol paused or closed
    // us. An exception from the protocol is logged by the reactor and closes
    // this pipe (CB-8).
    const std::size_t want = bufferSize ? bufferSize : 1;
    for (int i = 0; i < kReadsPerEvent; ++i) {
        std::size_t got = 0;
        Reason r = weft::detail::readChunk(
            fd_, want, weft::detail::EioMeans::error,
            [this](Bytes data) {
                // The process outlives this call even if the protocol ends it meanwhile.
                if (auto p = process_) p->childDataReceived(childFD_, data);
            },
            &got);
        if (r || got < want || state() != State::connected || !reactor().isReading(this)) return r;
    }
    return std::nullopt;
}

ProcessWriter::ProcessWriter(Reactor& reactor, std::shared_ptr<Process> process, int childFD, int fd)
    : PipeEnd(reactor, std::move(process), childFD, fd) {}

// A pipe's write end polls readable (or in error) only once the reader is gone.
Reason ProcessWriter::doRead() { return error::connectionDone(); }

WriteResult ProcessWriter::writeSomeData(std::span<const iovec> data) { return writeToFD(fd_, data); }

// ---- Process ------------------------------------------------------------------------------

Process::Process(Token, Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol)
    : BaseProcess(reactor, std::move(protocol)) {}

Process::~Process() = default;

std::shared_ptr<Process> Process::spawn(Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol,
                                        const std::string& executable, const std::vector<std::string>& args,
                                        const ProcessOptions& options) {
    const ChildFDs fds = options.childFDs ? *options.childFDs : ChildFDs{{0, "w"}, {1, "r"}, {2, "r"}};
    bool hasPipes = false;
    for (const auto& [childFd, what] : fds) {
        if (childFd < 0) throw std::invalid_argument(fmt::format("childFDs: {} is not a descriptor number", childFd));
        hasPipes = hasPipes || what.kind() != ChildFD::Kind::inherit;
    }
    if (!protocol) {
        // FDMAP-6: without pipes nobody needs to hear; the child is still reaped.
        if (hasPipes)
            throw std::invalid_argument("spawnProcess: a null protocol needs childFDs without \"r\" or \"w\"");
        protocol = std::make_shared<ProcessProtocol>();
    }
    const Program program(executable, args, options);

    const int maxTarget = fds.empty() ? -1 : fds.rbegin()->first;
    struct Planned {
        int childFd;
        ChildFD::Kind kind;
        Fd parentEnd;  // pipes only
    };
    std::vector<Planned> planned;
    std::vector<Fd> sources;  // the child's pipe ends; closed once it runs
    std::vector<int> from, to;
    for (const auto& [childFd, what] : fds) {
        Planned p{childFd, what.kind(), Fd()};
        int source;
        Fd childEnd;
        if (what.kind() == ChildFD::Kind::inherit) {
            source = what.parentFd();  // FDMAP-2: the caller's; never closed here (PROC-7)
        } else {
            int ends[2];
            bool parentReads = what.kind() == ChildFD::Kind::parentReads;
            if (parentReads && options.socketOutputs) {
                // ends[0] the parent's (non-blocking), ends[1] the child's; the
                // parent never writes to it, so a child reading there sees EOF.
                if (sys::ops.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0)
                    throwErrno(errno, "spawnProcess: socketpair");
                p.parentEnd = Fd(ends[0]);
                childEnd = Fd(ends[1]);
                sys::ops.shutdown(ends[0], SHUT_WR);
            } else {
                if (sys::ops.pipe2(ends, O_CLOEXEC) != 0) throwErrno(errno, "spawnProcess: pipe");
                p.parentEnd = Fd(parentReads ? ends[0] : ends[1]);
                childEnd = Fd(parentReads ? ends[1] : ends[0]);
            }
            // A fresh end has no other status flag: set O_NONBLOCK without reading them first.
            if (sys::ops.fcntl(p.parentEnd.get(), F_SETFL, O_NONBLOCK) != 0)
                throwErrno(errno, "spawnProcess: O_NONBLOCK");
            source = childEnd.get();
        }
        if (what.kind() == ChildFD::Kind::inherit && sys::ops.fcntl(source, F_GETFD, 0) < 0)
            throwErrno(errno, fmt::format("spawnProcess: parent descriptor {} for child fd {}", source, childFd));
        if (childEnd.get() >= 0) sources.push_back(std::move(childEnd));
        from.push_back(source);
        to.push_back(childFd);
        planned.push_back(std::move(p));
    }

    sys::SpawnRequest req;
    program.describe(req, options);
    req.from = from.data();
    req.to = to.data();
    std::vector<int> scratch(from.size());
    req.scratch = scratch.data();
    req.count = static_cast<int>(from.size());
    req.maxTarget = maxTarget;
    req.newGroup = options.newProcessGroup;

    auto proc = std::make_shared<Process>(Token{}, reactor, std::move(protocol));
    pid_t pid = runSpawn(req, executable);
    sources.clear();  // FDMAP-5: the child's ends close in the parent now
    int pidfd = openPidfd(pid);

    for (auto& p : planned) {
        if (p.kind == ChildFD::Kind::inherit) continue;
        int fd = p.parentEnd.release();
        std::shared_ptr<detail::PipeEnd> end;
        if (p.kind == ChildFD::Kind::parentReads) end = std::make_shared<ProcessReader>(reactor, proc, p.childFd, fd);
        else end = std::make_shared<ProcessWriter>(reactor, proc, p.childFd, fd);
        proc->pipes_.emplace(p.childFd, end);
    }
    proc->watchChild(proc, pid, pidfd, options.newProcessGroup);
    // Readers read, and writers watch for the child closing its end (PROC-17).
    for (auto& [childFd, end] : proc->pipes_) end->startReading();
    proc->connectProtocol(proc);
    return proc;
}

void Process::childDataReceived(int childFD, Bytes data) {
    if (auto p = protocol()) p->childDataReceived(childFD, data);
}

void Process::childConnectionLost(int childFD) {
    auto keep = shared_from_this();
    pipes_.erase(childFD);
    if (auto p = protocol()) {
        try {
            p->childConnectionLost(childFD);
        } catch (...) {
            logCallbackFailure("childConnectionLost");
        }
    }
    maybeCallProcessEnded();
}

void Process::closeChildFD(int fd) {
    auto it = pipes_.find(fd);
    if (it == pipes_.end()) return;  // PROC-15
    auto end = it->second;
    end->loseConnection();
}

detail::PipeEnd* Process::writerAt(int fd) const noexcept {
    auto it = pipes_.find(fd);
    return it != pipes_.end() && it->second->parentWrites() ? it->second.get() : nullptr;
}

void Process::writeToChild(int fd, Bytes data) {
    auto* writer = writerAt(fd);
    if (!writer) throw std::out_of_range(fmt::format("writeToChild: child fd {} is not a pipe the parent writes", fd));
    writer->write(data);
}

void Process::write(Bytes data) {
    if (auto* writer = writerAt(0)) writer->write(data);  // no stdin pipe: dropped (PROC-11)
}

void Process::writeSequence(std::span<const Bytes> chunks) {
    if (auto* writer = writerAt(0)) writer->writeSequence(chunks);
}

void Process::loseConnection() {
    closeStdin();
    closeStderr();
    closeStdout();
}

void Process::loseConnectionDespiteProducer() {
    if (auto* writer = writerAt(0)) writer->loseConnectionDespiteProducer();
    closeStderr();
    closeStdout();
}

void Process::registerProducer(std::shared_ptr<IProducer> producer, bool streaming) {
    auto* writer = writerAt(0);
    if (!writer) {
        if (producer) producer->stopProducing();  // PROC-19: nothing to feed
        return;
    }
    writer->registerProducer(std::move(producer), streaming);
}

void Process::unregisterProducer() {
    if (auto* writer = writerAt(0)) writer->unregisterProducer();
}

void Process::pauseProducing() {
    for (auto& [fd, end] : pipes_)
        if (!end->parentWrites()) end->pauseProducing();
}

void Process::resumeProducing() {
    auto copy = pipes_;  // resuming may deliver, and a delivery may close a pipe
    for (auto& [fd, end] : copy)
        if (!end->parentWrites()) end->resumeProducing();
}

// ---- PTYProcess ---------------------------------------------------------------------------

PTYProcess::PTYProcess(Token, Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol)
    : FileDescriptor(reactor), BaseProcess(reactor, std::move(protocol)) {}

PTYProcess::~PTYProcess() {
    if (master_ >= 0) sys::ops.close(master_);
}

std::shared_ptr<PTYProcess> PTYProcess::spawn(Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol,
                                              const std::string& executable, const std::vector<std::string>& args,
                                              const ProcessOptions& options) {
    if (options.childFDs) throw std::invalid_argument("spawnProcess: usePTY with childFDs is not supported (PTY-3)");
    if (!protocol) protocol = std::make_shared<ProcessProtocol>();
    const Program program(executable, args, options);

    Fd master, slave;
    std::string ttyName;
    if (options.pty) {
        // PTY-2: the caller's terminal; we work on copies and never close theirs.
        master = Fd(weft::detail::duplicateNonBlocking(options.pty->master, "spawnProcess: the PTY master"));
        slave = duplicate(options.pty->slave, "spawnProcess: the PTY slave");
        ttyName = options.pty->ttyName;
    } else {
        master = Fd(sys::ops.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK, 0));
        if (master.get() < 0) throwErrno(errno, "spawnProcess: open /dev/ptmx");
        int unlock = 0;
        if (sys::ops.ioctl(master.get(), TIOCSPTLCK, &unlock) != 0) throwErrno(errno, "spawnProcess: unlockpt");
        unsigned number = 0;
        if (sys::ops.ioctl(master.get(), TIOCGPTN, &number) != 0) throwErrno(errno, "spawnProcess: ptsname");
        ttyName = fmt::format("/dev/pts/{}", number);
        // TIOCGPTPEER opens the slave through the master (no path lookup, no
        // race with another mount of devpts); the path is the fallback.
        auto flags = static_cast<std::uintptr_t>(O_RDWR | O_NOCTTY | O_CLOEXEC);
        int s = sys::ops.ioctl(master.get(), TIOCGPTPEER, reinterpret_cast<void*>(flags));
        if (s < 0) s = sys::ops.open(ttyName.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
        if (s < 0) throwErrno(errno, "spawnProcess: open " + ttyName);
        slave = Fd(s);
    }
    winsize ws{};
    ws.ws_row = options.window.rows;
    ws.ws_col = options.window.cols;
    if (sys::ops.ioctl(master.get(), TIOCSWINSZ, &ws) != 0) throwErrno(errno, "spawnProcess: TIOCSWINSZ");

    const int from[3] = {slave.get(), slave.get(), slave.get()};
    const int to[3] = {0, 1, 2};
    int scratch[3] = {};
    sys::SpawnRequest req;
    program.describe(req, options);
    req.from = from;
    req.to = to;
    req.scratch = scratch;
    req.count = 3;
    req.maxTarget = 2;
    req.newSession = true;  // PTY-1: a session of its own, the terminal as its controlling one
    req.ctty = 0;

    auto proc = std::make_shared<PTYProcess>(Token{}, reactor, std::move(protocol));
    pid_t pid = runSpawn(req, executable);
    slave.reset();
    proc->master_ = master.release();
    proc->ttyName_ = std::move(ttyName);
    proc->setConnected();
    proc->watchChild(std::static_pointer_cast<BaseProcess>(proc), pid, openPidfd(pid), true);
    proc->startReading();
    proc->connectProtocol(std::static_pointer_cast<IProcessTransport>(proc));
    return proc;
}

std::string PTYProcess::logPrefix() const { return "PTYProcess"; }

void PTYProcess::closeChildFD(int fd) {
    throw std::logic_error(
        fmt::format("closeChildFD({}): a PTY process has one terminal, not per-fd pipes (PTY-5)", fd));
}

void PTYProcess::writeToChild(int fd, Bytes) {
    throw std::logic_error(fmt::format("writeToChild({}): a PTY process has one terminal; use write() (PTY-5)", fd));
}

WindowSize PTYProcess::windowSize() const {
    winsize ws{};
    if (master_ < 0 || sys::ops.ioctl(master_, TIOCGWINSZ, &ws) != 0)
        throwErrno(master_ < 0 ? EBADF : errno, "PTYProcess::windowSize");
    return {ws.ws_row, ws.ws_col};
}

void PTYProcess::setWindowSize(WindowSize size) {
    winsize ws{};
    ws.ws_row = size.rows;
    ws.ws_col = size.cols;
    if (master_ < 0 || sys::ops.ioctl(master_, TIOCSWINSZ, &ws) != 0)
        throwErrno(master_ < 0 ? EBADF : errno, "PTYProcess::setWindowSize");
}

Reason PTYProcess::doRead() {
    // PTY-7: EIO once the last slave closed is the end of the stream.
    return weft::detail::readChunk(master_, bufferSize, weft::detail::EioMeans::end, [this](Bytes data) {
        if (auto p = protocol()) p->childDataReceived(1, data);  // PTY-4
    });
}

WriteResult PTYProcess::writeSomeData(std::span<const iovec> data) { return writeToFD(master_, data); }

void PTYProcess::connectionLost(const Failure& reason) {
    if (disconnected()) return;
    auto keep = shared_from_this();
    FileDescriptor::connectionLost(reason);
    if (master_ >= 0) sys::ops.close(master_);
    master_ = -1;
    maybeCallProcessEnded();  // PTY-5: no childConnectionLost; PTY-7: both events counted
}

}  // namespace process

// ---- Reactor ------------------------------------------------------------------------------

std::shared_ptr<IProcessTransport> Reactor::spawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                         const std::string& executable,
                                                         const std::vector<std::string>& args,
                                                         const ProcessOptions& options) {
    if (options.usePTY) return process::PTYProcess::spawn(*this, std::move(protocol), executable, args, options);
    if (options.pty) throw std::invalid_argument("spawnProcess: a PTY was given without usePTY");
    return process::Process::spawn(*this, std::move(protocol), executable, args, options);
}

std::shared_ptr<IProcessTransport> Reactor::doSpawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                           const std::string& executable,
                                                           const std::vector<std::string>& args,
                                                           const ProcessOptions& options) {
    return spawnProcess(std::move(protocol), executable, args, options);
}

}  // namespace weft
