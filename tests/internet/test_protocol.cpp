// Protocol and Factory base classes (protocols.md PROTO-1 … PROTO-6).
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <weft/internet/error.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/testing.hpp>
#include <weft/log.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using weft::test::LeakCheckedTest;

namespace {

class ProtocolTest : public LeakCheckedTest {};

struct SeesTransport : Protocol {
    bool transportUsable = false;
    bool connectedInside = false;
    void connectionMade() override {
        connectedInside = connected;
        transportUsable = transport != nullptr;
        if (transport) transport->write("hi");
    }
};

struct CountingFactory : Factory {
    explicit CountingFactory(int tag_ = 0) : tag(tag_) {}
    int tag;
    int starts = 0, stops = 0;
    void startFactory() override { ++starts; }
    void stopFactory() override { ++stops; }
};

struct Refusing : Factory {
    std::shared_ptr<Protocol> buildProtocol(const Address&) override { return nullptr; }
};

}  // namespace

TEST_F(ProtocolTest, PROTO_1_makeConnectionSetsStateThenCallsConnectionMade) {
    // PROTO-1: makeConnection sets connected and transport, then calls connectionMade; the transport is usable there.
    auto p = std::make_shared<SeesTransport>();
    auto t = std::make_shared<weft::testing::StringTransport>();
    EXPECT_FALSE(p->connected);
    p->makeConnection(t);
    EXPECT_TRUE(p->connectedInside);
    EXPECT_TRUE(p->transportUsable);
    EXPECT_EQ(p->transport, t);
    EXPECT_EQ(t->value(), "hi");
}

TEST_F(ProtocolTest, PROTO_2_defaultsDoNothingAndLogPrefixIsClassName) {
    // PROTO-2: dataReceived and connectionLost do nothing by default; logPrefix() is the class name.
    auto p = std::make_shared<Protocol>();
    p->dataReceived(asBytes("x"));
    p->connectionLost(Failure(error::ConnectionDone()));
    EXPECT_EQ(p->logPrefix(), "Protocol");
    EXPECT_EQ(SeesTransport().logPrefix(), "SeesTransport");
    EXPECT_EQ(weft::testing::AccumulatingProtocol().logPrefix(), "AccumulatingProtocol");
}

TEST_F(ProtocolTest, PROTO_3_buildProtocolSetsFactory) {
    // PROTO-3: buildProtocol makes an instance of `protocol` and sets its factory (held strongly).
    auto f = Factory::forProtocol<SeesTransport>();
    auto p = f->buildProtocol(IPv4Address("TCP", "127.0.0.1", 1));
    ASSERT_TRUE(p);
    EXPECT_NE(dynamic_cast<SeesTransport*>(p.get()), nullptr);
    EXPECT_EQ(p->factory, f);
    std::weak_ptr<Factory> weak = f;
    f.reset();
    EXPECT_FALSE(weak.expired());  // the protocol keeps its factory alive
}

TEST_F(ProtocolTest, PROTO_3_nullRefusesAndMisuseThrows) {
    // PROTO-3: a factory may return null to refuse; an unset protocol or a factory not in a shared_ptr is a caller error.
    auto refusing = std::make_shared<Refusing>();
    EXPECT_EQ(refusing->buildProtocol(NoAddress{}), nullptr);
    auto unset = std::make_shared<Factory>();
    EXPECT_THROW(unset->buildProtocol(NoAddress{}), std::logic_error);
    Factory onStack;
    onStack.protocol = [] { return std::make_shared<Protocol>(); };
    EXPECT_THROW(onStack.buildProtocol(NoAddress{}), std::logic_error);
}

TEST_F(ProtocolTest, PROTO_4_forProtocolConstructsWithArguments) {
    // PROTO-4: forProtocol<P>(args...) constructs the factory with args and sets protocol = P.
    auto f = Factory::forProtocol<SeesTransport, CountingFactory>(42);
    EXPECT_EQ(f->tag, 42);
    auto p = f->buildProtocol(NoAddress{});
    EXPECT_NE(dynamic_cast<SeesTransport*>(p.get()), nullptr);
    EXPECT_EQ(p->factory, f);
}

TEST_F(ProtocolTest, PROTO_5_doStartAndDoStopCountPorts) {
    // PROTO-5: startFactory runs on 0 → 1, stopFactory on 1 → 0 (with log lines when noisy); doStop at 0 does nothing.
    auto f = std::make_shared<CountingFactory>();
    auto obs = weft::testing::EventLoggingObserver::createWithCleanup();
    f->doStop();
    EXPECT_EQ(f->stops, 0);
    EXPECT_EQ(f->numPorts, 0);
    f->doStart();
    f->doStart();
    EXPECT_EQ(f->starts, 1);
    EXPECT_EQ(f->numPorts, 2);
    f->doStop();
    EXPECT_EQ(f->stops, 0);
    f->doStop();
    EXPECT_EQ(f->stops, 1);
    EXPECT_EQ(f->numPorts, 0);
    std::vector<std::string> messages;
    for (const auto& e : *obs) messages.push_back(e.message);
    ASSERT_EQ(messages.size(), 2u);
    EXPECT_EQ(messages[0].rfind("Starting factory <", 0), 0u) << messages[0];
    EXPECT_NE(messages[0].find("CountingFactory object at"), std::string::npos);
    EXPECT_EQ(messages[1].rfind("Stopping factory <", 0), 0u) << messages[1];
    EXPECT_EQ(f->logPrefix(), "CountingFactory");
    f->noisy = false;
    f->doStart();
    f->doStop();
    EXPECT_EQ(obs->size(), 2u);
}

TEST_F(ProtocolTest, PROTO_6_clientFactoryHooksDoNothingByDefault) {
    // PROTO-6: startedConnecting, clientConnectionFailed and clientConnectionLost do nothing by default.
    auto f = std::make_shared<ClientFactory>();
    auto c = std::make_shared<weft::testing::FakeConnector>(IPv4Address("TCP", "h", 1));
    f->startedConnecting(c);
    f->clientConnectionFailed(c, Failure(error::ConnectionRefusedError()));
    f->clientConnectionLost(c, Failure(error::ConnectionDone()));
    EXPECT_FALSE(c->stoppedConnecting);
    EXPECT_FALSE(c->disconnected);
    static_assert(std::is_base_of_v<Factory, ServerFactory>);
}
