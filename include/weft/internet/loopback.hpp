// weft/internet/loopback.hpp — two protocols talking to each other in memory
// (twisted.protocols.loopback). Spec: testing.md TEST-20 … TEST-27.
//
//   loopbackAsync          connects a server and a client protocol through
//                          in-memory transports pumped on a clock, with flow
//                          control (TEST-20 … TEST-25)
//   identityPumpPolicy, collapsingPumpPolicy
//                          how queued chunks are handed to dataReceived (TEST-22)
//   LoopbackRelay          a buffer that hands its contents to a target on
//                          clearBuffer() (TEST-26)
//
//   loopbackTCP            runs the pair over a real 127.0.0.1 TCP connection
//   loopbackUNIX           … or over a real UNIX socket (TEST-27)
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/export.hpp>
#include <weft/function.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/error.hpp>

namespace weft {
class Reactor;
}

namespace weft::loopback {

namespace detail {
struct Session;
}

/// The chunks one side has written and the other has not received yet
/// (Twisted _LoopbackQueue). Pump policies consume it.
class WEFT_EXPORT LoopbackQueue {
public:
    /// One queued item: a chunk, or nullopt for the disconnect marker.
    using Item = std::optional<std::vector<std::byte>>;

    /// True while items remain.
    explicit operator bool() const noexcept { return !items_.empty(); }
    /// Removes and returns the oldest item: a chunk, or nullopt for the
    /// disconnect marker. Throws std::out_of_range when empty.
    Item get();
    /// Appends an item and wakes a waiting loopback pump.
    void put(Item item);
    /// Bytes in the queued chunks.
    std::size_t pendingBytes() const noexcept { return bytes_; }
    /// True once the writing side called loseConnection()/abortConnection().
    bool disconnect = false;

private:
    friend struct detail::Session;
    std::deque<Item> items_;
    std::size_t bytes_ = 0;
    Function<void()> onPut_;
};

/// Delivers queued chunks to `target` (TEST-22): called with the side's
/// outgoing queue and the peer protocol; must take what it delivers with get().
using PumpPolicy = std::function<void(LoopbackQueue& queue, Protocol& target)>;

/// Delivers each queued chunk as its own dataReceived() call, stopping at the
/// disconnect marker (Twisted identityPumpPolicy).
WEFT_EXPORT void identityPumpPolicy(LoopbackQueue& queue, Protocol& target);

/// Joins every queued chunk up to the disconnect marker into one
/// dataReceived() call (none if there were no bytes) (Twisted collapsingPumpPolicy).
WEFT_EXPORT void collapsingPumpPolicy(LoopbackQueue& queue, Protocol& target);

/// The transport loopbackAsync() gives each protocol (Twisted
/// _LoopbackTransport; TEST-23 … TEST-25).
///
/// write() queues a copy for the peer; nothing is delivered on the caller's
/// stack. Flow control (Better than Twisted): a push producer is paused when a
/// write leaves more than bufferSize bytes queued and resumed once the pump has
/// emptied the queue (FD-24, FD-26); a pull producer is resumed at registration
/// and each time the pump empties the queue. When the connection ends the
/// producer is stopped before the protocol's connectionLost (FD-30). After that
/// the transport is inert: writes are ignored.
class WEFT_EXPORT LoopbackTransport : public ITransport, public IConsumer {
public:
    IConsumer* asConsumer() noexcept override { return this; }
    /// Internal: made by loopbackAsync().
    LoopbackTransport(std::shared_ptr<detail::Session> session, int side);

    /// Queue size above which a push producer is paused (default 65536; FD-21).
    std::size_t bufferSize = 65536;

    /// True until the connection has ended (both connectionLost calls made).
    bool connected() const noexcept;
    /// True once loseConnection()/abortConnection() was called on this side.
    bool disconnecting() const noexcept { return disconnecting_; }
    /// connected() and disconnecting(), as code under test sees them through ITransport.
    bool isConnected() const noexcept override { return connected(); }
    bool isDisconnecting() const noexcept override { return disconnecting_; }
    /// The registered producer, or null.
    const std::shared_ptr<IProducer>& producer() const noexcept { return producer_; }
    /// True while this transport has paused its push producer.
    bool producerPaused() const noexcept { return paused_; }

    using ITransport::write;
    /// Queues a copy of data for the peer; ignored once disconnecting or
    /// disconnected (so nothing written after the marker is ever delivered).
    void write(Bytes data) override;
    /// Queues the chunks joined into one.
    void writeSequence(std::span<const Bytes> chunks) override;
    /// Queues the disconnect marker (once); the pump then delivers what is
    /// left and ends the connection (TEST-23).
    void loseConnection() override;
    /// Same as loseConnection() here.
    void abortConnection() { loseConnection(); }
    /// A placeholder address: NoAddress (Twisted _LoopbackAddress).
    Address getHost() const override { return NoAddress{}; }
    /// A placeholder address: NoAddress.
    Address getPeer() const override { return NoAddress{}; }
    /// Registers the producer; throws std::runtime_error if one is already
    /// registered. A pull producer is resumed before this returns (TEST-25).
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    /// Forgets the producer (no-op if none).
    void unregisterProducer() override;

private:
    friend struct detail::Session;
    void pollProducer();
    void maybePause();

    std::shared_ptr<detail::Session> session_;
    int side_;
    std::shared_ptr<IProducer> producer_;
    bool streaming_ = false;
    bool paused_ = false;
    bool disconnecting_ = false;
};

/// Connects `server` and `client` in memory (Twisted loopbackAsync; TEST-20 …
/// TEST-25): calls server->makeConnection() then client->makeConnection() with
/// LoopbackTransports, delivers what was written so far, and returns a
/// Deferred that fires once either side has closed and both protocols got
/// connectionLost(Failure(ConnectionDone)), server first.
///
/// Delivery never re-enters: bytes written while the pump is idle are delivered
/// in a call scheduled on `clock` (callLater(0)), so a protocol's dataReceived
/// never runs while its peer's write() is on the stack. Each pump pass delivers
/// the server's output to the client first, then the client's to the server,
/// through `pumpPolicy`. Pass a task::Clock and advance() it, or a Reactor and
/// run it; `clock` must outlive the connection.
///
/// Ownership: like a real connection, the loopback owns both protocols until
/// both connectionLost calls have returned; a test that never closes the
/// connection leaks them. An exception from a protocol callback during a
/// scheduled pump ends the pumping and fails the Deferred with it.
WEFT_EXPORT Deferred<void> loopbackAsync(std::shared_ptr<Protocol> server, std::shared_ptr<Protocol> client,
                                         IReactorTime& clock, PumpPolicy pumpPolicy = identityPumpPolicy,
                                         std::size_t bufferSize = 65536);

/// Runs `server` and `client` over a real TCP connection on 127.0.0.1 (Twisted
/// loopbackTCP; TEST-27): listens on 127.0.0.1:`port` (0: a free one) with a
/// factory that hands out `server` once (later connections are refused) and
/// connects to it with a ClientFactory that hands out `client`. Both protocols
/// see the real tcp::Connection as their transport; the server is reached
/// through a wrapper that forwards every callback (half-close ones too, when
/// `server` is an IHalfCloseableProtocol).
///
/// The Deferred fires once the client's connectionLost and the factory's
/// clientConnectionLost have run, the server's connectionLost has returned,
/// and the listening port has stopped (its stopListening() Deferred fired), in
/// whatever order the two sides closed. The protocols close the connection
/// themselves; run `reactor` until the Deferred fires.
///
/// Throws std::invalid_argument for a null protocol and error::CannotListenError
/// if the port cannot be bound (nothing is started then). If the connection
/// attempt fails, the port is stopped and the Deferred fails with the attempt's
/// reason (Better than Twisted, whose Deferred never fires then).
///
/// Ownership: the listening port and the connection hold both protocols until
/// the connection has ended; a pair that never closes keeps them alive.
WEFT_EXPORT Deferred<void> loopbackTCP(Reactor& reactor, std::shared_ptr<Protocol> server,
                                       std::shared_ptr<Protocol> client, std::uint16_t port = 0);

/// loopbackTCP over a UNIX stream socket at `path` (Twisted loopbackUNIX;
/// TEST-27). An empty path picks a fresh abstract-namespace name, so nothing
/// is left in the filesystem; a filesystem path is removed when the port stops.
WEFT_EXPORT Deferred<void> loopbackUNIX(Reactor& reactor, std::shared_ptr<Protocol> server,
                                        std::shared_ptr<Protocol> client, std::string path = {});

/// A transport that buffers writes until clearBuffer() hands them to `target`
/// (Twisted LoopbackRelay; TEST-26). The target is held weakly (the test owns
/// it); clearBuffer() does nothing for a target that is gone.
class WEFT_EXPORT LoopbackRelay : public ITransport, public IConsumer, public virtual ILoggingContext {
public:
    IConsumer* asConsumer() noexcept override { return this; }
    /// A relay delivering to target.
    explicit LoopbackRelay(std::shared_ptr<Protocol> target);

    /// The bytes written and not yet delivered.
    const std::string& buffer() const noexcept { return buffer_; }
    /// The registered producer, or null.
    const std::shared_ptr<IProducer>& producer() const noexcept { return producer_; }

    using ITransport::write;
    /// Appends to the buffer.
    void write(Bytes data) override;
    /// Appends each chunk.
    void writeSequence(std::span<const Bytes> chunks) override;
    /// Resumes a registered producer, then delivers the whole buffer in one
    /// dataReceived() (if non-empty), then, if loseConnection() was called,
    /// calls target->connectionLost(Failure(ConnectionDone)) exactly once. Does
    /// nothing after that.
    void clearBuffer();
    /// Marks the relay to report the loss at the next clearBuffer().
    void loseConnection() override;
    /// NoAddress (Twisted returns the string "loopback"; weft's Address has no
    /// free-text form).
    Address getHost() const override { return NoAddress{}; }
    /// NoAddress (see getHost).
    Address getPeer() const override { return NoAddress{}; }
    /// Records the producer (resumed by every clearBuffer()); throws
    /// std::runtime_error if one is already registered.
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    /// Forgets the producer.
    void unregisterProducer() override { producer_.reset(); }
    /// "Loopback('<TargetClass>')".
    std::string logPrefix() const override;

private:
    enum class Lose { no, pending, done };
    std::weak_ptr<Protocol> target_;
    std::string targetName_;
    std::string buffer_;
    std::shared_ptr<IProducer> producer_;
    Lose lose_ = Lose::no;
};

}  // namespace weft::loopback
