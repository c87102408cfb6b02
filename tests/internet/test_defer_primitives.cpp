// DeferredLock, DeferredSemaphore and DeferredQueue (spec: defer.md DEF-53 … DEF-56).
#include <weft/internet/defer.hpp>
#include <weft/testing/defer.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using weft::Deferred;
using weft::DeferredLock;
using weft::DeferredQueue;
using weft::DeferredSemaphore;
using weft::Failure;
namespace defer = weft::defer;
using weft::testing::failureResultOf;
using weft::testing::successResultOf;

TEST(DeferredLock, DEF_53_acquireIsFifoAndReleaseHandsOver) {
    // DEF-53: acquire fires at once when free, else FIFO; release hands over or unlocks; bad release throws; cancel removes a waiter.
    DeferredLock lock;
    EXPECT_FALSE(lock.locked());
    auto first = lock.acquire();
    EXPECT_EQ(successResultOf(first), &lock);
    EXPECT_TRUE(lock.locked());
    std::vector<int> order;
    auto second = lock.acquire();
    auto third = lock.acquire();
    second.addCallback([&](DeferredLock*) { order.push_back(2); });
    auto cancelled = lock.acquire();
    third.addCallback([&](DeferredLock*) { order.push_back(3); });
    cancelled.cancel();
    (void)failureResultOf<defer::CancelledError>(cancelled);
    lock.release();
    EXPECT_EQ(order, std::vector<int>{2});
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_EQ(order, (std::vector<int>{2, 3}));
    lock.release();  // the cancelled waiter was removed: nobody is left
    EXPECT_FALSE(lock.locked());
    EXPECT_THROW(lock.release(), std::logic_error);

    auto held = lock.acquire();
    held.cancel();  // fired already: nothing happens
    EXPECT_EQ(successResultOf(held), &lock);
    lock.release();
}

TEST(DeferredLock, DEF_53_aWaiterMayDestroyTheLockItWasHandedOver) {
    // The last user tearing down the lock's owner from its acquire() callback:
    // release()'s hand-over loop must not touch the lock afterwards.
    auto check = [](auto primitive) {
        using P = typename decltype(primitive)::element_type;
        bool ran = false;
        (void)primitive->acquire();
        primitive->acquire().addCallback([&](P*) {
            ran = true;
            primitive.reset();
            return 0;
        });
        primitive->release();
        EXPECT_TRUE(ran);
    };
    check(std::make_unique<weft::DeferredLock>());
    check(std::make_unique<weft::DeferredSemaphore>(1));
}

TEST(DeferredLock, DEF_53_waitersReleasingFromCallbacksDoNotNest) {
    // DEF-53 (better than Twisted): 100 000 waiters releasing inside their callbacks all run, FIFO, and the lock ends unlocked.
    DeferredLock lock;
    auto holder = lock.acquire();
    constexpr std::size_t n = 100000;
    std::vector<std::size_t> order;
    order.reserve(n);
    char* base = static_cast<char*>(__builtin_frame_address(0));
    std::ptrdiff_t maxDepth = 0;
    for (std::size_t i = 0; i < n; ++i) {
        lock.acquire().addCallback([&, i](DeferredLock* l) {
            order.push_back(i);
            maxDepth = std::max(maxDepth, base - static_cast<char*>(__builtin_frame_address(0)));
            l->release();
        });
    }
    lock.release();
    ASSERT_EQ(order.size(), n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(order[i], i);
    EXPECT_FALSE(lock.locked());
    EXPECT_LT(maxDepth, 64 * 1024);  // bounded, not one frame per waiter
}

TEST(DeferredSemaphore, DEF_54_tokensLimitAndFifoHandOver) {
    // DEF-54: tokens < 1 throws invalid_argument; acquire takes tokens then queues; release hands over; over-release throws; cancel removes.
    EXPECT_THROW(DeferredSemaphore(0), std::invalid_argument);
    EXPECT_THROW(DeferredSemaphore(-1), std::invalid_argument);
    DeferredSemaphore sem(2);
    EXPECT_EQ(sem.limit(), 2u);
    EXPECT_EQ(sem.tokens(), 2u);
    (void)successResultOf(sem.acquire());
    (void)successResultOf(sem.acquire());
    EXPECT_EQ(sem.tokens(), 0u);
    auto waiting = sem.acquire();
    auto cancelled = sem.acquire();
    auto last = sem.acquire();
    cancelled.cancel();
    (void)failureResultOf<defer::CancelledError>(cancelled);
    weft::testing::assertNoResult(waiting);
    sem.release();
    EXPECT_EQ(successResultOf(waiting), &sem);
    EXPECT_EQ(sem.tokens(), 0u);
    sem.release();
    EXPECT_EQ(successResultOf(last), &sem);
    sem.release();
    sem.release();
    EXPECT_EQ(sem.tokens(), 2u);
    EXPECT_THROW(sem.release(), std::logic_error);
    EXPECT_EQ(sem.tokens(), 2u);

    // Iterative hand-over, as for the lock.
    DeferredSemaphore one(1);
    (void)successResultOf(one.acquire());
    std::size_t ran = 0;
    for (int i = 0; i < 100000; ++i)
        one.acquire().addCallback([&](DeferredSemaphore* s) {
            ++ran;
            s->release();
        });
    one.release();
    EXPECT_EQ(ran, 100000u);
    EXPECT_EQ(one.tokens(), 1u);
}

namespace {
Deferred<int> underLock(DeferredLock& lock, bool* lockedInside, bool doThrow) {
    auto guard = co_await lock.scoped();
    *lockedInside = lock.locked();
    if (doThrow) throw std::out_of_range("inside the scope");
    co_return 1;
}
}  // namespace

TEST(DeferredLock, DEF_55_runAndScopedReleaseOnSuccessAndFailure) {
    // DEF-55: run() acquires, calls f via maybeDeferred and releases on either outcome before its Deferred fires; scoped() guards release on exit.
    DeferredLock lock;
    bool lockedDuring = false;
    auto ok = lock.run(
        [&](int x) {
            lockedDuring = lock.locked();
            return x * 2;
        },
        21);
    EXPECT_TRUE(lockedDuring);
    EXPECT_FALSE(lock.locked());
    EXPECT_EQ(successResultOf(ok), 42);

    bool releasedBeforeOutcome = false;
    auto bad = lock.run([]() -> int { throw std::length_error("f threw"); });
    bad.addErrback([&](Failure f) {
        releasedBeforeOutcome = !lock.locked();
        return f;
    });
    EXPECT_TRUE(releasedBeforeOutcome);
    (void)failureResultOf<std::length_error>(bad);

    Deferred<int> async;
    auto pending = lock.run([&] { return async; });
    EXPECT_TRUE(lock.locked());
    async.callback(3);
    EXPECT_FALSE(lock.locked());
    EXPECT_EQ(successResultOf(pending), 3);

    DeferredSemaphore sem(1);
    auto s = sem.run([&] { return sem.tokens(); });
    EXPECT_EQ(successResultOf(s), 0u);
    EXPECT_EQ(sem.tokens(), 1u);

    bool inside = false;
    EXPECT_EQ(successResultOf(underLock(lock, &inside, false)), 1);
    EXPECT_TRUE(inside);
    EXPECT_FALSE(lock.locked());
    inside = false;
    auto thrown = underLock(lock, &inside, true);
    EXPECT_TRUE(inside);
    EXPECT_FALSE(lock.locked());
    (void)failureResultOf<std::out_of_range>(thrown);  // the exception was not swallowed
}

TEST(DeferredQueue, DEF_56_putGetSizeBacklogAndCancel) {
    // DEF-56: put feeds the oldest get or stores up to size, else QueueOverflow; get takes stored items or waits up to backlog, else QueueUnderflow.
    DeferredQueue<std::unique_ptr<int>> q;
    auto g1 = q.get();
    auto g2 = q.get();
    weft::testing::assertNoResult(g1);
    q.put(std::make_unique<int>(1));
    EXPECT_EQ(*successResultOf(g1), 1);
    weft::testing::assertNoResult(g2);
    g2.cancel();
    (void)failureResultOf<defer::CancelledError>(g2);
    q.put(std::make_unique<int>(2));  // not lost to the cancelled get
    EXPECT_EQ(q.pendingCount(), 1u);
    EXPECT_EQ(*successResultOf(q.get()), 2);

    DeferredQueue<int> bounded(1, 1);
    bounded.put(1);
    EXPECT_THROW(bounded.put(2), defer::QueueOverflow);
    EXPECT_EQ(successResultOf(bounded.get()), 1);
    auto waiting = bounded.get();
    EXPECT_THROW(bounded.get(), defer::QueueUnderflow);
    bounded.put(3);
    EXPECT_EQ(successResultOf(waiting), 3);

    DeferredQueue<int> noStore(0);
    EXPECT_THROW(noStore.put(1), defer::QueueOverflow);
    auto w = noStore.get();
    noStore.put(4);
    EXPECT_EQ(successResultOf(w), 4);

    DeferredQueue<int> noBacklog(DeferredQueue<int>::unbounded, 0);
    EXPECT_THROW(noBacklog.get(), defer::QueueUnderflow);
    noBacklog.put(5);
    EXPECT_EQ(successResultOf(noBacklog.get()), 5);
}
