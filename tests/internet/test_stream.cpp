// The stream contracts TCP and UNIX stream sockets share (tcp.md TCP-19…TCP-45
// and filedescriptor.md; unix.md applies every one of them to UNIX sockets),
// checked by one suite over (transport × backend): TCP on 127.0.0.1:0 and UNIX
// on a path in a fresh directory, each on epoll, poll and select (issue #10).
// Only connectPair() knows which transport it is; every test reaches the
// connection through ITransport, IHalfCloseableTransport and StreamTransport.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <weft/internet/abort.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/stream.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/testing.hpp>
#include <weft/internet/unix.hpp>

#include "internet/detail/crosscast.hpp"

#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"

using namespace weft;
using namespace weft::test;
using weft::error::ConnectionAborted;
using weft::error::ConnectionClosed;
using weft::error::ConnectionDone;

namespace {

// No identifier is named `unix`: g++ predefines it as a macro in GNU mode.
enum class Transport { tcp, unixSocket };

const char* transportName(Transport t) { return t == Transport::tcp ? "TCP" : "UNIX"; }
void PrintTo(Transport t, std::ostream* os) { *os << transportName(t); }

using StreamParam = std::tuple<Transport, Backend>;

std::string streamParamName(const ::testing::TestParamInfo<StreamParam>& info) {
    return std::string(transportName(std::get<0>(info.param))) + "_" +
           std::string(backendName(std::get<1>(info.param)));
}

std::string why(const std::optional<Failure>& f) { return f ? f->typeName() + ": " + f->getErrorMessage() : "(none)"; }

StreamTransport& streamOf(ITransport& t) { return dynamic_cast<StreamTransport&>(t); }
IHalfCloseableTransport& halfOf(ITransport& t) { return dynamic_cast<IHalfCloseableTransport&>(t); }
HalfCloseProtocol& half(RecordingProtocol& p) { return dynamic_cast<HalfCloseProtocol&>(p); }
std::shared_ptr<RecordingProtocol> makeHalfClose(const Address&) { return std::make_shared<HalfCloseProtocol>(); }

/// One connection's two factories, the port that accepted it and the connector
/// that made it. Hooks go on sf/cf (make, onBuilt) before connectPair(); after
/// it, server() and client() are the two RecordingProtocols.
struct Pair {
    Pair() = default;
    Pair(const Pair&) = delete;
    Pair& operator=(const Pair&) = delete;
    ~Pair() {
        // A factory keeps every protocol it built, and a protocol its transport.
        if (sf) sf->built.clear();
        if (cf) {
            cf->built.clear();
            cf->connectors.clear();
        }
    }
    std::shared_ptr<RecordingFactory> sf = std::make_shared<RecordingFactory>();
    std::shared_ptr<RecordingClientFactory> cf = std::make_shared<RecordingClientFactory>();
    std::shared_ptr<StreamPort> port;
    std::shared_ptr<BaseConnector> connector;
    std::optional<Address> destination;  ///< where the client connected to
    RecordingProtocol& server() { return *sf->built.at(0); }
    RecordingProtocol& client() { return *cf->built.at(0); }
    bool bothBuilt() const { return sf->built.size() == 1 && cf->built.size() == 1; }
};

/// A reactor of the backend in the parameter, and the leak checks of
/// ReactorTest: after every test, nothing registered, no pending calls, no
/// descriptor or thread left behind, no unexpected error logged.
class StreamTest : public LeakCheckedTest, public ::testing::WithParamInterface<StreamParam> {
protected:
    void SetUp() override {
        LeakCheckedTest::SetUp();
        reactor_ = Reactor::create(backend());
        if (transport() == Transport::unixSocket) {
            char tmpl[] = "/tmp/weft-stream-XXXXXX";
            ASSERT_NE(::mkdtemp(tmpl), nullptr);
            dir_ = tmpl;
        }
    }
    void TearDown() override {
        EXPECT_TRUE(reactor_->getReaders().empty()) << "the test left readers registered";
        EXPECT_TRUE(reactor_->getWriters().empty()) << "the test left writers registered";
        EXPECT_TRUE(reactor_->getDelayedCalls().empty()) << "the test left pending DelayedCalls";
        reactor_->removeAll();
        reactor_.reset();
        if (!dir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
        LeakCheckedTest::TearDown();
    }

    Transport transport() const { return std::get<0>(GetParam()); }
    Backend backend() const { return std::get<1>(GetParam()); }
    Reactor& reactor() { return *reactor_; }

    /// Listens with p.sf (TCP: 127.0.0.1, a kernel-chosen port; UNIX: a new
    /// path in the test's directory) and connects p.cf to it; returns at once
    /// (the attempt runs on a later iteration).
    void listenAndConnect(Pair& p) {
        if (transport() == Transport::tcp) {
            auto port = reactor().listenTCP(0, p.sf, 50, "127.0.0.1");
            std::uint16_t number = portNumber(*port);
            p.port = port;
            p.destination = IPv4Address("TCP", "127.0.0.1", number);
            p.connector = reactor().connectTCP("127.0.0.1", number, p.cf);
        } else {
            std::string path = dir_ + "/s" + std::to_string(++paths_);
            p.port = reactor().listenUNIX(path, p.sf);
            p.destination = UNIXAddress(path);
            p.connector = reactor().connectUNIX(path, p.cf);
        }
    }

    /// listenAndConnect(), then iterates until both sides ran connectionMade.
    void connectPair(Pair& p) {
        listenAndConnect(p);
        ASSERT_TRUE(spinUntil([&] { return p.bothBuilt() && p.server().made == 1 && p.client().made == 1; }))
            << "the pair did not connect";
    }

    /// Both protocols built have lost their connection, and the connector heard of it.
    static bool ended(const Pair& p) {
        for (auto& s : p.sf->built)
            if (s->lost == 0) return false;
        for (auto& c : p.cf->built)
            if (c->lost == 0) return false;
        return !p.sf->built.empty() && p.cf->lostCalls + p.cf->failed >= 1;
    }

    /// Closes whatever side is still open, waits for both ends, stops the port.
    void closePair(Pair& p) {
        for (auto& c : p.cf->built)
            if (c->lost == 0) c->transport->loseConnection();
        for (auto& s : p.sf->built)
            if (s->lost == 0) s->transport->loseConnection();
        EXPECT_TRUE(spinUntil([&] { return ended(p); })) << "the connection did not end";
        if (p.port) stopListening(*p.port);
    }

    void stopListening(StreamPort& port) {
        bool done = false;
        port.stopListening().addBoth([&](Result<void>) { done = true; });
        EXPECT_TRUE(spinUntil([&] { return done; })) << "stopListening never completed";
    }

    /// Iterates the reactor until pred() holds; false after `seconds`.
    template <class P>
    bool spinUntil(P pred, double seconds = 10) {
        double end = reactor().seconds() + seconds;
        while (!pred()) {
            if (reactor().seconds() > end) return false;
            reactor().iterate(0.01);
        }
        return true;
    }
    /// Iterates the reactor for `seconds`.
    void spinFor(double seconds) {
        double end = reactor().seconds() + seconds;
        while (reactor().seconds() < end) reactor().iterate(0.01);
    }

    enum class Cb { made, data, lost };
    enum class Act { loseConnection, abortConnection, dropReferences };
    void runCallbackCase(Cb cb, Act act, int actor);
    void runCallbackTable(Act act);

private:
    std::unique_ptr<Reactor> reactor_;
    std::string dir_;
    int paths_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Streams, StreamTest,
                         ::testing::Combine(::testing::Values(Transport::tcp, Transport::unixSocket), allBackends()),
                         streamParamName);

// ---- writing and reading ----------------------------------------------------------------

TEST_P(StreamTest, TCP_25_writeThenLoseConnectionInConnectionMadeDeliversEverything) {
    // TCP-25: write + writeSequence + loseConnection inside connectionMade get every byte to the peer, which then sees ConnectionDone.
    const std::string big = randomBytes(3u << 20, 25);
    Pair p;
    p.sf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onMade = [&](RecordingProtocol& self) {
            self.send("hello ");
            std::string_view parts[] = {"wor", "ld "};
            Bytes chunks[] = {asBytes(parts[0]), asBytes(parts[1])};
            self.transport->writeSequence(chunks);
            self.send(big);
            self.transport->loseConnection();
        };
    };
    listenAndConnect(p);
    ASSERT_TRUE(spinUntil([&] { return ended(p); }, 30));
    ASSERT_TRUE(p.bothBuilt());
    const std::string& got = p.client().received;
    ASSERT_EQ(got.size(), big.size() + 12);
    EXPECT_EQ(got.substr(0, 12), "hello world ");
    EXPECT_TRUE(got.compare(12, std::string::npos, big) == 0) << "the bulk bytes differ";
    EXPECT_TRUE(p.client().lostReason && p.client().lostReason->check<ConnectionDone>()) << why(p.client().lostReason);
    EXPECT_TRUE(p.server().lostReason && p.server().lostReason->check<ConnectionDone>()) << why(p.server().lostReason);
    EXPECT_EQ(p.cf->lostCalls, 1);
    closePair(p);
}

TEST_P(StreamTest, FD_8_bulkTransferBothWaysArrivesByteExact) {
    // FD-8: bytes leave in the order written, none lost, duplicated or reordered, through any pattern of short writes — 4 MiB each way at once, in writes of mixed sizes.
    const std::string up = randomBytes(4u << 20, 81), down = randomBytes(4u << 20, 82);
    auto sendInPieces = [](RecordingProtocol& self, const std::string& data) {
        static constexpr std::size_t sizes[] = {1, 100, 4096, 4097, 65536, 200000, 7};
        std::size_t at = 0;
        for (std::size_t i = 0; at < data.size(); ++i) {
            std::size_t n = std::min(sizes[i % std::size(sizes)], data.size() - at);
            self.send(std::string_view(data).substr(at, n));
            at += n;
        }
    };
    Pair p;
    p.cf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onMade = [&](RecordingProtocol& self) { sendInPieces(self, up); };
    };
    p.sf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onMade = [&](RecordingProtocol& self) { sendInPieces(self, down); };
    };
    listenAndConnect(p);
    ASSERT_TRUE(spinUntil(
        [&] {
            return p.bothBuilt() && p.server().received.size() >= up.size() &&
                   p.client().received.size() >= down.size();
        },
        30))
        << "the transfer stalled";
    spinFor(0.02);  // nothing more may arrive
    EXPECT_EQ(p.server().received.size(), up.size());
    EXPECT_TRUE(p.server().received == up) << "client → server bytes differ";
    EXPECT_EQ(p.client().received.size(), down.size());
    EXPECT_TRUE(p.client().received == down) << "server → client bytes differ";
    EXPECT_EQ(p.server().lost, 0);
    EXPECT_EQ(p.client().lost, 0);
    closePair(p);
}

TEST_P(StreamTest, TCP_19_readsAtMostBufferSizePerReadableEvent) {
    // TCP-19: each readable event makes one receive of at most bufferSize bytes, handed to dataReceived in order.
    Pair p;
    std::vector<std::size_t> chunks;
    p.sf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onMade = [](RecordingProtocol& self) { self.stream()->bufferSize = 10; };
        proto.onData = [&](RecordingProtocol&, std::string_view d) { chunks.push_back(d.size()); };
    };
    ASSERT_NO_FATAL_FAILURE(connectPair(p));
    const std::string data = randomBytes(100, 19);
    p.client().send(data);
    ASSERT_TRUE(spinUntil([&] { return p.server().received.size() >= data.size(); }));
    EXPECT_EQ(p.server().received, data);
    EXPECT_GE(chunks.size(), 10u);
    for (auto n : chunks) EXPECT_LE(n, 10u);
    closePair(p);
}

TEST_P(StreamTest, TCP_24_getHandleIsTheStreamSocketAndMinusOneOnceClosed) {
    // TCP-24: getHandle() is the connection's native socket (its fileno()); -1 once the connection is closed.
    Pair p;
    ASSERT_NO_FATAL_FAILURE(connectPair(p));
    for (RecordingProtocol* side : {&p.server(), &p.client()}) {
        StreamTransport& t = *side->stream();
        int h = t.getHandle();
        ASSERT_GE(h, 0);
        EXPECT_EQ(h, t.fileno());
        int type = 0, domain = 0;
        socklen_t len = sizeof type;
        ASSERT_EQ(::getsockopt(h, SOL_SOCKET, SO_TYPE, &type, &len), 0);
        EXPECT_EQ(type, SOCK_STREAM);
        len = sizeof domain;
        ASSERT_EQ(::getsockopt(h, SOL_SOCKET, SO_DOMAIN, &domain, &len), 0);
        EXPECT_EQ(domain, transport() == Transport::tcp ? AF_INET : AF_UNIX);
    }
    closePair(p);
    EXPECT_EQ(p.server().stream()->getHandle(), -1);
    EXPECT_EQ(p.client().stream()->getHandle(), -1);
}

// ---- half-close -----------------------------------------------------------------------------

TEST_P(StreamTest, TCP_27_halfCloseableProtocolHearsReadConnectionLostAndMayGoOnWriting) {
    // TCP-27: on the peer's EOF a half-closeable protocol hears readConnectionLost(), reading stops, and the connection stays open for writing until the protocol closes it.
    Pair p;
    p.sf->make = makeHalfClose;
    bool readingAtReadLost = true;
    int lostWhenReplying = -1;
    p.sf->onBuilt = [&](RecordingProtocol& proto) {
        half(proto).onReadLost = [&](HalfCloseProtocol& self) {
            readingAtReadLost = reactor().isReading(self.stream());
            reactor().callLater(0.05, [&self, &lostWhenReplying] {
                lostWhenReplying = self.lost;
                self.send("reply:" + self.received);
                self.transport->loseConnection();
            });
        };
    };
    p.cf->onBuilt = [](RecordingProtocol& proto) {
        proto.onMade = [](RecordingProtocol& self) {
            self.send("request");
            halfOf(*self.transport).loseWriteConnection();
        };
    };
    listenAndConnect(p);
    ASSERT_TRUE(spinUntil([&] { return ended(p); }));
    auto& s = half(p.server());
    EXPECT_EQ(s.readLost, 1);
    EXPECT_EQ(s.writeLost, 0);
    EXPECT_FALSE(readingAtReadLost);
    EXPECT_EQ(lostWhenReplying, 0);
    EXPECT_EQ(s.lost, 1);
    EXPECT_TRUE(s.lostReason && s.lostReason->check<ConnectionDone>()) << why(s.lostReason);
    EXPECT_EQ(p.client().received, "reply:request");
    EXPECT_TRUE(p.client().lostReason && p.client().lostReason->check<ConnectionDone>()) << why(p.client().lostReason);
    closePair(p);
}

TEST_P(StreamTest, TCP_27_peerEOFOnPlainProtocolFlushesBufferedOutputThenConnectionDone) {
    // TCP-27 (Better than Twisted): the peer's EOF on a protocol that is not half-closeable acts as loseConnection(): the 4 MiB queued before it are all sent, then connectionLost(ConnectionDone).
    const std::string big = randomBytes(4u << 20, 27);
    Pair p;
    std::optional<StreamTransport::ReadHalf> readHalfAtLost;
    p.sf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onData = [&](RecordingProtocol& self, std::string_view) {
            if (self.received == "go") self.send(big);
        };
        proto.onLost = [&](RecordingProtocol& self, const Failure&) { readHalfAtLost = self.stream()->readHalf(); };
    };
    p.cf->onBuilt = [](RecordingProtocol& proto) {
        proto.onMade = [](RecordingProtocol& self) {
            self.send("go");
            halfOf(*self.transport).loseWriteConnection();
        };
    };
    listenAndConnect(p);
    ASSERT_TRUE(spinUntil([&] { return ended(p); }, 30));
    EXPECT_EQ(p.server().received, "go");
    EXPECT_EQ(p.server().lost, 1);
    EXPECT_TRUE(p.server().lostReason && p.server().lostReason->check<ConnectionDone>()) << why(p.server().lostReason);
    EXPECT_EQ(readHalfAtLost, StreamTransport::ReadHalf::ended);
    EXPECT_EQ(p.client().received.size(), big.size());
    EXPECT_TRUE(p.client().received == big) << "the output queued before the EOF was not all sent";
    EXPECT_TRUE(p.client().lostReason && p.client().lostReason->check<ConnectionDone>()) << why(p.client().lostReason);
    closePair(p);
}

TEST_P(StreamTest, TCP_27_peerEOFEndsAPlainProtocolThatIsItsTransportsProducer) {
    // The close that the peer's EOF makes (TCP-27) is the transport's own, not the protocol's: a
    // producer the protocol registered and never unregisters (here the transport itself, as an
    // echo server has it) must not hold it open (FD-13), and is stopped with the connection.
    auto producer = std::make_shared<StopCountingProducer>();
    Pair p;
    p.sf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onMade = [&](RecordingProtocol& self) { self.transport->asConsumer()->registerProducer(producer, true); };
        proto.onData = [](RecordingProtocol& self, std::string_view) { self.send("answer"); };
    };
    p.cf->onBuilt = [](RecordingProtocol& proto) {
        proto.onMade = [](RecordingProtocol& self) {
            self.send("question");
            halfOf(*self.transport).loseWriteConnection();
        };
    };
    listenAndConnect(p);
    ASSERT_TRUE(spinUntil([&] { return ended(p); }, 10)) << "the server side did not end at the peer's EOF";
    EXPECT_TRUE(p.server().lostReason && p.server().lostReason->check<ConnectionDone>()) << why(p.server().lostReason);
    EXPECT_EQ(p.client().received, "answer");
    EXPECT_EQ(producer->stops, 1);
    closePair(p);
}

TEST_P(StreamTest, TCP_27_readHalfEndsAtPeerEOFAndResumeProducingDoesNotRestartReading) {
    // TCP-27: after the peer's EOF the read half is ended: reading stopped for good (resumeProducing does not restart it, no second readConnectionLost) while writing still works.
    Pair p;
    p.sf->make = makeHalfClose;
    std::optional<StreamTransport::ReadHalf> halfAtReadLost;
    bool readingAfterResume = true;
    p.sf->onBuilt = [&](RecordingProtocol& proto) {
        half(proto).onReadLost = [&](HalfCloseProtocol& self) {
            halfAtReadLost = self.stream()->readHalf();
            self.stream()->pauseProducing();
            self.stream()->resumeProducing();
            readingAfterResume = reactor().isReading(self.stream());
        };
    };
    ASSERT_NO_FATAL_FAILURE(connectPair(p));
    auto& s = half(p.server());
    StreamTransport& st = *s.stream();
    EXPECT_EQ(st.readHalf(), StreamTransport::ReadHalf::open);
    EXPECT_TRUE(reactor().isReading(&st));
    halfOf(*p.client().transport).loseWriteConnection();
    ASSERT_TRUE(spinUntil([&] { return s.readLost == 1; }));
    EXPECT_EQ(halfAtReadLost, StreamTransport::ReadHalf::ended);
    EXPECT_FALSE(readingAfterResume);
    st.resumeProducing();  // from outside a callback too
    EXPECT_FALSE(reactor().isReading(&st));
    spinFor(0.1);
    EXPECT_EQ(s.readLost, 1) << "the end of the stream was reported again";
    EXPECT_EQ(s.lost, 0);
    EXPECT_EQ(st.readHalf(), StreamTransport::ReadHalf::ended);
    EXPECT_TRUE(st.connected());
    s.send("still writable");
    s.transport->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return ended(p); }));
    EXPECT_EQ(p.client().received, "still writable");
    EXPECT_TRUE(s.lostReason && s.lostReason->check<ConnectionDone>()) << why(s.lostReason);
    EXPECT_TRUE(p.client().lostReason && p.client().lostReason->check<ConnectionDone>()) << why(p.client().lostReason);
    closePair(p);
}

TEST_P(StreamTest, TCP_28_bothHalvesClosedEndsWithConnectionDoneWithoutLoseConnection) {
    // TCP-28: once our write half is shut and the peer's stream has ended (in either order) the connection ends with connectionLost(ConnectionDone), without loseConnection().
    Pair p;
    p.sf->make = makeHalfClose;
    p.cf->make = makeHalfClose;
    p.sf->onBuilt = [](RecordingProtocol& proto) {
        half(proto).onReadLost = [](HalfCloseProtocol& self) {  // EOF first, then our write half
            self.send("last words");
            halfOf(*self.transport).loseWriteConnection();
        };
    };
    p.cf->onBuilt = [](RecordingProtocol& proto) {  // our write half first, then EOF
        proto.onMade = [](RecordingProtocol& self) { halfOf(*self.transport).loseWriteConnection(); };
    };
    listenAndConnect(p);
    ASSERT_TRUE(spinUntil([&] { return ended(p); }));
    for (RecordingProtocol* side : {&p.server(), &p.client()}) {
        SCOPED_TRACE(side == &p.server() ? "server" : "client");
        auto& h = half(*side);
        EXPECT_EQ(h.readLost, 1);
        EXPECT_EQ(h.writeLost, 1);
        EXPECT_EQ(h.lost, 1);
        EXPECT_TRUE(h.lostReason && h.lostReason->check<ConnectionDone>()) << why(h.lostReason);
    }
    EXPECT_EQ(p.client().received, "last words");
    EXPECT_EQ(p.cf->lostCalls, 1);
    closePair(p);
}

TEST_P(StreamTest, TCP_29_loseWriteConnectionFlushesThenShutsNotifiesAndReadingGoesOn) {
    // TCP-29: loseWriteConnection(): once the buffer drained the write half is shut and writeConnectionLost() called; reading goes on, later writes are dropped; the peer sees all the data, then its EOF.
    const std::string big = randomBytes(2u << 20, 29);
    Pair p;
    p.cf->make = makeHalfClose;
    std::size_t pendingAtWriteLost = 1;
    bool readingAtWriteLost = false;
    int serverReadEOFAtWriteLost = -1;
    p.cf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onMade = [&](RecordingProtocol& self) {
            self.send(big);
            halfOf(*self.transport).loseWriteConnection();
        };
        half(proto).onWriteLost = [&](HalfCloseProtocol& self) {
            pendingAtWriteLost = self.stream()->pendingBytes();
            readingAtWriteLost = reactor().isReading(self.stream());
            serverReadEOFAtWriteLost = p.sf->built.empty() ? -1 : p.server().lost;
            self.send("late");  // the write half is shut: dropped
        };
    };
    bool replied = false;
    p.sf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onData = [&](RecordingProtocol& self, std::string_view) {
            if (!replied && self.received.size() >= big.size()) {
                replied = true;
                self.send("echo");
            }
        };
    };
    listenAndConnect(p);
    ASSERT_TRUE(spinUntil([&] { return ended(p); }, 30));
    auto& c = half(p.client());
    EXPECT_EQ(c.writeLost, 1);
    EXPECT_EQ(pendingAtWriteLost, 0u);
    EXPECT_TRUE(readingAtWriteLost);
    EXPECT_EQ(serverReadEOFAtWriteLost, 0);  // the shutdown comes before the peer can see the end
    EXPECT_EQ(p.server().received.size(), big.size());
    EXPECT_TRUE(p.server().received == big) << "the data differs, or a write after the shutdown reached the peer";
    EXPECT_TRUE(p.server().lostReason && p.server().lostReason->check<ConnectionDone>()) << why(p.server().lostReason);
    EXPECT_EQ(c.received, "echo");  // reading went on after the write half was shut
    EXPECT_EQ(c.readLost, 1);
    EXPECT_EQ(c.lost, 1);
    EXPECT_TRUE(c.lostReason && c.lostReason->check<ConnectionDone>()) << why(c.lostReason);
    closePair(p);
}

// ---- abortConnection ---------------------------------------------------------------------------

TEST_P(StreamTest, TCP_32_abortTransportAbortsThroughAPlainITransport) {
    // TCP-32: abortTransport() finds the abort of a TCP and of a UNIX connection (no ITCPTransport) from
    // an ITransport alone: queued output dropped, connectionLost(ConnectionAborted) later, not a clean close.
    Pair p;
    ASSERT_NO_FATAL_FAILURE(connectPair(p));
    RecordingProtocol& c = p.client();
    c.send(std::string(1u << 20, 'q'));
    abortTransport(*c.transport);
    EXPECT_EQ(c.lost, 0) << "connectionLost ran inside abortTransport()";
    EXPECT_TRUE(c.stream()->aborting());
    EXPECT_EQ(c.stream()->pendingBytes(), 0u);
    ASSERT_TRUE(spinUntil([&] { return ended(p); }));
    EXPECT_TRUE(c.lostReason && c.lostReason->check<ConnectionAborted>()) << why(c.lostReason);
    closePair(p);
}

TEST(AbortTransport, TCP_32_aTransportWithoutAnAbortIsClosedWithoutWaitingForItsProducer) {
    // Neither ITCPTransport nor StreamTransport nor a wrapper of one (standard I/O, a process): the
    // fallback close must not wait for a registered producer, as an abort would not.
    struct NoAbort final : ITransport {
        bool lost = false, despite = false;
        void write(Bytes) override {}
        void writeSequence(std::span<const Bytes>) override {}
        void loseConnection() override { lost = true; }
        void loseConnectionDespiteProducer() override { despite = true; }
        Address getPeer() const override { return NoAddress{}; }
        Address getHost() const override { return NoAddress{}; }
    } t;
    abortTransport(t);
    EXPECT_TRUE(t.despite);
    EXPECT_FALSE(t.lost);
    // A StringTransport is aborted as Twisted's is (TEST-2).
    auto fake = std::make_shared<weft::testing::StringTransport>();
    fake->registerProducer(std::make_shared<StopCountingProducer>(), true);
    abortTransport(*fake);
    EXPECT_TRUE(fake->disconnecting);
    EXPECT_TRUE(fake->disconnected);
}

TEST_P(StreamTest, TCP_32_abortDropsOutputStopsIOAndReportsConnectionAbortedLater) {
    // TCP-32: abortConnection() drops buffered output, stops reading and writing at once, and connectionLost(ConnectionAborted) comes later from the reactor; the peer sees its connection lost.
    Pair p;
    ASSERT_NO_FATAL_FAILURE(connectPair(p));
    RecordingProtocol& c = p.client();
    StreamTransport& t = *c.stream();
    c.send(std::string(1u << 20, 'q'));
    t.abortConnection();
    EXPECT_EQ(c.lost, 0) << "connectionLost ran inside abortConnection()";
    EXPECT_TRUE(t.aborting());
    EXPECT_TRUE(t.connected());
    EXPECT_EQ(t.pendingBytes(), 0u);
    EXPECT_FALSE(reactor().isReading(&t));
    EXPECT_FALSE(reactor().isWriting(&t));
    ASSERT_TRUE(spinUntil([&] { return ended(p); }));
    EXPECT_EQ(c.lost, 1);
    EXPECT_TRUE(c.lostReason && c.lostReason->check<ConnectionAborted>()) << why(c.lostReason);
    EXPECT_TRUE(p.cf->lostReason && p.cf->lostReason->check<ConnectionAborted>()) << why(p.cf->lostReason);
    EXPECT_EQ(p.server().lost, 1);
    EXPECT_TRUE(p.server().lostReason && p.server().lostReason->check<ConnectionClosed>())
        << why(p.server().lostReason);
    EXPECT_FALSE(p.server().lostReason && p.server().lostReason->check<ConnectionAborted>());
    EXPECT_EQ(p.server().received.size(), 0u) << "output queued before the abort was sent";
    closePair(p);
}

TEST_P(StreamTest, TCP_33_abortTwiceAbortThenLoseAbortThenWriteEndInOneConnectionLost) {
    // TCP-33: abortConnection() twice, or followed by loseConnection() or write(), raises nothing and ends in one connectionLost(ConnectionAborted); bytes written after the abort never reach the peer; connected stays true until then.
    enum class Then { abortAgain, loseConnection, write };
    for (Then then : {Then::abortAgain, Then::loseConnection, Then::write}) {
        SCOPED_TRACE(then == Then::abortAgain ? "abort again" : then == Then::loseConnection ? "lose" : "write");
        Pair p;
        bool connectedAfter = false;
        int lostAfter = -1;
        p.cf->onBuilt = [](RecordingProtocol& proto) {
            proto.onMade = [](RecordingProtocol& self) { self.send("hello"); };
        };
        p.sf->onBuilt = [&](RecordingProtocol& proto) {
            proto.onData = [&](RecordingProtocol& self, std::string_view) {
                StreamTransport& t = *self.stream();
                if (t.aborting()) return;
                EXPECT_NO_THROW({
                    t.abortConnection();
                    if (then == Then::abortAgain) t.abortConnection();
                    if (then == Then::loseConnection) t.loseConnection();
                    if (then == Then::write) self.send("after the abort");
                });
                connectedAfter = t.connected();
                lostAfter = self.lost;
            };
            proto.onLost = [](RecordingProtocol& self, const Failure&) {
                // Disconnected: every one of these is a no-op.
                self.stream()->abortConnection();
                self.transport->loseConnection();
                self.send("after connectionLost");
            };
        };
        listenAndConnect(p);
        ASSERT_TRUE(spinUntil([&] { return ended(p); }));
        spinFor(0.05);  // a second connectionLost would come now
        EXPECT_TRUE(connectedAfter);
        EXPECT_EQ(lostAfter, 0);
        EXPECT_EQ(p.server().received, "hello");
        EXPECT_EQ(p.server().lost, 1);
        EXPECT_TRUE(p.server().lostReason && p.server().lostReason->check<ConnectionAborted>())
            << why(p.server().lostReason);
        EXPECT_EQ(p.client().lost, 1);
        EXPECT_EQ(p.client().received, "") << "bytes written after the abort reached the peer";
        EXPECT_EQ(p.cf->lostCalls, 1);
        closePair(p);
    }
}

// ---- re-entrancy and ownership ---------------------------------------------------------------

/// One case: `act` from inside callback `cb` on side `actor` (0 server, 1
/// client). Keeps only weak references of its own, so it can check that the
/// protocols, transports, port, connector and factories are all freed once the
/// pair lets go of its handles.
void StreamTest::runCallbackCase(Cb cb, Act act, int actor) {
    struct Side {
        int made = 0, lost = 0;
        std::optional<Failure> reason;
        std::weak_ptr<RecordingProtocol> protocol;
        std::weak_ptr<ITransport> transport;
    };
    Side side[2];
    bool acted = false;
    auto p = std::make_unique<Pair>();
    auto doAct = [&](RecordingProtocol& self) {
        acted = true;
        std::shared_ptr<ITransport> t = self.transport;  // this call's own handle
        switch (act) {
            case Act::loseConnection:
                t->loseConnection();
                t->loseConnection();  // idempotent
                break;
            case Act::abortConnection: streamOf(*t).abortConnection(); break;
            case Act::dropReferences:
                // The test's last references to both protocols go; the library keeps what it needs.
                p->sf->built.clear();
                p->cf->built.clear();
                if (cb != Cb::lost) t->loseConnection();
                break;
        }
    };
    auto hooks = [&](int s) {
        return [&, s](RecordingProtocol& proto) {
            side[s].protocol = s == 0 ? p->sf->built.back() : p->cf->built.back();
            proto.onMade = [&, s](RecordingProtocol& self) {
                ++side[s].made;
                side[s].transport = self.transport;
                if (s != actor) {
                    if (cb == Cb::data) self.send("ping");
                    if (cb == Cb::lost) self.transport->loseConnection();
                    return;
                }
                if (cb == Cb::made) doAct(self);
            };
            proto.onData = [&, s](RecordingProtocol& self, std::string_view) {
                if (s == actor && cb == Cb::data && !acted) doAct(self);
            };
            proto.onLost = [&, s](RecordingProtocol& self, const Failure& reason) {
                ++side[s].lost;
                side[s].reason = reason;
                if (s == actor && cb == Cb::lost) doAct(self);
            };
        };
    };
    p->sf->onBuilt = hooks(0);
    p->cf->onBuilt = hooks(1);
    std::weak_ptr<Factory> sfWeak = p->sf, cfWeak = p->cf;
    listenAndConnect(*p);
    std::weak_ptr<StreamPort> portWeak = p->port;
    std::weak_ptr<BaseConnector> connectorWeak = p->connector;

    ASSERT_TRUE(spinUntil([&] {
        return side[0].lost >= 1 && side[1].lost >= 1 && p->cf->lostCalls + p->cf->failed >= 1;
    })) << "the connection did not end (server lost "
        << side[0].lost << ", client lost " << side[1].lost << ")";
    spinFor(0.05);  // a second connectionLost would come now
    EXPECT_TRUE(acted);
    for (int s : {0, 1}) {
        SCOPED_TRACE(s == 0 ? "server side" : "client side");
        EXPECT_EQ(side[s].made, 1);
        EXPECT_EQ(side[s].lost, 1);
        ASSERT_TRUE(side[s].reason);
        EXPECT_TRUE(side[s].reason->check<ConnectionClosed>()) << why(side[s].reason);
    }
    if (act == Act::abortConnection && cb != Cb::lost) {
        EXPECT_TRUE(side[actor].reason->check<ConnectionAborted>()) << why(side[actor].reason);
    }
    if (act == Act::loseConnection && cb != Cb::lost) {
        EXPECT_TRUE(side[actor].reason->check<ConnectionDone>()) << why(side[actor].reason);
    }
    EXPECT_EQ(p->cf->lostCalls, 1);
    EXPECT_EQ(p->cf->failed, 0);
    stopListening(*p->port);
    EXPECT_TRUE(reactor().getReaders().empty());
    EXPECT_TRUE(reactor().getWriters().empty());
    EXPECT_TRUE(reactor().getDelayedCalls().empty());

    p.reset();
    for (int s : {0, 1}) {
        SCOPED_TRACE(s == 0 ? "server side" : "client side");
        EXPECT_TRUE(side[s].protocol.expired()) << "protocol leaked";
        EXPECT_TRUE(side[s].transport.expired()) << "transport leaked";
    }
    EXPECT_TRUE(portWeak.expired()) << "port leaked";
    EXPECT_TRUE(connectorWeak.expired()) << "connector leaked";
    EXPECT_TRUE(sfWeak.expired()) << "server factory leaked";
    EXPECT_TRUE(cfWeak.expired()) << "client factory leaked";
}

void StreamTest::runCallbackTable(Act act) {
    for (Cb cb : {Cb::made, Cb::data, Cb::lost}) {
        for (int actor : {0, 1}) {
            const char* name = cb == Cb::made ? "connectionMade" : cb == Cb::data ? "dataReceived" : "connectionLost";
            SCOPED_TRACE(std::string("from the ") + (actor == 0 ? "server's " : "client's ") + name);
            runCallbackCase(cb, act, actor);
        }
    }
}

TEST_P(StreamTest, TCP_22_loseConnectionFromInsideEachCallbackEndsOnceAndFreesEverything) {
    // TCP-22: a connection ends once (a second loseConnection or connectionLost does nothing) and lets go of its protocol — also when closed from inside connectionMade, dataReceived or connectionLost, on either side.
    runCallbackTable(Act::loseConnection);
}

TEST_P(StreamTest, TCP_33_abortConnectionFromInsideEachCallbackEndsOnceAndFreesEverything) {
    // TCP-33: abortConnection() from inside connectionMade, dataReceived or connectionLost (a no-op there), on either side, ends in exactly one connectionLost per side and leaks nothing.
    runCallbackTable(Act::abortConnection);
}

TEST_P(StreamTest, FD_40_droppingTheLastReferencesInsideEachCallbackEndsOnceAndFreesEverything) {
    // FD-40: the transport keeps its protocol alive until connectionLost, then nothing holds either — so dropping every outside reference from inside any callback is safe and frees everything.
    runCallbackTable(Act::dropReferences);
}

// ---- producer side of the transport -------------------------------------------------------------

TEST_P(StreamTest, FD_35_pauseProducingStopsDeliveryAndResumeProducingRestartsIt) {
    // FD-35/FD-36: pauseProducing() stops reading — no dataReceived and no end of stream while paused; resumeProducing() delivers what was buffered, then the close.
    Pair p;
    p.sf->onBuilt = [](RecordingProtocol& proto) {
        proto.onMade = [](RecordingProtocol& self) { self.stream()->pauseProducing(); };
    };
    ASSERT_NO_FATAL_FAILURE(connectPair(p));
    RecordingProtocol& s = p.server();
    StreamTransport& st = *s.stream();
    EXPECT_FALSE(reactor().isReading(&st));
    p.client().send("first");
    spinFor(0.1);
    EXPECT_EQ(s.received, "") << "data arrived while paused";
    st.resumeProducing();
    EXPECT_TRUE(reactor().isReading(&st));
    ASSERT_TRUE(spinUntil([&] { return s.received == "first"; }));

    st.pauseProducing();
    p.client().send("second");
    p.client().transport->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return p.client().lost == 1; }));
    spinFor(0.1);
    EXPECT_EQ(s.received, "first") << "data arrived while paused";
    EXPECT_EQ(s.lost, 0) << "the end of the stream was reported while paused";
    EXPECT_EQ(st.readHalf(), StreamTransport::ReadHalf::open);
    st.resumeProducing();
    ASSERT_TRUE(spinUntil([&] { return s.lost == 1; }));
    EXPECT_EQ(s.received, "firstsecond");
    EXPECT_TRUE(s.lostReason && s.lostReason->check<ConnectionDone>()) << why(s.lostReason);
    closePair(p);
}

// ---- pausing the listener -------------------------------------------------------------------------

TEST_P(StreamTest, STREAM_pauseAcceptingHoldsConnectionsInTheBacklog) {
    // StreamPort::pauseAccepting stops watching the listening socket: a client still connects (the kernel queues it), nothing is accepted until resumeAccepting, then it is.
    Pair p;
    listenAndConnect(p);
    p.port->pauseAccepting();  // the attempt runs on a later iteration: nothing accepted yet
    EXPECT_TRUE(p.port->acceptingPaused());
    EXPECT_FALSE(reactor().isReading(p.port.get()));
    ASSERT_TRUE(spinUntil([&] { return p.cf->built.size() == 1 && p.client().made == 1; }))
        << "the client did not connect to the paused listener";
    spinFor(0.2);
    EXPECT_TRUE(p.sf->built.empty()) << "a connection was accepted while paused";
    p.port->pauseAccepting();  // twice is once
    p.port->resumeAccepting();
    EXPECT_FALSE(p.port->acceptingPaused());
    EXPECT_TRUE(reactor().isReading(p.port.get()));
    ASSERT_TRUE(spinUntil([&] { return p.sf->built.size() == 1 && p.server().made == 1; }))
        << "the waiting connection was not accepted after resumeAccepting";
    p.port->resumeAccepting();  // not paused: nothing happens
    EXPECT_TRUE(reactor().isReading(p.port.get()));
    closePair(p);
}

TEST_P(StreamTest, STREAM_pauseAcceptingFromBuildProtocolEndsTheAcceptBatch) {
    // Three connections wait in the backlog; a factory that pauses the port when it builds a protocol gets exactly one per resumeAccepting, although one batch may accept up to numberAccepts.
    Pair p;
    listenAndConnect(p);
    p.port->pauseAccepting();
    std::vector<std::shared_ptr<IConnector>> more;
    for (int i = 0; i < 2; ++i) {
        if (transport() == Transport::tcp)
            more.push_back(reactor().connectTCP("127.0.0.1", portOf(*p.destination), p.cf));
        else more.push_back(reactor().connectUNIX(std::get<UNIXAddress>(*p.destination).name, p.cf));
    }
    ASSERT_TRUE(spinUntil([&] {
        return p.cf->built.size() == 3 &&
               std::all_of(p.cf->built.begin(), p.cf->built.end(), [](auto& c) { return c->made == 1; });
    })) << "the clients did not connect to the paused listener";
    p.sf->onBuilt = [&](RecordingProtocol&) { p.port->pauseAccepting(); };
    for (std::size_t accepted = 1; accepted <= 3; ++accepted) {
        p.port->resumeAccepting();
        ASSERT_TRUE(spinUntil([&] { return p.sf->built.size() >= accepted; })) << "nothing accepted after resume";
        spinFor(0.1);
        EXPECT_EQ(p.sf->built.size(), accepted) << "the batch went on accepting after pauseAccepting";
        EXPECT_TRUE(p.port->acceptingPaused());
    }
    p.port->resumeAccepting();
    closePair(p);
    more.clear();
}

TEST_P(StreamTest, STREAM_pauseAcceptingThenStopListeningClosesAndPauseResumeAreHarmlessOnceClosed) {
    // stopListening closes a paused port (its waiting client is dropped by the kernel); afterwards pauseAccepting/resumeAccepting register nothing.
    Pair p;
    listenAndConnect(p);
    p.port->pauseAccepting();
    ASSERT_TRUE(spinUntil([&] { return p.cf->built.size() == 1 && p.client().made == 1; }));
    stopListening(*p.port);
    EXPECT_FALSE(p.port->listening());
    EXPECT_FALSE(p.port->acceptingPaused());
    EXPECT_EQ(p.sf->stopped, 1);
    p.port->pauseAccepting();
    EXPECT_FALSE(p.port->acceptingPaused());
    p.port->resumeAccepting();
    EXPECT_FALSE(reactor().isReading(p.port.get()));
    EXPECT_TRUE(p.sf->built.empty());
    p.client().transport->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return p.client().lost == 1 && p.cf->lostCalls + p.cf->failed >= 1; }));
}

// ---- the connector ---------------------------------------------------------------------------------

TEST_P(StreamTest, TCP_36_connectCallsStartedConnectingBeforeReturning) {
    // TCP-36: connect* returns a connector in state connecting after factory.doStart() and startedConnecting(connector); getDestination() is the address given; connected once the protocol is made.
    Pair p;
    listenAndConnect(p);
    EXPECT_EQ(p.connector->state(), BaseConnector::State::connecting);
    EXPECT_EQ(p.cf->started, 1);
    EXPECT_EQ(p.cf->startedConnectingCalls, 1);
    ASSERT_EQ(p.cf->connectors.size(), 1u);
    EXPECT_EQ(p.cf->connectors[0].get(), static_cast<IConnector*>(p.connector.get()));
    EXPECT_EQ(p.connector->getDestination(), *p.destination);
    EXPECT_TRUE(p.cf->built.empty());  // the attempt runs on a later iteration
    ASSERT_TRUE(spinUntil([&] { return p.bothBuilt() && p.client().made == 1; }));
    EXPECT_EQ(p.connector->state(), BaseConnector::State::connected);
    EXPECT_EQ(p.cf->events, (std::vector<std::string>{"started", "built"}));
    closePair(p);
}

TEST_P(StreamTest, TCP_45_protocolConnectionLostComesBeforeClientConnectionLostSameConnector) {
    // TCP-45: on close the protocol's connectionLost runs before factory.clientConnectionLost(connector, reason), and one connector object reaches both startedConnecting and clientConnectionLost.
    Pair p;
    p.cf->onBuilt = [&](RecordingProtocol& proto) {
        proto.onMade = [](RecordingProtocol& self) { self.transport->loseConnection(); };
        proto.onLost = [&](RecordingProtocol&, const Failure&) { p.cf->events.push_back("protocol connectionLost"); };
    };
    listenAndConnect(p);
    ASSERT_TRUE(spinUntil([&] { return ended(p); }));
    EXPECT_EQ(p.cf->events, (std::vector<std::string>{"started", "built", "protocol connectionLost", "lost"}));
    ASSERT_EQ(p.cf->connectors.size(), 2u);
    EXPECT_EQ(p.cf->connectors[0].get(), static_cast<IConnector*>(p.connector.get()));
    EXPECT_EQ(p.cf->connectors[1].get(), static_cast<IConnector*>(p.connector.get()));
    EXPECT_TRUE(p.cf->lostReason && p.cf->lostReason->check<ConnectionDone>()) << why(p.cf->lostReason);
    EXPECT_EQ(p.connector->state(), BaseConnector::State::disconnected);
    EXPECT_EQ(p.cf->stopped, 1);  // TCP-48: still disconnected after the callback
    closePair(p);
}

}  // namespace

namespace crosscast {
// Protocols of several shapes: with and without the half-close interface, at
// different offsets, through a virtual base, more of them than the lookup
// remembers, so answers are pushed out and worked out again.
struct Plain : Protocol {};
struct Half : Protocol, IHalfCloseableProtocol {
    void readConnectionLost() override {}
    void writeConnectionLost() override {}
};
struct Padded {
    virtual ~Padded() = default;
    char pad[40] = {};
};
struct HalfAtOffset : Padded, Half {};
struct HalfVirtual : Protocol, virtual IHalfCloseableProtocol {
    void readConnectionLost() override {}
    void writeConnectionLost() override {}
};
struct HalfVirtualAgain : HalfVirtual {};
struct PlainAgain : Plain {};
}  // namespace crosscast

TEST(StreamLayer, STREAM_theHalfCloseLookupAnswersAsDynamicCastForEveryType) {
    // The stream layer asks each protocol for IHalfCloseableProtocol at every
    // end of stream, through detail::crossCast (one type walk per type, then a
    // remembered offset). Every answer must equal dynamic_cast's, for every
    // object, across more types than are remembered, many times over.
    using namespace crosscast;
    std::vector<std::shared_ptr<Protocol>> protocols;
    for (int i = 0; i < 3; ++i) {
        protocols.push_back(std::make_shared<Plain>());
        protocols.push_back(std::make_shared<Half>());
        protocols.push_back(std::make_shared<HalfAtOffset>());
        protocols.push_back(std::make_shared<HalfVirtual>());
        protocols.push_back(std::make_shared<HalfVirtualAgain>());
        protocols.push_back(std::make_shared<PlainAgain>());
    }
    int found = 0;
    for (int round = 0; round < 4; ++round)
        for (const auto& p : protocols) {
            auto* expected = dynamic_cast<IHalfCloseableProtocol*>(p.get());
            EXPECT_EQ(weft::detail::crossCast<IHalfCloseableProtocol>(p.get()), expected) << p->logPrefix();
            found += expected != nullptr;
        }
    EXPECT_EQ(found, 4 * 3 * 4);
    EXPECT_EQ(weft::detail::crossCast<IHalfCloseableProtocol>(static_cast<Protocol*>(nullptr)), nullptr);
}
