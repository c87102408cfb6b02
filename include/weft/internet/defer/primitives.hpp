// weft/internet/defer/primitives.hpp — DeferredLock, DeferredSemaphore and
// DeferredQueue (spec: defer.md DEF-53 … DEF-56). Include <weft/internet/defer.hpp>.
#pragma once

#include <cstddef>
#include <deque>
#include <limits>
#include <memory>
#include <stdexcept>
#include <utility>

#include <weft/internet/defer/deferred.hpp>
#include <weft/log.hpp>

namespace weft {

namespace detail {

/// FIFO of pending acquire()/get() Deferreds. The queue owns its waiters (it is
/// their producer); a waiter's canceller refers back to the queue weakly, so a
/// cancelled waiter leaves the queue and nothing leaks (DEF-53, DEF-56).
template <class V>
class Waiters : public std::enable_shared_from_this<Waiters<V>> {
public:
    Deferred<V> add(SourceLocation loc) {
        std::weak_ptr<Waiters> weak = this->shared_from_this();
        Deferred<V> d(
            [weak](Deferred<V>& self) {
                if (auto w = weak.lock()) std::erase(w->queue_, self);
            },
            loc);
        queue_.push_back(d);
        return d;
    }
    bool empty() const noexcept { return queue_.empty(); }
    std::size_t size() const noexcept { return queue_.size(); }
    Deferred<V> pop() {
        Deferred<V> d = std::move(queue_.front());
        queue_.pop_front();
        return d;
    }

    /// Set when the primitive that owns the queue is destroyed.
    bool ownerGone = false;

private:
    std::deque<Deferred<V>> queue_;
};

/// Shared by DeferredLock and DeferredSemaphore: hands freed units to waiters
/// with a loop, so waiters that release from their own callbacks do not nest
/// (DEF-53, better than Twisted).
template <class Self>
class PrimitiveBase {
public:
    PrimitiveBase() = default;
    ~PrimitiveBase() { waiters_->ownerGone = true; }
    PrimitiveBase(const PrimitiveBase&) = delete;
    PrimitiveBase& operator=(const PrimitiveBase&) = delete;

    /// Acquires, calls f(args...) through maybeDeferred and releases when f's
    /// Deferred fires, success or failure; the returned Deferred then gets f's
    /// outcome (DEF-55). The primitive must outlive the returned Deferred's firing.
    template <class F, class... A>
    auto run(F f, A... args) {
        using D = decltype(maybeDeferred(std::move(f), std::move(args)...));
        using U = typename D::value_type;
        return self().acquire().addCallback([this, f = std::move(f), ... args = std::move(args)](Self*) mutable {
            return maybeDeferred(std::move(f), std::move(args)...).addBoth([this](Result<U> r) -> Result<U> {
                self().release();
                return r;
            });
        });
    }

    /// Releases on destruction, also while an exception leaves the scope (which
    /// it never swallows). Obtained with `co_await primitive.scoped()` (DEF-55).
    class Guard {
    public:
        explicit Guard(Self* s) noexcept : s_(s) {}
        Guard(Guard&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
        Guard& operator=(Guard&&) = delete;
        ~Guard() {
            if (s_) {
                try {
                    s_->release();
                } catch (...) {
                    log::failure("", "Exception while releasing a scoped DeferredLock/Semaphore:", Failure::current());
                }
            }
        }

    private:
        Self* s_;
    };

    /// acquire() as a Guard (Twisted's `async with`).
    Deferred<Guard> scoped(SourceLocation loc = SourceLocation::current()) {
        return self().acquire(loc).addCallback([](Self* s) { return Guard(s); });
    }

protected:
    Self& self() noexcept { return static_cast<Self&>(*this); }

    Deferred<Self*> enqueue(SourceLocation loc) { return waiters_->add(loc); }

    /// One unit (the lock, a token) became free: give it to the oldest waiter or
    /// return it to the primitive (freeUnit). Re-entrant calls only count.
    void handOver() {
        if (releasing_) {
            ++pending_;
            return;
        }
        releasing_ = true;
        pending_ = 1;
        // A waiter's callback may destroy the primitive (the last user tearing
        // down its owner): the loop then stops without touching it again.
        auto waiters = waiters_;  // outlives the primitive; tells whether it is gone
        struct Reset {
            PrimitiveBase& p;
            const Waiters<Self*>& w;
            ~Reset() {
                if (!w.ownerGone) p.releasing_ = false;
            }
        } reset{*this, *waiters};
        while (pending_ > 0) {
            --pending_;
            if (waiters_->empty()) {
                self().freeUnit();
                continue;
            }
            Deferred<Self*> next = waiters_->pop();
            try {
                next.callback(&self());
            } catch (...) {
                log::failure("", "Exception while handing over a DeferredLock/Semaphore:", Failure::current());
            }
            if (waiters->ownerGone) return;
        }
    }
    std::size_t pendingReleases() const noexcept { return releasing_ ? pending_ : 0; }
    std::size_t waiting() const noexcept { return waiters_->size(); }

private:
    std::shared_ptr<Waiters<Self*>> waiters_ = std::make_shared<Waiters<Self*>>();
    std::size_t pending_ = 0;
    bool releasing_ = false;
};

}  // namespace detail

/// A lock for Deferred-based code (Twisted DeferredLock; DEF-53, DEF-55).
/// Not thread-safe. Destroying the lock drops (never fires) the pending
/// acquire() Deferreds; a waiter's callback may destroy it.
class DeferredLock : public detail::PrimitiveBase<DeferredLock> {
public:
    /// A Deferred that fires with this lock once the caller holds it: at once if
    /// free, otherwise after earlier waiters (FIFO). Cancelling a pending one
    /// fails it with CancelledError and removes it from the queue.
    Deferred<DeferredLock*> acquire(SourceLocation loc = SourceLocation::current()) {
        if (!locked_) {
            locked_ = true;
            return succeed(this, loc);
        }
        return enqueue(loc);
    }
    /// Hands the lock to the oldest waiter (firing its Deferred; locked() stays
    /// true) or unlocks. Throws std::logic_error when not locked. Called from a
    /// waiter's callback, may return before the next waiter's callback runs.
    void release() {
        if (!locked_ || pendingReleases() > 0) throw std::logic_error("DeferredLock::release() on an unlocked lock");
        handOver();
    }
    /// Whether someone holds the lock.
    bool locked() const noexcept { return locked_; }

private:
    friend class detail::PrimitiveBase<DeferredLock>;
    void freeUnit() noexcept { locked_ = false; }
    bool locked_ = false;
};

/// A semaphore for Deferred-based code (Twisted DeferredSemaphore; DEF-54, DEF-55).
class DeferredSemaphore : public detail::PrimitiveBase<DeferredSemaphore> {
public:
    /// Throws std::invalid_argument for tokens < 1.
    explicit DeferredSemaphore(long tokens)
        : tokens_(tokens < 1 ? throw std::invalid_argument("DeferredSemaphore needs at least one token")
                             : static_cast<std::size_t>(tokens)),
          limit_(tokens_) {}

    /// Takes a token at once if one is left, else queues FIFO (see DeferredLock).
    Deferred<DeferredSemaphore*> acquire(SourceLocation loc = SourceLocation::current()) {
        if (tokens_ > 0) {
            --tokens_;
            return succeed(this, loc);
        }
        return enqueue(loc);
    }
    /// Returns a token, straight to the oldest waiter if there is one. Throws
    /// std::logic_error when that would make tokens() exceed limit().
    void release() {
        if (tokens_ + pendingReleases() >= limit_)
            throw std::logic_error("DeferredSemaphore::release() more often than acquire()");
        handOver();
    }
    /// Tokens left.
    std::size_t tokens() const noexcept { return tokens_; }
    /// The token count given at construction.
    std::size_t limit() const noexcept { return limit_; }

private:
    friend class detail::PrimitiveBase<DeferredSemaphore>;
    void freeUnit() noexcept { ++tokens_; }
    std::size_t tokens_;
    std::size_t limit_;
};

/// A FIFO queue whose get() returns Deferreds (Twisted DeferredQueue; DEF-56).
template <class T>
class DeferredQueue {
public:
    /// Unbounded size or backlog.
    static constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();

    /// `size` bounds stored items, `backlog` bounds waiting get()s.
    explicit DeferredQueue(std::size_t size = unbounded, std::size_t backlog = unbounded)
        : size_(size), backlog_(backlog) {}
    DeferredQueue(const DeferredQueue&) = delete;
    DeferredQueue& operator=(const DeferredQueue&) = delete;

    /// Gives x to the oldest waiting get(), firing it synchronously; else stores
    /// it if fewer than `size` are stored; else throws defer::QueueOverflow.
    void put(T x) {
        if (!waiters_->empty()) {
            waiters_->pop().callback(std::move(x));
        } else if (pending_.size() < size_) {
            pending_.push_back(std::move(x));
        } else {
            throw defer::QueueOverflow();
        }
    }

    /// An already-fired Deferred with the oldest stored item; else a pending one
    /// if fewer than `backlog` get()s wait; else throws defer::QueueUnderflow.
    /// Cancelling a waiting get() fails it with CancelledError and removes it.
    Deferred<T> get(SourceLocation loc = SourceLocation::current()) {
        if (!pending_.empty()) {
            T x = std::move(pending_.front());
            pending_.pop_front();
            return succeed(std::move(x), loc);
        }
        if (waiters_->size() < backlog_) return waiters_->add(loc);
        throw defer::QueueUnderflow();
    }

    /// Items stored (Twisted `pending`).
    std::size_t pendingCount() const noexcept { return pending_.size(); }
    /// get()s waiting (Twisted `waiting`).
    std::size_t waitingCount() const noexcept { return waiters_->size(); }

private:
    std::size_t size_;
    std::size_t backlog_;
    std::deque<T> pending_;
    std::shared_ptr<detail::Waiters<T>> waiters_ = std::make_shared<detail::Waiters<T>>();
};

}  // namespace weft
