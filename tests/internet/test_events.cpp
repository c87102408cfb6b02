// System event triggers (reactor.md R-13..R-20).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::test::ReactorTest;

namespace {
using Log = std::vector<std::string>;
// A "before" trigger that returns a not-yet-fired Deferred: it hands its `done`
// continuation to the test, which fires it later.
Function<void(Function<void()>)> parkDone(Function<void()>& slot, Log& log, std::string name) {
    return [&slot, &log, name = std::move(name)](Function<void()> done) {
        log.push_back(name);
        slot = std::move(done);
    };
}
}  // namespace

class EventsTest : public ReactorTest {};

// ---- R-13 ------------------------------------------------------------------

TEST_P(EventsTest, R_13_acceptsTheThreePhasesAndReturnsDistinctIds) {
    // "before", "during" and "after" are accepted for any event type and each registration gets its own ID.
    Log log;
    auto a = reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("before"); });
    auto b = reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    auto c = reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after"); });
    EXPECT_NE(a, b);
    EXPECT_NE(b, c);
    EXPECT_NE(a, c);
    EXPECT_TRUE(log.empty()) << "registering must not run anything";
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"before", "during", "after"}));
}

TEST_P(EventsTest, R_13_unknownPhaseThrowsAndRegistersNothing) {
    // any phase other than before/during/after throws (Twisted KeyError -> std::invalid_argument).
    bool ran = false;
    EXPECT_THROW(reactor().addSystemEventTrigger("xxx", "test", [&] { ran = true; }), std::invalid_argument);
    EXPECT_THROW(reactor().addSystemEventTrigger("", "test", [&] { ran = true; }), std::invalid_argument);
    EXPECT_THROW(reactor().addSystemEventTrigger("Before", "test", [&] { ran = true; }), std::invalid_argument);
    EXPECT_THROW(reactor().addSystemEventTriggerAsync("sometime", "test",
                                                      [&](Function<void()> done) {
                                                          ran = true;
                                                          done();
                                                      }),
                 std::invalid_argument);
    reactor().fireSystemEvent("test");
    EXPECT_FALSE(ran);
}

TEST_P(EventsTest, R_13_customEventTypesAreFiredOnlyByFireSystemEvent) {
    // "startup"/"shutdown" are fired by the reactor; other event types only by fireSystemEvent.
    Log log;
    for (auto phase : {"before", "during", "after"})
        reactor().addSystemEventTrigger(phase, "custom", [&, phase] { log.push_back(std::string("custom-") + phase); });
    reactor().addSystemEventTrigger("after", "startup", [&] { log.push_back("startup"); });
    reactor().addSystemEventTrigger("after", "shutdown", [&] { log.push_back("shutdown"); });
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_EQ(log, (Log{"startup", "shutdown"}));
    reactor().fireSystemEvent("custom");
    EXPECT_EQ(log, (Log{"startup", "shutdown", "custom-before", "custom-during", "custom-after"}));
}

// ---- R-14 ------------------------------------------------------------------

TEST_P(EventsTest, R_14_phasesRunInOrderAndRegistrationOrderWithinAPhase) {
    // all before triggers, then all during, then all after; within a phase in registration order.
    Log log;
    // Registered deliberately out of phase order.
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after1"); });
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during1"); });
    reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("before1"); });
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after2"); });
    reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("before2"); });
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during2"); });
    reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("before3"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"before1", "before2", "before3", "during1", "during2", "after1", "after2"}));
}

TEST_P(EventsTest, R_14_firingAnEventWithNoTriggersIsHarmless) {
    // firing an event type nobody registered for runs nothing and does not disturb other events.
    Log log;
    reactor().addSystemEventTrigger("during", "other", [&] { log.push_back("other"); });
    reactor().fireSystemEvent("nobody-listens");
    EXPECT_TRUE(log.empty());
    reactor().fireSystemEvent("other");
    EXPECT_EQ(log, Log{"other"});
}

// ---- R-15 ------------------------------------------------------------------

TEST_P(EventsTest, R_15_duringWaitsForABeforeTriggersDeferred) {
    // a before trigger returning a Deferred holds the during phase until that Deferred fires.
    Log log;
    Function<void()> done;
    reactor().addSystemEventTriggerAsync("before", "test", parkDone(done, log, "before"));
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, Log{"before"});
    ASSERT_TRUE(done);
    done();
    EXPECT_EQ(log, (Log{"before", "during", "after"}));
    done();  // a second fire has no further effect
    EXPECT_EQ(log, (Log{"before", "during", "after"}));
}

TEST_P(EventsTest, R_15_duringWaitsForEveryBeforeDeferredAndLaterBeforesRunAtOnce) {
    // later before triggers still run immediately; during starts only after every Deferred has fired.
    Log log;
    Function<void()> first, second;
    reactor().addSystemEventTriggerAsync("before", "test", parkDone(first, log, "before1"));
    reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("before2"); });
    reactor().addSystemEventTriggerAsync("before", "test", parkDone(second, log, "before3"));
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"before1", "before2", "before3"}));
    second();
    EXPECT_EQ(log, (Log{"before1", "before2", "before3"})) << "one Deferred is still pending";
    first();
    EXPECT_EQ(log, (Log{"before1", "before2", "before3", "during"}));
}

TEST_P(EventsTest, R_15_aBeforeTriggerAddedWhileADeferredIsPendingRunsAndTheEventGoesOn) {
    // R-15, Better than Twisted (which keeps it for a firing that, for shutdown, never comes): a before trigger
    // added while the before phase waits for a Deferred runs once that Deferred fires, and then the during and
    // after phases run; the event never stalls.
    Log log;
    Function<void()> done, late;
    reactor().addSystemEventTriggerAsync("before", "test", parkDone(done, log, "before1"));
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after"); });
    reactor().fireSystemEvent("test");
    reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("late before"); });
    reactor().addSystemEventTriggerAsync("before", "test", parkDone(late, log, "late async before"));
    EXPECT_EQ(log, Log{"before1"});
    done();
    EXPECT_EQ(log, (Log{"before1", "late before", "late async before"})) << "the late async trigger holds it";
    late();
    EXPECT_EQ(log, (Log{"before1", "late before", "late async before", "during", "after"}));
}

TEST_P(EventsTest, R_15_laterBeforeTriggerMayFireAnEarlierOnesDeferred) {
    // a later before trigger may fire an earlier trigger's Deferred; the event then completes normally.
    Log log;
    Function<void()> first;
    reactor().addSystemEventTriggerAsync("before", "test", parkDone(first, log, "before1"));
    reactor().addSystemEventTrigger("before", "test", [&] {
        log.push_back("before2");
        first();
        log.push_back("fired");
    });
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after"); });
    reactor().fireSystemEvent("test");
    // The during phase must wait for the before phase to finish running its triggers.
    EXPECT_EQ(log, (Log{"before1", "before2", "fired", "during", "after"}));
}

TEST_P(EventsTest, R_15_deferredFiredLaterFromTheLoopResumesTheEvent) {
    // a before Deferred fired later from the reactor loop (a timed call) lets the during phase start then.
    Log log;
    reactor().addSystemEventTriggerAsync("before", "test", [&](Function<void()> done) {
        log.push_back("before");
        reactor().callLater(0, [&, done = std::move(done)]() mutable {
            log.push_back("fire");
            done();
        });
    });
    reactor().addSystemEventTrigger("during", "test", [&] {
        log.push_back("during");
        reactor().stop();
    });
    reactor().callWhenRunning([&] {
        reactor().fireSystemEvent("test");
        log.push_back("fireSystemEvent returned");
    });
    runReactor();
    EXPECT_EQ(log, (Log{"before", "fireSystemEvent returned", "fire", "during"}));
}

TEST_P(EventsTest, R_15_startupWaitsForAsyncBeforeTrigger) {
    // an async before-startup trigger holds the reactor's own during-startup work (running stays false).
    Log log;
    reactor().addSystemEventTriggerAsync("before", "startup", [&](Function<void()> done) {
        log.push_back("before");
        reactor().callLater(0.01, [&, done = std::move(done)]() mutable {
            log.push_back(reactor().running() ? "running" : "not running");
            done();
        });
    });
    reactor().callWhenRunning([&] {
        log.push_back("running now");
        reactor().stop();
    });
    runReactor();
    EXPECT_EQ(log, (Log{"before", "not running", "running now"}));
}

TEST_P(EventsTest, R_15_failingBeforeTriggerStillLetsDuringRun) {
    // a before trigger that fails (throws) counts as finished; the later phases still run.
    Log log;
    Function<void()> pending;
    reactor().addSystemEventTriggerAsync("before", "test", [&](Function<void()> done) {
        pending = std::move(done);
        throw std::runtime_error("before failed");
    });
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, Log{"during"});
    pending();  // the failed trigger's continuation fired late: no second during phase
    EXPECT_EQ(log, Log{"during"});
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
}

// ---- R-16 ------------------------------------------------------------------

TEST_P(EventsTest, R_16_differentEventTypesAreIndependent) {
    // one event waiting on a before Deferred does not delay another event type.
    Log log;
    Function<void()> done;
    reactor().addSystemEventTriggerAsync("before", "first", parkDone(done, log, "first-before"));
    reactor().addSystemEventTrigger("during", "first", [&] { log.push_back("first-during"); });
    reactor().addSystemEventTrigger("before", "second", [&] { log.push_back("second-before"); });
    reactor().addSystemEventTrigger("during", "second", [&] { log.push_back("second-during"); });
    reactor().fireSystemEvent("first");
    reactor().fireSystemEvent("second");
    EXPECT_EQ(log, (Log{"first-before", "second-before", "second-during"}));
    done();
    EXPECT_EQ(log, (Log{"first-before", "second-before", "second-during", "first-during"}));
}

// ---- R-17 ------------------------------------------------------------------

TEST_P(EventsTest, R_17_throwingBeforeTriggerIsLoggedAndEverythingElseRuns) {
    // a before trigger that throws is logged; the rest of the before phase and the later phases run.
    Log log;
    reactor().addSystemEventTrigger("before", "test", [&] {
        log.push_back("before1");
        throw std::runtime_error("before boom");
    });
    reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("before2"); });
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"before1", "before2", "during", "after"}));
    auto errors = logs.flushLoggedErrors<std::runtime_error>();
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].getErrorMessage(), "before boom");
}

TEST_P(EventsTest, R_17_throwingDuringAndAfterTriggersAreLoggedAndTheRestRun) {
    // during and after triggers that throw are logged; the remaining triggers still run.
    Log log;
    reactor().addSystemEventTrigger("during", "test", [&] {
        log.push_back("during1");
        throw std::logic_error("during boom");
    });
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during2"); });
    reactor().addSystemEventTrigger("after", "test", [&] {
        log.push_back("after1");
        throw std::logic_error("after boom");
    });
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after2"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"during1", "during2", "after1", "after2"}));
    EXPECT_EQ(logs.flushLoggedErrors<std::logic_error>().size(), 2u);
}

TEST_P(EventsTest, R_17_throwingShutdownTriggerDoesNotStopShutdown) {
    // a throwing shutdown trigger is logged and shutdown still completes (run() returns).
    Log log;
    reactor().addSystemEventTrigger("before", "shutdown", [] { throw std::runtime_error("shutdown boom"); });
    reactor().addSystemEventTrigger("after", "shutdown", [&] { log.push_back("after-shutdown"); });
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_EQ(log, Log{"after-shutdown"});
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
}

// ---- R-18 ------------------------------------------------------------------

TEST_P(EventsTest, R_18_triggersRunOnceAndASecondFireRunsOnlyNewOnes) {
    // firing consumes the triggers; a second fireSystemEvent runs only triggers added since.
    Log log;
    for (auto phase : {"before", "during", "after"})
        reactor().addSystemEventTrigger(phase, "test", [&, phase] { log.push_back(std::string("old-") + phase); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log.size(), 3u);
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log.size(), 3u) << "no trigger may run twice";
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("new-during"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"old-before", "old-during", "old-after", "new-during"}));
}

TEST_P(EventsTest, R_18_consumedTriggerIdCannotBeRemoved) {
    // once a trigger ran it is gone: removing its ID afterwards (even from the during phase) throws.
    Log log;
    auto before = reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("before"); });
    bool threwInDuring = false;
    reactor().addSystemEventTrigger("during", "test", [&] {
        log.push_back("during");
        try {
            reactor().removeSystemEventTrigger(before);
        } catch (const std::invalid_argument&) {
            threwInDuring = true;
        }
    });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"before", "during"}));
    EXPECT_TRUE(threwInDuring) << "the finished before triggers must be cleared before the during phase";
    EXPECT_THROW(reactor().removeSystemEventTrigger(before), std::invalid_argument);
}

// ---- R-19 ------------------------------------------------------------------

TEST_P(EventsTest, R_19_removedTriggerNeverRuns) {
    // removeSystemEventTrigger(id) prevents a pending trigger from running, in every phase.
    Log log;
    std::vector<TriggerId> ids;
    for (auto phase : {"before", "during", "after"}) {
        ids.push_back(reactor().addSystemEventTrigger(phase, "test", [&, phase] { log.push_back(phase); }));
        reactor().addSystemEventTrigger(phase, "test", [&, phase] { log.push_back(std::string("kept-") + phase); });
    }
    for (auto id : ids) reactor().removeSystemEventTrigger(id);
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"kept-before", "kept-during", "kept-after"}));
}

TEST_P(EventsTest, R_19_removingTwiceThrows) {
    // removing an already-removed trigger throws (Twisted ValueError -> std::invalid_argument).
    auto id = reactor().addSystemEventTrigger("during", "test", [] {});
    reactor().removeSystemEventTrigger(id);
    EXPECT_THROW(reactor().removeSystemEventTrigger(id), std::invalid_argument);
}

TEST_P(EventsTest, R_19_malformedIdThrows) {
    // an ID this reactor never issued throws.
    EXPECT_THROW(reactor().removeSystemEventTrigger(TriggerId{}), std::invalid_argument);
    auto id = reactor().addSystemEventTrigger("during", "test", [] {});
    EXPECT_THROW(reactor().removeSystemEventTrigger(TriggerId{id.value + 1000}), std::invalid_argument);
    reactor().removeSystemEventTrigger(id);  // the real one is still removable
}

TEST_P(EventsTest, R_19_identicalRegistrationsAreRemovedIndividually) {
    // R-19 (Better than Twisted): two identical registrations get distinct IDs; removing one leaves the other.
    int count = 0;
    auto inc = [&] { ++count; };
    auto a = reactor().addSystemEventTrigger("during", "test", inc);
    auto b = reactor().addSystemEventTrigger("during", "test", inc);
    EXPECT_NE(a, b);
    reactor().removeSystemEventTrigger(a);
    reactor().fireSystemEvent("test");
    EXPECT_EQ(count, 1);
    EXPECT_THROW(reactor().removeSystemEventTrigger(b), std::invalid_argument) << "b ran, so it is gone";
}

TEST_P(EventsTest, R_19_beforeTriggerRemovesLaterBefore) {
    // a before trigger removing a later, still pending before trigger stops it from running.
    Log log;
    TriggerId later{};
    reactor().addSystemEventTrigger("before", "test", [&] {
        log.push_back("first");
        reactor().removeSystemEventTrigger(later);
    });
    later = reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("later"); });
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"first", "during"}));
}

TEST_P(EventsTest, R_19_beforeTriggerRemovesDuring) {
    // a synchronous before trigger removing a during trigger stops it from running.
    Log log;
    TriggerId during{};
    reactor().addSystemEventTrigger("before", "test", [&] {
        log.push_back("before");
        reactor().removeSystemEventTrigger(during);
    });
    during = reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, (Log{"before", "after"}));
}

TEST_P(EventsTest, R_19_removingDuringWhileBeforeDeferredPending) {
    // a during trigger removed while a before Deferred is pending does not run when the Deferred fires.
    Log log;
    Function<void()> done;
    reactor().addSystemEventTriggerAsync("before", "test", parkDone(done, log, "before"));
    auto during = reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().addSystemEventTrigger("after", "test", [&] { log.push_back("after"); });
    reactor().fireSystemEvent("test");
    reactor().removeSystemEventTrigger(during);
    done();
    EXPECT_EQ(log, (Log{"before", "after"}));
}

TEST_P(EventsTest, R_19_duringTriggerRemovesLaterDuring) {
    // a during trigger removing a later, still pending during trigger stops it from running.
    Log log;
    TriggerId later{};
    reactor().addSystemEventTrigger("during", "test", [&] {
        log.push_back("first");
        reactor().removeSystemEventTrigger(later);
    });
    later = reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("later"); });
    reactor().fireSystemEvent("test");
    EXPECT_EQ(log, Log{"first"});
}

TEST_P(EventsTest, R_19_removingAlreadyRunBeforeDuringBeforePhaseOnlyWarns) {
    // removing an already-run before trigger during the before phase only warns (no throw, no error log).
    Log log;
    TriggerId first = reactor().addSystemEventTrigger("before", "test", [&] { log.push_back("first"); });
    bool threw = false;
    reactor().addSystemEventTrigger("before", "test", [&] {
        try {
            reactor().removeSystemEventTrigger(first);
        } catch (...) {
            threw = true;
        }
        log.push_back("second");
    });
    reactor().addSystemEventTrigger("during", "test", [&] { log.push_back("during"); });
    reactor().fireSystemEvent("test");
    EXPECT_FALSE(threw);
    EXPECT_EQ(log, (Log{"first", "second", "during"}));
    auto warnings = logs.flush(log::Level::warn);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0].level, log::Level::warn);
}

// ---- R-20 ------------------------------------------------------------------

TEST_P(EventsTest, R_20_callWhenRunningBeforeRunRegistersAfterStartupTriggerInOrder) {
    // before run(), callWhenRunning registers an after-startup trigger and returns its ID; calls keep order.
    Log log;
    reactor().addSystemEventTrigger("during", "startup", [&] { log.push_back("during-startup"); });
    auto a = reactor().callWhenRunning([&] { log.push_back("a"); });
    auto b = reactor().callWhenRunning([&] { log.push_back("b"); });
    auto c = reactor().callWhenRunning([&] { log.push_back("c"); });
    ASSERT_TRUE(a && b && c);
    EXPECT_TRUE(log.empty());
    reactor().removeSystemEventTrigger(*b);  // it is a real trigger ID
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor();
    EXPECT_EQ(log, (Log{"during-startup", "a", "c"}));
}

TEST_P(EventsTest, R_20_callWhenRunningWhileRunningCallsSynchronously) {
    // when the reactor is running, callWhenRunning calls f at once and returns no ID.
    Log log;
    std::optional<TriggerId> id{TriggerId{42}};
    reactor().callWhenRunning([&] {
        id = reactor().callWhenRunning([&] { log.push_back("inner"); });
        log.push_back("after inner");
        reactor().stop();
    });
    runReactor();
    EXPECT_FALSE(id.has_value());
    EXPECT_EQ(log, (Log{"inner", "after inner"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, EventsTest, weft::test::allBackends(), weft::test::backendParamName);
