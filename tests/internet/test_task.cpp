// task.LoopingCall (reactor.md R-59..R-64), task.deferLater and
// task.Cooperator / cooperate / CooperativeTask (R-66..R-69). Time is a
// task::Clock or a fake scheduler unless a test is about the real reactor.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/task.hpp>
#include <weft/testing/defer.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::task::Clock;
using weft::task::CooperativeTask;
using weft::task::Cooperator;
using weft::task::LoopingCall;
using weft::task::Step;
using weft::test::LeakCheckedTest;
using weft::test::ReactorTest;
using weft::testing::assertNoResult;
using weft::testing::failureResultOf;
using weft::testing::successResultOf;

namespace {

struct TestException : std::runtime_error {
    explicit TestException(const std::string& what = "test") : std::runtime_error(what) {}
};

// Twisted test_cooperator.py FakeScheduler: ticks run only when pump() is called.
struct FakeScheduler {
    struct Unit {
        Function<void()> tick;
        bool cancelled = false;
    };
    std::vector<std::shared_ptr<Unit>> work;
    int scheduled = 0;

    Cooperator::Scheduler scheduler() {
        return [this](Function<void()> tick) -> Function<void()> {
            auto u = std::make_shared<Unit>();
            u->tick = std::move(tick);
            work.push_back(u);
            ++scheduled;
            return [u] { u->cancelled = true; };
        };
    }
    std::size_t live() const {
        std::size_t n = 0;
        for (auto& u : work) n += u->cancelled ? 0 : 1;
        return n;
    }
    void pump() {
        auto units = std::move(work);
        work.clear();
        for (auto& u : units)
            if (!u->cancelled) u->tick();
    }
};

// One step per tick (Twisted RunStateTests: terminationPredicateFactory=lambda: lambda: True).
Cooperator::TerminationPredicateFactory oneStepPerTick() {
    return [] { return Function<bool()>([] { return true; }); };
}

// Calls f with the Failure d ends with, if any, and handles it.
template <class T, class F>
void onFailure(Deferred<T> d, F f) {
    d.addBoth([f = std::move(f)](Result<T> r) mutable {
        if (!r.ok()) f(r.failure());
    });
}

}  // namespace

class LoopingCallTest : public LeakCheckedTest {
protected:
    Clock clock;
    std::vector<double> times;
    Function<void()> recordTime() {
        return [this] { times.push_back(clock.seconds()); };
    }
};

// ---- R-59 ------------------------------------------------------------------

TEST_F(LoopingCallTest, R_59_startWithNowCallsSynchronously) {
    // start(interval, now=true) calls f inside start() and returns a Deferred; later calls follow the interval.
    LoopingCall lc(clock, recordTime());
    EXPECT_FALSE(lc.running());
    Deferred<LoopingCall*> d = lc.start(1.0);
    EXPECT_EQ(times, std::vector<double>{0});
    EXPECT_TRUE(lc.running());
    EXPECT_EQ(lc.interval(), 1.0);
    assertNoResult(d);
    clock.advance(1);
    EXPECT_EQ(times, (std::vector<double>{0, 1}));
    lc.stop();
    EXPECT_EQ(successResultOf(d), &lc);
}

TEST_F(LoopingCallTest, R_59_basicFunctionWithArguments) {
    // LoopingCall(f, args...) calls f(args...) each time; stop() fires the Deferred with the LoopingCall.
    std::vector<std::pair<std::string, int>> calls;
    LoopingCall lc(
        clock, [&](const std::string& a, int b) { calls.emplace_back(a, b); }, std::string("a"), 7);
    Deferred<LoopingCall*> d = lc.start(0.1);
    clock.pump({0.05, 0.1, 0.1});
    ASSERT_EQ(calls.size(), 3u);
    for (auto& c : calls) EXPECT_EQ(c, std::make_pair(std::string("a"), 7));
    lc.stop();
    EXPECT_EQ(successResultOf(d), &lc);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_59_delayedStartWaitsOneInterval) {
    // with now=false the first call happens after `interval`, not inside start().
    LoopingCall lc(clock, recordTime());
    Deferred<LoopingCall*> d = lc.start(0.1, false);
    EXPECT_TRUE(times.empty());
    clock.pump({0.05, 0.1, 0.1});
    EXPECT_EQ(times.size(), 2u);
    lc.stop();
    EXPECT_EQ(successResultOf(d), &lc);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_59_badIntervalThrowsAndChangesNothing) {
    // a negative interval throws std::invalid_argument (so do NaN and infinity); nothing is called or scheduled.
    LoopingCall lc(clock, recordTime());
    EXPECT_THROW(lc.start(-1), std::invalid_argument);
    EXPECT_THROW(lc.start(-1e-9, false), std::invalid_argument);
    EXPECT_THROW(lc.start(std::nan("")), std::invalid_argument);
    EXPECT_THROW(lc.start(std::numeric_limits<double>::infinity()), std::invalid_argument);
    EXPECT_FALSE(lc.running());
    EXPECT_TRUE(times.empty());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    // The loop is still usable.
    Deferred<LoopingCall*> d = lc.start(1);
    EXPECT_EQ(times.size(), 1u);
    lc.stop();
    EXPECT_EQ(successResultOf(d), &lc);
}

TEST_F(LoopingCallTest, R_59_startingARunningLoopThrows) {
    // start() on a running loop throws (std::logic_error); the running loop and its Deferred are unaffected.
    LoopingCall lc(clock, recordTime());
    Deferred<LoopingCall*> d = lc.start(1, false);
    EXPECT_THROW(lc.start(1), std::logic_error);
    EXPECT_THROW(lc.start(5, false), std::logic_error);
    EXPECT_TRUE(times.empty());
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    EXPECT_EQ(lc.interval(), 1.0);
    clock.advance(1);
    EXPECT_EQ(times.size(), 1u);
    lc.stop();
    EXPECT_EQ(successResultOf(d), &lc);
}

TEST_F(LoopingCallTest, R_59_restartAfterStop) {
    // a stopped loop can be started again; the new start() returns a new Deferred and a new interval.
    LoopingCall lc(clock, recordTime());
    Deferred<LoopingCall*> first = lc.start(1);
    lc.stop();
    EXPECT_EQ(successResultOf(first), &lc);
    Deferred<LoopingCall*> second = lc.start(2, false);
    EXPECT_FALSE(second == first);
    clock.advance(2);
    EXPECT_EQ(times, (std::vector<double>{0, 2}));
    lc.stop();
    EXPECT_EQ(successResultOf(second), &lc);
}

class LoopingCallReactorTest : public ReactorTest {};

TEST_P(LoopingCallReactorTest, R_59_theReactorIsTheClock) {
    // the clock is injectable; constructed with a Reactor (Twisted's default clock) it runs on the reactor.
    int calls = 0;
    LoopingCall* self = nullptr;
    LoopingCall lc(reactor(), [&] {
        if (++calls == 3) lc.stop();
    });
    EXPECT_EQ(&lc.clock(), static_cast<IReactorTime*>(&reactor()));
    lc.start(0.01).addCallback([&](LoopingCall* l) {
        self = l;
        reactor().stop();
    });
    runReactor();
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(self, &lc);
    EXPECT_FALSE(lc.running());
}

TEST_P(LoopingCallReactorTest, R_60_intervalZeroRunsOncePerReactorIteration) {
    // interval 0 runs f once per reactor iteration.
    int calls = 0;
    LoopingCall lc(reactor(), [&] { ++calls; });
    Deferred<LoopingCall*> d = lc.start(0);
    EXPECT_EQ(calls, 1);
    reactor().iterate(0);
    EXPECT_EQ(calls, 2);
    reactor().iterate(0);
    EXPECT_EQ(calls, 3);
    lc.stop();
    EXPECT_EQ(successResultOf(d), &lc);
    reactor().iterate(0);
    EXPECT_EQ(calls, 3);
}

TEST_P(LoopingCallReactorTest, R_60_everyIterationUntilStopped) {
    // with interval 0 on a running reactor, f runs on successive iterations until stop() (testEveryIteration).
    int calls = 0;
    LoopingCall lc(reactor(), [&] {
        if (++calls > 5) lc.stop();
    });
    lc.start(0).addCallback([&](LoopingCall*) { reactor().stop(); });
    runReactor();
    EXPECT_EQ(calls, 6);
}

INSTANTIATE_TEST_SUITE_P(Backends, LoopingCallReactorTest, weft::test::allBackends(), weft::test::backendParamName);

// ---- R-60 ------------------------------------------------------------------

TEST_F(LoopingCallTest, R_60_nextRunIsTheNextMultipleOfTheInterval) {
    // the next run is at the next multiple of interval after the start time that is strictly in the future.
    clock.advance(10);  // the start time need not be 0
    LoopingCall lc(clock, recordTime());
    lc.start(1, false);
    ASSERT_EQ(clock.getDelayedCalls().size(), 1u);
    EXPECT_DOUBLE_EQ(clock.getDelayedCalls()[0].getTime(), 11);
    clock.advance(1.3);
    EXPECT_EQ(times.size(), 1u);
    ASSERT_EQ(clock.getDelayedCalls().size(), 1u);
    EXPECT_DOUBLE_EQ(clock.getDelayedCalls()[0].getTime(), 12);
    lc.stop();
}

TEST_F(LoopingCallTest, R_60_reactorTimeSkipsAreNotReplayed) {
    // intervals missed because the clock jumped are skipped, not replayed (test_reactorTimeSkips).
    LoopingCall lc(clock, recordTime());
    lc.start(0.5);
    EXPECT_EQ(times, std::vector<double>{0});
    clock.advance(2);
    EXPECT_EQ(times, (std::vector<double>{0, 2}));
    clock.advance(1);
    EXPECT_EQ(times, (std::vector<double>{0, 2, 3}));
    clock.advance(0);
    EXPECT_EQ(times, (std::vector<double>{0, 2, 3}));
    lc.stop();
}

TEST_F(LoopingCallTest, R_60_callbackTimeSkipsAreNotReplayed) {
    // when f itself runs longer than the interval, the next run is the next multiple still in the future.
    double callDuration = 2;
    LoopingCall lc(clock, [&] {
        times.push_back(clock.seconds());
        clock.advance(callDuration);
    });
    lc.start(0.5);
    EXPECT_EQ(times, std::vector<double>{0});
    EXPECT_EQ(clock.seconds(), 2);
    clock.advance(0);  // 2.0 is now, not the future: skipped
    EXPECT_EQ(times, std::vector<double>{0});
    callDuration = 1;
    clock.advance(0.5);
    EXPECT_EQ(times, (std::vector<double>{0, 2.5}));
    EXPECT_EQ(clock.seconds(), 3.5);
    clock.advance(0);
    EXPECT_EQ(times, (std::vector<double>{0, 2.5}));
    callDuration = 0;
    clock.advance(0.5);
    EXPECT_EQ(times, (std::vector<double>{0, 2.5, 4}));
    lc.stop();
}

TEST_F(LoopingCallTest, R_60_intervalZeroOnAClockRunsUntilStopped) {
    // interval 0 reschedules with callLater(0); on a Clock those calls run within the same advance(0).
    int calls = 0;
    LoopingCall lc(clock, [&] {
        if (++calls == 5) lc.stop();
    });
    Deferred<LoopingCall*> d = lc.start(0, false);
    EXPECT_EQ(calls, 0);
    clock.advance(0);
    EXPECT_EQ(calls, 5);
    EXPECT_EQ(successResultOf(d), &lc);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

// ---- R-61 ------------------------------------------------------------------

TEST_F(LoopingCallTest, R_61_returnedDeferredDelaysTheNextCall) {
    // if f returns a Deferred, nothing is scheduled until it fires (testWaitDeferred).
    std::vector<Deferred<int>> pending;
    LoopingCall lc(clock, [&] {
        times.push_back(clock.seconds());
        Deferred<int> d;
        pending.push_back(d);
        return d;
    });
    lc.start(0.2);
    EXPECT_EQ(times.size(), 1u);
    EXPECT_TRUE(clock.getDelayedCalls().empty());  // nothing scheduled while f's Deferred is pending
    clock.pump({0.2, 0.2, 0.2, 0.2, 0.2});
    EXPECT_EQ(times.size(), 1u);
    pending[0].callback(42);  // at t=1.0: next multiple strictly later is 1.2
    ASSERT_EQ(clock.getDelayedCalls().size(), 1u);
    EXPECT_DOUBLE_EQ(clock.getDelayedCalls()[0].getTime(), 1.2);
    clock.advance(0.2);
    EXPECT_EQ(times.size(), 2u);
    lc.stop();  // stopped while the second Deferred is pending
    pending[1].callback(0);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_61_throwingFunctionStopsTheLoopAndFailsTheDeferred) {
    // if f throws, the loop stops (running false) and the start Deferred fails with that error.
    int calls = 0;
    LoopingCall lc(clock, [&] {
        if (++calls == 2) throw TestException("second");
    });
    Deferred<LoopingCall*> d = lc.start(0.1);
    clock.advance(0.1);
    EXPECT_FALSE(lc.running());
    Failure f = failureResultOf<TestException>(d);
    EXPECT_EQ(f.getErrorMessage(), std::string("second"));
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(1);
    EXPECT_EQ(calls, 2);
    EXPECT_THROW(lc.stop(), std::logic_error);
}

TEST_F(LoopingCallTest, R_61_throwOnTheFirstSynchronousCall) {
    // a throw from the call made inside start() fails the returned Deferred before start() returns.
    LoopingCall lc(clock, [] { throw TestException(); });
    Deferred<LoopingCall*> d = lc.start(0.1);
    EXPECT_FALSE(lc.running());
    failureResultOf<TestException>(d);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_61_failedDeferredPropagates) {
    // if f's Deferred fails, the loop stops and the start Deferred fails with that error (testFailurePropagation).
    LoopingCall lc(clock, [&] {
        Deferred<void> d;
        clock.callLater(0.3, [d]() mutable { d.errback(TestException("late")); });
        return d;
    });
    Deferred<LoopingCall*> d = lc.start(1);
    assertNoResult(d);
    clock.pump({0.3});
    EXPECT_FALSE(lc.running());
    EXPECT_EQ(failureResultOf<TestException>(d).getErrorMessage(), std::string("late"));
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_61_failureWinsOverStopInsideTheFunction) {
    // f calling stop() and then throwing still fails the start Deferred with f's error (testFailAndStop).
    LoopingCall lc(clock, [&] {
        lc.stop();
        throw TestException("after stop");
    });
    Deferred<LoopingCall*> d = lc.start(0.1, false);
    clock.advance(0.1);
    EXPECT_FALSE(lc.running());
    EXPECT_EQ(failureResultOf<TestException>(d).getErrorMessage(), std::string("after stop"));
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

// ---- R-62 ------------------------------------------------------------------

TEST_F(LoopingCallTest, R_62_stopBeforeTheFirstCallPreventsEveryCall) {
    // stop() cancels the pending call; no call runs after stop() (testStopAtOnce, testStoppingBeforeDelayedStart).
    for (double interval : {0.0, 10.0}) {
        int calls = 0;
        LoopingCall lc(clock, [&] { ++calls; });
        Deferred<LoopingCall*> d = lc.start(interval, false);
        lc.stop();
        EXPECT_FALSE(lc.running());
        EXPECT_EQ(successResultOf(d), &lc);
        EXPECT_TRUE(clock.getDelayedCalls().empty());
        clock.advance(20);
        EXPECT_EQ(calls, 0) << "interval " << interval;
    }
}

TEST_F(LoopingCallTest, R_62_stopFromAnotherCallBeforeTheLoopRuns) {
    // stop() from another timed call prevents the loop's pending call (testStopAtOnceLater).
    int calls = 0;
    LoopingCall lc(clock, [&] { ++calls; });
    Deferred<LoopingCall*> d = lc.start(1, false);
    clock.callLater(0, [&] { lc.stop(); });
    clock.advance(0);
    EXPECT_EQ(successResultOf(d), &lc);
    clock.advance(5);
    EXPECT_EQ(calls, 0);
}

TEST_F(LoopingCallTest, R_62_stopInsideTheFunctionFiresAfterItReturns) {
    // stop() called while f runs fires the start Deferred when f returns; no further call.
    int calls = 0;
    bool returned = false;
    Deferred<LoopingCall*> d = Deferred<LoopingCall*>();
    LoopingCall lc(clock, [&] {
        ++calls;
        lc.stop();
        EXPECT_FALSE(d.called());  // not on f's stack
        returned = true;
    });
    d = lc.start(1, false);
    d.addCallback([&](LoopingCall* l) {
        EXPECT_TRUE(returned);
        return l;
    });
    clock.advance(1);
    EXPECT_EQ(successResultOf(d), &lc);
    clock.advance(5);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_62_stopWhileTheDeferredIsPendingFiresWhenItFinishes) {
    // stop() while f's Deferred is in progress: the start Deferred fires only when that Deferred fires.
    Deferred<void> inner;
    int calls = 0;
    LoopingCall lc(clock, [&] {
        ++calls;
        return inner;
    });
    Deferred<LoopingCall*> d = lc.start(1);
    lc.stop();
    EXPECT_FALSE(lc.running());
    assertNoResult(d);
    inner.callback();
    EXPECT_EQ(successResultOf(d), &lc);
    clock.advance(5);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_62_stopOnAStoppedLoopThrows) {
    // stop() on a loop that is not running throws std::logic_error (never started, or already stopped).
    LoopingCall lc(clock, [] {});
    EXPECT_THROW(lc.stop(), std::logic_error);
    Deferred<LoopingCall*> d = lc.start(1);
    lc.stop();
    EXPECT_THROW(lc.stop(), std::logic_error);
    EXPECT_EQ(successResultOf(d), &lc);
}

TEST_F(LoopingCallTest, R_62_destroyingARunningLoopCancelsItsCall) {
    // R-62 (RAII): destroying a running LoopingCall cancels its pending call; f never runs again.
    int calls = 0;
    auto lc = std::make_unique<LoopingCall>(clock, [&] { ++calls; });
    Deferred<LoopingCall*> d = lc->start(1);
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    lc.reset();
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(5);
    EXPECT_EQ(calls, 1);
    assertNoResult(d);  // dropped unfired, never fired with a dangling pointer
}

TEST_F(LoopingCallTest, R_62_destroyingTheLoopInsideItsFunctionIsSafe) {
    // R-62 (RAII): f may destroy its own LoopingCall; the function object lives until f returns (ASan checks).
    auto alive = std::make_shared<int>(0);
    std::unique_ptr<LoopingCall> lc;
    lc = std::make_unique<LoopingCall>(clock, [&, alive] {
        ++*alive;
        lc.reset();
        ++*alive;  // touches the captured state after the owner is gone
    });
    lc->start(1, false);
    std::weak_ptr<int> watch = alive;
    alive.reset();
    clock.advance(1);
    EXPECT_EQ(lc, nullptr);
    EXPECT_TRUE(watch.expired());  // the function (and what it captured) is gone now
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_62_destroyingTheLoopInsideThePendingDeferredIsSafe) {
    // R-62 (RAII): destroying the loop while f's Deferred is pending drops it; firing that Deferred later is harmless.
    Deferred<void> inner;
    auto lc = std::make_unique<LoopingCall>(clock, [&] { return inner; });
    lc->start(1);
    lc.reset();
    inner.callback();
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_62_destroyingTheLoopFromTheStopCallbackIsSafe) {
    // the start Deferred's callback may destroy the LoopingCall that stop() is running on.
    auto lc = std::make_unique<LoopingCall>(clock, [] {});
    bool fired = false;
    lc->start(1).addCallback([&](LoopingCall* l) {
        EXPECT_EQ(l, lc.get());
        fired = true;
        lc.reset();
    });
    lc->stop();
    EXPECT_TRUE(fired);
    EXPECT_EQ(lc, nullptr);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(LoopingCallTest, R_62_restartWhileThePreviousCallIsInProgressThrows) {
    // after stop() the previous run is still in progress until f's Deferred fires; start() meanwhile throws.
    Deferred<void> inner;
    LoopingCall lc(clock, [&] { return inner; });
    Deferred<LoopingCall*> d = lc.start(1);
    lc.stop();
    EXPECT_THROW(lc.start(1), std::logic_error);
    inner.callback();
    EXPECT_EQ(successResultOf(d), &lc);
}

// ---- R-63 ------------------------------------------------------------------

TEST_F(LoopingCallTest, R_63_resetRestartsTheIntervalFromNow) {
    // reset() cancels the pending run and restarts the interval: start 2 s at t0, reset at t1 -> next run at t3.
    LoopingCall lc(clock, recordTime());
    lc.start(2, false);
    clock.advance(1);
    lc.reset();
    clock.advance(1);
    EXPECT_TRUE(times.empty());
    clock.advance(1);
    EXPECT_EQ(times, std::vector<double>{3});
    clock.advance(2);
    EXPECT_EQ(times, (std::vector<double>{3, 5}));
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    lc.stop();
}

TEST_F(LoopingCallTest, R_63_resetOnAStoppedLoopThrows) {
    // reset() requires a running loop (Twisted asserts); otherwise std::logic_error.
    LoopingCall lc(clock, [] {});
    EXPECT_THROW(lc.reset(), std::logic_error);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

// ---- R-64 ------------------------------------------------------------------

class WithCountTest : public LoopingCallTest {
protected:
    std::vector<std::pair<double, int>> counts;
};

TEST_F(WithCountTest, R_64_countsSkippedIntervals) {
    // withCount passes the number of intervals elapsed since the previous call (test_reactorTimeCountSkips).
    auto lc = LoopingCall::withCount(clock, [&](int n) { counts.emplace_back(clock.seconds(), n); });
    lc.start(0.5);
    EXPECT_EQ(counts, (std::vector<std::pair<double, int>>{{0, 1}}));
    clock.advance(0.51);
    ASSERT_EQ(counts.size(), 2u);
    EXPECT_EQ(counts[1].second, 1);
    clock.advance(1.51);
    ASSERT_EQ(counts.size(), 3u);
    EXPECT_DOUBLE_EQ(counts[2].first, 2.02);
    EXPECT_EQ(counts[2].second, 3);
    clock.advance(0);
    EXPECT_EQ(counts.size(), 3u);
    lc.stop();
}

TEST_F(WithCountTest, R_64_lengthyGapsCountOnlyWholeIntervals) {
    // the count only grows for whole intervals missed; being late by less than one interval still counts 1.
    auto lc = LoopingCall::withCount(clock, [&](int n) { counts.emplace_back(clock.seconds(), n); });
    lc.start(0.5);
    clock.advance(0.51);
    clock.advance(0.875);  // invoked at 1.385 (2.77 T): no interval fully missed
    clock.advance(0.125);
    ASSERT_EQ(counts.size(), 4u);
    EXPECT_EQ(counts[1].second, 1);
    EXPECT_EQ(counts[2].second, 1);
    EXPECT_EQ(counts[3].second, 1);
    lc.stop();
}

TEST_F(WithCountTest, R_64_floatingPointBoundaryNeverPassesZero) {
    // n >= 1 always, and the counts add up to the intervals elapsed, also with inexact intervals like 0.1.
    std::vector<int> acc;
    auto lc = LoopingCall::withCount(clock, [&](int n) { acc.push_back(n); });
    const int count = 10;
    const double interval = 1.0 / count;
    lc.start(interval, false);
    for (int i = 0; i < count; ++i) clock.advance(interval);
    double sum = 0;
    for (int i = 0; i < count; ++i) sum += interval;
    double epsilon = 1.0 - sum;
    ASSERT_NE(epsilon, 0.0) << "the test needs an inexact interval";
    clock.advance(std::fabs(epsilon));
    ASSERT_GE(clock.seconds(), 1.0);
    int total = 0;
    for (int n : acc) {
        EXPECT_GE(n, 1);
        total += n;
    }
    EXPECT_EQ(total, count);
    lc.stop();
}

TEST_F(WithCountTest, R_64_roundingBelowOneIntervalSkipsTheCallInsteadOfPassingZero) {
    // n >= 1 — when rounding makes a due run look less than one interval old, g is not called with 0.
    clock.advance(0.7);  // (0.7 + 0.1 - 0.7) / 0.1 < 1 in binary floating point
    std::vector<int> acc;
    auto lc = LoopingCall::withCount(clock, [&](int n) { acc.push_back(n); });
    lc.start(0.1, false);
    for (int i = 0; i < 10; ++i) clock.advance(0.1);
    ASSERT_FALSE(acc.empty());
    for (int n : acc) EXPECT_GE(n, 1);
    lc.stop();
}

TEST_F(WithCountTest, R_64_intervalZeroAlwaysCountsOne) {
    // with interval 0 the count is always 1, even after a Deferred kept the loop waiting.
    std::vector<int> acc;
    Deferred<void> wait;
    LoopingCall* self = nullptr;
    auto lc = LoopingCall::withCount(clock, [&](int n) -> Deferred<void> {
        acc.push_back(n);
        if (acc.size() == 2) return wait;
        if (acc.size() > 4) self->stop();
        return succeed();
    });
    self = &lc;
    Deferred<LoopingCall*> d = lc.start(0, false);
    clock.advance(0);
    EXPECT_EQ(acc, (std::vector<int>{1, 1}));
    clock.advance(2);
    EXPECT_EQ(acc, (std::vector<int>{1, 1}));
    wait.callback();
    clock.advance(0);
    EXPECT_EQ(acc, (std::vector<int>{1, 1, 1, 1, 1}));
    EXPECT_EQ(successResultOf(d), &lc);
}

TEST_F(WithCountTest, R_64_intervalsMissedWhileADeferredWasPendingAreCounted) {
    // intervals skipped while f's Deferred was pending are included in the next count (test_deferredWithCount).
    Deferred<void> wait;
    std::vector<int> acc;
    auto lc = LoopingCall::withCount(clock, [&](int n) -> Deferred<void> {
        acc.push_back(n);
        return acc.size() == 1 ? wait : succeed();
    });
    lc.start(0.2, false);
    EXPECT_TRUE(acc.empty());
    clock.pump({0.2, 0.4});
    EXPECT_EQ(acc.size(), 1u);
    wait.callback();
    clock.pump({0.2});
    EXPECT_EQ(acc, (std::vector<int>{1, 3}));
    lc.stop();
}

// ---- R-65 ------------------------------------------------------------------

class DeferLaterTest : public LeakCheckedTest {
protected:
    Clock clock;
};

TEST_F(DeferLaterTest, R_65_firesWithTheFunctionsResultAfterTheDelay) {
    // deferLater(clock, delay, f, args...) fires after `delay` with f(args...)'s result.
    std::vector<std::string> calls;
    Deferred<int> d = task::deferLater(
        clock, 3,
        [&](const std::string& foo, const std::string& bar) {
            calls.push_back(foo + bar);
            return 42;
        },
        std::string("foo"), std::string("bar"));
    clock.advance(2);
    EXPECT_TRUE(calls.empty());
    assertNoResult(d);
    clock.advance(1);
    EXPECT_EQ(calls, std::vector<std::string>{"foobar"});
    EXPECT_EQ(successResultOf(d), 42);
}

TEST_F(DeferLaterTest, R_65_throwingFunctionFailsTheDeferred) {
    // if f throws, the Deferred fails with what it threw.
    Deferred<void> d = task::deferLater(clock, 1, [] { throw TestException("boom"); });
    clock.advance(1);
    EXPECT_EQ(failureResultOf<TestException>(d).getErrorMessage(), std::string("boom"));
}

TEST_F(DeferLaterTest, R_65_cancelCancelsTheTimer) {
    // cancelling the Deferred cancels the timer (no pending call) and fails it with CancelledError.
    bool called = false;
    Deferred<void> d = task::deferLater(clock, 1, [&] { called = true; });
    ASSERT_EQ(clock.getDelayedCalls().size(), 1u);
    d.cancel();
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    failureResultOf<defer::CancelledError>(d);
    clock.advance(2);
    EXPECT_FALSE(called);
}

TEST_F(DeferLaterTest, R_65_withoutAFunctionFiresWithNothing) {
    // without f the Deferred fires with nothing (Twisted: None) after the delay.
    Deferred<void> d = task::deferLater(clock, 2.0);
    assertNoResult(d);
    clock.advance(1.999);
    assertNoResult(d);
    clock.advance(0.001);
    successResultOf(d);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(DeferLaterTest, R_65_cancelAfterFiringChangesNothing) {
    // once fired, cancel() is a no-op: the result stays and nothing is left scheduled.
    Deferred<int> d = task::deferLater(clock, 1, [] { return 5; });
    clock.advance(1);
    d.cancel();
    EXPECT_EQ(successResultOf(d), 5);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(DeferLaterTest, R_65_functionReturningADeferredIsWaitedFor) {
    // f's result is the Deferred's result; a Deferred f returns is waited for.
    Deferred<std::string> inner;
    Deferred<std::string> d = task::deferLater(clock, 1, [&] { return inner; });
    clock.advance(1);
    assertNoResult(d);
    inner.callback("late");
    EXPECT_EQ(successResultOf(d), "late");
}

TEST_F(DeferLaterTest, R_65_badDelayThrows) {
    // R-65 (setup error): a negative or NaN delay throws std::invalid_argument at once; nothing is scheduled.
    bool called = false;
    EXPECT_THROW(task::deferLater(clock, -1), std::invalid_argument);
    EXPECT_THROW(task::deferLater(clock, std::nan(""), [&] { called = true; }), std::invalid_argument);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(1);
    EXPECT_FALSE(called);
}

TEST_F(DeferLaterTest, R_65_droppedHandleStillFires) {
    // the pending timer owns the Deferred, so its chain runs even if the caller dropped the handle.
    bool ran = false;
    task::deferLater(clock, 1).addCallback([&] { ran = true; });
    clock.advance(1);
    EXPECT_TRUE(ran);
}

class DeferLaterReactorTest : public ReactorTest {};

TEST_P(DeferLaterReactorTest, R_65_worksOnTheReactor) {
    // deferLater on a Reactor fires after the delay, in the loop; a cancelled one leaves no pending call.
    double start = reactor().seconds();
    double firedAt = -1;
    Deferred<void> cancelled = task::deferLater(reactor(), 30);
    cancelled.cancel();
    failureResultOf<defer::CancelledError>(cancelled);
    task::deferLater(reactor(), 0.02, [&] { return reactor().seconds(); }).addCallback([&](double t) {
        firedAt = t;
        reactor().stop();
    });
    runReactor();
    EXPECT_GE(firedAt - start, 0.02);
}

INSTANTIATE_TEST_SUITE_P(Backends, DeferLaterReactorTest, weft::test::allBackends(), weft::test::backendParamName);

// ---- R-66 ------------------------------------------------------------------

namespace {
// An iterator that appends each item of `items` to `out`, one per step.
task::Iterator appender(std::vector<std::string> items, std::vector<std::string>& out) {
    return [items = std::move(items), &out, i = std::size_t{0}]() mutable {
        if (i == items.size()) return Step::done();
        out.push_back(items[i++]);
        return Step::more();
    };
}
// An iterator that counts its steps forever.
task::Iterator counter(int& n) {
    return [&n] {
        ++n;
        return Step::more();
    };
}
}  // namespace

class CooperatorTest : public LeakCheckedTest {
protected:
    Clock clock;
    FakeScheduler sched;
};

TEST_F(CooperatorTest, R_66_tasksAreSteppedRoundRobin) {
    // the cooperator steps its tasks round-robin, one item per task per pass (testCooperation).
    Cooperator coop(clock);
    std::vector<std::string> out;
    std::vector<Deferred<std::shared_ptr<task::Iterator>>> done;
    done.push_back(coop.coiterate(appender({"a", "b", "c"}, out)));
    done.push_back(coop.coiterate(appender({"1", "2", "3"}, out)));
    done.push_back(coop.coiterate(appender({"d", "e", "f"}, out)));
    done.push_back(coop.coiterate(appender({"4", "5", "6"}, out)));
    EXPECT_TRUE(out.empty());  // nothing runs inside cooperate()
    for (int i = 0; i < 100 && !clock.getDelayedCalls().empty(); ++i) clock.advance(0.001);
    EXPECT_EQ(out, (std::vector<std::string>{"a", "1", "d", "4", "b", "2", "e", "5", "c", "3", "f", "6"}));
    for (auto& d : done) EXPECT_NE(successResultOf(d), nullptr);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(CooperatorTest, R_66_roundRobinContinuesAcrossTicks) {
    // when a tick ends early, the next tick continues with the next task, not the first one.
    Cooperator coop(sched.scheduler(), true, oneStepPerTick());
    std::vector<std::string> out;
    auto a = coop.cooperate(appender({"a1", "a2", "a3"}, out));
    auto b = coop.cooperate(appender({"b1", "b2", "b3"}, out));
    auto c = coop.cooperate(appender({"c1", "c2", "c3"}, out));
    for (int i = 0; i < 4; ++i) sched.pump();
    EXPECT_EQ(out, (std::vector<std::string>{"a1", "b1", "c1", "a2"}));
    b->stop();  // removing a task keeps the rotation in place
    sched.pump();
    sched.pump();
    EXPECT_EQ(out, (std::vector<std::string>{"a1", "b1", "c1", "a2", "c2", "a3"}));
    coop.stop();
}

TEST_F(CooperatorTest, R_66_ticksAreScheduledWithATinyCallLater) {
    // ticks are scheduled with a tiny callLater on the clock; cooperate() itself runs nothing.
    Cooperator coop(clock);
    int steps = 0;
    auto t = coop.cooperate(counter(steps));
    EXPECT_EQ(steps, 0);
    auto calls = clock.getDelayedCalls();
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_GT(calls[0].getTime(), 0.0);
    EXPECT_LE(calls[0].getTime(), 1e-6);
    clock.advance(1e-6);
    EXPECT_GE(steps, 1);
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);  // still runnable: the next tick is scheduled
    t->stop();
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(CooperatorTest, R_66_aTickEndsAfterAboutTenMilliseconds) {
    // one tick steps tasks for up to 10 ms (default termination predicate), then yields to the reactor.
    Cooperator coop(sched.scheduler());
    int steps = 0;
    auto t = coop.cooperate([&] {
        ++steps;
        std::this_thread::sleep_for(std::chrono::milliseconds(4));
        return steps < 50 ? Step::more() : Step::done();
    });
    sched.pump();
    // Each step takes >= 4 ms, so the 10 ms budget is spent after at most 3 steps.
    EXPECT_GE(steps, 1);
    EXPECT_LE(steps, 3);
    EXPECT_EQ(sched.live(), 1u);
    t->stop();
}

TEST_F(CooperatorTest, R_66_cheapStepsShareOneTick) {
    // a tick keeps stepping while the termination predicate allows it.
    int budget = 7;
    Cooperator coop(sched.scheduler(), true,
                    [&budget] { return Function<bool()>([left = budget]() mutable { return --left == 0; }); });
    int a = 0, b = 0;
    auto ta = coop.cooperate(counter(a));
    auto tb = coop.cooperate(counter(b));
    sched.pump();
    EXPECT_EQ(a + b, budget);
    EXPECT_EQ(a, 4);
    EXPECT_EQ(b, 3);
    coop.stop();
}

TEST_F(CooperatorTest, R_66_noTickWhileNothingIsRunnable) {
    // no tick is scheduled while the cooperator has no runnable task (none, all paused, or all waiting).
    Cooperator coop(clock);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    int steps = 0;
    auto t = coop.cooperate(counter(steps));
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    t->pause();
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    t->resume();
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    t->stop();
    EXPECT_TRUE(clock.getDelayedCalls().empty());

    Deferred<void> gate;
    auto w = coop.cooperate([&gate] { return Step::waitFor(gate); });
    clock.advance(0.001);
    EXPECT_TRUE(clock.getDelayedCalls().empty());  // waiting on a Deferred: nothing to do
    gate.callback();
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    w->stop();
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(CooperatorTest, R_66_removingTheLastTaskCancelsTheTick) {
    // removing the last task cancels the pending tick; adding one schedules a new tick (test_removingLastTask...).
    Cooperator coop(sched.scheduler());
    std::vector<std::string> out;
    auto t1 = coop.cooperate(appender({"1", "2"}, out));
    auto t2 = coop.cooperate(appender({"1", "2"}, out));
    EXPECT_EQ(sched.scheduled, 1);
    EXPECT_EQ(sched.live(), 1u);
    t1->stop();
    EXPECT_EQ(sched.live(), 1u);
    t2->stop();
    EXPECT_EQ(sched.live(), 0u);
    auto t3 = coop.cooperate(appender({"1", "2"}, out));
    EXPECT_EQ(sched.scheduled, 2);
    EXPECT_EQ(sched.live(), 1u);
    t3->stop();
    EXPECT_TRUE(out.empty());
}

TEST_F(CooperatorTest, R_66_cooperateRunsTheIteratorOnTheGivenCooperator) {
    // cooperate(cooperator, iterator) returns a CooperativeTask that the cooperator runs to completion.
    Cooperator coop(clock);
    std::vector<std::string> out;
    auto t = task::cooperate(coop, appender({"1", "2", "3"}, out));
    ASSERT_NE(t, nullptr);
    Deferred<std::shared_ptr<task::Iterator>> d = task::coiterate(coop, appender({"x"}, out));
    for (int i = 0; i < 100 && !clock.getDelayedCalls().empty(); ++i) clock.advance(0.001);
    EXPECT_EQ(out, (std::vector<std::string>{"1", "x", "2", "3"}));
    EXPECT_EQ(successResultOf(t->whenDone()), t->iterator());
    successResultOf(d);
}

TEST_F(CooperatorTest, R_66_emptyIteratorIsRejected) {
    // R-66 (setup error): cooperate() with an empty iterator throws std::invalid_argument and schedules nothing.
    Cooperator coop(clock);
    EXPECT_THROW(coop.cooperate(task::Iterator{}), std::invalid_argument);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(CooperatorTest, R_66_aStepMayDestroyTheCooperator) {
    // R-66 (ownership): a step may destroy the Cooperator; its tasks fail with SchedulerStopped, nothing dangles.
    auto coop = std::make_unique<Cooperator>(sched.scheduler());
    int other = 0;
    auto victim = coop->cooperate(counter(other));
    std::vector<Failure> failures;
    onFailure(victim->whenDone(), [&](const Failure& f) { failures.push_back(f); });
    auto killer = coop->cooperate([&] {
        coop.reset();
        return Step::more();
    });
    onFailure(killer->whenDone(), [&](const Failure& f) { failures.push_back(f); });
    sched.pump();
    sched.pump();
    EXPECT_EQ(coop, nullptr);
    ASSERT_EQ(failures.size(), 2u);
    for (auto& f : failures) EXPECT_TRUE(f.check<task::SchedulerStopped>());
    EXPECT_EQ(sched.live(), 0u);
    EXPECT_THROW(killer->pause(), task::SchedulerStopped);
}

// ---- R-67 ------------------------------------------------------------------

// Twisted RunStateTests: one task whose next step is controlled by the test.
class RunStateTest : public LeakCheckedTest {
protected:
    void SetUp() override {
        LeakCheckedTest::SetUp();
        coop = std::make_unique<Cooperator>(sched.scheduler(), true, oneStepPerTick());
        job = coop->cooperate([this]() -> Step {
            ++i;
            switch (next) {
                case Next::defer: {
                    next = Next::value;
                    Deferred<int> d;
                    deferreds.push_back(d);
                    work.push_back(-1);
                    return Step::waitFor(d);
                }
                case Next::stop: return Step::done();
                case Next::die: throw TestException("unhandled");
                case Next::value: break;
            }
            work.push_back(i);
            return Step::more();
        });
    }
    void TearDown() override {
        coop.reset();
        job.reset();
        LeakCheckedTest::TearDown();
    }
    enum class Next { value, defer, stop, die };
    Next next = Next::value;
    int i = 0;
    std::vector<int> work;
    std::vector<Deferred<int>> deferreds;
    FakeScheduler sched;
    std::unique_ptr<Cooperator> coop;
    std::shared_ptr<CooperativeTask> job;
};

TEST_F(RunStateTest, R_67_whenDoneFiresWithTheIterator) {
    // whenDone() fires with the iterator on exhaustion; each call returns its own Deferred (test_whenDone).
    auto d1 = job->whenDone();
    auto d2 = job->whenDone();
    EXPECT_FALSE(d1 == d2);
    std::vector<std::shared_ptr<task::Iterator>> r1, r2;
    auto f1 = d1.addCallback([&](std::shared_ptr<task::Iterator> it) {
        r1.push_back(it);
        return 1;
    });
    auto f2 = d2.addCallback([&](std::shared_ptr<task::Iterator> it) {
        r2.push_back(it);
        return 2;
    });
    auto expected = job->iterator();
    next = Next::stop;
    sched.pump();
    ASSERT_EQ(r1.size(), 1u);
    ASSERT_EQ(r2.size(), 1u);
    EXPECT_EQ(r1[0], expected);
    EXPECT_EQ(r2[0], expected);
    EXPECT_EQ(successResultOf(f1), 1);
    EXPECT_EQ(successResultOf(f2), 2);
}

TEST_F(RunStateTest, R_67_whenDoneFailsWithTheIteratorsError) {
    // whenDone() fails with the exception the iterator threw (test_whenDoneError, testUnexpectedError).
    auto d = job->whenDone();
    next = Next::die;
    sched.pump();
    EXPECT_EQ(failureResultOf<TestException>(d).getErrorMessage(), std::string("unhandled"));
    EXPECT_EQ(job->iterator(), nullptr);  // a failed task releases its iterator
}

TEST_F(RunStateTest, R_67_whenDoneFailsWithTaskStoppedAfterStop) {
    // whenDone() fails with TaskStopped after stop(), before stop() returns (test_whenDoneStop).
    auto d = job->whenDone();
    job->stop();
    failureResultOf<task::TaskStopped>(d);
}

TEST_F(RunStateTest, R_67_whenDoneAfterTheEndFiresAtOnce) {
    // whenDone() called after completion has already fired (test_whenDoneAlreadyDone).
    next = Next::stop;
    sched.pump();
    EXPECT_EQ(successResultOf(job->whenDone()), job->iterator());
    EXPECT_NE(job->iterator(), nullptr);
}

TEST_F(RunStateTest, R_67_whenDoneAfterAFailureFailsAtOnce) {
    // whenDone() after the task failed or was stopped fails at once with the same kind of error.
    next = Next::die;
    sched.pump();
    failureResultOf<TestException>(job->whenDone());
    failureResultOf<TestException>(job->whenDone());
}

TEST_F(RunStateTest, R_67_aYieldedDeferredPausesTheTask) {
    // a step that yields a Deferred pauses the task until it fires (test_pauseWhileDeferred).
    next = Next::defer;
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{-1});
    EXPECT_EQ(sched.live(), 0u);  // nothing runnable: no tick
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{-1});
    job->pause();
    sched.pump();
    job->resume();
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{-1});
    deferreds[0].callback(7);
    sched.pump();
    EXPECT_EQ(work, (std::vector<int>{-1, 2}));
}

TEST_F(RunStateTest, R_67_pauseWhileWaitingNeedsResumeAndTheDeferred) {
    // a task paused while waiting continues only after the Deferred fired and resume() was called.
    next = Next::defer;
    sched.pump();
    job->pause();
    deferreds[0].callback(1);
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{-1});
    job->resume();
    sched.pump();
    EXPECT_EQ(work, (std::vector<int>{-1, 2}));
}

TEST_F(RunStateTest, R_67_aFailedYieldedDeferredFailsTheTask) {
    // if the yielded Deferred fails, the task fails with that error (testUnexpectedErrorActuallyLater).
    auto d = job->whenDone();
    next = Next::defer;
    sched.pump();
    deferreds[0].errback(TestException("later"));
    EXPECT_EQ(failureResultOf<TestException>(d).getErrorMessage(), std::string("later"));
    EXPECT_THROW(job->pause(), task::TaskFailed);
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{-1});
}

TEST_F(CooperatorTest, R_67_anAlreadyFailedYieldedDeferredFailsTheTask) {
    // yielding an already-failed Deferred fails the task (testUnexpectedErrorNotActuallyLater).
    Cooperator coop(clock);
    auto d = coop.coiterate([] { return Step::waitFor(fail(TestException("now"))); });
    clock.advance(0.001);
    EXPECT_EQ(failureResultOf<TestException>(d).getErrorMessage(), std::string("now"));
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(RunStateTest, R_67_stopWhileWaitingIgnoresTheDeferred) {
    // a task stopped while waiting is not resumed when its Deferred fires; the value is consumed (test_stopDeferred).
    next = Next::defer;
    sched.pump();
    Deferred<int> d = deferreds.back();
    job->stop();
    d.callback(7);
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{-1});
    EXPECT_EQ(sched.live(), 0u);
}

TEST_F(RunStateTest, R_67_stopWhileWaitingSwallowsALaterFailure) {
    // after stop(), a failure of the Deferred the task waited on is consumed, not reported as the task's.
    next = Next::defer;
    sched.pump();
    auto done = job->whenDone();
    job->stop();
    deferreds.back().errback(TestException("ignored"));
    failureResultOf<task::TaskStopped>(done);
    EXPECT_EQ(logs.errorCount(), 0u);
}

TEST_F(RunStateTest, R_67_whenDoneFailsWithSchedulerStopped) {
    // whenDone() fails with SchedulerStopped when the cooperator stops.
    auto d = job->whenDone();
    coop->stop();
    failureResultOf<task::SchedulerStopped>(d);
}

// ---- R-68 ------------------------------------------------------------------

TEST_F(RunStateTest, R_68_pauseAndResume) {
    // a paused task does no work; resume() makes it runnable again on a later tick (test_pauseResume).
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{1});
    sched.pump();
    EXPECT_EQ(work, (std::vector<int>{1, 2}));
    job->pause();
    sched.pump();
    EXPECT_EQ(work, (std::vector<int>{1, 2}));
    job->resume();
    EXPECT_EQ(work, (std::vector<int>{1, 2}));  // resume() itself does no work
    sched.pump();
    EXPECT_EQ(work, (std::vector<int>{1, 2, 3}));
}

TEST_F(RunStateTest, R_68_pausesNest) {
    // two pause() calls need two resume() calls (test_pauseTwice).
    job->pause();
    sched.pump();
    job->pause();
    sched.pump();
    job->resume();
    sched.pump();
    EXPECT_TRUE(work.empty());
    job->resume();
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{1});
}

TEST_F(RunStateTest, R_68_resumeWithoutPauseThrowsNotPaused) {
    // resume() on an unpaused task throws NotPaused (test_resumeNotPaused).
    EXPECT_THROW(job->resume(), task::NotPaused);
    job->pause();
    job->resume();
    EXPECT_THROW(job->resume(), task::NotPaused);
}

TEST_F(RunStateTest, R_68_waitingOnADeferredIsNotAPause) {
    // resume() while the task only waits on a yielded Deferred throws NotPaused and does not run the task early.
    next = Next::defer;
    sched.pump();
    EXPECT_THROW(job->resume(), task::NotPaused);
    sched.pump();
    EXPECT_EQ(work, std::vector<int>{-1});
    deferreds[0].callback(0);
    sched.pump();
    EXPECT_EQ(work, (std::vector<int>{-1, 2}));
}

TEST_F(RunStateTest, R_68_stoppedTaskThrowsTaskStopped) {
    // after stop(), the task does no work and stop()/pause() throw TaskStopped (test_stopStops).
    job->stop();
    sched.pump();
    EXPECT_TRUE(work.empty());
    EXPECT_THROW(job->stop(), task::TaskStopped);
    EXPECT_THROW(job->pause(), task::TaskStopped);
    sched.pump();
    EXPECT_TRUE(work.empty());
}

TEST_F(RunStateTest, R_68_resumingAPausedStoppedTaskDoesNothing) {
    // pause(), stop(), resume(): resume() does not throw and does no work (test_pauseStopResume).
    job->pause();
    job->stop();
    EXPECT_NO_THROW(job->resume());
    sched.pump();
    EXPECT_TRUE(work.empty());
    EXPECT_THROW(job->resume(), task::NotPaused);
}

TEST_F(RunStateTest, R_68_stopAfterExhaustionThrowsTaskDone) {
    // stop() or pause() on an exhausted task throws TaskDone (test_stopExhausted).
    next = Next::stop;
    sched.pump();
    EXPECT_THROW(job->stop(), task::TaskDone);
    EXPECT_THROW(job->pause(), task::TaskDone);
}

TEST_F(RunStateTest, R_68_stopAfterAnErrorThrowsTaskFailed) {
    // stop() or pause() on a task whose iterator threw throws TaskFailed (test_stopErrored).
    auto d = job->whenDone();
    next = Next::die;
    sched.pump();
    EXPECT_THROW(job->stop(), task::TaskFailed);
    EXPECT_THROW(job->pause(), task::TaskFailed);
    failureResultOf<TestException>(d);
}

TEST(TaskErrors, R_68_errorKindsFormTwistedsHierarchy) {
    // TaskDone, TaskStopped and TaskFailed are TaskFinished kinds; all scheduler errors are std::runtime_error kinds.
    static_assert(std::is_base_of_v<task::TaskFinished, task::TaskDone>);
    static_assert(std::is_base_of_v<task::TaskFinished, task::TaskStopped>);
    static_assert(std::is_base_of_v<task::TaskFinished, task::TaskFailed>);
    static_assert(!std::is_base_of_v<task::TaskFinished, task::SchedulerStopped>);
    static_assert(std::is_base_of_v<std::runtime_error, task::TaskFinished>);
    static_assert(std::is_base_of_v<std::runtime_error, task::SchedulerStopped>);
    static_assert(std::is_base_of_v<std::runtime_error, task::NotPaused>);
    Failure f{task::TaskStopped()};
    EXPECT_EQ((f.check<task::TaskDone, task::TaskFinished>()), 2);
    EXPECT_STRNE(task::NotPaused().what(), "");
}

// ---- R-69 ------------------------------------------------------------------

TEST_F(CooperatorTest, R_69_stopFailsEveryRunningTask) {
    // stop() fails every task with SchedulerStopped; none runs to completion (testStopRunning).
    Cooperator coop(clock);
    std::vector<std::string> out;
    std::vector<Deferred<std::shared_ptr<task::Iterator>>> ds;
    for (int i = 0; i < 3; ++i) ds.push_back(coop.coiterate(appender({"0", "1", "2"}, out)));
    coop.stop();
    for (auto& d : ds) failureResultOf<task::SchedulerStopped>(d);  // all of them (Twisted skips every other one)
    EXPECT_FALSE(coop.running());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(1);
    EXPECT_TRUE(out.empty());
}

TEST_F(CooperatorTest, R_69_stopFailsPausedAndWaitingTasks) {
    // stop() also fails tasks that are paused or waiting on a Deferred, at once (testStopOutstanding).
    Cooperator coop(clock);
    Deferred<std::string> outstanding;
    bool stepAfterWait = false;
    auto waiter = coop.cooperate([&, n = 0]() mutable {
        if (n++ == 0) return Step::waitFor(outstanding);
        stepAfterWait = true;
        return Step::more();
    });
    int steps = 0;
    auto paused = coop.cooperate(counter(steps));
    paused->pause();
    clock.advance(0.001);
    auto w = waiter->whenDone();
    auto p = paused->whenDone();
    coop.stop();
    failureResultOf<task::SchedulerStopped>(w);
    failureResultOf<task::SchedulerStopped>(p);
    outstanding.callback("arglebargle");
    EXPECT_NO_THROW(paused->resume());
    clock.advance(1);
    EXPECT_FALSE(stepAfterWait);
    EXPECT_EQ(steps, 0);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(CooperatorTest, R_69_aStoppedCooperatorRejectsNewTasks) {
    // cooperate() on a stopped cooperator completes at once with SchedulerStopped (testStoppedRejectsNewTasks).
    Cooperator coop(clock);
    coop.stop();
    bool called = false;
    auto t = coop.cooperate([&] {
        called = true;
        return Step::done();
    });
    failureResultOf<task::SchedulerStopped>(t->whenDone());
    failureResultOf<task::SchedulerStopped>(coop.coiterate([] { return Step::done(); }));
    EXPECT_THROW(t->pause(), task::SchedulerStopped);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(1);
    EXPECT_FALSE(called);
}

TEST_F(CooperatorTest, R_69_notStartedQueuesWorkUntilStart) {
    // a cooperator built with started=false queues tasks (no tick) until start().
    Cooperator coop(clock, false);
    std::vector<std::string> out;
    auto d = coop.coiterate(appender({"x", "y"}, out));
    EXPECT_FALSE(coop.running());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(1);
    EXPECT_TRUE(out.empty());
    coop.start();
    EXPECT_TRUE(coop.running());
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    for (int i = 0; i < 100 && !clock.getDelayedCalls().empty(); ++i) clock.advance(0.001);
    EXPECT_EQ(out, (std::vector<std::string>{"x", "y"}));
    successResultOf(d);
}

TEST_F(CooperatorTest, R_69_runningIsTrueOnlyBetweenStartAndStop) {
    // running() is true only between start() (or started=true) and stop().
    Cooperator started(clock);
    EXPECT_TRUE(started.running());
    Cooperator notStarted(clock, false);
    EXPECT_FALSE(notStarted.running());
    notStarted.start();
    EXPECT_TRUE(notStarted.running());
    notStarted.stop();
    EXPECT_FALSE(notStarted.running());
    notStarted.start();  // a stopped cooperator may be restarted
    EXPECT_TRUE(notStarted.running());
    std::vector<std::string> out;
    auto d = notStarted.coiterate(appender({"again"}, out));
    for (int i = 0; i < 10 && !clock.getDelayedCalls().empty(); ++i) clock.advance(0.001);
    EXPECT_EQ(out, std::vector<std::string>{"again"});
    successResultOf(d);
}

TEST_F(RunStateTest, R_69_stopInsideAWhenDoneCallbackIsSafe) {
    // a whenDone() callback may stop the cooperator; the finished task is already out of it (test_stopCooperatorReentrancy).
    std::vector<std::string> phases;
    auto expected = job->iterator();
    job->whenDone().addCallback([&](std::shared_ptr<task::Iterator> it) {
        phases.push_back(it == expected ? "iterator" : "other");
        coop->stop();
        coop->stop();  // twice is harmless
        phases.push_back("done");
    });
    next = Next::stop;
    sched.pump();
    EXPECT_EQ(phases, (std::vector<std::string>{"iterator", "done"}));
    EXPECT_FALSE(coop->running());
    EXPECT_THROW(job->stop(), task::TaskDone);
}

TEST_F(CooperatorTest, R_69_stopFromAWhenDoneErrbackDuringStopIsSafe) {
    // stop() is re-entrant: an errback fired by stop() may call stop() or cooperate() again.
    Cooperator coop(clock);
    int a = 0, b = 0;
    auto ta = coop.cooperate(counter(a));
    auto tb = coop.cooperate(counter(b));
    std::vector<std::string> seen;
    onFailure(ta->whenDone(), [&](const Failure& f) {
        seen.push_back(f.check<task::SchedulerStopped>() ? "a stopped" : "a other");
        coop.stop();
        onFailure(coop.coiterate(counter(a)), [&](const Failure& g) {
            seen.push_back(g.check<task::SchedulerStopped>() ? "new rejected" : "new other");
        });
    });
    onFailure(tb->whenDone(),
              [&](const Failure& f) { seen.push_back(f.check<task::SchedulerStopped>() ? "b stopped" : "b other"); });
    coop.stop();
    EXPECT_EQ(seen, (std::vector<std::string>{"a stopped", "new rejected", "b stopped"}));
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(CooperatorTest, R_69_destroyingTheCooperatorStopsIt) {
    // R-69 (RAII): destroying a Cooperator stops it: tasks fail with SchedulerStopped and its tick is cancelled.
    std::shared_ptr<CooperativeTask> t;
    Deferred<std::shared_ptr<task::Iterator>> d;
    {
        Cooperator coop(clock);
        int steps = 0;
        t = coop.cooperate(counter(steps));
        d = t->whenDone();
        EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    }
    failureResultOf<task::SchedulerStopped>(d);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    EXPECT_EQ(t->iterator(), nullptr);
}

class CooperatorReactorTest : public ReactorTest {};

TEST_P(CooperatorReactorTest, R_66_runsOnTheReactor) {
    // a Cooperator on a Reactor runs its tasks to completion in the loop, leaving no pending call.
    Cooperator coop(reactor());
    std::vector<std::string> out;
    coop.coiterate(appender({"a", "b"}, out));
    coop.coiterate(appender({"1", "2", "3"}, out)).addCallback([&](std::shared_ptr<task::Iterator>) {
        reactor().stop();
    });
    runReactor();
    EXPECT_EQ(out, (std::vector<std::string>{"a", "1", "b", "2", "3"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, CooperatorReactorTest, weft::test::allBackends(), weft::test::backendParamName);
