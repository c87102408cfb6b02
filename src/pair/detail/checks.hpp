// Internal: what the raw packet protocols (ethernet.cpp, ip.cpp, rawudp.cpp)
// share — big-endian reads and the protocol-number checks of addProto.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace weft::pair::detail {

inline std::uint16_t be16(const std::byte* p) noexcept {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}

/// ETH-2, IP-3, RUDP-2: Twisted's TypeError messages, as std::invalid_argument.
inline void checkProtocolNumber(std::int64_t num, int bits) {
    if (num < 0) throw std::invalid_argument("Added protocol must be positive or zero");
    if (num >= (std::int64_t{1} << bits))
        throw std::invalid_argument("Added protocol must fit in " + std::to_string(bits) + " bits");
}

}  // namespace weft::pair::detail
