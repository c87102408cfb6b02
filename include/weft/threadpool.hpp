// weft/threadpool.hpp — a bounded pool of worker threads (twisted.python.threadpool).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <weft/export.hpp>
#include <weft/function.hpp>

namespace weft {

/// Runs callables on up to `maxThreads` worker threads, created lazily as work
/// arrives (never more than there is queued work) and kept until stop().
///
/// Work queued before start() waits and begins when start() is called.
/// After stop() new work is silently ignored. An exception thrown by a work item
/// is logged; the worker survives. All methods are thread-safe.
class WEFT_EXPORT ThreadPool {
public:
    explicit ThreadPool(std::size_t minThreads = 0, std::size_t maxThreads = 10, std::string name = "weft-pool");
    /// Stops the pool (joining the workers) if it is still running.
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    /// Starts minThreads workers, and enough more for the queued work. Does
    /// nothing after stop(): a stopped pool stays stopped.
    void start();
    /// Lets running work and the work queued before it finish (as Twisted's pool
    /// does: accepted work is not lost), then joins every worker. Work queued on
    /// a pool that never started has no worker to run it and is discarded. A
    /// concurrent second call returns when the first has joined (from one of the
    /// workers being joined, at once).
    /// Must not be called from a worker thread (throws std::logic_error).
    void stop();

    /// Queues f. Ignored after stop().
    void callInThread(Function<void()> f);

    /// Changes the bounds; shrinking takes effect as workers become idle.
    void adjustPoolsize(std::size_t minThreads, std::size_t maxThreads);

    std::size_t min() const;
    std::size_t max() const;
    /// True from start() until stop() (Twisted's `started`).
    bool started() const;
    /// True once stop() has begun (Twisted's `joined`).
    bool joined() const;
    /// Live worker threads.
    std::size_t workers() const;
    /// Work items queued and not yet started.
    std::size_t pending() const;

private:
    void spawnLocked();
    void workerMain();
    /// Joins the workers that left after a shrink (their stacks are freed then).
    void reapFinishedLocked();

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::condition_variable stoppedCv_;     // stop() has joined every worker
    std::vector<std::thread::id> joining_;  // the workers stop() is joining
    bool stopped_ = false;
    std::deque<Function<void()>> queue_;
    std::vector<std::thread> threads_;
    std::vector<std::thread::id> finished_;  // workers that left after a shrink, not yet joined
    std::size_t min_, max_;
    std::size_t idle_ = 0;
    std::size_t live_ = 0;
    bool started_ = false;
    bool joined_ = false;
    std::string name_;
};

}  // namespace weft
