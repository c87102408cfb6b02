#include <weft/internet/abstract.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <weft/internet/error.hpp>

#include "sys/syscalls.hpp"

namespace weft {

// ---- WriteQueue ----------------------------------------------------------------

namespace detail {

namespace {
// Writes up to this size share a chunk; a chunk for them has this capacity, so
// a burst of small writes costs a few chunks, not one each.
constexpr std::size_t kSmallWrite = 4096;
constexpr std::size_t kChunkCapacity = 16384;

// Drained chunks of this thread, reused by the next writes (no malloc/free, and
// no heap growing and shrinking, per write). Bounded in count and bytes.
thread_local bool poolGone = false;  // set when this thread's pool is destroyed

class ChunkPool {
public:
    ChunkPool() = default;
    ChunkPool(const ChunkPool&) = delete;
    ChunkPool& operator=(const ChunkPool&) = delete;
    ~ChunkPool() { poolGone = true; }
    std::vector<std::byte> acquire(std::size_t need) {
        for (std::size_t i = free_.size(); i-- > 0;) {
            if (free_[i].capacity() >= need) {
                std::vector<std::byte> v = std::move(free_[i]);
                bytes_ -= v.capacity();
                free_[i] = std::move(free_.back());
                free_.pop_back();
                return v;
            }
        }
        std::vector<std::byte> v;
        v.reserve(std::max(need, kChunkCapacity));
        return v;
    }
    void release(std::vector<std::byte>&& v) noexcept {
        std::size_t cap = v.capacity();
        if (cap < kChunkCapacity || free_.size() >= kMaxChunks || bytes_ + cap > kMaxBytes) return;  // freed
        v.clear();
        bytes_ += cap;
        free_.push_back(std::move(v));
    }

private:
    static constexpr std::size_t kMaxChunks = 16;
    static constexpr std::size_t kMaxBytes = 4u << 20;
    std::vector<std::vector<std::byte>> free_;
    std::size_t bytes_ = 0;
};

ChunkPool* pool() {
    thread_local ChunkPool p;
    return poolGone ? nullptr : &p;
}

std::vector<std::byte> acquireChunk(std::size_t need) {
    if (auto* p = pool()) return p->acquire(need);
    std::vector<std::byte> v;
    v.reserve(std::max(need, kChunkCapacity));
    return v;
}

void releaseChunk(std::vector<std::byte>&& v) noexcept {
    if (auto* p = pool()) p->release(std::move(v));
}
}  // namespace

WriteQueue::~WriteQueue() { clear(); }

void WriteQueue::append(Bytes data) {
    if (data.empty()) return;
    if (data.size() <= kSmallWrite && first_ < chunks_.size()) {
        auto& tail = chunks_.back();
        if (tail.capacity() - tail.size() >= data.size()) {
            tail.insert(tail.end(), data.begin(), data.end());
            size_ += data.size();
            return;
        }
    }
    std::vector<std::byte> chunk = acquireChunk(data.size() <= kSmallWrite ? kChunkCapacity : data.size());
    chunk.assign(data.begin(), data.end());
    size_ += data.size();
    chunks_.push_back(std::move(chunk));
}

void WriteQueue::append(std::vector<std::byte>&& data) {
    if (data.empty()) return;
    size_ += data.size();
    chunks_.push_back(std::move(data));
}

int WriteQueue::gather(iovec* iov, int maxIov, std::size_t limit) const {
    int n = 0;
    std::size_t offset = head_;
    for (std::size_t i = first_; i < chunks_.size() && n < maxIov && limit > 0; ++i) {
        const auto& c = chunks_[i];
        std::size_t len = std::min(c.size() - offset, limit);
        iov[n].iov_base = const_cast<std::byte*>(c.data() + offset);
        iov[n].iov_len = len;
        limit -= len;
        offset = 0;
        ++n;
    }
    return n;
}

void WriteQueue::consume(std::size_t n) {
    size_ -= n;
    while (n > 0) {
        auto& front = chunks_[first_];
        std::size_t avail = front.size() - head_;
        if (n < avail) {
            head_ += n;
            return;
        }
        n -= avail;
        head_ = 0;
        releaseChunk(std::move(front));
        ++first_;
    }
    if (first_ == chunks_.size()) {
        std::vector<std::vector<std::byte>>().swap(chunks_);  // an idle queue owns nothing
        first_ = 0;
    } else if (first_ >= 16 && first_ * 2 >= chunks_.size()) {
        chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(first_));
        first_ = 0;
    }
}

void WriteQueue::clear() noexcept {
    for (std::size_t i = first_; i < chunks_.size(); ++i) releaseChunk(std::move(chunks_[i]));
    chunks_.clear();
    if (chunks_.capacity() > 8) chunks_.shrink_to_fit();
    first_ = 0;
    head_ = 0;
    size_ = 0;
}

}  // namespace detail

// ---- FileDescriptor -------------------------------------------------------------

FileDescriptor::FileDescriptor(Reactor& reactor) : reactor_(reactor) {}

FileDescriptor::~FileDescriptor() = default;

void FileDescriptor::setConnected() noexcept {
    if (state_ == State::fresh) state_ = State::connected;
}

void FileDescriptor::discardOutput() noexcept {
    queue_.clear();
    writeHalf_ = WriteHalf::closed;
}

void FileDescriptor::startReading() {
    if (!reactor_.isReading(this)) reactor_.addReader(shared_from_this());
}
void FileDescriptor::stopReading() { reactor_.removeReader(static_cast<IReadDescriptor*>(this)); }
void FileDescriptor::startWriting() {
    if (!reactor_.isWriting(this)) reactor_.addWriterSoon(shared_from_this());
}
void FileDescriptor::stopWriting() { reactor_.removeWriter(static_cast<IWriteDescriptor*>(this)); }

void FileDescriptor::write(Bytes data) {
    if (!connected() || writeHalf_ == WriteHalf::closed || data.empty()) return;
    queue_.append(data);
    maybePauseProducer();
    startWriting();
}

void FileDescriptor::write(std::vector<std::byte>&& data) {
    if (!connected() || writeHalf_ == WriteHalf::closed || data.empty()) return;
    queue_.append(std::move(data));
    maybePauseProducer();
    startWriting();
}

void FileDescriptor::writeSequence(std::span<const Bytes> chunks) {
    if (!connected() || writeHalf_ == WriteHalf::closed) return;
    std::size_t before = queue_.size();
    for (auto c : chunks) queue_.append(c);
    if (queue_.size() == before) return;
    maybePauseProducer();
    startWriting();
}

void FileDescriptor::maybePauseProducer() {
    // Pause only on the transition to full (FD-24, Better than Twisted).
    if (pushProducer_ && streaming_ && !producerPaused_ && isSendBufferFull()) {
        producerPaused_ = true;
        auto keep = producer_;  // pauseProducing() may unregister it
        pushProducer_->pauseProducing();
    }
}

WriteResult FileDescriptor::writeToFD(int fd, std::span<const iovec> data, FDKind kind) {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(data.data());
    m.msg_iovlen = data.size();
    for (;;) {
        ssize_t n = kind == FDKind::socket ? sys::ops.sendmsg(fd, &m, MSG_NOSIGNAL)
                                           : sys::ops.writev(fd, data.data(), static_cast<int>(data.size()));
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return std::size_t{0};
        return Failure(ConnectionLost(std::error_code(errno, std::generic_category())));
    }
}

Reason FileDescriptor::doWrite() {
    if (!queue_.empty()) {
        iovec iov[IOV_MAX < 64 ? IOV_MAX : 64];
        int n = queue_.gather(iov, static_cast<int>(std::size(iov)), SEND_LIMIT);
        WriteResult r = writeSomeData({iov, static_cast<std::size_t>(n)});
        if (auto* f = std::get_if<Failure>(&r)) return *f;
        queue_.consume(std::min(std::get<std::size_t>(r), queue_.size()));
        if (!queue_.empty()) return std::nullopt;  // FD-18: stay registered
    }
    // Everything is sent (FD-19).
    stopWriting();
    if (producer_ && (!streaming_ || producerPaused_)) {
        producerPaused_ = false;
        // resumeProducing() may write, unregister (dropping the last reference to
        // the producer), close or abort: hold it, and look at nothing afterwards.
        auto keep = producer_;
        if (!streaming_) dynamic_cast<IPullProducer&>(*keep).resumeProducing();
        else pushProducer_->resumeProducing();
        return std::nullopt;
    }
    if (state_ == State::disconnecting) {
        // Any registered producer keeps the connection open until it is
        // unregistered (FD-13, Better than Twisted).
        if (producer_) return std::nullopt;
        return Failure(ConnectionDone());
    }
    if (writeHalf_ == WriteHalf::closing) {
        writeHalf_ = WriteHalf::closed;  // before the hook: FD-32
        return closeWriteConnection();
    }
    return std::nullopt;
}

void FileDescriptor::loseConnection() {
    if (state_ != State::connected) return;  // FD-10
    state_ = State::disconnecting;
    stopReading();
    if (writeHalf_ == WriteHalf::closed) {
        // Nothing can flush any more (FD-14): close now, but from the reactor,
        // not on the caller's stack (Better than Twisted).
        stopWriting();
        if (!lossScheduled_) {
            lossScheduled_ = true;
            reactor_.callLater(0, [self = shared_from_this()] {
                if (!self->disconnected()) self->connectionLost(Failure(ConnectionDone()));
            });
        }
        return;
    }
    startWriting();
}

void FileDescriptor::loseWriteConnection() {
    if (!connected() || writeHalf_ != WriteHalf::open) return;  // FD-34
    writeHalf_ = WriteHalf::closing;
    startWriting();
}

void FileDescriptor::registerProducer(std::shared_ptr<IProducer> producer, bool streaming) {
    if (!producer) throw std::invalid_argument("registerProducer: null producer");
    if (producer_) {
        const IProducer& mine = *producer_;
        const IProducer& theirs = *producer;
        throw std::runtime_error("Cannot register producer " + demangle(typeid(theirs).name()) +
                                 ", because producer " + demangle(typeid(mine).name()) +
                                 " was never unregistered.");
    }
    auto* push = dynamic_cast<IPushProducer*>(producer.get());
    auto* pull = dynamic_cast<IPullProducer*>(producer.get());
    if (streaming && !push) throw std::invalid_argument("registerProducer: streaming producer is not an IPushProducer");
    if (!streaming && !pull) throw std::invalid_argument("registerProducer: pull producer is not an IPullProducer");
    if (disconnected()) {
        producer->stopProducing();  // FD-22
        return;
    }
    producer_ = std::move(producer);
    streaming_ = streaming;
    pushProducer_ = streaming ? push : nullptr;
    producerPaused_ = false;
    if (!streaming) {
        auto keep = producer_;  // resumeProducing() may unregister it
        pull->resumeProducing();
    }
}

void FileDescriptor::unregisterProducer() {
    producer_.reset();
    pushProducer_ = nullptr;
    producerPaused_ = false;  // FD-28 (Better than Twisted)
    if (connected() && (disconnecting() || writeHalf_ == WriteHalf::closing)) startWriting();
}

void FileDescriptor::stopConsuming() {
    unregisterProducer();
    loseConnection();
}

void FileDescriptor::pauseProducing() { stopReading(); }

void FileDescriptor::resumeProducing() {
    if (state_ == State::connected) startReading();
}

void FileDescriptor::stopProducing() { loseConnection(); }

void FileDescriptor::connectionLost(const Failure&) {
    if (state_ == State::disconnected) return;
    state_ = State::disconnected;
    stopReading();
    stopWriting();
    queue_.clear();
    if (auto p = std::move(producer_)) {  // FD-2, FD-30: before the protocol hears of it
        pushProducer_ = nullptr;
            p->stopProducing();
    }
}

std::string FileDescriptor::className(const std::type_info& type) {
    std::string name = demangle(type.name());
    // Drop the namespaces (Twisted uses __class__.__name__), but not inside template arguments.
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '<') ++depth;
        else if (name[i] == '>') --depth;
        else if (depth == 0 && name[i] == ':' && i + 1 < name.size() && name[i + 1] == ':') start = i + 2;
    }
    return name.substr(start);
}

void FileDescriptor::readConnectionLost(const Failure& reason) { connectionLost(reason); }
void FileDescriptor::writeConnectionLost(const Failure& reason) { connectionLost(reason); }

}  // namespace weft
