// libFuzzer target: the raw packet decoders of weft::pair (pair.md ETH-*, IP-*,
// RUDP-*), fed arbitrary bytes through EthernetProtocol → IPProtocol →
// RawUDPProtocol → a DatagramProtocol, as a TAP port would feed them, or from
// IPProtocol on, as a TUN port would.
//
// Input: byte 0 picks the entry (bit 0: partial; bit 1: start at IP, as a
// TUN; bit 2: start at UDP with a fixed IP header), bytes 1–2 the UDP port
// registered, byte 3 a second IP protocol number registered; the rest is the
// frame or packet. Every layer checks what it is handed against its input:
// a view out of bounds, a field that does not match the bytes it came from,
// or a short packet that is delivered stops the fuzzer (__builtin_trap), as
// do crashes, leaks and undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include <weft/internet/address.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/pair/ethernet.hpp>
#include <weft/pair/ip.hpp>
#include <weft/pair/raw.hpp>
#include <weft/pair/rawudp.hpp>

namespace {

using weft::Bytes;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool inside(Bytes part, Bytes whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

unsigned at(Bytes b, std::size_t i) { return std::to_integer<unsigned>(b[i]); }

// What the current input is, for the layers' checks.
struct Input {
    Bytes frame;   // as given to EthernetProtocol (empty when the entry is IP or UDP)
    Bytes packet;  // the IP packet (from the frame, or as given)
    bool partial = false;
    int delivered = 0;
};
Input current;

class UDPSink final : public weft::DatagramProtocol {
public:
    void datagramReceived(Bytes datagram, const weft::Address& from) override {
        check(std::holds_alternative<weft::IPv4Address>(from));
        ++current.delivered;
        // The payload is a view into the packet, after an 8-byte header.
        if (!current.packet.empty()) check(inside(datagram, current.packet));
        volatile unsigned sum = 0;
        for (std::byte b : datagram) sum = sum + std::to_integer<unsigned>(b);  // every byte readable
    }
};

// Checks each IP payload against the packet it came from, then hands it on to UDP.
class CheckingIP final : public weft::pair::IRawDatagramProtocol {
public:
    std::shared_ptr<weft::pair::RawUDPProtocol> udp = std::make_shared<weft::pair::RawUDPProtocol>();
    void addProto(std::int64_t num, std::shared_ptr<weft::DatagramProtocol> proto) override {
        udp->addProto(num, proto);
    }
    void datagramReceived(Bytes data, bool partial, const weft::pair::IPHeader& h) override {
        Bytes p = current.packet;
        check(partial == current.partial);
        check(p.size() >= 20 && h.version == 4 && h.version == at(p, 0) >> 4);
        check(h.ihl == (at(p, 0) & 0x0F) * 4u && h.ihl >= 20 && h.ihl <= p.size());
        check(h.tot_len == ((at(p, 2) << 8) | at(p, 3)) && h.tot_len >= h.ihl);
        check(partial || h.tot_len <= p.size());
        check(data.data() == p.data() + h.ihl);
        check(data.size() == std::min<std::size_t>(h.tot_len, p.size()) - h.ihl);
        check(h.protocol == at(p, 9) && h.ttl == at(p, 8) && h.tos == at(p, 1));
        check(h.fragment_offset == (((at(p, 6) << 8) | at(p, 7)) & 0x1FFF));
        check(h.dont_fragment == ((at(p, 6) & 0x40) != 0) && h.more_fragments == ((at(p, 6) & 0x20) != 0));
        check(h.source.size() >= 7 && h.source.size() <= 15 && h.dest.size() >= 7 && h.dest.size() <= 15);
        if (auto d = weft::pair::decodeUDPHeader(data)) {
            check(data.size() >= 8 && inside(d->payload, data) && d->payload.data() == data.data() + 8);
            check(d->header.dest == ((at(data, 2) << 8) | at(data, 3)));
            if (d->header.len >= 8 && d->header.len <= data.size()) check(d->payload.size() == d->header.len - 8u);
            else check(d->payload.size() == data.size() - 8);
        } else {
            check(data.size() < 8);
        }
        udp->datagramReceived(data, partial, h);
    }
};

// Checks each Ethernet payload against the frame, then hands it to IP.
class CheckingLink final : public weft::pair::IRawPacketProtocol {
public:
    std::shared_ptr<weft::pair::IPProtocol> ip = std::make_shared<weft::pair::IPProtocol>();
    void addProto(std::int64_t num, std::shared_ptr<weft::pair::IRawDatagramProtocol> proto) override {
        ip->addProto(num, proto);
    }
    void datagramReceived(Bytes data, bool partial, Bytes dest, Bytes source,
                          std::optional<std::uint16_t> protocol) override {
        Bytes f = current.frame;
        check(f.size() >= 14 && partial == current.partial);
        check(dest.data() == f.data() && dest.size() == 6 && source.data() == f.data() + 6 && source.size() == 6);
        check(protocol && *protocol == ((at(f, 12) << 8) | at(f, 13)));
        check(data.data() == f.data() + 14 && data.size() == f.size() - 14);
        current.packet = data;
        ip->datagramReceived(data, partial, dest, source, protocol);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 4) return 0;
    const unsigned mode = bytes[0];
    const auto port = static_cast<std::uint16_t>((bytes[1] << 8) | bytes[2]);
    const unsigned second = bytes[3];
    Bytes input(reinterpret_cast<const std::byte*>(bytes) + 4, size - 4);
    current = {};
    current.partial = mode & 1;

    auto sink = std::make_shared<UDPSink>();
    auto checking = std::make_shared<CheckingIP>();
    checking->addProto(port, sink);
    checking->addProto(port, sink);  // two on one port: each is called
    auto link = std::make_shared<CheckingLink>();
    link->addProto(17, checking);
    if (second != 17) link->addProto(second, checking);  // the checks hold for any protocol number
    weft::pair::EthernetProtocol ether;
    ether.addProto(0x0800, link);
    ether.addProto(0x86DD, link);  // IPv6 frames reach IPProtocol, which must drop them

    if (mode & 4) {
        // UDP alone, as an IPProtocol hands it on.
        weft::pair::IPHeader h;
        h.source = "10.0.0.1";
        h.dest = "10.0.0.2";
        h.protocol = 17;
        current.packet = {};
        checking->udp->datagramReceived(input, current.partial, h);
        auto d = weft::pair::decodeUDPHeader(input);
        check(d.has_value() == (input.size() >= 8));
        check(current.delivered == (d && d->header.dest == port ? 2 : 0));
        check(checking->udp->malformedDatagrams() == (input.size() < 8 ? 1u : 0u));
    } else if (mode & 2) {
        // A TUN port: the packet straight to IPProtocol, no link layer.
        current.packet = input;
        auto decoded = weft::pair::decodeIPHeader(input, current.partial);
        link->ip->datagramReceived(input, current.partial);
        check(link->ip->malformedPackets() == (decoded ? 0u : 1u));
    } else {
        // A TAP port: a whole frame.
        current.frame = input;
        ether.datagramReceived(input, current.partial);
        check(ether.shortFrames() == (input.size() < 14 ? 1u : 0u));
        check(weft::pair::decodeEthernetHeader(input).has_value() == (input.size() >= 14));
    }
    return 0;
}
