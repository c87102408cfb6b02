#include "support/udphelpers.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <weft/internet/error.hpp>

namespace weft::test {

void RecordingDatagram::startProtocol() {
    ++started;
    if (onStart) onStart(*this);
}

void RecordingDatagram::stopProtocol() {
    ++stopped;
    if (onStop) onStop(*this);
}

void RecordingDatagram::datagramReceived(Bytes datagram, const Address& addr) {
    received.push_back({std::string(reinterpret_cast<const char*>(datagram.data()), datagram.size()), addr});
    if (onDatagram) {
        Datagram copy = received.back();  // the hook may clear `received`
        onDatagram(*this, copy);
    }
}

void RecordingDatagram::connectionRefused() {
    ++refused;
    if (onRefused) onRefused(*this);
}

void RecordingConnectedDatagram::datagramReceived(Bytes datagram) {
    received.emplace_back(reinterpret_cast<const char*>(datagram.data()), datagram.size());
    if (onDatagram) {
        std::string copy = received.back();
        onDatagram(*this, copy);
    }
}

void RecordingConnectedDatagram::connectionFailed(const Failure& reason) {
    ++failed;
    failReason = reason;
}

PlainSocket::PlainSocket(int family_, int type) : family(family_) {
    fd = ::socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
}

PlainSocket::~PlainSocket() {
    if (fd >= 0) ::close(fd);
}

namespace {
socklen_t fill(sockaddr_storage& ss, int family, const std::string& host, std::uint16_t port) {
    std::memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        ::inet_pton(AF_INET, host.c_str(), &in->sin_addr);
        return sizeof(sockaddr_in);
    }
    if (family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        ::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr);
        return sizeof(sockaddr_in6);
    }
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, host.data(), std::min(host.size(), sizeof un->sun_path));
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + host.size() + (host.empty() || host[0] ? 1 : 0));
}
}  // namespace

void PlainSocket::bind(const std::string& host, std::uint16_t p) {
    sockaddr_storage ss;
    socklen_t len = fill(ss, family, host, p);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0)
        throw std::runtime_error(std::string("bind failed: ") + std::strerror(errno));
}

std::uint16_t PlainSocket::port() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

long PlainSocket::sendTo(const std::string& data, const std::string& host, std::uint16_t p) {
    sockaddr_storage ss;
    socklen_t len = fill(ss, family, host, p);
    return ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss), len);
}

long PlainSocket::sendToPath(const std::string& data, const std::string& path) { return sendTo(data, path, 0); }

std::optional<std::string> PlainSocket::receive(double seconds) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(seconds * 1000)) != 1) return std::nullopt;
    std::string buf(65536, '\0');
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

bool spinUntil(Reactor& r, const std::function<bool()>& pred, double seconds) {
    double end = r.seconds() + seconds;
    while (!pred()) {
        if (r.seconds() > end) return false;
        r.iterate(0.01);
    }
    return true;
}

bool stopAndWait(Reactor& r, IListeningPort& port, double seconds) {
    bool done = false;
    port.stopListening().addBoth([&](Result<void>) { done = true; });
    return spinUntil(
        r, [&] { return done; }, seconds);
}

std::uint16_t unusedUDPPort() {
    PlainSocket s(AF_INET);
    s.bind("127.0.0.1", 0);
    return s.port();
}

TempDir::TempDir() {
    char tmpl[] = "/tmp/weft-dgram-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
}

}  // namespace weft::test
