// weft/internet/protocol.hpp — protocols and factories (twisted.internet.protocol).
// Spec: protocols.md PROTO-1 … PROTO-6, DGRAM-1, DGRAM-2.
//
// Ownership and lifetime (STYLE.md §3):
//  * A transport owns its protocol (std::shared_ptr) until the protocol's
//    connectionLost() has *returned*; then it lets go.
//  * A protocol holds its transport strongly (`transport`), so the transport
//    stays valid — and inert — after the connection is lost. The transport
//    letting go of the protocol first is what breaks the cycle.
//  * A protocol holds its factory strongly (`factory`), so a listening port may
//    be stopped and the factory dropped from inside a protocol callback.
//  * Factories and protocols are created with std::make_shared: buildProtocol()
//    hands the protocol a shared_ptr to the factory, and transports may need
//    shared_from_this() of the protocol.
//
// In-memory test doubles (weft/internet/testing.hpp, iosim.hpp) document where
// they differ from this model.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/error.hpp>

namespace weft {

class Factory;

class AbstractDatagramProtocol;

/// The unqualified class name of a type, as Python's `__class__.__name__`
/// ("weft::testing::AccumulatingProtocol" → "AccumulatingProtocol"; template
/// arguments are kept).
WEFT_EXPORT std::string className(const std::type_info& type);

/// The unqualified class name of the dynamic type of `object`.
template <class T>
requires std::is_polymorphic_v<T> std::string className(const T& object) { return className(typeid(object)); }

/// A pending or established outgoing connection (Twisted IConnector). The
/// reactor's connect* methods return one and hand it to the factory's
/// startedConnecting(), clientConnectionFailed() and clientConnectionLost().
/// tcp::Connector and unix_::Connector implement it (weft/internet/tcp.hpp,
/// unix.hpp), testing::FakeConnector stands in for them.
class WEFT_EXPORT IConnector {
public:
    virtual ~IConnector() = default;
    /// Stops an attempt in progress (Twisted raises NotConnectingError otherwise).
    virtual void stopConnecting() = 0;
    /// Disconnects if connected, or stops the attempt if connecting.
    virtual void disconnect() = 0;
    /// Tries to connect again (used by reconnecting factories).
    virtual void connect() = 0;
    /// The address this connector connects to.
    virtual Address getDestination() const = 0;
    /// The clock of the reactor this connector runs on, or null when it knows
    /// none (the default). A reactor's connectors answer their reactor; code
    /// that schedules around a connector (ReconnectingClientFactory, RCF-1)
    /// asks here instead of knowing the connector's class. Not owned.
    virtual IReactorTime* clock() const noexcept { return nullptr; }
};

/// A listening port (Twisted IListeningPort); tcp::Port implements it.
class WEFT_EXPORT IListeningPort {
public:
    virtual ~IListeningPort() = default;
    /// Starts listening (listen* calls it already; Twisted's name).
    virtual void startListening() = 0;
    /// Stops accepting connections; the Deferred fires once the port is closed.
    virtual Deferred<void> stopListening() = 0;
    /// The address the port is bound to.
    virtual Address getHost() const = 0;
};

/// The base of every stream protocol (Twisted BaseProtocol).
///
/// A transport calls makeConnection() once, when the connection is established.
/// Derives from enable_shared_from_this so a protocol can register itself as
/// a producer or hand itself to other code; create protocols with make_shared.
/// The logging context is its first base, so that it shares the protocol's own
/// vtable pointer (one pointer less in every connection's protocol).
class WEFT_EXPORT BaseProtocol : public virtual ILoggingContext, public std::enable_shared_from_this<BaseProtocol> {
public:
    BaseProtocol() = default;
    virtual ~BaseProtocol() = default;
    BaseProtocol(const BaseProtocol&) = delete;
    BaseProtocol& operator=(const BaseProtocol&) = delete;

    /// True once makeConnection() has run (Twisted leaves it set after the loss).
    bool connected = false;
    /// The transport given to makeConnection(); held strongly (see file comment).
    std::shared_ptr<ITransport> transport;

    /// Sets `connected`, stores `transport`, then calls connectionMade(): the
    /// transport is usable inside connectionMade() (PROTO-1).
    virtual void makeConnection(std::shared_ptr<ITransport> t);

    /// Called when the connection is established; does nothing by default.
    virtual void connectionMade() {}

    /// The class name without namespaces, e.g. "EchoProtocol".
    std::string logPrefix() const override;
};

/// A stream protocol (Twisted Protocol): override dataReceived() and
/// connectionLost() (PROTO-2).
class WEFT_EXPORT Protocol : public BaseProtocol {
public:
    /// The factory that built this protocol (set by Factory::buildProtocol);
    /// held strongly (see file comment). Null for a protocol built by hand.
    std::shared_ptr<Factory> factory;

    /// Bytes arrived from the peer, in order, in chunks of any size. Does
    /// nothing by default.
    virtual void dataReceived(Bytes data);

    /// The connection ended; `reason` holds a weft::error reason (ConnectionDone
    /// for a clean close). Called once, by the transport. Does nothing by default.
    virtual void connectionLost(const Failure& reason);

    /// The class name (PROTO-2), e.g. "EchoProtocol".
    std::string logPrefix() const override;
};

/// Builds protocols for connections (Twisted Factory; PROTO-3 … PROTO-5).
///
/// Ports and connectors call doStart() when they start using the factory and
/// doStop() when they stop; startFactory()/stopFactory() run on the first start
/// and the last stop. Create factories with std::make_shared (or forProtocol).
class WEFT_EXPORT Factory : public virtual ILoggingContext, public std::enable_shared_from_this<Factory> {
public:
    /// Makes a new protocol instance (Twisted's `protocol` class attribute).
    using ProtocolMaker = std::function<std::shared_ptr<Protocol>()>;

    Factory() = default;
    ~Factory() override = default;
    Factory(const Factory&) = delete;
    Factory& operator=(const Factory&) = delete;

    /// What buildProtocol() instantiates; empty until set (forProtocol sets it).
    ProtocolMaker protocol;
    /// Log "Starting factory …"/"Stopping factory …" (PROTO-5).
    bool noisy = true;
    /// How many ports/connectors currently use this factory.
    int numPorts = 0;

    /// A factory F constructed with args whose `protocol` makes a
    /// std::make_shared<P>() (PROTO-4): Factory::forProtocol<Echo>(), or
    /// Factory::forProtocol<Echo, MyFactory>(arg1, arg2).
    template <class P, class F = Factory, class... A>
    requires std::is_base_of_v<Protocol, P> && std::is_base_of_v<Factory, F> && std::is_default_constructible_v<P>
    static std::shared_ptr<F> forProtocol(A&&... args) {
        auto f = std::make_shared<F>(std::forward<A>(args)...);
        f->protocol = [] { return std::static_pointer_cast<Protocol>(std::make_shared<P>()); };
        return f;
    }

    /// Makes a protocol for a connection from/to addr, or returns null to
    /// refuse it (the transport then closes the connection at once). The
    /// default calls `protocol` and sets the result's `factory` to this
    /// factory (PROTO-3). Throws std::logic_error if `protocol` is unset or
    /// this factory is not owned by a std::shared_ptr.
    virtual std::shared_ptr<Protocol> buildProtocol(const Address& addr);

    /// A port or connector starts using the factory: numPorts += 1, and on
    /// 0 → 1 logs "Starting factory <repr>" (when noisy) and calls startFactory().
    virtual void doStart();
    /// A port or connector stops using it: on 1 → 0 logs "Stopping factory
    /// <repr>" (when noisy) and calls stopFactory(); at 0 it does nothing.
    virtual void doStop();

    /// Hook for the first doStart(); does nothing by default.
    virtual void startFactory() {}
    /// Hook for the last doStop(); does nothing by default.
    virtual void stopFactory() {}

    /// The class name (PROTO-5).
    std::string logPrefix() const override;
    /// "<QualifiedClassName object at 0x…>", as in the start/stop log lines.
    std::string repr() const;
};

/// A factory for listening ports (Twisted ServerFactory): a marker (PROTO-6).
class WEFT_EXPORT ServerFactory : public Factory {};

/// A factory for outgoing connections (Twisted ClientFactory; PROTO-6). The
/// connector passed to the hooks is the one the reactor's connect* returned.
class WEFT_EXPORT ClientFactory : public Factory {
public:
    /// A connection attempt has started. Does nothing by default.
    virtual void startedConnecting(const std::shared_ptr<IConnector>& connector);
    /// The attempt failed with `reason` (a weft::error::ConnectError kind).
    /// Does nothing by default.
    virtual void clientConnectionFailed(const std::shared_ptr<IConnector>& connector, const Failure& reason);
    /// An established connection ended with `reason`. Does nothing by default.
    virtual void clientConnectionLost(const std::shared_ptr<IConnector>& connector, const Failure& reason);
};

// ---- datagram protocols (protocols.md DGRAM-1, DGRAM-2; udp.md UDP-30) ----------
//
// Ownership: a datagram port holds its protocol (std::shared_ptr) for its whole
// life, so it can listen again after a stop (UDP-3). The protocol holds the port
// strongly in `transport` while attached; doStop() clears it, which breaks the
// cycle when the port closes. The port keeps itself and the protocol alive
// across every callback it makes, so stopListening() or dropping every other
// reference from inside a callback is safe (UDP-11).

/// What a datagram protocol's transport offers (Twisted IUDPTransport,
/// IUNIXDatagramTransport, IUNIXDatagramConnectedTransport): udp::Port,
/// udp::MulticastPort, unix_::DatagramPort and unix_::ConnectedDatagramPort
/// implement it. Datagrams leave at once: there is no send buffer.
class WEFT_EXPORT IDatagramTransport : public IListeningPort {
public:
    /// Sends `datagram` as one datagram to `addr` (IPv4Address/IPv6Address for
    /// UDP, UNIXAddress for UNIX sockets; NoAddress means the connected peer)
    /// and returns the bytes sent. Returns 0 when the datagram was dropped
    /// because the socket buffer is full (counted in droppedDatagrams()) and
    /// on a transport that is no longer listening. Throws
    /// error::InvalidAddressError for an address the transport cannot send to,
    /// error::MessageLengthError when the datagram is too long, and
    /// std::system_error for other kernel errors. Never calls back, except
    /// connectionRefused() on a connected transport (UDP-18).
    virtual std::size_t write(Bytes datagram, const Address& addr) = 0;
    /// Sends the chunks as one datagram (gathered, not copied) (UDP-15).
    virtual std::size_t writeSequence(std::span<const Bytes> chunks, const Address& addr) = 0;
    /// Deprecated alias of stopListening() (UDP-20).
    virtual void loseConnection() = 0;
    /// Datagrams dropped because sending would have blocked (UDP-14, UNIX-25).
    virtual std::uint64_t droppedDatagrams() const = 0;

    /// write(datagram, NoAddress()): to the connected peer.
    std::size_t write(Bytes datagram) { return write(datagram, Address(NoAddress())); }
    /// Text as bytes.
    std::size_t write(std::string_view datagram, const Address& addr = NoAddress()) {
        return write(asBytes(datagram), addr);
    }
    std::size_t writeSequence(std::span<const Bytes> chunks) { return writeSequence(chunks, Address(NoAddress())); }
};

/// What a UDP transport offers besides IDatagramTransport (Twisted
/// IUDPTransport's connect and broadcast): a mixin on udp::Port and
/// udp::MulticastPort, as ITCPTransport is on a TCP connection, so a protocol
/// reaches it from its transport with a cross-cast:
///
///     void startProtocol() override {
///         if (auto* udp = dynamic_cast<IUDPTransport*>(transport.get())) udp->connect("127.0.0.1", 53);
///     }
class WEFT_EXPORT IUDPTransport {
public:
    virtual ~IUDPTransport() = default;
    /// Connects the socket to host (an IP literal) and port (UDP-17).
    virtual void connect(const std::string& host, std::uint16_t port) = 0;
    /// The connected peer, or NoAddress.
    virtual Address getPeer() const = 0;
    /// SO_BROADCAST (UDP-21).
    virtual void setBroadcastAllowed(bool enabled) = 0;
    virtual bool getBroadcastAllowed() const = 0;
};

/// The base of datagram protocols (Twisted AbstractDatagramProtocol; DGRAM-1).
///
/// A port calls makeConnection() when it starts listening and doStop() when it
/// has closed; startProtocol()/stopProtocol() run on the first start and the
/// last stop when one protocol serves several ports. Create protocols with
/// std::make_shared.
class WEFT_EXPORT AbstractDatagramProtocol : public virtual ILoggingContext,
                                             public std::enable_shared_from_this<AbstractDatagramProtocol> {
public:
    AbstractDatagramProtocol() = default;
    ~AbstractDatagramProtocol() override = default;
    AbstractDatagramProtocol(const AbstractDatagramProtocol&) = delete;
    AbstractDatagramProtocol& operator=(const AbstractDatagramProtocol&) = delete;

    /// The port this protocol is attached to; null before makeConnection()
    /// and after doStop(). Held strongly (see the comment above).
    std::shared_ptr<IDatagramTransport> transport;
    /// How many ports have started this protocol.
    int numPorts = 0;
    /// Log "Starting protocol …"/"Stopping protocol …".
    bool noisy = true;

    /// Stores `t` and calls doStart() (DGRAM-1). Throws std::logic_error if a
    /// transport is already attached (Twisted asserts) or `t` is null.
    virtual void makeConnection(std::shared_ptr<IDatagramTransport> t);
    /// On 0 → 1 ports: logs (when noisy) and calls startProtocol(); then counts the port.
    void doStart();
    /// Uncounts a port (std::logic_error if none was counted), clears
    /// `transport`, and on 1 → 0 logs (when noisy) and calls stopProtocol().
    void doStop();

    /// The protocol was attached to its first port. Does nothing by default.
    virtual void startProtocol() {}
    /// The protocol's last port closed. Does nothing by default.
    virtual void stopProtocol() {}
    /// The connected peer refused a datagram (an ICMP port unreachable seen by
    /// a connected socket). Does nothing by default (UDP-19, UNIX-29).
    virtual void connectionRefused() {}

    /// The class name.
    std::string logPrefix() const override;
    /// "<QualifiedClassName object at 0x…>", as in the start/stop log lines.
    std::string repr() const;
};

/// A protocol for addressed datagrams (Twisted DatagramProtocol; DGRAM-2):
/// UDP ports and listening UNIX datagram ports.
class WEFT_EXPORT DatagramProtocol : public AbstractDatagramProtocol {
public:
    /// One datagram from `addr` (IPv4Address/IPv6Address with flow info and
    /// scope, UDP-8; UNIXAddress for UNIX sockets, empty for an unbound
    /// sender). `datagram` is a view into the port's receive buffer, valid
    /// only during the call. Runs in the port's log context. An exception is
    /// logged and the next datagram is delivered (UDP-9). Does nothing by default.
    virtual void datagramReceived(Bytes datagram, const Address& addr);
};

/// A protocol for a UNIX datagram socket connected to one peer (Twisted
/// ConnectedDatagramProtocol; DGRAM-2, UNIX-28, UNIX-29).
class WEFT_EXPORT ConnectedDatagramProtocol : public AbstractDatagramProtocol {
public:
    /// One datagram from the peer; a view valid only during the call. Does
    /// nothing by default.
    virtual void datagramReceived(Bytes datagram);
    /// connectUNIXDatagram could not bind or connect; the port has stopped.
    /// Does nothing by default.
    virtual void connectionFailed(const Failure& reason);
};

}  // namespace weft
