// UDP datagrams from raw IP packets (weft/pair/rawudp.hpp). Spec: pair.md RUDP-1..RUDP-3.
#include <weft/pair/rawudp.hpp>

#include <stdexcept>

#include <weft/internet/address.hpp>

#include "pair/detail/checks.hpp"

namespace weft::pair {

std::optional<UDPDatagram> decodeUDPHeader(Bytes data) noexcept {
    constexpr std::size_t kHeader = 8;
    if (data.size() < kHeader) return std::nullopt;
    UDPDatagram out;
    out.header.source = detail::be16(data.data());
    out.header.dest = detail::be16(data.data() + 2);
    out.header.len = detail::be16(data.data() + 4);
    out.header.check = detail::be16(data.data() + 6);
    // RUDP-3, Better than Twisted: trust the length only where it fits; a
    // short or impossible one (Twisted's own vectors carry 6) keeps data[8:].
    std::size_t length = out.header.len;
    out.payload =
        (length >= kHeader && length <= data.size()) ? data.subspan(kHeader, length - kHeader) : data.subspan(kHeader);
    return out;
}

void RawUDPProtocol::addProto(std::int64_t num, std::shared_ptr<DatagramProtocol> proto) {
    if (!proto) throw std::invalid_argument("Added protocol must be an instance of DatagramProtocol");
    detail::checkProtocolNumber(num, 16);  // RUDP-2
    udpProtos_[static_cast<std::uint16_t>(num)].push_back(std::move(proto));
}

void RawUDPProtocol::datagramReceived(Bytes data, bool, const IPHeader& header) {
    auto datagram = decodeUDPHeader(data);
    if (!datagram) {
        ++malformed_;
        return;
    }
    auto found = udpProtos_.find(datagram->header.dest);
    if (found == udpProtos_.end()) return;
    const Address from = IPv4Address("UDP", header.source, datagram->header.source);
    // By index, holding each protocol: a callback may add protocols to this list.
    auto& protos = found->second;
    for (std::size_t i = 0; i < protos.size(); ++i) {
        auto proto = protos[i];
        proto->datagramReceived(datagram->payload, from);
    }
}

}  // namespace weft::pair
