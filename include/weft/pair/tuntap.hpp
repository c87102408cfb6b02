// weft/pair/tuntap.hpp — Linux TUN and TAP devices (twisted.pair.tuntap).
// Spec: pair.md TUN-1..TUN-16.
//
//   TuntapPort     a port on a tun/tap interface through /dev/net/tun: each
//                  packet read from it goes to the protocol, write() sends one
//                  packet into it (towards the local network stack)
//   TunnelFlags    the flag and request values of <linux/if_tun.h> (TUN-14)
//   TunnelAddress  the address of a TuntapPort: type and interface name (TUN-12)
//   System         the five calls the port makes (open, ioctl, read, write,
//                  close; Twisted _IInputOutputSystem): the kernel through
//                  weft's syscall seam by default, or an in-memory tunnel
//                  (MemoryIOSystem, weft/pair/testing.hpp) in tests
//
// A TuntapPort is a datagram port (DatagramSocket, weft/internet/datagram.hpp):
// it shares that layer's receive loop, with its budget of maxThroughput bytes
// per readable event, and its stop/close life cycle. Ownership is the same
// (docs/ownership.md): the reactor holds the port while it reads; the port
// holds its protocol and its System for its whole life; the protocol holds the
// port in `transport` until doStop(). Closing is a request: stopListening()
// stops reading at once and closes on a later iteration, never on the
// caller's stack, so stopListening() or dropping the last reference to the
// port from inside datagramReceived, startProtocol or stopProtocol is safe.
//
// A non-persistent interface exists while a descriptor is attached to it: it
// appears at startListening() and disappears when the port closes. A
// persistent one (`ip tuntap add`) stays. Addresses, routes and the link state
// are left to `ip`; interfaceMTU()/setInterfaceMTU() read and set the MTU.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/datagram.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/pair/ethernet.hpp>
#include <weft/pair/raw.hpp>
#include <weft/internet/error.hpp>

namespace weft::pair {

using weft::TunnelAddress;
using weft::TunnelType;

/// Flags of TUNSETIFF (Twisted tuntap.TunnelFlags; TUN-14). The enumerators
/// are not named IFF_*: <linux/if_tun.h> defines those as macros.
enum class TunnelFlags : std::uint16_t {
    tun = 0x0001,               ///< IFF_TUN: IP packets
    tap = 0x0002,               ///< IFF_TAP: Ethernet frames
    legacyFasync = 0x0010,      ///< TUN_FASYNC (legacy)
    legacyNoChecksum = 0x0020,  ///< TUN_NOCHECKSUM (legacy)
    legacyNoPI = 0x0040,        ///< TUN_NO_PI (legacy)
    legacyOneQueue = 0x0080,    ///< TUN_ONE_QUEUE (legacy)
    legacyPersist = 0x0100,     ///< TUN_PERSIST (legacy)
    legacyVnetHdr = 0x0200,     ///< TUN_VNET_HDR (legacy)
    noPI = 0x1000,              ///< IFF_NO_PI: no 4-byte packet-information prefix (TUN-3)
    oneQueue = 0x2000,          ///< IFF_ONE_QUEUE
    vnetHdr = 0x4000,           ///< IFF_VNET_HDR
    tunExcl = 0x8000,           ///< IFF_TUN_EXCL: fail with EBUSY if the interface exists
};
constexpr TunnelFlags operator|(TunnelFlags a, TunnelFlags b) noexcept {
    return static_cast<TunnelFlags>(static_cast<std::uint16_t>(a) | static_cast<std::uint16_t>(b));
}
constexpr TunnelFlags operator&(TunnelFlags a, TunnelFlags b) noexcept {
    return static_cast<TunnelFlags>(static_cast<std::uint16_t>(a) & static_cast<std::uint16_t>(b));
}
constexpr TunnelFlags toFlags(TunnelType t) noexcept { return static_cast<TunnelFlags>(t); }
/// "IFF_TUN" or "IFF_TAP" (the names Twisted's flags print as).
WEFT_EXPORT std::string_view typeName(TunnelType t) noexcept;

/// The TUNSETIFF and TUNGETIFF ioctl requests (Twisted _TUNSETIFF,
/// _TUNGETIFF; TUN-14): _IOW/_IOR('T', 202/210, int), whose direction bits
/// differ on parisc, powerpc and sparc.
#if defined(__hppa__) || defined(__powerpc__) || defined(__sparc__)
inline constexpr unsigned long tunSetIff = 0x800454CA;
inline constexpr unsigned long tunGetIff = 0x400454D2;
#else
inline constexpr unsigned long tunSetIff = 0x400454CA;
inline constexpr unsigned long tunGetIff = 0x800454D2;
#endif
/// IFNAMSIZ: an interface name has at most 15 bytes plus its NUL.
inline constexpr std::size_t interfaceNameSize = 16;
/// The device the port opens.
inline constexpr const char* tunDevicePath = "/dev/net/tun";
/// The packet-information prefix a descriptor attached without IFF_NO_PI
/// reads before each packet: 2 flag bytes and the 2-byte EtherType (TUN-3).
inline constexpr std::size_t packetInformationSize = 4;

/// The calls a TuntapPort makes (Twisted _IInputOutputSystem). Each returns
/// what the system call returns: -1 with errno set on failure. An
/// implementation may also throw (an error no errno describes); that
/// propagates to the port's caller, or out of doRead (TUN-7).
class WEFT_EXPORT System {
public:
    virtual ~System() = default;
    /// open(2): the port asks "/dev/net/tun" with O_RDWR | O_CLOEXEC | O_NONBLOCK.
    virtual int open(const char* path, int flags) = 0;
    /// ioctl(2): the port issues TUNSETIFF with a struct ifreq.
    virtual int ioctl(int fd, unsigned long request, void* argument) = 0;
    /// read(2): one packet per call, at most `size` bytes of it.
    virtual ssize_t read(int fd, void* buffer, std::size_t size) = 0;
    /// write(2): one packet per call.
    virtual ssize_t write(int fd, const void* data, std::size_t size) = 0;
    /// close(2).
    virtual int close(int fd) = 0;
};

/// The kernel, through weft's syscall seam (sys::ops): what a port uses when
/// given no System (Twisted _RealSystem). One shared instance.
WEFT_EXPORT std::shared_ptr<System> realSystem();

/// Throws std::invalid_argument naming `name` unless the kernel would take it
/// as an interface name: at most 15 bytes (TUN-5, Better than Twisted: the
/// kernel would cut a longer one silently), no NUL, '/', ':' or white space,
/// and not "." or "..". The empty name is allowed (the kernel picks one, TUN-4).
WEFT_EXPORT void checkInterfaceName(std::string_view name);
/// Whether an interface called `name` exists in this network namespace.
WEFT_EXPORT bool interfaceExists(const std::string& name);
/// The MTU of interface `name` (SIOCGIFMTU). Throws std::system_error naming it.
WEFT_EXPORT int interfaceMTU(const std::string& name);
/// Sets the MTU of interface `name` (SIOCSIFMTU, through the syscall seam).
/// Throws std::system_error naming the interface and the value (EINVAL: out
/// of the device's range; EPERM: no CAP_NET_ADMIN).
WEFT_EXPORT void setInterfaceMTU(const std::string& name, int mtu);

/// A port on a TUN or TAP interface (Twisted tuntap.TuntapPort; TUN-1..TUN-16).
///
/// TUN-1: the type follows the protocol — one that provides IEthernetProtocol
/// gets a TAP interface and whole Ethernet frames; any other must provide
/// IRawPacketProtocol (checked at compile time) and gets a TUN interface and
/// bare IP packets. Either way it must be an AbstractDatagramProtocol: the
/// port attaches it with makeConnection() and detaches it with doStop().
///
/// Reading (TUN-6..TUN-8): on a readable event the port reads one packet per
/// read(2), at most maxPacketSize() bytes of it, and calls
/// protocol->datagramReceived(packet, partial), until the device would block
/// or is interrupted, or maxThroughput bytes were read in this event. TUN-6,
/// Better than Twisted: a packet longer than maxPacketSize() is delivered cut
/// with partial = true (the rest is lost). An exception from datagramReceived
/// is logged ("Unhandled exception from <class>.datagramReceived") and reading
/// goes on; any other read error ends the port (TUN-7).
///
/// Writing (TUN-9): write() writes one packet at once (no buffering).
class WEFT_EXPORT TuntapPort final : public DatagramSocket {
public:
    /// A port for interface `interface` ("tun0"; "tun%d" or "" to let the
    /// kernel choose, TUN-4) carrying `protocol`, reading packets of up to
    /// `maxPacketSize` bytes, through `system` (null: realSystem()). Nothing
    /// is opened until startListening(). Throws std::invalid_argument for a
    /// name checkInterfaceName() refuses (TUN-5, before anything is opened), a
    /// null protocol or a zero maxPacketSize. (Twisted's argument order is
    /// interface, protocol, maxPacketSize, reactor, system; weft's ports take
    /// their reactor first, and there is no global reactor.)
    template <class P>
    requires std::is_base_of_v<AbstractDatagramProtocol, P> &&
        (std::is_base_of_v<IEthernetProtocol, P> || std::is_base_of_v<IRawPacketProtocol, P>)
            TuntapPort(Reactor& reactor, std::string interface, std::shared_ptr<P> protocol,
                       std::size_t maxPacketSize = 8192, std::shared_ptr<System> system = nullptr)
        : TuntapPort(reactor, std::move(interface), Kinds::of(protocol), maxPacketSize, std::move(system)) {}
    ~TuntapPort() override;

    /// TUN-2: opens /dev/net/tun (O_RDWR | O_CLOEXEC | O_NONBLOCK), issues
    /// TUNSETIFF with the name and type | IFF_NO_PI (TUN-3), keeps the name the
    /// kernel answers (TUN-4), attaches the protocol (makeConnection →
    /// doStart → startProtocol) and starts reading. A no-op while open.
    /// TUN-5: throws error::CannotListenError (interface "", port the name,
    /// the errno as socketError()) whose message names the interface and says
    /// what the errno means here — no tun support (ENOENT, ENODEV, ENXIO), no
    /// permission (EACCES, EPERM), the interface is attached elsewhere (EBUSY),
    /// or (EINVAL) it exists with another type, was made with multi_queue, or
    /// is no tun/tap device — with nothing left open; and std::logic_error
    /// when the protocol is attached to another transport.
    /// The kernel keeps an attachment's flags on a persistent interface: one
    /// made with a packet-information prefix or virtio headers gets them back
    /// when the port closes it (the port attaches once more with them).
    void startListening() override;
    /// TUN-12: TunnelAddress(type, interface()).
    Address getHost() const override;

    /// TUN-9: writes `packet` into the interface as one packet and returns the
    /// bytes written. EINTR is retried; any other error (EAGAIN when the
    /// interface's queue is full, EINVAL or EIO for a malformed packet…)
    /// throws std::system_error naming the interface. 0 on a closed port.
    std::size_t write(Bytes packet);
    /// write(packet); `addr` must be NoAddress or this port's own
    /// TunnelAddress (error::InvalidAddressError otherwise).
    std::size_t write(Bytes packet, const Address& addr) override;
    std::size_t write(std::string_view packet) { return write(asBytes(packet)); }
    /// TUN-9: writes the chunks, joined, as one packet.
    std::size_t writeSequence(std::span<const Bytes> chunks);
    std::size_t writeSequence(std::span<const Bytes> chunks, const Address& addr) override;
    /// TUN-11: stopListening(), logging a deprecation warning that names
    /// stopListening (Twisted: a DeprecationWarning).
    [[deprecated("use stopListening()")]] void loseConnection() override;

    /// TUN-13: "<ProtocolClassName> (IFF_TUN)" or "(IFF_TAP)".
    std::string logPrefix() const override;
    /// TUN-13: "<{qualified protocol class} listening on IFF_TUN/tun0>" while
    /// connected, "<{…} not listening on IFF_TUN/tun0>" otherwise.
    std::string repr() const;
    /// The interface name: as asked before startListening(), as the kernel
    /// chose it afterwards (TUN-4).
    const std::string& interface() const noexcept { return interface_; }
    TunnelType type() const noexcept { return type_; }
    /// True from a successful startListening() until the port has closed
    /// (Twisted `connected`; still true while a stop is pending).
    bool connected() const noexcept { return fd_ >= 0; }
    /// The System the port uses.
    const std::shared_ptr<System>& system() const noexcept { return system_; }
    /// The protocol (kept after the close, for listening again).
    const std::shared_ptr<AbstractDatagramProtocol>& protocol() const noexcept { return protocol_; }

    /// The device reported an error or a hang-up, which a tun descriptor does
    /// once its interface is gone (deleted with `ip link del`): the packets
    /// still queued are read, the read error is logged, and the port ends.
    void readConnectionLost(const Failure& reason) override;

protected:
    Received receiveSome(std::size_t budget) override;
    void deliver(Bytes datagram, const sockaddr* from, socklen_t fromLength) override;
    bool connectedToPeer() const noexcept override { return false; }
    void closed() override;
    void closeDescriptor(int fd) noexcept override;

private:
    // The protocol seen through the interface that decides the type (TUN-1).
    struct Kinds {
        std::shared_ptr<AbstractDatagramProtocol> base;
        IEthernetProtocol* ethernet = nullptr;
        IRawPacketProtocol* raw = nullptr;
        template <class P>
        static Kinds of(const std::shared_ptr<P>& p) {
            Kinds k{p};
            if constexpr (std::is_base_of_v<IEthernetProtocol, P>) k.ethernet = p.get();
            else k.raw = p.get();
            return k;
        }
    };
    TuntapPort(Reactor& reactor, std::string interface, Kinds protocol, std::size_t maxPacketSize,
               std::shared_ptr<System> system);
    void deliverPacket(Bytes packet, bool partial);
    [[noreturn]] void throwReadError(int e) const;

    std::shared_ptr<System> system_;
    IEthernetProtocol* ethernet_;  // one of these two is set: they point into protocol_
    IRawPacketProtocol* raw_;
    TunnelType type_;
    std::string interface_;
    std::vector<std::byte> buffer_;  // maxPacketSize + 1 bytes, made at the first read
    std::vector<std::byte> joined_;  // writeSequence's packet, reused
    // The TUNSETIFF flags a persistent interface had before this port attached
    // with noPI (the kernel keeps an attachment's flags on the interface), when
    // they differ: put back once the port has closed it (TUN-3).
    std::optional<std::uint16_t> restoreFlags_;
    mutable std::string prefix_;  // logPrefix(), made once
};

}  // namespace weft::pair
