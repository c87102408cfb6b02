// serial_driver: the far end of a serial line for bench/serial.sh (issue #13). It makes a
// pseudo-terminal, starts the program under test on its slave (the first "{}" in its arguments
// becomes the slave's path), waits for that program's "ready" line, then holds the master with
// plain blocking system calls and keeps the time:
//
//   serial_driver --bytes N --direction in|out [--peer NAME] -- PROGRAM ARGS...
//       in   writes N bytes of the pattern (byte i is i % 251) into the master, 64 KiB per
//            write; the time ends at the program's "done" line (it has checked every byte);
//       out  reads N bytes from the master and checks them; the time ends with the last byte.
//
// Prints one line: peer=NAME direction=D bytes=N seconds=S MBps=R cpu_us_per_MiB=C, where C is
// the CPU time the program reported on its "done" line ("done cpu_us=…", its own getrusage from
// "ready" to "done", so interpreter start-up is not counted). MB = 10^6 bytes. Exits 1 if the
// program fails, a byte is wrong or nothing happens for 60 s.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr std::size_t kPeriod = 251;
constexpr std::size_t kChunk = 65536;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "serial_driver: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "serial_driver: %s\nusage: serial_driver --bytes N --direction in|out [--peer NAME] -- PROGRAM "
                 "ARGS... ({} = the line)\n",
                 why);
    std::exit(2);
}

// One line from the program's stdout, waiting at most 60 s.
std::string readLine(int fd) {
    std::string line;
    char c;
    while (true) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 60000) != 1) {
            std::fprintf(stderr, "serial_driver: the program said nothing for 60 s\n");
            std::exit(1);
        }
        ssize_t n = ::read(fd, &c, 1);
        if (n <= 0) {
            std::fprintf(stderr, "serial_driver: the program ended without a line (got '%s')\n", line.c_str());
            std::exit(1);
        }
        if (c == '\n') return line;
        line.push_back(c);
    }
}

}  // namespace

int main(int argc, char** argv) {
    long long bytes = -1;
    std::string direction, peer = "?";
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--") {
            ++i;
            break;
        }
        if (i + 1 >= argc) usage("missing value");
        if (a == "--bytes") bytes = std::atoll(argv[++i]);
        else if (a == "--direction") direction = argv[++i];
        else if (a == "--peer") peer = argv[++i];
        else usage("unknown option");
    }
    if (bytes <= 0 || (direction != "in" && direction != "out") || i >= argc) usage("bad arguments");

    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) die("posix_openpt");
    std::string slave = ::ptsname(master);

    std::vector<std::string> args(argv + i, argv + argc);
    for (auto& a : args)
        if (auto at = a.find("{}"); at != std::string::npos) a.replace(at, 2, slave);
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);

    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) die("pipe2");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    pid_t pid;
    if (int e = posix_spawnp(&pid, cargs[0], &actions, nullptr, cargs.data(), environ); e != 0) {
        errno = e;
        die(cargs[0]);
    }
    ::close(out[1]);
    if (readLine(out[0]) != "ready") usage("the program did not say ready");

    std::vector<unsigned char> pattern(kPeriod + kChunk);
    for (std::size_t k = 0; k < pattern.size(); ++k) pattern[k] = static_cast<unsigned char>(k % kPeriod);
    const auto total = static_cast<std::uint64_t>(bytes);
    auto t0 = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point t1;
    std::string done;
    if (direction == "in") {
        for (std::uint64_t sent = 0; sent < total;) {
            std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, total - sent));
            ssize_t w = ::write(master, pattern.data() + sent % kPeriod, n);
            if (w < 0) die("write to the master");
            sent += static_cast<std::uint64_t>(w);
        }
        done = readLine(out[0]);
        t1 = std::chrono::steady_clock::now();
    } else {
        std::vector<unsigned char> buf(kChunk);
        for (std::uint64_t got = 0; got < total;) {
            ssize_t r = ::read(master, buf.data(), buf.size());
            if (r <= 0) die("read from the master");
            auto n = static_cast<std::uint64_t>(r);
            if (got + n > total || std::memcmp(buf.data(), pattern.data() + got % kPeriod, n) != 0) {
                std::fprintf(stderr, "serial_driver: wrong bytes at offset %llu\n",
                             static_cast<unsigned long long>(got));
                return 1;
            }
            got += n;
        }
        t1 = std::chrono::steady_clock::now();
        done = readLine(out[0]);
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "serial_driver: the program failed (status %d)\n", status);
        return 1;
    }
    double cpu = -1;
    if (std::sscanf(done.c_str(), "done cpu_us=%lf", &cpu) != 1) usage("the program's done line has no cpu_us");
    double seconds = std::chrono::duration<double>(t1 - t0).count();
    double mib = static_cast<double>(total) / (1024.0 * 1024.0);
    std::printf("peer=%s direction=%s bytes=%llu seconds=%.4f MBps=%.1f cpu_us_per_MiB=%.1f\n", peer.c_str(),
                direction.c_str(), static_cast<unsigned long long>(total), seconds,
                static_cast<double>(total) / seconds / 1e6, cpu / mib);
    return 0;
}
