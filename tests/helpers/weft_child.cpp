// weft_child: the helper program that tests/internet/test_process*.cpp spawn as a
// child process, the way Twisted's test suite runs its process_*.py scripts and
// libuv its run-helpers. It reports, exactly and in machine-checkable form, the
// state the child was started in (argv, environment, working directory, open
// descriptors and what they point to, ids, signal mask and dispositions, terminal
// and session) and acts out the behaviours the tests need (copying, writing large
// amounts, closing descriptors, exiting, dying of signals, leaving grandchildren).
//
// It is plain C++20 + POSIX/Linux and deliberately does not use weft: it is what
// weft's process support is checked against.
//
// Usage:  weft_child STEP [-- STEP]...
//
// Each STEP is a verb followed by its arguments; steps are separated by a lone "--"
// and run in order. Every step is checked before the first one runs. If no step ends
// the program, it exits 0 after the last one. See kVerbs below for the verbs.
//
// All output is written with write(2) directly (no stdio buffering); text lines end
// with "\n". Exit statuses other than the ones a step asks for:
//   64  unknown verb, wrong number of arguments or a malformed argument
//   70  "kill": the signal did not end the process within 10 s
//   71  "pause-until-signal": no signal ended the process within 60 s
//   74  a system call other than an output write failed (read, getcwd, fork, ...)
//   75  an output write failed (e.g. EPIPE when SIGPIPE is ignored; SIGPIPE is left
//       as inherited, so with the default disposition the signal kills us first)
// A message goes to stderr in each of these cases.

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int kExitUsage = 64;
constexpr int kExitNotKilled = 70;
constexpr int kExitPauseTimeout = 71;
constexpr int kExitSystemCall = 74;
constexpr int kExitWriteFailed = 75;

constexpr std::size_t kChunk = 64 * 1024;  // read and write size of the copying verbs
constexpr std::int64_t kNanosPerSecond = 1'000'000'000;

std::span<char* const> gArgv;  // the whole command line, for "argv"

// ---- diagnostics and exiting -------------------------------------------------

/// Writes to stderr as far as it goes; a diagnostic that cannot be written is lost.
void writeStderr(std::string_view text) {
    while (!text.empty()) {
        ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

[[noreturn]] void die(int status, std::string_view message) {
    writeStderr("weft_child: " + std::string(message) + "\n");
    ::_exit(status);
}

/// die() with ": <strerror(errno)>" appended.
[[noreturn]] void dieErrno(int status, std::string_view what) {
    std::string message(what);
    message += ": ";
    message += std::strerror(errno);
    die(status, message);
}

// ---- raw descriptor I/O ------------------------------------------------------

/// Waits until fd is ready for `events`, for descriptors someone made non-blocking.
void waitReady(int fd, short events) {
    pollfd p{fd, events, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {}
}

/// Writes all of data to fd, retrying after EINTR and short writes. Any failure
/// exits 75 (unless SIGPIPE kills the process first).
void writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n > 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            waitReady(fd, POLLOUT);
        } else {
            if (n == 0) errno = EIO;
            // A message about fd 2 would go to fd 2 itself.
            if (fd == STDERR_FILENO) ::_exit(kExitWriteFailed);
            dieErrno(kExitWriteFailed, "write to fd " + std::to_string(fd));
        }
    }
}

void writeLine(int fd, std::string line) {
    line += '\n';
    writeAll(fd, line);
}

/// One read(2) of at most buf.size() bytes, retrying after EINTR (and waiting on
/// non-blocking descriptors). Returns the byte count, 0 at EOF, -1 on error.
ssize_t readSome(int fd, std::span<char> buf) {
    for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        waitReady(fd, POLLIN);
    }
}

/// Like readSome(), but a read error ends the program (status 74).
std::size_t readOrDie(int fd, std::span<char> buf) {
    ssize_t n = readSome(fd, buf);
    if (n < 0) dieErrno(kExitSystemCall, "read from fd " + std::to_string(fd));
    return static_cast<std::size_t>(n);
}

bool isOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// ---- time ----------------------------------------------------------------------

/// Sleeps for `nanos` of CLOCK_MONOTONIC, resuming after signal handlers (EINTR).
/// Sleeping to an absolute deadline keeps repeated interruptions from stretching it.
void sleepFor(std::int64_t nanos) {
    timespec deadline{};
    ::clock_gettime(CLOCK_MONOTONIC, &deadline);
    std::int64_t total = deadline.tv_nsec + nanos % kNanosPerSecond;
    deadline.tv_sec += static_cast<time_t>(nanos / kNanosPerSecond + total / kNanosPerSecond);
    deadline.tv_nsec = static_cast<long>(total % kNanosPerSecond);
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {}
}

// ---- argument parsing ------------------------------------------------------------
// Each parser accepts exactly its syntax (no signs, spaces or trailing text) and
// returns nothing for anything else.

std::optional<std::uint64_t> parseUnsigned(std::string_view s, std::uint64_t max) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || value > max) return std::nullopt;
    return value;
}

/// A descriptor number: 0..INT_MAX.
std::optional<int> parseFd(std::string_view s) {
    auto v = parseUnsigned(s, INT32_MAX);
    if (!v) return std::nullopt;
    return static_cast<int>(*v);
}

/// A byte count: 0..2^63-1.
std::optional<std::uint64_t> parseCount(std::string_view s) { return parseUnsigned(s, INT64_MAX); }

/// An exit status: 0..255.
std::optional<int> parseStatus(std::string_view s) {
    auto v = parseUnsigned(s, 255);
    if (!v) return std::nullopt;
    return static_cast<int>(*v);
}

/// Seconds as DIGITS[.DIGITS] or .DIGITS (at most 10^9 s, nanosecond resolution);
/// returns nanoseconds.
std::optional<std::int64_t> parseSeconds(std::string_view s) {
    std::size_t dot = s.find('.');
    std::string_view whole = s.substr(0, dot);
    std::string_view fraction = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
    if (whole.empty() && fraction.empty()) return std::nullopt;
    std::optional<std::uint64_t> seconds =
        whole.empty() ? std::optional<std::uint64_t>(0) : parseUnsigned(whole, std::uint64_t{kNanosPerSecond});
    if (!seconds) return std::nullopt;
    std::int64_t nanos = 0, scale = kNanosPerSecond;
    for (char c : fraction) {
        if (c < '0' || c > '9') return std::nullopt;
        scale /= 10;  // digits past the ninth add nothing
        nanos += (c - '0') * scale;
    }
    return static_cast<std::int64_t>(*seconds) * kNanosPerSecond + nanos;
}

struct SignalName {
    std::string_view name;  // without "SIG"
    int number;
};

constexpr SignalName kSignalNames[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT},     {"IOT", SIGIOT},   {"BUS", SIGBUS},     {"FPE", SIGFPE},   {"KILL", SIGKILL},
    {"USR1", SIGUSR1},     {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},   {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
    {"TERM", SIGTERM},     {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},     {"POLL", SIGPOLL},
    {"SYS", SIGSYS},
#ifdef SIGSTKFLT
    {"STKFLT", SIGSTKFLT},
#endif
#ifdef SIGPWR
    {"PWR", SIGPWR},
#endif
};

constexpr int kMaxSignal = 64;  // SIGRTMAX on Linux

/// A signal: a name with or without "SIG" (TERM, SIGTERM) or a number 1..64.
std::optional<int> parseSignal(std::string_view s) {
    if (auto n = parseUnsigned(s, kMaxSignal); n && *n >= 1) return static_cast<int>(*n);
    if (s.starts_with("SIG")) s.remove_prefix(3);
    for (const SignalName& entry : kSignalNames) {
        if (entry.name == s) return entry.number;
    }
    return std::nullopt;
}

// ---- the verbs ---------------------------------------------------------------------
// A verb's arguments have been checked against its synopsis before any step runs,
// so the parsers below cannot fail here.

using Args = std::span<char* const>;

int fdArg(Args args, std::size_t i) { return *parseFd(args[i]); }

/// argv: every argv element from index 0 as "<length>:<bytes>\n".
void doArgv(Args) {
    std::string out;
    for (const char* arg : gArgv) {
        std::string_view a(arg);
        out += std::to_string(a.size());
        out += ':';
        out += a;
        out += '\n';
    }
    writeAll(STDOUT_FILENO, out);
}

/// env: every environ entry followed by a NUL byte.
void doEnv(Args) {
    std::string out;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        out += *entry;
        out += '\0';
    }
    writeAll(STDOUT_FILENO, out);
}

/// cwd: getcwd() + "\n".
void doCwd(Args) {
    std::string buf(256, '\0');
    while (::getcwd(buf.data(), buf.size()) == nullptr) {
        if (errno != ERANGE) dieErrno(kExitSystemCall, "getcwd");
        buf.resize(buf.size() * 2);
    }
    writeLine(STDOUT_FILENO, buf.c_str());
}

/// fds: the open descriptors, ascending, space-separated, to fd 1 if fd 1 is open.
void doFds(Args) {
    // Checked first: with fd 1 closed, opendir() would take descriptor 1 itself.
    bool stdoutOpen = isOpen(STDOUT_FILENO);
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) dieErrno(kExitSystemCall, "opendir /proc/self/fd");
    std::vector<int> fds;
    while (const dirent* entry = ::readdir(dir)) {
        auto fd = parseFd(entry->d_name);  // skips "." and ".."
        if (fd && *fd != ::dirfd(dir)) fds.push_back(*fd);
    }
    ::closedir(dir);
    if (!stdoutOpen) return;
    std::sort(fds.begin(), fds.end());
    std::string out;
    for (int fd : fds) {
        if (!out.empty()) out += ' ';
        out += std::to_string(fd);
    }
    writeLine(STDOUT_FILENO, out);
}

/// fdtarget FD: readlink(/proc/self/fd/FD) + "\n", or "closed\n".
void doFdTarget(Args args) {
    int fd = fdArg(args, 0);
    if (!isOpen(fd)) {
        writeLine(STDOUT_FILENO, "closed");
        return;
    }
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    std::string target(256, '\0');
    for (;;) {
        ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
        if (n < 0) dieErrno(kExitSystemCall, "readlink " + path);
        if (static_cast<std::size_t>(n) < target.size()) {
            target.resize(static_cast<std::size_t>(n));
            break;
        }
        target.resize(target.size() * 2);  // possibly truncated: try a larger buffer
    }
    writeLine(STDOUT_FILENO, target);
}

/// fdwrite FD TEXT (alias echo): TEXT + "\n" to FD.
void doFdWrite(Args args) { writeLine(fdArg(args, 0), args[1]); }

std::string hex64(std::uint64_t v) {
    std::string out(16, '0');
    for (std::size_t i = 16; i-- > 0; v >>= 4) out[i] = "0123456789abcdef"[v & 0xf];
    return out;
}

/// fdread FD: reads FD to EOF; "<FD>:<byte count>:<FNV-1a 64 in 16 hex digits>\n".
void doFdRead(Args args) {
    int fd = fdArg(args, 0);
    std::vector<char> buf(kChunk);
    std::uint64_t count = 0, hash = 0xcbf29ce484222325u;
    while (std::size_t n = readOrDie(fd, buf)) {
        for (std::size_t i = 0; i < n; ++i) {
            hash = (hash ^ static_cast<unsigned char>(buf[i])) * 0x100000001b3u;
        }
        count += n;
    }
    writeLine(STDOUT_FILENO, std::to_string(fd) + ":" + std::to_string(count) + ":" + hex64(hash));
}

/// ids: "uid=.. euid=.. gid=.. egid=.. groups=<sorted, comma-separated>\n".
void doIds(Args) {
    int n = ::getgroups(0, nullptr);
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(n, 0)));
    n = ::getgroups(static_cast<int>(groups.size()), groups.data());
    if (n < 0) dieErrno(kExitSystemCall, "getgroups");
    groups.resize(static_cast<std::size_t>(n));
    std::sort(groups.begin(), groups.end());
    std::string list;
    for (gid_t g : groups) {
        if (!list.empty()) list += ',';
        list += std::to_string(g);
    }
    writeLine(STDOUT_FILENO, "uid=" + std::to_string(::getuid()) + " euid=" + std::to_string(::geteuid()) +
                                 " gid=" + std::to_string(::getgid()) + " egid=" + std::to_string(::getegid()) +
                                 " groups=" + list);
}

void copy(int in, int out) {
    std::vector<char> buf(kChunk);
    while (std::size_t n = readOrDie(in, buf)) writeAll(out, {buf.data(), n});
}

/// cat: copies fd 0 to fd 1 until EOF.
void doCat(Args) { copy(STDIN_FILENO, STDOUT_FILENO); }

/// catfd IN OUT: copies IN to OUT until EOF.
void doCatFd(Args args) { copy(fdArg(args, 0), fdArg(args, 1)); }

/// The byte at absolute offset i of "write"'s output. Only bits 13..20 of the
/// product matter, so the pattern repeats every 2^21 bytes.
unsigned char patternByte(std::uint64_t i) { return static_cast<unsigned char>((i * 2654435761u) >> 13); }

constexpr std::size_t kPatternPeriod = std::size_t{1} << 21;
static_assert(kPatternPeriod % kChunk == 0, "a chunk never straddles the end of a period");

/// write FD COUNT: COUNT pattern bytes to FD, in chunks of 64 KiB.
void doWrite(Args args) {
    static const std::string period = [] {
        std::string p(kPatternPeriod, '\0');
        for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>(patternByte(i));
        return p;
    }();
    int fd = fdArg(args, 0);
    std::uint64_t count = *parseCount(args[1]);
    for (std::uint64_t offset = 0; offset < count;) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, count - offset));
        writeAll(fd, std::string_view(period).substr(offset % kPatternPeriod, n));
        offset += n;
    }
}

/// exit STATUS: _exit(STATUS).
void doExit(Args args) { ::_exit(*parseStatus(args[0])); }

/// kill SIGNAL: sends SIGNAL to ourselves; exits 70 if still alive 10 s later.
void doKill(Args args) {
    if (::kill(::getpid(), *parseSignal(args[0])) < 0) dieErrno(kExitSystemCall, "kill");
    sleepFor(10 * kNanosPerSecond);
    die(kExitNotKilled, "kill: still alive 10 s after the signal");
}

/// sleep SECONDS.
void doSleep(Args args) { sleepFor(*parseSeconds(args[0])); }

/// close FD (a descriptor that is already closed is not an error).
void doClose(Args args) { ::close(fdArg(args, 0)); }

/// waitclose FD: reads and discards FD until EOF or a read error.
void doWaitClose(Args args) {
    int fd = fdArg(args, 0);
    std::vector<char> buf(kChunk);
    while (readSome(fd, buf) > 0) {}
}

/// "name=<sig>,<sig>,..." for the signals 1..64 for which `has` holds.
template <typename Predicate>
std::string signalList(std::string_view name, Predicate has) {
    std::string out(name);
    out += '=';
    bool first = true;
    for (int sig = 1; sig <= kMaxSignal; ++sig) {
        if (!has(sig)) continue;
        if (!first) out += ',';
        out += std::to_string(sig);
        first = false;
    }
    out += '\n';
    return out;
}

/// sigstate: "blocked=...\n", "ignored=...\n", "caught=...\n" (signal numbers).
void doSigState(Args) {
    sigset_t mask;
    ::sigemptyset(&mask);
    if (::sigprocmask(SIG_BLOCK, nullptr, &mask) < 0) dieErrno(kExitSystemCall, "sigprocmask");
    // Signals whose disposition cannot be read (SIGKILL, SIGSTOP and those glibc
    // reserves for itself) count as neither ignored nor caught.
    auto disposition = [](int sig) -> std::optional<struct sigaction> {
        struct sigaction sa {};
        if (sig == SIGKILL || sig == SIGSTOP || ::sigaction(sig, nullptr, &sa) < 0) return std::nullopt;
        return sa;
    };
    auto ignored = [&](int sig) {
        auto sa = disposition(sig);
        return sa && !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_IGN;
    };
    auto caught = [&](int sig) {
        auto sa = disposition(sig);
        if (!sa) return false;
        if (sa->sa_flags & SA_SIGINFO) return sa->sa_sigaction != nullptr;
        return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
    };
    writeAll(STDOUT_FILENO, signalList("blocked", [&](int sig) { return ::sigismember(&mask, sig) == 1; }) +
                                signalList("ignored", ignored) + signalList("caught", caught));
}

/// tty: terminal and session state of fd 0 (see the format below).
void doTty(Args) {
    const char* name = ::ttyname(STDIN_FILENO);
    winsize ws{};
    if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0) ws = winsize{};
    pid_t pid = ::getpid(), pgrp = ::getpgrp();
    auto flag = [](bool b) { return b ? "1" : "0"; };
    writeLine(STDOUT_FILENO, std::string("tty=") + (name ? name : "none") +
                                 " isatty0=" + flag(::isatty(STDIN_FILENO) == 1) +
                                 " sid_is_pid=" + flag(::getsid(0) == pid) + " pgid_is_pid=" + flag(pgrp == pid) +
                                 " fg_is_pgid=" + flag(::tcgetpgrp(STDIN_FILENO) == pgrp) +
                                 " rows=" + std::to_string(ws.ws_row) + " cols=" + std::to_string(ws.ws_col));
}

/// pgid: "pid=.. pgid=.. sid=..\n".
void doPgid(Args) {
    writeLine(STDOUT_FILENO, "pid=" + std::to_string(::getpid()) + " pgid=" + std::to_string(::getpgrp()) +
                                 " sid=" + std::to_string(::getsid(0)));
}

/// Forks a grandchild that keeps every inherited descriptor, sleeps, optionally
/// writes a line to fd 1 and exits 0. Returns its pid to the parent, which does
/// not wait for it.
pid_t forkGrandchild(std::int64_t sleepNanos, std::optional<std::string> line) {
    pid_t pid = ::fork();
    if (pid < 0) dieErrno(kExitSystemCall, "fork");
    if (pid == 0) {
        sleepFor(sleepNanos);
        if (line) writeLine(STDOUT_FILENO, *line);
        ::_exit(0);
    }
    return pid;
}

/// spawn-grandchild SECONDS TEXT: the grandchild writes TEXT + "\n" after SECONDS.
void doSpawnGrandchild(Args args) { forkGrandchild(*parseSeconds(args[0]), args[1]); }

/// grandchild-pid: "grandchild=<pid>\n"; the grandchild holds the descriptors 30 s.
void doGrandchildPid(Args) {
    pid_t pid = forkGrandchild(30 * kNanosPerSecond, std::nullopt);
    writeLine(STDOUT_FILENO, "grandchild=" + std::to_string(pid));
}

/// stdin-echo-lines: "got:<line>\n" for each line of stdin as soon as it is complete;
/// a last line without "\n" is echoed (with "\n") at EOF.
void doStdinEchoLines(Args) {
    std::vector<char> buf(kChunk);
    std::string pending;
    while (std::size_t n = readOrDie(STDIN_FILENO, buf)) {
        pending.append(buf.data(), n);
        std::size_t start = 0;
        for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
            writeLine(STDOUT_FILENO, "got:" + pending.substr(start, nl - start));
        }
        pending.erase(0, start);
    }
    if (!pending.empty()) writeLine(STDOUT_FILENO, "got:" + pending);
}

/// raw-mode: puts the terminal on fd 0 into raw mode; "raw\n".
void doRawMode(Args) {
    termios t{};
    if (::tcgetattr(STDIN_FILENO, &t) < 0) dieErrno(kExitSystemCall, "tcgetattr fd 0");
    ::cfmakeraw(&t);
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0) dieErrno(kExitSystemCall, "tcsetattr fd 0");
    writeLine(STDOUT_FILENO, "raw");
}

/// ignore SIGNAL: sets SIGNAL's disposition to SIG_IGN.
void doIgnore(Args args) {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    ::sigemptyset(&sa.sa_mask);
    if (::sigaction(*parseSignal(args[0]), &sa, nullptr) < 0) {
        dieErrno(kExitUsage, std::string("ignore ") + args[0]);  // SIGKILL, SIGSTOP, glibc's own
    }
}

/// pause-until-signal: waits for a signal to end the process; exits 71 after 60 s.
void doPauseUntilSignal(Args) {
    sleepFor(60 * kNanosPerSecond);
    die(kExitPauseTimeout, "pause-until-signal: no signal within 60 s");
}

// ---- dispatch ------------------------------------------------------------------------

struct Verb {
    std::string_view name;
    // Argument names, space-separated. A name says how the argument is checked:
    // FD, IN, OUT: descriptor number; COUNT: byte count; STATUS: 0..255;
    // SECONDS: DIGITS[.DIGITS]; SIGNAL: name or number; TEXT: anything.
    std::string_view synopsis;
    void (*run)(Args);
};

constexpr Verb kVerbs[] = {
    {"argv", "", doArgv},
    {"env", "", doEnv},
    {"cwd", "", doCwd},
    {"fds", "", doFds},
    {"fdtarget", "FD", doFdTarget},
    {"fdwrite", "FD TEXT", doFdWrite},
    {"echo", "FD TEXT", doFdWrite},
    {"fdread", "FD", doFdRead},
    {"ids", "", doIds},
    {"cat", "", doCat},
    {"catfd", "IN OUT", doCatFd},
    {"write", "FD COUNT", doWrite},
    {"exit", "STATUS", doExit},
    {"kill", "SIGNAL", doKill},
    {"sleep", "SECONDS", doSleep},
    {"close", "FD", doClose},
    {"waitclose", "FD", doWaitClose},
    {"sigstate", "", doSigState},
    {"tty", "", doTty},
    {"pgid", "", doPgid},
    {"spawn-grandchild", "SECONDS TEXT", doSpawnGrandchild},
    {"grandchild-pid", "", doGrandchildPid},
    {"stdin-echo-lines", "", doStdinEchoLines},
    {"raw-mode", "", doRawMode},
    {"ignore", "SIGNAL", doIgnore},
    {"pause-until-signal", "", doPauseUntilSignal},
};

std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    while (!s.empty()) {
        std::size_t space = s.find(' ');
        out.push_back(s.substr(0, space));
        s.remove_prefix(space == std::string_view::npos ? s.size() : space + 1);
    }
    return out;
}

bool validArgument(std::string_view param, std::string_view value) {
    if (param == "FD" || param == "IN" || param == "OUT") return parseFd(value).has_value();
    if (param == "COUNT") return parseCount(value).has_value();
    if (param == "STATUS") return parseStatus(value).has_value();
    if (param == "SECONDS") return parseSeconds(value).has_value();
    if (param == "SIGNAL") return parseSignal(value).has_value();
    return param == "TEXT";
}

struct Step {
    const Verb* verb;
    Args args;
};

/// Checks one step (a verb and its arguments) and returns it; exits 64 if it is bad.
Step checkStep(Args step) {
    if (step.empty()) die(kExitUsage, "empty step (two \"--\" in a row, or one at either end)");
    std::string_view name = step[0];
    auto verb = std::find_if(std::begin(kVerbs), std::end(kVerbs), [&](const Verb& v) { return v.name == name; });
    if (verb == std::end(kVerbs)) {
        std::string known;
        for (const Verb& v : kVerbs) known += " " + std::string(v.name);
        die(kExitUsage, "unknown verb \"" + std::string(name) + "\"; known verbs:" + known);
    }
    Args args = step.subspan(1);
    std::vector<std::string_view> params = words(verb->synopsis);
    std::string usage = std::string(verb->name) + (params.empty() ? "" : " ") + std::string(verb->synopsis);
    if (args.size() != params.size()) {
        die(kExitUsage, "usage: " + usage + " (got " + std::to_string(args.size()) + " arguments)");
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (!validArgument(params[i], args[i])) {
            die(kExitUsage, "usage: " + usage + " (bad " + std::string(params[i]) + " \"" + args[i] + "\")");
        }
    }
    return Step{&*verb, args};
}

/// Splits the arguments at each lone "--" and checks every step.
std::vector<Step> parseSteps(Args words) {
    std::vector<Step> steps;
    if (words.empty()) return steps;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= words.size(); ++i) {
        if (i == words.size() || std::string_view(words[i]) == "--") {
            steps.push_back(checkStep(words.subspan(start, i - start)));
            start = i + 1;
        }
    }
    return steps;
}

}  // namespace

int main(int argc, char** argv) {
    gArgv = Args(argv, static_cast<std::size_t>(argc));
    for (const Step& step : parseSteps(gArgv.subspan(argc > 0 ? 1 : 0))) step.verb->run(step.args);
    return 0;
}
