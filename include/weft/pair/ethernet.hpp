// weft/pair/ethernet.hpp — Ethernet frames (twisted.pair.ethernet). Spec:
// pair.md ETH-1..ETH-3.
//
// EthernetProtocol takes whole frames — from a TAP port (TUN-1) or from any
// other source — and hands each frame's payload to the IRawPacketProtocols
// registered for its EtherType. The header is decoded by a pure function,
// decodeEthernetHeader(), which the fuzz target tests/fuzz/fuzz_pair_packets
// feeds arbitrary bytes.
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

/// A protocol for Ethernet frames (Twisted ethernet.IEthernetProtocol). A
/// TuntapPort whose protocol provides it opens a TAP device (TUN-1).
class WEFT_EXPORT IEthernetProtocol {
public:
    virtual ~IEthernetProtocol() = default;
    /// Adds a network-layer protocol for frames of EtherType `num`.
    virtual void addProto(std::int64_t num, std::shared_ptr<IRawPacketProtocol> proto) = 0;
    /// One frame, starting at the destination address. `partial` is true when
    /// the frame was cut (it was longer than the reader's buffer).
    virtual void datagramReceived(Bytes frame, bool partial = false) = 0;
};

/// The 14-byte header of an Ethernet II frame (Twisted ethernet.EthernetHeader).
struct WEFT_EXPORT EthernetHeader {
    /// The destination and source hardware addresses: 6-byte views into the frame.
    Bytes dest, source;
    /// The EtherType (0x0800: IPv4, 0x0806: ARP, 0x86DD: IPv6), big-endian on the wire.
    std::uint16_t proto = 0;
    /// Everything after the header (Twisted: frame[14:]).
    Bytes payload;
};

/// Decodes a frame's header (ETH-1); nullopt when the frame is shorter than
/// 14 bytes (ETH-3). Pure: it reads only `frame`, and every view it returns
/// points into it.
WEFT_EXPORT std::optional<EthernetHeader> decodeEthernetHeader(Bytes frame) noexcept;

/// Dispatches Ethernet frames by EtherType (Twisted ethernet.EthernetProtocol).
///
/// Ownership: it holds the protocols added to it for its whole life, and
/// keeps each alive while it calls it. A protocol may add protocols (to this
/// one too) from inside datagramReceived.
class WEFT_EXPORT EthernetProtocol : public AbstractDatagramProtocol, public IEthernetProtocol {
public:
    /// ETH-2: adds `proto` for EtherType `num`; several protocols may share a
    /// number and are called in the order they were added. Throws
    /// std::invalid_argument "Added protocol must be positive or zero" for
    /// num < 0, "Added protocol must fit in 16 bits" for num >= 2**16, and
    /// "Added protocol must provide IRawPacketProtocol" for a null `proto`
    /// (Twisted: TypeError, and an adaptation error; a protocol of the wrong
    /// level does not compile).
    void addProto(std::int64_t num, std::shared_ptr<IRawPacketProtocol> proto) override;
    /// ETH-1: passes the payload to every protocol registered for the frame's
    /// EtherType, with its destination, source and EtherType; frames of other
    /// types are dropped. ETH-3, Better than Twisted: a frame shorter than 14
    /// bytes is dropped and counted (shortFrames()) instead of throwing.
    void datagramReceived(Bytes frame, bool partial = false) override;
    /// Frames dropped because they were shorter than an Ethernet header.
    std::uint64_t shortFrames() const noexcept { return short_; }

private:
    std::unordered_map<std::uint16_t, std::vector<std::shared_ptr<IRawPacketProtocol>>> etherProtos_;
    std::uint64_t short_ = 0;
};

}  // namespace weft::pair
