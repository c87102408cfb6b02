// weft/internet/testing.hpp — in-memory stand-ins for unit-testing protocols
// without sockets or a running loop (twisted.internet.testing). Spec:
// testing.md TEST-1 … TEST-18.
//
//   StringTransport                    records what a protocol writes (TEST-1 … TEST-5)
//   StringTransportWithDisconnection   … and reports loseConnection() to the protocol (TEST-6)
//   AccumulatingProtocol               collects what it receives (TEST-7)
//   NonStreamingProducer               a pull producer that writes ten times (TEST-8)
//   waitUntilAllDisconnected           polls until transports are closed (TEST-9)
//   EventLoggingObserver               records weft::log events (TEST-10)
//   MemoryReactor, MemoryReactorClock, RaisingMemoryReactor
//                                      record what a protocol asks of the reactor (TEST-11 … TEST-18)
//   FakeProcessTransport               the child MemoryReactor::spawnProcess "starts": records
//                                      what is done to it, and the test scripts its life
//
// These doubles are deliberately simpler than real transports: nothing is
// ever sent, no callback is ever scheduled, and they keep every call's
// arguments so the test can inspect them. Ownership differs from real
// transports (STYLE.md §3) in one way: a double never owns a protocol, because
// there is no reactor to end the connection and break the protocol ↔ transport
// cycle; the test owns its protocols.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/function.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/process.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/task.hpp>
#include <weft/log.hpp>
#include <weft/internet/error.hpp>

namespace weft::testing {

// ---- StringTransport ------------------------------------------------------------

/// A transport that buffers what is written to it in memory and keeps track of
/// its other state without any behaviour (Twisted StringTransport; TEST-1 …
/// TEST-5). The public members are test accessors with Twisted's names; code
/// under test must use only ITransport/IConsumer/IPushProducer.
class WEFT_EXPORT StringTransport : public ITransport, public IConsumer, public IPushProducer {
public:
    /// ITransport's ways to this object's other roles (no cross-cast needed).
    IConsumer* asConsumer() noexcept override { return this; }
    IPushProducer* asInputProducer() noexcept override { return this; }

    /// Its state in its role as a push producer (Twisted `producerState`).
    enum class ProducerState { producing, paused, stopped };

    /// hostAddress/peerAddress: what getHost()/getPeer() return; without one,
    /// IPv4Address("TCP", "10.0.0.1", 12345) and ("TCP", "192.168.1.1", 54321)
    /// (TEST-3). lenient: allow pause/resume after loseConnection() (TEST-5).
    explicit StringTransport(std::optional<Address> hostAddress = std::nullopt,
                             std::optional<Address> peerAddress = std::nullopt, bool lenient = false);

    /// True from construction on; only StringTransportWithDisconnection clears it.
    bool connected = true;
    /// Set by loseConnection() and abortConnection() (TEST-2).
    bool disconnecting = false;
    /// Set by loseConnectionDespiteProducer(): the close asked for would not wait
    /// for a registered producer (a weft addition; Twisted has no such close).
    bool disconnectingDespiteProducer = false;
    /// Set by abortConnection() (TEST-2).
    bool disconnected = false;
    /// The registered producer, or null (TEST-4).
    std::shared_ptr<IProducer> producer;
    /// The `streaming` flag of the registered producer; empty when none is registered.
    std::optional<bool> streaming;
    /// The address getHost() returns when given to the constructor.
    std::optional<Address> hostAddr;
    /// The address getPeer() returns when given to the constructor.
    std::optional<Address> peerAddr;
    /// "producing" initially (TEST-5).
    ProducerState producerState = ProducerState::producing;

    /// Every byte written since construction or the last clear() (TEST-1).
    std::string value() const { return io_; }
    /// Forgets what was written so far.
    void clear() { io_.clear(); }

    // ---- ITransport / IConsumer ------------------------------------------------
    using ITransport::write;
    /// Appends data to value(), whatever the state (TEST-2).
    void write(Bytes data) override;
    /// Appends the concatenation of chunks.
    void writeSequence(std::span<const Bytes> chunks) override;
    /// Only sets `disconnecting`: nothing is closed and nothing is called back (TEST-2).
    void loseConnection() override;
    /// Sets `disconnecting` and `disconnectingDespiteProducer`.
    void loseConnectionDespiteProducer() override;
    /// Sets `disconnected`, then does what loseConnection() does (TEST-2).
    virtual void abortConnection();
    /// hostAddr, or IPv4Address("TCP", "10.0.0.1", 12345) (TEST-3).
    Address getHost() const override;
    /// peerAddr, or IPv4Address("TCP", "192.168.1.1", 54321) (TEST-3).
    Address getPeer() const override;
    /// `connected` and not aborted (`disconnected`), as code under test sees it through ITransport.
    bool isConnected() const noexcept override { return connected && !disconnected; }
    /// `disconnecting`, as code under test sees it through ITransport (a
    /// LineReceiver stops delivering lines once its own loseConnection() set it).
    bool isDisconnecting() const noexcept override { return disconnecting; }
    /// Records producer and streaming; throws std::runtime_error if one is
    /// already registered (the first is kept). Unlike a real transport it never
    /// calls resumeProducing() (TEST-4).
    void registerProducer(std::shared_ptr<IProducer> p, bool streamingProducer) override;
    /// Clears producer and streaming; throws std::runtime_error if none is
    /// registered (TEST-4; stricter than IConsumer, as Twisted's double is).
    void unregisterProducer() override;

    // ---- IPushProducer ---------------------------------------------------------
    /// producerState = paused. Throws std::runtime_error after stopProducing(),
    /// and after loseConnection() unless lenient (TEST-5).
    void pauseProducing() override;
    /// producerState = producing; throws like pauseProducing() (TEST-5).
    void resumeProducing() override;
    /// producerState = stopped; always allowed (TEST-5).
    void stopProducing() override;

private:
    void checkState() const;

    std::string io_;
    bool lenient_;
};

/// A StringTransport that reports the end of the connection to its protocol
/// (Twisted StringTransportWithDisconnection; TEST-6).
///
/// Set `protocol` before closing. Ownership: held weakly, as every double in
/// this header holds protocols (see the file comment); the test owns it.
class WEFT_EXPORT StringTransportWithDisconnection : public StringTransport {
public:
    using StringTransport::StringTransport;

    /// The protocol to notify.
    std::weak_ptr<Protocol> protocol;

    /// The first call while `connected` sets `connected` false and calls
    /// protocol->connectionLost(Failure(ConnectionDone("Bye."))) before
    /// returning; later calls do nothing. Throws std::logic_error if `protocol`
    /// is unset (or gone) at that first call.
    void loseConnection() override;
    /// Sets `disconnected`, then the same path as loseConnection() but with a
    /// ConnectionAborted reason (Better than Twisted, issue #8161).
    void abortConnection() override;

private:
    void disconnectWith(const Failure& reason);
};

// ---- protocol and producer stand-ins --------------------------------------------

class AccumulatingProtocol;

/// Mixin for a factory whose AccumulatingProtocols announce their connection
/// (the `protocolConnectionMade` attribute of Twisted test_tcp's MyServerFactory).
class WEFT_EXPORT ProtocolConnectionMadeMixin {
public:
    virtual ~ProtocolConnectionMadeMixin() = default;
    /// If set, the next AccumulatingProtocol built by this factory fires it
    /// with itself in connectionMade() and resets it (TEST-7).
    std::optional<Deferred<std::shared_ptr<AccumulatingProtocol>>> protocolConnectionMade;
};

/// A protocol that records what happens to it and can fire Deferreds when it
/// connects and disconnects (Twisted AccumulatingProtocol; TEST-7).
class WEFT_EXPORT AccumulatingProtocol : public Protocol {
public:
    /// True once connectionMade() ran.
    bool made = false;
    /// Everything dataReceived() got, concatenated.
    std::string data;
    /// True once connectionLost() ran.
    bool closed = false;
    /// The reason given to connectionLost().
    std::optional<Failure> closedReason;
    /// If set, fired (once, then reset) by connectionLost().
    std::optional<Deferred<void>> closedDeferred;

    /// Sets `made`; if `factory` is a ProtocolConnectionMadeMixin whose
    /// protocolConnectionMade is set, takes it and fires it with this protocol
    /// (null if this protocol is not owned by a std::shared_ptr).
    void connectionMade() override;
    /// Appends to `data`.
    void dataReceived(Bytes bytes) override;
    /// Sets `closed` and `closedReason`, then fires and resets closedDeferred.
    void connectionLost(const Failure& reason) override;
};

/// A ServerFactory building AccumulatingProtocols that can announce them
/// (Twisted test_tcp MyServerFactory).
class WEFT_EXPORT AccumulatingServerFactory : public ServerFactory, public ProtocolConnectionMadeMixin {
public:
    /// `protocol` makes an AccumulatingProtocol.
    AccumulatingServerFactory();
};

/// A ClientFactory building AccumulatingProtocols that can announce them and
/// recording the failure/loss reasons (Twisted test_tcp MyClientFactory).
class WEFT_EXPORT AccumulatingClientFactory : public ClientFactory, public ProtocolConnectionMadeMixin {
public:
    /// `protocol` makes an AccumulatingProtocol.
    AccumulatingClientFactory();
    /// The reason given to clientConnectionFailed(), if it was called.
    std::optional<Failure> failReason;
    /// The reason given to clientConnectionLost(), if it was called.
    std::optional<Failure> lostReason;
    /// Records the reason.
    void clientConnectionFailed(const std::shared_ptr<IConnector>& connector, const Failure& reason) override;
    /// Records the reason.
    void clientConnectionLost(const std::shared_ptr<IConnector>& connector, const Failure& reason) override;
};

/// A pull producer that writes "0" … "9", one number per resumeProducing(),
/// then unregisters itself (Twisted NonStreamingProducer; TEST-8).
///
/// The consumer is held weakly: the consumer holds the producer once it is
/// registered, and the test owns both.
class WEFT_EXPORT NonStreamingProducer : public IPullProducer, public IPushProducer {
public:
    /// Produces for `consumer`; register it with consumer->registerProducer(p, false).
    explicit NonStreamingProducer(std::shared_ptr<IConsumer> consumer);

    /// How many numbers were written.
    int counter = 0;
    /// True once stopProducing() was called.
    bool stopped = false;
    /// Fires after the tenth write or on stopProducing(), whichever is first.
    Deferred<void> result;

    /// Writes the next number; after the tenth, unregisters from the consumer,
    /// forgets it and fires `result`. Throws std::runtime_error when called
    /// after that, after stopProducing(), or when the consumer is gone.
    void resumeProducing() override;
    /// Always throws std::runtime_error: a pull producer is never paused.
    void pauseProducing() override;
    /// Sets `stopped`, forgets the consumer and fires `result` if not fired yet.
    void stopProducing() override;

private:
    void done();
    std::weak_ptr<IConsumer> consumer_;
};

/// A Deferred that fires once no protocol in `protocols` has a connected
/// transport, checking now and then every 10 ms on `clock` (Twisted
/// waitUntilAllDisconnected; TEST-9). A protocol without a transport counts as
/// disconnected. Recognised transports: StringTransport (`connected`),
/// loopback::LoopbackTransport, iosim::FakeTransport (`disconnected`) and
/// FileDescriptor (connected()); any other transport type throws
/// std::invalid_argument before anything is scheduled. `clock` must outlive the
/// polling (destroying it drops the Deferred unfired).
WEFT_EXPORT Deferred<void> waitUntilAllDisconnected(IReactorTime& clock,
                                                    std::vector<std::shared_ptr<Protocol>> protocols);

// ---- EventLoggingObserver --------------------------------------------------------

/// One log event as recorded by EventLoggingObserver (owned copies of
/// weft::log::Event's fields).
struct LoggedEvent {
    /// The event's level.
    log::Level level;
    /// The logging context (a logPrefix()).
    std::string prefix;
    /// The message text.
    std::string message;
    /// The Failure the event carried, if any.
    std::optional<Failure> failure;
};

/// A weft::log observer that stores every event it receives, in order, as an
/// indexable, iterable sequence (Twisted EventLoggingObserver; TEST-10).
///
/// Construct it and pass observer() to log::addObserver yourself, or use
/// createWithCleanup(), which registers it and unregisters it when the returned
/// object is destroyed (at the end of the test). Events may arrive from any
/// thread; reading (size, [], iteration) is for the test thread once logging
/// has settled.
class WEFT_EXPORT EventLoggingObserver {
public:
    EventLoggingObserver();
    /// Unregisters the observer if createWithCleanup() registered it.
    ~EventLoggingObserver();
    EventLoggingObserver(const EventLoggingObserver&) = delete;
    EventLoggingObserver& operator=(const EventLoggingObserver&) = delete;

    /// A new observer registered with weft::log until it is destroyed.
    static std::unique_ptr<EventLoggingObserver> createWithCleanup();

    /// Records one event (the observer call).
    void operator()(const log::Event& event);
    /// A log::Observer that records into this object; it stays safe to call
    /// after this object is gone (it then records nothing).
    log::Observer observer();

    /// Number of events recorded.
    std::size_t size() const;
    /// The i-th event, oldest first; throws std::out_of_range.
    const LoggedEvent& operator[](std::size_t i) const;
    /// Iteration over the recorded events, oldest first.
    std::vector<LoggedEvent>::const_iterator begin() const;
    /// End of the iteration.
    std::vector<LoggedEvent>::const_iterator end() const;

private:
    struct State;
    std::shared_ptr<State> state_;
    std::optional<std::size_t> token_;
};

// ---- MemoryReactor ------------------------------------------------------------------

/// The IListeningPort MemoryReactor returns: getHost() is the address it was
/// made with; startListening()/stopListening() do nothing (TEST-11).
class WEFT_EXPORT FakePort : public IListeningPort {
public:
    /// A port pretending to listen on hostAddress.
    explicit FakePort(Address hostAddress) : hostAddress_(std::move(hostAddress)) {}
    /// Does nothing.
    void startListening() override {}
    /// Does nothing; returns a fired Deferred.
    Deferred<void> stopListening() override;
    /// The address given to the constructor.
    Address getHost() const override { return hostAddress_; }

private:
    Address hostAddress_;
};

/// The IConnector MemoryReactor returns; none of its methods calls the factory
/// (TEST-13).
class WEFT_EXPORT FakeConnector : public IConnector {
public:
    /// A connector to `destination`; clock() answers `clock` (MemoryReactor
    /// passes itself when it is a MemoryReactorClock, else null). Not owned.
    explicit FakeConnector(Address destination, IReactorTime* clock = nullptr)
        : destination_(std::move(destination)), clock_(clock) {}
    /// Set by stopConnecting().
    bool stoppedConnecting = false;
    /// Set by disconnect() (Twisted `_disconnected`).
    bool disconnected = false;
    /// Only sets stoppedConnecting.
    void stopConnecting() override { stoppedConnecting = true; }
    /// Only records the call.
    void disconnect() override { disconnected = true; }
    /// Does nothing.
    void connect() override {}
    /// The destination given to the constructor.
    Address getDestination() const override { return destination_; }
    /// The clock given to the constructor (RCF-1: a ReconnectingClientFactory
    /// without a clock of its own schedules on it).
    IReactorTime* clock() const noexcept override { return clock_; }

private:
    Address destination_;
    IReactorTime* clock_;
};

/// A (host, port) pair to bind a client socket to (weft/internet/address.hpp).
using weft::BindAddress;

/// One listenTCP() call.
struct TCPServer {
    /// The port asked for.
    std::uint16_t port;
    /// The factory given.
    std::shared_ptr<Factory> factory;
    /// The backlog given.
    int backlog;
    /// The interface given ("" = all IPv4 interfaces).
    std::string interface;
};

/// One connectTCP() call.
struct TCPClient {
    /// The host given.
    std::string host;
    /// The port given.
    std::uint16_t port;
    /// The factory given.
    std::shared_ptr<ClientFactory> factory;
    /// The timeout given, in seconds.
    double timeout;
    /// The bind address given, if any.
    std::optional<BindAddress> bindAddress;
};

/// One listenSSL() call. TLS context factories are opaque until weft has TLS.
struct SSLServer {
    /// The port asked for.
    std::uint16_t port;
    /// The factory given.
    std::shared_ptr<Factory> factory;
    /// The context factory given (opaque).
    std::shared_ptr<void> contextFactory;
    /// The backlog given.
    int backlog;
    /// The interface given.
    std::string interface;
};

/// One connectSSL() call.
struct SSLClient {
    /// The host given.
    std::string host;
    /// The port given.
    std::uint16_t port;
    /// The factory given.
    std::shared_ptr<ClientFactory> factory;
    /// The context factory given (opaque).
    std::shared_ptr<void> contextFactory;
    /// The timeout given, in seconds.
    double timeout;
    /// The bind address given, if any.
    std::optional<BindAddress> bindAddress;
};

/// One listenUNIX() call.
struct UNIXServer {
    /// The socket path given.
    std::string address;
    /// The factory given.
    std::shared_ptr<Factory> factory;
    /// The backlog given.
    int backlog;
    /// The file mode given.
    int mode;
    /// The wantPID flag given.
    bool wantPID;
};

/// One connectUNIX() call.
struct UNIXClient {
    /// The socket path given.
    std::string address;
    /// The factory given.
    std::shared_ptr<ClientFactory> factory;
    /// The timeout given, in seconds.
    double timeout;
    /// The checkPID flag given.
    bool checkPID;
};

/// One listenUDP() call (a weft addition: Twisted's MemoryReactor has no listenUDP).
struct UDPServer {
    /// The port asked for.
    std::uint16_t port;
    /// The protocol given.
    std::shared_ptr<AbstractDatagramProtocol> protocol;
    /// The interface given.
    std::string interface;
    /// The maximum packet size given.
    std::size_t maxPacketSize;
};

/// One listenMulticast() call (a weft addition, as listenUDP).
struct MulticastServer {
    /// The port asked for.
    std::uint16_t port;
    /// The protocol given.
    std::shared_ptr<AbstractDatagramProtocol> protocol;
    /// The interface given.
    std::string interface;
    /// The maximum packet size given.
    std::size_t maxPacketSize;
    /// The listenMultiple flag given.
    bool listenMultiple;
};

/// One listenUNIXDatagram() call (a weft addition: Twisted's MemoryReactor
/// has no IReactorUNIXDatagram; recorded as listenUNIX is).
struct UNIXDatagramServer {
    /// The socket path given.
    std::string address;
    /// The protocol given.
    std::shared_ptr<AbstractDatagramProtocol> protocol;
    /// The maximum packet size given.
    std::size_t maxPacketSize;
    /// The file mode given.
    int mode;
};

/// One connectUNIXDatagram() call (a weft addition, as listenUNIXDatagram).
struct UNIXDatagramClient {
    /// The peer's socket path given.
    std::string address;
    /// The protocol given.
    std::shared_ptr<AbstractDatagramProtocol> protocol;
    /// The maximum packet size given.
    std::size_t maxPacketSize;
    /// The file mode given.
    int mode;
    /// The path to bind to first, if one was given.
    std::optional<std::string> bindAddress;
};

/// One adoptStreamPort() or adoptStreamConnection() call.
struct AdoptedStream {
    /// The descriptor given (not owned: MemoryReactor never closes it).
    int fd;
    /// AF_INET or AF_INET6.
    int addressFamily;
    /// The factory given.
    std::shared_ptr<Factory> factory;
};

/// One adoptDatagramPort() call.
struct AdoptedDatagram {
    /// The descriptor given (not owned).
    int fd;
    /// AF_INET or AF_INET6.
    int addressFamily;
    /// The protocol given.
    std::shared_ptr<AbstractDatagramProtocol> protocol;
    /// The maximum packet size given.
    std::size_t maxPacketSize;
};

/// The IProcessTransport MemoryReactor::spawnProcess returns: a child that
/// never runs. It records what the code under test does to it, and the test
/// acts the child out with childData(), closePipe(), exit() and kill(), which
/// call the protocol synchronously in the order a real transport guarantees
/// (CB-*): processExited once, then processEnded after the exit *and* after
/// every pipe has been reported lost with childConnectionLost (CB-5).
///
/// Its pipes are the child fds of ProcessOptions::childFDs whose value is
/// "r" or "w" ({0: "w", 1: "r", 2: "r"} without childFDs, FDMAP-1). A usePTY
/// child has one stream, the terminal, scripted as fd 1: childData(1, …) and
/// closePipe(1), which calls no childConnectionLost (PTY-5).
///
/// Like every double in this header it closes nothing by itself and schedules
/// nothing: closeStdin(), closeChildFD(), loseConnection() and signalProcess()
/// are only recorded; the test reports their effect when it chooses (say
/// closePipe(0) after closeStdin(), kill(SIGTERM) after signalProcess). The
/// protocol is held weakly (see the file comment); the scripting calls do
/// nothing to it once it is gone. A scripting call that breaks the order of
/// events (data on a closed or unknown pipe, a second close, a second exit)
/// throws std::logic_error and changes nothing; an exception thrown by a
/// protocol callback propagates out of the scripting call (a real transport
/// logs it, CB-8).
class WEFT_EXPORT FakeProcessTransport : public IProcessTransport, public ITransport {
public:
    /// A child with pid `pid` spawned with `options`, talking to `protocol`.
    /// MemoryReactor makes these; the protocol's makeProcessConnection() is
    /// not called here.
    FakeProcessTransport(const std::shared_ptr<ProcessProtocol>& protocol, pid_t pid, ProcessOptions options);

    // ---- recorded state -------------------------------------------------------------
    /// Bytes written while the pipe was open, by child fd: write() and
    /// writeSequence() go to fd 0 (dropped without an open "w" pipe there,
    /// PROC-11, PROC-17; a PTY child's terminal counts as fd 0), writeToChild(fd, …)
    /// to fd.
    std::map<int, std::string> written;
    /// The child fds of closeChildFD(), closeStdin() (0), closeStdout() (1) and
    /// closeStderr() (2) calls, in order, whether or not a pipe was there
    /// (loseConnection() is recorded in `disconnecting` only). Empty for a PTY
    /// child, where those calls do nothing (PTY-5).
    std::vector<int> closedChildFDs;
    /// The signals given to signalProcess() (names as numbers), in order.
    std::vector<int> signals;
    /// The signals given to signalProcessGroup(), in order.
    std::vector<int> groupSignals;
    /// Set by loseConnection().
    bool disconnecting = false;

    /// The options the child was spawned with.
    const ProcessOptions& options() const noexcept { return options_; }
    /// The pipes (child fds) not yet reported lost; {1} for a PTY child's
    /// open terminal.
    std::set<int> openPipes() const;
    /// True once exit() or kill() ran / once processEnded was called.
    bool exited() const noexcept { return exited_; }
    bool ended() const noexcept { return ended_; }

    // ---- scripting the child ---------------------------------------------------------
    /// The child wrote `bytes` on `fd`: calls childDataReceived(fd, bytes).
    /// `fd` must be an open "r" pipe (fd 1 for a PTY child), else
    /// std::logic_error (CB-2: no data after a pipe's close).
    void childData(int fd, std::string_view bytes);
    /// The pipe at `fd` closed: calls childConnectionLost(fd) (not for a PTY
    /// child), then processEnded if the child has exited and this was the last
    /// open pipe. std::logic_error if `fd` is no open pipe (CB-3: one loss each).
    void closePipe(int fd);
    /// The child was reaped with raw wait status `waitStatus` (W_EXITCODE(3, 0)
    /// = 3 << 8 for exit code 3, a signal number for a death by that signal):
    /// pid() becomes empty and status() `waitStatus`, processExited(reason) is
    /// called with weft::processExitReason(waitStatus) (CB-7), then
    /// processEnded(reason) if no pipe is open (CB-4, CB-5). std::logic_error
    /// if the child has exited already.
    void exit(int waitStatus);
    /// exit() with the wait status of a death by signal `sig` (1 … 127, else
    /// std::invalid_argument).
    void kill(int sig);

    // ---- IProcessTransport -----------------------------------------------------------
    /// The fake pid until exit(), then empty (CB-4).
    std::optional<pid_t> pid() const noexcept override;
    /// -1 until exit(), then the wait status given to it.
    int status() const noexcept override { return status_; }
    /// Record 0 / 1 / 2 in closedChildFDs (nothing for a PTY child).
    void closeStdin() override { closeStandard(0); }
    void closeStdout() override { closeStandard(1); }
    void closeStderr() override { closeStandard(2); }
    /// Records `fd` in closedChildFDs; throws std::logic_error for a PTY child (PTY-5).
    void closeChildFD(int fd) override;
    /// Records into written[fd]; throws std::out_of_range unless `fd` is an
    /// open "w" pipe (PROC-11), std::logic_error for a PTY child (PTY-5).
    void writeToChild(int fd, Bytes data) override;
    using IProcessTransport::signalProcess;
    /// Records `sig` in `signals`; throws error::ProcessExitedAlready once the
    /// child has exited (SIG-2). The child does not die: call kill().
    void signalProcess(int sig) override;
    /// Records `sig` in groupSignals; throws std::logic_error for a child
    /// spawned without newProcessGroup or usePTY, error::ProcessExitedAlready
    /// once it has exited.
    void signalProcessGroup(int sig) override;
    /// Itself.
    ITransport& asTransport() noexcept override { return *this; }

    // ---- ITransport ------------------------------------------------------------------
    using ITransport::write;
    /// Records into written[0] (see `written`).
    void write(Bytes data) override;
    /// Records the concatenation into written[0].
    void writeSequence(std::span<const Bytes> chunks) override;
    /// Sets `disconnecting`; closes nothing (see above).
    void loseConnection() override { disconnecting = true; }
    /// PipeAddress, as a real process transport (PROC-20).
    Address getPeer() const override { return PipeAddress{}; }
    Address getHost() const override { return PipeAddress{}; }
    /// True until processEnded.
    bool isConnected() const noexcept override { return !ended_; }
    bool isDisconnecting() const noexcept override { return disconnecting && !ended_; }

private:
    void closeStandard(int fd) {
        if (!options_.usePTY) closeChildFD(fd);
    }
    bool isOpenPipe(int fd, ChildFD::Kind kind) const;
    void maybeEnd();

    std::weak_ptr<ProcessProtocol> protocol_;
    ProcessOptions options_;
    std::map<int, ChildFD::Kind> pipes_;  // open pipes; a PTY's terminal is {1: parentReads}
    std::optional<Failure> reason_;
    pid_t pid_;
    int status_ = -1;
    bool exited_ = false;
    bool ended_ = false;
};

/// One spawnProcess() call.
struct SpawnedProcess {
    /// The protocol given (a plain ProcessProtocol when null was given
    /// without pipes, FDMAP-6).
    std::shared_ptr<ProcessProtocol> protocol;
    /// The executable given.
    std::string executable;
    /// The argv given (argv[0] included).
    std::vector<std::string> args;
    /// The options given.
    ProcessOptions options;
    /// What spawnProcess returned: the test's handle on the child.
    std::shared_ptr<FakeProcessTransport> transport;
};

/// A fake reactor that records what it is asked to do and does none of it
/// (Twisted MemoryReactor; TEST-11 … TEST-16): listen* record and return a
/// FakePort, connect* record, call factory->startedConnecting() and return a
/// FakeConnector that never connects; the test completes a connection itself
/// (factory->buildProtocol(addr) plus a StringTransport). Reader/writer sets are
/// kept but never dispatched. Not thread-safe.
///
/// spawnProcess records the call and returns a FakeProcessTransport that the
/// test scripts (see there).
///
/// It provides the reactor interfaces a weft::Reactor does except
/// IReactorThreads and IReactorTime (MemoryReactorClock adds the clock), so it
/// stands in for a reactor wherever code takes an interface (IReactorTCP&,
/// ReactorRef, …). listenTCP, connectTCP, … are the interfaces' methods; what
/// they do is in the do* hooks, which RaisingMemoryReactor overrides, and
/// listenSSL/connectSSL are virtual for the same reason.
class WEFT_EXPORT MemoryReactor : public IReactorFDSet,
                                  public IReactorTCP,
                                  public IReactorUNIX,
                                  public IReactorUNIXDatagram,
                                  public IReactorUDP,
                                  public IReactorMulticast,
                                  public IReactorSocket,
                                  public IReactorProcess {
public:
    MemoryReactor() = default;
    ~MemoryReactor() override = default;
    MemoryReactor(const MemoryReactor&) = delete;
    MemoryReactor& operator=(const MemoryReactor&) = delete;

    // ---- recorded state (Twisted's attribute names) -----------------------------
    /// Set by install().
    bool hasInstalled = false;
    /// True inside run() (TEST-15).
    bool running = false;
    /// Set by run() (Better than Twisted: starts false).
    bool hasRun = false;
    /// Set by stop() (starts false).
    bool hasStopped = false;
    /// Set by crash() (starts false).
    bool hasCrashed = false;
    /// Functions given to callWhenRunning(), in order; run() calls them.
    std::vector<Function<void()>> whenRunningHooks;
    /// Functions given to addSystemEventTrigger(): triggers[phase][eventType]; never fired.
    std::map<std::string, std::map<std::string, std::vector<Function<void()>>>> triggers;
    /// listenTCP() calls.
    std::vector<TCPServer> tcpServers;
    /// connectTCP() calls.
    std::vector<TCPClient> tcpClients;
    /// listenSSL() calls.
    std::vector<SSLServer> sslServers;
    /// connectSSL() calls.
    std::vector<SSLClient> sslClients;
    /// listenUNIX() calls.
    std::vector<UNIXServer> unixServers;
    /// connectUNIX() calls.
    std::vector<UNIXClient> unixClients;
    /// listenUDP() calls.
    std::vector<UDPServer> udpServers;
    /// listenMulticast() calls.
    std::vector<MulticastServer> multicastServers;
    /// listenUNIXDatagram() calls.
    std::vector<UNIXDatagramServer> unixDatagramServers;
    /// connectUNIXDatagram() calls.
    std::vector<UNIXDatagramClient> unixDatagramClients;
    /// adoptStreamPort() calls.
    std::vector<AdoptedStream> adoptedPorts;
    /// adoptStreamConnection() calls.
    std::vector<AdoptedStream> adoptedStreamConnections;
    /// adoptDatagramPort() calls (Twisted appends them to adoptedPorts; their
    /// shape differs in C++, so they get their own list).
    std::vector<AdoptedDatagram> adoptedDatagramPorts;
    /// Every connector returned by connect*, in order.
    std::vector<std::shared_ptr<FakeConnector>> connectors;
    /// spawnProcess() calls, in order.
    std::vector<SpawnedProcess> processes;

    // ---- IReactorCore subset (TEST-15) ----------------------------------------
    /// Sets hasInstalled.
    void install() { hasInstalled = true; }
    /// Throws std::logic_error if running; else sets running and hasRun, calls
    /// every whenRunningHooks entry in order, then stop(), and returns.
    void run();
    /// running = false, hasStopped = true.
    void stop();
    /// hasCrashed = true; running = false; hasStopped is left alone (neither
    /// running nor stopped).
    void crash();
    /// Only records f in whenRunningHooks (never calls it now).
    void callWhenRunning(Function<void()> f);
    /// Only records f in triggers[phase][eventType]; returns a unique ID.
    TriggerId addSystemEventTrigger(const std::string& phase, const std::string& eventType, Function<void()> f);
    /// Throws std::logic_error: "removeSystemEventTrigger is not supported by MemoryReactor".
    void removeSystemEventTrigger(TriggerId id);
    /// Throws std::logic_error (not supported by MemoryReactor).
    void fireSystemEvent(const std::string& eventType);
    /// Throws std::logic_error (not supported by MemoryReactor).
    void iterate(double delay = 0);
    /// Throws std::logic_error (not supported by MemoryReactor).
    Deferred<std::string> resolve(const std::string& name, double timeout = 10);

    // ---- IReactorTCP / SSL / UNIX / UDP / Socket (TEST-11, TEST-12, TEST-14) -------
    //
    // listenTCP(port, factory, backlog = 50, interface = ""): records (port,
    //   factory, backlog, interface); the port's getHost() is IPv6Address("TCP",
    //   interface, port) for an IPv6 literal interface, else IPv4Address("TCP",
    //   "0.0.0.0", port).
    // connectTCP(host, port, factory, timeout = 30, bindAddress = none): records
    //   the call, creates a FakeConnector to IPv4/IPv6Address("TCP", host, port)
    //   (by literal), calls factory->startedConnecting(connector), appends it to
    //   `connectors` and returns it. Never connects.
    // listenUNIX / connectUNIX: the same with unixServers / unixClients and
    //   UNIXAddress(address).
    // listenUNIXDatagram / connectUNIXDatagram: record into unixDatagramServers
    //   / unixDatagramClients; the port's getHost() is UNIXAddress(address), or
    //   UNIXAddress(bindAddress or "") for a connected one. The protocol is
    //   neither started nor told of a failure.
    // listenUDP / listenMulticast: record into udpServers / multicastServers;
    //   getHost() is IPv6/IPv4Address("UDP", …, port) as for listenTCP.
    // adoptStreamPort(fd, family, factory): records in adoptedPorts and returns
    //   a FakePort at IPv4Address("TCP", "0.0.0.0", 1234) or IPv6Address("TCP",
    //   "::", 1234); any other family throws error::UnsupportedAddressFamily
    //   (nothing recorded).
    // adoptStreamConnection: records in adoptedStreamConnections.
    // adoptDatagramPort: records in adoptedDatagramPorts and returns a "UDP"
    //   FakePort at port 1234 (families as adoptStreamPort).
    // spawnProcess(protocol, executable, args, options): checks the arguments as
    //   a reactor does (usePTY with childFDs, PTY-3, or a null protocol with
    //   pipes, FDMAP-6, throw std::invalid_argument and record nothing),
    //   records the call in `processes` with a FakeProcessTransport whose pid is
    //   4242 + its index there, then calls protocol->makeProcessConnection(it)
    //   before returning it (PROC-1); an exception from connectionMade
    //   propagates (the call stays recorded). Nothing runs.

    /// Like listenTCP, recording into sslServers; getHost() is IPv4Address("TCP", "0.0.0.0", port).
    virtual std::shared_ptr<IListeningPort> listenSSL(std::uint16_t port, std::shared_ptr<Factory> factory,
                                                      std::shared_ptr<void> contextFactory, int backlog = 50,
                                                      const std::string& interface = "");
    /// Like connectTCP, recording into sslClients; destination IPv4Address("TCP", host, port).
    virtual std::shared_ptr<IConnector> connectSSL(const std::string& host, std::uint16_t port,
                                                   std::shared_ptr<ClientFactory> factory,
                                                   std::shared_ptr<void> contextFactory, double timeout = 30,
                                                   std::optional<BindAddress> bindAddress = std::nullopt);

    // ---- IReactorFDSet (TEST-16) ------------------------------------------------------
    /// Adds to the reader set (twice = once). Never dispatched; fileno() is not checked.
    void addReader(std::shared_ptr<IReadDescriptor> reader) override;
    /// Adds to the writer set (twice = once).
    void addWriter(std::shared_ptr<IWriteDescriptor> writer) override;
    using IReactorFDSet::removeReader;
    using IReactorFDSet::removeWriter;
    /// Removes from the reader set; unknown descriptors are ignored.
    void removeReader(IReadDescriptor* reader) override;
    /// Removes from the writer set; unknown descriptors are ignored.
    void removeWriter(IWriteDescriptor* writer) override;
    /// Empties both sets and returns what was removed, each descriptor once
    /// (Better than Twisted: Twisted returns nothing; R-32).
    std::vector<std::shared_ptr<IFileDescriptor>> removeAll() override;
    /// The readers, in the order they were added.
    std::vector<std::shared_ptr<IReadDescriptor>> getReaders() const override { return readers_; }
    /// The writers, in the order they were added.
    std::vector<std::shared_ptr<IWriteDescriptor>> getWriters() const override { return writers_; }

protected:
    /// listenTCP(), as described above.
    std::shared_ptr<IListeningPort> doListenTCP(std::uint16_t port, std::shared_ptr<Factory> factory, int backlog,
                                                const std::string& interface) override;
    /// connectTCP().
    std::shared_ptr<IConnector> doConnectTCP(const std::string& host, std::uint16_t port,
                                             std::shared_ptr<ClientFactory> factory, double timeout,
                                             std::optional<BindAddress> bindAddress) override;
    /// listenUNIX().
    std::shared_ptr<IListeningPort> doListenUNIX(const std::string& address, std::shared_ptr<Factory> factory,
                                                 int backlog, int mode, bool wantPID) override;
    /// connectUNIX().
    std::shared_ptr<IConnector> doConnectUNIX(const std::string& address, std::shared_ptr<ClientFactory> factory,
                                              double timeout, bool checkPID) override;
    /// listenUNIXDatagram().
    std::shared_ptr<IListeningPort> doListenUNIXDatagram(const std::string& address,
                                                         std::shared_ptr<DatagramProtocol> protocol,
                                                         std::size_t maxPacketSize, int mode) override;
    /// connectUNIXDatagram().
    std::shared_ptr<IListeningPort> doConnectUNIXDatagram(const std::string& address,
                                                          std::shared_ptr<ConnectedDatagramProtocol> protocol,
                                                          std::size_t maxPacketSize, int mode,
                                                          std::optional<std::string> bindAddress) override;
    /// listenUDP().
    std::shared_ptr<IListeningPort> doListenUDP(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                                const std::string& interface, std::size_t maxPacketSize) override;
    /// listenMulticast().
    std::shared_ptr<IListeningPort> doListenMulticast(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                                      const std::string& interface, std::size_t maxPacketSize,
                                                      bool listenMultiple) override;
    /// adoptStreamPort().
    std::shared_ptr<IListeningPort> doAdoptStreamPort(int fd, int addressFamily,
                                                      std::shared_ptr<Factory> factory) override;
    /// adoptStreamConnection().
    void doAdoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory) override;
    /// adoptDatagramPort().
    std::shared_ptr<IListeningPort> doAdoptDatagramPort(int fd, int addressFamily,
                                                        std::shared_ptr<DatagramProtocol> protocol,
                                                        std::size_t maxPacketSize) override;
    /// spawnProcess().
    std::shared_ptr<IProcessTransport> doSpawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                      const std::string& executable,
                                                      const std::vector<std::string>& args,
                                                      const ProcessOptions& options) override;

private:
    // A FakeConnector to `destination`, started and remembered as connect* do.
    std::shared_ptr<FakeConnector> makeConnector(Address destination, const std::shared_ptr<ClientFactory>& factory);

    std::vector<std::shared_ptr<IReadDescriptor>> readers_;
    std::vector<std::shared_ptr<IWriteDescriptor>> writers_;
    std::uint64_t nextTriggerId_ = 1;
};

/// A MemoryReactor that is also a task::Clock: callLater, seconds, advance,
/// getDelayedCalls behave exactly as task::Clock's (TEST-17).
class WEFT_EXPORT MemoryReactorClock : public MemoryReactor, public task::Clock {
public:
    MemoryReactorClock() = default;
};

/// A MemoryReactor whose listen* methods and adoptStreamPort throw
/// `listenException` and whose connect* methods, adoptStreamConnection,
/// adoptDatagramPort and spawnProcess throw `connectException`, recording
/// nothing (spawnProcess: a weft addition; Twisted
/// RaisingMemoryReactor; TEST-18). A null exception_ptr throws std::logic_error.
/// It overrides the interfaces' do* hooks, so it throws however it is reached
/// (as a MemoryReactor, an IReactorTCP, a ReactorRef, …).
class WEFT_EXPORT RaisingMemoryReactor : public MemoryReactor {
public:
    /// The exceptions to throw.
    explicit RaisingMemoryReactor(std::exception_ptr listenException = nullptr,
                                  std::exception_ptr connectException = nullptr)
        : listenException_(std::move(listenException)), connectException_(std::move(connectException)) {}

    /// Throws listenException.
    std::shared_ptr<IListeningPort> listenSSL(std::uint16_t, std::shared_ptr<Factory>, std::shared_ptr<void>, int = 50,
                                              const std::string& = "") override;
    /// Throws connectException.
    std::shared_ptr<IConnector> connectSSL(const std::string&, std::uint16_t, std::shared_ptr<ClientFactory>,
                                           std::shared_ptr<void>, double = 30,
                                           std::optional<BindAddress> = std::nullopt) override;

protected:
    // listenTCP, listenUNIX, listenUNIXDatagram, listenUDP, listenMulticast and
    // adoptStreamPort throw listenException; connectTCP, connectUNIX,
    // connectUNIXDatagram, adoptStreamConnection, adoptDatagramPort and
    // spawnProcess throw connectException (no protocol method runs).
    std::shared_ptr<IListeningPort> doListenTCP(std::uint16_t, std::shared_ptr<Factory>, int,
                                                const std::string&) override;
    std::shared_ptr<IConnector> doConnectTCP(const std::string&, std::uint16_t, std::shared_ptr<ClientFactory>, double,
                                             std::optional<BindAddress>) override;
    std::shared_ptr<IListeningPort> doListenUNIX(const std::string&, std::shared_ptr<Factory>, int, int, bool) override;
    std::shared_ptr<IConnector> doConnectUNIX(const std::string&, std::shared_ptr<ClientFactory>, double,
                                              bool) override;
    std::shared_ptr<IListeningPort> doListenUNIXDatagram(const std::string&, std::shared_ptr<DatagramProtocol>,
                                                         std::size_t, int) override;
    std::shared_ptr<IListeningPort> doConnectUNIXDatagram(const std::string&,
                                                          std::shared_ptr<ConnectedDatagramProtocol>, std::size_t, int,
                                                          std::optional<std::string>) override;
    std::shared_ptr<IListeningPort> doListenUDP(std::uint16_t, std::shared_ptr<DatagramProtocol>, const std::string&,
                                                std::size_t) override;
    std::shared_ptr<IListeningPort> doListenMulticast(std::uint16_t, std::shared_ptr<DatagramProtocol>,
                                                      const std::string&, std::size_t, bool) override;
    std::shared_ptr<IListeningPort> doAdoptStreamPort(int, int, std::shared_ptr<Factory>) override;
    void doAdoptStreamConnection(int, int, std::shared_ptr<Factory>) override;
    std::shared_ptr<IListeningPort> doAdoptDatagramPort(int, int, std::shared_ptr<DatagramProtocol>,
                                                        std::size_t) override;
    std::shared_ptr<IProcessTransport> doSpawnProcess(std::shared_ptr<ProcessProtocol>, const std::string&,
                                                      const std::vector<std::string>&, const ProcessOptions&) override;

private:
    [[noreturn]] void raise(const std::exception_ptr& e) const;
    std::exception_ptr listenException_;
    std::exception_ptr connectException_;
};

}  // namespace weft::testing
