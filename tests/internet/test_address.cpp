// The address kinds still to come with their transports (twisted.internet
// PipeAddress, twisted.pair TunnelAddress), as members of weft::Address.
// pair.md TUN-12 (the address half; TuntapPort::getHost waits for tun/tap).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <unordered_set>
#include <variant>

#include <weft/internet/address.hpp>

using namespace weft;

TEST(TunnelAddress, TUN_12_equalExactlyWhenTypeAndNameAreEqual) {
    // TUN-12: two TunnelAddresses are equal exactly when type value and name are equal; equal ones hash alike.
    TunnelAddress tun0(TunnelType::tun, "tun0");
    EXPECT_EQ(tun0, TunnelAddress(TunnelType::tun, "tun0"));
    EXPECT_NE(tun0, TunnelAddress(TunnelType::tap, "tun0"));
    EXPECT_NE(tun0, TunnelAddress(TunnelType::tun, "tun1"));
    EXPECT_EQ(std::hash<TunnelAddress>{}(tun0), std::hash<TunnelAddress>{}(TunnelAddress(TunnelType::tun, "tun0")));
    EXPECT_EQ(static_cast<unsigned>(TunnelType::tun), 0x0001u);  // IFF_TUN
    EXPECT_EQ(static_cast<unsigned>(TunnelType::tap), 0x0002u);  // IFF_TAP
    std::unordered_set<Address> set{Address(tun0), Address(TunnelAddress(TunnelType::tap, "tap0"))};
    EXPECT_EQ(set.count(Address(TunnelAddress(TunnelType::tun, "tun0"))), 1u);
    EXPECT_EQ(set.count(Address(TunnelAddress(TunnelType::tun, "tap0"))), 0u);
}

TEST(TunnelAddress, TUN_12_neverEqualsAnAddressOfAnotherKind) {
    // TUN-12: an address never equals an object of another class — a TunnelAddress, a PipeAddress and a NoAddress are all different Addresses; PipeAddresses (no fields) all equal each other.
    Address tunnel = TunnelAddress(TunnelType::tun, "tun0");
    Address pipe = PipeAddress();
    EXPECT_NE(tunnel, pipe);
    EXPECT_NE(pipe, Address(NoAddress()));
    EXPECT_NE(tunnel, Address(UNIXAddress("tun0")));
    EXPECT_EQ(pipe, Address(PipeAddress()));
    EXPECT_TRUE(std::holds_alternative<PipeAddress>(pipe));
    EXPECT_EQ(std::hash<Address>{}(pipe), std::hash<Address>{}(Address(PipeAddress())));
}

TEST(TunnelAddress, TUN_12_textualFormNamesTheTypeFlagAndTheName) {
    // TUN-12: the textual form is Twisted's repr, "<TunnelAddress type=IFF_TUN name='tun0'>"; addressStr gives every kind's.
    EXPECT_EQ(TunnelAddress(TunnelType::tun, "tun0").str(), "<TunnelAddress type=IFF_TUN name='tun0'>");
    EXPECT_EQ(addressStr(TunnelAddress(TunnelType::tap, "tap7")), "<TunnelAddress type=IFF_TAP name='tap7'>");
    EXPECT_EQ(addressStr(TunnelAddress(TunnelType::tun, "a\nb")), "<TunnelAddress type=IFF_TUN name='a\\nb'>");
    EXPECT_EQ(addressStr(PipeAddress()), "PipeAddress()");
    // A visitor written against IAddress covers kinds added later.
    EXPECT_EQ(std::visit([](const IAddress& a) { return a.str(); }, Address(PipeAddress())), "PipeAddress()");
}
