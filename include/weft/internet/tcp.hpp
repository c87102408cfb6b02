// weft/internet/tcp.hpp — TCP transports (twisted.internet.tcp). Spec: tcp.md.
//
//   Port       a listening socket; accepts in bounded batches and wraps each
//              accepted socket in a Server (Reactor::listenTCP, adoptStreamPort).
//   Connection the FileDescriptor carrying one TCP connection: socket reads and
//              scatter writes, half-close, abortConnection, socket options.
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

namespace weft::tcp {

/// An IPv4 or IPv6 socket address, as the kernel gives it (28 bytes, not a
/// 128-byte sockaddr_storage: every connection keeps one).
struct WEFT_EXPORT SockAddr {
    union Storage {
        sockaddr_in6 v6;  // first: value-initialisation zeroes all 28 bytes (scope id included)
        sockaddr_in v4;
        sockaddr sa;
    } u{};
    socklen_t length = 0;
    /// The room there is, for accept/getsockname/getpeername.
    static constexpr socklen_t capacity = sizeof(sockaddr_in6);

    int family() const noexcept { return u.sa.sa_family; }
    const sockaddr* get() const noexcept { return &u.sa; }
    sockaddr* get() noexcept { return &u.sa; }
    /// IPv4Address/IPv6Address("TCP", host, port); IPv6 hosts keep "%scope".
    /// NoAddress for an empty or other-family address.
    Address toAddress(const char* type = "TCP") const;
    /// Makes `a` equal to toAddress(type), reusing its strings when it already
    /// holds an IPv4 address of that type (a datagram port's sender cache).
    void assignTo(Address& a, const char* type) const;
    /// Parses an IPv4 or IPv6 literal ("::1", "fe80::1%lo"); nullopt if it is none.
    static std::optional<SockAddr> fromLiteral(const std::string& host, std::uint16_t port);
};

class Port;
class Connector;

/// One TCP connection (Twisted tcp.Connection), the transport a protocol sees.
///
/// doRead() receives at most bufferSize bytes per readable event into a buffer
/// shared by the thread's connections (an idle connection holds no read
/// buffer); writes leave through one sendmsg() with MSG_NOSIGNAL per doWrite
/// (TCP-19, TCP-21). Peer EOF: a protocol that is an IHalfCloseableProtocol
/// hears readConnectionLost() and may go on writing; any other protocol gets
/// the loseConnection() treatment — reading stops, what is buffered is sent,
/// then connectionLost(ConnectionDone) (TCP-27, Better than Twisted).
class WEFT_EXPORT Connection : public FileDescriptor {
public:
    ~Connection() override;

    int fileno() const override { return fd_; }
    Reason doRead() override;
    Reason doWrite() override;
    /// Ends the connection once (TCP-22): the descriptor's bookkeeping, then
    /// the socket is closed (with a reset if `reason` is ConnectionAborted),
    /// then the protocol is released and its connectionLost(reason) called.
    void connectionLost(const Failure& reason) override;
    void readConnectionLost(const Failure& reason) override;
    /// Starts reading again, unless the peer's stream has already ended.
    void resumeProducing() override;

    /// Drops buffered output, stops all I/O now and reports
    /// connectionLost(ConnectionAborted) from the reactor on a later iteration;
    /// the peer sees a reset. A no-op once disconnected or aborting (TCP-32, TCP-33).
    void abortConnection();
    bool aborting() const noexcept { return aborting_; }

    /// The local address (getsockname; cached after the first call and at the
    /// close, so it answers after the close too).
    Address getHost() const override;
    /// The peer's address (as accepted or connected to).
    Address getPeer() const override;

    bool getTcpNoDelay() const;
    void setTcpNoDelay(bool enabled);
    bool getTcpKeepAlive() const;
    void setTcpKeepAlive(bool enabled);
    /// The socket (TCP-24); -1 once closed.
    int getHandle() const noexcept { return fd_; }

    /// The protocol; null after connectionLost().
    const std::shared_ptr<Protocol>& protocol() const noexcept { return protocol_; }

protected:
    Connection(Reactor& reactor, int fd);
    /// Attaches the protocol and starts: connected, reading, makeConnection().
    void startProtocol(std::shared_ptr<Protocol> protocol);
    WriteResult writeSomeData(std::span<const iovec> data) override;
    Reason closeWriteConnection() override;
    /// Closes the socket: orderly, or with a reset when `abort`.
    void closeSocket(bool abort) noexcept;

    int fd_;
    bool aborting_ = false;
    bool shouldShutdown_ = true;
    bool readLost_ = false;  // the peer ended its stream
    std::shared_ptr<Protocol> protocol_;
    SockAddr peer_;
    mutable std::unique_ptr<SockAddr> host_;  // asked for, or kept at the close
};

/// An accepted connection (Twisted tcp.Server).
class WEFT_EXPORT Server final : public Connection {
public:
    /// Wraps an accepted (or adopted) socket; use Port or adoptStreamConnection.
    Server(Reactor& reactor, int fd, const SockAddr& peer, int sessionno, std::uint16_t portNumber);
    /// "<protocol logPrefix>,<session number>,<peer host>" (TCP-18).
    std::string logPrefix() const override;
    /// "<ProtocolClassName #<session number> on <listening port number>>" (TCP-18).
    std::string repr() const;
    int sessionno() const noexcept { return sessionno_; }

private:
    friend class Port;
    friend class ::weft::Reactor;
    void start(std::shared_ptr<Protocol> protocol) { startProtocol(std::move(protocol)); }
    int sessionno_;
    std::uint16_t portNumber_;
    mutable std::unique_ptr<std::string> prefix_;  // made on first use: idle connections stay small
};

/// An outgoing connection (Twisted tcp.Client), created by a Connector.
class WEFT_EXPORT Client final : public Connection {
public:
    Client(Reactor& reactor, std::shared_ptr<Connector> connector);
    /// "Uninitialized" until connected, then "<protocol logPrefix>,client" (TCP-41).
    std::string logPrefix() const override;
    /// "<Client to <address> at <id in hex>>" (TCP-44).
    std::string repr() const;
    Reason doRead() override;
    Reason doWrite() override;
    void connectionLost(const Failure& reason) override;
    /// Gives up an attempt that has not connected yet: closes the socket and
    /// reports clientConnectionFailed(reason) through the connector.
    void failIfNotConnected(const Failure& reason);
    bool connecting() const noexcept { return phase_ != Phase::done; }

private:
    friend class Connector;
    enum class Phase : std::uint8_t { resolving, connecting, done };
    void begin();
    void resolved(std::vector<SockAddr> addresses);
    void tryNext();
    Reason finishConnect();
    void connectDone();

    std::shared_ptr<Connector> connector_;
    Phase phase_ = Phase::resolving;
    std::vector<SockAddr> candidates_;
    std::size_t next_ = 0;
    int lastError_ = 0;
    mutable std::string prefix_;
};

/// A listening TCP port (Twisted tcp.Port).
class WEFT_EXPORT Port final : public IListeningPort,
                               public IReadDescriptor,
                               public std::enable_shared_from_this<Port> {
public:
    Port(Reactor& reactor, std::uint16_t port, std::shared_ptr<Factory> factory, int backlog,
         std::string interface);
    ~Port() override;

    /// Binds, listens, starts accepting, factory->doStart() (TCP-1..TCP-5, TCP-9).
    /// Throws error::CannotListenError. A no-op while listening.
    void startListening() override;
    /// Stops accepting now; the Deferred fires once the socket is closed and
    /// factory->doStop() ran, on a later iteration (TCP-7, TCP-8). On a port
    /// that is not listening it returns an already-fired Deferred (Twisted: None).
    Deferred<void> stopListening() override;
    /// IPv4Address/IPv6Address("TCP", …, real port number) (TCP-4).
    Address getHost() const override;

    int fileno() const override { return fd_; }
    /// The factory's class name (TCP-6).
    std::string logPrefix() const override;
    Reason doRead() override;
    /// Closes the socket (without shutdown for an adopted one), forgets the
    /// port number and calls factory->doStop(); what doStop throws propagates
    /// (TCP-8). Called by the reactor at shutdown, or by stopListening.
    void connectionLost(const Failure& reason) override;

    /// "<FactoryClassName of weft.tcp on PORT>" while listening, "<…(not listening)>" after (TCP-10).
    std::string repr() const;
    bool listening() const noexcept { return fd_ >= 0; }
    const std::shared_ptr<Factory>& factory() const noexcept { return factory_; }
    /// Connections one readable event may accept now (TCP-11).
    int numberAccepts = 100;

private:
    friend class ::weft::Reactor;
    void adopt(int fd, int family);
    void reserveFd() noexcept;

    Reactor& reactor_;
    std::uint16_t requestedPort_;
    std::shared_ptr<Factory> factory_;
    int backlog_;
    std::string interface_;
    int fd_ = -1;
    int family_ = AF_INET;
    std::uint16_t realPort_ = 0;
    bool adopted_ = false;
    bool disconnecting_ = false;
    int sessionno_ = 0;
    int reservedFd_ = -1;  // spare descriptor for EMFILE recovery (TCP-14)
};

/// Drives outgoing connection attempts (Twisted tcp.Connector, base.BaseConnector).
class WEFT_EXPORT Connector final : public IConnector, public std::enable_shared_from_this<Connector> {
public:
    enum class State : std::uint8_t { disconnected, connecting, connected };

    Connector(Reactor& reactor, std::string host, std::uint16_t port, std::shared_ptr<ClientFactory> factory,
              double timeout, std::optional<BindAddress> bindAddress);
    ~Connector() override;

    /// Starts an attempt; allowed only when disconnected (std::logic_error
    /// otherwise). doStart()s the factory once and calls startedConnecting() (TCP-36, TCP-48).
    void connect() override;
    /// Fails the attempt in progress with UserError before returning; throws
    /// error::NotConnectingError when not connecting (TCP-46).
    void stopConnecting() override;
    /// Stops an attempt, or loseConnection()s the transport (TCP-47).
    void disconnect() override;
    /// IPv4Address/IPv6Address("TCP", host as given, port) (TCP-36).
    Address getDestination() const override;

    State state() const noexcept { return state_; }
    /// The current (or last) transport; null before the first attempt.
    const std::shared_ptr<Client>& transport() const noexcept { return transport_; }
    const std::shared_ptr<ClientFactory>& factory() const noexcept { return factory_; }
    const std::string& host() const noexcept { return host_; }
    std::uint16_t port() const noexcept { return port_; }
    const std::optional<BindAddress>& bindAddress() const noexcept { return bindAddress_; }
    Reactor& reactor() const noexcept { return reactor_; }

private:
    friend class Client;
    std::shared_ptr<Protocol> buildProtocol(const Address& peer);
    void connectionFailed(const Failure& reason);
    void connectionLost(const Failure& reason);
    void cancelTimeout();

    Reactor& reactor_;
    std::string host_;
    std::uint16_t port_;
    std::shared_ptr<ClientFactory> factory_;
    double timeout_;
    std::optional<BindAddress> bindAddress_;
    State state_ = State::disconnected;
    bool factoryStarted_ = false;
    std::shared_ptr<Client> transport_;
    std::optional<DelayedCall> timeoutCall_;
};

}  // namespace weft::tcp
