// The testing helpers (testing.md TEST-1 … TEST-30): StringTransport,
// MemoryReactor, AccumulatingProtocol, NonStreamingProducer, the in-memory
// loopback and iosim. Everything runs on a task::Clock; no sockets, no sleeps.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <weft/internet/defer.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/iosim.hpp>
#include <weft/internet/loopback.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/task.hpp>
#include <weft/internet/testing.hpp>
#include <weft/log.hpp>
#include <weft/testing/defer.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::task::Clock;
using weft::test::LeakCheckedTest;
using namespace weft::testing;

namespace {

class TestingTest : public LeakCheckedTest {};

std::string str(const std::vector<std::byte>& v) { return {reinterpret_cast<const char*>(v.data()), v.size()}; }
std::string str(Bytes v) { return {reinterpret_cast<const char*>(v.data()), v.size()}; }

// A pull producer counting how often it was asked for data.
struct CountingPull : IPullProducer {
    int resumed = 0, stopped = 0;
    void resumeProducing() override { ++resumed; }
    void stopProducing() override { ++stopped; }
};

// A push producer recording the calls it got.
struct RecordingPush : IPushProducer {
    std::vector<std::string> calls;
    void pauseProducing() override { calls.push_back("pause"); }
    void resumeProducing() override { calls.push_back("resume"); }
    void stopProducing() override { calls.push_back("stop"); }
};

// Records what happens to it; counts nesting to detect re-entrancy.
struct Recorder : Protocol {
    std::string received;
    std::vector<std::string> chunks;
    std::vector<Failure> lost;
    std::vector<std::string>* journal = nullptr;
    std::string name;
    void connectionMade() override {
        if (journal) journal->push_back(name + ".connectionMade");
    }
    void dataReceived(Bytes data) override {
        received += str(data);
        chunks.push_back(str(data));
    }
    void connectionLost(const Failure& reason) override {
        lost.push_back(reason);
        if (journal) journal->push_back(name + ".connectionLost");
    }
};

// A factory counting the ClientFactory calls it gets.
struct CountingClientFactory : ClientFactory {
    int started = 0, failed = 0, lostCount = 0;
    std::shared_ptr<IConnector> startedWith;
    void startedConnecting(const std::shared_ptr<IConnector>& c) override {
        ++started;
        startedWith = c;
    }
    void clientConnectionFailed(const std::shared_ptr<IConnector>&, const Failure&) override { ++failed; }
    void clientConnectionLost(const std::shared_ptr<IConnector>&, const Failure&) override { ++lostCount; }
};

}  // namespace

// ---- StringTransport ---------------------------------------------------------------------

TEST_F(TestingTest, TEST_1_valueHoldsEverythingWrittenSinceLastClear) {
    // TEST-1: value() returns every byte written since construction or clear(); writeSequence records the join.
    StringTransport t;
    EXPECT_EQ(t.value(), "");
    t.write("abc");
    Bytes seq[] = {asBytes("de"), asBytes("f")};
    t.writeSequence(seq);
    EXPECT_EQ(t.value(), "abcdef");
    t.clear();
    EXPECT_EQ(t.value(), "");
    t.write(asBytes("x"));
    EXPECT_EQ(t.value(), "x");
}

TEST_F(TestingTest, TEST_1_providesTransportConsumerAndPushProducer) {
    // TEST-1: StringTransport provides ITransport, IConsumer and IPushProducer.
    static_assert(std::is_base_of_v<ITransport, StringTransport>);
    static_assert(std::is_base_of_v<IConsumer, StringTransport>);
    static_assert(std::is_base_of_v<IPushProducer, StringTransport>);
    auto t = std::make_shared<StringTransport>();
    std::shared_ptr<ITransport> asTransport = t;
    std::shared_ptr<IConsumer> asConsumer = t;
    asTransport->write("tr");
    asConsumer->write(asBytes("co"));
    EXPECT_EQ(t->value(), "trco");
}

TEST_F(TestingTest, TEST_2_loseConnectionOnlySetsDisconnecting) {
    // TEST-2: loseConnection() only sets disconnecting; connected stays true and later writes are recorded.
    auto proto = std::make_shared<Recorder>();
    auto t = std::make_shared<StringTransport>();
    proto->makeConnection(t);
    t->loseConnection();
    EXPECT_TRUE(t->disconnecting);
    EXPECT_FALSE(t->disconnected);
    EXPECT_TRUE(t->connected);
    EXPECT_TRUE(proto->lost.empty());
    t->write("late");
    EXPECT_EQ(t->value(), "late");
}

TEST_F(TestingTest, TEST_2_abortConnectionSetsDisconnectedAndDisconnecting) {
    // TEST-2: abortConnection() sets disconnected and disconnecting; connected stays true; writes still recorded.
    StringTransport t;
    t.abortConnection();
    EXPECT_TRUE(t.disconnected);
    EXPECT_TRUE(t.disconnecting);
    EXPECT_TRUE(t.connected);
    t.write("after");
    EXPECT_EQ(t.value(), "after");
}

TEST_F(TestingTest, TEST_2_codeUnderTestSeesTheStateThroughITransport) {
    // TEST-2: a protocol sees the double's state through ITransport, as it would a real transport's: after
    // loseConnection() it is disconnecting; after abortConnection() it is no longer connected.
    StringTransport t;
    const ITransport& seen = t;
    EXPECT_TRUE(seen.isConnected());
    EXPECT_FALSE(seen.isDisconnecting());
    t.loseConnection();
    EXPECT_TRUE(seen.isDisconnecting());
    EXPECT_TRUE(seen.isConnected());
    t.abortConnection();
    EXPECT_FALSE(seen.isConnected());
    // The other in-memory transports answer the same way.
    auto [client, server, pump] = iosim::connectedServerAndClient<Recorder, Recorder>();
    EXPECT_FALSE(client->transport->isDisconnecting());
    client->transport->loseConnection();
    EXPECT_TRUE(client->transport->isDisconnecting());
    EXPECT_TRUE(client->transport->isConnected());
    pump.flush();
    EXPECT_FALSE(client->transport->isConnected());
    Clock clock;
    auto a = std::make_shared<Recorder>();
    auto b = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(a, b, clock);
    auto seenByA = a->transport;
    EXPECT_FALSE(seenByA->isDisconnecting());
    seenByA->loseConnection();
    EXPECT_TRUE(seenByA->isDisconnecting());
    clock.advance(0);
    successResultOf(d);
    EXPECT_FALSE(seenByA->isConnected());
}

TEST_F(TestingTest, TEST_3_specifiedAddressesAreReturned) {
    // TEST-3: getHost()/getPeer() return the addresses given to the constructor.
    StringTransport t(IPv4Address("TCP", "127.0.0.1", 80), UNIXAddress("/tmp/peer"));
    EXPECT_EQ(std::get<IPv4Address>(t.getHost()), IPv4Address("TCP", "127.0.0.1", 80));
    EXPECT_EQ(std::get<UNIXAddress>(t.getPeer()), UNIXAddress("/tmp/peer"));
}

TEST_F(TestingTest, TEST_3_defaultAddresses) {
    // TEST-3: without addresses, host is 10.0.0.1:12345 and peer 192.168.1.1:54321 (IPv4, TCP).
    StringTransport t;
    EXPECT_EQ(std::get<IPv4Address>(t.getHost()), IPv4Address("TCP", "10.0.0.1", 12345));
    EXPECT_EQ(std::get<IPv4Address>(t.getPeer()), IPv4Address("TCP", "192.168.1.1", 54321));
}

TEST_F(TestingTest, TEST_4_registerProducerRecordsWithoutResuming) {
    // TEST-4: registerProducer records producer and streaming and never resumes a pull producer.
    StringTransport t;
    auto p = std::make_shared<CountingPull>();
    t.registerProducer(p, false);
    EXPECT_EQ(t.producer, p);
    EXPECT_EQ(t.streaming, false);
    EXPECT_EQ(p->resumed, 0);
}

TEST_F(TestingTest, TEST_4_secondProducerThrowsAndFirstIsKept) {
    // TEST-4: registering a second producer throws a runtime_error and keeps the first.
    StringTransport t;
    auto first = std::make_shared<RecordingPush>();
    auto second = std::make_shared<CountingPull>();
    t.registerProducer(first, true);
    EXPECT_THROW(t.registerProducer(second, false), std::runtime_error);
    EXPECT_EQ(t.producer, first);
    EXPECT_EQ(t.streaming, true);
}

TEST_F(TestingTest, TEST_4_unregisterClearsAndAllowsANewProducer) {
    // TEST-4: unregisterProducer() clears producer and streaming; a new producer may then be registered.
    StringTransport t;
    t.registerProducer(std::make_shared<RecordingPush>(), true);
    t.unregisterProducer();
    EXPECT_EQ(t.producer, nullptr);
    EXPECT_FALSE(t.streaming.has_value());
    auto p = std::make_shared<CountingPull>();
    t.registerProducer(p, false);
    EXPECT_EQ(t.producer, p);
}

TEST_F(TestingTest, TEST_4_unregisterWithoutProducerThrows) {
    // TEST-4: unregisterProducer() with nothing registered throws.
    StringTransport t;
    EXPECT_THROW(t.unregisterProducer(), std::runtime_error);
}

TEST_F(TestingTest, TEST_5_producerStateTransitions) {
    // TEST-5: producing initially, paused after pause, producing after resume, stopped after stop.
    StringTransport t;
    EXPECT_EQ(t.producerState, StringTransport::ProducerState::producing);
    t.pauseProducing();
    EXPECT_EQ(t.producerState, StringTransport::ProducerState::paused);
    t.resumeProducing();
    EXPECT_EQ(t.producerState, StringTransport::ProducerState::producing);
    t.stopProducing();
    EXPECT_EQ(t.producerState, StringTransport::ProducerState::stopped);
    t.stopProducing();  // always allowed
    EXPECT_EQ(t.producerState, StringTransport::ProducerState::stopped);
}

TEST_F(TestingTest, TEST_5_stoppedTransportCannotPauseOrResume) {
    // TEST-5: pausing or resuming after stopProducing() throws.
    StringTransport t;
    t.stopProducing();
    EXPECT_THROW(t.pauseProducing(), std::runtime_error);
    EXPECT_THROW(t.resumeProducing(), std::runtime_error);
    EXPECT_EQ(t.producerState, StringTransport::ProducerState::stopped);
}

TEST_F(TestingTest, TEST_5_disconnectingTransportCannotPauseOrResumeUnlessLenient) {
    // TEST-5: after loseConnection() pause/resume throw, unless built with lenient=true.
    StringTransport strict;
    strict.loseConnection();
    EXPECT_THROW(strict.pauseProducing(), std::runtime_error);
    EXPECT_THROW(strict.resumeProducing(), std::runtime_error);

    StringTransport lenient(std::nullopt, std::nullopt, true);
    lenient.loseConnection();
    lenient.pauseProducing();
    EXPECT_EQ(lenient.producerState, StringTransport::ProducerState::paused);
    lenient.resumeProducing();
    EXPECT_EQ(lenient.producerState, StringTransport::ProducerState::producing);
}

TEST_F(TestingTest, TEST_6_loseConnectionReportsConnectionDoneOnce) {
    // TEST-6: the first loseConnection() clears connected and calls connectionLost(ConnectionDone("Bye.")) synchronously; later calls do nothing.
    auto proto = std::make_shared<Recorder>();
    auto t = std::make_shared<StringTransportWithDisconnection>();
    t->protocol = proto;
    proto->makeConnection(t);
    t->loseConnection();
    ASSERT_EQ(proto->lost.size(), 1u);
    EXPECT_FALSE(t->connected);
    ASSERT_TRUE(proto->lost[0].check<error::ConnectionDone>());
    EXPECT_NE(proto->lost[0].getErrorMessage().find("Bye."), std::string::npos);
    t->loseConnection();
    t->abortConnection();
    EXPECT_EQ(proto->lost.size(), 1u);
}

TEST_F(TestingTest, TEST_6_abortConnectionDeliversConnectionAborted) {
    // TEST-6 (Better than Twisted #8161): abortConnection() takes the same path but delivers ConnectionAborted.
    auto proto = std::make_shared<Recorder>();
    auto t = std::make_shared<StringTransportWithDisconnection>();
    t->protocol = proto;
    proto->makeConnection(t);
    t->abortConnection();
    ASSERT_EQ(proto->lost.size(), 1u);
    EXPECT_TRUE(proto->lost[0].check<error::ConnectionAborted>());
    EXPECT_FALSE(t->connected);
    EXPECT_TRUE(t->disconnected);
}

TEST_F(TestingTest, TEST_6_protocolMustBeSet) {
    // TEST-6: the transport needs its protocol set; closing without one is a caller error.
    StringTransportWithDisconnection t;
    EXPECT_THROW(t.loseConnection(), std::logic_error);
}

// ---- protocol and producer stand-ins ----------------------------------------------------------

TEST_F(TestingTest, TEST_7_accumulatingProtocolRecordsItsLife) {
    // TEST-7: made in connectionMade, data accumulates, connectionLost sets closed/closedReason and fires closedDeferred once.
    auto p = std::make_shared<AccumulatingProtocol>();
    Deferred<void> closed;
    p->closedDeferred = closed;
    p->makeConnection(std::make_shared<StringTransport>());
    EXPECT_TRUE(p->made);
    p->dataReceived(asBytes("ab"));
    p->dataReceived(asBytes("cd"));
    EXPECT_EQ(p->data, "abcd");
    EXPECT_FALSE(closed.called());
    p->connectionLost(Failure(error::ConnectionDone()));
    EXPECT_TRUE(p->closed);
    ASSERT_TRUE(p->closedReason);
    EXPECT_TRUE(p->closedReason->check<error::ConnectionDone>());
    EXPECT_TRUE(closed.called());
    EXPECT_FALSE(p->closedDeferred.has_value());
    p->connectionLost(Failure(error::ConnectionDone()));  // no second firing (would throw AlreadyCalled)
}

TEST_F(TestingTest, TEST_7_connectionMadeFiresFactoryDeferredOnce) {
    // TEST-7: connectionMade fires the factory's protocolConnectionMade Deferred with the protocol, then forgets it.
    auto factory = std::make_shared<AccumulatingServerFactory>();
    Deferred<std::shared_ptr<AccumulatingProtocol>> made;
    factory->protocolConnectionMade = made;
    auto first =
        std::static_pointer_cast<AccumulatingProtocol>(factory->buildProtocol(IPv4Address("TCP", "1.2.3.4", 5)));
    first->makeConnection(std::make_shared<StringTransport>());
    EXPECT_EQ(successResultOf(made), first);
    EXPECT_FALSE(factory->protocolConnectionMade.has_value());
    auto second = factory->buildProtocol(IPv4Address("TCP", "1.2.3.4", 6));
    second->makeConnection(std::make_shared<StringTransport>());  // nothing to fire, no throw
    EXPECT_TRUE(std::static_pointer_cast<AccumulatingProtocol>(second)->made);
}

TEST_F(TestingTest, TEST_8_producesOnlyTenTimes) {
    // TEST-8: each resume writes the next counter; after the tenth it unregisters, forgets the consumer and fires result.
    auto consumer = std::make_shared<StringTransport>();
    auto producer = std::make_shared<NonStreamingProducer>(consumer);
    consumer->registerProducer(producer, false);
    int rounds = 0;
    while (consumer->producer && rounds < 100) {
        producer->resumeProducing();
        ++rounds;
    }
    EXPECT_EQ(rounds, 10);
    EXPECT_EQ(consumer->value(), "0123456789");
    EXPECT_TRUE(producer->result.called());
    successResultOf(producer->result);
    EXPECT_THROW(producer->resumeProducing(), std::runtime_error);
    EXPECT_EQ(consumer->value(), "0123456789");
}

TEST_F(TestingTest, TEST_8_cannotPauseAndStopFiresResult) {
    // TEST-8: pauseProducing() always throws; stopProducing() sets stopped and fires result.
    auto consumer = std::make_shared<StringTransport>();
    auto producer = std::make_shared<NonStreamingProducer>(consumer);
    EXPECT_THROW(producer->pauseProducing(), std::runtime_error);
    producer->resumeProducing();
    assertNoResult(producer->result);
    producer->stopProducing();
    EXPECT_TRUE(producer->stopped);
    successResultOf(producer->result);
    EXPECT_THROW(producer->resumeProducing(), std::runtime_error);
}

TEST_F(TestingTest, TEST_9_waitUntilAllDisconnectedPollsEvery10ms) {
    // TEST-9: the Deferred fires once no protocol's transport is connected, checking every 10 ms on the given clock.
    Clock clock;
    auto a = std::make_shared<Recorder>();
    auto b = std::make_shared<Recorder>();
    auto ta = std::make_shared<StringTransport>();
    auto tb = std::make_shared<StringTransport>();
    a->makeConnection(ta);
    b->makeConnection(tb);
    auto d = waitUntilAllDisconnected(clock, {a, b});
    assertNoResult(d);
    ta->connected = false;
    clock.advance(0.01);
    assertNoResult(d);
    tb->connected = false;
    clock.advance(0.005);
    assertNoResult(d);  // not checked yet
    clock.advance(0.005);
    successResultOf(d);
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(TestingTest, TEST_9_alreadyDisconnectedFiresAtOnce) {
    // TEST-9: the first check happens immediately.
    Clock clock;
    auto a = std::make_shared<Recorder>();
    auto t = std::make_shared<StringTransport>();
    t->connected = false;
    a->makeConnection(t);
    successResultOf(waitUntilAllDisconnected(clock, {a}));
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(TestingTest, TEST_10_eventLoggingObserverRecordsInOrder) {
    // TEST-10: the observer records every event in order as an indexable, iterable sequence.
    auto obs = EventLoggingObserver::createWithCleanup();
    log::info("pfx", "first {}", 1);
    log::warn("pfx", "second");
    ASSERT_EQ(obs->size(), 2u);
    EXPECT_EQ((*obs)[0].message, "first 1");
    EXPECT_EQ((*obs)[0].prefix, "pfx");
    EXPECT_EQ((*obs)[1].level, log::Level::warn);
    std::vector<std::string> seen;
    for (const auto& e : *obs) seen.push_back(e.message);
    EXPECT_EQ(seen, (std::vector<std::string>{"first 1", "second"}));
    EXPECT_THROW((void)(*obs)[2], std::out_of_range);
    logs.flush(log::Level::warn);
}

TEST_F(TestingTest, TEST_10_createdWithCleanupUnregistersWhenDestroyed) {
    // TEST-10: created "with cleanup", the observer stops observing when it goes away at the end of the test.
    log::Observer copy;
    {
        auto obs = EventLoggingObserver::createWithCleanup();
        copy = obs->observer();
        log::info("", "seen");
        EXPECT_EQ(obs->size(), 1u);
    }
    log::info("", "after the end");  // must not touch the destroyed observer (ASan would report it)
    copy(log::Event{log::Level::info, "", "direct", nullptr});  // a stale copy records nothing and is safe
    EventLoggingObserver manual;
    manual(log::Event{log::Level::info, "p", "m", nullptr});
    EXPECT_EQ(manual.size(), 1u);
}

// ---- MemoryReactor ---------------------------------------------------------------------------

TEST_F(TestingTest, TEST_11_listenTCPRecordsAndReturnsFakePort) {
    // TEST-11: listenTCP appends (port, factory, backlog, interface) and returns a port at 0.0.0.0:port, or the IPv6 interface.
    MemoryReactor r;
    auto f = Factory::forProtocol<Recorder>();
    auto port = r.listenTCP(8080, f, 17, "127.0.0.1");
    ASSERT_EQ(r.tcpServers.size(), 1u);
    EXPECT_EQ(r.tcpServers[0].port, 8080);
    EXPECT_EQ(r.tcpServers[0].factory, f);
    EXPECT_EQ(r.tcpServers[0].backlog, 17);
    EXPECT_EQ(r.tcpServers[0].interface, "127.0.0.1");
    EXPECT_EQ(std::get<IPv4Address>(port->getHost()), IPv4Address("TCP", "0.0.0.0", 8080));
    auto port6 = r.listenTCP(9090, f, 50, "::1");
    EXPECT_EQ(std::get<IPv6Address>(port6->getHost()), IPv6Address("TCP", "::1", 9090));
    auto dflt = r.listenTCP(1, f);
    EXPECT_EQ(r.tcpServers[2].backlog, 50);
    EXPECT_EQ(r.tcpServers[2].interface, "");
    dflt->startListening();
    successResultOf(dflt->stopListening());
    EXPECT_EQ(f->numPorts, 0);  // nothing was started
}

TEST_F(TestingTest, TEST_11_listenSSLAndUNIXRecord) {
    // TEST-11: listenSSL and listenUNIX record to sslServers/unixServers; UNIX ports report UNIXAddress(path).
    MemoryReactor r;
    auto f = Factory::forProtocol<Recorder>();
    auto ctx = std::make_shared<int>(7);
    auto ssl = r.listenSSL(443, f, ctx, 10, "10.1.1.1");
    ASSERT_EQ(r.sslServers.size(), 1u);
    EXPECT_EQ(r.sslServers[0].contextFactory, ctx);
    EXPECT_EQ(r.sslServers[0].interface, "10.1.1.1");
    EXPECT_EQ(std::get<IPv4Address>(ssl->getHost()), IPv4Address("TCP", "0.0.0.0", 443));
    auto ux = r.listenUNIX("/tmp/sock", f, 5, 0600, true);
    ASSERT_EQ(r.unixServers.size(), 1u);
    EXPECT_EQ(r.unixServers[0].address, "/tmp/sock");
    EXPECT_EQ(r.unixServers[0].mode, 0600);
    EXPECT_TRUE(r.unixServers[0].wantPID);
    EXPECT_EQ(std::get<UNIXAddress>(ux->getHost()), UNIXAddress("/tmp/sock"));
}

TEST_F(TestingTest, TEST_12_connectTCPRecordsAndCallsStartedConnecting) {
    // TEST-12: connectTCP records its five arguments, calls startedConnecting(connector) before returning and never connects.
    MemoryReactor r;
    auto f = std::make_shared<CountingClientFactory>();
    auto c = r.connectTCP("example.com", 80, f, 12.5, BindAddress{"10.0.0.2", 0});
    ASSERT_EQ(r.tcpClients.size(), 1u);
    EXPECT_EQ(r.tcpClients[0].host, "example.com");
    EXPECT_EQ(r.tcpClients[0].port, 80);
    EXPECT_EQ(r.tcpClients[0].factory, f);
    EXPECT_EQ(r.tcpClients[0].timeout, 12.5);
    EXPECT_EQ(r.tcpClients[0].bindAddress, (BindAddress{"10.0.0.2", 0}));
    EXPECT_EQ(f->started, 1);
    EXPECT_EQ(f->startedWith, c);
    ASSERT_EQ(r.connectors.size(), 1u);
    EXPECT_EQ(r.connectors[0], c);
    EXPECT_EQ(std::get<IPv4Address>(c->getDestination()), IPv4Address("TCP", "example.com", 80));
    auto c6 = r.connectTCP("::1", 81, f);
    EXPECT_EQ(std::get<IPv6Address>(c6->getDestination()), IPv6Address("TCP", "::1", 81));
    EXPECT_EQ(r.tcpClients[1].timeout, 30);
    EXPECT_FALSE(r.tcpClients[1].bindAddress);
    EXPECT_EQ(f->failed + f->lostCount, 0);
}

TEST_F(TestingTest, TEST_12_testCompletesTheConnectionItself) {
    // TEST-12: the test completes a connection by calling buildProtocol and attaching a StringTransport.
    MemoryReactor r;
    auto f = Factory::forProtocol<AccumulatingProtocol, AccumulatingClientFactory>();
    r.connectTCP("127.0.0.1", 1234, f);
    auto& rec = r.tcpClients.at(0);
    auto proto = rec.factory->buildProtocol(IPv4Address("TCP", rec.host, rec.port));
    auto transport = std::make_shared<StringTransport>();
    proto->makeConnection(transport);
    EXPECT_EQ(proto->factory, f);
    EXPECT_TRUE(std::static_pointer_cast<AccumulatingProtocol>(proto)->made);
}

TEST_F(TestingTest, TEST_12_connectSSLAndUNIXRecord) {
    // TEST-12: connectSSL and connectUNIX record to sslClients/unixClients and call startedConnecting.
    MemoryReactor r;
    auto f = std::make_shared<CountingClientFactory>();
    auto s = r.connectSSL("h", 443, f, nullptr, 5);
    ASSERT_EQ(r.sslClients.size(), 1u);
    EXPECT_EQ(r.sslClients[0].timeout, 5);
    EXPECT_EQ(std::get<IPv4Address>(s->getDestination()), IPv4Address("TCP", "h", 443));
    auto u = r.connectUNIX("/tmp/x", f, 3, true);
    ASSERT_EQ(r.unixClients.size(), 1u);
    EXPECT_TRUE(r.unixClients[0].checkPID);
    EXPECT_EQ(std::get<UNIXAddress>(u->getDestination()), UNIXAddress("/tmp/x"));
    EXPECT_EQ(f->started, 2);
    EXPECT_EQ(r.connectors.size(), 2u);
}

TEST_F(TestingTest, TEST_13_fakeConnectorNeverCallsTheFactory) {
    // TEST-13: stopConnecting only sets stoppedConnecting, disconnect only records, connect does nothing.
    MemoryReactor r;
    auto f = std::make_shared<CountingClientFactory>();
    r.connectTCP("h", 1, f);
    auto c = r.connectors.at(0);
    EXPECT_FALSE(c->stoppedConnecting);
    c->stopConnecting();
    EXPECT_TRUE(c->stoppedConnecting);
    EXPECT_FALSE(c->disconnected);
    c->disconnect();
    EXPECT_TRUE(c->disconnected);
    c->connect();
    EXPECT_EQ(f->started, 1);
    EXPECT_EQ(f->failed, 0);
    EXPECT_EQ(f->lostCount, 0);
    EXPECT_EQ(r.tcpClients.size(), 1u);
}

TEST_F(TestingTest, TEST_14_adoptStreamPortRecordsAndChecksFamily) {
    // TEST-14: adoptStreamPort records (fd, family, factory) with a port at 0.0.0.0:1234 or [::]:1234; other families throw.
    MemoryReactor r;
    auto f = Factory::forProtocol<Recorder>();
    auto p4 = r.adoptStreamPort(7, AF_INET, f);
    auto p6 = r.adoptStreamPort(8, AF_INET6, f);
    EXPECT_EQ(std::get<IPv4Address>(p4->getHost()), IPv4Address("TCP", "0.0.0.0", 1234));
    EXPECT_EQ(std::get<IPv6Address>(p6->getHost()), IPv6Address("TCP", "::", 1234));
    ASSERT_EQ(r.adoptedPorts.size(), 2u);
    EXPECT_EQ(r.adoptedPorts[0].fd, 7);
    EXPECT_EQ(r.adoptedPorts[1].addressFamily, AF_INET6);
    EXPECT_THROW(r.adoptStreamPort(9, AF_UNIX, f), error::UnsupportedAddressFamily);
    EXPECT_EQ(r.adoptedPorts.size(), 2u);
}

TEST_F(TestingTest, TEST_14_adoptStreamConnectionAndDatagramPort) {
    // TEST-14: adoptStreamConnection records; adoptDatagramPort records (fd, family, protocol, maxPacketSize) with a "UDP" port.
    MemoryReactor r;
    auto f = Factory::forProtocol<Recorder>();
    r.adoptStreamConnection(11, AF_INET, f);
    ASSERT_EQ(r.adoptedStreamConnections.size(), 1u);
    EXPECT_EQ(r.adoptedStreamConnections[0].fd, 11);
    EXPECT_EQ(r.adoptedStreamConnections[0].factory, f);
    auto port = r.adoptDatagramPort(12, AF_INET6, nullptr, 512);
    ASSERT_EQ(r.adoptedDatagramPorts.size(), 1u);
    EXPECT_EQ(r.adoptedDatagramPorts[0].maxPacketSize, 512u);
    EXPECT_EQ(std::get<IPv6Address>(port->getHost()), IPv6Address("UDP", "::", 1234));
    EXPECT_THROW(r.adoptDatagramPort(13, AF_UNIX, nullptr), error::UnsupportedAddressFamily);
}

TEST_F(TestingTest, TEST_15_runCallsHooksInOrderThenStops) {
    // TEST-15: run() sets running and hasRun, calls callWhenRunning hooks in order, then stop(); flags start false.
    MemoryReactor r;
    EXPECT_FALSE(r.running);
    EXPECT_FALSE(r.hasRun);
    EXPECT_FALSE(r.hasStopped);
    EXPECT_FALSE(r.hasCrashed);
    std::vector<int> order;
    bool runningInside = false;
    r.callWhenRunning([&] {
        order.push_back(1);
        runningInside = r.running;
    });
    r.callWhenRunning([&] { order.push_back(2); });
    EXPECT_TRUE(order.empty());  // only recorded
    r.run();
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
    EXPECT_TRUE(runningInside);
    EXPECT_TRUE(r.hasRun);
    EXPECT_TRUE(r.hasStopped);
    EXPECT_FALSE(r.running);
}

TEST_F(TestingTest, TEST_15_aHookThatAddsHooksKeepsRunningAndTheNewOnesRunToo) {
    // A hook that adds hooks moved the list, and with it the hook still running (heap-use-after-free
    // under ASan once it touched its capture afterwards). Twisted runs the added hooks in the same run().
    MemoryReactor r;
    int ran = 0, addedRan = 0;
    r.callWhenRunning([&r, &ran, &addedRan] {
        for (int i = 0; i < 10; ++i) r.callWhenRunning([&addedRan] { ++addedRan; });
        ++ran;  // its own capture, after the list grew
    });
    r.run();
    EXPECT_EQ(ran, 1);
    EXPECT_EQ(addedRan, 10);
    EXPECT_EQ(r.whenRunningHooks.size(), 11u);
}

TEST_F(TestingTest, TEST_15_runWhileRunningThrowsAndCrashSetsFlags) {
    // TEST-15: run() requires running false; crash() sets hasCrashed and leaves the reactor neither running nor stopped.
    MemoryReactor r;
    bool threw = false;
    r.callWhenRunning([&] {
        try {
            r.run();
        } catch (const std::logic_error&) {
            threw = true;
        }
    });
    r.run();
    EXPECT_TRUE(threw);
    MemoryReactor c;
    c.crash();
    EXPECT_TRUE(c.hasCrashed);
    EXPECT_FALSE(c.running);
    EXPECT_FALSE(c.hasStopped);
}

TEST_F(TestingTest, TEST_15_triggersAreRecordedNeverFired) {
    // TEST-15: addSystemEventTrigger records into triggers[phase][eventType]; unimplemented methods throw clearly.
    MemoryReactor r;
    int fired = 0;
    auto id1 = r.addSystemEventTrigger("before", "shutdown", [&] { ++fired; });
    auto id2 = r.addSystemEventTrigger("before", "shutdown", [&] { ++fired; });
    r.addSystemEventTrigger("after", "startup", [&] { ++fired; });
    EXPECT_FALSE(id1 == id2);
    EXPECT_EQ(r.triggers["before"]["shutdown"].size(), 2u);
    EXPECT_EQ(r.triggers["after"]["startup"].size(), 1u);
    r.run();
    EXPECT_EQ(fired, 0);
    try {
        r.fireSystemEvent("shutdown");
        ADD_FAILURE() << "fireSystemEvent did not throw";
    } catch (const std::logic_error& e) {
        EXPECT_NE(std::string(e.what()).find("not supported by MemoryReactor"), std::string::npos);
    }
    EXPECT_THROW(r.removeSystemEventTrigger(id1), std::logic_error);
    EXPECT_THROW(r.iterate(), std::logic_error);
    EXPECT_THROW(r.resolve("localhost"), std::logic_error);
}

TEST_F(TestingTest, TEST_16_readerAndWriterSets) {
    // TEST-16: add twice keeps one entry, removing unknown descriptors is ignored, removeAll empties both and returns each once.
    MemoryReactor r;
    auto a = std::make_shared<test::FakeDescriptor>(100);
    auto b = std::make_shared<test::FakeDescriptor>(101);
    r.addReader(a);
    r.addReader(a);
    r.addWriter(a);
    r.addWriter(b);
    EXPECT_EQ(r.getReaders().size(), 1u);
    EXPECT_EQ(r.getWriters().size(), 2u);
    r.removeReader(b.get());  // not a reader: ignored
    EXPECT_EQ(r.getReaders().size(), 1u);
    r.removeWriter(b);
    EXPECT_EQ(r.getWriters().size(), 1u);
    r.addWriter(b);
    auto removed = r.removeAll();
    EXPECT_EQ(removed.size(), 2u);
    EXPECT_TRUE(r.getReaders().empty());
    EXPECT_TRUE(r.getWriters().empty());
    EXPECT_EQ(a->reads + a->writes + b->reads + b->writes, 0);  // nothing dispatched
}

TEST_F(TestingTest, TEST_17_memoryReactorClockIsAClock) {
    // TEST-17: MemoryReactorClock is a MemoryReactor and a Clock: callLater/seconds/advance/getDelayedCalls as task::Clock.
    MemoryReactorClock r;
    static_assert(std::is_base_of_v<MemoryReactor, MemoryReactorClock>);
    static_assert(std::is_base_of_v<IReactorTime, MemoryReactorClock>);
    std::vector<int> order;
    EXPECT_EQ(r.seconds(), 0);
    r.callLater(2, [&] { order.push_back(2); });
    r.callLater(1, [&] { order.push_back(1); });
    EXPECT_EQ(r.getDelayedCalls().size(), 2u);
    r.advance(1.5);
    EXPECT_EQ(order, std::vector<int>{1});
    EXPECT_EQ(r.seconds(), 1.5);
    r.advance(1);
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
    EXPECT_TRUE(r.getDelayedCalls().empty());
    r.listenTCP(80, Factory::forProtocol<Recorder>());
    EXPECT_EQ(r.tcpServers.size(), 1u);
}

TEST_F(TestingTest, TEST_18_raisingMemoryReactorThrowsTheGivenExceptions) {
    // TEST-18: listen* and adoptStreamPort throw listenException; connect*, adoptStreamConnection and adoptDatagramPort throw connectException.
    RaisingMemoryReactor r(
        std::make_exception_ptr(error::CannotListenError("", 80, std::make_error_code(std::errc::address_in_use))),
        std::make_exception_ptr(error::ConnectionRefusedError()));
    auto f = Factory::forProtocol<Recorder>();
    auto cf = std::make_shared<CountingClientFactory>();
    EXPECT_THROW(r.listenTCP(80, f), error::CannotListenError);
    EXPECT_THROW(r.listenSSL(80, f, nullptr), error::CannotListenError);
    EXPECT_THROW(r.listenUNIX("/x", f), error::CannotListenError);
    EXPECT_THROW(r.listenUDP(80, nullptr), error::CannotListenError);
    EXPECT_THROW(r.adoptStreamPort(3, AF_INET, f), error::CannotListenError);
    EXPECT_THROW(r.connectTCP("h", 1, cf), error::ConnectionRefusedError);
    EXPECT_THROW(r.connectSSL("h", 1, cf, nullptr), error::ConnectionRefusedError);
    EXPECT_THROW(r.connectUNIX("/x", cf), error::ConnectionRefusedError);
    EXPECT_THROW(r.adoptStreamConnection(3, AF_INET, f), error::ConnectionRefusedError);
    EXPECT_THROW(r.adoptDatagramPort(3, AF_INET, nullptr), error::ConnectionRefusedError);
    EXPECT_EQ(cf->started, 0);
    EXPECT_TRUE(r.tcpServers.empty());
    EXPECT_TRUE(r.connectors.empty());
    MemoryReactor& asMemory = r;  // stands in wherever a MemoryReactor is taken
    EXPECT_THROW(asMemory.listenTCP(1, f), error::CannotListenError);
}

TEST_F(TestingTest, TEST_18_raisingMemoryReactorThrowsThroughEveryInterface) {
    // TEST-18: however it is reached (an interface, a ReactorRef), every listen* throws listenException and every connect* connectException; the datagram and multicast methods too.
    RaisingMemoryReactor r(
        std::make_exception_ptr(error::CannotListenError("", 80, std::make_error_code(std::errc::address_in_use))),
        std::make_exception_ptr(error::ConnectionRefusedError()));
    auto f = Factory::forProtocol<Recorder>();
    auto cf = std::make_shared<CountingClientFactory>();
    IReactorTCP& tcp = r;
    IReactorUNIX& unixStream = r;
    IReactorUNIXDatagram& unixDatagram = r;
    IReactorUDP& udp = r;
    IReactorMulticast& multicast = r;
    IReactorSocket& sockets = r;
    EXPECT_THROW(tcp.listenTCP(80, f), error::CannotListenError);
    EXPECT_THROW(tcp.connectTCP("h", 1, cf), error::ConnectionRefusedError);
    EXPECT_THROW(unixStream.listenUNIX("/x", f), error::CannotListenError);
    EXPECT_THROW(unixStream.connectUNIX("/x", cf), error::ConnectionRefusedError);
    EXPECT_THROW(unixDatagram.listenUNIXDatagram("/x", nullptr), error::CannotListenError);
    EXPECT_THROW(unixDatagram.connectUNIXDatagram("/x", nullptr), error::ConnectionRefusedError);
    EXPECT_THROW(r.listenUNIXDatagram("/x", nullptr), error::CannotListenError);
    EXPECT_THROW(udp.listenUDP(53, nullptr), error::CannotListenError);
    EXPECT_THROW(multicast.listenMulticast(53, nullptr), error::CannotListenError);
    EXPECT_THROW(sockets.adoptStreamPort(3, AF_INET, f), error::CannotListenError);
    EXPECT_THROW(sockets.adoptDatagramPort(3, AF_INET, nullptr), error::ConnectionRefusedError);
    EXPECT_THROW(ReactorRef(r).get<IReactorTCP>().listenTCP(80, f), error::CannotListenError);
    EXPECT_EQ(cf->started, 0);
    EXPECT_TRUE(r.unixDatagramServers.empty());
    EXPECT_TRUE(r.unixDatagramClients.empty());
    EXPECT_TRUE(r.multicastServers.empty());
}

TEST_F(TestingTest, TEST_11_memoryReactorProvidesTheReactorInterfaces) {
    // TEST-11: MemoryReactor provides the reactor interfaces a real reactor does, threads and time aside (Twisted test_memoryReactorProvides); MemoryReactorClock adds IReactorTime.
    static_assert(std::is_base_of_v<IReactorTCP, MemoryReactor>);
    static_assert(std::is_base_of_v<IReactorUNIX, MemoryReactor>);
    static_assert(std::is_base_of_v<IReactorUNIXDatagram, MemoryReactor>);
    static_assert(std::is_base_of_v<IReactorUDP, MemoryReactor>);
    static_assert(std::is_base_of_v<IReactorMulticast, MemoryReactor>);
    static_assert(std::is_base_of_v<IReactorSocket, MemoryReactor>);
    static_assert(std::is_base_of_v<IReactorFDSet, MemoryReactor>);
    static_assert(!std::is_base_of_v<IReactorThreads, MemoryReactor>);
    static_assert(std::is_base_of_v<IReactorThreads, Reactor> && std::is_base_of_v<IReactorSocket, Reactor>);
    MemoryReactor r;
    ReactorRef ref(r);
    EXPECT_EQ(ref.find<IReactorTCP>(), static_cast<IReactorTCP*>(&r));
    EXPECT_EQ(ref.find<IReactorSocket>(), static_cast<IReactorSocket*>(&r));
    EXPECT_EQ(ref.find<IReactorTime>(), nullptr);
    EXPECT_EQ(ref.find<IReactorThreads>(), nullptr);
    MemoryReactorClock clock;
    EXPECT_EQ(ReactorRef(clock).find<IReactorTime>(), static_cast<IReactorTime*>(&clock));

    // Through the interface, the port and connector are the interfaces' types.
    IReactorTCP& tcp = r;
    std::shared_ptr<IListeningPort> port = tcp.listenTCP(80, Factory::forProtocol<Recorder>(), 5, "::1");
    EXPECT_EQ(std::get<IPv6Address>(port->getHost()), IPv6Address("TCP", "::1", 80));
    EXPECT_EQ(r.tcpServers.at(0).backlog, 5);
}

TEST_F(TestingTest, TEST_11_listenUNIXDatagramAndMulticastRecord) {
    // TEST-11: listenUNIXDatagram records (path, protocol, maxPacketSize, mode) with a port at UNIXAddress(path); listenMulticast records like listenUDP plus listenMultiple. Neither starts the protocol.
    MemoryReactor r;
    auto p = std::make_shared<DatagramProtocol>();
    auto ux = r.listenUNIXDatagram("/tmp/dgram", p, 512, 0600);
    ASSERT_EQ(r.unixDatagramServers.size(), 1u);
    EXPECT_EQ(r.unixDatagramServers[0].address, "/tmp/dgram");
    EXPECT_EQ(r.unixDatagramServers[0].protocol, p);
    EXPECT_EQ(r.unixDatagramServers[0].maxPacketSize, 512u);
    EXPECT_EQ(r.unixDatagramServers[0].mode, 0600);
    EXPECT_EQ(std::get<UNIXAddress>(ux->getHost()), UNIXAddress("/tmp/dgram"));
    auto mc = r.listenMulticast(5353, p, "::1", 1024, true);
    ASSERT_EQ(r.multicastServers.size(), 1u);
    EXPECT_EQ(r.multicastServers[0].port, 5353);
    EXPECT_EQ(r.multicastServers[0].interface, "::1");
    EXPECT_EQ(r.multicastServers[0].maxPacketSize, 1024u);
    EXPECT_TRUE(r.multicastServers[0].listenMultiple);
    EXPECT_EQ(std::get<IPv6Address>(mc->getHost()), IPv6Address("UDP", "::1", 5353));
    r.listenMulticast(5354, p);
    EXPECT_FALSE(r.multicastServers[1].listenMultiple);
    EXPECT_EQ(r.multicastServers[1].maxPacketSize, 8192u);
    EXPECT_EQ(p->numPorts, 0);
    EXPECT_FALSE(p->transport);
    EXPECT_TRUE(r.udpServers.empty());
}

TEST_F(TestingTest, TEST_12_connectUNIXDatagramRecordsAndNeverCallsTheProtocol) {
    // TEST-12: connectUNIXDatagram records (path, protocol, maxPacketSize, mode, bindAddress) and returns a port at UNIXAddress(bindAddress); the protocol is neither started nor told of a failure.
    struct Connected : ConnectedDatagramProtocol {
        int failed = 0;
        void connectionFailed(const Failure&) override { ++failed; }
    };
    MemoryReactor r;
    auto p = std::make_shared<Connected>();
    auto port = r.connectUNIXDatagram("/tmp/peer", p, 256, 0640, std::string("/tmp/me"));
    ASSERT_EQ(r.unixDatagramClients.size(), 1u);
    const auto& call = r.unixDatagramClients[0];
    EXPECT_EQ(call.address, "/tmp/peer");
    EXPECT_EQ(call.protocol, p);
    EXPECT_EQ(call.maxPacketSize, 256u);
    EXPECT_EQ(call.mode, 0640);
    EXPECT_EQ(call.bindAddress, std::optional<std::string>("/tmp/me"));
    EXPECT_EQ(std::get<UNIXAddress>(port->getHost()), UNIXAddress("/tmp/me"));
    auto unbound = r.connectUNIXDatagram("/tmp/peer", p);
    EXPECT_EQ(std::get<UNIXAddress>(unbound->getHost()), UNIXAddress(""));
    EXPECT_FALSE(r.unixDatagramClients[1].bindAddress);
    EXPECT_EQ(p->failed, 0);
    EXPECT_EQ(p->numPorts, 0);
    EXPECT_TRUE(r.connectors.empty());
}

TEST_F(TestingTest, TEST_17_memoryReactorClockConnectorsAnswerTheClock) {
    // TEST-17: the connectors of a MemoryReactorClock answer it as their IConnector::clock(); a plain MemoryReactor's answer none.
    MemoryReactorClock r;
    auto f = std::make_shared<CountingClientFactory>();
    auto tcp = r.connectTCP("h", 1, f);
    auto ux = r.connectUNIX("/x", f);
    EXPECT_EQ(tcp->clock(), static_cast<IReactorTime*>(&r));
    EXPECT_EQ(ux->clock(), static_cast<IReactorTime*>(&r));
    MemoryReactor plain;
    EXPECT_EQ(plain.connectTCP("h", 1, f)->clock(), nullptr);
}

// ---- Clock ---------------------------------------------------------------------------------

TEST_F(TestingTest, TEST_19_clockMovesOnlyWhenAdvanced) {
    // TEST-19: a Clock starts at 0 and moves only through advance/pump; due calls run inside advance; exceptions propagate.
    Clock clock;
    EXPECT_EQ(clock.seconds(), 0);
    std::vector<std::string> ran;
    clock.callLater(1, [&] {
        ran.push_back("a");
        clock.callLater(0, [&] { ran.push_back("a0"); });
    });
    clock.callLater(3, [] { throw std::runtime_error("boom"); });
    clock.callLater(5, [&] { ran.push_back("late"); });
    EXPECT_EQ(clock.seconds(), 0);
    clock.pump({0.5, 0.5});
    EXPECT_EQ(ran, (std::vector<std::string>{"a", "a0"}));
    EXPECT_THROW(clock.advance(2), std::runtime_error);
    EXPECT_EQ(clock.getDelayedCalls().size(), 1u);
    clock.advance(2);
    EXPECT_EQ(ran.back(), "late");
}

TEST_F(TestingTest, TEST_19_helpersTakeAnInjectedClock) {
    // TEST-19: schedulers (here IOPump) accept an injected clock, so pump() runs calls due now without sleeping.
    auto clock = std::make_shared<Clock>();
    auto [client, server, pump] = iosim::connectedServerAndClient<Recorder, Recorder>(true, clock);
    int ran = 0;
    clock->callLater(0, [&] { ++ran; });
    clock->callLater(1, [&] { ++ran; });
    pump.pump();
    EXPECT_EQ(ran, 1);
    EXPECT_EQ(pump.clock, clock);
    clock->advance(1);
    EXPECT_EQ(ran, 2);
}

// ---- loopbackAsync -------------------------------------------------------------------------

namespace {

// Writes a greeting when connected and closes after receiving `closeAfter` bytes.
struct Greeter : Recorder {
    std::string greeting;
    bool sequence = false;
    bool closeOnConnect = false;
    void connectionMade() override {
        Recorder::connectionMade();
        if (!greeting.empty()) {
            if (sequence) {
                Bytes parts[] = {asBytes(std::string_view(greeting).substr(0, 3)),
                                 asBytes(std::string_view(greeting).substr(3))};
                transport->writeSequence(parts);
            } else {
                transport->write(greeting);
            }
        }
        if (closeOnConnect) transport->loseConnection();
    }
};

}  // namespace

TEST_F(TestingTest, TEST_20_makeConnectionOnBothBeforeReturning) {
    // TEST-20: loopbackAsync calls server.makeConnection then client.makeConnection before returning a Deferred.
    Clock clock;
    std::vector<std::string> journal;
    auto server = std::make_shared<Recorder>();
    auto client = std::make_shared<Recorder>();
    server->journal = client->journal = &journal;
    server->name = "server";
    client->name = "client";
    auto d = loopback::loopbackAsync(server, client, clock);
    EXPECT_EQ(journal, (std::vector<std::string>{"server.connectionMade", "client.connectionMade"}));
    ASSERT_TRUE(server->transport);
    ASSERT_TRUE(client->transport);
    assertNoResult(d);
    client->transport->loseConnection();
    clock.advance(0);
    successResultOf(d);
}

TEST_F(TestingTest, TEST_20_aThrowingConnectionMadeLeavesNothingBehind) {
    // The error reaches the caller (as Twisted's does), and the session, which holds both protocols
    // whose transports hold it, lets go of them: it leaked 2.7 KB per call (LeakSanitizer).
    struct Throwing : Recorder {
        void connectionMade() override { throw std::runtime_error("boom"); }
    };
    Clock clock;
    std::weak_ptr<Recorder> weakServer, weakClient;
    {
        auto server = std::make_shared<Throwing>();
        auto client = std::make_shared<Recorder>();
        weakServer = server;
        weakClient = client;
        EXPECT_THROW(loopback::loopbackAsync(server, client, clock), std::runtime_error);
    }
    EXPECT_TRUE(weakServer.expired());
    EXPECT_TRUE(weakClient.expired());
}

TEST_F(TestingTest, TEST_20_firesAfterBothSidesLostTheConnection) {
    // TEST-20: once either side calls loseConnection, both get connectionLost(ConnectionDone) and then the Deferred fires.
    Clock clock;
    auto server = std::make_shared<Greeter>();
    auto client = std::make_shared<Recorder>();
    server->greeting = "THIS IS LINE ONE!\r\n";
    server->closeOnConnect = true;
    bool lostBoth = false;
    auto d = loopback::loopbackAsync(server, client, clock);
    d.addCallback([&] { lostBoth = server->lost.size() == 1 && client->lost.size() == 1; });
    clock.advance(0);
    successResultOf(d);
    EXPECT_TRUE(lostBoth);
    EXPECT_EQ(client->received, "THIS IS LINE ONE!\r\n");
    EXPECT_TRUE(server->lost[0].check<error::ConnectionDone>());
    EXPECT_TRUE(client->lost[0].check<error::ConnectionDone>());
    EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST_F(TestingTest, TEST_20_aConnectionLostThatThrowsFailsTheDeferredAndTheOtherSideStillHears) {
    // TEST-20: the server's connectionLost throws: the client still gets connectionLost, and the Deferred
    // fails with the exception instead of never firing.
    struct Throwing : Recorder {
        void connectionLost(const Failure& reason) override {
            Recorder::connectionLost(reason);
            throw std::runtime_error("server connectionLost failed");
        }
    };
    Clock clock;
    auto server = std::make_shared<Throwing>();
    auto client = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(server, client, clock);
    client->transport->loseConnection();
    clock.advance(0);
    Failure f = failureResultOf(d);
    ASSERT_TRUE(f.check<std::runtime_error>());
    EXPECT_STREQ(f.get<std::runtime_error>()->what(), "server connectionLost failed");
    EXPECT_EQ(server->lost.size(), 1u);
    EXPECT_EQ(client->lost.size(), 1u);
}

TEST_F(TestingTest, TEST_21_writeIsNeverReentrant) {
    // TEST-21: a protocol's dataReceived never runs while its peer's write is on the stack; idle writes wait for the clock.
    struct Server : Protocol {
        void dataReceived(Bytes) override { transport->write("bytes"); }
    };
    struct Client : Protocol {
        bool ready = false;
        std::optional<bool> wasReady;
        void go() {
            transport->write("foo");
            ready = true;
        }
        void dataReceived(Bytes) override {
            wasReady = ready;
            transport->loseConnection();
        }
    };
    Clock clock;
    auto server = std::make_shared<Server>();
    auto client = std::make_shared<Client>();
    auto d = loopback::loopbackAsync(client, server, clock);
    client->go();  // the pump is idle: nothing is delivered on this stack
    EXPECT_FALSE(client->wasReady.has_value());
    assertNoResult(d);
    clock.advance(0);
    successResultOf(d);
    ASSERT_TRUE(client->wasReady.has_value());
    EXPECT_TRUE(*client->wasReady);
}

TEST_F(TestingTest, TEST_22_customPolicySeesQueueAndTargetServerFirst) {
    // TEST-22: a custom policy is called with (queue, target), server's output first; get() yields chunks then null for the marker.
    Clock clock;
    auto client = std::make_shared<Protocol>();
    auto server = std::make_shared<Protocol>();
    std::vector<std::pair<Protocol*, std::vector<std::string>>> calls;
    auto policy = [&](loopback::LoopbackQueue& q, Protocol& target) {
        std::vector<std::string> items;
        while (q) {
            auto item = q.get();
            items.push_back(item ? str(*item) : "<None>");
        }
        calls.emplace_back(&target, items);
    };
    auto d = loopback::loopbackAsync(server, client, clock, policy);
    EXPECT_TRUE(calls.empty());
    client->transport->write("foo");
    client->transport->write("bar");
    server->transport->write("baz");
    server->transport->write("quux");
    server->transport->loseConnection();
    clock.advance(0);
    successResultOf(d);
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_EQ(calls[0].first, client.get());
    EXPECT_EQ(calls[0].second, (std::vector<std::string>{"baz", "quux", "<None>"}));
    EXPECT_EQ(calls[1].first, server.get());
    EXPECT_EQ(calls[1].second, (std::vector<std::string>{"foo", "bar"}));
}

TEST_F(TestingTest, TEST_22_identityAndCollapsingPolicies) {
    // TEST-22: identityPumpPolicy delivers each chunk separately; collapsingPumpPolicy joins them into one call.
    auto make = [] {
        loopback::LoopbackQueue q;
        q.put(std::vector<std::byte>{std::byte{'f'}, std::byte{'o'}, std::byte{'o'}});
        q.put(std::vector<std::byte>{std::byte{'b'}, std::byte{'a'}, std::byte{'r'}});
        q.put(std::nullopt);
        return q;
    };
    Recorder a, b;
    auto q1 = make();
    loopback::identityPumpPolicy(q1, a);
    EXPECT_EQ(a.chunks, (std::vector<std::string>{"foo", "bar"}));
    EXPECT_FALSE(static_cast<bool>(q1));
    auto q2 = make();
    loopback::collapsingPumpPolicy(q2, b);
    EXPECT_EQ(b.chunks, (std::vector<std::string>{"foobar"}));
    loopback::LoopbackQueue empty;
    EXPECT_THROW(empty.get(), std::out_of_range);
}

TEST_F(TestingTest, TEST_22_identityPolicyDeliversEachWriteSeparately) {
    // TEST-22: through loopbackAsync, identity delivers each written chunk as its own dataReceived; collapsing joins them.
    Clock clock;
    auto s1 = std::make_shared<Recorder>();
    auto c1 = std::make_shared<Recorder>();
    auto d1 = loopback::loopbackAsync(s1, c1, clock);
    s1->transport->write("a");
    s1->transport->write("b");
    s1->transport->loseConnection();
    clock.advance(0);
    successResultOf(d1);
    EXPECT_EQ(c1->chunks, (std::vector<std::string>{"a", "b"}));

    auto s2 = std::make_shared<Recorder>();
    auto c2 = std::make_shared<Recorder>();
    auto d2 = loopback::loopbackAsync(s2, c2, clock, loopback::collapsingPumpPolicy);
    s2->transport->write("a");
    s2->transport->write("b");
    s2->transport->loseConnection();
    clock.advance(0);
    successResultOf(d2);
    EXPECT_EQ(c2->chunks, (std::vector<std::string>{"ab"}));
}

TEST_F(TestingTest, TEST_23_remainingDataThenConnectionLostServerFirst) {
    // TEST-23: on loseConnection the closing side's remaining data is delivered, then server.connectionLost, then client's; later writes are dropped.
    Clock clock;
    std::vector<std::string> journal;
    auto server = std::make_shared<Recorder>();
    auto client = std::make_shared<Recorder>();
    server->journal = client->journal = &journal;
    server->name = "server";
    client->name = "client";
    auto d = loopback::loopbackAsync(server, client, clock);
    journal.clear();
    client->transport->write("before");
    client->transport->loseConnection();
    client->transport->write("after");
    clock.advance(0);
    successResultOf(d);
    EXPECT_EQ(server->received, "before");
    EXPECT_EQ(journal, (std::vector<std::string>{"server.connectionLost", "client.connectionLost"}));
    client->transport->write("inert");  // the closed transport ignores writes
    clock.advance(0);
    EXPECT_EQ(server->received, "before");
}

TEST_F(TestingTest, TEST_23_abortConnectionIsTheSame) {
    // TEST-23: abortConnection() on the loopback transport queues the same disconnect marker.
    Clock clock;
    auto server = std::make_shared<Recorder>();
    auto client = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(server, client, clock);
    auto lt = std::dynamic_pointer_cast<loopback::LoopbackTransport>(server->transport);
    ASSERT_TRUE(lt);
    lt->write("x");
    lt->abortConnection();
    EXPECT_TRUE(lt->disconnecting());
    EXPECT_TRUE(lt->connected());
    clock.advance(0);
    successResultOf(d);
    EXPECT_FALSE(lt->connected());
    EXPECT_EQ(client->received, "x");
    EXPECT_EQ(client->lost.size(), 1u);
}

TEST_F(TestingTest, TEST_24_greetingsReachTheOtherSideBothWays) {
    // TEST-24: greetings written with write or writeSequence reach the other side in both directions.
    for (bool sequence : {false, true}) {
        for (bool serverSpeaks : {false, true}) {
            Clock clock;
            auto greeter = std::make_shared<Greeter>();
            greeter->greeting = "bytes";
            greeter->sequence = sequence;
            auto greetee = std::make_shared<Recorder>();
            auto d = serverSpeaks ? loopback::loopbackAsync(greeter, greetee, clock)
                                  : loopback::loopbackAsync(greetee, greeter, clock);
            EXPECT_EQ(greetee->received, "bytes") << "sequence=" << sequence << " serverSpeaks=" << serverSpeaks;
            greeter->transport->loseConnection();
            clock.advance(0);
            successResultOf(d);
        }
    }
}

TEST_F(TestingTest, TEST_24_hostAndPeerArePlaceholders) {
    // TEST-24: getHost()/getPeer() return an address placeholder on both sides.
    Clock clock;
    auto server = std::make_shared<Recorder>();
    auto client = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(server, client, clock);
    for (auto* p : {server.get(), client.get()}) {
        EXPECT_TRUE(std::holds_alternative<NoAddress>(p->transport->getHost()));
        EXPECT_TRUE(std::holds_alternative<NoAddress>(p->transport->getPeer()));
    }
    server->transport->loseConnection();
    clock.advance(0);
    successResultOf(d);
}

namespace {

// Twisted test_loopback _producertest's PullProducer: writes the next item each time it is asked.
struct ListPull : IPullProducer {
    std::vector<std::string> items;
    std::shared_ptr<IConsumer> consumer;
    int resumed = 0;
    void resumeProducing() override {
        ++resumed;
        consumer->write(asBytes(items.front()));
        items.erase(items.begin());
        if (items.empty()) {
            auto c = std::move(consumer);
            c->unregisterProducer();
        }
    }
    void stopProducing() override {}
};

struct ProducingServer : Protocol {
    std::shared_ptr<IProducer> producer;
    bool streaming = false;
    void connectionMade() override {
        auto consumer = std::dynamic_pointer_cast<IConsumer>(transport);
        if (auto pull = std::dynamic_pointer_cast<ListPull>(producer)) pull->consumer = consumer;
        consumer->registerProducer(producer, streaming);
    }
};

}  // namespace

TEST_F(TestingTest, TEST_25_pullProducerResumedAtRegistrationAndOnEachDrain) {
    // TEST-25: a pull producer is resumed at registration and each time the pump empties its side's queue.
    Clock clock;
    auto pull = std::make_shared<ListPull>();
    for (int i = 0; i < 10; ++i) pull->items.push_back(std::to_string(i));
    auto server = std::make_shared<ProducingServer>();
    server->producer = pull;
    auto client = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(server, client, clock);
    EXPECT_EQ(client->received, "0123456789");
    EXPECT_EQ(pull->resumed, 10);
    server->transport->loseConnection();
    clock.advance(0);
    successResultOf(d);
}

TEST_F(TestingTest, TEST_25_secondProducerIsACallerError) {
    // TEST-25: registering a second producer on a loopback transport throws.
    Clock clock;
    auto server = std::make_shared<Recorder>();
    auto client = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(server, client, clock);
    auto consumer = std::dynamic_pointer_cast<IConsumer>(server->transport);
    consumer->registerProducer(std::make_shared<RecordingPush>(), true);
    EXPECT_THROW(consumer->registerProducer(std::make_shared<RecordingPush>(), true), std::runtime_error);
    consumer->unregisterProducer();
    server->transport->loseConnection();
    clock.advance(0);
    successResultOf(d);
}

TEST_F(TestingTest, TEST_25_aProducerOfTheWrongKindIsRefused) {
    // TEST-25, as FD-25 over a real descriptor: a push-only producer registered as a pull producer was
    // taken, and then resumed over and over as if it had been asked for data.
    Clock clock;
    auto server = std::make_shared<Recorder>();
    auto client = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(server, client, clock);
    auto consumer = std::dynamic_pointer_cast<IConsumer>(server->transport);
    auto push = std::make_shared<RecordingPush>();
    EXPECT_THROW(consumer->registerProducer(push, false), std::invalid_argument);
    EXPECT_THROW(consumer->registerProducer(std::make_shared<ListPull>(), true), std::invalid_argument);
    consumer->registerProducer(push, true);  // nothing was left registered
    consumer->unregisterProducer();
    server->transport->loseConnection();
    clock.advance(0);
    successResultOf(d);
}

TEST_F(TestingTest, TEST_25_pushProducerUnderTheBufferIsNeverPausedOrResumed) {
    // TEST-25: a push producer that stays under bufferSize is never paused or resumed.
    Clock clock;
    auto push = std::make_shared<RecordingPush>();
    auto server = std::make_shared<ProducingServer>();
    server->producer = push;
    server->streaming = true;
    auto client = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(server, client, clock);
    for (int i = 0; i < 10; ++i) {
        server->transport->write(std::to_string(i));
        clock.advance(0);
    }
    EXPECT_EQ(client->received, "0123456789");
    EXPECT_TRUE(push->calls.empty());
    std::dynamic_pointer_cast<IConsumer>(server->transport)->unregisterProducer();
    server->transport->loseConnection();
    clock.advance(0);
    successResultOf(d);
    EXPECT_TRUE(push->calls.empty());
}

TEST_F(TestingTest, TEST_25_pushProducerPausedOverBufferSizeAndResumedWhenDrained) {
    // TEST-25 (Better than Twisted): a write leaving more than bufferSize queued pauses the push producer once; draining resumes it.
    Clock clock;
    auto push = std::make_shared<RecordingPush>();
    auto server = std::make_shared<ProducingServer>();
    server->producer = push;
    server->streaming = true;
    auto client = std::make_shared<Recorder>();
    auto d = loopback::loopbackAsync(server, client, clock, loopback::identityPumpPolicy, 4);
    auto lt = std::dynamic_pointer_cast<loopback::LoopbackTransport>(server->transport);
    lt->write("abc");
    EXPECT_TRUE(push->calls.empty());
    lt->write("de");  // 5 > 4
    lt->write("f");   // still full: no second pause
    EXPECT_EQ(push->calls, std::vector<std::string>{"pause"});
    EXPECT_TRUE(lt->producerPaused());
    clock.advance(0);
    EXPECT_EQ(client->received, "abcdef");
    EXPECT_EQ(push->calls, (std::vector<std::string>{"pause", "resume"}));
    EXPECT_FALSE(lt->producerPaused());
    lt->loseConnection();
    clock.advance(0);
    successResultOf(d);
    // FD-30: the producer still registered is stopped before connectionLost.
    EXPECT_EQ(push->calls, (std::vector<std::string>{"pause", "resume", "stop"}));
}

TEST_F(TestingTest, TEST_26_loopbackRelayBuffersUntilClearBuffer) {
    // TEST-26: writes are buffered; clearBuffer() resumes the producer first, then delivers the whole buffer in one call.
    auto receiver = std::make_shared<Recorder>();
    loopback::LoopbackRelay relay(receiver);
    auto producer = std::make_shared<RecordingPush>();
    relay.registerProducer(producer, true);
    relay.write("abc");
    Bytes seq[] = {asBytes("de"), asBytes("f")};
    relay.writeSequence(seq);
    EXPECT_EQ(receiver->received, "");
    EXPECT_EQ(relay.buffer(), "abcdef");
    relay.clearBuffer();
    EXPECT_EQ(receiver->chunks, std::vector<std::string>{"abcdef"});
    EXPECT_EQ(producer->calls, std::vector<std::string>{"resume"});
    EXPECT_EQ(relay.buffer(), "");
    EXPECT_TRUE(receiver->lost.empty());
}

TEST_F(TestingTest, TEST_26_loopbackRelayReportsLossOnce) {
    // TEST-26: after loseConnection(), clearBuffer() delivers the data then connectionLost(ConnectionDone) exactly once.
    auto receiver = std::make_shared<Recorder>();
    loopback::LoopbackRelay relay(receiver);
    relay.write("bye");
    relay.loseConnection();
    relay.clearBuffer();
    EXPECT_EQ(receiver->received, "bye");
    ASSERT_EQ(receiver->lost.size(), 1u);
    EXPECT_TRUE(receiver->lost[0].check<error::ConnectionDone>());
    relay.write("more");
    relay.loseConnection();
    relay.clearBuffer();
    EXPECT_EQ(receiver->lost.size(), 1u);
    EXPECT_EQ(receiver->received, "bye");
}

TEST_F(TestingTest, TEST_26_loopbackRelayAddressesAndLogPrefix) {
    // TEST-26: logPrefix() is "Loopback('<TargetClass>')"; getHost()/getPeer() are the loopback placeholder.
    auto receiver = std::make_shared<AccumulatingProtocol>();
    loopback::LoopbackRelay relay(receiver);
    EXPECT_EQ(relay.logPrefix(), "Loopback('AccumulatingProtocol')");
    EXPECT_TRUE(std::holds_alternative<NoAddress>(relay.getHost()));
    EXPECT_TRUE(std::holds_alternative<NoAddress>(relay.getPeer()));
}

// ---- iosim ---------------------------------------------------------------------------------

TEST_F(TestingTest, TEST_28_serialNumbersAreUnique) {
    // TEST-28: every FakeTransport gets a unique serial number.
    auto p = std::make_shared<Recorder>();
    iosim::FakeTransport a(p, true), b(p, false);
    EXPECT_NE(a.serial, b.serial);
    EXPECT_LT(a.serial, b.serial);
    EXPECT_EQ(a.logPrefix(), "iosim");
    EXPECT_EQ(b.str(), "FakeTransport<C," + std::to_string(b.serial) + ",Recorder>");
    EXPECT_TRUE(std::holds_alternative<NoAddress>(a.getHost()));
}

TEST_F(TestingTest, TEST_28_writeSequenceJoinsAndWritesAfterCloseAreDropped) {
    // TEST-28: writeSequence joins; after loseConnection writes are silently dropped; abort keeps what was written.
    auto p = std::make_shared<Recorder>();
    iosim::FakeTransport t(p, false, IPv4Address("TCP", "1.1.1.1", 1), IPv4Address("TCP", "2.2.2.2", 2));
    Bytes seq[] = {asBytes("ab"), asBytes("cd")};
    t.writeSequence(seq);
    ASSERT_EQ(t.stream.size(), 1u);
    EXPECT_EQ(str(t.stream[0]), "abcd");
    t.write("ef");
    t.abortConnection();
    EXPECT_TRUE(t.disconnecting);
    t.write("dropped");
    t.writeSequence(seq);
    auto out = t.getOutBuffer();
    ASSERT_TRUE(out);
    EXPECT_EQ(str(*out), "abcdef");
    EXPECT_FALSE(t.getOutBuffer());
    EXPECT_EQ(std::get<IPv4Address>(t.getPeer()).host, "2.2.2.2");
}

TEST_F(TestingTest, TEST_28_pullProducerResumedAtRegistration) {
    // TEST-28: registerProducer resumes a pull producer immediately; the transport's own pause/resume are no-ops.
    auto p = std::make_shared<Recorder>();
    iosim::FakeTransport t(p, true);
    auto pull = std::make_shared<CountingPull>();
    t.registerProducer(pull, false);
    EXPECT_EQ(pull->resumed, 1);
    t.unregisterProducer();
    auto push = std::make_shared<RecordingPush>();
    t.registerProducer(push, true);
    EXPECT_TRUE(push->calls.empty());
    t.pauseProducing();
    t.resumeProducing();
    EXPECT_FALSE(t.disconnecting);
    EXPECT_TRUE(push->calls.empty());
}

namespace {

struct Echo : Recorder {
    void dataReceived(Bytes data) override {
        Recorder::dataReceived(data);
        transport->write(data);
    }
};

}  // namespace

TEST_F(TestingTest, TEST_29_pumpMovesBytesBothWays) {
    // TEST-29: pump() delivers the client's bytes to the server and the server's to the client, and reports whether anything moved.
    auto [client, server, pump] = iosim::connectedServerAndClient<Recorder, Recorder>();
    EXPECT_FALSE(pump.pump());
    client->transport->write("to server");
    server->transport->write("to client");
    EXPECT_TRUE(server->received.empty());
    EXPECT_TRUE(pump.pump());
    EXPECT_EQ(server->received, "to server");
    EXPECT_EQ(client->received, "to client");
    EXPECT_FALSE(pump.pump());
}

TEST_F(TestingTest, TEST_29_disconnectReportedOneSidePerPump) {
    // TEST-29: with nothing to move, a disconnecting side is marked disconnected and its peer gets connectionLost, one side per pump.
    auto [client, server, pump] = iosim::connectedServerAndClient<Recorder, Recorder>();
    client->transport->write("last");
    client->transport->loseConnection();
    EXPECT_TRUE(pump.pump());  // data first
    EXPECT_EQ(server->received, "last");
    EXPECT_TRUE(server->lost.empty());
    EXPECT_TRUE(pump.pump());
    ASSERT_EQ(server->lost.size(), 1u);
    EXPECT_TRUE(server->lost[0].check<error::ConnectionDone>());
    EXPECT_TRUE(client->lost.empty());
    EXPECT_TRUE(pump.pump());
    ASSERT_EQ(client->lost.size(), 1u);
    EXPECT_FALSE(pump.pump());
    EXPECT_TRUE(pump.clientIO->disconnected);
    EXPECT_TRUE(pump.serverIO->disconnected);
}

TEST_F(TestingTest, TEST_29_flushFailsAfter1000BusyRounds) {
    // TEST-29: flush() pumps until idle and fails after 1000 busy rounds.
    auto [client, server, pump] = iosim::connectedServerAndClient<Echo, Echo>();
    EXPECT_FALSE(pump.flush());
    client->transport->write("ping");
    EXPECT_THROW(pump.flush(), std::runtime_error);
}

TEST_F(TestingTest, TEST_29_pullProducersResumedPushNever) {
    // TEST-29: each pump resumes registered pull producers; push producers are never resumed.
    auto [client, server, pump] = iosim::connectedServerAndClient<Recorder, Recorder>();
    auto pull = std::make_shared<CountingPull>();
    auto push = std::make_shared<RecordingPush>();
    std::dynamic_pointer_cast<IConsumer>(client->transport)->registerProducer(pull, false);
    std::dynamic_pointer_cast<IConsumer>(server->transport)->registerProducer(push, true);
    EXPECT_EQ(pull->resumed, 1);
    pump.pump();
    pump.pump();
    EXPECT_EQ(pull->resumed, 3);
    EXPECT_TRUE(push->calls.empty());
}

TEST_F(TestingTest, TEST_30_connectMakesServerThenClientAndGreets) {
    // TEST-30: connect() calls makeConnection on the server then the client and, with greet, flushes once.
    std::vector<std::string> journal;
    auto server = std::make_shared<Greeter>();
    auto client = std::make_shared<Greeter>();
    server->journal = client->journal = &journal;
    server->name = "server";
    client->name = "client";
    server->greeting = "hello";
    auto pump = iosim::connect(server, iosim::makeFakeServer(server), client, iosim::makeFakeClient(client));
    EXPECT_EQ(journal, (std::vector<std::string>{"server.connectionMade", "client.connectionMade"}));
    EXPECT_EQ(client->received, "hello");
    EXPECT_TRUE(pump.serverIO->isServer);
    EXPECT_FALSE(pump.clientIO->isServer);
}

TEST_F(TestingTest, TEST_30_withoutGreetNothingMoves) {
    // TEST-30: greet=false leaves the greeting queued until the test pumps.
    auto server = std::make_shared<Greeter>();
    auto client = std::make_shared<Recorder>();
    server->greeting = "hello";
    auto pump = iosim::connect(server, iosim::makeFakeServer(server), client, iosim::makeFakeClient(client), false);
    EXPECT_EQ(client->received, "");
    EXPECT_TRUE(pump.flush());
    EXPECT_EQ(client->received, "hello");
}

TEST_F(TestingTest, TEST_30_connectedServerAndClientReturnsClientServerPump) {
    // TEST-30: connectedServerAndClient builds both protocols and fake transports and returns (client, server, pump).
    auto [client, server, pump] = iosim::connectedServerAndClient<AccumulatingProtocol, Greeter>();
    static_assert(std::is_same_v<decltype(client), std::shared_ptr<Greeter>>);
    static_assert(std::is_same_v<decltype(server), std::shared_ptr<AccumulatingProtocol>>);
    EXPECT_TRUE(server->made);
    EXPECT_EQ(pump.client, client);
    EXPECT_EQ(pump.server, server);
    EXPECT_EQ(std::dynamic_pointer_cast<iosim::FakeTransport>(server->transport), pump.serverIO);
}

// ---- MemoryReactor as IReactorProcess ------------------------------------------------------
//
// No TEST-* contract covers spawnProcess (Twisted's MemoryReactor has none);
// these tests check weft's FakeProcessTransport against process.md's
// callback-order contracts (PROC-1, CB-2 … CB-5, CB-7).

namespace {

// Records every ProcessProtocol call as one line, and what the transport said during it.
struct ScriptedChildProtocol : ProcessProtocol {
    std::vector<std::string> events;
    std::optional<pid_t> pidAtMade, pidAtExited;
    int statusAtMade = 0;
    std::optional<Failure> exitedReason, endedReason;
    void connectionMade() override {
        events.push_back("made");
        pidAtMade = processTransport->pid();
        statusAtMade = processTransport->status();
    }
    void childDataReceived(int fd, Bytes data) override {
        events.push_back("data " + std::to_string(fd) + " " + str(data));
        ProcessProtocol::childDataReceived(fd, data);
    }
    void outReceived(Bytes) override { events.emplace_back("out"); }
    void errReceived(Bytes) override { events.emplace_back("err"); }
    void childConnectionLost(int fd) override {
        events.push_back("lost " + std::to_string(fd));
        ProcessProtocol::childConnectionLost(fd);
    }
    void inConnectionLost() override { events.emplace_back("in lost"); }
    void processExited(const Failure& reason) override {
        events.emplace_back("exited");
        exitedReason = reason;
        pidAtExited = processTransport->pid();
    }
    void processEnded(const Failure& reason) override {
        events.emplace_back("ended");
        endedReason = reason;
    }
};

}  // namespace

TEST_F(TestingTest, MemoryReactor_spawnProcessRecordsTheCallAndConnectsBeforeReturning) {
    // PROC-1 on the double: the call is recorded and connectionMade has run, with a fake pid and status -1.
    static_assert(std::is_base_of_v<IReactorProcess, MemoryReactor>);
    MemoryReactor r;
    EXPECT_EQ(ReactorRef(r).find<IReactorProcess>(), static_cast<IReactorProcess*>(&r));
    auto proto = std::make_shared<ScriptedChildProtocol>();
    ProcessOptions o;
    o.env = Environment{{"K", "v"}};
    o.path = "/srv";
    IReactorProcess& processes = r;
    std::shared_ptr<IProcessTransport> t = processes.spawnProcess(proto, "prog", {"prog", "a", "b c"}, o);
    ASSERT_EQ(r.processes.size(), 1u);
    const SpawnedProcess& spawned = r.processes[0];
    EXPECT_EQ(spawned.protocol, proto);
    EXPECT_EQ(spawned.executable, "prog");
    EXPECT_EQ(spawned.args, (std::vector<std::string>{"prog", "a", "b c"}));
    EXPECT_EQ(spawned.options.env, o.env);
    EXPECT_EQ(spawned.options.path, o.path);
    EXPECT_EQ(spawned.transport, t);
    EXPECT_EQ(spawned.transport->options().path, o.path);
    EXPECT_EQ(proto->events, std::vector<std::string>{"made"});
    EXPECT_EQ(proto->pidAtMade, std::optional<pid_t>(4242));
    EXPECT_EQ(proto->statusAtMade, -1);
    EXPECT_EQ(proto->processTransport, t);
    EXPECT_EQ(proto->transport.get(), &t->asTransport());
    EXPECT_EQ(&t->asTransport(), static_cast<ITransport*>(spawned.transport.get()));
    EXPECT_EQ(spawned.transport->openPipes(), (std::set<int>{0, 1, 2}));
    EXPECT_TRUE(std::holds_alternative<PipeAddress>(t->asTransport().getPeer()));

    // The next child gets the next pid; nothing happens until the test says so.
    auto other = std::make_shared<ScriptedChildProtocol>();
    r.spawnProcess(other, "/bin/other", {"other"});
    ASSERT_EQ(r.processes.size(), 2u);
    EXPECT_EQ(r.processes[1].transport->pid(), std::optional<pid_t>(4243));
    EXPECT_EQ(r.processes[1].options.env, Environment{});
    EXPECT_EQ(other->events, std::vector<std::string>{"made"});
    EXPECT_EQ(proto->events, std::vector<std::string>{"made"});
}

TEST_F(TestingTest, MemoryReactor_spawnProcessScriptedChildDeliversTheFullCallbackOrder) {
    // CB-2 … CB-5, CB-7: data per fd until its close, processExited once (pid already gone), processEnded last.
    MemoryReactor r;
    auto proto = std::make_shared<ScriptedChildProtocol>();
    r.spawnProcess(proto, "prog", {"prog"});
    auto child = r.processes.at(0).transport;
    child->childData(1, "hello");
    child->childData(2, "oops");
    child->closePipe(2);
    EXPECT_THROW(child->childData(2, "late"), std::logic_error) << "no data after the pipe's close";
    EXPECT_THROW(child->closePipe(2), std::logic_error) << "one childConnectionLost per pipe";
    child->exit(W_EXITCODE(3, 0));
    EXPECT_EQ(proto->pidAtExited, std::nullopt);
    EXPECT_EQ(child->status(), W_EXITCODE(3, 0));
    EXPECT_FALSE(child->ended()) << "pipes 0 and 1 are still open";
    EXPECT_TRUE(child->isConnected());
    child->childData(1, " again");  // output may follow processExited (CB-4)
    child->closePipe(1);
    child->closePipe(0);
    EXPECT_EQ(proto->events,
              (std::vector<std::string>{"made", "data 1 hello", "out", "data 2 oops", "err", "lost 2", "exited",
                                        "data 1  again", "out", "lost 1", "lost 0", "in lost", "ended"}));
    ASSERT_TRUE(proto->exitedReason && proto->endedReason);
    EXPECT_EQ(*proto->exitedReason, *proto->endedReason);
    const auto* why = proto->endedReason->get<error::ProcessTerminated>();
    ASSERT_NE(why, nullptr);
    EXPECT_EQ(why->exitCode, std::optional<int>(3));
    EXPECT_EQ(why->signal, std::nullopt);
    EXPECT_TRUE(child->ended());
    EXPECT_FALSE(child->isConnected());
    EXPECT_THROW(child->exit(0), std::logic_error);
    EXPECT_THROW(child->kill(SIGKILL), std::logic_error);
    EXPECT_EQ(proto->events.size(), 13u) << "nothing after processEnded";

    // The exit may also come last: processEnded follows it at once. A signal gives ProcessTerminated(signal).
    auto killed = std::make_shared<ScriptedChildProtocol>();
    r.spawnProcess(killed, "prog", {"prog"});
    auto second = r.processes.at(1).transport;
    for (int fd : {0, 1, 2}) second->closePipe(fd);
    EXPECT_EQ(killed->events, (std::vector<std::string>{"made", "lost 0", "in lost", "lost 1", "lost 2"}));
    second->kill(SIGKILL);
    EXPECT_EQ(killed->events.back(), "ended");
    EXPECT_EQ(killed->events.at(killed->events.size() - 2), "exited");
    EXPECT_EQ(second->status(), SIGKILL);
    EXPECT_EQ(killed->endedReason->get<error::ProcessTerminated>()->signal, std::optional<int>(SIGKILL));
    EXPECT_THROW(second->kill(0), std::invalid_argument);

    // Exit status 0: ProcessDone.
    auto done = std::make_shared<ScriptedChildProtocol>();
    r.spawnProcess(done, "prog", {"prog"});
    auto third = r.processes.at(2).transport;
    third->exit(0);
    for (int fd : {2, 1, 0}) third->closePipe(fd);
    EXPECT_TRUE(done->endedReason->check<error::ProcessDone>());
}

TEST_F(TestingTest, MemoryReactor_spawnProcessRecordsWritesClosesAndSignals) {
    // What code under test does to the child is recorded, never acted on; PROC-11 / SIG-2 errors as a real transport.
    MemoryReactor r;
    auto proto = std::make_shared<ScriptedChildProtocol>();
    ProcessOptions o;
    o.childFDs = ChildFDs{{0, "w"}, {1, "r"}, {3, "w"}};
    auto t = r.spawnProcess(proto, "prog", {"prog"}, o);
    auto child = r.processes.at(0).transport;
    t->asTransport().write("abc");
    Bytes seq[] = {asBytes("de"), asBytes("f")};
    t->asTransport().writeSequence(seq);
    t->writeToChild(3, asBytes("three"));
    t->writeToChild(0, asBytes("!"));
    EXPECT_THROW(t->writeToChild(1, asBytes("x")), std::out_of_range) << "fd 1 is read by the parent";
    EXPECT_THROW(t->writeToChild(7, asBytes("x")), std::out_of_range) << "no pipe at fd 7";
    EXPECT_EQ(child->written, (std::map<int, std::string>{{0, "abcdef!"}, {3, "three"}}));
    t->closeStdin();
    t->closeChildFD(3);
    t->closeStderr();  // recorded even though fd 2 is no pipe here
    EXPECT_EQ(child->closedChildFDs, (std::vector<int>{0, 3, 2}));
    EXPECT_EQ(child->openPipes(), (std::set<int>{0, 1, 3})) << "closing is the test's to report";
    EXPECT_FALSE(child->disconnecting);
    t->asTransport().loseConnection();
    EXPECT_TRUE(child->disconnecting);
    EXPECT_TRUE(t->asTransport().isDisconnecting());
    t->signalProcess(SIGTERM);
    t->signalProcess("KILL");
    EXPECT_EQ(child->signals, (std::vector<int>{SIGTERM, SIGKILL}));
    EXPECT_TRUE(child->pid().has_value()) << "a signal kills nobody until the test says so";
    EXPECT_THROW(t->signalProcessGroup(SIGTERM), std::logic_error) << "no process group of its own";
    child->closePipe(0);
    t->asTransport().write("dropped");  // PROC-17: stdin is gone
    EXPECT_EQ(child->written[0], "abcdef!");
    EXPECT_THROW(t->writeToChild(0, asBytes("x")), std::out_of_range);
    child->kill(SIGTERM);
    EXPECT_THROW(t->signalProcess(SIGTERM), error::ProcessExitedAlready);
    EXPECT_EQ(child->signals.size(), 2u);
    EXPECT_EQ(proto->events.back(), "exited");
    child->closePipe(1);
    child->closePipe(3);
    EXPECT_EQ(proto->events.back(), "ended");

    ProcessOptions grouped;
    grouped.newProcessGroup = true;
    auto g = r.spawnProcess(std::make_shared<ScriptedChildProtocol>(), "prog", {"prog"}, grouped);
    g->signalProcessGroup(SIGHUP);
    EXPECT_EQ(r.processes.at(1).transport->groupSignals, std::vector<int>{SIGHUP});
}

TEST_F(TestingTest, MemoryReactor_spawnProcessPipesFollowChildFDsAndPTY) {
    // FDMAP-1/2: the pipes are the "r"/"w" entries of childFDs; PTY-5: a terminal child reports no childConnectionLost.
    MemoryReactor r;
    auto proto = std::make_shared<ScriptedChildProtocol>();
    ProcessOptions o;
    o.childFDs = ChildFDs{{0, "w"}, {3, "r"}, {4, 7}};
    r.spawnProcess(proto, "prog", {"prog"}, o);
    auto child = r.processes.at(0).transport;
    EXPECT_EQ(child->openPipes(), (std::set<int>{0, 3}));
    child->childData(3, "three");
    EXPECT_THROW(child->childData(0, "x"), std::logic_error) << "fd 0 is written by the parent";
    EXPECT_THROW(child->childData(4, "x"), std::logic_error) << "fd 4 is inherited, not a pipe";
    EXPECT_THROW(child->closePipe(4), std::logic_error);
    child->exit(0);
    child->closePipe(3);
    child->closePipe(0);
    EXPECT_EQ(proto->events,
              (std::vector<std::string>{"made", "data 3 three", "exited", "lost 3", "lost 0", "in lost", "ended"}));

    auto tty = std::make_shared<ScriptedChildProtocol>();
    ProcessOptions pty;
    pty.usePTY = true;
    auto t = r.spawnProcess(tty, "prog", {"prog"}, pty);
    auto term = r.processes.at(1).transport;
    EXPECT_EQ(term->openPipes(), std::set<int>{1});
    t->closeStdin();  // does nothing on a terminal (PTY-5)
    EXPECT_TRUE(term->closedChildFDs.empty());
    EXPECT_THROW(t->closeChildFD(0), std::logic_error);
    EXPECT_THROW(t->writeToChild(0, asBytes("x")), std::logic_error);
    t->asTransport().write("typed");
    EXPECT_EQ(term->written[0], "typed");
    term->childData(1, "echo");
    EXPECT_THROW(term->childData(2, "x"), std::logic_error) << "a terminal child writes on fd 1";
    t->signalProcessGroup(SIGWINCH);  // a terminal child leads its own group
    EXPECT_EQ(term->groupSignals, std::vector<int>{SIGWINCH});
    term->kill(SIGHUP);
    term->closePipe(1);
    EXPECT_EQ(tty->events, (std::vector<std::string>{"made", "data 1 echo", "out", "exited", "ended"}));
    EXPECT_THROW(t->signalProcessGroup(SIGWINCH), error::ProcessExitedAlready);
}

TEST_F(TestingTest, MemoryReactor_spawnProcessChecksItsArgumentsLikeAReactor) {
    // FDMAP-6: a null protocol only without pipes; PTY-3: usePTY with childFDs is refused. Nothing is recorded.
    MemoryReactor r;
    EXPECT_THROW(r.spawnProcess(nullptr, "prog", {"prog"}), std::invalid_argument);
    ProcessOptions both;
    both.usePTY = true;
    both.childFDs = ChildFDs{{1, "r"}};
    EXPECT_THROW(r.spawnProcess(std::make_shared<ScriptedChildProtocol>(), "prog", {"prog"}, both),
                 std::invalid_argument);
    EXPECT_TRUE(r.processes.empty());
    ProcessOptions none;
    none.childFDs = ChildFDs{{2, 2}};
    auto t = r.spawnProcess(nullptr, "prog", {"prog"}, none);
    ASSERT_EQ(r.processes.size(), 1u);
    EXPECT_NE(r.processes[0].protocol, nullptr);
    EXPECT_TRUE(r.processes[0].transport->openPipes().empty());
    r.processes[0].transport->exit(0);
    EXPECT_TRUE(r.processes[0].transport->ended());
}

TEST_F(TestingTest, MemoryReactor_spawnProcessOnRaisingMemoryReactorThrowsConnectException) {
    // Like its connect* methods (TEST-18), RaisingMemoryReactor's spawnProcess throws connectException and records nothing.
    RaisingMemoryReactor r(nullptr, std::make_exception_ptr(error::ConnectionRefusedError()));
    auto proto = std::make_shared<ScriptedChildProtocol>();
    IReactorProcess& processes = r;
    EXPECT_THROW(processes.spawnProcess(proto, "prog", {"prog"}), error::ConnectionRefusedError);
    EXPECT_THROW(ReactorRef(r).get<IReactorProcess>().spawnProcess(proto, "prog", {"prog"}),
                 error::ConnectionRefusedError);
    EXPECT_TRUE(r.processes.empty());
    EXPECT_TRUE(proto->events.empty());
    RaisingMemoryReactor unset;
    EXPECT_THROW(unset.spawnProcess(proto, "prog", {"prog"}), std::logic_error);
}
