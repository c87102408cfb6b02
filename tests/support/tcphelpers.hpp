// Test support for TCP: protocols and factories that record what happened and
// run optional hooks inside each callback, so a test can act from inside any
// callback (loseConnection, abortConnection, stopListening, dropping references).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/internet/error.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/tcp.hpp>

namespace weft::test {

/// Records every callback; each hook may do anything to the transport.
class RecordingProtocol : public Protocol {
public:
    void connectionMade() override;
    void dataReceived(Bytes data) override;
    void connectionLost(const Failure& reason) override;

    /// The transport as a TCP connection (null if it is something else).
    tcp::Connection* tcp() const { return dynamic_cast<tcp::Connection*>(transport.get()); }
    /// The transport as a stream (TCP, UNIX, …; null if it is something else).
    StreamTransport* stream() const { return dynamic_cast<StreamTransport*>(transport.get()); }
    void send(std::string_view s) { transport->write(s); }

    std::string received;
    int made = 0, lost = 0;
    std::optional<Failure> lostReason;
    std::function<void(RecordingProtocol&)> onMade;
    std::function<void(RecordingProtocol&, std::string_view)> onData;
    std::function<void(RecordingProtocol&, const Failure&)> onLost;
};

/// A RecordingProtocol that is also an IHalfCloseableProtocol.
class HalfCloseProtocol : public RecordingProtocol, public IHalfCloseableProtocol {
public:
    void readConnectionLost() override;
    void writeConnectionLost() override;
    int readLost = 0, writeLost = 0;
    std::function<void(HalfCloseProtocol&)> onReadLost, onWriteLost;
};

/// A server factory that builds protocols with `make` (default RecordingProtocol)
/// and keeps every one it built.
class RecordingFactory : public ServerFactory {
public:
    RecordingFactory();
    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;
    void startFactory() override { ++started; }
    void stopFactory() override { ++stopped; }

    std::function<std::shared_ptr<RecordingProtocol>(const Address&)> make;
    std::vector<std::shared_ptr<RecordingProtocol>> built;
    std::vector<Address> addresses;
    int started = 0, stopped = 0;
    /// Called after each protocol is built (e.g. to install hooks).
    std::function<void(RecordingProtocol&)> onBuilt;
};

/// A connector as a ClientFactory callback saw it: compared by identity, held
/// weakly (a connector holds its factory, so a strong reference would be a cycle).
struct ConnectorRef {
    ConnectorRef(const std::shared_ptr<IConnector>& c) : weak(c), raw(c.get()) {}  // NOLINT: implicit on purpose
    IConnector* get() const noexcept { return raw; }
    std::shared_ptr<IConnector> lock() const { return weak.lock(); }
    std::weak_ptr<IConnector> weak;
    IConnector* raw;
};

/// A client factory that records the ClientFactory callbacks.
class RecordingClientFactory : public ClientFactory {
public:
    RecordingClientFactory();
    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;
    void startedConnecting(const std::shared_ptr<IConnector>& c) override;
    void clientConnectionFailed(const std::shared_ptr<IConnector>& c, const Failure& reason) override;
    void clientConnectionLost(const std::shared_ptr<IConnector>& c, const Failure& reason) override;
    void startFactory() override { ++started; }
    void stopFactory() override { ++stopped; }

    std::function<std::shared_ptr<RecordingProtocol>(const Address&)> make;
    std::vector<std::shared_ptr<RecordingProtocol>> built;
    std::vector<Address> addresses;
    std::vector<std::string> events;  ///< "started", "failed", "lost", "made:<n>" in order
    std::optional<Failure> failReason, lostReason;
    std::vector<ConnectorRef> connectors;  ///< as passed to each hook
    int started = 0, stopped = 0, startedConnectingCalls = 0, failed = 0, lostCalls = 0;
    std::function<void(RecordingProtocol&)> onBuilt;
    std::function<void(const std::shared_ptr<IConnector>&)> onStartedConnecting;
    std::function<void(const std::shared_ptr<IConnector>&, const Failure&)> onFailed, onLost;
};

/// n bytes from a seeded generator (the same seed, the same bytes).
std::string randomBytes(std::size_t n, std::uint32_t seed);

/// The port of an IPv4 or IPv6 address (0 for any other).
std::uint16_t portOf(const Address& a);

/// The port number a port is listening on.
std::uint16_t portNumber(const tcp::Port& port);

/// A localhost port that refuses connections (bound, never listening): the
/// number stays reserved while the returned fd is open.
struct RefusingPort {
    RefusingPort();
    ~RefusingPort();
    RefusingPort(const RefusingPort&) = delete;
    RefusingPort& operator=(const RefusingPort&) = delete;
    int fd = -1;
    std::uint16_t port = 0;
};

/// Whether this machine has an IPv6 loopback (::1) to test on.
bool haveIPv6Loopback();

}  // namespace weft::test
