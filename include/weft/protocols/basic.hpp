// weft/protocols/basic.hpp — line, netstring and length-prefixed framing, and
// a producer that sends a file (twisted.protocols.basic).
// Spec: protocols.md LR-1..LR-11, LOR-1..LOR-3, NS-1..NS-4, INTN-1..INTN-4,
// FS-1..FS-4.
//
// Text at the edges. Lines and strings arrive as std::string_view, raw data as
// Bytes; both are views into the receiver's buffer, valid until the callback
// returns (copy what you keep). Feeding data back from inside a callback
// (setLineMode(extra), a nested dataReceived) queues it behind what is
// buffered and never invalidates the view being delivered.
//
// Twisted's "a callback returns a non-null value": in Twisted, returning a
// value from lineReceived, rawDataReceived or lineLengthExceeded stops the
// parse and makes dataReceived return it, which ends the connection with that
// reason. weft's callbacks return void; they call stopReceiving(reason)
// instead, which stops delivery for good, logs the reason (warning level),
// keeps it in stopReason() and asks the transport to loseConnection(). The
// protocol's connectionLost() still gets the transport's own reason
// (ConnectionDone after the flush); stopReason() tells why the peer was cut off.
//
// Bounded and linear. Each receiver holds at most its limit plus one read of
// unparsed input: an oversized line or frame is refused as soon as it is
// certain (not when it completes), through lineLengthExceeded /
// lengthLimitExceeded / a NetstringParseError, whose defaults call
// stopReceiving() with a LengthLimitExceededError or NetstringParseError. A
// line growing a byte at a time is never scanned again from its start (the
// search resumes where it stopped), frames are delivered as views without a
// copy, and the consumed front of the buffer is dropped only once it
// outweighs the rest, so the cost is amortised O(1) per byte received.
//
// Re-entrancy: every receiver tolerates, from inside its callbacks,
// loseConnection(), stopReceiving(), pauseProducing()/stopProducing(), mode
// switches, clearLineBuffer(), nested dataReceived() calls (queued, never
// nested: the stack depth stays constant, LR-8) and a `transport` reset to
// null. An exception from a callback propagates out of dataReceived() (a
// reactor logs it and ends the connection); the frame it was given counts as
// delivered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>

namespace weft::basic {

/// A netstring that breaks the format (Twisted NetstringParseError, a
/// ValueError): the reason a NetstringReceiver gives stopReceiving() (NS-3).
class WEFT_EXPORT NetstringParseError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// sendString() of a string whose length does not fit the prefix (Twisted
/// StringTooLongError, an AssertionError; INTN-2).
class WEFT_EXPORT StringTooLongError : public std::length_error {
public:
    using std::length_error::length_error;
};

/// A line or length-prefixed string over MAX_LENGTH: the reason the default
/// lineLengthExceeded() and lengthLimitExceeded() give stopReceiving(). weft's
/// own (Twisted only closes the connection).
class WEFT_EXPORT LengthLimitExceededError : public std::runtime_error {
public:
    /// `what` names the frame ("line", "string"); `length` is its length, or
    /// for a line without its end yet, the bytes buffered so far.
    LengthLimitExceededError(std::string_view what, std::size_t length, std::size_t limit);
    std::size_t length;
    std::size_t limit;
};

namespace detail {

/// The input buffer of the receivers below (not part of the API): a string
/// with a consumed front, a resumable delimiter search, and a side queue for
/// data that arrives while a callback holds a view into the buffer.
class ReceiveBuffer {
public:
    /// True while a callback runs: appends then go to the side queue.
    bool busy = false;

    /// Queues data behind everything buffered.
    void append(std::string_view data);
    /// The unconsumed bytes, not counting the side queue.
    std::string_view unconsumed() const noexcept { return {buf_.data() + start_, buf_.size() - start_}; }
    /// Marks the first n unconsumed bytes consumed (their views stay valid until settle()).
    void consume(std::size_t n) noexcept;
    /// Moves the side queue into the buffer, dropping the consumed front first
    /// when it outweighs the rest. Only between callbacks.
    void settle();
    /// Everything unconsumed and queued, as one string; the buffer is then empty.
    std::string take();
    /// Discards everything; the memory goes at the next settle() when busy.
    void clear() noexcept;
    /// Offset in unconsumed() of the first `delimiter` (non-empty), or npos;
    /// an unsuccessful search resumes where it stopped, if the delimiter is
    /// the same (another one is looked for from the first unconsumed byte).
    std::size_t find(std::string_view delimiter);
    /// Bytes examined by find() so far.
    std::size_t scanned() const noexcept { return scanned_; }

private:
    std::string buf_;
    std::string queued_;
    std::size_t start_ = 0;
    std::size_t scan_ = 0;
    std::size_t scanned_ = 0;
    std::string delimiter_;  // what the search that set scan_ looked for
};

/// What every receiver does with stopReceiving() (not part of the API).
struct StopState {
    bool stopped = false;
    std::optional<Failure> reason;
};

}  // namespace detail

/// Splits the input into lines, or passes it on raw (Twisted LineReceiver;
/// LR-1..LR-11). Override lineReceived(), and rawDataReceived() if you use
/// raw mode. Create with std::make_shared (it registers itself as a producer).
///
/// As an IPushProducer (Twisted's _PauseableMixin; LR-11) it pauses and
/// resumes its transport's reading (ITransport::asInputProducer()) and its own
/// delivery: register it as its transport's streaming producer and a peer
/// that does not read stops being read from.
class WEFT_EXPORT LineReceiver : public Protocol, public IPushProducer {
public:
    /// What ends a line; must not be empty (LR-1).
    std::string delimiter = "\r\n";
    /// The longest line accepted, delimiter excluded (LR-1, LR-4).
    std::size_t MAX_LENGTH = 16384;

    /// Appends data and delivers what is complete: lines in line mode, all of
    /// it in raw mode (LR-2, LR-8). Delivery stops after a callback that
    /// paused or stopped the receiver, or left the transport disconnecting;
    /// what is left stays buffered (LR-7). Called from inside a callback it
    /// only queues (LR-8). Throws std::invalid_argument for an empty delimiter.
    void dataReceived(Bytes data) override;

    /// One line, delimiter removed; a view valid during the call (LR-2).
    virtual void lineReceived(std::string_view line) = 0;
    /// Raw-mode data: everything buffered in one call (LR-8). The default
    /// throws std::logic_error (Twisted: NotImplementedError).
    virtual void rawDataReceived(Bytes data);
    /// A line over MAX_LENGTH (with its delimiter and everything buffered
    /// after it), or MAX_LENGTH + len(delimiter) buffered bytes without a
    /// delimiter; the buffer has been emptied (LR-4, LR-5). The default calls
    /// stopReceiving(LengthLimitExceededError), which closes the connection
    /// (LR-6). An override that neither stops nor closes gets the next line.
    virtual void lineLengthExceeded(std::string_view line);

    /// Writes line + delimiter in one write (LR-3).
    void sendLine(std::string_view line);
    /// Switches to line mode; a non-empty `extra` is then received as data
    /// (queued behind what is buffered when called from a callback; LR-8).
    void setLineMode(std::string_view extra = {});
    /// Switches to raw mode: what is buffered and what follows goes to
    /// rawDataReceived() (LR-8).
    void setRawMode() noexcept { lineMode_ = false; }
    /// True in line mode (Twisted `line_mode`).
    bool lineMode() const noexcept { return lineMode_; }
    /// Returns every buffered, undelivered byte and forgets them; from a
    /// callback, the rest of the current input is not delivered (LR-10).
    std::string clearLineBuffer();

    /// Stops delivery (incoming data is buffered) and pauses the transport (LR-11).
    void pauseProducing() override;
    /// Resumes the transport, then delivers what was buffered at once (LR-11).
    void resumeProducing() override;
    /// Stops delivery for good and stops the transport (LR-11).
    void stopProducing() override;
    /// True while paused or after stopProducing()/stopReceiving() (Twisted `paused`).
    bool paused() const noexcept { return paused_ || stop_.stopped; }

    /// Twisted's "return a non-null value" (see the file comment): stops
    /// delivery for good (what is buffered stays undelivered, as clearLineBuffer()
    /// shows, LR-7; later input is dropped), logs `reason`
    /// at warning level, keeps the first one in stopReason() and calls
    /// transport->loseConnection(). A transport with a producer registered
    /// closes only once it is unregistered (FD-13): unregister first.
    void stopReceiving(Failure reason);
    /// The reason given to stopReceiving(), if any.
    const std::optional<Failure>& stopReason() const noexcept { return stop_.reason; }

protected:
    /// Bytes examined while looking for delimiters (a diagnostic: at most
    /// len(delimiter) per byte received, however the input is chunked).
    std::size_t bytesScanned() const noexcept { return buffer_.scanned(); }

private:
    void deliver();
    bool keepGoing() const noexcept;

    detail::ReceiveBuffer buffer_;
    detail::StopState stop_;
    bool lineMode_ = true;
    bool paused_ = false;
};

/// Splits the input into lines only, without raw mode or pausing (Twisted
/// LineOnlyReceiver; LOR-1..LOR-3).
class WEFT_EXPORT LineOnlyReceiver : public Protocol {
public:
    /// What ends a line; must not be empty.
    std::string delimiter = "\r\n";
    /// The longest line accepted, delimiter excluded.
    std::size_t MAX_LENGTH = 16384;

    /// Delivers each complete line (LOR-1). Before each line it checks the
    /// transport: once it is disconnecting, the complete lines still buffered
    /// are dropped and only the trailing partial line is kept (LOR-2). Throws
    /// std::invalid_argument for an empty delimiter.
    void dataReceived(Bytes data) override;

    /// One line, delimiter removed; a view valid during the call.
    virtual void lineReceived(std::string_view line) = 0;
    /// A complete line over MAX_LENGTH (the complete lines after it are
    /// dropped), or a partial one of MAX_LENGTH + len(delimiter) bytes (then
    /// dropped: Better than Twisted, which keeps growing it) (LOR-3). The
    /// default calls stopReceiving(LengthLimitExceededError).
    virtual void lineLengthExceeded(std::string_view line);

    /// Writes line and delimiter with one writeSequence (LOR-1).
    void sendLine(std::string_view line);

    /// As LineReceiver::stopReceiving.
    void stopReceiving(Failure reason);
    /// The reason given to stopReceiving(), if any.
    const std::optional<Failure>& stopReason() const noexcept { return stop_.reason; }

protected:
    /// As LineReceiver::bytesScanned.
    std::size_t bytesScanned() const noexcept { return buffer_.scanned(); }

private:
    void deliver();

    detail::ReceiveBuffer buffer_;
    detail::StopState stop_;
};

/// Sends and receives netstrings, "<length>:<payload>," (Twisted
/// NetstringReceiver; NS-1..NS-4).
class WEFT_EXPORT NetstringReceiver : public Protocol {
public:
    /// The longest payload accepted (inclusive; NS-4).
    std::size_t MAX_LENGTH = 99999;
    /// Set once the peer sent something that is not a netstring (NS-3).
    bool brokenPeer = false;

    /// Delivers each complete netstring's payload, whatever the chunking
    /// (NS-2). Malformed input sets brokenPeer and calls
    /// stopReceiving(NetstringParseError): nothing more is delivered and the
    /// connection closes (NS-3). A length over MAX_LENGTH is refused as soon
    /// as its digits show it, before the colon (NS-4).
    void dataReceived(Bytes data) override;
    /// One payload; a view valid during the call.
    virtual void stringReceived(std::string_view string) = 0;
    /// Writes "<decimal length>:<string>," in one write (NS-1).
    void sendString(std::string_view string);

    /// As LineReceiver::stopReceiving.
    void stopReceiving(Failure reason);
    /// The reason given to stopReceiving(), if any.
    const std::optional<Failure>& stopReason() const noexcept { return stop_.reason; }

private:
    void deliver();
    void fail(const char* why);

    detail::ReceiveBuffer buffer_;
    detail::StopState stop_;
    bool parsingLength_ = true;
    std::size_t digits_ = 0;
    std::size_t length_ = 0;
};

/// Strings framed by an unsigned big-endian length of prefixLength bytes
/// (Twisted IntNStringReceiver; INTN-1..INTN-4). Use Int8StringReceiver,
/// Int16StringReceiver or Int32StringReceiver. Pausable like LineReceiver
/// (LR-11).
class WEFT_EXPORT IntNStringReceiver : public Protocol, public IPushProducer {
public:
    /// The longest string accepted (INTN-4).
    std::size_t MAX_LENGTH = 99999;
    /// 1, 2 or 4.
    const std::size_t prefixLength;

    /// Delivers each complete string, whatever the chunking (INTN-3). A
    /// prefix over MAX_LENGTH calls lengthLimitExceeded() at once; parsing
    /// then stops for good (the stream cannot be resynchronised) and what is
    /// buffered or arrives later is dropped (INTN-4).
    void dataReceived(Bytes data) override;
    /// One string; a view valid during the call.
    virtual void stringReceived(std::string_view string) = 0;
    /// A prefix announced `length` > MAX_LENGTH. The default calls
    /// stopReceiving(LengthLimitExceededError) (Twisted: loseConnection()).
    virtual void lengthLimitExceeded(std::size_t length);
    /// Writes prefix + string in one write (INTN-1); throws
    /// StringTooLongError, writing nothing, when the length does not fit the
    /// prefix. MAX_LENGTH is not checked (INTN-2).
    void sendString(std::string_view string);

    /// As LineReceiver's (LR-11).
    void pauseProducing() override;
    void resumeProducing() override;
    void stopProducing() override;
    bool paused() const noexcept { return paused_ || stop_.stopped; }

    /// As LineReceiver::stopReceiving.
    void stopReceiving(Failure reason);
    /// The reason given to stopReceiving(), if any.
    const std::optional<Failure>& stopReason() const noexcept { return stop_.reason; }

protected:
    /// prefix: 1, 2 or 4 (std::invalid_argument otherwise).
    explicit IntNStringReceiver(std::size_t prefix);

private:
    void deliver();

    detail::ReceiveBuffer buffer_;
    detail::StopState stop_;
    bool paused_ = false;
};

/// 1-byte length prefix (Twisted Int8StringReceiver).
class WEFT_EXPORT Int8StringReceiver : public IntNStringReceiver {
public:
    Int8StringReceiver() : IntNStringReceiver(1) {}
};

/// 2-byte big-endian length prefix (Twisted Int16StringReceiver).
class WEFT_EXPORT Int16StringReceiver : public IntNStringReceiver {
public:
    Int16StringReceiver() : IntNStringReceiver(2) {}
};

/// 4-byte big-endian length prefix (Twisted Int32StringReceiver).
class WEFT_EXPORT Int32StringReceiver : public IntNStringReceiver {
public:
    Int32StringReceiver() : IntNStringReceiver(4) {}
};

/// Sends the rest of a stream to a consumer, a chunk each time the consumer
/// asks (Twisted FileSender; FS-1..FS-4). A pull producer: create it with
/// std::make_shared, then beginFileTransfer().
///
/// Ownership: the consumer holds the sender while it is registered; the
/// sender holds the consumer only weakly, and the stream until the end.
/// For a transport: std::shared_ptr<IConsumer>(transport, transport->asConsumer()).
class WEFT_EXPORT FileSender : public IPullProducer, public std::enable_shared_from_this<FileSender> {
public:
    /// Rewrites each chunk before it is written (Twisted `transform`).
    using Transform = std::function<std::string(std::string_view)>;

    /// The most read per resumeProducing() (FS-2).
    std::size_t CHUNK_SIZE = 16384;
    /// The last byte written so far, if any.
    std::optional<std::byte> lastSent;

    /// Registers this sender with `consumer` as a pull producer and returns a
    /// Deferred that fires with the last byte written once the whole stream
    /// has been written, or fails (FS-1, FS-3, FS-4). The Deferred may have
    /// fired before this returns (a consumer that pulls at once, an empty
    /// stream). Throws std::logic_error while a transfer is in progress and
    /// whatever registerProducer() throws; nothing is then registered.
    Deferred<std::optional<std::byte>> beginFileTransfer(std::shared_ptr<std::istream> file,
                                                         std::shared_ptr<IConsumer> consumer, Transform transform = {});

    /// Reads up to CHUNK_SIZE bytes, transforms them and writes them (FS-2).
    /// At the end of the stream: unregisters from the consumer, releases the
    /// stream and fires the Deferred with lastSent (FS-3). A stream that goes
    /// bad (badbit) ends the same way but fails the Deferred with
    /// std::ios_base::failure (Better than Twisted, where the read raises).
    /// Does nothing once the transfer has ended.
    void resumeProducing() override;
    /// Does nothing: a pull producer only writes when asked (FS-4).
    void pauseProducing() noexcept {}
    /// Before the end: releases the stream and fails the Deferred with
    /// std::runtime_error("Consumer asked us to stop producing"); afterwards
    /// nothing (FS-4).
    void stopProducing() override;

private:
    void finish(std::optional<Failure> failure);

    std::shared_ptr<std::istream> file_;
    std::weak_ptr<IConsumer> consumer_;
    Transform transform_;
    std::optional<Deferred<std::optional<std::byte>>> deferred_;
    std::vector<char> chunk_;
};

}  // namespace weft::basic
