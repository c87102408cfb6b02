// weft/pair/ip.hpp — IPv4 packets (twisted.pair.ip). Spec: pair.md IP-1..IP-3.
//
// IPProtocol takes IPv4 packets — from an EthernetProtocol, or straight from
// a TUN port (TUN-16, Better than Twisted) — and hands each packet's payload
// to the IRawDatagramProtocols registered for its protocol number. The header
// is decoded by a pure function, decodeIPHeader(), which the fuzz target
// tests/fuzz/fuzz_pair_packets feeds arbitrary bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/pair/raw.hpp>

namespace weft::pair {

/// A decoded IPv4 packet: its header and its payload.
struct WEFT_EXPORT IPPacket {
    IPHeader header;
    /// The bytes from the end of the header (ihl) to its total length
    /// (tot_len), or to the end of a partial packet: a view into the packet.
    Bytes payload;
};

/// Decodes an IPv4 packet per RFC 791 (IP-1, IP-2 Better than Twisted): the
/// version is the high nibble of the first byte, `ihl` four times the low
/// nibble, and the payload is packet[ihl:tot_len], so options stay out of it
/// and link-layer padding is trimmed. nullopt when the packet is not IPv4,
/// shorter than 20 bytes or than its ihl, has an ihl below 20, a tot_len below
/// its ihl, or a tot_len beyond the buffer — except that a `partial` packet
/// (cut by its reader) may end before its tot_len: its payload is what there is.
WEFT_EXPORT std::optional<IPPacket> decodeIPHeader(Bytes packet, bool partial = false);

/// Dispatches IPv4 packets by protocol number (Twisted ip.IPProtocol).
///
/// Ownership: it holds the protocols added to it for its whole life, and
/// keeps each alive while it calls it. A protocol may add protocols from
/// inside datagramReceived.
class WEFT_EXPORT IPProtocol : public AbstractDatagramProtocol, public IRawPacketProtocol {
public:
    /// IP-3: adds `proto` for protocol number `num`, after those already added
    /// for it. Throws std::invalid_argument "Added protocol must be positive
    /// or zero" for num < 0, "Added protocol must fit in 8 bits" for num > 255
    /// (Better than Twisted, which allows 32 bits for an 8-bit field), and
    /// "Added protocol must provide IRawDatagramProtocol" for a null `proto`.
    void addProto(std::int64_t num, std::shared_ptr<IRawDatagramProtocol> proto) override;
    /// IP-1: decodes `data` (decodeIPHeader) and passes its payload and header
    /// to every protocol registered for its protocol number, in order; other
    /// protocols are dropped, and so are packets that do not decode (counted
    /// in malformedPackets()). `dest`, `source` and `protocol` (the link
    /// layer's, null from a TUN port) are ignored.
    void datagramReceived(Bytes data, bool partial = false, Bytes dest = {}, Bytes source = {},
                          std::optional<std::uint16_t> protocol = std::nullopt) override;
    /// Packets dropped because they were not well-formed IPv4 (IP-2).
    std::uint64_t malformedPackets() const noexcept { return malformed_; }

private:
    std::unordered_map<std::uint8_t, std::vector<std::shared_ptr<IRawDatagramProtocol>>> ipProtos_;
    std::uint64_t malformed_ = 0;
};

}  // namespace weft::pair
