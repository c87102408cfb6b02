// ReconnectingClientFactory (protocols.md RCF-1 … RCF-7).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/reconnect.hpp>
#include <weft/internet/task.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/testing.hpp>
#include <weft/internet/unix.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::test::LeakCheckedTest;
using weft::test::ReactorTest;

namespace {

constexpr double kE = 2.718281828459045;

// A connector that counts connect() calls (weft::testing::FakeConnector does nothing).
struct CountingConnector : weft::testing::FakeConnector {
    CountingConnector() : FakeConnector(IPv4Address("TCP", "127.0.0.1", 1234)) {}
    int connects = 0;
    void connect() override { ++connects; }
};

// A connector that must be left alone (Twisted test_stopTryingWhenConnected).
struct NoConnectConnector : weft::testing::FakeConnector {
    NoConnectConnector() : FakeConnector(NoAddress()) {}
    void stopConnecting() override { throw std::runtime_error("Shouldn't be called, we're connected."); }
    void connect() override { throw std::runtime_error("Shouldn't be reconnecting."); }
};

Failure refused() { return Failure(error::ConnectionRefusedError()); }

class ReconnectTest : public LeakCheckedTest {
protected:
    task::Clock clock;

    std::shared_ptr<ReconnectingClientFactory> makeFactory(double jitter = 0) {
        auto f = std::make_shared<ReconnectingClientFactory>();
        f->clock = &clock;
        f->jitter = jitter;
        return f;
    }
    // The delay of the single pending call.
    double pendingDelay() {
        auto calls = clock.getDelayedCalls();
        EXPECT_EQ(calls.size(), 1u);
        return calls.empty() ? -1 : calls.front().getTime() - clock.seconds();
    }
};

}  // namespace

// ---- RCF-1 ---------------------------------------------------------------------------------

TEST_F(ReconnectTest, RCF_1_defaults) {
    // RCF-1: initialDelay 1.0, factor e, maxDelay 3600, jitter 0.119626565582, maxRetries unlimited, continueTrying, clock unset.
    ReconnectingClientFactory f;
    EXPECT_EQ(f.initialDelay, 1.0);
    EXPECT_EQ(f.factor, kE);
    EXPECT_EQ(f.maxDelay, 3600);
    EXPECT_EQ(f.jitter, 0.119626565582);
    EXPECT_FALSE(f.maxRetries.has_value());
    EXPECT_TRUE(f.continueTrying);
    EXPECT_EQ(f.clock, nullptr);
    EXPECT_EQ(f.delay, 1.0);
    EXPECT_EQ(f.retries, 0);
    EXPECT_TRUE(f.connector.expired());
    EXPECT_FALSE(f.callID().has_value());
    EXPECT_FALSE(f.normalvariate);
}

TEST(ReconnectingClientFactory, RCF_1_clockIsTheConnectorsReactorUnlessSet) {
    // RCF-1: with `clock` unset, a retry of a tcp::Connector is scheduled on that connector's reactor.
    auto reactor = Reactor::create();
    auto f = std::make_shared<ReconnectingClientFactory>();
    f->noisy = false;
    auto connector = std::make_shared<tcp::Connector>(*reactor, "127.0.0.1", 9, f, 30, std::nullopt);
    EXPECT_TRUE(reactor->getDelayedCalls().empty());
    f->retry(connector);
    ASSERT_EQ(reactor->getDelayedCalls().size(), 1u);
    ASSERT_TRUE(f->callID().has_value());
    EXPECT_EQ(reactor->getDelayedCalls().front(), *f->callID());
    EXPECT_EQ(f->clock, nullptr);  // resolved at each retry, not stored

    // An explicit clock wins over the connector's reactor.
    task::Clock clock;
    f->clock = &clock;
    f->retry(connector);
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    EXPECT_EQ(reactor->getDelayedCalls().size(), 1u);

    f->connector = connector;
    f->stopTrying();  // the connector is not connecting: NotConnectingError is ignored (RCF-5)
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    reactor->getDelayedCalls().front().cancel();
    EXPECT_TRUE(reactor->getDelayedCalls().empty());
}

TEST_F(ReconnectTest, RCF_1_anyConnectorUsesTheClockGivenAtConstruction) {
    // RCF-1: an IConnector that knows no reactor uses the fallback clock given to the constructor; `clock` still wins.
    task::Clock other;
    auto f = std::make_shared<ReconnectingClientFactory>(&clock);
    f->noisy = false;
    auto c = std::make_shared<CountingConnector>();
    f->clientConnectionFailed(c, refused());
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    f->clock = &other;
    f->retry();
    EXPECT_EQ(other.getDelayedCalls().size(), 1u);
    f->stopTrying();
    for (auto& call : clock.getDelayedCalls()) call.cancel();
}

TEST_F(ReconnectTest, RCF_1_noClockAtAllThrowsAndChangesNothing) {
    // RCF-1: with no clock set, none given at construction and a connector without a reactor, retry() throws std::logic_error and changes nothing.
    auto f = std::make_shared<ReconnectingClientFactory>();
    f->noisy = false;
    auto c = std::make_shared<CountingConnector>();
    EXPECT_THROW(f->retry(c), std::logic_error);
    EXPECT_EQ(f->retries, 0);
    EXPECT_EQ(f->delay, f->initialDelay);
    EXPECT_FALSE(f->callID().has_value());
}

// ---- RCF-2 ---------------------------------------------------------------------------------

TEST_F(ReconnectTest, RCF_2_connectionFailedRemembersConnectorAndRetries) {
    // RCF-2: clientConnectionFailed remembers the connector and calls retry() while continueTrying.
    auto f = makeFactory();
    auto c = std::make_shared<CountingConnector>();
    f->clientConnectionFailed(c, refused());
    EXPECT_EQ(f->connector.lock(), c);
    EXPECT_EQ(f->retries, 1);
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    clock.advance(10);
    EXPECT_EQ(c->connects, 1);
}

TEST_F(ReconnectTest, RCF_2_connectionLostRemembersConnectorAndRetries) {
    // RCF-2: clientConnectionLost remembers the connector and calls retry() while continueTrying (Twisted test_parametrizedClock).
    auto f = makeFactory(0.119626565582);
    auto c = std::make_shared<CountingConnector>();
    f->clientConnectionLost(c, Failure(ConnectionLost()));
    EXPECT_EQ(f->connector.lock(), c);
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    clock.advance(3600);
    EXPECT_EQ(c->connects, 1);
}

TEST_F(ReconnectTest, RCF_2_nothingHappensOnceContinueTryingIsFalse) {
    // RCF-2: with continueTrying false, failures and losses neither remember the connector nor retry.
    auto f = makeFactory();
    f->continueTrying = false;
    auto c = std::make_shared<CountingConnector>();
    f->clientConnectionFailed(c, refused());
    f->clientConnectionLost(c, Failure(ConnectionLost()));
    EXPECT_TRUE(f->connector.expired());
    EXPECT_EQ(f->retries, 0);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

// ---- RCF-3 ---------------------------------------------------------------------------------

TEST_F(ReconnectTest, RCF_3_delaysGrowByFactorUpToMaxDelay) {
    // RCF-3: with jitter 0 the delays are initialDelay × factor^n (2.718, 7.389, 20.086, …) capped at maxDelay; connect() runs after each.
    auto f = makeFactory();
    f->maxDelay = 100;
    auto c = std::make_shared<CountingConnector>();
    const std::vector<double> expected = {kE, kE * kE, std::pow(kE, 3), std::pow(kE, 4), 100, 100};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        f->clientConnectionFailed(c, refused());
        EXPECT_NEAR(pendingDelay(), expected[i], 1e-9) << "retry " << i + 1;
        EXPECT_NEAR(f->delay, expected[i], 1e-9);
        clock.advance(expected[i] * 0.999);
        EXPECT_EQ(c->connects, static_cast<int>(i)) << "connected before the delay";
        clock.advance(expected[i] * 0.002);
        EXPECT_EQ(c->connects, static_cast<int>(i) + 1);
        EXPECT_FALSE(f->callID().has_value());
    }
    EXPECT_EQ(f->retries, 6);
}

TEST_F(ReconnectTest, RCF_3_firstReconnectComesAfterInitialDelayTimesFactor) {
    // RCF-3: the delay grows before the first retry, so it comes after ≈ 2.72 s, not initialDelay.
    auto f = makeFactory(0.119626565582);
    f->normalvariate = [](double mean, double) { return mean; };
    f->clientConnectionFailed(std::make_shared<CountingConnector>(), refused());
    EXPECT_NEAR(pendingDelay(), kE, 1e-9);
    f->stopTrying();
}

TEST_F(ReconnectTest, RCF_3_maxRetriesAllowsExactlyThatManyReconnects) {
    // RCF-3: retries counts every retry(); past maxRetries nothing is scheduled — maxRetries = 3 allows exactly three reconnects.
    auto f = makeFactory();
    f->maxRetries = 3;
    auto c = std::make_shared<CountingConnector>();
    for (int i = 0; i < 5; ++i) {
        f->clientConnectionFailed(c, refused());
        clock.advance(10000);
    }
    EXPECT_EQ(c->connects, 3);
    EXPECT_EQ(f->retries, 5);
    EXPECT_TRUE(clock.getDelayedCalls().empty());

    auto none = makeFactory();
    none->maxRetries = 0;
    none->clientConnectionFailed(c, refused());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(ReconnectTest, RCF_3_jitterIsANormalDrawAroundTheDelayAndIsKept) {
    // RCF-3: with jitter ≠ 0 the delay is a normal draw with mean delay and deviation delay × jitter, and the draw is kept for the next step.
    auto f = makeFactory(0.25);
    std::vector<std::pair<double, double>> draws;
    f->normalvariate = [&](double mean, double stddev) {
        draws.emplace_back(mean, stddev);
        return mean * 1.1;
    };
    auto c = std::make_shared<CountingConnector>();
    f->clientConnectionFailed(c, refused());
    ASSERT_EQ(draws.size(), 1u);
    EXPECT_NEAR(draws[0].first, kE, 1e-9);
    EXPECT_NEAR(draws[0].second, kE * 0.25, 1e-9);
    EXPECT_NEAR(f->delay, kE * 1.1, 1e-9);
    EXPECT_NEAR(pendingDelay(), kE * 1.1, 1e-9);
    clock.advance(10);
    f->clientConnectionFailed(c, refused());
    ASSERT_EQ(draws.size(), 2u);
    EXPECT_NEAR(draws[1].first, kE * 1.1 * kE, 1e-9);  // grows from the kept draw
    f->stopTrying();
}

TEST_F(ReconnectTest, RCF_3_jitteredDelayIsClampedToZeroAndMaxDelay) {
    // RCF-3 Better than Twisted: the jittered delay is clamped to [0, maxDelay] (a NaN draw becomes 0).
    auto f = makeFactory(0.5);
    f->maxDelay = 50;
    auto c = std::make_shared<CountingConnector>();
    double next = 1e9;
    f->normalvariate = [&](double, double) { return next; };
    f->clientConnectionFailed(c, refused());
    EXPECT_EQ(f->delay, 50);
    EXPECT_NEAR(pendingDelay(), 50, 1e-9);
    clock.advance(50);

    next = -5;
    f->clientConnectionFailed(c, refused());
    EXPECT_EQ(f->delay, 0);
    EXPECT_NEAR(pendingDelay(), 0, 1e-9);
    clock.advance(0);

    next = std::numeric_limits<double>::quiet_NaN();
    f->clientConnectionFailed(c, refused());
    EXPECT_EQ(f->delay, 0);
    clock.advance(0);
    EXPECT_EQ(c->connects, 3);
}

TEST_F(ReconnectTest, RCF_3_builtInRandomSourceIsSeedableAndStaysInRange) {
    // RCF-3 Better than Twisted: the built-in source is seedable (same seed, same delays) and every delay is within [0, maxDelay].
    auto delays = [&](std::uint64_t seed) {
        auto f = makeFactory(0.119626565582);
        f->noisy = false;
        f->maxDelay = 60;
        f->seed(seed);
        auto c = std::make_shared<CountingConnector>();
        std::vector<double> out;
        for (int i = 0; i < 12; ++i) {
            f->clientConnectionFailed(c, refused());
            out.push_back(f->delay);
            EXPECT_GE(f->delay, 0);
            EXPECT_LE(f->delay, 60);
            clock.advance(60);
        }
        return out;
    };
    auto a = delays(42), b = delays(42), other = delays(43);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, other);
    EXPECT_NE(a[0], kE);  // jittered, not the plain growth
    EXPECT_NEAR(a[0], kE, kE * 0.119626565582 * 6);
}

TEST_F(ReconnectTest, RCF_3_pendingRetryOfADestroyedFactoryNeverRuns) {
    // RCF-3: a retry is scheduled on the clock; destroying the factory cancels it, and one it forgot (resetDelay) does nothing.
    auto c = std::make_shared<CountingConnector>();
    {
        auto f = makeFactory();
        f->clientConnectionFailed(c, refused());
        EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    }
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    {
        auto f = makeFactory();
        f->clientConnectionFailed(c, refused());
        f->resetDelay();  // forgets the call
    }
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    clock.advance(10);
    EXPECT_EQ(c->connects, 0);
}

// ---- RCF-4 ---------------------------------------------------------------------------------

TEST_F(ReconnectTest, RCF_4_retryWithNoConnectorThrows) {
    // RCF-4: retry() with no connector argument and none remembered throws std::logic_error("no connector to retry").
    auto f = makeFactory();
    try {
        f->retry();
        FAIL() << "no exception";
    } catch (const std::logic_error& e) {
        EXPECT_STREQ(e.what(), "no connector to retry");
    }
    EXPECT_EQ(f->retries, 0);
    EXPECT_TRUE(clock.getDelayedCalls().empty());

    // An explicit connector needs nothing remembered.
    auto c = std::make_shared<CountingConnector>();
    f->retry(c);
    clock.advance(10);
    EXPECT_EQ(c->connects, 1);
}

TEST_F(ReconnectTest, RCF_4_retryAfterStopTryingOnlyLogs) {
    // RCF-4: after stopTrying(), retry() only logs "Abandoning …" and returns, even with no connector.
    auto f = makeFactory();
    f->stopTrying();
    EXPECT_NO_THROW(f->retry());
    f->retry(std::make_shared<CountingConnector>());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    EXPECT_EQ(f->retries, 0);
    int abandoned = 0;
    for (auto& e : logs.entries()) abandoned += e.message.find("Abandoning") != std::string::npos;
    EXPECT_EQ(abandoned, 2);
}

// ---- RCF-5 ---------------------------------------------------------------------------------

TEST_F(ReconnectTest, RCF_5_stopTryingCancelsThePendingRetryAndStopsConnecting) {
    // RCF-5: stopTrying() cancels a scheduled reconnect, clears continueTrying and calls connector.stopConnecting(); later failures do not reconnect.
    auto f = makeFactory();
    auto c = std::make_shared<CountingConnector>();
    f->clientConnectionFailed(c, refused());
    ASSERT_EQ(clock.getDelayedCalls().size(), 1u);
    auto pending = clock.getDelayedCalls().front();
    f->stopTrying();
    EXPECT_TRUE(pending.cancelled());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    EXPECT_FALSE(f->continueTrying);
    EXPECT_TRUE(c->stoppedConnecting);
    f->clientConnectionFailed(c, refused());
    f->clientConnectionLost(c, Failure(ConnectionLost()));
    clock.advance(10000);
    EXPECT_EQ(c->connects, 0);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(ReconnectTest, RCF_5_stopTryingIgnoresNotConnectingError) {
    // RCF-5: stopTrying() ignores NotConnectingError from connector.stopConnecting(); other errors propagate.
    struct NotConnecting : CountingConnector {
        void stopConnecting() override { throw error::NotConnectingError(); }
    };
    auto f = makeFactory();
    auto c = std::make_shared<NotConnecting>();
    f->connector = c;
    EXPECT_NO_THROW(f->stopTrying());
    EXPECT_FALSE(f->continueTrying);

    auto g = makeFactory();
    auto bad = std::make_shared<NoConnectConnector>();
    g->connector = bad;
    EXPECT_THROW(g->stopTrying(), std::runtime_error);
}

TEST_F(ReconnectTest, RCF_5_failureReportedByStopConnectingDoesNotRetry) {
    // RCF-5: a failure that stopConnecting() reports synchronously does not schedule a retry (Twisted test_stopTryingDoesNotReconnect).
    struct FactoryAware : CountingConnector {
        ReconnectingClientFactory* f = nullptr;
        std::weak_ptr<IConnector> self;
        void stopConnecting() override { f->clientConnectionFailed(self.lock(), Failure(error::UserError())); }
    };
    auto f = makeFactory();
    auto c = std::make_shared<FactoryAware>();
    c->f = f.get();
    c->self = c;
    f->connector = c;
    f->stopTrying();
    EXPECT_EQ(c->connects, 0);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(ReconnectTest, RCF_5_stopTryingWhileConnectedPreventsReconnectAfterLoss) {
    // RCF-5: stopTrying() while connected means a later loss does not reconnect (Twisted test_stopTryingWhenConnected).
    auto f = makeFactory();
    f->protocol = [] { return std::make_shared<Protocol>(); };
    auto p = f->buildProtocol(NoAddress());
    ASSERT_TRUE(p);
    f->stopTrying();
    EXPECT_NO_THROW(f->clientConnectionLost(std::make_shared<NoConnectConnector>(), Failure(ConnectionLost())));
    EXPECT_FALSE(f->continueTrying);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

// ---- RCF-6 ---------------------------------------------------------------------------------

TEST_F(ReconnectTest, RCF_6_resetDelayRestoresInitialState) {
    // RCF-6: resetDelay() restores delay = initialDelay and retries = 0, forgets the scheduled call and sets continueTrying.
    auto f = makeFactory();
    f->initialDelay = 0.5;
    f->delay = 0.5;
    auto c = std::make_shared<CountingConnector>();
    for (int i = 0; i < 3; ++i) {
        f->clientConnectionFailed(c, refused());
        clock.advance(100);
    }
    f->clientConnectionFailed(c, refused());
    EXPECT_EQ(f->retries, 4);
    EXPECT_GT(f->delay, 0.5);
    ASSERT_TRUE(f->callID().has_value());
    f->continueTrying = false;

    f->resetDelay();
    EXPECT_EQ(f->delay, 0.5);
    EXPECT_EQ(f->retries, 0);
    EXPECT_TRUE(f->continueTrying);
    EXPECT_FALSE(f->callID().has_value());
    // Forgotten, not cancelled: the call still runs.
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    clock.advance(100);
    EXPECT_EQ(c->connects, 4);

    // The next retry starts from initialDelay again.
    f->clientConnectionFailed(c, refused());
    EXPECT_NEAR(pendingDelay(), 0.5 * kE, 1e-9);
    f->stopTrying();
}

TEST_F(ReconnectTest, RCF_6_resetDelayAfterStopTryingResumesRetrying) {
    // RCF-6: resetDelay() sets continueTrying again, so failures retry after a stopTrying().
    auto f = makeFactory();
    auto c = std::make_shared<CountingConnector>();
    f->stopTrying();
    f->resetDelay();
    f->clientConnectionFailed(c, refused());
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    f->stopTrying();
}

// ---- RCF-7 ---------------------------------------------------------------------------------

TEST_F(ReconnectTest, RCF_7_configurationCopyKeepsConfigurationButNotRunState) {
    // RCF-7: a copy (weft's analogue of pickling) keeps the configuration; connector, retries, delay, continueTrying, pending call and clock are back at their defaults.
    task::Clock fallback;
    auto f = std::make_shared<ReconnectingClientFactory>(&fallback);
    f->clock = &clock;
    f->initialDelay = 0.25;
    f->factor = 1.5;
    f->maxDelay = 30;
    f->jitter = 0.05;
    f->maxRetries = 7;
    f->noisy = false;
    int draws = 0;
    f->normalvariate = [&](double mean, double) {
        ++draws;
        return mean;
    };
    f->protocol = [] { return std::make_shared<Protocol>(); };
    auto c = std::make_shared<CountingConnector>();
    for (int i = 0; i < 2; ++i) {
        f->clientConnectionFailed(c, refused());
        clock.advance(100);
    }
    f->clientConnectionFailed(c, refused());  // pending
    f->doStart();

    auto copy = f->configurationCopy();
    ASSERT_TRUE(copy);
    EXPECT_NE(copy, f);
    EXPECT_EQ(copy->initialDelay, 0.25);
    EXPECT_EQ(copy->factor, 1.5);
    EXPECT_EQ(copy->maxDelay, 30);
    EXPECT_EQ(copy->jitter, 0.05);
    EXPECT_EQ(copy->maxRetries, 7);
    EXPECT_FALSE(copy->noisy);
    ASSERT_TRUE(copy->protocol);
    EXPECT_TRUE(copy->buildProtocol(NoAddress()));
    // Run state: defaults.
    EXPECT_TRUE(copy->connector.expired());
    EXPECT_EQ(copy->retries, 0);
    EXPECT_EQ(copy->delay, 0.25);
    EXPECT_TRUE(copy->continueTrying);
    EXPECT_FALSE(copy->callID().has_value());
    EXPECT_EQ(copy->clock, nullptr);
    EXPECT_EQ(copy->numPorts, 0);
    // The injected random source and the fallback clock are configuration.
    copy->retry(c);
    EXPECT_EQ(draws, 4);
    EXPECT_EQ(fallback.getDelayedCalls().size(), 1u);
    copy->stopTrying();
    f->stopTrying();
    f->doStop();
}

TEST_F(ReconnectTest, RCF_7_copyOfAnUnusedFactoryEqualsIt) {
    // RCF-7: an unused factory and its copy have the same state (Twisted test_serializeUnused).
    ReconnectingClientFactory f;
    auto copy = f.configurationCopy();
    EXPECT_EQ(copy->initialDelay, f.initialDelay);
    EXPECT_EQ(copy->factor, f.factor);
    EXPECT_EQ(copy->maxDelay, f.maxDelay);
    EXPECT_EQ(copy->jitter, f.jitter);
    EXPECT_EQ(copy->maxRetries, f.maxRetries);
    EXPECT_EQ(copy->delay, f.delay);
    EXPECT_EQ(copy->retries, f.retries);
    EXPECT_EQ(copy->continueTrying, f.continueTrying);
    EXPECT_EQ(copy->clock, f.clock);
    EXPECT_EQ(copy->noisy, f.noisy);
    EXPECT_EQ(copy->numPorts, f.numPorts);
    EXPECT_FALSE(copy->protocol);
}

// ---- with a real reactor and TCP -----------------------------------------------------------

namespace {

// A TCP port that refuses connections: bound, never listening. Closed on destruction.
struct RefusingPort {
    RefusingPort() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error("RefusingPort");
        port = ntohs(a.sin_port);
    }
    ~RefusingPort() { ::close(fd); }
    RefusingPort(const RefusingPort&) = delete;
    RefusingPort& operator=(const RefusingPort&) = delete;
    int fd = -1;
    std::uint16_t port = 0;
};

}  // namespace

class ReconnectTCPTest : public ReactorTest {};

TEST_P(ReconnectTCPTest, RCF_2_reconnectsARefusedTCPConnectorUntilMaxRetries) {
    // RCF-2: a real tcp::Connector whose attempts are refused is reconnected on its reactor until maxRetries, then left alone.
    RefusingPort refusing;
    struct Counting : ReconnectingClientFactory {
        int failures = 0;
        std::vector<Failure> reasons;
        Reactor* reactor = nullptr;
        void clientConnectionFailed(const std::shared_ptr<IConnector>& c, const Failure& reason) override {
            ++failures;
            reasons.push_back(reason);
            ReconnectingClientFactory::clientConnectionFailed(c, reason);
            if (!callID()) reactor->stop();  // gave up
        }
    };
    auto f = std::make_shared<Counting>();
    f->reactor = &reactor();
    f->initialDelay = 0.01;
    f->delay = 0.01;
    f->factor = 1;
    f->jitter = 0;
    f->maxRetries = 2;
    f->noisy = false;
    f->protocol = [] { return std::make_shared<Protocol>(); };
    std::weak_ptr<tcp::Connector> weakConnector = reactor().connectTCP("127.0.0.1", refusing.port, f);
    runReactor();
    EXPECT_EQ(f->failures, 3);  // the first attempt and two reconnects
    EXPECT_EQ(f->retries, 3);
    for (auto& r : f->reasons) EXPECT_TRUE(r.check<error::ConnectionRefusedError>()) << r.str();
    EXPECT_TRUE(weakConnector.expired()) << "the loop ended: nothing keeps the connector";
    EXPECT_EQ(f->numPorts, 0);
}

TEST_P(ReconnectTCPTest, RCF_1_reconnectsOverUNIXSocketsWithNoClockGiven) {
    // RCF-1: with no clock set and none given at construction, a unix_::Connector's retries are scheduled on its reactor (IConnector::clock()), as a tcp::Connector's are.
    char dir[] = "/tmp/weft-rcf-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string path = std::string(dir) + "/nobody-listens";
    struct Counting : ReconnectingClientFactory {
        int failures = 0;
        std::optional<std::string> noClock;
        Reactor* reactor = nullptr;
        void clientConnectionFailed(const std::shared_ptr<IConnector>& c, const Failure& reason) override {
            ++failures;
            try {
                ReconnectingClientFactory::clientConnectionFailed(c, reason);
            } catch (const std::logic_error& e) {  // "no clock to schedule the retry on"
                noClock = e.what();
                reactor->stop();
                return;
            }
            if (!callID()) reactor->stop();  // gave up
        }
    };
    auto f = std::make_shared<Counting>();
    f->reactor = &reactor();
    f->initialDelay = 0.01;
    f->delay = 0.01;
    f->factor = 1;
    f->jitter = 0;
    f->maxRetries = 2;
    f->noisy = false;
    f->protocol = [] { return std::make_shared<Protocol>(); };
    ASSERT_EQ(f->clock, nullptr);
    std::weak_ptr<IConnector> weakConnector = std::shared_ptr<IConnector>(reactor().connectUNIX(path, f));
    runReactor();
    ::rmdir(dir);
    EXPECT_FALSE(f->noClock) << *f->noClock;
    EXPECT_EQ(f->failures, 3);  // the first attempt and two reconnects
    EXPECT_EQ(f->retries, 3);
    EXPECT_TRUE(weakConnector.expired()) << "the loop ended: nothing keeps the connector";
    EXPECT_EQ(f->numPorts, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReconnectTCPTest, weft::test::allBackends(), weft::test::backendParamName);

TEST_F(ReconnectTest, RCF_1_aMemoryReactorClocksConnectorSchedulesOnThatClock) {
    // RCF-1: with `clock` unset, the connector's clock() is used before the fallback: a MemoryReactorClock's connector schedules the retry on the MemoryReactorClock.
    weft::testing::MemoryReactorClock memory;
    task::Clock fallback;
    auto f = std::make_shared<ReconnectingClientFactory>(&fallback);
    f->noisy = false;
    f->jitter = 0;
    auto connector = memory.connectTCP("h", 1, f);
    f->clientConnectionFailed(connector, refused());
    ASSERT_EQ(memory.getDelayedCalls().size(), 1u);
    EXPECT_TRUE(fallback.getDelayedCalls().empty());
    EXPECT_EQ(memory.getDelayedCalls().front(), *f->callID());
    memory.advance(f->delay);  // FakeConnector::connect() does nothing
    EXPECT_TRUE(memory.getDelayedCalls().empty());
    EXPECT_EQ(f->retries, 1);
}
