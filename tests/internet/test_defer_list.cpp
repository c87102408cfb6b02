// DeferredList, gatherResults and race (spec: defer.md DEF-38 … DEF-44).
#include <weft/internet/defer.hpp>
#include <weft/log.hpp>
#include <weft/testing/defer.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using weft::Deferred;
using weft::DeferredList;
using weft::DeferredListOptions;
using weft::Failure;
using weft::Result;
namespace defer = weft::defer;
using weft::testing::failureResultOf;
using weft::testing::successResultOf;

namespace {

struct LogCapture {
    std::size_t unhandled = 0;
    std::size_t errors = 0;
    weft::log::ScopedObserver observer{[this](const weft::log::Event& e) {
        if (e.level == weft::log::Level::critical && std::string_view(e.message).starts_with("Unhandled error"))
            ++unhandled;
        else if (e.level >= weft::log::Level::error) ++errors;
    }};
};

DeferredListOptions fireOnOneErrback(bool consume = false) {
    DeferredListOptions o;
    o.fireOnOneErrback = true;
    o.consumeErrors = consume;
    return o;
}

}  // namespace

TEST(DeferredList, DEF_38_firesWithEveryResultInInputOrder) {
    // DEF-38: one (ok, value/Failure) entry per member in input order once all have results; empty fires at once; values pass on unchanged.
    Deferred<int> a;
    Deferred<int> b;
    auto c = weft::succeed(3);  // already fired: handled on the spot
    std::vector<Deferred<int>> ds{a, b, c};
    DeferredList<int> list(ds);
    ds.push_back(Deferred<int>());  // the list copied the sequence
    EXPECT_FALSE(list.called());
    b.errback(std::out_of_range("b"));
    a.callback(1);
    auto entries = successResultOf(Deferred<std::vector<Result<int>>>(list));
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[0].value(), 1);
    EXPECT_TRUE(entries[1].failure().check<std::out_of_range>());
    EXPECT_EQ(entries[2].value(), 3);
    EXPECT_EQ(successResultOf(a), 1);  // unchanged for the member's later steps
    (void)failureResultOf<std::out_of_range>(b);

    DeferredList<int> empty({});
    EXPECT_TRUE(successResultOf(Deferred<std::vector<Result<int>>>(empty)).empty());

    // Steps a member already had shape what the list sees.
    Deferred<int> shaped;
    shaped.addCallback([](int v) { return v * 100; });
    DeferredList<int> l2({shaped});
    shaped.callback(2);
    EXPECT_EQ(successResultOf(Deferred<std::vector<Result<int>>>(l2))[0].value(), 200);

    auto allFired = DeferredList<int>({weft::succeed(1), weft::succeed(2)});
    EXPECT_TRUE(allFired.called());  // fired before the constructor returned
}

TEST(DeferredList, DEF_39_fireOnOneCallbackAndFireOnOneErrback) {
    // DEF-39: fireOnOneCallback fires with (value, index) at the first success; fireOnOneErrback fails with FirstError; both: first wins.
    Deferred<int> a;
    Deferred<int> b;
    auto first = DeferredList<int>::fireOnOneCallback({a, b});
    b.callback(7);
    auto [value, index] = successResultOf(first);
    EXPECT_EQ(value, 7);
    EXPECT_EQ(index, 1u);
    a.callback(1);

    Deferred<int> c;
    Deferred<int> d;
    DeferredList<int> errs({c, d}, fireOnOneErrback());
    Failure df(std::out_of_range("d"));
    d.errback(df);
    Failure f = failureResultOf<defer::FirstError>(Deferred<std::vector<Result<int>>>(errs));
    EXPECT_EQ(f.get<defer::FirstError>()->index(), 1u);
    EXPECT_EQ(f.get<defer::FirstError>()->subFailure(), df);
    c.callback(0);
    (void)failureResultOf(d);

    DeferredList<int> allGood({weft::succeed(1), weft::succeed(2)}, fireOnOneErrback());
    EXPECT_EQ(successResultOf(Deferred<std::vector<Result<int>>>(allGood)).size(), 2u);

    auto both = DeferredList<int>::fireOnOneCallback({weft::fail<int>(std::runtime_error("x")), weft::succeed(2)},
                                                     fireOnOneErrback(true));
    EXPECT_EQ(failureResultOf<defer::FirstError>(both).get<defer::FirstError>()->index(), 0u);

    EXPECT_FALSE(DeferredList<int>::fireOnOneCallback({}).called());

    // Better than Twisted: every member failing under fireOnOneCallback gives FailureGroup.
    Failure e1(std::runtime_error("1"));
    Failure e2(std::runtime_error("2"));
    DeferredListOptions consume;
    consume.consumeErrors = true;
    auto allBad = DeferredList<int>::fireOnOneCallback({weft::fail<int>(e1), weft::fail<int>(e2)}, consume);
    Failure g = failureResultOf<defer::FailureGroup>(allBad);
    ASSERT_EQ(g.get<defer::FailureGroup>()->failures().size(), 2u);
    EXPECT_EQ(g.get<defer::FailureGroup>()->failures()[0], e1);
    EXPECT_EQ(g.get<defer::FailureGroup>()->failures()[1], e2);
}

TEST(DeferredList, DEF_40_memberFailuresAreReportedUnlessConsumed) {
    // DEF-40: a recorded member Failure goes on down the member's chain and is reported unless consumeErrors, which marks it consumed.
    LogCapture logs;
    {
        auto m = weft::fail<int>(std::runtime_error("unconsumed"));
        DeferredList<int> list({m});
        (void)successResultOf(Deferred<std::vector<Result<int>>>(list));
    }
    EXPECT_EQ(logs.unhandled, 1u);

    std::optional<Failure> later;
    {
        Deferred<int> m;
        Deferred<int> other;
        DeferredListOptions consume;
        consume.consumeErrors = true;
        auto list = DeferredList<int>::fireOnOneCallback({other, m}, consume);
        other.callback(1);  // the list has fired
        m.errback(std::runtime_error("after firing"));
        m.addErrback([&](Failure f) {
            later = f;
            return f;
        });  // later errbacks still see it
        (void)successResultOf(list);
    }
    ASSERT_TRUE(later);
    EXPECT_EQ(later->getErrorMessage(), "after firing");
    EXPECT_EQ(logs.unhandled, 1u);  // nothing new
}

TEST(DeferredList, DEF_40_DEF_25_aNewErrorLaterInAConsumedMembersChainIsReported) {
    // consumeErrors exempts the Failure the list took, not the member: an error
    // raised later in the member's chain is reported as any other (DEF-25),
    // while the consumed one, handed on to a Deferred that waits on the member,
    // stays unreported there too.
    LogCapture logs;
    DeferredListOptions consume;
    consume.consumeErrors = true;
    {
        Deferred<int> a;
        DeferredList<int> list({a}, consume);
        a.errback(std::runtime_error("taken by the list"));
        a.addErrback([](Failure) { return 1; }).addCallback([](int) -> int { throw std::logic_error("a new error"); });
        (void)successResultOf(Deferred<std::vector<Result<int>>>(list));
    }
    EXPECT_EQ(logs.unhandled, 1u);
    {
        Deferred<int> b;
        DeferredList<int> list({b}, consume);
        b.errback(std::runtime_error("taken by the list"));
        Deferred<int> waiter;
        waiter.callback(0);
        waiter.addCallback([b](int) mutable { return b; });  // takes b's consumed Failure
        (void)successResultOf(Deferred<std::vector<Result<int>>>(list));
    }
    EXPECT_EQ(logs.unhandled, 1u);  // nothing new
}

TEST(DeferredList, DEF_41_cancellingDeeplyNestedListsDoesNotOverflowTheStack) {
    // Each list a member of the next: a cancel goes down through every list's
    // canceller. Nested cancels past a fixed depth are queued and run by the
    // outermost cancel() before it returns.
    int cancelled = 0;
    Deferred<int> leaf([&](Deferred<int>&) { ++cancelled; });
    Deferred<int> top = leaf;
    for (int i = 0; i < 100000; ++i) {
        DeferredList<int> list({top});
        top = Deferred<std::vector<Result<int>>>(list).addCallback(
            [](std::vector<Result<int>> v) { return static_cast<int>(v.size()); });
    }
    top.cancel();
    EXPECT_EQ(cancelled, 1);
    EXPECT_TRUE(top.called());
    EXPECT_EQ(successResultOf(top), 1);
}

TEST(DeferredList, DEF_41_cancelCancelsEveryOriginalMemberOnce) {
    // DEF-41: cancel() on an unfired list cancels its members in order, logging a throwing canceller; a fired list leaves members alone.
    std::vector<int> order;
    Deferred<int> a([&](Deferred<int>&) { order.push_back(0); });
    Deferred<int> b([&](Deferred<int>&) {
        order.push_back(1);
        throw std::runtime_error("canceller");
    });
    Deferred<int> c([&](Deferred<int>& self) {
        order.push_back(2);
        self.callback(5);
    });
    std::vector<Deferred<int>> ds{a, b, c};
    DeferredList<int> list(ds);
    int notCancelled = 0;
    ds.push_back(Deferred<int>([&](Deferred<int>&) { ++notCancelled; }));
    LogCapture logs;
    list.cancel();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(logs.errors, 1u);
    EXPECT_EQ(notCancelled, 0);
    EXPECT_FALSE(list.called());  // b's throwing canceller left it unfired
    b.callback(2);
    auto entries = successResultOf(Deferred<std::vector<Result<int>>>(list));
    EXPECT_TRUE(entries[0].failure().check<defer::CancelledError>());
    EXPECT_EQ(entries[1].value(), 2);
    EXPECT_EQ(entries[2].value(), 5);
    (void)failureResultOf(a);

    Deferred<int> x;
    Deferred<int> y;
    DeferredList<int> errs({x, y}, fireOnOneErrback());
    errs.cancel();
    EXPECT_EQ(
        failureResultOf<defer::FirstError>(Deferred<std::vector<Result<int>>>(errs)).get<defer::FirstError>()->index(),
        0u);
    (void)failureResultOf(x);
    (void)failureResultOf(y);

    int lateCancels = 0;
    Deferred<int> unfired([&](Deferred<int>&) { ++lateCancels; });
    auto fired = DeferredList<int>::fireOnOneCallback({weft::succeed(1), unfired});
    fired.cancel();
    EXPECT_EQ(lateCancels, 0);
    (void)successResultOf(fired);
}

TEST(DeferredList, DEF_42_gatherResultsCollectsValuesOrFailsWithFirstError) {
    // DEF-42: values in input order; FirstError(failure, index) at the first Failure; empty fires at once; cancel ends in FirstError #0.
    Deferred<int> a;
    Deferred<int> b;
    auto g = weft::gatherResults(std::vector<Deferred<int>>{a, b});
    b.callback(2);
    a.callback(1);
    EXPECT_EQ(successResultOf(g), (std::vector<int>{1, 2}));

    EXPECT_TRUE(successResultOf(weft::gatherResults(std::vector<Deferred<int>>{})).empty());

    LogCapture logs;
    {
        Failure bad(std::out_of_range("bad"));
        auto h = weft::gatherResults(std::vector<Deferred<int>>{weft::succeed(1), weft::fail<int>(bad)}, true);
        Failure f = failureResultOf<defer::FirstError>(h);
        EXPECT_EQ(f.get<defer::FirstError>()->index(), 1u);
        EXPECT_EQ(f.get<defer::FirstError>()->subFailure(), bad);
    }
    EXPECT_EQ(logs.unhandled, 0u);  // consumeErrors

    Deferred<int> p;
    Deferred<int> q;
    auto cancelled = weft::gatherResults(std::vector<Deferred<int>>{p, q});
    cancelled.cancel();
    EXPECT_EQ(failureResultOf<defer::FirstError>(cancelled).get<defer::FirstError>()->index(), 0u);
    (void)failureResultOf(p);
    (void)failureResultOf(q);

    Deferred<std::string> s;
    auto tuple = weft::gatherResults(weft::succeed(1), s);
    s.callback("two");
    EXPECT_EQ(successResultOf(tuple), std::make_tuple(1, std::string("two")));
    EXPECT_EQ(successResultOf(s), "two");

    Deferred<void> v1;
    Deferred<void> vg = weft::gatherResults(std::vector<Deferred<void>>{v1, weft::succeed()});
    EXPECT_FALSE(vg.called());
    v1.callback();
    successResultOf(vg);
}

TEST(DeferredList, DEF_43_firstErrorExposesItsPartsAndCompares) {
    // DEF-43: FirstError has subFailure and index; equal exactly when both are; text "FirstError[#INDEX, <sub-failure>]".
    Failure f(std::runtime_error("some text"));
    Failure other(std::runtime_error("some text"));
    defer::FirstError e(f, 3);
    EXPECT_EQ(e.subFailure(), f);
    EXPECT_EQ(e.index(), 3u);
    EXPECT_EQ(std::string(e.what()), "FirstError[#3, " + f.str() + "]");
    EXPECT_TRUE(e == defer::FirstError(f, 3));
    EXPECT_FALSE(e == defer::FirstError(f, 4));
    EXPECT_FALSE(e == defer::FirstError(other, 3));
}

TEST(DeferredList, DEF_44_raceFiresWithTheFirstSuccessAndCancelsTheRest) {
    // DEF-44: (index, value) of the first success; each other member cancelled once; late results dropped silently; all failing → FailureGroup.
    LogCapture logs;
    int cancelsA = 0;
    int cancelsC = 0;
    Deferred<int> a([&](Deferred<int>&) { ++cancelsA; });
    Deferred<int> b;
    Deferred<int> c([&](Deferred<int>& self) {
        ++cancelsC;
        self.callback(99);  // a loser whose canceller succeeds: dropped
    });
    auto r = weft::race(std::vector<Deferred<int>>{a, b, c});
    b.callback(5);
    auto [index, value] = successResultOf(r);
    EXPECT_EQ(index, 1u);
    EXPECT_EQ(value, 5);
    EXPECT_EQ(cancelsA, 1);
    EXPECT_EQ(cancelsC, 1);
    EXPECT_EQ(logs.unhandled, 0u);

    Failure e1(std::runtime_error("1"));
    Failure e2(std::runtime_error("2"));
    Deferred<int> x;
    auto allFail = weft::race(std::vector<Deferred<int>>{x, weft::fail<int>(e2)});
    x.errback(e1);
    Failure g = failureResultOf<defer::FailureGroup>(allFail);
    EXPECT_EQ(g.get<defer::FailureGroup>()->failures(), (std::vector<Failure>{e1, e2}));

    Deferred<int> p;
    Deferred<int> q;
    auto cancelled = weft::race(std::vector<Deferred<int>>{p, q});
    cancelled.cancel();
    Failure cg = failureResultOf<defer::FailureGroup>(cancelled);
    ASSERT_EQ(cg.get<defer::FailureGroup>()->failures().size(), 2u);
    EXPECT_TRUE(cg.get<defer::FailureGroup>()->failures()[0].check<defer::CancelledError>());

    EXPECT_FALSE(weft::race(std::vector<Deferred<int>>{}).called());
    EXPECT_EQ(logs.unhandled, 0u);
}
