// protocols.md POL-1 … POL-8, TM-1 … TM-3: wrapping policies. In-memory tests
// (StringTransport, task::Clock) as Twisted's test_policies has them, then the
// same wrappers over real TCP connections on every backend: half-close through
// a wrapper, throttling on the reactor's clock, idle timeouts, and every
// transport call made from inside every callback of a wrapped protocol.
#include <fcntl.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cmath>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/internet/error.hpp>
#include <weft/internet/task.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/testing.hpp>
#include <weft/log.hpp>
#include <weft/internet/abort.hpp>
#include <weft/protocols/policies.hpp>

#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"

using namespace weft;
using namespace weft::test;
using namespace weft::policies;
using weft::testing::StringTransport;

namespace {

std::string str(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// A protocol that records what reaches it.
class Recorder : public Protocol {
public:
    void connectionMade() override { ++made; }
    void dataReceived(Bytes data) override { received += str(data); }
    void connectionLost(const Failure& reason) override {
        ++lost;
        lostReason = reason;
    }
    std::string received;
    int made = 0, lost = 0;
    std::optional<Failure> lostReason;
};

class HalfCloseRecorder : public Recorder, public IHalfCloseableProtocol {
public:
    void readConnectionLost() override { ++readLost; }
    void writeConnectionLost() override { ++writeLost; }
    int readLost = 0, writeLost = 0;
};

// A factory building Recorders and keeping each.
class RecorderFactory : public ClientFactory {
public:
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
        if (refuse) return nullptr;
        auto p = std::make_shared<Recorder>();
        p->factory = shared_from_this();
        built.push_back(p);
        return p;
    }
    void startedConnecting(const std::shared_ptr<IConnector>&) override { events.push_back("started"); }
    void clientConnectionFailed(const std::shared_ptr<IConnector>&, const Failure&) override {
        events.push_back("failed");
    }
    void clientConnectionLost(const std::shared_ptr<IConnector>&, const Failure&) override { events.push_back("lost"); }
    // Held weakly: a protocol holds its factory, so holding it here would be a cycle.
    std::vector<std::weak_ptr<Recorder>> built;
    std::shared_ptr<Recorder> at(std::size_t i) const { return built.at(i).lock(); }
    std::vector<std::string> events;
    bool refuse = false;
};

class PrefixedProtocol : public Protocol {
public:
    std::string logPrefix() const override { return "custom prefix"; }
};

// A push producer that records its state.
class PushProducer : public IPushProducer {
public:
    void pauseProducing() override { paused = true; }
    void resumeProducing() override { paused = false; }
    void stopProducing() override { stopped = true; }
    bool paused = false, stopped = false;
};

std::shared_ptr<ProtocolWrapper> connectWrapper(const std::shared_ptr<Protocol>& built,
                                                const std::shared_ptr<StringTransport>& t) {
    auto wrapper = std::dynamic_pointer_cast<ProtocolWrapper>(built);
    if (wrapper) wrapper->makeConnection(t);
    return wrapper;
}

// Ends every connection the factory still counts, as their transports would:
// the wrapper and its wrapped protocol hold each other until connectionLost.
void loseAll(WrappingFactory& f) {
    while (!f.protocols().empty()) f.protocols().front()->connectionLost(error::connectionDone());
}

const Address kPeer = IPv4Address("TCP", "192.0.2.1", 1234);

}  // namespace

// ---- ProtocolWrapper and WrappingFactory ----------------------------------------------------

TEST(ProtocolWrapper, POL_1_transportCallsReachTheRealTransport) {
    auto inner = std::make_shared<RecorderFactory>();
    auto wf = std::make_shared<WrappingFactory>(inner);
    auto t = std::make_shared<StringTransport>(IPv4Address("TCP", "127.0.0.1", 80), kPeer);
    auto wrapper = connectWrapper(wf->buildProtocol(kPeer), t);
    ASSERT_TRUE(wrapper);
    auto& p = *inner->at(0);
    ASSERT_EQ(p.transport.get(), static_cast<ITransport*>(wrapper.get()));  // the wrapper is its transport

    p.transport->write(std::string_view("abc"));
    Bytes parts[] = {asBytes("de"), asBytes("f")};
    p.transport->writeSequence(parts);
    EXPECT_EQ(t->value(), "abcdef");
    EXPECT_EQ(p.transport->getPeer(), Address(kPeer));
    EXPECT_EQ(p.transport->getHost(), Address(IPv4Address("TCP", "127.0.0.1", 80)));

    // The consumer and producer sides are the real transport's.
    IConsumer* consumer = p.transport->asConsumer();
    ASSERT_NE(consumer, nullptr);
    auto producer = std::make_shared<PushProducer>();
    consumer->registerProducer(producer, true);
    EXPECT_EQ(t->producer, producer);
    EXPECT_EQ(t->streaming, true);
    consumer->unregisterProducer();
    EXPECT_EQ(t->producer, nullptr);
    IPushProducer* input = p.transport->asInputProducer();
    ASSERT_NE(input, nullptr);
    input->pauseProducing();
    EXPECT_EQ(t->producerState, StringTransport::ProducerState::paused);
    input->resumeProducing();
    EXPECT_EQ(t->producerState, StringTransport::ProducerState::producing);

    // stopConsuming: unregister, then lose the connection.
    consumer->registerProducer(producer, false);
    wrapper->stopConsuming();
    EXPECT_EQ(t->producer, nullptr);
    EXPECT_TRUE(t->disconnecting);
    EXPECT_TRUE(p.transport->isDisconnecting());
    loseAll(*wf);
}

TEST(ProtocolWrapper, POL_1_abortTransportOnAWrapperAbortsTheRealTransport) {
    // Twisted's wrappers pass abortConnection() down (__getattr__). abortTransport() on a wrapper (a
    // TimeoutProtocol, a ThrottlingProtocol) closed gracefully, after the queued output.
    auto inner = std::make_shared<RecorderFactory>();
    auto wf = std::make_shared<WrappingFactory>(inner);
    auto t = std::make_shared<StringTransport>(IPv4Address("TCP", "127.0.0.1", 80), kPeer);
    auto wrapper = connectWrapper(wf->buildProtocol(kPeer), t);
    ASSERT_TRUE(wrapper);
    EXPECT_EQ(wrapper->transportBelow(), t.get());
    abortTransport(*inner->at(0)->transport);
    EXPECT_TRUE(t->disconnected);
    loseAll(*wf);
    // And on the fake itself, as Twisted's StringTransport.abortConnection.
    auto bare = std::make_shared<StringTransport>();
    abortTransport(*bare);
    EXPECT_TRUE(bare->disconnected);
}

TEST(ProtocolWrapper, POL_1_aTransportWithoutHalfCloseIsNamed) {
    auto wf = std::make_shared<WrappingFactory>(std::make_shared<RecorderFactory>());
    auto t = std::make_shared<StringTransport>();
    auto wrapper = connectWrapper(wf->buildProtocol(kPeer), t);
    EXPECT_THROW(wrapper->loseWriteConnection(), std::logic_error);
    loseAll(*wf);
}

TEST(ProtocolWrapper, POL_2_makeConnectionRegistersThenConnectsAndLossBreaksTheCycle) {
    auto inner = std::make_shared<RecorderFactory>();
    auto wf = std::make_shared<WrappingFactory>(inner);
    auto built = wf->buildProtocol(kPeer);
    auto wrapper = std::dynamic_pointer_cast<ProtocolWrapper>(built);
    ASSERT_TRUE(wrapper);
    EXPECT_TRUE(wf->protocols().empty());
    auto t = std::make_shared<StringTransport>();
    wrapper->makeConnection(t);
    ASSERT_EQ(wf->protocols().size(), 1u);
    EXPECT_EQ(wf->protocols()[0], wrapper.get());
    auto held = inner->at(0);  // held here until the end
    std::weak_ptr<Recorder> inner0 = held;
    EXPECT_EQ(inner->at(0)->made, 1);

    wrapper->dataReceived(asBytes("hello"));
    EXPECT_EQ(inner->at(0)->received, "hello");

    wrapper->loseConnection();
    EXPECT_TRUE(wrapper->isDisconnecting());
    EXPECT_TRUE(t->disconnecting);

    wrapper->connectionLost(error::connectionDone());
    EXPECT_TRUE(wf->protocols().empty());
    EXPECT_EQ(held->lost, 1);
    EXPECT_EQ(wrapper->wrappedProtocol, nullptr);  // the cycle is broken
    held.reset();
    EXPECT_TRUE(inner0.expired());  // the wrapper no longer holds it: no cycle left
}

TEST(ProtocolWrapper, POL_2_aWrapperDestroyedWithoutLossLeavesTheCount) {
    auto wf = std::make_shared<WrappingFactory>(std::make_shared<RecorderFactory>());
    {
        auto t = std::make_shared<StringTransport>();
        auto wrapper = connectWrapper(wf->buildProtocol(kPeer), t);
        EXPECT_EQ(wf->protocols().size(), 1u);
        wrapper->wrappedProtocol.reset();  // break the cycle as a dying reactor would leave it
        std::static_pointer_cast<RecorderFactory>(wf->wrappedFactory)->built.clear();
    }
    EXPECT_TRUE(wf->protocols().empty());
}

TEST(WrappingFactory, POL_3_theWrappedProtocolsFactoryIsTheWrappedFactory) {
    auto inner = std::make_shared<RecorderFactory>();
    auto wf = std::make_shared<WrappingFactory>(inner);
    auto wrapper = std::dynamic_pointer_cast<ProtocolWrapper>(wf->buildProtocol(kPeer));
    ASSERT_TRUE(wrapper);
    EXPECT_EQ(wrapper->factory, wf);
    EXPECT_EQ(wrapper->wrappedProtocol->factory, inner);
    loseAll(*wf);
}

TEST(WrappingFactory, POL_3_nullFromTheWrappedFactoryRefusesTheConnection) {
    auto inner = std::make_shared<RecorderFactory>();
    inner->refuse = true;
    auto wf = std::make_shared<WrappingFactory>(inner);
    EXPECT_EQ(wf->buildProtocol(kPeer), nullptr);
}

TEST(WrappingFactory, POL_3_startAndStopReachTheWrappedFactoryFirst) {
    auto inner = std::make_shared<RecorderFactory>();
    inner->noisy = false;
    auto wf = std::make_shared<WrappingFactory>(inner);
    wf->noisy = false;
    wf->doStart();
    wf->doStart();
    EXPECT_EQ(inner->numPorts, 2);
    EXPECT_EQ(wf->numPorts, 2);
    wf->doStop();
    wf->doStop();
    EXPECT_EQ(inner->numPorts, 0);
    EXPECT_EQ(wf->numPorts, 0);
}

TEST(WrappingFactory, POL_3_clientCallbacksAreForwarded) {
    auto inner = std::make_shared<RecorderFactory>();
    auto wf = std::make_shared<WrappingFactory>(inner);
    auto connector = std::make_shared<weft::testing::FakeConnector>(NoAddress());
    wf->startedConnecting(connector);
    wf->clientConnectionFailed(connector, Failure(error::ConnectionRefusedError()));
    wf->clientConnectionLost(connector, error::connectionDone());
    EXPECT_EQ(inner->events, (std::vector<std::string>{"started", "failed", "lost"}));
}

TEST(WrappingFactory, POL_3_logPrefixes) {
    auto inner = std::make_shared<RecorderFactory>();
    auto wf = std::make_shared<WrappingFactory>(inner);
    EXPECT_EQ(wf->logPrefix(), "RecorderFactory (WrappingFactory)");
    auto wrapper = std::dynamic_pointer_cast<ProtocolWrapper>(wf->buildProtocol(kPeer));
    EXPECT_EQ(wrapper->logPrefix(), "Recorder (ProtocolWrapper)");

    auto custom = std::make_shared<ProtocolWrapper>(wf, std::make_shared<PrefixedProtocol>());
    EXPECT_EQ(custom->logPrefix(), "custom prefix (ProtocolWrapper)");
    loseAll(*wf);
}

TEST(ProtocolWrapper, POL_2_halfClosePassesThrough) {
    auto wf = std::make_shared<WrappingFactory>(std::make_shared<RecorderFactory>());
    auto hc = std::make_shared<HalfCloseRecorder>();
    auto wrapper = std::make_shared<ProtocolWrapper>(wf, hc);
    auto t = std::make_shared<StringTransport>();
    wrapper->makeConnection(t);
    wrapper->readConnectionLost();
    wrapper->writeConnectionLost();
    EXPECT_EQ(hc->readLost, 1);
    EXPECT_EQ(hc->writeLost, 1);
    EXPECT_FALSE(t->disconnecting);

    // A wrapped protocol that is not half-closeable: the end of input closes.
    auto plain = std::make_shared<Recorder>();
    auto w2 = std::make_shared<ProtocolWrapper>(wf, plain);
    auto t2 = std::make_shared<StringTransport>();
    w2->makeConnection(t2);
    w2->readConnectionLost();
    EXPECT_TRUE(t2->disconnecting);
    loseAll(*wf);
}

// ---- ThrottlingFactory ------------------------------------------------------------------------

TEST(ThrottlingFactory, POL_4_connectionCountLimit) {
    task::Clock clock;
    auto inner = std::make_shared<RecorderFactory>();
    auto tf = std::make_shared<ThrottlingFactory>(inner, clock, 2);
    auto a = tf->buildProtocol(kPeer);
    auto b = tf->buildProtocol(kPeer);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(tf->connectionCount(), 2u);
    EXPECT_EQ(tf->buildProtocol(kPeer), nullptr);  // the limit

    auto t = std::make_shared<StringTransport>();
    a->makeConnection(t);
    a->connectionLost(error::connectionDone());
    EXPECT_EQ(tf->connectionCount(), 1u);
    EXPECT_NE(tf->buildProtocol(kPeer), nullptr);  // room again
    loseAll(*tf);
}

TEST(ThrottlingFactory, POL_5_readLimitPausesEveryConnectionForTheExcess) {
    task::Clock clock;
    auto tf = std::make_shared<ThrottlingFactory>(std::make_shared<RecorderFactory>(), clock,
                                                  ThrottlingFactory::unlimited, 10);
    auto t1 = std::make_shared<StringTransport>();
    auto t2 = std::make_shared<StringTransport>();
    auto p1 = tf->buildProtocol(kPeer);
    auto p2 = tf->buildProtocol(kPeer);
    p1->makeConnection(t1);
    p2->makeConnection(t2);

    p1->dataReceived(asBytes(std::string(20, 'x')));
    p2->dataReceived(asBytes(std::string(10, 'y')));
    EXPECT_EQ(tf->readThisSecond(), 30u);
    clock.advance(1.0);  // 30 read against 10/s: pause both for 30/10 - 1 = 2 s
    EXPECT_EQ(t1->producerState, StringTransport::ProducerState::paused);
    EXPECT_EQ(t2->producerState, StringTransport::ProducerState::paused);
    EXPECT_EQ(tf->readThisSecond(), 0u);
    clock.advance(1.9);
    EXPECT_EQ(t1->producerState, StringTransport::ProducerState::paused);
    clock.advance(0.1);
    EXPECT_EQ(t1->producerState, StringTransport::ProducerState::producing);
    EXPECT_EQ(t2->producerState, StringTransport::ProducerState::producing);

    // Within the limit: no pause.
    p1->dataReceived(asBytes(std::string(10, 'x')));
    clock.advance(1.0);
    EXPECT_EQ(t1->producerState, StringTransport::ProducerState::producing);
    loseAll(*tf);
}

TEST(ThrottlingFactory, POL_5_writeLimitPausesRegisteredProducersOnly) {
    task::Clock clock;
    auto inner = std::make_shared<RecorderFactory>();
    auto tf = std::make_shared<ThrottlingFactory>(inner, clock, ThrottlingFactory::unlimited, std::nullopt, 10);
    auto t1 = std::make_shared<StringTransport>();
    auto t2 = std::make_shared<StringTransport>();
    auto p1 = tf->buildProtocol(kPeer);
    auto p2 = tf->buildProtocol(kPeer);
    p1->makeConnection(t1);
    p2->makeConnection(t2);
    auto producer = std::make_shared<PushProducer>();
    inner->at(0)->transport->asConsumer()->registerProducer(producer, true);

    inner->at(0)->transport->write(std::string_view("0123456789"));
    Bytes seq[] = {asBytes("0123456789"), asBytes("01234")};
    inner->at(1)->transport->writeSequence(seq);  // writeSequence counts too
    EXPECT_EQ(tf->writtenThisSecond(), 25u);
    clock.advance(1.0);
    EXPECT_TRUE(producer->paused);
    EXPECT_EQ(t2->producerState, StringTransport::ProducerState::producing);  // reads are not throttled
    clock.advance(1.5);                                                       // 25/10 - 1
    EXPECT_FALSE(producer->paused);
    loseAll(*tf);
}

TEST(ThrottlingFactory, POL_5_timersStopWithTheLastConnection) {
    task::Clock clock;
    auto tf = std::make_shared<ThrottlingFactory>(std::make_shared<RecorderFactory>(), clock,
                                                  ThrottlingFactory::unlimited, 10, 10);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    auto t = std::make_shared<StringTransport>();
    auto p = tf->buildProtocol(kPeer);  // the first connection starts the checks
    EXPECT_EQ(clock.getDelayedCalls().size(), 2u);
    p->makeConnection(t);
    p->dataReceived(asBytes(std::string(50, 'x')));
    clock.advance(1.0);
    EXPECT_EQ(clock.getDelayedCalls().size(), 3u);  // two checks and one unthrottle
    p->connectionLost(error::connectionDone());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    loseAll(*tf);
}

// ---- LimitTotalConnectionsFactory --------------------------------------------------------------

TEST(LimitTotalConnectionsFactory, POL_6_countingAndLimits) {
    auto f = std::make_shared<LimitTotalConnectionsFactory>();
    f->protocol = [] { return std::make_shared<Recorder>(); };
    // No limit: any number.
    std::vector<std::shared_ptr<Protocol>> ps;
    for (int i = 0; i < 5; ++i) ps.push_back(f->buildProtocol(kPeer));
    EXPECT_EQ(f->connectionCount(), 5u);
    for (auto& p : ps) {
        auto w = std::dynamic_pointer_cast<ProtocolWrapper>(p);
        ASSERT_TRUE(w);  // wrapped
        EXPECT_EQ(w->wrappedProtocol->factory, f);
        w->makeConnection(std::make_shared<StringTransport>());
        w->connectionLost(error::connectionDone());
    }
    EXPECT_EQ(f->connectionCount(), 0u);

    f->connectionLimit = 1;
    auto first = f->buildProtocol(kPeer);
    ASSERT_TRUE(first);
    EXPECT_EQ(f->buildProtocol(kPeer), nullptr);  // no overflow protocol: refused
    EXPECT_EQ(f->connectionCount(), 1u);

    f->overflowProtocol = [] { return std::make_shared<PrefixedProtocol>(); };
    auto overflow = std::dynamic_pointer_cast<ProtocolWrapper>(f->buildProtocol(kPeer));
    ASSERT_TRUE(overflow);
    EXPECT_TRUE(std::dynamic_pointer_cast<PrefixedProtocol>(overflow->wrappedProtocol));
    EXPECT_EQ(f->connectionCount(), 2u);  // overflow connections count too
    overflow->makeConnection(std::make_shared<StringTransport>());
    overflow->connectionLost(error::connectionDone());
    EXPECT_EQ(f->connectionCount(), 1u);
}

// ---- TimeoutFactory / TimeoutProtocol ------------------------------------------------------------

TEST(TimeoutFactory, POL_7_idleConnectionIsClosedAndTrafficRestartsTheCountdown) {
    task::Clock clock;
    auto tf = std::make_shared<TimeoutFactory>(std::make_shared<RecorderFactory>(), clock, 3);
    auto t = std::make_shared<StringTransport>();
    auto p = std::dynamic_pointer_cast<TimeoutProtocol>(tf->buildProtocol(kPeer));
    ASSERT_TRUE(p);
    p->makeConnection(t);
    clock.advance(2);
    p->dataReceived(asBytes("x"));  // received data restarts
    clock.advance(2);
    EXPECT_FALSE(t->disconnecting);
    p->write(asBytes("y"));  // so does write
    clock.advance(2);
    Bytes seq[] = {asBytes("z")};
    p->writeSequence(seq);  // and writeSequence
    clock.advance(2.9);
    EXPECT_FALSE(t->disconnecting);
    clock.advance(0.1);
    EXPECT_TRUE(t->disconnecting);
    loseAll(*tf);
}

TEST(TimeoutFactory, POL_7_connectionLostCancelsTheCountdown) {
    task::Clock clock;
    auto tf = std::make_shared<TimeoutFactory>(std::make_shared<RecorderFactory>(), clock, 3);
    auto p = tf->buildProtocol(kPeer);
    p->makeConnection(std::make_shared<StringTransport>());
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    p->connectionLost(error::connectionDone());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    loseAll(*tf);
}

TEST(TimeoutProtocol, POL_8_setAndCancelTimeout) {
    task::Clock clock;
    auto tf = std::make_shared<TimeoutFactory>(std::make_shared<RecorderFactory>(), clock, 3);
    auto p = std::dynamic_pointer_cast<TimeoutProtocol>(tf->buildProtocol(kPeer));
    auto t = std::make_shared<StringTransport>();
    p->makeConnection(t);
    p->setTimeout(10);  // replaces the running one
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    EXPECT_EQ(p->timeoutPeriod(), 10.0);
    clock.advance(9);
    EXPECT_FALSE(t->disconnecting);
    p->setTimeout(std::nullopt);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    p->cancelTimeout();  // none running: fine
    p->setTimeout(1);
    clock.getDelayedCalls().at(0).cancel();  // cancelled elsewhere
    p->cancelTimeout();                      // still fine
    p->setTimeout(1);
    clock.advance(1);  // it ran
    EXPECT_TRUE(t->disconnecting);
    p->cancelTimeout();  // after it ran: fine
    loseAll(*tf);
}

// ---- TimeoutMixin ---------------------------------------------------------------------------------

namespace {
class TimingOut : public Protocol, public TimeoutMixin {
public:
    explicit TimingOut(IReactorTime& clock) : TimeoutMixin(clock) {}
    TimingOut() = default;
    void timeoutConnection() override {
        ++timedOut;
        TimeoutMixin::timeoutConnection();
    }
    using TimeoutMixin::callLater;
    int timedOut = 0;
};

class OwnClock : public Protocol, public TimeoutMixin {
public:
    task::Clock clock;
    int scheduled = 0;

protected:
    DelayedCall callLater(double delay, Function<void()> f) override {
        ++scheduled;
        return clock.callLater(delay, std::move(f));
    }
};
}  // namespace

TEST(TimeoutMixin, TM_1_setTimeoutReturnsThePreviousAndRestartsOrCancels) {
    task::Clock clock;
    auto p = std::make_shared<TimingOut>(clock);
    EXPECT_EQ(p->setTimeout(5), std::nullopt);
    EXPECT_EQ(p->timeOut(), 5.0);
    clock.advance(4);
    EXPECT_EQ(p->setTimeout(3), 5.0);  // restarts with the new period
    clock.advance(2.9);
    EXPECT_EQ(p->timedOut, 0);
    EXPECT_EQ(p->setTimeout(std::nullopt), 3.0);  // cancels
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(10);
    EXPECT_EQ(p->timedOut, 0);
    EXPECT_EQ(p->setTimeout(std::nullopt), std::nullopt);  // nothing pending: fine
}

TEST(TimeoutMixin, TM_1_aNaNOrNegativePeriodIsRefusedAndChangesNothing) {
    // TM-1: a period is a number of seconds. NaN was stored before the countdown refused it, so timeOut()
    // said NaN and every later resetTimeout() (from each dataReceived) threw; it is refused up front now.
    task::Clock clock;
    auto p = std::make_shared<TimingOut>(clock);
    p->setTimeout(5);
    for (double bad : {std::nan(""), -1.0}) {
        EXPECT_THROW(p->setTimeout(bad), std::invalid_argument);
        EXPECT_EQ(p->timeOut(), 5.0);
    }
    EXPECT_NO_THROW(p->resetTimeout());
    clock.advance(5);
    EXPECT_EQ(p->timedOut, 1);  // the countdown it had still runs
}

TEST(TimeoutMixin, TM_2_expiryForgetsTheCountdownAndLosesTheConnection) {
    task::Clock clock;
    auto p = std::make_shared<TimingOut>(clock);
    auto t = std::make_shared<StringTransport>();
    p->makeConnection(t);
    p->setTimeout(2);
    clock.advance(1.5);
    p->resetTimeout();
    clock.advance(1.5);
    EXPECT_EQ(p->timedOut, 0);
    clock.advance(0.5);
    EXPECT_EQ(p->timedOut, 1);
    EXPECT_TRUE(t->disconnecting);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    p->resetTimeout();  // none pending: nothing
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    p->setTimeout(1);  // starts a new one
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
}

TEST(TimeoutMixin, TM_2_noTimeoutMeansNoCountdown) {
    task::Clock clock;
    auto p = std::make_shared<TimingOut>(clock);
    p->resetTimeout();
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(1e6);
    EXPECT_EQ(p->timedOut, 0);
}

TEST(TimeoutMixin, TM_3_callLaterCanBeReplaced) {
    auto p = std::make_shared<OwnClock>();
    p->setTimeout(1);
    EXPECT_EQ(p->scheduled, 1);
    EXPECT_EQ(p->clock.getDelayedCalls().size(), 1u);
    auto bare = std::make_shared<TimingOut>();
    EXPECT_THROW(bare->setTimeout(1), std::logic_error);  // no clock, no override: said clearly
}

TEST(TimeoutMixin, TM_2_destroyingTheProtocolCancelsItsCountdown) {
    task::Clock clock;
    {
        auto p = std::make_shared<TimingOut>(clock);
        p->setTimeout(1);
    }
    EXPECT_TRUE(clock.getDelayedCalls().empty());
    clock.advance(2);  // would be a use after free if it were still there
}

// ---- over real TCP, on every backend ---------------------------------------------------------------

namespace {

class PolicyTcpTest : public ReactorTest {
protected:
    void TearDown() override {
        stopPort();
        ReactorTest::TearDown();
    }
    // Stops the port and waits until it has closed.
    void stopPort() {
        if (!port) return;
        EXPECT_TRUE(stopListeningAndWait(*port));
        port.reset();
    }
    std::shared_ptr<tcp::Port> port;
};

// A server protocol with hooks, recording what it saw.
class Hooked : public HalfCloseRecorder {
public:
    void connectionMade() override {
        Recorder::connectionMade();
        if (onMade) onMade(*this);
    }
    void dataReceived(Bytes data) override {
        Recorder::dataReceived(data);
        if (onData) onData(*this);
    }
    void readConnectionLost() override {
        HalfCloseRecorder::readConnectionLost();
        if (onReadLost) onReadLost(*this);
    }
    void connectionLost(const Failure& reason) override {
        Recorder::connectionLost(reason);
        if (onLost) onLost(*this);
    }
    std::function<void(Hooked&)> onMade, onData, onReadLost, onLost;
};

class HookedFactory : public ServerFactory {
public:
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
        auto p = std::make_shared<Hooked>();
        p->factory = shared_from_this();
        if (setup) setup(*p);
        built.push_back(p);
        if (keep) kept.push_back(p);
        return p;
    }
    std::function<void(Hooked&)> setup;
    std::vector<std::weak_ptr<Hooked>> built;
    bool keep = false;  // hold each protocol (kept) so a test can look at it after its loss
    std::vector<std::shared_ptr<Hooked>> kept;
};

int connectTo(std::uint16_t number) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(number);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

std::string readAll(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

}  // namespace

class IdleSession : public Protocol, public TimeoutMixin {
public:
    void connectionMade() override { setTimeout(0.05); }  // no clock given: Twisted's way of writing it
};

TEST_P(PolicyTcpTest, TM_3_withoutAClockTheCountdownRunsOnTheTransportsReactor) {
    // TM-3: a TimeoutMixin given no clock times out on the reactor its connection runs on, directly or under a
    // wrapper (setTimeout threw "no clock", which the accept logged, and the connection stayed open for good).
    for (bool wrapped : {false, true}) {
        SCOPED_TRACE(wrapped ? "under a WrappingFactory" : "directly");
        std::shared_ptr<Factory> f = Factory::forProtocol<IdleSession, ServerFactory>();
        f->noisy = false;
        if (wrapped) {
            f = std::make_shared<WrappingFactory>(f);
            f->noisy = false;
        }
        port = reactor().listenTCP(0, f, 50, "127.0.0.1");
        int fd = connectTo(portNumber(*port));
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::fcntl(fd, F_SETFL, O_NONBLOCK), 0);
        char c;
        EXPECT_TRUE(spinUntil([&] { return ::recv(fd, &c, 1, 0) == 0; }, 5)) << "the idle connection was not closed";
        ::close(fd);
        stopPort();
    }
}

TEST_P(PolicyTcpTest, POL_1_halfCloseThroughAWrapperOverTcp) {
    auto inner = std::make_shared<HookedFactory>();
    inner->noisy = false;
    inner->keep = true;
    // On the end of input, answer and then close our half.
    inner->setup = [](Hooked& p) {
        p.onReadLost = [](Hooked& self) {
            self.transport->write("got " + self.received);
            auto* hc = dynamic_cast<IHalfCloseableTransport*>(self.transport.get());
            ASSERT_NE(hc, nullptr);
            hc->loseWriteConnection();
        };
    };
    auto wf = std::make_shared<WrappingFactory>(inner);
    wf->noisy = false;
    port = reactor().listenTCP(0, wf, 50, "127.0.0.1");
    int fd = connectTo(portNumber(*port));
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, "ping", 4, 0), 4);
    ::shutdown(fd, SHUT_WR);
    ASSERT_TRUE(spinUntil([&] {
        auto p = inner->built.empty() ? nullptr : inner->built[0].lock();
        return p && p->writeLost == 1;
    })) << (inner->built.empty()        ? -1
            : inner->built[0].expired() ? -2
                                        : inner->built[0].lock()->readLost);
    auto p = inner->built[0].lock();
    EXPECT_EQ(p->readLost, 1);
    EXPECT_EQ(readAll(fd), "got ping");
    ASSERT_TRUE(spinUntil([&] { return p->lost == 1; }));
    EXPECT_TRUE(p->lostReason->check<error::ConnectionDone>());
    ::close(fd);
    inner->kept.clear();
    EXPECT_TRUE(spinUntil([&] { return wf->protocols().empty(); }));
}

// Every transport call from inside every callback of a wrapped protocol, and
// every reference dropped there: nothing dangles (run under ASan in CI).
TEST_P(PolicyTcpTest, POL_OWN_reentrantCallsInsideWrappedCallbacks) {
    enum class Act { lose, writeThenLose, abortViaReal, stopConsuming, dropFactory };
    for (Act act : {Act::lose, Act::writeThenLose, Act::abortViaReal, Act::stopConsuming, Act::dropFactory}) {
        for (int where = 0; where < 3; ++where) {  // connectionMade, dataReceived, readConnectionLost
            SCOPED_TRACE(::testing::Message() << "act " << static_cast<int>(act) << " in callback " << where);
            auto inner = std::make_shared<HookedFactory>();
            inner->noisy = false;
            auto wf = std::make_shared<TimeoutFactory>(inner, reactor(), 30);
            wf->noisy = false;
            std::shared_ptr<Factory> held = wf;
            bool portClosed = act != Act::dropFactory;
            auto run = [&](Hooked& p) {
                switch (act) {
                    case Act::lose: p.transport->loseConnection(); break;
                    case Act::writeThenLose:
                        p.transport->write(std::string_view("bye"));
                        p.transport->loseConnection();
                        p.transport->write(std::string_view("ignored?"));
                        break;
                    case Act::abortViaReal: {
                        auto& wrapper = dynamic_cast<ProtocolWrapper&>(*p.transport);
                        dynamic_cast<ITCPTransport&>(*wrapper.transport).abortConnection();
                        break;
                    }
                    case Act::stopConsuming: dynamic_cast<ProtocolWrapper&>(*p.transport).stopConsuming(); break;
                    case Act::dropFactory:
                        held.reset();
                        if (port) port->stopListening().addBoth([&portClosed](Result<void>) { portClosed = true; });
                        port.reset();
                        p.transport->loseConnection();
                        break;
                }
            };
            inner->setup = [&](Hooked& p) {
                if (where == 0) p.onMade = run;
                if (where == 1) p.onData = run;
                if (where == 2) p.onReadLost = run;
            };
            port = reactor().listenTCP(0, held, 50, "127.0.0.1");
            int fd = connectTo(portNumber(*port));
            ASSERT_GE(fd, 0);
            ::send(fd, "data", 4, MSG_NOSIGNAL);
            ::shutdown(fd, SHUT_WR);
            wf.reset();
            ASSERT_TRUE(spinUntil([&] {
                auto p = inner->built.empty() ? nullptr : inner->built[0].lock();
                return !inner->built.empty() && (!p || p->lost == 1);
            }));
            readAll(fd);
            ::close(fd);
            stopPort();
            EXPECT_TRUE(spinUntil([&] { return portClosed; }, 5));
            held.reset();
            spinUntil([&] { return inner->built[0].expired(); }, 2);
            EXPECT_TRUE(inner->built[0].expired());            // nothing leaked: the cycle was broken
            EXPECT_TRUE(reactor().getDelayedCalls().empty());  // the idle countdown went with the connection
        }
    }
}

TEST_P(PolicyTcpTest, POL_7_anIdleTcpConnectionIsClosedOnTheReactorsClock) {
    auto inner = std::make_shared<HookedFactory>();
    inner->noisy = false;
    auto tf = std::make_shared<TimeoutFactory>(inner, reactor(), 0.05);
    tf->noisy = false;
    port = reactor().listenTCP(0, tf, 50, "127.0.0.1");
    int fd = connectTo(portNumber(*port));
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(spinUntil([&] {
        auto p = inner->built.empty() ? nullptr : inner->built[0].lock();
        return !inner->built.empty() && (!p || p->lost == 1);
    }));
    EXPECT_EQ(readAll(fd), "");  // closed by the server
    ::close(fd);
}

TEST_P(PolicyTcpTest, POL_7_theTimeoutClosesAConnectionWhoseProtocolIsItsTransportsProducer) {
    // An echo-like protocol makes its transport the producer of what it writes back and never
    // unregisters it while idle: the timeout's close must not wait for that (FD-13), and the
    // producer is stopped with the connection.
    auto inner = std::make_shared<HookedFactory>();
    inner->noisy = false;
    inner->setup = [](Hooked& h) {
        h.onMade = [](Hooked& self) {
            auto t = self.transport;
            t->asConsumer()->registerProducer(std::shared_ptr<IPushProducer>(t, t->asInputProducer()), true);
        };
    };
    auto tf = std::make_shared<TimeoutFactory>(inner, reactor(), 0.05);
    tf->noisy = false;
    port = reactor().listenTCP(0, tf, 50, "127.0.0.1");
    int fd = connectTo(portNumber(*port));
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(spinUntil(
        [&] {
            auto p = inner->built.empty() ? nullptr : inner->built[0].lock();
            return !inner->built.empty() && (!p || p->lost == 1);
        },
        10))
        << "the idle connection was not closed";
    EXPECT_EQ(readAll(fd), "");  // closed by the server, not reset
    ::close(fd);
}

TEST_P(PolicyTcpTest, POL_5_readThrottlingOnTheReactorPausesAndResumesReading) {
    auto inner = std::make_shared<HookedFactory>();
    inner->noisy = false;
    inner->setup = [](Hooked& p) { p.onReadLost = [](Hooked& self) { self.transport->loseConnection(); }; };
    auto tf = std::make_shared<ThrottlingFactory>(inner, reactor(), ThrottlingFactory::unlimited, 1000);
    tf->noisy = false;
    port = reactor().listenTCP(0, tf, 50, "127.0.0.1");
    int fd = connectTo(portNumber(*port));
    ASSERT_GE(fd, 0);
    std::string chunk(1500, 'x');
    ASSERT_EQ(::send(fd, chunk.data(), chunk.size(), 0), static_cast<ssize_t>(chunk.size()));
    ASSERT_TRUE(spinUntil([&] {
        auto p = inner->built.empty() ? nullptr : inner->built[0].lock();
        return p && p->received.size() == chunk.size();
    }));
    auto p = inner->built[0].lock();
    auto& wrapper = dynamic_cast<ProtocolWrapper&>(*p->transport);
    auto* real = dynamic_cast<FileDescriptor*>(wrapper.transport.get());
    ASSERT_NE(real, nullptr);
    // Within about a second the check sees 1 500 bytes against 1 000/s and pauses for 0.5 s.
    ASSERT_TRUE(spinUntil([&] { return !reactor().isReading(real); }, 5));
    ASSERT_TRUE(spinUntil([&] { return reactor().isReading(real); }, 5));
    ::close(fd);
    ASSERT_TRUE(spinUntil([&] { return tf->connectionCount() == 0; }));
    EXPECT_TRUE(reactor().getDelayedCalls().empty());  // every timer stopped with the last connection
}

INSTANTIATE_TEST_SUITE_P(Backends, PolicyTcpTest, allBackends(), backendParamName);
