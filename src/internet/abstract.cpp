#include <weft/internet/abstract.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>

#include <weft/internet/error.hpp>

#include "internet/detail/scratch.hpp"
#include "sys/syscalls.hpp"

namespace weft {

// ---- WriteQueue ----------------------------------------------------------------

namespace detail {

/// One block of queued output. An inline chunk carries its bytes right after
/// this header (one allocation); an external chunk points into a vector moved
/// in by write(std::vector<std::byte>&&).
struct alignas(64) Chunk {  // the bytes after it start on a cache line: the kernel's copy runs aligned
    Chunk* next = nullptr;
    std::byte* data = nullptr;
    std::size_t size = 0;      // bytes filled
    std::size_t capacity = 0;  // inline capacity; 0 for an external chunk
    std::vector<std::byte> external;
    std::size_t sent = 0;   // bytes at the front already written (only the queue's head has any)
    bool borrowed = false;  // data points into the thread's read buffer (room for it is inline)

    std::byte* storage() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
};

namespace {
// Writes up to this size share a chunk; a chunk for them has this capacity, so
// a burst of small writes costs a few chunks, not one each.
constexpr std::size_t kSmallWrite = 4096;
constexpr std::size_t kChunkCapacity = 16384;
// The free list of one thread: at most this many chunks and bytes.
constexpr std::size_t kMaxPooledChunks = 16;
constexpr std::size_t kMaxPooledBytes = 4u << 20;

Chunk* newInlineChunk(std::size_t capacity) {
    void* raw = ::operator new (sizeof(Chunk) + capacity, std::align_val_t{alignof(Chunk)});
    auto* c = new (raw) Chunk;
    c->data = c->storage();
    c->capacity = capacity;
    return c;
}

void destroyChunk(Chunk* c) noexcept {
    c->~Chunk();
    ::operator delete (static_cast<void*>(c), std::align_val_t{alignof(Chunk)});
}

// Drained inline chunks of this thread, reused by the next writes. The state
// is constant-initialised and trivially destructible, so the hot path reads
// it without a TLS initialisation call; the first chunk pooled on a thread
// arms a reaper that frees the list when the thread ends.
struct PoolState {
    Chunk* free = nullptr;
    std::size_t count = 0;
    std::size_t bytes = 0;
    bool armed = false;
    bool gone = false;  // the thread is ending: free chunks directly
};
constinit thread_local PoolState tPool{};

struct PoolReaper {
    PoolReaper() = default;
    PoolReaper(const PoolReaper&) = delete;
    PoolReaper& operator=(const PoolReaper&) = delete;
    ~PoolReaper() {
        tPool.gone = true;
        while (Chunk* c = tPool.free) {
            tPool.free = c->next;
            destroyChunk(c);
        }
        tPool.count = tPool.bytes = 0;
    }
};

void armReaper() {
    thread_local PoolReaper reaper;
    tPool.armed = true;
}

Chunk* acquireChunk(std::size_t need) {
    auto& pool = tPool;
    // Every pooled chunk holds at least kChunkCapacity: a small need takes the first.
    for (Chunk** link = &pool.free; *link; link = &(*link)->next) {
        Chunk* c = *link;
        if (c->capacity >= need) {
            *link = c->next;
            c->next = nullptr;
            c->size = 0;
            c->sent = 0;
            c->data = c->storage();
            c->borrowed = false;
            --pool.count;
            pool.bytes -= c->capacity;
            return c;
        }
    }
    return newInlineChunk(std::max(need, kChunkCapacity));
}

void releaseChunk(Chunk* c) noexcept {
    auto& pool = tPool;
    if (c->capacity < kChunkCapacity || pool.gone || pool.count >= kMaxPooledChunks ||
        pool.bytes + c->capacity > kMaxPooledBytes) {
        destroyChunk(c);
        return;
    }
    if (!pool.armed) {
        try {
            armReaper();
        } catch (...) {  // no memory for the reaper: do not pool
            destroyChunk(c);
            return;
        }
    }
    c->next = pool.free;
    pool.free = c;
    ++pool.count;
    pool.bytes += c->capacity;
}
}  // namespace

WriteQueue::~WriteQueue() { clear(); }

// ---- borrowing from the read buffer ----

void materializeBorrowed() noexcept {
    auto& s = tScratch;
    while (s.borrowers != 0) s.list[s.borrowers - 1]->materialize();  // each unlists itself
    if (s.held) {
        s.held = false;
        s.lent = false;
    }
}

bool WriteQueue::borrow(Bytes data) {
    auto& s = tScratch;
    if (!s.lent || s.held || (!listed_ && s.borrowers == ScratchState::kMaxBorrowers)) return false;
    const std::byte* begin = s.data;
    if (data.data() < begin || data.data() + data.size() > begin + s.size) return false;
    Chunk* c = acquireChunk(data.size());  // room to copy it into later, if it has to stay
    c->data = const_cast<std::byte*>(data.data());
    c->size = data.size();
    c->borrowed = true;
    push(c);
    size_ += data.size();
    if (!listed_) {
        s.list[s.borrowers++] = this;
        listed_ = true;
    }
    return true;
}

void WriteQueue::unlist() noexcept {
    if (!listed_) return;
    auto& s = tScratch;
    for (std::uint8_t i = 0; i < s.borrowers; ++i) {
        if (s.list[i] == this) {
            s.list[i] = s.list[--s.borrowers];
            break;
        }
    }
    listed_ = false;
    if (s.borrowers == 0 && s.held) {  // the read is over and nothing borrows any more
        s.held = false;
        s.lent = false;
    }
}

Chunk* WriteQueue::head() const noexcept { return tail_ ? tail_->next : nullptr; }

void WriteQueue::materialize() noexcept {
    if (Chunk* c = head()) {
        for (;; c = c->next) {
            if (c->borrowed) {
                std::memcpy(c->storage(), c->data, c->size);
                c->data = c->storage();
                c->borrowed = false;
            }
            if (c == tail_) break;
        }
    }
    unlist();
}

void WriteQueue::push(Chunk* c) noexcept {
    if (tail_) {
        c->next = tail_->next;  // the oldest
        tail_->next = c;
    } else {
        c->next = c;  // a ring of one
    }
    tail_ = c;
}

void WriteQueue::append(Bytes data) {
    std::size_t n = data.size();
    if (n == 0) return;
    if (n <= kSmallWrite) {
        if (tail_ && !tail_->borrowed && tail_->size + n <= tail_->capacity) {  // never an external chunk (capacity 0)
            std::memcpy(tail_->data + tail_->size, data.data(), n);
            tail_->size += n;
            size_ += n;
            return;
        }
    } else if (borrow(data)) {
        return;  // a large write of bytes just read: no copy unless it outlives the dispatch
    }
    Chunk* c = acquireChunk(n <= kSmallWrite ? kChunkCapacity : n);
    std::memcpy(c->data, data.data(), n);
    c->size = n;
    push(c);
    size_ += n;
}

void WriteQueue::append(std::vector<std::byte>&& data) {
    if (data.empty()) return;
    Chunk* c = newInlineChunk(0);  // no inline room: an external chunk
    c->external = std::move(data);
    c->data = c->external.data();
    c->size = c->external.size();
    push(c);
    size_ += c->size;
}

int WriteQueue::gather(iovec* iov, int maxIov, std::size_t limit) const {
    int n = 0;
    const Chunk* c = head();
    if (!c) return 0;
    while (n < maxIov && limit > 0) {
        std::size_t len = std::min(c->size - c->sent, limit);
        iov[n].iov_base = c->data + c->sent;
        iov[n].iov_len = len;
        limit -= len;
        ++n;
        if (c == tail_) break;
        c = c->next;
    }
    return n;
}

void WriteQueue::consume(std::size_t n) {
    size_ -= n;
    while (n > 0) {
        Chunk* front = tail_->next;
        std::size_t avail = front->size - front->sent;
        if (n < avail) {
            front->sent += n;
            return;
        }
        n -= avail;
        if (front == tail_) {
            tail_ = nullptr;
        } else {
            tail_->next = front->next;
        }
        releaseChunk(front);
        if (!tail_) break;
    }
    if (!tail_) unlist();  // everything borrowed has left
}

void WriteQueue::clear() noexcept {
    if (tail_) {
        Chunk* c = tail_->next;
        tail_->next = nullptr;  // break the ring: the walk ends after the newest
        while (c) {
            Chunk* next = c->next;
            releaseChunk(c);
            c = next;
        }
        tail_ = nullptr;
    }
    size_ = 0;
    unlist();
}

}  // namespace detail

// ---- FileDescriptor -------------------------------------------------------------

FileDescriptor::FileDescriptor(Reactor& reactor) : reactor_(reactor) { reactor_.trackLive(this); }

FileDescriptor::~FileDescriptor() {
    // Still registered only as watched for errors (R-38: paused, not held):
    // the slot goes with us, so no later descriptor at this address finds it.
    if (regFd_ >= 0 && liveIndex_ != kNotLive) reactor_.forgetDescriptor(this);
    if (liveIndex_ != kNotLive) reactor_.untrackLive(this);
}

void FileDescriptor::setConnected() noexcept {
    if (state_ == State::fresh) state_ = State::connected;
}

bool FileDescriptor::beginAbort() noexcept {
    if (state_ == State::disconnected || state_ == State::aborting) return false;
    state_ = State::aborting;
    stopReading();
    stopWriting();
    discardOutput();
    return true;
}

void FileDescriptor::discardOutput() noexcept {
    queue_.clear();
    writeHalf_ = WriteHalf::closed;
}

void FileDescriptor::startReading() {
    if (!reactor_.isLocalReading(this)) reactor_.addReader(shared_from_this());
}
void FileDescriptor::stopReading() { reactor_.removeLocalReader(this); }
void FileDescriptor::startWriting() {
    // Registered already (a connection reading): one lookup through the fd, no
    // reference count touched. Otherwise the general path.
    if (reactor_.writeSoonIfRegistered(this, fileno())) return;
    if (!reactor_.isWriting(this)) reactor_.addWriterSoon(shared_from_this());
}
void FileDescriptor::stopWriting() { reactor_.removeLocalWriter(this); }

void FileDescriptor::write(Bytes data) {
    if (!connected() || writeHalf_ == WriteHalf::closed || data.empty()) return;
    queue_.append(data);
    startWriting();  // first: a pauseProducing() that throws leaves nothing unflushed
    maybePauseProducer();
}

void FileDescriptor::write(std::vector<std::byte>&& data) {
    if (!connected() || writeHalf_ == WriteHalf::closed || data.empty()) return;
    queue_.append(std::move(data));
    startWriting();  // first: a pauseProducing() that throws leaves nothing unflushed
    maybePauseProducer();
}

void FileDescriptor::writeSequence(std::span<const Bytes> chunks) {
    if (!connected() || writeHalf_ == WriteHalf::closed) return;
    std::size_t before = queue_.size();
    for (auto c : chunks) queue_.append(c);
    if (queue_.size() == before) return;
    startWriting();  // first: a pauseProducing() that throws leaves nothing unflushed
    maybePauseProducer();
}

void FileDescriptor::maybePauseProducer() {
    // Pause only on the transition to full (FD-24, Better than Twisted).
    if (producer_ && streaming_ && !producerPaused_ && isSendBufferFull()) {
        producerPaused_ = true;
        auto keep = producer_;  // pauseProducing() may unregister it
        keep->asPushProducer()->pauseProducing();
    }
}

WriteResult FileDescriptor::writeToFD(int fd, std::span<const iovec> data, FDKind kind) {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(data.data());
    m.msg_iovlen = data.size();
    for (;;) {
        ssize_t n;
        if (kind != FDKind::socket) n = sys::ops.writev(fd, data.data(), static_cast<int>(data.size()));
        else if (data.size() == 1) n = sys::ops.send(fd, data[0].iov_base, data[0].iov_len, MSG_NOSIGNAL);
        else n = sys::ops.sendmsg(fd, &m, MSG_NOSIGNAL);
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
    // A close asked for despite the producer (only ever set with one) does not resume it.
    if (producer_ && (!streaming_ || producerPaused_) && !closeDespiteProducer_) {
        producerPaused_ = false;
        // resumeProducing() may write, unregister (dropping the last reference to
        // the producer), close or abort: hold it, and look at nothing afterwards.
        auto keep = producer_;
        if (!streaming_) keep->asPullProducer()->resumeProducing();
        else keep->asPushProducer()->resumeProducing();
        return std::nullopt;
    }
    if (state_ == State::disconnecting) {
        // Any registered producer keeps the connection open until it is
        // unregistered (FD-13, Better than Twisted), unless the close was asked
        // for despite it.
        if (producer_ && !closeDespiteProducer_) return std::nullopt;
        return error::connectionDone();
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
                if (!self->disconnected()) self->connectionLost(error::connectionDone());
            });
        }
        return;
    }
    startWriting();
}

void ITransport::loseConnectionDespiteProducer() { loseConnection(); }

void FileDescriptor::loseConnectionDespiteProducer() {
    if (state_ != State::connected && state_ != State::disconnecting) return;
    closeDespiteProducer_ = true;
    if (state_ == State::connected) {
        // This descriptor's own close: a subclass may route loseConnection() elsewhere (startTLS).
        FileDescriptor::loseConnection();
        return;
    }
    // Already closing, held by the producer: flush and close now.
    if (writeHalf_ != WriteHalf::closed) startWriting();
}

void FileDescriptor::loseWriteConnection() {
    if (!connected() || writeHalf_ != WriteHalf::open) return;  // FD-34
    writeHalf_ = WriteHalf::closing;
    startWriting();
}

void checkProducerKind(IProducer& producer, bool streaming) {
    if (streaming && !producer.asPushProducer())
        throw std::invalid_argument("registerProducer: streaming producer is not an IPushProducer");
    if (!streaming && !producer.asPullProducer())
        throw std::invalid_argument("registerProducer: pull producer is not an IPullProducer");
}

void FileDescriptor::registerProducer(std::shared_ptr<IProducer> producer, bool streaming) {
    if (!producer) throw std::invalid_argument("registerProducer: null producer");
    if (producer_) {
        const IProducer& mine = *producer_;
        const IProducer& theirs = *producer;
        throw std::runtime_error("Cannot register producer " + demangle(typeid(theirs).name()) + ", because producer " +
                                 demangle(typeid(mine).name()) + " was never unregistered.");
    }
    checkProducerKind(*producer, streaming);
    if (disconnected()) {
        producer->stopProducing();  // FD-22
        return;
    }
    producer_ = std::move(producer);
    streaming_ = streaming;
    producerPaused_ = false;
    if (!streaming) {
        auto keep = producer_;  // resumeProducing() may unregister it
        keep->asPullProducer()->resumeProducing();
    }
}

void FileDescriptor::unregisterProducer() {
    producer_.reset();
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
    // Not stopReading()/stopWriting(): those leave an epoll registration paused
    // and watched for errors, to be reduced before the next wait, when
    // the subclass has closed the fd already. An ended descriptor has nothing
    // left to watch: it leaves the reactor at once. The caller holds it (the
    // dispatch guard, a scheduled call's reference), as any close requires.
    reactor_.forgetDescriptor(this);
    queue_.clear();
    if (auto p = std::move(producer_)) {  // FD-2, FD-30: before the protocol hears of it
        // A producer that throws here must not stop the close: the descriptor,
        // its protocol and the producer would stay open and hold each other.
        try {
            p->stopProducing();
        } catch (...) {
            log::failure(getLogPrefix(*this), "Unhandled error in stopProducing", Failure::current());
        }
    }
}

std::string FileDescriptor::contextPrefix(const ILoggingContext& context) {
    try {
        return context.logPrefix();
    } catch (...) {
        std::string name = className(typeid(context));
        log::failure(name, "Unhandled error in logPrefix", Failure::current());
        return name;
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
