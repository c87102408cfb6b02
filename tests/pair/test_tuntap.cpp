// pair.md TUN-1..TUN-16: TuntapPort, on every backend.
//
// The port's logic (TUN-1 … TUN-14, TUN-16) runs against MemoryIOSystem, an
// in-memory /dev/net/tun whose descriptors are eventfds the reactor really
// watches, with no privileges (Twisted's TunnelTestsMixin). What the kernel
// does (TUN-2 … TUN-7, TUN-15) runs on real devices, each test in a network
// namespace of its own that it creates (unshare) and leaves (setns back: the
// namespace and every interface in it go away with the last reference); those
// tests skip, saying why, when the machine cannot make one.
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>
#include <algorithm>
#include <poll.h>

using namespace std::string_literals;

#include <weft/internet/error.hpp>
#include <weft/internet/process.hpp>
#include <weft/pair/ethernet.hpp>
#include <weft/pair/ip.hpp>
#include <weft/pair/rawudp.hpp>
#include <weft/pair/testing.hpp>
#include <weft/pair/tuntap.hpp>

#include "support/faults.hpp"
#include "support/reactortest.hpp"
#include "support/udphelpers.hpp"

using namespace weft;
using namespace weft::pair;
using weft::error::CannotListenError;
using weft::test::RecordingDatagram;
namespace pt = weft::pair::testing;

namespace {

// ---- protocols that record what happens ------------------------------------------------

struct Packet {
    std::string data;
    bool partial;
    bool linkLayer;  // dest, source or protocol given
    friend bool operator==(const Packet&, const Packet&) = default;
};

std::ostream& operator<<(std::ostream& os, const Packet& p) {
    return os << "{" << ::testing::PrintToString(p.data.substr(0, 40)) << (p.data.size() > 40 ? "…" : "") << " ("
              << p.data.size() << " bytes), partial=" << p.partial << ", link=" << p.linkLayer << "}";
}

// Hooks every callback a port makes into its protocol.
template <class Base>
struct Hooks : Base {
    std::vector<Packet> received;
    int started = 0, stopped = 0;
    std::function<void()> onStart, onStop;
    std::function<void(const Packet&)> onPacket;
    void startProtocol() override {
        ++started;
        if (onStart) onStart();
    }
    void stopProtocol() override {
        ++stopped;
        if (onStop) onStop();
    }
    void record(Packet p) {
        received.push_back(std::move(p));
        if (onPacket) onPacket(received.back());
    }
};

// Twisted's IPRecordingProtocol: a TUN port's protocol.
class IPRecording : public Hooks<AbstractDatagramProtocol>, public IRawPacketProtocol {
public:
    void addProto(std::int64_t num, std::shared_ptr<IRawDatagramProtocol>) override { added.push_back(num); }
    void datagramReceived(Bytes data, bool partial, Bytes dest, Bytes source,
                          std::optional<std::uint16_t> protocol) override {
        record({std::string(asText(data)), partial, !dest.empty() || !source.empty() || protocol.has_value()});
    }
    std::vector<std::int64_t> added;
};

// Twisted's EthernetRecordingProtocol: a TAP port's protocol.
class EthernetRecording : public Hooks<EthernetProtocol> {
public:
    void datagramReceived(Bytes frame, bool partial) override { record({std::string(asText(frame)), partial, false}); }
};

// A TUN protocol whose datagramReceived throws.
class ThrowingIP : public IPRecording {
public:
    void datagramReceived(Bytes data, bool partial, Bytes dest, Bytes source,
                          std::optional<std::uint16_t> protocol) override {
        IPRecording::datagramReceived(data, partial, dest, source, protocol);
        if (received.size() == 1) throw std::runtime_error("broken application logic");
    }
};

std::string qualifiedName(const AbstractDatagramProtocol& p) { return demangle(typeid(p).name()); }

// Fires-once flag for a Deferred<void>.
struct Fired {
    bool fired = false;
    std::optional<Failure> failure;
};
std::shared_ptr<Fired> watch(Deferred<void> d) {
    auto out = std::make_shared<Fired>();
    d.addBoth([out](Result<void> r) {
        out->fired = true;
        if (!r.ok()) out->failure = r.failure();
    });
    return out;
}

// ---- the port against MemoryIOSystem ----------------------------------------------------

class TuntapTest : public weft::test::ReactorTest {
protected:
    void SetUp() override {
        ReactorTest::SetUp();
        system = std::make_shared<pt::MemoryIOSystem>();
    }
    void TearDown() override {
        system.reset();  // its tunnels' eventfds, before the leak check
        ReactorTest::TearDown();
    }

    template <class P>
    std::shared_ptr<TuntapPort> makePort(std::shared_ptr<P> p, std::string name = "tun0",
                                         std::size_t maxPacketSize = 8192) {
        return std::make_shared<TuntapPort>(reactor(), std::move(name), std::move(p), maxPacketSize, system);
    }
    // Stops the port and runs the loop until it has closed.
    void stop(TuntapPort& port) { ASSERT_TRUE(stopListeningAndWait(port)); }

    std::shared_ptr<pt::MemoryIOSystem> system;
};
INSTANTIATE_TEST_SUITE_P(Backends, TuntapTest, weft::test::allBackends(), weft::test::backendParamName);

TEST_P(TuntapTest, TUN_1_anEthernetProtocolGetsATapAndAnyOtherATun) {
    // TUN-1: a protocol providing IEthernetProtocol opens a TAP; one providing only IRawPacketProtocol a TUN.
    static_assert(!std::is_constructible_v<TuntapPort, Reactor&, std::string, std::shared_ptr<DatagramProtocol>>,
                  "a protocol providing neither interface does not compile");
    auto tap = makePort(std::make_shared<EthernetRecording>(), "tap0");
    auto tun = makePort(std::make_shared<IPRecording>(), "tun0");
    auto ip = makePort(std::make_shared<IPProtocol>(), "tun1");
    EXPECT_EQ(tap->type(), TunnelType::tap);
    EXPECT_EQ(tun->type(), TunnelType::tun);
    EXPECT_EQ(ip->type(), TunnelType::tun);
    tap->startListening();
    tun->startListening();
    EXPECT_EQ(system->getTunnel(*tap).tunnelMode, static_cast<std::uint16_t>(TunnelFlags::tap | TunnelFlags::noPI));
    EXPECT_EQ(system->getTunnel(*tun).tunnelMode, static_cast<std::uint16_t>(TunnelFlags::tun | TunnelFlags::noPI));
    stop(*tap);
    stop(*tun);
}

TEST_P(TuntapTest, TUN_2_startListeningOpensTheDeviceNonBlockingAndCloseOnExec) {
    // TUN-2: /dev/net/tun opened O_RDWR|O_CLOEXEC|O_NONBLOCK; TUNSETIFF gets the name NUL-padded to 16 bytes.
    auto port = makePort(std::make_shared<IPRecording>());
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    EXPECT_EQ(tunnel.openFlags, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    EXPECT_EQ(tunnel.requestedName, std::string("tun0") + std::string(interfaceNameSize - 4, '\0'));
    EXPECT_EQ(tunnel.name, port->interface());
    EXPECT_FALSE(tunnel.blocking());
    EXPECT_TRUE(tunnel.closeOnExec());
    EXPECT_EQ(port->fileno(), tunnel.fd);
    stop(*port);
}

TEST_P(TuntapTest, TUN_2_aBlockingReadOfAnEmptyMemoryTunnelSaysItWouldNeverReturn) {
    // TUN-2's double: a tunnel opened without O_NONBLOCK cannot block in memory (nothing could fill it
    // meanwhile), so an empty read throws a logic_error that says so; with a packet queued it reads it.
    int fd = system->open(tunDevicePath, O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    auto& tunnel = system->getTunnel(fd);
    EXPECT_TRUE(tunnel.blocking());
    char buffer[64];
    try {
        system->read(fd, buffer, sizeof buffer);
        ADD_FAILURE() << "an empty blocking read returned";
    } catch (const std::logic_error& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("would wait forever"));
    }
    tunnel.tunnelMode = static_cast<std::uint16_t>(TunnelFlags::tun | TunnelFlags::noPI);
    tunnel.queueRead(asBytes("packet"));
    EXPECT_EQ(system->read(fd, buffer, sizeof buffer), 6);
    EXPECT_EQ(std::string(buffer, 6), "packet");
    EXPECT_EQ(system->close(fd), 0);
}

TEST_P(TuntapTest, TUN_2_startListeningSetsConnected) {
    // TUN-2: connected is set by startListening (and not before).
    auto port = makePort(std::make_shared<IPRecording>());
    EXPECT_FALSE(port->connected());
    port->startListening();
    EXPECT_TRUE(port->connected());
    stop(*port);
}

TEST_P(TuntapTest, TUN_2_startListeningConnectsTheProtocolThenStartsReading) {
    // TUN-2: makeConnection(port) → startProtocol, and only then the port reads; listening twice is a no-op.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    bool readingAtStart = true;
    p->onStart = [&] { readingAtStart = reactor().isReading(port.get()); };
    port->startListening();
    EXPECT_EQ(p->transport.get(), static_cast<IDatagramTransport*>(port.get()));
    EXPECT_EQ(p->started, 1);
    EXPECT_FALSE(readingAtStart);
    EXPECT_TRUE(reactor().isReading(port.get()));
    int fd = port->fileno();
    port->startListening();
    EXPECT_EQ(port->fileno(), fd);
    EXPECT_EQ(system->openCount(), 1u);
    EXPECT_EQ(p->started, 1);
    stop(*port);
}

TEST_P(TuntapTest, TUN_2_packetsReachTheProtocolThroughTheReactor) {
    // TUN-2, TUN-6: once listening, a packet queued on the device is read when the reactor sees it readable.
    for (bool tap : {false, true}) {
        auto ip = std::make_shared<IPRecording>();
        auto ether = std::make_shared<EthernetRecording>();
        auto port = tap ? makePort(ether, "tap0") : makePort(ip, "tun0");
        port->startListening();
        auto& tunnel = system->getTunnel(*port);
        for (const char* p : {"one", "two", "three"}) tunnel.queueRead(asBytes(p));
        auto& received = tap ? ether->received : ip->received;
        ASSERT_TRUE(spinUntil([&] { return received.size() == 3; }, 5)) << "tap=" << tap;
        EXPECT_EQ(received,
                  (std::vector<Packet>{{"one", false, false}, {"two", false, false}, {"three", false, false}}));
        EXPECT_EQ(tunnel.pendingReads(), 0u);
        stop(*port);
    }
}

TEST_P(TuntapTest, TUN_2_withoutASystemThePortUsesTheKernel) {
    // TUN-2: with no System given, the port uses realSystem() (the kernel through weft's syscall seam).
    auto port = std::make_shared<TuntapPort>(reactor(), "tun0", std::make_shared<IPRecording>());
    EXPECT_EQ(port->system(), realSystem());
    EXPECT_EQ(realSystem(), realSystem());
}

TEST_P(TuntapTest, TUN_3_thePortAlwaysAsksForNoPacketInformation) {
    // TUN-3: the port sets IFF_NO_PI, so what it reads has no prefix; the same tunnel without it reads 00 00 08 00 first.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    EXPECT_TRUE(tunnel.tunnelMode & static_cast<std::uint16_t>(TunnelFlags::noPI));
    std::string packet = pt::ip("10.0.0.1", "10.0.0.2", asBytes(pt::udp(1, 2, asBytes("x"))));
    tunnel.queueRead(asBytes(packet));
    port->doRead();
    EXPECT_EQ(p->received, (std::vector<Packet>{{packet, false, false}}));

    // A descriptor attached without IFF_NO_PI (as the system model has it, checked on a real device below).
    int fd = system->open(tunDevicePath, O_RDWR | O_NONBLOCK);
    ASSERT_GE(fd, 0);
    ifreq req{};
    std::strcpy(req.ifr_name, "tun9");
    req.ifr_flags = static_cast<short>(TunnelFlags::tun);
    ASSERT_EQ(system->ioctl(fd, tunSetIff, &req), 0);
    system->getTunnel(fd).queueRead(asBytes(packet));
    char buffer[100];
    ssize_t n = system->read(fd, buffer, sizeof buffer);
    ASSERT_EQ(n, static_cast<ssize_t>(packetInformationSize + packet.size()));
    EXPECT_EQ(std::string(buffer, packetInformationSize), std::string("\x00\x00\x08\x00", 4));
    EXPECT_EQ(std::string(buffer + packetInformationSize, packet.size()), packet);
    // A packet cut to the buffer: TUN_PKT_STRIP in the flags word, which the kernel writes in host order.
    system->getTunnel(fd).queueRead(asBytes(packet));
    n = system->read(fd, buffer, packetInformationSize + 8);
    ASSERT_EQ(n, static_cast<ssize_t>(packetInformationSize + 8));
    std::uint16_t flags = 0;
    std::memcpy(&flags, buffer, sizeof flags);
    EXPECT_EQ(flags, 1u);
    EXPECT_EQ(std::string(buffer + 2, 2), std::string("\x08\x00", 2));
    EXPECT_EQ(system->close(fd), 0);
    stop(*port);
}

TEST_P(TuntapTest, TUN_4_percentDOrAnEmptyNameLetsTheSystemChoose) {
    // TUN-4: "tun%d" and "" become the first free tunN/tapN; interface() and getHost() report the chosen name.
    auto a = makePort(std::make_shared<IPRecording>(), "weft%d");
    auto b = makePort(std::make_shared<IPRecording>(), "weft%d");
    auto c = makePort(std::make_shared<IPRecording>(), "");
    auto d = makePort(std::make_shared<EthernetRecording>(), "");
    for (auto* port : {a.get(), b.get(), c.get(), d.get()}) port->startListening();
    EXPECT_EQ(a->interface(), "weft0");
    EXPECT_EQ(b->interface(), "weft1");
    EXPECT_EQ(c->interface(), "tun0");
    EXPECT_EQ(d->interface(), "tap0");
    EXPECT_EQ(a->getHost(), Address(TunnelAddress(TunnelType::tun, "weft0")));
    EXPECT_EQ(d->getHost(), Address(TunnelAddress(TunnelType::tap, "tap0")));
    for (auto* port : {a.get(), b.get(), c.get(), d.get()}) stop(*port);
}

// What startListening threw, checked as TUN-5 says.
void expectCannotListen(TuntapPort& port, int errnoValue, const std::vector<std::string>& words) {
    try {
        port.startListening();
        ADD_FAILURE() << "expected CannotListenError";
    } catch (const CannotListenError& e) {
        EXPECT_EQ(e.socketError().value(), errnoValue) << e.what();
        EXPECT_EQ(e.port, port.interface());
        EXPECT_EQ(e.interface, "");
        std::string what = e.what();
        EXPECT_NE(what.find("'" + port.interface() + "'"), std::string::npos) << what;
        for (auto& w : words) EXPECT_NE(what.find(w), std::string::npos) << "no '" << w << "' in: " << what;
    }
    EXPECT_FALSE(port.connected());
    EXPECT_EQ(port.fileno(), -1);
}

TEST_P(TuntapTest, TUN_5_anOpenFailureThrowsCannotListenErrorAndLeavesNothing) {
    // TUN-5: open failing (EPERM here) throws CannotListenError naming the interface; the port stays unconnected.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    system->permissions.erase("open");
    expectCannotListen(*port, EPERM, {"EPERM", "CAP_NET_ADMIN"});
    EXPECT_EQ(p->started, 0);
    EXPECT_EQ(p->transport, nullptr);
    EXPECT_EQ(system->openCount(), 0u);
}

TEST_P(TuntapTest, TUN_5_aConfigureFailureThrowsAndClosesTheDevice) {
    // TUN-5: TUNSETIFF failing throws CannotListenError; the descriptor opened for it is closed again.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    system->permissions.erase("ioctl");
    expectCannotListen(*port, EPERM, {"not permitted"});
    EXPECT_EQ(system->openCount(), 0u);
    EXPECT_EQ(p->started, 0);
}

TEST_P(TuntapTest, TUN_5_noTunSupportSaysSo) {
    // TUN-5: no /dev/net/tun (ENOENT) is reported as a system without tun/tap support.
    auto port = makePort(std::make_shared<IPRecording>());
    system->unregisterSpecialDevice(tunDevicePath);
    expectCannotListen(*port, ENOENT, {"no tun/tap support", "ENOENT"});
}

TEST_P(TuntapTest, TUN_5_aTakenNameIsEBUSYAndTheOtherTypeEINVAL) {
    // TUN-5: a name attached already (same type) fails with EBUSY, one of the other type with EINVAL; both say so.
    auto first = makePort(std::make_shared<IPRecording>(), "tun0");
    first->startListening();
    auto again = makePort(std::make_shared<IPRecording>(), "tun0");
    expectCannotListen(*again, EBUSY, {"already attached", "EBUSY"});
    auto asTap = makePort(std::make_shared<EthernetRecording>(), "tun0");
    expectCannotListen(*asTap, EINVAL, {"is not a TAP device", "EINVAL"});
    EXPECT_EQ(system->openCount(), 1u);
    stop(*first);
}

TEST_P(TuntapTest, TUN_5_aNameTooLongIsRefusedBeforeAnythingIsOpened) {
    // TUN-5, Better than Twisted: a name over 15 bytes (which the kernel would cut), or with a '%' that is not one
    // "%d" (which the kernel refuses with the EINVAL that also means "the other type"), throws std::invalid_argument at once.
    weft::test::ScopedFaults faults;  // counts every open(2) through the seam
    auto p = std::make_shared<IPRecording>();
    for (std::string bad : {std::string(16, 'x'), std::string(20, 'x'), std::string("a/b"), std::string("a b"),
                            std::string("a:b"), std::string("."), std::string(".."), std::string("a\0b", 3),
                            std::string("tun%d%d"), std::string("tun%s"), std::string("tun%"), std::string("%%d"),
                            std::string("a\xA0"
                                        "b")}) {  // the kernel's isspace() counts no-break space
        try {
            TuntapPort port(reactor(), bad, p, 8192, system);
            ADD_FAILURE() << "accepted " << ::testing::PrintToString(bad);
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find("bad interface name"), std::string::npos) << e.what();
        }
        try {
            TuntapPort port(reactor(), bad, p);  // the kernel: nothing may reach open(2)
            ADD_FAILURE() << "accepted " << ::testing::PrintToString(bad);
        } catch (const std::invalid_argument&) {}
    }
    try {
        TuntapPort port(reactor(), std::string(20, 'x'), p);
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find(std::string(20, 'x')), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("at most 15"), std::string::npos) << e.what();
    }
    EXPECT_EQ(faults.calls(weft::test::Call::open), 0u);
    EXPECT_EQ(system->openCount(), 0u);
    EXPECT_EQ(p->transport, nullptr);
    auto longest = makePort(std::make_shared<IPRecording>(), std::string(15, 'x'));  // 15 bytes are fine
    longest->startListening();
    EXPECT_EQ(longest->interface(), std::string(15, 'x'));
    stop(*longest);
}

TEST_P(TuntapTest, TUN_6_aSmallDatagramIsDeliveredWhole) {
    // TUN-6: a packet shorter than maxPacketSize is delivered as read, partial = false (Twisted test_doReadSmallDatagram).
    for (bool tap : {false, true}) {
        auto ip = std::make_shared<IPRecording>();
        auto ether = std::make_shared<EthernetRecording>();
        auto port = tap ? makePort(ether, "tap0") : makePort(ip, "tun0");
        std::string datagram(port->maxPacketSize() - 1, 'x');
        port->startListening();
        system->getTunnel(*port).queueRead(asBytes(datagram));
        port->doRead();
        EXPECT_EQ(tap ? ether->received : ip->received, (std::vector<Packet>{{datagram, false, false}}));
        stop(*port);
    }
}

TEST_P(TuntapTest, TUN_6_aLargeDatagramIsCutToMaxPacketSizeAndMarkedPartial) {
    // TUN-6, Better than Twisted: a packet over maxPacketSize is delivered cut to it, with partial = true.
    for (bool tap : {false, true}) {
        auto ip = std::make_shared<IPRecording>();
        auto ether = std::make_shared<EthernetRecording>();
        auto port = tap ? makePort(ether, "tap0") : makePort(ip, "tun0");
        std::string datagram(port->maxPacketSize(), 'x');
        port->startListening();
        auto& tunnel = system->getTunnel(*port);
        tunnel.queueRead(asBytes(datagram + "y"));
        tunnel.queueRead(asBytes(datagram));  // exactly maxPacketSize: whole
        port->doRead();
        EXPECT_EQ(tap ? ether->received : ip->received,
                  (std::vector<Packet>{{datagram, true, false}, {datagram, false, false}}));
        stop(*port);
    }
}

TEST_P(TuntapTest, TUN_6_oneReadableEventReadsUpToMaxThroughput) {
    // TUN-6: doRead reads packets until maxThroughput (256 KiB) bytes; the rest waits for the next event.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    EXPECT_EQ(port->maxThroughput, 256u * 1024);
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    std::vector<Packet> expected;
    for (std::size_t total = 0, i = 0; total < port->maxThroughput; total += port->maxPacketSize(), ++i) {
        std::string datagram(port->maxPacketSize(), static_cast<char>('a' + i % 26));
        tunnel.queueRead(asBytes(datagram));
        expected.push_back({datagram, false, false});
    }
    tunnel.queueRead(asBytes("excessive datagram, not to be read"));
    port->doRead();
    EXPECT_EQ(p->received.size(), 32u);
    EXPECT_EQ(p->received, expected);
    EXPECT_EQ(tunnel.pendingReads(), 1u);
    port->doRead();
    ASSERT_EQ(p->received.size(), 33u);
    EXPECT_EQ(p->received.back().data, "excessive datagram, not to be read");
    stop(*port);
}

TEST_P(TuntapTest, TUN_6_wouldBlockAndInterruptedReadsEndTheEventQuietly) {
    // TUN-6: EAGAIN, EWOULDBLOCK or EINTR from read ends doRead with nothing delivered and nothing logged.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    port->startListening();
    for (int e : {EAGAIN, EWOULDBLOCK, EINTR}) {
        system->getTunnel(*port).readErrno = e;
        EXPECT_EQ(port->doRead(), std::nullopt) << e;
    }
    EXPECT_TRUE(p->received.empty());
    EXPECT_TRUE(port->connected());
    stop(*port);
}

TEST_P(TuntapTest, TUN_7_anyOtherReadErrorPropagatesOutOfDoRead) {
    // TUN-7: another errno (EPERM) leaves doRead as std::system_error naming the device; so does a non-errno exception.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    tunnel.readErrno = EPERM;
    try {
        port->doRead();
        ADD_FAILURE() << "expected std::system_error";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EPERM);
        EXPECT_NE(std::string(e.what()).find("tun device 'tun0'"), std::string::npos) << e.what();
    }
    struct Unexpected : std::exception {};
    tunnel.readThrows = std::make_exception_ptr(Unexpected{});
    EXPECT_THROW(port->doRead(), Unexpected);
    EXPECT_TRUE(p->received.empty());
    stop(*port);
}

TEST_P(TuntapTest, TUN_7_aReadErrorEndsThePortThroughTheReactor) {
    // TUN-7: when doRead throws, the reactor logs it and ends the port: closed, protocol stopped, transport unset.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    tunnel.readErrno = EIO;
    int fd = port->fileno();
    tunnel.queueRead(asBytes("last"));  // readable; the read after it fails
    ASSERT_TRUE(spinUntil([&] { return p->stopped == 1; }, 5));
    EXPECT_EQ(p->received, (std::vector<Packet>{{"last", false, false}}));
    EXPECT_FALSE(port->connected());
    EXPECT_FALSE(system->isOpen(fd));
    EXPECT_EQ(p->transport, nullptr);
    auto errors = logs.flush(log::Level::error);
    ASSERT_EQ(errors.size(), 1u);
    ASSERT_TRUE(errors[0].failure);
    EXPECT_NE(errors[0].failure->getErrorMessage().find("tun device 'tun0'"), std::string::npos)
        << errors[0].failure->getErrorMessage();
}

TEST_P(TuntapTest, TUN_8_anExceptionFromDatagramReceivedIsLoggedNamingTheProtocolAndReadingGoesOn) {
    // TUN-8: "Unhandled exception from <qualified class>.datagramReceived" is logged; the next packet is still read.
    auto p = std::make_shared<ThrowingIP>();
    auto port = makePort(p);
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    tunnel.queueRead(asBytes("ping"));
    tunnel.queueRead(asBytes("pong"));
    port->doRead();
    EXPECT_EQ(p->received, (std::vector<Packet>{{"ping", false, false}, {"pong", false, false}}));
    auto errors = logs.flush(log::Level::error);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].message, "Unhandled exception from " + qualifiedName(*p) + ".datagramReceived");
    EXPECT_EQ(errors[0].prefix, port->logPrefix());
    ASSERT_TRUE(errors[0].failure);
    EXPECT_TRUE(errors[0].failure->check<std::runtime_error>());
    EXPECT_TRUE(port->connected());
    stop(*port);
}

TEST_P(TuntapTest, TUN_9_writeSendsOnePacketAtOnce) {
    // TUN-9: write() writes the packet into the device immediately and returns its length; so does the transport's.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    EXPECT_EQ(port->write("a b c d e f g"), 13u);
    EXPECT_EQ(tunnel.writeBuffer, std::deque<std::string>{"a b c d e f g"});
    EXPECT_EQ(p->transport->write(asBytes("via the transport")), 17u);
    EXPECT_EQ(port->write(asBytes("to itself"), port->getHost()), 9u);
    EXPECT_EQ(tunnel.writeBuffer.size(), 3u);
    EXPECT_THROW(port->write(asBytes("elsewhere"), IPv4Address("UDP", "10.0.0.1", 1)),
                 weft::error::InvalidAddressError);
    EXPECT_THROW(port->write(asBytes("elsewhere"), TunnelAddress(TunnelType::tun, "tun7")),
                 weft::error::InvalidAddressError);
    EXPECT_EQ(tunnel.writeBuffer.size(), 3u);
    stop(*port);
    EXPECT_EQ(port->write("after the close"), 0u);  // a closed transport is inert
}

TEST_P(TuntapTest, TUN_9_anInterruptedWriteIsRetried) {
    // TUN-9: EINTR from write is retried until the packet goes through.
    auto port = makePort(std::make_shared<IPRecording>());
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    tunnel.pendingSignals = 2;
    EXPECT_EQ(port->write("hello, world"), 12u);
    EXPECT_EQ(tunnel.writeBuffer, std::deque<std::string>{"hello, world"});
    EXPECT_EQ(tunnel.pendingSignals, 0);
    stop(*port);
}

TEST_P(TuntapTest, TUN_9_everyOtherWriteErrorIsThrownNamingTheDevice) {
    // TUN-9: ENOBUFS, EAGAIN, EINVAL … from write are thrown (std::system_error) naming the interface and the size.
    auto port = makePort(std::make_shared<IPRecording>());
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    auto expectError = [&](int e, const std::string& packet) {
        try {
            port->write(packet);
            ADD_FAILURE() << "expected errno " << e;
        } catch (const std::system_error& err) {
            EXPECT_EQ(err.code().value(), e);
            EXPECT_NE(std::string(err.what()).find("tun device 'tun0'"), std::string::npos) << err.what();
            EXPECT_NE(std::string(err.what()).find(std::to_string(packet.size()) + " bytes"), std::string::npos);
        }
    };
    expectError(ENOBUFS, std::string(pt::Tunnel::SEND_BUFFER_SIZE, 'x') + "y");
    tunnel.writeErrno = EAGAIN;
    expectError(EAGAIN, "full");
    tunnel.writeErrno = EINVAL;
    expectError(EINVAL, "malformed");
    EXPECT_TRUE(tunnel.writeBuffer.empty());
    stop(*port);
}

TEST_P(TuntapTest, TUN_9_writeSequenceWritesTheConcatenationAsOnePacket) {
    // TUN-9: writeSequence(["a","b","c","d"]) writes one packet "abcd".
    auto port = makePort(std::make_shared<IPRecording>());
    port->startListening();
    std::vector<Bytes> parts{asBytes("a"), asBytes("b"), asBytes("c"), asBytes("d")};
    EXPECT_EQ(port->writeSequence(parts), 4u);
    std::vector<Bytes> one{asBytes("single")};
    EXPECT_EQ(port->writeSequence(one), 6u);
    EXPECT_EQ(system->getTunnel(*port).writeBuffer, (std::deque<std::string>{"abcd", "single"}));
    stop(*port);
}

TEST_P(TuntapTest, TUN_10_stopListeningStopsReadingAtOnceAndFiresAfterTheClose) {
    // TUN-10: reading stops at once; on a later iteration the device closes, doStop runs, then the Deferred fires (null).
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    port->startListening();
    int fd = port->fileno();
    bool closedWhenStopped = false;
    p->onStop = [&] { closedWhenStopped = !system->isOpen(fd) && !port->connected(); };
    auto fired = watch(port->stopListening());
    EXPECT_FALSE(reactor().isReading(port.get()));
    EXPECT_FALSE(fired->fired);
    EXPECT_TRUE(port->connected());  // until the close
    ASSERT_TRUE(spinUntil([&] { return fired->fired; }, 5));
    EXPECT_FALSE(fired->failure);
    EXPECT_TRUE(closedWhenStopped);
    EXPECT_FALSE(system->isOpen(fd));
    EXPECT_FALSE(port->connected());
    EXPECT_EQ(p->transport, nullptr);
    EXPECT_EQ(p->stopped, 1);
}

TEST_P(TuntapTest, TUN_10_startListeningWhileAStopIsPendingThrows) {
    // TUN-10, as Twisted (an assertion) and weft's UDP ports: a start before the pending stop has closed the device
    // throws std::logic_error, instead of returning as if listening while the stop is about to close it.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    port->startListening();
    auto fired = watch(port->stopListening());
    EXPECT_THROW(port->startListening(), std::logic_error);
    ASSERT_TRUE(spinUntil([&] { return fired->fired; }, 5));
    EXPECT_FALSE(port->connected());
    port->startListening();  // once it has stopped, it starts again
    EXPECT_TRUE(port->connected());
    stop(*port);
}

TEST_P(TuntapTest, TUN_10_stopListeningWhenNotListeningIsAlreadyFired) {
    // TUN-10: on a port that is not listening, stopListening returns a fired Deferred.
    auto port = makePort(std::make_shared<IPRecording>());
    auto fired = watch(port->stopListening());
    EXPECT_TRUE(fired->fired);
    EXPECT_FALSE(fired->failure);
}

TEST_P(TuntapTest, TUN_10_aSecondStopWhileStoppingFiresWithTheFirst) {
    // TUN-10: stopListening twice: both Deferreds fire together, after the single close; doStop runs once.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    port->startListening();
    auto first = watch(port->stopListening());
    auto second = watch(port->stopListening());
    EXPECT_FALSE(second->fired);
    ASSERT_TRUE(spinUntil([&] { return first->fired && second->fired; }, 5));
    EXPECT_EQ(p->stopped, 1);
    port->startListening();  // and it may listen again
    EXPECT_EQ(p->started, 2);
    EXPECT_TRUE(port->connected());
    stop(*port);
    EXPECT_EQ(p->stopped, 2);
}

TEST_P(TuntapTest, TUN_10_stoppingOrDroppingThePortFromInsideEveryCallbackIsSafe) {
    // TUN-10: stopListening (twice) and dropping every outside reference to the port inside startProtocol,
    // datagramReceived or stopProtocol is safe: the port closes once, later, never on the caller's stack (ASan-checked).
    enum class Where { start, packet, stop };
    for (Where where : {Where::start, Where::packet, Where::stop}) {
        SCOPED_TRACE(static_cast<int>(where));
        auto p = std::make_shared<IPRecording>();
        auto port = makePort(p);
        std::weak_ptr<TuntapPort> weak = port;
        int depth = 0;
        std::optional<std::shared_ptr<Fired>> lateStop;
        auto stopFromInside = [&] {
            ++depth;
            auto held = weak.lock();
            ASSERT_TRUE(held);
            auto a = watch(held->stopListening());
            auto b = watch(held->stopListening());
            if (where == Where::stop) {  // the port has closed already: both fired at once
                EXPECT_TRUE(a->fired && b->fired);
            } else {
                EXPECT_FALSE(a->fired || b->fired);
                lateStop = b;
            }
            held.reset();
            port.reset();  // the last outside reference; the protocol's transport holds the port until doStop
            --depth;
        };
        int stopsSeen = 0;
        p->onStop = [&] {
            ++stopsSeen;
            EXPECT_EQ(depth, 0) << "doStop ran on the stopping call's stack";
            if (where == Where::stop) stopFromInside();
        };
        if (where == Where::start) p->onStart = stopFromInside;
        if (where == Where::packet)
            p->onPacket = [&](const Packet&) {
                stopFromInside();
                EXPECT_EQ(p->transport->write(asBytes("bye")), 3u);  // still open until the close
            };
        auto keep = port;
        keep->startListening();
        const int fd = keep->fileno();
        if (where == Where::packet) {
            system->getTunnel(fd).queueRead(asBytes("first"));
            system->getTunnel(fd).queueRead(asBytes("second"));  // not read after the stop inside the first
        }
        if (where == Where::stop) keep->stopListening();
        keep.reset();
        ASSERT_TRUE(spinUntil([&] { return stopsSeen == 1; }, 5));
        if (lateStop) {
            EXPECT_TRUE((*lateStop)->fired);
        }
        EXPECT_TRUE(weak.expired()) << "the port outlived its close";
        EXPECT_FALSE(system->isOpen(fd));
        EXPECT_EQ(p->received.size(), where == Where::packet ? 1u : 0u);
        EXPECT_EQ(p->transport, nullptr);
        EXPECT_EQ(p->started, 1);
    }
}

TEST_P(TuntapTest, TUN_11_loseConnectionIsADeprecatedStopListening) {
    // TUN-11: loseConnection() stops the port and logs a deprecation warning that names stopListening.
    auto port = makePort(std::make_shared<IPRecording>());
    port->startListening();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    port->loseConnection();
#pragma GCC diagnostic pop
    EXPECT_FALSE(reactor().isReading(port.get()));
    ASSERT_TRUE(spinUntil([&] { return !port->connected(); }, 5));
    auto warnings = logs.flush(log::Level::warn);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].message.find("deprecated"), std::string::npos) << warnings[0].message;
    EXPECT_NE(warnings[0].message.find("stopListening"), std::string::npos) << warnings[0].message;
}

TEST_P(TuntapTest, TUN_12_getHostIsATunnelAddressOfTypeAndName) {
    // TUN-12: getHost() is TunnelAddress(IFF_TUN or IFF_TAP without IFF_NO_PI, the actual name).
    for (bool tap : {false, true}) {
        auto port = tap ? makePort(std::make_shared<EthernetRecording>(), "tap%d")
                        : makePort(std::make_shared<IPRecording>(), "tun%d");
        EXPECT_EQ(port->getHost(),
                  Address(TunnelAddress(tap ? TunnelType::tap : TunnelType::tun, tap ? "tap%d" : "tun%d")));
        port->startListening();
        auto& tunnel = system->getTunnel(*port);
        Address host = port->getHost();
        EXPECT_EQ(host, Address(TunnelAddress(tap ? TunnelType::tap : TunnelType::tun, tunnel.name)));
        EXPECT_EQ(static_cast<std::uint16_t>(std::get<TunnelAddress>(host).type),
                  tunnel.tunnelMode & static_cast<std::uint16_t>(TunnelFlags::tun | TunnelFlags::tap));
        EXPECT_NE(host, Address(TunnelAddress(tap ? TunnelType::tun : TunnelType::tap, tunnel.name)));
        stop(*port);
    }
}

TEST_P(TuntapTest, TUN_13_logPrefixAndTextualForms) {
    // TUN-13: logPrefix "<ProtocolClass> (IFF_TUN)"; repr "<{qualified class} listening on IFF_TUN/{name}>", "not listening" otherwise.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p, "tun%d");
    EXPECT_EQ(port->logPrefix(), "IPRecording (IFF_TUN)");
    EXPECT_EQ(port->repr(), "<" + qualifiedName(*p) + " not listening on IFF_TUN/tun%d>");
    port->startListening();
    EXPECT_EQ(port->repr(), "<" + qualifiedName(*p) + " listening on IFF_TUN/tun0>");
    stop(*port);
    EXPECT_EQ(port->repr(), "<" + qualifiedName(*p) + " not listening on IFF_TUN/tun0>");
    auto ether = std::make_shared<EthernetRecording>();
    auto tap = makePort(ether, "tap0");
    EXPECT_EQ(tap->logPrefix(), "EthernetRecording (IFF_TAP)");
    EXPECT_EQ(tap->repr(), "<" + qualifiedName(*ether) + " not listening on IFF_TAP/tap0>");
    EXPECT_EQ(TunnelAddress(TunnelType::tun, "device").str(), "<TunnelAddress type=IFF_TUN name='device'>");
}

TEST_P(TuntapTest, TUN_13_packetsAreDeliveredInThePortsLogContext) {
    // TUN-13: a line the protocol logs with no prefix while handling a packet carries the port's logPrefix.
    auto p = std::make_shared<IPRecording>();
    auto port = makePort(p);
    p->onPacket = [](const Packet&) { log::warn("", "seen"); };
    port->startListening();
    system->getTunnel(*port).queueRead(asBytes("x"));
    ASSERT_TRUE(spinUntil([&] { return !p->received.empty(); }, 5));
    auto lines = logs.flush(log::Level::warn);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].prefix, "IPRecording (IFF_TUN)");
    stop(*port);
}

TEST_P(TuntapTest, TUN_14_flagAndRequestValuesAreTheKernels) {
    // TUN-14: the flag values and TUNSETIFF/TUNGETIFF are those of <linux/if_tun.h> (and Twisted's).
    EXPECT_EQ(static_cast<int>(TunnelFlags::tun), IFF_TUN);
    EXPECT_EQ(static_cast<int>(TunnelFlags::tap), IFF_TAP);
    EXPECT_EQ(static_cast<int>(TunnelFlags::noPI), IFF_NO_PI);
    EXPECT_EQ(static_cast<int>(TunnelFlags::oneQueue), IFF_ONE_QUEUE);
    EXPECT_EQ(static_cast<int>(TunnelFlags::vnetHdr), IFF_VNET_HDR);
    EXPECT_EQ(static_cast<int>(TunnelFlags::tunExcl), IFF_TUN_EXCL);
    // The legacy TUN_* values are not in the user-space header; they are Twisted's.
    EXPECT_EQ(static_cast<int>(TunnelFlags::legacyFasync), 0x0010);
    EXPECT_EQ(static_cast<int>(TunnelFlags::legacyNoChecksum), 0x0020);
    EXPECT_EQ(static_cast<int>(TunnelFlags::legacyNoPI), 0x0040);
    EXPECT_EQ(static_cast<int>(TunnelFlags::legacyOneQueue), 0x0080);
    EXPECT_EQ(static_cast<int>(TunnelFlags::legacyPersist), 0x0100);
    EXPECT_EQ(static_cast<int>(TunnelFlags::legacyVnetHdr), 0x0200);
    EXPECT_EQ(tunSetIff, static_cast<unsigned long>(TUNSETIFF));
    EXPECT_EQ(tunGetIff, static_cast<unsigned long>(TUNGETIFF));
#if defined(__x86_64__) || defined(__aarch64__) || defined(__i386__)
    EXPECT_EQ(tunSetIff, 0x400454CAul);
    EXPECT_EQ(tunGetIff, 0x800454D2ul);
#endif
    EXPECT_EQ(interfaceNameSize, static_cast<std::size_t>(IFNAMSIZ));
    EXPECT_EQ(typeName(TunnelType::tun), "IFF_TUN");
    EXPECT_EQ(typeName(TunnelType::tap), "IFF_TAP");
}

TEST_P(TuntapTest, TUN_16_aTunPortFeedsIPProtocolDirectly) {
    // TUN-16, Better than Twisted: IPProtocol on a TUN port decodes every packet (no link-layer arguments needed).
    auto receiver = std::make_shared<RecordingDatagram>();
    auto udp = std::make_shared<RawUDPProtocol>();
    udp->addProto(12345, receiver);
    auto ip = std::make_shared<IPProtocol>();
    ip->addProto(17, udp);
    auto port = makePort(ip);
    port->startListening();
    auto& tunnel = system->getTunnel(*port);
    tunnel.addToReadBuffer(asBytes(pt::ip("10.1.2.3", "172.16.2.1", asBytes(pt::udp(21345, 12345, asBytes("hi"))))));
    tunnel.addToReadBuffer(asBytes(std::string("\x60\x00\x00\x00\x00\x00\x3b\x40", 8) + std::string(32, '\0')));
    ASSERT_TRUE(spinUntil([&] { return !receiver->received.empty() && tunnel.pendingReads() == 0; }, 5));
    ASSERT_EQ(receiver->received.size(), 1u);
    EXPECT_EQ(receiver->received[0].data, "hi");
    EXPECT_EQ(receiver->received[0].from, Address(IPv4Address("UDP", "10.1.2.3", 21345)));
    EXPECT_EQ(ip->malformedPackets(), 1u);  // the IPv6 packet
    stop(*port);
}

TEST_P(TuntapTest, TUN_16_aTapPortFeedsEthernetThenIPThenUDP) {
    // TUN-1, TUN-16: on a TAP, EthernetProtocol → IPProtocol → RawUDPProtocol decode frames as Twisted's helper frames them.
    auto receiver = std::make_shared<RecordingDatagram>();
    auto udp = std::make_shared<RawUDPProtocol>();
    udp->addProto(12345, receiver);
    auto ip = std::make_shared<IPProtocol>();
    ip->addProto(17, udp);
    auto ether = std::make_shared<EthernetProtocol>();
    ether->addProto(0x0800, ip);
    auto port = makePort(ether, "tap0");
    port->startListening();
    system->getTunnel(*port).addToReadBuffer(
        asBytes(pt::ip("10.1.2.3", "172.16.2.1", asBytes(pt::udp(21345, 12345, asBytes("framed"))))));
    ASSERT_TRUE(spinUntil([&] { return !receiver->received.empty(); }, 5));
    EXPECT_EQ(receiver->received[0].data, "framed");
    stop(*port);
}

// ---- real devices, each test in a network namespace of its own ----------------------------

// Runs a shell command (its output goes to the test's log); true on exit status 0.
bool sh(const std::string& command) {
    int rc = std::system(command.c_str());
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

// What a shell command prints (this thread's namespace: /sys/class/net would show the one sysfs was mounted in).
std::string capture(const std::string& command) {
    std::string out;
    if (FILE* f = ::popen(command.c_str(), "r")) {
        char buffer[4096];
        for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, f)) > 0;) out.append(buffer, n);
        ::pclose(f);
    }
    return out;
}

// The word after `key` in `ip -d -o link show dev DEV` ("mtu" → "1500", "link/ether" → the address).
std::string linkField(const std::string& dev, const std::string& key) {
    std::string text = capture("ip -d -o link show dev " + dev);
    auto at = text.find(" " + key + " ");
    if (at == std::string::npos) return {};
    at += key.size() + 2;
    return text.substr(at, text.find(' ', at) - at);
}

// Runs `body` in a forked child and returns its exit status (-1 if it did not exit).
int inChild(const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid == 0) {
        int rc = 99;
        try {
            rc = body();
        } catch (...) {
            rc = 98;
        }
        ::_exit(rc);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class RealTuntapTest : public weft::test::ReactorTest {
protected:
    void SetUp() override {
        ReactorTest::SetUp();
        if (::geteuid() != 0) GTEST_SKIP() << "needs root, to make a network namespace and tun/tap devices in it";
        if (::access(tunDevicePath, F_OK) != 0) GTEST_SKIP() << "this machine has no /dev/net/tun";
        if (!sh("ip -V >/dev/null 2>&1")) GTEST_SKIP() << "no `ip` command (iproute2)";
        // This thread moves to a namespace of its own; `ip` and ping, started
        // from it, run there too. It goes away, with every interface in it,
        // once the thread has gone back and nothing in it is open.
        home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (home_ < 0 || ::unshare(CLONE_NEWNET) != 0) {
            int e = errno;
            if (home_ >= 0) ::close(home_);
            home_ = -1;
            GTEST_SKIP() << "cannot make a network namespace: " << std::strerror(e);
        }
        ASSERT_TRUE(sh("ip link set lo up"));
    }
    void TearDown() override {
        if (home_ >= 0) {
            EXPECT_EQ(::setns(home_, CLONE_NEWNET), 0) << std::strerror(errno);
            ::close(home_);
        }
        ReactorTest::TearDown();
    }
    void stop(TuntapPort& port) { ASSERT_TRUE(stopListeningAndWait(port)); }
    // Sends `data` every 0.1 s until pred() holds (false after 5 s): a device whose carrier has just come on
    // drops what it is given until the kernel activates its queue (linkwatch, within a second).
    template <class P>
    bool sendUntil(weft::test::PlainSocket& sender, const std::string& data, const std::string& host,
                   std::uint16_t port, P pred) {
        int turn = 0;
        return spinUntil(
            [&] {
                if (turn++ % 10 == 0) sender.sendTo(data, host, port);
                return pred();
            },
            5);
    }
    // ip link set up, and an address with its /24 route.
    static bool configure(const std::string& dev, const std::string& cidr) {
        return sh("ip link set up dev " + dev + " && ip addr add " + cidr + " dev " + dev);
    }

    int home_ = -1;
};
INSTANTIATE_TEST_SUITE_P(Backends, RealTuntapTest, weft::test::allBackends(), weft::test::backendParamName);

// A TUN port's protocol that decodes IPv4/UDP for one port, as Twisted's TunHelper.parser does.
struct UDPStack {
    std::shared_ptr<RecordingDatagram> receiver = std::make_shared<RecordingDatagram>();
    std::shared_ptr<RawUDPProtocol> udp = std::make_shared<RawUDPProtocol>();
    std::shared_ptr<IPProtocol> ip = std::make_shared<IPProtocol>();
    std::shared_ptr<EthernetProtocol> ether = std::make_shared<EthernetProtocol>();
    explicit UDPStack(std::uint16_t port) {
        udp->addProto(port, receiver);
        ip->addProto(17, udp);
        ether->addProto(0x0800, ip);
    }
};

TEST_P(RealTuntapTest, TUN_2_aRealInterfaceExistsExactlyWhileThePortListens) {
    // TUN-2, TUN-3: startListening creates the interface, attached with IFF_TUN|IFF_NO_PI; the stop removes it.
    auto p = std::make_shared<IPRecording>();
    auto port = std::make_shared<TuntapPort>(reactor(), "weft%d", p);
    port->startListening();
    const std::string name = port->interface();
    EXPECT_EQ(name, "weft0");
    EXPECT_TRUE(interfaceExists(name));
    EXPECT_NE(capture("ip -d -o link show dev " + name).find("tun type tun pi off"), std::string::npos)
        << capture("ip -d -o link show dev " + name);
    EXPECT_TRUE(::fcntl(port->fileno(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(port->fileno(), F_GETFD) & FD_CLOEXEC);
    stop(*port);
    EXPECT_FALSE(interfaceExists(name));
}

TEST_P(RealTuntapTest, TUN_4_theKernelChoosesNumberedNames) {
    // TUN-4: "weft%d" gives weft0 then weft1; "" gives tun0 for a TUN and tap0 for a TAP.
    auto a = std::make_shared<TuntapPort>(reactor(), "weft%d", std::make_shared<IPRecording>());
    auto b = std::make_shared<TuntapPort>(reactor(), "weft%d", std::make_shared<IPRecording>());
    auto c = std::make_shared<TuntapPort>(reactor(), "", std::make_shared<IPRecording>());
    auto d = std::make_shared<TuntapPort>(reactor(), "", std::make_shared<EthernetRecording>());
    for (auto* port : {a.get(), b.get(), c.get(), d.get()}) port->startListening();
    EXPECT_EQ(a->interface(), "weft0");
    EXPECT_EQ(b->interface(), "weft1");
    EXPECT_EQ(c->interface(), "tun0");
    EXPECT_EQ(d->interface(), "tap0");
    EXPECT_EQ(d->getHost(), Address(TunnelAddress(TunnelType::tap, "tap0")));
    for (auto* port : {a.get(), b.get(), c.get(), d.get()}) EXPECT_TRUE(interfaceExists(port->interface()));
    for (auto* port : {a.get(), b.get(), c.get(), d.get()}) stop(*port);
}

TEST_P(RealTuntapTest, TUN_5_aTakenNameIsEBUSYAndAnotherTypeEINVAL) {
    // TUN-5: attaching to an attached interface fails with EBUSY; a TAP on a TUN's name, or on "lo", with EINVAL.
    auto first = std::make_shared<TuntapPort>(reactor(), "weftbusy", std::make_shared<IPRecording>());
    first->startListening();
    auto again = std::make_shared<TuntapPort>(reactor(), "weftbusy", std::make_shared<IPRecording>());
    expectCannotListen(*again, EBUSY, {"already attached", "EBUSY"});
    auto asTap = std::make_shared<TuntapPort>(reactor(), "weftbusy", std::make_shared<EthernetRecording>());
    expectCannotListen(*asTap, EINVAL, {"is not a TAP device", "EINVAL"});
    auto loopback = std::make_shared<TuntapPort>(reactor(), "lo", std::make_shared<IPRecording>());
    expectCannotListen(*loopback, EINVAL, {"is not a TUN device"});
    stop(*first);
}

TEST_P(RealTuntapTest, TUN_5_withoutCapNetAdminTheErrorIsEPERM) {
    // TUN-5: a process without CAP_NET_ADMIN (a child that dropped it) gets EPERM, in words, with nothing left open.
    auto p = std::make_shared<IPRecording>();
    int rc = inChild([&] {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2] = {};
        if (::syscall(SYS_capget, &header, data) != 0) return 2;
        data[0].effective &= ~(1u << CAP_NET_ADMIN);
        if (::syscall(SYS_capset, &header, data) != 0) return 3;
        auto before = weft::test::openFds();
        TuntapPort port(reactor(), "weftperm0", p);
        try {
            port.startListening();
            return 4;
        } catch (const CannotListenError& e) {
            std::string what = e.what();
            if (e.socketError().value() != EPERM) return 5;
            if (what.find("'weftperm0'") == std::string::npos || what.find("CAP_NET_ADMIN") == std::string::npos)
                return 6;
        }
        return weft::test::openFds() == before && !port.connected() && !interfaceExists("weftperm0") ? 0 : 7;
    });
    EXPECT_EQ(rc, 0);
    EXPECT_FALSE(interfaceExists("weftperm0"));
}

TEST_P(RealTuntapTest, TUN_5_withoutAccessToTheDeviceTheErrorIsEACCESOrEPERM) {
    // TUN-5: an unprivileged user gets EACCES opening a root-only /dev/net/tun (EPERM from TUNSETIFF if it is 0666).
    struct stat st {};
    ASSERT_EQ(::stat(tunDevicePath, &st), 0);
    const bool worldWritable = (st.st_mode & S_IROTH) && (st.st_mode & S_IWOTH);
    const int expected = worldWritable ? EPERM : EACCES;
    auto p = std::make_shared<IPRecording>();
    int rc = inChild([&] {
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) return 2;
        TuntapPort port(reactor(), "weftacc0", p);
        try {
            port.startListening();
            return 4;
        } catch (const CannotListenError& e) {
            if (e.socketError().value() != expected) return 5;
            std::string what = e.what();
            if (what.find("'weftacc0'") == std::string::npos) return 6;
            if (!worldWritable && what.find("permission denied opening /dev/net/tun") == std::string::npos) return 7;
        }
        return port.connected() ? 8 : 0;
    });
    EXPECT_EQ(rc, 0);
}

// Reads one packet from a raw descriptor within `seconds`; "" on timeout.
std::string readPacket(int fd, double seconds = 5) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(seconds * 1000)) != 1) return {};
    std::string buffer(65536, '\0');
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    buffer.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return buffer;
}

TEST_P(RealTuntapTest, TUN_3_packetInformationIsChosenPerAttachmentAndThePortNeverHasIt) {
    // TUN-3: on a persistent interface made with `pi`, a descriptor attached without IFF_NO_PI reads 00 00 08 00
    // before each IPv4 packet; the port (which asks IFF_NO_PI) reads the bare packet.
    ASSERT_TRUE(sh("ip tuntap add dev weftpi mode tun pi"));
    auto sys = realSystem();
    int fd = sys->open(tunDevicePath, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    ASSERT_GE(fd, 0);
    ifreq req{};
    std::strcpy(req.ifr_name, "weftpi");
    req.ifr_flags = static_cast<short>(TunnelFlags::tun);
    ASSERT_EQ(sys->ioctl(fd, tunSetIff, &req), 0) << std::strerror(errno);
    ASSERT_TRUE(configure("weftpi", "10.98.0.1/24"));
    weft::test::PlainSocket sender(AF_INET);
    sender.bind("10.98.0.1");
    // A device whose carrier just came on drops what is sent until the kernel
    // activates its queue (linkwatch, within a second): send until one arrives.
    const std::string pi("\x00\x00\x08\x00", 4);
    std::string packet;
    for (int i = 0; i < 50 && packet.substr(0, 4) != pi; ++i) {
        sender.sendTo("with PI", "10.98.0.2", 9999);
        packet = readPacket(fd, 0.1);
        while (!packet.empty() && packet.substr(0, 4) != pi) packet = readPacket(fd, 0.1);  // IPv6 noise
    }
    ASSERT_GE(packet.size(), 5u);
    EXPECT_EQ(packet.substr(0, 4), pi);
    EXPECT_EQ(packet.substr(4, 1), "\x45");
    EXPECT_EQ(packet.substr(packet.size() - 7), "with PI");
    EXPECT_EQ(sys->close(fd), 0);

    UDPStack stack(9999);
    auto port = std::make_shared<TuntapPort>(reactor(), "weftpi", stack.ip);
    port->startListening();
    EXPECT_NE(capture("ip -d -o link show dev weftpi").find("pi off"), std::string::npos);
    ASSERT_TRUE(spinUntil(
        [&] {
            sender.sendTo("without", "10.98.0.2", 9999);
            return !stack.receiver->received.empty();
        },
        5));
    EXPECT_EQ(stack.receiver->received[0].data, "without");
    EXPECT_EQ(stack.receiver->received[0].from, Address(IPv4Address("UDP", "10.98.0.1", sender.port())));
    stop(*port);
    EXPECT_TRUE(interfaceExists("weftpi")) << "a persistent interface stays";
}

TEST_P(RealTuntapTest, TUN_15_aTunReadsWhatTheStackRoutesThroughIt) {
    // TUN-15: a UDP datagram the local stack sends to an address routed through the TUN is read as an IPv4 packet.
    UDPStack stack(9999);
    auto port = std::make_shared<TuntapPort>(reactor(), "weft%d", stack.ip);
    port->startListening();
    ASSERT_TRUE(configure(port->interface(), "10.99.0.1/24"));
    weft::test::PlainSocket sender(AF_INET);
    sender.bind("10.99.0.1");
    ASSERT_TRUE(sendUntil(sender, "hello tun", "10.99.0.2", 9999, [&] { return !stack.receiver->received.empty(); }));
    EXPECT_EQ(stack.receiver->received[0].data, "hello tun");
    EXPECT_EQ(stack.receiver->received[0].from, Address(IPv4Address("UDP", "10.99.0.1", sender.port())));
    stop(*port);
}

TEST_P(RealTuntapTest, TUN_15_aPacketWrittenToATunReachesALocalSocket) {
    // TUN-15: a checksummed IPv4/UDP packet written to the TUN arrives at the local socket bound to its destination.
    auto port = std::make_shared<TuntapPort>(reactor(), "weft%d", std::make_shared<IPRecording>());
    port->startListening();
    ASSERT_TRUE(configure(port->interface(), "10.99.0.1/24"));
    weft::test::PlainSocket receiver(AF_INET);
    receiver.bind("10.99.0.1", 7777);
    std::string packet = pt::ip("10.99.0.2", "10.99.0.1", asBytes(pt::udp(5555, 7777, asBytes("hello stack"))));
    EXPECT_EQ(port->write(packet), packet.size());
    EXPECT_EQ(receiver.receive(5), std::optional<std::string>("hello stack"));
    stop(*port);
}

TEST_P(RealTuntapTest, TUN_15_aTapReadsFramesAndItsWrittenFramesReachTheStack) {
    // TUN-15: on a TAP the same holds with a 14-byte Ethernet header (the stack needs a neighbour entry for the peer).
    UDPStack stack(9999);
    auto port = std::make_shared<TuntapPort>(reactor(), "weftap%d", stack.ether);
    port->startListening();
    const std::string dev = port->interface();
    ASSERT_TRUE(configure(dev, "10.99.0.1/24"));
    ASSERT_TRUE(sh("ip neigh add 10.99.0.2 lladdr de:ad:be:ef:ca:fe dev " + dev));
    weft::test::PlainSocket sender(AF_INET);
    sender.bind("10.99.0.1", 7777);
    ASSERT_TRUE(sendUntil(sender, "hello tap", "10.99.0.2", 9999, [&] { return !stack.receiver->received.empty(); }));
    EXPECT_EQ(stack.receiver->received[0].data, "hello tap");

    // And back: a frame to the TAP's own hardware address, from the peer's.
    std::string mac = linkField(dev, "link/ether");
    unsigned m[6];
    ASSERT_EQ(std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]), 6) << mac;
    std::byte own[6], peer[6] = {std::byte{0xde}, std::byte{0xad}, std::byte{0xbe},
                                 std::byte{0xef}, std::byte{0xca}, std::byte{0xfe}};
    for (int i = 0; i < 6; ++i) own[i] = static_cast<std::byte>(m[i]);
    std::string frame = pt::ethernet(
        peer, own, pt::etherTypeIPv4,
        asBytes(pt::ip("10.99.0.2", "10.99.0.1", asBytes(pt::udp(9999, 7777, asBytes("hello from the wire"))))));
    EXPECT_EQ(port->write(frame), frame.size());
    EXPECT_EQ(sender.receive(5), std::optional<std::string>("hello from the wire"));
    stop(*port);
}

// Answers ICMP echo requests on a TUN, as the far end of a point-to-point link would.
class EchoResponder : public AbstractDatagramProtocol, public IRawPacketProtocol {
public:
    void addProto(std::int64_t, std::shared_ptr<IRawDatagramProtocol>) override {}
    void datagramReceived(Bytes data, bool, Bytes, Bytes, std::optional<std::uint16_t>) override {
        auto packet = decodeIPHeader(data);
        if (!packet || packet->header.protocol != 1 || packet->payload.size() < 8) return;
        if (std::to_integer<int>(packet->payload[0]) != 8) return;  // echo request
        std::string icmp(asText(packet->payload));
        icmp[0] = '\0';  // echo reply
        icmp[2] = icmp[3] = '\0';
        std::uint16_t sum = pt::checksum(asBytes(icmp));
        icmp[2] = static_cast<char>(sum >> 8);
        icmp[3] = static_cast<char>(sum & 0xFF);
        transport->write(asBytes(pt::ip(packet->header.dest, packet->header.source, asBytes(icmp), 1)));
        ++answered;
    }
    int answered = 0;
};

class Waiter : public ProcessProtocol {
public:
    void processEnded(const Failure& reason) override { ended = reason; }
    std::optional<Failure> ended;
};

TEST_P(RealTuntapTest, TUN_15_pingIsAnsweredThroughATun) {
    // TUN-15: ping's echo request is read from the TUN and the reply written to it; ping exits 0.
    if (!sh("command -v ping >/dev/null")) GTEST_SKIP() << "no ping (iputils-ping)";
    auto responder = std::make_shared<EchoResponder>();
    auto port = std::make_shared<TuntapPort>(reactor(), "weft%d", responder);
    port->startListening();
    ASSERT_TRUE(configure(port->interface(), "10.99.0.1/24"));
    auto waiter = std::make_shared<Waiter>();
    ProcessOptions options;
    options.env = std::nullopt;
    reactor().spawnProcess(waiter, "ping", {"ping", "-n", "-c", "1", "-W", "5", "10.99.0.2"}, options);
    ASSERT_TRUE(spinUntil([&] { return waiter->ended.has_value(); }, 10));
    EXPECT_TRUE(waiter->ended->check<weft::error::ProcessDone>()) << waiter->ended->getErrorMessage();
    EXPECT_EQ(responder->answered, 1);
    stop(*port);
}

TEST_P(RealTuntapTest, TUN_6_aRealTapCutsLongFramesAndSaysPartial) {
    // TUN-6 (observed on a TAP): with maxPacketSize 60, a longer frame arrives cut to 60 bytes, partial = true.
    auto p = std::make_shared<EthernetRecording>();
    auto port = std::make_shared<TuntapPort>(reactor(), "weftap%d", p, 60);
    port->startListening();
    ASSERT_TRUE(configure(port->interface(), "10.99.0.1/24"));
    ASSERT_TRUE(sh("ip neigh add 10.99.0.2 lladdr de:ad:be:ef:ca:fe dev " + port->interface()));
    weft::test::PlainSocket sender(AF_INET);
    sender.bind("10.99.0.1");
    auto isOurs = [](const Packet& f) { return f.data.size() > 14 && f.data.substr(12, 2) == "\x08"s + '\0'; };
    ASSERT_TRUE(sendUntil(sender, std::string(200, 'z'), "10.99.0.2", 9999,
                          [&] { return std::any_of(p->received.begin(), p->received.end(), isOurs); }));
    auto frame = *std::find_if(p->received.begin(), p->received.end(), isOurs);
    EXPECT_EQ(frame.data.size(), 60u);
    EXPECT_TRUE(frame.partial);
    stop(*port);
}

TEST_P(RealTuntapTest, TUN_7_deletingTheInterfaceEndsThePort) {
    // TUN-7: once the interface is deleted (ip link del) the descriptor fails; the error, naming the device,
    // is logged and the port ends (protocol stopped, descriptor closed).
    auto p = std::make_shared<IPRecording>();
    auto port = std::make_shared<TuntapPort>(reactor(), "weft%d", p);
    port->startListening();
    ASSERT_TRUE(sh("ip link del " + port->interface()));
    ASSERT_TRUE(spinUntil([&] { return p->stopped == 1; }, 5));
    EXPECT_FALSE(port->connected());
    EXPECT_EQ(p->transport, nullptr);
    auto errors = logs.flush(log::Level::error);
    ASSERT_FALSE(errors.empty());
    bool named = false;
    for (auto& e : errors)
        named = named || (e.failure && e.failure->getErrorMessage().find("device 'weft0'") != std::string::npos);
    EXPECT_TRUE(named) << errors[0].message << ": " << (errors[0].failure ? errors[0].failure->getErrorMessage() : "");
}

TEST_P(RealTuntapTest, MTU_isReadAndSetThroughTheSeamAndBadValuesAreNamed) {
    // Not a contract of its own (the tool's --mtu): interfaceMTU/setInterfaceMTU on a real TUN; errors name the device.
    auto port = std::make_shared<TuntapPort>(reactor(), "weft%d", std::make_shared<IPRecording>());
    port->startListening();
    const std::string dev = port->interface();
    EXPECT_EQ(interfaceMTU(dev), 1500);
    setInterfaceMTU(dev, 1400);
    EXPECT_EQ(interfaceMTU(dev), 1400);
    EXPECT_EQ(linkField(dev, "mtu"), "1400");
    try {
        setInterfaceMTU(dev, 10);
        ADD_FAILURE() << "an MTU of 10 was accepted";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EINVAL);
        EXPECT_NE(std::string(e.what()).find("'" + dev + "' to 10"), std::string::npos) << e.what();
    }
    EXPECT_THROW(interfaceMTU("nosuchdevice"), std::system_error);
    stop(*port);
}

}  // namespace
