// weft/pair/rawudp.hpp — UDP datagrams from raw IP packets
// (twisted.pair.rawudp). Spec: pair.md RUDP-1..RUDP-3.
//
// RawUDPProtocol takes the payloads an IPProtocol hands it for protocol 17
// and calls the DatagramProtocols registered for each datagram's destination
// port, as a UDP socket would. The header is decoded by a pure function,
// decodeUDPHeader(), which the fuzz target tests/fuzz/fuzz_pair_packets feeds
// arbitrary bytes.
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

/// The 8-byte UDP header (Twisted rawudp.UDPHeader).
struct WEFT_EXPORT UDPHeader {
    /// Source and destination ports.
    std::uint16_t source = 0, dest = 0;
    /// The length field (header included) and the checksum, as sent (neither is verified).
    std::uint16_t len = 0, check = 0;

    friend bool operator==(const UDPHeader&, const UDPHeader&) = default;
};

/// A decoded UDP datagram: its header and its payload.
struct WEFT_EXPORT UDPDatagram {
    UDPHeader header;
    /// RUDP-3, Better than Twisted: data[8:len] when 8 <= len <= the bytes
    /// there are, otherwise everything after the header. A view into the datagram.
    Bytes payload;
};

/// Decodes a UDP datagram (RUDP-1, RUDP-3); nullopt when it is shorter than
/// its 8-byte header. Pure: it reads only `data`.
WEFT_EXPORT std::optional<UDPDatagram> decodeUDPHeader(Bytes data) noexcept;

/// Dispatches UDP datagrams by destination port (Twisted rawudp.RawUDPProtocol).
///
/// Ownership: it holds the protocols added to it for its whole life, and
/// keeps each alive while it calls it.
class WEFT_EXPORT RawUDPProtocol : public AbstractDatagramProtocol, public IRawDatagramProtocol {
public:
    /// RUDP-2: adds `proto` for destination port `num`, after those already
    /// added for it. Throws std::invalid_argument "Added protocol must be an
    /// instance of DatagramProtocol" for a null `proto` (any other type does
    /// not compile), "Added protocol must be positive or zero" for num < 0 and
    /// "Added protocol must fit in 16 bits" for num >= 2**16.
    void addProto(std::int64_t num, std::shared_ptr<DatagramProtocol> proto) override;
    /// RUDP-1: calls datagramReceived(payload, IPv4Address("UDP", header.source,
    /// source port)) on every protocol registered for the destination port;
    /// other ports are dropped, and so are datagrams shorter than 8 bytes
    /// (counted in malformedDatagrams()).
    void datagramReceived(Bytes data, bool partial, const IPHeader& header) override;
    /// Datagrams dropped because they were shorter than a UDP header.
    std::uint64_t malformedDatagrams() const noexcept { return malformed_; }

private:
    std::unordered_map<std::uint16_t, std::vector<std::shared_ptr<DatagramProtocol>>> udpProtos_;
    std::uint64_t malformed_ = 0;
};

}  // namespace weft::pair
