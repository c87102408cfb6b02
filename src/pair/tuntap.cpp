// TUN and TAP devices (weft/pair/tuntap.hpp). Spec: pair.md TUN-1..TUN-16.
#include <weft/pair/tuntap.hpp>

#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>
#include <weft/text.hpp>

#include "internet/detail/sysutil.hpp"
#include "sys/syscalls.hpp"

namespace weft::pair {

using weft::detail::errnoName;

namespace {

std::error_code errnoCode(int e) { return {e, std::generic_category()}; }

// The kernel's own calls, through the seam.
class RealSystem final : public System {
public:
    int open(const char* path, int flags) override { return sys::ops.open(path, flags, 0); }
    int ioctl(int fd, unsigned long request, void* argument) override { return sys::ops.ioctl(fd, request, argument); }
    ssize_t read(int fd, void* buffer, std::size_t size) override { return sys::ops.read(fd, buffer, size); }
    ssize_t write(int fd, const void* data, std::size_t size) override { return sys::ops.write(fd, data, size); }
    int close(int fd) override { return sys::ops.close(fd); }
};

constexpr std::uint16_t bits(TunnelFlags f) noexcept { return static_cast<std::uint16_t>(f); }
constexpr std::uint16_t kTunFlag = bits(TunnelFlags::tun), kTapFlag = bits(TunnelFlags::tap),
                        kNoPIFlag = bits(TunnelFlags::noPI), kVnetHdrFlag = bits(TunnelFlags::vnetHdr);
// What tun_flags shows beside TunnelFlags' values (IFF_MULTI_QUEUE, IFF_PERSIST).
constexpr std::uint16_t kMultiQueueFlag = 0x0100, kPersistFlag = 0x0800;

// The flags a tun or tap interface has now (/sys/class/net/NAME/tun_flags, in
// hex); nothing for a name that is no such interface.
std::optional<std::uint16_t> interfaceFlags(const std::string& name) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") return std::nullopt;
    std::ifstream in("/sys/class/net/" + name + "/tun_flags");
    unsigned value = 0;
    if (!(in >> std::hex >> value) || value > 0xffff) return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

// TUN-5: what an errno from opening /dev/net/tun or from TUNSETIFF means for
// the interface asked for, in words.
std::string attachFailure(int e, bool opening, TunnelType type, const std::string& name, bool realKernel) {
    const std::string what = fmt::format("{} device {}", type == TunnelType::tap ? "tap" : "tun", quote(name));
    std::string why;
    switch (e) {
        case ENOENT:
        case ENODEV:
        case ENXIO:
            why = "this system has no tun/tap support (no /dev/net/tun, or the tun module is not loaded)";
            break;
        case EACCES:
            why = opening ? "permission denied opening /dev/net/tun (it needs root, or read and write access to it)"
                          : "permission denied";
            break;
        case EPERM:
            why =
                "not permitted: creating or attaching an interface needs CAP_NET_ADMIN (or a persistent device "
                "made for this user with `ip tuntap add … user`)";
            break;
        case EBUSY: why = "the interface is already attached by another program (or another port)"; break;
        case EINVAL: {
            // The kernel says EINVAL for an interface of the other type, for one made
            // with multi_queue (a port asks for a single queue) and for one that is no
            // tun/tap device at all: tell them apart by the interface's own flags.
            const auto flags = realKernel ? interfaceFlags(name) : std::nullopt;
            const bool tapWanted = type == TunnelType::tap;
            if (!realKernel)  // a simulated kernel: its interfaces are not in /sys
                why = fmt::format("an interface of that name exists and is not a {} device (a {}, or another kind)",
                                  tapWanted ? "TAP" : "TUN", tapWanted ? "TUN" : "TAP");
            else if (flags && ((*flags & kTapFlag) != 0) == tapWanted && (*flags & kMultiQueueFlag))
                why = fmt::format(
                    "the {} device was made with multi_queue, and a port attaches to one queue only "
                    "(make it without multi_queue)",
                    tapWanted ? "TAP" : "TUN");
            else if (flags)
                why = fmt::format("an interface of that name exists and is not a {} device (a {} device)",
                                  tapWanted ? "TAP" : "TUN", tapWanted ? "TUN" : "TAP");
            else if (interfaceExists(name))
                why = fmt::format("an interface of that name exists and is not a {} device (nor any tun/tap device)",
                                  tapWanted ? "TAP" : "TUN");
            else why = "the kernel refused the request";
            break;
        }
        default: why = opening ? "cannot open /dev/net/tun" : "TUNSETIFF failed"; break;
    }
    return fmt::format("cannot attach to {}: {} ({}: {})", what, why, errnoName(e), std::strerror(e));
}

}  // namespace

std::string_view typeName(TunnelType t) noexcept { return t == TunnelType::tap ? "IFF_TAP" : "IFF_TUN"; }

std::shared_ptr<System> realSystem() {
    static const std::shared_ptr<System> kernel = std::make_shared<RealSystem>();
    return kernel;
}

void checkInterfaceName(std::string_view name) {
    auto refuse = [&](std::string_view why) {
        throw std::invalid_argument(fmt::format("bad interface name {}: {}", quote(name), why));
    };
    if (name.size() >= interfaceNameSize)
        refuse(
            fmt::format("{} bytes, at most {} allowed (the kernel would cut it)", name.size(), interfaceNameSize - 1));
    if (name == "." || name == "..") refuse("not a valid name");
    for (char c : name) {
        if (c == '\0') refuse("it contains a NUL byte");
        if (c == '/' || c == ':') refuse("it contains '/' or ':'");
        // The kernel's isspace(), which dev_valid_name() asks, counts 0xA0 (no-break space) too.
        if (c == ' ' || (c >= '\t' && c <= '\r') || static_cast<unsigned char>(c) == 0xA0)
            refuse("it contains white space");
    }
    // The kernel numbers a name with one "%d" (tun%d → tun0, tun1, …) and refuses any other '%'
    // with EINVAL, which TUNSETIFF's caller would read as "exists with the other type".
    if (auto percent = name.find('%'); percent != std::string_view::npos) {
        if (percent + 1 >= name.size() || name[percent + 1] != 'd' ||
            name.find('%', percent + 2) != std::string_view::npos)
            refuse("a '%' may stand only once, as %d (the kernel puts the interface's number there)");
    }
}

bool interfaceExists(const std::string& name) {
    return !name.empty() && name.size() < interfaceNameSize && ::if_nametoindex(name.c_str()) != 0;
}

namespace {
// SIOCGIFMTU / SIOCSIFMTU on a throw-away datagram socket (any socket will do).
int mtuRequest(const std::string& name, unsigned long request, int mtu) {
    checkInterfaceName(name);
    auto what = [&] {
        return request == SIOCSIFMTU ? fmt::format("setting the MTU of {} to {}", quote(name), mtu)
                                     : fmt::format("reading the MTU of {}", quote(name));
    };
    int s = sys::ops.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) throw std::system_error(errnoCode(errno), what() + ": socket");
    ifreq req{};
    std::memcpy(req.ifr_name, name.data(), name.size());
    req.ifr_mtu = mtu;
    int rc = sys::ops.ioctl(s, request, &req);
    int e = errno;
    sys::ops.close(s);
    if (rc != 0) throw std::system_error(errnoCode(e), what());
    return req.ifr_mtu;
}
}  // namespace

int interfaceMTU(const std::string& name) { return mtuRequest(name, SIOCGIFMTU, 0); }

void setInterfaceMTU(const std::string& name, int mtu) { mtuRequest(name, SIOCSIFMTU, mtu); }

// ---- TuntapPort --------------------------------------------------------------------------

TuntapPort::TuntapPort(Reactor& reactor, std::string interface, Kinds protocol, std::size_t maxPacketSize,
                       std::shared_ptr<System> system)
    : DatagramSocket(reactor, std::move(protocol.base), maxPacketSize),
      system_(system ? std::move(system) : realSystem()), ethernet_(protocol.ethernet), raw_(protocol.raw),
      type_(ethernet_ ? TunnelType::tap : TunnelType::tun), interface_(std::move(interface)) {
    checkInterfaceName(interface_);  // TUN-5: before anything is opened
}

TuntapPort::~TuntapPort() {
    // The base's destructor would close through the seam, not through system_.
    if (fd_ >= 0) system_->close(fd_);
    fd_ = -1;
}

void TuntapPort::closeDescriptor(int fd) noexcept {
    try {
        system_->close(fd);
        // Not for an interface that went away (TUN-7): TUNSETIFF would make a new one.
        if (auto flags = std::exchange(restoreFlags_, std::nullopt); flags && interfaceFlags(interface_)) {
            // Attach once more with the interface's own flags, which the kernel
            // then keeps, and let go at once. Another program that attached in
            // between (EBUSY) keeps what it asked for.
            int again = system_->open(tunDevicePath, O_RDWR | O_CLOEXEC | O_NONBLOCK);
            if (again >= 0) {
                ifreq req{};
                std::memcpy(req.ifr_name, interface_.data(), interface_.size());
                req.ifr_flags = static_cast<short>(*flags);
                if (system_->ioctl(again, tunSetIff, &req) != 0)
                    log::warn(logPrefix(), "could not put back the flags of {} ({})", quote(interface_),
                              errnoName(errno));
                system_->close(again);
            }
        }
    } catch (...) {
        log::failure(logPrefix(), "Unhandled error closing a tun device", Failure::current());
    }
}

void TuntapPort::startListening() {
    checkNotStopping();  // as a UDP port: the pending stop would close what this opened
    if (fd_ >= 0) return;
    checkProtocolFree();
    // TUN-2: non-blocking and close-on-exec from the start.
    int fd = system_->open(tunDevicePath, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        throw error::CannotListenError("", interface_, errnoCode(e),
                                       attachFailure(e, true, type_, interface_, system_ == realSystem()));
    }
    // An existing interface's flags, to put back at the close (see below).
    int before = -1;  // the flags, or -1 (a plain int: g++ 12 misreads an optional here)
    if (system_ == realSystem())
        if (auto flags = interfaceFlags(interface_)) before = *flags;
    ifreq req{};
    std::memcpy(req.ifr_name, interface_.data(), interface_.size());  // NUL-padded to 16 bytes
    // TUN-3: never a packet-information prefix, whatever the interface was made with.
    req.ifr_flags = static_cast<short>(toFlags(type_) | TunnelFlags::noPI);
    int rc;
    try {
        rc = system_->ioctl(fd, tunSetIff, &req);
    } catch (...) {
        system_->close(fd);
        throw;
    }
    if (rc != 0) {
        int e = errno;
        system_->close(fd);
        throw error::CannotListenError("", interface_, errnoCode(e),
                                       attachFailure(e, false, type_, interface_, system_ == realSystem()));
    }
    // TUN-4: the kernel's name ("tun%d" and "" become tun0, tun1, …).
    interface_.assign(req.ifr_name, ::strnlen(req.ifr_name, sizeof req.ifr_name));
    // TUN-3: the kernel keeps this attachment's noPI (and no vnet header) on a
    // persistent interface made with a packet-information prefix or virtio
    // headers; the program that uses it next expects what it was made with.
    restoreFlags_.reset();
    if (before >= 0 && (before & kPersistFlag) && (before & (kNoPIFlag | kVnetHdrFlag)) != kNoPIFlag)
        restoreFlags_ = static_cast<std::uint16_t>(before & (kTunFlag | kTapFlag | kNoPIFlag | kVnetHdrFlag));
    prefix_.clear();
    attach(fd, interface_);
}

Address TuntapPort::getHost() const { return TunnelAddress(type_, interface_); }

std::string TuntapPort::logPrefix() const {
    if (prefix_.empty()) prefix_ = fmt::format("{} ({})", protocolPrefix(), typeName(type_));
    return prefix_;
}

std::string TuntapPort::repr() const {
    return fmt::format("<{} {}listening on {}/{}>", protocolClassName(), connected() ? "" : "not ", typeName(type_),
                       interface_);
}

void TuntapPort::closed() { log::info(logPrefix(), "(Tuntap {} Closed)", interface_); }

void TuntapPort::loseConnection() {
    log::warn(logPrefix(), "TuntapPort::loseConnection is deprecated; use TuntapPort::stopListening instead");
    stopListening();
}

void TuntapPort::throwReadError(int e) const {
    throw std::system_error(errnoCode(e), fmt::format("reading from {} device {}",
                                                      type_ == TunnelType::tap ? "tap" : "tun", quote(interface_)));
}

DatagramSocket::Received TuntapPort::receiveSome(std::size_t) {
    // TUN-6, Better than Twisted: one byte more than maxPacketSize tells a cut packet.
    const std::size_t limit = maxPacketSize();
    if (buffer_.size() != limit + 1) buffer_.resize(limit + 1);
    ssize_t n = system_->read(fd_, buffer_.data(), buffer_.size());
    if (n < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) return {};
        throwReadError(e);  // TUN-7
    }
    const auto got = static_cast<std::size_t>(n);
    const bool partial = got > limit;
    const std::size_t length = std::min(got, limit);
    deliverPacket(Bytes(buffer_.data(), length), partial);
    // A device gives no empty packet; a System that does ends the event rather than spin.
    return {length, length != 0};
}

void TuntapPort::deliver(Bytes datagram, const sockaddr*, socklen_t) { deliverPacket(datagram, false); }

void TuntapPort::deliverPacket(Bytes packet, bool partial) {
    try {
        if (ethernet_) ethernet_->datagramReceived(packet, partial);
        else raw_->datagramReceived(packet, partial, {}, {}, std::nullopt);  // TUN-16: no link layer
    } catch (...) {
        // TUN-8: log, naming the protocol, and read on.
        log::failure(logPrefix(), fmt::format("Unhandled exception from {}.datagramReceived", protocolClassName()),
                     Failure::current());
    }
}

void TuntapPort::readConnectionLost(const Failure& reason) {
    auto self = shared_from_this();
    Failure why = reason;
    // Deliver what is still queued; the read after it says why the device failed.
    try {
        doRead();
    } catch (...) {
        why = Failure::current();
        log::failure(logPrefix(),
                     fmt::format("The {} device {} failed; the port closes", type_ == TunnelType::tap ? "tap" : "tun",
                                 quote(interface_)),
                     why);
    }
    connectionLost(why);
}

std::size_t TuntapPort::write(Bytes packet) {
    if (fd_ < 0) return 0;  // a closed transport is inert
    for (;;) {
        ssize_t n = system_->write(fd_, packet.data(), packet.size());
        if (n >= 0) return static_cast<std::size_t>(n);
        int e = errno;
        if (e == EINTR) continue;  // TUN-9
        throw std::system_error(errnoCode(e), fmt::format("writing a packet of {} bytes to {} device {}", packet.size(),
                                                          type_ == TunnelType::tap ? "tap" : "tun", quote(interface_)));
    }
}

std::size_t TuntapPort::write(Bytes packet, const Address& addr) {
    if (!std::holds_alternative<NoAddress>(addr) && addr != getHost())
        throw error::InvalidAddressError(addressStr(addr), "a tun/tap port writes only into its own interface");
    return write(packet);
}

std::size_t TuntapPort::writeSequence(std::span<const Bytes> chunks) {
    if (chunks.size() == 1) return write(chunks.front());
    joined_.clear();
    for (Bytes b : chunks) joined_.insert(joined_.end(), b.begin(), b.end());
    return write(Bytes(joined_));
}

std::size_t TuntapPort::writeSequence(std::span<const Bytes> chunks, const Address& addr) {
    if (!std::holds_alternative<NoAddress>(addr) && addr != getHost())
        throw error::InvalidAddressError(addressStr(addr), "a tun/tap port writes only into its own interface");
    return writeSequence(chunks);
}

}  // namespace weft::pair
