// weft/pair/testing.hpp — test support for tun/tap code (twisted.pair.testing).
// Spec: pair.md ("Testing on Linux without special hardware").
//
//   MemoryIOSystem   an in-memory /dev/net/tun: a System whose tunnels are
//                    queues a test fills and inspects, so TuntapPort's logic
//                    runs with no privileges (TUN-6 … TUN-13)
//   Tunnel           one open tunnel of a MemoryIOSystem
//   ethernet, ip, udp, checksum   build frames and packets as the kernel
//                    would (Twisted's _ethernet, _ip, _udp)
//
// Each tunnel's descriptor is a real eventfd, readable exactly while packets
// are queued, so a reactor of any backend watches an in-memory tunnel as it
// watches a device: a test can run the loop or call doRead() itself.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/pair/tuntap.hpp>

namespace weft::pair::testing {

/// EtherType of IPv4 (Twisted _IPv4).
inline constexpr std::uint16_t etherTypeIPv4 = 0x0800;
/// EtherType of IPv6.
inline constexpr std::uint16_t etherTypeIPv6 = 0x86DD;

/// The Internet checksum (RFC 1071) of `data`: the one's complement of the
/// one's complement sum of its 16-bit big-endian words.
WEFT_EXPORT std::uint16_t checksum(Bytes data) noexcept;
/// An Ethernet frame: dst + src + EtherType + payload (Twisted _ethernet;
/// `src` and `dst` are 6 bytes each).
WEFT_EXPORT std::string ethernet(Bytes src, Bytes dst, std::uint16_t protocol, Bytes payload);
/// An IPv4 packet from `src` to `dst` (dotted quads) with a correct header
/// checksum: version 4, ihl 20, id 1, TTL 64 (Twisted _ip, which is always UDP;
/// here `protocol` says). Throws std::invalid_argument for a bad address.
WEFT_EXPORT std::string ip(std::string_view src, std::string_view dst, Bytes payload, std::uint8_t protocol = 17);
/// A UDP datagram with checksum 0 (none; Twisted _udp).
WEFT_EXPORT std::string udp(std::uint16_t src, std::uint16_t dst, Bytes payload);

/// One open /dev/net/tun of a MemoryIOSystem (Twisted testing.Tunnel).
class WEFT_EXPORT Tunnel {
public:
    /// Most bytes write() accepts; a longer packet fails with ENOBUFS.
    static constexpr std::size_t SEND_BUFFER_SIZE = 1024;

    Tunnel(int fd, int openFlags);
    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;

    /// The flags open() was given.
    const int openFlags;
    /// The descriptor (an eventfd).
    const int fd;
    /// TUNSETIFF's flags (type | IFF_NO_PI …), 0 until configured.
    std::uint16_t tunnelMode = 0;
    /// The name TUNSETIFF was given: all 16 bytes, NUL padding included.
    std::string requestedName;
    /// The name it got (the kernel's choice for "tun%d" or "").
    std::string name;

    /// Packets written into the tunnel, in order.
    std::deque<std::string> writeBuffer;
    /// What read() fails with once the read buffer is empty (Twisted
    /// nonBlockingExceptionStyle): EAGAIN by default, EWOULDBLOCK, EINTR, or
    /// any errno.
    int readErrno = EAGAIN;
    /// If set, read() throws it (an error that is no errno).
    std::exception_ptr readThrows;
    /// Writes that fail with EINTR before one goes through (Twisted pendingSignals).
    int pendingSignals = 0;
    /// If non-zero, the next write() fails with it (once).
    int writeErrno = 0;

    bool blocking() const noexcept;
    bool closeOnExec() const noexcept;
    /// Queues `datagram` to be read; a TAP tunnel frames it first as
    /// Twisted's does (broadcast destination, zero source, IPv4).
    void addToReadBuffer(Bytes datagram);
    /// Queues `packet` to be read exactly as given.
    void queueRead(Bytes packet);
    std::size_t pendingReads() const noexcept { return readBuffer_.size(); }

    /// The System calls, for this tunnel. read() of an empty tunnel fails with
    /// readErrno, or, opened without O_NONBLOCK, throws std::logic_error:
    /// nothing could ever fill it while the call waited.
    ssize_t read(void* buffer, std::size_t limit);
    ssize_t write(const void* data, std::size_t size);

private:
    void setReadable(bool readable);

    std::deque<std::string> readBuffer_;
    bool readable_ = false;
};

/// An in-memory System (Twisted testing.MemoryIOSystem): open() of a
/// registered device (/dev/net/tun from the start) makes a Tunnel, ioctl()
/// takes TUNSETIFF and names it as the kernel would ("%d" becomes the first
/// free number; a name in use fails with EBUSY, or EINVAL for the other
/// type), read() and write() move packets through its queues. Permissions:
/// open and ioctl fail with EPERM unless named in `permissions`.
class WEFT_EXPORT MemoryIOSystem final : public System {
public:
    MemoryIOSystem();
    ~MemoryIOSystem() override;

    /// The calls allowed ("open", "ioctl"); remove one to make it fail with EPERM.
    std::set<std::string> permissions{"open", "ioctl"};

    /// Makes `path` openable as a tunnel device (Twisted registerSpecialDevice).
    void registerSpecialDevice(std::string path);
    /// Makes `path` fail to open with ENOENT again.
    void unregisterSpecialDevice(const std::string& path);
    /// The tunnel behind a port's descriptor (Twisted getTunnel). Throws
    /// std::out_of_range if it is not open here.
    Tunnel& getTunnel(const TuntapPort& port);
    Tunnel& getTunnel(int fd);
    /// Whether `fd` is a tunnel open here.
    bool isOpen(int fd) const noexcept { return openFiles_.count(fd) != 0; }
    std::size_t openCount() const noexcept { return openFiles_.size(); }

    int open(const char* path, int flags) override;
    int ioctl(int fd, unsigned long request, void* argument) override;
    ssize_t read(int fd, void* buffer, std::size_t size) override;
    ssize_t write(int fd, const void* data, std::size_t size) override;
    int close(int fd) override;

private:
    std::set<std::string> devices_;
    std::map<int, std::unique_ptr<Tunnel>> openFiles_;
};

}  // namespace weft::pair::testing
