// Timer heap cost with 1k, 100k and 1M calls pending: insert, cancel, fire.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include <weft/internet/base.hpp>

namespace {

std::vector<weft::DelayedCall> fill(weft::Reactor& r, std::int64_t n, std::mt19937& rng) {
    std::uniform_real_distribution<double> when(100.0, 10000.0);
    std::vector<weft::DelayedCall> calls;
    calls.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) calls.push_back(r.callLater(when(rng), [] {}));
    return calls;
}

void cancelAll(std::vector<weft::DelayedCall>& calls) {
    for (auto& c : calls)
        if (c.active()) c.cancel();
}

// Schedules one call into a heap of N pending calls and cancels it again, so N
// stays fixed; both operations are O(log N). (Timing them apart would need
// PauseTiming, whose own cost is larger than either.)
void BM_TimerInsertCancel(benchmark::State& state) {
    auto r = weft::Reactor::create(weft::Backend::epoll);
    std::mt19937 rng(42);
    auto calls = fill(*r, state.range(0), rng);
    std::uniform_real_distribution<double> when(100.0, 10000.0);
    for (auto _ : state) {
        auto c = r->callLater(when(rng), [] {});
        c.cancel();
    }
    state.SetItemsProcessed(state.iterations());
    cancelAll(calls);
}

// Moves one pending call to a new random time in a heap of N (DelayedCall::reset).
void BM_TimerReset(benchmark::State& state) {
    auto r = weft::Reactor::create(weft::Backend::epoll);
    std::mt19937 rng(7);
    auto calls = fill(*r, state.range(0), rng);
    std::uniform_real_distribution<double> when(100.0, 10000.0);
    std::uniform_int_distribution<std::size_t> pick(0, calls.size() - 1);
    for (auto _ : state) calls[pick(rng)].reset(when(rng));
    state.SetItemsProcessed(state.iterations());
    cancelAll(calls);
}

// Schedules N calls that are all due, then fires them in one reactor iteration.
void BM_TimerFire(benchmark::State& state) {
    auto r = weft::Reactor::create(weft::Backend::epoll);
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> jitter(0.0, 1e-6);
    std::int64_t fired = 0;
    for (auto _ : state) {
        state.PauseTiming();
        for (std::int64_t i = 0; i < state.range(0); ++i) r->callLater(jitter(rng), [&fired] { ++fired; });
        while (r->timeout() && *r->timeout() > 0) {}  // let the jitter elapse
        state.ResumeTiming();
        r->iterate(0);
    }
    if (fired != state.range(0) * static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("not all calls fired");
    state.SetItemsProcessed(fired);
}

}  // namespace

BENCHMARK(BM_TimerInsertCancel)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_TimerReset)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_TimerFire)->Arg(1000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_MAIN();
