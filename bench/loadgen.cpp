// loadgen: a single-threaded epoll load generator for TCP, UNIX-stream and UDP echo servers
// (issue #4's whole-system benchmarks, driven by bench/compare.sh). Plain sockets, no weft
// dependency.
//
//   loadgen SCENARIO --port P [options]      TCP to --host (default 127.0.0.1):P
//   loadgen SCENARIO --unix PATH [options]   the stream scenarios over a UNIX stream socket
//   loadgen udp --port P [options]           UDP to --host:P
//
//   pingpong --conns N --size S            each connection sends S bytes, waits for the whole
//                                          echo, repeats
//   pipeline --conns N --depth D --size S  D messages of S bytes in flight per connection
//   stream   --conns N --inflight B        each connection streams continuously with at most B
//                                          unacknowledged bytes (written in --size chunks)
//   connrate [--concurrency K]             connect, send 1 byte, read the echo, close; K
//                                          attempts in flight
//   idle     --conns N --hold H            open N connections, verify each with one round trip,
//                                          hold them for H seconds, verify each again
//   udp --conns N --size S [--window K]    N clients, each a connected UDP socket with K
//                                          datagrams of S bytes in flight (K = 1: pingpong);
//                                          a datagram not echoed within --dgram-timeout counts
//                                          as lost and its slot is reused
//
// Every echoed byte is compared with a deterministic per-connection pattern. A mismatch, an
// unexpected close, a socket error or a stall makes the run fail (exit status 1). UDP: every
// datagram carries its client id and sequence number in its first 8 bytes and the pattern
// after them; an echo must come back whole, to its own client, intact, and only once (a lost
// datagram is counted, not an error; one echoed after its timeout counts as late). The result
// is one line of key=value pairs on stdout. With --server-pid the server's CPU time
// (utime+stime from /proc/PID/stat) is sampled at the edges of the measured window and its
// VmRSS (from /proc/PID/status) before and after the connections are opened.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

Clock::duration secs(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

double secondsBetween(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// ---- options -------------------------------------------------------------------------------

struct Options {
    std::string scenario;
    std::string host = "127.0.0.1";
    int port = 0;
    std::string unixPath;     // --unix: a UNIX stream socket instead of host:port
    std::uint32_t conns = 0;  // 0: the scenario's default
    std::size_t size = 0;     // 0: the scenario's default
    std::uint32_t depth = 16;
    std::size_t inflight = 256 * 1024;
    double seconds = 5.0;
    double warmup = 1.0;
    double hold = 5.0;
    std::uint32_t concurrency = 32;        // connrate: attempts in flight
    std::uint32_t setupConcurrency = 128;  // connections being opened at once
    double timeout = 30.0;                 // setup deadline and stall limit, seconds
    long serverPid = 0;
    bool busyPoll = false;      // epoll_wait without sleeping (keeps loadgen's core awake)
    std::uint32_t window = 1;   // udp: datagrams in flight per client
    double dgramTimeout = 0.2;  // udp: seconds before an unanswered datagram is lost
};

constexpr std::size_t kUdpHeader = 8;   // udp: client id and sequence number, little-endian
constexpr std::size_t kUdpMax = 65507;  // the largest UDP payload over IPv4

[[noreturn]] void usage(int status) {
    std::fputs(
        "usage: loadgen SCENARIO (--port P | --unix PATH) [options]\n"
        "  scenarios: pingpong | pipeline | stream | connrate | idle  (TCP, or UNIX with --unix)\n"
        "             udp                                             (UDP, --port only)\n"
        "  --host A              server address (default 127.0.0.1)\n"
        "  --unix PATH           connect to the UNIX stream socket PATH instead of host:port\n"
        "  --conns N             connections or UDP clients (default 64; idle 1000)\n"
        "  --size S              message size (default 64; stream: write chunk, default 65536;\n"
        "                        udp: datagram size, 8 to 65507)\n"
        "  --window K            udp: datagrams in flight per client (default 1: pingpong)\n"
        "  --dgram-timeout T     udp: seconds after which an unanswered datagram is lost (0.2)\n"
        "  --depth D             pipeline: messages in flight per connection (default 16)\n"
        "  --inflight B          stream: unacknowledged bytes per connection (default 262144)\n"
        "  --seconds T           measured window (default 5)\n"
        "  --warmup W            warm-up before the window (default 1)\n"
        "  --hold H              idle: how long the connections are held (default 5)\n"
        "  --concurrency K       connrate: attempts in flight (default 32)\n"
        "  --setup-concurrency K connections opened at once (default 128)\n"
        "  --timeout T           setup deadline and stall limit in seconds (default 30)\n"
        "  --server-pid PID      sample the server's CPU time and RSS from /proc\n"
        "  --busy-poll           never sleep in epoll_wait (loadgen's core stays at 100 %)\n",
        status == 0 ? stdout : stderr);
    std::exit(status);
}

bool parseNumber(std::string_view text, double& out) {
    std::string s(text);
    char* end = nullptr;
    errno = 0;
    out = std::strtod(s.c_str(), &end);
    return !s.empty() && end == s.c_str() + s.size() && errno == 0 && out >= 0;
}

template <typename T>
bool parseInteger(std::string_view text, T& out) {
    std::string s(text);
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || s[0] == '-' || end != s.c_str() + s.size() || errno != 0) return false;
    out = static_cast<T>(v);
    return static_cast<unsigned long long>(out) == v;
}

Options parseOptions(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-h" || a == "--help") usage(0);
        if (a == "--busy-poll") {
            o.busyPoll = true;
            continue;
        }
        if (a.substr(0, 2) != "--") {
            if (!o.scenario.empty()) usage(2);
            o.scenario = a;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "loadgen: %s needs a value\n", argv[i]);
            usage(2);
        }
        std::string_view v = argv[++i];
        bool ok = true;
        if (a == "--host") o.host = v;
        else if (a == "--port") ok = parseInteger(v, o.port) && o.port > 0 && o.port < 65536;
        else if (a == "--unix") {
            o.unixPath = v;
            ok = !v.empty() && v.size() < sizeof(sockaddr_un::sun_path);
        } else if (a == "--window") ok = parseInteger(v, o.window) && o.window > 0 && o.window <= 4096;
        else if (a == "--dgram-timeout") ok = parseNumber(v, o.dgramTimeout) && o.dgramTimeout > 0;
        else if (a == "--conns") ok = parseInteger(v, o.conns) && o.conns > 0;
        else if (a == "--size") ok = parseInteger(v, o.size) && o.size > 0;
        else if (a == "--depth") ok = parseInteger(v, o.depth) && o.depth > 0;
        else if (a == "--inflight") ok = parseInteger(v, o.inflight) && o.inflight > 0;
        else if (a == "--seconds") ok = parseNumber(v, o.seconds) && o.seconds > 0;
        else if (a == "--warmup") ok = parseNumber(v, o.warmup);
        else if (a == "--hold") ok = parseNumber(v, o.hold);
        else if (a == "--concurrency") ok = parseInteger(v, o.concurrency) && o.concurrency > 0;
        else if (a == "--setup-concurrency") ok = parseInteger(v, o.setupConcurrency) && o.setupConcurrency > 0;
        else if (a == "--timeout") ok = parseNumber(v, o.timeout) && o.timeout > 0;
        else if (a == "--server-pid") ok = parseInteger(v, o.serverPid) && o.serverPid > 0;
        else {
            std::fprintf(stderr, "loadgen: unknown option %s\n", argv[i - 1]);
            usage(2);
        }
        if (!ok) {
            std::fprintf(stderr, "loadgen: bad value for %s: %s\n", argv[i - 1], argv[i]);
            usage(2);
        }
    }
    if (o.scenario.empty() || (o.port == 0) == o.unixPath.empty()) {
        std::fprintf(stderr, "loadgen: give a scenario and exactly one of --port and --unix\n");
        usage(2);
    }
    const bool stream = o.scenario == "stream";
    const bool udp = o.scenario == "udp";
    if (o.scenario != "pingpong" && o.scenario != "pipeline" && !stream && o.scenario != "connrate" &&
        o.scenario != "idle" && !udp) {
        std::fprintf(stderr, "loadgen: unknown scenario %s\n", o.scenario.c_str());
        usage(2);
    }
    if (udp && !o.unixPath.empty()) {
        std::fprintf(stderr, "loadgen: udp needs --port (UNIX datagram sockets are not supported)\n");
        usage(2);
    }
    if (udp && o.size != 0 && (o.size < kUdpHeader || o.size > kUdpMax)) {
        std::fprintf(stderr, "loadgen: udp --size must be %zu to %zu bytes\n", kUdpHeader, kUdpMax);
        usage(2);
    }
    if (o.conns == 0) o.conns = o.scenario == "idle" ? 1000 : 64;
    if (udp && o.conns > (1u << 20)) {
        std::fprintf(stderr, "loadgen: udp --conns is at most %u\n", 1u << 20);
        usage(2);
    }
    if (o.size == 0) o.size = stream ? 65536 : 64;
    if (stream) o.size = std::min(o.size, o.inflight);
    return o;
}

// ---- the byte pattern ----------------------------------------------------------------------

// Connection c's stream is the table read cyclically from start(c), with a prime period so
// that a lost, repeated or reordered chunk of any usual size shows up as a mismatch.
constexpr std::size_t kPeriod = 65521;
constexpr std::size_t kMaxIo = 256 * 1024;  // largest single send(); also the table's tail
constexpr std::size_t kReadBuf = 64 * 1024;

class Pattern {
public:
    Pattern() : bytes_(kPeriod + kMaxIo) {
        std::uint64_t x = 0x9E3779B97F4A7C15ull;
        for (std::size_t i = 0; i < kPeriod; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes_[i] = static_cast<unsigned char>(x >> 24);
        }
        for (std::size_t i = kPeriod; i < bytes_.size(); ++i) bytes_[i] = bytes_[i % kPeriod];
    }
    static std::uint64_t start(std::uint64_t id) { return (id * 7919u + 17u) % kPeriod; }
    // Up to kMaxIo contiguous bytes of the stream that begins at `start`, from `offset` on.
    const unsigned char* at(std::uint64_t start, std::uint64_t offset) const {
        return bytes_.data() + (start + offset) % kPeriod;
    }

private:
    std::vector<unsigned char> bytes_;
};

// ---- /proc and resource usage --------------------------------------------------------------

std::optional<std::uint64_t> serverCpuUs(long pid) {
    if (pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return std::nullopt;
    auto paren = line.rfind(')');  // comm may hold spaces and parentheses
    if (paren == std::string::npos) return std::nullopt;
    std::istringstream fields(line.substr(paren + 2));
    std::string field;
    std::uint64_t utime = 0, stime = 0;
    // After comm: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime(14) stime(15).
    for (int n = 3; n <= 15 && fields >> field; ++n) {
        if (n == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
        if (n == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    const long hz = ::sysconf(_SC_CLK_TCK);
    return (utime + stime) * 1000000ull / static_cast<std::uint64_t>(hz > 0 ? hz : 100);
}

std::optional<std::uint64_t> serverRssKb(long pid) {
    if (pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
    }
    return std::nullopt;
}

std::uint64_t selfCpuUs() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto us = [](const timeval& tv) {
        return static_cast<std::uint64_t>(tv.tv_sec) * 1000000u + static_cast<std::uint64_t>(tv.tv_usec);
    };
    return us(ru.ru_utime) + us(ru.ru_stime);
}

void raiseFileLimit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// ---- the result line -----------------------------------------------------------------------

class Line {
public:
    Line& add(const char* key, std::string_view value) {
        text_ += text_.empty() ? "" : " ";
        text_ += key;
        text_ += '=';
        text_ += value;
        return *this;
    }
    Line& add(const char* key, std::uint64_t value) { return add(key, std::string_view(std::to_string(value))); }
    Line& add(const char* key, double value, int decimals) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
        return add(key, std::string_view(buf));
    }
    Line& add(const char* key, const std::optional<std::uint64_t>& value) {
        return value ? add(key, *value) : add(key, std::string_view("na"));
    }
    void print() const { std::printf("%s\n", text_.c_str()); }

private:
    std::string text_;
};

// ---- the driver ----------------------------------------------------------------------------

struct Conn {
    int fd = -1;
    std::uint64_t start = 0;  // pattern offset of this connection's stream
    std::uint64_t sent = 0;
    std::uint64_t recvd = 0;
    std::uint64_t limit = 0;  // idle: bytes this connection may send so far
    bool connected = false;
    bool established = false;  // the server has echoed the first bytes
    bool outArmed = true;      // EPOLLOUT registered (it is while connecting)
};

struct Sample {
    Clock::time_point at;
    std::uint64_t bytes = 0;
    std::uint64_t msgs = 0;
    std::optional<std::uint64_t> serverCpu;
    std::uint64_t clientCpu = 0;
};

class Loadgen {
public:
    explicit Loadgen(Options o) : o_(std::move(o)), readBuf_(kReadBuf), events_(1024) {
        if (!o_.unixPath.empty()) {
            sockaddr_un sun{};
            sun.sun_family = AF_UNIX;
            std::memcpy(sun.sun_path, o_.unixPath.data(), o_.unixPath.size());  // checked: fits
            std::memcpy(&addr_, &sun, sizeof sun);
            addrLen_ = sizeof sun;
            family_ = AF_UNIX;
            transport_ = "unix";
        } else {
            sockaddr_in in{};
            in.sin_family = AF_INET;
            in.sin_port = htons(static_cast<std::uint16_t>(o_.port));
            if (::inet_pton(AF_INET, o_.host.c_str(), &in.sin_addr) != 1) {
                std::fprintf(stderr, "loadgen: bad IPv4 address %s\n", o_.host.c_str());
                std::exit(2);
            }
            std::memcpy(&addr_, &in, sizeof in);
            addrLen_ = sizeof in;
            transport_ = o_.scenario == "udp" ? "udp" : "tcp";
        }
        ep_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) {
            std::perror("loadgen: epoll_create1");
            std::exit(2);
        }
        stream_ = o_.scenario == "stream";
        idle_ = o_.scenario == "idle";
        unit_ = idle_ ? kIdleProbe : o_.size;
        if (stream_) window_ = o_.inflight;
        else if (o_.scenario == "pipeline") window_ = static_cast<std::uint64_t>(o_.depth) * unit_;
        else window_ = unit_;  // pingpong: one message in flight
    }

    int run() {
        if (o_.scenario == "connrate") runConnrate();
        else if (o_.scenario == "udp") runUdp();
        else if (idle_) runIdle();
        else runFlow();
        return errors_ == 0 ? 0 : 1;
    }

private:
    static constexpr std::uint64_t kIdleProbe = 8;  // bytes of each idle verification round trip

    // -- reporting errors: print the first few, count all, stop the run
    void fail(const std::string& what) {
        if (errors_ < 10) std::fprintf(stderr, "loadgen: %s\n", what.c_str());
        ++errors_;
    }
    void failConn(std::size_t i, const std::string& what, int err = 0) {
        std::string msg = "connection " + std::to_string(i) + ": " + what;
        if (err != 0) msg += std::string(": ") + std::strerror(err);
        fail(msg);
        Conn& c = conns_[i];
        if (c.fd >= 0) ::close(c.fd);
        c.fd = -1;
    }

    void setEvents(int fd, std::uint64_t data, std::uint32_t events, int op = EPOLL_CTL_MOD) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = data;
        if (::epoll_ctl(ep_, op, fd, &ev) != 0) {
            fail(std::string("epoll_ctl: ") + std::strerror(errno));
        }
    }

    // A non-blocking stream socket with a connect() in progress (TCP) or done (UNIX), or -1
    // with `err` set. A UNIX connect() whose listener's backlog is full fails with EAGAIN.
    int openSocket(int& err) {
        int fd = ::socket(family_, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            return -1;
        }
        int one = 1;
        if (family_ == AF_INET) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr_), addrLen_) == 0 || errno == EINPROGRESS) {
            return fd;
        }
        err = errno;
        ::close(fd);
        return -1;
    }

    // Waits for events until `deadline` (or the first error) and dispatches them.
    template <typename Handler>
    bool pollUntil(Clock::time_point deadline, Handler&& handle) {
        for (;;) {
            auto now = Clock::now();
            if (errors_ > 0) return false;
            if (now >= deadline) return true;
            auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
            int n = ::epoll_wait(ep_, events_.data(), static_cast<int>(events_.size()),
                                 o_.busyPoll ? 0 : static_cast<int>(std::min<long long>(ms, 100)));
            if (n < 0) {
                if (errno == EINTR) continue;
                fail(std::string("epoll_wait: ") + std::strerror(errno));
                return false;
            }
            for (int k = 0; k < n; ++k) handle(events_[static_cast<std::size_t>(k)]);
        }
    }

    // ---------------------------------------------------------------- pingpong/pipeline/stream/idle

    // How many bytes connection c may have sent, given what has come back.
    std::uint64_t allowed(const Conn& c) const {
        if (idle_) return c.limit;
        if (stream_) return c.sent + (c.recvd + window_ - c.sent) / unit_ * unit_;
        return c.recvd / unit_ * unit_ + window_;
    }

    void pumpWrite(std::size_t i) {
        Conn& c = conns_[i];
        const std::uint64_t target = allowed(c);
        while (c.sent < target) {
            std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(target - c.sent, kMaxIo));
            ssize_t w = ::send(c.fd, pattern_.at(c.start, c.sent), n, MSG_NOSIGNAL);
            if (w > 0) {
                c.sent += static_cast<std::uint64_t>(w);
                continue;
            }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (!c.outArmed) {
                    c.outArmed = true;
                    setEvents(c.fd, i, EPOLLIN | EPOLLOUT);
                }
                return;
            }
            failConn(i, "send", errno);
            return;
        }
        if (c.outArmed) {
            c.outArmed = false;
            setEvents(c.fd, i, EPOLLIN);
        }
    }

    void onReadable(std::size_t i) {
        Conn& c = conns_[i];
        ssize_t n = ::recv(c.fd, readBuf_.data(), readBuf_.size(), 0);
        if (n == 0) return failConn(i, "unexpected close by the server");
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            return failConn(i, "recv", errno);
        }
        const auto got = static_cast<std::uint64_t>(n);
        if (c.recvd + got > c.sent) {
            return failConn(i,
                            "server echoed " + std::to_string(c.recvd + got - c.sent) + " more bytes than were sent");
        }
        const unsigned char* want = pattern_.at(c.start, c.recvd);
        if (std::memcmp(readBuf_.data(), want, got) != 0) {
            std::size_t k = 0;
            while (readBuf_[k] == want[k]) ++k;
            return failConn(i, "echo mismatch at stream offset " + std::to_string(c.recvd + k));
        }
        totalMsgs_ += (c.recvd + got) / unit_ - c.recvd / unit_;
        c.recvd += got;
        totalBytes_ += got;
        if (!c.established && c.recvd >= (idle_ ? kIdleProbe : 1)) {
            c.established = true;
            ++established_;
        }
        pumpWrite(i);
    }

    void onConnEvent(const epoll_event& ev) {
        const auto i = static_cast<std::size_t>(ev.data.u64);
        Conn& c = conns_[i];
        if (c.fd < 0) return;
        if (!c.connected) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) return failConn(i, "connect", err);
            if ((ev.events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
            c.connected = true;
            pumpWrite(i);
            return;
        }
        if (ev.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            onReadable(i);
            if (c.fd < 0) return;
        }
        if (ev.events & EPOLLOUT) pumpWrite(i);
    }

    // Opens all connections, at most --setup-concurrency of them not yet echoed at a time
    // (which also bounds the server's accept queue).
    bool openAll() {
        conns_.resize(o_.conns);
        const auto deadline = Clock::now() + secs(o_.timeout);
        std::uint32_t opened = 0;
        while (established_ < o_.conns) {
            while (opened < o_.conns && opened - established_ < o_.setupConcurrency) {
                Conn& c = conns_[opened];
                c.start = Pattern::start(opened);
                c.limit = kIdleProbe;
                int err = 0;
                c.fd = openSocket(err);
                if (c.fd < 0) {
                    failConn(opened,
                             family_ == AF_UNIX && err == EAGAIN
                                 ? "connect (the UNIX listener's backlog is full; lower --setup-concurrency)"
                                 : "connect",
                             err);
                    return false;
                }
                setEvents(c.fd, opened, EPOLLOUT, EPOLL_CTL_ADD);
                ++opened;
            }
            auto step = std::min(deadline, Clock::now() + std::chrono::milliseconds(20));
            if (!pollUntil(step, [this](const epoll_event& ev) { onConnEvent(ev); })) return false;
            if (Clock::now() >= deadline) {
                fail("setup timed out: " + std::to_string(established_) + " of " + std::to_string(o_.conns) +
                     " connections answered within " + std::to_string(o_.timeout) + " s");
                return false;
            }
        }
        return true;
    }

    Sample sample() const {
        return Sample{Clock::now(), totalBytes_, totalMsgs_, serverCpuUs(o_.serverPid), selfCpuUs()};
    }

    // Runs the traffic until `until`, failing if no byte comes back for --timeout seconds.
    bool runTraffic(Clock::time_point until) {
        auto lastProgress = Clock::now();
        std::uint64_t lastBytes = totalBytes_;
        while (Clock::now() < until) {
            auto step = std::min(until, Clock::now() + std::chrono::milliseconds(200));
            if (!pollUntil(step, [this](const epoll_event& ev) { onConnEvent(ev); })) return false;
            if (totalBytes_ != lastBytes) {
                lastBytes = totalBytes_;
                lastProgress = Clock::now();
            } else if (secondsBetween(lastProgress, Clock::now()) > o_.timeout) {
                fail("stalled: no echo for " + std::to_string(o_.timeout) + " s");
                return false;
            }
        }
        return true;
    }

    void runFlow() {
        Sample a{}, b{};
        a.at = b.at = Clock::now();
        if (openAll() && runTraffic(Clock::now() + secs(o_.warmup))) {
            a = sample();
            runTraffic(a.at + secs(o_.seconds));
            b = sample();
        }
        if (errors_ == 0 && b.msgs == a.msgs) fail("no message completed in the measured window");
        const double secs = secondsBetween(a.at, b.at);
        const std::uint64_t msgs = b.msgs - a.msgs, bytes = b.bytes - a.bytes;
        const double mb = static_cast<double>(bytes) / 1e6;
        Line line;
        line.add("scenario", std::string_view(o_.scenario)).add("transport", std::string_view(transport_));
        line.add("conns", std::uint64_t{o_.conns}).add("size", std::uint64_t{o_.size});
        if (o_.scenario == "pipeline") line.add("depth", std::uint64_t{o_.depth});
        if (stream_) line.add("inflight", std::uint64_t{o_.inflight});
        line.add("msgs", msgs).add("bytes", bytes).add("seconds", secs, 3);
        line.add("msgs_per_s", secs > 0 ? static_cast<double>(msgs) / secs : 0.0, 0);
        line.add("MB_per_s", secs > 0 ? mb / secs : 0.0, 2);
        addCpu(line, a, b, msgs, mb);
        line.add("errors", errors_).print();
    }

    void addCpu(Line& line, const Sample& a, const Sample& b, std::uint64_t msgs, double mb) {
        const double secs = secondsBetween(a.at, b.at);
        if (a.serverCpu && b.serverCpu) {
            const auto us = *b.serverCpu - *a.serverCpu;
            line.add("server_cpu_us", us);
            line.add("server_cpu_pct", secs > 0 ? 100.0 * static_cast<double>(us) / 1e6 / secs : 0.0, 1);
            line.add("server_us_per_msg", msgs ? static_cast<double>(us) / static_cast<double>(msgs) : 0.0, 3);
            line.add("server_us_per_MB", mb > 0 ? static_cast<double>(us) / mb : 0.0, 1);
        }
        const auto cus = b.clientCpu - a.clientCpu;
        line.add("client_cpu_pct", secs > 0 ? 100.0 * static_cast<double>(cus) / 1e6 / secs : 0.0, 1);
    }

    void runIdle() {
        const auto rssBefore = serverRssKb(o_.serverPid);
        const auto cpuBefore = serverCpuUs(o_.serverPid);
        const auto t0 = Clock::now();
        bool ok = openAll();
        const double setup = secondsBetween(t0, Clock::now());
        const auto rssOpen = serverRssKb(o_.serverPid);
        const auto cpuOpen = serverCpuUs(o_.serverPid);
        // Hold: any byte or close from the server is an error (onReadable reports both).
        ok = ok && pollUntil(Clock::now() + secs(o_.hold), [this](const epoll_event& ev) { onConnEvent(ev); });
        const auto cpuHeld = serverCpuUs(o_.serverPid);
        const auto rssHeld = serverRssKb(o_.serverPid);
        // Second round trip on every connection: the server still serves them all.
        if (ok) {
            for (std::size_t i = 0; i < conns_.size(); ++i) {
                conns_[i].limit = 2 * kIdleProbe;
                pumpWrite(i);
            }
            const auto deadline = Clock::now() + secs(o_.timeout);
            const std::uint64_t want = 2 * kIdleProbe * o_.conns;
            while (ok && totalBytes_ < want && Clock::now() < deadline) {
                ok = pollUntil(std::min(deadline, Clock::now() + std::chrono::milliseconds(20)),
                               [this](const epoll_event& ev) { onConnEvent(ev); });
            }
            if (ok && totalBytes_ < want) fail("idle connections did not answer after the hold");
        }
        Line line;
        line.add("scenario", std::string_view("idle")).add("transport", std::string_view(transport_));
        line.add("conns", std::uint64_t{o_.conns});
        line.add("msgs", totalMsgs_).add("bytes", totalBytes_).add("seconds", o_.hold, 3);
        line.add("setup_seconds", setup, 3).add("conns_per_s", setup > 0 ? o_.conns / setup : 0.0, 0);
        line.add("rss_before_kb", rssBefore).add("rss_open_kb", rssOpen).add("rss_held_kb", rssHeld);
        if (rssBefore && rssOpen) {
            const double per = (static_cast<double>(*rssOpen) - static_cast<double>(*rssBefore)) * 1024.0 / o_.conns;
            line.add("bytes_per_conn", per, 0);
        }
        if (cpuBefore && cpuOpen && cpuHeld) {
            line.add("server_setup_cpu_us", *cpuOpen - *cpuBefore);
            line.add("server_us_per_conn", static_cast<double>(*cpuOpen - *cpuBefore) / o_.conns, 3);
            line.add("server_hold_cpu_us", *cpuHeld - *cpuOpen);
        }
        line.add("errors", errors_).print();
    }

    // ---------------------------------------------------------------- connrate

    struct Attempt {
        int fd = -1;
        std::uint32_t gen = 0;
        std::uint64_t id = 0;
        bool connected = false;
    };

    void failAttempt(Attempt& a, const std::string& what, int err = 0) {
        std::string msg = "connrate attempt " + std::to_string(a.id) + ": " + what;
        if (err != 0) msg += std::string(": ") + std::strerror(err);
        fail(msg);
        if (a.fd >= 0) ::close(a.fd);
        a.fd = -1;
    }

    void startAttempt(std::size_t slot) {
        Attempt& a = attempts_[slot];
        a.id = nextAttempt_++;
        a.gen++;
        a.connected = false;
        int err = 0;
        a.fd = openSocket(err);
        if (a.fd < 0) {
            if (err == EADDRNOTAVAIL || (family_ == AF_UNIX && err == EAGAIN)) {
                // local ports used up (TIME_WAIT), or a UNIX listener's backlog full: retried
                // after the next wait
                ++addrRetries_;
                return;
            }
            return failAttempt(a, "connect", err);
        }
        setEvents(a.fd, (std::uint64_t{a.gen} << 32) | slot, EPOLLOUT, EPOLL_CTL_ADD);
    }

    void onAttemptEvent(const epoll_event& ev) {
        const auto slot = static_cast<std::size_t>(ev.data.u64 & 0xffffffffu);
        Attempt& a = attempts_[slot];
        if (a.fd < 0 || a.gen != static_cast<std::uint32_t>(ev.data.u64 >> 32)) return;  // stale
        const unsigned char want = *pattern_.at(Pattern::start(a.id), 0);
        if (!a.connected) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) return failAttempt(a, "connect", err);
            if ((ev.events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
            a.connected = true;
            if (::send(a.fd, &want, 1, MSG_NOSIGNAL) != 1) return failAttempt(a, "send", errno);
            setEvents(a.fd, ev.data.u64, EPOLLIN);
            return;
        }
        unsigned char buf[16];
        ssize_t n = ::recv(a.fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (n < 0) return failAttempt(a, "recv", errno);
        if (n == 0) return failAttempt(a, "unexpected close by the server");
        if (n != 1 || buf[0] != want) return failAttempt(a, "bad echo");
        ::close(a.fd);
        a.fd = -1;
        ++totalMsgs_;
        ++totalBytes_;
        startAttempt(slot);
    }

    bool runAttempts(Clock::time_point until) {
        auto lastProgress = Clock::now();
        std::uint64_t last = totalMsgs_;
        while (Clock::now() < until) {
            auto step = std::min(until, Clock::now() + std::chrono::milliseconds(50));
            if (!pollUntil(step, [this](const epoll_event& ev) { onAttemptEvent(ev); })) return false;
            for (std::size_t s = 0; s < attempts_.size() && errors_ == 0; ++s) {
                if (attempts_[s].fd < 0) startAttempt(s);
            }
            if (totalMsgs_ != last) {
                last = totalMsgs_;
                lastProgress = Clock::now();
            } else if (secondsBetween(lastProgress, Clock::now()) > o_.timeout) {
                fail("stalled: no connection completed for " + std::to_string(o_.timeout) + " s");
                return false;
            }
        }
        return errors_ == 0;
    }

    void runConnrate() {
        attempts_.resize(o_.concurrency);
        for (std::size_t s = 0; s < attempts_.size(); ++s) startAttempt(s);
        Sample a{}, b{};
        a.at = b.at = Clock::now();
        if (errors_ == 0 && runAttempts(Clock::now() + secs(o_.warmup))) {
            a = sample();
            runAttempts(a.at + secs(o_.seconds));
            b = sample();
        }
        if (errors_ == 0 && b.msgs == a.msgs) fail("no connection completed in the measured window");
        const double secs = secondsBetween(a.at, b.at);
        const std::uint64_t n = b.msgs - a.msgs;
        Line line;
        line.add("scenario", std::string_view("connrate")).add("transport", std::string_view(transport_));
        line.add("concurrency", std::uint64_t{o_.concurrency});
        line.add("msgs", n).add("bytes", b.bytes - a.bytes).add("seconds", secs, 3);
        line.add("conns_per_s", secs > 0 ? static_cast<double>(n) / secs : 0.0, 0);
        line.add("msgs_per_s", secs > 0 ? static_cast<double>(n) / secs : 0.0, 0);
        addCpu(line, a, b, n, 0.0);
        line.add("port_retries", addrRetries_).add("errors", errors_).print();
        for (auto& at : attempts_) {
            if (at.fd >= 0) ::close(at.fd);
        }
    }

    // ---------------------------------------------------------------- udp

    struct Slot {
        std::uint32_t seq = 0;
        bool busy = false;
        Clock::time_point sentAt;
    };
    struct UdpClient {
        int fd = -1;
        std::uint32_t nextSeq = 0;
        std::uint32_t inFlight = 0;
        bool outArmed = false;
        std::vector<Slot> slots;          // --window of them
        std::vector<std::uint32_t> lost;  // timed-out sequence numbers not echoed yet (bounded)
    };
    static constexpr std::size_t kMaxLostKept = 4096;  // per client; older ones are forgotten

    static void putLe32(unsigned char* p, std::uint32_t v) {
        for (int k = 0; k < 4; ++k) p[k] = static_cast<unsigned char>(v >> (8 * k));
    }
    static std::uint32_t getLe32(const unsigned char* p) {
        return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
    }
    // The bytes after the header of client `id`'s datagram `seq`.
    const unsigned char* udpBody(std::uint32_t id, std::uint32_t seq) const {
        return pattern_.at(Pattern::start(id), std::uint64_t{seq} * o_.size + kUdpHeader);
    }

    void failClient(std::size_t i, const std::string& what, int err = 0) {
        std::string msg = "udp client " + std::to_string(i) + ": " + what;
        if (err != 0) msg += std::string(": ") + std::strerror(err);
        fail(msg);
        UdpClient& c = udp_[i];
        if (c.fd >= 0) ::close(c.fd);
        c.fd = -1;
    }

    // Sends datagrams until client i has --window of them in flight.
    void pumpUdp(std::size_t i) {
        UdpClient& c = udp_[i];
        const auto id = static_cast<std::uint32_t>(i);
        while (c.fd >= 0 && c.inFlight < o_.window) {
            putLe32(sendBuf_.data(), id);
            putLe32(sendBuf_.data() + 4, c.nextSeq);
            std::memcpy(sendBuf_.data() + kUdpHeader, udpBody(id, c.nextSeq), o_.size - kUdpHeader);
            ssize_t w = ::send(c.fd, sendBuf_.data(), o_.size, 0);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
                if (!c.outArmed) {
                    c.outArmed = true;
                    setEvents(c.fd, i, EPOLLIN | EPOLLOUT);
                }
                return;
            }
            if (w < 0) {
                return failClient(i, errno == ECONNREFUSED ? "send (nothing listens on the port)" : "send", errno);
            }
            if (static_cast<std::size_t>(w) != o_.size) return failClient(i, "short datagram send");
            for (Slot& slot : c.slots) {
                if (!slot.busy) {
                    slot = Slot{c.nextSeq, true, Clock::now()};
                    break;
                }
            }
            ++c.nextSeq;
            ++c.inFlight;
            ++udpSent_;
        }
        if (c.fd >= 0 && c.outArmed && c.inFlight == o_.window) {
            c.outArmed = false;
            setEvents(c.fd, i, EPOLLIN);
        }
    }

    void onUdpReadable(std::size_t i) {
        UdpClient& c = udp_[i];
        const auto id = static_cast<std::uint32_t>(i);
        for (;;) {
            ssize_t n = ::recv(c.fd, readBuf_.data(), readBuf_.size(), MSG_TRUNC | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                return failClient(i, errno == ECONNREFUSED ? "recv (nothing listens on the port)" : "recv", errno);
            }
            if (static_cast<std::size_t>(n) != o_.size) {
                return failClient(
                    i, "echoed datagram of " + std::to_string(n) + " bytes, sent " + std::to_string(o_.size));
            }
            const std::uint32_t who = getLe32(readBuf_.data()), seq = getLe32(readBuf_.data() + 4);
            if (who != id) return failClient(i, "received client " + std::to_string(who) + "'s datagram");
            if (std::memcmp(readBuf_.data() + kUdpHeader, udpBody(id, seq), o_.size - kUdpHeader) != 0) {
                return failClient(i, "echo mismatch in datagram " + std::to_string(seq));
            }
            auto slot =
                std::find_if(c.slots.begin(), c.slots.end(), [seq](const Slot& s) { return s.busy && s.seq == seq; });
            if (slot != c.slots.end()) {
                slot->busy = false;
                --c.inFlight;
                ++totalMsgs_;
                totalBytes_ += o_.size;
                continue;
            }
            auto late = std::find(c.lost.begin(), c.lost.end(), seq);
            if (late == c.lost.end()) {
                return failClient(i, "datagram " + std::to_string(seq) + " echoed twice, or never sent");
            }
            c.lost.erase(late);
            ++udpLate_;
        }
        pumpUdp(i);
    }

    void onUdpEvent(const epoll_event& ev) {
        const auto i = static_cast<std::size_t>(ev.data.u64);
        if (udp_[i].fd < 0) return;
        if (ev.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) onUdpReadable(i);
        if (udp_[i].fd >= 0 && (ev.events & EPOLLOUT)) pumpUdp(i);
    }

    // Declares every datagram older than --dgram-timeout lost, and sends new ones in their slots.
    void expireUdp() {
        const auto now = Clock::now();
        const auto limit = secs(o_.dgramTimeout);
        for (std::size_t i = 0; i < udp_.size(); ++i) {
            UdpClient& c = udp_[i];
            if (c.fd < 0) continue;
            bool freed = false;
            for (Slot& slot : c.slots) {
                if (slot.busy && now - slot.sentAt > limit) {
                    slot.busy = false;
                    --c.inFlight;
                    ++udpLost_;
                    if (c.lost.size() >= kMaxLostKept) c.lost.erase(c.lost.begin());
                    c.lost.push_back(slot.seq);
                    freed = true;
                }
            }
            if (freed) pumpUdp(i);
        }
    }

    // Runs the datagrams until `until`, failing if none comes back for --timeout seconds.
    bool runUdpTraffic(Clock::time_point until) {
        auto lastProgress = Clock::now();
        std::uint64_t last = totalMsgs_ + udpLate_;
        while (Clock::now() < until) {
            auto step = std::min(until, Clock::now() + std::chrono::milliseconds(10));
            if (!pollUntil(step, [this](const epoll_event& ev) { onUdpEvent(ev); })) return false;
            expireUdp();
            if (errors_ > 0) return false;
            if (totalMsgs_ + udpLate_ != last) {
                last = totalMsgs_ + udpLate_;
                lastProgress = Clock::now();
            } else if (secondsBetween(lastProgress, Clock::now()) > o_.timeout) {
                fail("stalled: no datagram echoed for " + std::to_string(o_.timeout) + " s");
                return false;
            }
        }
        return true;
    }

    void runUdp() {
        sendBuf_.resize(o_.size);
        udp_.resize(o_.conns);
        for (std::size_t i = 0; i < udp_.size() && errors_ == 0; ++i) {
            UdpClient& c = udp_[i];
            c.slots.resize(o_.window);
            c.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c.fd < 0) return failClient(i, "socket", errno);
            if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), addrLen_) != 0) {
                return failClient(i, "connect", errno);
            }
            setEvents(c.fd, i, EPOLLIN, EPOLL_CTL_ADD);
        }
        for (std::size_t i = 0; i < udp_.size() && errors_ == 0; ++i) pumpUdp(i);
        Sample a{}, b{};
        a.at = b.at = Clock::now();
        std::uint64_t sentA = 0, sentB = 0, lostA = 0, lostB = 0, lateA = 0, lateB = 0;
        if (errors_ == 0 && runUdpTraffic(Clock::now() + secs(o_.warmup))) {
            a = sample();
            sentA = udpSent_, lostA = udpLost_, lateA = udpLate_;
            runUdpTraffic(a.at + secs(o_.seconds));
            b = sample();
            sentB = udpSent_, lostB = udpLost_, lateB = udpLate_;
        }
        if (errors_ == 0 && b.msgs == a.msgs) fail("no datagram echoed in the measured window");
        const double secs = secondsBetween(a.at, b.at);
        const std::uint64_t msgs = b.msgs - a.msgs, bytes = b.bytes - a.bytes;
        const std::uint64_t sent = sentB - sentA, lost = lostB - lostA;
        Line line;
        line.add("scenario", std::string_view("udp")).add("transport", std::string_view(transport_));
        line.add("conns", std::uint64_t{o_.conns}).add("size", std::uint64_t{o_.size});
        line.add("window", std::uint64_t{o_.window});
        line.add("msgs", msgs).add("bytes", bytes).add("seconds", secs, 3);
        line.add("sent", sent).add("lost", lost).add("late", lateB - lateA);
        // Lost among the datagrams whose fate was settled in the window (echoed or timed out).
        line.add("lost_pct", msgs + lost ? 100.0 * static_cast<double>(lost) / static_cast<double>(msgs + lost) : 0.0,
                 3);
        line.add("msgs_per_s", secs > 0 ? static_cast<double>(msgs) / secs : 0.0, 0);
        line.add("MB_per_s", secs > 0 ? static_cast<double>(bytes) / 1e6 / secs : 0.0, 2);
        addCpu(line, a, b, msgs, static_cast<double>(bytes) / 1e6);
        line.add("lost_total", udpLost_).add("errors", errors_).print();
        for (auto& c : udp_) {
            if (c.fd >= 0) ::close(c.fd);
        }
    }

    Options o_;
    Pattern pattern_;
    sockaddr_storage addr_{};
    socklen_t addrLen_ = 0;
    int family_ = AF_INET;
    const char* transport_ = "tcp";
    int ep_ = -1;
    bool stream_ = false;
    bool idle_ = false;
    std::uint64_t unit_ = 1;    // message size (stream: write chunk)
    std::uint64_t window_ = 1;  // bytes in flight per connection
    std::vector<unsigned char> readBuf_;
    std::vector<epoll_event> events_;
    std::vector<Conn> conns_;
    std::vector<Attempt> attempts_;
    std::vector<UdpClient> udp_;
    std::vector<unsigned char> sendBuf_;
    std::uint64_t udpSent_ = 0;
    std::uint64_t udpLost_ = 0;
    std::uint64_t udpLate_ = 0;
    std::uint32_t established_ = 0;
    std::uint64_t nextAttempt_ = 0;
    std::uint64_t addrRetries_ = 0;
    std::uint64_t totalBytes_ = 0;
    std::uint64_t totalMsgs_ = 0;
    std::uint64_t errors_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    raiseFileLimit();
    Loadgen gen(parseOptions(argc, argv));
    int status = gen.run();
    std::fflush(stdout);
    return status;
}
