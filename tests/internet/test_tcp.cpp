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
#include <weft/log.hpp>

#include <fcntl.h>
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <thread>

#include <weft/internet/task.hpp>

#include "support/faults.hpp"
#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"

using namespace weft;
using namespace weft::test;
using weft::error::CannotListenError;
using weft::error::ConnectionAborted;
using weft::error::ConnectionDone;
using weft::error::ConnectionLost;
using weft::error::ConnectionRefusedError;

namespace {

class TCPTest : public ReactorTest {};
INSTANTIATE_TEST_SUITE_P(Backends, TCPTest, allBackends(), backendParamName);

// A blocking client socket connected to 127.0.0.1:port.
int plainConnect(std::uint16_t port) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(c);
        return -1;
    }
    return c;
}

// Iterates the reactor until pred() holds (fails the test after `seconds`).
template <class P>
bool spinUntil(Reactor& r, P pred, double seconds = 5) {
    double end = r.seconds() + seconds;
    while (!pred()) {
        if (r.seconds() > end) return false;
        r.iterate(0.01);
    }
    return true;
}

// Stops the port and iterates until its Deferred fired.
void stopPort(Reactor& r, tcp::Port& port) {
    bool done = false;
    port.stopListening().addBoth([&](Result<void>) { done = true; });
    spinUntil(r, [&] { return done; });
}

// Reads from a blocking socket until EOF or `n` bytes.
std::string readAll(int fd, std::size_t n = SIZE_MAX) {
    std::string out;
    char buf[65536];
    while (out.size() < n) {
        ssize_t k = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
        if (k <= 0) break;
        out.append(buf, static_cast<std::size_t>(k));
    }
    return out;
}

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
    client->onLost = [&](auto&, auto&) { port->stopListening().addBoth([this](Result<void>) { reactor().stop(); }); };
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

// TCP-2: listening sockets are non-blocking, close-on-exec and SO_REUSEADDR, so
// the number can be bound again as soon as stopListening has completed.
TEST_P(TCPTest, TCP_2_listeningSocketFlagsAndRebind) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    int fd = port->fileno();
    EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
    int v = 0;
    socklen_t len = sizeof v;
    ::getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &len);
    EXPECT_EQ(v, 1);
    std::uint16_t number = portNumber(*port);
    // Leave a connection in TIME_WAIT on that number, then rebind it.
    int c = plainConnect(number);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1; }));
    f->built[0]->transport->loseConnection();
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost == 1; }));
    ::close(c);
    stopPort(reactor(), *port);
    auto again = reactor().listenTCP(number, f, 50, "127.0.0.1");
    EXPECT_EQ(portNumber(*again), number);
    stopPort(reactor(), *again);
}

// TCP-3: "" means every IPv4 address; an IPv6 literal makes an IPv6-only port
// (Better than Twisted), so an IPv4 port can share the number; a name is refused
// without a lookup.
TEST_P(TCPTest, TCP_3_interfaceSelectsFamily) {
    auto f = std::make_shared<RecordingFactory>();
    auto any = reactor().listenTCP(0, f);
    Address a = any->getHost();
    ASSERT_TRUE(std::holds_alternative<IPv4Address>(a));
    EXPECT_EQ(std::get<IPv4Address>(a).host, "0.0.0.0");
    stopPort(reactor(), *any);
    int startedBefore = f->started, portsBefore = f->numPorts;
    for (const char* name : {"localhost", "999.1.1.1"}) {
        try {
            reactor().listenTCP(0, f, 50, name);
            ADD_FAILURE() << "listened on " << name;
        } catch (const CannotListenError& e) {
            EXPECT_EQ(e.socketError().value(), EINVAL);
            EXPECT_THAT(e.what(), ::testing::HasSubstr(std::string(name) + ":0: not an IPv4 or IPv6 address"));
        }
    }
    EXPECT_EQ(f->started, startedBefore);
    EXPECT_EQ(f->numPorts, portsBefore);
    if (!haveIPv6Loopback()) GTEST_SKIP() << "no IPv6 loopback";
    auto v6 = reactor().listenTCP(0, f, 50, "::");
    Address h = v6->getHost();
    ASSERT_TRUE(std::holds_alternative<IPv6Address>(h));
    EXPECT_EQ(std::get<IPv6Address>(h).host, "::");
    // IPV6_V6ONLY: the same number is still free for IPv4.
    auto v4 = reactor().listenTCP(std::get<IPv6Address>(h).port, f, 50, "0.0.0.0");
    EXPECT_EQ(portNumber(*v4), std::get<IPv6Address>(h).port);
    stopPort(reactor(), *v4);
    stopPort(reactor(), *v6);
}

// TCP-4: IPv6 ports report an IPv6Address; a scope in a literal is kept in the host.
TEST_P(TCPTest, TCP_4_ipv6GetHostAndScope) {
    auto scoped = tcp::SockAddr::fromLiteral("fe80::1%lo", 80);
    ASSERT_TRUE(scoped);
    Address s = scoped->toAddress();
    ASSERT_TRUE(std::holds_alternative<IPv6Address>(s));
    EXPECT_EQ(std::get<IPv6Address>(s).host, "fe80::1%lo");
    EXPECT_NE(std::get<IPv6Address>(s).scopeID, 0u);
    EXPECT_FALSE(tcp::SockAddr::fromLiteral("fe80::1%", 80));
    EXPECT_FALSE(tcp::SockAddr::fromLiteral("example.com", 80));
    if (!haveIPv6Loopback()) GTEST_SKIP() << "no IPv6 loopback";
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "::1");
    Address a = port->getHost();
    ASSERT_TRUE(std::holds_alternative<IPv6Address>(a));
    EXPECT_EQ(std::get<IPv6Address>(a).type, "TCP");
    EXPECT_EQ(std::get<IPv6Address>(a).host, "::1");
    EXPECT_NE(std::get<IPv6Address>(a).port, 0);
    stopPort(reactor(), *port);
}

// TCP-5: factories count their ports: startFactory on the first, stopFactory after the last.
TEST_P(TCPTest, TCP_5_factoryStartStopCountsPorts) {
    auto f = std::make_shared<RecordingFactory>();
    auto p1 = reactor().listenTCP(0, f, 50, "127.0.0.1");
    auto p2 = reactor().listenTCP(0, f, 50, "127.0.0.1");
    EXPECT_EQ(f->started, 1);
    EXPECT_EQ(f->numPorts, 2);
    stopPort(reactor(), *p1);
    EXPECT_EQ(f->stopped, 0);
    stopPort(reactor(), *p2);
    EXPECT_EQ(f->stopped, 1);
}

// TCP-6: "<factory> starting on <port>" and "(TCP Port <port> Closed)" are logged;
// the port's logPrefix() is the factory's qualified class name.
TEST_P(TCPTest, TCP_6_portLogMessages) {
    std::vector<std::string> lines;
    log::ScopedObserver obs(
        [&](const log::Event& e) { lines.push_back(std::string(e.prefix) + "|" + std::string(e.message)); });
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    std::string number = std::to_string(portNumber(*port));
    EXPECT_EQ(port->logPrefix(), "weft::test::RecordingFactory");
    stopPort(reactor(), *port);
    EXPECT_THAT(lines, ::testing::Contains("weft::test::RecordingFactory|RecordingFactory starting on " + number));
    EXPECT_THAT(lines, ::testing::Contains("weft::test::RecordingFactory|(TCP Port " + number + " Closed)"));
}

// ---- exceptions from application code on the error paths ----------------------------------------------

struct ThrowingStopProducer final : IPushProducer {
    void pauseProducing() override {}
    void resumeProducing() override {}
    void stopProducing() override {
        ++stops;
        throw std::runtime_error("stopProducing bug");
    }
    int stops = 0;
};

TEST_P(TCPTest, FD_2_aStopProducingThatThrowsIsLoggedAndTheCloseGoesOn) {
    // FD-2: connectionLost stops the producer first; a producer that throws there is logged, and the close goes
    // on: the protocol hears connectionLost, the socket is closed, nothing holds the connection.
    auto producer = std::make_shared<ThrowingStopProducer>();
    auto server = std::make_shared<RecordingFactory>();
    server->onBuilt = [&](RecordingProtocol& p) {
        p.onMade = [&](RecordingProtocol& self) { self.stream()->registerProducer(producer, true); };
    };
    auto port = reactor().listenTCP(0, server, 50, "127.0.0.1");
    int c = plainConnect(portNumber(*port));
    ASSERT_GE(c, 0);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return server->built.size() == 1 && server->built[0]->made == 1; }));
    std::weak_ptr<ITransport> transport = server->built[0]->transport;
    ::close(c);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return server->built[0]->lost == 1; }));
    EXPECT_EQ(producer->stops, 1);
    auto* fd = dynamic_cast<FileDescriptor*>(server->built[0]->transport.get());
    ASSERT_TRUE(fd);
    EXPECT_TRUE(fd->disconnected());
    EXPECT_EQ(fd->fileno(), -1);  // its socket closed
    server->built[0]->transport.reset();
    EXPECT_TRUE(transport.expired());  // nothing else holds it: not the reactor, not the producer
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
    stopPort(reactor(), *port);
}

class BadPrefixProtocol final : public RecordingProtocol {
public:
    std::string logPrefix() const override { throw std::logic_error("logPrefix bug"); }
};

TEST_P(TCPTest, R_34_aProtocolWhoseLogPrefixThrowsIsStillDisconnectedWhenItFails) {
    // an exception from dataReceived ends the connection and is logged, also when the protocol's own
    // logPrefix() throws while the error is logged (that one is logged too, under the class name).
    auto server = std::make_shared<RecordingFactory>();
    server->make = [](const Address&) { return std::make_shared<BadPrefixProtocol>(); };
    server->onBuilt = [](RecordingProtocol& p) {
        p.onData = [](RecordingProtocol&, std::string_view) { throw std::runtime_error("dataReceived bug"); };
    };
    auto port = reactor().listenTCP(0, server, 50, "127.0.0.1");
    int c = plainConnect(portNumber(*port));
    ASSERT_GE(c, 0);
    ASSERT_EQ(::write(c, "x", 1), 1);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return server->built.size() == 1 && server->built[0]->lost == 1; }));
    EXPECT_EQ(readAll(c), "");  // the server closed the connection
    ::close(c);
    auto bug = logs.flushLoggedErrors<std::runtime_error>();
    ASSERT_EQ(bug.size(), 1u);
    EXPECT_EQ(bug[0].getErrorMessage(), "dataReceived bug");
    EXPECT_GE(logs.flushLoggedErrors<std::logic_error>().size(), 1u);
    stopPort(reactor(), *port);
}

TEST_P(TCPTest, TCP_6_aFactoryWhoseLogPrefixThrowsStillListensAndStops) {
    // TCP-6: "starting on" names the factory by its logPrefix(); one that throws is logged under the class name,
    // and the port listens (before, the listen threw with the socket left listening and registered).
    class BadPrefixFactory final : public RecordingFactory {
    public:
        std::string logPrefix() const override { throw std::logic_error("factory logPrefix bug"); }
    };
    auto f = std::make_shared<BadPrefixFactory>();
    std::shared_ptr<tcp::Port> port;
    ASSERT_NO_THROW(port = reactor().listenTCP(0, f, 50, "127.0.0.1"));
    EXPECT_EQ(f->started, 1);
    int c = plainConnect(portNumber(*port));
    ASSERT_GE(c, 0);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1; }));
    ::close(c);
    stopPort(reactor(), *port);
    EXPECT_EQ(f->stopped, 1);
    EXPECT_FALSE(reactor().isReading(port.get()));
    EXPECT_GE(logs.flushLoggedErrors<std::logic_error>().size(), 1u);
}

TEST_P(TCPTest, TCP_45_aProtocolAndAClientFactoryBothThrowingOnLossAreBothLogged) {
    // TCP-45: the protocol's connectionLost, then the factory's clientConnectionLost; when both throw, both
    // errors are logged (the second used to replace the first).
    auto server = std::make_shared<RecordingFactory>();
    server->onBuilt = [](RecordingProtocol& p) {
        p.onMade = [](RecordingProtocol& self) { self.transport->loseConnection(); };
    };
    auto port = reactor().listenTCP(0, server, 50, "127.0.0.1");
    auto client = std::make_shared<RecordingClientFactory>();
    client->onBuilt = [](RecordingProtocol& p) {
        p.onLost = [](RecordingProtocol&, const Failure&) { throw std::runtime_error("protocol connectionLost bug"); };
    };
    client->onLost = [](auto&, auto&) { throw std::logic_error("clientConnectionLost bug"); };
    auto connector = reactor().connectTCP("127.0.0.1", portNumber(*port), client);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return client->lostCalls == 1; }));
    auto first = logs.flushLoggedErrors<std::runtime_error>();
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].getErrorMessage(), "protocol connectionLost bug");
    EXPECT_EQ(logs.flushLoggedErrors<std::logic_error>().size(), 1u);
    // The recording factory keeps what it built, and its protocol, whose connectionLost threw before it let go
    // of its factory, keeps the factory: the test's own cycle, broken here.
    client->built.clear();
    stopPort(reactor(), *port);
}

struct ThrowingPauseProducer final : IPushProducer {
    void pauseProducing() override { throw std::runtime_error("pauseProducing bug"); }
    void resumeProducing() override {}
    void stopProducing() override {}
};

TEST_P(TCPTest, FD_24_aPauseProducingThatThrowsLeavesWhatWasWrittenToBeSent) {
    // FD-24: write() pauses a push producer when the buffer fills; one whose pauseProducing() throws makes that
    // write() throw, and what it queued is still sent, with nothing else asked of the transport (it used to stay
    // queued until something else registered the connection for writing).
    const std::string big = pattern(4u << 20);
    bool threw = false;
    auto server = std::make_shared<RecordingFactory>();
    server->onBuilt = [&](RecordingProtocol& p) {
        p.onMade = [&](RecordingProtocol& self) {
            self.stream()->registerProducer(std::make_shared<ThrowingPauseProducer>(), true);
            try {
                self.send(big);
            } catch (const std::runtime_error&) {
                threw = true;
            }
            self.stream()->unregisterProducer();
        };
    };
    auto port = reactor().listenTCP(0, server, 50, "127.0.0.1");
    int c = plainConnect(portNumber(*port));
    ASSERT_GE(c, 0);
    std::string got;
    std::atomic<bool> done{false};
    std::thread reader([&] {
        got = readAll(c, big.size());
        done = true;
    });
    bool arrived = spinUntil(
        reactor(), [&] { return done.load(); }, 20);
    if (!arrived) ::shutdown(c, SHUT_RDWR);  // let the reader go
    reader.join();
    EXPECT_TRUE(arrived);
    EXPECT_TRUE(threw);
    EXPECT_EQ(got.size(), big.size());
    EXPECT_TRUE(got == big);
    ::close(c);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return server->built.size() == 1 && server->built[0]->lost == 1; }));
    stopPort(reactor(), *port);
}

// TCP-7: stopListening stops accepting at once and its Deferred fires on a later
// iteration; accepted connections stay open; on a port not listening it is already fired.
TEST_P(TCPTest, TCP_7_stopListeningFiresLaterAndKeepsConnections) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    int c = plainConnect(portNumber(*port));
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1; }));
    bool fired = false;
    port->stopListening().addBoth([&](Result<void>) { fired = true; });
    EXPECT_FALSE(fired);
    EXPECT_FALSE(reactor().isReading(port.get()));
    ASSERT_TRUE(spinUntil(reactor(), [&] { return fired; }));
    EXPECT_FALSE(port->listening());
    bool second = false;
    port->stopListening().addBoth([&](Result<void>) { second = true; });
    EXPECT_TRUE(second);
    // The accepted connection still carries bytes.
    ASSERT_EQ(::write(c, "ping", 4), 4);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->received == "ping"; }));
    ::close(c);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost == 1; }));
}

class ThrowingStopFactory : public RecordingFactory {
public:
    void stopFactory() override {
        ++stopped;
        if (shouldThrow) throw std::runtime_error("stopFactory failed");
    }
    bool shouldThrow = true;
};

// TCP-8: if doStop throws, the stopListening Deferred fails with it and the port
// is closed and restartable; a direct connectionLost call propagates the error.
TEST_P(TCPTest, TCP_8_exceptionInStopFactory) {
    auto f = std::make_shared<ThrowingStopFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    std::optional<Failure> failure;
    bool done = false;
    port->stopListening().addBoth([&](Result<void> r) {
        if (!r.ok()) failure = r.failure();
        done = true;
    });
    ASSERT_TRUE(spinUntil(reactor(), [&] { return done; }));
    ASSERT_TRUE(failure);
    EXPECT_STREQ(failure->get<std::runtime_error>()->what(), "stopFactory failed");
    EXPECT_FALSE(port->listening());
    port->startListening();  // restartable
    EXPECT_TRUE(port->listening());
    EXPECT_THROW(port->connectionLost(Failure(ConnectionDone())), std::runtime_error);
    EXPECT_FALSE(port->listening());
    EXPECT_EQ(f->stopped, 2);
}

// TCP-9: a stopped port can listen again and accepts connections.
TEST_P(TCPTest, TCP_9_restartListening) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    stopPort(reactor(), *port);
    port->startListening();
    int c = plainConnect(portNumber(*port));
    ASSERT_GE(c, 0);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1; }));
    ::close(c);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost == 1; }));
    stopPort(reactor(), *port);
}

// TCP-7: stopListening asked again while the port is stopping returns a
// Deferred that fires once the socket is closed, like the first one: not at
// once, while the port still holds its address.
TEST_P(TCPTest, TCP_7_stopListeningAskedAgainWhileStoppingFiresOnceClosed) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    std::vector<std::string> order;
    port->stopListening().addBoth([&](Result<void>) { order.push_back("first"); });
    port->stopListening().addBoth(
        [&](Result<void>) { order.push_back(port->listening() ? "second, still listening" : "second, closed"); });
    EXPECT_TRUE(order.empty());
    EXPECT_TRUE(port->listening());
    ASSERT_TRUE(spinUntil(reactor(), [&] { return order.size() == 2; }));
    EXPECT_THAT(order, ::testing::ElementsAre("first", "second, closed"));
    EXPECT_EQ(f->stopped, 1);
}

// TCP-9: a port stopped from a protocol's callback and started again from its
// stopListening Deferred accepts again. The new socket usually takes the old
// one's fd number, which the poller dropped with the close: the restart must
// not be taken for the same registration asked again.
TEST_P(TCPTest, TCP_9_aPortStoppedInACallbackAndStartedInItsDeferredAcceptsAgain) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    int oldFd = port->fileno();
    int newFd = -1;
    bool restarted = false;
    f->onBuilt = [&](RecordingProtocol& p) {
        if (f->built.size() != 1) return;
        p.onMade = [&](RecordingProtocol&) {
            port->stopListening().addBoth([&](Result<void> r) {
                port->startListening();
                newFd = port->fileno();
                restarted = true;
                return r;
            });
        };
    };
    int c1 = plainConnect(portNumber(*port));
    ASSERT_TRUE(spinUntil(reactor(), [&] { return restarted; }));
    EXPECT_EQ(newFd, oldFd) << "the case under test: the fd number taken again";
    int c2 = plainConnect(portNumber(*port));
    ASSERT_GE(c2, 0);
    EXPECT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 2; }));
    ::close(c1);
    ::close(c2);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 2 && f->built[1]->lost == 1; }));
    stopPort(reactor(), *port);
}

// TCP-10: the port's string form contains its number while listening, not after.
TEST_P(TCPTest, TCP_10_portRepr) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    std::string number = std::to_string(portNumber(*port));
    EXPECT_THAT(port->repr(), ::testing::HasSubstr(number));
    stopPort(reactor(), *port);
    EXPECT_THAT(port->repr(), ::testing::Not(::testing::HasSubstr(number)));
}

// TCP-11: one readable event accepts at most numberAccepts connections; a full
// quota grows it by 20, otherwise it becomes the number accepted.
TEST_P(TCPTest, TCP_11_acceptQuotaScales) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 256, "127.0.0.1");
    std::vector<int> clients;
    for (int i = 0; i < 130; ++i) clients.push_back(plainConnect(portNumber(*port)));
    port->numberAccepts = 100;
    port->doRead();
    EXPECT_EQ(f->built.size(), 100u);
    EXPECT_EQ(port->numberAccepts, 120);
    port->doRead();
    EXPECT_EQ(f->built.size(), 130u);
    EXPECT_EQ(port->numberAccepts, 30);
    for (int c : clients) ::close(c);
    ASSERT_TRUE(spinUntil(reactor(), [&] {
        for (auto& p : f->built)
            if (p->lost == 0) return false;
        return true;
    }));
    stopPort(reactor(), *port);
}

// TCP-12: a null protocol closes the socket without using a session number;
// servers get session numbers 0, 1, … and makeConnection runs before the next accept.
TEST_P(TCPTest, TCP_12_buildProtocolNullAndSessionNumbers) {
    auto f = std::make_shared<RecordingFactory>();
    int calls = 0;
    f->make = [&](const Address&) -> std::shared_ptr<RecordingProtocol> {
        return ++calls == 1 ? nullptr : std::make_shared<RecordingProtocol>();
    };
    std::vector<std::size_t> builtAtMade;
    f->onBuilt = [&](RecordingProtocol& p) {
        p.onMade = [&](RecordingProtocol&) { builtAtMade.push_back(f->built.size()); };
    };
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    int refused = plainConnect(portNumber(*port));
    int c1 = plainConnect(portNumber(*port));
    int c2 = plainConnect(portNumber(*port));
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 2; }));
    EXPECT_EQ(readAll(refused), "");  // closed by the server
    ASSERT_EQ(f->addresses.size(), 3u);
    ASSERT_TRUE(std::holds_alternative<IPv4Address>(f->addresses[0]));
    EXPECT_EQ(std::get<IPv4Address>(f->addresses[0]).host, "127.0.0.1");
    // Each address names its own client (the port rewrites one Address in place per connection).
    int clients[] = {refused, c1, c2};
    for (std::size_t i = 0; i < 3; ++i) {
        sockaddr_in local{};
        socklen_t length = sizeof local;
        ASSERT_EQ(::getsockname(clients[i], reinterpret_cast<sockaddr*>(&local), &length), 0);
        ASSERT_TRUE(std::holds_alternative<IPv4Address>(f->addresses[i]));
        EXPECT_EQ(std::get<IPv4Address>(f->addresses[i]).port, ntohs(local.sin_port)) << i;
    }
    auto* s0 = dynamic_cast<tcp::Server*>(f->built[0]->transport.get());
    auto* s1 = dynamic_cast<tcp::Server*>(f->built[1]->transport.get());
    ASSERT_TRUE(s0 && s1);
    EXPECT_EQ(s0->sessionno(), 0);
    EXPECT_EQ(s1->sessionno(), 1);
    EXPECT_TRUE(s0->connected());
    EXPECT_THAT(builtAtMade, ::testing::ElementsAre(1u, 2u));
    for (int c : {refused, c1, c2}) ::close(c);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost + f->built[1]->lost == 2; }));
    stopPort(reactor(), *port);
}

// TCP-13: EPERM counts against the quota and is skipped; ENFILE, ENOBUFS, ENOMEM,
// ECONNABORTED are logged "Could not accept new connection (<ERRNO>)" and end the
// batch; the port keeps listening.
TEST_P(TCPTest, TCP_13_acceptErrors) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    std::vector<std::string> lines;
    log::ScopedObserver obs([&](const log::Event& e) { lines.push_back(std::string(e.message)); });
    int c = plainConnect(portNumber(*port));
    {
        ScopedFaults faults;
        faults.onlyFd(port->fileno());
        port->numberAccepts = 3;
        faults.fail(Call::accept4, EPERM).fail(Call::accept4, EPERM).fail(Call::accept4, EPERM);
        port->doRead();  // three EPERMs use the quota: nothing accepted, no spin
        EXPECT_EQ(f->built.size(), 0u);
        EXPECT_EQ(faults.calls(Call::accept4), 3u);
        for (int e : {ENFILE, ENOBUFS, ENOMEM, ECONNABORTED}) {
            faults.fail(Call::accept4, e);
            port->doRead();
            EXPECT_EQ(f->built.size(), 0u);
        }
    }
    EXPECT_THAT(lines, ::testing::Contains("Could not accept new connection (ENFILE)"));
    EXPECT_THAT(lines, ::testing::Contains("Could not accept new connection (ENOBUFS)"));
    EXPECT_THAT(lines, ::testing::Contains("Could not accept new connection (ENOMEM)"));
    EXPECT_THAT(lines, ::testing::Contains("Could not accept new connection (ECONNABORTED)"));
    // Still listening: the pending connection is accepted now.
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1; }));
    ::close(c);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost == 1; }));
    stopPort(reactor(), *port);
}

// TCP-14: on EMFILE the spare descriptor is freed, pending connections are
// accepted and closed (peers see a close, not a hang), no protocol is built, and
// the loop does not spin.
TEST_P(TCPTest, TCP_14_emfileRecoveryClosesPendingPeers) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    int c1 = plainConnect(portNumber(*port));
    int c2 = plainConnect(portNumber(*port));
    {
        ScopedFaults faults;
        faults.onlyFd(port->fileno());
        faults.fail(Call::accept4, EMFILE);
        port->doRead();
        EXPECT_EQ(faults.calls(Call::accept4), 4u);  // EMFILE, two closed, EAGAIN
    }
    EXPECT_EQ(f->built.size(), 0u);
    EXPECT_EQ(readAll(c1), "");  // EOF: the peer sees its connection closed
    EXPECT_EQ(readAll(c2), "");
    ::close(c1);
    ::close(c2);
    logs.flush(log::Level::info);
    // The spare is back: a later connection is served normally.
    int c3 = plainConnect(portNumber(*port));
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1; }));
    ::close(c3);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost == 1; }));
    stopPort(reactor(), *port);
}

class ThrowOnceFactory : public RecordingFactory {
public:
    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override {
        if (calls++ == 0) throw std::runtime_error("buildProtocol exploded");
        return RecordingFactory::buildProtocol(addr);
    }
    int calls = 0;
};

// Accepts two connections in one batch; building the first protocol throws.
// Returns (errors logged while the second protocol's connectionMade ran, errors after the batch).
std::pair<std::size_t, std::size_t> acceptBatchWithFailingBuild(Reactor& r, LogCapture& logs, bool& stillListening) {
    auto f = std::make_shared<ThrowOnceFactory>();
    auto port = r.listenTCP(0, f, 50, "127.0.0.1");
    std::size_t errorsAtMade = 99;
    f->onBuilt = [&](RecordingProtocol& p) {
        p.onMade = [&](RecordingProtocol&) { errorsAtMade = logs.flushLoggedErrors<std::runtime_error>().size(); };
    };
    int c1 = plainConnect(portNumber(*port));
    int c2 = plainConnect(portNumber(*port));
    port->doRead();  // one batch: the failure for c1, then c2 is served
    std::size_t after = logs.flushLoggedErrors<std::runtime_error>().size();
    stillListening = port->listening() && f->built.size() == 1;
    ::close(c1);
    ::close(c2);
    spinUntil(r, [&] { return !f->built.empty() && f->built[0]->lost == 1; });
    stopPort(r, *port);
    return {errorsAtMade, after};
}

// TCP-15: log events produced inside one accept batch are emitted after it.
TEST_P(TCPTest, TCP_15_acceptBatchLogsAreEmittedAfterTheBatch) {
    bool listening = false;
    auto [during, after] = acceptBatchWithFailingBuild(reactor(), logs, listening);
    EXPECT_EQ(during, 0u);  // not yet logged while the batch ran
    EXPECT_EQ(after, 1u);
}

// TCP-16: an exception from buildProtocol during accept is logged; the port keeps
// listening and serves the next connection.
TEST_P(TCPTest, TCP_16_buildProtocolErrorIsLoggedAndThePortKeepsListening) {
    bool listening = false;
    auto [during, after] = acceptBatchWithFailingBuild(reactor(), logs, listening);
    EXPECT_EQ(during + after, 1u);
    EXPECT_TRUE(listening);
}

// TCP-17: a server's getPeer/getHost are typed TCP addresses (peer as accepted,
// host the local socket address).
TEST_P(TCPTest, TCP_17_serverGetPeerAndGetHost) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    int c = plainConnect(portNumber(*port));
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ::getsockname(c, reinterpret_cast<sockaddr*>(&local), &len);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1; }));
    auto* server = dynamic_cast<tcp::Server*>(f->built[0]->transport.get());
    ASSERT_NE(server, nullptr);
    EXPECT_EQ(server->getPeer(), Address(IPv4Address("TCP", "127.0.0.1", ntohs(local.sin_port))));
    EXPECT_EQ(server->getHost(), Address(IPv4Address("TCP", "127.0.0.1", portNumber(*port))));
    ::close(c);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost == 1; }));
    EXPECT_EQ(server->getPeer(),
              Address(IPv4Address("TCP", "127.0.0.1", ntohs(local.sin_port))));  // after the close too
    stopPort(reactor(), *port);
}

// TCP-17: the peer a connection keeps in one word (docs/architecture.md §6)
// gives back exactly what it was given: IPv4 packed (the extreme address and
// port too), IPv6 with its flow label and scope, nothing, and each replacing
// the other (ASan sees the IPv6 copies freed).
TEST(PackedSockAddrTest, TCP_17_thePeerKeptInOneWordRoundTrips) {
    static_assert(sizeof(detail::PackedSockAddr) == 8);
    detail::PackedSockAddr packed;
    EXPECT_EQ(packed.get().length, 0u);
    auto v4 = tcp::SockAddr::fromLiteral("255.255.255.255", 65535);
    ASSERT_TRUE(v4);
    packed = *v4;
    EXPECT_EQ(packed.get().toAddress(), Address(IPv4Address("TCP", "255.255.255.255", 65535)));
    EXPECT_EQ(packed.get().length, sizeof(sockaddr_in));
    auto low = tcp::SockAddr::fromLiteral("0.0.0.1", 1);
    packed = *low;
    EXPECT_EQ(packed.get().toAddress(), Address(IPv4Address("TCP", "0.0.0.1", 1)));
    auto v6 = tcp::SockAddr::fromLiteral("fe80::1%lo", 443);
    ASSERT_TRUE(v6);
    v6->u.v6.sin6_flowinfo = htonl(0x12345);
    packed = *v6;
    tcp::SockAddr back = packed.get();
    EXPECT_EQ(back.length, v6->length);
    EXPECT_EQ(std::memcmp(&back.u.v6, &v6->u.v6, sizeof(sockaddr_in6)), 0);
    EXPECT_EQ(back.toAddress(), v6->toAddress());
    packed = *tcp::SockAddr::fromLiteral("::1", 80);  // one IPv6 copy replaces another
    EXPECT_EQ(packed.get().toAddress(), Address(IPv6Address("TCP", "::1", 80)));
    packed = *v4;  // and an IPv4 address replaces it
    EXPECT_EQ(packed.get().toAddress(), Address(IPv4Address("TCP", "255.255.255.255", 65535)));
    packed = *v6;
    packed = tcp::SockAddr{};  // an empty address clears it
    EXPECT_EQ(packed.get().length, 0u);
    packed = *v6;  // the destructor frees the last copy
}

// TCP-18: a server's log prefix is "<protocol logPrefix>,<session number>,<peer
// host>" and its string form "<ProtocolClassName #<session number> on <port>>".
TEST_P(TCPTest, TCP_18_serverLogPrefixAndRepr) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    int c1 = plainConnect(portNumber(*port));
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1; }));
    int c2 = plainConnect(portNumber(*port));
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 2; }));
    auto& s0 = dynamic_cast<tcp::Server&>(*f->built[0]->transport);
    auto& s1 = dynamic_cast<tcp::Server&>(*f->built[1]->transport);
    std::string number = std::to_string(portNumber(*port));
    EXPECT_EQ(s0.logPrefix(), "RecordingProtocol,0,127.0.0.1");
    EXPECT_EQ(s1.logPrefix(), "RecordingProtocol,1,127.0.0.1");
    EXPECT_EQ(s0.repr(), "<RecordingProtocol #0 on " + number + ">");
    EXPECT_EQ(s1.repr(), "<RecordingProtocol #1 on " + number + ">");
    ::close(c1);
    ::close(c2);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost + f->built[1]->lost == 2; }));
    EXPECT_EQ(s0.logPrefix(), "RecordingProtocol,0,127.0.0.1");  // kept after the close
    stopPort(reactor(), *port);
}

// FD-38, TCP-18: what a protocol logs from its connectionLost, and an error it
// throws there, carry its connection's prefix, on both sides, although the
// transport has let go of the protocol before calling it.
TEST_P(TCPTest, FD_38_linesLoggedFromConnectionLostCarryTheConnectionsPrefix) {
    std::vector<std::pair<std::string, std::string>> lines;  // prefix, message
    log::ScopedObserver obs(
        [&](const log::Event& e) { lines.emplace_back(std::string(e.prefix), std::string(e.message)); });
    auto f = std::make_shared<RecordingFactory>();
    f->onBuilt = [](RecordingProtocol& p) {
        p.onLost = [](RecordingProtocol& self, const Failure&) {
            log::warn("", "server lost");
            self.factory.reset();  // what RecordingProtocol does after onLost, which this throw skips
            throw std::runtime_error("server connectionLost failed");
        };
    };
    auto port = reactor().listenTCP(0, f, 50, "127.0.0.1");
    auto client = std::make_shared<RecordingClientFactory>();
    client->onBuilt = [](RecordingProtocol& p) {
        p.onLost = [](RecordingProtocol&, const Failure&) { log::warn("", "client lost"); };
    };
    reactor().connectTCP("127.0.0.1", portNumber(*port), client);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1 && client->built.size() == 1; }));
    client->built[0]->transport->loseConnection();
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost == 1 && client->built[0]->lost == 1; }));
    auto prefixOf = [&](const std::string& message) {
        for (auto& [prefix, m] : lines)
            if (m.find(message) != std::string::npos) return prefix;
        return std::string("(no such line)");
    };
    EXPECT_EQ(prefixOf("client lost"), "RecordingProtocol,client");
    EXPECT_EQ(prefixOf("server lost"), "RecordingProtocol,0,127.0.0.1");
    EXPECT_EQ(prefixOf("Unhandled error in connectionLost"), "RecordingProtocol,0,127.0.0.1");
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
    stopPort(reactor(), *port);
}

// TCP-17: IPv6 servers report IPv6 addresses.
TEST_P(TCPTest, TCP_17_serverAddressesIPv6) {
    if (!haveIPv6Loopback()) GTEST_SKIP() << "no IPv6 loopback";
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, f, 50, "::1");
    auto client = std::make_shared<RecordingClientFactory>();
    auto connector = reactor().connectTCP("::1", portNumber(*port), client);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built.size() == 1 && client->built.size() == 1; }));
    Address peer = f->built[0]->transport->getPeer();
    ASSERT_TRUE(std::holds_alternative<IPv6Address>(peer));
    EXPECT_EQ(std::get<IPv6Address>(peer).host, "::1");
    EXPECT_EQ(std::get<IPv6Address>(f->built[0]->transport->getHost()).port, portNumber(*port));
    client->built[0]->transport->loseConnection();
    ASSERT_TRUE(spinUntil(reactor(), [&] { return f->built[0]->lost == 1 && client->lostCalls == 1; }));
    stopPort(reactor(), *port);
}

// Fixture pieces for one accepted server connection and a plain client socket.
struct OneConnection {
    std::shared_ptr<RecordingFactory> factory = std::make_shared<RecordingFactory>();
    std::shared_ptr<tcp::Port> port;
    int client = -1;
    RecordingProtocol& proto() { return *factory->built.at(0); }
    tcp::Server& server() { return dynamic_cast<tcp::Server&>(*proto().transport); }
};

OneConnection connectOne(Reactor& r, std::function<void(RecordingProtocol&)> onBuilt = {}) {
    OneConnection one;
    one.factory->onBuilt = std::move(onBuilt);
    one.port = r.listenTCP(0, one.factory, 50, "127.0.0.1");
    one.client = plainConnect(portNumber(*one.port));
    spinUntil(r, [&] { return one.factory->built.size() == 1; });
    return one;
}

void finish(Reactor& r, OneConnection& one) {
    if (one.client >= 0) ::close(one.client);
    spinUntil(r, [&] { return one.proto().lost == 1; });
    stopPort(r, *one.port);
}

// TCP-19: one receive of at most bufferSize bytes per readable event; the errno of
// a failed receive is kept in ConnectionLost (Better than Twisted).
TEST_P(TCPTest, TCP_19_readsAtMostBufferSizeAndKeepsErrno) {
    auto one = connectOne(reactor());
    std::vector<std::size_t> chunks;
    one.proto().onData = [&](RecordingProtocol&, std::string_view d) { chunks.push_back(d.size()); };
    one.server().bufferSize = 10;
    std::string data = pattern(100);
    ASSERT_EQ(::write(one.client, data.data(), data.size()), 100);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return one.proto().received.size() == 100; }));
    EXPECT_EQ(one.proto().received, data);
    for (auto n : chunks) EXPECT_LE(n, 10u);
    EXPECT_GE(chunks.size(), 10u);
    {
        ScopedFaults faults;
        faults.onlyFd(one.server().fileno());
        faults.fail(Call::recv, ECONNRESET);
        ASSERT_EQ(::write(one.client, "x", 1), 1);
        ASSERT_TRUE(spinUntil(reactor(), [&] { return one.proto().lost == 1; }));
    }
    auto* lost = one.proto().lostReason->get<ConnectionLost>();
    ASSERT_NE(lost, nullptr);
    EXPECT_EQ(lost->code().value(), ECONNRESET);
    finish(reactor(), one);
}

// TCP-20: dataReceived returns nothing, so nothing it returns can close the connection.
TEST_P(TCPTest, TCP_20_dataReceivedReturnsVoid) {
    static_assert(std::is_void_v<decltype(std::declval<Protocol&>().dataReceived(Bytes{}))>);
    auto one = connectOne(reactor());
    ASSERT_EQ(::write(one.client, "abc", 3), 3);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return one.proto().received == "abc"; }));
    EXPECT_EQ(one.proto().lost, 0);
    EXPECT_TRUE(one.server().connected());
    finish(reactor(), one);
}

// TCP-21: a send error other than EAGAIN/ENOBUFS/EINTR is a ConnectionLost with its
// errno; EINTR is retried; writing to a reset peer never raises SIGPIPE.
TEST_P(TCPTest, TCP_21_sendErrorsAndNoSigpipe) {
    auto one = connectOne(reactor());
    {
        ScopedFaults faults;
        faults.onlyFd(one.server().fileno());
        // One queued chunk leaves through send(), several through sendmsg(): both retry
        // EINTR and wait out ENOBUFS.
        faults.fail(Call::send, EINTR).fail(Call::send, ENOBUFS);
        one.proto().send("first");
        ASSERT_TRUE(spinUntil(reactor(), [&] { return one.server().pendingBytes() == 0; }));
        ASSERT_EQ(readAll(one.client, 5), "first");
        EXPECT_GE(faults.calls(Call::send), 3u);
        faults.fail(Call::sendmsg, EINTR).fail(Call::sendmsg, ENOBUFS);
        std::string big(40000, 'x');  // past one chunk's small-write share: two chunks, one gather
        one.server().write(std::string_view("second"));
        one.server().write(std::string_view(big));
        ASSERT_TRUE(spinUntil(reactor(), [&] { return one.server().pendingBytes() == 0; }));
        ASSERT_EQ(readAll(one.client, 6 + big.size()), "second" + big);
        EXPECT_GE(faults.calls(Call::sendmsg), 3u);
    }
    // The peer resets; with SIGPIPE at its default disposition a plain write would kill us.
    struct sigaction old {
    }, dfl{};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, &old);
    linger l{1, 0};
    ::setsockopt(one.client, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(one.client);
    one.client = -1;
    std::string big = pattern(1 << 20);
    for (int i = 0; i < 4 && one.proto().lost == 0; ++i) {
        one.proto().send(big);
        spinUntil(
            reactor(), [&] { return one.proto().lost == 1; }, 1);
    }
    ::sigaction(SIGPIPE, &old, nullptr);
    ASSERT_EQ(one.proto().lost, 1);
    auto* lost = one.proto().lostReason->get<ConnectionLost>();
    ASSERT_NE(lost, nullptr) << one.proto().lostReason->typeName();
    EXPECT_THAT(lost->code().value(), ::testing::AnyOf(EPIPE, ECONNRESET));
    finish(reactor(), one);
}

// TCP-22: the socket is closed orderly (the peer reads EOF) unless the reason is
// ConnectionAborted (the peer gets a reset); the transport lets go of the
// protocol; a second connectionLost does nothing.
TEST_P(TCPTest, TCP_22_closeOrderlyOrWithReset) {
    auto one = connectOne(reactor());
    std::weak_ptr<RecordingProtocol> weak = one.factory->built[0];
    auto transport = one.proto().transport;
    one.proto().transport->loseConnection();
    ASSERT_TRUE(spinUntil(reactor(), [&] { return one.proto().lost == 1; }));
    char b;
    EXPECT_EQ(::read(one.client, &b, 1), 0);      // FIN
    EXPECT_EQ(one.server().protocol(), nullptr);  // released
    one.server().connectionLost(Failure(ConnectionDone()));
    EXPECT_EQ(one.proto().lost, 1);
    finish(reactor(), one);

    auto two = connectOne(reactor());
    dynamic_cast<tcp::Server&>(*two.proto().transport).abortConnection();
    ASSERT_TRUE(spinUntil(reactor(), [&] { return two.proto().lost == 1; }));
    EXPECT_TRUE(two.proto().lostReason->check<ConnectionAborted>());
    EXPECT_EQ(::read(two.client, &b, 1), -1);
    EXPECT_EQ(errno, ECONNRESET);  // RST
    finish(reactor(), two);
}

// TCP-23: TCP_NODELAY is on by default (Better than Twisted) and can be turned
// off; SO_KEEPALIVE is off by default and can be turned on.
TEST_P(TCPTest, TCP_23_noDelayAndKeepAlive) {
    auto one = connectOne(reactor());
    EXPECT_TRUE(one.server().getTcpNoDelay());
    one.server().setTcpNoDelay(false);
    EXPECT_FALSE(one.server().getTcpNoDelay());
    EXPECT_FALSE(one.server().getTcpKeepAlive());
    one.server().setTcpKeepAlive(true);
    EXPECT_TRUE(one.server().getTcpKeepAlive());
    finish(reactor(), one);
}

// TCP-24: getHandle() is the socket; -1 once closed.
TEST_P(TCPTest, TCP_24_getHandleIsTheSocket) {
    auto one = connectOne(reactor());
    int h = one.server().getHandle();
    EXPECT_EQ(h, one.server().fileno());
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    EXPECT_EQ(::getsockname(h, reinterpret_cast<sockaddr*>(&sa), &len), 0);
    finish(reactor(), one);
    EXPECT_EQ(one.server().getHandle(), -1);
}

// TCP-26: closing connections releases their descriptors: more connections than
// the descriptor limit can be opened and closed one after another, and an old
// handle is invalid (EBADF) after both ends reported connectionLost.
TEST_P(TCPTest, TCP_26_closingReleasesDescriptors) {
    rlimit old{};
    ::getrlimit(RLIMIT_NOFILE, &old);
    rlimit low = old;
    low.rlim_cur = 128;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    auto server = std::make_shared<RecordingFactory>();
    auto port = reactor().listenTCP(0, server, 50, "127.0.0.1");
    int lastHandle = -1, oldHandle = -1;
    for (int i = 0; i < 300; ++i) {
        auto client = std::make_shared<RecordingClientFactory>();
        client->onBuilt = [&](RecordingProtocol& p) {
            p.onMade = [&](RecordingProtocol& self) {
                oldHandle = dynamic_cast<tcp::Connection&>(*self.transport).getHandle();
                self.transport->loseConnection();
            };
        };
        auto connector = reactor().connectTCP("127.0.0.1", portNumber(*port), client);
        ASSERT_TRUE(spinUntil(reactor(),
                              [&] {
                                  return client->lostCalls == 1 &&
                                         server->built.size() == static_cast<std::size_t>(i + 1) &&
                                         server->built.back()->lost == 1;
                              }))
            << "round " << i;
        lastHandle = dynamic_cast<tcp::Connection*>(client->built[0]->transport.get())->getHandle();
        EXPECT_TRUE(client->built[0]->lostReason->check<error::ConnectionClosed>());
        EXPECT_TRUE(server->built.back()->lostReason->check<error::ConnectionClosed>());
        server->built.back().reset();
    }
    ::setrlimit(RLIMIT_NOFILE, &old);
    EXPECT_EQ(lastHandle, -1);
    EXPECT_EQ(::fcntl(oldHandle, F_GETFD), -1);
    EXPECT_EQ(errno, EBADF);
    stopPort(reactor(), *port);
}

}  // namespace

namespace {

// Writes to a non-blocking socket until it would block or `data` is sent; returns
// how much went.
std::size_t writeSome(int fd, std::string_view data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
    }
    return sent;
}

std::string readAvailable(int fd) {
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

// A fixed 64 KiB buffer (no autotuning): megabytes cannot all fit in flight.
void shrinkBuffer(int fd, int option) {
    int small = 65536;
    ::setsockopt(fd, SOL_SOCKET, option, &small, sizeof small);
}

}  // namespace

// FD-8: bytes a protocol writes straight from dataReceived's buffer (an echo, a
// forwarder) and the socket does not take at once stay exact while the same
// thread reads other connections into that buffer: weft queues large ones
// without a copy and copies what is left before the buffer is reused.
TEST_P(TCPTest, FD_8_bytesWrittenFromTheReadBufferSurviveLaterReads) {
    for (bool toOther : {false, true}) {
        SCOPED_TRACE(toOther ? "forwarded to another connection" : "echoed");
        auto src = connectOne(reactor());
        auto sink = connectOne(reactor());
        auto noise = connectOne(reactor());
        // The destination's peer reads nothing yet, through small buffers: sends stay partial.
        int destinationPeer = toOther ? sink.client : src.client;
        shrinkBuffer(destinationPeer, SO_RCVBUF);
        shrinkBuffer(toOther ? sink.server().fileno() : src.server().fileno(), SO_SNDBUF);
        auto destination = toOther ? sink.proto().transport : src.proto().transport;
        src.proto().onData = [&](RecordingProtocol&, std::string_view d) { destination->write(d); };
        ::fcntl(src.client, F_SETFL, O_NONBLOCK);
        ::fcntl(noise.client, F_SETFL, O_NONBLOCK);
        const std::string data = randomBytes(2u << 20, 7), other = randomBytes(1u << 20, 8);
        std::size_t sent = 0, noiseSent = 0;
        std::string echoed;
        ASSERT_TRUE(spinUntil(reactor(), [&] {
            sent += writeSome(src.client, std::string_view(data).substr(sent, 65536));
            // Other bytes keep arriving on the same thread, into the same read buffer.
            noiseSent += writeSome(noise.client, std::string_view(other).substr(noiseSent, 65536));
            return sent == data.size();
        }));
        ASSERT_TRUE(spinUntil(reactor(), [&] { return noise.proto().received.size() == noiseSent; }));
        EXPECT_TRUE(noise.proto().received == other.substr(0, noiseSent));
        // The destination could not take it all: part of it waits in weft's queue.
        EXPECT_GT(dynamic_cast<FileDescriptor&>(*destination).pendingBytes(), 0u);
        // Everything the source sent is now queued or in flight: drain it at the destination.
        ASSERT_TRUE(spinUntil(reactor(),
                              [&] {
                                  echoed += readAvailable(destinationPeer);
                                  readAvailable(noise.client);
                                  return echoed.size() >= data.size();
                              }))
            << echoed.size() << " of " << data.size() << " bytes came back";
        EXPECT_EQ(echoed.size(), data.size());
        EXPECT_TRUE(echoed == data) << "the forwarded bytes differ from what was sent";
        EXPECT_EQ(src.proto().received.size(), data.size());
        src.proto().onData = nullptr;
        destination.reset();
        finish(reactor(), src);
        finish(reactor(), sink);
        finish(reactor(), noise);
    }
}

// FD-8: a transport aborted (or closed) while it still queues bytes of the read
// buffer lets them go: nothing is read through a dangling chunk afterwards.
TEST_P(TCPTest, FD_8_abortWhileQueuingReadBufferBytesIsSafe) {
    auto src = connectOne(reactor());
    auto noise = connectOne(reactor());
    shrinkBuffer(src.client, SO_RCVBUF);
    shrinkBuffer(src.server().fileno(), SO_SNDBUF);
    int writes = 0;
    src.proto().onData = [&](RecordingProtocol& p, std::string_view d) {
        p.transport->write(d);
        if (++writes == 20) p.tcp()->abortConnection();
    };
    ::fcntl(src.client, F_SETFL, O_NONBLOCK);
    const std::string data = randomBytes(2u << 20, 9);
    std::size_t sent = 0;
    ASSERT_TRUE(spinUntil(reactor(), [&] {
        sent += writeSome(src.client, std::string_view(data).substr(sent, 65536));
        return src.proto().lost == 1;
    }));
    EXPECT_TRUE(src.proto().lostReason->check<ConnectionAborted>());
    // The next reads reuse the buffer; the aborted queue holds nothing of it.
    std::string more = randomBytes(200000, 10);
    ASSERT_EQ(writeSome(noise.client, more), more.size());
    ASSERT_TRUE(spinUntil(reactor(), [&] { return noise.proto().received.size() == more.size(); }));
    EXPECT_TRUE(noise.proto().received == more);
    src.proto().onData = nullptr;
    finish(reactor(), src);
    finish(reactor(), noise);
}

namespace {

// R-7, Better than Twisted (issue #10: objects leaked when the reactor shut
// down with connections open): a transport in no reader or writer set still
// hears connectionLost at shutdown, so it and its protocol, which hold each
// other, are both released. Two ways to be in no set: closing while a
// producer is still registered (FD-13 keeps it open; `weft echo` registers its
// transport as its own producer), and paused by a consumer.
enum class Idle { closingBehindProducer, paused };

void shutdownReleases(Reactor& reactor, const std::function<void()>& run, Idle how) {
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor.listenTCP(0, f, 50, "127.0.0.1");
    int c = plainConnect(portOf(port->getHost()));
    ASSERT_GE(c, 0);
    ASSERT_TRUE(spinUntil(reactor, [&] { return f->built.size() == 1 && f->built[0]->made == 1; }));
    std::weak_ptr<RecordingProtocol> protocol = f->built[0];
    std::weak_ptr<ITransport> transport = f->built[0]->transport;
    auto* fd = dynamic_cast<FileDescriptor*>(f->built[0]->transport.get());
    ASSERT_NE(fd, nullptr);
    if (how == Idle::closingBehindProducer) {
        fd->registerProducer(std::static_pointer_cast<IPushProducer>(fd->shared_from_this()), true);
        fd->loseConnection();
    } else {
        fd->pauseProducing();
    }
    reactor.iterate(0);
    EXPECT_FALSE(reactor.isReading(fd));
    EXPECT_FALSE(reactor.isWriting(fd));
    auto lostSeen = std::make_shared<int>(0);
    f->built[0]->onLost = [lostSeen](RecordingProtocol&, const Failure&) { ++*lostSeen; };
    f->built.clear();  // only the transport and the protocol hold each other now
    EXPECT_FALSE(protocol.expired());
    stopPort(reactor, *port);
    reactor.callWhenRunning([&] { reactor.stop(); });
    run();
    EXPECT_EQ(*lostSeen, 1);
    EXPECT_TRUE(protocol.expired()) << "the protocol outlived the reactor's shutdown";
    EXPECT_TRUE(transport.expired()) << "the transport outlived the reactor's shutdown";
    char b;
    EXPECT_EQ(::read(c, &b, 1), 0);  // the peer sees the close
    ::close(c);
}

}  // namespace

TEST_P(TCPTest, R_7_shutdownReleasesATransportClosingBehindItsProducer) {
    shutdownReleases(
        reactor(), [this] { runReactor(); }, Idle::closingBehindProducer);
}

TEST_P(TCPTest, R_7_shutdownReleasesAPausedTransport) {
    shutdownReleases(
        reactor(), [this] { runReactor(); }, Idle::paused);
}

TEST_P(TCPTest, R_7_aReactorDestroyedWithoutShutdownDisconnectsWhatIsOpen) {
    // A reactor that never ran its shutdown (it never ran, it crashed, or it was
    // given connections after run() returned) still lets go of every transport
    // and protocol, which hold each other: each protocol hears connectionLost as
    // at shutdown, and nothing outlives the reactor.
    auto r = makeReactor();
    auto f = std::make_shared<RecordingFactory>();
    auto port = r->listenTCP(0, f, 50, "127.0.0.1");
    auto cf = std::make_shared<RecordingClientFactory>();
    r->connectTCP("127.0.0.1", portOf(port->getHost()), cf);
    ASSERT_TRUE(
        spinUntil(*r, [&] { return f->built.size() == 1 && cf->built.size() == 1 && cf->built[0]->made == 1; }));
    std::weak_ptr<RecordingProtocol> server = f->built[0], client = cf->built[0];
    std::weak_ptr<ITransport> serverT = f->built[0]->transport, clientT = cf->built[0]->transport;
    std::weak_ptr<IListeningPort> weakPort = port;
    auto lost = std::make_shared<int>(0);
    f->built[0]->onLost = cf->built[0]->onLost = [lost](RecordingProtocol&, const Failure&) { ++*lost; };
    f->built.clear();
    cf->built.clear();
    port.reset();
    r.reset();
    EXPECT_EQ(*lost, 2);
    EXPECT_TRUE(server.expired() && client.expired()) << "a protocol outlived its reactor";
    EXPECT_TRUE(serverT.expired() && clientT.expired()) << "a transport outlived its reactor";
    EXPECT_TRUE(weakPort.expired()) << "the listening port outlived its reactor";
}

TEST_P(TCPTest, R_7_aPausedPortIsClosedWhenItsReactorIsDestroyedAndSafeToUseAfter) {
    // a port paused with pauseAccepting() is in no set, so the reactor's disconnectAll cannot tell it; its
    // destruction closes it (socket closed, factory stopped), and the port held past the reactor answers
    // stopListening(), resumeAccepting() and pauseAccepting() harmlessly and refuses startListening() (they
    // reached through the destroyed reactor before).
    auto r = makeReactor();
    auto f = std::make_shared<RecordingFactory>();
    auto port = r->listenTCP(0, f, 50, "127.0.0.1");
    auto number = portNumber(*port);
    port->pauseAccepting();
    std::optional<bool> stopFired;
    auto pending = port->stopListening();  // asked, its close still to come when the reactor goes
    pending.addBoth([&](Result<void> res) { stopFired = res.ok(); });
    r.reset();
    EXPECT_EQ(f->stopped, 1);
    EXPECT_EQ(stopFired, std::optional<bool>(true));
    EXPECT_FALSE(port->listening());
    EXPECT_EQ(port->fileno(), -1);
    EXPECT_LT(plainConnect(number), 0) << "the socket still listens";
    bool fired = false;
    port->stopListening().addBoth([&](Result<void>) { fired = true; });
    EXPECT_TRUE(fired);
    EXPECT_NO_THROW(port->resumeAccepting());
    EXPECT_NO_THROW(port->pauseAccepting());
    EXPECT_THROW(port->startListening(), std::logic_error);

    // Paused and never stopped: the same.
    auto r2 = makeReactor();
    auto f2 = std::make_shared<RecordingFactory>();
    auto port2 = r2->listenTCP(0, f2, 50, "127.0.0.1");
    port2->pauseAccepting();
    r2.reset();
    EXPECT_EQ(f2->stopped, 1);
    EXPECT_FALSE(port2->listening());
    EXPECT_NO_THROW(port2->resumeAccepting());
}

TEST_P(TCPTest, TCP_48_aConnectorRefusesToConnectOnceItsReactorIsDestroyed) {
    // TCP-48: connect() on a connector whose reactor is gone throws std::logic_error (it scheduled an attempt
    // on the destroyed reactor); disconnect() and stopConnecting() stay harmless, and its clock is null.
    auto r = makeReactor();
    RefusingPort refusing;
    auto cf = std::make_shared<RecordingClientFactory>();
    auto connector = r->connectTCP("127.0.0.1", refusing.port, cf);
    ASSERT_TRUE(spinUntil(*r, [&] { return cf->failed == 1; }));
    r.reset();
    EXPECT_THROW(connector->connect(), std::logic_error);
    EXPECT_NO_THROW(connector->disconnect());
    EXPECT_EQ(connector->clock(), nullptr);
}

TEST_P(TCPTest, TCP_48_aReconnectAskedForAsTheReactorIsDestroyedIsDroppedAndNothingLeaks) {
    // TCP-48 with R-7: a factory that reconnects from clientConnectionFailed (Twisted's idiom) while the reactor
    // is destroyed: the destruction fails the pending attempt, the factory connects again, and that attempt,
    // made after the reactor told its transports, is dropped: the connector, its transport and the factory are
    // freed, and the factory stopped (they kept each other alive before).
    auto r = makeReactor();
    auto cf = std::make_shared<RecordingClientFactory>();
    int reconnects = 0;
    cf->onFailed = [&](const std::shared_ptr<IConnector>& c, const Failure&) {
        if (reconnects++ < 5) c->connect();
    };
    std::weak_ptr<IConnector> connector = r->connectTCP("127.0.0.1", 9, cf);  // its attempt waits for the loop
    std::weak_ptr<RecordingClientFactory> factory = cf;
    cf.reset();
    r.reset();
    EXPECT_EQ(reconnects, 1);
    EXPECT_TRUE(connector.expired()) << "the connector outlived its reactor";
    EXPECT_TRUE(factory.expired()) << "the factory outlived its reactor";
}
