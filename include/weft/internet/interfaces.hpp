// weft/internet/interfaces.hpp — the written contracts of weft's reactor layer.
// Mirrors twisted.internet.interfaces. Each interface is an abstract class;
// implementations document which contract IDs (spec/*.md) they meet.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string_view>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/function.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/log.hpp>

namespace weft {

/// Scheduling of calls in time (Twisted IReactorTime). Implemented by every
/// reactor and by task::Clock, so code written against it is testable with a
/// deterministic clock.
class WEFT_EXPORT IReactorTime {
public:
    virtual ~IReactorTime() = default;

    /// The scheduler's current time in seconds. For reactors this is a monotonic
    /// clock (std::chrono::steady_clock), not wall time (Better than Twisted, R-22).
    virtual double seconds() const = 0;

    /// Schedules f to run once, `delay` seconds from now. Throws
    /// std::invalid_argument for a negative or NaN delay; f is then never called.
    /// f runs on the scheduler's thread; an exception it throws is logged (reactor)
    /// or propagates out of advance() (task::Clock).
    virtual DelayedCall callLater(double delay, Function<void()> f) = 0;

    /// Every call not yet run or cancelled, in no particular order.
    virtual std::vector<DelayedCall> getDelayedCalls() const = 0;

    template <class Rep, class Period>
    DelayedCall callLater(std::chrono::duration<Rep, Period> delay, Function<void()> f) {
        return callLater(std::chrono::duration<double>(delay).count(), std::move(f));
    }
};

/// The outcome of doRead()/doWrite(): empty to keep going, or the reason the
/// descriptor is finished.
using Reason = std::optional<Failure>;

/// A descriptor the reactor can watch (Twisted IFileDescriptor).
///
/// Ownership: the reactor holds a shared_ptr to every registered descriptor and
/// keeps an extra reference for the duration of each callback, so a descriptor
/// may drop every other reference to itself inside doRead/doWrite.
class IHalfCloseableDescriptor;

class WEFT_EXPORT IFileDescriptor : public virtual ILoggingContext {
public:
    /// The OS descriptor, or -1 if it has none (any more). A descriptor that
    /// reports -1 while registered is disconnected with ConnectionFdescWentAway.
    virtual int fileno() const = 0;

    /// Called exactly once by the reactor (or the transport itself) when the
    /// descriptor is finished, after it has been removed from the reactor.
    virtual void connectionLost(const Failure& reason) = 0;

    std::string logPrefix() const override { return "-"; }

    /// This descriptor as an IHalfCloseableDescriptor, or null. The default
    /// looks (a cross-cast); FileDescriptor answers directly, so the reactor
    /// does not walk a transport's class hierarchy at every end of input.
    virtual IHalfCloseableDescriptor* asHalfCloseable() noexcept;

    /// Why the descriptor failed when the reactor reports an error condition
    /// for it (EPOLLERR, POLLERR). The default reads a socket's pending error
    /// (SO_ERROR) and falls back to a ConnectionLost without an errno for
    /// other descriptors; a transport that is not a socket (a pipe, a PTY, a
    /// serial line) answers for its own kind.
    virtual Failure errorReason() const;
};

/// A descriptor with data to read (Twisted IReadDescriptor).
class WEFT_EXPORT IReadDescriptor : public virtual IFileDescriptor {
public:
    /// Called when fileno() is readable. Return a reason to end the descriptor.
    virtual Reason doRead() = 0;
};

/// A descriptor that wants to be told when it can write (Twisted IWriteDescriptor).
class WEFT_EXPORT IWriteDescriptor : public virtual IFileDescriptor {
public:
    /// Called when fileno() is writable. Return a reason to end the descriptor.
    virtual Reason doWrite() = 0;
};

/// Both (Twisted IReadWriteDescriptor).
class WEFT_EXPORT IReadWriteDescriptor : public IReadDescriptor, public IWriteDescriptor {};

/// A descriptor whose read side can end on its own (Twisted IHalfCloseableDescriptor).
/// A ConnectionDone returned by doRead() ends only the read side.
class WEFT_EXPORT IHalfCloseableDescriptor {
public:
    virtual ~IHalfCloseableDescriptor() = default;
    /// The read side ended; the write side may still be in use.
    virtual void readConnectionLost(const Failure& reason) = 0;
    /// The write side ended (after loseWriteConnection()).
    virtual void writeConnectionLost(const Failure& reason) = 0;
};

inline IHalfCloseableDescriptor* IFileDescriptor::asHalfCloseable() noexcept {
    return dynamic_cast<IHalfCloseableDescriptor*>(this);
}

/// Registration of descriptors with the reactor (Twisted IReactorFDSet).
/// All methods must be called on the reactor thread.
class WEFT_EXPORT IReactorFDSet {
public:
    virtual ~IReactorFDSet() = default;
    /// Calls reader->doRead() whenever its fileno() is readable, until
    /// removeReader(). Adding twice equals adding once. Throws
    /// std::system_error (EBADF) if fileno() is not an open descriptor.
    virtual void addReader(std::shared_ptr<IReadDescriptor> reader) = 0;
    /// Calls writer->doWrite() whenever its fileno() is writable, until removeWriter().
    virtual void addWriter(std::shared_ptr<IWriteDescriptor> writer) = 0;
    /// Stops read notifications; a no-op if not registered. No further doRead()
    /// call is made for it, even if readiness is already pending.
    virtual void removeReader(IReadDescriptor* reader) = 0;
    virtual void removeWriter(IWriteDescriptor* writer) = 0;
    /// Removes every reader and writer except the reactor's internal ones and
    /// returns them, each once.
    virtual std::vector<std::shared_ptr<IFileDescriptor>> removeAll() = 0;
    virtual std::vector<std::shared_ptr<IReadDescriptor>> getReaders() const = 0;
    virtual std::vector<std::shared_ptr<IWriteDescriptor>> getWriters() const = 0;

    void removeReader(const std::shared_ptr<IReadDescriptor>& r) { removeReader(r.get()); }
    void removeWriter(const std::shared_ptr<IWriteDescriptor>& w) { removeWriter(w.get()); }
};

// ---- producers and consumers (filedescriptor.md FD-42, FD-43) ------------------

/// Something that produces data for a consumer (Twisted IProducer).
class IPushProducer;
class IPullProducer;

class WEFT_EXPORT IProducer {
public:
    virtual ~IProducer() = default;
    /// The consumer is gone for good: stop producing and release what you hold.
    virtual void stopProducing() = 0;
    /// This producer as a push or pull producer, or null: the two interfaces
    /// below answer for themselves, so a consumer tells them apart with one
    /// virtual call instead of a cross-cast through the hierarchy.
    virtual IPushProducer* asPushProducer() noexcept { return nullptr; }
    virtual IPullProducer* asPullProducer() noexcept { return nullptr; }
};

/// A producer that writes whenever it likes until paused (Twisted IPushProducer).
class WEFT_EXPORT IPushProducer : public virtual IProducer {
public:
    /// The consumer's buffer is full: stop writing until resumeProducing().
    virtual void pauseProducing() = 0;
    /// Undoes a pauseProducing().
    virtual void resumeProducing() = 0;
    IPushProducer* asPushProducer() noexcept override { return this; }
};

/// A producer that writes once each time it is asked (Twisted IPullProducer).
class WEFT_EXPORT IPullProducer : public virtual IProducer {
public:
    /// Produce some data now, by writing to the consumer before returning.
    virtual void resumeProducing() = 0;
    IPullProducer* asPullProducer() noexcept override { return this; }
};

/// Bytes as weft passes them at its edges.
using Bytes = std::span<const std::byte>;

/// Views text as bytes (no copy).
inline Bytes asBytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// A sink for bytes with flow control (Twisted IConsumer).
class WEFT_EXPORT IConsumer {
public:
    virtual ~IConsumer() = default;
    /// Registers the producer feeding this consumer. `streaming` true: a push
    /// producer (IPushProducer), paused when the buffer fills; false: a pull
    /// producer (IPullProducer), asked for more each time the buffer drains.
    /// Throws std::runtime_error if a producer is already registered. The consumer
    /// holds the producer until unregisterProducer() or the end of the connection.
    virtual void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) = 0;
    /// Forgets the producer (without stopping it); a no-op if none is registered.
    virtual void unregisterProducer() = 0;
    /// Buffers data for sending; never blocks, never calls back synchronously.
    virtual void write(Bytes data) = 0;
};

/// A byte stream to a peer (Twisted ITransport).
class WEFT_EXPORT ITransport {
public:
    virtual ~ITransport() = default;
    /// Queues data; it leaves in order, with nothing lost, before any close.
    virtual void write(Bytes data) = 0;
    /// Queues several chunks as if written one after the other (one gather write, no copy).
    virtual void writeSequence(std::span<const Bytes> chunks) = 0;
    /// Closes after everything queued is sent (and, with a producer registered,
    /// after it is unregistered). connectionLost follows later, from the reactor.
    virtual void loseConnection() = 0;
    /// The remote and local addresses; still answered after the connection is lost.
    virtual Address getPeer() const = 0;
    virtual Address getHost() const = 0;

    void write(std::string_view s) { write(asBytes(s)); }
};

/// A protocol that wants to hear about each half of a connection closing on its
/// own (Twisted IHalfCloseableProtocol).
///
/// readConnectionLost(): the peer finished sending (EOF); the protocol may keep
/// writing and must eventually call loseConnection(). writeConnectionLost(): our
/// write half is shut, after loseWriteConnection() flushed — weft calls it for
/// every stream transport that supports half-close, TCP included.
class WEFT_EXPORT IHalfCloseableProtocol {
public:
    virtual ~IHalfCloseableProtocol() = default;
    virtual void readConnectionLost() = 0;
    virtual void writeConnectionLost() = 0;
};

}  // namespace weft
