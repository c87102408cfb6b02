// IPv4 packets (weft/pair/ip.hpp). Spec: pair.md IP-1..IP-3.
#include <weft/pair/ip.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>

#include "pair/detail/checks.hpp"

namespace weft::pair {

namespace {
std::string dottedQuad(const std::byte* p) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, p, text, sizeof text);
    return text;
}
}  // namespace

std::optional<IPPacket> decodeIPHeader(Bytes packet, bool partial) {
    constexpr std::size_t kMinimum = 20;
    if (packet.size() < kMinimum) return std::nullopt;
    const std::byte* p = packet.data();
    const unsigned first = std::to_integer<unsigned>(p[0]);
    // IP-2, Better than Twisted: RFC 791's order, version in the high nibble.
    const unsigned version = first >> 4;
    const std::size_t ihl = (first & 0x0F) * 4u;
    if (version != 4 || ihl < kMinimum || ihl > packet.size()) return std::nullopt;
    const std::size_t total = detail::be16(p + 2);
    if (total < ihl) return std::nullopt;
    if (total > packet.size() && !partial) return std::nullopt;  // a cut packet says so
    IPPacket out;
    IPHeader& h = out.header;
    h.version = static_cast<std::uint8_t>(version);
    h.ihl = static_cast<std::uint16_t>(ihl);
    h.tos = std::to_integer<std::uint8_t>(p[1]);
    h.tot_len = static_cast<std::uint16_t>(total);
    h.fragment_id = detail::be16(p + 4);
    const std::uint16_t flags = detail::be16(p + 6);
    h.fragment_offset = flags & 0x1FFF;
    h.dont_fragment = (flags & 0x4000) != 0;
    h.more_fragments = (flags & 0x2000) != 0;
    h.ttl = std::to_integer<std::uint8_t>(p[8]);
    h.protocol = std::to_integer<std::uint8_t>(p[9]);
    h.check = detail::be16(p + 10);
    h.source = dottedQuad(p + 12);
    h.dest = dottedQuad(p + 16);
    out.payload = packet.subspan(ihl, std::min(total, packet.size()) - ihl);
    return out;
}

void IPProtocol::addProto(std::int64_t num, std::shared_ptr<IRawDatagramProtocol> proto) {
    if (!proto) throw std::invalid_argument("Added protocol must provide IRawDatagramProtocol");
    detail::checkProtocolNumber(num, 8);  // IP-3, Better than Twisted: the field has 8 bits
    ipProtos_[static_cast<std::uint8_t>(num)].push_back(std::move(proto));
}

void IPProtocol::datagramReceived(Bytes data, bool partial, Bytes, Bytes, std::optional<std::uint16_t>) {
    auto packet = decodeIPHeader(data, partial);
    if (!packet) {
        ++malformed_;
        return;
    }
    auto found = ipProtos_.find(packet->header.protocol);
    if (found == ipProtos_.end()) return;
    // By index, holding each protocol: a callback may add protocols to this list.
    auto& protos = found->second;
    for (std::size_t i = 0; i < protos.size(); ++i) {
        auto proto = protos[i];
        proto->datagramReceived(packet->payload, partial, packet->header);
    }
}

}  // namespace weft::pair
