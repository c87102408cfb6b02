// weft/internet/tcp.hpp — TCP transports (twisted.internet.tcp). Spec: tcp.md.
//
//   Port       a listening socket; accepts in bounded batches and wraps each
//              accepted socket in a Server (Reactor::listenTCP, adoptStreamPort).
//   Connection the SocketTransport carrying one TCP connection (stream.hpp:
//              reads, writes, half-close, abortConnection) plus IP addresses
//              and TCP's socket options.
//   Server     an accepted Connection (Reactor::adoptStreamConnection too).
//   Client     an outgoing Connection: resolution, non-blocking connect.
//   Connector  drives a Client through the ClientFactory callbacks
//              (Reactor::connectTCP); connect() again to reconnect.
//
// Ownership (docs/ownership.md): the reactor holds a connection while it is
// registered; the protocol holds its transport (`transport`) and the transport
// holds its protocol until the protocol's connectionLost() has returned, so a
// connection lives until it is closed even when nothing else refers to it. A
// port is held by the reactor while listening and by whoever keeps the
// shared_ptr; accepted connections do not keep their port alive. Every close
// (loseConnection, abortConnection, stopListening) only requests: the
// callbacks that report it run later, from the reactor, never on the stack of
// the call that asked.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/abstract.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/sockaddr.hpp>
#include <weft/internet/stream.hpp>
#include <weft/internet/error.hpp>

namespace weft::tcp {

/// IP socket addresses are weft::SockAddr (sockaddr.hpp), shared with UDP.
using SockAddr = weft::SockAddr;

class Port;
class Connector;

/// One TCP connection (Twisted tcp.Connection), the transport a protocol sees:
/// a SocketTransport (reads, writes, half-close, abort, the close; see
/// stream.hpp) with what only TCP has: IP addresses, TCP_NODELAY, keep-alive.
class WEFT_EXPORT Connection : public SocketTransport, public ITCPTransport {
public:
    /// The local address (getsockname; cached after the first call and at the
    /// close, so it answers after the close too).
    Address getHost() const override;
    /// The peer's address (as accepted or connected to).
    Address getPeer() const override;

    bool getTcpNoDelay() const override;
    void setTcpNoDelay(bool enabled) override;
    bool getTcpKeepAlive() const override;
    void setTcpKeepAlive(bool enabled) override;
    /// See FileDescriptor::loseWriteConnection (FD-31, TCP-28).
    void loseWriteConnection() override { SocketTransport::loseWriteConnection(); }
    /// See StreamTransport::abortConnection (TCP-32, TCP-33).
    void abortConnection() override { SocketTransport::abortConnection(); }

protected:
    Connection(Reactor& reactor, int fd) noexcept : SocketTransport(reactor, fd) {}
    /// Keeps the local address for getHost() before the socket goes.
    void closeDescriptor(bool abort) noexcept override;
    /// The local address when it is known without asking the kernel (an
    /// accepted connection on a port bound to one IPv4 address); length 0 otherwise.
    virtual SockAddr knownLocal() const noexcept { return {}; }

    /// The peer's address, from accept() or the connect target, in one word
    /// (an IPv6 peer is a heap copy). The local address is not kept here:
    /// SocketTransport::remembered().local holds it once asked for, or from
    /// the close.
    detail::PackedSockAddr peer_;
};

/// An accepted connection (Twisted tcp.Server).
class WEFT_EXPORT Server final : public AcceptedTransport<Connection> {
public:
    /// Wraps an accepted (or adopted) socket; use Port or adoptStreamConnection.
    /// `local`, when the port knows it (bound to one address), is the
    /// connection's local address: no getsockname at the close.
    Server(Reactor& reactor, int fd, const SockAddr& peer, int sessionno, std::uint16_t portNumber,
           const SockAddr* local = nullptr);

private:
    friend class Port;
    friend class ::weft::Reactor;
    std::string peerName() const override;
    std::string where() const override { return std::to_string(portNumber_); }
    SockAddr knownLocal() const noexcept override;
    std::uint16_t portNumber_;
    bool localKnown_ = false;
    std::uint32_t localIPv4_ = 0;  // network order; with portNumber_, the local address when localKnown_
};

/// An outgoing connection (Twisted tcp.Client), created by a Connector: the
/// host is resolved (on the thread pool unless it is a literal) and each
/// address tried in order until one connects.
class WEFT_EXPORT Client final : public ConnectingTransport<Connection> {
public:
    Client(Reactor& reactor, std::shared_ptr<Connector> connector);

private:
    void attempt() override;
    Address connectedPeer() const override { return peer_.get().toAddress(); }
    void attemptFailed(int error) override;
    void resolved(std::vector<SockAddr> addresses);
    void tryNext();
    const Connector& connector() const noexcept;

    std::vector<SockAddr> candidates_;
    std::size_t next_ = 0;
    int lastError_ = 0;
    bool resolving_ = false;
};

/// A listening TCP port (Twisted tcp.Port).
class WEFT_EXPORT Port final : public StreamPort {
public:
    Port(Reactor& reactor, std::uint16_t port, std::shared_ptr<Factory> factory, int backlog, std::string interface);

    /// Binds, listens, starts accepting, factory->doStart() (TCP-1..TCP-5, TCP-9).
    /// Throws error::CannotListenError. A no-op while listening.
    void startListening() override;
    /// IPv4Address/IPv6Address("TCP", …, real port number) (TCP-4).
    Address getHost() const override;
    /// "<FactoryClassName of weft.tcp on PORT>" while listening, "<…(not listening)>" after (TCP-10).
    std::string repr() const;

private:
    friend class ::weft::Reactor;
    void adopt(int fd, int family);
    void accepted(int fd, const sockaddr* peer, socklen_t length) override;
    void closed() override;
    socklen_t peerCapacity() const noexcept override { return SockAddr::capacity; }

    std::uint16_t requestedPort_;
    std::string interface_;
    int family_ = AF_INET;
    std::uint16_t realPort_ = 0;
    std::optional<SockAddr> local_;  // the bound address when it names one interface (not a wildcard)
    Address peerAddress_;            // the peer handed to buildProtocol, rewritten in place per connection
};

/// Drives outgoing connection attempts (Twisted tcp.Connector).
class WEFT_EXPORT Connector final : public BaseConnector {
public:
    Connector(Reactor& reactor, std::string host, std::uint16_t port, std::shared_ptr<ClientFactory> factory,
              double timeout, std::optional<BindAddress> bindAddress);

    /// IPv4Address/IPv6Address("TCP", host as given, port) (TCP-36).
    Address getDestination() const override;
    /// The current (or last) transport; null before the first attempt.
    std::shared_ptr<Client> transport() const noexcept { return std::static_pointer_cast<Client>(currentTransport()); }
    const std::string& host() const noexcept { return host_; }
    std::uint16_t port() const noexcept { return port_; }
    const std::optional<BindAddress>& bindAddress() const noexcept { return bindAddress_; }

private:
    std::shared_ptr<IConnectingTransport> makeTransport() override;

    std::string host_;
    std::uint16_t port_;
    std::optional<BindAddress> bindAddress_;
};

}  // namespace weft::tcp
