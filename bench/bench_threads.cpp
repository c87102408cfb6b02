// callFromThread throughput from 1 and 4 producer threads, and the cost of
// waking an idle reactor on each backend.
#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>
#include <vector>

#include <weft/internet/base.hpp>

namespace {

constexpr std::int64_t kCallsPerThread = 200000;

// Producers each queue kCallsPerThread calls; the reactor runs until all ran.
void BM_CallFromThread(benchmark::State& state) {
    const auto producers = static_cast<int>(state.range(0));
    std::int64_t total = 0;
    for (auto _ : state) {
        auto r = weft::Reactor::create(weft::Backend::epoll);
        std::int64_t received = 0;
        const std::int64_t expected = kCallsPerThread * producers;
        std::vector<std::thread> threads;
        r->callWhenRunning([&] {
            for (int p = 0; p < producers; ++p)
                threads.emplace_back([&] {
                    for (std::int64_t i = 0; i < kCallsPerThread; ++i)
                        r->callFromThread([&] {
                            if (++received == expected) r->stop();
                        });
                });
        });
        r->run(false);
        for (auto& t : threads) t.join();
        total += received;
    }
    state.SetItemsProcessed(total);
}

// Round trip: another thread wakes the idle reactor with callFromThread; the
// call answers through an atomic the thread spins on. Measures wake-up latency
// of a reactor blocked in its readiness wait, with 100 idle descriptors registered.
void BM_IdleWakeup(benchmark::State& state) {
    auto backend = static_cast<weft::Backend>(state.range(0));
    auto r = weft::Reactor::create(backend);
    struct Idle final : weft::IReadDescriptor {
        int fds[2];
        Idle() { [[maybe_unused]] int rc = ::pipe(fds); }
        ~Idle() override {
            ::close(fds[0]);
            ::close(fds[1]);
        }
        int fileno() const override { return fds[0]; }
        weft::Reason doRead() override { return std::nullopt; }
        void connectionLost(const weft::Failure&) override {}
    };
    std::vector<std::shared_ptr<Idle>> idle;
    for (int i = 0; i < 100; ++i) {
        idle.push_back(std::make_shared<Idle>());
        r->addReader(idle.back());
    }
    std::atomic<std::int64_t> answered{0};
    std::thread loop([&] { r->run(false); });
    while (!r->running()) std::this_thread::yield();
    std::int64_t n = 0;
    for (auto _ : state) {
        ++n;
        r->callFromThread([&answered] { answered.fetch_add(1, std::memory_order_release); });
        while (answered.load(std::memory_order_acquire) != n) {}
    }
    r->callFromThread([&] {
        r->removeAll();
        r->stop();
    });
    loop.join();
    state.SetItemsProcessed(n);
    state.SetLabel(std::string(weft::backendName(backend)));
}

}  // namespace

BENCHMARK(BM_CallFromThread)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IdleWakeup)
    ->Arg(static_cast<int>(weft::Backend::epoll))
    ->Arg(static_cast<int>(weft::Backend::poll))
    ->Arg(static_cast<int>(weft::Backend::select))
    ->UseRealTime();
BENCHMARK_MAIN();
