// Test support for tun/tap code (weft/pair/testing.hpp).
#include <weft/pair/testing.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include <weft/text.hpp>

#include "sys/syscalls.hpp"

namespace weft::pair::testing {

namespace {

void put16(std::string& out, std::uint16_t v) {
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v & 0xFF));
}

std::string_view text(Bytes b) { return asText(b); }

int fail(int e) {
    errno = e;
    return -1;
}

}  // namespace

std::uint16_t checksum(Bytes data) noexcept {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i + 1 < data.size(); i += 2)
        sum += (std::to_integer<std::uint32_t>(data[i]) << 8) | std::to_integer<std::uint32_t>(data[i + 1]);
    if (data.size() % 2) sum += std::to_integer<std::uint32_t>(data.back()) << 8;
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum & 0xFFFF);
}

std::string ethernet(Bytes src, Bytes dst, std::uint16_t protocol, Bytes payload) {
    std::string out;
    out.reserve(14 + payload.size());
    out.append(text(dst));
    out.append(text(src));
    put16(out, protocol);
    out.append(text(payload));
    return out;
}

std::string ip(std::string_view src, std::string_view dst, Bytes payload, std::uint8_t protocol) {
    in_addr s{}, d{};
    if (::inet_pton(AF_INET, std::string(src).c_str(), &s) != 1)
        throw std::invalid_argument("not an IPv4 address: " + quote(src));
    if (::inet_pton(AF_INET, std::string(dst).c_str(), &d) != 1)
        throw std::invalid_argument("not an IPv4 address: " + quote(dst));
    std::string h;
    h.push_back('\x45');  // version 4, ihl 5 words: RFC 791's order (IP-2)
    h.push_back('\x00');
    put16(h, static_cast<std::uint16_t>(20 + payload.size()));
    put16(h, 1);          // identification
    put16(h, 0);          // no flags, offset 0
    h.push_back('\x40');  // TTL 64
    h.push_back(static_cast<char>(protocol));
    put16(h, 0);  // checksum, filled in below
    h.append(reinterpret_cast<const char*>(&s), 4);
    h.append(reinterpret_cast<const char*>(&d), 4);
    std::uint16_t sum = checksum(asBytes(h));
    h[10] = static_cast<char>(sum >> 8);
    h[11] = static_cast<char>(sum & 0xFF);
    h.append(text(payload));
    return h;
}

std::string udp(std::uint16_t src, std::uint16_t dst, Bytes payload) {
    std::string out;
    put16(out, src);
    put16(out, dst);
    put16(out, static_cast<std::uint16_t>(payload.size() + 8));
    put16(out, 0);
    out.append(text(payload));
    return out;
}

// ---- Tunnel --------------------------------------------------------------------------------

Tunnel::Tunnel(int fd_, int openFlags_) : openFlags(openFlags_), fd(fd_) {}

bool Tunnel::blocking() const noexcept { return !(openFlags & O_NONBLOCK); }

bool Tunnel::closeOnExec() const noexcept { return (openFlags & O_CLOEXEC) != 0; }

void Tunnel::setReadable(bool readable) {
    if (readable == readable_) return;
    // The eventfd's counter is non-zero exactly while packets are queued.
    std::uint64_t v = 1;
    if (readable) sys::ops.write(fd, &v, sizeof v);
    else sys::ops.read(fd, &v, sizeof v);
    readable_ = readable;
}

void Tunnel::addToReadBuffer(Bytes datagram) {
    if (tunnelMode & static_cast<std::uint16_t>(TunnelFlags::tap)) {
        const std::byte zero[6] = {}, broadcast[6] = {std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                                                      std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}};
        queueRead(asBytes(ethernet(zero, broadcast, etherTypeIPv4, datagram)));
        return;
    }
    queueRead(datagram);
}

void Tunnel::queueRead(Bytes packet) {
    readBuffer_.emplace_back(text(packet));
    setReadable(true);
}

ssize_t Tunnel::read(void* buffer, std::size_t limit) {
    if (readThrows) std::rethrow_exception(std::exchange(readThrows, nullptr));
    if (readBuffer_.empty()) {
        // Nothing else can queue a packet while this call waits: a blocking
        // read would never return. Say so instead of hanging the test.
        if (blocking())
            throw std::logic_error(
                "MemoryIOSystem: a blocking read of an empty tunnel would wait forever; open it with O_NONBLOCK");
        return fail(readErrno);
    }
    std::string packet = std::move(readBuffer_.front());
    readBuffer_.pop_front();
    if (readBuffer_.empty()) setReadable(false);
    auto* out = static_cast<char*>(buffer);
    std::size_t n = 0;
    if (!(tunnelMode & static_cast<std::uint16_t>(TunnelFlags::noPI))) {
        // TUN-3: the kernel's prefix — flags (TUN_PKT_STRIP, 1, when the
        // packet is cut) and the protocol: the frame's EtherType on a TAP,
        // IPv4 or IPv6 by the version nibble on a TUN.
        if (limit < packetInformationSize) return fail(EINVAL);
        limit -= packetInformationSize;
        std::uint16_t proto = 0;
        if (tunnelMode & static_cast<std::uint16_t>(TunnelFlags::tap)) {
            if (packet.size() >= 14)
                proto = static_cast<std::uint16_t>((static_cast<unsigned char>(packet[12]) << 8) |
                                                   static_cast<unsigned char>(packet[13]));
        } else if (!packet.empty()) {
            proto = (static_cast<unsigned char>(packet[0]) >> 4) == 6 ? etherTypeIPv6 : etherTypeIPv4;
        }
        std::string pi;
        // struct tun_pi: the flags in host order (the kernel's own word), the protocol in network order.
        const std::uint16_t flags = packet.size() > limit ? 1 : 0;
        pi.append(reinterpret_cast<const char*>(&flags), sizeof flags);
        put16(pi, proto);
        std::memcpy(out, pi.data(), pi.size());
        n = pi.size();
    }
    // Twisted's Tunnel.read: a packet longer than the limit loses the rest.
    std::size_t take = std::min(packet.size(), limit);
    std::memcpy(out + n, packet.data(), take);
    return static_cast<ssize_t>(n + take);
}

ssize_t Tunnel::write(const void* data, std::size_t size) {
    if (pendingSignals > 0) {
        --pendingSignals;
        return fail(EINTR);
    }
    if (writeErrno) return fail(std::exchange(writeErrno, 0));
    if (size > SEND_BUFFER_SIZE) return fail(ENOBUFS);
    writeBuffer.emplace_back(static_cast<const char*>(data), size);
    return static_cast<ssize_t>(size);
}

// ---- MemoryIOSystem ----------------------------------------------------------------------

MemoryIOSystem::MemoryIOSystem() { registerSpecialDevice(tunDevicePath); }

MemoryIOSystem::~MemoryIOSystem() {
    for (auto& [fd, tunnel] : openFiles_) sys::ops.close(fd);
}

void MemoryIOSystem::registerSpecialDevice(std::string path) { devices_.insert(std::move(path)); }

void MemoryIOSystem::unregisterSpecialDevice(const std::string& path) { devices_.erase(path); }

Tunnel& MemoryIOSystem::getTunnel(const TuntapPort& port) { return getTunnel(port.fileno()); }

Tunnel& MemoryIOSystem::getTunnel(int fd) {
    auto found = openFiles_.find(fd);
    if (found == openFiles_.end()) throw std::out_of_range(fmt::format("MemoryIOSystem: no tunnel on fd {}", fd));
    return *found->second;
}

int MemoryIOSystem::open(const char* path, int flags) {
    if (!permissions.count("open")) return fail(EPERM);
    if (!devices_.count(path)) return fail(ENOENT);
    int fd = sys::ops.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -1;
    openFiles_[fd] = std::make_unique<Tunnel>(fd, flags);
    return fd;
}

int MemoryIOSystem::ioctl(int fd, unsigned long request, void* argument) {
    if (!permissions.count("ioctl")) return fail(EPERM);
    auto found = openFiles_.find(fd);
    if (found == openFiles_.end()) return fail(EBADF);
    if (request != tunSetIff || !argument) return fail(EINVAL);
    auto* req = static_cast<ifreq*>(argument);
    const auto mode = static_cast<std::uint16_t>(req->ifr_flags);
    const auto type = mode & static_cast<std::uint16_t>(TunnelFlags::tun | TunnelFlags::tap);
    if (type != static_cast<std::uint16_t>(TunnelFlags::tun) && type != static_cast<std::uint16_t>(TunnelFlags::tap))
        return fail(EINVAL);
    std::string requested(req->ifr_name, sizeof req->ifr_name);
    std::string name(req->ifr_name, ::strnlen(req->ifr_name, sizeof req->ifr_name));
    if (name.empty()) name = type == static_cast<std::uint16_t>(TunnelFlags::tap) ? "tap%d" : "tun%d";
    auto inUse = [&](const std::string& candidate) -> const Tunnel* {
        for (auto& [other, tunnel] : openFiles_)
            if (other != fd && tunnel->name == candidate) return tunnel.get();
        return nullptr;
    };
    if (auto at = name.find("%d"); at != std::string::npos) {
        for (int i = 0;; ++i) {
            std::string candidate = name.substr(0, at) + std::to_string(i) + name.substr(at + 2);
            if (!inUse(candidate)) {
                name = candidate;
                break;
            }
        }
    } else if (const Tunnel* other = inUse(name)) {
        const auto otherType = other->tunnelMode & static_cast<std::uint16_t>(TunnelFlags::tun | TunnelFlags::tap);
        return fail(otherType == type ? EBUSY : EINVAL);  // attached already, or the other type
    }
    if (name.size() >= interfaceNameSize) return fail(EINVAL);
    Tunnel& tunnel = *found->second;
    tunnel.tunnelMode = mode;
    tunnel.requestedName = requested;
    tunnel.name = name;
    std::memset(req->ifr_name, 0, sizeof req->ifr_name);
    std::memcpy(req->ifr_name, name.data(), name.size());
    return 0;
}

ssize_t MemoryIOSystem::read(int fd, void* buffer, std::size_t size) {
    auto found = openFiles_.find(fd);
    if (found == openFiles_.end()) return fail(EBADF);
    return found->second->read(buffer, size);
}

ssize_t MemoryIOSystem::write(int fd, const void* data, std::size_t size) {
    auto found = openFiles_.find(fd);
    if (found == openFiles_.end()) return fail(EBADF);
    return found->second->write(data, size);
}

int MemoryIOSystem::close(int fd) {
    auto found = openFiles_.find(fd);
    if (found == openFiles_.end()) return fail(EBADF);
    openFiles_.erase(found);
    return sys::ops.close(fd);
}

}  // namespace weft::pair::testing
