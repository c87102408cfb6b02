// Deferred core: firing, chaining, cancellation, timeouts, unhandled errors,
// succeed/fail/maybeDeferred, typed results, Failure, debugging and the test
// helpers (spec: defer.md DEF-1 … DEF-37, DEF-57 … DEF-59).
#include <weft/internet/defer.hpp>
#include <weft/internet/task.hpp>
#include <weft/log.hpp>
#include <weft/testing/defer.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using weft::Deferred;
using weft::Failure;
using weft::Result;
namespace defer = weft::defer;

namespace {

struct Captured {
    weft::log::Level level;
    std::string message;
    std::optional<Failure> failure;
};

/// Records every log event while alive.
struct LogCapture {
    std::vector<Captured> events;
    weft::log::ScopedObserver observer{[this](const weft::log::Event& e) {
        events.push_back(
            {e.level, std::string(e.message), e.failure ? std::optional<Failure>(*e.failure) : std::nullopt});
    }};
    std::size_t unhandled() const {
        std::size_t n = 0;
        for (const auto& e : events)
            if (e.level == weft::log::Level::critical && e.message.starts_with("Unhandled error in Deferred:")) ++n;
        return n;
    }
};

struct DebuggingOn {
    DebuggingOn() { weft::setDebugging(true); }
    ~DebuggingOn() { weft::setDebugging(false); }
};

std::exception_ptr boom(const char* what = "boom") { return std::make_exception_ptr(std::runtime_error(what)); }

/// The result d currently has, taken (nullopt when it has none now).
template <class T>
std::optional<Result<T>> resultOf(Deferred<T> d) {
    std::optional<Result<T>> out;
    d.addBoth([&out](Result<T> r) { out.emplace(std::move(r)); });
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Firing and running the chain

TEST(Deferred, DEF_1_newDeferredStoresStepsAndFiringRunsThemSynchronously) {
    // DEF-1: no result and called() false at first; callback() sets called() and runs the chain before returning.
    Deferred<int> d;
    EXPECT_FALSE(d.called());
    std::vector<int> seen;
    d.addCallback([&](int v) {
        seen.push_back(v);
        return v + 1;
    });
    d.addCallback([&](int v) {
        seen.push_back(v);
        return v;
    });
    EXPECT_TRUE(seen.empty());
    d.callback(1);
    EXPECT_TRUE(d.called());
    EXPECT_EQ(seen, (std::vector<int>{1, 2}));
}

TEST(Deferred, DEF_2_stepsRunOldestFirstWithExtraArgumentsAndAddReturnsSameDeferred) {
    // DEF-2: ordered (cb, eb) pairs; missing halves pass through; extra args follow the result; add returns the same Deferred.
    Deferred<int> d;
    std::vector<std::string> log;
    auto a = d.addCallback(
        [&](int v, int extra, std::string tag) {
            log.push_back(tag + std::to_string(v + extra));
            return v;
        },
        10, std::string("cb"));
    auto b = a.addErrback([&](Failure) {
        log.push_back("eb-not-run");
        return 0;
    });
    auto c = b.addCallbacks(
        [&](int v) {
            log.push_back("pair" + std::to_string(v));
            return v;
        },
        [&](Failure) {
            log.push_back("pair-eb");
            return 0;
        });
    EXPECT_EQ(a.id(), d.id());
    EXPECT_EQ(b.id(), d.id());
    EXPECT_EQ(c.id(), d.id());
    d.callback(1);
    EXPECT_EQ(log, (std::vector<std::string>{"cb11", "pair1"}));

    // addCallbacks with only a callback side: a Failure passes the missing errback untouched.
    Deferred<int> e;
    auto ep = boom();
    std::optional<Failure> got;
    e.addCallback([](int v) { return v; }).addErrback([&](Failure f) {
        got = f;
        return 0;
    });
    e.errback(ep);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->value(), ep);
}

TEST(Deferred, DEF_3_throwOrReturnedFailureSwitchesPathsAndErrbackCanRecover) {
    // DEF-3: a throw or returned Failure moves to the error path (returned Failure as the same object); an errback's value recovers.
    Failure returned(std::runtime_error("returned"));
    Deferred<int> d;
    std::optional<Failure> first;
    std::optional<Failure> second;
    std::vector<int> values;
    auto ep = boom("thrown");
    d.addCallback([&](int) -> int { std::rethrow_exception(ep); })
        .addErrback([&](Failure f) {
            first = f;
            return returned;
        })
        .addErrback([&](Failure f) -> int {
            second = f;
            return 7;
        })
        .addCallback([&](int v) {
            values.push_back(v);
            return v;
        })
        .addErrback([&](Failure f) -> int { f.raiseException(); })  // rethrow keeps the error path…
        .addCallback([&](int v) {
            values.push_back(v);
            return v;
        });
    d.callback(0);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->value(), ep);  // the thrown object, wrapped
    EXPECT_EQ(second->value(), returned.value());
    EXPECT_EQ(values, (std::vector<int>{7, 7}));  // …but no error happened after the recovery

    Deferred<int> e;
    std::optional<Failure> last;
    e.addErrback([](Failure f) -> int { f.raiseException(); }).addErrback([&](Failure f) {
        last = f;
        return 0;
    });
    auto ep2 = boom();
    e.errback(ep2);
    ASSERT_TRUE(last);
    EXPECT_EQ(last->value(), ep2);
}

TEST(Deferred, DEF_4_aStepNeverFeedsTheOtherHalfOfItsPair) {
    // DEF-4: when cb of addCallbacks(cb, eb) throws, eb is skipped; the next pair's errback gets it.
    Deferred<int> d;
    std::vector<std::string> ran;
    d.addCallbacks(
         [&](int) -> int {
             ran.push_back("cb1");
             throw std::runtime_error("x");
         },
         [&](Failure) {
             ran.push_back("eb1");
             return 0;
         })
        .addCallbacks(
            [&](int v) {
                ran.push_back("cb2");
                return v;
            },
            [&](Failure) {
                ran.push_back("eb2");
                return 5;
            })
        .addCallbacks(
            [&](int v) {
                ran.push_back("cb3:" + std::to_string(v));
                return v;
            },
            [&](Failure) {
                ran.push_back("eb3");
                return 0;
            });
    d.callback(1);
    EXPECT_EQ(ran, (std::vector<std::string>{"cb1", "eb2", "cb3:5"}));
}

TEST(Deferred, DEF_5_addingToAFiredDeferredRunsTheStepInsideTheAddCall) {
    // DEF-5: a step added to a fired, unpaused, non-waiting Deferred runs inside the add call.
    auto d = weft::succeed(3);
    int seen = 0;
    auto d2 = d.addCallback([&](int v) {
        seen = v;
        return v * 2;
    });
    EXPECT_EQ(seen, 3);
    int next = 0;
    d2.addCallback([&](int v) {
        next = v;
        return v;
    });
    EXPECT_EQ(next, 6);

    auto f = weft::fail<int>(std::runtime_error("x"));
    bool handled = false;
    f.addErrback([&](Failure) {
        handled = true;
        return 0;
    });
    EXPECT_TRUE(handled);
}

TEST(Deferred, DEF_6_aStepIsDestroyedRightAfterItRuns) {
    // DEF-6: each step runs once and its callable (and captures) die as soon as it returns.
    auto sentinel = std::make_shared<int>(0);
    std::weak_ptr<weft::detail::Core> weak;
    {
        Deferred<int> d;
        weak = d.detailCore();
        d.addCallback([d, sentinel](int v) { return v; });  // captures its own Deferred: a cycle until it runs
        EXPECT_EQ(sentinel.use_count(), 2);
        d.callback(1);
        EXPECT_EQ(sentinel.use_count(), 1);
    }
    EXPECT_TRUE(weak.expired());
}

TEST(Deferred, DEF_7_stepsAddedByARunningCallbackRunAfterItInTheSamePass) {
    // DEF-7: re-entrant adds append at the end and run after the current callback returns, never nested.
    Deferred<int> d;
    std::vector<std::string> order;
    int depth = 0;
    d.addCallback([&](int v) {
        ++depth;
        d.addCallback([&](int x) {
            order.push_back("added depth=" + std::to_string(depth));
            throw std::runtime_error("from added");
            return x;
        });
        order.push_back("first");
        --depth;
        return v;
    });
    std::optional<Failure> f;
    d.callback(1);
    d.addErrback([&](Failure x) {
        f = x;
        return 0;
    });
    EXPECT_EQ(order, (std::vector<std::string>{"first", "added depth=0"}));
    ASSERT_TRUE(f);
    EXPECT_EQ(f->getErrorMessage(), "from added");
}

TEST(Deferred, DEF_8_firingTwiceThrowsAlreadyCalledInAllFourOrders) {
    // DEF-8: callback/errback after a fire throws AlreadyCalledError and leaves the result; from inside the chain it becomes the Failure.
    auto check = [](bool firstOk, bool secondOk) {
        Deferred<int> d;
        if (firstOk) d.callback(1);
        else d.errback(std::runtime_error("first"));
        if (secondOk) {
            EXPECT_THROW(d.callback(2), defer::AlreadyCalledError);
        } else {
            EXPECT_THROW(d.errback(std::runtime_error("second")), defer::AlreadyCalledError);
        }
        auto r = resultOf(d);
        ASSERT_TRUE(r);
        if (firstOk) {
            EXPECT_EQ(r->value(), 1);
        } else {
            EXPECT_EQ(r->failure().getErrorMessage(), "first");
        }
    };
    check(true, true);
    check(true, false);
    check(false, false);
    check(false, true);

    Deferred<int> d;
    std::optional<Failure> f;
    d.addCallback([&d](int v) {
         d.callback(v);
         return v;
     }).addErrback([&](Failure x) {
        f = x;
        return 0;
    });
    d.callback(1);
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->check<defer::AlreadyCalledError>());
}

TEST(Deferred, DEF_9_errbackAcceptsFailureExceptionOrCurrentException) {
    // DEF-9: errback(Failure) keeps the object, errback(E)/exception_ptr wrap, errback() takes the handled exception or throws NoCurrentExceptionError.
    Failure given(std::runtime_error("given"));
    Deferred<int> a;
    a.errback(given);
    EXPECT_EQ(resultOf(a)->failure(), given);

    auto ep = boom();
    Deferred<int> b;
    b.errback(ep);
    EXPECT_EQ(resultOf(b)->failure().value(), ep);

    Deferred<int> c;
    c.errback(std::out_of_range("range"));
    EXPECT_TRUE(resultOf(c)->failure().check<std::out_of_range>());

    Deferred<int> d;
    try {
        std::rethrow_exception(ep);
    } catch (...) {
        d.errback();
    }
    EXPECT_EQ(resultOf(d)->failure().value(), ep);

    Deferred<int> e;
    EXPECT_THROW(e.errback(), weft::NoCurrentExceptionError);
    EXPECT_FALSE(e.called());
}

TEST(Deferred, DEF_10_pauseHoldsStepsUntilTheLastUnpause) {
    // DEF-10: while paused nothing runs; the unpause reaching zero runs the steps; a stray unpause throws; a pause inside a step stops the pass.
    Deferred<int> d;
    std::vector<int> seen;
    d.pause();
    d.pause();
    d.addCallback([&](int v) {
        seen.push_back(v);
        return v;
    });
    d.callback(1);
    EXPECT_TRUE(seen.empty());
    d.unpause();
    EXPECT_TRUE(seen.empty());
    d.unpause();
    EXPECT_EQ(seen, std::vector<int>{1});
    EXPECT_EQ(d.paused(), 0);

    // Better than Twisted: unpause() without pause() throws and changes nothing.
    EXPECT_THROW(d.unpause(), std::logic_error);
    EXPECT_EQ(d.paused(), 0);
    d.addCallback([&](int v) {
        seen.push_back(v + 1);
        return v;
    });
    EXPECT_EQ(seen, (std::vector<int>{1, 2}));

    // Better than Twisted: a pause() from a running callback stops the pass when it returns.
    Deferred<int> e;
    std::vector<std::string> order;
    e.addCallback([&](int v) {
         e.pause();
         order.push_back("pauser");
         return v;
     }).addCallback([&](int v) {
        order.push_back("after");
        return v;
    });
    e.callback(1);
    EXPECT_EQ(order, std::vector<std::string>{"pauser"});
    e.unpause();
    EXPECT_EQ(order, (std::vector<std::string>{"pauser", "after"}));
}

// ---------------------------------------------------------------------------
// Chaining

TEST(Deferred, DEF_11_returningAnUnfiredDeferredMakesTheOuterWait) {
    // DEF-11: the outer waits (also for steps added meanwhile) until X's chain ends; X's final result continues the outer; X is left empty.
    Deferred<int> outer;
    Deferred<int> x;
    std::vector<std::string> order;
    x.addCallback([&](int v) {
        order.push_back("x-step");
        return v * 10;
    });
    outer
        .addCallback([&](int) {
            order.push_back("returns-x");
            return x;
        })
        .addCallback([&](int v) {
            order.push_back("outer-" + std::to_string(v));
            return v;
        });
    outer.callback(1);
    EXPECT_TRUE(outer.called());
    outer.addCallback([&](int v) {
        order.push_back("added-while-waiting-" + std::to_string(v));
        return v;
    });
    EXPECT_EQ(order, std::vector<std::string>{"returns-x"});
    x.callback(4);
    EXPECT_EQ(order, (std::vector<std::string>{"returns-x", "x-step", "outer-40", "added-while-waiting-40"}));
    // X keeps an empty result: its int handle is stale (DEF-32).
    EXPECT_THROW(x.addCallback([](int v) { return v; }), std::logic_error);

    Deferred<void> outer2;
    Deferred<int> failing;
    std::optional<Failure> f;
    outer2.addCallback([&] { return failing; }).addErrback([&](Failure e) {
        f = e;
        return 0;
    });
    outer2.callback();
    auto ep = boom();
    failing.errback(ep);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->value(), ep);
}

TEST(Deferred, DEF_12_aFiredDeferredReturnedByAStepIsTakenAtOnce) {
    // DEF-12: a ready X's result is taken in the same pass; X is left empty and its Failure is never reported.
    LogCapture logs;
    std::optional<Failure> f;
    {
        Deferred<int> outer;
        auto x = weft::fail<int>(std::runtime_error("inner"));
        int steps = 0;
        outer
            .addCallback([&](int) {
                ++steps;
                return x;
            })
            .addErrback([&](Failure e) {
                ++steps;
                f = e;
                return 1;
            });
        outer.callback(0);
        EXPECT_EQ(steps, 2);
        EXPECT_EQ(x.repr().find("current result: None") != std::string::npos, true);
    }
    ASSERT_TRUE(f);
    EXPECT_EQ(f->getErrorMessage(), "inner");
    EXPECT_EQ(logs.unhandled(), 0u);
}

TEST(Deferred, DEF_13_handOffOrderIsTransitiveAndRespectsPauses) {
    // DEF-13: X's own steps run first, then the outer's remaining ones, then those added meanwhile; chains are transitive; pauses are respected.
    std::vector<std::string> order;
    Deferred<int> a;
    Deferred<int> b;
    Deferred<int> c;
    c.addCallback([&](int v) {
        order.push_back("c1");
        return v + 1;
    });
    b.addCallback([&](int) {
         order.push_back("b->c");
         return c;
     }).addCallback([&](int v) {
        order.push_back("b2:" + std::to_string(v));
        return v + 1;
    });
    a.addCallback([&](int) {
         order.push_back("a->b");
         return b;
     }).addCallback([&](int v) {
        order.push_back("a2:" + std::to_string(v));
        return v;
    });
    a.callback(0);
    b.callback(0);
    a.addCallback([&](int v) {
        order.push_back("a-late:" + std::to_string(v));
        return v;
    });
    c.callback(1);
    EXPECT_EQ(order, (std::vector<std::string>{"a->b", "b->c", "c1", "b2:2", "a2:3", "a-late:3"}));

    // A paused X that has its result holds the outer until unpaused.
    Deferred<int> outer;
    auto x = weft::succeed(5);
    x.pause();
    std::optional<int> got;
    outer.addCallback([&](int) { return x; }).addCallback([&](int v) {
        got = v;
        return v;
    });
    outer.callback(0);
    EXPECT_FALSE(got);
    x.unpause();
    EXPECT_EQ(got, 5);

    // A paused outer does not keep X from finishing its own chain.
    Deferred<int> outer2;
    Deferred<int> x2;
    bool xRan = false;
    std::optional<int> got2;
    x2.addCallback([&](int v) {
        xRan = true;
        return v;
    });
    outer2.addCallback([&](int) { return x2; }).addCallback([&](int v) {
        got2 = v;
        return v;
    });
    outer2.callback(0);
    outer2.pause();
    x2.callback(9);
    EXPECT_TRUE(xRan);
    EXPECT_FALSE(got2);
    outer2.unpause();
    EXPECT_EQ(got2, 9);
}

namespace {
std::ptrdiff_t implicitChainDepth(int howMany) {
    // Like Twisted's test_boundedStackDepth: top waits on inner[0], each inner
    // waits on the next, the last waits on `last`.
    char* base = static_cast<char*>(__builtin_frame_address(0));
    std::ptrdiff_t depth = -1;
    Deferred<void> top;
    std::vector<Deferred<void>> inners(static_cast<std::size_t>(howMany));
    Deferred<void> last;
    top.addCallback([&] { return inners[0]; }).addCallback([&] {
        depth = base - static_cast<char*>(__builtin_frame_address(0));
    });
    for (std::size_t i = 0; i + 1 < inners.size(); ++i) inners[i].addCallback([&, i] { return inners[i + 1]; });
    inners.back().addCallback([&] { return last; });
    top.callback();
    for (auto& d : inners) d.callback();
    EXPECT_EQ(depth, -1);
    last.callback();
    return depth;
}
}  // namespace

TEST(Deferred, DEF_14_longImplicitChainHasBoundedStackDepth) {
    // DEF-14: a 100 000-long implicit chain completes, and the final callback runs at the depth of a chain of one.
    const std::ptrdiff_t one = implicitChainDepth(1);
    const std::ptrdiff_t many = implicitChainDepth(100000);
    EXPECT_GT(one, 0);
    EXPECT_EQ(many, one);
}

TEST(Deferred, DEF_15_aStepReturningItsOwnDeferredFailsWithLogicError) {
    // DEF-15 (better than Twisted): returning the Deferred the step belongs to gives a std::logic_error Failure at once.
    Deferred<int> d;
    std::optional<Failure> f;
    bool later = false;
    d.addCallback([&d](int) { return d; })
        .addErrback([&](Failure e) {
            f = e;
            return 1;
        })
        .addCallback([&](int v) {
            later = true;
            return v;
        });
    d.callback(0);
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->check<std::logic_error>());
    EXPECT_TRUE(later);
    EXPECT_EQ(d.paused(), 0);
}

TEST(Deferred, DEF_16_waitingIsNotPausing) {
    // DEF-16: a waiting Deferred is called(), paused() stays 0, unpause() throws, and only the hand-off ends the wait.
    Deferred<int> outer;
    Deferred<int> x;
    std::optional<int> got;
    outer.addCallback([&](int) { return x; }).addCallback([&](int v) {
        got = v;
        return v;
    });
    outer.callback(0);
    EXPECT_TRUE(outer.called());
    EXPECT_EQ(outer.paused(), 0);
    EXPECT_THROW(outer.unpause(), std::logic_error);
    EXPECT_FALSE(got);
    x.callback(3);
    EXPECT_EQ(got, 3);
}

TEST(Deferred, DEF_17_chainDeferredFiresTheSecondAndContinuesEmpty) {
    // DEF-17: d1.chainDeferred(d2) fires d2 with d1's result, then d1 continues empty; an already-fired d2 gives AlreadyCalledError.
    Deferred<int> d1;
    Deferred<int> d2;
    std::vector<std::string> order;
    d2.addCallback([&](int v) {
        order.push_back("d2:" + std::to_string(v));
        return v;
    });
    Deferred<void> rest = d1.chainDeferred(d2);
    EXPECT_EQ(rest.id(), d1.id());
    rest.addCallback([&] { order.push_back("d1-after"); });
    d1.callback(5);
    EXPECT_EQ(order, (std::vector<std::string>{"d2:5", "d1-after"}));

    Deferred<int> e1;
    auto e2 = weft::succeed(1);
    std::optional<Failure> f;
    e1.chainDeferred(e2).addErrback([&](Failure x) { f = x; });
    e1.callback(2);
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->check<defer::AlreadyCalledError>());

    // Firing d2 some other way never affects d1.
    Deferred<int> g1;
    Deferred<int> g2;
    Deferred<void> g1rest = g1.chainDeferred(g2);
    g2.callback(1);
    EXPECT_FALSE(g1.called());
    std::optional<Failure> gf;
    g1rest.addErrback([&](Failure x) { gf = x; });
    g1.callback(3);
    EXPECT_TRUE(gf && gf->check<defer::AlreadyCalledError>());
}

TEST(Deferred, DEF_17_longExplicitChainDeliversInOrderWithoutRecursion) {
    // DEF-17 (better than Twisted): 100 000 chainDeferred links deliver the value to the last Deferred, in order.
    constexpr std::size_t n = 100000;
    std::vector<Deferred<int>> ds(n);
    std::vector<std::size_t> order;
    order.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        ds[i].addCallback([&order, i](int v) {
            order.push_back(i);
            return v;
        });
        if (i + 1 < n) ds[i].chainDeferred(ds[i + 1]);
    }
    std::optional<int> last;
    ds.back().addCallback([&](int v) {
        last = v;
        return v;
    });
    ds.front().callback(42);
    EXPECT_EQ(last, 42);
    ASSERT_EQ(order.size(), n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(order[i], i);
}

// ---------------------------------------------------------------------------
// Cancellation

TEST(Deferred, DEF_18_cancelCallsTheCancellerOnceThenErrbacksCancelled) {
    // DEF-18: cancel() calls the canceller with the Deferred; unfired afterwards means CancelledError; a canceller's own result stands.
    Deferred<int> plain;
    plain.cancel();
    EXPECT_TRUE(weft::testing::failureResultOf<defer::CancelledError>(plain).check<defer::CancelledError>());

    int calls = 0;
    const void* arg = nullptr;
    Deferred<int> d([&](Deferred<int>& self) {
        ++calls;
        arg = self.id();
    });
    d.cancel();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(arg, d.id());
    EXPECT_TRUE(weft::testing::failureResultOf<defer::CancelledError>(d).check<defer::CancelledError>());

    Deferred<int> withValue([](Deferred<int>& self) { self.callback(7); });
    withValue.cancel();
    EXPECT_EQ(weft::testing::successResultOf(withValue), 7);

    Deferred<int> withError([](Deferred<int>& self) { self.errback(std::out_of_range("other")); });
    withError.cancel();
    EXPECT_TRUE(weft::testing::failureResultOf<std::out_of_range>(withError).check<std::out_of_range>());
}

TEST(Deferred, DEF_19_cancelOnAFiredDeferredIsANoOpUnlessItWaits) {
    // DEF-19: no canceller call after firing; a waiting Deferred cancels what it waits on; the canceller runs at most once.
    int calls = 0;
    Deferred<int> fired([&](Deferred<int>&) { ++calls; });
    fired.callback(1);
    fired.cancel();
    EXPECT_EQ(calls, 0);
    EXPECT_EQ(weft::testing::successResultOf(fired), 1);

    int innerCancels = 0;
    Deferred<int> x([&](Deferred<int>&) { ++innerCancels; });
    Deferred<int> outer;
    std::optional<Failure> f;
    outer.addCallback([&](int) { return x; }).addErrback([&](Failure e) {
        f = e;
        return 0;
    });
    outer.callback(0);
    outer.cancel();
    EXPECT_EQ(innerCancels, 1);
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->check<defer::CancelledError>());

    int once = 0;
    Deferred<int> m([&](Deferred<int>&) { ++once; });
    m.cancel();
    m.cancel();
    m.cancel();
    EXPECT_EQ(once, 1);
    (void)weft::testing::failureResultOf(m);
}

TEST(Deferred, DEF_20_lateProducersAfterCancel) {
    // DEF-20: without canceller the first late callback/errback is ignored and the next throws; with a canceller nothing is ignored.
    Deferred<int> d;
    d.cancel();
    EXPECT_NO_THROW(d.callback(1));
    EXPECT_THROW(d.callback(2), defer::AlreadyCalledError);
    d.cancel();
    EXPECT_TRUE(weft::testing::failureResultOf<defer::CancelledError>(d).check<defer::CancelledError>());

    Deferred<int> e;
    e.cancel();
    e.cancel();
    EXPECT_NO_THROW(e.errback(std::runtime_error("late")));
    EXPECT_THROW(e.errback(std::runtime_error("later")), defer::AlreadyCalledError);
    (void)weft::testing::failureResultOf<defer::CancelledError>(e);

    Deferred<int> c([](Deferred<int>&) {});
    c.cancel();
    EXPECT_THROW(c.callback(1), defer::AlreadyCalledError);
    (void)weft::testing::failureResultOf(c);
}

TEST(Deferred, DEF_21_cancellerReleasedOnFireAndThrowingCancellerPropagates) {
    // DEF-21: the canceller dies when the Deferred fires (no lasting cycle); an exception from it leaves cancel() and the Deferred unfired.
    auto sentinel = std::make_shared<int>(0);
    std::weak_ptr<weft::detail::Core> weak;
    {
        auto holder = std::make_shared<std::optional<Deferred<int>>>();
        Deferred<int> d([sentinel, holder](Deferred<int>&) {});
        *holder = d;  // the canceller refers back to its Deferred
        weak = d.detailCore();
        EXPECT_EQ(sentinel.use_count(), 2);
        d.callback(1);
        EXPECT_EQ(sentinel.use_count(), 1);
    }
    EXPECT_TRUE(weak.expired());

    Deferred<int> t([](Deferred<int>&) { throw std::out_of_range("canceller"); });
    EXPECT_THROW(t.cancel(), std::out_of_range);
    EXPECT_FALSE(t.called());
}

TEST(Deferred, DEF_20_DEF_21_aCancellerThatThrewStaysAndItsProducerStillCounts) {
    // A canceller that throws leaves the Deferred unfired and keeps its place,
    // as Twisted's: the next cancel() runs it again (and it throws again), and
    // the producer's own callback() is not swallowed as a late one.
    int runs = 0;
    Deferred<int> t([&](Deferred<int>&) {
        ++runs;
        throw std::out_of_range("canceller");
    });
    EXPECT_THROW(t.cancel(), std::out_of_range);
    EXPECT_THROW(t.cancel(), std::out_of_range);
    EXPECT_EQ(runs, 2);
    EXPECT_FALSE(t.called());
    t.callback(42);
    EXPECT_EQ(weft::testing::successResultOf(t), 42);

    // Once it returns normally, the CancelledError follows and a later
    // callback() is an error (DEF-20: a Deferred with a canceller ignores nothing).
    int tries = 0;
    Deferred<int> u([&](Deferred<int>&) {
        if (++tries == 1) throw std::out_of_range("first try");
    });
    EXPECT_THROW(u.cancel(), std::out_of_range);
    u.cancel();
    EXPECT_EQ(tries, 2);
    EXPECT_THROW(u.callback(1), defer::AlreadyCalledError);
    (void)weft::testing::failureResultOf<defer::CancelledError>(u);
}

namespace {
Deferred<int> addOne(Deferred<int> d) {
    int v = co_await std::move(d);
    co_return v + 1;
}
}  // namespace

TEST(Deferred, DEF_50_DEF_19_cancelReachesTheBottomOfAnyDepthWithoutRecursing) {
    // Cancelling the top of a very deep chain of coroutines, or of callbacks
    // that each returned the Deferred below, reaches the one at the bottom in a
    // loop: the stack does not grow with the depth (it overflowed at ≈ 50 000).
    constexpr int kDepth = 100000;
    for (bool coroutines : {true, false}) {
        SCOPED_TRACE(coroutines ? "coroutines" : "callbacks returning Deferreds");
        int cancelled = 0;
        Deferred<int> leaf([&](Deferred<int>&) { ++cancelled; });
        Deferred<int> top = leaf;
        for (int i = 0; i < kDepth; ++i) {
            if (coroutines) {
                top = addOne(std::move(top));
            } else {
                Deferred<int> outer;
                outer.callback(0);
                top = outer.addCallback([inner = std::move(top)](int) mutable { return std::move(inner); });
            }
        }
        top.cancel();
        EXPECT_EQ(cancelled, 1);
        (void)weft::testing::failureResultOf<defer::CancelledError>(top);
    }
}

TEST(Deferred, DEF_57_anUnhandledErrorsDebugInfoStaysOnOneLogLine) {
    DebuggingOn on;
    LogCapture logs;
    { auto d = weft::fail<int>(std::runtime_error("lost")); }
    ASSERT_EQ(logs.unhandled(), 1u);
    const auto& m = logs.events.back().message;
    EXPECT_NE(m.find("(debug: C: Deferred was created:"), std::string::npos) << m;
    EXPECT_NE(m.find("test_defer.cpp"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

// ---------------------------------------------------------------------------
// Timeouts

TEST(Deferred, DEF_22_addTimeoutCancelsAndCoversEarlierAsynchronousSteps) {
    // DEF-22: the timer cancels d — and thereby a pending Deferred returned by an earlier step, not one from a later step.
    weft::task::Clock clock;
    Deferred<int> d;
    int earlierCancelled = 0;
    Deferred<int> earlier([&](Deferred<int>&) { ++earlierCancelled; });
    auto same = d.addCallback([&](int) { return earlier; }).addTimeout(5, clock);
    EXPECT_EQ(same.id(), d.id());
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    d.callback(0);
    clock.advance(4.9);
    EXPECT_EQ(earlierCancelled, 0);
    clock.advance(0.2);
    EXPECT_EQ(earlierCancelled, 1);
    EXPECT_TRUE(weft::testing::failureResultOf<defer::TimeoutError>(d).check<defer::TimeoutError>());

    Deferred<int> d2;
    int laterCancelled = 0;
    Deferred<int> later([&](Deferred<int>&) { ++laterCancelled; });
    d2.addTimeout(5, clock).addCallback([&](int) { return later; });
    d2.callback(0);
    clock.advance(10);
    EXPECT_EQ(laterCancelled, 0);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    later.callback(1);
    EXPECT_EQ(weft::testing::successResultOf(d2), 1);
}

TEST(Deferred, DEF_23_timeoutTranslatesCancelledErrorOrCallsOnTimeoutCancel) {
    // DEF-23: a timer-caused CancelledError becomes TimeoutError(seconds); other outcomes pass; onTimeoutCancel replaces the result.
    weft::task::Clock clock;
    Deferred<int> d;
    d.addTimeout(10, clock);
    clock.advance(10);
    Failure f = weft::testing::failureResultOf<defer::TimeoutError>(d);
    EXPECT_EQ(f.get<defer::TimeoutError>()->timeout(), 10);

    Deferred<int> valued([](Deferred<int>& self) { self.callback(3); });
    valued.addTimeout(1, clock);
    clock.advance(1);
    EXPECT_EQ(weft::testing::successResultOf(valued), 3);

    Deferred<int> other([](Deferred<int>& self) { self.errback(std::out_of_range("x")); });
    other.addTimeout(1, clock);
    clock.advance(1);
    (void)weft::testing::failureResultOf<std::out_of_range>(other);

    Deferred<int> recovered;
    recovered.addErrback([](Failure) { return 8; }).addTimeout(1, clock);
    clock.advance(1);
    EXPECT_EQ(weft::testing::successResultOf(recovered), 8);

    Deferred<int> custom;
    std::optional<double> seenTimeout;
    bool sawCancelled = false;
    custom.addTimeout(2, clock, [&](Result<int> r, double t) -> Result<int> {
        seenTimeout = t;
        sawCancelled = !r.ok() && r.failure().check<defer::CancelledError>();
        return 99;
    });
    clock.advance(2);
    EXPECT_EQ(seenTimeout, 2.0);
    EXPECT_TRUE(sawCancelled);
    EXPECT_EQ(weft::testing::successResultOf(custom), 99);

    Deferred<int> customThrow;
    customThrow.addTimeout(2, clock, [](Result<int>, double) -> Result<int> { throw std::length_error("mine"); });
    clock.advance(2);
    (void)weft::testing::failureResultOf<std::length_error>(customThrow);
}

TEST(Deferred, DEF_24_resultBeforeTheTimerCancelsTheTimer) {
    // DEF-24: reaching the timeout steps first cancels the timer, skips onTimeoutCancel, and leaves an explicit CancelledError alone.
    weft::task::Clock clock;
    bool called = false;
    auto onTimeout = [&](Result<int> r, double) {
        called = true;
        return r;
    };

    Deferred<int> ok;
    ok.addTimeout(5, clock, onTimeout);
    ok.callback(1);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    EXPECT_EQ(weft::testing::successResultOf(ok), 1);

    Deferred<int> bad;
    bad.addTimeout(5, clock, onTimeout);
    bad.errback(std::out_of_range("x"));
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    (void)weft::testing::failureResultOf<std::out_of_range>(bad);

    Deferred<int> cancelled;
    cancelled.addTimeout(5, clock);
    cancelled.cancel();
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    (void)weft::testing::failureResultOf<defer::CancelledError>(cancelled);
    clock.advance(10);
    EXPECT_FALSE(called);
}

// ---------------------------------------------------------------------------
// Unhandled errors and ownership

TEST(Deferred, DEF_25_unhandledFailureIsLoggedOnceAtLastRelease) {
    // DEF-25: a Failure left at the last release is logged once, critical, "Unhandled error in Deferred:", as one event with the Failure.
    LogCapture logs;
    auto ep = boom("lost");
    {
        Deferred<int> d;
        d.errback(ep);
        auto copy = d;
        EXPECT_TRUE(logs.events.empty());
    }
    ASSERT_EQ(logs.events.size(), 1u);
    EXPECT_EQ(logs.events[0].level, weft::log::Level::critical);
    EXPECT_EQ(logs.events[0].message, "Unhandled error in Deferred:");
    ASSERT_TRUE(logs.events[0].failure);
    EXPECT_EQ(logs.events[0].failure->value(), ep);

    logs.events.clear();
    { auto d = weft::succeed(1); }
    {
        auto d = weft::fail<int>(std::runtime_error("handled"));
        d.addErrback([](Failure) { return 0; });
    }
    {
        auto d = weft::fail<int>(std::runtime_error("consumed"));
        d.detailCore()->consumed = d.detailCore()->result.failure().value();
    }
    EXPECT_TRUE(logs.events.empty());

    {
        auto d = weft::fail<int>(std::runtime_error("passed on"));
        d.addErrback([](Failure f) { return f; });  // returning the Failure does not handle it
    }
    EXPECT_EQ(logs.unhandled(), 1u);
}

TEST(Deferred, DEF_25_anErrbackThatHandedTheErrorToAnUnfiredDeferredLeavesNothingToReport) {
    // DEF-25/DEF-12: an errback took the Failure and returned a Deferred that never
    // fires; dropping both reported the handled Failure at the last release, from
    // the moved-from husk the errback left (ASan: SEGV in rethrow_exception).
    LogCapture logs;
    for (int by = 0; by < 3; ++by) {
        Deferred<int> outer, inner;
        if (by == 0) outer.addErrback([inner](Failure) { return inner; });
        if (by == 1) outer.addBoth([inner](Result<int>) { return inner; });
        if (by == 2)
            outer.addErrback([inner](Failure f) {  // keeps a copy: still handled
                (void)f;
                return inner;
            });
        outer.errback(std::runtime_error("handled"));
    }
    EXPECT_TRUE(logs.events.empty());
    {
        // The same through cancel(): the errback handles the CancelledError by waiting on inner.
        Deferred<int> outer, inner;
        outer.addErrback([inner](Failure) { return inner; });
        outer.cancel();
        weft::testing::assertNoResult(outer);
    }
    EXPECT_TRUE(logs.events.empty());
}

TEST(Deferred, DEF_26_logErrorLogsAndPassesTheFailureOn) {
    // DEF-26: logError logs f and returns it unchanged; as the last step the Failure is reported again.
    LogCapture logs;
    auto ep = boom("logged");
    std::optional<Failure> after;
    {
        Deferred<int> d;
        d.addErrback(weft::logError).addErrback([&](Failure f) {
            after = f;
            return f;
        });
        d.errback(ep);
        EXPECT_EQ(logs.events.size(), 1u);
        ASSERT_TRUE(logs.events[0].failure);
        EXPECT_EQ(logs.events[0].failure->value(), ep);
    }
    ASSERT_TRUE(after);
    EXPECT_EQ(after->value(), ep);
    EXPECT_EQ(logs.events.size(), 2u);
    EXPECT_EQ(logs.unhandled(), 1u);
}

TEST(Deferred, DEF_27_aWaitingDeferredIsOwnedByWhatItWaitsOnNotTheReverse) {
    // DEF-27: X's hand-off step keeps the outer alive; the outer does not own X; an unreferenced outer still reports X's Failure.
    LogCapture logs;
    std::weak_ptr<weft::detail::Core> weakOuter;
    Deferred<int> x;
    {
        Deferred<int> outer;
        weakOuter = outer.detailCore();
        outer.addCallback([x](int) { return x; });
        outer.callback(0);
    }
    EXPECT_FALSE(weakOuter.expired());  // owned by x's pending hand-off
    x.errback(std::runtime_error("late"));
    EXPECT_TRUE(weakOuter.expired());
    EXPECT_EQ(logs.unhandled(), 1u);

    std::weak_ptr<weft::detail::Core> weakX;
    std::weak_ptr<weft::detail::Core> weakOuter2;
    {
        Deferred<int> outer;
        weakOuter2 = outer.detailCore();
        {
            Deferred<int> x2;
            weakX = x2.detailCore();
            outer.addCallback([x2](int) { return x2; });
            outer.callback(0);
        }
        EXPECT_TRUE(weakX.expired());  // the waiting outer does not own x2
        outer.cancel();                // the non-owning link to a gone x2 does nothing
        EXPECT_NO_THROW(weft::testing::assertNoResult(outer));
    }
    EXPECT_TRUE(weakOuter2.expired());
}

TEST(Deferred, DEF_27_droppingALongUnfiredChainReleasesEverythingIteratively) {
    // DEF-27: nothing leaks and nothing recurses when 100 000 Deferreds waiting on each other are dropped unfired.
    std::weak_ptr<weft::detail::Core> first;
    std::weak_ptr<weft::detail::Core> last;
    {
        std::vector<Deferred<void>> ds(100000);
        first = ds.front().detailCore();
        last = ds.back().detailCore();
        for (std::size_t i = 0; i + 1 < ds.size(); ++i) ds[i].addCallback([next = ds[i + 1]] { return next; });
        // Each now waits on the next one, which owns it through its hand-off step.
        for (std::size_t i = 0; i + 1 < ds.size(); ++i) ds[i].callback();
        ds.erase(ds.begin(), ds.end() - 1);
        EXPECT_FALSE(first.expired());
    }
    EXPECT_TRUE(first.expired());
    EXPECT_TRUE(last.expired());
}

// ---------------------------------------------------------------------------
// succeed, fail, maybeDeferred

TEST(Deferred, DEF_28_succeedAndFailAreAlreadyFired) {
    // DEF-28: succeed(v) equals callback(v) on a new Deferred; fail(x) takes errback's arguments; fail() outside a handler throws.
    auto s = weft::succeed(std::string("x"));
    EXPECT_TRUE(s.called());
    Deferred<std::string> manual;
    manual.callback("x");
    EXPECT_EQ(s.repr().substr(s.repr().find(" current")), manual.repr().substr(manual.repr().find(" current")));
    EXPECT_EQ(weft::testing::successResultOf(s), "x");
    (void)weft::testing::successResultOf(manual);
    Deferred<void> v = weft::succeed();
    EXPECT_TRUE(v.called());

    Failure f(std::runtime_error("f"));
    EXPECT_EQ(weft::testing::failureResultOf(weft::fail<int>(f)), f);
    EXPECT_THROW(weft::fail(), weft::NoCurrentExceptionError);

    LogCapture logs;
    { auto lost = weft::fail<int>(std::runtime_error("never handled")); }
    EXPECT_EQ(logs.unhandled(), 1u);
}

TEST(Deferred, DEF_29_maybeDeferredWrapsEveryOutcomeAndNeverThrows) {
    // DEF-29: Deferred returned as is; Failure → fail of it; throw → fail; Result → succeed/fail; value → succeed; void → succeed().
    EXPECT_EQ(weft::testing::successResultOf(weft::maybeDeferred([](int a, int b) { return a + b; }, 2, 3)), 5);
    Deferred<int> pending;
    auto same = weft::maybeDeferred([&] { return pending; });
    EXPECT_EQ(same.id(), pending.id());
    Failure f(std::runtime_error("returned"));
    EXPECT_EQ(weft::testing::failureResultOf(weft::maybeDeferred([&] { return f; })), f);
    auto ep = boom();
    Deferred<int> thrown = weft::maybeDeferred([&]() -> int { std::rethrow_exception(ep); });
    EXPECT_EQ(weft::testing::failureResultOf(thrown).value(), ep);
    EXPECT_EQ(weft::testing::successResultOf(weft::maybeDeferred([] { return Result<int>(4); })), 4);
    (void)weft::testing::failureResultOf<std::out_of_range>(
        weft::maybeDeferred([] { return Result<int>(Failure(std::out_of_range("r"))); }));
    bool ran = false;
    Deferred<void> v = weft::maybeDeferred([&] { ran = true; });
    EXPECT_TRUE(ran);
    weft::testing::successResultOf(v);
}

// ---------------------------------------------------------------------------
// Typed results

namespace {
template <class D, class G>
concept CanAddErrback = requires(D d, G g) {
    d.addErrback(g);
};
template <class D, class F>
concept CanAddCallback = requires(D d, F f) {
    d.addCallback(f);
};
template <class D, class F, class G>
concept CanAddCallbacks = requires(D d, F f, G g) {
    d.addCallbacks(f, g);
};
template <class T>
concept CanMakeDeferred = requires {
    typename Deferred<T>;
};
}  // namespace

TEST(Deferred, DEF_30_stepsHaveStaticOutputTypes) {
    // DEF-30: callbacks may return U, Deferred<U>, Result<U>; errbacks must produce T; mismatches do not compile.
    Deferred<int> d;
    Deferred<std::string> s = d.addCallback([](int v) { return std::to_string(v); });
    Deferred<double> x = s.addCallback([](std::string v) { return weft::succeed(static_cast<double>(v.size())); });
    Deferred<long> r = x.addCallback([](double v) { return Result<long>(static_cast<long>(v * 2)); });
    Deferred<void> none = r.addCallback([](long) {});
    std::vector<std::string> log;
    none.addCallback([&] { log.push_back("void step"); });
    d.callback(123);
    EXPECT_EQ(log, std::vector<std::string>{"void step"});

    auto moveOnly = weft::succeed(std::make_unique<int>(5));
    std::unique_ptr<int> got;
    moveOnly.addCallback([&](std::unique_ptr<int> p) { got = std::move(p); });
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, 5);

    using Di = Deferred<int>;
    auto wrongErrback = [](Failure) { return std::string(); };
    auto rightErrback = [](Failure) { return 0; };
    auto wrongCallback = [](std::string) { return 0; };
    static_assert(!CanAddErrback<Di, decltype(wrongErrback)>);
    static_assert(CanAddErrback<Di, decltype(rightErrback)>);
    static_assert(!CanAddCallback<Di, decltype(wrongCallback)>);
    auto toDouble = [](int) { return 1.5; };
    auto toInt = [](int) { return 1; };
    static_assert(!CanAddCallbacks<Di, decltype(toDouble), decltype(rightErrback)>);
    static_assert(CanAddCallbacks<Di, decltype(toInt), decltype(rightErrback)>);
}

TEST(Deferred, DEF_31_handlesShareIdentityAndStaleHandlesThrow) {
    // DEF-31: copies denote one Deferred; adding through a stale handle or callback() through a non-created-type handle throws logic_error.
    Deferred<int> d;
    Deferred<int> copy = d;
    EXPECT_EQ(copy, d);
    copy.callback(1);
    EXPECT_TRUE(d.called());

    Deferred<int> e;
    auto str = e.addCallback([](int v) { return std::to_string(v); });
    EXPECT_THROW(e.addCallback([](int v) { return v; }), std::logic_error);
    EXPECT_THROW(str.callback("x"), std::logic_error);
    try {
        str.callback("x");
    } catch (const std::logic_error& err) {
        // The types are named as a reader writes them, not in the library ABI's spelling.
        std::string m = err.what();
        EXPECT_NE(m.find("std::string"), std::string::npos) << m;
        EXPECT_EQ(m.find("__cxx11"), std::string::npos) << m;
    }
    EXPECT_FALSE(e.called());
    str.pause();
    str.unpause();
    auto kept = str.addErrback([](Failure) { return std::string("recovered"); });  // type-preserving: still usable
    e.errback(std::runtime_error("via int handle"));
    EXPECT_EQ(weft::testing::successResultOf(kept), "recovered");

    Deferred<int> c;
    auto cs = c.addCallback([](int v) { return std::to_string(v); });
    c.cancel();  // cancel works through any handle, stale ones included
    (void)weft::testing::failureResultOf<defer::CancelledError>(cs);
}

TEST(Deferred, DEF_32_takingStepsLeaveAnEmptySuccess) {
    // DEF-32: a hand-off leaves X holding nothing: a void handle may go on (receiving nothing), other handles are stale, also while pending.
    Deferred<void> xv;
    Deferred<void> outer;
    outer.addCallback([&] { return xv; });
    outer.callback();
    bool ranVoid = false;
    xv.addCallback([&] { ranVoid = true; });  // added while the hand-off is pending: runs after it, receiving nothing
    xv.callback();
    EXPECT_TRUE(ranVoid);

    Deferred<int> xi;
    Deferred<int> outer2;
    outer2.addCallback([&](int) { return xi; });
    outer2.callback(0);
    EXPECT_THROW(xi.addCallback([](int v) { return v; }), std::logic_error);  // pending hand-off
    xi.callback(5);
    EXPECT_THROW(xi.addCallback([](int v) { return v; }), std::logic_error);
    EXPECT_EQ(weft::testing::successResultOf(outer2), 5);
}

TEST(Deferred, DEF_33_callbackAlwaysTakesTheSuccessPath) {
    // DEF-33 (better than Twisted): callback(Failure) on a Deferred<Failure> is a success; Deferred<Deferred<U>> is ill-formed.
    Deferred<Failure> d;
    Failure data(std::runtime_error("plain data"));
    bool success = false;
    d.addCallbacks([&](Failure f) { success = (f == data); }, [](Failure) {});
    d.callback(data);
    EXPECT_TRUE(success);
    static_assert(!CanMakeDeferred<Deferred<int>>);
    static_assert(!CanMakeDeferred<weft::DeferredList<int>>);
    static_assert(!CanMakeDeferred<int&>);
    static_assert(CanMakeDeferred<std::vector<int>>);
}

// ---------------------------------------------------------------------------
// Failure

TEST(Failure, DEF_34_failureWrapsOneThrownObject) {
    // DEF-34: Failure(e), Failure(exception_ptr), Failure::current() (innermost; throws outside a handler); copies share the exception.
    EXPECT_THROW(Failure::current(), weft::NoCurrentExceptionError);
    auto ep = boom("original");
    Failure a(ep);
    Failure copy = a;
    EXPECT_EQ(copy.value(), ep);
    EXPECT_EQ(Failure(a).value(), ep);
    EXPECT_EQ(a.type(), typeid(std::runtime_error));
    try {
        a.raiseException();
        FAIL() << "raiseException returned";
    } catch (...) {
        EXPECT_EQ(std::current_exception(), ep);
    }
    Failure typed(std::out_of_range("range"));
    EXPECT_EQ(typed.type(), typeid(std::out_of_range));
    try {
        try {
            throw std::runtime_error("outer");
        } catch (...) {
            throw std::out_of_range("replacement");
        }
    } catch (...) {
        EXPECT_EQ(Failure::current().getErrorMessage(), "replacement");
    }
}

TEST(Failure, DEF_35_checkReturnsThePositionOfTheFirstListedMatch) {
    // DEF-35: check<E...>() tries types in order by catch rules; 1-based index, 0 for none; list order decides.
    Failure f(std::out_of_range("x"));
    EXPECT_EQ((f.check<std::invalid_argument, std::logic_error, std::out_of_range>()), 2);
    EXPECT_EQ((f.check<std::out_of_range, std::logic_error>()), 1);
    EXPECT_EQ((f.check<std::runtime_error, std::bad_alloc>()), 0);
    EXPECT_FALSE(f.check<std::runtime_error>());
}

namespace catchrules {
struct Base {
    virtual ~Base() = default;
    int tag = 7;
};
struct Derived : Base {};
struct Hidden : private Base {};
struct Left : Base {};
struct Right : Base {};
struct Diamond : Left, Right {};  // two Base subobjects: a catch of Base does not match
}  // namespace catchrules

TEST(Failure, DEF_35_checkAndGetFollowCatchRulesWithoutThrowing) {
    // DEF-35: check/get match exactly as catch clauses do — public bases only, never an ambiguous or private one, non-class and pointer objects too — and get() points at the right subobject.
    using namespace catchrules;
    Failure derived{Derived{}};
    ASSERT_NE(derived.get<Base>(), nullptr);
    EXPECT_EQ(derived.get<Base>()->tag, 7);
    EXPECT_EQ((derived.check<std::exception, Base>()), 2);
    EXPECT_EQ(Failure{Hidden{}}.check<Base>(), 0);
    EXPECT_EQ(Failure{Hidden{}}.check<Hidden>(), 1);
    EXPECT_EQ(Failure{Diamond{}}.check<Base>(), 0);
    EXPECT_EQ((Failure{Diamond{}}.check<Left, Right>()), 1);
    EXPECT_EQ((Failure{42}.check<long, int>()), 2);
    ASSERT_NE(Failure{42}.get<int>(), nullptr);
    EXPECT_EQ(*Failure{42}.get<int>(), 42);
    static Derived object;
    Failure pointer{static_cast<Derived*>(&object)};
    EXPECT_EQ(pointer.check<Derived*>(), 1);
    EXPECT_EQ(pointer.check<Derived>(), 0);
    EXPECT_EQ(pointer.type(), typeid(Derived*));
    EXPECT_EQ(Failure{std::out_of_range("x")}.type(), typeid(std::out_of_range));
}

namespace catchrules {
struct Other {
    virtual ~Other() = default;
    char pad[24] = {};
};
struct Offset : Other, Base {};    // Base sits after Other: get<Base>() must adjust the address
struct Virtual : virtual Base {};  // a virtual base: its offset is read from the object
}  // namespace catchrules

TEST(Failure, DEF_35_repeatedChecksAnswerAsTheFirstDid) {
    // DEF-35: check/get remember their answer per pair of types (a type walk
    // costs ≈ 150 instructions); a second object of the same type, a base at
    // an offset, a virtual base and a refusal must come out as the first time,
    // also after more pairs than are remembered have pushed the first out.
    using namespace catchrules;
    for (int round = 0; round < 3; ++round) {
        Offset o;
        o.tag = 10 + round;
        Failure offset{o};
        const Base* b = offset.get<Base>();
        ASSERT_NE(b, nullptr);
        EXPECT_EQ(b->tag, 10 + round);
        EXPECT_NE(static_cast<const void*>(b), static_cast<const void*>(offset.get<Offset>()));
        EXPECT_EQ(static_cast<const void*>(b),
                  static_cast<const void*>(static_cast<const Base*>(offset.get<Offset>())));
        Virtual v;
        v.tag = 20 + round;
        Failure virt{v};
        ASSERT_NE(virt.get<Base>(), nullptr);
        EXPECT_EQ(virt.get<Base>()->tag, 20 + round);
        EXPECT_EQ((Failure{Diamond{}}.check<Base, Left>()), 2);
        EXPECT_EQ(Failure{Hidden{}}.check<Base>(), 0);
        EXPECT_EQ(Failure{Diamond{}}.check<Base>(), 0);
        // More pairs than the memory holds, between the rounds.
        EXPECT_EQ((Failure{std::out_of_range("x")}.check<std::runtime_error, std::logic_error>()), 2);
        EXPECT_EQ((Failure{std::overflow_error("x")}.check<std::logic_error, std::runtime_error>()), 2);
        EXPECT_EQ((Failure{std::bad_alloc()}.check<std::logic_error, std::runtime_error, std::exception>()), 3);
        EXPECT_TRUE(Failure{Derived{}}.check<Base>());
    }
}

TEST(Failure, DEF_36_trapRethrowsTheWrappedExceptionWhenNothingMatches) {
    // DEF-36: trap returns check's value on a match, else rethrows the wrapped exception; in an errback the same exception continues.
    auto ep = boom("untrapped");
    Failure f(ep);
    EXPECT_EQ(f.trap<std::runtime_error>(), 1);
    try {
        f.trap<std::out_of_range>();
        FAIL() << "trap did not throw";
    } catch (...) {
        EXPECT_EQ(std::current_exception(), ep);
    }
    Deferred<int> d;
    std::optional<Failure> next;
    d.addErrback([](Failure x) {
         x.trap<std::out_of_range>();
         return 0;
     }).addErrback([&](Failure x) {
        next = x;
        return 0;
    });
    d.errback(f);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->value(), ep);
}

struct NotAnException {};

TEST(Failure, DEF_37_textFormsOfAFrameLessFailure) {
    // DEF-37: getErrorMessage, repr, getTraceback, getBriefTraceback and str have Twisted's frameless forms.
    Failure f(std::invalid_argument("bad value"));
    EXPECT_EQ(f.getErrorMessage(), "bad value");
    EXPECT_EQ(f.repr(), "<weft::Failure std::invalid_argument: bad value>");
    EXPECT_EQ(f.getTraceback(), "Traceback (most recent call last):\nFailure: std::invalid_argument: bad value\n");
    EXPECT_EQ(f.getBriefTraceback(), "Traceback (failure with no frames): std::invalid_argument: bad value\n");
    EXPECT_EQ(f.str(), "[Failure instance: Traceback (failure with no frames): std::invalid_argument: bad value\n]");
    Failure odd(NotAnException{});
    EXPECT_NE(odd.getErrorMessage().find("NotAnException"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Debugging, introspection, helpers

TEST(Deferred, DEF_57_aCancelIsTheFirstInvokerWhereItWasCalled) {
    // cancel() records the caller's place as the first invoker, as callback() does (it named
    // File "<cancel>", line 0).
    DebuggingOn on;
    Deferred<int> d([](Deferred<int>&) {});
    d.cancel();
    const unsigned cancelled = __LINE__ - 1;
    try {
        d.callback(1);
        FAIL() << "no AlreadyCalledError";
    } catch (const defer::AlreadyCalledError& e) {
        std::string text = e.what();
        EXPECT_NE(text.find(" I:  File \"" + std::string(__FILE__) + "\", line " + std::to_string(cancelled)),
                  std::string::npos)
            << text;
    }
    (void)weft::testing::failureResultOf<defer::CancelledError>(d);
}

TEST(Deferred, DEF_57_debuggingRecordsCreationAndFirstFiring) {
    // DEF-57: with debugging on, AlreadyCalledError carries " C:" (creation) and " I:" (first firing) lines; off, none.
    {
        DebuggingOn on;
        EXPECT_TRUE(weft::getDebugging());
        Deferred<int> d;  // line A
        const unsigned created = __LINE__ - 1;
        d.callback(1);  // line B
        const unsigned invoked = __LINE__ - 1;
        try {
            d.callback(2);
            FAIL() << "no AlreadyCalledError";
        } catch (const defer::AlreadyCalledError& e) {
            std::string text = e.what();
            EXPECT_NE(text.find(" C:"), std::string::npos);
            EXPECT_NE(text.find(" I:"), std::string::npos);
            EXPECT_NE(text.find("line " + std::to_string(created)), std::string::npos) << text;
            EXPECT_NE(text.find("line " + std::to_string(invoked)), std::string::npos) << text;
            EXPECT_EQ(text.find("line " + std::to_string(invoked + 3)), std::string::npos) << text;
        }
        LogCapture logs;
        { auto lost = weft::fail<int>(std::runtime_error("debugged")); }
        ASSERT_EQ(logs.unhandled(), 1u);
        EXPECT_NE(logs.events[0].message.find(" C:"), std::string::npos);
    }
    EXPECT_FALSE(weft::getDebugging());
    Deferred<int> plain;
    plain.callback(1);
    try {
        plain.errback(std::runtime_error("x"));
    } catch (const defer::AlreadyCalledError& e) {
        EXPECT_EQ(std::string(e.what()).find(" C:"), std::string::npos);
        EXPECT_EQ(std::string(e.what()).find(" I:"), std::string::npos);
    }
    // Switching while Deferreds exist does not break them.
    Deferred<int> before;
    weft::setDebugging(true);
    before.callback(1);
    weft::setDebugging(false);
    EXPECT_EQ(weft::testing::successResultOf(before), 1);
}

TEST(Deferred, DEF_58_calledPausedAndTextForms) {
    // DEF-58: repr is "<Deferred at 0xADDR>", "... current result: R>" or "... waiting on Deferred at 0xOTHER>".
    auto addr = [](const void* p) { return fmt::format("{}", fmt::ptr(p)); };
    Deferred<std::string> d;
    EXPECT_EQ(d.repr(), "<Deferred at " + addr(d.id()) + ">");
    d.callback("orange");
    EXPECT_EQ(d.repr(), "<Deferred at " + addr(d.id()) + " current result: 'orange'>");
    d.pause();
    EXPECT_TRUE(d.called());
    EXPECT_EQ(d.paused(), 1);
    d.unpause();

    Deferred<int> outer;
    Deferred<int> x;
    outer.addCallback([&](int) { return x; });
    outer.callback(0);
    EXPECT_EQ(outer.repr(), "<Deferred at " + addr(outer.id()) + " waiting on Deferred at " + addr(x.id()) + ">");
    EXPECT_TRUE(outer.called());

    Deferred<int> d1;
    Deferred<int> d2;
    d1.chainDeferred(d2);
    EXPECT_EQ(d2.repr(), "<Deferred at " + addr(d2.id()) + " waiting on Deferred at " + addr(d1.id()) + ">");
    d1.callback(4);
    EXPECT_EQ(d2.repr(), "<Deferred at " + addr(d2.id()) + " current result: 4>");
    x.callback(1);
    EXPECT_EQ(outer.repr(), "<Deferred at " + addr(outer.id()) + " current result: 1>");
}

TEST(Deferred, DEF_59_testHelpersReportAndTakeResults) {
    // DEF-59: successResultOf / failureResultOf / assertNoResult fail with trial's messages and take the result.
    using weft::testing::AssertionFailed;
    Deferred<int> pending;
    try {
        weft::testing::successResultOf(pending);
        FAIL();
    } catch (const AssertionFailed& e) {
        EXPECT_EQ(std::string(e.what()), "Success result expected on " + pending.repr() + ", found no result instead");
    }
    LogCapture logs;
    {
        auto failed = weft::fail<int>(std::runtime_error("nope"));
        try {
            weft::testing::successResultOf(failed);
            FAIL();
        } catch (const AssertionFailed& e) {
            EXPECT_TRUE(std::string(e.what()).starts_with("Success result expected on"));
            EXPECT_NE(std::string(e.what()).find("found failure result instead:\nTraceback"), std::string::npos);
        }
    }
    EXPECT_EQ(logs.unhandled(), 0u);  // the helper took it

    auto ok = weft::succeed(3);
    try {
        weft::testing::failureResultOf(ok);
        FAIL();
    } catch (const AssertionFailed& e) {
        EXPECT_NE(std::string(e.what()).find("found success result (3) instead"), std::string::npos);
    }
    try {
        weft::testing::failureResultOf(pending);
        FAIL();
    } catch (const AssertionFailed& e) {
        EXPECT_NE(std::string(e.what()).find("Failure result expected on"), std::string::npos);
    }
    auto wrongType = weft::fail<int>(std::runtime_error("rt"));
    try {
        weft::testing::failureResultOf<std::out_of_range, std::length_error>(wrongType);
        FAIL();
    } catch (const AssertionFailed& e) {
        EXPECT_NE(std::string(e.what()).find("Failure of type (std::out_of_range or std::length_error) expected on"),
                  std::string::npos);
        EXPECT_NE(std::string(e.what()).find("found type std::runtime_error instead"), std::string::npos);
    }
    auto right = weft::fail<int>(std::out_of_range("r"));
    EXPECT_TRUE(weft::testing::failureResultOf<std::out_of_range>(right).check<std::out_of_range>());
    EXPECT_THROW(weft::testing::successResultOf(right), std::logic_error);  // taken: the int handle is stale now

    EXPECT_NO_THROW(weft::testing::assertNoResult(pending));
    EXPECT_FALSE(pending.called());
    int after = 0;
    pending.addCallback([&](int v) {
        after = v;
        return v;
    });
    pending.callback(8);
    EXPECT_EQ(after, 8);
    {
        auto bad = weft::fail<int>(std::runtime_error("swallowed"));
        EXPECT_THROW(weft::testing::assertNoResult(bad), AssertionFailed);
    }
    EXPECT_EQ(logs.unhandled(), 0u);
}
