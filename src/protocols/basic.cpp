// twisted.protocols.basic: see weft/protocols/basic.hpp.
#include <weft/protocols/basic.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <ios>
#include <limits>
#include <utility>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>

namespace weft::basic {

namespace {

// A buffer left with more capacity than this once empty gives it back: one
// long line must not pin its memory for the rest of the connection.
constexpr std::size_t kKeepCapacity = 64 * 1024;

// Marks a callback in progress for as long as it runs, exceptions included.
class Busy {
public:
    explicit Busy(detail::ReceiveBuffer& b) noexcept : b_(b) { b_.busy = true; }
    ~Busy() { b_.busy = false; }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

private:
    detail::ReceiveBuffer& b_;
};

// The transport has been asked to close (or is gone for good): Twisted's
// `transport.disconnecting` test. No transport at all means "keep going", as
// in Twisted, where a receiver can be fed before makeConnection().
bool closing(const std::shared_ptr<ITransport>& t) noexcept { return t && (!t->isConnected() || t->isDisconnecting()); }

// Records a stop (the first reason wins), logs it and closes the transport.
// What is not yet delivered stays in the buffer (LR-7: clearLineBuffer() still
// returns it); nothing more is appended, so it stays bounded.
void stopWith(detail::StopState& stop, Protocol& protocol, Failure reason) {
    stop.stopped = true;
    if (stop.reason) return;
    stop.reason = reason;
    // Inside a dispatch the reactor's context names the connection; outside, the class does.
    std::string prefix = log::currentContext() ? std::string() : protocol.logPrefix();
    log::warn(prefix, "{}; closing the connection", reason.getErrorMessage());
    // The protocol may be its transport's producer (or have registered another): the
    // close must not wait for an unregisterProducer() that nobody will call.
    if (protocol.transport) protocol.transport->loseConnectionDespiteProducer();
}

IPushProducer* inputOf(const std::shared_ptr<ITransport>& t) noexcept { return t ? t->asInputProducer() : nullptr; }

// a - b >= c without overflow, for sizes.
bool atLeast(std::size_t size, std::size_t minus, std::size_t limit) noexcept {
    return size >= minus && size - minus >= limit;
}

}  // namespace

LengthLimitExceededError::LengthLimitExceededError(std::string_view what, std::size_t length_, std::size_t limit_)
    : std::runtime_error(fmt::format("{} of {} bytes exceeds MAX_LENGTH ({} bytes)", what, length_, limit_)),
      length(length_), limit(limit_) {}

// ---- ReceiveBuffer -------------------------------------------------------------

namespace detail {

void ReceiveBuffer::append(std::string_view data) {
    if (data.empty()) return;
    if (busy || !queued_.empty()) {
        // A callback re-feeding the tail of what it was just given (the usual
        // setLineMode(rest) from rawDataReceived) gets it back without a copy:
        // those bytes are still in place, only marked consumed.
        const char* end = buf_.data() + buf_.size();
        if (queued_.empty() && start_ == buf_.size() && data.data() + data.size() == end &&
            std::greater_equal<const char*>()(data.data(), buf_.data())) {
            start_ = static_cast<std::size_t>(data.data() - buf_.data());
            scan_ = start_;
            return;
        }
        queued_.append(data);
        return;
    }
    if (start_ == buf_.size()) {
        buf_.clear();
        start_ = scan_ = 0;
    }
    buf_.append(data);
}

void ReceiveBuffer::consume(std::size_t n) noexcept {
    start_ += n;
    scan_ = std::max(scan_, start_);
}

void ReceiveBuffer::settle() {
    std::size_t live = buf_.size() - start_;
    if (live == 0) {
        buf_.clear();
        start_ = scan_ = 0;
        if (buf_.capacity() > kKeepCapacity) std::string().swap(buf_);
    } else if (start_ >= live) {
        // Dropping the front costs `live` bytes, paid for by the `start_` >= live
        // bytes consumed since the last drop: amortised O(1) per byte.
        buf_.erase(0, start_);
        scan_ -= start_;
        start_ = 0;
    }
    if (!queued_.empty()) {
        buf_.append(queued_);
        queued_.clear();
        if (queued_.capacity() > kKeepCapacity) std::string().swap(queued_);
    }
}

std::string ReceiveBuffer::take() {
    std::string out(unconsumed());
    out += queued_;
    clear();
    return out;
}

void ReceiveBuffer::clear() noexcept {
    // Views into buf_ may be in use by a callback: only mark it consumed.
    start_ = scan_ = buf_.size();
    queued_.clear();
}

std::size_t ReceiveBuffer::find(std::string_view delimiter) {
    if (delimiter != delimiter_) {
        // Where the last search stopped holds for the delimiter it looked for:
        // another one (changed between reads) may start anywhere unconsumed.
        delimiter_.assign(delimiter);
        scan_ = start_;
    }
    std::size_t from = std::max(scan_, start_);
    std::size_t at = buf_.find(delimiter, from);
    if (at == std::string::npos) {
        scanned_ += buf_.size() - from;
        // A delimiter may still end in the bytes to come: keep its possible start.
        std::size_t keep = delimiter.size() - 1;
        scan_ = std::max(start_, buf_.size() > keep ? buf_.size() - keep : 0);
        return std::string_view::npos;
    }
    scanned_ += at + delimiter.size() - from;
    scan_ = at;
    return at - start_;
}

}  // namespace detail

// ---- LineReceiver ----------------------------------------------------------------

void LineReceiver::dataReceived(Bytes data) {
    if (stop_.stopped) return;
    buffer_.append(asText(data));
    if (buffer_.busy) return;  // the loop below is already running further up the stack (LR-8)
    if (delimiter.empty()) throw std::invalid_argument("LineReceiver: the delimiter is empty");
    Busy busy(buffer_);
    deliver();
}

bool LineReceiver::keepGoing() const noexcept { return !paused_ && !stop_.stopped && !closing(transport); }

void LineReceiver::deliver() {
    while (!paused_ && !stop_.stopped) {
        buffer_.settle();
        std::string_view data = buffer_.unconsumed();
        if (data.empty()) return;
        if (!lineMode_) {
            buffer_.consume(data.size());
            rawDataReceived(asBytes(data));
        } else if (std::size_t at = buffer_.find(delimiter); at == std::string_view::npos) {
            if (!atLeast(data.size(), delimiter.size(), MAX_LENGTH)) return;  // LR-5: wait for more
            buffer_.consume(data.size());
            lineLengthExceeded(data);
        } else if (at > MAX_LENGTH) {
            buffer_.consume(data.size());  // LR-4: the line, its delimiter and the rest
            lineLengthExceeded(data);
        } else {
            buffer_.consume(at + delimiter.size());
            lineReceived(data.substr(0, at));
        }
        if (!keepGoing()) return;
    }
}

void LineReceiver::rawDataReceived(Bytes) {
    throw std::logic_error("LineReceiver: setRawMode() needs a subclass that overrides rawDataReceived()");
}

void LineReceiver::lineLengthExceeded(std::string_view line) {
    stopReceiving(Failure(LengthLimitExceededError("line", line.size(), MAX_LENGTH)));
}

void LineReceiver::sendLine(std::string_view line) {
    std::string out;
    out.reserve(line.size() + delimiter.size());
    out.append(line).append(delimiter);
    transport->write(out);
}

void LineReceiver::setLineMode(std::string_view extra) {
    lineMode_ = true;
    if (!extra.empty()) dataReceived(asBytes(extra));
}

std::string LineReceiver::clearLineBuffer() { return buffer_.take(); }

void LineReceiver::pauseProducing() {
    paused_ = true;
    if (auto* p = inputOf(transport)) p->pauseProducing();
}

void LineReceiver::resumeProducing() {
    paused_ = false;
    if (auto* p = inputOf(transport)) p->resumeProducing();
    dataReceived({});
}

void LineReceiver::stopProducing() {
    paused_ = true;
    stop_.stopped = true;  // what is buffered stays, undelivered, as after stopReceiving (LR-7)
    if (auto* p = inputOf(transport)) p->stopProducing();
}

void LineReceiver::stopReceiving(Failure reason) { stopWith(stop_, *this, std::move(reason)); }

// ---- LineOnlyReceiver ------------------------------------------------------------

void LineOnlyReceiver::dataReceived(Bytes data) {
    if (stop_.stopped) return;
    buffer_.append(asText(data));
    if (buffer_.busy) return;
    if (delimiter.empty()) throw std::invalid_argument("LineOnlyReceiver: the delimiter is empty");
    Busy busy(buffer_);
    deliver();
}

void LineOnlyReceiver::deliver() {
    while (!stop_.stopped) {
        buffer_.settle();
        std::string_view data = buffer_.unconsumed();
        if (data.empty()) return;
        // Only the trailing partial line survives a closing transport (LOR-2)
        // or a long line (LOR-3).
        auto dropCompleteLines = [&] {
            if (std::size_t last = data.rfind(delimiter); last != std::string_view::npos)
                buffer_.consume(last + delimiter.size());
        };
        if (closing(transport)) return dropCompleteLines();
        std::size_t at = buffer_.find(delimiter);
        if (at == std::string_view::npos) {
            // LOR-3, with LR-5's allowance for a delimiter still arriving.
            if (!atLeast(data.size(), delimiter.size(), MAX_LENGTH)) return;
            buffer_.consume(data.size());
            lineLengthExceeded(data);
            continue;
        }
        if (at > MAX_LENGTH) {
            dropCompleteLines();
            lineLengthExceeded(data.substr(0, at));
            continue;
        }
        buffer_.consume(at + delimiter.size());
        lineReceived(data.substr(0, at));
    }
}

void LineOnlyReceiver::lineLengthExceeded(std::string_view line) {
    stopReceiving(Failure(LengthLimitExceededError("line", line.size(), MAX_LENGTH)));
}

void LineOnlyReceiver::sendLine(std::string_view line) {
    Bytes parts[] = {asBytes(line), asBytes(delimiter)};
    transport->writeSequence(parts);
}

void LineOnlyReceiver::stopReceiving(Failure reason) { stopWith(stop_, *this, std::move(reason)); }

// ---- NetstringReceiver -----------------------------------------------------------

void NetstringReceiver::dataReceived(Bytes data) {
    if (stop_.stopped) return;
    buffer_.append(asText(data));
    if (buffer_.busy) return;
    Busy busy(buffer_);
    deliver();
}

void NetstringReceiver::fail(const char* why) {
    brokenPeer = true;
    stopReceiving(Failure(NetstringParseError(why)));
}

void NetstringReceiver::deliver() {
    while (!stop_.stopped) {
        buffer_.settle();
        std::string_view data = buffer_.unconsumed();
        if (data.empty()) return;
        if (parsingLength_) {
            // The digits seen so far are data[0, digits_); go on from there.
            for (; digits_ < data.size(); ++digits_) {
                char c = data[digits_];
                if (c == ':') break;
                if (c < '0' || c > '9') {
                    return fail(digits_ == 0 ? "netstring: no length at the start"
                                             : "netstring: the length is not followed by ':'");
                }
                if (digits_ == 1 && data[0] == '0') return fail("netstring: the length has a leading zero");
                auto d = static_cast<std::size_t>(c - '0');
                // Refused as soon as the digits exceed the limit (NS-4), so a
                // length can never overflow.
                if (d > MAX_LENGTH || length_ > (MAX_LENGTH - d) / 10)
                    return fail("netstring: the length exceeds MAX_LENGTH");
                length_ = length_ * 10 + d;
            }
            if (digits_ == data.size()) return;  // more digits may come
            if (digits_ == 0) return fail("netstring: no length at the start");
            buffer_.consume(digits_ + 1);
            parsingLength_ = false;
            continue;
        }
        if (data.size() <= length_) return;  // the payload and its comma are not all here
        if (data[length_] != ',') return fail("netstring: no ',' after the payload");
        std::string_view payload = data.substr(0, length_);
        buffer_.consume(length_ + 1);
        parsingLength_ = true;
        digits_ = length_ = 0;
        stringReceived(payload);
    }
}

void NetstringReceiver::sendString(std::string_view string) {
    std::string out = fmt::format("{}:", string.size());
    out.reserve(out.size() + string.size() + 1);
    out.append(string).push_back(',');
    transport->write(out);
}

void NetstringReceiver::stopReceiving(Failure reason) { stopWith(stop_, *this, std::move(reason)); }

// ---- IntNStringReceiver ----------------------------------------------------------

IntNStringReceiver::IntNStringReceiver(std::size_t prefix) : prefixLength(prefix) {
    if (prefix != 1 && prefix != 2 && prefix != 4)
        throw std::invalid_argument("IntNStringReceiver: the prefix is 1, 2 or 4 bytes");
}

void IntNStringReceiver::dataReceived(Bytes data) {
    if (stop_.stopped) return;
    buffer_.append(asText(data));
    if (buffer_.busy) return;
    Busy busy(buffer_);
    deliver();
}

void IntNStringReceiver::deliver() {
    while (!paused_ && !stop_.stopped) {
        buffer_.settle();
        std::string_view data = buffer_.unconsumed();
        if (data.size() < prefixLength) return;
        std::size_t length = 0;
        for (std::size_t i = 0; i < prefixLength; ++i) length = length << 8 | static_cast<unsigned char>(data[i]);
        if (length > MAX_LENGTH) {
            // The stream cannot be resynchronised: parse nothing more (INTN-4).
            stop_.stopped = true;
            buffer_.clear();
            lengthLimitExceeded(length);
            return;
        }
        if (data.size() - prefixLength < length) return;
        buffer_.consume(prefixLength + length);
        stringReceived(data.substr(prefixLength, length));
    }
}

void IntNStringReceiver::lengthLimitExceeded(std::size_t length) {
    stopReceiving(Failure(LengthLimitExceededError("string", length, MAX_LENGTH)));
}

void IntNStringReceiver::sendString(std::string_view string) {
    if (prefixLength < sizeof(std::size_t) && string.size() >> (8 * prefixLength) != 0) {
        throw StringTooLongError(
            fmt::format("a string of {} bytes does not fit a {}-byte length prefix", string.size(), prefixLength));
    }
    std::string out(prefixLength, '\0');
    for (std::size_t i = 0; i < prefixLength; ++i)
        out[prefixLength - 1 - i] = static_cast<char>(string.size() >> (8 * i) & 0xff);
    out.append(string);
    transport->write(out);
}

void IntNStringReceiver::pauseProducing() {
    paused_ = true;
    if (auto* p = inputOf(transport)) p->pauseProducing();
}

void IntNStringReceiver::resumeProducing() {
    paused_ = false;
    if (auto* p = inputOf(transport)) p->resumeProducing();
    dataReceived({});
}

void IntNStringReceiver::stopProducing() {
    paused_ = true;
    stop_.stopped = true;
    buffer_.clear();
    if (auto* p = inputOf(transport)) p->stopProducing();
}

void IntNStringReceiver::stopReceiving(Failure reason) { stopWith(stop_, *this, std::move(reason)); }

// ---- FileSender ------------------------------------------------------------------

Deferred<std::optional<std::byte>> FileSender::beginFileTransfer(std::shared_ptr<std::istream> file,
                                                                 std::shared_ptr<IConsumer> consumer,
                                                                 Transform transform) {
    if (deferred_) throw std::logic_error("FileSender: a transfer is already in progress");
    if (!file || !consumer) throw std::invalid_argument("FileSender: null file or consumer");
    Deferred<std::optional<std::byte>> d;
    file_ = std::move(file);
    consumer_ = consumer;
    transform_ = std::move(transform);
    deferred_ = d;
    try {
        consumer->registerProducer(shared_from_this(), false);
    } catch (...) {
        file_.reset();
        consumer_.reset();
        transform_ = nullptr;
        deferred_.reset();
        throw;
    }
    return d;
}

void FileSender::resumeProducing() {
    if (!file_) return;
    auto consumer = consumer_.lock();
    if (!consumer) return;
    chunk_.resize(CHUNK_SIZE);
    std::streamsize n = 0;
    try {
        file_->read(chunk_.data(), static_cast<std::streamsize>(chunk_.size()));
        n = file_->gcount();
    } catch (const std::ios_base::failure&) {
        // A stream with exceptions() set throws on the short read at the end too.
        n = file_->gcount();
    }
    if (file_->bad()) {
        consumer->unregisterProducer();
        finish(Failure(std::ios_base::failure("FileSender: reading the file failed")));
        return;
    }
    if (n <= 0) {
        consumer->unregisterProducer();
        finish(std::nullopt);
        return;
    }
    std::string_view chunk(chunk_.data(), static_cast<std::size_t>(n));
    if (transform_) {
        std::string out = transform_(chunk);
        if (!out.empty()) lastSent = static_cast<std::byte>(out.back());
        consumer->write(asBytes(out));
    } else {
        lastSent = static_cast<std::byte>(chunk.back());
        consumer->write(asBytes(chunk));
    }
}

void FileSender::stopProducing() {
    if (!deferred_) return;
    finish(Failure(std::runtime_error("Consumer asked us to stop producing")));
}

void FileSender::finish(std::optional<Failure> failure) {
    file_.reset();
    consumer_.reset();
    transform_ = nullptr;
    std::vector<char>().swap(chunk_);
    if (!deferred_) return;
    auto d = std::move(*deferred_);
    deferred_.reset();
    if (failure) d.errback(std::move(*failure));
    else d.callback(lastSent);
}

}  // namespace weft::basic
