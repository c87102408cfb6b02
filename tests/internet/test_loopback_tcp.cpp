// testing.md TEST-27: loopbackTCP runs a server and a client protocol over a
// real 127.0.0.1 TCP connection, on every reactor backend. (loopbackUNIX waits
// for UNIX sockets, issue #5.)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <weft/internet/error.hpp>
#include <weft/internet/loopback.hpp>
#include <weft/internet/tcp.hpp>

#include "support/faults.hpp"
#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"

using namespace weft;
using namespace weft::test;
using weft::error::ConnectionDone;
using weft::error::ConnectionRefusedError;
using weft::loopback::loopbackTCP;

namespace {

class LoopbackTCPTest : public ReactorTest {};
INSTANTIATE_TEST_SUITE_P(Backends, LoopbackTCPTest, allBackends(), backendParamName);

// errno of a blocking connect to 127.0.0.1:port (0 if it connected).
int connectErrno(std::uint16_t port) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    int e = rc == 0 ? 0 : errno;
    ::close(c);
    return e;
}

// A port number that was free a moment ago.
std::uint16_t freePort() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
    ::close(s);
    return ntohs(sa.sin_port);
}

// What the Deferred delivered.
struct Fired {
    bool fired = false;
    std::optional<Failure> failure;
};

}  // namespace

TEST_P(LoopbackTCPTest, TEST_27_dataBothWaysArrivesExact) {
    // TEST-27: loopbackTCP carries bytes both ways unchanged over real TCP (1 MiB each way), then fires.
    const std::string toClient = randomBytes(1u << 20, 1), toServer = randomBytes(1u << 20, 2);
    auto server = std::make_shared<RecordingProtocol>();
    auto client = std::make_shared<RecordingProtocol>();
    server->onMade = [&](RecordingProtocol& p) { p.send(toClient); };
    client->onMade = [&](RecordingProtocol& p) { p.send(toServer); };
    // Closing flushes what the client wrote first; the server closes on EOF.
    client->onData = [&](RecordingProtocol& p, std::string_view) {
        if (p.received.size() == toClient.size()) p.transport->loseConnection();
    };
    Fired out;
    loopbackTCP(reactor(), server, client).addBoth([&](Result<void> r) {
        out.fired = true;
        if (!r.ok()) out.failure = r.failure();
        reactor().stop();
    });
    runReactor(20);
    ASSERT_TRUE(out.fired);
    EXPECT_FALSE(out.failure) << out.failure->getErrorMessage();
    EXPECT_TRUE(server->tcp() != nullptr) << "the server sees the real TCP transport";
    EXPECT_TRUE(client->tcp() != nullptr);
    ASSERT_EQ(server->received.size(), toServer.size());
    EXPECT_TRUE(server->received == toServer);
    ASSERT_EQ(client->received.size(), toClient.size());
    EXPECT_TRUE(client->received == toClient);
    EXPECT_EQ(server->made, 1);
    EXPECT_EQ(client->made, 1);
    EXPECT_EQ(server->lost, 1);
    EXPECT_EQ(client->lost, 1);
    ASSERT_TRUE(server->lostReason && client->lostReason);
    EXPECT_TRUE(server->lostReason->check<ConnectionDone>());
    EXPECT_TRUE(client->lostReason->check<ConnectionDone>());
}

// TEST-27: both orders of closing; the Deferred fires only after both
// connectionLost calls and once the listening port no longer accepts.
class LoopbackTCPOrderTest : public ReactorTest {
protected:
    void run(bool serverClosesFirst) {
        auto server = std::make_shared<RecordingProtocol>();
        auto client = std::make_shared<RecordingProtocol>();
        std::vector<std::string> journal;
        std::uint16_t port = 0;
        Fired out;
        auto closer = serverClosesFirst ? server : client;
        server->onMade = [&](RecordingProtocol& p) { port = portOf(p.transport->getHost()); };
        closer->onMade = [&, inner = closer->onMade](RecordingProtocol& p) {
            if (inner) inner(p);
            p.send("bye");
            p.transport->loseConnection();
        };
        server->onLost = [&](RecordingProtocol&, const Failure&) {
            journal.push_back(out.fired ? "server.lost after firing" : "server.lost");
        };
        client->onLost = [&](RecordingProtocol&, const Failure&) {
            journal.push_back(out.fired ? "client.lost after firing" : "client.lost");
        };
        int refusedAtFiring = 0;
        loopbackTCP(reactor(), server, client).addBoth([&](Result<void> r) {
            out.fired = true;
            if (!r.ok()) out.failure = r.failure();
            journal.push_back("fired");
            refusedAtFiring = connectErrno(port);
            reactor().stop();
        });
        EXPECT_FALSE(out.fired);
        runReactor(10);
        ASSERT_TRUE(out.fired);
        EXPECT_FALSE(out.failure);
        ASSERT_EQ(journal.size(), 3u);
        EXPECT_EQ(journal.back(), "fired");
        EXPECT_EQ(std::count(journal.begin(), journal.end(), "server.lost"), 1);
        EXPECT_EQ(std::count(journal.begin(), journal.end(), "client.lost"), 1);
        ASSERT_NE(port, 0);
        EXPECT_EQ(refusedAtFiring, ECONNREFUSED) << "the port must have stopped before the Deferred fires";
        EXPECT_EQ((serverClosesFirst ? client : server)->received, "bye");
    }
};
INSTANTIATE_TEST_SUITE_P(Backends, LoopbackTCPOrderTest, allBackends(), backendParamName);

TEST_P(LoopbackTCPOrderTest, TEST_27_firesAfterBothLossesAndPortStop_clientClosesFirst) {
    // TEST-27: the Deferred fires after the client saw the loss, the server side closed and the port stopped.
    run(false);
}

TEST_P(LoopbackTCPOrderTest, TEST_27_firesAfterBothLossesAndPortStop_serverClosesFirst) {
    // TEST-27: same when the server side closes first.
    run(true);
}

TEST_P(LoopbackTCPTest, TEST_27_listensOnTheGivenPortOf127001) {
    // TEST-27: loopbackTCP(server, client, port) listens on 127.0.0.1:port; the server's transport
    // logs under the server protocol's prefix.
    std::uint16_t wanted = freePort();
    auto server = std::make_shared<RecordingProtocol>();
    auto client = std::make_shared<RecordingProtocol>();
    Address host, peer;
    std::string prefix;
    server->onMade = [&](RecordingProtocol& p) {
        host = p.transport->getHost();
        prefix = p.tcp()->logPrefix();
        p.transport->loseConnection();
    };
    client->onMade = [&](RecordingProtocol& p) { peer = p.transport->getPeer(); };
    Fired out;
    loopbackTCP(reactor(), server, client, wanted).addBoth([&](Result<void> r) {
        out.fired = true;
        if (!r.ok()) out.failure = r.failure();
        reactor().stop();
    });
    runReactor(10);
    ASSERT_TRUE(out.fired);
    EXPECT_FALSE(out.failure);
    auto* h = std::get_if<IPv4Address>(&host);
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->host, "127.0.0.1");
    EXPECT_EQ(h->port, wanted);
    auto* p = std::get_if<IPv4Address>(&peer);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->port, wanted);
    EXPECT_EQ(prefix.rfind("RecordingProtocol,", 0), 0u) << prefix;
}

TEST_P(LoopbackTCPTest, TEST_27_halfCloseableServerHearsTheHalfClose) {
    // TEST-27: a half-closeable server protocol gets readConnectionLost through loopbackTCP and may still answer.
    auto server = std::make_shared<HalfCloseProtocol>();
    auto client = std::make_shared<RecordingProtocol>();
    client->onMade = [](RecordingProtocol& p) {
        p.send("question");
        p.tcp()->loseWriteConnection();
    };
    server->onReadLost = [](HalfCloseProtocol& p) {
        p.send("answer to " + p.received);
        p.transport->loseConnection();
    };
    Fired out;
    loopbackTCP(reactor(), server, client).addBoth([&](Result<void> r) {
        out.fired = true;
        if (!r.ok()) out.failure = r.failure();
        reactor().stop();
    });
    runReactor(10);
    ASSERT_TRUE(out.fired);
    EXPECT_FALSE(out.failure);
    EXPECT_EQ(server->readLost, 1);
    EXPECT_EQ(server->received, "question");
    EXPECT_EQ(client->received, "answer to question");
    EXPECT_EQ(server->lost, 1);
    EXPECT_EQ(client->lost, 1);
}

TEST_P(LoopbackTCPTest, TEST_27_releasesBothProtocolsAndLeavesNothingBehind) {
    // TEST-27: once the Deferred fired nothing holds the protocols (no cycle through port, factories or
    // connector); the fixture checks descriptors, readers, writers and calls.
    auto server = std::make_shared<RecordingProtocol>();
    auto client = std::make_shared<RecordingProtocol>();
    client->onMade = [](RecordingProtocol& p) { p.transport->loseConnection(); };
    std::weak_ptr<Protocol> weakServer = server, weakClient = client;
    bool fired = false;
    {
        auto d = loopbackTCP(reactor(), server, client);
        server.reset();
        client.reset();
        d.addBoth([&](Result<void> r) {
            fired = r.ok();
            reactor().stop();
        });
    }
    EXPECT_FALSE(weakServer.expired()) << "the pair is owned until the connection ends";
    runReactor(10);
    ASSERT_TRUE(fired);
    EXPECT_TRUE(weakServer.expired());
    EXPECT_TRUE(weakClient.expired());
}

TEST_P(LoopbackTCPTest, TEST_27_failedConnectFailsTheDeferredAndStopsThePort) {
    // TEST-27 (Better than Twisted, which never fires): a failed connection attempt stops the port and
    // fails the Deferred with the attempt's reason.
    auto server = std::make_shared<RecordingProtocol>();
    auto client = std::make_shared<RecordingProtocol>();
    Fired out;
    {
        ScopedFaults faults;
        faults.fail(Call::connect, ECONNREFUSED);
        loopbackTCP(reactor(), server, client).addBoth([&](Result<void> r) {
            out.fired = true;
            if (!r.ok()) out.failure = r.failure();
            reactor().stop();
        });
        runReactor(10);
    }
    ASSERT_TRUE(out.fired);
    ASSERT_TRUE(out.failure);
    EXPECT_TRUE(out.failure->check<ConnectionRefusedError>()) << out.failure->typeName();
    EXPECT_EQ(server->made, 0);
    EXPECT_EQ(client->made, 0);
    EXPECT_EQ(server.use_count(), 1) << "the port let go of the server";
    EXPECT_EQ(client.use_count(), 1) << "the connector let go of the client";
    EXPECT_TRUE(reactor().getReaders().empty()) << "the port stopped";
}

TEST_P(LoopbackTCPTest, TEST_27_nullProtocolIsACallerError) {
    // TEST-27: both protocols are required; nothing is started for a null one.
    auto p = std::make_shared<RecordingProtocol>();
    EXPECT_THROW(loopbackTCP(reactor(), nullptr, p), std::invalid_argument);
    EXPECT_THROW(loopbackTCP(reactor(), p, nullptr), std::invalid_argument);
    EXPECT_TRUE(reactor().getReaders().empty());
}
