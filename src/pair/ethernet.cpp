// Ethernet frames (weft/pair/ethernet.hpp). Spec: pair.md ETH-1..ETH-3.
#include <weft/pair/ethernet.hpp>

#include <stdexcept>

#include "pair/detail/checks.hpp"

namespace weft::pair {

std::optional<EthernetHeader> decodeEthernetHeader(Bytes frame) noexcept {
    constexpr std::size_t kHeader = 14;
    if (frame.size() < kHeader) return std::nullopt;  // ETH-3
    EthernetHeader h;
    h.dest = frame.subspan(0, 6);
    h.source = frame.subspan(6, 6);
    h.proto = detail::be16(frame.data() + 12);
    h.payload = frame.subspan(kHeader);
    return h;
}

void EthernetProtocol::addProto(std::int64_t num, std::shared_ptr<IRawPacketProtocol> proto) {
    if (!proto) throw std::invalid_argument("Added protocol must provide IRawPacketProtocol");
    detail::checkProtocolNumber(num, 16);  // ETH-2
    etherProtos_[static_cast<std::uint16_t>(num)].push_back(std::move(proto));
}

void EthernetProtocol::datagramReceived(Bytes frame, bool partial) {
    auto header = decodeEthernetHeader(frame);
    if (!header) {
        ++short_;
        return;
    }
    auto found = etherProtos_.find(header->proto);
    if (found == etherProtos_.end()) return;
    // By index, holding each protocol: a callback may add protocols to this list.
    auto& protos = found->second;
    for (std::size_t i = 0; i < protos.size(); ++i) {
        auto proto = protos[i];
        proto->datagramReceived(header->payload, partial, header->dest, header->source, header->proto);
    }
}

}  // namespace weft::pair
