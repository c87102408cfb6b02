// weft — the command-line tool that puts weft's transports to use.
//
// Until the TCP transport lands (issue #4), `weft demo` exercises the reactor:
// a local pipe carries lines from a worker thread through the reactor, timers
// tick, and SIGINT/SIGTERM stop it through the shutdown triggers.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/error.hpp>
#include <weft/log.hpp>

namespace {

// Reads lines from a pipe and echoes them to stdout with a prefix.
class PipeReader final : public weft::IReadDescriptor {
public:
    explicit PipeReader(int fd) : fd_(fd) {}
    ~PipeReader() override { if (fd_ >= 0) ::close(fd_); }
    int fileno() const override { return fd_; }
    std::string logPrefix() const override { return "PipeReader," + std::to_string(fd_); }
    weft::Reason doRead() override {
        char buf[4096];
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n > 0) {
            bytes_ += static_cast<std::size_t>(n);
            std::fwrite(buf, 1, static_cast<std::size_t>(n), stdout);
            std::fflush(stdout);
            return std::nullopt;
        }
        if (n == 0) return weft::Failure(weft::ConnectionDone());
        if (errno == EAGAIN || errno == EINTR) return std::nullopt;
        return weft::Failure(weft::ConnectionLost(std::error_code(errno, std::generic_category())));
    }
    void connectionLost(const weft::Failure& why) override {
        weft::log::info(logPrefix(), "pipe closed after {} bytes: {}", bytes_, why.getErrorMessage());
        ::close(fd_);
        fd_ = -1;
        closed.callback();
    }
    /// Fires when the pipe has been read to its end (or lost).
    weft::Deferred<void> closed;

private:
    int fd_;
    std::size_t bytes_ = 0;
};

int runDemo(weft::Backend backend, double seconds) {
    auto reactor = weft::Reactor::create(backend);
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
        std::perror("pipe2");
        return 1;
    }
    auto reader = std::make_shared<PipeReader>(p[0]);
    int writeFd = p[1];
    reactor->addReader(reader);
    if (seconds > 0)
        weft::log::info("weft", "demo on the {} reactor for {} s", weft::backendName(backend), seconds);
    else
        weft::log::info("weft", "demo on the {} reactor until Ctrl-C or SIGTERM", weft::backendName(backend));

    reactor->suggestThreadPoolSize(1);  // one worker: lines stay in order, the close comes last
    int n = 0;
    weft::Function<void()> tick;
    tick = [&] {
        ++n;
        // A pool thread produces the line; the reactor thread reads it from the pipe.
        reactor->callInThread([writeFd, n] {
            std::string line = "tick " + std::to_string(n) + " from a worker thread, through a pipe\n";
            [[maybe_unused]] auto w = ::write(writeFd, line.data(), line.size());
        });
        reactor->callLater(0.5, [&] { tick(); });
    };
    reactor->callWhenRunning([&] { tick(); });
    if (seconds > 0) reactor->callLater(seconds, [&] { reactor->stop(); });
    // Shutdown waits (a before trigger returning a Deferred) until the reader has
    // drained the pipe to its end, so nothing written is lost.
    reactor->addSystemEventTrigger("before", "shutdown", [&] {
        // Closed by the one pool worker, after every line it still has to write.
        reactor->callInThread([writeFd] { ::close(writeFd); });
        return reader->closed;
    });
    reactor->run();
    for (auto& dc : reactor->getDelayedCalls()) dc.cancel();
    if (reactor->exitSignal()) weft::log::info("weft", "stopped by signal {}", *reactor->exitSignal());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"weft: Twisted's event-driven I/O core in C++"};
    app.require_subcommand(1);
    std::string reactorName = "epoll", level = "info";
    app.add_option("--reactor", reactorName, "Reactor backend: epoll, poll or select")
        ->check(CLI::IsMember({"epoll", "poll", "select"}));
    app.add_option("--log-level", level, "debug, info, warn, error or critical")
        ->check(CLI::IsMember({"debug", "info", "warn", "warning", "error", "critical"}));

    double seconds = 0;
    auto* demo = app.add_subcommand("demo", "Run the reactor demo: timers, a worker thread and a pipe");
    demo->add_option("--seconds", seconds, "Stop after this many seconds (0: until SIGINT/SIGTERM)")
        ->check(CLI::NonNegativeNumber);

    CLI11_PARSE(app, argc, argv);
    weft::log::setLevel(*weft::log::parseLevel(level));
    if (*demo) return runDemo(*weft::parseBackend(reactorName), seconds);
    return 0;
}
