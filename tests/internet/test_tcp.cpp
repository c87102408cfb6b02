// tcp.md: listenTCP/Port, accepting, the Server transport, connection behaviour.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <weft/internet/error.hpp>
#include <weft/internet/tcp.hpp>

#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"

using namespace weft;
using namespace weft::test;
using weft::error::CannotListenError;
using weft::error::ConnectionDone;
using weft::error::ConnectionLost;
using weft::error::ConnectionRefusedError;

namespace {

class TCPTest : public ReactorTest {};
INSTANTIATE_TEST_SUITE_P(Backends, TCPTest, allBackends(), backendParamName);

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    return s;
}

// TCP-1: listenTCP creates, binds and listens before returning a port that is
// already accepting; the factory is started.
TEST_P(TCPTest, TCP_1_listenReturnsAcceptingPort) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    EXPECT_TRUE(port->listening());
    EXPECT_EQ(f->started, 1);
    EXPECT_TRUE(reactor().isReading(port.get()));
    // A plain blocking client connects at once: the socket is listening.
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(portNumber(*port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(c);
    port->stopListening().addBoth([this](Result<void>) { reactor().stop(); });
    runReactor();
    EXPECT_EQ(f->stopped, 1);
}

// TCP-1: a port that cannot be bound throws CannotListenError and leaves nothing
// registered and the factory not started.
TEST_P(TCPTest, TCP_1_cannotBindThrowsAndStartsNothing) {
    auto f1 = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f1, 50, "127.0.0.1");
    auto f2 = std::make_shared<RecordingFactory>();
    try {
        reactor().listenTCP(portNumber(*port), f2, 50, "127.0.0.1");
        FAIL() << "expected CannotListenError";
    } catch (const CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EADDRINUSE);
        EXPECT_EQ(e.port, std::to_string(portNumber(*port)));
        EXPECT_EQ(e.interface, "127.0.0.1");
    }
    EXPECT_EQ(f2->started, 0);
    EXPECT_EQ(reactor().getReaders().size(), 1u);
    port->connectionLost(Failure(ConnectionDone()));
}

// TCP-4: port 0 gets a kernel-chosen port and getHost() reports it.
TEST_P(TCPTest, TCP_4_portZeroReportsRealPort) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    Address a = port->getHost();
    auto* v4 = std::get_if<IPv4Address>(&a);
    ASSERT_NE(v4, nullptr);
    EXPECT_EQ(v4->type, "TCP");
    EXPECT_EQ(v4->host, "127.0.0.1");
    EXPECT_NE(v4->port, 0);
    port->connectionLost(Failure(ConnectionDone()));
}

// TCP-25: write + writeSequence + loseConnection inside connectionMade deliver
// every byte, then the peer sees ConnectionDone; 60 MiB written at once arrives exact.
TEST_P(TCPTest, TCP_25_writeThenLoseConnectionDeliversEverything) {
    const std::string big = pattern(60u << 20);
    auto server = std::make_shared<RecordingFactory>();
    server->onBuilt = [&](RecordingProtocol& p) {
        p.onMade = [&](RecordingProtocol& self) {
            self.send("hello ");
            std::string_view parts[] = {"wor", "ld "};
            Bytes chunks[] = {asBytes(parts[0]), asBytes(parts[1])};
            self.transport->writeSequence(chunks);
            self.send(big);
            self.transport->loseConnection();
        };
    };
    auto port = reactor().listenTCP(0, server, 50, "127.0.0.1");
    auto client = std::make_shared<RecordingClientFactory>();
    client->onLost = [&](auto&, auto&) {
        port->stopListening().addBoth([this](Result<void>) { reactor().stop(); });
    };
    auto connector = reactor().connectTCP("127.0.0.1", portNumber(*port), client);
    runReactor(30);
    ASSERT_EQ(client->built.size(), 1u);
    auto& got = client->built[0]->received;
    ASSERT_EQ(got.size(), big.size() + 12);
    EXPECT_EQ(got.substr(0, 12), "hello world ");
    EXPECT_TRUE(got.compare(12, std::string::npos, big) == 0);
    ASSERT_TRUE(client->built[0]->lostReason);
    EXPECT_TRUE(client->built[0]->lostReason->check<ConnectionDone>());
}

// TCP-40: a refused connection is reported as clientConnectionFailed with
// ConnectionRefusedError whose osError is ECONNREFUSED.
TEST_P(TCPTest, TCP_40_refusedConnectionReportsConnectionRefusedError) {
    RefusingPort refusing;
    auto client = std::make_shared<RecordingClientFactory>();
    client->onFailed = [&](auto&, auto&) { reactor().stop(); };
    auto connector = reactor().connectTCP("127.0.0.1", refusing.port, client);
    runReactor();
    ASSERT_EQ(client->failed, 1);
    auto* e = client->failReason->get<ConnectionRefusedError>();
    ASSERT_NE(e, nullptr) << client->failReason->typeName();
    EXPECT_EQ(e->osError(), ECONNREFUSED);
    EXPECT_EQ(client->stopped, 1);
    EXPECT_EQ(connector->state(), tcp::Connector::State::disconnected);
}

}  // namespace
