// FileDescriptor, producers and consumers (filedescriptor.md FD-1..FD-48).
//
// Transports are tested on real sockets: FdTransport (tests/support/fdtransport.hpp)
// over an AF_UNIX socketpair, or a loopback TCP pair for a real reset, with
// faults scripted through the syscall seam (tests/support/faults.hpp).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <weft/internet/abstract.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/testing.hpp>
#include <weft/internet/error.hpp>

#include "support/faults.hpp"
#include "support/fdtransport.hpp"
#include "support/reactortest.hpp"

using namespace weft;
using weft::test::Call;
using weft::test::FdTransport;
using weft::test::Pipe;
using weft::test::ReactorTest;
using weft::test::ScopedFaults;

namespace {

// ---- doubles ---------------------------------------------------------------------

/// A push producer that records what the consumer asks of it.
class PushProducer : public IPushProducer {
public:
    void pauseProducing() override {
        ++pauses;
        log("pause");
        if (onPause) onPause();
    }
    void resumeProducing() override {
        ++resumes;
        log("resume");
        if (onResume) onResume();
    }
    void stopProducing() override {
        ++stops;
        log("stop");
        if (onStop) onStop();
    }
    void log(const char* what) {
        events.emplace_back(what);
        if (order) order->emplace_back(what);
    }
    int pauses = 0, resumes = 0, stops = 0;
    std::vector<std::string> events;
    std::vector<std::string>* order = nullptr;
    std::function<void()> onPause, onResume, onStop;
};

/// A pull producer that records what the consumer asks of it.
class PullProducer : public IPullProducer {
public:
    void resumeProducing() override {
        ++resumes;
        events.emplace_back("resume");
        if (order) order->emplace_back("resume");
        if (onResume) onResume();
    }
    void stopProducing() override {
        ++stops;
        events.emplace_back("stop");
        if (order) order->emplace_back("stop");
        if (onStop) onStop();
    }
    int resumes = 0, stops = 0;
    std::vector<std::string> events;
    std::vector<std::string>* order = nullptr;
    std::function<void()> onResume, onStop;
};

/// A FileDescriptor that overrides only what is pure virtual; fileno() can be set.
class BareFD : public FileDescriptor {
public:
    using FileDescriptor::closeWriteConnection;
    using FileDescriptor::FileDescriptor;
    using FileDescriptor::setConnected;
    int fileno() const override { return fd < -1 ? FileDescriptor::fileno() : fd; }
    Reason doRead() override { return std::nullopt; }
    Address getPeer() const override { return NoAddress(); }
    Address getHost() const override { return NoAddress(); }
    void connectionLost(const Failure& reason) override {
        ++lost;
        lostReason = reason;
        FileDescriptor::connectionLost(reason);
    }
    int fd = -2;  // -2: use the base fileno()
    int lost = 0;
    std::optional<Failure> lostReason;

protected:
    WriteResult writeSomeData(std::span<const iovec> data) override {
        std::size_t n = 0;
        for (auto& v : data) n += v.iov_len;
        return n;
    }
};

std::vector<std::byte> bytesOf(std::string_view s) {
    auto b = asBytes(s);
    return {b.begin(), b.end()};
}

/// Deterministic test data.
std::string pattern(std::size_t n, std::uint32_t& state) {
    std::string s(n, '\0');
    for (auto& c : s) {
        state = state * 1664525u + 1013904223u;
        c = static_cast<char>(state >> 24);
    }
    return s;
}

int errnoOf(const Failure& f) {
    auto* e = f.get<ConnectionLost>();
    return e ? e->code().value() : -1;
}

/// Index of the first difference, for a readable failure message on megabytes.
std::size_t firstDifference(const std::string& a, const std::string& b) {
    std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i)
        if (a[i] != b[i]) return i;
    return n;
}

// ---- fixture ---------------------------------------------------------------------

class FileDescriptorTest : public ReactorTest {
protected:
    struct Pair {
        std::shared_ptr<FdTransport> a, b;
    };

    void TearDown() override {
        for (int fd : rawFds_)
            if (fd >= 0) ::close(fd);
        ReactorTest::TearDown();
    }

    /// Two connected transports over a socketpair, neither reading yet. (Tests bind
    /// references to .a/.b: clang 14 cannot capture structured bindings in lambdas.)
    Pair makePair() {
        int s[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) != 0)
            throw std::system_error(errno, std::generic_category(), "socketpair");
        return {FdTransport::create(reactor(), s[0]), FdTransport::create(reactor(), s[1])};
    }

    /// A transport over one end of a socketpair; the other end is a raw fd that
    /// the fixture closes in TearDown (or the test, with closeRaw).
    std::shared_ptr<FdTransport> withRawPeer(int& peer, bool connected = true) {
        int s[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) != 0)
            throw std::system_error(errno, std::generic_category(), "socketpair");
        rawFds_.push_back(s[1]);
        peer = s[1];
        return FdTransport::create(reactor(), s[0], connected);
    }

    /// A transport reading one end of a socketpair (peer: the other, raw), whose every data and loss
    /// callback counts into `calls`.
    std::shared_ptr<FdTransport> readingWithRawPeer(int& peer, int& calls) {
        auto t = withRawPeer(peer);
        t->onData = [&calls](std::string_view) { ++calls; };
        t->onLost = [&calls](const Failure&) { ++calls; };
        t->startReading();
        reactor().iterate(0);
        return t;
    }

    /// Gives fd number `number` (free now) to another socket and a new transport on it: the transport is
    /// served alone (reads what its peer sends, is reading, and ends once when it loses its connection).
    void expectNumberServesOnlyANewTransport(int number) {
        int s[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
        if (s[0] != number) {  // the old number, another socket
            ASSERT_EQ(::dup2(s[0], number), number);
            ::close(s[0]);
        }
        rawFds_.push_back(s[1]);
        auto fresh = FdTransport::create(reactor(), number);
        fresh->startReading();
        ASSERT_EQ(::write(s[1], "new", 3), 3);
        for (int i = 0; i < 5 && fresh->received.size() < 3; ++i) reactor().iterate(0.01);
        EXPECT_EQ(fresh->received, "new");
        EXPECT_TRUE(reactor().isReading(fresh.get()));
        fresh->loseConnection();
        for (int i = 0; i < 5 && fresh->lost == 0; ++i) reactor().iterate(0.01);
        EXPECT_EQ(fresh->lost, 1);
    }

    void closeRaw(int& fd) {
        for (auto& r : rawFds_)
            if (r == fd) r = -1;
        ::close(fd);
        fd = -1;
    }

    /// Iterates the reactor until pred() holds; a hang (timeout) fails the test.
    bool spinUntil(const std::function<bool()>& pred, double timeout = 10.0) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
        while (!pred()) {
            if (std::chrono::steady_clock::now() > deadline) {
                // Fail and leave the test: what follows would read state that never arrived.
                throw std::runtime_error("condition not reached after " + std::to_string(timeout) +
                                         " s: the test hung");
            }
            reactor().iterate(0.002);
        }
        return true;
    }

    /// A few iterations in which nothing is expected to happen.
    void spin(int n = 10) {
        for (int i = 0; i < n; ++i) reactor().iterate(0.001);
    }

    /// Ends every transport still alive and waits for its connectionLost.
    void finish(std::initializer_list<std::shared_ptr<FdTransport>> ts) {
        for (auto& t : ts)
            if (t && !t->disconnected()) t->abortConnection();
        spinUntil([&] {
            for (auto& t : ts)
                if (t && !t->disconnected()) return false;
            return true;
        });
        spin(2);
    }

    /// Everything readable on a raw fd now (stops at EAGAIN or EOF).
    static std::string readAvailable(int fd) {
        std::string out;
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        return out;
    }
    /// Reads a raw fd until EOF; the result, and whether EOF was seen.
    std::pair<std::string, bool> readToEof(int fd) {
        std::string out;
        bool eof = false;
        spinUntil([&] {
            char buf[65536];
            for (;;) {
                ssize_t n = ::read(fd, buf, sizeof buf);
                if (n > 0) {
                    out.append(buf, static_cast<std::size_t>(n));
                    continue;
                }
                if (n == 0) eof = true;
                return eof;
            }
        });
        return {out, eof};
    }

    int depth = 0;  // > 0 while a user call or a callback is on the stack

    std::vector<int> rawFds_;  // raw peer ends, closed in TearDown
};

/// A connected loopback TCP pair (port 0), both ends non-blocking.
struct TcpPair {
    TcpPair() {
        int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 1) != 0 ||
            ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            ::close(listener);
            throw std::system_error(errno, std::generic_category(), "listen on 127.0.0.1:0");
        }
        client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (client < 0 || ::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(listener);
            throw std::system_error(errno, std::generic_category(), "connect");
        }
        server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        ::close(listener);
        ::fcntl(client, F_SETFL, ::fcntl(client, F_GETFL) | O_NONBLOCK);
    }
    int client = -1, server = -1;
};

// =====================================================================================
// State
// =====================================================================================

TEST_P(FileDescriptorTest, FD_1_newDescriptorIsInert) {
    // FD-1: a new descriptor is not connected/disconnecting/disconnected, has no half-close, no buffer, no producer.
    int peer;
    auto t = withRawPeer(peer, /*connected=*/false);
    EXPECT_FALSE(t->connected());
    EXPECT_FALSE(t->disconnecting());
    EXPECT_FALSE(t->disconnected());
    EXPECT_EQ(t->state(), FileDescriptor::State::fresh);
    EXPECT_EQ(t->writeHalf(), FileDescriptor::WriteHalf::open);
    EXPECT_EQ(t->pendingBytes(), 0u);
    EXPECT_EQ(t->producer(), nullptr);
    EXPECT_FALSE(t->producerPaused());
    t->connect();  // the concrete transport marks itself connected
    EXPECT_TRUE(t->connected());
    EXPECT_FALSE(t->disconnecting());
}

TEST_P(FileDescriptorTest, FD_2_connectionLostStopsProducerAndIO) {
    // FD-2: base connectionLost sets disconnected, clears connected, stops and forgets the producer, stops I/O.
    auto pair1 = makePair();
    auto& a = pair1.a;
    auto& b = pair1.b;
    b->startReading();
    auto producer = std::make_shared<PushProducer>();
    a->registerProducer(producer, true);
    a->startReading();
    a->write("pending");
    ASSERT_TRUE(reactor().isReading(a.get()));
    ASSERT_TRUE(reactor().isWriting(a.get()));
    a->connectionLost(Failure(ConnectionDone()));
    EXPECT_TRUE(a->disconnected());
    EXPECT_FALSE(a->connected());
    EXPECT_EQ(producer->stops, 1);
    EXPECT_EQ(a->producer(), nullptr);
    EXPECT_FALSE(reactor().isReading(a.get()));
    EXPECT_FALSE(reactor().isWriting(a.get()));
    EXPECT_EQ(a->lost, 1);  // the subclass override ran, and ran the base
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_3_startStopMapToReactorAndBaseFilenoIsMinusOne) {
    // FD-3: start/stopReading/Writing are add/removeReader/Writer; base fileno() is -1 and the reactor drops it.
    Pipe pipe;
    auto d = std::make_shared<BareFD>(reactor());
    EXPECT_EQ(d->fileno(), -1);
    EXPECT_THROW(d->startReading(), std::invalid_argument);  // weft refuses to register "no descriptor"
    d->fd = pipe.writeFd;
    d->startReading();
    EXPECT_TRUE(reactor().isReading(d.get()));
    EXPECT_EQ(reactor().getReaders().size(), 1u);
    d->startWriting();
    EXPECT_TRUE(reactor().isWriting(d.get()));
    EXPECT_EQ(reactor().getWriters().size(), 1u);
    d->stopReading();
    EXPECT_FALSE(reactor().isReading(d.get()));
    d->stopWriting();
    EXPECT_FALSE(reactor().isWriting(d.get()));
    // A registered descriptor whose fileno() turns -1 is dropped by the reactor.
    d->startWriting();
    d->fd = -1;
    spinUntil([&] { return d->lost == 1; });
    EXPECT_TRUE(d->lostReason->check<ConnectionFdescWentAway>());
    EXPECT_FALSE(reactor().isReading(d.get()));
}

// =====================================================================================
// write and writeSequence
// =====================================================================================

TEST_P(FileDescriptorTest, FD_4_writeOnlyQueuesAndNeverCallsBack) {
    // FD-4: write() appends and registers for writability; no I/O and no connectionLost on the caller's stack.
    int peer;
    auto t = withRawPeer(peer);
    t->onLost = [&](const Failure&) { EXPECT_EQ(depth, 0) << "connectionLost ran inside write()"; };
    ScopedFaults faults;
    faults.onlyFd(t->fileno());
    closeRaw(peer);  // the write will fail; the failure must come later, from the reactor
    ++depth;
    t->write("hello");
    --depth;
    EXPECT_EQ(faults.calls(Call::writev), 0u);
    EXPECT_EQ(t->pendingBytes(), 5u);
    EXPECT_TRUE(reactor().isWriting(t.get()));
    EXPECT_EQ(t->lost, 0);
    spinUntil([&] { return t->lost == 1; });
    EXPECT_TRUE(t->lostReason->check<ConnectionLost>());
}

TEST_P(FileDescriptorTest, FD_5_writeDiscardedWhenNotConnectedOrWriteHalfShut) {
    // FD-5: write is discarded before connection, after connectionLost, after the write half is shut; empty writes do nothing.
    int peer;
    auto fresh = withRawPeer(peer, /*connected=*/false);
    fresh->write("early");
    std::vector<Bytes> seq{asBytes("a"), asBytes("b")};
    fresh->writeSequence(seq);
    EXPECT_EQ(fresh->pendingBytes(), 0u);
    EXPECT_FALSE(reactor().isWriting(fresh.get()));

    auto pair2 = makePair();
    auto& a = pair2.a;
    auto& b = pair2.b;
    a->write("");
    a->write(std::vector<std::byte>{});
    a->writeSequence({});
    std::vector<Bytes> empties{Bytes{}, Bytes{}};
    a->writeSequence(empties);
    EXPECT_FALSE(reactor().isWriting(a.get()));  // empty writes change nothing
    EXPECT_EQ(a->pendingBytes(), 0u);

    a->loseWriteConnection();
    spinUntil([&] { return a->writeHalf() == FileDescriptor::WriteHalf::closed; });
    a->write("after half-close");
    EXPECT_EQ(a->pendingBytes(), 0u);
    EXPECT_FALSE(reactor().isWriting(a.get()));

    b->connectionLost(Failure(ConnectionDone()));
    b->write("after lost");
    b->writeSequence(seq);
    EXPECT_EQ(b->pendingBytes(), 0u);
    EXPECT_FALSE(reactor().isWriting(b.get()));
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_6_onlyBytesCanBeWritten) {
    // FD-6: only bytes may be written; in weft the signatures take byte spans, so text of other types fails to compile.
    using W = void (FileDescriptor::*)(Bytes);
    static_assert(std::is_same_v<decltype(static_cast<W>(&FileDescriptor::write)), W>);
    static_assert(!std::is_invocable_v<W, FileDescriptor&, std::wstring>);
    static_assert(!std::is_invocable_v<W, FileDescriptor&, std::u16string_view>);
    static_assert(!std::is_invocable_v<W, FileDescriptor&, int>);
    using WS = void (FileDescriptor::*)(std::span<const Bytes>);
    static_assert(!std::is_invocable_v<WS, FileDescriptor&, std::vector<std::string>>);
    static_assert(!std::is_invocable_v<WS, FileDescriptor&, std::vector<std::wstring>>);
    static_assert(std::is_invocable_v<WS, FileDescriptor&, std::vector<Bytes>&>);
    SUCCEED();
}

TEST_P(FileDescriptorTest, FD_7_writeSequenceEqualsSuccessiveWrites) {
    // FD-7: writeSequence puts chunks on the wire in order like successive writes; empty sequence does nothing; no prior write needed.
    int peer;
    auto t = withRawPeer(peer);
    std::vector<Bytes> none;
    t->writeSequence(none);
    EXPECT_FALSE(reactor().isWriting(t.get()));
    std::vector<Bytes> seq{asBytes("Some "), asBytes(""), asBytes("sequence "), asBytes("data")};
    t->writeSequence(seq);  // without any prior write
    t->write(" then");
    t->writeSequence(seq);
    t->loseConnection();
    auto [data, eof] = readToEof(peer);
    EXPECT_EQ(data, "Some sequence data thenSome sequence data");
    EXPECT_TRUE(eof);
    spinUntil([&] { return t->lost == 1; });
}

TEST_P(FileDescriptorTest, FD_7_queuedChunksLeaveInOneWritevWithoutCopy) {
    // FD-7 (Better than Twisted): queued chunks leave in ONE writev with one iovec per chunk, no concatenating copy.
    auto pair3 = makePair();
    auto& a = pair3.a;
    auto& b = pair3.b;
    ScopedFaults faults;
    faults.onlyFd(a->fileno());
    std::vector<const std::byte*> owned;
    std::uint32_t seed = 7;
    for (int i = 0; i < 20; ++i) {
        auto s = pattern(5000, seed);
        std::vector<std::byte> v = bytesOf(s);
        owned.push_back(v.data());
        a->write(std::move(v));  // handed over: never copied
    }
    std::vector<std::string> more;
    for (int i = 0; i < 5; ++i) more.push_back(pattern(4500 + i, seed));
    std::vector<Bytes> seq;
    for (auto& m : more) seq.push_back(asBytes(m));
    a->writeSequence(seq);
    ASSERT_EQ(a->doWrite(), std::nullopt);
    ASSERT_EQ(faults.calls(Call::writev), 1u);
    auto rec = faults.history(Call::writev).at(0);
    ASSERT_EQ(rec.iov.size(), 25u);
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(rec.iov[static_cast<std::size_t>(i)].iov_base, owned[static_cast<std::size_t>(i)])
            << "chunk " << i << " was copied";
        EXPECT_EQ(rec.iov[static_cast<std::size_t>(i)].iov_len, 5000u);
    }
    EXPECT_EQ(rec.asked, 20u * 5000u + 4500 * 5 + 10);

    // Many small writes in one iteration: one writev, all the bytes.
    spinUntil([&] { return a->pendingBytes() == 0; });
    b->startReading();
    spinUntil([&] { return b->received.size() == rec.asked; });
    faults.resetHistory();
    for (int i = 0; i < 1000; ++i) a->write("0123456789");
    reactor().iterate(0.01);
    EXPECT_EQ(faults.calls(Call::writev), 1u);
    ASSERT_FALSE(faults.history(Call::writev).empty());
    EXPECT_EQ(faults.history(Call::writev)[0].asked, 10000u);
    EXPECT_EQ(faults.history(Call::writev)[0].result, 10000);
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_8_writtenBytesExactUnderStorm) {
    // FD-8: bytes leave exactly in order, none lost/duplicated, through storms of short writes, EAGAIN and EINTR.
    auto pair4 = makePair();
    auto& a = pair4.a;
    auto& b = pair4.b;
    ScopedFaults faults;
    faults.onlyFd(a->fileno()).onlyFd(b->fileno());
    faults.storm(0xC0FFEE);
    b->bufferSize = 8191;
    b->startReading();
    std::mt19937 rng(12345);
    std::uint32_t seed = 1;
    std::string expected;
    const std::size_t total = (4u << 20) + 4321;
    while (expected.size() < total) {
        switch (rng() % 3) {
            case 0: {
                auto s = pattern(1 + rng() % 70000, seed);
                a->write(asBytes(s));
                expected += s;
                break;
            }
            case 1: {
                std::vector<std::string> parts(1 + rng() % 20);
                std::vector<Bytes> seq;
                for (auto& p : parts) {
                    p = pattern(rng() % 9000, seed);
                    seq.push_back(asBytes(p));
                    expected += p;
                }
                a->writeSequence(seq);
                break;
            }
            default: {
                auto s = pattern(1 + rng() % 200000, seed);
                expected += s;
                a->write(bytesOf(s));
                break;
            }
        }
        if (a->pendingBytes() > (1u << 20)) spinUntil([&] { return a->pendingBytes() < (256u << 10); });
        else reactor().iterate(0);
    }
    spinUntil([&] { return b->received.size() >= expected.size(); }, 60);
    EXPECT_EQ(b->received.size(), expected.size());
    EXPECT_TRUE(b->received == expected) << "first difference at byte " << firstDifference(b->received, expected);
    EXPECT_GT(faults.injected(Call::writev), 20u);
    EXPECT_GT(faults.injected(Call::read), 20u);
    EXPECT_EQ(a->lost + b->lost, 0);
    faults.stopStorm();
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_8_readBytesExactUnderStorm) {
    // FD-8 (reads): input arrives exactly in order through short reads, EAGAIN and EINTR, with bufferSize changing.
    int peer;
    auto t = withRawPeer(peer);
    ScopedFaults faults;
    faults.onlyFd(t->fileno());
    faults.storm(42, {0.2, 0.2, 0.5});
    std::mt19937 rng(99);
    t->onData = [&](std::string_view) { t->bufferSize = 1 + rng() % 20000; };  // FD-21: may change at any time
    t->startReading();
    std::uint32_t seed = 3;
    std::string expected = pattern((4u << 20) + 77, seed);
    std::size_t sent = 0;
    spinUntil(
        [&] {
            while (sent < expected.size()) {
                std::size_t n = std::min<std::size_t>(1 + rng() % 50000, expected.size() - sent);
                ssize_t w = ::write(peer, expected.data() + sent, n);
                if (w <= 0) break;
                sent += static_cast<std::size_t>(w);
            }
            return t->received.size() >= expected.size();
        },
        60);
    EXPECT_TRUE(t->received == expected) << "first difference at byte " << firstDifference(t->received, expected);
    EXPECT_GT(faults.injected(Call::read), 20u);
    faults.stopStorm();
    finish({t});
}

// =====================================================================================
// loseConnection
// =====================================================================================

TEST_P(FileDescriptorTest, FD_9_loseConnectionFlushesThenClosesWithConnectionDone) {
    // FD-9: loseConnection stops reading at once, sets disconnecting, flushes, then doWrite returns ConnectionDone.
    int peer;
    auto t = withRawPeer(peer);
    t->onLost = [&](const Failure&) { EXPECT_EQ(depth, 0); };
    t->startReading();
    ASSERT_EQ(::write(peer, "unread", 6), 6);
    std::uint32_t seed = 9;
    auto big = pattern(1 << 20, seed);
    t->write(asBytes(big));
    ++depth;
    t->loseConnection();
    --depth;
    EXPECT_TRUE(t->disconnecting());
    EXPECT_TRUE(t->connected());
    EXPECT_FALSE(reactor().isReading(t.get()));
    EXPECT_TRUE(reactor().isWriting(t.get()));
    EXPECT_EQ(t->lost, 0);
    auto [data, eof] = readToEof(peer);
    EXPECT_TRUE(data == big);
    EXPECT_TRUE(eof);
    spinUntil([&] { return t->lost == 1; });
    EXPECT_TRUE(t->lostReason->check<ConnectionDone>());
    EXPECT_EQ(t->reads, 0) << "dataReceived after loseConnection";
}

TEST_P(FileDescriptorTest, FD_10_loseConnectionIdempotentAndNoopWhenNotConnected) {
    // FD-10: loseConnection is idempotent, a no-op when not connected, and never calls connectionLost synchronously.
    int peer;
    auto fresh = withRawPeer(peer, /*connected=*/false);
    fresh->loseConnection();
    EXPECT_FALSE(fresh->disconnecting());
    EXPECT_FALSE(reactor().isWriting(fresh.get()));

    auto pair5 = makePair();
    auto& a = pair5.a;
    auto& b = pair5.b;
    b->startReading();
    a->onLost = [&](const Failure&) { EXPECT_EQ(depth, 0); };
    ++depth;
    a->loseConnection();
    a->loseConnection();
    --depth;
    EXPECT_EQ(a->lost, 0);
    spinUntil([&] { return a->lost == 1 && b->disconnected(); }, 5);
    a->loseConnection();  // after the loss: nothing
    EXPECT_EQ(a->lost, 1);
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_11_writeAfterLoseConnectionIsStillSent) {
    // FD-11: data written after loseConnection but before the loss is sent before the close.
    int peer;
    auto t = withRawPeer(peer);
    t->write("a");
    t->loseConnection();
    t->write("b");
    std::vector<Bytes> seq{asBytes("c"), asBytes("d")};
    t->writeSequence(seq);
    auto [data, eof] = readToEof(peer);
    EXPECT_EQ(data, "abcd");
    EXPECT_TRUE(eof);
    spinUntil([&] { return t->lost == 1; });
    t->write("e");  // after connectionLost: ignored
    EXPECT_EQ(t->pendingBytes(), 0u);
}

TEST_P(FileDescriptorTest, FD_12_loseConnectionWaitsForPullProducer) {
    // FD-12: with a pull producer registered, a drained buffer resumes the producer instead of closing; unregister closes.
    int peer;
    auto t = withRawPeer(peer);
    auto producer = std::make_shared<PullProducer>();
    producer->onResume = [&] {
        if (producer->resumes == 1) t->write("x");
    };
    t->registerProducer(producer, false);
    t->loseConnection();
    spinUntil([&] { return producer->resumes >= 2; });
    spin(10);
    EXPECT_EQ(readAvailable(peer), "x");
    EXPECT_EQ(t->lost, 0);
    t->unregisterProducer();
    EXPECT_TRUE(reactor().isWriting(t.get()));  // re-armed while disconnecting
    spinUntil([&] { return t->lost == 1; });
    EXPECT_TRUE(t->lostReason->check<ConnectionDone>());
    EXPECT_EQ(producer->stops, 0);  // unregistered, so not stopped
}

TEST_P(FileDescriptorTest, FD_12_loseConnectionWaitsForPausedPushProducer) {
    // FD-12: a paused push producer is resumed when the buffer drains instead of closing; unregister closes.
    int peer;
    auto t = withRawPeer(peer);
    auto producer = std::make_shared<PushProducer>();
    t->bufferSize = 1;
    t->registerProducer(producer, true);
    t->write("xy");
    EXPECT_EQ(producer->pauses, 1);
    t->loseConnection();
    spinUntil([&] { return producer->resumes == 1; });
    spin(10);
    EXPECT_EQ(t->lost, 0);
    t->unregisterProducer();
    spinUntil([&] { return t->lost == 1; });
    EXPECT_EQ(readAvailable(peer), "xy");
}

TEST_P(FileDescriptorTest, FD_13_anyProducerKeepsConnectionOpenUntilUnregistered) {
    // FD-13 (Better than Twisted): with an unpaused push producer, the flush completes but the close waits for unregisterProducer.
    int peer;
    auto t = withRawPeer(peer);
    auto producer = std::make_shared<PushProducer>();
    t->registerProducer(producer, true);
    t->write("data");
    t->loseConnection();
    spinUntil([&] { return t->pendingBytes() == 0; });
    spin(20);
    EXPECT_EQ(readAvailable(peer), "data");
    EXPECT_EQ(t->lost, 0);
    EXPECT_EQ(producer->stops, 0);
    t->unregisterProducer();
    spinUntil([&] { return t->lost == 1; });
    EXPECT_TRUE(t->lostReason->check<ConnectionDone>());
    EXPECT_EQ(producer->stops, 0);
    EXPECT_TRUE(producer->events.empty());
}

TEST_P(FileDescriptorTest, FD_13_loseConnectionDespiteProducerFlushesClosesAndStopsTheProducer) {
    // FD-13's way out besides abortConnection: code that ends a connection on its own account
    // (a timeout, an over-long line) flushes and closes without waiting for an
    // unregisterProducer() that the producer's owner never calls; the producer is stopped (FD-2).
    for (bool streaming : {true, false}) {
        SCOPED_TRACE(streaming ? "push" : "pull");
        int peer;
        auto t = withRawPeer(peer);
        auto push = std::make_shared<PushProducer>();
        auto pull = std::make_shared<PullProducer>();
        if (streaming) t->registerProducer(push, true);
        else t->registerProducer(pull, false);
        t->write("data");
        t->loseConnectionDespiteProducer();
        ASSERT_TRUE(spinUntil([&] { return t->lost == 1; }));
        EXPECT_TRUE(t->lostReason->check<ConnectionDone>());
        EXPECT_EQ(readAvailable(peer), "data");
        EXPECT_EQ(streaming ? push->stops : pull->stops, 1);
    }
    // A close already held by the producer goes ahead.
    int peer;
    auto t = withRawPeer(peer);
    auto producer = std::make_shared<PushProducer>();
    t->registerProducer(producer, true);
    t->write("held");
    t->loseConnection();
    spinUntil([&] { return t->pendingBytes() == 0; });
    spin(5);
    ASSERT_EQ(t->lost, 0);
    t->loseConnectionDespiteProducer();
    ASSERT_TRUE(spinUntil([&] { return t->lost == 1; }));
    EXPECT_EQ(readAvailable(peer), "held");
    EXPECT_EQ(producer->stops, 1);
    t->loseConnectionDespiteProducer();  // once disconnected: nothing
    EXPECT_EQ(t->lost, 1);
}

TEST_P(FileDescriptorTest, FD_14_loseConnectionAfterHalfCloseClosesFromReactor) {
    // FD-14 (Better than Twisted): loseConnection after the write half is shut stops I/O now, connectionLost(ConnectionDone) next iteration.
    auto pair6 = makePair();
    auto& a = pair6.a;
    auto& b = pair6.b;
    a->startReading();
    b->startReading();
    a->onLost = [&](const Failure&) { EXPECT_EQ(depth, 0) << "connectionLost inside loseConnection()"; };
    b->halfCloseable = true;
    a->loseWriteConnection();
    spinUntil([&] { return a->writeLost == 1 && b->readLost == 1; });
    ++depth;
    a->loseConnection();
    --depth;
    EXPECT_EQ(a->lost, 0);
    EXPECT_FALSE(reactor().isReading(a.get()));
    EXPECT_FALSE(reactor().isWriting(a.get()));
    spinUntil([&] { return a->lost == 1; });
    EXPECT_TRUE(a->lostReason->check<ConnectionDone>());
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_15_unregisterAfterDisconnectDoesNotRegisterWriting) {
    // FD-15: unregisterProducer on a descriptor no longer connected does not register it for writing.
    auto pair7 = makePair();
    auto& a = pair7.a;
    auto& b = pair7.b;
    a->loseConnection();
    spinUntil([&] { return a->lost == 1; });
    auto producer = std::make_shared<PushProducer>();
    a->registerProducer(producer, true);  // disconnected: stopped, not registered (FD-22)
    a->unregisterProducer();
    EXPECT_FALSE(reactor().isWriting(a.get()));
    // Also while the loss is only scheduled (FD-14 path): nothing to re-arm once lost.
    finish({a, b});
    a->unregisterProducer();
    EXPECT_FALSE(reactor().isWriting(a.get()));
}

// =====================================================================================
// doWrite and the write buffer
// =====================================================================================

TEST_P(FileDescriptorTest, FD_16_chunkQueueWithHeadOffsetNeverCopies) {
    // FD-16 (Better than Twisted): a queue with a head offset; at most SEND_LIMIT bytes per gather write; queued data never copied.
    auto pair8 = makePair();
    auto& a = pair8.a;
    auto& b = pair8.b;
    ScopedFaults faults;
    faults.onlyFd(a->fileno());
    std::uint32_t seed = 16;
    auto big = bytesOf(pattern(300000, seed));
    std::string expected(reinterpret_cast<const char*>(big.data()), big.size());
    const std::byte* base = big.data();
    a->write(std::move(big));
    faults.shortCount(Call::writev, 1000);
    ASSERT_EQ(a->doWrite(), std::nullopt);
    EXPECT_EQ(a->pendingBytes(), 299000u);
    ASSERT_EQ(a->doWrite(), std::nullopt);
    auto h = faults.history(Call::writev);
    ASSERT_EQ(h.size(), 2u);
    EXPECT_EQ(h[0].iov.at(0).iov_base, base);
    EXPECT_EQ(h[0].asked, FileDescriptor::SEND_LIMIT);
    EXPECT_EQ(h[1].iov.at(0).iov_base, base + 1000) << "the unsent rest was moved or copied";
    EXPECT_LE(h[1].asked, FileDescriptor::SEND_LIMIT);
    b->startReading();
    spinUntil([&] { return b->received.size() == expected.size(); });
    EXPECT_TRUE(b->received == expected);
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_17_countAdvancesOffsetAndReasonEndsDescriptor) {
    // FD-17: writeSomeData's count advances the offset; a returned reason is returned by doWrite.
    auto pair9 = makePair();
    auto& a = pair9.a;
    auto& b = pair9.b;
    ScopedFaults faults;
    faults.onlyFd(a->fileno());
    a->write("0123456789");
    faults.shortCount(Call::writev, 3);
    EXPECT_EQ(a->doWrite(), std::nullopt);
    EXPECT_EQ(a->pendingBytes(), 7u);
    faults.fail(Call::writev, ECONNRESET);
    auto why = a->doWrite();
    ASSERT_TRUE(why.has_value());
    EXPECT_TRUE(why->check<ConnectionLost>());
    EXPECT_EQ(errnoOf(*why), ECONNRESET);
    b->startReading();
    spinUntil([&] { return b->received.size() == 10; });
    EXPECT_EQ(b->received, "0123456789");
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_17_writevErrorEndsConnectionWithThatErrno) {
    // FD-17/FD-20: ECONNRESET or EPIPE from writev ends the descriptor with ConnectionLost carrying that errno.
    for (int err : {ECONNRESET, EPIPE}) {
        auto pair10 = makePair();
        auto& a = pair10.a;
        auto& b = pair10.b;
        ScopedFaults faults;
        faults.onlyFd(a->fileno()).fail(Call::writev, err);
        a->onLost = [&](const Failure&) { EXPECT_EQ(depth, 0); };
        ++depth;
        a->write("doomed");
        --depth;
        spinUntil([&] { return a->lost == 1; });
        ASSERT_TRUE(a->lostReason.has_value());
        EXPECT_TRUE(a->lostReason->check<ConnectionLost>());
        EXPECT_EQ(errnoOf(*a->lostReason), err) << a->lostReason->getErrorMessage();
        finish({a, b});
    }
}

TEST_P(FileDescriptorTest, FD_17_peerResetMidWriteEndsWithConnectionLost) {
    // FD-17: a real peer reset while a large queue is pending ends with ConnectionLost(ECONNRESET or EPIPE), once.
    TcpPair tcp;
    auto t = FdTransport::create(reactor(), tcp.client);
    t->startReading();
    std::uint32_t seed = 5;
    auto big = pattern(8 << 20, seed);
    t->write(asBytes(big));
    spinUntil([&] { return t->pendingBytes() < big.size(); });
    char junk[4096];
    (void)::read(tcp.server, junk, sizeof junk);  // leave unread data behind: the close becomes a reset
    linger lg{1, 0};
    ::setsockopt(tcp.server, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(tcp.server);
    spinUntil([&] { return t->lost == 1; });
    spin(5);
    EXPECT_EQ(t->lost, 1);
    ASSERT_TRUE(t->lostReason.has_value());
    EXPECT_TRUE(t->lostReason->check<ConnectionLost>()) << t->lostReason->getErrorMessage();
    int e = errnoOf(*t->lostReason);
    EXPECT_TRUE(e == ECONNRESET || e == EPIPE) << "errno " << e << ": " << t->lostReason->getErrorMessage();
}

TEST_P(FileDescriptorTest, FD_17_peerCloseMidWriteOnSocketpairEndsOnce) {
    // FD-17: the peer closing a socketpair while a large queue is pending ends the descriptor once, with a ConnectionClosed reason.
    int peer;
    auto t = withRawPeer(peer);
    std::uint32_t seed = 6;
    auto big = pattern(4 << 20, seed);
    t->write(asBytes(big));
    spinUntil([&] { return t->pendingBytes() < big.size(); });
    closeRaw(peer);
    spinUntil([&] { return t->lost == 1; });
    spin(5);
    EXPECT_EQ(t->lost, 1);
    EXPECT_TRUE(t->lostReason->check<ConnectionClosed>());
}

TEST_P(FileDescriptorTest, FD_18_kernelBufferFullKeepsWriting) {
    // FD-18: when writeSomeData accepts 0 bytes, doWrite returns null and stays registered for writing.
    auto pair11 = makePair();
    auto& a = pair11.a;
    auto& b = pair11.b;
    ScopedFaults faults;
    faults.onlyFd(a->fileno());
    a->write("abc");
    faults.shortCount(Call::writev, 0).fail(Call::writev, EAGAIN);
    EXPECT_EQ(a->doWrite(), std::nullopt);
    EXPECT_EQ(a->doWrite(), std::nullopt);
    EXPECT_EQ(a->pendingBytes(), 3u);
    EXPECT_TRUE(reactor().isWriting(a.get()));
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_19_drainedBufferChoosesProducerThenCloseThenHalfClose) {
    // FD-19: when all is sent: stop writing, then (a) resume pull/paused producer, else (b) ConnectionDone if disconnecting, else (c) half-close.
    auto pair12 = makePair();
    auto& a = pair12.a;
    auto& b = pair12.b;
    // (a) beats (b)
    auto pull = std::make_shared<PullProducer>();
    a->registerProducer(pull, false);
    a->write("x");
    a->loseConnection();
    EXPECT_EQ(a->doWrite(), std::nullopt);
    EXPECT_EQ(a->pendingBytes(), 0u);
    EXPECT_EQ(pull->resumes, 2);
    EXPECT_FALSE(reactor().isWriting(a.get()));
    // (b)
    a->unregisterProducer();
    auto why = a->doWrite();
    ASSERT_TRUE(why.has_value());
    EXPECT_TRUE(why->check<ConnectionDone>());
    // (c)
    b->write("y");
    b->loseWriteConnection();
    EXPECT_EQ(b->doWrite(), std::nullopt);
    EXPECT_EQ(b->writeHalf(), FileDescriptor::WriteHalf::closed);
    EXPECT_EQ(b->writeLost, 1);
    EXPECT_FALSE(reactor().isWriting(b.get()));
    a->connectionLost(*why);
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_20_writeToFDRetriesEintrAndMapsErrors) {
    // FD-20: writeSomeData is non-blocking: EINTR retried, EAGAIN/ENOBUFS → 0, fatal errno → ConnectionLost (returned, not thrown).
    auto pair13 = makePair();
    auto& a = pair13.a;
    auto& b = pair13.b;
    ScopedFaults faults;
    faults.onlyFd(a->fileno());
    a->write("abcdef");
    faults.fail(Call::writev, EINTR, 3);
    EXPECT_EQ(a->doWrite(), std::nullopt);
    EXPECT_EQ(faults.calls(Call::writev), 4u);
    EXPECT_EQ(a->pendingBytes(), 0u);
    a->write("ghi");
    faults.fail(Call::writev, ENOBUFS);
    EXPECT_EQ(a->doWrite(), std::nullopt);
    EXPECT_EQ(a->pendingBytes(), 3u);
    faults.fail(Call::writev, EPIPE);
    Reason why;
    EXPECT_NO_THROW(why = a->doWrite());
    ASSERT_TRUE(why.has_value());
    EXPECT_EQ(errnoOf(*why), EPIPE);
    // One gather write takes at most SEND_LIMIT bytes.
    std::string big(3 * FileDescriptor::SEND_LIMIT, 'z');
    a->write(asBytes(big));
    faults.resetHistory();
    faults.shortCount(Call::writev, 0);
    a->doWrite();
    EXPECT_EQ(faults.history(Call::writev).at(0).asked, FileDescriptor::SEND_LIMIT);
    a->connectionLost(*why);
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_21_bufferSizeDefaultAndMaxRead) {
    // FD-21: bufferSize defaults to 65536, may be changed per instance, and bounds each read.
    int peer;
    auto t = withRawPeer(peer);
    EXPECT_EQ(t->bufferSize, 65536u);
    t->bufferSize = 3;
    ScopedFaults faults;
    faults.onlyFd(t->fileno());
    t->startReading();
    ASSERT_EQ(::write(peer, "abcdefgh", 8), 8);
    spinUntil([&] { return t->received.size() == 8; });
    EXPECT_EQ(t->received, "abcdefgh");
    for (auto& r : faults.history(Call::read)) EXPECT_EQ(r.asked, 3u);
    EXPECT_GE(t->reads, 3);
    finish({t});
}

// =====================================================================================
// Flow control
// =====================================================================================

TEST_P(FileDescriptorTest, FD_22_registerProducerRules) {
    // FD-22: a second producer throws naming both; a disconnected descriptor stops the producer; a pull producer is resumed at once.
    auto pair14 = makePair();
    auto& a = pair14.a;
    auto& b = pair14.b;
    auto first = std::make_shared<PushProducer>();
    auto second = std::make_shared<PullProducer>();
    a->registerProducer(first, true);
    try {
        a->registerProducer(second, false);
        ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("PullProducer"), std::string::npos) << what;
        EXPECT_NE(what.find("PushProducer"), std::string::npos) << what;
    }
    EXPECT_EQ(a->producer(), first);
    EXPECT_EQ(second->resumes, 0);
    a->unregisterProducer();
    a->registerProducer(second, false);
    EXPECT_EQ(second->resumes, 1);  // before registerProducer returned
    a->unregisterProducer();

    b->connectionLost(Failure(ConnectionDone()));
    auto late = std::make_shared<PushProducer>();
    b->registerProducer(late, true);
    EXPECT_EQ(late->stops, 1);
    EXPECT_EQ(b->producer(), nullptr);
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_23_pushProducerAssumedProducing) {
    // FD-23: a push producer is not resumed at registration nor on drain unless the descriptor paused it.
    auto pair15 = makePair();
    auto& a = pair15.a;
    auto& b = pair15.b;
    auto p = std::make_shared<PushProducer>();
    a->registerProducer(p, true);
    EXPECT_EQ(p->resumes, 0);
    a->write("hello");
    EXPECT_EQ(a->doWrite(), std::nullopt);
    EXPECT_EQ(a->pendingBytes(), 0u);
    EXPECT_TRUE(p->events.empty());
    a->unregisterProducer();
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_24_pauseOnceOnTransitionToFull) {
    // FD-24 (Better than Twisted): a push producer is paused once on the transition to full; only unsent bytes count.
    auto pair16 = makePair();
    auto& a = pair16.a;
    auto& b = pair16.b;
    auto p = std::make_shared<PushProducer>();
    a->bufferSize = 500;
    a->registerProducer(p, true);
    std::string chunk(50, 'c');
    std::vector<Bytes> seq(20, asBytes(chunk));
    a->writeSequence(seq);  // 1000 > 500: checked once, after queuing all
    EXPECT_EQ(p->pauses, 1);
    a->write("more");
    a->write("and more");  // Twisted pauses again on each write; weft does not
    EXPECT_EQ(p->pauses, 1);
    EXPECT_TRUE(a->producerPaused());
    a->unregisterProducer();

    // Already-sent bytes do not count.
    auto pair17 = makePair();
    auto& c = pair17.a;
    auto& d = pair17.b;
    ScopedFaults faults;
    faults.onlyFd(c->fileno());
    auto q = std::make_shared<PushProducer>();
    c->bufferSize = 100;
    c->registerProducer(q, true);
    c->write(std::string(90, 'x'));
    faults.shortCount(Call::writev, 80);
    c->doWrite();
    EXPECT_EQ(c->pendingBytes(), 10u);
    c->write(std::string(50, 'y'));  // unsent 60 <= 100 (Twisted counts 140)
    EXPECT_EQ(q->pauses, 0);
    c->write(std::string(41, 'z'));  // unsent 101 > 100
    EXPECT_EQ(q->pauses, 1);
    c->unregisterProducer();
    finish({a, b, c, d});
}

TEST_P(FileDescriptorTest, FD_25_pullProducerNeverPaused) {
    // FD-25: pull producers are never paused, whatever the buffer level.
    auto pair18 = makePair();
    auto& a = pair18.a;
    auto& b = pair18.b;
    auto p = std::make_shared<PullProducer>();
    a->bufferSize = 1;
    a->registerProducer(p, false);
    a->write("way over the buffer size");
    std::vector<Bytes> seq{asBytes("and"), asBytes("more")};
    a->writeSequence(seq);
    EXPECT_FALSE(a->producerPaused());
    EXPECT_EQ(p->events, std::vector<std::string>{"resume"});
    a->unregisterProducer();
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_26_resumeOnlyWhenFullyDrained) {
    // FD-26: a paused push producer gets one resume when the buffer is completely drained; a pull producer one per drain.
    auto pair19 = makePair();
    auto& a = pair19.a;
    auto& b = pair19.b;
    ScopedFaults faults;
    faults.onlyFd(a->fileno());
    auto p = std::make_shared<PushProducer>();
    a->bufferSize = 5;
    a->registerProducer(p, true);
    a->write("0123456789");
    faults.shortCount(Call::writev, 8);  // 2 left: below bufferSize, but no low-water mark
    a->doWrite();
    EXPECT_EQ(p->resumes, 0);
    a->doWrite();
    EXPECT_EQ(p->events, (std::vector<std::string>{"pause", "resume"}));
    a->doWrite();
    EXPECT_EQ(p->resumes, 1);
    a->unregisterProducer();

    auto q = std::make_shared<PullProducer>();
    a->registerProducer(q, false);
    a->write("a");
    a->doWrite();
    a->write("b");
    a->doWrite();
    EXPECT_EQ(q->events, (std::vector<std::string>{"resume", "resume", "resume"}));
    a->unregisterProducer();
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_27_reentrantProducerWritesInsideResume) {
    // FD-27: a producer writing from resumeProducing is paused again at once; the cycle stays correct.
    for (bool useSequence : {false, true}) {
        auto pair20 = makePair();
        auto& a = pair20.a;
        auto& b = pair20.b;
        auto p = std::make_shared<PushProducer>();
        a->bufferSize = 5;
        std::string ten(10, 'r');
        p->onResume = [&] {
            if (useSequence) {
                std::string_view v(ten);
                std::vector<Bytes> seq{asBytes(v.substr(0, 4)), asBytes(v.substr(4))};
                a->writeSequence(seq);
            } else {
                a->write(ten);
            }
        };
        a->registerProducer(p, true);
        a->write(ten);
        for (int i = 0; i < 5; ++i) a->doWrite();
        std::vector<std::string> want{"pause"};
        for (int i = 0; i < 5; ++i) {
            want.emplace_back("resume");
            want.emplace_back("pause");
        }
        EXPECT_EQ(p->events, want) << (useSequence ? "writeSequence" : "write");
        EXPECT_TRUE(a->producerPaused());
        a->unregisterProducer();
        finish({a, b});
    }
}

TEST_P(FileDescriptorTest, FD_28_unregisterProducerForgetsWithoutStopping) {
    // FD-28 (Better than Twisted): unregister forgets without stopping, clears the paused flag, re-arms writing for either pending close.
    auto pair21 = makePair();
    auto& a = pair21.a;
    auto& b = pair21.b;
    EXPECT_NO_THROW(a->unregisterProducer());  // none registered: fine
    auto p = std::make_shared<PushProducer>();
    a->bufferSize = 1;
    a->registerProducer(p, true);
    a->write("xx");
    ASSERT_TRUE(a->producerPaused());
    a->unregisterProducer();
    EXPECT_EQ(p->stops, 0);
    EXPECT_FALSE(a->producerPaused());
    auto fresh = std::make_shared<PushProducer>();
    a->registerProducer(fresh, true);
    a->bufferSize = 65536;
    a->doWrite();
    EXPECT_EQ(fresh->resumes, 0) << "a resumeProducing it never needed";
    a->unregisterProducer();

    // A half-close requested while a pull producer is registered happens after unregister.
    auto pull = std::make_shared<PullProducer>();
    b->halfCloseable = true;
    b->startReading();
    a->registerProducer(pull, false);
    a->loseWriteConnection();
    spinUntil([&] { return pull->resumes >= 2; });
    spin(5);
    EXPECT_EQ(a->writeLost, 0);
    a->unregisterProducer();
    EXPECT_TRUE(reactor().isWriting(a.get()));
    spinUntil([&] { return a->writeLost == 1 && b->readLost == 1; });
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_29_stopConsumingUnregistersThenLosesConnection) {
    // FD-29: stopConsuming() is unregisterProducer() followed by loseConnection().
    int peer;
    auto t = withRawPeer(peer);
    auto p = std::make_shared<PullProducer>();
    t->registerProducer(p, false);
    t->write("last words");
    t->stopConsuming();
    EXPECT_EQ(t->producer(), nullptr);
    EXPECT_TRUE(t->disconnecting());
    auto [data, eof] = readToEof(peer);
    EXPECT_EQ(data, "last words");
    EXPECT_TRUE(eof);
    spinUntil([&] { return t->lost == 1; });
    EXPECT_EQ(p->stops, 0);
}

TEST_P(FileDescriptorTest, FD_30_producerStoppedBeforeConnectionLost) {
    // FD-30: the producer's stopProducing runs before the protocol's connectionLost, also after an abort inside resumeProducing.
    std::vector<std::string> order;
    {
        int peer;
        auto t = withRawPeer(peer);
        auto p = std::make_shared<PushProducer>();
        p->order = &order;
        t->onLost = [&](const Failure&) { order.emplace_back("lost"); };
        t->registerProducer(p, true);
        t->startReading();
        closeRaw(peer);
        spinUntil([&] { return t->lost == 1; });
        EXPECT_EQ(order, (std::vector<std::string>{"stop", "lost"}));
    }
    order.clear();
    {
        int peer;
        auto t = withRawPeer(peer);
        auto p = std::make_shared<PullProducer>();
        p->order = &order;
        p->onResume = [&] {
            if (p->resumes == 1) t->write("x");
            else t->abortConnection();
        };
        t->onLost = [&](const Failure& why) {
            order.emplace_back("lost");
            EXPECT_TRUE(why.check<ConnectionAborted>());
        };
        t->registerProducer(p, false);
        spinUntil([&] { return t->lost == 1; });
        EXPECT_EQ(order, (std::vector<std::string>{"resume", "resume", "stop", "lost"}));
    }
}

// =====================================================================================
// Half-close
// =====================================================================================

TEST_P(FileDescriptorTest, FD_31_loseWriteConnectionShutsWriteHalfAfterFlush) {
    // FD-31: loseWriteConnection flushes, marks the write half shut and runs the hook; reading continues.
    int peer;
    auto t = withRawPeer(peer);
    t->startReading();
    t->write("before");
    t->loseWriteConnection();
    EXPECT_EQ(t->writeHalf(), FileDescriptor::WriteHalf::closing);
    EXPECT_TRUE(reactor().isWriting(t.get()));
    auto [data, eof] = readToEof(peer);
    EXPECT_EQ(data, "before");
    EXPECT_TRUE(eof);
    EXPECT_EQ(t->writeLost, 1);
    EXPECT_EQ(t->writeHalf(), FileDescriptor::WriteHalf::closed);
    ASSERT_EQ(::write(peer, "after", 5), 5);
    spinUntil([&] { return t->received == "after"; });
    EXPECT_EQ(t->lost, 0);
    finish({t});
}

TEST_P(FileDescriptorTest, FD_32_writeHalfShutBeforeHookSoLoseConnectionIsImmediatePath) {
    // FD-32: the write half is shut before the hook, so loseConnection inside writeConnectionLost takes the FD-14 path; later writes are discarded.
    int peer;
    auto t = withRawPeer(peer);
    t->onWriteLost = [&] {
        EXPECT_EQ(t->writeHalf(), FileDescriptor::WriteHalf::closed);
        ++depth;
        t->write("discarded");
        t->loseConnection();
        --depth;
        EXPECT_EQ(t->pendingBytes(), 0u);
        EXPECT_FALSE(reactor().isWriting(t.get()));
    };
    t->onLost = [&](const Failure&) { EXPECT_EQ(depth, 0); };
    t->loseWriteConnection();
    spinUntil([&] { return t->lost == 1; });
    EXPECT_TRUE(t->lostReason->check<ConnectionDone>());
    auto [data, eof] = readToEof(peer);
    EXPECT_EQ(data, "");
    EXPECT_TRUE(eof);
}

TEST_P(FileDescriptorTest, FD_33_baseHalfCloseHooks) {
    // FD-33: base half-close hook does nothing; base read/writeConnectionLost call connectionLost; the reactor calls readConnectionLost only for ConnectionDone from doRead.
    auto d = std::make_shared<BareFD>(reactor());
    d->setConnected();
    EXPECT_EQ(d->closeWriteConnection(), std::nullopt);
    EXPECT_TRUE(d->connected());
    d->readConnectionLost(Failure(ConnectionDone()));
    EXPECT_EQ(d->lost, 1);
    auto e = std::make_shared<BareFD>(reactor());
    e->setConnected();
    e->writeConnectionLost(Failure(ConnectionLost()));
    EXPECT_EQ(e->lost, 1);
    EXPECT_TRUE(e->lostReason->check<ConnectionLost>());

    // Peer EOF: a ConnectionDone from doRead → readConnectionLost (half-closeable: connection stays).
    auto pair22 = makePair();
    auto& a = pair22.a;
    auto& b = pair22.b;
    a->halfCloseable = true;
    a->startReading();
    b->loseWriteConnection();
    spinUntil([&] { return a->readLost == 1; });
    EXPECT_EQ(a->lost, 0);
    EXPECT_FALSE(reactor().isReading(a.get()));
    b->startReading();
    a->write("still writable");
    spinUntil([&] { return b->received == "still writable"; });
    // Not half-closeable: peer EOF → connectionLost(ConnectionDone).
    a->loseConnection();
    spinUntil([&] { return a->lost == 1 && b->lost == 1; });
    EXPECT_TRUE(b->lostReason->check<ConnectionDone>());
}

TEST_P(FileDescriptorTest, FD_34_loseWriteConnectionAfterDisconnectIsNoop) {
    // FD-34 (Better than Twisted): loseWriteConnection after disconnect is a harmless no-op (no registration).
    auto pair23 = makePair();
    auto& a = pair23.a;
    auto& b = pair23.b;
    a->connectionLost(Failure(ConnectionDone()));
    EXPECT_NO_THROW(a->loseWriteConnection());
    EXPECT_FALSE(reactor().isWriting(a.get()));
    EXPECT_EQ(a->writeHalf(), FileDescriptor::WriteHalf::open);
    finish({a, b});
}

// =====================================================================================
// The descriptor as a push producer
// =====================================================================================

TEST_P(FileDescriptorTest, FD_35_pauseResumeStopProducing) {
    // FD-35: pauseProducing stops reading (any state); resumeProducing reads only if connected and not disconnecting; stopProducing is loseConnection.
    int peer;
    auto fresh = withRawPeer(peer, /*connected=*/false);
    fresh->pauseProducing();
    fresh->resumeProducing();
    EXPECT_FALSE(reactor().isReading(fresh.get()));

    auto pair24 = makePair();
    auto& a = pair24.a;
    auto& b = pair24.b;
    a->startReading();
    a->pauseProducing();
    EXPECT_FALSE(reactor().isReading(a.get()));
    a->resumeProducing();
    EXPECT_TRUE(reactor().isReading(a.get()));
    a->stopProducing();
    EXPECT_TRUE(a->disconnecting());
    EXPECT_FALSE(reactor().isReading(a.get()));
    a->resumeProducing();  // disconnecting: stays off
    EXPECT_FALSE(reactor().isReading(a.get()));
    spinUntil([&] { return a->lost == 1; });
    a->pauseProducing();
    a->resumeProducing();  // disconnected: stays off
    EXPECT_FALSE(reactor().isReading(a.get()));
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_36_pausedTransportSeesNoDataNorEofUntilResumed) {
    // FD-36: while paused no data and no EOF; after resume, buffered input then the close (paused, resumed, lost).
    int peer;
    auto t = withRawPeer(peer);
    std::vector<std::string> events;
    t->onData = [&](std::string_view) {
        if (events.empty() || events.back() != "data") events.emplace_back("data");
    };
    t->onLost = [&](const Failure&) { events.emplace_back("lost"); };
    t->startReading();
    t->pauseProducing();  // as in connectionMade: the pause holds
    EXPECT_FALSE(reactor().isReading(t.get()));
    EXPECT_FALSE(reactor().isWriting(t.get()));
    events.emplace_back("paused");
    ASSERT_EQ(::write(peer, "buffered", 8), 8);
    closeRaw(peer);
    spin(30);
    EXPECT_EQ(t->reads, 0);
    EXPECT_EQ(t->lost, 0);
    events.emplace_back("resumed");
    t->resumeProducing();
    spinUntil([&] { return t->lost == 1; });
    EXPECT_EQ(t->received, "buffered");
    EXPECT_EQ(events, (std::vector<std::string>{"paused", "resumed", "data", "lost"}));
    EXPECT_TRUE(t->lostReason->check<ConnectionDone>());
}

TEST_P(FileDescriptorTest, FD_36_pauseResumeCyclesLoseNoData) {
    // FD-36: pause/resume cycles lose no data.
    auto pair25 = makePair();
    auto& a = pair25.a;
    auto& b = pair25.b;
    b->startReading();
    std::uint32_t seed = 36;
    auto data = pattern(1 << 20, seed);
    a->write(asBytes(data));
    bool paused = false;
    spinUntil([&] {
        if (paused) b->resumeProducing();
        else b->pauseProducing();
        paused = !paused;
        return b->received.size() >= data.size();
    });
    EXPECT_TRUE(b->received == data);
    finish({a, b});
}

// =====================================================================================
// Logging context
// =====================================================================================

struct PlainThing {};
struct CustomClient : ILoggingContext {
    std::string logPrefix() const override { return "Custom Client"; }
};

TEST_P(FileDescriptorTest, FD_37_logPrefixes) {
    // FD-37: base logPrefix is "-"; an application object's prefix is its logPrefix() if it has one, else its class name.
    BareFD d(reactor());
    EXPECT_EQ(d.logPrefix(), "-");
    EXPECT_EQ(FileDescriptor::getLogPrefix(CustomClient{}), "Custom Client");
    EXPECT_EQ(FileDescriptor::getLogPrefix(PlainThing{}), "PlainThing");
    PushProducer p;
    const IPushProducer& asInterface = p;
    EXPECT_EQ(FileDescriptor::getLogPrefix(asInterface), "PushProducer");  // the dynamic class
}

TEST_P(FileDescriptorTest, FD_38_callbackErrorsLoggedUnderTransportPrefix) {
    // FD-38: callbacks run in the descriptor's log context: an error from dataReceived is logged with the transport's prefix.
    auto pair26 = makePair();
    auto& a = pair26.a;
    auto& b = pair26.b;
    CustomClient protocol;
    a->prefix = protocol.logPrefix() + ",client";
    a->onData = [](std::string_view) { throw std::runtime_error("boom"); };
    a->startReading();
    b->write("trigger");
    spinUntil([&] { return a->lost == 1; });
    auto entries = logs.flush(log::Level::error);
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].prefix, "Custom Client,client");
    ASSERT_TRUE(entries[0].failure.has_value());
    EXPECT_EQ(entries[0].failure->getErrorMessage(), "boom");
    EXPECT_EQ(a->lostReason->getErrorMessage(), "boom");  // the exception is the reason
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_38_plainLogLinesFromCallbacksCarryTransportPrefix) {
    // FD-38: every reactor callback runs in the descriptor's log context: a line logged with no prefix inside
    // dataReceived carries the transport's prefix; outside any callback it carries none.
    auto pair38 = makePair();
    auto& a = pair38.a;
    auto& b = pair38.b;
    CustomClient protocol;
    a->prefix = protocol.logPrefix() + ",client";
    std::vector<std::string> prefixes;
    log::ScopedObserver observer([&](const log::Event& ev) {
        if (ev.message == "got data") prefixes.emplace_back(ev.prefix);
    });
    a->onData = [&](std::string_view) { log::warn("", "got data"); };
    a->startReading();
    b->write("x");
    spinUntil([&] { return !prefixes.empty(); });
    log::warn("", "got data");  // not inside a callback
    ASSERT_EQ(prefixes.size(), 2u);
    EXPECT_EQ(prefixes[0], "Custom Client,client");
    EXPECT_EQ(prefixes[1], "");
    EXPECT_EQ(log::currentContext(), nullptr);
    logs.flush(log::Level::warn);
    finish({a, b});
}

// =====================================================================================
// Lifetime and re-entrancy
// =====================================================================================

TEST_P(FileDescriptorTest, FD_39_connectionLostAtMostOnceEvenWithAbortPendingAndThrow) {
    // FD-39: connectionLost reaches the protocol at most once, even with an abort pending and a callback that throws.
    auto pair27 = makePair();
    auto& a = pair27.a;
    auto& b = pair27.b;
    a->onData = [&](std::string_view) {
        a->abortConnection();
        throw std::runtime_error("dataReceived throws");
    };
    a->startReading();
    b->write("x");
    spinUntil([&] { return a->lost == 1; });
    spin(5);  // the pending abort fires into a closed transport
    EXPECT_EQ(a->lost, 1);
    a->connectionLost(Failure(ConnectionLost()));
    a->readConnectionLost(Failure(ConnectionDone()));
    EXPECT_EQ(a->lost, 1);
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
    finish({a, b});
}

enum class Cb { data, readLost, writeLost, pullResume, pushPause, pushResume, pushStop, lost };
enum class Act { lose, abort, write, loseWrite, drop };
const char* name(Cb c) {
    const char* n[] = {"data", "readLost", "writeLost", "pullResume", "pushPause", "pushResume", "pushStop", "lost"};
    return n[static_cast<int>(c)];
}
const char* name(Act a) {
    const char* n[] = {"loseConnection", "abortConnection", "write", "loseWriteConnection", "dropLastReference"};
    return n[static_cast<int>(a)];
}

TEST_P(FileDescriptorTest, FD_39_closeWriteOrDropInsideEveryCallbackIsSafe) {
    // FD-39/FD-40, STYLE §3: loseConnection/abort/write/loseWriteConnection/dropping the last reference inside every callback: connectionLost exactly once, never re-entrant, no use-after-free.
    for (Cb cb : {Cb::data, Cb::readLost, Cb::writeLost, Cb::pullResume, Cb::pushPause, Cb::pushResume, Cb::pushStop,
                  Cb::lost}) {
        for (Act act : {Act::lose, Act::abort, Act::write, Act::loseWrite, Act::drop}) {
            SCOPED_TRACE(std::string(name(cb)) + " → " + name(act));
            auto pair28 = makePair();
            auto& a = pair28.a;
            auto& b = pair28.b;
            std::weak_ptr<FdTransport> weak = a;
            FdTransport* raw = a.get();
            int lost = 0;
            auto probe = std::make_shared<int>(0);
            std::weak_ptr<int> weakProbe = probe;
            bool acted = false;
            auto doAct = [&] {
                if (acted) return;
                acted = true;
                ++depth;
                switch (act) {
                    case Act::lose: raw->loseConnection(); break;
                    case Act::abort: raw->abortConnection(); break;
                    case Act::write: raw->write("late"); break;
                    case Act::loseWrite: raw->loseWriteConnection(); break;
                    case Act::drop: a.reset(); break;
                }
                --depth;
            };
            a->onLost = [&, probe](const Failure&) {
                EXPECT_EQ(depth, 0) << "connectionLost on the stack of a user call";
                ++lost;
                if (cb == Cb::lost) doAct();
            };
            probe.reset();
            a->startReading();
            b->startReading();
            std::shared_ptr<PushProducer> push;
            std::shared_ptr<PullProducer> pull;
            ++depth;
            switch (cb) {
                case Cb::data:
                    a->onData = [&](std::string_view) { doAct(); };
                    b->write("hi");
                    break;
                case Cb::readLost:
                    a->halfCloseable = true;
                    a->onReadLost = [&] { doAct(); };
                    b->loseWriteConnection();
                    break;
                case Cb::writeLost:
                    a->onWriteLost = [&] { doAct(); };
                    a->loseWriteConnection();
                    break;
                case Cb::pullResume:
                    pull = std::make_shared<PullProducer>();
                    pull->onResume = [&] {
                        if (pull->resumes == 2) doAct();
                    };
                    a->registerProducer(pull, false);
                    a->write("x");
                    break;
                case Cb::pushPause:
                    push = std::make_shared<PushProducer>();
                    push->onPause = [&] { doAct(); };
                    a->bufferSize = 1;
                    a->registerProducer(push, true);
                    a->write("xyz");
                    break;
                case Cb::pushResume:
                    push = std::make_shared<PushProducer>();
                    push->onResume = [&] { doAct(); };
                    a->bufferSize = 1;
                    a->registerProducer(push, true);
                    a->write("xyz");
                    break;
                case Cb::pushStop:
                    push = std::make_shared<PushProducer>();
                    push->onStop = [&] { doAct(); };
                    a->registerProducer(push, true);
                    a->abortConnection();
                    break;
                case Cb::lost: a->loseConnection(); break;
            }
            --depth;
            spinUntil([&] { return acted; });
            spin(3);
            // Whatever the action left open, close it now.
            if (auto s = weak.lock()) {
                if (!s->disconnected()) {
                    if (s->producer()) s->unregisterProducer();
                    s->abortConnection();
                }
            }
            // A half-closed transport is in neither reader nor writer set, so the reactor does not
            // own it (FD-40): dropping the last reference there frees it (closing its fd) without
            // a connectionLost. Everywhere else the loss is delivered exactly once.
            bool unowned = cb == Cb::readLost && act == Act::drop;
            spinUntil([&] { return (unowned || lost == 1) && b->disconnected(); });
            spin(3);
            EXPECT_EQ(lost, unowned ? 0 : 1);
            a.reset();
            push.reset();
            pull.reset();
            EXPECT_TRUE(weak.expired()) << "something still holds the transport after connectionLost";
            EXPECT_TRUE(weakProbe.expired()) << "the transport still holds its protocol after connectionLost";
        }
    }
}

TEST_P(FileDescriptorTest, FD_39_producerUnregisteringItselfInCallbacksIsSafe) {
    // FD-39, STYLE §3: a producer that unregisters itself (dropping the last reference to it) inside pause/resume is not used afterwards.
    auto pair29 = makePair();
    auto& a = pair29.a;
    auto& b = pair29.b;
    struct SelfRemoving : IPushProducer, IPullProducer {
        FileDescriptor* consumer;
        int calls = 0;
        void pauseProducing() override { finish(); }
        void resumeProducing() override { finish(); }
        void stopProducing() override {}
        void finish() {
            consumer->unregisterProducer();  // may destroy *this
            ++calls;                         // ASan: use after free if the consumer did not hold it
        }
    };
    {
        auto p = std::make_shared<SelfRemoving>();
        p->consumer = a.get();
        a->bufferSize = 1;
        a->registerProducer(std::static_pointer_cast<IPushProducer>(p), true);
        p.reset();
        a->write("xyz");  // pauseProducing → unregister
        EXPECT_EQ(a->producer(), nullptr);
    }
    {
        auto p = std::make_shared<SelfRemoving>();
        p->consumer = a.get();
        // resume → unregister, inside registerProducer, with the consumer holding the only reference
        a->registerProducer(std::static_pointer_cast<IPullProducer>(std::move(p)), false);
        EXPECT_EQ(a->producer(), nullptr);
    }
    {
        int calls = 0;
        struct Counting : IPullProducer {
            FileDescriptor* consumer;
            int* calls;
            void resumeProducing() override {
                if (++*calls == 2) {
                    consumer->unregisterProducer();
                    ++*calls;
                }
            }
            void stopProducing() override {}
        };
        auto c = std::make_shared<Counting>();
        c->consumer = a.get();
        c->calls = &calls;
        a->registerProducer(c, false);
        c.reset();
        a->write("x");
        a->doWrite();  // drained → resumeProducing → unregister inside doWrite
        EXPECT_EQ(calls, 3);
        EXPECT_EQ(a->producer(), nullptr);
    }
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_40_aPausedTransportDroppedWhileOnlyWatchedLeavesNothingBehind) {
    // A paused transport stays watched for errors without being held (R-38, epoll and poll). When its last reference
    // goes, its destructor frees the reactor's slot for it; a new transport given the same fd number is served alone,
    // and nothing reaches the one that is gone (run under AddressSanitizer in CI).
    int peer, oldCalls = 0;
    auto t = readingWithRawPeer(peer, oldCalls);
    const int number = t->fileno();
    t->pauseProducing();
    reactor().iterate(0);  // the reduced interest reaches the poller: only watched now
    std::weak_ptr<FdTransport> gone = t;
    t.reset();  // the destructor closes the fd and leaves the reactor
    ASSERT_TRUE(gone.expired());
    EXPECT_TRUE(reactor().getReaders().empty());
    EXPECT_TRUE(reactor().getWriters().empty());
    closeRaw(peer);

    expectNumberServesOnlyANewTransport(number);
    EXPECT_EQ(oldCalls, 0);
}

TEST_P(FileDescriptorTest, FD_40_aPauseThatReleasesTheLastReferenceLeavesNothingBehind) {
    // The reactor's registration is the only reference left, and the transport is paused from a timed call that
    // holds only its address: on epoll and poll the registration turns into a watch that does not hold it,
    // so the pause itself releases it. It is destroyed after the reactor is done with its slot; the slot is
    // freed, and a new transport given the same fd number is served alone (AddressSanitizer in CI).
    int peer, oldCalls = 0;
    auto t = readingWithRawPeer(peer, oldCalls);
    const int number = t->fileno();
    std::weak_ptr<FdTransport> gone = t;
    FdTransport* raw = t.get();
    t.reset();  // only the reactor holds it now
    ASSERT_FALSE(gone.expired());
    reactor().callLater(0, [raw] { raw->pauseProducing(); });
    reactor().iterate(0);
    EXPECT_TRUE(gone.expired());
    EXPECT_TRUE(reactor().getReaders().empty());
    EXPECT_TRUE(reactor().getWriters().empty());
    closeRaw(peer);

    expectNumberServesOnlyANewTransport(number);
    EXPECT_EQ(oldCalls, 0);
}

TEST_P(FileDescriptorTest, FD_40_droppingLastReferenceInsideCallbacks) {
    // FD-40, STYLE §3: a transport whose owner drops the last reference inside doRead, doWrite (producer) or connectionLost survives until the reactor lets go, then is freed.
    // Inside doRead.
    {
        auto pair30 = makePair();
        auto& a = pair30.a;
        auto& b = pair30.b;
        std::weak_ptr<FdTransport> weak = a;
        a->onData = [&](std::string_view) {
            FdTransport* self = a.get();
            a.reset();                  // the reactor's dispatch guard keeps it alive
            self->write("still here");  // and usable
            self->loseConnection();
        };
        a->startReading();
        b->startReading();
        b->write("go");
        spinUntil([&] { return b->received == "still here" && b->disconnected(); });
        spin(2);
        EXPECT_TRUE(weak.expired());
    }
    // Inside doWrite, via a pull producer's resumeProducing.
    {
        auto pair31 = makePair();
        auto& a = pair31.a;
        auto& b = pair31.b;
        std::weak_ptr<FdTransport> weak = a;
        auto p = std::make_shared<PullProducer>();
        p->onResume = [&] {
            if (p->resumes == 2) {
                FdTransport* self = a.get();
                a.reset();
                self->unregisterProducer();
                self->loseConnection();
            }
        };
        a->registerProducer(p, false);
        a->write("x");
        b->startReading();
        spinUntil([&] { return weak.expired() && b->disconnected(); });
        EXPECT_EQ(b->received, "x");
    }
    // Inside connectionLost.
    {
        auto pair32 = makePair();
        auto& a = pair32.a;
        auto& b = pair32.b;
        std::weak_ptr<FdTransport> weak = a;
        a->onLost = [&](const Failure&) { a.reset(); };
        a->loseConnection();
        b->startReading();
        spinUntil([&] { return weak.expired() && b->disconnected(); });
    }
    // A half-closed transport (not in the reader set) keeps its protocol while its owner holds it.
    {
        auto pair33 = makePair();
        auto& a = pair33.a;
        auto& b = pair33.b;
        auto protocol = std::make_shared<int>(1);
        std::weak_ptr<int> weakProtocol = protocol;
        a->halfCloseable = true;
        a->onReadLost = [protocol] {};
        protocol.reset();
        a->startReading();
        b->loseWriteConnection();
        spinUntil([&] { return a->readLost == 1; });
        EXPECT_TRUE(reactor().getReaders().empty());
        EXPECT_FALSE(weakProtocol.expired());
        a->loseConnection();
        spinUntil([&] { return a->lost == 1; });
        EXPECT_TRUE(weakProtocol.expired());
        finish({a, b});
    }
}

TEST_P(FileDescriptorTest, FD_41_closedTransportIsInertAndStillAnswersAddresses) {
    // FD-41 (Better than Twisted): after connectionLost, write/writeSequence/loseConnection/pause/resume are no-ops; getPeer/getHost answer.
    auto pair34 = makePair();
    auto& a = pair34.a;
    auto& b = pair34.b;
    auto peer = a->getPeer();
    auto host = a->getHost();
    a->loseConnection();
    spinUntil([&] { return a->lost == 1; });
    a->write("x");
    std::vector<Bytes> seq{asBytes("y")};
    a->writeSequence(seq);
    a->loseConnection();
    a->pauseProducing();
    a->resumeProducing();
    a->loseWriteConnection();
    spin(3);
    EXPECT_EQ(a->lost, 1);
    EXPECT_FALSE(reactor().isReading(a.get()));
    EXPECT_FALSE(reactor().isWriting(a.get()));
    EXPECT_EQ(a->getPeer(), peer);
    EXPECT_EQ(a->getHost(), host);
    EXPECT_EQ(addressStr(a->getPeer()), "UNIXAddress(None)");
    finish({a, b});
}

// =====================================================================================
// Interfaces
// =====================================================================================

TEST_P(FileDescriptorTest, FD_42_itsRolesAreReachedFromITransportWithoutACast) {
    // FD-42: code holding only an ITransport reaches the transport's consumer and
    // input-producer roles through ITransport (what the port forwarder and the tool use).
    auto t = std::make_shared<BareFD>(reactor());
    ITransport& asTransport = *t;
    EXPECT_EQ(asTransport.asConsumer(), static_cast<IConsumer*>(t.get()));
    EXPECT_EQ(asTransport.asInputProducer(), static_cast<IPushProducer*>(t.get()));
    weft::testing::StringTransport plain;
    ITransport& other = plain;
    EXPECT_EQ(other.asConsumer(), static_cast<IConsumer*>(&plain));
    EXPECT_EQ(other.asInputProducer(), static_cast<IPushProducer*>(&plain));
}

TEST_P(FileDescriptorTest, FD_42_fileDescriptorImplementsTheInterfaces) {
    // FD-42/FD-46: FileDescriptor is an IConsumer, IPushProducer, ITransport, IReadWriteDescriptor, IHalfCloseableDescriptor, ILoggingContext.
    static_assert(std::is_base_of_v<IConsumer, FileDescriptor>);
    static_assert(std::is_base_of_v<IPushProducer, FileDescriptor>);
    static_assert(std::is_base_of_v<ITransport, FileDescriptor>);
    static_assert(std::is_base_of_v<IReadWriteDescriptor, FileDescriptor>);
    static_assert(std::is_base_of_v<IHalfCloseableDescriptor, FileDescriptor>);
    static_assert(std::is_base_of_v<ILoggingContext, FileDescriptor>);
    static_assert(std::is_abstract_v<FileDescriptor>);
    static_assert(!std::is_abstract_v<BareFD>);
    // IConsumer's members, as a consumer user sees them.
    static_assert(
        std::is_same_v<decltype(&IConsumer::registerProducer), void (IConsumer::*)(std::shared_ptr<IProducer>, bool)>);
    static_assert(std::is_same_v<decltype(&IConsumer::unregisterProducer), void (IConsumer::*)()>);
    static_assert(std::is_same_v<decltype(&IConsumer::write), void (IConsumer::*)(Bytes)>);
    // Used through the interface: write buffers, registerProducer throws on a second one.
    auto pair35 = makePair();
    auto& a = pair35.a;
    auto& b = pair35.b;
    IConsumer& consumer = *a;
    consumer.write(asBytes("via IConsumer"));
    EXPECT_EQ(a->pendingBytes(), 13u);
    consumer.registerProducer(std::make_shared<PushProducer>(), true);
    EXPECT_THROW(consumer.registerProducer(std::make_shared<PushProducer>(), true), std::runtime_error);
    consumer.unregisterProducer();
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_43_producerInterfaces) {
    // FD-43: IPushProducer has pause/resume/stopProducing; IPullProducer has resume/stopProducing; both are IProducers.
    static_assert(std::is_abstract_v<IProducer> && std::is_abstract_v<IPushProducer> &&
                  std::is_abstract_v<IPullProducer>);
    static_assert(std::is_base_of_v<IProducer, IPushProducer> && std::is_base_of_v<IProducer, IPullProducer>);
    static_assert(std::is_same_v<decltype(&IPushProducer::pauseProducing), void (IPushProducer::*)()>);
    static_assert(std::is_same_v<decltype(&IPushProducer::resumeProducing), void (IPushProducer::*)()>);
    static_assert(std::is_same_v<decltype(&IPullProducer::resumeProducing), void (IPullProducer::*)()>);
    static_assert(std::is_same_v<decltype(&IProducer::stopProducing), void (IProducer::*)()>);
    // A producer of the wrong kind for `streaming` is refused.
    auto pair36 = makePair();
    auto& a = pair36.a;
    auto& b = pair36.b;
    EXPECT_THROW(a->registerProducer(std::make_shared<PullProducer>(), true), std::invalid_argument);
    EXPECT_THROW(a->registerProducer(std::make_shared<PushProducer>(), false), std::invalid_argument);
    EXPECT_EQ(a->producer(), nullptr);
    finish({a, b});
}

// FD-45: each of getHost/getPeer/doRead/writeSomeData is pure virtual: leaving any one out keeps the class abstract.
struct NoGetHost : FileDescriptor {
    using FileDescriptor::FileDescriptor;
    Reason doRead() override { return std::nullopt; }
    Address getPeer() const override { return NoAddress(); }
    WriteResult writeSomeData(std::span<const iovec>) override { return std::size_t{0}; }
};
struct NoGetPeer : FileDescriptor {
    using FileDescriptor::FileDescriptor;
    Reason doRead() override { return std::nullopt; }
    Address getHost() const override { return NoAddress(); }
    WriteResult writeSomeData(std::span<const iovec>) override { return std::size_t{0}; }
};
struct NoDoRead : FileDescriptor {
    using FileDescriptor::FileDescriptor;
    Address getPeer() const override { return NoAddress(); }
    Address getHost() const override { return NoAddress(); }
    WriteResult writeSomeData(std::span<const iovec>) override { return std::size_t{0}; }
};
struct NoWriteSomeData : FileDescriptor {
    using FileDescriptor::FileDescriptor;
    Reason doRead() override { return std::nullopt; }
    Address getPeer() const override { return NoAddress(); }
    Address getHost() const override { return NoAddress(); }
};

TEST_P(FileDescriptorTest, FD_45_transportMembersArePureVirtual) {
    // FD-45: getHost/getPeer/doRead/writeSomeData are abstract on FileDescriptor.
    static_assert(std::is_abstract_v<NoGetHost>);
    static_assert(std::is_abstract_v<NoGetPeer>);
    static_assert(std::is_abstract_v<NoDoRead>);
    static_assert(std::is_abstract_v<NoWriteSomeData>);
    SUCCEED();
}

TEST_P(FileDescriptorTest, FD_44_halfCloseableProtocolGetsReadAndWriteConnectionLost) {
    // FD-44: a half-closeable protocol gets readConnectionLost on peer EOF (not connectionLost) and writeConnectionLost when our write half shuts.
    auto pair37 = makePair();
    auto& a = pair37.a;
    auto& b = pair37.b;
    a->halfCloseable = true;
    std::vector<std::string> events;
    a->onReadLost = [&] {
        events.emplace_back("readConnectionLost");
        a->write("reply after EOF");
        a->loseWriteConnection();
    };
    a->onWriteLost = [&] {
        events.emplace_back("writeConnectionLost");
        a->loseConnection();
    };
    a->onLost = [&](const Failure&) { events.emplace_back("connectionLost"); };
    a->startReading();
    b->startReading();
    b->halfCloseable = true;
    b->write("request");
    b->loseWriteConnection();
    spinUntil([&] { return a->lost == 1; });
    EXPECT_EQ(events, (std::vector<std::string>{"readConnectionLost", "writeConnectionLost", "connectionLost"}));
    spinUntil([&] { return b->readLost == 1; });
    EXPECT_EQ(b->received, "reply after EOF");
    EXPECT_EQ(a->received, "request");
    finish({a, b});
}

TEST_P(FileDescriptorTest, FD_46_filenoStableWhileUsable) {
    // FD-46: fileno() keeps one value while the descriptor is usable, then -1.
    auto pair38 = makePair();
    auto& a = pair38.a;
    auto& b = pair38.b;
    int fd = a->fileno();
    EXPECT_GE(fd, 0);
    a->startReading();
    a->write("x");
    EXPECT_EQ(a->fileno(), fd);
    a->loseConnection();
    EXPECT_EQ(a->fileno(), fd);
    spinUntil([&] { return a->lost == 1; });
    EXPECT_EQ(a->fileno(), -1);
    finish({a, b});
}

INSTANTIATE_TEST_SUITE_P(Backends, FileDescriptorTest, weft::test::allBackends(), weft::test::backendParamName);

// =====================================================================================
// Address helpers (no reactor)
// =====================================================================================

TEST(AddressHelpers, FD_47_isIPAddressDottedQuadOnly) {
    // FD-47: isIPAddress is true only for four decimal parts 0..255; bytes accepted; other families throw.
    EXPECT_TRUE(isIPAddress("0.1.2.3"));
    EXPECT_TRUE(isIPAddress("252.253.254.255"));
    for (const char* bad : {"0",         "0.1",       "0.1.2",     "0.1.2.3.4",
                            "a.2.3.4",   "1.b.3.4",   ",",         "1,2",
                            "1,2,3",     "1.,.3,4",   "",          "-1",
                            "1.-2",      "1.2.-3",    "1.2.-3.4",  "256.0.0.0",
                            "0.256.0.0", "0.0.256.0", "0.0.0.256", "256.256.256.256",
                            "1.2.3.4 ",  " 1.2.3.4",  "1..2.3",    "\xe2\x88\xa2.1.2.3"})
        EXPECT_FALSE(isIPAddress(bad)) << bad;
    EXPECT_FALSE(isIPAddress(std::string_view("1.2.3.4\0junk", 12)));
    EXPECT_FALSE(isIPAddress("01.2.3.4"));  // as inet_pton, so as Twisted on Linux
    EXPECT_TRUE(isIPAddress(asBytes("252.253.254.255")));
    EXPECT_FALSE(isIPAddress(asBytes("\xe2\x88\xa2.1.2.3")));
    EXPECT_THROW(isIPAddress("::1", AF_UNIX), std::invalid_argument);
    EXPECT_THROW(isIPAddress(asBytes("::1"), AF_IPX), std::invalid_argument);
    EXPECT_TRUE(isIPAddress("::1", AF_INET6));
}

TEST(AddressHelpers, FD_48_isIPv6AddressWithOptionalScope) {
    // FD-48: isIPv6Address is true for an IPv6 literal optionally followed by %scope; false for "", ":", "%eth0", junk, non-ASCII.
    for (const char* good :
         {"::1", "fe80::1%eth0", "fe80::2%1", "fe80::3%en2", "::", "2001:db8::ff00:42:8329", "::ffff:1.2.3.4"})
        EXPECT_TRUE(isIPv6Address(good)) << good;
    for (const char* bad : {"", ":", "%eth0", ":%eth0", "hello%eth0", "\xe4\x8c\xa1", "1.2.3.4", ":::1"})
        EXPECT_FALSE(isIPv6Address(bad)) << bad;
    EXPECT_TRUE(isIPv6Address(asBytes("fe80::2%1")));
    EXPECT_FALSE(isIPv6Address(asBytes("hello%eth0")));
}

}  // namespace
