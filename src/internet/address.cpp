#include <weft/internet/address.hpp>

#include <arpa/inet.h>

#include <fmt/format.h>

namespace weft {

std::string IPv4Address::str() const { return fmt::format("IPv4Address({}, '{}', {})", type, host, port); }
std::string IPv6Address::str() const { return fmt::format("IPv6Address({}, '{}', {})", type, host, port); }
std::string UNIXAddress::str() const { return fmt::format("UNIXAddress('{}')", name); }

std::string addressStr(const Address& a) {
    return std::visit([](const IAddress& x) { return x.str(); }, a);
}

bool isIPAddress(std::string_view s) {
    int parts = 0;
    std::size_t i = 0;
    while (true) {
        std::size_t start = i;
        unsigned value = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            value = value * 10 + static_cast<unsigned>(s[i] - '0');
            if (value > 255 || i - start >= 3) return false;
            ++i;
        }
        if (i == start) return false;
        ++parts;
        if (i == s.size()) return parts == 4;
        if (s[i] != '.' || parts == 4) return false;
        ++i;
    }
}

bool isIPv6Address(std::string_view s) {
    auto pct = s.find('%');
    std::string_view addr = s.substr(0, pct);
    if (addr.empty()) return false;
    for (char c : s)
        if (static_cast<unsigned char>(c) > 0x7f) return false;
    std::string text(addr);
    in6_addr out{};
    return ::inet_pton(AF_INET6, text.c_str(), &out) == 1;
}

}  // namespace weft
