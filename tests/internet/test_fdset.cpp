// IReactorFDSet, dispatch and backend differences (reactor.md R-29..R-44).
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using namespace std::chrono_literals;
using weft::test::FakeDescriptor;
using weft::test::Pipe;
using weft::test::ReactorTest;
using weft::test::SocketPair;

namespace {

/// An owned descriptor number, closed on destruction.
struct Fd {
    explicit Fd(int n = -1) : fd(n) {}
    ~Fd() { reset(); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    int fd;
};

/// A connected loopback TCP pair (port 0, so never a fixed port); both ends non-blocking.
struct TcpPair {
    TcpPair() {
        Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (listener.fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listener.fd, 1) != 0 || ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            throw std::system_error(errno, std::generic_category(), "listen on 127.0.0.1:0");
        client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (client < 0 || ::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw std::system_error(errno, std::generic_category(), "connect");
        server = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (server < 0) throw std::system_error(errno, std::generic_category(), "accept4");
        ::fcntl(client, F_SETFL, ::fcntl(client, F_GETFL) | O_NONBLOCK);
    }
    ~TcpPair() {
        closeClient();
        if (server >= 0) ::close(server);
    }
    TcpPair(const TcpPair&) = delete;
    TcpPair& operator=(const TcpPair&) = delete;
    void closeClient() {
        if (client >= 0) ::close(client);
        client = -1;
    }
    /// Closes the client with SO_LINGER {1, 0}: the server end receives a RST.
    void resetClient() {
        linger lg{1, 0};
        ::setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        closeClient();
    }
    int client = -1, server = -1;
};

void sendBytes(int fd, std::string_view s) {
    ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size())) << "write: " << std::strerror(errno);
}

/// Reads everything available; the reason a transport's doRead would return.
Reason drain(int fd, std::string* into = nullptr) {
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            if (into) into->append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0) return Failure(ConnectionDone());
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        if (errno == EINTR) continue;
        return Failure(ConnectionLost(std::error_code(errno, std::generic_category())));
    }
}

/// Waits (outside the reactor) until fd reports one of `events` or an error; the
/// kernel-side state a test then expects the reactor to see. Returns revents.
short waitReady(int fd, short events, int ms = 5000) {
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, ms) == 1 ? p.revents : short{0};
}

std::error_code codeOf(const Failure& f) {
    auto* lost = f.get<ConnectionLost>();
    return lost ? lost->code() : std::error_code{};
}

/// A plain read descriptor that is not half-closeable.
class PlainReader final : public IReadDescriptor {
public:
    explicit PlainReader(int fd) : fd_(fd) {}
    int fileno() const override { return fd_; }
    Reason doRead() override {
        ++reads;
        return Failure(ConnectionDone());
    }
    void connectionLost(const Failure& why) override {
        ++lost;
        lostReason = why;
    }
    int reads = 0, lost = 0;
    std::optional<Failure> lostReason;

private:
    int fd_;
};

class FdSetTest : public ReactorTest {
protected:
    bool pollLike() const { return GetParam() != Backend::select; }
};

// ---- add/remove --------------------------------------------------------

TEST_P(FdSetTest, R_29_addReaderCallsDoReadWhenReadable) {
    // addReader(d) makes the reactor call d.doRead() whenever d.fileno() is readable, until removeReader(d).
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    d->onRead = [&]() -> Reason {
        reactor().removeReader(d);
        reactor().stop();
        return std::nullopt;
    };
    reactor().callWhenRunning([&] {
        reactor().addReader(d);
        sendBytes(sp.b, "x");
    });
    runReactor();
    EXPECT_EQ(d->reads, 1);
    EXPECT_EQ(d->writes, 0);
    EXPECT_EQ(d->lost, 0);
}

TEST_P(FdSetTest, R_29_addWriterCallsDoWriteWhenWritable) {
    // addWriter(d) makes the reactor call d.doWrite() whenever d.fileno() is writable, until removeWriter(d).
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    d->onWrite = [&]() -> Reason {
        reactor().removeWriter(d);
        reactor().stop();
        return std::nullopt;
    };
    reactor().callWhenRunning([&] { reactor().addWriter(d); });
    runReactor();
    EXPECT_EQ(d->writes, 1);
    EXPECT_EQ(d->reads, 0);
}

TEST_P(FdSetTest, R_29_addingTwiceEqualsAddingOnce) {
    // adding a descriptor twice equals adding it once: one remove stops it.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    reactor().addReader(d);
    reactor().addReader(d);
    reactor().addWriter(d);
    reactor().addWriter(d);
    EXPECT_EQ(reactor().getReaders().size(), 1u);
    EXPECT_EQ(reactor().getWriters().size(), 1u);
    sendBytes(sp.b, "x");
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 1);  // one registration: one call per readiness
    EXPECT_EQ(d->writes, 1);
    reactor().removeReader(d);
    reactor().removeWriter(d);
    EXPECT_FALSE(reactor().isReading(d.get()));
    EXPECT_FALSE(reactor().isWriting(d.get()));
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 1);
    EXPECT_EQ(d->writes, 1);
}

TEST_P(FdSetTest, R_29_removingUnregisteredIsSilentNoOp) {
    // removing something not registered (or not for that interest) is a silent no-op.
    SocketPair sp;
    auto never = std::make_shared<FakeDescriptor>(sp.b);
    auto reader = std::make_shared<FakeDescriptor>(sp.a);
    EXPECT_NO_THROW(reactor().removeReader(never));
    EXPECT_NO_THROW(reactor().removeWriter(never));
    EXPECT_NO_THROW(reactor().removeReader(static_cast<IReadDescriptor*>(nullptr)));
    reactor().addReader(reader);
    EXPECT_NO_THROW(reactor().removeWriter(reader));  // registered, but not as a writer
    EXPECT_NO_THROW(reactor().removeReader(reader));
    EXPECT_NO_THROW(reactor().removeReader(reader));  // twice
    EXPECT_TRUE(reactor().getReaders().empty());
    EXPECT_EQ(reader->lost + never->lost, 0);
}

TEST_P(FdSetTest, R_29_addOfClosedOrInvalidDescriptorThrowsClearly) {
    // R-29 (issue acceptance): addReader/addWriter of a closed or invalid descriptor throws at once and registers nothing.
    auto negative = std::make_shared<FakeDescriptor>(-1);
    EXPECT_THROW(reactor().addReader(negative), std::invalid_argument);
    EXPECT_THROW(reactor().addWriter(negative), std::invalid_argument);
    EXPECT_THROW(reactor().addReader(std::shared_ptr<IReadDescriptor>()), std::invalid_argument);

    int closedFd;
    {
        Pipe p;
        closedFd = p.readFd;
    }
    ASSERT_EQ(::fcntl(closedFd, F_GETFD), -1);
    auto closed = std::make_shared<FakeDescriptor>(closedFd);
    for (int i = 0; i < 2; ++i) {
        try {
            if (i == 0) reactor().addReader(closed);
            else reactor().addWriter(closed);
            ADD_FAILURE() << "adding a closed descriptor did not throw";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code(), std::errc::bad_file_descriptor);
            EXPECT_NE(std::string(e.what()).find(std::to_string(closedFd)), std::string::npos) << e.what();
        }
    }
    EXPECT_TRUE(reactor().getReaders().empty());
    EXPECT_TRUE(reactor().getWriters().empty());

    // Nothing of the failed attempts lingers: the same fd number works once it is open again.
    Pipe reopened;
    ASSERT_EQ(reopened.readFd, closedFd);
    auto d = std::make_shared<FakeDescriptor>(reopened.readFd);
    reactor().addReader(d);
    sendBytes(reopened.writeFd, "x");
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 1);
    EXPECT_EQ(closed->reads + closed->lost + negative->lost, 0);
    reactor().removeReader(d);
}

TEST_P(FdSetTest, R_29_descriptorAtAddressOfFreedPausedOneRegistersAfresh) {
    // addReader registers the descriptor it is given, even at the address of a paused descriptor that was freed.
    alignas(FakeDescriptor) unsigned char storage[sizeof(FakeDescriptor)];
    auto makeAt = [&](int fd) {
        return std::shared_ptr<FakeDescriptor>(new (storage) FakeDescriptor(fd),
                                               [](FakeDescriptor* p) { p->~FakeDescriptor(); });
    };
    Pipe first, second;
    {
        auto paused = makeAt(first.readFd);
        reactor().addReader(paused);
        reactor().removeReader(paused);  // epoll/poll keep watching it for errors, weakly
    }
    first.closeRead();
    first.closeWrite();

    auto d = makeAt(second.readFd);  // the same address as the freed one
    ASSERT_NO_THROW(reactor().addReader(d));
    sendBytes(second.writeFd, "x");
    reactor().iterate(0);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 2);
    EXPECT_EQ(d->lost, 0) << (d->lostReason ? d->lostReason->getErrorMessage() : "");
    EXPECT_TRUE(reactor().isReading(d.get()));
    reactor().removeReader(d);
    d.reset();
    reactor().removeAll();  // nothing may keep pointing into `storage`
}

// ---- removal takes effect at once ------------------------------------------

TEST_P(FdSetTest, R_30_removeStopsCallbacksEvenWithReadinessPending) {
    // after removeReader/removeWriter no further callback is made, even if readiness is already pending.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    reactor().addReader(d);
    reactor().addWriter(d);
    sendBytes(sp.b, "x");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    reactor().removeReader(d);
    reactor().removeWriter(d);
    reactor().callLater(0, [&] { reactor().callLater(0, [&] { reactor().stop(); }); });
    runReactor();
    EXPECT_EQ(d->reads, 0);
    EXPECT_EQ(d->writes, 0);
    EXPECT_EQ(d->lost, 0);
}

TEST_P(FdSetTest, R_30_removingAnotherReaderInTheSameBatchSkipsItsPendingRead) {
    // R-30 (Better than Twisted): a descriptor whose reader was removed earlier in the same batch gets no doRead,
    // while its remaining writer interest is still served.
    SocketPair sp1, sp2;
    auto d1 = std::make_shared<FakeDescriptor>(sp1.a);
    auto d2 = std::make_shared<FakeDescriptor>(sp2.a);
    d1->onRead = [&]() -> Reason {
        reactor().removeReader(d2);
        return std::nullopt;
    };
    d2->onRead = [&]() -> Reason {
        reactor().removeReader(d1);
        return std::nullopt;
    };
    for (auto& d : {d1, d2}) {
        reactor().addReader(d);
        reactor().addWriter(d);
    }
    sendBytes(sp1.b, "x");
    sendBytes(sp2.b, "x");
    ASSERT_TRUE(waitReady(sp1.a, POLLIN) & POLLIN);
    ASSERT_TRUE(waitReady(sp2.a, POLLIN) & POLLIN);
    reactor().iterate(0);  // both are readable and writable in this one batch
    EXPECT_EQ(d1->reads + d2->reads, 1);
    EXPECT_EQ(d1->writes, 1);
    EXPECT_EQ(d2->writes, 1);
    reactor().removeAll();
}

namespace {
/// Twisted's RemovingDescriptor: removes itself in doRead and records every fileno()
/// call made while it is not registered.
class RemovingDescriptor final : public IReadDescriptor {
public:
    RemovingDescriptor(Reactor& r, int readFd, int writeFd) : reactor_(r), read_(readFd), write_(writeFd) {}
    void start() {
        inside_ = true;
        reactor_.addReader(self.lock());
        sendBytes(write_.fd, "a");
    }
    int fileno() const override {
        if (!inside_) ++callsOutside;
        return read_.fd;
    }
    Reason doRead() override {
        reactor_.removeReader(this);
        inside_ = false;
        read_.reset();
        write_.reset();
        // Give the reactor two more waits in which it could look at the closed descriptor.
        reactor_.callLater(0, [this] { reactor_.callLater(0, [this] { reactor_.stop(); }); });
        return std::nullopt;
    }
    void connectionLost(const Failure&) override { ++lost; }
    std::weak_ptr<RemovingDescriptor> self;
    mutable int callsOutside = 0;
    int lost = 0;

private:
    Reactor& reactor_;
    Fd read_, write_;
    bool inside_ = false;
};
}  // namespace

TEST_P(FdSetTest, R_30_filenoIsNotCalledAfterRemoval) {
    // the reactor does not call fileno() on a descriptor it no longer holds (its fd may be closed by then).
    int s[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
    auto d = std::make_shared<RemovingDescriptor>(reactor(), s[0], s[1]);
    d->self = d;
    EXPECT_EQ(d->fileno(), s[0]);
    d->callsOutside = 0;
    reactor().callWhenRunning([&] { d->start(); });
    runReactor();
    EXPECT_EQ(d->callsOutside, 0);
    EXPECT_EQ(d->lost, 0);
}

TEST_P(FdSetTest, R_30_descriptorMayRemoveItselfAndDropLastReferenceInDoRead) {
    // R-30 / STYLE §3: a descriptor that unregisters itself and drops its last reference inside doRead survives
    // until dispatch returns (the reactor's guard), gets no doWrite afterwards, and is then released.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    std::weak_ptr<FakeDescriptor> weak = d;
    FakeDescriptor* raw = d.get();
    int writes = 0, lost = 0;
    bool aliveInsideDoRead = false;
    d->onWrite = [&]() -> Reason {
        ++writes;
        return std::nullopt;
    };
    d->onLost = [&](const Failure&) { ++lost; };
    d->onRead = [&, raw]() -> Reason {
        reactor().removeReader(raw);
        reactor().removeWriter(raw);
        d.reset();  // the last reference outside the reactor
        aliveInsideDoRead = !weak.expired();
        raw->setFileno(-1);  // touch the object: a use after free under ASan if the guard were missing
        return drain(sp.a);
    };
    reactor().addReader(d);
    reactor().addWriter(d);
    sendBytes(sp.b, "x");
    reactor().iterate(0);
    EXPECT_TRUE(aliveInsideDoRead);
    EXPECT_TRUE(weak.expired()) << "the reactor kept an unregistered descriptor alive";
    EXPECT_EQ(writes, 0);
    EXPECT_EQ(lost, 0);
    reactor().iterate(0);
    reactor().removeAll();
}

// ---- getReaders / getWriters -------------------------------------------------

TEST_P(FdSetTest, R_31_freshReactorReportsNoReadersOrWriters) {
    // R-31 (Better than Twisted): the internal waker is not reported, so a fresh reactor's lists are empty.
    EXPECT_TRUE(reactor().getReaders().empty());
    EXPECT_TRUE(reactor().getWriters().empty());
}

TEST_P(FdSetTest, R_31_getReadersAndWritersReflectChangesImmediately) {
    // getReaders()/getWriters() reflect adds and removes at once; a descriptor registered for both is in both.
    SocketPair sp1, sp2;
    Pipe p;
    auto reader = std::make_shared<FakeDescriptor>(sp1.a);
    auto writer = std::make_shared<FakeDescriptor>(sp1.b);
    auto both = std::make_shared<FakeDescriptor>(sp2.a);
    auto readers = [&] {
        std::set<const IReadDescriptor*> out;
        for (auto& r : reactor().getReaders()) out.insert(r.get());
        return out;
    };
    auto writers = [&] {
        std::set<const IWriteDescriptor*> out;
        for (auto& w : reactor().getWriters()) out.insert(w.get());
        return out;
    };
    reactor().addReader(reader);
    EXPECT_EQ(readers(), (std::set<const IReadDescriptor*>{reader.get()}));
    EXPECT_TRUE(writers().empty());
    reactor().addWriter(writer);
    reactor().addReader(both);
    reactor().addWriter(both);
    EXPECT_EQ(readers(), (std::set<const IReadDescriptor*>{reader.get(), both.get()}));
    EXPECT_EQ(writers(), (std::set<const IWriteDescriptor*>{writer.get(), both.get()}));
    EXPECT_EQ(reactor().getReaders().size(), 2u);
    reactor().removeReader(both);
    EXPECT_EQ(readers(), (std::set<const IReadDescriptor*>{reader.get()}));
    EXPECT_EQ(writers(), (std::set<const IWriteDescriptor*>{writer.get(), both.get()}));
    reactor().removeWriter(both);
    reactor().removeWriter(writer);
    reactor().removeReader(reader);
    EXPECT_TRUE(readers().empty());
    EXPECT_TRUE(writers().empty());
}

// ---- removeAll -----------------------------------------------------------------

TEST_P(FdSetTest, R_32_removeAllReturnsEachDescriptorOnceAndDispatchesNothing) {
    // removeAll() unregisters and returns every reader and writer, each once; nothing removed is dispatched.
    SocketPair sp1, sp2, sp3;
    auto reader = std::make_shared<FakeDescriptor>(sp1.a);
    auto writer = std::make_shared<FakeDescriptor>(sp2.a);
    auto both = std::make_shared<FakeDescriptor>(sp3.a);
    auto paused = std::make_shared<FakeDescriptor>(sp3.b);
    reactor().addReader(reader);
    reactor().addWriter(writer);
    reactor().addReader(both);
    reactor().addWriter(both);
    reactor().addReader(paused);
    reactor().removeReader(paused);
    sendBytes(sp1.b, "x");
    sendBytes(sp3.b, "x");
    auto removed = reactor().removeAll();
    std::multiset<const IFileDescriptor*> got;
    for (auto& d : removed) got.insert(d.get());
    EXPECT_EQ(got, (std::multiset<const IFileDescriptor*>{reader.get(), writer.get(), both.get()}));
    EXPECT_TRUE(reactor().getReaders().empty());
    EXPECT_TRUE(reactor().getWriters().empty());
    reactor().iterate(0);
    reactor().iterate(0);
    for (auto* d : {reader.get(), writer.get(), both.get(), paused.get()}) {
        EXPECT_EQ(d->reads, 0);
        EXPECT_EQ(d->writes, 0);
        EXPECT_EQ(d->lost, 0);
    }
}

TEST_P(FdSetTest, R_32_removeAllKeepsTheInternalWaker) {
    // the reactor's internal readers survive removeAll(): a callFromThread still wakes a blocked wait.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    reactor().addReader(d);
    EXPECT_EQ(reactor().removeAll().size(), 1u);
    std::thread other;
    reactor().callWhenRunning([&] {
        // The loop has nothing else to wake it: only the waker can deliver this stop.
        other = std::thread([&] { reactor().callFromThread([&] { reactor().stop(); }); });
    });
    runReactor(5.0);
    other.join();
}

// ---- results of doRead / doWrite ---------------------------------------------------

TEST_P(FdSetTest, R_33_connectionDoneFromDoReadEndsOnlyTheReadSide) {
    // ConnectionDone from doRead of a half-closeable descriptor removes the reader, calls readConnectionLost
    // and keeps the writer; ConnectionDone from doWrite then ends the whole descriptor.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    d->onRead = []() -> Reason { return Failure(ConnectionDone()); };
    reactor().addReader(d);
    reactor().addWriter(d);
    sendBytes(sp.b, "x");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 1);
    EXPECT_EQ(d->readLost, 1);
    ASSERT_TRUE(d->readLostReason);
    EXPECT_TRUE(d->readLostReason->check<ConnectionDone>());
    EXPECT_EQ(d->lost, 0);
    EXPECT_FALSE(reactor().isReading(d.get()));
    EXPECT_TRUE(reactor().isWriting(d.get()));
    ASSERT_EQ(reactor().getWriters().size(), 1u);

    int writesBefore = d->writes;
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 1);
    EXPECT_EQ(d->writes, writesBefore + 1);

    d->onWrite = []() -> Reason { return Failure(ConnectionDone()); };
    reactor().iterate(0);
    EXPECT_EQ(d->lost, 1);
    ASSERT_TRUE(d->lostReason);
    EXPECT_TRUE(d->lostReason->check<ConnectionDone>());
    EXPECT_EQ(d->readLost, 1);
    EXPECT_FALSE(reactor().isWriting(d.get()));
}

TEST_P(FdSetTest, R_33_otherReasonsEndTheDescriptorAndPassThroughUnchanged) {
    // any other reason (e.g. ConnectionAborted) removes reader and writer and reaches connectionLost unchanged.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    Failure aborted(ConnectionAborted{});
    d->onRead = [&]() -> Reason { return aborted; };
    reactor().addReader(d);
    reactor().addWriter(d);
    sendBytes(sp.b, "x");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(d->lost, 1);
    EXPECT_EQ(d->readLost, 0);
    EXPECT_EQ(d->writes, 0);
    ASSERT_TRUE(d->lostReason);
    EXPECT_TRUE(*d->lostReason == aborted);  // the very same exception object
    EXPECT_TRUE(d->lostReason->check<ConnectionAborted>());
    EXPECT_FALSE(reactor().isReading(d.get()));
    EXPECT_FALSE(reactor().isWriting(d.get()));
}

TEST_P(FdSetTest, R_33_connectionDoneOnDescriptorThatCannotHalfCloseEndsIt) {
    // ConnectionDone from doRead of a descriptor that is not half-closeable calls connectionLost.
    SocketPair sp;
    auto d = std::make_shared<PlainReader>(sp.a);
    reactor().addReader(d);
    sendBytes(sp.b, "x");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 1);
    EXPECT_EQ(d->lost, 1);
    ASSERT_TRUE(d->lostReason);
    EXPECT_TRUE(d->lostReason->check<ConnectionDone>());
    EXPECT_FALSE(reactor().isReading(d.get()));
}

TEST_P(FdSetTest, R_33_reasonReturnedAfterDroppingLastReferenceIsDelivered) {
    // R-33 / STYLE §3: a descriptor whose last outside reference is dropped in doRead still receives the
    // connectionLost for the reason it returned; it is released only afterwards.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    std::weak_ptr<FakeDescriptor> weak = d;
    int lost = 0;
    bool aliveInLost = false;
    d->onLost = [&](const Failure& why) {
        ++lost;
        aliveInLost = !weak.expired() && why.check<ConnectionLost>();
    };
    d->onRead = [&]() -> Reason {
        d.reset();
        return Failure(ConnectionLost());
    };
    reactor().addReader(d);
    sendBytes(sp.b, "x");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(lost, 1);
    EXPECT_TRUE(aliveInLost);
    EXPECT_TRUE(weak.expired());
}

// ---- exceptions ----------------------------------------------------------------------

TEST_P(FdSetTest, R_34_exceptionFromDoReadOrDoWriteIsLoggedAndEndsOnlyThatDescriptor) {
    // an exception from doRead/doWrite is logged and becomes the reason: that descriptor is removed and gets
    // connectionLost(Failure(exception)); others carry on.
    SocketPair sp1, sp2, sp3;
    auto badReader = std::make_shared<FakeDescriptor>(sp1.a);
    auto badWriter = std::make_shared<FakeDescriptor>(sp2.a);
    auto good = std::make_shared<FakeDescriptor>(sp3.a);
    badReader->onRead = []() -> Reason { throw std::runtime_error("boom in doRead"); };
    badWriter->onWrite = []() -> Reason { throw std::runtime_error("boom in doWrite"); };
    good->onRead = [&] { return drain(sp3.a); };
    reactor().addReader(badReader);
    reactor().addWriter(badReader);
    reactor().addWriter(badWriter);
    reactor().addReader(good);
    for (int fd : {sp1.b, sp3.b}) sendBytes(fd, "x");
    ASSERT_TRUE(waitReady(sp1.a, POLLIN) & POLLIN);
    ASSERT_TRUE(waitReady(sp3.a, POLLIN) & POLLIN);
    EXPECT_NO_THROW(reactor().iterate(0));
    for (auto* d : {badReader.get(), badWriter.get()}) {
        EXPECT_EQ(d->lost, 1);
        ASSERT_TRUE(d->lostReason);
        EXPECT_TRUE(d->lostReason->check<std::runtime_error>());
        EXPECT_FALSE(reactor().isReading(d));
        EXPECT_FALSE(reactor().isWriting(d));
    }
    EXPECT_EQ(badReader->lostReason->getErrorMessage(), "boom in doRead");
    EXPECT_EQ(badWriter->lostReason->getErrorMessage(), "boom in doWrite");
    EXPECT_EQ(badReader->writes, 0);  // doWrite is skipped once doRead has ended it
    EXPECT_EQ(good->reads, 1);
    EXPECT_EQ(good->lost, 0);
    EXPECT_TRUE(reactor().isReading(good.get()));
    auto logged = logs.flushLoggedErrors<std::runtime_error>();
    EXPECT_EQ(logged.size(), 2u);
    reactor().removeReader(good);
}

TEST_P(FdSetTest, R_34_exceptionFromDoReadNeverEscapesRun) {
    // R-34 with R-12: a throwing doRead inside run() is logged; the loop continues and shuts down normally.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    d->onRead = []() -> Reason { throw std::logic_error("doRead bug"); };
    d->onLost = [&](const Failure&) { reactor().callLater(0, [&] { reactor().stop(); }); };
    reactor().callWhenRunning([&] {
        reactor().addReader(d);
        sendBytes(sp.b, "x");
    });
    EXPECT_NO_THROW(runReactor());
    EXPECT_EQ(d->lost, 1);
    EXPECT_TRUE(d->lostReason->check<std::logic_error>());
    EXPECT_EQ(logs.flushLoggedErrors<std::logic_error>().size(), 1u);
}

// ---- read before write -----------------------------------------------------------------

TEST_P(FdSetTest, R_35_doReadRunsFirstAndDoWriteOnlyIfReadReturnedNothing) {
    // for one readable+writable event doRead runs first; doWrite runs only if doRead returned null.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    std::vector<std::string> order;
    d->onRead = [&]() -> Reason {
        order.push_back("read");
        return drain(sp.a);
    };
    d->onWrite = [&]() -> Reason {
        order.push_back("write");
        return std::nullopt;
    };
    reactor().addReader(d);
    reactor().addWriter(d);
    sendBytes(sp.b, "x");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(order, (std::vector<std::string>{"read", "write"}));

    order.clear();
    d->onRead = [&]() -> Reason {
        order.push_back("read");
        return Failure(ConnectionLost());
    };
    sendBytes(sp.b, "y");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(order, (std::vector<std::string>{"read"}));
    EXPECT_EQ(d->lost, 1);
}

// ---- fileno() == -1 --------------------------------------------------------------------------

TEST_P(FdSetTest, R_36_filenoMinusOneDisconnectsWithFdescWentAway) {
    // if fileno() returns -1 at dispatch, neither doRead nor doWrite runs; connectionLost(ConnectionFdescWentAway).
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    std::string received;
    d->onRead = [&]() -> Reason {
        char c;
        if (::read(sp.a, &c, 1) == 1) received += c;
        d->setFileno(-1);
        sendBytes(sp.b, "y");  // readable again, but the descriptor has no fd any more
        return std::nullopt;
    };
    d->onLost = [&](const Failure&) { reactor().stop(); };
    reactor().callWhenRunning([&] {
        reactor().addReader(d);
        sendBytes(sp.b, "x");
    });
    runReactor();
    EXPECT_EQ(received, "x");
    EXPECT_EQ(d->reads, 1);
    EXPECT_EQ(d->lost, 1);
    ASSERT_TRUE(d->lostReason);
    EXPECT_TRUE(d->lostReason->check<ConnectionFdescWentAway>());
    EXPECT_FALSE(reactor().isReading(d.get()));
}

TEST_P(FdSetTest, R_36_neitherCallbackRunsForReaderAndWriter) {
    // with fileno() == -1 a descriptor registered both ways gets neither doRead nor doWrite.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    reactor().addReader(d);
    reactor().addWriter(d);
    sendBytes(sp.b, "x");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    d->setFileno(-1);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 0);
    EXPECT_EQ(d->writes, 0);
    EXPECT_EQ(d->lost, 1);
    EXPECT_TRUE(d->lostReason && d->lostReason->check<ConnectionFdescWentAway>());
    EXPECT_FALSE(reactor().isWriting(d.get()));
}

// ---- hang-up and error readiness -------------------------------------------------------------

TEST_P(FdSetTest, R_37_hangupWithoutDataEndsReadSideWithoutDoRead) {
    // hang-up without readable data ends a reader as a read-side ConnectionDone without calling doRead
    // (select has no hang-up event: it sees readable + a zero-byte read, R-41).
    Pipe p;
    auto d = std::make_shared<FakeDescriptor>(p.readFd);
    d->onRead = [&] { return drain(p.readFd); };
    reactor().addReader(d);
    p.closeWrite();
    ASSERT_TRUE(waitReady(p.readFd, POLLIN) & POLLHUP);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, pollLike() ? 0 : 1);
    EXPECT_EQ(d->readLost, 1);
    ASSERT_TRUE(d->readLostReason);
    EXPECT_TRUE(d->readLostReason->check<ConnectionDone>());
    EXPECT_EQ(d->lost, 0);
    EXPECT_FALSE(reactor().isReading(d.get()));
    reactor().iterate(0);  // a paused, hung-up pipe must not be reported again
    EXPECT_EQ(d->readLost, 1);
    EXPECT_EQ(d->lost, 0);
}

TEST_P(FdSetTest, R_37_errorOnWriterOnlyDescriptorIsConnectionLost) {
    // error readiness on a descriptor not registered for reading ends it with ConnectionLost, without doWrite
    // (select only reports writability, so there doWrite sees the EPIPE).
    Pipe p;
    auto d = std::make_shared<FakeDescriptor>(p.writeFd);
    d->onWrite = [&]() -> Reason {
        if (::write(p.writeFd, "x", 1) < 0)
            return Failure(ConnectionLost(std::error_code(errno, std::generic_category())));
        return std::nullopt;
    };
    reactor().addWriter(d);
    p.closeRead();
    reactor().iterate(0);
    EXPECT_EQ(d->writes, pollLike() ? 0 : 1);
    EXPECT_EQ(d->lost, 1);
    ASSERT_TRUE(d->lostReason);
    EXPECT_TRUE(d->lostReason->check<ConnectionLost>());
    EXPECT_FALSE(d->lostReason->check<ConnectionDone>());
    EXPECT_EQ(d->readLost, 0);
    EXPECT_FALSE(reactor().isWriting(d.get()));
}

TEST_P(FdSetTest, R_37_readableDataIsDrainedBeforeTheHangup) {
    // data that arrived before the hang-up is always delivered through doRead before the read side ends.
    Pipe p;
    auto d = std::make_shared<FakeDescriptor>(p.readFd);
    std::string received, atEnd;
    d->onRead = [&] { return drain(p.readFd, &received); };
    d->onReadLost = [&](const Failure&) { atEnd = received; };
    reactor().addReader(d);
    sendBytes(p.writeFd, "abc");
    p.closeWrite();
    for (int i = 0; i < 3 && d->readLost == 0; ++i) reactor().iterate(0);
    EXPECT_GE(d->reads, 1);
    EXPECT_EQ(d->readLost, 1);
    EXPECT_EQ(atEnd, "abc");
    EXPECT_EQ(d->lost, 0);
}

// ---- paused descriptors ----------------------------------------------------------------------

TEST_P(FdSetTest, R_38_pausedTcpSocketLearnsOfResetPromptly) {
    // R-38 (Better than Twisted): a paused socket (no interest) that receives a RST gets ConnectionLost(ECONNRESET)
    // at once on epoll and poll; select cannot see it, so nothing is reported until the descriptor reads again.
    TcpPair tcp;
    auto d = std::make_shared<FakeDescriptor>(tcp.server);
    d->onRead = [&] { return drain(tcp.server); };
    reactor().addReader(d);
    reactor().removeReader(d);  // paused
    tcp.resetClient();
    ASSERT_TRUE(waitReady(tcp.server, 0) & POLLERR) << "the RST did not arrive";
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 0);
    EXPECT_EQ(d->readLost, 0);
    if (pollLike()) {
        EXPECT_EQ(d->lost, 1);
        ASSERT_TRUE(d->lostReason);
        EXPECT_TRUE(d->lostReason->check<ConnectionLost>());
        EXPECT_EQ(codeOf(*d->lostReason), std::errc::connection_reset);
        reactor().iterate(0);
        EXPECT_EQ(d->lost, 1);  // exactly once
    } else {
        reactor().iterate(0);
        EXPECT_EQ(d->lost, 0) << "select cannot watch a descriptor without interest";
        reactor().addReader(d);  // resume: the reset surfaces through doRead
        reactor().iterate(0);
        EXPECT_EQ(d->reads, 1);
        EXPECT_EQ(d->lost, 1);
        ASSERT_TRUE(d->lostReason);
        EXPECT_EQ(codeOf(*d->lostReason), std::errc::connection_reset);
    }
    EXPECT_FALSE(reactor().isReading(d.get()));
}

TEST_P(FdSetTest, R_38_pausedSocketSeesCleanCloseOnlyAfterResume) {
    // a clean FIN reaches a paused descriptor only after it resumes reading, after the data sent before it.
    TcpPair tcp;
    auto d = std::make_shared<FakeDescriptor>(tcp.server);
    std::string received, atEnd;
    d->onRead = [&] { return drain(tcp.server, &received); };
    d->onReadLost = [&](const Failure&) { atEnd = received; };
    reactor().addReader(d);
    reactor().removeReader(d);
    sendBytes(tcp.client, "hi");
    tcp.closeClient();
    ASSERT_TRUE(waitReady(tcp.server, POLLRDHUP) & POLLRDHUP);
    reactor().iterate(0);
    reactor().iterate(0);
    EXPECT_EQ(d->reads + d->lost + d->readLost, 0);
    reactor().addReader(d);
    reactor().iterate(0);
    EXPECT_EQ(d->readLost, 1);
    EXPECT_EQ(atEnd, "hi");
    EXPECT_EQ(d->lost, 0);
}

TEST_P(FdSetTest, R_38_resumedByAnEarlierEventOfTheSameWaitStillReadsBeforeTheHangup) {
    // a paused socket whose peer wrote and closed is reported by the wait with hang-up only (it asked
    // for no data). If an earlier event of the same wait resumes it, that stale hang-up must not end the read side:
    // the data it could not report is read first (a forwarder lost the tail of a stream this way).
    Pipe first;     // ready first in the wait, resumes `paused` from its doRead
    SocketPair sp;  // sp.a: the paused descriptor; sp.b: its peer, writes then closes
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    std::string received, atEnd;
    d->onRead = [&] { return drain(sp.a, &received); };
    d->onReadLost = [&](const Failure&) { atEnd = received; };
    auto resumer = std::make_shared<FakeDescriptor>(first.readFd);
    resumer->onRead = [&]() -> Reason {
        drain(first.readFd);
        reactor().addReader(d);  // resume, within the wait's batch
        return std::nullopt;
    };
    reactor().addReader(resumer);
    reactor().addReader(d);
    reactor().removeReader(d);  // paused: watched for errors only
    reactor().iterate(0);       // the poller now has no read interest for sp.a
    sendBytes(first.writeFd, "go");
    sendBytes(sp.b, "tail of the stream");
    sp.closeB();
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLHUP);
    for (int i = 0; i < 4 && d->readLost == 0; ++i) reactor().iterate(0);
    EXPECT_EQ(resumer->reads, 1);
    EXPECT_EQ(d->readLost, 1);
    EXPECT_EQ(atEnd, "tail of the stream");
    EXPECT_EQ(d->lost, 0);
    reactor().removeReader(resumer);
}

// ---- EINTR ---------------------------------------------------------------------------------------

namespace {
std::atomic<int> gUsr1{0};
extern "C" void countUsr1(int) { gUsr1.fetch_add(1, std::memory_order_relaxed); }

/// Restores a signal's disposition on scope exit.
struct SavedDisposition {
    explicit SavedDisposition(int s) : sig(s) { ::sigaction(sig, nullptr, &old); }
    ~SavedDisposition() { ::sigaction(sig, &old, nullptr); }
    int sig;
    struct sigaction old {};
};
}  // namespace

TEST_P(FdSetTest, R_39_eintrEndsTheIterationQuietly) {
    // EINTR from the readiness wait ends the iteration quietly; no descriptor is disconnected.
    SavedDisposition saved(SIGUSR1);
    struct sigaction sa {};
    sa.sa_handler = countUsr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the wait fails with EINTR
    ASSERT_EQ(::sigaction(SIGUSR1, &sa, nullptr), 0);

    Pipe p;
    auto d = std::make_shared<FakeDescriptor>(p.readFd);
    reactor().addReader(d);
    gUsr1 = 0;
    pthread_t reactorThread = ::pthread_self();
    std::atomic<bool> done{false};
    // The sender cannot know when the reactor enters its wait, so it keeps signalling until the wait ends.
    std::thread sender([&] {
        while (!done.load()) {
            ::pthread_kill(reactorThread, SIGUSR1);
            std::this_thread::sleep_for(5ms);
        }
    });
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_NO_THROW(reactor().iterate(20));  // nothing is ready and nothing is due: only the signal ends it
    auto elapsed = std::chrono::steady_clock::now() - t0;
    done = true;
    sender.join();
    EXPECT_LT(elapsed, 10s);
    EXPECT_GE(gUsr1.load(), 1);
    EXPECT_EQ(d->reads, 0);
    EXPECT_EQ(d->lost + d->readLost, 0);
    EXPECT_TRUE(reactor().isReading(d.get()));
    reactor().removeReader(d);
}

// ---- one suite for every backend -----------------------------------------------------------------

TEST_P(FdSetTest, R_40_theSuiteRunsOnTheBackendItNames) {
    // all three backends pass this shared suite: each instantiation really runs the backend it names.
    EXPECT_EQ(reactor().backend(), GetParam());
    switch (GetParam()) {
        case Backend::epoll: EXPECT_NE(dynamic_cast<EPollReactor*>(&reactor()), nullptr); break;
        case Backend::poll: EXPECT_NE(dynamic_cast<PollReactor*>(&reactor()), nullptr); break;
        case Backend::select: EXPECT_NE(dynamic_cast<SelectReactor*>(&reactor()), nullptr); break;
    }
    EXPECT_EQ(parseBackend(backendName(GetParam())), GetParam());
}

// ---- select ----------------------------------------------------------------------------------------

TEST_P(FdSetTest, R_41_selectDisconnectsDescriptorAboveFdSetsizeAndKeepsTheRest) {
    // on select an fd >= FD_SETSIZE cannot be watched: it is disconnected with connectionLost(ConnectionLost)
    // while the other descriptors keep working; poll and epoll watch it normally.
    SocketPair big, small;
    Fd high(::fcntl(big.a, F_DUPFD_CLOEXEC, FD_SETSIZE));
    ASSERT_GE(high.fd, FD_SETSIZE) << std::strerror(errno);
    auto far = std::make_shared<FakeDescriptor>(high.fd);
    auto near = std::make_shared<FakeDescriptor>(small.a);
    far->onRead = [&] { return drain(high.fd); };
    near->onRead = [&] { return drain(small.a); };
    reactor().addReader(far);
    reactor().addReader(near);
    sendBytes(big.b, "x");
    sendBytes(small.b, "x");
    for (int i = 0; i < 3; ++i) reactor().iterate(0);
    EXPECT_EQ(near->reads, 1);
    EXPECT_EQ(near->lost, 0);
    EXPECT_TRUE(reactor().isReading(near.get()));
    if (GetParam() == Backend::select) {
        EXPECT_EQ(far->reads, 0);
        EXPECT_EQ(far->lost, 1);
        ASSERT_TRUE(far->lostReason);
        EXPECT_TRUE(far->lostReason->check<ConnectionLost>());
        EXPECT_EQ(codeOf(*far->lostReason), std::errc::invalid_argument);
        EXPECT_FALSE(reactor().isReading(far.get()));
    } else {
        EXPECT_EQ(far->reads, 1);
        EXPECT_EQ(far->lost, 0);
        reactor().removeReader(far);
    }
    reactor().removeReader(near);
}

TEST(SelectReactor, R_41_aWakerAboveFdSetsizeIsRefusedAtConstruction) {
    // Made while every descriptor below FD_SETSIZE was in use, the select reactor's own waker could never be
    // watched: it was dropped at the first wait and callFromThread() and signals no longer woke the
    // loop, without a word. The construction now fails and says why; epoll and poll have no such limit.
    weft::test::BelowFdSetsizeTaken taken;
    if (!taken.ok()) GTEST_SKIP() << taken.why();
    try {
        auto r = Reactor::create(Backend::select);
        ADD_FAILURE() << "a select reactor was made with its waker at or above FD_SETSIZE";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find("select() cannot watch"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(Reactor::create(Backend::poll));
    EXPECT_NO_THROW(Reactor::create(Backend::epoll));
}

TEST_P(FdSetTest, R_41_invalidDescriptorIsProbedAndDisconnectedAlone) {
    // an fd closed behind the reactor's back makes select() fail; the reactor probes each descriptor and
    // disconnects only the bad one with ConnectionLost(EBADF). poll reports POLLNVAL with the same outcome;
    // epoll drops a closed fd silently, so nothing reaches the descriptor.
    SocketPair sp1, sp2;
    auto bad = std::make_shared<FakeDescriptor>(sp1.a);
    auto good = std::make_shared<FakeDescriptor>(sp2.a);
    good->onRead = [&] { return drain(sp2.a); };
    reactor().addReader(bad);
    reactor().addReader(good);
    sp1.closeA();  // behind the reactor's back; nothing reuses the number during the test
    sendBytes(sp2.b, "x");
    for (int i = 0; i < 3; ++i) reactor().iterate(0);
    EXPECT_EQ(good->reads, 1);
    EXPECT_EQ(good->lost, 0);
    EXPECT_EQ(bad->reads, 0);
    if (GetParam() == Backend::epoll) {
        EXPECT_EQ(bad->lost, 0);
        EXPECT_NO_THROW(reactor().removeReader(bad));  // removal of a dead fd is still a silent no-op
    } else {
        EXPECT_EQ(bad->lost, 1);
        ASSERT_TRUE(bad->lostReason);
        EXPECT_EQ(codeOf(*bad->lostReason), std::errc::bad_file_descriptor);
        EXPECT_FALSE(reactor().isReading(bad.get()));
    }
    reactor().removeReader(good);
}

// ---- poll ------------------------------------------------------------------------------------------

TEST_P(FdSetTest, R_42_interestIsKeyedByTheFdNumberGivenWhenAdded) {
    // interest is keyed by the fd number fileno() returned when the descriptor was added: a later change of
    // fileno() does not move the watch, and the changed descriptor is disconnected (ConnectionFdescWentAway, R-36).
    SocketPair first, second;
    auto d = std::make_shared<FakeDescriptor>(first.a);
    reactor().addReader(d);
    d->setFileno(second.a);
    sendBytes(second.b, "x");  // the new number: not watched
    ASSERT_TRUE(waitReady(second.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 0);
    EXPECT_EQ(d->lost, 0);
    sendBytes(first.b, "x");  // the number it was added with
    ASSERT_TRUE(waitReady(first.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 0);
    EXPECT_EQ(d->lost, 1);
    EXPECT_TRUE(d->lostReason && d->lostReason->check<ConnectionFdescWentAway>());
}

TEST_P(FdSetTest, R_42_waitTimeoutIsRoundedUpNeverDown) {
    // poll converts the timeout to whole milliseconds, rounding up so a wait never ends before the timer is
    // due (0.4 ms waits >= 1 ms); select keeps microseconds and epoll milliseconds: never shorter than asked.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    reactor().addReader(d);  // something to wait on, never ready
    auto t0 = std::chrono::steady_clock::now();
    reactor().iterate(0.0004);
    auto elapsed = std::chrono::steady_clock::now() - t0;
    if (GetParam() == Backend::select) EXPECT_GE(elapsed, 400us);
    else EXPECT_GE(elapsed, 1ms);
    EXPECT_EQ(d->reads, 0);
    reactor().removeReader(d);
}

// ---- epoll -------------------------------------------------------------------------------------------

TEST_P(FdSetTest, R_43_regularFileIsPolledContinuously) {
    // epoll refuses regular files (EPERM); they are polled every iteration while registered. poll and select
    // report regular files always ready, so every backend calls doRead/doWrite each iteration and never blocks.
    char path[] = "/tmp/weft-fdset-XXXXXX";
    Fd file(::mkostemp(path, O_CLOEXEC));
    ASSERT_GE(file.fd, 0);
    ::unlink(path);
    auto d = std::make_shared<FakeDescriptor>(file.fd);
    ASSERT_NO_THROW(reactor().addReader(d));
    ASSERT_NO_THROW(reactor().addWriter(d));
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) reactor().iterate(10);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(d->reads, 3);
    EXPECT_EQ(d->writes, 3);
    reactor().removeReader(d);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 3);
    EXPECT_EQ(d->writes, 4);
    reactor().removeWriter(d);
    reactor().iterate(0);
    EXPECT_EQ(d->writes, 4);
    EXPECT_EQ(d->lost, 0);
}

TEST_P(FdSetTest, R_43_levelTriggeredRedeliversUntilDrained) {
    // readiness is level-triggered: data left unread is reported again at the next wait.
    SocketPair sp;
    auto d = std::make_shared<FakeDescriptor>(sp.a);
    d->onRead = [&]() -> Reason {
        char c;
        [[maybe_unused]] auto n = ::read(sp.a, &c, 1);  // one byte at a time
        return std::nullopt;
    };
    reactor().addReader(d);
    sendBytes(sp.b, "ab");
    ASSERT_TRUE(waitReady(sp.a, POLLIN) & POLLIN);
    for (int i = 0; i < 3; ++i) reactor().iterate(0);
    EXPECT_EQ(d->reads, 2);
    reactor().removeReader(d);
}

TEST_P(FdSetTest, R_43_closedFdVanishesSilentlyOnEpoll) {
    // on epoll an fd closed behind the reactor's back leaves the set silently (nothing is reported and the
    // later removeReader is a quiet no-op); poll and select notice it and disconnect the descriptor.
    Pipe p;
    auto d = std::make_shared<FakeDescriptor>(p.readFd);
    reactor().addReader(d);
    reactor().addWriter(d);  // keeps an interest after removeReader: exercises the modify path too
    p.closeRead();
    reactor().iterate(0);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 0);
    if (GetParam() == Backend::epoll) {
        EXPECT_EQ(d->lost, 0);
        EXPECT_NO_THROW(reactor().removeReader(d));
        EXPECT_NO_THROW(reactor().removeWriter(d));
        EXPECT_FALSE(reactor().isReading(d.get()));
        EXPECT_FALSE(reactor().isWriting(d.get()));
    } else {
        EXPECT_EQ(d->lost, 1);
        EXPECT_EQ(d->writes, 0);
        ASSERT_TRUE(d->lostReason);
        EXPECT_EQ(codeOf(*d->lostReason), std::errc::bad_file_descriptor);
    }
}

// ---- select and poll notice a replaced fd ---------------------------------------------------------------

TEST_P(FdSetTest, R_44_replacedFdIsNotDeliveredToTheOldDescriptor) {
    // after its fd is closed and the number reused, a descriptor whose fileno() now fails is disconnected
    // instead of receiving the new fd's events (select, poll); on epoll the old registration vanished.
    SocketPair old, fresh;
    const int number = old.a;
    auto victim = std::make_shared<FakeDescriptor>(number);
    reactor().addReader(victim);
    reactor().iterate(0);
    old.closeA();
    Fd reused(::dup2(fresh.a, number));  // the same number, another socket
    ASSERT_EQ(reused.fd, number);
    victim->setFileno(-1);  // the victim's own socket object knows it was closed (Twisted: fileno() raises)
    sendBytes(fresh.b, "x");
    ASSERT_TRUE(waitReady(number, POLLIN) & POLLIN);
    reactor().iterate(0);
    reactor().iterate(0);
    EXPECT_EQ(victim->reads, 0);
    if (GetParam() == Backend::epoll) {
        EXPECT_EQ(victim->lost, 0);
        EXPECT_NO_THROW(reactor().removeReader(victim));
    } else {
        EXPECT_EQ(victim->lost, 1);
        EXPECT_TRUE(victim->lostReason && victim->lostReason->check<ConnectionFdescWentAway>());
        EXPECT_FALSE(reactor().isReading(victim.get()));
    }
}

TEST_P(FdSetTest, R_44_aDescriptorWhoseFdChangedWhileRegisteredIsWatchedOnTheNewOne) {
    // A descriptor that closed its fd, took a new one (another number) and called addReader/addWriter again
    // without removing itself first: epoll kept the old registration and never watched the new fd (silent,
    // isReading() true), poll and select disconnected it as gone. Now the registration moves to the new fd,
    // with the interest it had, on every backend (Twisted's epoll and select deliver too).
    SocketPair old, fresh;
    auto d = std::make_shared<FakeDescriptor>(old.a);
    reactor().addReader(d);
    reactor().addWriter(d);
    d->onWrite = [&]() -> Reason {
        reactor().removeWriter(d.get());
        return {};
    };
    reactor().iterate(0);
    ASSERT_EQ(d->writes, 1);
    reactor().addWriter(d);  // watched for both when its fd changes
    old.closeA();
    d->setFileno(fresh.a);
    reactor().addReader(d);
    sendBytes(fresh.b, "x");
    ASSERT_TRUE(waitReady(fresh.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_GE(d->reads, 1);
    EXPECT_EQ(d->writes, 2);  // the write interest moved with it
    EXPECT_EQ(d->lost, 0);
    EXPECT_TRUE(reactor().isReading(d.get()));
    reactor().removeReader(d.get());
    reactor().removeWriter(d.get());
}

TEST_P(FdSetTest, R_40_aDescriptorThatClosedItsFdAfterRemoveReaderIsPolledOnTheNewOneUnderTheSameNumber) {
    // A descriptor that stops reading, closes its fd and registers a new one that took the same number, all
    // between two waits (a port stopped and started again from a callback), is polled on the new one: the
    // kernel dropped the old file from the epoll set with the close, so the re-registration is not "the same
    // interest asked again" and must reach the poller.
    SocketPair old, fresh;
    const int number = old.a;
    auto d = std::make_shared<FakeDescriptor>(number);
    reactor().addReader(d);
    reactor().iterate(0);  // in the poller now
    reactor().removeReader(d.get());
    old.closeA();
    Fd reused(::dup2(fresh.a, number));
    ASSERT_EQ(reused.fd, number);
    reactor().addReader(d);
    sendBytes(fresh.b, "x");
    ASSERT_TRUE(waitReady(number, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_GE(d->reads, 1);
    reactor().removeReader(d.get());
}

// ---- where the reactor keeps registrations ------------------------------------------------------------------------

TEST_P(FdSetTest, REG_descriptorsInEveryPageOfTheTableReachOnlyThemselves) {
    // Registrations live in place, indexed by fd, in pages of 256: descriptors at fds in several pages (below
    // select's FD_SETSIZE) are each dispatched to themselves, and leave without disturbing the others.
    const int numbers[] = {300, 511, 512, 700};
    std::vector<std::unique_ptr<SocketPair>> pairs;
    std::vector<std::unique_ptr<Fd>> fds;
    std::vector<std::shared_ptr<FakeDescriptor>> ds;
    for (int n : numbers) {
        pairs.push_back(std::make_unique<SocketPair>());
        fds.push_back(std::make_unique<Fd>(::dup2(pairs.back()->a, n)));
        ASSERT_EQ(fds.back()->fd, n) << std::strerror(errno);
        ds.push_back(std::make_shared<FakeDescriptor>(n));
        reactor().addReader(ds.back());
    }
    sendBytes(pairs[1]->b, "x");  // only fd 511 becomes readable
    ASSERT_TRUE(waitReady(511, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(ds[0]->reads, 0);
    EXPECT_GE(ds[1]->reads, 1);
    EXPECT_EQ(ds[2]->reads, 0);
    EXPECT_EQ(ds[3]->reads, 0);
    reactor().removeReader(ds[1].get());
    EXPECT_FALSE(reactor().isReading(ds[1].get()));
    for (std::size_t i : {0u, 2u, 3u}) EXPECT_TRUE(reactor().isReading(ds[i].get())) << numbers[i];
    EXPECT_EQ(reactor().getReaders().size(), 3u);
    sendBytes(pairs[3]->b, "y");
    ASSERT_TRUE(waitReady(700, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_GE(ds[3]->reads, 1);
    EXPECT_EQ(ds[0]->reads + ds[2]->reads, 0);
    for (auto& d : ds) reactor().removeReader(d.get());
    EXPECT_TRUE(reactor().getReaders().empty());
}

TEST_P(FdSetTest, REG_aDescriptorIsFoundByItselfAfterItsFilenoChanged) {
    // removeReader and isReading find a registration by the descriptor, not by what fileno() says now: a
    // descriptor that forgot its fd (-1) or took another is still removed, and nothing stays behind.
    SocketPair one, other;
    auto d = std::make_shared<FakeDescriptor>(one.a);
    reactor().addReader(d);
    d->setFileno(-1);
    EXPECT_TRUE(reactor().isReading(d.get()));
    reactor().removeReader(d.get());
    EXPECT_FALSE(reactor().isReading(d.get()));
    EXPECT_TRUE(reactor().getReaders().empty());
    d->setFileno(one.a);
    reactor().addReader(d);
    d->setFileno(other.a);
    reactor().removeReader(d.get());
    EXPECT_TRUE(reactor().getReaders().empty());
    sendBytes(one.b, "x");  // the old fd is not watched any more
    ASSERT_TRUE(waitReady(one.a, POLLIN) & POLLIN);
    reactor().iterate(0);
    EXPECT_EQ(d->reads, 0);
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Backends, FdSetTest, weft::test::allBackends(), weft::test::backendParamName);
