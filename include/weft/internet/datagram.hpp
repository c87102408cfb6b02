// weft/internet/datagram.hpp — the datagram layer: what every datagram port
// shares, UDP, UNIX datagram and tun/tap (weft/pair/tuntap.hpp) alike — the
// descriptor, the receive loop bounded by maxThroughput per readable event
// (one recvmmsg batch per step for sockets, one read(2) per packet for a tun
// device), the immediate send path and the stop/close life cycle.
//
// Ownership (docs/ownership.md): the reactor holds a port while it is reading;
// the port holds its protocol for its whole life (it may listen again); the
// protocol holds the port in `transport` until doStop(). The receive loop keeps
// the port and the protocol alive across every callback and looks at the
// port's state again after each one (UDP-11). Closing is a request:
// stopListening() schedules the close, and stopProtocol() runs on a later
// iteration, never on the caller's stack (UDP-20).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/error.hpp>

namespace weft {

/// The base of every datagram port (Twisted udp.Port's FileDescriptor half).
///
/// Receiving (UDP-6, UDP-7, UDP-9..UDP-11): on a readable event the port
/// fetches datagrams in batches with recvmmsg() into a receive buffer it owns
/// and reuses, and hands each to the protocol as a view, until the socket is
/// drained or maxThroughput bytes were read in this event. A datagram longer
/// than maxPacketSize is dropped and logged, never delivered cut. Would-block
/// and EINTR end the event; ECONNREFUSED ends it and, on a connected socket,
/// calls protocol->connectionRefused(); any other error is logged with its
/// errno and the port stays open (Better than Twisted).
///
/// Sending: write()/writeSequence() go to the kernel at once with one
/// sendmsg() (chunks gathered, not joined). EINTR is retried; would-block (or
/// ENOBUFS) drops the datagram, returns 0 and counts it (droppedDatagrams());
/// EMSGSIZE throws error::MessageLengthError; ECONNREFUSED is reported through
/// connectionRefused() on a connected socket and ignored on an unconnected UDP
/// one; anything else throws std::system_error naming the destination.
class WEFT_EXPORT DatagramSocket : public IDatagramTransport,
                                   public IReadDescriptor,
                                   public IHalfCloseableDescriptor,
                                   public std::enable_shared_from_this<DatagramSocket> {
public:
    ~DatagramSocket() override;
    DatagramSocket(const DatagramSocket&) = delete;
    DatagramSocket& operator=(const DatagramSocket&) = delete;

    /// Most bytes one readable event reads before yielding to the loop
    /// (Twisted maxThroughput). May be changed at any time.
    std::size_t maxThroughput = 256 * 1024;

    /// Stops reading now; the socket closes on a later iteration, where
    /// protocol->doStop() runs (stopProtocol() when it was the protocol's last
    /// port) and the Deferred fires. On a port that is not open it returns an
    /// already-fired Deferred (Twisted: None). Asking again while the close is
    /// pending returns another Deferred fired at the same time (UDP-20).
    Deferred<void> stopListening() override;
    /// stopListening(), ignoring the Deferred (Twisted's deprecated alias).
    void loseConnection() override;
    std::uint64_t droppedDatagrams() const override { return dropped_; }
    /// Datagrams dropped on receipt because they were longer than maxPacketSize (UDP-7).
    std::uint64_t truncatedDatagrams() const noexcept { return truncated_; }
    std::size_t maxPacketSize() const noexcept { return maxPacketSize_; }
    /// The largest maxPacketSize a port takes (16 MiB); a larger one, or 0,
    /// is refused with std::invalid_argument.
    static constexpr std::size_t kMaxPacketSizeLimit = std::size_t{1} << 24;
    /// True from a successful listen until the close is requested.
    bool listening() const noexcept { return state_ == State::listening; }
    /// The socket; -1 when closed.
    int getHandle() const noexcept { return fd_; }

    /// Input flow control: stop reading until resumeProducing() (even from
    /// inside datagramReceived: the current batch ends there, and the
    /// datagrams of it already taken from the kernel wait for the resume).
    void pauseProducing();
    /// Reads again, while listening; what a pause left of the last batch is
    /// delivered first, on a later iteration.
    void resumeProducing();

    // ---- reactor interface ----------------------------------------------------
    int fileno() const override { return fd_; }
    /// False: a paused port is not ended by an error event (an ICMP refusal);
    /// it reads the error, as connectionRefused(), once resumed (UDP-10).
    bool watchedWhilePaused() const noexcept override { return false; }
    Reason doRead() override;
    /// Closes the socket (once), then calls protocol->doStop() if it was
    /// attached and fires the stopListening() Deferreds. What doStop() throws
    /// fails those Deferreds, or propagates when there are none.
    void connectionLost(const Failure& reason) override;
    /// An error event without data, which for a datagram socket is a
    /// pending socket error (an ICMP refusal), not the end of a stream: the
    /// error is taken (SO_ERROR) and handled as a receive error would be, and
    /// reading goes on. An event with no error pending closes the port.
    void readConnectionLost(const Failure& reason) override;
    /// Not used by datagram sockets.
    void writeConnectionLost(const Failure&) override {}

protected:
    enum class State : std::uint8_t { closed, listening, stopping };

    DatagramSocket(Reactor& reactor, std::shared_ptr<AbstractDatagramProtocol> protocol, std::size_t maxPacketSize);

    /// Hands one datagram, received from `from`, to the protocol.
    virtual void deliver(Bytes datagram, const sockaddr* from, socklen_t fromLength) = 0;
    /// Whether the socket is connected to a single peer (ECONNREFUSED handling).
    virtual bool connectedToPeer() const noexcept = 0;
    /// Called once the socket is closed, before doStop(): log, remove files.
    virtual void closed() {}
    /// Tells the protocol of a refusal (connectionRefused()); what that throws
    /// is logged and the port stays open, as for datagramReceived (UDP-9).
    void reportRefusal();
    /// The protocol's log prefix, for the start and close lines.
    std::string protocolPrefix() const;
    /// The protocol's qualified class name, for repr().
    std::string protocolClassName() const;

    /// What one step of the receive loop did: the bytes it read, and whether
    /// the descriptor may have more (false: it would block, was interrupted,
    /// or gave fewer datagrams than asked for).
    struct Received {
        std::size_t bytes = 0;
        bool more = false;
    };
    /// One step of the receive loop that doRead() runs: receives what one
    /// system call gives and hands each datagram to the protocol. `budget` is
    /// what is left of maxThroughput for this event (at least 1). The default
    /// is one recvmmsg() batch sized to the budget (UDP-6, UDP-7, UDP-9,
    /// UDP-10). doRead() owns the rest of the loop: the budget, keeping the
    /// port and its protocol alive, refusing to nest, and stopping as soon as
    /// a callback stopped, paused or closed the port (stillReading()). What
    /// this throws propagates out of doRead(), and the reactor ends the port.
    virtual Received receiveSome(std::size_t budget);
    /// Whether the receive loop may go on: open, listening and not paused. A
    /// step checks it after every callback it makes.
    bool stillReading() const noexcept { return fd_ >= 0 && state_ == State::listening && !paused_; }
    /// Closes the descriptor (connectionLost, a failed attach). The default is
    /// close(2) through the syscall seam; a port whose descriptor comes from
    /// elsewhere (a tun port's System) closes it there. A subclass that
    /// overrides it closes its descriptor in its own destructor.
    virtual void closeDescriptor(int fd) noexcept;

    /// Takes `fd` (bound, non-blocking), logs "<protocol prefix> starting on
    /// <where>", attaches the protocol (makeConnection → startProtocol) and
    /// starts reading unless the protocol stopped the port meanwhile. If
    /// makeConnection throws, the socket is closed and the exception propagates.
    void attach(int fd, const std::string& where);
    /// Names a destination in an error message. It refers to a callable that
    /// outlives the send (a lambda at the call), which builds the text only
    /// when an error is thrown: a successful send formats nothing.
    class Describe {
    public:
        template <class F>
        requires(!std::is_same_v<F, Describe>) Describe(const F& f)
        noexcept  // NOLINT: implicit, from a lambda at the call
            : context_(&f), call_([](const void* c) -> std::string { return (*static_cast<const F*>(c))(); }) {}
        std::string operator()() const { return call_(context_); }

    private:
        const void* context_;
        std::string (*call_)(const void*);
    };
    /// Sends `data` as one datagram to `to` (null: the connected peer); see
    /// the class comment for the outcomes. `describe` names the destination
    /// in error messages.
    std::size_t sendDatagram(const sockaddr* to, socklen_t toLength, std::span<const iovec> data,
                             const Describe& describe);
    /// sendDatagram() for chunks (gathered with up to IOV_MAX iovecs).
    std::size_t sendChunks(const sockaddr* to, socklen_t toLength, std::span<const Bytes> chunks,
                           const Describe& describe);
    /// Throws std::logic_error if the protocol is attached to another transport.
    void checkProtocolFree() const;
    /// Throws std::logic_error while a stopListening() has not finished: the
    /// socket is still open, so a start now would do nothing (UDP-20).
    void checkNotStopping() const;
    void startReading();
    void stopReading();

    Reactor& reactor_;
    std::shared_ptr<AbstractDatagramProtocol> protocol_;
    int fd_ = -1;
    State state_ = State::closed;
    /// ECONNREFUSED from a send on an unconnected socket: ignored (UDP-14) or
    /// thrown like any other error (UNIX-25).
    bool ignoreUnconnectedRefusal_ = true;

private:
    struct ReceiveBuffers;
    void deliverBatch(ReceiveBuffers& rx, int first, int count, std::size_t& read, bool& stop);

    std::unique_ptr<ReceiveBuffers> rx_;  // made at the first read, kept until destruction
    std::vector<Deferred<void>> stopWaiters_;
    // While paused: a during-shutdown trigger that closes the port, which is
    // then in no reader set for the reactor's shutdown to find.
    std::optional<TriggerId> shutdownWhilePaused_;
    void forgetShutdownTrigger() noexcept;
    std::size_t maxPacketSize_;
    std::uint64_t dropped_ = 0;
    std::uint64_t truncated_ = 0;
    bool attached_ = false;  // makeConnection() succeeded; doStop() owed
    bool reading_ = false;   // registered with the reactor for reading
    bool paused_ = false;
    bool inRead_ = false;  // doRead() is on the stack (a nested loop must not reuse the buffer)
};

}  // namespace weft
