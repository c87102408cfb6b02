// weft/internet/udp.hpp — UDP transports (twisted.internet.udp). Spec: udp.md.
//
//   (DatagramSocket, in datagram.hpp, is what every datagram port shares.)
//   Port            a UDP socket bound to one address (Reactor::listenUDP,
//                   adoptDatagramPort); connect() narrows it to one peer.
//   MulticastPort   a Port with group membership, TTL, loopback and outgoing
//                   interface control, IPv4 and IPv6 (Reactor::listenMulticast).
//
// Ownership (docs/ownership.md): the reactor holds a port while it is reading;
// the port holds its protocol for its whole life (it may listen again); the
// protocol holds the port in `transport` until doStop(). The receive loop keeps
// the port and the protocol alive across every callback and looks at the
// port's state again after each one, so stopListening(), pauseProducing() or
// dropping the last outside reference from inside datagramReceived(),
// startProtocol() or connectionRefused() is safe (UDP-11). Closing is a
// request: stopListening() schedules the close, and stopProtocol() runs on a
// later iteration, never on the caller's stack (UDP-20).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/datagram.hpp>
#include <weft/internet/sockaddr.hpp>
#include <weft/internet/error.hpp>

namespace weft::udp {

/// A UDP socket (Twisted udp.Port; UDP-1..UDP-22).
///
/// IPv4 or IPv6 is chosen by the interface literal; IPv6 ports are IPv6-only
/// (as listenTCP's), so IPv4 destinations are refused with InvalidAddressError.
class WEFT_EXPORT Port : public DatagramSocket, public IUDPTransport {
public:
    /// Checks `interface` (UDP-1); the socket is made by startListening().
    /// Throws error::InvalidAddressError if it is neither "" nor an IP literal
    /// and std::invalid_argument for a null protocol or a zero maxPacketSize.
    Port(Reactor& reactor, std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol, std::string interface = "",
         std::size_t maxPacketSize = 8192);

    /// Creates and binds the socket, attaches the protocol and starts reading
    /// (UDP-1..UDP-3). Throws error::CannotListenError when the socket cannot
    /// be made or bound, std::logic_error when the protocol is attached to
    /// another transport. A no-op while open. Listening again after a stop
    /// starts the protocol again.
    void startListening() override;
    /// IPv4Address/IPv6Address("UDP", host, real port), IPv6 without flow or
    /// scope (UDP-4). After the close: the interface asked for and port 0.
    Address getHost() const override;

    using IDatagramTransport::write;
    using IDatagramTransport::writeSequence;
    /// Sends one datagram (UDP-12..UDP-14, UDP-18). Unconnected: `addr` must
    /// be an IPv4Address/IPv6Address whose host is a literal of the port's
    /// family ("<broadcast>" = 255.255.255.255 on IPv4 ports, UDP-13).
    /// Connected: NoAddress or the peer. Anything else throws
    /// error::InvalidAddressError before anything is sent.
    std::size_t write(Bytes datagram, const Address& addr) override;
    /// write(datagram, IPv4/IPv6Address("UDP", host, port)).
    std::size_t write(Bytes datagram, const std::string& host, std::uint16_t port);
    /// One datagram made of every chunk, gathered by sendmsg (UDP-15).
    std::size_t writeSequence(std::span<const Bytes> chunks, const Address& addr) override;

    /// Connects the socket to host:port (UDP-17): afterwards only that peer's
    /// datagrams arrive and write() needs no address. `host` must be an IP
    /// literal of the port's family (error::InvalidAddressError); a second
    /// connect() throws std::runtime_error (reconnecting is unsupported).
    void connect(const std::string& host, std::uint16_t port) override;
    /// The connected peer, or NoAddress.
    Address getPeer() const override;

    /// SO_BROADCAST (UDP-21). Throws std::system_error if the socket is closed.
    void setBroadcastAllowed(bool enabled) override;
    bool getBroadcastAllowed() const override;

    /// "<protocol logPrefix> (UDP)"; datagramReceived runs in this log context (UDP-5).
    std::string logPrefix() const override;
    /// "<QualifiedProtocolClass on PORT>" while open, "<QualifiedProtocolClass
    /// not connected>" after (UDP-5).
    std::string repr() const;
    /// AF_INET or AF_INET6.
    int addressFamily() const noexcept { return family_; }
    /// The protocol (kept after the close, for listening again).
    std::shared_ptr<DatagramProtocol> protocol() const;

protected:
    /// Socket options set before bind(); the base sets none (UDP-2).
    virtual void configureSocket(int fd);
    void deliver(Bytes datagram, const sockaddr* from, socklen_t fromLength) override;
    bool connectedToPeer() const noexcept override { return peer_.length != 0; }
    void closed() override;

private:
    friend class ::weft::Reactor;
    void adopt(int fd);
    /// The socket address for a destination host, checked as UDP-12 says.
    SockAddr destination(const std::string& host, std::uint16_t port) const;
    std::size_t sendTo(const Address& addr, std::span<const Bytes> chunks);

    std::uint16_t requestedPort_;
    std::string interface_;
    int family_ = AF_INET;
    std::uint16_t realPort_ = 0;
    SockAddr peer_;               // length 0 until connect()
    mutable std::string prefix_;  // logPrefix(), made once
    SockAddr lastFrom_;           // the last sender, and its Address: a
    Address lastFromAddress_;     // steady peer costs no formatting per datagram
};

/// A UDP port with multicast control (Twisted udp.MulticastPort, MulticastMixin;
/// UDP-23..UDP-29). IPv4 and IPv6 (Better than Twisted: IPV6_JOIN_GROUP,
/// IPV6_MULTICAST_HOPS/LOOP/IF) with the same methods and defaults.
///
/// Interfaces: on an IPv4 port an interface is a local IPv4 address (or a
/// name resolving to one; "" = any). On an IPv6 port it is an interface name
/// ("lo"), a decimal interface index, or "" / "::" for the kernel's choice.
class WEFT_EXPORT MulticastPort final : public Port {
public:
    MulticastPort(Reactor& reactor, std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                  std::string interface = "", std::size_t maxPacketSize = 8192, bool listenMultiple = false);

    /// IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS: 1 on a new port (UDP-24).
    int getTTL() const;
    /// Sets it; throws std::invalid_argument outside 0..255.
    void setTTL(int ttl);
    /// IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP: true on a new port (UDP-25).
    bool getLoopbackMode() const;
    void setLoopbackMode(bool enabled);
    /// IPv4: the outgoing interface's address, "0.0.0.0" on a new port.
    /// IPv6: the interface's name, "::" on a new port (UDP-26).
    std::string getOutgoingInterface() const;
    /// Resolves `addr` (names on the reactor's thread pool; literals at once)
    /// and sets the outgoing interface; the Deferred fires once it is applied,
    /// or fails (std::system_error, DNSLookupError) (UDP-26).
    Deferred<void> setOutgoingInterface(const std::string& addr);
    /// Joins `group` on `interface` (UDP-27). Names are resolved first; the
    /// Deferred fires with nothing on success and fails with
    /// error::MulticastJoinError (naming the group, the interface and the
    /// kernel's reason) on refusal. Never throws.
    Deferred<void> joinGroup(const std::string& group, const std::string& interface = "");
    /// Leaves `group`; as joinGroup (a refusal is a MulticastJoinError too).
    Deferred<void> leaveGroup(const std::string& group, const std::string& interface = "");

    bool listenMultiple() const noexcept { return listenMultiple_; }

protected:
    void configureSocket(int fd) override;

private:
    Deferred<void> membership(const std::string& group, const std::string& interface, bool join);
    bool listenMultiple_;
};

}  // namespace weft::udp
