// weft/internet/address.hpp — endpoint addresses (twisted.internet.address).
#pragma once

#include <sys/socket.h>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <weft/export.hpp>

namespace weft {

/// An address of a transport endpoint (Twisted IAddress).
class WEFT_EXPORT IAddress {
public:
    virtual ~IAddress() = default;
    /// Human-readable form, as Twisted's repr, e.g. "IPv4Address(TCP, '127.0.0.1', 8080)".
    virtual std::string str() const = 0;
};

/// Returns `type` if it is "TCP" or "UDP"; throws std::invalid_argument naming
/// it otherwise (tcp.md TCP-52: the address types Twisted accepts).
WEFT_EXPORT std::string checkAddressType(std::string type);

/// An IPv4 endpoint. `type` is "TCP" or "UDP".
class WEFT_EXPORT IPv4Address final : public IAddress {
public:
    IPv4Address(std::string type_, std::string host_, std::uint16_t port_)
        : type(checkAddressType(std::move(type_))), host(std::move(host_)), port(port_) {}
    std::string str() const override;
    friend bool operator==(const IPv4Address& a, const IPv4Address& b) {
        return a.type == b.type && a.host == b.host && a.port == b.port;
    }
    std::string type;
    std::string host;
    std::uint16_t port;
};

/// An IPv6 endpoint. `type` is "TCP" or "UDP".
class WEFT_EXPORT IPv6Address final : public IAddress {
public:
    IPv6Address(std::string type_, std::string host_, std::uint16_t port_, std::uint32_t flowInfo_ = 0,
                std::uint32_t scopeID_ = 0)
        : type(checkAddressType(std::move(type_))), host(std::move(host_)), port(port_), flowInfo(flowInfo_),
          scopeID(scopeID_) {}
    std::string str() const override;
    friend bool operator==(const IPv6Address& a, const IPv6Address& b) {
        return a.type == b.type && a.host == b.host && a.port == b.port && a.flowInfo == b.flowInfo &&
               a.scopeID == b.scopeID;
    }
    std::string type;
    std::string host;
    std::uint16_t port;
    std::uint32_t flowInfo;
    std::uint32_t scopeID;
};

/// A UNIX socket path, as bytes (abstract-namespace names start with '\0');
/// empty stands for Twisted's None: an unbound socket.
///
/// Equality (UNIX-30): equal names, or two filesystem names of one existing
/// file (same device and inode: "/tmp/s" and "/tmp/./s"); abstract names
/// compare by bytes only. The hash follows the file's identity when the file
/// exists, so equal addresses hash alike. Both look at the filesystem.
class WEFT_EXPORT UNIXAddress final : public IAddress {
public:
    explicit UNIXAddress(std::string name_) : name(std::move(name_)) {}
    std::string str() const override;
    WEFT_EXPORT friend bool operator==(const UNIXAddress& a, const UNIXAddress& b);
    /// The hash described above.
    std::size_t hash() const noexcept;
    std::string name;
};

/// An endpoint with no network address (pipes, a process, standard I/O).
class WEFT_EXPORT NoAddress final : public IAddress {
public:
    std::string str() const override { return "NoAddress()"; }
    friend bool operator==(const NoAddress&, const NoAddress&) { return true; }
};

/// The address of either end of a pipe: standard I/O and process pipes have
/// no other (Twisted PipeAddress). It has no fields; all are equal.
class WEFT_EXPORT PipeAddress final : public IAddress {
public:
    /// "PipeAddress()".
    std::string str() const override { return "PipeAddress()"; }
    friend bool operator==(const PipeAddress&, const PipeAddress&) { return true; }
};

/// The kind of a tun/tap device: the IFF_TUN and IFF_TAP values of Twisted's
/// TunnelFlags (the enumerators are not named IFF_*, which <linux/if_tun.h>
/// defines as macros).
enum class TunnelType : std::uint16_t {
    tun = 0x0001,  ///< IFF_TUN: carries IP packets.
    tap = 0x0002,  ///< IFF_TAP: carries Ethernet frames.
};

/// The tunnel device a tun/tap port is bound to (Twisted
/// twisted.pair.tuntap.TunnelAddress; pair.md TUN-12): its type and its
/// system name. Two are equal exactly when type and name are.
class WEFT_EXPORT TunnelAddress final : public IAddress {
public:
    TunnelAddress(TunnelType type_, std::string name_) : type(type_), name(std::move(name_)) {}
    /// "<TunnelAddress type=IFF_TUN name='tun0'>", as Twisted's repr (the
    /// name quoted as weft::quote does, so control bytes stay readable).
    std::string str() const override;
    friend bool operator==(const TunnelAddress& a, const TunnelAddress& b) {
        return a.type == b.type && a.name == b.name;
    }
    TunnelType type;
    /// The interface name, as bytes ("tun0").
    std::string name;
};

/// A (host, port) pair to bind a client socket to before it connects
/// (connectTCP's bindAddress): host an IPv4 or IPv6 literal, port 0 for any.
struct WEFT_EXPORT BindAddress {
    /// Host to bind to.
    std::string host;
    /// Port to bind to (0: any).
    std::uint16_t port = 0;
    /// Member-wise equality.
    friend bool operator==(const BindAddress&, const BindAddress&) = default;
};

/// Any of weft's addresses, by value. std::visit it, or call addressStr().
/// Kinds will be added as transports come (a visitor should have a generic
/// case, e.g. `[](const IAddress& a)`, rather than list every alternative).
using Address = std::variant<NoAddress, IPv4Address, IPv6Address, UNIXAddress, PipeAddress, TunnelAddress>;

/// The str() of whichever address `a` holds.
WEFT_EXPORT std::string addressStr(const Address& a);

/// True only for dotted-quad IPv4 text: exactly four decimal parts, each 0..255,
/// as the kernel's inet_pton(AF_INET) reads them (so "01.2.3.4" is false); false
/// for non-ASCII text and embedded NULs (FD-47). With family AF_INET6 this is
/// isIPv6Address(s). Throws std::invalid_argument for any other family
/// (Twisted: ValueError). Twisted: abstract.isIPAddress.
WEFT_EXPORT bool isIPAddress(std::string_view s, int family = AF_INET);
/// The same for ASCII bytes (Twisted accepts bytes and text alike).
WEFT_EXPORT bool isIPAddress(std::span<const std::byte> s, int family = AF_INET);
/// True for an IPv6 literal optionally followed by "%" and any scope text
/// ("fe80::1%eth0"); false for "", ":", "%eth0" and non-ASCII text (FD-48).
/// Twisted: abstract.isIPv6Address.
WEFT_EXPORT bool isIPv6Address(std::string_view s);
WEFT_EXPORT bool isIPv6Address(std::span<const std::byte> s);

}  // namespace weft

namespace weft::detail {
inline std::size_t hashCombine(std::size_t seed, std::size_t v) noexcept {
    return seed ^ (v + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}
}  // namespace weft::detail

/// Addresses are hashable values; every field takes part (TCP-52).
template <>
struct std::hash<weft::IPv4Address> {
    std::size_t operator()(const weft::IPv4Address& a) const noexcept {
        std::size_t h = std::hash<std::string>{}(a.type);
        h = weft::detail::hashCombine(h, std::hash<std::string>{}(a.host));
        return weft::detail::hashCombine(h, a.port);
    }
};
template <>
struct std::hash<weft::IPv6Address> {
    std::size_t operator()(const weft::IPv6Address& a) const noexcept {
        std::size_t h = std::hash<std::string>{}(a.type);
        h = weft::detail::hashCombine(h, std::hash<std::string>{}(a.host));
        h = weft::detail::hashCombine(h, a.port);
        h = weft::detail::hashCombine(h, a.flowInfo);
        return weft::detail::hashCombine(h, a.scopeID);
    }
};
template <>
struct std::hash<weft::UNIXAddress> {
    std::size_t operator()(const weft::UNIXAddress& a) const noexcept { return a.hash(); }
};
template <>
struct std::hash<weft::NoAddress> {
    std::size_t operator()(const weft::NoAddress&) const noexcept { return 0x6e6f6e65; }
};
template <>
struct std::hash<weft::PipeAddress> {
    std::size_t operator()(const weft::PipeAddress&) const noexcept { return 0x70697065; }
};
template <>
struct std::hash<weft::TunnelAddress> {
    std::size_t operator()(const weft::TunnelAddress& a) const noexcept {
        return weft::detail::hashCombine(static_cast<std::size_t>(a.type), std::hash<std::string>{}(a.name));
    }
};
