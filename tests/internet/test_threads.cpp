// Threads: callFromThread, the waker, the reactor's thread pool and the I/O
// thread (reactor.md R-45..R-50). R-51 (deferToThread, blockingCallFromThread)
// lives with the Deferred tests.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/threadpool.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::test::LeakCheckedTest;
using weft::test::ReactorTest;

namespace {
double steadyNow() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Joins every thread on scope exit, so a failed assertion cannot leave one running.
struct Threads {
    std::vector<std::thread> all;
    template <class F>
    void start(F&& f) {
        all.emplace_back(std::forward<F>(f));
    }
    void join() {
        for (auto& t : all)
            if (t.joinable()) t.join();
    }
    ~Threads() { join(); }
};

std::string fdTarget(int fd) {
    char buf[256];
    auto n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf - 1);
    return n < 0 ? std::string() : std::string(buf, static_cast<std::size_t>(n));
}
}  // namespace

class ThreadsTest : public ReactorTest {};

// ---- R-45 ------------------------------------------------------------------

TEST_P(ThreadsTest, R_45_callsFromManyThreadsRunOnTheReactorThreadInFifoOrder) {
    // callFromThread from any thread runs f on the reactor thread; each thread's calls run in FIFO order.
    constexpr int kThreads = 4, kCalls = 1000;
    std::vector<int> next(kThreads, 0);
    int total = 0, outOfOrder = 0, wrongThread = 0;
    std::thread::id reactorThread;
    Threads threads;
    reactor().callWhenRunning([&] {
        reactorThread = std::this_thread::get_id();
        for (int t = 0; t < kThreads; ++t)
            threads.start([&, t] {
                for (int i = 0; i < kCalls; ++i)
                    reactor().callFromThread([&, t, i] {
                        if (std::this_thread::get_id() != reactorThread) ++wrongThread;
                        if (next[static_cast<std::size_t>(t)] != i) ++outOfOrder;
                        next[static_cast<std::size_t>(t)] = i + 1;
                        if (++total == kThreads * kCalls) reactor().stop();
                    });
            });
    });
    runReactor(20);
    threads.join();
    EXPECT_EQ(total, kThreads * kCalls);
    EXPECT_EQ(outOfOrder, 0);
    EXPECT_EQ(wrongThread, 0);
}

TEST_P(ThreadsTest, R_45_callFromTheReactorThreadItselfIsQueuedNotRunInline) {
    // callFromThread may be called from the reactor thread too; f runs later, in the loop, in FIFO order.
    std::vector<int> order;
    reactor().callWhenRunning([&] {
        reactor().callFromThread([&] { order.push_back(1); });
        reactor().callFromThread([&] { order.push_back(2); });
        order.push_back(0);
        reactor().callFromThread([&] {
            order.push_back(3);
            reactor().stop();
        });
    });
    runReactor();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST_P(ThreadsTest, R_45_callsMadeBeforeRunWaitUntilTheReactorRuns) {
    // calls made before run() (from this or another thread) wait, then run once the reactor is running.
    std::vector<std::string> order;
    std::vector<bool> runningSeen;
    reactor().callFromThread([&] {
        order.push_back("main-thread call");
        runningSeen.push_back(reactor().running());
    });
    {
        Threads t;
        t.start([&] {
            reactor().callFromThread([&] {
                order.push_back("other-thread call");
                runningSeen.push_back(reactor().running());
                reactor().stop();
            });
        });
    }
    EXPECT_TRUE(order.empty()) << "nothing runs before the reactor does";
    reactor().addSystemEventTrigger("after", "startup", [&] { order.push_back("startup done"); });
    runReactor();
    EXPECT_EQ(order, (std::vector<std::string>{"startup done", "main-thread call", "other-thread call"}));
    EXPECT_EQ(runningSeen, (std::vector<bool>{true, true}));
}

TEST_P(ThreadsTest, R_45_callFromThreadWakesABlockedWait) {
    // each call wakes a blocked readiness wait: with nothing else scheduled, the call runs promptly.
    std::atomic<double> postedAt{0};
    double ranAt = 0;
    Threads threads;
    reactor().callWhenRunning([&] {
        threads.start([&] {
            // Give the reactor time to block in its wait (the test is valid either way;
            // this only makes the blocked case the one exercised).
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            postedAt = steadyNow();
            reactor().callFromThread([&] {
                ranAt = steadyNow();
                reactor().stop();
            });
        });
    });
    runReactor(5);  // only the 5 s guard is scheduled: without a wake-up the wait would last that long
    threads.join();
    ASSERT_GT(ranAt, 0.0);
    EXPECT_LT(ranAt - postedAt.load(), 1.0);
}

TEST_P(ThreadsTest, R_45_wakeUpFromAnotherThreadInterruptsTheWait) {
    // wakeUp() from another thread ends a blocked wait (iterate returns well before its delay).
    Threads threads;
    std::atomic<bool> go{false};
    threads.start([&] {
        while (!go.load()) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let iterate() block first
        reactor().wakeUp();
    });
    double before = steadyNow();
    go = true;
    reactor().iterate(10);
    double elapsed = steadyNow() - before;
    threads.join();
    EXPECT_LT(elapsed, 5.0) << "iterate(10) was not woken";
}

// ---- R-46 ------------------------------------------------------------------

TEST_P(ThreadsTest, R_46_anIterationRunsOnlyTheCallsQueuedWhenItStarted) {
    // a thread call queued by a thread call runs in the next iteration, not the current one.
    std::vector<std::string> order;
    reactor().callFromThread([&] {
        order.push_back("A");
        reactor().callFromThread([&] { order.push_back("B (queued by A)"); });
    });
    reactor().callFromThread([&] { order.push_back("C"); });
    reactor().iterate(0);
    EXPECT_EQ(order, (std::vector<std::string>{"A", "C"}));
    reactor().iterate(0);
    EXPECT_EQ(order, (std::vector<std::string>{"A", "C", "B (queued by A)"}));
}

TEST_P(ThreadsTest, R_46_callQueuedByAThreadCallRunsNextIterationWithoutBlocking) {
    // the reactor wakes itself for calls queued during the thread-call pass, so the next wait does not block.
    std::vector<std::string> order;
    double start = 0, end = 0;
    reactor().callWhenRunning([&] {
        start = steadyNow();
        reactor().callFromThread([&] {
            order.push_back("A");
            // the timed-call pass of this same iteration runs before the next thread-call pass.
            reactor().callLater(0, [&] { order.push_back("timed (same iteration)"); });
            reactor().callFromThread([&] {
                order.push_back("B (next iteration)");
                end = steadyNow();
                reactor().stop();
            });
        });
    });
    runReactor(5);
    EXPECT_EQ(order, (std::vector<std::string>{"A", "timed (same iteration)", "B (next iteration)"}));
    EXPECT_LT(end - start, 1.0) << "the wait blocked instead of running the queued call";
}

TEST_P(ThreadsTest, R_46_nestedIterateInAThreadCallRunsOnlyItsOwnBatch) {
    // an iterate() made from inside a thread call runs only the calls queued since; the outer batch
    // still runs each of its calls exactly once.
    std::vector<std::string> order;
    reactor().callFromThread([&] {
        order.push_back("A");
        reactor().callFromThread([&] { order.push_back("C (queued by A)"); });
        reactor().iterate(0);
        order.push_back("A done");
    });
    reactor().callFromThread([&] { order.push_back("B"); });
    reactor().iterate(0);
    reactor().iterate(0);
    EXPECT_EQ(order, (std::vector<std::string>{"A", "C (queued by A)", "A done", "B"}));
}

TEST_P(ThreadsTest, R_46_exceptionIsLoggedAndTheQueueContinues) {
    // an exception from a thread call is logged and the following calls still run.
    std::vector<int> order;
    reactor().callFromThread([&] { order.push_back(1); });
    reactor().callFromThread([&] {
        order.push_back(2);
        throw std::runtime_error("thread call failed");
    });
    reactor().callFromThread([&] {
        order.push_back(3);
        reactor().stop();
    });
    runReactor();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    auto errors = logs.flushLoggedErrors<std::runtime_error>();
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].getErrorMessage(), "thread call failed");
}

// ---- R-47 ------------------------------------------------------------------

TEST_P(ThreadsTest, R_47_stormOf100000CallsFromSeveralThreadsNeverRaises) {
    // 100 000 rapid callFromThread calls from several threads never raise; all run, FIFO per thread.
    constexpr int kThreads = 4, kPerThread = 25000;
    std::vector<int> next(kThreads, 0);
    int total = 0, outOfOrder = 0;
    std::atomic<int> raised{0};
    Threads threads;
    reactor().callWhenRunning([&] {
        for (int t = 0; t < kThreads; ++t)
            threads.start([&, t] {
                for (int i = 0; i < kPerThread; ++i) {
                    try {
                        reactor().callFromThread([&, t, i] {
                            auto& n = next[static_cast<std::size_t>(t)];
                            if (n != i) ++outOfOrder;
                            n = i + 1;
                            if (++total == kThreads * kPerThread) reactor().stop();
                        });
                    } catch (...) {
                        ++raised;
                    }
                }
            });
    });
    runReactor(60);
    threads.join();
    EXPECT_EQ(raised.load(), 0);
    EXPECT_EQ(total, kThreads * kPerThread);
    EXPECT_EQ(outOfOrder, 0);
}

TEST_P(ThreadsTest, R_47_stormBeforeRunIsDeliveredOnce) {
    // a burst of 100 000 calls queued before run() (the waker saturates) is delivered in full once running.
    constexpr int kCalls = 100000;
    int total = 0;
    for (int i = 0; i < kCalls; ++i)
        reactor().callFromThread([&] {
            if (++total == kCalls) reactor().stop();
        });
    for (int i = 0; i < 1000; ++i) reactor().wakeUp();  // redundant wake-ups are harmless
    runReactor(30);
    EXPECT_EQ(total, kCalls);
}

TEST_P(ThreadsTest, R_47_noWakeUpIsLostInPingPong) {
    // a call posted while the reactor drains the waker is never stranded (no lost wake-up).
    constexpr int kThreads = 4, kRounds = 3000;
    struct Slot {
        std::mutex mu;
        std::condition_variable cv;
        int done = 0;
    };
    std::array<Slot, kThreads> slots;
    std::atomic<int> finished{0}, stalled{0};
    Threads threads;
    reactor().callWhenRunning([&] {
        for (int t = 0; t < kThreads; ++t)
            threads.start([&, t] {
                auto& s = slots[static_cast<std::size_t>(t)];
                for (int i = 0; i < kRounds; ++i) {
                    reactor().callFromThread([&s] {
                        {
                            std::lock_guard lk(s.mu);
                            ++s.done;
                        }
                        s.cv.notify_one();
                    });
                    std::unique_lock lk(s.mu);
                    if (!s.cv.wait_for(lk, std::chrono::seconds(3), [&] { return s.done == i + 1; })) {
                        ++stalled;  // the reactor slept on a pending call
                        break;
                    }
                }
                if (++finished == kThreads) reactor().callFromThread([&] { reactor().stop(); });
            });
    });
    runReactor(60);
    threads.join();
    EXPECT_EQ(stalled.load(), 0);
    for (auto& s : slots) EXPECT_EQ(s.done, kRounds);
}

TEST_P(ThreadsTest, R_47_wakerIsOneNonBlockingCloseOnExecEventfd) {
    // R-47 (Better than Twisted): the waker is a single eventfd, non-blocking and close-on-exec.
    auto before = weft::test::openFds();
    auto other = makeReactor();
    std::vector<int> eventfds;
    for (int fd : weft::test::openFds())
        if (!before.count(fd) && fdTarget(fd) == "anon_inode:[eventfd]") eventfds.push_back(fd);
    ASSERT_EQ(eventfds.size(), 1u) << "expected exactly one eventfd per reactor";
    int fd = eventfds[0];
    EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(other->getReaders().empty()) << "the waker is an internal reader";
    other.reset();
    EXPECT_EQ(fdTarget(fd), "") << "the waker must be closed with its reactor";
}

TEST_P(ThreadsTest, R_47_wakeUpsCoalesceIntoOneTokenAndOneReadDrainsIt) {
    // a wake-up writes one token (more while one is pending are skipped); the reactor's read drains it.
    auto before = weft::test::openFds();
    auto other = makeReactor();
    int fd = -1;
    for (int f : weft::test::openFds())
        if (!before.count(f) && fdTarget(f) == "anon_inode:[eventfd]") fd = f;
    ASSERT_GE(fd, 0);
    auto count = [fd] {  // the eventfd's counter, as the kernel reports it (hex)
        std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd));
        std::string key;
        while (info >> key)
            if (key == "eventfd-count:") {
                std::string v;
                info >> v;
                return std::stoull(v, nullptr, 16);
            }
        return ~0ULL;
    };
    EXPECT_EQ(count(), 0u);
    for (int i = 0; i < 1000; ++i) other->wakeUp();
    EXPECT_EQ(count(), 1u) << "each pending wake-up must be written once";
    other->iterate(0);
    EXPECT_EQ(count(), 0u) << "the waker was not drained";
    other->wakeUp();  // wake-ups work again after a drain
    EXPECT_EQ(count(), 1u);
    // A drained waker no longer makes the wait return at once.
    other->iterate(0);
    double start = steadyNow();
    other->iterate(0.2);
    EXPECT_GE(steadyNow() - start, 0.15);
}

// ---- R-48 ------------------------------------------------------------------

TEST_P(ThreadsTest, R_48_callInThreadRunsOnAPoolThread) {
    // callInThread(f) runs f on a thread of the reactor's pool, not the reactor thread.
    std::atomic<bool> inIO{true};
    std::thread::id reactorThread, workerThread;
    reactor().callWhenRunning([&] {
        reactorThread = std::this_thread::get_id();
        reactor().callInThread([&] {
            inIO = reactor().isInIOThread();
            auto id = std::this_thread::get_id();
            reactor().callFromThread([&, id] {
                workerThread = id;
                reactor().stop();
            });
        });
    });
    runReactor();
    EXPECT_NE(workerThread, std::thread::id());
    EXPECT_NE(workerThread, reactorThread);
    EXPECT_FALSE(inIO.load());
}

TEST_P(ThreadsTest, R_48_poolIsCreatedLazilyWithZeroToTenThreads) {
    // no pool threads exist until work is queued; the pool's bounds are 0 min, 10 max.
    auto baseline = weft::test::threadCount();
    std::size_t duringRun = 0;
    reactor().callWhenRunning([&] {
        duringRun = weft::test::threadCount();
        reactor().stop();
    });
    runReactor();
    EXPECT_EQ(duringRun, baseline) << "a reactor that was never asked for threads started some";
    auto& pool = reactor().getThreadPool();
    EXPECT_EQ(pool.min(), 0u);
    EXPECT_EQ(pool.max(), 10u);
    EXPECT_EQ(pool.workers(), 0u);
}

TEST_P(ThreadsTest, R_48_workQueuedBeforeRunStartsAfterStartup) {
    // work queued before run() does not start until the pool starts, after the startup event.
    std::atomic<bool> duringStartupDone{false}, sawStartupDone{false};
    reactor().callInThread([&] {
        sawStartupDone = duringStartupDone.load();
        reactor().callFromThread([&] { reactor().stop(); });
    });
    auto& pool = reactor().getThreadPool();
    EXPECT_FALSE(pool.started());
    EXPECT_EQ(pool.pending(), 1u);
    EXPECT_EQ(pool.workers(), 0u);
    std::size_t pendingInBefore = 0;
    reactor().addSystemEventTrigger("before", "startup", [&] { pendingInBefore = pool.pending(); });
    reactor().addSystemEventTrigger("during", "startup", [&] { duringStartupDone = true; });
    runReactor();
    EXPECT_EQ(pendingInBefore, 1u);
    EXPECT_TRUE(sawStartupDone.load());
}

TEST_P(ThreadsTest, R_48_exceptionFromWorkIsLoggedAndThePoolContinues) {
    // an exception thrown by work on the pool is logged; later work still runs.
    reactor().suggestThreadPoolSize(1);  // one worker: the two items run in order
    std::atomic<bool> secondRan{false};
    reactor().callInThread([] { throw std::runtime_error("work failed"); });
    reactor().callInThread([&] {
        secondRan = true;
        reactor().callFromThread([&] { reactor().stop(); });
    });
    runReactor();
    EXPECT_TRUE(secondRan.load());
    auto errors = logs.flushLoggedErrors<std::runtime_error>();
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].getErrorMessage(), "work failed");
}

TEST_P(ThreadsTest, R_48_workAfterShutdownIsIgnored) {
    // after the pool has been stopped (shutdown), new work is silently ignored.
    std::atomic<bool> ran{false};
    reactor().callInThread([] {});
    reactor().addSystemEventTrigger("after", "shutdown", [&] { reactor().callInThread([&] { ran = true; }); });
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_FALSE(ran.load());
    EXPECT_EQ(reactor().getThreadPool().workers(), 0u);
}

TEST_P(ThreadsTest, R_48_callInThreadFromTheCreatorWhileAnotherThreadEntersRun) {
    // before run() the creating thread counts as the reactor's, so its
    // callInThread() made the pool and added its triggers while another thread,
    // entering run(), fired startup over the same triggers (a data race TSan saw).
    // run() now waits for a pool being made; the work runs once, after startup.
    for (int round = 0; round < 50; ++round) {
        auto r = makeReactor();
        std::atomic<int> ran{0};
        std::thread runner([&] { runReactor(*r); });
        r->callInThread([&] {
            ++ran;
            r->callFromThread([&] { r->stop(); });
        });
        runner.join();
        EXPECT_EQ(ran.load(), 1) << round;
    }
}

class ThreadPoolTest : public LeakCheckedTest {};

TEST_F(ThreadPoolTest, R_48_stoppedPoolIgnoresNewWork) {
    // after ThreadPool::stop() new work is silently dropped (never runs, nothing queued).
    ThreadPool pool(0, 2, "test-pool");
    pool.start();
    std::atomic<int> runs{0};
    pool.callInThread([&] { ++runs; });
    pool.stop();
    EXPECT_TRUE(pool.joined());
    EXPECT_FALSE(pool.started());  // as Twisted's: it said true after stop()
    EXPECT_EQ(pool.workers(), 0u);
    int before = runs.load();
    pool.callInThread([&] { ++runs; });
    EXPECT_EQ(pool.pending(), 0u);
    EXPECT_EQ(runs.load(), before);
    pool.start();  // a stopped pool stays stopped
    EXPECT_FALSE(pool.started());
    EXPECT_EQ(pool.workers(), 0u);
}

// Holds one of a pool's workers until release(): work queued behind it waits.
struct BlockingJob {
    std::atomic<bool> started{false}, released{false};
    explicit BlockingJob(ThreadPool& pool) {
        pool.callInThread([this] {
            started = true;
            while (!released) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        });
    }
    void waitStarted() const {
        while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Releases the worker from another thread after `ms`, while the caller blocks in stop().
    std::thread releaseAfter(int ms) {
        return std::thread([this, ms] {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            released = true;
        });
    }
};

TEST_F(ThreadPoolTest, R_48_queuedWorkWhoseCapturesCallThePoolDoesNotDeadlockStop) {
    // stop() used to discard work not yet started, destroying it (and what it captured) under
    // the pool's lock, so a capture whose destructor asked the pool anything (pending(), callInThread())
    // deadlocked stop() on its own mutex. Such work now runs before the join and dies outside
    // the lock, with the pool stopping: its callInThread() is ignored.
    ThreadPool pool(0, 1, "test-pool");
    pool.start();
    BlockingJob job(pool);
    struct AsksThePool {
        AsksThePool(ThreadPool& p, std::size_t& s) : pool(p), seen(s) {}
        AsksThePool(const AsksThePool&) = delete;
        AsksThePool& operator=(const AsksThePool&) = delete;
        ~AsksThePool() {
            seen = pool.pending();
            pool.callInThread([] {});  // ignored: the pool is stopped
        }
        ThreadPool& pool;
        std::size_t& seen;
    };
    std::size_t seen = 99;
    auto asks = std::make_shared<AsksThePool>(pool, seen);
    pool.callInThread([asks] {});
    asks.reset();  // the queued work holds the last reference
    job.waitStarted();
    std::thread releaser = job.releaseAfter(50);
    pool.stop();  // hung for ever before
    releaser.join();
    EXPECT_EQ(seen, 0u);
    EXPECT_EQ(pool.pending(), 0u);
}

TEST_F(ThreadPoolTest, R_49_stopRunsTheWorkQueuedBeforeIt) {
    // R-49, as Twisted's pool (its team drains the backlog before the workers quit):
    // stop() ran only the work already started and silently dropped what was queued
    // behind it, so a deferToThread accepted just before shutdown never ran.
    ThreadPool pool(0, 1, "test-pool");
    pool.start();
    BlockingJob job(pool);
    std::vector<int> ran;  // one worker: in order, no lock needed
    for (int i = 0; i < 3; ++i) pool.callInThread([&ran, i] { ran.push_back(i); });
    job.waitStarted();
    std::thread releaser = job.releaseAfter(20);
    pool.stop();
    releaser.join();
    EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(pool.pending(), 0u);
    pool.callInThread([&ran] { ran.push_back(9); });  // after stop(): ignored
    EXPECT_EQ(ran.size(), 3u);

    // A pool that never started has no worker to run its queue: stop() drops it.
    ThreadPool idle(0, 1, "idle-pool");
    auto owned = std::make_shared<int>(0);
    bool ranIdle = false;
    idle.callInThread([owned, &ranIdle] { ranIdle = true; });
    idle.stop();
    EXPECT_FALSE(ranIdle);
    EXPECT_EQ(idle.pending(), 0u);
    EXPECT_EQ(owned.use_count(), 1);  // the dropped work's captures are gone
}

TEST_F(ThreadPoolTest, R_49_aSecondStopReturnsOnlyOnceTheWorkersAreJoined) {
    // a stop() called while another was joining returned at once, before the
    // running work had finished, so its caller could free what the work still used.
    ThreadPool pool(0, 2, "test-pool");
    pool.start();
    std::atomic<bool> started{false}, release{false}, workDone{false}, secondReturned{false};
    pool.callInThread([&] {
        started = true;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        workDone = true;
    });
    while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Threads threads;
    threads.start([&] { pool.stop(); });
    while (!pool.joined()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    threads.start([&] {
        pool.stop();
        secondReturned = true;
        EXPECT_TRUE(workDone.load());
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_FALSE(secondReturned.load());  // it returned at once before
    release = true;
    threads.join();
    EXPECT_TRUE(secondReturned.load());
    // A worker calling stop() while it is being joined returns at once (no deadlock).
    ThreadPool other(0, 1, "test-pool");
    other.start();
    std::atomic<bool> inWork{false}, goOn{false};
    other.callInThread([&] {
        inWork = true;
        while (!goOn) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        other.stop();
    });
    while (!inWork) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Threads stopper;
    stopper.start([&] { other.stop(); });
    while (!other.joined()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    goOn = true;
    stopper.join();
    EXPECT_EQ(other.workers(), 0u);
}

TEST_P(ThreadsTest, R_49_shutdownWaitsForTheWorkQueuedBeforeIt) {
    // work accepted before stop() runs before run() returns, even work still
    // queued behind busy workers when shutdown joins the pool.
    reactor().suggestThreadPoolSize(2);
    std::atomic<int> ran{0};
    reactor().callWhenRunning([&] {
        for (int i = 0; i < 51; ++i)
            reactor().callInThread([&] {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                ++ran;
            });
        reactor().stop();
    });
    runReactor();
    EXPECT_EQ(ran.load(), 51);
}

TEST_F(ThreadPoolTest, R_48_workQueuedBeforeStartRunsAfterStart) {
    // work queued on an unstarted pool waits and runs once start() is called.
    ThreadPool pool(0, 3, "test-pool");
    std::mutex mu;
    std::condition_variable cv;
    int runs = 0;
    for (int i = 0; i < 5; ++i)
        pool.callInThread([&] {
            std::lock_guard lk(mu);
            ++runs;
            cv.notify_all();
        });
    EXPECT_EQ(pool.pending(), 5u);
    EXPECT_EQ(pool.workers(), 0u);
    pool.start();
    {
        std::unique_lock lk(mu);
        EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(5), [&] { return runs == 5; }));
    }
    EXPECT_LE(pool.workers(), 3u);
    pool.stop();
}

// ---- R-49 ------------------------------------------------------------------

namespace {
// The process's virtual size in KiB: a worker thread that ended and was never
// joined keeps its stack mapped, so what leaks them shows here.
long virtualKiB() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmSize:", 0) == 0) return std::stol(line.substr(7));
    return -1;
}
}  // namespace

TEST_F(ThreadPoolTest, R_49_workersThatLeaveAfterAShrinkAreJoined) {
    // a pool that shrinks (adjustPoolsize, suggestThreadPoolSize) and grows again, many times, keeps
    // no stack of the workers that left: they are joined by the next resize or spawn, not only at stop().
    ThreadPool pool(0, 10, "test-pool");
    pool.start();
    std::atomic<int> done{0};
    long before = -1;
    for (int round = 0; round < 30; ++round) {
        pool.adjustPoolsize(0, 10);
        for (int i = 0; i < 10; ++i)
            pool.callInThread([&] {
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
                ++done;
            });
        for (int i = 0; i < 5000 && done < (round + 1) * 10; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ASSERT_EQ(done, (round + 1) * 10);
        pool.adjustPoolsize(0, 0);
        for (int i = 0; i < 5000 && pool.workers() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ASSERT_EQ(pool.workers(), 0u);
        if (round == 4) before = virtualKiB();  // after the allocator's arenas for the workers settled
    }
    long after = virtualKiB();
    ASSERT_GT(before, 0);
    // 25 rounds of up to 10 workers left unjoined would keep ≥ 250 stacks (8 MiB each by default).
    EXPECT_LT(after - before, 256 * 1024) << "VmSize grew from " << before << " to " << after << " KiB";
    pool.stop();
}

TEST_F(ThreadPoolTest, R_49_growingThePoolSpawnsOnlyForQueuedWork) {
    // raising the maximum (suggestThreadPoolSize) adds workers only for queued work, never up to the cap.
    ThreadPool pool(0, 1, "test-pool");
    pool.start();
    std::mutex mu;
    std::condition_variable cv;
    bool release = false;
    int started = 0, finished = 0;
    auto item = [&] {
        std::unique_lock lk(mu);
        ++started;
        cv.notify_all();
        cv.wait(lk, [&] { return release; });
        ++finished;
        cv.notify_all();
    };
    pool.callInThread(item);
    {
        std::unique_lock lk(mu);
        ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(5), [&] { return started == 1; }));
    }
    pool.callInThread(item);  // waits: the only worker is busy
    EXPECT_EQ(pool.pending(), 1u);
    pool.adjustPoolsize(0, 10);
    EXPECT_LE(pool.workers(), 2u) << "one queued item needs one more worker, not nine";
    {
        std::unique_lock lk(mu);
        EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(5), [&] { return started == 2; }));
        release = true;
        cv.notify_all();
        EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(5), [&] { return finished == 2; }));
    }
    pool.stop();
}

TEST_P(ThreadsTest, R_49_poolLifecycleFollowsStartupAndShutdown) {
    // same pool until shutdown; started after startup; stopped (joined) during shutdown, waiting for work.
    auto baseline = weft::test::threadCount();
    ThreadPool* pool = &reactor().getThreadPool();
    EXPECT_EQ(pool, &reactor().getThreadPool());
    bool startedInBefore = true, startedAfterStartup = false, samePoolWhileRunning = false;
    std::atomic<bool> shutdownBegan{false}, workFinished{false};
    bool finishedByAfterShutdown = false;
    reactor().addSystemEventTrigger("before", "startup", [&] { startedInBefore = pool->started(); });
    reactor().callWhenRunning([&] {
        startedAfterStartup = pool->started();
        samePoolWhileRunning = pool == &reactor().getThreadPool();
        reactor().callInThread([&] {
            reactor().callFromThread([&] { reactor().stop(); });
            // Still running when shutdown begins: the during phase must wait for it.
            while (!shutdownBegan.load()) std::this_thread::yield();
            workFinished = true;
        });
    });
    reactor().addSystemEventTrigger("before", "shutdown", [&] { shutdownBegan = true; });
    reactor().addSystemEventTrigger("after", "shutdown", [&] { finishedByAfterShutdown = workFinished.load(); });
    runReactor();
    EXPECT_FALSE(startedInBefore);
    EXPECT_TRUE(startedAfterStartup);
    EXPECT_TRUE(samePoolWhileRunning);
    EXPECT_TRUE(finishedByAfterShutdown) << "shutdown did not wait for running work";
    // Joined threads can linger briefly in /proc/self/task after join() returns.
    for (int i = 0; i < 200 && weft::test::threadCount() > baseline; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_LE(weft::test::threadCount(), baseline) << "pool workers outlived shutdown";
    // The stopped pool was dropped: asking again gives a fresh, unstarted pool.
    EXPECT_FALSE(reactor().getThreadPool().started());
}

TEST_P(ThreadsTest, R_49_shutdownBeforeRunDestroysThePool) {
    // firing "shutdown" before run() stops and destroys the pool (its queued work is released).
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    bool ran = false;
    reactor().callInThread([token = std::move(token), &ran] { ran = true; });
    EXPECT_FALSE(watch.expired());
    reactor().fireSystemEvent("shutdown");
    EXPECT_TRUE(watch.expired()) << "the pool (and its queued work) outlived shutdown";
    EXPECT_FALSE(ran);
    EXPECT_FALSE(reactor().getThreadPool().started());
}

TEST_P(ThreadsTest, R_49_suggestThreadPoolSizeSetsTheMaximum) {
    // suggestThreadPoolSize(n) sets the pool's maximum, before or after the pool exists.
    reactor().suggestThreadPoolSize(3);
    EXPECT_EQ(reactor().getThreadPool().max(), 3u);
    reactor().suggestThreadPoolSize(7);
    EXPECT_EQ(reactor().getThreadPool().max(), 7u);
    EXPECT_EQ(reactor().getThreadPool().min(), 0u);
}

TEST_P(ThreadsTest, R_49_suggestedSizeBoundsConcurrentWorkers) {
    // with suggestThreadPoolSize(2) no more than two work items run at once.
    reactor().suggestThreadPoolSize(2);
    std::atomic<int> running{0}, peak{0}, done{0};
    constexpr int kItems = 8;
    reactor().callWhenRunning([&] {
        for (int i = 0; i < kItems; ++i)
            reactor().callInThread([&] {
                int now = ++running;
                int p = peak.load();
                while (now > p && !peak.compare_exchange_weak(p, now)) {}
                std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the work itself
                --running;
                if (++done == kItems) reactor().callFromThread([&] { reactor().stop(); });
            });
    });
    runReactor(10);
    EXPECT_EQ(done.load(), kItems);
    EXPECT_LE(peak.load(), 2);
    EXPECT_GE(peak.load(), 1);
}

TEST_P(ThreadsTest, R_49_workerQueueingWorkWhileThePoolStopsIsSafe) {
    // work that calls callInThread while shutdown is stopping the pool is ignored, without races or crashes.
    std::atomic<bool> lateRan{false};
    ThreadPool* pool = &reactor().getThreadPool();
    reactor().callWhenRunning([&] {
        reactor().callInThread([&] {
            reactor().callFromThread([&] { reactor().stop(); });
            // Keep queueing work until the reactor is inside ThreadPool::stop().
            while (!pool->joined()) {
                reactor().callInThread([] {});
                std::this_thread::yield();
            }
            reactor().callInThread([&] { lateRan = true; });
        });
    });
    runReactor();
    EXPECT_FALSE(lateRan.load());
}

// ---- R-50 ------------------------------------------------------------------

TEST_P(ThreadsTest, R_50_isInIOThreadTrueOnTheRunThreadFalseElsewhere) {
    // the thread running run() is the I/O thread; pool threads and other threads are not.
    bool inReactor = false;
    std::atomic<bool> inPool{true}, inOther{true};
    Threads threads;
    reactor().callWhenRunning([&] {
        inReactor = reactor().isInIOThread();
        threads.start([&] { inOther = reactor().isInIOThread(); });
        reactor().callInThread([&] {
            inPool = reactor().isInIOThread();
            reactor().callFromThread([&] { reactor().stop(); });
        });
    });
    runReactor();
    threads.join();
    EXPECT_TRUE(inReactor);
    EXPECT_FALSE(inPool.load());
    EXPECT_FALSE(inOther.load());
}

TEST_P(ThreadsTest, R_50_runRegistersItsOwnThreadAsTheIOThread) {
    // the I/O thread is whichever thread calls run(), even if it did not create the reactor.
    auto other = makeReactor();
    EXPECT_TRUE(other->isInIOThread()) << "before run(), the creating thread";
    std::atomic<bool> inRunThread{false}, inCreator{true};
    Threads threads;
    threads.start([&] {
        other->callWhenRunning([&] {
            inRunThread = other->isInIOThread();
            other->stop();
        });
        runReactor(*other);
    });
    threads.join();
    inCreator = other->isInIOThread();
    EXPECT_TRUE(inRunThread.load());
    EXPECT_FALSE(inCreator.load());
}

INSTANTIATE_TEST_SUITE_P(Backends, ThreadsTest, weft::test::allBackends(), weft::test::backendParamName);
