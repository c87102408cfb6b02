// pair.md IP-1..IP-3: IPProtocol, with Twisted's test vectors
// (twisted/pair/test/test_ip.py) — their first byte changed from 0x54 to 0x45,
// as IP-2 says. No reactor is involved.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <weft/pair/ip.hpp>
#include <weft/pair/testing.hpp>

#include "pair/pairtest.hpp"
#include "support/reactortest.hpp"

using namespace weft;
using namespace weft::pair;
using weft::test::expectInvalid;

namespace {

struct Datagram {
    std::string data;
    bool partial;
    IPHeader header;
    friend bool operator==(const Datagram&, const Datagram&) = default;
};

std::ostream& operator<<(std::ostream& os, const Datagram& d) {
    const IPHeader& h = d.header;
    return os << "{" << ::testing::PrintToString(d.data) << ", partial=" << d.partial << ", " << h.source << " -> "
              << h.dest << ", protocol=" << int(h.protocol) << ", version=" << int(h.version) << ", ihl=" << h.ihl
              << ", tos=" << int(h.tos) << ", tot_len=" << h.tot_len << ", id=" << h.fragment_id
              << ", offset=" << h.fragment_offset << ", DF=" << h.dont_fragment << ", MF=" << h.more_fragments
              << ", ttl=" << int(h.ttl) << ", check=" << h.check << "}";
}

class RecordingDatagramProtocol : public IRawDatagramProtocol {
public:
    void addProto(std::int64_t num, std::shared_ptr<DatagramProtocol>) override { added.push_back(num); }
    void datagramReceived(Bytes data, bool partial, const IPHeader& header) override {
        received.push_back({std::string(asText(data)), partial, header});
    }
    std::vector<Datagram> received;
    std::vector<std::int64_t> added;
};

// Twisted's vector: tos 7, tot_len 26, id 0xDEAD, flags word 0xBEEF, TTL 0xC0, checksum "FE".
std::string vector(char protocol, const char* source, const char* dest, std::string_view payload) {
    std::string p = std::string("\x45\x07\x00\x1a\xde\xad\xbe\xef\xc0", 9);
    p += protocol;
    p += "FE";
    p.append(source, 4);
    p.append(dest, 4);
    p += payload;
    return p;
}
const char* const kFive = "\x05\x06\x07\x08";
const char* const kOne = "\x01\x02\x03\x04";
const char* const kSix = "\x06\x07\x08\x09";
const char* const kFour = "\x05\x04\x03\x02";

IPHeader expectedHeader(std::uint8_t protocol, std::string source, std::string dest) {
    IPHeader h;
    h.source = std::move(source);
    h.dest = std::move(dest);
    h.protocol = protocol;
    h.version = 4;
    h.ihl = 20;
    h.tos = 7;
    h.tot_len = 20 + 6;
    h.fragment_id = 0xDEAD;
    h.fragment_offset = 0x1EEF;
    h.dont_fragment = false;
    h.more_fragments = true;
    h.ttl = 0xC0;
    h.check = 0x4645;  // "FE"
    return h;
}

Datagram foobar(std::uint8_t protocol) { return {"foobar", false, expectedHeader(protocol, "5.6.7.8", "1.2.3.4")}; }
Datagram quux(std::uint8_t protocol) { return {"quux", true, expectedHeader(protocol, "6.7.8.9", "5.4.3.2")}; }

class IPTest : public weft::test::LeakCheckedTest {};

TEST_F(IPTest, IP_1_packetParsingPassesPayloadAndEveryHeaderField) {
    // IP-1: the payload after the 20-byte header goes to the protocol registered for its protocol byte, with every field.
    IPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagramProtocol>();
    proto.addProto(0x0F, p1);
    proto.datagramReceived(asBytes(vector('\x0f', kFive, kOne, "foobar")), false);
    EXPECT_EQ(p1->received, std::vector<Datagram>{foobar(0x0F)});
}

TEST_F(IPTest, IP_1_multiplePacketsAreEachDelivered) {
    // IP-1: every packet is delivered in order; a partial one (cut before its tot_len) too, flagged.
    IPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagramProtocol>();
    proto.addProto(0x0F, p1);
    proto.datagramReceived(asBytes(vector('\x0f', kFive, kOne, "foobar")), false);
    proto.datagramReceived(asBytes(vector('\x0f', kSix, kFour, "quux")), true);
    EXPECT_EQ(p1->received, (std::vector<Datagram>{foobar(0x0F), quux(0x0F)}));
}

TEST_F(IPTest, IP_1_protocolsSharingANumberAreAllCalled) {
    // IP-1: several protocols registered for one number each get the packet.
    IPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagramProtocol>();
    auto p2 = std::make_shared<RecordingDatagramProtocol>();
    proto.addProto(0x0F, p1);
    proto.addProto(0x0F, p2);
    proto.datagramReceived(asBytes(vector('\x0f', kFive, kOne, "foobar")), false);
    EXPECT_EQ(p1->received, std::vector<Datagram>{foobar(0x0F)});
    EXPECT_EQ(p2->received, std::vector<Datagram>{foobar(0x0F)});
}

TEST_F(IPTest, IP_1_packetsOfAnUnregisteredProtocolAreDropped) {
    // IP-1: a packet whose protocol has no registered protocol reaches nobody (and is not malformed).
    IPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagramProtocol>();
    proto.addProto(1, p1);
    proto.datagramReceived(asBytes(vector('\x0f', kFive, kOne, "foobar")), false);
    EXPECT_TRUE(p1->received.empty());
    EXPECT_EQ(proto.malformedPackets(), 0u);
}

TEST_F(IPTest, IP_1_packetsAreDemultiplexedByProtocol) {
    // IP-1: each packet goes to the protocols of its own number only.
    IPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagramProtocol>();
    auto p2 = std::make_shared<RecordingDatagramProtocol>();
    proto.addProto(0x0F, p1);
    proto.addProto(0x0A, p2);
    proto.datagramReceived(asBytes(vector('\x0a', kSix, kFour, "quux")), true);
    proto.datagramReceived(asBytes(vector('\x0f', kFive, kOne, "foobar")), false);
    proto.datagramReceived(asBytes(vector('\x0f', kSix, kFour, "quux")), true);
    proto.datagramReceived(asBytes(vector('\x0a', kFive, kOne, "foobar")), false);
    EXPECT_EQ(p1->received, (std::vector<Datagram>{foobar(0x0F), quux(0x0F)}));
    EXPECT_EQ(p2->received, (std::vector<Datagram>{quux(0x0A), foobar(0x0A)}));
}

TEST_F(IPTest, IP_1_theLinkLayersArgumentsAreIgnored) {
    // IP-1: the dest, source and protocol IPProtocol is given (an Ethernet frame's) change nothing.
    IPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagramProtocol>();
    proto.addProto(0x0F, p1);
    proto.datagramReceived(asBytes(vector('\x0f', kFive, kOne, "foobar")), false, asBytes("dummy!"), asBytes("dummy?"),
                           0x86DD);
    proto.datagramReceived(asBytes(vector('\x0f', kFive, kOne, "foobar")));
    EXPECT_EQ(p1->received, (std::vector<Datagram>{foobar(0x0F), foobar(0x0F)}));
}

TEST_F(IPTest, IP_2_theFirstByteIsDecodedInRfc791Order) {
    // IP-2, Better than Twisted: 0x45 is version 4, ihl 20; Twisted's own 0x54 (version 5) is not IPv4 and is dropped.
    const std::string rfc = vector('\x0f', kFive, kOne, "foobar");
    auto good = decodeIPHeader(asBytes(rfc));
    ASSERT_TRUE(good);
    EXPECT_EQ(good->header.version, 4);
    EXPECT_EQ(good->header.ihl, 20);
    std::string twisted = vector('\x0f', kFive, kOne, "foobar");
    twisted[0] = '\x54';
    EXPECT_FALSE(decodeIPHeader(asBytes(twisted)));
    IPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagramProtocol>();
    proto.addProto(0x0F, p1);
    proto.datagramReceived(asBytes(twisted));
    EXPECT_TRUE(p1->received.empty());
    EXPECT_EQ(proto.malformedPackets(), 1u);
}

TEST_F(IPTest, IP_2_optionsStayOutOfThePayloadAndPaddingIsTrimmed) {
    // IP-2: the payload is packet[ihl:tot_len]: options (ihl 24) are skipped, bytes after tot_len (link padding) dropped.
    std::string p = std::string("\x46\x00\x00\x1f\x00\x01\x40\x00\x40\x11\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02", 20);
    p += std::string("\x01\x01\x01\x00", 4);  // NOP, NOP, NOP, end of options
    p += "payload";                           // 24 + 7 = 31 = 0x1f
    p += std::string(20, '\0');               // Ethernet padding
    auto d = decodeIPHeader(asBytes(p));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->header.ihl, 24);
    EXPECT_EQ(d->header.tot_len, 31);
    EXPECT_TRUE(d->header.dont_fragment);
    EXPECT_FALSE(d->header.more_fragments);
    EXPECT_EQ(d->header.protocol, 17);
    EXPECT_EQ(d->header.source, "10.0.0.1");
    EXPECT_EQ(d->header.dest, "10.0.0.2");
    EXPECT_EQ(asText(d->payload), "payload");
}

TEST_F(IPTest, IP_2_packetsThatAreNotWellFormedIPv4AreDropped) {
    // IP-2: not IPv4, under 20 bytes, ihl < 20 or past the end, tot_len < ihl or (not partial) past the end: dropped, counted.
    std::string good = weft::pair::testing::ip("10.0.0.1", "10.0.0.2", asBytes("abcd"));
    auto with = [&](std::size_t at, char byte) {
        std::string p = good;
        p[at] = byte;
        return p;
    };
    std::vector<std::string> bad = {
        "",
        good.substr(0, 19),
        with(0, '\x65'),                                                                      // IPv6's version nibble
        std::string("\x60\x00\x00\x00\x00\x04\x11\x40", 8) + std::string(32, '\1') + "abcd",  // a real IPv6 header
        with(0, '\x44'),                                                                      // ihl 16
        with(0, '\x4f'),                                                                      // ihl 60 > 24 bytes
        with(3, '\x10'),                                                                      // tot_len 16 < ihl
        with(3, '\x19'),                                                                      // tot_len 25 > 24 bytes
    };
    IPProtocol proto;
    auto p1 = std::make_shared<RecordingDatagramProtocol>();
    proto.addProto(17, p1);
    for (auto& p : bad) {
        EXPECT_FALSE(decodeIPHeader(asBytes(p))) << ::testing::PrintToString(p);
        proto.datagramReceived(asBytes(p));
    }
    EXPECT_TRUE(p1->received.empty());
    EXPECT_EQ(proto.malformedPackets(), bad.size());
    proto.datagramReceived(asBytes(good));
    ASSERT_EQ(p1->received.size(), 1u);
    EXPECT_EQ(p1->received[0].data, "abcd");
}

TEST_F(IPTest, IP_2_aPartialPacketMayEndBeforeItsTotalLength) {
    // IP-2: a packet its reader cut (partial) keeps what there is; the same bytes not marked partial are dropped.
    std::string p = weft::pair::testing::ip("10.0.0.1", "10.0.0.2", asBytes("0123456789")).substr(0, 25);
    EXPECT_FALSE(decodeIPHeader(asBytes(p), false));
    auto d = decodeIPHeader(asBytes(p), true);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->header.tot_len, 30);
    EXPECT_EQ(asText(d->payload), "01234");
}

TEST_F(IPTest, IP_3_aNegativeNumberIsRefused) {
    // IP-3: num < 0 throws "Added protocol must be positive or zero".
    IPProtocol e;
    expectInvalid([&] { e.addProto(-1, std::make_shared<RecordingDatagramProtocol>()); },
                  "Added protocol must be positive or zero");
}

TEST_F(IPTest, IP_3_aNumberBeyond8BitsIsRefused) {
    // IP-3, Better than Twisted: the field has 8 bits, so 256, 2**32 and 2**32+1 throw "… must fit in 8 bits"; 0 and 255 do not.
    IPProtocol e;
    for (std::int64_t n : {std::int64_t{256}, std::int64_t{1} << 32, (std::int64_t{1} << 32) + 1})
        expectInvalid([&] { e.addProto(n, std::make_shared<RecordingDatagramProtocol>()); },
                      "Added protocol must fit in 8 bits");
    auto p = std::make_shared<RecordingDatagramProtocol>();
    e.addProto(0, p);
    e.addProto(255, p);
    e.datagramReceived(asBytes(weft::pair::testing::ip("1.1.1.1", "2.2.2.2", asBytes("x"), 255)));
    e.datagramReceived(asBytes(weft::pair::testing::ip("1.1.1.1", "2.2.2.2", asBytes("y"), 0)));
    ASSERT_EQ(p->received.size(), 2u);
    EXPECT_EQ(p->received[0].header.protocol, 255);
    EXPECT_EQ(p->received[1].header.protocol, 0);
}

TEST_F(IPTest, IP_3_aProtocolOfTheWrongLevelIsRefused) {
    // IP-3: the protocol must provide IRawDatagramProtocol: another type does not compile, a null one throws.
    static_assert(!std::is_invocable_v<decltype(&IPProtocol::addProto), IPProtocol&, std::int64_t,
                                       std::shared_ptr<DatagramProtocol>>);
    IPProtocol e;
    expectInvalid([&] { e.addProto(42, nullptr); }, "Added protocol must provide IRawDatagramProtocol");
}

}  // namespace
