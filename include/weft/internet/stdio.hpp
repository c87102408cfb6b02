// weft/internet/stdio.hpp — a stream protocol on standard input and output
// (twisted.internet.stdio.StandardIO). Spec: stdio.md STDIO-1..STDIO-22.
//
//     auto io = weft::stdio::StandardIO::create(reactor, std::make_shared<MyProtocol>());
//
// Bytes on stdin become dataReceived, write() goes to stdout; the end of
// stdin and a vanished stdout reader are half-close events, as on a TCP
// connection. Any two descriptors may stand in for 0 and 1 (pipes, sockets,
// terminals, regular files).
//
// Non-blocking mode: a descriptor's O_NONBLOCK flag belongs to the open file
// description, which other processes share (the shell's terminal, a pipe's
// other readers). weft sets it while the transport runs and puts each
// descriptor's original flags back at connectionLost, and at exit() for a
// transport still running then (STDIO-20). (libuv reopens a terminal through
// /proc/self/fd to get a description of its own; that cannot work for pipes
// and sockets, which are the common case here, so weft restores instead.)
//
// Closing never closes the caller's descriptors: loseConnection() stops
// reading stdin (its writer must not get SIGPIPE) and, once everything
// written has left, puts /dev/null in stdout's place, so the reader sees EOF
// at once and the number cannot be recycled by a later open() (STDIO-7).
// When the reactor ends with the transport open (its shutdown or its
// destruction), or a write fails, stdout stays what it was, flags restored:
// what the program prints after run() returns still goes there.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <weft/export.hpp>
#include <weft/internet/abstract.hpp>
#include <weft/internet/endpoints.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>

namespace weft::stdio {

namespace detail {
class StdinReader;
class StdoutWriter;
}  // namespace detail

/// Standard I/O as a transport (Twisted StandardIO).
class WEFT_EXPORT StandardIO final : public ITransport,
                                     public IConsumer,
                                     public IPushProducer,
                                     public IHalfCloseableTransport,
                                     public std::enable_shared_from_this<StandardIO> {
public:
    /// Starts reading `stdinFd`, makes `stdoutFd` ready for writing and calls
    /// protocol->makeConnection() before returning (STDIO-1). Throws
    /// std::system_error if a descriptor is not open. The descriptors stay
    /// the caller's: they are never closed (see the file comment).
    static std::shared_ptr<StandardIO> create(Reactor& reactor, std::shared_ptr<Protocol> protocol, int stdinFd = 0,
                                              int stdoutFd = 1);
    ~StandardIO() override;
    StandardIO(const StandardIO&) = delete;
    StandardIO& operator=(const StandardIO&) = delete;

    // ITransport / IConsumer
    using ITransport::write;
    /// Queued for stdout; dropped once stdout is closed or gone (STDIO-4, STDIO-6).
    void write(Bytes data) override;
    void writeSequence(std::span<const Bytes> chunks) override;
    /// Stops reading stdin, flushes stdout, then connectionLost(ConnectionDone) (STDIO-7).
    void loseConnection() override;
    /// The same, not waiting for a producer registered on stdout (see ITransport).
    void loseConnectionDespiteProducer() override;
    /// Flushes and closes stdout only; a half-closeable protocol hears
    /// writeConnectionLost() and reading goes on (STDIO-14).
    void loseWriteConnection() override;
    /// Why stdout ended, when it ended in an error: its reader went away
    /// (ConnectionLost carrying EPIPE), the device is full (ENOSPC), EIO. Null
    /// while stdout is open and once loseWriteConnection()/loseConnection()
    /// closed it. A half-closeable protocol hears writeConnectionLost() with
    /// no reason (as in Twisted); this tells it whether its output was lost.
    const Failure* writeFailure() const noexcept { return writeFailure_ ? &*writeFailure_ : nullptr; }
    /// PipeAddress, both (STDIO-5).
    Address getPeer() const override { return PipeAddress{}; }
    Address getHost() const override { return PipeAddress{}; }
    bool isConnected() const noexcept override { return state_ != State::disconnected; }
    bool isDisconnecting() const noexcept override { return state_ == State::disconnecting; }
    IConsumer* asConsumer() noexcept override { return this; }
    IPushProducer* asInputProducer() noexcept override { return this; }
    /// The producer feeds stdout; without stdout it is stopped at once (STDIO-6, STDIO-22).
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    void unregisterProducer() override;

    // IPushProducer: reading stdin (STDIO-21).
    void pauseProducing() override;
    void resumeProducing() override;
    void stopProducing() override { loseConnection(); }

    /// Internal (the two descriptors): stdin's data and end; stdout's end.
    void dataReceived(Bytes data);
    void readLost(const Failure& reason);
    void writeLost(const Failure& reason);
    /// Internal: one of the two descriptors has ended. When stdin and stdout
    /// share one open file description (one socket or terminal for both), its
    /// flags are put back only once both have (STDIO-20): before, the other
    /// half would turn blocking under the reactor.
    void descriptorEnded(bool reader, int fd);
    /// Internal: stdin and stdout are one open file description.
    bool sharesDescription() const noexcept { return sharedFd_ >= 0; }

private:
    struct Token {};

public:
    StandardIO(Token, Reactor& reactor, std::shared_ptr<Protocol> protocol);

private:
    enum class State : std::uint8_t { connected, disconnecting, disconnected };
    void connectionLost(const Failure& reason);
    void halfClosed(bool readSide);
    void close(bool despiteProducer);

    Reactor& reactor_;
    std::shared_ptr<Protocol> protocol_;
    std::shared_ptr<detail::StdinReader> reader_;
    std::shared_ptr<detail::StdoutWriter> writer_;
    State state_ = State::connected;
    bool readDone_ = false;
    bool writeDone_ = false;
    std::optional<Failure> writeFailure_;
    int sharedFd_ = -1;  // stdin's number, while it shares its file description with stdout
};

/// What StandardIOEndpoint::listen() fires with: a port that stands for its
/// one connection. stopListening() loses it; transport() is the connection
/// itself (what Twisted's endpoint fires with), for a caller that wants to
/// know when it ends, since no second connection will come.
class WEFT_EXPORT StandardIOPort final : public IListeningPort {
public:
    explicit StandardIOPort(std::shared_ptr<StandardIO> io) : io_(std::move(io)) {}
    void startListening() override {}
    Deferred<void> stopListening() override;
    Address getHost() const override { return PipeAddress{}; }
    const std::shared_ptr<StandardIO>& transport() const noexcept { return io_; }

private:
    std::shared_ptr<StandardIO> io_;
};

/// The `stdio:` endpoint (Twisted StandardIOEndpoint, EP-10): listen()
/// builds one protocol for PipeAddress and runs it on fds 0 and 1; it fires
/// with a StandardIOPort standing for that one connection.
class WEFT_EXPORT StandardIOEndpoint final : public IStreamServerEndpoint {
public:
    explicit StandardIOEndpoint(Reactor& reactor, int stdinFd = 0, int stdoutFd = 1)
        : reactor_(reactor), stdinFd_(stdinFd), stdoutFd_(stdoutFd) {}
    /// Fails with std::runtime_error if the factory builds no protocol, or
    /// with the error of StandardIO::create.
    Deferred<std::shared_ptr<IListeningPort>> listen(std::shared_ptr<Factory> factory) override;

private:
    Reactor& reactor_;
    int stdinFd_, stdoutFd_;
};

}  // namespace weft::stdio
