// protocols.md PF-1 … PF-4: the port forwarder (ProxyFactory, ProxyServer,
// ProxyClient, ProxyClientFactory) over real TCP on 127.0.0.1, on every backend:
// a client (weft or a plain socket) → the proxy's listening port → a recording
// backend server.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <weft/internet/error.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/testing.hpp>
#include <weft/protocols/portforward.hpp>

#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"

using namespace weft;
using namespace weft::test;
using weft::error::ConnectionDone;
using weft::portforward::ProxyClientFactory;
using weft::portforward::ProxyFactory;
using weft::portforward::ProxyServer;

namespace {

// Bytes waiting, unread, in a socket's receive queue.
int unread(int fd) {
    int n = -1;
    if (::ioctl(fd, FIONREAD, &n) != 0) return -1;
    return n;
}

void setBuf(int fd, int option, int bytes) { ::setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes); }

// A ProxyFactory that remembers (weakly) every ProxyServer it built.
class RecordingProxyFactory : public ProxyFactory {
public:
    using ProxyFactory::ProxyFactory;
    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override {
        auto p = ProxyFactory::buildProtocol(addr);
        servers.push_back(std::static_pointer_cast<ProxyServer>(p));
        return p;
    }
    std::vector<std::weak_ptr<ProxyServer>> servers;
};

// A plain client socket: blocking connect, then non-blocking I/O.
struct PlainClient {
    explicit PlainClient(std::uint16_t port, int rcvbuf = 0, int sndbuf = 0) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (rcvbuf) setBuf(fd, SO_RCVBUF, rcvbuf);
        if (sndbuf) setBuf(fd, SO_SNDBUF, sndbuf);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    ~PlainClient() { close(); }
    PlainClient(const PlainClient&) = delete;
    PlainClient& operator=(const PlainClient&) = delete;

    void close() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    std::uint16_t localPort() const {
        sockaddr_in sa{};
        socklen_t len = sizeof sa;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
        return ntohs(sa.sin_port);
    }
    // Sends what the kernel takes now of data[sent...]; returns bytes taken.
    std::size_t pump(const std::string& data) {
        std::size_t before = sent;
        while (sent < data.size()) {
            ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) break;
            sent += static_cast<std::size_t>(n);
        }
        return sent - before;
    }
    // Reads what is there into `received`; sets eof at end of stream.
    void drain() {
        char buf[65536];
        for (;;) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n > 0) {
                received.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) eof = true;
            else if (errno != EAGAIN && errno != EWOULDBLOCK) eof = error = true;
            return;
        }
    }

    int fd = -1;
    bool connected = false;
    std::size_t sent = 0;
    std::string received;
    bool eof = false, error = false;
};

class PortforwardTest : public ReactorTest {
protected:
    void TearDown() override {
        stopPorts();
        // Break the recording factories' cycles (factory → built protocol → factory).
        backend->built.clear();
        for (auto& f : clients) {
            f->built.clear();
            f->connectors.clear();
        }
        ReactorTest::TearDown();
    }

    // A recording client factory whose cycles TearDown breaks.
    std::shared_ptr<RecordingClientFactory> clientFactory() {
        clients.push_back(std::make_shared<RecordingClientFactory>());
        return clients.back();
    }

    void listenBackend() { backendPort = reactor().listenTCP(0, backend, 50, "127.0.0.1"); }
    std::uint16_t backendNumber() const { return portNumber(*backendPort); }
    // A ProxyFactory(reactor, "127.0.0.1", backend port).
    std::shared_ptr<RecordingProxyFactory> directProxy() {
        return std::make_shared<RecordingProxyFactory>(reactor(), "127.0.0.1", backendNumber());
    }
    void listenProxy(std::shared_ptr<RecordingProxyFactory> f) {
        proxy = std::move(f);
        proxyPort = reactor().listenTCP(0, proxy, 50, "127.0.0.1");
    }
    std::uint16_t proxyNumber() const { return portNumber(*proxyPort); }

    // The accepted (client-facing) transport of the i-th proxied connection.
    std::shared_ptr<tcp::Connection> serverTransport(std::size_t i) {
        if (i >= proxy->servers.size()) return nullptr;
        auto s = proxy->servers[i].lock();
        return s ? std::dynamic_pointer_cast<tcp::Connection>(s->transport) : nullptr;
    }
    // The backend-facing transport of the i-th proxied connection, once linked.
    std::shared_ptr<tcp::Connection> clientTransport(std::size_t i) {
        if (i >= proxy->servers.size()) return nullptr;
        auto s = proxy->servers[i].lock();
        if (!s || !s->peer) return nullptr;
        return std::dynamic_pointer_cast<tcp::Connection>(s->peer->transport);
    }

    // Iterates the reactor until pred() holds; false after `seconds`.
    template <class P>
    bool spin(P pred, double seconds = 10) {
        double end = reactor().seconds() + seconds;
        while (!pred()) {
            if (reactor().seconds() > end) return false;
            reactor().iterate(0.002);
        }
        return true;
    }
    // Iterates for `seconds`, calling each() after every iteration.
    template <class F>
    void spinFor(double seconds, F each) {
        double end = reactor().seconds() + seconds;
        while (reactor().seconds() < end) {
            reactor().iterate(0.002);
            each();
        }
    }

    void stopPorts() {
        int pending = 0;
        for (auto* p : {&proxyPort, &backendPort}) {
            if (!*p) continue;
            ++pending;
            (*p)->stopListening().addBoth([&pending](Result<void>) { --pending; });
            p->reset();
        }
        EXPECT_TRUE(spin([&] { return pending == 0; }, 5));
    }

    std::shared_ptr<RecordingFactory> backend = std::make_shared<RecordingFactory>();
    std::shared_ptr<tcp::Port> backendPort, proxyPort;
    std::shared_ptr<RecordingProxyFactory> proxy;
    std::vector<std::shared_ptr<RecordingClientFactory>> clients;
};
INSTANTIATE_TEST_SUITE_P(Backends, PortforwardTest, allBackends(), backendParamName);

bool hasLine(const std::vector<LogCapture::Entry>& entries, std::string_view start) {
    return std::any_of(entries.begin(), entries.end(), [&](auto& e) { return e.message.rfind(start, 0) == 0; });
}

}  // namespace

// ---- PF-1, PF-2 in memory: a MemoryReactor and StringTransports (Twisted test_registerProducers) ----

TEST(PortforwardInMemory, PF_2_linkedThroughAMemoryReactorEachTransportProducesForTheOther) {
    // PF-1/PF-2: ProxyFactory(reactor, host, port) takes any IReactorTCP: the server pauses its transport and asks the reactor for one connectTCP(host, port); once the test completes that connection, each transport is the other's streaming producer, the server's transport is resumed and bytes pass both ways.
    weft::testing::MemoryReactor reactor;
    auto factory = std::make_shared<ProxyFactory>(reactor, "backend.example", 8080);
    auto server = factory->buildProtocol(IPv4Address("TCP", "10.0.0.1", 5555));
    auto serverTransport = std::make_shared<weft::testing::StringTransport>();
    server->makeConnection(serverTransport);
    EXPECT_EQ(serverTransport->producerState, weft::testing::StringTransport::ProducerState::paused);
    ASSERT_EQ(reactor.tcpClients.size(), 1u);
    EXPECT_EQ(reactor.tcpClients[0].host, "backend.example");
    EXPECT_EQ(reactor.tcpClients[0].port, 8080);

    auto client = reactor.tcpClients[0].factory->buildProtocol(IPv4Address("TCP", "192.0.2.1", 8080));
    ASSERT_TRUE(client);
    auto clientTransport = std::make_shared<weft::testing::StringTransport>();
    client->makeConnection(clientTransport);
    EXPECT_EQ(serverTransport->producer, clientTransport);
    EXPECT_EQ(serverTransport->streaming, std::optional<bool>(true));
    EXPECT_EQ(clientTransport->producer, serverTransport);
    EXPECT_EQ(clientTransport->streaming, std::optional<bool>(true));
    EXPECT_EQ(serverTransport->producerState, weft::testing::StringTransport::ProducerState::producing);

    server->dataReceived(asBytes("request"));
    client->dataReceived(asBytes("answer"));
    EXPECT_EQ(clientTransport->value(), "request");
    EXPECT_EQ(serverTransport->value(), "answer");

    // PF-4: the end of one side closes the other; a transport that cannot half-close is closed,
    // though the other side's transport is still its producer: that must not hold the close (FD-13).
    std::dynamic_pointer_cast<IHalfCloseableProtocol>(client)->readConnectionLost();
    EXPECT_TRUE(serverTransport->disconnecting);
    EXPECT_TRUE(serverTransport->disconnectingDespiteProducer);
    client->connectionLost(Failure(ConnectionDone()));
    server->connectionLost(Failure(ConnectionDone()));
}

// ---- PF-1 ------------------------------------------------------------------------------------

TEST_P(PortforwardTest, PF_1_serverPausesReadingUntilTheBackendConnects) {
    // PF-1: ProxyServer.connectionMade pauses reading from the client before it starts the backend
    // connection; bytes the client sends meanwhile stay unread in the kernel and arrive after the link.
    listenBackend();
    std::shared_ptr<ProxyClientFactory> pending;
    int connectCalls = 0;
    int readingWhenConnecting = -1;
    listenProxy(std::make_shared<RecordingProxyFactory>([&](const std::shared_ptr<ProxyClientFactory>& f) {
        ++connectCalls;
        pending = f;  // connected by the test, later
        auto t = serverTransport(0);
        readingWhenConnecting = t ? reactor().isReading(t.get()) : -1;
    }));
    PlainClient c(proxyNumber());
    ASSERT_TRUE(c.connected);
    const std::string early = "sent before the backend is connected";
    ASSERT_EQ(c.pump(early), early.size());
    ASSERT_TRUE(spin([&] { return pending != nullptr; }));
    auto s = serverTransport(0);
    ASSERT_TRUE(s);
    EXPECT_EQ(readingWhenConnecting, 0) << "connectionMade must pause reading before connecting";
    EXPECT_FALSE(reactor().isReading(s.get()));
    // The bytes are there, and stay unread while the backend is not connected.
    ASSERT_TRUE(spin([&] { return unread(s->getHandle()) == static_cast<int>(early.size()); }, 5));
    spinFor(0.05, [] {});
    EXPECT_EQ(unread(s->getHandle()), static_cast<int>(early.size()));
    EXPECT_FALSE(reactor().isReading(s.get()));
    EXPECT_TRUE(backend->built.empty());

    reactor().connectTCP("127.0.0.1", backendNumber(), pending);
    ASSERT_TRUE(spin([&] { return backend->built.size() == 1 && backend->built[0]->received == early; }));
    EXPECT_TRUE(reactor().isReading(s.get())) << "reading resumes once linked";
    EXPECT_EQ(unread(s->getHandle()), 0);
    EXPECT_EQ(connectCalls, 1);

    c.close();
    EXPECT_TRUE(spin([&] { return backend->built[0]->lost == 1 && s->disconnected(); }));
}

TEST_P(PortforwardTest, PF_1_eachConnectionGetsItsOwnBackendConnection) {
    // PF-1: ProxyFactory(reactor, host, port) builds one ProxyServer per accepted connection, and each
    // connects to host:port once, with a ProxyClientFactory bound to that server.
    listenBackend();
    listenProxy(directProxy());
    PlainClient a(proxyNumber()), b(proxyNumber());
    ASSERT_TRUE(a.connected && b.connected);
    a.pump("from A");
    b.pump("from B");
    ASSERT_TRUE(spin([&] {
        return backend->built.size() == 2 && backend->built[0]->received.size() == 6 &&
               backend->built[1]->received.size() == 6;
    }));
    ASSERT_EQ(proxy->servers.size(), 2u);
    for (std::size_t i = 0; i < 2; ++i) {
        auto server = proxy->servers[i].lock();
        ASSERT_TRUE(server && server->peer);
        EXPECT_EQ(server->peer->peer, server) << "the backend side is linked to its own server";
        auto st = serverTransport(i), ct = clientTransport(i);
        ASSERT_TRUE(st && ct);
        // Which plain client is this, and which backend connection?
        std::string expected = portOf(st->getPeer()) == a.localPort() ? "from A" : "from B";
        auto it = std::find_if(backend->built.begin(), backend->built.end(),
                               [&](auto& p) { return portOf(p->transport->getPeer()) == portOf(ct->getHost()); });
        ASSERT_NE(it, backend->built.end());
        EXPECT_EQ((*it)->received, expected);
        EXPECT_EQ(portOf(ct->getPeer()), backendNumber());
    }
    a.close();
    b.close();
    EXPECT_TRUE(spin([&] { return backend->built[0]->lost == 1 && backend->built[1]->lost == 1; }));
}

// ---- PF-2 ------------------------------------------------------------------------------------

TEST_P(PortforwardTest, PF_2_transportsAreEachOthersStreamingProducers) {
    // PF-2: once the backend connects, each transport is registered as the other's producer and
    // reading from the client resumes.
    listenBackend();
    listenProxy(directProxy());
    PlainClient c(proxyNumber());
    ASSERT_TRUE(spin([&] { return clientTransport(0) != nullptr && backend->built.size() == 1; }));
    auto s = serverTransport(0), t = clientTransport(0);
    ASSERT_TRUE(s && t);
    EXPECT_EQ(s->producer(), std::dynamic_pointer_cast<IProducer>(t));
    EXPECT_EQ(t->producer(), std::dynamic_pointer_cast<IProducer>(s));
    EXPECT_TRUE(reactor().isReading(s.get()));
    EXPECT_TRUE(reactor().isReading(t.get()));
    EXPECT_FALSE(s->producerPaused());
    EXPECT_FALSE(t->producerPaused());
    c.close();
    EXPECT_TRUE(spin([&] { return backend->built[0]->lost == 1 && s->disconnected() && t->disconnected(); }));
    EXPECT_FALSE(s->producer());
    EXPECT_FALSE(t->producer());
}

TEST_P(PortforwardTest, PF_2_slowBackendThrottlesTheClient) {
    // PF-2: a backend that stops reading pauses the proxy's reading from the client (a streaming
    // producer), so the proxy buffers at most a few × bufferSize while the client pushes 8 MiB;
    // everything arrives once the backend reads again.
    const std::string data = randomBytes(8u << 20, 3);
    listenBackend();
    setBuf(backendPort->fileno(), SO_RCVBUF, 32 * 1024);  // inherited by the accepted socket
    backend->onBuilt = [](RecordingProtocol& p) { p.onMade = [](RecordingProtocol& q) { q.tcp()->pauseProducing(); }; };
    listenProxy(directProxy());
    setBuf(proxyPort->fileno(), SO_RCVBUF, 64 * 1024);
    PlainClient c(proxyNumber(), 0, 32 * 1024);
    ASSERT_TRUE(spin([&] { return clientTransport(0) != nullptr && backend->built.size() == 1; }));
    auto s = serverTransport(0), t = clientTransport(0);
    setBuf(t->getHandle(), SO_SNDBUF, 64 * 1024);  // kernel buffers small and fixed: the queue shows
    std::size_t maxQueued = 0;
    auto sample = [&] {
        c.pump(data);
        maxQueued = std::max({maxQueued, t->pendingBytes(), s->pendingBytes()});
    };
    spinFor(0.5, sample);
    const std::size_t bound = 4 * t->bufferSize;
    EXPECT_LE(maxQueued, bound) << "the proxy must stop reading from the client";
    EXPECT_TRUE(t->producerPaused());
    EXPECT_FALSE(reactor().isReading(s.get())) << "the client side must be paused";
    EXPECT_LT(c.sent, data.size()) << "the client must be held back";
    EXPECT_LT(backend->built[0]->received.size(), data.size());

    backend->built[0]->tcp()->resumeProducing();
    ASSERT_TRUE(spin(
        [&] {
            sample();
            return backend->built[0]->received.size() >= data.size();
        },
        20));
    EXPECT_LE(maxQueued, bound);
    EXPECT_TRUE(backend->built[0]->received == data) << "bytes must arrive unchanged";
    c.close();
    EXPECT_TRUE(spin([&] { return backend->built[0]->lost == 1 && s->disconnected() && t->disconnected(); }));
}

TEST_P(PortforwardTest, PF_2_slowClientThrottlesTheBackend) {
    // PF-2: the other direction: a client that does not read pauses the proxy's reading from the
    // backend, so the proxy buffers at most a few × bufferSize of the backend's 8 MiB.
    const std::string data = randomBytes(8u << 20, 4);
    listenBackend();
    setBuf(backendPort->fileno(), SO_SNDBUF, 32 * 1024);
    backend->onBuilt = [&](RecordingProtocol& p) { p.onMade = [&](RecordingProtocol& q) { q.send(data); }; };
    listenProxy(directProxy());
    PlainClient c(proxyNumber(), 32 * 1024);
    ASSERT_TRUE(spin([&] { return clientTransport(0) != nullptr && backend->built.size() == 1; }));
    auto s = serverTransport(0), t = clientTransport(0);
    setBuf(s->getHandle(), SO_SNDBUF, 64 * 1024);
    setBuf(t->getHandle(), SO_RCVBUF, 64 * 1024);
    std::size_t maxQueued = 0;
    auto sample = [&] { maxQueued = std::max({maxQueued, t->pendingBytes(), s->pendingBytes()}); };
    spinFor(0.5, sample);
    const std::size_t bound = 4 * s->bufferSize;
    EXPECT_LE(maxQueued, bound) << "the proxy must stop reading from the backend";
    EXPECT_TRUE(s->producerPaused());
    EXPECT_FALSE(reactor().isReading(t.get())) << "the backend side must be paused";
    EXPECT_GT(backend->built[0]->tcp()->pendingBytes(), 0u) << "the backend must be held back";

    ASSERT_TRUE(spin(
        [&] {
            c.drain();
            sample();
            return c.received.size() >= data.size() || c.eof;
        },
        20));
    EXPECT_LE(maxQueued, bound);
    ASSERT_EQ(c.received.size(), data.size());
    EXPECT_TRUE(c.received == data) << "bytes must arrive unchanged";
    c.close();
    EXPECT_TRUE(spin([&] { return backend->built[0]->lost == 1 && s->disconnected() && t->disconnected(); }));
}

// ---- PF-3 ------------------------------------------------------------------------------------

TEST_P(PortforwardTest, PF_3_bytesBothWaysArriveUnchanged) {
    // PF-3: bytes from either side are written unchanged to the other (random 4 MiB each way, at once).
    const std::string up = randomBytes(4u << 20, 5), down = randomBytes(4u << 20, 6);
    listenBackend();
    backend->onBuilt = [&](RecordingProtocol& p) { p.onMade = [&](RecordingProtocol& q) { q.send(down); }; };
    listenProxy(directProxy());
    auto client = clientFactory();
    client->onBuilt = [&](RecordingProtocol& p) {
        p.onMade = [&](RecordingProtocol& q) { q.send(up); };
        p.onData = [&](RecordingProtocol& q, std::string_view) {
            if (q.received.size() == down.size()) q.transport->loseConnection();
        };
    };
    auto connector = reactor().connectTCP("127.0.0.1", proxyNumber(), client);
    ASSERT_TRUE(spin(
        [&] {
            return client->built.size() == 1 && client->built[0]->lost == 1 && backend->built.size() == 1 &&
                   backend->built[0]->lost == 1;
        },
        25));
    ASSERT_EQ(client->built[0]->received.size(), down.size());
    EXPECT_TRUE(client->built[0]->received == down);
    ASSERT_EQ(backend->built[0]->received.size(), up.size());
    EXPECT_TRUE(backend->built[0]->received == up);
    EXPECT_TRUE(client->built[0]->lostReason->check<ConnectionDone>());
    EXPECT_TRUE(backend->built[0]->lostReason->check<ConnectionDone>());
}

// ---- PF-4 ------------------------------------------------------------------------------------

TEST_P(PortforwardTest, PF_4_clientConnectionEndingClosesTheBackend) {
    // PF-4: when the client side's connection ends (here: reset), the backend side is closed with
    // loseConnection().
    listenBackend();
    listenProxy(directProxy());
    auto client = clientFactory();
    client->onBuilt = [](RecordingProtocol& p) { p.onMade = [](RecordingProtocol& q) { q.send("hi"); }; };
    auto connector = reactor().connectTCP("127.0.0.1", proxyNumber(), client);
    ASSERT_TRUE(spin([&] { return backend->built.size() == 1 && backend->built[0]->received == "hi"; }));
    auto s = serverTransport(0), t = clientTransport(0);
    ASSERT_TRUE(s && t);
    client->built[0]->tcp()->abortConnection();
    ASSERT_TRUE(spin([&] { return backend->built[0]->lost == 1; }, 5)) << "the backend must be closed";
    EXPECT_TRUE(backend->built[0]->lostReason->check<ConnectionDone>()) << backend->built[0]->lostReason->typeName();
    EXPECT_TRUE(spin([&] { return s->disconnected() && t->disconnected(); }));
    EXPECT_TRUE(s->disconnected() && t->disconnected());
}

TEST_P(PortforwardTest, PF_4_backendClosingClosesTheClientAfterItsData) {
    // PF-4: when the backend closes, the client side is closed once what the backend sent (1 MiB)
    // has been delivered.
    const std::string answer = randomBytes(1u << 20, 7);
    listenBackend();
    backend->onBuilt = [&](RecordingProtocol& p) {
        p.onMade = [&](RecordingProtocol& q) {
            q.send(answer);
            q.transport->loseConnection();
        };
    };
    listenProxy(directProxy());
    auto client = clientFactory();
    auto connector = reactor().connectTCP("127.0.0.1", proxyNumber(), client);
    ASSERT_TRUE(spin([&] { return client->built.size() == 1 && client->built[0]->lost == 1; }));
    EXPECT_TRUE(client->built[0]->received == answer);
    EXPECT_TRUE(client->built[0]->lostReason->check<ConnectionDone>());
    ASSERT_TRUE(spin([&] { return backend->built.size() == 1 && backend->built[0]->lost == 1; }));
}

TEST_P(PortforwardTest, PF_4_backendResetClosesTheClient) {
    // PF-4: when the backend connection ends abnormally (reset), the client side is closed fully
    // (loseConnection), not just half-closed: the proxy's client-facing transport is disconnected
    // although the half-closeable client keeps its own side open.
    listenBackend();
    std::shared_ptr<tcp::Connection> s;
    backend->onBuilt = [&](RecordingProtocol& p) {
        p.onData = [&](RecordingProtocol& q, std::string_view) {
            s = serverTransport(0);
            q.tcp()->abortConnection();
        };
    };
    listenProxy(directProxy());
    auto client = std::make_shared<HalfCloseProtocol>();
    auto cf = clientFactory();
    cf->make = [&](const Address&) { return client; };
    client->onMade = [](RecordingProtocol& q) { q.send("hi"); };
    auto connector = reactor().connectTCP("127.0.0.1", proxyNumber(), cf);
    ASSERT_TRUE(spin([&] { return backend->built.size() == 1 && backend->built[0]->lost == 1; }, 5));
    ASSERT_TRUE(s);
    EXPECT_TRUE(spin([&] { return s->disconnected(); }, 5)) << "the client side must be closed, not half-closed";
    EXPECT_TRUE(spin([&] { return client->readLost == 1; }, 5));
    EXPECT_EQ(client->lost, 0);
    client->transport->loseConnection();
    EXPECT_TRUE(spin([&] { return client->lost == 1; }, 5));
}

TEST_P(PortforwardTest, PF_4_refusedBackendClosesTheClientAndLogs) {
    // PF-4: a failed backend connection closes the client; a noisy factory logs
    // "Unable to connect to peer: <reason>" at info level.
    RefusingPort refusing;
    listenProxy(std::make_shared<RecordingProxyFactory>(reactor(), "127.0.0.1", refusing.port));
    ASSERT_TRUE(proxy->noisy);
    auto client = clientFactory();
    auto connector = reactor().connectTCP("127.0.0.1", proxyNumber(), client);
    ASSERT_TRUE(spin([&] { return client->built.size() == 1 && client->built[0]->lost == 1; }, 5));
    EXPECT_TRUE(client->built[0]->lostReason->check<ConnectionDone>());
    auto entries = logs.entries();
    auto it = std::find_if(entries.begin(), entries.end(),
                           [](auto& e) { return e.message.rfind("Unable to connect to peer: ", 0) == 0; });
    ASSERT_NE(it, entries.end()) << "no \"Unable to connect to peer\" line";
    EXPECT_EQ(it->level, log::Level::info);
    EXPECT_NE(it->message.find("refused"), std::string::npos) << it->message;
}

TEST_P(PortforwardTest, PF_4_quietFactoryClosesTheClientWithoutLogging) {
    // PF-4: the "Unable to connect to peer" line is logged only when the factory is noisy.
    RefusingPort refusing;
    auto f = std::make_shared<RecordingProxyFactory>(reactor(), "127.0.0.1", refusing.port);
    f->noisy = false;
    listenProxy(f);
    auto client = clientFactory();
    auto connector = reactor().connectTCP("127.0.0.1", proxyNumber(), client);
    ASSERT_TRUE(spin([&] { return client->built.size() == 1 && client->built[0]->lost == 1; }, 5));
    EXPECT_FALSE(hasLine(logs.entries(), "Unable to connect to peer"));
}

TEST_P(PortforwardTest, PF_4_halfClosedClientStillGetsTheFullAnswer) {
    // PF-4 (Better than Twisted): a client that shuts down its write side still receives everything the
    // backend answers before the close; the half-close is passed on to the backend.
    const std::string tail = randomBytes(1u << 20, 8);
    listenBackend();
    backend->make = [](const Address&) { return std::make_shared<HalfCloseProtocol>(); };
    backend->onBuilt = [&](RecordingProtocol& p) {
        static_cast<HalfCloseProtocol&>(p).onReadLost = [&](HalfCloseProtocol& q) {
            q.send("got " + q.received + "\n");
            q.send(tail);
            q.transport->loseConnection();
        };
    };
    listenProxy(directProxy());
    PlainClient c(proxyNumber());
    ASSERT_TRUE(c.connected);
    c.pump("request");
    ASSERT_EQ(::shutdown(c.fd, SHUT_WR), 0);
    ASSERT_TRUE(spin(
        [&] {
            c.drain();
            return c.eof;
        },
        10));
    EXPECT_FALSE(c.error);
    const std::string expected = "got request\n" + tail;
    ASSERT_EQ(c.received.size(), expected.size());
    EXPECT_TRUE(c.received == expected);
    ASSERT_EQ(backend->built.size(), 1u);
    EXPECT_EQ(static_cast<HalfCloseProtocol&>(*backend->built[0]).readLost, 1);
    EXPECT_TRUE(spin([&] { return backend->built[0]->lost == 1; }));
}

TEST_P(PortforwardTest, PF_4_clientGoneBeforeTheBackendConnects) {
    // PF-4: a client that leaves before the backend connection is made: the late backend connection is
    // closed at once and nothing is left behind.
    listenBackend();
    std::shared_ptr<ProxyClientFactory> pending;
    listenProxy(
        std::make_shared<RecordingProxyFactory>([&](const std::shared_ptr<ProxyClientFactory>& f) { pending = f; }));
    std::shared_ptr<tcp::Connection> s;
    {
        PlainClient c(proxyNumber());
        ASSERT_TRUE(spin([&] { return pending != nullptr; }));
        s = serverTransport(0);
        ASSERT_TRUE(s);
    }
    // The paused server side has not seen the end of stream yet: once linked it reads it, and the
    // backend connection must then be closed.
    reactor().connectTCP("127.0.0.1", backendNumber(), pending);
    pending.reset();
    ASSERT_TRUE(spin([&] { return backend->built.size() == 1 && backend->built[0]->lost == 1; }, 5))
        << "the backend connection must be closed";
    EXPECT_TRUE(spin([&] { return s->disconnected(); }, 5));
}

TEST_P(PortforwardTest, PF_4_clientGoneBeforeTheBackendConnects_serverKeptAlive) {
    // PF-4: same, while something else still holds the ProxyServer: the late backend connection must
    // still be closed, not linked to the dead client side.
    listenBackend();
    std::shared_ptr<ProxyClientFactory> pending;
    listenProxy(
        std::make_shared<RecordingProxyFactory>([&](const std::shared_ptr<ProxyClientFactory>& f) { pending = f; }));
    std::shared_ptr<ProxyServer> kept;
    std::shared_ptr<tcp::Connection> s;
    {
        PlainClient c(proxyNumber());
        ASSERT_TRUE(spin([&] { return pending != nullptr; }));
        kept = proxy->servers[0].lock();
        s = serverTransport(0);
        ASSERT_TRUE(kept && s);
        // Resume reading so the close is noticed now.
        s->resumeProducing();
    }
    ASSERT_TRUE(spin([&] { return s->disconnected(); }, 5));
    reactor().connectTCP("127.0.0.1", backendNumber(), pending);
    pending.reset();
    ASSERT_TRUE(spin([&] { return backend->built.size() == 1 && backend->built[0]->lost == 1; }, 5))
        << "the backend connection must be closed";
    EXPECT_FALSE(kept->peer) << "the dead server side must not be linked";
}
