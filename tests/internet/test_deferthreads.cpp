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

TEST_P(DeferThreadsTest, R_51_aPoolWorkerWaitingOnItsReactorDoesNotDeadlockShutdown) {
    // R-51 (Better than Twisted, where this deadlocks): a pool worker calls
    // blockingCallFromThread on its own reactor as shutdown joins the pool. Each
    // call queued before the join is answered; one made after is refused.
    for (int round = 0; round < 20; ++round) {
        auto r = makeReactor();
        std::atomic<int> answered{0}, abandoned{0};
        std::atomic<bool> stopping{false};
        int working = 0;
        r->callWhenRunning([&] {
            for (int i = 0; i < 2; ++i)
                r->callInThread([&] {
                    r->callFromThread([&] {
                        if (++working == 2) r->stop();  // both workers are running (queued work would be dropped)
                    });
                    while (!stopping.load()) std::this_thread::yield();
                    for (int call = 0; call < 50; ++call) {
                        try {
                            if (blockingCallFromThread(*r, [] { return 7; }) == 7) ++answered;
                        } catch (const BlockingCallAbandoned& e) {
                            EXPECT_STREQ(e.what(),
                                         "blockingCallFromThread: the reactor stopped without running the call");
                            ++abandoned;
                            return;
                        }
                    }
                });
            r->addSystemEventTrigger("before", "shutdown", [&] { stopping = true; });
        });
        runReactor(*r);  // returns: the join did not wait for ever
        // The reactor thread is busy with shutdown from `stopping` on: each worker
        // gets at most the answer to the call it queued before the join, then is refused.
        EXPECT_EQ(abandoned.load(), 2) << round;
        EXPECT_LE(answered.load(), 2) << round;
    }
}

TEST_P(DeferThreadsTest, R_51_aReactorThatHasStoppedRefusesAWaiterAtOnce) {
    // R-51 (Better than Twisted, where the caller waits for ever): after run() has
    // returned from stop(), blockingCallFromThread throws instead of blocking.
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    bool ran = false;
    std::string why;
    std::thread caller([&] {
        try {
            blockingCallFromThread(reactor(), [&] { ran = true; });
        } catch (const BlockingCallAbandoned& e) {
            why = e.what();
        }
    });
    caller.join();
    EXPECT_FALSE(ran);
    EXPECT_EQ(why, "blockingCallFromThread: the reactor stopped without running the call");
    EXPECT_FALSE(reactor().callFromThreadForWaiter([] {}));
}

TEST_P(DeferThreadsTest, R_51_aDeferredDestroyedUnfiredReleasesTheWaiter) {
    // the call returned a Deferred that is destroyed without firing: the
    // waiter gets BlockingCallAbandoned instead of waiting for ever.
    std::string why;
    std::thread caller;
    reactor().callWhenRunning([&] {
        caller = std::thread([&] {
            try {
                blockingCallFromThread(reactor(), [] { return Deferred<int>(); });
            } catch (const BlockingCallAbandoned& e) {
                why = e.what();
            }
            reactor().callFromThread([&] { reactor().stop(); });
        });
    });
    runReactor();
    caller.join();
    EXPECT_EQ(why, "blockingCallFromThread: the Deferred the call returned was destroyed unfired");
}

TEST_P(DeferThreadsTest, R_51_callsForWaitersAreDroppedBeforeTheDestroyedReactorJoinsItsPool) {
    // a reactor destroyed with calls for waiters still queued drops them
    // (releasing their waiters) before it joins its pool; later ones are refused.
    auto r = makeReactor();
    struct Probe {
        std::shared_ptr<int> dropped = std::make_shared<int>(0);
        Probe() = default;
        Probe(Probe&& o) noexcept : dropped(std::move(o.dropped)) {}
        ~Probe() {
            if (dropped) ++*dropped;
        }
    };
    Probe probe;
    auto dropped = probe.dropped;
    bool ran = false;
    ASSERT_TRUE(r->callFromThreadForWaiter([p = std::move(probe), &ran] { ran = true; }));
    r.reset();
    EXPECT_FALSE(ran);
    EXPECT_EQ(*dropped, 1);
}

TEST_P(DeferThreadsTest, R_51_aWorkerWaitingOnACrashedReactorIsReleasedWhenItIsDestroyed) {
    // crash() ends run() without shutdown, so the pool is still up when the
    // reactor is destroyed; a worker waiting on a call the reactor will never run
    // held up the destructor's join for ever. Now the call is dropped first.
    for (int round = 0; round < 20; ++round) {
        auto owned = makeReactor();
        Reactor* r = owned.get();  // the worker still uses it while owned.reset() destroys it
        std::atomic<int> answered{0}, abandoned{0};
        r->callWhenRunning([&] {
            r->callInThread([&] {
                r->callFromThread([&] { r->crash(); });
                for (int call = 0; call < 100; ++call) {
                    try {
                        blockingCallFromThread(*r, [] { return 1; });
                        ++answered;
                    } catch (const BlockingCallAbandoned&) {
                        ++abandoned;
                        return;
                    }
                }
            });
        });
        r->run(false);
        owned.reset();  // joins the worker
        EXPECT_EQ(abandoned.load(), 1) << round;
        EXPECT_LT(answered.load(), 100) << round;
    }
}

TEST_P(DeferThreadsTest, R_51_theCreatorWaitsWhileAnotherThreadEntersRun) {
    // before run(), the creating thread counts as the reactor's, so a
    // blockingCallFromThread from it raced the thread entering run() and threw
    // std::logic_error about half the time. It now waits for the run to answer.
    for (int round = 0; round < 100; ++round) {
        auto r = makeReactor();
        std::thread runner([&] { runReactor(*r); });
        int got = 0;
        EXPECT_NO_THROW(got = blockingCallFromThread(*r, [] { return 3; })) << round;
        EXPECT_EQ(got, 3);
        r->callFromThread([&] { r->stop(); });
        runner.join();
    }
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
