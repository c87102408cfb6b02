// weft/internet/stream.hpp — the stream layer: what every connection-oriented
// byte stream shares, between FileDescriptor and a concrete transport.
//
//   StreamTransport  a byte stream that owns its descriptor: the hand-off to
//                    the protocol, one read per readable event into the
//                    thread's shared buffer, the read half's state (peer EOF,
//                    half-close), abortConnection and the close. A pipe end, a
//                    PTY master, a serial line and standard I/O are
//                    StreamTransports; nothing here assumes a socket.
//   SocketTransport  a StreamTransport on a stream socket: recv/send with
//                    MSG_NOSIGNAL, shutdown(SHUT_WR) for half-close, a reset
//                    on abort. TCP and UNIX
//                    stream connections derive from it.
//   AcceptedTransport<Connection>
//                    what an accepted socket adds: its session number and
//                    its name in logs (Twisted tcp.Server, unix.Server).
//   ConnectingTransport<Connection>
//                    what an outgoing socket adds while it connects (Twisted's
//                    BaseClient mixin): the phase, the non-blocking connect's
//                    completion, the hand-over to the connector's factory.
//   BaseConnector    Twisted's BaseConnector: drives ClientTransports through
//                    the ClientFactory's callbacks (connect, stopConnecting,
//                    disconnect, timeout, doStart/doStop once per attempt run).
//   StreamPort       a listening stream socket: bounded accept batches with
//                    EMFILE recovery (detail::acceptBatch), stopListening, the
//                    factory's doStart/doStop.
//
// Ownership is TCP's (docs/ownership.md): the reactor holds a transport while
// it is registered, the protocol holds its transport and the transport holds
// its protocol until the protocol's connectionLost() has returned.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/abstract.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/sockaddr.hpp>
#include <weft/internet/ssl.hpp>
#include <weft/internet/error.hpp>

namespace weft {

/// A connection-oriented byte stream over one descriptor it owns.
///
/// Reading: each readable event makes one readSome() of at most bufferSize
/// bytes into a buffer shared by the thread's streams (an idle stream holds no
/// read buffer) and hands the bytes to the protocol's dataReceived(). The end
/// of the peer's stream: a protocol that is an IHalfCloseableProtocol hears
/// readConnectionLost() and may go on writing; any other protocol gets the
/// loseConnection() treatment — reading stops, what is buffered is sent, then
/// connectionLost(ConnectionDone) (TCP-27, Better than Twisted).
///
/// State: FileDescriptor's (fresh, connected, disconnecting, aborting,
/// disconnected) plus the read half (open, ended); FileDescriptor's write half.
class WEFT_EXPORT StreamTransport : public FileDescriptor {
public:
    enum class ReadHalf : std::uint8_t { open, ended };

    ~StreamTransport() override;

    int fileno() const override { return fd_; }
    /// The descriptor (TCP-24); -1 once closed.
    int getHandle() const noexcept { return fd_; }
    Reason doRead() override;
    Reason doWrite() override;
    /// Ends the stream once (TCP-22): the descriptor's bookkeeping, then the
    /// descriptor is closed (with a reset where the kind has one, if `reason`
    /// is ConnectionAborted), then the protocol is released and its
    /// connectionLost(reason) called.
    void connectionLost(const Failure& reason) override;
    /// The peer ended its stream (see the class comment).
    void readConnectionLost(const Failure& reason) override;
    /// Starts reading again, unless the peer's stream has already ended.
    void resumeProducing() override;

    /// Drops buffered output, stops all I/O now and reports
    /// connectionLost(ConnectionAborted) from the reactor on a later iteration.
    /// A no-op once disconnected or aborting (TCP-32, TCP-33).
    void abortConnection();
    bool aborting() const noexcept { return state() == State::aborting; }
    ReadHalf readHalf() const noexcept { return readHalf_; }

    /// The protocol; null before the stream is connected and after connectionLost().
    const std::shared_ptr<Protocol>& protocol() const noexcept { return protocol_; }

protected:
    /// Takes ownership of `fd` (-1: none yet); it is closed when the stream
    /// ends, or by the destructor if it never did.
    StreamTransport(Reactor& reactor, int fd) noexcept;

    /// Attaches the protocol and starts: connected, reading, makeConnection().
    void startProtocol(std::shared_ptr<Protocol> protocol);

    /// One read of at most `room` bytes into `into`: the count (> 0), 0 at the
    /// end of the stream, or -1 with errno set (EINTR is retried by the
    /// caller). A kind that can fail in a way errno does not tell sets
    /// `failure` instead (the stream is then lost with it). The default is
    /// read(2) through the syscall seam.
    virtual ssize_t readSome(std::byte* into, std::size_t room, Reason& failure);
    /// writev(2) through the seam (FDKind::any); sockets send without SIGPIPE.
    WriteResult writeSomeData(std::span<const iovec> data) override;
    /// Shuts the write half (after the flush) and tells an
    /// IHalfCloseableProtocol; both halves closed end the stream (TCP-28..30).
    Reason closeWriteConnection() override;
    /// Shuts the descriptor's write direction (the default does nothing).
    virtual void shutdownWrite() noexcept {}
    /// Closes the descriptor; `abort` asks for a reset where the kind has one.
    /// The default closes it through the seam. Overrides end by calling it.
    virtual void closeDescriptor(bool abort) noexcept;
    /// Closes `fd_` without ending the stream (a connect attempt that failed).
    void dropDescriptor() noexcept;
    /// The protocol for logPrefix() and repr(): protocol_, or while its
    /// connectionLost() runs (protocol_ is let go of before it), that protocol;
    /// null otherwise. Kept outside the object, so it costs no connection a word.
    const Protocol* protocolForLog() const noexcept;

    // The two flags and the descriptor first: they fill the padding at the end of
    // FileDescriptor's last word, so the protocol starts a word earlier.
    bool tlsStarted_ : 1 = false;  // startTLS() put a TLS layer in protocol_ (SocketTransport)

private:
    ReadHalf readHalf_ : 1 = ReadHalf::open;

protected:
    int fd_;
    std::shared_ptr<Protocol> protocol_;
};

/// A StreamTransport on a stream socket (TCP or UNIX).
/// (IFileDescriptor's default errorReason() already reads SO_ERROR.)
///
/// startTLS() (TLS-28 … TLS-31) puts a tls::TLSMemoryBIOProtocol in the
/// protocol's place: what arrives goes through it to the protocol, and the
/// protocol's write, writeSequence, loseConnection, loseWriteConnection and
/// producer calls on this transport go to it; it writes to the socket in
/// clear through a bypass. The protocol keeps this transport.
class WEFT_EXPORT SocketTransport : public StreamTransport, public ssl::ITLSTransport {
public:
    using ssl::ITLSTransport::startTLS;
    void startTLS(std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, bool normal) override;
    bool tlsStarted() const noexcept override { return tlsStarted_; }
    /// The peer's certificate once TLS was started and its handshake completed.
    std::optional<ssl::Certificate> getPeerCertificate() const override;

    using StreamTransport::write;
    void write(Bytes data) override;
    void write(std::vector<std::byte>&& data);
    void writeSequence(std::span<const Bytes> chunks) override;
    void loseConnection() override;
    void loseConnectionDespiteProducer() override;
    void loseWriteConnection() override;
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    void unregisterProducer() override;

protected:
    using StreamTransport::StreamTransport;
    /// recv(2) through the seam.
    ssize_t readSome(std::byte* into, std::size_t room, Reason& failure) override;
    /// send/sendmsg with MSG_NOSIGNAL (TCP-21): a reset peer never raises SIGPIPE.
    WriteResult writeSomeData(std::span<const iovec> data) override;
    /// shutdown(SHUT_WR); errors ignored, the peer may be gone (TCP-29).
    void shutdownWrite() noexcept override;
    /// A reset (SO_LINGER 0) on abort, shutdown(SHUT_RDWR) otherwise (TCP-22), then close.
    void closeDescriptor(bool abort) noexcept override;

    /// What a connection works out only when asked, kept once it is: its log
    /// prefix (AcceptedTransport) and its local address (tcp::Connection, after
    /// a getsockname or at the close). One block, made on first use, so an idle
    /// connection carries one pointer for all of it.
    struct Remembered {
        std::optional<std::string> prefix;
        std::optional<SockAddr> local;
    };
    Remembered& remembered() const {
        if (!remembered_) remembered_ = std::make_unique<Remembered>();
        return *remembered_;
    }
    const Remembered* rememberedIfAny() const noexcept { return remembered_.get(); }

private:
    mutable std::unique_ptr<Remembered> remembered_;
};

/// An accepted (or adopted) stream (Twisted tcp.Server, unix.Server):
/// `Connection` is the transport's own connection class. It carries the
/// session number its port gave it and names itself in logs after its peer.
template <class Connection>
class AcceptedTransport : public Connection {
public:
    /// "<protocol logPrefix>,<session number>,<peer name>" (TCP-18, UNIX-9).
    std::string logPrefix() const override {
        if (auto* r = this->rememberedIfAny(); r && r->prefix) return *r->prefix;
        std::string tail = "," + std::to_string(sessionno_) + "," + peerName();
        const Protocol* protocol = this->protocolForLog();
        if (!protocol) return "-" + tail;  // never asked while connected
        return *(this->remembered().prefix = FileDescriptor::getLogPrefix(*protocol) + tail);
    }
    /// "<ProtocolClassName #<session number> on <where>>" (TCP-18, UNIX-9).
    std::string repr() const {
        std::string name = this->protocol_ ? weft::className(*this->protocol_) : std::string("Server");
        return "<" + name + " #" + std::to_string(sessionno_) + " on " + where() + ">";
    }
    int sessionno() const noexcept { return sessionno_; }

protected:
    template <class... Args>
    explicit AcceptedTransport(int sessionno, Args&&... args)
        : Connection(std::forward<Args>(args)...), sessionno_(sessionno) {}
    /// The peer as logPrefix() names it (its host, its path).
    virtual std::string peerName() const = 0;
    /// Where it was accepted, as repr() says it (the port number, the listening path).
    virtual std::string where() const = 0;
    /// Attaches the protocol and starts (the port, or adoptStreamConnection).
    void start(std::shared_ptr<Protocol> protocol) { this->startProtocol(std::move(protocol)); }

private:
    int sessionno_;  // last: a derived class's small fields fit in the padding after it
};

class BaseConnector;

/// What a BaseConnector needs of the transport of one attempt.
class WEFT_EXPORT IConnectingTransport {
public:
    virtual ~IConnectingTransport() = default;
    /// Arranges the attempt for a later iteration (TCP-39: never inside connect*).
    virtual void scheduleAttempt(double delay = 0) = 0;
    /// Gives up an attempt that has not connected yet: closes the socket and
    /// reports clientConnectionFailed(reason) through the connector.
    virtual void failIfNotConnected(const Failure& reason) = 0;
    /// False once the attempt is over (connected or failed).
    virtual bool connecting() const noexcept = 0;
    /// The transport itself, to close an established connection (TCP-47).
    virtual ITransport& asTransport() noexcept = 0;
};

/// An outgoing socket stream (Twisted's BaseClient mixin over a Connection):
/// `Connection` is the transport's own connection class (tcp::Connection,
/// unix_::Connection). Before it connects it is in one of three phases:
/// waiting for its attempt (on a later iteration), connecting (a non-blocking
/// connect in flight, its outcome read from SO_ERROR on readiness), or done.
/// A failure before the connection is made goes to the connector's
/// clientConnectionFailed; a connection made gets a protocol from the
/// connector's factory (a null one: a placeholder that closes, TCP-42).
/// Instantiated for TCP and UNIX in their sources (src/internet/detail/connecting.hpp).
template <class Connection>
class ConnectingTransport : public Connection, public IConnectingTransport {
public:
    /// "Uninitialized" until connected, then "<protocol logPrefix>,client" (TCP-41).
    std::string logPrefix() const override;
    /// "<weft::tcp::Client to <destination> at <id in hex>>" (TCP-44).
    std::string repr() const;
    Reason doRead() override;
    Reason doWrite() override;
    void connectionLost(const Failure& reason) override;
    void failIfNotConnected(const Failure& reason) override;
    bool connecting() const noexcept override { return phase_ != Phase::done; }
    void scheduleAttempt(double delay = 0) override;
    ITransport& asTransport() noexcept override { return *this; }

protected:
    enum class Phase : std::uint8_t { waiting, connecting, done };

    template <class... Args>
    explicit ConnectingTransport(std::shared_ptr<BaseConnector> connector, Args&&... args)
        : Connection(std::forward<Args>(args)...), connector_(std::move(connector)) {}

    /// One attempt: make the socket (into `fd_`) and connectTo() an address,
    /// or failIfNotConnected().
    virtual void attempt() = 0;
    /// The address buildProtocol() is given once connected.
    virtual Address connectedPeer() const = 0;
    /// The connect of `fd_` failed with `error` (at once or later, from
    /// SO_ERROR or an error event): report it, or try another address.
    virtual void attemptFailed(int error) = 0;
    /// connect(2)s `fd_` and carries on: done, in progress (waits for
    /// writability, TCP-40), or attemptFailed(errno).
    void connectTo(const sockaddr* address, socklen_t length);
    /// Reads the outcome of the connect in flight.
    Reason finishConnect();
    /// The socket is connected: builds the protocol through the connector and starts it.
    void connectDone();

    Phase phase_ = Phase::waiting;
    std::shared_ptr<BaseConnector> connector_;
    mutable std::string prefix_;
};

/// Drives outgoing connection attempts (Twisted base.BaseConnector): one
/// ClientTransport per attempt; connect() again to reconnect.
class WEFT_EXPORT BaseConnector : public IConnector,
                                  public std::enable_shared_from_this<BaseConnector>,
                                  private detail::ReactorBound {
public:
    enum class State : std::uint8_t { disconnected, connecting, connected };

    ~BaseConnector() override;

    /// Starts an attempt; allowed only when disconnected (std::logic_error
    /// otherwise, and once the reactor is gone). doStart()s the factory once
    /// and calls startedConnecting() (TCP-36, TCP-48).
    void connect() override;
    /// Fails the attempt in progress with UserError before returning; throws
    /// error::NotConnectingError when not connecting (TCP-46).
    void stopConnecting() override;
    /// Stops an attempt, or loseConnection()s the transport (TCP-47).
    void disconnect() override;

    State state() const noexcept { return state_; }
    const std::shared_ptr<ClientFactory>& factory() const noexcept { return factory_; }
    Reactor& reactor() const noexcept { return reactor_; }
    /// The reactor's clock, for a ReconnectingClientFactory's retries; null
    /// once the reactor is gone.
    IReactorTime* clock() const noexcept override { return reactorGone_ ? nullptr : &reactor_; }
    double timeout() const noexcept { return timeout_; }

protected:
    BaseConnector(Reactor& reactor, std::shared_ptr<ClientFactory> factory, double timeout, const char* what);
    /// A new transport for one attempt (its attempt starts on a later iteration).
    virtual std::shared_ptr<IConnectingTransport> makeTransport() = 0;
    /// The current (or last) transport; null before the first attempt.
    const std::shared_ptr<IConnectingTransport>& currentTransport() const noexcept { return transport_; }

private:
    template <class>
    friend class ConnectingTransport;
    void connectionFailed(const Failure& reason);
    void connectionLost(const Failure& reason);
    void cancelTimeout();
    void stopFactoryIfIdle();
    /// The reactor is being destroyed (after it told every transport): an
    /// attempt made since (a reconnect from clientConnectionFailed) is dropped
    /// unreported, the factory stopped, and connect() refused from now on.
    void reactorGone() noexcept override;

    Reactor& reactor_;
    std::shared_ptr<ClientFactory> factory_;
    double timeout_;
    State state_ = State::disconnected;
    bool factoryStarted_ = false;
    bool reactorGone_ = false;
    std::shared_ptr<IConnectingTransport> transport_;
    std::optional<DelayedCall> timeoutCall_;
};

/// A listening stream socket (Twisted tcp.Port and unix.Port's common part).
class WEFT_EXPORT StreamPort : public IListeningPort,
                               public IReadDescriptor,
                               public std::enable_shared_from_this<StreamPort>,
                               private detail::ReactorBound {
public:
    ~StreamPort() override;

    /// Stops accepting now; the Deferred fires once the socket is closed and
    /// factory->doStop() ran, on a later iteration (TCP-7, TCP-8). Asked again
    /// while stopping, it returns another Deferred that fires then too. On a
    /// port that is closed it returns an already-fired Deferred (Twisted: None).
    Deferred<void> stopListening() override;
    int fileno() const override { return fd_; }
    /// The factory's class name (TCP-6).
    std::string logPrefix() const override;
    /// Accepts one bounded batch (TCP-11..TCP-15).
    Reason doRead() override;
    /// Closes the socket, forgets it (closed()), then factory->doStop(); what
    /// doStop throws propagates (TCP-8). Called by the reactor at shutdown, or
    /// by stopListening.
    void connectionLost(const Failure& reason) override;

    /// closed → listening → stopping (stopListening asked; the close runs on a later iteration) → closed.
    enum class State : std::uint8_t { closed, listening, stopping };
    State state() const noexcept { return state_; }
    /// True from a successful listen until the socket is closed (also while stopping).
    bool listening() const noexcept { return state_ != State::closed; }
    const std::shared_ptr<Factory>& factory() const noexcept { return factory_; }
    /// Connections one readable event may accept now (TCP-11).
    int numberAccepts = 100;

    /// Stops accepting while the socket stays open: the listening socket is
    /// no longer watched, so new connections wait in the kernel's backlog
    /// (clients still connect, up to the backlog), and an accept batch in
    /// progress ends after the connection being accepted (a buildProtocol or
    /// connectionMade may call it). Harmless when not listening or already
    /// paused. stopListening() still closes a paused port; the reactor's
    /// shutdown does not reach it (it is in no set), its destruction closes it.
    void pauseAccepting();
    /// Undoes pauseAccepting(): watches the socket again, so what waits in the
    /// backlog is accepted on a later iteration. Harmless when not listening
    /// or not paused.
    void resumeAccepting();
    /// True between pauseAccepting() and resumeAccepting() (or the close).
    bool acceptingPaused() const noexcept { return acceptPaused_; }

protected:
    StreamPort(Reactor& reactor, std::shared_ptr<Factory> factory, int backlog, const char* what);
    /// Starts accepting on `fd` (bound and listening): reserves the EMFILE
    /// spare, logs "<factory> starting on <where>", doStart()s the factory.
    void beginListening(int fd, const std::string& where);
    /// Wraps one accepted socket (the peer's address in `peer`, `length`
    /// bytes): builds the protocol and starts a server transport. Owns `fd`.
    virtual void accepted(int fd, const sockaddr* peer, socklen_t length) = 0;
    /// After the socket is closed, before doStop: remove files, drop locks,
    /// log "(… Closed)".
    virtual void closed() = 0;
    /// Room for the peer address accept() fills in.
    virtual socklen_t peerCapacity() const noexcept = 0;
    /// Throws std::logic_error once the reactor is gone (a start after it).
    void checkReactor() const;

    Reactor& reactor_;
    std::shared_ptr<Factory> factory_;
    int backlog_;
    int fd_ = -1;  // open exactly while the state is not closed
    int sessionno_ = 0;

private:
    /// The reactor is being destroyed: a port still open (paused: in no set,
    /// so disconnectAll did not reach it) closes as connectionLost does; a
    /// start afterwards throws.
    void reactorGone() noexcept override;
    State state_ = State::closed;
    bool acceptPaused_ = false;
    bool reactorGone_ = false;
    int reservedFd_ = -1;                      // spare descriptor for EMFILE recovery (TCP-14)
    std::vector<Deferred<void>> stopWaiters_;  // stopListening()'s callers while stopping
};

}  // namespace weft
