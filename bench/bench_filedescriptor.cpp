// FileDescriptor hot paths (issue #3):
//  * many small writes in one iteration leave in one writev;
//  * a stream over a socketpair through FileDescriptor driven by a push
//    producer, against a plain poll()+read()/write() loop in the same run.
#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include <weft/internet/abstract.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>

namespace {

constexpr std::size_t kChunk = 64 * 1024;
constexpr std::size_t kStreamBytes = 256u << 20;  // per benchmark iteration

void socketPair(int sv[2]) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    int size = 1 << 20;
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

// The sending transport: a FileDescriptor over one end of the pair.
class Sender final : public weft::FileDescriptor {
public:
    Sender(weft::Reactor& r, int fd) : FileDescriptor(r), fd_(fd) { setConnected(); }
    ~Sender() override {
        if (fd_ >= 0) ::close(fd_);
    }
    int fileno() const override { return fd_; }
    weft::Reason doRead() override { return std::nullopt; }
    weft::Address getPeer() const override { return weft::NoAddress{}; }
    weft::Address getHost() const override { return weft::NoAddress{}; }
    void connectionLost(const weft::Failure& why) override {
        FileDescriptor::connectionLost(why);
        ::close(fd_);
        fd_ = -1;
    }
    std::size_t writevCalls = 0;

protected:
    weft::WriteResult writeSomeData(std::span<const iovec> data) override {
        ++writevCalls;
        return writeToFD(fd_, data);
    }

private:
    int fd_;
};

// Writes a 64 KiB chunk whenever it is producing, until `remaining` reaches 0.
class Pump final : public weft::IPushProducer {
public:
    Pump(Sender& s, std::size_t total) : sender_(s), remaining_(total), chunk_(kChunk, std::byte{'x'}) {}
    void pauseProducing() override { paused_ = true; }
    void resumeProducing() override {
        paused_ = false;
        produce();
    }
    void stopProducing() override { remaining_ = 0; }
    void produce() {
        while (!paused_ && remaining_ > 0) {
            std::size_t n = std::min(remaining_, chunk_.size());
            remaining_ -= n;
            sender_.write(std::span<const std::byte>(chunk_.data(), n));
        }
    }

private:
    Sender& sender_;
    bool paused_ = false;
    std::size_t remaining_;
    std::vector<std::byte> chunk_;
};

class Sink final : public weft::IReadDescriptor {
public:
    Sink(weft::Reactor& r, int fd, std::size_t expect) : reactor_(r), fd_(fd), expect_(expect), buf_(kChunk * 4) {}
    ~Sink() override { ::close(fd_); }
    int fileno() const override { return fd_; }
    weft::Reason doRead() override {
        ssize_t n = ::read(fd_, buf_.data(), buf_.size());
        if (n > 0) {
            got += static_cast<std::size_t>(n);
            if (got >= expect_) reactor_.stop();
        }
        return std::nullopt;
    }
    void connectionLost(const weft::Failure&) override {}
    std::size_t got = 0;

private:
    weft::Reactor& reactor_;
    int fd_;
    std::size_t expect_;
    std::vector<char> buf_;
};

void BM_StreamThroughFileDescriptor(benchmark::State& state) {
    std::size_t bytes = 0;
    for (auto _ : state) {
        auto reactor = weft::Reactor::create(weft::Backend::epoll);
        int sv[2];
        socketPair(sv);
        auto sender = std::make_shared<Sender>(*reactor, sv[0]);
        auto sink = std::make_shared<Sink>(*reactor, sv[1], kStreamBytes);
        auto pump = std::make_shared<Pump>(*sender, kStreamBytes);
        reactor->addReader(sink);
        sender->registerProducer(pump, true);
        reactor->callWhenRunning([&] { pump->produce(); });
        reactor->run(false);
        bytes += sink->got;
        sender->unregisterProducer();
        reactor->removeAll();
        sender->connectionLost(weft::Failure(weft::ConnectionDone()));
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// The same transfer with no library: poll() both ends, write 64 KiB chunks while
// the sender is writable, read while the receiver is readable.
void BM_StreamPlainLoop(benchmark::State& state) {
    std::size_t bytes = 0;
    std::vector<char> chunk(kChunk, 'x'), buf(kChunk * 4);
    for (auto _ : state) {
        int sv[2];
        socketPair(sv);
        std::size_t sent = 0, got = 0, off = 0;
        while (got < kStreamBytes) {
            pollfd p[2] = {{sv[0], static_cast<short>(sent < kStreamBytes ? POLLOUT : 0), 0}, {sv[1], POLLIN, 0}};
            ::poll(p, 2, -1);
            if (p[0].revents & POLLOUT) {
                while (sent < kStreamBytes) {
                    std::size_t want = std::min(kChunk - off, kStreamBytes - sent);
                    ssize_t n = ::write(sv[0], chunk.data() + off, want);
                    if (n <= 0) break;
                    sent += static_cast<std::size_t>(n);
                    off = (off + static_cast<std::size_t>(n)) % kChunk;
                }
            }
            if (p[1].revents & POLLIN) {
                ssize_t n = ::read(sv[1], buf.data(), buf.size());
                if (n > 0) got += static_cast<std::size_t>(n);
            }
        }
        bytes += got;
        ::close(sv[0]);
        ::close(sv[1]);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// N small writes in one iteration, then one doWrite: counts writev calls.
void BM_SmallWritesOneWritev(benchmark::State& state) {
    auto reactor = weft::Reactor::create(weft::Backend::epoll);
    int sv[2];
    socketPair(sv);
    auto sender = std::make_shared<Sender>(*reactor, sv[0]);
    const auto n = static_cast<std::size_t>(state.range(0));
    const char msg[] = "0123456789abcdef0123456789abcdef";  // 32 bytes
    std::vector<char> drain(1 << 20);
    std::size_t writes = 0;
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; ++i) sender->write(std::string_view(msg, 32));
        sender->doWrite();
        writes += n;
        state.PauseTiming();
        while (::read(sv[1], drain.data(), drain.size()) > 0) {}
        state.ResumeTiming();
    }
    state.counters["writev_per_iteration"] =
        benchmark::Counter(static_cast<double>(sender->writevCalls) / static_cast<double>(state.iterations()));
    state.SetItemsProcessed(static_cast<std::int64_t>(writes));
    reactor->removeAll();
    sender->connectionLost(weft::Failure(weft::ConnectionDone()));
    ::close(sv[1]);
}

}  // namespace

BENCHMARK(BM_StreamThroughFileDescriptor)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_StreamPlainLoop)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SmallWritesOneWritev)->Arg(16)->Arg(256);
BENCHMARK_MAIN();
