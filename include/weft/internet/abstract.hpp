// weft/internet/abstract.hpp — FileDescriptor, the base of every selectable
// transport (twisted.internet.abstract.FileDescriptor). Spec: filedescriptor.md.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <variant>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/interfaces.hpp>

namespace weft {

/// What writeSomeData() reports: the number of bytes the kernel took (0 when it
/// would block), or the reason the descriptor is finished.
using WriteResult = std::variant<std::size_t, Failure>;

namespace detail {
struct Chunk;

/// The pending output: a singly linked list of chunks with an offset into the
/// first. Data is copied once, when written; small writes share a chunk, large
/// ones get their own (a moved-in vector becomes a chunk without a copy), and
/// gather() hands the queue to one scatter write without copying again.
/// Bytes that lie in the read buffer of the read in progress on this thread
/// (a protocol echoing or forwarding what dataReceived was given) are not
/// copied at all: the queue borrows them, and whatever the flush at the end
/// of that dispatch leaves unsent is copied before the buffer is used again.
/// An empty queue owns no memory (an idle connection costs nothing here), and
/// drained chunks go back to a small per-thread free list, so neither a busy
/// stream nor a request/response exchange allocates per write.
class WEFT_EXPORT WriteQueue {
public:
    WriteQueue() = default;
    ~WriteQueue();
    WriteQueue(const WriteQueue&) = delete;
    WriteQueue& operator=(const WriteQueue&) = delete;

    void append(Bytes data);
    void append(std::vector<std::byte>&& data);
    /// Fills up to maxIov entries with at most `limit` unsent bytes; returns the count.
    int gather(iovec* iov, int maxIov, std::size_t limit) const;
    /// Drops n sent bytes from the front (n <= size()).
    void consume(std::size_t n);
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    void clear() noexcept;
    /// Copies every borrowed chunk (bytes still in the thread's read buffer,
    /// queued without a copy by append) into memory the queue owns: the room
    /// for them was taken when they were queued, so this cannot fail.
    void materialize() noexcept;

private:
    void push(Chunk* c) noexcept;
    bool borrow(Bytes data);
    void unlist() noexcept;

    Chunk* head() const noexcept;

    // The chunks form a ring: tail_ is the newest chunk (where small writes are
    // appended) and tail_->next the oldest, whose data[sent] is the next unsent
    // byte. One pointer instead of head and tail: every connection has a queue.
    Chunk* tail_ = nullptr;
    // One word for both (every connection has a queue): the unsent bytes, and
    // whether the queue is in the read buffer's list of borrowers.
    std::size_t size_ : 63 = 0;
    std::size_t listed_ : 1 = 0;
};
}  // namespace detail

/// The abstract base of every selectable transport.
///
/// State is one machine (FD-1): fresh → connected → disconnecting → disconnected,
/// plus the write half: open → closing (loseWriteConnection pending) → closed.
/// `connected()`, `disconnecting()` and `disconnected()` are derived from it.
///
/// Output: write()/writeSequence() queue bytes and register for writability; they
/// never do I/O and never call back (FD-4). doWrite() hands up to SEND_LIMIT bytes
/// of the queue to writeSomeData() as one gather write (FD-16, FD-17).
///
/// Flow control (FD-22..FD-30): the descriptor is a consumer — a push producer is
/// paused when more than bufferSize unsent bytes are queued and resumed when the
/// queue drains; a pull producer is asked for more each time it drains. It is
/// also a push producer for its input: pauseProducing() stops reading (FD-35).
///
/// Ownership: create it with std::make_shared; the reactor holds it while it is
/// registered and during every callback. A close is a request: loseConnection(),
/// loseWriteConnection() and stopProducing() only change state; connectionLost()
/// is called later by the reactor (or by a call it scheduled), never on the
/// caller's stack (FD-14, Better than Twisted).
class WEFT_EXPORT FileDescriptor : public IReadWriteDescriptor,
                                   public IHalfCloseableDescriptor,
                                   public IHalfCloseableTransport,
                                   public IConsumer,
                                   public IPushProducer,
                                   public ITransport,
                                   public std::enable_shared_from_this<FileDescriptor> {
public:
    /// Most bytes handed to one writeSomeData() call (Twisted SEND_LIMIT).
    static constexpr std::size_t SEND_LIMIT = 128 * 1024;

    /// fresh → connected → (disconnecting →) disconnected; aborting from any
    /// state before disconnected (a transport's abortConnection: no more I/O,
    /// connectionLost(ConnectionAborted) to follow).
    enum class State : std::uint8_t { fresh, connected, disconnecting, aborting, disconnected };
    enum class WriteHalf : std::uint8_t { open, closing, closed };

    explicit FileDescriptor(Reactor& reactor);
    ~FileDescriptor() override;
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;

    /// Buffer threshold for pausing a push producer, and the most bytes one read
    /// takes (FD-21). May be changed at any time.
    std::size_t bufferSize = 65536;

    Reactor& reactor() const noexcept { return reactor_; }
    State state() const noexcept { return state_; }
    WriteHalf writeHalf() const noexcept { return writeHalf_; }
    /// True once the transport can carry bytes, until connectionLost (also while
    /// disconnecting or aborting: TCP-33).
    bool connected() const noexcept {
        return state_ == State::connected || state_ == State::disconnecting || state_ == State::aborting;
    }
    bool disconnecting() const noexcept { return state_ == State::disconnecting; }
    bool disconnected() const noexcept { return state_ == State::disconnected; }
    bool isConnected() const noexcept override { return connected(); }
    bool isDisconnecting() const noexcept override { return disconnecting(); }
    IConsumer* asConsumer() noexcept override { return this; }
    IPushProducer* asInputProducer() noexcept override { return this; }
    /// Unsent bytes queued.
    std::size_t pendingBytes() const noexcept override { return queue_.size(); }

    // ---- ITransport / IConsumer ---------------------------------------------
    using ITransport::write;
    /// Queues a copy of data (FD-4, FD-5, FD-11). Discarded when not connected or
    /// when the write half is shut; an empty write does nothing.
    void write(Bytes data) override;
    /// Queues data without copying it.
    void write(std::vector<std::byte>&& data);
    /// Queues every chunk in order; flow control is checked once at the end (FD-7).
    void writeSequence(std::span<const Bytes> chunks) override;
    /// Closes once the queue is flushed and any producer unregistered (FD-9..FD-13).
    void loseConnection() override;
    /// Closes once the queue is flushed, producer or not; a close that already
    /// waits for unregisterProducer() goes ahead (see ITransport).
    void loseConnectionDespiteProducer() override;
    /// Shuts the write half once the queue is flushed; reading goes on (FD-31).
    void loseWriteConnection() override;
    /// Registers the producer feeding this transport (FD-22): throws
    /// std::runtime_error naming both producers if one is registered, and
    /// std::invalid_argument if `producer` is null or not the kind `streaming`
    /// says (IPushProducer / IPullProducer). On a disconnected descriptor it calls
    /// producer->stopProducing() instead. A pull producer's resumeProducing() is
    /// called before this returns. The descriptor holds the producer (and keeps it
    /// alive across every call it makes into it) until unregisterProducer() or
    /// connectionLost(), which calls stopProducing() first (FD-2, FD-30).
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    /// Forgets the producer without stopping it; no error if none (FD-28). Clears
    /// the paused flag and, while a close or half-close is pending, registers for
    /// writing so it can finish (Better than Twisted).
    void unregisterProducer() override;
    /// unregisterProducer() then loseConnection() (FD-29).
    void stopConsuming();
    /// The registered producer, if any.
    const std::shared_ptr<IProducer>& producer() const noexcept { return producer_; }
    bool producerPaused() const noexcept { return producerPaused_; }
    /// True if the registered producer was registered as streaming (push).
    bool producerStreaming() const noexcept { return streaming_; }

    // ---- IPushProducer (input flow control, FD-35) ---------------------------
    /// Stops reading (in any state).
    void pauseProducing() override;
    /// Starts reading again, only while connected and not disconnecting.
    void resumeProducing() override;
    /// loseConnection().
    void stopProducing() override;

    // ---- reactor interface -----------------------------------------------------
    int fileno() const override { return -1; }
    std::string logPrefix() const override { return "-"; }
    Reason doWrite() override;
    /// Ends the descriptor (FD-2): state disconnected, producer stopped and
    /// forgotten, reading and writing stopped. Overrides must call this.
    void connectionLost(const Failure& reason) override;
    /// Base behaviour: connectionLost(reason) (FD-33).
    void readConnectionLost(const Failure& reason) override;
    void writeConnectionLost(const Failure& reason) override;
    IHalfCloseableDescriptor* asHalfCloseable() noexcept override { return this; }
    FileDescriptor* asFileDescriptor() noexcept override { return this; }

    /// addReader/removeReader/addWriter/removeWriter on reactor() (FD-3).
    void startReading();
    void stopReading();
    void startWriting();
    void stopWriting();

    /// The prefix to log an application object under (FD-37; Twisted
    /// _LogOwner._getLogPrefix): its logPrefix() if it is an ILoggingContext,
    /// otherwise its class name without namespaces. A logPrefix() that throws
    /// is logged and the class name used: the prefix is asked for on error
    /// paths, which must go on.
    template <class T>
    static std::string getLogPrefix(const T& object) {
        if constexpr (std::is_polymorphic_v<T>) {
            if (auto* context = dynamic_cast<const ILoggingContext*>(&object)) return contextPrefix(*context);
        }
        return className(typeid(object));
    }

protected:
    /// Writes as much of `data` as the kernel takes now (FD-20): the count, 0 when
    /// it would block, or a ConnectionLost-kind reason. Must not block or throw.
    virtual WriteResult writeSomeData(std::span<const iovec> data) = 0;
    /// The write half was shut (after the flush): e.g. shutdown(SHUT_WR). The base does nothing (FD-33).
    virtual Reason closeWriteConnection() { return std::nullopt; }
    /// Marks the descriptor connected (subclasses call it once they can carry bytes).
    void setConnected() noexcept;
    /// Drops every queued byte and shuts the write half, so later writes are
    /// discarded (abortConnection). Does not unregister anything.
    void discardOutput() noexcept;
    /// Enters State::aborting: stops reading and writing and drops the output.
    /// False (nothing done) once disconnected or already aborting.
    bool beginAbort() noexcept;

    /// How writeToFD writes: writev() for any descriptor; for a socket, send()
    /// of a single buffer or sendmsg() of several, both with MSG_NOSIGNAL (a
    /// reset peer never raises SIGPIPE). send() is the cheaper call in the
    /// kernel when there is nothing to gather (bench/README.md).
    enum class FDKind : std::uint8_t { any, socket };
    /// Writes iovecs to fd through the syscall seam: retries EINTR, 0 for EAGAIN
    /// or ENOBUFS, ConnectionLost(errno) otherwise. For subclasses' writeSomeData.
    static WriteResult writeToFD(int fd, std::span<const iovec> data, FDKind kind = FDKind::any);

    /// True when a push producer should be paused: more than bufferSize bytes
    /// queued. A subclass with more to send than bytes (UNIX descriptors) widens it.
    virtual bool isSendBufferFull() const noexcept { return queue_.size() > bufferSize; }
    /// Pauses the push producer on the transition to full (FD-24); write() calls it.
    void maybePauseProducer();

private:
    static std::string className(const std::type_info& type);
    static std::string contextPrefix(const ILoggingContext& context);

    Reactor& reactor_;
    detail::WriteQueue queue_;
    std::shared_ptr<IProducer> producer_;
    // Where this descriptor is in the reactor's list of descriptors alive on it
    // (Reactor::disconnectAll tells those it no longer watches; R-7, Better
    // than Twisted); kNotLive once the reactor is gone. With the one-byte
    // fields below it fills one word, as the flags alone did before.
    friend class Reactor;
    friend struct detail::Registration;
    static constexpr std::uint32_t kNotLive = UINT32_MAX;
    std::uint32_t liveIndex_ = kNotLive;
    // The fd this descriptor is registered under in reactor_ (-1: none), so
    // the reactor finds its registration without a table keyed by descriptor.
    std::int32_t regFd_ = -1;
    State state_ = State::fresh;
    WriteHalf writeHalf_ = WriteHalf::open;
    bool streaming_ : 1 = false;
    bool producerPaused_ : 1 = false;
    bool lossScheduled_ : 1 = false;
    bool closeDespiteProducer_ : 1 = false;  // the close being made does not wait for the producer
};

}  // namespace weft
