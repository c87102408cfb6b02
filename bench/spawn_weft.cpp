// spawn_weft: child-process throughput of weft's spawnProcess (issue #11 item 4, bench/spawn.sh).
// A whole-system measurement, not a Google Benchmark: one process, one epoll reactor, real children.
//
//   spawn_weft --children N --in-flight K [--ballast-mib M] [--stdio out|pipes]
//       Spawns /bin/true N times, keeping K children in flight: each processEnded starts the next.
//       Every child gets an empty environment; with --stdio out (the default) its fd 1 is a pipe
//       the parent reads to EOF and fds 0 and 2 are /dev/null (one descriptor of the parent's,
//       inherited), the same set-up as every peer in bench/spawn.sh; --stdio pipes is
//       spawnProcess's default (three pipes: 0 "w", 1 "r", 2 "r"), Twisted's default too.
//       With --ballast-mib M the parent first allocates M MiB and writes every byte of it (kept
//       alive until exit), so a fork() would have to copy page tables for it.
//   spawn_weft --read-bytes B --writer PATH [--ballast-mib M]
//       Spawns one child, `PATH B` (bench/peers/write_zero: B zero bytes to stdout in 64 KiB
//       writes), and reads all of it through ProcessProtocol::childDataReceived.
//       --writer-cpu C passes C to the writer, which pins itself to core C (bench/spawn.sh runs the
//       parent under `taskset -c 0` and the writer on core 1, or both on core 0).
//       --pipe-size BYTES (an experiment, not what spawnProcess does): F_SETPIPE_SZ on the stdout
//       pipe right after spawnProcess returns (Linux lets anyone go up to
//       /proc/sys/fs/pipe-max-size, 1 MiB by default; a pipe holds 64 KiB unless told otherwise).
//
// Prints one line of key=value pairs (spawn.sh parses it):
//   spawns_per_s   N / the wall time from the first spawnProcess call to the last processEnded
//   lat_mean_us, lat_p99_us
//                  the time spent inside each spawnProcess call (µs)
//   cpu_per_spawn_us
//                  the parent's getrusage(RUSAGE_SELF) user+sys over that window, per spawn
//   child_cpu_per_spawn_us
//                  getrusage(RUSAGE_CHILDREN) over the same window, per spawn (the children's own
//                  time, exec and /bin/true included)
//   mb_per_s, cpu_per_mb_us (read mode; MB = 10^6 bytes)
// Exits 1 if a child failed, a byte count is wrong or the run took longer than --timeout seconds.
#include <sys/resource.h>
#include <sys/time.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/process.hpp>

namespace {

using Clock = std::chrono::steady_clock;

double cpuSeconds(int who) {
    rusage ru{};
    ::getrusage(who, &ru);
    auto sec = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
    return sec(ru.ru_utime) + sec(ru.ru_stime);
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "spawn_weft: %s\n"
                 "usage: spawn_weft --children N --in-flight K [--ballast-mib M] [--stdio out|pipes] [--timeout S]\n"
                 "       spawn_weft --read-bytes B --writer PATH [--ballast-mib M] [--writer-cpu C]\n"
                 "                  [--pipe-size BYTES] [--timeout S]\n",
                 why);
    std::exit(2);
}

// M MiB written byte by byte (memset), kept until exit: every page is present and private.
void* ballast(long mib) {
    if (mib <= 0) return nullptr;
    const auto size = static_cast<std::size_t>(mib) << 20;
    void* p = std::malloc(size);
    if (!p) {
        std::perror("spawn_weft: ballast");
        std::exit(1);
    }
    std::memset(p, 1, size);
    asm volatile("" : : "r"(p) : "memory");  // the stores are observable: not elided before free()
    return p;
}

struct Run;

class Child final : public weft::ProcessProtocol {
public:
    explicit Child(Run& run) : run_(run) {}
    void childDataReceived(int childFD, weft::Bytes data) override;
    void processEnded(const weft::Failure& reason) override;

private:
    Run& run_;
};

struct Run {
    std::unique_ptr<weft::Reactor> reactor = weft::Reactor::create(weft::Backend::epoll);
    std::string executable = "/bin/true";
    std::vector<std::string> args{"true"};
    weft::ProcessOptions options;
    long total = 0, started = 0, ended = 0, failures = 0, inFlight = 1, pipeSize = 0;
    std::uint64_t bytes = 0;
    std::vector<double> latencies;  // µs inside each spawnProcess call

    void startOne() {
        ++started;
        auto child = std::make_shared<Child>(*this);
        auto t0 = Clock::now();
        try {
            auto t = reactor->spawnProcess(child, executable, args, options);
            if (pipeSize > 0) setPipeSize(*t);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "spawn_weft: spawnProcess: %s\n", e.what());
            ++failures;
            ++ended;
        }
        latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    void setPipeSize(weft::IProcessTransport& t) const {
        auto* p = dynamic_cast<weft::process::Process*>(&t);
        if (!p || !p->pipes().contains(1)) return;
        if (::fcntl(p->pipes().at(1)->fileno(), F_SETPIPE_SZ, static_cast<int>(pipeSize)) < 0)
            std::perror("spawn_weft: F_SETPIPE_SZ");
    }
    void childEnded(bool ok) {
        ++ended;
        if (!ok) ++failures;
        if (started < total) startOne();
        else if (ended == total) reactor->stop();
    }
};

void Child::childDataReceived(int, weft::Bytes data) { run_.bytes += data.size(); }

void Child::processEnded(const weft::Failure&) {
    bool ok = processTransport && processTransport->status() == 0;
    processTransport.reset();
    transport.reset();
    run_.childEnded(ok);
}

}  // namespace

int main(int argc, char** argv) {
    long children = 0, inFlight = 1, ballastMib = 0, pipeSizeArg = 0;
    bool socketOutputs = false;  // ProcessOptions::socketOutputs: the "r" channels are socket pairs
    long long readBytes = -1;
    double timeout = 300;
    std::string writer, writerCpu, stdio = "out";
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage("an option needs a value");
            return argv[++i];
        };
        if (a == "--children") children = std::atol(value());
        else if (a == "--in-flight") inFlight = std::atol(value());
        else if (a == "--ballast-mib") ballastMib = std::atol(value());
        else if (a == "--read-bytes") readBytes = std::atoll(value());
        else if (a == "--writer") writer = value();
        else if (a == "--stdio") stdio = value();
        else if (a == "--timeout") timeout = std::atof(value());
        else if (a == "--pipe-size") pipeSizeArg = std::atol(value());
        else if (a == "--socket-outputs") socketOutputs = true;
        else if (a == "--writer-cpu") writerCpu = value();
        else usage("unknown option");
    }
    const bool readMode = readBytes >= 0;
    if (readMode ? writer.empty() : (children <= 0 || inFlight <= 0)) usage("missing or bad arguments");
    if (stdio != "out" && stdio != "pipes") usage("--stdio is out or pipes");

    void* keep = ballast(ballastMib);
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        std::perror("spawn_weft: /dev/null");
        return 1;
    }

    Run run;
    run.pipeSize = pipeSizeArg;
    run.options.env = weft::Environment{};
    run.options.socketOutputs = socketOutputs;
    if (stdio == "out" || readMode) run.options.childFDs = weft::ChildFDs{{0, devnull}, {1, "r"}, {2, devnull}};
    if (readMode) {
        run.executable = writer;
        run.args = {writer, std::to_string(readBytes)};
        if (!writerCpu.empty()) run.args.push_back(writerCpu);
        run.total = 1;
    } else {
        run.total = children;
        run.inFlight = std::min(inFlight, children);
        run.latencies.reserve(static_cast<std::size_t>(children));
    }
    bool timedOut = false;
    run.reactor->callLater(timeout, [&] {
        timedOut = true;
        run.reactor->stop();
    });
    run.reactor->callWhenRunning([&] {
        for (long i = 0; i < run.inFlight; ++i) run.startOne();
    });

    const double cpu0 = cpuSeconds(RUSAGE_SELF), child0 = cpuSeconds(RUSAGE_CHILDREN);
    const auto t0 = Clock::now();
    run.reactor->run(false);
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = cpuSeconds(RUSAGE_SELF) - cpu0, childCpu = cpuSeconds(RUSAGE_CHILDREN) - child0;

    bool ok = !timedOut && run.failures == 0 && run.ended == run.total;
    if (readMode) {
        ok = ok && run.bytes == static_cast<std::uint64_t>(readBytes);
        const double mb = static_cast<double>(run.bytes) / 1e6;
        std::printf(
            "peer=%s mode=read bytes=%llu ballast_mib=%ld pipe_size=%ld wall_s=%.4f mb_per_s=%.1f "
            "cpu_per_mb_us=%.1f ok=%d\n",
            socketOutputs ? "weftsock" : "weft", static_cast<unsigned long long>(run.bytes), ballastMib, pipeSizeArg,
            wall, mb / wall, cpu * 1e6 / mb, ok ? 1 : 0);
    } else {
        auto lat = run.latencies;
        std::sort(lat.begin(), lat.end());
        double mean = 0;
        for (double x : lat) mean += x;
        mean = lat.empty() ? 0 : mean / static_cast<double>(lat.size());
        double p99 = lat.empty() ? 0 : lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
        const auto n = static_cast<double>(run.ended);
        std::printf(
            "peer=weft mode=spawn stdio=%s children=%ld in_flight=%ld ballast_mib=%ld wall_s=%.4f "
            "spawns_per_s=%.1f lat_mean_us=%.1f lat_p99_us=%.1f cpu_per_spawn_us=%.1f "
            "child_cpu_per_spawn_us=%.1f failures=%ld ok=%d\n",
            stdio.c_str(), run.total, run.inFlight, ballastMib, wall, n / wall, mean, p99, cpu * 1e6 / n,
            childCpu * 1e6 / n, run.failures, ok ? 1 : 0);
    }
    if (timedOut)
        std::fprintf(stderr, "spawn_weft: timed out after %.0f s (%ld of %ld ended)\n", timeout, run.ended, run.total);
    std::free(keep);
    ::close(devnull);
    return ok ? 0 : 1;
}
