#include <weft/internet/address.hpp>

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <stdexcept>

#include <fmt/format.h>

#include <weft/text.hpp>

#include "sys/syscalls.hpp"

namespace weft {

std::string IPv4Address::str() const { return fmt::format("IPv4Address({}, '{}', {})", type, host, port); }
std::string IPv6Address::str() const { return fmt::format("IPv6Address({}, '{}', {})", type, host, port); }
std::string UNIXAddress::str() const {
    if (name.empty()) return "UNIXAddress(None)";
    if (name.front() == '\0') return fmt::format("UNIXAddress('\\x00{}')", name.substr(1));
    return fmt::format("UNIXAddress('{}')", name);
}

std::string TunnelAddress::str() const {
    const char* kind = type == TunnelType::tun ? "IFF_TUN" : type == TunnelType::tap ? "IFF_TAP" : nullptr;
    std::string typeName = kind ? kind : fmt::format("0x{:04x}", static_cast<unsigned>(type));
    return fmt::format("<TunnelAddress type={} name={}>", typeName, quote(name));
}

namespace {
// The identity of the file a filesystem name refers to, if it exists.
std::optional<std::pair<dev_t, ino_t>> fileIdentity(const std::string& name) {
    if (name.empty() || name.front() == '\0' || name.find('\0') != std::string::npos) return std::nullopt;
    struct stat st {};
    if (sys::ops.stat(name.c_str(), &st) != 0) return std::nullopt;
    return std::pair{st.st_dev, st.st_ino};
}
}  // namespace

bool operator==(const UNIXAddress& a, const UNIXAddress& b) {
    if (a.name == b.name) return true;
    auto x = fileIdentity(a.name);
    return x && x == fileIdentity(b.name);  // UNIX-30: one file under two names
}

std::size_t UNIXAddress::hash() const noexcept {
    if (auto id = fileIdentity(name)) return detail::hashCombine(std::hash<dev_t>{}(id->first), id->second);
    return std::hash<std::string>{}(name);
}

std::string addressStr(const Address& a) {
    return std::visit([](const IAddress& x) { return x.str(); }, a);
}

namespace {
std::string_view asText(std::span<const std::byte> s) { return {reinterpret_cast<const char*>(s.data()), s.size()}; }
}  // namespace

bool isIPAddress(std::string_view s, int family) {
    if (family != AF_INET && family != AF_INET6)
        throw std::invalid_argument(fmt::format("isIPAddress: unknown address family {}", family));
    // Non-ASCII text is never an address (Twisted: the ASCII decode fails); an
    // embedded NUL would make inet_pton stop early and accept a prefix.
    if (std::any_of(s.begin(), s.end(), [](char c) { return c == '\0' || static_cast<unsigned char>(c) > 0x7f; }))
        return false;
    if (family == AF_INET6) {
        // The scope is not checked: this asks whether s *is* an address literal.
        s = s.substr(0, s.find('%'));
    } else if (std::count(s.begin(), s.end(), '.') != 3) {
        // Twisted insists on four parts even where inet_pton would take "0".
        return false;
    }
    std::string text(s);
    unsigned char out[sizeof(in6_addr)];
    return ::inet_pton(family, text.c_str(), out) == 1;
}

bool isIPAddress(std::span<const std::byte> s, int family) { return isIPAddress(asText(s), family); }

bool isIPv6Address(std::string_view s) { return isIPAddress(s, AF_INET6); }
bool isIPv6Address(std::span<const std::byte> s) { return isIPAddress(asText(s), AF_INET6); }

std::string checkAddressType(std::string type) {
    if (type != "TCP" && type != "UDP")
        throw std::invalid_argument("address type must be 'TCP' or 'UDP', not '" + type + "'");
    return type;
}

}  // namespace weft
