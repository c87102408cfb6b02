// weft/internet/sockaddr.hpp — an IPv4 or IPv6 socket address as the kernel
// gives it, shared by the IP transports (TCP, UDP) for accept, connect, send
// and receive without a round trip through text.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

#include <weft/export.hpp>
#include <weft/internet/address.hpp>

namespace weft {

/// An IPv4 or IPv6 socket address, as the kernel gives it (28 bytes, not a
/// 128-byte sockaddr_storage: every connection keeps one).
struct WEFT_EXPORT SockAddr {
    union Storage {
        sockaddr_in6 v6;  // first: value-initialisation zeroes all 28 bytes (scope id included)
        sockaddr_in v4;
        sockaddr sa;
    } u{};
    socklen_t length = 0;
    /// The room there is, for accept/getsockname/getpeername.
    static constexpr socklen_t capacity = sizeof(sockaddr_in6);

    int family() const noexcept { return u.sa.sa_family; }
    const sockaddr* get() const noexcept { return &u.sa; }
    sockaddr* get() noexcept { return &u.sa; }
    /// IPv4Address/IPv6Address("TCP", host, port); IPv6 hosts keep "%scope".
    /// NoAddress for an empty or other-family address.
    Address toAddress(const char* type = "TCP") const;
    /// Makes `a` equal to toAddress(type), reusing its strings when it already
    /// holds an IPv4 address of that type (a datagram port's sender cache).
    void assignTo(Address& a, const char* type) const;
    /// The port number (host order); 0 for an empty or other-family address.
    std::uint16_t port() const noexcept;
    /// The local address of socket `fd` (getsockname); empty (length 0) if it has none.
    static SockAddr localOf(int fd);
    /// Parses an IPv4 or IPv6 literal ("::1", "fe80::1%lo"); nullopt if it is none.
    static std::optional<SockAddr> fromLiteral(const std::string& host, std::uint16_t port);
};

namespace detail {
/// A SockAddr in one word, for a member every connection carries (a TCP
/// connection's peer): an IPv4 address and port packed into the word, any
/// other family (IPv6) in a heap copy the word owns. 8 bytes where a SockAddr
/// takes 32 (docs/architecture.md, "What a connection costs in memory").
class WEFT_EXPORT PackedSockAddr {
public:
    PackedSockAddr() = default;
    ~PackedSockAddr() { reset(); }
    PackedSockAddr(const PackedSockAddr&) = delete;
    PackedSockAddr& operator=(const PackedSockAddr&) = delete;
    /// Stores a copy of `a` (an empty address, length 0, stores nothing).
    PackedSockAddr& operator=(const SockAddr& a);
    /// The address stored, or an empty one (length 0).
    SockAddr get() const noexcept;

private:
    void reset() noexcept;
    // 0: nothing; low bit set: IPv4, the address (network order) in the high 32
    // bits and the port (host order) in bits 16..31; otherwise a SockAddr* (new).
    std::uint64_t word_ = 0;
};
}  // namespace detail

}  // namespace weft
