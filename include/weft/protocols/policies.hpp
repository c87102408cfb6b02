// weft/protocols/policies.hpp — wrapping policies (twisted.protocols.policies).
// Spec: protocols.md POL-1 … POL-8, TM-1 … TM-3.
//
// A ProtocolWrapper stands between a transport and the protocol it wraps: to
// the transport it is the protocol, to the wrapped protocol it is the
// transport. Policies (throttling, connection limits, idle timeouts — and the
// TLS layer) are wrappers that look at or change what passes through.
//
// Ownership (STYLE.md §3), as for every protocol (weft/internet/protocol.hpp):
//  * the real transport owns the wrapper until the wrapper's connectionLost()
//    has returned;
//  * the wrapper owns the wrapped protocol (`wrappedProtocol`) and the wrapped
//    protocol holds the wrapper as its `transport`; the wrapper lets go of the
//    wrapped protocol in connectionLost() (POL-2), which breaks that cycle;
//  * a wrapper holds its factory (`factory`) until its connectionLost, so the
//    factory outlives every connection it counts; then it lets go, as a plain
//    transport holds no factory (the wrapped protocol keeps the wrapper as its
//    transport, and would otherwise keep the factory too). A factory keeps plain pointers to the wrappers it
//    counts (`protocols()`); a wrapper leaves that list in connectionLost() or,
//    if it never got there (a reactor destroyed with live connections), in its
//    destructor.
//
// Clocks: nothing here reaches for a global reactor. ThrottlingFactory and
// TimeoutFactory take the IReactorTime they schedule on (a Reactor, or a
// task::Clock in tests); TimeoutMixin takes one too, or lets a subclass
// override callLater() (TM-3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>

namespace weft::policies {

class ProtocolWrapper;

/// What a wrapper reports to the factory that made it: a factory that builds
/// ProtocolWrappers derives from it (WrappingFactory, LimitTotalConnectionsFactory).
class WEFT_EXPORT ProtocolRegistry {
public:
    virtual ~ProtocolRegistry() = default;
    /// A wrapper's connection was made (from its makeConnection()).
    virtual void registerProtocol(ProtocolWrapper& p) = 0;
    /// A wrapper's connection is gone (from its connectionLost(), or its
    /// destructor if the connection was never reported lost).
    virtual void unregisterProtocol(ProtocolWrapper& p) = 0;
};

/// Wraps a protocol and is its transport (Twisted ProtocolWrapper; POL-1, POL-2).
///
/// Every transport call of the wrapped protocol goes to the real transport:
/// write, writeSequence, loseConnection, getPeer, getHost, the consumer side
/// (registerProducer, unregisterProducer, stopConsuming), the producer side
/// (pauseProducing, resumeProducing, stopProducing) and loseWriteConnection.
/// asConsumer()/asInputProducer() answer as the real transport does. What
/// the ITransport interfaces do not carry (ITCPTransport's socket options, a
/// UNIX socket's descriptor passing) is reached through `transport`, the real
/// transport. Subclasses override the calls they police.
///
/// Better than Twisted: half-close passes through. The wrapper is always an
/// IHalfCloseableProtocol; for a wrapped protocol that is one too it forwards
/// readConnectionLost()/writeConnectionLost(), for one that is not it does
/// what a transport does for such a protocol (the end of the peer's stream
/// closes the connection once the output is flushed).
class WEFT_EXPORT ProtocolWrapper : public Protocol,
                                    public ITransport,
                                    public IConsumer,
                                    public IPushProducer,
                                    public IHalfCloseableTransport,
                                    public IHalfCloseableProtocol {
public:
    /// A wrapper of `wrapped` for `factory`, which counts it. `wrapped` must not
    /// be null (std::invalid_argument).
    template <class F>
    requires std::is_base_of_v<Factory, F> && std::is_base_of_v<ProtocolRegistry, F> ProtocolWrapper(
        std::shared_ptr<F> owner, std::shared_ptr<Protocol> wrapped)
        : ProtocolWrapper(std::static_pointer_cast<Factory>(owner), static_cast<ProtocolRegistry*>(owner.get()),
                          std::move(wrapped)) {}
    ~ProtocolWrapper() override;

    /// The protocol this wrapper carries; null once the connection is lost (POL-2).
    std::shared_ptr<Protocol> wrappedProtocol;

    // ---- the protocol side: what the real transport calls ----
    /// Stores the real transport, registers with the factory, then connects the
    /// wrapped protocol to this wrapper (POL-2).
    void makeConnection(std::shared_ptr<ITransport> t) override;
    void dataReceived(Bytes data) override;
    /// Unregisters from the factory, passes the reason on, drops the wrapped
    /// protocol (POL-2).
    void connectionLost(const Failure& reason) override;
    void readConnectionLost() override;
    void writeConnectionLost() override;
    /// "<wrapped protocol's prefix> (<this class's name>)" (POL-3).
    std::string logPrefix() const override;

    // ---- the transport side: what the wrapped protocol calls ----
    using ITransport::write;
    void write(Bytes data) override;
    void writeSequence(std::span<const Bytes> chunks) override;
    /// Marks the wrapper disconnecting, then asks the real transport (POL-2).
    void loseConnection() override;
    /// The same, through the real transport's loseConnectionDespiteProducer().
    void loseConnectionDespiteProducer() override;
    Address getPeer() const override;
    Address getHost() const override;
    bool isConnected() const noexcept override;
    /// True once loseConnection() was called on the wrapper or the real transport.
    bool isDisconnecting() const noexcept override;
    /// What the transport below holds (TLS-22 looks through a policy).
    std::size_t pendingBytes() const noexcept override;
    IConsumer* asConsumer() noexcept override;
    IPushProducer* asInputProducer() noexcept override;
    /// The real transport: abortTransport() on a wrapper aborts it.
    ITransport* transportBelow() noexcept override { return transport.get(); }
    /// The real transport's; std::logic_error if it is no consumer.
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    void unregisterProducer() override;
    /// unregisterProducer() then loseConnection(), as a transport's stopConsuming.
    virtual void stopConsuming();
    /// The real transport's input side; nothing if it has none.
    void pauseProducing() override;
    void resumeProducing() override;
    void stopProducing() override;
    /// The real transport's; std::logic_error if it cannot half-close.
    void loseWriteConnection() override;

protected:
    ProtocolWrapper(std::shared_ptr<Factory> factory, ProtocolRegistry* registry, std::shared_ptr<Protocol> wrapped);
    /// This wrapper as the wrapped protocol's transport (shares its ownership).
    std::shared_ptr<ITransport> asSharedTransport();
    /// makeConnection() without connecting the wrapped protocol: for a wrapper
    /// put under a protocol that is already connected (startTLS).
    void attachBeneath(std::shared_ptr<ITransport> t);

private:
    void leaveRegistry() noexcept;

    ProtocolRegistry* registry_;  // the factory's (held through `factory`)
    bool registered_ = false;
    bool disconnecting_ = false;
};

/// Wraps a factory and each protocol it builds (Twisted WrappingFactory; POL-3).
///
/// buildProtocol(addr) builds the wrapped factory's protocol (whose `factory`
/// is the wrapped factory) and wraps it with wrapProtocol(); a null protocol
/// from the wrapped factory is returned as null, so the connection is refused
/// (Better than Twisted, which wraps the null). doStart()/doStop() start and
/// stop the wrapped factory first; the client-factory callbacks are passed on
/// when the wrapped factory is a ClientFactory. Create with std::make_shared.
class WEFT_EXPORT WrappingFactory : public ClientFactory, public ProtocolRegistry {
public:
    explicit WrappingFactory(std::shared_ptr<Factory> wrapped);

    /// The factory whose protocols are wrapped.
    const std::shared_ptr<Factory> wrappedFactory;

    void doStart() override;
    void doStop() override;
    void startedConnecting(const std::shared_ptr<IConnector>& connector) override;
    void clientConnectionFailed(const std::shared_ptr<IConnector>& connector, const Failure& reason) override;
    void clientConnectionLost(const std::shared_ptr<IConnector>& connector, const Failure& reason) override;
    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;
    /// "<wrapped factory's prefix> (<this class's name>)" (POL-3).
    std::string logPrefix() const override;

    void registerProtocol(ProtocolWrapper& p) override;
    void unregisterProtocol(ProtocolWrapper& p) override;
    /// The wrappers whose connections are live, in the order they were made.
    const std::vector<ProtocolWrapper*>& protocols() const noexcept { return protocols_; }

protected:
    /// Wraps one protocol the wrapped factory built (Twisted's `protocol`
    /// class attribute): a ProtocolWrapper here, the policy's own in subclasses.
    virtual std::shared_ptr<ProtocolWrapper> wrapProtocol(std::shared_ptr<Protocol> wrapped);
    /// Each live wrapper, held for the length of a loop over them (a callback
    /// may end any connection).
    std::vector<std::shared_ptr<ProtocolWrapper>> liveProtocols() const;

private:
    std::vector<ProtocolWrapper*> protocols_;
};

// ---- ThrottlingFactory (POL-4, POL-5) -----------------------------------------------

class ThrottlingFactory;

/// The wrapper ThrottlingFactory builds (Twisted ThrottlingProtocol): counts
/// the bytes each way and pauses its connection when the factory says so.
class WEFT_EXPORT ThrottlingProtocol : public ProtocolWrapper {
public:
    ThrottlingProtocol(std::shared_ptr<ThrottlingFactory> factory, std::shared_ptr<Protocol> wrapped);

    using ProtocolWrapper::write;
    void write(Bytes data) override;
    void writeSequence(std::span<const Bytes> chunks) override;
    void dataReceived(Bytes data) override;
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    void unregisterProducer() override;

    /// Pauses / resumes reading from the real transport.
    void throttleReads();
    void unthrottleReads();
    /// Pauses / resumes the registered producer, if there is one and it is a
    /// push producer (a connection without one is not write-throttled).
    void throttleWrites();
    void unthrottleWrites();

private:
    ThrottlingFactory& throttler_;  // held through `factory`
    std::shared_ptr<IProducer> producer_;
};

/// Limits connections and bandwidth (Twisted ThrottlingFactory; POL-4, POL-5).
///
/// Refuses a connection (buildProtocol returns null) once connectionCount()
/// reaches maxConnectionCount. With a readLimit / writeLimit (bytes per
/// second), the factory checks once a second, from the first connection on,
/// whether the bytes read / written in that second exceeded the limit, and if
/// so pauses reading on every connection (or every connection's registered
/// producer) for (count / limit − 1) seconds; the counters restart every
/// second, and every timer stops when the last connection goes.
class WEFT_EXPORT ThrottlingFactory : public WrappingFactory {
public:
    static constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

    /// `clock` schedules the checks (a Reactor, or a task::Clock); not owned: it
    /// must outlive the factory's last connection.
    ThrottlingFactory(std::shared_ptr<Factory> wrapped, IReactorTime& clock, std::size_t maxConnectionCount = unlimited,
                      std::optional<std::uint64_t> readLimit = std::nullopt,
                      std::optional<std::uint64_t> writeLimit = std::nullopt);
    ~ThrottlingFactory() override;

    const std::size_t maxConnectionCount;
    const std::optional<std::uint64_t> readLimit;   // bytes per second
    const std::optional<std::uint64_t> writeLimit;  // bytes per second

    std::size_t connectionCount() const noexcept { return connectionCount_; }
    std::uint64_t readThisSecond() const noexcept { return readThisSecond_; }
    std::uint64_t writtenThisSecond() const noexcept { return writtenThisSecond_; }

    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;
    void unregisterProtocol(ProtocolWrapper& p) override;

    /// Called by the wrappers as bytes pass.
    void registerRead(std::size_t n) noexcept { readThisSecond_ += n; }
    void registerWritten(std::size_t n) noexcept { writtenThisSecond_ += n; }

    /// The once-a-second checks (public, as Twisted's, for tests and subclasses).
    void checkReadBandwidth();
    void checkWriteBandwidth();
    /// Pause / resume every connection.
    void throttleReads();
    void unthrottleReads();
    void throttleWrites();
    void unthrottleWrites();

protected:
    std::shared_ptr<ProtocolWrapper> wrapProtocol(std::shared_ptr<Protocol> wrapped) override;

private:
    void cancelTimers() noexcept;

    IReactorTime& clock_;
    std::size_t connectionCount_ = 0;
    std::uint64_t readThisSecond_ = 0;
    std::uint64_t writtenThisSecond_ = 0;
    DelayedCall unthrottleReadsCall_, checkReadCall_, unthrottleWritesCall_, checkWriteCall_;
};

// ---- LimitTotalConnectionsFactory (POL-6) -----------------------------------------------

/// A server factory that limits simultaneous connections (Twisted
/// LimitTotalConnectionsFactory; POL-6). Below `connectionLimit` (none: no
/// limit) it builds `protocol`; at the limit it builds `overflowProtocol` if
/// set (those connections count too) or refuses the connection. Each protocol
/// is wrapped in a ProtocolWrapper and gets this factory as its `factory`.
class WEFT_EXPORT LimitTotalConnectionsFactory : public ServerFactory, public ProtocolRegistry {
public:
    std::optional<std::size_t> connectionLimit;
    /// What to build at the limit; empty: refuse the connection.
    ProtocolMaker overflowProtocol;

    std::size_t connectionCount() const noexcept { return connectionCount_; }

    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override;
    void registerProtocol(ProtocolWrapper&) override {}
    void unregisterProtocol(ProtocolWrapper&) override;

private:
    std::size_t connectionCount_ = 0;
};

// ---- TimeoutFactory (POL-7, POL-8) ---------------------------------------------------------

class TimeoutFactory;

/// The wrapper TimeoutFactory builds (Twisted TimeoutProtocol): closes the
/// connection after a period without traffic (POL-7, POL-8).
class WEFT_EXPORT TimeoutProtocol : public ProtocolWrapper {
public:
    TimeoutProtocol(std::shared_ptr<TimeoutFactory> factory, std::shared_ptr<Protocol> wrapped,
                    std::optional<double> timeoutPeriod);
    ~TimeoutProtocol() override;

    /// The current period; nullopt when no countdown runs.
    std::optional<double> timeoutPeriod() const noexcept { return period_; }
    /// Cancels any countdown and starts one of `period` seconds (nullopt: none).
    void setTimeout(std::optional<double> period);
    /// Cancels the countdown; safe when there is none, or it ran or was
    /// cancelled elsewhere (POL-8).
    void cancelTimeout() noexcept;
    /// Restarts a running countdown (activity); nothing if none runs.
    void resetTimeout();

    using ProtocolWrapper::write;
    void write(Bytes data) override;
    void writeSequence(std::span<const Bytes> chunks) override;
    void dataReceived(Bytes data) override;
    void connectionLost(const Failure& reason) override;

protected:
    /// The countdown expired; the default calls loseConnection().
    virtual void timeoutFunc();

private:
    TimeoutFactory& timeouts_;  // held through `factory`
    std::optional<double> period_;
    DelayedCall call_;
};

/// Closes connections idle for `timeoutPeriod` seconds (Twisted TimeoutFactory;
/// POL-7): received data, write and writeSequence restart the countdown.
class WEFT_EXPORT TimeoutFactory : public WrappingFactory {
public:
    /// `clock` schedules the countdowns; not owned (it must outlive every connection).
    TimeoutFactory(std::shared_ptr<Factory> wrapped, IReactorTime& clock, double timeoutPeriod = 30 * 60);

    const double timeoutPeriod;

    /// Schedules on the factory's clock (Twisted's overridable callLater).
    virtual DelayedCall callLater(double delay, Function<void()> f);

protected:
    std::shared_ptr<ProtocolWrapper> wrapProtocol(std::shared_ptr<Protocol> wrapped) override;

private:
    IReactorTime& clock_;
};

// ---- TimeoutMixin (TM-1 … TM-3) -------------------------------------------------------------

/// One idle countdown for a protocol (Twisted TimeoutMixin; TM-1 … TM-3).
///
///     class Session : public Protocol, public policies::TimeoutMixin {
///     public:
///         explicit Session(IReactorTime& clock) : TimeoutMixin(clock) {}
///         void connectionMade() override { setTimeout(60); }
///         void dataReceived(Bytes) override { resetTimeout(); }
///         void connectionLost(const Failure&) override { setTimeout(std::nullopt); }
///     };
///
/// The countdown runs on the clock given to the constructor or to setClock(),
/// or wherever an overriding callLater() puts it (TM-3); with neither, on the
/// reactor of the protocol's transport (through a wrapper's, as Twisted's runs
/// on its global reactor), and starting one without any of these throws
/// std::logic_error. A pending countdown is cancelled when the object is destroyed.
class WEFT_EXPORT TimeoutMixin {
public:
    TimeoutMixin() = default;
    explicit TimeoutMixin(IReactorTime& clock) : clock_(&clock) {}
    virtual ~TimeoutMixin();
    TimeoutMixin(const TimeoutMixin&) = delete;
    TimeoutMixin& operator=(const TimeoutMixin&) = delete;

    /// Seconds of silence before timeoutConnection(); nullopt: none (Twisted's `timeOut`).
    std::optional<double> timeOut() const noexcept { return timeOut_; }

    /// Stores `period` and returns the previous one: nullopt cancels a pending
    /// countdown; a number restarts a pending one with the new period or starts
    /// one (TM-1).
    std::optional<double> setTimeout(std::optional<double> period);
    /// Restarts a pending countdown; nothing if none is pending or timeOut() is
    /// nullopt (TM-2).
    void resetTimeout();
    /// The clock later countdowns run on.
    void setClock(IReactorTime& clock) noexcept { clock_ = &clock; }

protected:
    /// The countdown expired (it is forgotten first). The default calls
    /// transport->loseConnection() when this object is a protocol with a
    /// transport (TM-2).
    virtual void timeoutConnection();
    /// Schedules the countdown; override to use another clock (TM-3).
    virtual DelayedCall callLater(double delay, Function<void()> f);

private:
    void timedOut();

    IReactorTime* clock_ = nullptr;
    std::optional<double> timeOut_;
    DelayedCall call_;
};

}  // namespace weft::policies
