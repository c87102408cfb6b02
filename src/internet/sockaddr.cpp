// weft::SockAddr (weft/internet/sockaddr.hpp): to and from Address and literals.
#include <weft/internet/sockaddr.hpp>

#include <arpa/inet.h>
#include <net/if.h>

#include <charconv>
#include <string>

#include "sys/syscalls.hpp"

namespace weft {

std::uint16_t SockAddr::port() const noexcept {
    if (length == 0) return 0;
    if (family() == AF_INET) return ntohs(u.v4.sin_port);
    if (family() == AF_INET6) return ntohs(u.v6.sin6_port);
    return 0;
}

SockAddr SockAddr::localOf(int fd) {
    SockAddr a;
    a.length = capacity;
    if (sys::ops.getsockname(fd, a.get(), &a.length) != 0) a.length = 0;
    return a;
}

namespace {
// Dotted quad by hand: glibc's inet_ntop formats IPv4 through sprintf, the
// larger part of a datagram's cost when every one comes from a new sender.
// Returns the end of the text (at most 15 characters).
char* formatIPv4(const in_addr& address, char* out) {
    const auto* b = reinterpret_cast<const unsigned char*>(&address);
    char* p = out;
    for (int i = 0; i < 4; ++i) {
        if (i) *p++ = '.';
        p = std::to_chars(p, out + 15, b[i]).ptr;
    }
    return p;
}
}  // namespace

void SockAddr::assignTo(Address& a, const char* type) const {
    auto* v4 = std::get_if<IPv4Address>(&a);
    if (length != 0 && family() == AF_INET && v4 && v4->type == type) {
        char text[16];
        v4->host.assign(text, formatIPv4(u.v4.sin_addr, text));
        v4->port = ntohs(u.v4.sin_port);
        return;
    }
    a = toAddress(type);
}

Address SockAddr::toAddress(const char* type) const {
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
    if (length == 0) return NoAddress();
    if (family() == AF_INET) {
        auto* in = &u.v4;
        return IPv4Address(type, std::string(text, formatIPv4(in->sin_addr, text)), ntohs(in->sin_port));
    }
    if (family() == AF_INET6) {
        auto* in6 = &u.v6;
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        std::string host = text;
        if (in6->sin6_scope_id != 0) {
            char name[IF_NAMESIZE] = {};
            host += '%';
            host += ::if_indextoname(in6->sin6_scope_id, name) ? std::string(name) : std::to_string(in6->sin6_scope_id);
        }
        return IPv6Address(type, std::move(host), ntohs(in6->sin6_port), ntohl(in6->sin6_flowinfo), in6->sin6_scope_id);
    }
    return NoAddress();
}

std::optional<SockAddr> SockAddr::fromLiteral(const std::string& host, std::uint16_t port) {
    SockAddr a;
    auto* in = &a.u.v4;
    if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        a.length = sizeof(sockaddr_in);
        return a;
    }
    auto* in6 = &a.u.v6;
    std::string addr = host;
    std::string scope;
    if (auto pct = host.find('%'); pct != std::string::npos) {
        addr = host.substr(0, pct);
        scope = host.substr(pct + 1);
        if (scope.empty()) return std::nullopt;
    }
    if (::inet_pton(AF_INET6, addr.c_str(), &in6->sin6_addr) != 1) return std::nullopt;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (!scope.empty()) {
        std::uint32_t id = 0;
        auto [end, ec] = std::from_chars(scope.data(), scope.data() + scope.size(), id);
        if (ec != std::errc() || end != scope.data() + scope.size()) id = ::if_nametoindex(scope.c_str());
        if (id == 0) return std::nullopt;
        in6->sin6_scope_id = id;
    }
    a.length = sizeof(sockaddr_in6);
    return a;
}

// ---- PackedSockAddr ----

static_assert(sizeof(void*) <= sizeof(std::uint64_t) && alignof(SockAddr) >= 2,
              "a SockAddr pointer must fit the word with its low bit clear");

namespace detail {

void PackedSockAddr::reset() noexcept {
    if (word_ != 0 && (word_ & 1U) == 0) delete reinterpret_cast<SockAddr*>(static_cast<std::uintptr_t>(word_));
    word_ = 0;
}

PackedSockAddr& PackedSockAddr::operator=(const SockAddr& a) {
    if (a.length == 0) {
        reset();
    } else if (a.family() == AF_INET && a.length == sizeof(sockaddr_in)) {
        reset();
        word_ = (std::uint64_t{a.u.v4.sin_addr.s_addr} << 32) | (std::uint64_t{ntohs(a.u.v4.sin_port)} << 16) | 1U;
    } else {
        auto* copy = new SockAddr(a);  // before the reset: a failed new leaves the old address
        reset();
        word_ = reinterpret_cast<std::uintptr_t>(copy);
    }
    return *this;
}

SockAddr PackedSockAddr::get() const noexcept {
    SockAddr a;
    if (word_ == 0) return a;
    if ((word_ & 1U) == 0) return *reinterpret_cast<const SockAddr*>(static_cast<std::uintptr_t>(word_));
    a.u.v4.sin_family = AF_INET;
    a.u.v4.sin_port = htons(static_cast<std::uint16_t>(word_ >> 16));
    a.u.v4.sin_addr.s_addr = static_cast<std::uint32_t>(word_ >> 32);
    a.length = sizeof(sockaddr_in);
    return a;
}

}  // namespace detail

}  // namespace weft
