// Faults the syscall seam reaches since every system call goes through it
// (issue #10 item 5): listen, shutdown, bind and symlink, kill, open, eventfd,
// epoll_create1, epoll_ctl, select and fcntl, each failed on purpose. Before,
// these ran straight to the kernel and could fail only by luck (or not at all
// for root: EACCES, EPERM). Each test is named after the contract it checks.
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <weft/internet/error.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/unix.hpp>

#include "support/faults.hpp"
#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"

using namespace weft;
using namespace weft::test;
namespace err = weft::error;
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

template <class P>
bool spinUntil(Reactor& r, P pred, double seconds = 5) {
    double end = r.seconds() + seconds;
    while (!pred()) {
        if (r.seconds() > end) return false;
        r.iterate(0.01);
    }
    return true;
}

void stop(Reactor& r, IListeningPort& port) {
    bool done = false;
    port.stopListening().addBoth([&](Result<void>) { done = true; });
    EXPECT_TRUE(spinUntil(r, [&] { return done; }));
}

/// A pid that is certainly not running: a child that has exited and been reaped.
pid_t deadPid() {
    pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    int status = 0;
    ::waitpid(p, &status, 0);
    return p;
}

/// A socket file at `where` with nobody listening (a dead listener's leftover).
void leaveDeadSocket(const std::string& where) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, where.data(), where.size());
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(s);
}

/// A raw listener on `where` that takes no lock (socat's kind); -1 on failure.
int rawListener(const std::string& where) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, where.data(), where.size());
    if (::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(s, 8) != 0) {
        ::close(s);
        return -1;
    }
    return s;
}

bool lockExists(const std::string& socketPath) { return fs::exists(fs::symlink_status(socketPath + ".lock")); }

bool recordedPath(const ScopedFaults& faults, Call c, const std::string& path) {
    for (auto& r : faults.history(c))
        if (r.path == path) return true;
    return false;
}

/// A scratch directory for socket and lock files.
struct TempDir {
    TempDir() {
        char tmpl[] = "/tmp/weft-seam-XXXXXX";
        if (::mkdtemp(tmpl)) dir = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string path(const std::string& name = "s") const { return dir + "/" + name; }
    std::string dir;
};

// ---- every backend -----------------------------------------------------------------------------

class SeamTest : public ReactorTest {
protected:
    TempDir tmp;
    std::string path(const std::string& name = "s") const { return tmp.path(name); }
};
INSTANTIATE_TEST_SUITE_P(Backends, SeamTest, allBackends(), backendParamName);

TEST_P(SeamTest, TCP_1_listenFailureLeavesNoDescriptorAndTheFactoryUnstarted) {
    // TCP-1: listen() refused (EADDRINUSE: another socket took the port between bind and listen) throws
    // CannotListenError(interface, port, error); the socket it made is closed, nothing is registered and
    // the factory is not started.
    auto before = openFds();
    auto f = std::make_shared<RecordingFactory>();
    ScopedFaults faults;
    faults.fail(Call::listen, EADDRINUSE);
    try {
        reactor().listenTCP(0, f, 50, "127.0.0.1");
        ADD_FAILURE() << "listened although listen() failed";
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EADDRINUSE);
        EXPECT_EQ(e.interface, "127.0.0.1");
    }
    auto made = faults.history(Call::socket);
    ASSERT_EQ(made.size(), 1u);
    bool closed = false;
    for (auto& c : faults.history(Call::close)) closed |= c.fd == made[0].result && c.result == 0;
    EXPECT_TRUE(closed) << "the socket was not closed";
    EXPECT_EQ(openFds(), before);
    EXPECT_EQ(f->started, 0);
    EXPECT_TRUE(reactor().getReaders().empty());
}

TEST_P(SeamTest, TCP_22_shutdownFailureAtTheCloseIsIgnoredAndTheSocketClosed) {
    // TCP-22: the orderly close is shutdown(SHUT_RDWR) then close; a failing shutdown (ENOTCONN: the peer
    // is gone) changes nothing: the socket is still closed, the protocol hears ConnectionDone once and the
    // peer sees the end of the stream.
    auto sf = std::make_shared<RecordingFactory>();
    auto cf = std::make_shared<RecordingClientFactory>();
    auto port = reactor().listenTCP(0, sf, 50, "127.0.0.1");
    auto connector = reactor().connectTCP("127.0.0.1", portNumber(*port), cf);
    ASSERT_TRUE(spinUntil(reactor(), [&] {
        return sf->built.size() == 1 && cf->built.size() == 1 && sf->built[0]->made == 1 && cf->built[0]->made == 1;
    }));
    RecordingProtocol& server = *sf->built[0];
    RecordingProtocol& client = *cf->built[0];
    const int fd = server.tcp()->fileno();
    {
        ScopedFaults faults;
        faults.onlyFd(fd).fail(Call::shutdown, ENOTCONN);
        server.transport->loseConnection();
        ASSERT_TRUE(spinUntil(reactor(), [&] { return server.lost == 1 && client.lost == 1; }));
        EXPECT_EQ(faults.injected(Call::shutdown), 1u);
        auto closes = faults.history(Call::close);
        ASSERT_EQ(closes.size(), 1u) << "the socket was not closed after the failed shutdown";
        EXPECT_EQ(closes[0].result, 0);
    }
    ASSERT_TRUE(server.lostReason);
    EXPECT_TRUE(server.lostReason->check<ConnectionDone>()) << server.lostReason->typeName();
    EXPECT_EQ(server.lost, 1);
    EXPECT_EQ(client.lost, 1);
    stop(reactor(), *port);
    cf->connectors.clear();
}

TEST_P(SeamTest, UNIX_3_bindRefusedLeavesNoLockNoFileAndTheFactoryUnstarted) {
    // UNIX-2/UNIX-3 (Better than Twisted): bind() refused with EACCES — which root never sees from the
    // kernel — throws CannotListenError naming the cause; the lock taken before the bind is dropped, no
    // file is left, the socket is closed and the factory is not started.
    auto before = openFds();
    auto f = std::make_shared<RecordingFactory>();
    ScopedFaults faults;
    faults.fail(Call::bind, EACCES);
    try {
        reactor().listenUNIX(path(), f, 50, 0666, true);
        ADD_FAILURE() << "listened although bind() failed";
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EACCES);
        EXPECT_THAT(e.what(), HasSubstr("no permission to create a file in '" + tmp.dir + "'"));
        EXPECT_THAT(e.what(), Not(HasSubstr("Cannot acquire lock")));
    }
    EXPECT_EQ(faults.calls(Call::symlink), 1u) << "the lock is taken before binding (UNIX-4)";
    EXPECT_TRUE(recordedPath(faults, Call::unlink, path() + ".lock")) << "the lock was not dropped";
    EXPECT_FALSE(lockExists(path()));
    EXPECT_TRUE(fs::is_empty(tmp.dir));
    EXPECT_EQ(openFds(), before);
    EXPECT_EQ(f->started, 0);
    EXPECT_TRUE(reactor().getReaders().empty());
}

TEST_P(SeamTest, UNIX_4_lockFileThatCannotBeMadeIsNamedAndNothingIsBound) {
    // UNIX-4 with UNIX-2: the lock's symlink() refused with EACCES is "Cannot create the lock file" naming
    // the directory, never "Cannot acquire lock"; no socket is made and nothing is left behind.
    auto f = std::make_shared<RecordingFactory>();
    ScopedFaults faults;
    faults.fail(Call::symlink, EACCES);
    try {
        reactor().listenUNIX(path(), f, 50, 0666, true);
        ADD_FAILURE() << "listened without its lock";
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EACCES);
        EXPECT_THAT(e.what(), HasSubstr("Cannot create the lock file"));
        EXPECT_THAT(e.what(), HasSubstr("no permission to create a file in '" + tmp.dir + "'"));
        EXPECT_THAT(e.what(), Not(HasSubstr("Cannot acquire lock")));
    }
    EXPECT_TRUE(recordedPath(faults, Call::symlink, path() + ".lock"));
    EXPECT_EQ(faults.calls(Call::socket), 0u) << "a socket was made without the lock";
    EXPECT_TRUE(fs::is_empty(tmp.dir));
    EXPECT_EQ(f->started, 0);
}

TEST_P(SeamTest, UNIX_4_lockOfAnotherUsersLiveProcessIsHeld) {
    // UNIX-4: the holder is probed with kill(pid, 0); EPERM means the process exists but belongs to another
    // user, so the lock is held: "Cannot acquire lock", and the lock is left as it was. Once the probe says
    // ESRCH (the real answer for this pid), the lock is taken over.
    const std::string owner = std::to_string(deadPid());
    ASSERT_EQ(::symlink(owner.c_str(), (path() + ".lock").c_str()), 0);
    auto f = std::make_shared<RecordingFactory>();
    {
        ScopedFaults faults;
        faults.fail(Call::kill, EPERM);
        try {
            reactor().listenUNIX(path(), f, 50, 0666, true);
            ADD_FAILURE() << "took the lock of a live process";
        } catch (const err::CannotListenError& e) {
            EXPECT_THAT(e.what(), HasSubstr("Cannot acquire lock"));
        }
        EXPECT_EQ(faults.calls(Call::kill), 1u);
        EXPECT_EQ(faults.calls(Call::socket), 0u);
    }
    EXPECT_EQ(fs::read_symlink(path() + ".lock").string(), owner);
    EXPECT_FALSE(fs::exists(path()));
    EXPECT_EQ(f->started, 0);
    auto port = reactor().listenUNIX(path(), f, 50, 0666, true);
    EXPECT_EQ(fs::read_symlink(path() + ".lock").string(), std::to_string(::getpid()));
    stop(reactor(), *port);
    EXPECT_FALSE(lockExists(path()));
}

TEST_P(SeamTest, UNIX_2_liveListenerFoundInTheSocketTableIsNeverProbed) {
    // UNIX-2 (Better than Twisted): a live listener bound under the same absolute path is found in
    // /proc/net/unix, so it never sees a probing connect(): CannotListenError(EADDRINUSE) and no connect.
    int live = rawListener(path());
    ASSERT_GE(live, 0);
    ScopedFaults faults;
    try {
        reactor().listenUNIX(path(), std::make_shared<RecordingFactory>());
        ADD_FAILURE() << "listened on a live listener's path";
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EADDRINUSE);
    }
    EXPECT_TRUE(recordedPath(faults, Call::open, "/proc/net/unix"));
    EXPECT_EQ(faults.calls(Call::connect), 0u) << "the live listener was probed";
    EXPECT_TRUE(fs::is_socket(path()));
    ::close(live);
}

TEST_P(SeamTest, UNIX_2_withoutTheSocketTableAProbeStillDecides) {
    // UNIX-2: when /proc/net/unix cannot be read (open refused), a refused probe still proves a leftover
    // socket dead, so it is replaced, and an accepted probe still proves a listener live, so it is kept.
    leaveDeadSocket(path("dead"));
    int live = rawListener(path("live"));
    ASSERT_GE(live, 0);
    ScopedFaults faults;
    faults.fail(Call::open, EACCES);
    auto port = reactor().listenUNIX(path("dead"), std::make_shared<RecordingFactory>());
    ASSERT_EQ(faults.injected(Call::open), 1u);
    EXPECT_EQ(faults.history(Call::open)[0].path, "/proc/net/unix");
    EXPECT_EQ(faults.history(Call::connect).size(), 1u) << "one probe, refused";
    EXPECT_TRUE(port->listening());

    faults.resetHistory();
    faults.fail(Call::open, EACCES);
    try {
        reactor().listenUNIX(path("live"), std::make_shared<RecordingFactory>());
        ADD_FAILURE() << "stole a live listener's path";
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EADDRINUSE);
    }
    auto probes = faults.history(Call::connect);
    ASSERT_EQ(probes.size(), 1u);
    EXPECT_EQ(probes[0].result, 0) << "the probe reached the live listener";
    EXPECT_TRUE(fs::is_socket(path("live")));
    ::close(live);  // with the probe, already closed, in its backlog
    stop(reactor(), *port);
}

TEST_P(SeamTest, R_47_wakerThatCannotBeMadeIsAClearErrorAndLeaksNothing) {
    // the waker is an eventfd made with the reactor; when the process has no descriptor left for it
    // (EMFILE), Reactor::create throws std::system_error naming the waker, and whatever it made before
    // (the poller's descriptor) is closed.
    auto before = openFds();
    ScopedFaults faults;
    faults.fail(Call::eventfd, EMFILE);
    try {
        auto r = Reactor::create(GetParam());
        ADD_FAILURE() << "a reactor without a waker";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EMFILE);
        EXPECT_THAT(e.what(), HasSubstr("eventfd (the reactor's waker)"));
    }
    EXPECT_EQ(faults.calls(Call::eventfd), 1u);
    EXPECT_EQ(openFds(), before);
}

// ---- one backend -------------------------------------------------------------------------------

class OneBackendSeamTest : public LeakCheckedTest {
protected:
    TempDir tmp;
};

TEST_F(OneBackendSeamTest, R_43_epollSetThatCannotBeMadeIsAClearErrorAndLeaksNothing) {
    // the epoll reactor's set is made first; epoll_create1 refused (EMFILE) makes Reactor::create
    // throw std::system_error naming it, before the waker is made.
    auto before = openFds();
    ScopedFaults faults;
    faults.fail(Call::epoll_create1, EMFILE);
    try {
        auto r = Reactor::create(Backend::epoll);
        ADD_FAILURE() << "an epoll reactor without an epoll set";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EMFILE);
        EXPECT_THAT(e.what(), HasSubstr("epoll_create1"));
    }
    EXPECT_EQ(faults.calls(Call::eventfd), 0u);
    EXPECT_EQ(openFds(), before);
}

TEST_F(OneBackendSeamTest, TCP_1_registrationRefusedLeavesNothingAndTheFactoryUnstarted) {
    // TCP-1 and UNIX-3: epoll may refuse to watch the new listening socket (epoll_ctl: ENOMEM); listenTCP and
    // listenUNIX then throw, the socket is closed, nothing is registered, the factory is not started (it
    // used to be started first and never stopped), and a UNIX port leaves neither its file nor its lock.
    auto reactor = Reactor::create(Backend::epoll);
    auto before = openFds();
    auto f = std::make_shared<RecordingFactory>();
    {
        ScopedFaults faults;
        faults.fail(Call::epoll_ctl, ENOMEM).fail(Call::epoll_ctl, ENOMEM);
        try {
            reactor->listenTCP(0, f, 50, "127.0.0.1");
            ADD_FAILURE() << "listenTCP: listening unwatched";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), ENOMEM);
        }
        try {
            reactor->listenUNIX(tmp.path(), f, 50, 0666, true);
            ADD_FAILURE() << "listenUNIX: listening unwatched";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), ENOMEM);
        }
        EXPECT_EQ(faults.injected(Call::epoll_ctl), 2u);
    }
    EXPECT_EQ(f->started, 0);
    EXPECT_EQ(f->stopped, 0);
    EXPECT_TRUE(reactor->getReaders().empty());
    EXPECT_EQ(openFds(), before);
    EXPECT_TRUE(fs::is_empty(tmp.dir)) << "the UNIX port left its file or its lock";
    // Nothing is left half-done: the same factory listens normally afterwards.
    auto port = reactor->listenTCP(0, f, 50, "127.0.0.1");
    EXPECT_EQ(f->started, 1);
    stop(*reactor, *port);
    EXPECT_EQ(f->stopped, 1);
}

TEST_F(OneBackendSeamTest, R_41_selectFailureIsProbedPerDescriptorAndOnlyTheBadOneIsDropped) {
    // select() failing with EBADF makes the reactor probe each descriptor alone (fcntl F_GETFD) and
    // disconnect exactly those the probe rejects, with ConnectionLost(EBADF); the others keep being served.
    auto reactor = Reactor::create(Backend::select);
    SocketPair sp1, sp2;
    auto bad = std::make_shared<FakeDescriptor>(sp1.a);
    auto good = std::make_shared<FakeDescriptor>(sp2.a);
    good->onRead = [&]() -> Reason {
        char buf[16];
        [[maybe_unused]] auto n = ::read(sp2.a, buf, sizeof buf);
        return std::nullopt;
    };
    reactor->addReader(bad);
    reactor->addReader(good);
    ASSERT_EQ(::write(sp2.b, "x", 1), 1);
    {
        ScopedFaults faults;
        faults.onlyFd(-1).onlyFd(sp1.a);  // select (filed under -1) and the bad descriptor's probes
        faults.fail(Call::select, EBADF).fail(Call::fcntl, EBADF, 2);  // the probe, then the dispatch's check
        reactor->iterate(0);
        EXPECT_EQ(faults.injected(Call::select), 1u);
        EXPECT_EQ(faults.injected(Call::fcntl), 2u);
    }
    EXPECT_EQ(bad->lost, 1);
    ASSERT_TRUE(bad->lostReason);
    auto* lost = bad->lostReason->get<ConnectionLost>();
    ASSERT_NE(lost, nullptr) << bad->lostReason->typeName();
    EXPECT_EQ(lost->code().value(), EBADF);
    EXPECT_FALSE(reactor->isReading(bad.get()));
    EXPECT_EQ(good->lost, 0);
    ASSERT_TRUE(spinUntil(*reactor, [&] { return good->reads == 1; }));
    EXPECT_TRUE(reactor->isReading(good.get()));
    reactor->removeReader(good);
}

}  // namespace
