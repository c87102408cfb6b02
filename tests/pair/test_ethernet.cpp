// pair.md ETH-1..ETH-3: EthernetProtocol, with Twisted's test vectors
// (twisted/pair/test/test_ethernet.py). No reactor is involved.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <weft/pair/ethernet.hpp>

#include "pair/pairtest.hpp"
#include "support/reactortest.hpp"

using namespace weft;
using namespace weft::pair;
using weft::test::expectInvalid;

namespace {

// What an IRawPacketProtocol was given (Twisted's MyProtocol records the same).
struct Packet {
    std::string data;
    bool partial;
    std::string dest, source;
    std::optional<std::uint16_t> protocol;
    friend bool operator==(const Packet&, const Packet&) = default;
};

std::ostream& operator<<(std::ostream& os, const Packet& p) {
    return os << "{" << ::testing::PrintToString(p.data) << ", partial=" << p.partial
              << ", dest=" << ::testing::PrintToString(p.dest) << ", source=" << ::testing::PrintToString(p.source)
              << ", protocol=" << (p.protocol ? std::to_string(*p.protocol) : "null") << "}";
}

class RecordingPacketProtocol : public IRawPacketProtocol {
public:
    void addProto(std::int64_t num, std::shared_ptr<IRawDatagramProtocol>) override { added.push_back(num); }
    void datagramReceived(Bytes data, bool partial, Bytes dest, Bytes source,
                          std::optional<std::uint16_t> protocol) override {
        received.push_back(
            {std::string(asText(data)), partial, std::string(asText(dest)), std::string(asText(source)), protocol});
        if (onPacket) onPacket();
    }
    std::vector<Packet> received;
    std::vector<std::int64_t> added;
    std::function<void()> onPacket;
};

class EthernetTest : public weft::test::LeakCheckedTest {};

// A literal with its NUL bytes (asBytes of a char array would stop at the first).
template <std::size_t N>
std::string lit(const char (&s)[N]) {
    return std::string(s, N - 1);
}

TEST_F(EthernetTest, ETH_1_packetParsingPassesPayloadAddressesAndEtherType) {
    // ETH-1: frame[14:] goes to the protocol registered for the EtherType, with dest (0-5), source (6-11) and the type.
    EthernetProtocol proto;
    auto p1 = std::make_shared<RecordingPacketProtocol>();
    proto.addProto(0x0800, p1);
    proto.datagramReceived(asBytes(lit("123456987654\x08\x00"
                                       "foobar")),
                           false);
    ASSERT_EQ(p1->received.size(), 1u);
    EXPECT_EQ(p1->received[0], (Packet{"foobar", false, "123456", "987654", 0x0800}));
}

TEST_F(EthernetTest, ETH_1_multiplePacketsAreEachDeliveredWithTheirOwnPartialFlag) {
    // ETH-1: every frame is delivered, in order, with the partial flag it came with.
    EthernetProtocol proto;
    auto p1 = std::make_shared<RecordingPacketProtocol>();
    proto.addProto(0x0800, p1);
    proto.datagramReceived(asBytes(lit("123456987654\x08\x00"
                                       "foobar")),
                           false);
    proto.datagramReceived(asBytes(lit("012345abcdef\x08\x00quux")), true);
    EXPECT_EQ(p1->received, (std::vector<Packet>{{"foobar", false, "123456", "987654", 0x0800},
                                                 {"quux", true, "012345", "abcdef", 0x0800}}));
}

TEST_F(EthernetTest, ETH_1_protocolsSharingAnEtherTypeAreCalledInRegistrationOrder) {
    // ETH-1: several protocols registered for one type all get the frame, in registration order.
    EthernetProtocol proto;
    std::vector<int> order;
    auto p1 = std::make_shared<RecordingPacketProtocol>();
    auto p2 = std::make_shared<RecordingPacketProtocol>();
    p1->onPacket = [&] { order.push_back(1); };
    p2->onPacket = [&] { order.push_back(2); };
    proto.addProto(0x0800, p1);
    proto.addProto(0x0800, p2);
    proto.datagramReceived(
        asBytes(lit("123456987654\x08\x00"
                    "foobar")));
    Packet expected{"foobar", false, "123456", "987654", 0x0800};
    EXPECT_EQ(p1->received, std::vector<Packet>{expected});
    EXPECT_EQ(p2->received, std::vector<Packet>{expected});
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST_F(EthernetTest, ETH_1_framesOfAnUnregisteredTypeAreDropped) {
    // ETH-1: a frame whose EtherType has no protocol reaches nobody.
    EthernetProtocol proto;
    auto p1 = std::make_shared<RecordingPacketProtocol>();
    proto.addProto(0x0801, p1);
    proto.datagramReceived(asBytes(lit("123456987654\x08\x00"
                                       "foobar")),
                           false);
    proto.datagramReceived(asBytes(lit("012345abcdef\x08\x00quux")), true);
    EXPECT_TRUE(p1->received.empty());
    EXPECT_EQ(proto.shortFrames(), 0u);
}

TEST_F(EthernetTest, ETH_1_framesAreDemultiplexedByEtherType) {
    // ETH-1: each frame goes to the protocols of its own type only.
    EthernetProtocol proto;
    auto p1 = std::make_shared<RecordingPacketProtocol>();
    auto p2 = std::make_shared<RecordingPacketProtocol>();
    proto.addProto(0x0800, p1);
    proto.addProto(0x0806, p2);
    proto.datagramReceived(asBytes(lit("123456987654\x08\x00"
                                       "foobar")),
                           false);
    proto.datagramReceived(asBytes(lit("012345abcdef\x08\x06quux")), true);
    proto.datagramReceived(asBytes(lit("123456987654\x08\x06"
                                       "foobar")),
                           false);
    proto.datagramReceived(asBytes(lit("012345abcdef\x08\x00quux")), true);
    EXPECT_EQ(p1->received, (std::vector<Packet>{{"foobar", false, "123456", "987654", 0x0800},
                                                 {"quux", true, "012345", "abcdef", 0x0800}}));
    EXPECT_EQ(p2->received, (std::vector<Packet>{{"quux", true, "012345", "abcdef", 0x0806},
                                                 {"foobar", false, "123456", "987654", 0x0806}}));
}

TEST_F(EthernetTest, ETH_1_aProtocolMayAddProtocolsFromInsideDatagramReceived) {
    // ETH-1: adding protocols for the type being dispatched (and for others) from inside a callback is safe.
    auto proto = std::make_shared<EthernetProtocol>();
    auto p1 = std::make_shared<RecordingPacketProtocol>();
    std::vector<std::shared_ptr<RecordingPacketProtocol>> late;
    p1->onPacket = [&] {
        for (int i = 0; i < 64; ++i) {  // enough to move the vector being walked
            late.push_back(std::make_shared<RecordingPacketProtocol>());
            proto->addProto(i % 2 ? 0x0800 : 0x86DD, late.back());
        }
    };
    proto->addProto(0x0800, p1);
    proto->datagramReceived(
        asBytes(lit("123456987654\x08\x00"
                    "foobar")));
    EXPECT_EQ(p1->received.size(), 1u);
    std::size_t reached = 0;
    for (auto& p : late) reached += p->received.size();
    EXPECT_EQ(reached, 32u);  // the ones added for this type during its dispatch are called too
}

TEST_F(EthernetTest, ETH_1_decodedHeaderIsAViewIntoTheFrame) {
    // ETH-1: decodeEthernetHeader reads dest 0-5, source 6-11, the type big-endian at 12-13, payload from 14.
    std::string frame = std::string("\xde\xad\xbe\xef\xca\xfe\x02\x00\x00\x00\x00\x01\x86\xdd", 14) + "xyz";
    auto h = decodeEthernetHeader(asBytes(frame));
    ASSERT_TRUE(h);
    EXPECT_EQ(h->proto, 0x86DD);
    EXPECT_EQ(h->dest.data(), reinterpret_cast<const std::byte*>(frame.data()));
    EXPECT_EQ(h->source.data(), reinterpret_cast<const std::byte*>(frame.data()) + 6);
    EXPECT_EQ(h->dest.size(), 6u);
    EXPECT_EQ(h->source.size(), 6u);
    EXPECT_EQ(asText(h->payload), "xyz");
    auto bare = decodeEthernetHeader(asBytes(frame).first(14));
    ASSERT_TRUE(bare);
    EXPECT_TRUE(bare->payload.empty());
}

TEST_F(EthernetTest, ETH_2_aNegativeNumberIsRefused) {
    // ETH-2: num < 0 throws "Added protocol must be positive or zero" (Twisted TypeError).
    EthernetProtocol e;
    expectInvalid([&] { e.addProto(-1, std::make_shared<RecordingPacketProtocol>()); },
                  "Added protocol must be positive or zero");
}

TEST_F(EthernetTest, ETH_2_aNumberBeyond16BitsIsRefused) {
    // ETH-2: num >= 2**16 throws "Added protocol must fit in 16 bits"; 0 and 0xFFFF are accepted.
    EthernetProtocol e;
    for (std::int64_t n : {std::int64_t{1} << 16, (std::int64_t{1} << 16) + 1})
        expectInvalid([&] { e.addProto(n, std::make_shared<RecordingPacketProtocol>()); },
                      "Added protocol must fit in 16 bits");
    auto p = std::make_shared<RecordingPacketProtocol>();
    e.addProto(0, p);
    e.addProto(0xFFFF, p);
    e.datagramReceived(asBytes(std::string("123456987654\xff\xff", 14) + "x"));
    e.datagramReceived(asBytes(std::string("123456987654\x00\x00", 14) + "y"));
    EXPECT_EQ(p->received.size(), 2u);
}

TEST_F(EthernetTest, ETH_2_aProtocolOfTheWrongLevelIsRefused) {
    // ETH-2: the protocol must provide IRawPacketProtocol: another type does not compile, a null one throws.
    static_assert(!std::is_convertible_v<std::shared_ptr<DatagramProtocol>, std::shared_ptr<IRawPacketProtocol>>);
    static_assert(!std::is_invocable_v<decltype(&EthernetProtocol::addProto), EthernetProtocol&, std::int64_t,
                                       std::shared_ptr<DatagramProtocol>>);
    EthernetProtocol e;
    expectInvalid([&] { e.addProto(42, nullptr); }, "Added protocol must provide IRawPacketProtocol");
}

TEST_F(EthernetTest, ETH_3_framesShorterThanAHeaderAreDroppedAndCounted) {
    // ETH-3, Better than Twisted: a frame under 14 bytes is dropped silently (counted), never thrown about.
    EthernetProtocol proto;
    auto p = std::make_shared<RecordingPacketProtocol>();
    proto.addProto(0x3132, p);  // "12": what a short frame of digits would be read as
    std::string digits = "1234567890123";
    for (std::size_t n = 0; n < 14; ++n) {
        EXPECT_FALSE(decodeEthernetHeader(asBytes(digits).first(n))) << n;
        EXPECT_NO_THROW(proto.datagramReceived(asBytes(digits).first(n)));
    }
    EXPECT_TRUE(p->received.empty());
    EXPECT_EQ(proto.shortFrames(), 14u);
}

}  // namespace
