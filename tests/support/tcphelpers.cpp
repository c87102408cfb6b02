#include "support/tcphelpers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

namespace weft::test {

void RecordingProtocol::connectionMade() {
    ++made;
    if (onMade) onMade(*this);
}

void RecordingProtocol::dataReceived(Bytes data) {
    std::string_view s(reinterpret_cast<const char*>(data.data()), data.size());
    received.append(s);
    if (onData) onData(*this, s);
}

void RecordingProtocol::connectionLost(const Failure& reason) {
    ++lost;
    lostReason = reason;
    if (onLost) onLost(*this, reason);
    // The recording factories keep every protocol they built, and a protocol
    // holds its factory: let go of it once the connection is over, so the pair
    // is freed when the test drops the factory (LeakSanitizer checks).
    factory.reset();
}

void HalfCloseProtocol::readConnectionLost() {
    ++readLost;
    if (onReadLost) onReadLost(*this);
}

void HalfCloseProtocol::writeConnectionLost() {
    ++writeLost;
    if (onWriteLost) onWriteLost(*this);
}

RecordingFactory::RecordingFactory() {
    noisy = false;
    make = [](const Address&) { return std::make_shared<RecordingProtocol>(); };
}

std::shared_ptr<Protocol> RecordingFactory::buildProtocol(const Address& addr) {
    addresses.push_back(addr);
    auto p = make(addr);
    if (!p) return nullptr;
    p->factory = shared_from_this();
    built.push_back(p);
    if (onBuilt) onBuilt(*p);
    return p;
}

RecordingClientFactory::RecordingClientFactory() {
    noisy = false;
    make = [](const Address&) { return std::make_shared<RecordingProtocol>(); };
}

std::shared_ptr<Protocol> RecordingClientFactory::buildProtocol(const Address& addr) {
    addresses.push_back(addr);
    auto p = make(addr);
    if (!p) return nullptr;
    p->factory = shared_from_this();
    built.push_back(p);
    events.push_back("built");
    if (onBuilt) onBuilt(*p);
    return p;
}

void RecordingClientFactory::startedConnecting(const std::shared_ptr<IConnector>& c) {
    ++startedConnectingCalls;
    connectors.push_back(c);
    events.push_back("started");
    if (onStartedConnecting) onStartedConnecting(c);
}

void RecordingClientFactory::clientConnectionFailed(const std::shared_ptr<IConnector>& c, const Failure& reason) {
    ++failed;
    failReason = reason;
    connectors.push_back(c);
    events.push_back("failed");
    if (onFailed) onFailed(c, reason);
}

void RecordingClientFactory::clientConnectionLost(const std::shared_ptr<IConnector>& c, const Failure& reason) {
    ++lostCalls;
    lostReason = reason;
    connectors.push_back(c);
    events.push_back("lost");
    if (onLost) onLost(c, reason);
}

std::string randomBytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
}

std::uint16_t portOf(const Address& a) {
    if (auto* v4 = std::get_if<IPv4Address>(&a)) return v4->port;
    if (auto* v6 = std::get_if<IPv6Address>(&a)) return v6->port;
    return 0;
}

std::uint16_t portNumber(const tcp::Port& port) { return portOf(port.getHost()); }

RefusingPort::RefusingPort() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
}

RefusingPort::~RefusingPort() {
    if (fd >= 0) ::close(fd);
}

bool haveIPv6Loopback() {
    int s = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(s);
    return ok;
}

}  // namespace weft::test
