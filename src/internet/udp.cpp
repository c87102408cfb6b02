// UDP transports: Port, MulticastPort, and the Reactor's
// listenUDP/listenMulticast/adoptDatagramPort. The shared datagram socket is
// in datagram.cpp.
// Spec: udp.md.
#include <weft/internet/udp.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>

#include "internet/detail/sysutil.hpp"
#include "sys/syscalls.hpp"

namespace weft::udp {

using namespace weft::error;

namespace {
using weft::detail::errnoName;

std::error_code errnoCode(int e) { return {e, std::generic_category()}; }

int intOption(int fd, int level, int option) {
    int v = 0;
    socklen_t len = sizeof v;
    if (sys::ops.getsockopt(fd, level, option, &v, &len) != 0) throw std::system_error(errnoCode(errno), "getsockopt");
    return v;
}

void setIntOption(int fd, int level, int option, int v, const char* what) {
    if (sys::ops.setsockopt(fd, level, option, &v, sizeof v) != 0) throw std::system_error(errnoCode(errno), what);
}

static_assert(sizeof(sockaddr_in) == 2 * sizeof(std::uint64_t));

bool sameSockAddr(const SockAddr& a, const sockaddr* b, socklen_t bLength) {
    if (a.length != bLength) return false;
    if (bLength == sizeof(sockaddr_in)) {  // every datagram from an IPv4 peer: two words, not a call of memcmp
        std::uint64_t x[2], y[2];
        std::memcpy(x, a.get(), sizeof x);
        std::memcpy(y, b, sizeof y);
        return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
    }
    return std::memcmp(a.get(), b, bLength) == 0;
}

// Whether `to` names the connected peer: same address and port (an IPv6
// destination without a scope matches the peer's scope).
bool samePeer(const SockAddr& peer, const SockAddr& to) {
    if (peer.family() != to.family()) return false;
    if (to.family() == AF_INET)
        return peer.u.v4.sin_port == to.u.v4.sin_port && peer.u.v4.sin_addr.s_addr == to.u.v4.sin_addr.s_addr;
    return peer.u.v6.sin6_port == to.u.v6.sin6_port &&
           std::memcmp(&peer.u.v6.sin6_addr, &to.u.v6.sin6_addr, sizeof(in6_addr)) == 0 &&
           (to.u.v6.sin6_scope_id == 0 || to.u.v6.sin6_scope_id == peer.u.v6.sin6_scope_id);
}

// Host and port of an IPv4Address/IPv6Address; false for any other address.
bool hostPort(const Address& addr, std::string& host, std::uint16_t& port) {
    if (auto* v4 = std::get_if<IPv4Address>(&addr)) {
        host = v4->host;
        port = v4->port;
        return true;
    }
    if (auto* v6 = std::get_if<IPv6Address>(&addr)) {
        host = v6->host;
        port = v6->port;
        return true;
    }
    return false;
}

// Resolves a host for a multicast option: "" is the family's any-address and
// literals resolve at once, as Twisted's reactor.resolve does; names are looked
// up on the thread pool (never on the loop) and the Deferred fires back on the
// reactor thread.
Deferred<std::string> resolveHost(Reactor& reactor, const std::string& name, int family) {
    if (name.empty()) return succeed(std::string(family == AF_INET6 ? "::" : "0.0.0.0"));
    if (family == AF_INET ? isIPAddress(name) : isIPv6Address(name)) return succeed(name);
    Deferred<std::string> d;
    reactor.callInThread([&reactor, name, family, d]() mutable {
        addrinfo hints{};
        hints.ai_family = family;
        hints.ai_socktype = SOCK_DGRAM;
        addrinfo* result = nullptr;
        int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &result);
        std::string found, error;
        if (rc == 0 && result) {
            char text[INET6_ADDRSTRLEN] = {};
            const void* where =
                family == AF_INET
                    ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(result->ai_addr)->sin_addr)
                    : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(result->ai_addr)->sin6_addr);
            ::inet_ntop(family, where, text, sizeof text);
            found = text;
        } else {
            error = rc == 0 ? "no address" : ::gai_strerror(rc);
        }
        if (result) ::freeaddrinfo(result);
        reactor.callFromThread(
            [d = std::move(d), found = std::move(found), error = std::move(error), name = std::move(name)]() mutable {
                if (error.empty()) d.callback(std::move(found));
                else d.errback(DNSLookupError(name + ": " + error));
            });
    });
    return d;
}

// An IPv6 multicast interface: "", "::" or "0" → 0 (the kernel's choice), a
// decimal index, or an interface name. 0 with `ok` false when unknown.
unsigned interfaceIndex(const std::string& interface, bool& ok) {
    ok = true;
    if (interface.empty() || interface == "::") return 0;
    unsigned index = 0;
    auto [end, ec] = std::from_chars(interface.data(), interface.data() + interface.size(), index);
    if (ec == std::errc() && end == interface.data() + interface.size()) return index;
    index = ::if_nametoindex(interface.c_str());
    ok = index != 0;
    return index;
}

}  // namespace

// ---- Port ---------------------------------------------------------------------------------

Port::Port(Reactor& reactor, std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol, std::string interface,
           std::size_t maxPacketSize)
    : DatagramSocket(reactor, std::move(protocol), maxPacketSize), requestedPort_(port),
      interface_(std::move(interface)) {
    // UDP-1: the family comes from the literal; anything else fails before a socket exists.
    if (isIPv6Address(interface_)) family_ = AF_INET6;
    else if (interface_.empty() || isIPAddress(interface_)) family_ = AF_INET;
    else throw InvalidAddressError(interface_, "not an IPv4 or IPv6 address");
}

std::shared_ptr<DatagramProtocol> Port::protocol() const {
    return std::static_pointer_cast<DatagramProtocol>(protocol_);
}

std::string Port::logPrefix() const {
    if (prefix_.empty()) prefix_ = protocolPrefix() + " (UDP)";
    return prefix_;
}

std::string Port::repr() const {
    std::string name = protocolClassName();
    if (fd_ >= 0) return fmt::format("<{} on {}>", name, realPort_);
    return fmt::format("<{} not connected>", name);
}

void Port::configureSocket(int) {}

void Port::startListening() {
    checkNotStopping();
    if (fd_ >= 0) return;
    checkProtocolFree();
    std::string host = interface_.empty() ? std::string("0.0.0.0") : interface_;
    auto addr = SockAddr::fromLiteral(host, requestedPort_);
    if (!addr) throw InvalidAddressError(interface_, "not an IPv4 or IPv6 address (or an unknown scope)");
    // UDP-2: non-blocking and close-on-exec from the start; no SO_REUSEADDR.
    int s = sys::ops.socket(addr->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) throw CannotListenError(interface_, requestedPort_, errnoCode(errno));
    try {
        if (addr->family() == AF_INET6) setIntOption(s, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
        configureSocket(s);
    } catch (const std::system_error& e) {
        sys::ops.close(s);
        throw CannotListenError(interface_, requestedPort_, e.code());
    }
    if (sys::ops.bind(s, addr->get(), addr->length) != 0) {
        int e = errno;
        sys::ops.close(s);
        throw CannotListenError(interface_, requestedPort_, errnoCode(e));
    }
    family_ = addr->family();
    realPort_ = SockAddr::localOf(s).port();
    peer_ = {};
    attach(s, std::to_string(realPort_));
}

void Port::adopt(int fd) {
    SockAddr local = SockAddr::localOf(fd);
    family_ = local.family() == AF_INET6 ? AF_INET6 : AF_INET;
    realPort_ = local.port();
    Address a = local.toAddress("UDP");
    if (auto* v4 = std::get_if<IPv4Address>(&a)) interface_ = v4->host;
    else if (auto* v6 = std::get_if<IPv6Address>(&a)) interface_ = v6->host;
    // An adopted socket may already be connected (UDP-22: "bound where the socket is bound").
    SockAddr peer;
    peer.length = SockAddr::capacity;
    if (sys::ops.getpeername(fd, peer.get(), &peer.length) == 0) peer_ = peer;
    attach(fd, std::to_string(realPort_));
}

void Port::closed() {
    std::uint16_t was = realPort_;
    realPort_ = 0;
    peer_ = {};
    lastFrom_ = {};
    log::info(logPrefix(), "(UDP Port {} Closed)", was);  // UDP-5
}

Address Port::getHost() const {
    if (fd_ >= 0) {
        SockAddr a = SockAddr::localOf(fd_);
        if (a.family() == AF_INET6) {  // UDP-4: host and port only
            a.u.v6.sin6_flowinfo = 0;
            a.u.v6.sin6_scope_id = 0;
        }
        return a.toAddress("UDP");
    }
    std::string host = interface_.empty() ? std::string("0.0.0.0") : interface_;
    if (family_ == AF_INET6) return IPv6Address("UDP", host, realPort_);
    return IPv4Address("UDP", host, realPort_);
}

Address Port::getPeer() const { return peer_.length ? peer_.toAddress("UDP") : Address(NoAddress()); }

void Port::deliver(Bytes datagram, const sockaddr* from, socklen_t fromLength) {
    // A steady peer costs no formatting: the Address is kept for the last sender.
    if (!sameSockAddr(lastFrom_, from, fromLength)) {
        lastFrom_ = {};
        std::memcpy(lastFrom_.get(), from, std::min<socklen_t>(fromLength, SockAddr::capacity));
        lastFrom_.length = std::min<socklen_t>(fromLength, SockAddr::capacity);
        lastFrom_.assignTo(lastFromAddress_, "UDP");  // UDP-8: IPv6 keeps flow info and scope
    }
    static_cast<DatagramProtocol&>(*protocol_).datagramReceived(datagram, lastFromAddress_);
}

SockAddr Port::destination(const std::string& hostIn, std::uint16_t port) const {
    // UDP-12, UDP-13.
    const bool broadcast = hostIn == "<broadcast>";
    const std::string host = broadcast ? std::string("255.255.255.255") : hostIn;
    if (broadcast || isIPAddress(host)) {
        if (family_ == AF_INET6)
            throw InvalidAddressError(hostIn, "IPv6 port write() called with IPv4 or broadcast address");
    } else if (isIPv6Address(host)) {
        if (family_ == AF_INET) throw InvalidAddressError(hostIn, "IPv4 port write() called with IPv6 address");
    } else {
        throw InvalidAddressError(hostIn, "write() only accepts IP addresses, not hostnames");
    }
    auto addr = SockAddr::fromLiteral(host, port);
    if (!addr) throw InvalidAddressError(hostIn, "unknown IPv6 scope");
    // An IPv6 port is IPv6-only (IPV6_V6ONLY): an IPv4-mapped destination can
    // never be reached from it (the kernel says "Network is unreachable").
    if (addr->family() == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&addr->u.v6.sin6_addr))
        throw InvalidAddressError(hostIn,
                                  "IPv6 port write() called with an IPv4-mapped address (the port is "
                                  "IPv6-only: write to the IPv4 address from an IPv4 port)");
    return *addr;
}

std::size_t Port::sendTo(const Address& addr, std::span<const Bytes> chunks) {
    std::string host;
    std::uint16_t port = 0;
    const bool hasHostPort = hostPort(addr, host, port);
    if (connectedToPeer()) {
        // UDP-18: NoAddress or the peer itself (Twisted asserts; weft throws).
        if (hasHostPort) {
            SockAddr to = destination(host, port);
            if (!samePeer(peer_, to))
                throw InvalidAddressError(host, "a connected port only writes to its peer " + addressStr(getPeer()));
        } else if (!std::holds_alternative<NoAddress>(addr)) {
            throw InvalidAddressError(addressStr(addr), "not a UDP address");
        }
        return sendChunks(nullptr, 0, chunks, [this] { return addressStr(getPeer()); });
    }
    // Closed (closed() forgot the peer of a connected port): inert, as any closed transport.
    if (fd_ < 0 && std::holds_alternative<NoAddress>(addr)) return 0;
    if (!hasHostPort) {
        throw InvalidAddressError(addressStr(addr), std::holds_alternative<NoAddress>(addr)
                                                        ? "an unconnected port needs a destination address"
                                                        : "not a UDP address");
    }
    auto describe = [&] {
        return fmt::format("{}:{}", host == "<broadcast>" ? "<broadcast> 255.255.255.255" : host, port);
    };
    // A reply to the last sender (the usual datagramReceived → write) reuses the
    // address the kernel gave: no parsing. It is of this port's family by construction.
    if (lastFrom_.length != 0 && (&addr == &lastFromAddress_ || addr == lastFromAddress_))
        return sendChunks(lastFrom_.get(), lastFrom_.length, chunks, describe);
    SockAddr to = destination(host, port);
    return sendChunks(to.get(), to.length, chunks, describe);
}

std::size_t Port::write(Bytes datagram, const Address& addr) { return sendTo(addr, std::span(&datagram, 1)); }

std::size_t Port::write(Bytes datagram, const std::string& host, std::uint16_t port) {
    if (family_ == AF_INET6 || isIPv6Address(host)) return write(datagram, IPv6Address("UDP", host, port));
    return write(datagram, IPv4Address("UDP", host, port));
}

std::size_t Port::writeSequence(std::span<const Bytes> chunks, const Address& addr) { return sendTo(addr, chunks); }

void Port::connect(const std::string& host, std::uint16_t port) {
    if (connectedToPeer()) throw std::runtime_error("already connected, reconnecting is not currently supported");
    if (!isIPAddress(host) && !isIPv6Address(host)) throw InvalidAddressError(host, "not an IPv4 or IPv6 address");
    if (isIPAddress(host) != (family_ == AF_INET))
        throw InvalidAddressError(host, family_ == AF_INET ? "IPv4 port connect() called with IPv6 address"
                                                           : "IPv6 port connect() called with IPv4 address");
    auto to = SockAddr::fromLiteral(host, port);
    if (!to) throw InvalidAddressError(host, "unknown IPv6 scope");
    if (fd_ < 0) throw std::logic_error("connect() on a datagram port that is not listening");
    if (sys::ops.connect(fd_, to->get(), to->length) != 0)
        throw std::system_error(errnoCode(errno), fmt::format("connecting a datagram port to {}:{}", host, port));
    peer_ = *to;
}

void Port::setBroadcastAllowed(bool enabled) { setIntOption(fd_, SOL_SOCKET, SO_BROADCAST, enabled, "SO_BROADCAST"); }

bool Port::getBroadcastAllowed() const { return intOption(fd_, SOL_SOCKET, SO_BROADCAST) != 0; }

// ---- MulticastPort ------------------------------------------------------------------------

MulticastPort::MulticastPort(Reactor& reactor, std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                             std::string interface, std::size_t maxPacketSize, bool listenMultiple)
    : Port(reactor, port, std::move(protocol), std::move(interface), maxPacketSize), listenMultiple_(listenMultiple) {}

void MulticastPort::configureSocket(int fd) {
    if (!listenMultiple_) return;
    setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");  // UDP-23
    int one = 1;
    if (sys::ops.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 && errno != ENOPROTOOPT)
        throw std::system_error(errnoCode(errno), "SO_REUSEPORT");
}

int MulticastPort::getTTL() const {
    if (addressFamily() == AF_INET6) return intOption(fd_, IPPROTO_IPV6, IPV6_MULTICAST_HOPS);
    return intOption(fd_, IPPROTO_IP, IP_MULTICAST_TTL);
}

void MulticastPort::setTTL(int ttl) {
    if (ttl < 0 || ttl > 255) throw std::invalid_argument(fmt::format("multicast TTL {} is not in 0..255", ttl));
    if (addressFamily() == AF_INET6) setIntOption(fd_, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl, "IPV6_MULTICAST_HOPS");
    else setIntOption(fd_, IPPROTO_IP, IP_MULTICAST_TTL, ttl, "IP_MULTICAST_TTL");
}

bool MulticastPort::getLoopbackMode() const {
    if (addressFamily() == AF_INET6) return intOption(fd_, IPPROTO_IPV6, IPV6_MULTICAST_LOOP) != 0;
    return intOption(fd_, IPPROTO_IP, IP_MULTICAST_LOOP) != 0;
}

void MulticastPort::setLoopbackMode(bool enabled) {
    if (addressFamily() == AF_INET6)
        setIntOption(fd_, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, enabled, "IPV6_MULTICAST_LOOP");
    else setIntOption(fd_, IPPROTO_IP, IP_MULTICAST_LOOP, enabled, "IP_MULTICAST_LOOP");
}

std::string MulticastPort::getOutgoingInterface() const {
    if (addressFamily() == AF_INET6) {
        int index = intOption(fd_, IPPROTO_IPV6, IPV6_MULTICAST_IF);
        if (index == 0) return "::";
        char name[IF_NAMESIZE] = {};
        return ::if_indextoname(static_cast<unsigned>(index), name) ? std::string(name) : std::to_string(index);
    }
    in_addr a{};
    socklen_t len = sizeof a;
    if (sys::ops.getsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &a, &len) != 0)
        throw std::system_error(errnoCode(errno), "getsockopt IP_MULTICAST_IF");
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a, text, sizeof text);
    return text;
}

Deferred<void> MulticastPort::setOutgoingInterface(const std::string& addr) {
    auto self = std::static_pointer_cast<MulticastPort>(shared_from_this());
    if (addressFamily() == AF_INET6) {
        bool ok = false;
        unsigned index = interfaceIndex(addr, ok);
        if (!ok) return fail(Failure(std::system_error(errnoCode(ENODEV), "no such interface: " + addr)));
        try {
            setIntOption(fd_, IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(index), "IPV6_MULTICAST_IF");
        } catch (...) {
            return fail(Failure::current());
        }
        return succeed();
    }
    return resolveHost(reactor_, addr, AF_INET).addCallback([self](std::string resolved) {
        in_addr a{};
        ::inet_pton(AF_INET, resolved.c_str(), &a);
        if (sys::ops.setsockopt(self->fd_, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a) != 0)
            throw std::system_error(errnoCode(errno), "IP_MULTICAST_IF " + resolved);
    });
}

Deferred<void> MulticastPort::joinGroup(const std::string& group, const std::string& interface) {
    return membership(group, interface, true);
}

Deferred<void> MulticastPort::leaveGroup(const std::string& group, const std::string& interface) {
    return membership(group, interface, false);
}

Deferred<void> MulticastPort::membership(const std::string& group, const std::string& interface, bool join) {
    auto self = std::static_pointer_cast<MulticastPort>(shared_from_this());
    const int family = addressFamily();
    Deferred<std::string> resolvedGroup = resolveHost(reactor_, group, family);
    if (family == AF_INET6) {
        // UDP-29, Better than Twisted: IPv6 groups, the interface by name or index.
        return resolvedGroup.addCallback([self, interface, join](std::string g) {
            bool ok = false;
            ipv6_mreq m{};
            m.ipv6mr_interface = interfaceIndex(interface, ok);
            if (!ok) throw MulticastJoinError(g, interface, "no such interface");
            ::inet_pton(AF_INET6, g.c_str(), &m.ipv6mr_multiaddr);
            if (self->fd_ < 0) throw MulticastJoinError(g, interface, "the port is closed");
            if (sys::ops.setsockopt(self->fd_, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &m, sizeof m) !=
                0) {
                int e = errno;
                throw MulticastJoinError(g, interface, std::strerror(e));
            }
        });
    }
    // UDP-27: the group, then the interface, are resolved; a refusal fails the Deferred.
    Reactor& reactor = reactor_;
    return resolvedGroup.addCallback([self, interface, join, &reactor](std::string g) {
        return resolveHost(reactor, interface, AF_INET).addCallback([self, g, join](std::string i) {
            ip_mreq m{};
            ::inet_pton(AF_INET, g.c_str(), &m.imr_multiaddr);
            ::inet_pton(AF_INET, i.c_str(), &m.imr_interface);
            if (self->fd_ < 0) throw MulticastJoinError(g, i, "the port is closed");
            if (sys::ops.setsockopt(self->fd_, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m,
                                    sizeof m) != 0) {
                int e = errno;  // Twisted's error for both; the words say which it was
                throw MulticastJoinError(g, i, join ? std::strerror(e) : fmt::format("leaving: {}", std::strerror(e)));
            }
        });
    });
}

}  // namespace weft::udp

// ---- Reactor methods ------------------------------------------------------------------------

namespace weft {

std::shared_ptr<udp::Port> Reactor::listenUDP(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                              const std::string& interface, std::size_t maxPacketSize) {
    auto p = std::make_shared<udp::Port>(*this, port, std::move(protocol), interface, maxPacketSize);
    p->startListening();
    return p;
}

std::shared_ptr<udp::MulticastPort> Reactor::listenMulticast(std::uint16_t port,
                                                             std::shared_ptr<DatagramProtocol> protocol,
                                                             const std::string& interface, std::size_t maxPacketSize,
                                                             bool listenMultiple) {
    auto p = std::make_shared<udp::MulticastPort>(*this, port, std::move(protocol), interface, maxPacketSize,
                                                  listenMultiple);
    p->startListening();
    return p;
}

std::shared_ptr<udp::Port> Reactor::adoptDatagramPort(int fd, int addressFamily,
                                                      std::shared_ptr<DatagramProtocol> protocol,
                                                      std::size_t maxPacketSize) {
    // UDP-22: the family is checked, then the caller's descriptor duplicated.
    if (addressFamily != AF_INET && addressFamily != AF_INET6)
        throw error::UnsupportedAddressFamily(std::to_string(addressFamily));
    auto p = std::make_shared<udp::Port>(*this, 0, std::move(protocol), addressFamily == AF_INET6 ? "::" : "",
                                         maxPacketSize);
    p->checkProtocolFree();
    detail::checkSocketKind(fd, addressFamily, SOCK_DGRAM, "adoptDatagramPort");  // UDP-22: what it really is
    int copy = detail::duplicateNonBlocking(fd, "adoptDatagramPort");
    p->adopt(copy);  // from here the port owns the copy (closed if attaching fails)
    return p;
}

}  // namespace weft
