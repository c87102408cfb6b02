// unix.md UNIX-23..UNIX-29: UNIX datagram sockets (listenUNIXDatagram,
// connectUNIXDatagram), on every backend.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <weft/internet/error.hpp>
#include <weft/internet/unix_datagram.hpp>

#include "support/faults.hpp"
#include "support/reactortest.hpp"
#include "support/udphelpers.hpp"

using namespace weft;
using namespace weft::test;
using weft::error::CannotListenError;
using weft::error::ConnectBindError;
using weft::error::ConnectError;
using weft::error::InvalidAddressError;
using weft::error::MessageLengthError;

namespace {

class UNIXDatagramTest : public ReactorTest {
protected:
    TempDir dir;
};
INSTANTIATE_TEST_SUITE_P(Backends, UNIXDatagramTest, allBackends(), backendParamName);

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

mode_t modeOf(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// A unique abstract-namespace name.
std::string abstractName() {
    return std::string("\0weft-dgram-", 12) + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
}

TEST_P(UNIXDatagramTest, UNIX_23_listenBindsSetsModeAttachesAndReads) {
    // UNIX-23: binds, sets exactly `mode`, startProtocol, reading — all before returning.
    auto p = std::make_shared<RecordingDatagram>();
    const std::string path = dir.file("server");
    ::umask(022);
    auto port = reactor().listenUNIXDatagram(path, p, 8192, 0606);
    EXPECT_TRUE(S_ISSOCK(modeOf(path)));
    EXPECT_EQ(modeOf(path) & 07777, 0606u);  // not filtered by the umask
    EXPECT_EQ(p->started, 1);
    EXPECT_TRUE(reactor().isReading(port.get()));
    PlainSocket client(AF_UNIX);
    ASSERT_EQ(client.sendToPath("ping", path), 4);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return !p->received.empty(); }));
    EXPECT_EQ(p->received[0].data, "ping");
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_23_existingNonSocketFileThrowsAndIsLeftUntouched) {
    // UNIX-23: a path that exists (here a regular file) throws CannotListenError; the file is not changed.
    const std::string path = dir.file("precious");
    { std::ofstream(path) << "keep me"; }
    ::chmod(path.c_str(), 0640);
    auto p = std::make_shared<RecordingDatagram>();
    try {
        reactor().listenUNIXDatagram(path, p);
        FAIL() << "expected CannotListenError";
    } catch (const CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), EADDRINUSE);
        EXPECT_EQ(e.port, path);
    }
    EXPECT_EQ(slurp(path), "keep me");
    EXPECT_EQ(modeOf(path) & 07777, 0640u);
    EXPECT_TRUE(S_ISREG(modeOf(path)));
    EXPECT_EQ(p->started, 0);
}

TEST_P(UNIXDatagramTest, UNIX_23_pathOfALiveSocketThrows) {
    // UNIX-23: a path already bound by another port throws CannotListenError; the first port keeps working.
    const std::string path = dir.file("taken");
    auto first = std::make_shared<RecordingDatagram>();
    auto port = reactor().listenUNIXDatagram(path, first);
    EXPECT_THROW(reactor().listenUNIXDatagram(path, std::make_shared<RecordingDatagram>()), CannotListenError);
    PlainSocket client(AF_UNIX);
    client.sendToPath("still here", path);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return !first->received.empty(); }));
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_23_abstractNamespaceIsAccepted) {
    // UNIX-23: an abstract-namespace name binds (no file) and receives.
    const std::string name = abstractName();
    auto p = std::make_shared<RecordingDatagram>();
    auto port = reactor().listenUNIXDatagram(name, p);
    EXPECT_EQ(port->getHost(), Address(UNIXAddress(name)));
    PlainSocket client(AF_UNIX);
    ASSERT_EQ(client.sendToPath("abstract", name), 8);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return !p->received.empty(); }));
    EXPECT_EQ(p->received[0].data, "abstract");
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_23_tooLongPathSaysSo) {
    // UNIX-23: a path too long for sockaddr_un throws CannotListenError naming the length problem.
    const std::string path = dir.file(std::string(200, 'x'));
    try {
        reactor().listenUNIXDatagram(path, std::make_shared<RecordingDatagram>());
        FAIL() << "expected CannotListenError";
    } catch (const CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), ENAMETOOLONG);
        EXPECT_NE(std::string(e.what()).find("path too long"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(std::to_string(path.size())), std::string::npos) << e.what();
    }
    EXPECT_FALSE(exists(path));
}

TEST_P(UNIXDatagramTest, UNIX_24_senderPathArrivesAndRepliesReachIt) {
    // UNIX-24: datagramReceived(data, senderPath); write(data, senderPath) reaches a bound sender;
    // an unbound sender arrives as an empty UNIXAddress.
    auto p = std::make_shared<RecordingDatagram>();
    p->onDatagram = [](RecordingDatagram& self, const RecordingDatagram::Datagram& d) {
        if (!std::get<UNIXAddress>(d.from).name.empty()) self.transport->write("re: " + d.data, d.from);
    };
    const std::string path = dir.file("server"), clientPath = dir.file("client");
    auto port = reactor().listenUNIXDatagram(path, p);
    PlainSocket bound(AF_UNIX), unbound(AF_UNIX);
    bound.bind(clientPath);
    bound.sendToPath("hello", path);
    unbound.sendToPath("anonymous", path);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return p->received.size() == 2; }));
    EXPECT_EQ(p->received[0].from, Address(UNIXAddress(clientPath)));
    EXPECT_EQ(p->received[1].from, Address(UNIXAddress("")));
    EXPECT_EQ(bound.receive(), std::optional<std::string>("re: hello"));
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_24_aReplyToAnUnboundSenderIsRefusedNotSentToTheAbstractNameNul) {
    // An empty path made a sockaddr whose first byte is NUL: the abstract name "\0", which any local
    // process may bind. A reply to an unbound sender went to whoever held it. It is refused (EINVAL).
    const std::string path = dir.file("server");
    std::optional<Address> from;
    auto p = std::make_shared<RecordingDatagram>();
    p->onDatagram = [&](RecordingDatagram&, const RecordingDatagram::Datagram& d) { from = d.from; };
    auto port = reactor().listenUNIXDatagram(path, p);
    PlainSocket unbound(AF_UNIX);
    unbound.sendToPath("anonymous", path);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return from.has_value(); }));
    ASSERT_EQ(*from, Address(UNIXAddress("")));
    try {
        p->transport->write(std::string_view("reply"), *from);
        ADD_FAILURE() << "a reply to an empty address was accepted";
    } catch (const InvalidAddressError& e) {
        EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
    }
    EXPECT_THROW(reactor().listenUNIXDatagram("", std::make_shared<RecordingDatagram>()), CannotListenError);
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_24_anUnboundSenderIsAnEmptyUNIXAddressFirstAndAfterARestart) {
    // UNIX-24: the sender's name is remembered for a steady sender. An unbound sender (an empty name)
    // matched the cleared memory and got what was left there: NoAddress as the port's first sender, and
    // the previous bound sender's path after the port was stopped and started again (a reply to it would
    // have gone to the wrong peer).
    auto p = std::make_shared<RecordingDatagram>();
    const std::string path = dir.file("server"), clientPath = dir.file("client");
    auto port = reactor().listenUNIXDatagram(path, p);
    PlainSocket bound(AF_UNIX), unbound(AF_UNIX);
    bound.bind(clientPath);
    unbound.sendToPath("first", path);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return p->received.size() == 1; }));
    EXPECT_EQ(p->received[0].from, Address(UNIXAddress("")));
    bound.sendToPath("named", path);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return p->received.size() == 2; }));
    EXPECT_EQ(p->received[1].from, Address(UNIXAddress(clientPath)));
    ASSERT_TRUE(stopAndWait(reactor(), *port));
    port->startListening();
    unbound.sendToPath("after restart", path);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return p->received.size() == 3; }));
    EXPECT_EQ(p->received[2].from, Address(UNIXAddress("")));
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_24_receiveIsBoundedPerEvent) {
    // UNIX-24: reading is bounded per event as UDP-6 says (maxThroughput), and batched.
    auto p = std::make_shared<RecordingDatagram>();
    const std::string path = dir.file("server");
    auto port = reactor().listenUNIXDatagram(path, p);
    port->maxThroughput = 8 * 1024;
    PlainSocket client(AF_UNIX);
    for (int i = 0; i < 6; ++i) ASSERT_EQ(client.sendToPath(std::string(2048, 'a' + i), path), 2048);
    reactor().iterate(0);
    EXPECT_EQ(p->received.size(), 4u);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return p->received.size() == 6; }));
    EXPECT_EQ(p->received[5].data[0], 'f');
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_24_oversizedDatagramIsDroppedAndLogged) {
    // UNIX-24 with UDP-7: a datagram longer than maxPacketSize is dropped and logged, not cut.
    auto p = std::make_shared<RecordingDatagram>();
    const std::string path = dir.file("server");
    auto port = reactor().listenUNIXDatagram(path, p, 16);
    PlainSocket client(AF_UNIX);
    client.sendToPath(std::string(17, 'x'), path);
    client.sendToPath("fits", path);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return !p->received.empty(); }));
    EXPECT_EQ(p->received[0].data, "fits");
    EXPECT_EQ(port->truncatedDatagrams(), 1u);
    EXPECT_FALSE(logs.flush(log::Level::warn).empty());
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_25_writeOutcomes) {
    // UNIX-25: EINTR retried; EMSGSIZE → MessageLengthError; would-block → 0 and counted; other errors thrown.
    auto p = std::make_shared<RecordingDatagram>();
    const std::string path = dir.file("server"), peerPath = dir.file("peer");
    auto port = reactor().listenUNIXDatagram(path, p);
    PlainSocket peer(AF_UNIX);
    peer.bind(peerPath);
    EXPECT_THROW(port->write(asBytes(std::string(1 << 20, 'x')), peerPath), MessageLengthError);
    {
        ScopedFaults faults;
        faults.onlyFd(port->getHandle());
        faults.fail(Call::sendmsg, EINTR).pass(Call::sendmsg).fail(Call::sendmsg, EAGAIN);
        EXPECT_EQ(port->write(asBytes("retried"), peerPath), 7u);
        EXPECT_EQ(port->write(asBytes("dropped"), peerPath), 0u);
        EXPECT_EQ(port->droppedDatagrams(), 1u);
    }
    EXPECT_EQ(peer.receive(), std::optional<std::string>("retried"));
    EXPECT_EQ(peer.receive(0.05), std::nullopt);
    // Nobody at the path, and a dead socket's leftover file: errors the caller sees, naming the path.
    const std::string nobody = dir.file("nobody");
    try {
        port->write(asBytes("x"), nobody);
        FAIL() << "expected an error";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
        EXPECT_NE(std::string(e.what()).find(nobody), std::string::npos);
    }
    {
        PlainSocket gone(AF_UNIX);
        gone.bind(dir.file("gone"));
    }
    try {
        port->write(asBytes("x"), dir.file("gone"));
        FAIL() << "expected an error";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ECONNREFUSED);
        EXPECT_NE(std::string(e.what()).find("no process listens"), std::string::npos) << e.what();
    }
    // A regular file at the path is refused alike by the kernel; the message tells the two apart.
    const std::string plain = dir.file("plain");
    { std::ofstream(plain) << "data"; }
    try {
        port->write(asBytes("x"), plain);
        FAIL() << "expected an error";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ECONNREFUSED);
        EXPECT_NE(std::string(e.what()).find("is not a socket"), std::string::npos) << e.what();
    }
    EXPECT_EQ(slurp(plain), "data");
    EXPECT_EQ(p->refused, 0);
    EXPECT_THROW(port->write(asBytes("x"), IPv4Address("UDP", "127.0.0.1", 9)), InvalidAddressError);
    EXPECT_THROW(port->write(asBytes("x")), InvalidAddressError);
    EXPECT_TRUE(port->listening());
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_26_aStoppedPortLeavesTheFileOfANewerPortAtItsPath) {
    // A stops, its file is removed, B binds the same path before A's close: A's close removed B's file.
    const std::string path = dir.file("shared");
    auto a = reactor().listenUNIXDatagram(path, std::make_shared<RecordingDatagram>());
    bool stopped = false;
    a->stopListening().addCallback([&] { stopped = true; });
    ASSERT_EQ(::unlink(path.c_str()), 0);
    auto b = reactor().listenUNIXDatagram(path, std::make_shared<RecordingDatagram>());
    ASSERT_TRUE(spinUntil(reactor(), [&] { return stopped; }));
    EXPECT_TRUE(std::filesystem::exists(path)) << "the newer port's socket file was removed";
    ASSERT_TRUE(stopAndWait(reactor(), *b));
    EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_P(UNIXDatagramTest, UNIX_26_stopListeningLaterClosesAndRemovesTheFile) {
    // UNIX-26: stopListening is UDP-20's (Deferred, stopProtocol later); Better than Twisted: the file is removed.
    auto p = std::make_shared<RecordingDatagram>();
    const std::string path = dir.file("server");
    auto port = reactor().listenUNIXDatagram(path, p);
    bool fired = false;
    port->stopListening().addCallback([&] { fired = true; });
    EXPECT_TRUE(exists(path));  // still there right after the request
    EXPECT_EQ(p->stopped, 0);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return fired; }));
    EXPECT_EQ(p->stopped, 1);
    EXPECT_FALSE(exists(path));
    // Listening again works (the path is free), and a file someone else removed first is no error.
    port->startListening();
    EXPECT_TRUE(exists(path));
    ::unlink(path.c_str());
    ASSERT_TRUE(stopAndWait(reactor(), *port));
    EXPECT_TRUE(logs.flush(log::Level::warn).empty());
}

TEST_P(UNIXDatagramTest, UNIX_27_getHostAndStringForm) {
    // UNIX-27: getHost() is UNIXAddress(path); repr names the protocol and the path, then "(not listening)".
    auto p = std::make_shared<RecordingDatagram>();
    const std::string path = dir.file("server");
    auto port = reactor().listenUNIXDatagram(path, p);
    EXPECT_EQ(port->getHost(), Address(UNIXAddress(path)));
    EXPECT_EQ(port->repr(), "<weft::test::RecordingDatagram on '" + path + "'>");
    ASSERT_TRUE(stopAndWait(reactor(), *port));
    EXPECT_EQ(port->repr(), "<weft::test::RecordingDatagram (not listening)>");
}

TEST_P(UNIXDatagramTest, UNIX_28_connectBindsConnectsAndStartsBeforeReturning) {
    // UNIX-28: bind to bindAddress (mode applied), connect, attach and read — before returning.
    auto server = std::make_shared<RecordingDatagram>();
    const std::string path = dir.file("server"), clientPath = dir.file("client");
    auto serverPort = reactor().listenUNIXDatagram(path, server);
    auto client = std::make_shared<RecordingConnectedDatagram>();
    auto clientPort = reactor().connectUNIXDatagram(path, client, 8192, 0600, clientPath);
    EXPECT_EQ(client->started, 1);
    EXPECT_EQ(client->failed, 0);
    EXPECT_TRUE(reactor().isReading(clientPort.get()));
    EXPECT_EQ(modeOf(clientPath) & 07777, 0600u);
    EXPECT_EQ(clientPort->getHost(), Address(UNIXAddress(clientPath)));
    EXPECT_EQ(clientPort->getPeer(), Address(UNIXAddress(path)));
    EXPECT_EQ(clientPort->write(asBytes("up")), 2u);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return !server->received.empty(); }));
    EXPECT_EQ(server->received[0].from, Address(UNIXAddress(clientPath)));
    serverPort->write(asBytes("down"), clientPath);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return !client->received.empty(); }));
    EXPECT_EQ(client->received[0], "down");
    ASSERT_TRUE(stopAndWait(reactor(), *clientPort));
    EXPECT_FALSE(exists(clientPath));  // the bound file weft made goes too
    ASSERT_TRUE(stopAndWait(reactor(), *serverPort));
}

TEST_P(UNIXDatagramTest, UNIX_28_failuresGoToConnectionFailedNotThrown) {
    // UNIX-28: a failed connect, bind or too-long path is not thrown: connectionFailed(reason), port stopped.
    auto noPeer = std::make_shared<RecordingConnectedDatagram>();
    std::shared_ptr<unix_::ConnectedDatagramPort> port;
    EXPECT_NO_THROW(port = reactor().connectUNIXDatagram(dir.file("nobody"), noPeer));
    EXPECT_EQ(noPeer->failed, 1);
    EXPECT_EQ(noPeer->started, 0);
    ASSERT_TRUE(noPeer->failReason);
    EXPECT_TRUE(noPeer->failReason->check<ConnectError>());
    EXPECT_FALSE(reactor().isReading(port.get()));
    ASSERT_TRUE(spinUntil(reactor(), [&] { return port->getHandle() == -1; }));  // closed on a later iteration

    // A bind address that exists (a regular file): ConnectBindError, the file untouched.
    auto server = std::make_shared<RecordingDatagram>();
    auto serverPort = reactor().listenUNIXDatagram(dir.file("server"), server);
    const std::string busy = dir.file("busy");
    { std::ofstream(busy) << "data"; }
    auto badBind = std::make_shared<RecordingConnectedDatagram>();
    auto port2 = reactor().connectUNIXDatagram(dir.file("server"), badBind, 8192, 0666, busy);
    ASSERT_EQ(badBind->failed, 1);
    EXPECT_TRUE(badBind->failReason->check<ConnectBindError>());
    EXPECT_EQ(slurp(busy), "data");
    ASSERT_TRUE(spinUntil(reactor(), [&] { return port2->getHandle() == -1; }));
    EXPECT_TRUE(exists(busy));

    // A peer path too long for sockaddr_un: a ConnectError that says so.
    auto tooLong = std::make_shared<RecordingConnectedDatagram>();
    reactor().connectUNIXDatagram(dir.file(std::string(200, 'y')), tooLong);
    ASSERT_EQ(tooLong->failed, 1);
    EXPECT_NE(tooLong->failReason->getErrorMessage().find("path too long"), std::string::npos);

    // A peer path that is a regular file: refused, and the message says it is no socket.
    auto toFile = std::make_shared<RecordingConnectedDatagram>();
    reactor().connectUNIXDatagram(busy, toFile);
    ASSERT_EQ(toFile->failed, 1);
    EXPECT_NE(toFile->failReason->getErrorMessage().find("is not a socket"), std::string::npos)
        << toFile->failReason->getErrorMessage();
    ASSERT_TRUE(stopAndWait(reactor(), *serverPort));
}

TEST_P(UNIXDatagramTest, UNIX_29_connectedPortExchangesRefusesAndSurvivesErrors) {
    // UNIX-29: write() goes to the peer (EMSGSIZE throws, would-block drops and counts); ECONNREFUSED
    // calls connectionRefused(); getPeer() is the peer's path.
    const std::string path = dir.file("server");
    auto peer = std::make_unique<PlainSocket>(AF_UNIX);
    peer->bind(path);
    auto client = std::make_shared<RecordingConnectedDatagram>();
    auto port = reactor().connectUNIXDatagram(path, client);  // no bind address
    EXPECT_EQ(port->getPeer(), Address(UNIXAddress(path)));
    EXPECT_EQ(port->write(asBytes("hi")), 2u);
    EXPECT_THROW(port->write(asBytes(std::string(1 << 20, 'x'))), MessageLengthError);
    EXPECT_THROW(port->write(asBytes("x"), UNIXAddress(dir.file("other"))), InvalidAddressError);
    EXPECT_EQ(port->write(asBytes("to peer"), UNIXAddress(path)), 7u);
    EXPECT_EQ(peer->receive(), std::optional<std::string>("hi"));
    EXPECT_EQ(peer->receive(), std::optional<std::string>("to peer"));
    {
        ScopedFaults faults;
        faults.onlyFd(port->getHandle());
        faults.fail(Call::sendmsg, EAGAIN);
        EXPECT_EQ(port->write(asBytes("dropped")), 0u);
        EXPECT_EQ(port->droppedDatagrams(), 1u);
    }
    peer.reset();  // the peer goes away: its path stays, nobody reads it
    ASSERT_TRUE(spinUntil(reactor(), [&] {
        port->write(asBytes("anyone?"));
        return client->refused > 0;
    }));
    EXPECT_TRUE(port->listening());
    ASSERT_TRUE(stopAndWait(reactor(), *port));
}

TEST_P(UNIXDatagramTest, UNIX_29_exceptionInDatagramReceivedIsLoggedAndReadingContinues) {
    // UNIX-29: datagramReceived(data) gets no address; an exception is logged and the next datagram arrives.
    const std::string path = dir.file("server"), clientPath = dir.file("client");
    auto server = std::make_shared<RecordingDatagram>();
    auto serverPort = reactor().listenUNIXDatagram(path, server);
    auto client = std::make_shared<RecordingConnectedDatagram>();
    client->onDatagram = [](RecordingConnectedDatagram& self, const std::string&) {
        if (self.received.size() == 1) throw std::runtime_error("first one fails");
    };
    auto port = reactor().connectUNIXDatagram(path, client, 8192, 0666, clientPath);
    serverPort->write(asBytes("one"), clientPath);
    serverPort->write(asBytes("two"), clientPath);
    ASSERT_TRUE(spinUntil(reactor(), [&] { return client->received.size() == 2; }));
    EXPECT_EQ(client->received[1], "two");
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
    EXPECT_TRUE(port->listening());
    ASSERT_TRUE(stopAndWait(reactor(), *port));
    ASSERT_TRUE(stopAndWait(reactor(), *serverPort));
}

}  // namespace
