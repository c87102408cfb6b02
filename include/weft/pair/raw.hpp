// weft/pair/raw.hpp — the interfaces of the raw packet protocols
// (twisted.pair.raw). Spec: pair.md ETH-*, IP-*, RUDP-*.
//
//   IRawPacketProtocol     a network-layer protocol (IP, ARP …): what an
//                          EthernetProtocol dispatches to by EtherType, and
//                          what a TUN port carries (TUN-1)
//   IRawDatagramProtocol   a transport-layer protocol (UDP, ICMP, TCP …): what
//                          an IPProtocol dispatches to by protocol number
//   IPHeader               the decoded IPv4 header an IRawDatagramProtocol receives
//
// Twisted passes the header fields as keyword arguments; weft passes them in
// one IPHeader whose members keep Twisted's keyword names. Every Bytes view a
// protocol receives points into the packet being delivered and is valid only
// during the call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <weft/export.hpp>
#include <weft/internet/interfaces.hpp>

namespace weft {
class DatagramProtocol;
}

namespace weft::pair {

class IRawDatagramProtocol;

/// The fields of an IPv4 header (Twisted ip.IPHeader), decoded per RFC 791
/// (IP-2, Better than Twisted: the version is the high nibble of the first
/// byte and `ihl` four times the low one).
struct WEFT_EXPORT IPHeader {
    /// Source and destination addresses as dotted-quad text ("10.0.0.1").
    std::string source, dest;
    /// The protocol number (17: UDP, 1: ICMP, 6: TCP).
    std::uint8_t protocol = 0;
    /// Always 4: other versions are not decoded (IP-2).
    std::uint8_t version = 0;
    /// The header length in bytes (20 without options, at most 60).
    std::uint16_t ihl = 0;
    /// Type of service (DSCP and ECN).
    std::uint8_t tos = 0;
    /// Total length of the packet, header included, as the header says.
    std::uint16_t tot_len = 0;
    /// Identification.
    std::uint16_t fragment_id = 0;
    /// The fragment offset, in units of 8 bytes (the low 13 bits of the flags word).
    std::uint16_t fragment_offset = 0;
    /// DF (bit 0x4000 of the flags word).
    bool dont_fragment = false;
    /// MF (bit 0x2000 of the flags word).
    bool more_fragments = false;
    /// Time to live.
    std::uint8_t ttl = 0;
    /// The header checksum, as sent (not verified).
    std::uint16_t check = 0;

    friend bool operator==(const IPHeader&, const IPHeader&) = default;
};

/// A protocol for network-layer packets (Twisted raw.IRawPacketProtocol).
/// EthernetProtocol dispatches to it by EtherType; a TuntapPort whose protocol
/// provides it (and no IEthernetProtocol) opens a TUN device (TUN-1).
class WEFT_EXPORT IRawPacketProtocol {
public:
    virtual ~IRawPacketProtocol() = default;
    /// Adds a transport-layer protocol for packets with protocol number `num`.
    virtual void addProto(std::int64_t num, std::shared_ptr<IRawDatagramProtocol> proto) = 0;
    /// One packet: `data` starts at the network-layer header. `partial` is
    /// true when the packet was cut (it was longer than the reader's buffer).
    /// From an EthernetProtocol, `dest` and `source` are the frame's 6-byte
    /// hardware addresses and `protocol` its EtherType; from a TUN port, which
    /// has no link layer, they are empty and null (TUN-16, Better than Twisted).
    virtual void datagramReceived(Bytes data, bool partial = false, Bytes dest = {}, Bytes source = {},
                                  std::optional<std::uint16_t> protocol = std::nullopt) = 0;
};

/// A protocol for transport-layer datagrams carried by IP (Twisted
/// raw.IRawDatagramProtocol): IPProtocol dispatches to it by protocol number.
class WEFT_EXPORT IRawDatagramProtocol {
public:
    virtual ~IRawDatagramProtocol() = default;
    /// Adds an application protocol for datagrams addressed to `num` (a port number, for UDP).
    virtual void addProto(std::int64_t num, std::shared_ptr<DatagramProtocol> proto) = 0;
    /// One datagram: `data` is the IP payload (from the end of the IP header to
    /// the header's total length), `header` the decoded IP header. `partial`
    /// is true when the packet was cut before its total length.
    virtual void datagramReceived(Bytes data, bool partial, const IPHeader& header) = 0;
};

}  // namespace weft::pair
