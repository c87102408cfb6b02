// Reactor lifecycle: run, stop, crash, iterate (reactor.md R-1..R-12).
#include <gtest/gtest.h>

#include <atomic>

#include <limits>

#include <thread>

#include <chrono>
#include <string>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::test::ReactorTest;

class CoreTest : public ReactorTest {};

TEST_P(CoreTest, R_1_runFiresStartupThenReturnsAfterShutdown) {
    // run() fires startup before->during->after, loops, and returns after the whole shutdown event.
    std::vector<std::string> order;
    for (auto phase : {"before", "during", "after"}) {
        reactor().addSystemEventTrigger(phase, "startup",
                                        [&, phase] { order.push_back(std::string("startup-") + phase); });
        reactor().addSystemEventTrigger(phase, "shutdown",
                                        [&, phase] { order.push_back(std::string("shutdown-") + phase); });
    }
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_EQ(order, (std::vector<std::string>{"startup-before", "startup-during", "startup-after", "shutdown-before",
                                               "shutdown-during", "shutdown-after"}));
}

TEST_P(CoreTest, R_2_runningFlagThroughStartupAndShutdown) {
    // running is false in before-startup, true in during/after startup, false in during-shutdown.
    std::vector<bool> seen;
    reactor().addSystemEventTrigger("before", "startup", [&] { seen.push_back(reactor().running()); });
    reactor().addSystemEventTrigger("during", "startup", [&] { seen.push_back(reactor().running()); });
    reactor().addSystemEventTrigger("after", "startup", [&] { seen.push_back(reactor().running()); });
    reactor().addSystemEventTrigger("before", "shutdown", [&] { seen.push_back(reactor().running()); });
    reactor().addSystemEventTrigger("during", "shutdown", [&] { seen.push_back(reactor().running()); });
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_EQ(seen, (std::vector<bool>{false, true, true, true, false}));
    EXPECT_FALSE(reactor().running());
}

TEST_P(CoreTest, R_3_runWhileRunningThrowsAlreadyRunning) {
    // run() on a running reactor throws ReactorAlreadyRunning.
    bool threw = false;
    reactor().callWhenRunning([&] {
        try {
            reactor().run(false);
        } catch (const error::ReactorAlreadyRunning&) {
            threw = true;
        }
        reactor().stop();
    });
    runReactor();
    EXPECT_TRUE(threw);
}

TEST_P(CoreTest, R_3_runAfterStopThrowsNotRestartable) {
    // run() after the reactor was stopped (even from an after-shutdown trigger) throws ReactorNotRestartable.
    bool threwInTrigger = false;
    reactor().addSystemEventTrigger("after", "shutdown", [&] {
        try {
            reactor().run(false);
        } catch (const error::ReactorNotRestartable&) {
            threwInTrigger = true;
        }
    });
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_TRUE(threwInTrigger);
    EXPECT_THROW(reactor().run(false), error::ReactorNotRestartable);
}

TEST_P(CoreTest, R_4_stopWhenNotStartedOrAlreadyStoppedThrows) {
    // stop() before run() or a second stop() throws ReactorNotRunning (a runtime_error kind).
    EXPECT_THROW(reactor().stop(), error::ReactorNotRunning);
    bool second = false;
    reactor().callWhenRunning([&] {
        reactor().stop();
        try {
            reactor().stop();
        } catch (const std::runtime_error&) {
            second = true;
        }
    });
    runReactor();
    EXPECT_TRUE(second);
    EXPECT_THROW(reactor().stop(), error::ReactorNotRunning);
}

TEST_P(CoreTest, R_5_stopDoesNotRunShutdownTriggersSynchronously) {
    // stop() only records the request; before-shutdown triggers run later, after the timed-call batch.
    std::vector<std::string> order;
    reactor().addSystemEventTrigger("before", "shutdown", [&] { order.push_back("before-shutdown"); });
    reactor().callLater(0, [&] {
        reactor().stop();
        order.push_back("after-stop");
    });
    reactor().callLater(0, [&] { order.push_back("same-batch"); });
    runReactor();
    EXPECT_EQ(order, (std::vector<std::string>{"after-stop", "same-batch", "before-shutdown"}));
}

TEST_P(CoreTest, R_6_shutdownOrderDisconnectsBeforeUserDuringTriggers) {
    // before-shutdown, then the reactor's own during work (leave loop, disconnectAll) before user during
    // triggers, then after-shutdown; all before run() returns.
    weft::test::SocketPair sp;
    auto d = std::make_shared<weft::test::FakeDescriptor>(sp.a);
    std::vector<std::string> order;
    d->onLost = [&](const Failure&) { order.push_back("disconnected"); };
    reactor().addSystemEventTrigger("before", "shutdown", [&] { order.push_back("before"); });
    reactor().addSystemEventTrigger("during", "shutdown", [&] { order.push_back("during"); });
    reactor().addSystemEventTrigger("after", "shutdown", [&] { order.push_back("after"); });
    reactor().callWhenRunning([&] {
        reactor().addReader(d);
        reactor().stop();
    });
    runReactor();
    EXPECT_EQ(order, (std::vector<std::string>{"before", "disconnected", "during", "after"}));
}

TEST_P(CoreTest, R_7_disconnectAllNotifiesEveryDescriptorEvenIfOneThrows) {
    // shutdown's disconnectAll gives each removed descriptor ConnectionLost; a throwing one is logged.
    weft::test::SocketPair sp1, sp2;
    auto d1 = std::make_shared<weft::test::FakeDescriptor>(sp1.a);
    auto d2 = std::make_shared<weft::test::FakeDescriptor>(sp2.a);
    d1->onLost = [](const Failure&) { throw std::runtime_error("boom in connectionLost"); };
    d2->onLost = d1->onLost;
    reactor().callWhenRunning([&] {
        reactor().addReader(d1);
        reactor().addWriter(d2);
        reactor().stop();
    });
    runReactor();
    EXPECT_EQ(d1->lost, 1);
    EXPECT_EQ(d2->lost, 1);
    EXPECT_TRUE(d1->lostReason->check<ConnectionLost>());
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 2u);
}

TEST_P(CoreTest, R_8_crashLeavesLoopWithoutShutdownAndRunWorksAgain) {
    // crash() leaves the loop without shutdown triggers; run() again works; startup triggers do not refire.
    int shutdownTriggers = 0, startupAfter = 0;
    reactor().addSystemEventTrigger("before", "shutdown", [&] { ++shutdownTriggers; });
    reactor().addSystemEventTrigger("after", "startup", [&] { ++startupAfter; });
    reactor().callWhenRunning([&] { reactor().crash(); });
    runReactor();
    EXPECT_EQ(shutdownTriggers, 0);
    EXPECT_FALSE(reactor().running());
    bool ranAgain = false;
    reactor().callLater(0, [&] {
        ranAgain = reactor().running();
        reactor().stop();
    });
    runReactor();
    EXPECT_TRUE(ranAgain);
    EXPECT_EQ(startupAfter, 1);
    EXPECT_EQ(shutdownTriggers, 1);
}

TEST_P(CoreTest, R_8_crashInABeforeStartupTriggerLeavesTheReactorNotRunningAndRunWorksAgain) {
    // crash() from a before-startup trigger ends that run() with running() false, and run() again
    // runs normally (running inside it, stop() ends it).
    reactor().addSystemEventTrigger("before", "startup", [&] { reactor().crash(); });
    runReactor();
    EXPECT_FALSE(reactor().running());
    bool ranAgain = false;
    reactor().callLater(0, [&] {
        ranAgain = reactor().running();
        reactor().stop();
    });
    EXPECT_NO_THROW(runReactor());
    EXPECT_TRUE(ranAgain);
    EXPECT_FALSE(reactor().running());
}

TEST_P(CoreTest, R_9_iterateZeroNeverBlocks) {
    // iterate(0) runs due calls and does not block even with a call pending 5 s later.
    bool ran = false;
    reactor().callLater(0, [&] { ran = true; });
    auto later = reactor().callLater(5, [] {});
    auto t0 = std::chrono::steady_clock::now();
    reactor().iterate(0);
    reactor().iterate(0);
    EXPECT_TRUE(ran);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    later.cancel();
}

TEST_P(CoreTest, R_10_iterationOrderThreadCallsThenTimedCallsThenShutdown) {
    // one iteration runs thread calls, then due timed calls, then starts shutdown if requested.
    std::vector<std::string> order;
    reactor().addSystemEventTrigger("before", "shutdown", [&] { order.push_back("shutdown"); });
    reactor().callWhenRunning([&] {
        reactor().callLater(0, [&] {
            order.push_back("timed");
            reactor().stop();
        });
        reactor().callFromThread([&] { order.push_back("thread"); });
    });
    runReactor();
    ASSERT_GE(order.size(), 3u);
    EXPECT_EQ(order, (std::vector<std::string>{"thread", "timed", "shutdown"}));
}

TEST_P(CoreTest, R_11_timeoutTracksEarliestCallResetDelayCancel) {
    // the wait timeout is the time to the earliest call, clamped to [0, 2147483]; none -> unbounded.
    EXPECT_FALSE(reactor().timeout().has_value());
    auto c = reactor().callLater(50, [] {});
    EXPECT_NEAR(*reactor().timeout(), 50, 0.5);
    c.reset(15);
    EXPECT_NEAR(*reactor().timeout(), 15, 0.5);
    c.delay(20);
    EXPECT_NEAR(*reactor().timeout(), 35, 0.5);
    c.cancel();
    EXPECT_FALSE(reactor().timeout().has_value());
    auto far = reactor().callLater(std::ldexp(1.0, 128), [] {});
    EXPECT_EQ(*reactor().timeout(), 2147483.0);
    reactor().iterate(0);  // a distant call does not break the loop
    far.cancel();
}

TEST_P(CoreTest, R_11_notRunningYetDoesNotSpin) {
    // R-11 (Better than Twisted): while not yet running (a before-startup trigger pending) the wait uses the
    // normal timeout instead of 0.
    auto c = reactor().callLater(30, [] {});
    EXPECT_NEAR(*reactor().timeout(), 30, 0.5);
    c.cancel();
}

TEST_P(CoreTest, R_11_iterateWithAnInfiniteOrHugeDelayWaitsOnEveryBackend) {
    // The select backend was handed the delay as a time_t it cannot hold (undefined; "select: Invalid argument"),
    // where epoll and poll waited. The delay is clamped as timeout() is, and an infinite one waits for events.
    for (double delay : {std::numeric_limits<double>::infinity(), 1e300}) {
        std::atomic<bool> ran{false};
        std::thread t([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
            reactor().callFromThread([&] { ran = true; });
        });
        EXPECT_NO_THROW(reactor().iterate(delay));
        t.join();
        if (!ran) reactor().iterate(0);
        EXPECT_TRUE(ran.load()) << delay;
    }
}

TEST_P(CoreTest, R_12_exceptionsFromCallbacksNeverEscapeRun) {
    // exceptions from timed calls, thread calls and triggers are logged; the loop continues.
    int after = 0;
    reactor().addSystemEventTrigger("after", "startup", [] { throw std::runtime_error("trigger"); });
    reactor().callLater(0, [] { throw std::runtime_error("timed"); });
    reactor().callFromThread([] { throw std::runtime_error("thread"); });
    reactor().callLater(0.01, [&] {
        ++after;
        reactor().stop();
    });
    EXPECT_NO_THROW(runReactor());
    EXPECT_EQ(after, 1);
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 3u);
}

// Reactor::callBeforeWait (what a TLS layer's write batches use, TLS-11): a
// call made from a timed call runs in the same iteration, before the wait and
// without a zero-timeout pass (Better than Twisted's callLater(0), R-27); calls
// it adds run in the same pass; none runs on the caller's stack.
TEST_P(CoreTest, TLS_11_callBeforeWaitRunsBeforeTheNextWaitNotOnTheCallersStack) {
    std::vector<std::string> order;
    reactor().callLater(0, [&] {
        reactor().callBeforeWait([&] {
            order.push_back("first");
            reactor().callBeforeWait([&] { order.push_back("added by first"); });
        });
        order.push_back("timed call returned");
    });
    reactor().iterate(0);
    EXPECT_EQ(order, (std::vector<std::string>{"timed call returned", "first", "added by first"}));
    bool threw = false;
    reactor().callLater(0, [&] {
        reactor().callBeforeWait([&] {
            threw = true;
            throw std::runtime_error("boom");
        });
    });
    reactor().iterate(0);  // an exception is logged, not propagated
    EXPECT_TRUE(threw);
    EXPECT_EQ(logs.flush(log::Level::error).size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, CoreTest, weft::test::allBackends(), weft::test::backendParamName);
