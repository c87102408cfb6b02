// pair.md RUDP-1..RUDP-3: RawUDPProtocol, with Twisted's test vectors
// (twisted/pair/test/test_rawudp.py), and the whole chain Ethernet → IP → UDP
// on frames built as the kernel builds them. No reactor is involved.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <weft/pair/ethernet.hpp>
#include <weft/pair/ip.hpp>
#include <weft/pair/rawudp.hpp>
#include <weft/pair/testing.hpp>

#include "pair/pairtest.hpp"
#include "support/reactortest.hpp"
#include "support/udphelpers.hpp"

using namespace weft;
using namespace weft::pair;
using weft::test::expectInvalid;
using weft::test::RecordingDatagram;
namespace pt = weft::pair::testing;

namespace {

class RawUDPTest : public weft::test::LeakCheckedTest {};

// The IP header a RawUDPProtocol is handed; only its source matters here (Twisted passes "dummy" for the rest).
IPHeader from(std::string source) {
    IPHeader h;
    h.source = std::move(source);
    h.dest = "0.0.0.0";
    h.protocol = 17;
    return h;
}

std::string header(std::uint16_t source, std::uint16_t dest, std::uint16_t length) {
    std::string h;
    for (std::uint16_t v : {source, dest, length, std::uint16_t{0xDEAD}}) {
        h.push_back(static_cast<char>(v >> 8));
        h.push_back(static_cast<char>(v & 0xFF));
    }
    return h;
}

using Seen = std::vector<std::tuple<std::string, std::string, std::uint16_t>>;
Seen seen(const RecordingDatagram& p) {
    Seen out;
    for (auto& d : p.received) {
        auto& a = std::get<IPv4Address>(d.from);
        out.emplace_back(d.data, a.host, a.port);
    }
    return out;
}

TEST_F(RawUDPTest, RUDP_1_packetParsingCallsTheDatagramProtocolOfTheDestinationPort) {
    // RUDP-1: data[8:] goes to the DatagramProtocol registered for the destination port, from (IP source, source port).
    RawUDPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagram>();
    proto.addProto(0xF00F, p1);
    proto.datagramReceived(asBytes(header(0x43A2, 0xF00F, 6) + "foobar"), false, from("testHost"));
    EXPECT_EQ(seen(*p1), (Seen{{"foobar", "testHost", 0x43A2}}));
    EXPECT_EQ(std::get<IPv4Address>(p1->received[0].from).type, "UDP");
}

TEST_F(RawUDPTest, RUDP_1_multiplePacketsAreEachDelivered) {
    // RUDP-1: every datagram is delivered, in order, with its own sender.
    RawUDPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagram>();
    proto.addProto(0xF00F, p1);
    proto.datagramReceived(asBytes(header(0x43A2, 0xF00F, 6) + "foobar"), false, from("testHost"));
    proto.datagramReceived(asBytes(header(0x33FE, 0xF00F, 5) + "quux"), false, from("otherHost"));
    EXPECT_EQ(seen(*p1), (Seen{{"foobar", "testHost", 0x43A2}, {"quux", "otherHost", 0x33FE}}));
}

TEST_F(RawUDPTest, RUDP_1_protocolsSharingAPortAreAllCalled) {
    // RUDP-1: several DatagramProtocols on one port each get the datagram.
    RawUDPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagram>();
    auto p2 = std::make_shared<RecordingDatagram>();
    proto.addProto(0xF00F, p1);
    proto.addProto(0xF00F, p2);
    proto.datagramReceived(asBytes(header(0x43A2, 0xF00F, 6) + "foobar"), false, from("testHost"));
    EXPECT_EQ(seen(*p1), (Seen{{"foobar", "testHost", 0x43A2}}));
    EXPECT_EQ(seen(*p2), (Seen{{"foobar", "testHost", 0x43A2}}));
}

TEST_F(RawUDPTest, RUDP_1_datagramsForOtherPortsAreDropped) {
    // RUDP-1: a datagram for a port nobody registered reaches nobody.
    RawUDPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagram>();
    proto.addProto(1, p1);
    proto.datagramReceived(asBytes(header(0x43A2, 0xF00F, 6) + "foobar"), false, from("testHost"));
    EXPECT_TRUE(p1->received.empty());
    EXPECT_EQ(proto.malformedDatagrams(), 0u);
}

TEST_F(RawUDPTest, RUDP_1_datagramsAreDemultiplexedByDestinationPort) {
    // RUDP-1: each datagram goes to the protocols of its own destination port only.
    RawUDPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagram>();
    auto p2 = std::make_shared<RecordingDatagram>();
    proto.addProto(0xF00F, p1);
    proto.addProto(0xB050, p2);
    proto.datagramReceived(asBytes(header(0xA401, 0xB050, 5) + "quux"), false, from("otherHost"));
    proto.datagramReceived(asBytes(header(0x43A2, 0xF00F, 6) + "foobar"), false, from("testHost"));
    proto.datagramReceived(asBytes(header(0x33FE, 0xF00F, 5) + "quux"), false, from("otherHost"));
    proto.datagramReceived(asBytes(header(0xA302, 0xB050, 6) + "foobar"), false, from("testHost"));
    EXPECT_EQ(seen(*p1), (Seen{{"foobar", "testHost", 0x43A2}, {"quux", "otherHost", 0x33FE}}));
    EXPECT_EQ(seen(*p2), (Seen{{"quux", "otherHost", 0xA401}, {"foobar", "testHost", 0xA302}}));
}

TEST_F(RawUDPTest, RUDP_1_ethernetIPAndUDPDecodeAFrameBuiltAsTheKernelBuildsIt) {
    // RUDP-1 (with ETH-1, IP-1): a UDP datagram in an IPv4 packet in an Ethernet frame reaches the DatagramProtocol of its port.
    auto receiver = std::make_shared<RecordingDatagram>();
    auto udp = std::make_shared<RawUDPProtocol>();
    udp->addProto(12345, receiver);
    auto ip = std::make_shared<IPProtocol>();
    ip->addProto(17, udp);
    EthernetProtocol ether;
    ether.addProto(0x0800, ip);
    const std::byte zero[6] = {}, all[6] = {std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                                            std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}};
    std::string frame = pt::ethernet(
        zero, all, pt::etherTypeIPv4,
        asBytes(pt::ip("172.16.2.2", "172.16.2.1", asBytes(pt::udp(50000, 12345, asBytes("hello world"))))));
    frame += std::string(8, '\0');  // padding after the IP packet: trimmed by tot_len
    ether.datagramReceived(asBytes(frame));
    EXPECT_EQ(seen(*receiver), (Seen{{"hello world", "172.16.2.2", 50000}}));
    EXPECT_EQ(pt::checksum(asBytes(frame).subspan(14, 20)), 0) << "the builder's IP header checksum is right";
}

TEST_F(RawUDPTest, RUDP_2_aProtocolThatIsNoDatagramProtocolIsRefused) {
    // RUDP-2: proto must be a DatagramProtocol: another type does not compile, a null one throws Twisted's message.
    static_assert(!std::is_invocable_v<decltype(&RawUDPProtocol::addProto), RawUDPProtocol&, std::int64_t,
                                       std::shared_ptr<IPProtocol>>);
    RawUDPProtocol e;
    expectInvalid([&] { e.addProto(42, nullptr); }, "Added protocol must be an instance of DatagramProtocol");
}

TEST_F(RawUDPTest, RUDP_2_portNumbersOutsideSixteenBitsAreRefused) {
    // RUDP-2: port < 0 → "must be positive or zero", >= 2**16 → "must fit in 16 bits"; 0 and 65535 are accepted.
    RawUDPProtocol e;
    expectInvalid([&] { e.addProto(-1, std::make_shared<DatagramProtocol>()); },
                  "Added protocol must be positive or zero");
    for (std::int64_t n : {std::int64_t{1} << 16, (std::int64_t{1} << 16) + 1})
        expectInvalid([&] { e.addProto(n, std::make_shared<DatagramProtocol>()); },
                      "Added protocol must fit in 16 bits");
    auto p = std::make_shared<RecordingDatagram>();
    e.addProto(0, p);
    e.addProto(65535, p);
    e.datagramReceived(asBytes(header(1, 65535, 9) + "x"), false, from("1.2.3.4"));
    e.datagramReceived(asBytes(header(1, 0, 9) + "y"), false, from("1.2.3.4"));
    EXPECT_EQ(p->received.size(), 2u);
}

TEST_F(RawUDPTest, RUDP_3_theLengthTrimsThePayloadWhenItFits) {
    // RUDP-3, Better than Twisted: with 8 <= length <= the bytes there are, the payload is data[8:length].
    RawUDPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagram>();
    proto.addProto(7, p1);
    proto.datagramReceived(asBytes(header(1, 7, 8 + 3) + "abcTRAILING"), false, from("1.2.3.4"));
    proto.datagramReceived(asBytes(header(1, 7, 8) + "gone"), false, from("1.2.3.4"));
    proto.datagramReceived(asBytes(header(1, 7, 8 + 4) + "full"), false, from("1.2.3.4"));
    EXPECT_EQ(seen(*p1), (Seen{{"abc", "1.2.3.4", 1}, {"", "1.2.3.4", 1}, {"full", "1.2.3.4", 1}}));
}

TEST_F(RawUDPTest, RUDP_3_aLengthThatDoesNotFitAndTheChecksumAreNotChecked) {
    // RUDP-3: a length under 8 (Twisted's vectors) or past the end keeps data[8:]; a wrong checksum is not checked.
    const std::string twisted = header(0x43A2, 0xF00F, 6) + "foobar";  // the views point into it
    auto d = decodeUDPHeader(asBytes(twisted));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->header, (UDPHeader{0x43A2, 0xF00F, 6, 0xDEAD}));
    EXPECT_EQ(asText(d->payload), "foobar");
    const std::string tooLong = header(1, 2, 100) + "short";
    auto past = decodeUDPHeader(asBytes(tooLong));
    ASSERT_TRUE(past);
    EXPECT_EQ(asText(past->payload), "short");
}

TEST_F(RawUDPTest, RUDP_3_datagramsShorterThanTheirHeaderAreDroppedAndCounted) {
    // RUDP-3: fewer than 8 bytes: dropped (counted), never thrown about.
    RawUDPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagram>();
    proto.addProto(0, p1);
    std::string zeros(7, '\0');
    for (std::size_t n = 0; n < 8; ++n) {
        EXPECT_FALSE(decodeUDPHeader(asBytes(zeros).first(std::min<std::size_t>(n, 7)))) << n;
        EXPECT_NO_THROW(
            proto.datagramReceived(asBytes(zeros).first(std::min<std::size_t>(n, 7)), false, from("1.1.1.1")));
    }
    EXPECT_TRUE(p1->received.empty());
    EXPECT_EQ(proto.malformedDatagrams(), 8u);
}

}  // namespace
