// weft/protocols/portforward.hpp — a TCP proxy (twisted.protocols.portforward).
// Spec: protocols.md PF-1..PF-4.
//
// Each accepted connection (a ProxyServer) pauses its reading, connects to the
// backend, and once connected links the two sides: bytes from either side are
// written unchanged to the other, and each transport is registered as a
// streaming producer of the other, so a slow reader pauses the fast writer and
// memory stays bounded. Better than Twisted: both sides are half-closeable —
// the end of one side's stream is passed on as a half-close of the other
// (loseWriteConnection), so a client that shuts down its write side still
// receives everything the backend answers; a side's full loss closes the other
// with loseConnection() after its buffer drains.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <weft/export.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>

namespace weft::portforward {

class ProxyClientFactory;

/// One side of a proxied connection.
class WEFT_EXPORT Proxy : public Protocol, public IHalfCloseableProtocol {
public:
    /// The other side; null until linked and after it is lost.
    std::shared_ptr<Proxy> peer;
    /// Links this side to `other` (and not the other way round).
    void setPeer(std::shared_ptr<Proxy> other) { peer = std::move(other); }

    void dataReceived(Bytes data) override;
    void connectionLost(const Failure& reason) override;
    /// The end of this side's stream: half-close the other side.
    void readConnectionLost() override;
    /// This side's write half is shut; nothing to do.
    void writeConnectionLost() override {}
};

/// The backend side (Twisted ProxyClient).
class WEFT_EXPORT ProxyClient final : public Proxy {
public:
    /// Links both sides, registers each transport as the other's streaming
    /// producer and resumes reading from the client (PF-2).
    void connectionMade() override;
};

/// The accepted side (Twisted ProxyServer).
class WEFT_EXPORT ProxyServer final : public Proxy {
public:
    /// Pauses reading from the client and starts the backend connection (PF-1).
    void connectionMade() override;
};

/// Builds the ProxyClient for one ProxyServer (Twisted ProxyClientFactory).
class WEFT_EXPORT ProxyClientFactory final : public ClientFactory {
public:
    explicit ProxyClientFactory(std::shared_ptr<ProxyServer> server);
    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;
    /// Closes the client side and, when noisy, logs "Unable to connect to peer: <reason>" (PF-4).
    void clientConnectionFailed(const std::shared_ptr<IConnector>& connector, const Failure& reason) override;

private:
    std::weak_ptr<ProxyServer> server_;
};

/// The listening side's factory (Twisted ProxyFactory).
class WEFT_EXPORT ProxyFactory : public ServerFactory {
public:
    /// How a ProxyServer reaches the backend: start a connection whose protocol
    /// the given factory builds; report failure through its clientConnectionFailed.
    using Connect = std::function<void(const std::shared_ptr<ProxyClientFactory>&)>;

    /// Proxies to host:port over TCP with `reactor` (a weft::Reactor, or a
    /// testing::MemoryReactor that records the connectTCP), which must outlive
    /// the factory.
    ProxyFactory(IReactorTCP& reactor, std::string host, std::uint16_t port);
    /// Proxies through `connect` (e.g. a client endpoint).
    explicit ProxyFactory(Connect connect);

    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;
    /// Starts the backend connection for one server side.
    void connectBackend(const std::shared_ptr<ProxyClientFactory>& factory) const { connect_(factory); }

private:
    Connect connect_;
};

}  // namespace weft::portforward
