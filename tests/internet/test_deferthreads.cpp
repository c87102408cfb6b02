// deferToThread / blockingCallFromThread and Deferred-returning triggers
// (reactor.md with real Deferreds).
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/threads.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::test::ReactorTest;

class DeferThreadsTest : public ReactorTest {};

TEST_P(DeferThreadsTest, R_51_deferToThreadFiresOnReactorThreadWithResult) {
    // deferToThread(f) fires in the reactor thread with f's result.
    std::thread::id ranOn, firedOn;
    int got = 0;
    reactor().callWhenRunning([&] {
        deferToThread(
            reactor(),
            [&](int a, int b) {
                ranOn = std::this_thread::get_id();
                return a * b;
            },
            6, 7)
            .addCallback([&](int v) {
                got = v;
                firedOn = std::this_thread::get_id();
                reactor().stop();
            });
    });
    runReactor();
    EXPECT_EQ(got, 42);
    EXPECT_NE(ranOn, std::this_thread::get_id());
    EXPECT_EQ(firedOn, std::this_thread::get_id());
}

TEST_P(DeferThreadsTest, R_51_deferToThreadFailsWithWhatFThrew) {
    // deferToThread's Deferred fails, in the reactor thread, with f's exception.
    std::string message;
    reactor().callWhenRunning([&] {
        deferToThread(reactor(), []() -> int {
            throw std::domain_error("worker failed");
        }).addErrback([&](Failure f) -> int {
            EXPECT_TRUE(f.check<std::domain_error>());
            message = f.getErrorMessage();
            reactor().stop();
            return 0;
        });
    });
    runReactor();
    EXPECT_EQ(message, "worker failed");
}

TEST_P(DeferThreadsTest, R_51_blockingCallFromThreadReturnsValueAndWaitsForDeferred) {
    // blockingCallFromThread runs f in the reactor thread, waits (also for a returned Deferred), returns its value.
    int direct = 0, viaDeferred = 0;
    std::thread::id fOn;
    std::thread worker;
    reactor().callWhenRunning([&] {
        worker = std::thread([&] {
            direct = blockingCallFromThread(reactor(), [&] {
                fOn = std::this_thread::get_id();
                return 5;
            });
            viaDeferred = blockingCallFromThread(reactor(), [&] {
                Deferred<int> d;
                reactor().callLater(0.01, [d]() mutable { d.callback(9); });
                return d;
            });
            reactor().callFromThread([&] { reactor().stop(); });
        });
    });
    runReactor();
    worker.join();
    EXPECT_EQ(direct, 5);
    EXPECT_EQ(viaDeferred, 9);
    EXPECT_EQ(fOn, std::this_thread::get_id());
}

TEST_P(DeferThreadsTest, R_51_blockingCallFromThreadRethrowsFailure) {
    // blockingCallFromThread rethrows f's failure (sync or from its Deferred) in the calling thread.
    bool syncThrew = false, asyncThrew = false;
    std::thread worker;
    reactor().callWhenRunning([&] {
        worker = std::thread([&] {
            try {
                blockingCallFromThread(reactor(), []() -> int { throw std::out_of_range("sync"); });
            } catch (const std::out_of_range&) {
                syncThrew = true;
            }
            try {
                blockingCallFromThread(reactor(), [] { return fail<int>(std::length_error("async")); });
            } catch (const std::length_error&) {
                asyncThrew = true;
            }
            reactor().callFromThread([&] { reactor().stop(); });
        });
    });
    runReactor();
    worker.join();
    EXPECT_TRUE(syncThrew);
    EXPECT_TRUE(asyncThrew);
}

TEST_P(DeferThreadsTest, R_51_blockingCallFromReactorThreadIsRejected) {
    // blockingCallFromThread is for non-reactor threads; on the reactor thread it throws instead of deadlocking.
    bool threw = false;
    reactor().callWhenRunning([&] {
        try {
            blockingCallFromThread(reactor(), [] { return 1; });
        } catch (const std::logic_error&) {
            threw = true;
        }
        reactor().stop();
    });
    runReactor();
    EXPECT_TRUE(threw);
}

TEST_P(DeferThreadsTest, R_15_beforeShutdownDeferredHoldsDuringPhase) {
    // a before trigger returning a Deferred holds the during phase until it fires; later before triggers run at once.
    std::vector<std::string> order;
    reactor().addSystemEventTrigger("before", "shutdown", [&] {
        Deferred<int> d;
        reactor().callLater(0.02, [&order, d]() mutable {
            order.push_back("deferred fired");
            d.callback(1);
        });
        order.push_back("before 1");
        return d;
    });
    reactor().addSystemEventTrigger("before", "shutdown", [&] { order.push_back("before 2"); });
    reactor().addSystemEventTrigger("during", "shutdown", [&] { order.push_back("during"); });
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_EQ(order, (std::vector<std::string>{"before 1", "before 2", "deferred fired", "during"}));
}

TEST_P(DeferThreadsTest, R_15_failedBeforeDeferredStillLetsShutdownFinish) {
    // the during phase starts when every before Deferred has fired, success or failure (failure logged).
    bool during = false;
    reactor().addSystemEventTrigger("before", "shutdown",
                                    [&] { return fail<void>(std::runtime_error("cleanup failed")); });
    reactor().addSystemEventTrigger("during", "shutdown", [&] { during = true; });
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_TRUE(during);
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, DeferThreadsTest, weft::test::allBackends(), weft::test::backendParamName);
