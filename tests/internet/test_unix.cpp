// unix.md: UNIX stream sockets (UNIX-1..UNIX-22, UNIX-30), the TCP behaviour
// they share, descriptor passing, loopbackUNIX (TEST-27). UNIX datagram
// sockets (UNIX-23..UNIX-29) are in test_unix_datagram.cpp.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <weft/internet/error.hpp>
#include <weft/internet/loopback.hpp>
#include <weft/internet/unix.hpp>
#include <weft/log.hpp>

#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"

using namespace weft;
using namespace weft::test;
namespace err = weft::error;
namespace fs = std::filesystem;

namespace {

class UNIXTest : public ReactorTest {
protected:
    void SetUp() override {
        ReactorTest::SetUp();
        char tmpl[] = "/tmp/weft-unix-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir, ec);
        ReactorTest::TearDown();
    }
    std::string path(const std::string& name = "s") const { return dir + "/" + name; }
    static std::string abstractName() {
        static std::atomic<int> n{0};
        return std::string(1, '\0') + "weft-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
    }
    void stop(IListeningPort& port) {
        bool done = false;
        port.stopListening().addBoth([&](Result<void>) { done = true; });
        EXPECT_TRUE(spinUntil([&] { return done; }));
    }
    /// A listening port and a connected client, both ends recorded.
    struct Pair {
        std::shared_ptr<RecordingFactory> sf = std::make_shared<RecordingFactory>();
        std::shared_ptr<RecordingClientFactory> cf = std::make_shared<RecordingClientFactory>();
        std::shared_ptr<unix_::Port> port;
        std::shared_ptr<unix_::Connector> connector;
        RecordingProtocol& server() { return *sf->built.at(0); }
        RecordingProtocol& client() { return *cf->built.at(0); }
    };
    void connectPair(Pair& p, const std::string& where) {
        p.port = reactor().listenUNIX(where, p.sf);
        p.connector = reactor().connectUNIX(where, p.cf);
        ASSERT_TRUE(spinUntil([&] {
            return p.sf->built.size() == 1 && p.cf->built.size() == 1 && p.server().made == 1 && p.client().made == 1;
        }));
    }
    void closePair(Pair& p) {
        if (!p.cf->built.empty() && p.client().lost == 0) p.client().transport->loseConnection();
        EXPECT_TRUE(spinUntil([&] {
            return (p.cf->built.empty() || p.client().lost == 1) && (p.sf->built.empty() || p.server().lost == 1);
        }));
        if (p.port) stop(*p.port);
    }
    std::string dir;
};
INSTANTIATE_TEST_SUITE_P(Backends, UNIXTest, allBackends(), backendParamName);

/// A blocking AF_UNIX stream client connected to `where` (-1 if refused).
int rawConnect(const std::string& where, int* error = nullptr) {
    int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, where.data(), where.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + where.size() + (where[0] ? 1 : 0));
    if (::connect(c, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
        if (error) *error = errno;
        ::close(c);
        return -1;
    }
    return c;
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

/// A pid that is certainly not running: a child that has exited and been reaped.
pid_t deadPid() {
    pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    int status = 0;
    ::waitpid(p, &status, 0);
    return p;
}

std::string fileContents(const std::string& where) {
    std::ifstream in(where);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

/// A recording protocol that also receives descriptors; `events` shows the order.
class FdProtocol : public RecordingProtocol, public IFileDescriptorReceiver {
public:
    void fileDescriptorReceived(int fd) override {
        fds.push_back(fd);
        events.push_back("fd");
    }
    void dataReceived(Bytes data) override {
        events.push_back("data:" + std::string(reinterpret_cast<const char*>(data.data()), data.size()));
        RecordingProtocol::dataReceived(data);
    }
    ~FdProtocol() override {
        for (int fd : fds) ::close(fd);
    }
    std::vector<int> fds;
    std::vector<std::string> events;
};

unix_::Connection& unixTransport(RecordingProtocol& p) { return dynamic_cast<unix_::Connection&>(*p.transport); }

// ======================================================================================
// Listening
// ======================================================================================

TEST_P(UNIXTest, UNIX_1_listenBindsWithExactModeAndAcceptsBeforeReturning) {
    // UNIX-1: the socket file gets exactly `mode`, whatever the umask, and the port listens before listenUNIX returns.
    mode_t old = ::umask(077);
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), f, 50, 0640);
    ::umask(old);
    struct stat st {};
    ASSERT_EQ(::stat(path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0640u);
    int c = rawConnect(path());
    EXPECT_GE(c, 0);  // the kernel queues it: listen() ran already
    EXPECT_TRUE(reactor().isReading(port.get()));
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 1; }));
    ::close(c);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1; }));
    stop(*port);
}

TEST_P(UNIXTest, UNIX_1_defaultModeIs0666) {
    // UNIX-1: mode defaults to 0666, not filtered by the umask.
    mode_t old = ::umask(022);
    auto port = reactor().listenUNIX(path(), std::make_shared<RecordingFactory>());
    ::umask(old);
    struct stat st {};
    ASSERT_EQ(::stat(path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0666u);
    stop(*port);
}

TEST_P(UNIXTest, UNIX_2_existingRegularFileIsRefusedAndLeftUntouched) {
    // UNIX-2: a path holding a file that is not a socket: CannotListenError; the file keeps its contents.
    { std::ofstream(path()) << "precious"; }
    auto f = std::make_shared<RecordingFactory>();
    EXPECT_THROW(reactor().listenUNIX(path(), f), err::CannotListenError);
    EXPECT_EQ(fileContents(path()), "precious");
    EXPECT_EQ(f->started, 0);
    EXPECT_TRUE(reactor().getReaders().empty());
}

TEST_P(UNIXTest, UNIX_2_liveListenerIsNeverStolen) {
    // UNIX-2: a path a live listener owns: CannotListenError(EADDRINUSE); the first port still accepts, and saw no probe connection.
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), f);
    try {
        reactor().listenUNIX(path(), std::make_shared<RecordingFactory>());
        ADD_FAILURE() << "listened twice on one path";
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EADDRINUSE);
        EXPECT_EQ(e.port, path());
    }
    int c = rawConnect(path());
    ASSERT_GE(c, 0);
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 1; }));
    ::close(c);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1; }));
    stop(*port);
}

TEST_P(UNIXTest, UNIX_2_deadListenersSocketFileIsReplaced) {
    // UNIX-2, Better than Twisted: a socket file nobody listens on is replaced.
    leaveDeadSocket(path());
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), f);
    int c = rawConnect(path());
    ASSERT_GE(c, 0);
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 1; }));
    ::close(c);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1; }));
    stop(*port);
}

TEST_P(UNIXTest, UNIX_2_pathTooLongIsAClearCannotListenError) {
    // UNIX-2: a path longer than sockaddr_un holds: CannotListenError saying so; nothing is created.
    std::string longPath = dir + "/" + std::string(200, 'x');
    try {
        reactor().listenUNIX(longPath, std::make_shared<RecordingFactory>());
        ADD_FAILURE() << "listened on a path too long";
    } catch (const err::CannotListenError& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("AF_UNIX path too long"));
        EXPECT_EQ(e.socketError().value(), ENAMETOOLONG);
    }
    EXPECT_TRUE(fs::is_empty(dir));
}

TEST_P(UNIXTest, UNIX_2_aPathHoldingANulByteIsRefusedSayingSo) {
    // UNIX-2: a filesystem path with a NUL byte inside cannot be bound: CannotListenError(EINVAL) saying so, not
    // "too long" (with and without the lock file); nothing is created.
    const std::string withNul = dir + std::string("/a\0b", 4);
    for (bool lock : {false, true}) {
        try {
            reactor().listenUNIX(withNul, std::make_shared<RecordingFactory>(), 50, 0666, lock);
            ADD_FAILURE() << "listened on a path with a NUL byte";
        } catch (const err::CannotListenError& e) {
            EXPECT_THAT(e.what(), ::testing::HasSubstr("contains a NUL byte")) << e.what();
            EXPECT_THAT(e.what(), ::testing::Not(::testing::HasSubstr("too long"))) << e.what();
            EXPECT_EQ(e.socketError().value(), EINVAL);
        }
    }
    EXPECT_TRUE(fs::is_empty(dir));
}

TEST_P(UNIXTest, UNIX_2_missingDirectoryIsCannotListenError) {
    // UNIX-2: a missing directory: CannotListenError(ENOENT).
    try {
        reactor().listenUNIX(dir + "/no/such/dir/s", std::make_shared<RecordingFactory>());
        ADD_FAILURE();
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), ENOENT);
    }
}

TEST_P(UNIXTest, UNIX_3_factoryStartsOnlyOnceListening) {
    // UNIX-3, Better than Twisted: a failed bind leaves the factory unstarted and no lock file; success starts it once.
    { std::ofstream(path()) << "x"; }
    auto f = std::make_shared<RecordingFactory>();
    EXPECT_THROW(reactor().listenUNIX(path(), f, 50, 0666, true), err::CannotListenError);
    EXPECT_EQ(f->started, 0);
    EXPECT_FALSE(fs::exists(fs::symlink_status(path() + ".lock")));
    auto port = reactor().listenUNIX(path("t"), f);
    EXPECT_EQ(f->started, 1);
    stop(*port);
    EXPECT_EQ(f->stopped, 1);
}

TEST_P(UNIXTest, UNIX_4_wantPIDTakesTheLockAndReleasesItOnClose) {
    // UNIX-4: the lock "<path>.lock" names our pid; a second wantPID listener cannot take it; after the close it can.
    auto port = reactor().listenUNIX(path(), std::make_shared<RecordingFactory>(), 50, 0666, true);
    EXPECT_EQ(fs::read_symlink(path() + ".lock").string(), std::to_string(::getpid()));
    EXPECT_TRUE(unix_::isLocked(path() + ".lock"));
    try {
        reactor().listenUNIX(path(), std::make_shared<RecordingFactory>(), 50, 0666, true);
        ADD_FAILURE() << "took a held lock";
    } catch (const err::CannotListenError& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("Cannot acquire lock"));
    }
    EXPECT_TRUE(fs::exists(fs::symlink_status(path() + ".lock")));  // the failed attempt did not drop ours
    stop(*port);
    EXPECT_FALSE(fs::exists(fs::symlink_status(path() + ".lock")));
    auto again = reactor().listenUNIX(path(), std::make_shared<RecordingFactory>(), 50, 0666, true);
    EXPECT_TRUE(again->listening());
    stop(*again);
}

TEST_P(UNIXTest, UNIX_4_deadHoldersLockAndSocketAreTakenOver) {
    // UNIX-4: a lock naming a dead process is taken over and its leftover socket file replaced.
    leaveDeadSocket(path());
    ASSERT_EQ(::symlink(std::to_string(deadPid()).c_str(), (path() + ".lock").c_str()), 0);
    EXPECT_FALSE(unix_::isLocked(path() + ".lock"));
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), f, 50, 0666, true);
    EXPECT_EQ(fs::read_symlink(path() + ".lock").string(), std::to_string(::getpid()));
    int c = rawConnect(path());
    ASSERT_GE(c, 0);
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 1; }));
    ::close(c);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1; }));
    stop(*port);
}

TEST_P(UNIXTest, UNIX_5_stopListeningRemovesTheFileOnceClosed) {
    // UNIX-5: the file is still there when stopListening returns and gone once its Deferred fired; not listening → already fired.
    auto port = reactor().listenUNIX(path(), std::make_shared<RecordingFactory>());
    bool fired = false;
    port->stopListening().addBoth([&](Result<void>) { fired = true; });
    EXPECT_TRUE(fs::exists(path()));
    EXPECT_FALSE(fired);
    EXPECT_FALSE(reactor().isReading(port.get()));
    ASSERT_TRUE(spinUntil([&] { return fired; }));
    EXPECT_FALSE(fs::exists(path()));
    bool again = false;
    port->stopListening().addCallback([&] { again = true; });
    EXPECT_TRUE(again);
}

TEST_P(UNIXTest, UNIX_5_aPausedPortRemovesItsFileWhenItsReactorIsDestroyed) {
    // UNIX-5 with R-7: a paused port (in no set, so the shutdown's disconnectAll cannot tell it) is closed by
    // the reactor's destruction: its file removed, its factory stopped; held past the reactor, it is inert.
    auto r = makeReactor();
    auto f = std::make_shared<RecordingFactory>();
    auto port = r->listenUNIX(path(), f);
    port->pauseAccepting();
    ASSERT_TRUE(fs::exists(path()));
    r.reset();
    EXPECT_FALSE(fs::exists(path())) << "the socket file outlived the reactor";
    EXPECT_EQ(f->stopped, 1);
    EXPECT_FALSE(port->listening());
    EXPECT_NO_THROW(port->resumeAccepting());
    EXPECT_THROW(port->startListening(), std::logic_error);
    EXPECT_FALSE(fs::exists(path()));
}

TEST_P(UNIXTest, UNIX_5_fileRemovedByOthersIsNotAnError) {
    // UNIX-5, Better than Twisted: a socket file someone else removed does not fail stopListening.
    auto port = reactor().listenUNIX(path(), std::make_shared<RecordingFactory>());
    ASSERT_EQ(::unlink(path().c_str()), 0);
    bool ok = false;
    port->stopListening().addCallback([&] { ok = true; });
    ASSERT_TRUE(spinUntil([&] { return ok; }));
}

TEST_P(UNIXTest, UNIX_5_aStoppedPortLeavesTheFileOfANewerPortAtItsPath) {
    // Twisted's test_cannotListen idiom: A stops, its file is removed, B listens at the same path before
    // A's close. A's close removed B's socket file (by name), so clients of B got ENOENT.
    auto a = reactor().listenUNIX(path(), std::make_shared<RecordingFactory>(), 50, 0666, false);
    bool stopped = false;
    a->stopListening().addCallback([&] { stopped = true; });
    ASSERT_EQ(::unlink(path().c_str()), 0);
    auto b = reactor().listenUNIX(path(), std::make_shared<RecordingFactory>(), 50, 0666, false);
    ASSERT_TRUE(spinUntil([&] { return stopped; }));
    EXPECT_TRUE(fs::exists(path())) << "the newer port's socket file was removed";
    bool bStopped = false;
    b->stopListening().addCallback([&] { bStopped = true; });
    ASSERT_TRUE(spinUntil([&] { return bStopped; }));
    EXPECT_FALSE(fs::exists(path()));
}

TEST_P(UNIXTest, UNIX_6_abstractNamespaceListenAndConnect) {
    // UNIX-6: a NUL-first name binds in the abstract namespace: no file, getHost() is the name; clients reach it.
    std::string name = abstractName();
    Pair p;
    connectPair(p, name);
    EXPECT_EQ(p.port->getHost(), Address(UNIXAddress(name)));
    EXPECT_EQ(p.client().transport->getPeer(), Address(UNIXAddress(name)));
    EXPECT_EQ(p.server().transport->getHost(), Address(UNIXAddress(name)));
    EXPECT_TRUE(fs::is_empty(dir));
    closePair(p);
}

TEST_P(UNIXTest, UNIX_6_lockFilesAreRefusedForAbstractNames) {
    // UNIX-6, Better than Twisted: wantPID/checkPID with an abstract name throw std::invalid_argument.
    EXPECT_THROW(reactor().listenUNIX(abstractName(), std::make_shared<RecordingFactory>(), 50, 0666, true),
                 std::invalid_argument);
    auto cf = std::make_shared<RecordingClientFactory>();
    EXPECT_THROW(reactor().connectUNIX(abstractName(), cf, 30, true), std::invalid_argument);
    EXPECT_EQ(cf->started, 0);
}

TEST_P(UNIXTest, UNIX_7_portHostLogMessagesAndRepr) {
    // UNIX-7: getHost() is UNIXAddress(path); "starting on '<path>'" and "(UNIX Port <path> Closed)" are logged; repr before/after.
    std::vector<std::string> lines;
    log::ScopedObserver obs(
        [&](const log::Event& e) { lines.push_back(std::string(e.prefix) + "|" + std::string(e.message)); });
    auto port = reactor().listenUNIX(path(), std::make_shared<RecordingFactory>());
    EXPECT_EQ(port->getHost(), Address(UNIXAddress(path())));
    EXPECT_EQ(port->repr(), "<weft::test::RecordingFactory on '" + path() + "'>");
    stop(*port);
    EXPECT_EQ(port->repr(), "<weft::test::RecordingFactory (not listening)>");
    EXPECT_THAT(lines,
                ::testing::Contains("weft::test::RecordingFactory|RecordingFactory starting on '" + path() + "'"));
    EXPECT_THAT(lines, ::testing::Contains("weft::test::RecordingFactory|(UNIX Port " + path() + " Closed)"));
}

// ======================================================================================
// Server side
// ======================================================================================

TEST_P(UNIXTest, UNIX_8_serverSeesPeerPathOrNullName) {
    // UNIX-8: buildProtocol gets UNIXAddress(peer path) — a null name for an unbound client, the path for a bound one.
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), f);
    int unbound = rawConnect(path());
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 1; }));
    EXPECT_EQ(f->addresses[0], Address(UNIXAddress("")));
    EXPECT_EQ(f->built[0]->transport->getPeer(), Address(UNIXAddress("")));
    EXPECT_EQ(f->built[0]->transport->getHost(), Address(UNIXAddress(path())));
    // A client bound to its own path.
    int bound = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un me{};
    me.sun_family = AF_UNIX;
    std::string mine = path("client");
    std::memcpy(me.sun_path, mine.data(), mine.size());
    ASSERT_EQ(::bind(bound, reinterpret_cast<sockaddr*>(&me), sizeof me), 0);
    sockaddr_un to{};
    to.sun_family = AF_UNIX;
    std::memcpy(to.sun_path, path().data(), path().size());
    ASSERT_EQ(::connect(bound, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 2; }));
    EXPECT_EQ(f->addresses[1], Address(UNIXAddress(mine)));
    EXPECT_EQ(f->built[1]->transport->getPeer(), Address(UNIXAddress(mine)));
    ::close(unbound);
    ::close(bound);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1 && f->built[1]->lost == 1; }));
    stop(*port);
}

TEST_P(UNIXTest, UNIX_9_serverLogPrefixAndRepr) {
    // UNIX-9: "<protocol>,<session>,<peer path>" and "<Protocol #n on <listening path>>".
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), f);
    int a = rawConnect(path());
    int b = rawConnect(path());
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 2; }));
    auto& s0 = dynamic_cast<unix_::Server&>(*f->built[0]->transport);
    auto& s1 = dynamic_cast<unix_::Server&>(*f->built[1]->transport);
    EXPECT_EQ(s0.logPrefix(), "RecordingProtocol,0,");
    EXPECT_EQ(s1.logPrefix(), "RecordingProtocol,1,");
    EXPECT_EQ(s1.repr(), "<RecordingProtocol #1 on " + path() + ">");
    ::close(a);
    ::close(b);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1 && f->built[1]->lost == 1; }));
    stop(*port);
}

// ======================================================================================
// Connecting
// ======================================================================================

TEST_P(UNIXTest, UNIX_10_connectorLifeCycle) {
    // UNIX-10: getDestination() is UNIXAddress(path); startedConnecting runs before connectUNIX returns, the connection on a later iteration.
    auto sf = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), sf);
    auto cf = std::make_shared<RecordingClientFactory>();
    auto c = reactor().connectUNIX(path(), cf);
    EXPECT_EQ(c->getDestination(), Address(UNIXAddress(path())));
    EXPECT_EQ(cf->startedConnectingCalls, 1);
    EXPECT_EQ(cf->started, 1);
    EXPECT_TRUE(cf->built.empty());
    EXPECT_EQ(c->state(), unix_::Connector::State::connecting);
    ASSERT_TRUE(spinUntil([&] { return cf->built.size() == 1 && sf->built.size() == 1; }));
    EXPECT_EQ(c->state(), unix_::Connector::State::connected);
    EXPECT_EQ(cf->addresses[0], Address(UNIXAddress(path())));
    cf->built[0]->transport->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return cf->lostCalls == 1 && sf->built[0]->lost == 1; }));
    EXPECT_EQ(c->state(), unix_::Connector::State::disconnected);
    EXPECT_EQ(cf->stopped, 1);
    stop(*port);
}

TEST_P(UNIXTest, UNIX_11_missingPathFailsWithENOENT) {
    // UNIX-11: no file at the path: clientConnectionFailed(ConnectError, osError ENOENT), on a later iteration.
    auto cf = std::make_shared<RecordingClientFactory>();
    reactor().connectUNIX(path("missing"), cf);
    EXPECT_EQ(cf->failed, 0);
    ASSERT_TRUE(spinUntil([&] { return cf->failed == 1; }));
    auto* e = cf->failReason->get<err::ConnectError>();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->osError(), ENOENT);
    EXPECT_EQ(cf->stopped, 1);
}

TEST_P(UNIXTest, UNIX_11_socketWithoutListenerIsRefused) {
    // UNIX-11: a socket file nobody listens on: ConnectionRefusedError.
    leaveDeadSocket(path());
    auto cf = std::make_shared<RecordingClientFactory>();
    reactor().connectUNIX(path(), cf);
    ASSERT_TRUE(spinUntil([&] { return cf->failed == 1; }));
    EXPECT_TRUE(cf->failReason->check<err::ConnectionRefusedError>());
    EXPECT_THAT(cf->failReason->getErrorMessage(), ::testing::HasSubstr("a socket file no process listens on"));

    // A file that is not a socket is refused by the kernel too: the message says what it is.
    std::ofstream(path("plain")) << "x";
    auto plain = std::make_shared<RecordingClientFactory>();
    reactor().connectUNIX(path("plain"), plain);
    ASSERT_TRUE(spinUntil([&] { return plain->failed == 1; }));
    EXPECT_TRUE(plain->failReason->check<err::ConnectionRefusedError>());
    EXPECT_THAT(plain->failReason->getErrorMessage(), ::testing::HasSubstr("plain is not a socket"));
}

TEST_P(UNIXTest, UNIX_11_pathTooLongFailsOnTheNextIteration) {
    // UNIX-11, Better than Twisted: a path too long fails with ConnectError naming the length problem, not a timeout.
    auto cf = std::make_shared<RecordingClientFactory>();
    reactor().connectUNIX(dir + "/" + std::string(200, 'y'), cf, 30);
    ASSERT_TRUE(spinUntil([&] { return cf->failed == 1; }, 1));
    auto* e = cf->failReason->get<err::ConnectError>();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->osError(), ENAMETOOLONG);
    EXPECT_THAT(e->what(), ::testing::HasSubstr("too long"));
}

TEST_P(UNIXTest, UNIX_11_aPathHoldingANulByteFailsSayingSo) {
    // UNIX-11: a filesystem path with a NUL byte inside: ConnectError(EINVAL) naming the NUL byte, not the length.
    auto cf = std::make_shared<RecordingClientFactory>();
    reactor().connectUNIX(dir + std::string("/a\0b", 4), cf, 30);
    ASSERT_TRUE(spinUntil([&] { return cf->failed == 1; }, 1));
    auto* e = cf->failReason->get<err::ConnectError>();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->osError(), EINVAL);
    EXPECT_THAT(e->what(), ::testing::HasSubstr("contains a NUL byte"));
}

TEST_P(UNIXTest, UNIX_12_checkPIDWithoutLiveLockFailsWithBadFileError) {
    // UNIX-12: checkPID and no live holder of "<path>.lock": BadFileError, no connection attempted (the listener builds nothing).
    auto sf = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), sf);
    auto cf = std::make_shared<RecordingClientFactory>();
    reactor().connectUNIX(path(), cf, 30, true);
    ASSERT_TRUE(spinUntil([&] { return cf->failed == 1; }));
    EXPECT_TRUE(cf->failReason->check<err::BadFileError>());
    EXPECT_EQ(cf->events, (std::vector<std::string>{"started", "failed"}));  // exactly one outcome
    reactor().iterate(0.05);
    EXPECT_TRUE(sf->built.empty());
    stop(*port);
}

TEST_P(UNIXTest, UNIX_12_checkPIDWithLiveLockConnects) {
    // UNIX-12: with the lock held by a live process (a wantPID listener), checkPID connects.
    auto sf = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), sf, 50, 0666, true);
    auto cf = std::make_shared<RecordingClientFactory>();
    reactor().connectUNIX(path(), cf, 30, true);
    ASSERT_TRUE(spinUntil([&] { return cf->built.size() == 1 && sf->built.size() == 1; }));
    cf->built[0]->transport->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return sf->built[0]->lost == 1 && cf->lostCalls == 1; }));
    stop(*port);
}

TEST_P(UNIXTest, UNIX_13_clientAndServerAddressesMirror) {
    // UNIX-13: the client's host is unbound (null name), its peer the path; the server's host is the client's peer and vice versa.
    Pair p;
    connectPair(p, path());
    auto& c = *p.client().transport;
    auto& s = *p.server().transport;
    EXPECT_EQ(c.getHost(), Address(UNIXAddress("")));
    EXPECT_EQ(c.getPeer(), Address(UNIXAddress(path())));
    EXPECT_EQ(s.getHost(), c.getPeer());
    EXPECT_EQ(s.getPeer(), c.getHost());
    EXPECT_EQ(addressStr(c.getHost()), "UNIXAddress(None)");
    closePair(p);
    EXPECT_EQ(c.getPeer(), Address(UNIXAddress(path())));  // still answers after the close
}

// ======================================================================================
// Passing descriptors
// ======================================================================================

class FdFactory : public RecordingFactory {
public:
    FdFactory() {
        make = [](const Address&) { return std::make_shared<FdProtocol>(); };
    }
};

TEST_P(UNIXTest, UNIX_14_descriptorArrivesBeforeTheBytesItRidesWith) {
    // UNIX-14/UNIX-18: a descriptor sent with a write arrives (fileDescriptorReceived) before dataReceived gets those bytes.
    auto sf = std::make_shared<FdFactory>();
    Pair p;
    p.sf = sf;
    connectPair(p, path());
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    unixTransport(p.client()).sendFileDescriptor(fds[0]);
    p.client().send("junk");
    auto& server = dynamic_cast<FdProtocol&>(p.server());
    ASSERT_TRUE(spinUntil([&] { return server.received == "junk"; }));
    ASSERT_EQ(server.fds.size(), 1u);
    EXPECT_EQ(server.events.front(), "fd");
    EXPECT_EQ(unixTransport(p.client()).pendingDescriptors(), 0u);
    // The received descriptor reads what is written into the original pipe.
    ASSERT_EQ(::write(fds[1], "through", 7), 7);
    char buf[16] = {};
    EXPECT_EQ(::read(server.fds[0], buf, sizeof buf), 7);
    EXPECT_STREQ(buf, "through");
    ::close(fds[0]);
    ::close(fds[1]);
    closePair(p);
}

TEST_P(UNIXTest, UNIX_14_severalDescriptorsKeepTheirOrder) {
    // UNIX-14: queued descriptors travel in queue order, each with one byte.
    auto sf = std::make_shared<FdFactory>();
    Pair p;
    p.sf = sf;
    connectPair(p, path());
    std::vector<int> pipes;
    for (int i = 0; i < 3; ++i) {
        int fds[2];
        ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        pipes.push_back(fds[0]);
        pipes.push_back(fds[1]);
        unixTransport(p.client()).sendFileDescriptor(fds[1]);  // the write ends
    }
    p.client().send("abcdef");
    auto& server = dynamic_cast<FdProtocol&>(p.server());
    ASSERT_TRUE(spinUntil([&] { return server.received == "abcdef"; }));
    ASSERT_EQ(server.fds.size(), 3u);
    for (int i = 0; i < 3; ++i) {  // the i-th descriptor received is the i-th pipe's write end
        char c = static_cast<char>('0' + i);
        ASSERT_EQ(::write(server.fds[static_cast<std::size_t>(i)], &c, 1), 1);
        char got = 0;
        ASSERT_EQ(::read(pipes[static_cast<std::size_t>(2 * i)], &got, 1), 1);
        EXPECT_EQ(got, c);
    }
    EXPECT_EQ(server.events.front(), "fd");
    for (int fd : pipes) ::close(fd);
    closePair(p);
}

TEST_P(UNIXTest, UNIX_15_moreDescriptorsThanBytesIsFileDescriptorOverrun) {
    // UNIX-15: a descriptor with no byte to carry it loses the connection with FileDescriptorOverrun; the peer sees a close.
    Pair p;
    connectPair(p, path());
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    unixTransport(p.client()).sendFileDescriptor(fds[0]);
    ASSERT_TRUE(spinUntil([&] { return p.client().lost == 1 && p.server().lost == 1; }));
    EXPECT_TRUE(p.client().lostReason->check<err::FileDescriptorOverrun>());
    EXPECT_TRUE(p.server().lostReason->check<err::ConnectionClosed>());
    ::close(fds[0]);
    ::close(fds[1]);
    closePair(p);
}

class PushProducer : public IPushProducer {
public:
    void pauseProducing() override { ++paused; }
    void resumeProducing() override { ++resumed; }
    void stopProducing() override { ++stopped; }
    int paused = 0, resumed = 0, stopped = 0;
};

TEST_P(UNIXTest, UNIX_16_manyQueuedDescriptorsPauseTheProducer) {
    // UNIX-16: more than 64 queued descriptors count as a full buffer: a push producer is paused though few bytes are queued.
    auto sf = std::make_shared<FdFactory>();
    Pair p;
    p.sf = sf;
    connectPair(p, path());
    auto producer = std::make_shared<PushProducer>();
    auto& t = unixTransport(p.client());
    t.registerProducer(producer, true);
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < 64; ++i) t.sendFileDescriptor(fd);
    EXPECT_EQ(producer->paused, 0);
    t.sendFileDescriptor(fd);
    EXPECT_EQ(producer->paused, 1);
    ::close(fd);
    p.client().send(std::string(65, 'z'));
    auto& server = dynamic_cast<FdProtocol&>(p.server());
    ASSERT_TRUE(spinUntil([&] { return server.received.size() == 65 && server.fds.size() == 65; }));
    EXPECT_EQ(producer->resumed, 1);
    t.unregisterProducer();
    closePair(p);
}

TEST_P(UNIXTest, UNIX_17_receivedDescriptorIsANewNumberForTheSameSocket) {
    // UNIX-17: the receiver gets a different descriptor number naming the same open socket.
    auto sf = std::make_shared<FdFactory>();
    Pair p;
    p.sf = sf;
    connectPair(p, path());
    auto other = reactor().listenUNIX(path("other"), std::make_shared<RecordingFactory>());
    unixTransport(p.client()).sendFileDescriptor(other->fileno());
    p.client().send("x");
    auto& server = dynamic_cast<FdProtocol&>(p.server());
    ASSERT_TRUE(spinUntil([&] { return server.fds.size() == 1; }));
    EXPECT_NE(server.fds[0], other->fileno());
    sockaddr_un name{};
    socklen_t len = sizeof name;
    ASSERT_EQ(::getsockname(server.fds[0], reinterpret_cast<sockaddr*>(&name), &len), 0);
    EXPECT_EQ(std::string(name.sun_path), path("other"));
    EXPECT_NE(::fcntl(server.fds[0], F_GETFD) & FD_CLOEXEC, 0);  // UNIX-20: received close-on-exec
    stop(*other);
    closePair(p);
}

// Sends `data` over a raw socket with the given descriptors, split over
// `messages` control messages.
void rawSendFds(int sock, const std::string& data, const std::vector<int>& fds, int messages) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8) * 2] = {};
    iovec iov{const_cast<char*>(data.data()), data.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    std::size_t per = (fds.size() + static_cast<std::size_t>(messages) - 1) / static_cast<std::size_t>(messages);
    std::size_t total = 0;
    for (int i = 0; i < messages; ++i) total += CMSG_SPACE(sizeof(int) * per);
    m.msg_controllen = total;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    ASSERT_LE(per, 8u);
    for (int i = 0; i < messages; ++i, c = CMSG_NXTHDR(&m, c)) {
        ASSERT_NE(c, nullptr);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * per);
        std::memcpy(CMSG_DATA(c), fds.data() + static_cast<std::size_t>(i) * per, sizeof(int) * per);
    }
    ASSERT_EQ(::sendmsg(sock, &m, 0), static_cast<ssize_t>(data.size()));
}

TEST_P(UNIXTest, UNIX_18_severalDescriptorsPerMessageAndPerControlMessage) {
    // UNIX-18: descriptors in one control message, or in two, all reach fileDescriptorReceived in order, before the bytes.
    for (int messages : {1, 2}) {
        auto f = std::make_shared<FdFactory>();
        auto port = reactor().listenUNIX(path("m" + std::to_string(messages)), f);
        int c = rawConnect(path("m" + std::to_string(messages)));
        ASSERT_TRUE(spinUntil([&] { return f->built.size() == 1; }));
        std::vector<int> originals;
        for (int i = 0; i < 4; ++i) originals.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        rawSendFds(c, "payload", originals, messages);
        auto& server = dynamic_cast<FdProtocol&>(*f->built[0]);
        ASSERT_TRUE(spinUntil([&] { return server.received == "payload"; }));
        ASSERT_EQ(server.fds.size(), 4u);
        EXPECT_EQ(server.events, (std::vector<std::string>{"fd", "fd", "fd", "fd", "data:payload"}));
        for (int fd : originals) ::close(fd);
        ::close(c);
        ASSERT_TRUE(spinUntil([&] { return server.lost == 1; }));
        stop(*port);
    }
}

TEST_P(UNIXTest, UNIX_19_descriptorsToAProtocolThatCannotTakeThemAreClosed) {
    // UNIX-19: a protocol that is no IFileDescriptorReceiver: the descriptors are closed at once (none leak) and it is logged.
    std::vector<std::string> lines;
    log::ScopedObserver obs([&](const log::Event& e) { lines.push_back(std::string(e.message)); });
    auto f = std::make_shared<RecordingFactory>();
    auto port = reactor().listenUNIX(path(), f);
    int c = rawConnect(path());
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 1; }));
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    auto before = openFds();
    rawSendFds(c, "hi", {devnull, devnull}, 1);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->received == "hi"; }));
    EXPECT_EQ(openFds(), before);
    EXPECT_THAT(lines, ::testing::Contains(::testing::HasSubstr("is not an IFileDescriptorReceiver")));
    // One line for the message, not one per descriptor (253 lines for a full SCM_RIGHTS message).
    EXPECT_EQ(
        std::count_if(lines.begin(), lines.end(),
                      [](const std::string& l) { return l.find("IFileDescriptorReceiver") != std::string::npos; }),
        1);
    EXPECT_THAT(lines, ::testing::Contains(::testing::HasSubstr("received 2 file descriptor(s)")));
    ::close(devnull);
    ::close(c);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1; }));
    stop(*port);
}

TEST_P(UNIXTest, UNIX_20_senderMayCloseItsDescriptorAtOnce) {
    // UNIX-20, Better than Twisted: sendFileDescriptor keeps its own copy, so closing the original right away still sends it.
    auto sf = std::make_shared<FdFactory>();
    Pair p;
    p.sf = sf;
    connectPair(p, path());
    std::string file = path("data.txt");
    { std::ofstream(file) << "the contents of a file"; }
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    unixTransport(p.client()).sendFileDescriptor(fd);
    ::close(fd);
    p.client().send("!");
    auto& server = dynamic_cast<FdProtocol&>(p.server());
    ASSERT_TRUE(spinUntil([&] { return server.fds.size() == 1 && server.received == "!"; }));
    char buf[64] = {};
    EXPECT_EQ(::pread(server.fds[0], buf, sizeof buf - 1, 0), 22);
    EXPECT_STREQ(buf, "the contents of a file");
    closePair(p);
}

TEST_P(UNIXTest, UNIX_20_closedDescriptorIsAClearError) {
    // UNIX-20 (bad input): passing a closed descriptor throws std::system_error(EBADF) naming it; nothing is queued.
    Pair p;
    connectPair(p, path());
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ::close(fd);
    try {
        unixTransport(p.client()).sendFileDescriptor(fd);
        ADD_FAILURE() << "sent a closed descriptor";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EBADF);
        EXPECT_THAT(e.what(), ::testing::HasSubstr("descriptor " + std::to_string(fd)));
    }
    EXPECT_EQ(unixTransport(p.client()).pendingDescriptors(), 0u);
    p.client().send("still fine");
    ASSERT_TRUE(spinUntil([&] { return p.server().received == "still fine"; }));
    closePair(p);
}

TEST_P(UNIXTest, UNIX_20_queuedDescriptorsAreClosedWhenTheConnectionIsLost) {
    // UNIX-20, Better than Twisted: copies queued but never sent are closed when the connection ends (no leak).
    Pair p;
    connectPair(p, path());
    auto before = openFds();
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    unixTransport(p.client()).sendFileDescriptor(devnull);
    ::close(devnull);
    EXPECT_EQ(openFds().size(), before.size() + 1);  // our copy
    p.client().stream()->abortConnection();
    ASSERT_TRUE(spinUntil([&] { return p.client().lost == 1 && p.server().lost == 1; }));
    EXPECT_EQ(openFds().size(), before.size() - 2);  // both sockets and the copy are gone
    closePair(p);
}

// ======================================================================================
// Adopting
// ======================================================================================

int rawUnixListener(const std::string& where) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, where.data(), where.size());
    if (::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(s, 16) != 0) {
        ::close(s);
        return -1;
    }
    return s;
}

TEST_P(UNIXTest, UNIX_21_adoptStreamPortWrapsAListeningUNIXSocket) {
    // UNIX-21: adoptStreamPort(fd, AF_UNIX) duplicates fd, takes the path from the socket, logs like listenUNIX and accepts.
    std::vector<std::string> lines;
    log::ScopedObserver obs([&](const log::Event& e) { lines.push_back(std::string(e.message)); });
    int raw = rawUnixListener(path());
    ASSERT_GE(raw, 0);
    auto f = std::make_shared<RecordingFactory>();
    auto port = std::dynamic_pointer_cast<unix_::Port>(reactor().adoptStreamPort(raw, AF_UNIX, f));
    ASSERT_NE(port, nullptr);
    EXPECT_NE(port->fileno(), raw);
    ::close(raw);
    EXPECT_EQ(port->getHost(), Address(UNIXAddress(path())));
    EXPECT_EQ(f->started, 1);
    EXPECT_THAT(lines, ::testing::Contains("RecordingFactory starting on '" + path() + "'"));
    int c = rawConnect(path());
    ASSERT_TRUE(spinUntil([&] { return f->built.size() == 1; }));
    ::close(c);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1; }));
    stop(*port);
    EXPECT_THAT(lines, ::testing::Contains("(UNIX Port " + path() + " Closed)"));
    EXPECT_TRUE(fs::exists(path()));  // the file belongs to whoever made the socket
}

TEST_P(UNIXTest, UNIX_21_familyMustMatchTheSocket) {
    // UNIX-21: adoptStreamPort with AF_UNIX for a TCP socket is refused (std::invalid_argument), nothing left open.
    int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto before = openFds();
    EXPECT_THROW(reactor().adoptStreamPort(tcp, AF_UNIX, std::make_shared<RecordingFactory>()), std::invalid_argument);
    EXPECT_EQ(openFds(), before);
    ::close(tcp);
}

TEST_P(UNIXTest, UNIX_22_adoptStreamConnectionUsesSessionZeroAndLocalPath) {
    // UNIX-22: an adopted UNIX connection: session 0, "<Protocol>,0,<local path>", repr on the local path, peer address to buildProtocol.
    int raw = rawUnixListener(path());
    ASSERT_GE(raw, 0);
    int c = rawConnect(path());
    int accepted = ::accept4(raw, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(accepted, 0);
    auto f = std::make_shared<RecordingFactory>();
    reactor().adoptStreamConnection(accepted, AF_UNIX, f);
    ::close(accepted);
    ASSERT_EQ(f->built.size(), 1u);
    EXPECT_EQ(f->addresses[0], Address(UNIXAddress("")));  // the (unbound) peer, Better than Twisted
    auto& server = dynamic_cast<unix_::Server&>(*f->built[0]->transport);
    EXPECT_EQ(server.logPrefix(), "RecordingProtocol,0," + path());
    EXPECT_EQ(server.repr(), "<RecordingProtocol #0 on " + path() + ">");
    EXPECT_EQ(f->started, 0);
    ASSERT_EQ(::write(c, "hey", 3), 3);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->received == "hey"; }));
    ::close(c);
    ASSERT_TRUE(spinUntil([&] { return f->built[0]->lost == 1; }));
    ::close(raw);
}

TEST_P(UNIXTest, UNIX_22_nullProtocolClosesTheDuplicate) {
    // UNIX-22: buildProtocol returning null closes the duplicate and starts nothing.
    int raw = rawUnixListener(path());
    int c = rawConnect(path());
    int accepted = ::accept4(raw, nullptr, nullptr, SOCK_CLOEXEC);
    auto f = std::make_shared<RecordingFactory>();
    f->make = [](const Address&) { return nullptr; };
    auto before = openFds();
    reactor().adoptStreamConnection(accepted, AF_UNIX, f);
    EXPECT_EQ(openFds(), before);
    EXPECT_TRUE(reactor().getReaders().empty());
    ::close(accepted);
    ::close(c);
    ::close(raw);
}

// ======================================================================================
// Addresses
// ======================================================================================

TEST_P(UNIXTest, UNIX_30_addressEqualityFollowsFileIdentity) {
    // UNIX-30: equal names are equal; two names of one existing file are equal and hash alike; abstract names compare by bytes.
    { std::ofstream(path("f")) << "x"; }
    UNIXAddress a(path("f")), b(dir + "/./f"), other(path("g"));
    EXPECT_EQ(a, b);
    EXPECT_EQ(std::hash<UNIXAddress>{}(a), std::hash<UNIXAddress>{}(b));
    EXPECT_NE(a, other);
    EXPECT_EQ(UNIXAddress(path("missing")), UNIXAddress(path("missing")));
    EXPECT_NE(UNIXAddress(path("missing")), UNIXAddress(dir + "/./missing"));  // no file: bytes only
    std::string abs1 = std::string(1, '\0') + "n", abs2 = std::string(1, '\0') + "m";
    EXPECT_EQ(UNIXAddress(abs1), UNIXAddress(abs1));
    EXPECT_NE(UNIXAddress(abs1), UNIXAddress(abs2));
    EXPECT_EQ(UNIXAddress("").str(), "UNIXAddress(None)");
}

// ======================================================================================
// TCP behaviour shared by UNIX sockets (unix.md preamble), peer credentials
// ======================================================================================

TEST_P(UNIXTest, UNIX_13_peerCredentialsNameThisProcess) {
    // Peer credentials: both ends see this process's pid, uid and gid (SO_PEERCRED).
    Pair p;
    connectPair(p, path());
    unix_::PeerCredentials me{::getpid(), ::getuid(), ::getgid()};
    EXPECT_EQ(unixTransport(p.client()).getPeerCredentials(), me);
    EXPECT_EQ(unixTransport(p.server()).getPeerCredentials(), me);
    closePair(p);
}

TEST_P(UNIXTest, UNIX_10_bulkTransferAndHalfClose) {
    // TCP-27..TCP-29 over UNIX: 4 MiB each way byte-exact; a half-closeable server hears readConnectionLost and still answers.
    auto sf = std::make_shared<RecordingFactory>();
    sf->make = [](const Address&) { return std::make_shared<HalfCloseProtocol>(); };
    Pair p;
    p.sf = sf;
    connectPair(p, path());
    std::string payload = randomBytes(4 << 20, 7);
    auto& server = dynamic_cast<HalfCloseProtocol&>(p.server());
    server.onReadLost = [&](HalfCloseProtocol& s) {
        s.transport->write(asBytes(s.received));
        s.transport->loseConnection();
    };
    p.client().send(payload);
    unixTransport(p.client()).loseWriteConnection();
    ASSERT_TRUE(spinUntil([&] { return p.client().lost == 1 && server.lost == 1; }, 20));
    EXPECT_EQ(server.received.size(), payload.size());
    EXPECT_TRUE(server.received == payload);
    EXPECT_TRUE(p.client().received == payload);
    closePair(p);
}

TEST_P(UNIXTest, UNIX_10_abortConnectionResetsThePeer) {
    // TCP-32 over UNIX: abortConnection drops buffered output and reports ConnectionAborted; the peer sees a loss.
    Pair p;
    connectPair(p, path());
    p.client().send(std::string(1 << 20, 'q'));
    p.client().stream()->abortConnection();
    ASSERT_TRUE(spinUntil([&] { return p.client().lost == 1 && p.server().lost == 1; }));
    EXPECT_TRUE(p.client().lostReason->check<err::ConnectionAborted>());
    closePair(p);
}

// Reentrancy: every close or drop from inside each callback ends in exactly one
// connectionLost per side and nothing leaked (checked under ASan by the fixture).
TEST_P(UNIXTest, UNIX_10_closingFromInsideEveryCallbackIsSafe) {
    for (int action = 0; action < 4; ++action) {
        Pair p;
        p.sf->onBuilt = [&, action](RecordingProtocol& proto) {
            proto.onMade = [&, action](RecordingProtocol& me) {
                if (action == 0) me.transport->loseConnection();
                if (action == 1) me.stream()->abortConnection();
                if (action == 2) {
                    p.port->stopListening();
                    me.transport->loseConnection();
                }
                if (action == 3) {
                    me.send("bye");
                    me.transport->loseConnection();
                    p.sf->built.clear();  // drop the test's references from inside the callback
                }
            };
        };
        p.port = reactor().listenUNIX(path("r" + std::to_string(action)), p.sf);
        p.connector = reactor().connectUNIX(path("r" + std::to_string(action)), p.cf);
        ASSERT_TRUE(spinUntil([&] { return p.cf->lostCalls + p.cf->failed == 1; })) << action;
        if (action == 3) {
            EXPECT_EQ(p.client().received, "bye");
        }
        p.connector.reset();
        p.cf->built.clear();
        if (action != 2) stop(*p.port);
        else ASSERT_TRUE(spinUntil([&] { return !p.port->listening(); }));
    }
}

TEST_P(UNIXTest, TEST_27_loopbackUNIXRunsAPairOverARealSocket) {
    // TEST-27: loopbackUNIX connects the two protocols over a UNIX socket and fires once both sides closed and the port stopped.
    auto server = std::make_shared<RecordingProtocol>();
    auto client = std::make_shared<RecordingProtocol>();
    server->onData = [](RecordingProtocol& me, std::string_view d) {
        me.send(d);
        me.transport->loseConnection();
    };
    client->onMade = [](RecordingProtocol& me) { me.send("ping"); };
    bool fired = false;
    loopback::loopbackUNIX(reactor(), server, client).addBoth([&](Result<void> r) { fired = r.ok(); });
    ASSERT_TRUE(spinUntil([&] { return fired; }));
    EXPECT_EQ(client->received, "ping");
    EXPECT_EQ(server->lost, 1);
    EXPECT_EQ(client->lost, 1);
    // A filesystem path is removed once the port stops.
    auto s2 = std::make_shared<RecordingProtocol>();
    auto c2 = std::make_shared<RecordingProtocol>();
    c2->onMade = [](RecordingProtocol& me) { me.transport->loseConnection(); };
    bool fired2 = false;
    loopback::loopbackUNIX(reactor(), s2, c2, path("loop")).addBoth([&](Result<void> r) { fired2 = r.ok(); });
    ASSERT_TRUE(spinUntil([&] { return fired2; }));
    EXPECT_FALSE(fs::exists(path("loop")));
}

}  // namespace

// ---- issue #10: defects found from outside ----------------------------------------

TEST_P(UNIXTest, UNIX_4_aFreshLockDoesNotStealALiveListenersSocket) {
    // UNIX-4 with UNIX-2: a listener that takes no lock (socat, say) bound the
    // path relative to its directory; listenUNIX(absolute path, wantPID) takes
    // a fresh lock but must not remove that live socket: CannotListenError
    // (EADDRINUSE), the socket still accepts, and no lock file is left.
    char* here = ::getcwd(nullptr, 0);
    ASSERT_EQ(::chdir(dir.c_str()), 0);
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, "s");
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(s, 8), 0);
    ASSERT_EQ(::chdir(here), 0);
    std::free(here);
    auto f = std::make_shared<RecordingFactory>();
    try {
        reactor().listenUNIX(path(), f, 50, 0666, true);
        ADD_FAILURE() << "took the path of a live listener";
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EADDRINUSE);
        EXPECT_THAT(e.what(), ::testing::HasSubstr("in use"));
    }
    EXPECT_EQ(f->started, 0);
    EXPECT_TRUE(fs::is_socket(path()));
    EXPECT_FALSE(fs::exists(fs::symlink_status(path() + ".lock")));
    int c = rawConnect(path());
    EXPECT_GE(c, 0) << "the live listener lost its socket";
    if (c >= 0) ::close(c);
    ::close(s);
}

TEST_P(UNIXTest, UNIX_2_eachPathFailureNamesItsCause) {
    // UNIX-2: a missing directory, a path too long and a live listener each say
    // what is wrong, with and without wantPID (never "Cannot acquire lock" for
    // a lock file that could not be made).
    for (bool wantPID : {false, true}) {
        SCOPED_TRACE(wantPID ? "wantPID" : "no lock");
        try {
            reactor().listenUNIX(dir + "/no-such-dir/s", std::make_shared<RecordingFactory>(), 50, 0666, wantPID);
            ADD_FAILURE() << "listened in a missing directory";
        } catch (const err::CannotListenError& e) {
            EXPECT_EQ(e.socketError().value(), ENOENT);
            EXPECT_THAT(e.what(), ::testing::HasSubstr("the directory '" + dir + "/no-such-dir' does not exist"));
            EXPECT_THAT(e.what(), ::testing::Not(::testing::HasSubstr("Cannot acquire lock")));
        }
        std::string huge = dir + "/" + std::string(4000, 'y');
        try {
            reactor().listenUNIX(huge, std::make_shared<RecordingFactory>(), 50, 0666, wantPID);
            ADD_FAILURE() << "listened on a 4000-byte path";
        } catch (const err::CannotListenError& e) {
            EXPECT_EQ(e.socketError().value(), ENAMETOOLONG);
            EXPECT_THAT(e.what(), ::testing::HasSubstr("AF_UNIX path too long (4"));
        }
        EXPECT_TRUE(fs::is_empty(dir));
        // A directory that exists where no file can be made (procfs says ENOENT):
        // not called missing.
        if (fs::is_directory("/proc/self")) {
            try {
                reactor().listenUNIX("/proc/self/weft.sock", std::make_shared<RecordingFactory>(), 50, 0666, wantPID);
                ADD_FAILURE() << "listened in /proc";
            } catch (const err::CannotListenError& e) {
                EXPECT_EQ(e.socketError().value(), ENOENT);
                EXPECT_THAT(e.what(), ::testing::HasSubstr("the directory '/proc/self' exists but"));
                EXPECT_THAT(e.what(), ::testing::Not(::testing::HasSubstr("does not exist")));
            }
        }
    }
}

TEST_P(UNIXTest, UNIX_2_unwritableDirectoryIsNamed) {
    // UNIX-2: a directory the user may not write to: EACCES, named as such.
    if (::geteuid() == 0) GTEST_SKIP() << "root may write anywhere (tests/tool/weft_unix.sh checks this as nobody)";
    fs::create_directory(path("ro"));
    fs::permissions(path("ro"), fs::perms::owner_read | fs::perms::owner_exec);
    try {
        reactor().listenUNIX(path("ro") + "/s", std::make_shared<RecordingFactory>(), 50, 0666, true);
        ADD_FAILURE() << "listened in a read-only directory";
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EACCES);
        EXPECT_THAT(e.what(), ::testing::HasSubstr("no permission to create a file in"));
    }
    fs::permissions(path("ro"), fs::perms::owner_all);
}

TEST_P(UNIXTest, UNIX_7_controlBytesInAPathAreEscapedInMessages) {
    // UNIX-7: the log lines and errors name the path on one line, escaped.
    std::string odd = path("a\nb\x1b[31m");
    auto port = reactor().listenUNIX(odd, std::make_shared<RecordingFactory>());
    EXPECT_EQ(port->repr().find('\n'), std::string::npos);
    EXPECT_THAT(port->repr(), ::testing::HasSubstr("a\\nb\\x1b[31m"));
    try {
        reactor().listenUNIX(odd, std::make_shared<RecordingFactory>());
        ADD_FAILURE();
    } catch (const err::CannotListenError& e) {
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
        EXPECT_EQ(std::string(e.what()).find('\x1b'), std::string::npos);
    }
    stop(*port);
}
