// serial_weft: bytes per second through a serial line (issue #13, bench/serial.sh), weft's side:
// one SerialPort on one reactor. A whole-system measurement, not a Google Benchmark; its peer is
// bench/serial_pyserial.py (pyserial 3.5 on the same line), and bench/serial_driver holds the
// other end of the line (a pty master) and keeps the time.
//
//   serial_weft --device PATH --bytes N --direction in|out [--reactor epoll|poll|select]
//       in   receives N bytes through dataReceived and checks each against the pattern
//            (byte i is i % 251);
//       out  sends N bytes of the pattern, 64 KiB per write from a pull producer, then
//            loseConnection() (every byte handed to the kernel before the close).
//   Prints "ready" once the port is open and configured (115200 bps, 8N1, raw), then
//   "done cpu_us=C" at the end: C is its own CPU time (getrusage, user + sys) from "ready" to
//   "done". Exits 1 on a wrong byte, an early end or a device error.
#include <sys/resource.h>
#include <sys/time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/serialport.hpp>

namespace {

constexpr std::size_t kPeriod = 251;
constexpr std::size_t kChunk = 65536;

double cpuMicros() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto us = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec); };
    return us(ru.ru_utime) + us(ru.ru_stime);
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "serial_weft: %s\nusage: serial_weft --device PATH --bytes N --direction in|out "
                 "[--reactor epoll|poll|select]\n",
                 why);
    std::exit(2);
}

// The pattern from any phase: pattern()[k % 251 + j] is byte k + j.
const std::vector<std::byte>& pattern() {
    static const std::vector<std::byte> p = [] {
        std::vector<std::byte> v(kPeriod + 1024 * 1024);
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::byte>(i % kPeriod);
        return v;
    }();
    return p;
}

struct Run {
    weft::Reactor* reactor = nullptr;
    std::uint64_t total = 0;
    double cpuAtReady = 0;
    int status = 1;

    void finish(int code) {
        status = code;
        std::printf("done cpu_us=%.0f\n", cpuMicros() - cpuAtReady);
        std::fflush(stdout);
        if (reactor->running()) reactor->stop();
    }
};

class Receiver final : public weft::Protocol {
public:
    explicit Receiver(Run& run) : run_(run) {}
    void dataReceived(weft::Bytes data) override {
        if (got_ + data.size() > run_.total ||
            std::memcmp(data.data(), pattern().data() + got_ % kPeriod, data.size()) != 0) {
            std::fprintf(stderr, "serial_weft: wrong bytes at offset %llu\n", static_cast<unsigned long long>(got_));
            transport->loseConnection();
            return;
        }
        got_ += data.size();
        if (got_ == run_.total) {
            run_.finish(0);
            transport->loseConnection();
        }
    }
    void connectionLost(const weft::Failure& reason) override {
        if (got_ != run_.total) {
            std::fprintf(stderr, "serial_weft: ended after %llu bytes: %s\n", static_cast<unsigned long long>(got_),
                         reason.getErrorMessage().c_str());
            run_.finish(1);
        }
    }

private:
    Run& run_;
    std::uint64_t got_ = 0;
};

class Sender final : public weft::Protocol, public weft::IPullProducer {
public:
    explicit Sender(Run& run) : run_(run) {}
    /// Registers `self` as the port's pull producer: the port asks for a chunk whenever it drained.
    void start(const std::shared_ptr<Sender>& self) { transport->asConsumer()->registerProducer(self, false); }
    void resumeProducing() override {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, run_.total - sent_));
        transport->write(weft::Bytes(pattern().data() + sent_ % kPeriod, n));
        sent_ += n;
        if (sent_ == run_.total) {
            transport->asConsumer()->unregisterProducer();
            transport->loseConnection();
        }
    }
    void stopProducing() override {}
    void connectionLost(const weft::Failure& reason) override {
        if (sent_ == run_.total && reason.check<weft::error::ConnectionDone>()) {
            run_.finish(0);
        } else {
            std::fprintf(stderr, "serial_weft: ended after %llu bytes: %s\n", static_cast<unsigned long long>(sent_),
                         reason.getErrorMessage().c_str());
            run_.finish(1);
        }
    }

private:
    Run& run_;
    std::uint64_t sent_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    std::string device, direction;
    long long bytes = -1;
    weft::Backend backend = weft::Backend::epoll;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--device") device = value();
        else if (a == "--bytes") bytes = std::atoll(value().c_str());
        else if (a == "--direction") direction = value();
        else if (a == "--reactor") {
            std::string r = value();
            if (r == "epoll") backend = weft::Backend::epoll;
            else if (r == "poll") backend = weft::Backend::poll;
            else if (r == "select") backend = weft::Backend::select;
            else usage("unknown reactor");
        } else usage(("unknown option " + a).c_str());
    }
    if (device.empty() || bytes <= 0 || (direction != "in" && direction != "out")) usage("bad arguments");

    auto reactor = weft::Reactor::create(backend);
    Run run;
    run.reactor = reactor.get();
    run.total = static_cast<std::uint64_t>(bytes);
    weft::serial::Options options;
    options.baudrate = 115200;
    std::shared_ptr<weft::Protocol> protocol;
    std::shared_ptr<Sender> sender;
    if (direction == "in") {
        protocol = std::make_shared<Receiver>(run);
    } else {
        sender = std::make_shared<Sender>(run);
        protocol = sender;
    }
    try {
        weft::SerialPort::create(protocol, device, *reactor, options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "serial_weft: %s\n", e.what());
        return 1;
    }
    run.cpuAtReady = cpuMicros();
    std::printf("ready\n");
    std::fflush(stdout);
    if (sender) sender->start(sender);
    reactor->run();
    return run.status;
}
