// Signal handling of the reactor (reactor.md R-52..R-55). These tests send real
// signals to this process; every disposition they touch is restored afterwards so
// that a single-process gtest run stays clean.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <string>
#include <vector>
#include <thread>
#include <chrono>

#include <weft/internet/base.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::test::ReactorTest;

namespace {

struct sigaction current(int sig) {
    struct sigaction sa {};
    ::sigaction(sig, nullptr, &sa);
    return sa;
}

using Handler = void (*)(int);
Handler handlerOf(int sig) { return current(sig).sa_handler; }

/// Handler and the flags a program chooses (the C library adds SA_RESTORER itself).
bool sameDisposition(const struct sigaction& a, const struct sigaction& b) {
    constexpr int kFlags =
        SA_RESTART | SA_SIGINFO | SA_NODEFER | SA_RESETHAND | SA_ONSTACK | SA_NOCLDSTOP | SA_NOCLDWAIT;
    return a.sa_handler == b.sa_handler && (a.sa_flags & kFlags) == (b.sa_flags & kFlags);
}

std::atomic<int> gCustomHits{0};
extern "C" void customHandler(int) { gCustomHits.fetch_add(1, std::memory_order_relaxed); }

void setHandler(int sig, Handler h, int flags = SA_RESTART) {
    struct sigaction sa {};
    sa.sa_handler = h;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    ASSERT_EQ(::sigaction(sig, &sa, nullptr), 0);
}

class SignalTest : public ReactorTest {
protected:
    void SetUp() override {
        for (int sig : kSignals) saved_.push_back(current(sig));
        // Start every test from the state a fresh program has.
        setHandler(SIGINT, SIG_DFL, 0);
        setHandler(SIGTERM, SIG_DFL, 0);
        setHandler(SIGCHLD, SIG_DFL, 0);
        gCustomHits = 0;
        ReactorTest::SetUp();
    }
    void TearDown() override {
        ReactorTest::TearDown();
        for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &saved_[i], nullptr);
    }

    /// Sends sig to this process, unless nothing would catch it (that would kill the whole test run).
    bool sendIfCaught(int sig) {
        if (handlerOf(sig) == SIG_DFL) {
            ADD_FAILURE() << "signal " << sig << " has the default disposition: not sending it";
            return false;
        }
        return ::kill(::getpid(), sig) == 0;
    }

    static constexpr std::array<int, 3> kSignals{SIGINT, SIGTERM, SIGCHLD};

private:
    std::vector<struct sigaction> saved_;
};

// ---- R-52 ------------------------------------------------------------------------

TEST_P(SignalTest, R_52_handlersAreInstalledDuringStartupAfterBeforeTriggers) {
    // run(true) installs the SIGTERM and (default) SIGINT handlers in the during-startup phase: not yet in
    // before-startup triggers, already in after-startup triggers.
    Handler termBefore = nullptr, intBefore = nullptr, termAfter = nullptr, intAfter = nullptr;
    reactor().addSystemEventTrigger("before", "startup", [&] {
        termBefore = handlerOf(SIGTERM);
        intBefore = handlerOf(SIGINT);
    });
    reactor().addSystemEventTrigger("after", "startup", [&] {
        termAfter = handlerOf(SIGTERM);
        intAfter = handlerOf(SIGINT);
        reactor().stop();
    });
    runReactor(5.0, true);
    EXPECT_EQ(termBefore, SIG_DFL);
    EXPECT_EQ(intBefore, SIG_DFL);
    EXPECT_NE(termAfter, SIG_DFL);
    EXPECT_NE(termAfter, SIG_IGN);
    EXPECT_NE(intAfter, SIG_DFL);
    EXPECT_NE(intAfter, SIG_IGN);
}

TEST_P(SignalTest, R_52_sigtermStopsThroughTheNormalShutdownAndIsRecorded) {
    // SIGTERM requests stop() through the loop: all shutdown triggers run, and exitSignal() is SIGTERM.
    std::vector<std::string> order;
    for (auto phase : {"before", "during", "after"})
        reactor().addSystemEventTrigger(phase, "shutdown", [&, phase] { order.push_back(phase); });
    reactor().callWhenRunning([&] {
        if (!sendIfCaught(SIGTERM)) reactor().stop();
    });
    EXPECT_FALSE(reactor().exitSignal().has_value());
    runReactor(5.0, true);
    EXPECT_EQ(order, (std::vector<std::string>{"before", "during", "after"}));
    EXPECT_EQ(reactor().exitSignal(), SIGTERM);
}

TEST_P(SignalTest, R_52_sigintStopsWhenItHadTheDefaultDisposition) {
    // SIGINT is captured when it still has the default disposition; it stops the reactor like SIGTERM.
    bool shutdownRan = false;
    reactor().addSystemEventTrigger("before", "shutdown", [&] { shutdownRan = true; });
    reactor().callWhenRunning([&] {
        if (!sendIfCaught(SIGINT)) reactor().stop();
    });
    runReactor(5.0, true);
    EXPECT_TRUE(shutdownRan);
    EXPECT_EQ(reactor().exitSignal(), SIGINT);
}

TEST_P(SignalTest, R_52_sigintIsLeftAloneWhenItAlreadyHasAHandler) {
    // a SIGINT that already has a (non-default) disposition is not captured: the program's handler keeps it.
    setHandler(SIGINT, customHandler);
    Handler during = nullptr;
    reactor().callWhenRunning([&] {
        during = handlerOf(SIGINT);
        ::kill(::getpid(), SIGINT);
        // Stop later from the loop; had weft captured SIGINT, it would already have requested a stop.
        reactor().callLater(0, [&] { reactor().stop(); });
    });
    runReactor(5.0, true);
    EXPECT_EQ(during, &customHandler);
    EXPECT_EQ(gCustomHits.load(), 1);
    EXPECT_FALSE(reactor().exitSignal().has_value());
    EXPECT_EQ(handlerOf(SIGINT), &customHandler);
}

TEST_P(SignalTest, R_52_exitSignalDefaultsToNone) {
    // exitSignal() is empty unless a signal stopped the reactor.
    EXPECT_FALSE(reactor().exitSignal().has_value());
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor(5.0, true);
    EXPECT_FALSE(reactor().exitSignal().has_value());
}

// Signal handlers are the process's, while reactors may be several (one per thread). The first of two
// reactors running at once with run(true) to stop put back the dispositions it had found: the newer one's
// stop left the older one deaf to SIGTERM (the signal fd cleared), the older one's stop restored SIG_DFL
// under the newer one (a SIGTERM then killed the process). Now the handlers stay while any of them runs,
// the newest running one hears the signals, and the last to stop restores what the first found.
class TwoReactorsSignalTest : public SignalTest {
protected:
    /// Runs `older` with run(true) on a thread of its own; returns once it runs.
    std::thread startOlder() {
        std::thread t([this] {
            older->callWhenRunning([this] { olderRunning = true; });
            runReactor(*older, 10.0, true);
        });
        for (int i = 0; i < 500 && !olderRunning.load(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return t;
    }
    std::unique_ptr<Reactor> older = Reactor::create(GetParam());
    std::atomic<bool> olderRunning{false};
};

TEST_P(TwoReactorsSignalTest, R_52_whenTheNewerOfTwoRunningReactorsStopsTheOlderHearsSigterm) {
    std::thread t = startOlder();
    reactor().callWhenRunning([&] { reactor().stop(); });
    runReactor(5.0, true);
    EXPECT_FALSE(reactor().exitSignal().has_value());
    if (!sendIfCaught(SIGTERM)) older->callFromThread([&] { older->stop(); });
    t.join();
    EXPECT_EQ(older->exitSignal(), SIGTERM);
    EXPECT_EQ(handlerOf(SIGTERM), SIG_DFL);  // the last to stop put back what the first found
}

TEST_P(TwoReactorsSignalTest, R_52_whenTheOlderOfTwoRunningReactorsStopsTheNewerKeepsTheHandlers) {
    std::thread t = startOlder();
    reactor().callWhenRunning([&] {
        older->callFromThread([&] { older->stop(); });
        t.join();
        if (!sendIfCaught(SIGTERM)) reactor().stop();
    });
    runReactor(5.0, true);
    EXPECT_FALSE(older->exitSignal().has_value());
    EXPECT_EQ(reactor().exitSignal(), SIGTERM);
    EXPECT_EQ(handlerOf(SIGTERM), SIG_DFL);
}

// ---- R-53 ------------------------------------------------------------------------

TEST_P(SignalTest, R_53_runWithoutSignalHandlersTouchesNoDisposition) {
    // run(false) changes neither SIGINT, SIGTERM nor SIGCHLD, during the run or after it.
    setHandler(SIGTERM, customHandler);
    std::vector<struct sigaction> before, during;
    for (int sig : kSignals) before.push_back(current(sig));
    reactor().addSystemEventTrigger("after", "startup", [&] {
        for (int sig : kSignals) during.push_back(current(sig));
        reactor().stop();
    });
    runReactor(5.0, false);
    ASSERT_EQ(during.size(), before.size());
    for (std::size_t i = 0; i < kSignals.size(); ++i) {
        EXPECT_TRUE(sameDisposition(during[i], before[i])) << "signal " << kSignals[i] << " changed during run(false)";
        EXPECT_TRUE(sameDisposition(current(kSignals[i]), before[i])) << "signal " << kSignals[i] << " changed after";
    }
}

// ---- R-54 ------------------------------------------------------------------------

TEST_P(SignalTest, R_54_sigchldIsNeverTouchedAndChildrenAreNotReaped) {
    // R-54 (Better than Twisted): weft watches children through pidfd, so run(true) installs no SIGCHLD handler,
    // leaves SIGCHLD's disposition as it was, and never reaps a child it does not own (no waitpid(-1)).
    setHandler(SIGCHLD, customHandler, SA_RESTART | SA_NOCLDSTOP);
    const struct sigaction before = current(SIGCHLD);
    struct sigaction during {};
    pid_t child = -1;
    reactor().callWhenRunning([&] {
        during = current(SIGCHLD);
        child = ::fork();
        if (child == 0) ::_exit(7);
        // Wait for the exit without reaping; the SIGCHLD it raises goes through the loop's next iterations.
        siginfo_t info{};
        while (::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {}
        reactor().callLater(0, [&] { reactor().callLater(0, [&] { reactor().stop(); }); });
    });
    runReactor(5.0, true);
    ASSERT_GT(child, 0);
    EXPECT_TRUE(sameDisposition(during, before)) << "run(true) changed SIGCHLD";
    EXPECT_TRUE(sameDisposition(current(SIGCHLD), before)) << "SIGCHLD changed after run()";
    int status = 0;
    EXPECT_EQ(::waitpid(child, &status, WNOHANG), child) << "the reactor reaped a child it does not own";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    EXPECT_EQ(gCustomHits.load(), 1);  // the program's own handler still got the SIGCHLD
}

TEST_P(SignalTest, R_54_defaultSigchldStaysDefault) {
    // with SIGCHLD at its default disposition, run(true) leaves it at the default throughout.
    Handler during = nullptr;
    reactor().callWhenRunning([&] {
        during = handlerOf(SIGCHLD);
        reactor().stop();
    });
    runReactor(5.0, true);
    EXPECT_EQ(during, SIG_DFL);
    EXPECT_EQ(handlerOf(SIGCHLD), SIG_DFL);
}

// ---- R-55 ------------------------------------------------------------------------

TEST_P(SignalTest, R_55_handlerDefersEveryEffectToTheLoop) {
    // the signal handler only wakes the loop; stop() and the shutdown triggers happen later, in the loop.
    bool shutdownRan = false, runningAfterKill = false, shutdownRanInKill = true;
    reactor().addSystemEventTrigger("before", "shutdown", [&] { shutdownRan = true; });
    reactor().callWhenRunning([&] {
        // A signal a thread sends to its own process is delivered before kill() returns.
        if (!sendIfCaught(SIGTERM)) {
            reactor().stop();
            return;
        }
        runningAfterKill = reactor().running();
        shutdownRanInKill = shutdownRan;
    });
    runReactor(5.0, true);
    EXPECT_TRUE(runningAfterKill);
    EXPECT_FALSE(shutdownRanInKill);
    EXPECT_TRUE(shutdownRan);
    EXPECT_EQ(reactor().exitSignal(), SIGTERM);
}

TEST_P(SignalTest, R_55_previousDispositionsAreRestoredWhenRunReturns) {
    // R-55 (Better than Twisted): when run() returns — after stop() or crash() — SIGINT and SIGTERM have their
    // previous dispositions again.
    setHandler(SIGTERM, customHandler);
    const struct sigaction termBefore = current(SIGTERM), intBefore = current(SIGINT);
    Handler termDuring = nullptr;
    reactor().callWhenRunning([&] {
        termDuring = handlerOf(SIGTERM);
        reactor().crash();
    });
    runReactor(5.0, true);
    EXPECT_NE(termDuring, &customHandler);  // SIGTERM is always captured while running
    EXPECT_TRUE(sameDisposition(current(SIGTERM), termBefore)) << "not restored after crash()";
    EXPECT_TRUE(sameDisposition(current(SIGINT), intBefore)) << "not restored after crash()";

    Handler termSecondRun = nullptr;
    reactor().callLater(0, [&] {
        termSecondRun = handlerOf(SIGTERM);
        reactor().stop();
    });
    runReactor(5.0, true);
    EXPECT_NE(termSecondRun, &customHandler);
    EXPECT_TRUE(sameDisposition(current(SIGTERM), termBefore)) << "not restored after stop()";
    EXPECT_TRUE(sameDisposition(current(SIGINT), intBefore)) << "not restored after stop()";
    EXPECT_EQ(gCustomHits.load(), 0);
}

TEST_P(SignalTest, R_55_sigpipeDoesNotKillTheProcess) {
    // a C++ program dies of SIGPIPE by default; with a reactor, writing to a closed peer fails with EPIPE.
    ASSERT_NE(handlerOf(SIGPIPE), SIG_DFL) << "not writing: SIGPIPE would kill the test run";
    int s[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
    ::close(s[1]);
    errno = 0;
    EXPECT_EQ(::write(s[0], "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
    ::close(s[0]);
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Backends, SignalTest, weft::test::allBackends(), weft::test::backendParamName);
INSTANTIATE_TEST_SUITE_P(Backends, TwoReactorsSignalTest, weft::test::allBackends(), weft::test::backendParamName);
