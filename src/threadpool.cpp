#include <weft/threadpool.hpp>

#include <algorithm>
#include <stdexcept>

#include <weft/log.hpp>

namespace weft {

ThreadPool::ThreadPool(std::size_t minThreads, std::size_t maxThreads, std::string name)
    : min_(minThreads), max_(maxThreads), name_(std::move(name)) {
    if (minThreads > maxThreads) throw std::invalid_argument("ThreadPool: minThreads > maxThreads");
}

ThreadPool::~ThreadPool() {
    if (started_ && !joined_) stop();
}

void ThreadPool::start() {
    std::lock_guard lk(mu_);
    if (joined_ || started_) return;
    started_ = true;
    while (live_ < min_) spawnLocked();
    while (live_ < max_ && live_ < queue_.size()) spawnLocked();
}

void ThreadPool::spawnLocked() {
    reapFinishedLocked();
    ++live_;
    threads_.emplace_back([this] { workerMain(); });
}

void ThreadPool::reapFinishedLocked() {
    // A finished worker named itself here under the lock, its last use of the
    // pool; holding the lock now, it has let go of it and is ending: the join
    // is short, and it needs nothing of ours.
    for (auto id : finished_) {
        auto it = std::find_if(threads_.begin(), threads_.end(), [id](auto& t) { return t.get_id() == id; });
        if (it == threads_.end()) continue;
        it->join();
        threads_.erase(it);
    }
    finished_.clear();
}

void ThreadPool::stop() {
    std::vector<std::thread> threads;
    {
        std::unique_lock lk(mu_);
        if (joined_) {
            // A second stop() returns once the first has joined every worker, as
            // the first does; a worker the first is joining returns at once.
            auto self = std::this_thread::get_id();
            if (std::find(joining_.begin(), joining_.end(), self) == joining_.end())
                stoppedCv_.wait(lk, [&] { return stopped_; });
            return;
        }
        for (auto& t : threads_)
            if (t.get_id() == std::this_thread::get_id())
                throw std::logic_error("ThreadPool::stop() called from one of its own workers");
        joined_ = true;
        started_ = false;  // as Twisted's: a stopped pool is not started (and start() cannot restart it)
        threads = std::move(threads_);
        for (auto& t : threads) joining_.push_back(t.get_id());
        finished_.clear();  // joined below with the others
    }
    cv_.notify_all();
    for (auto& t : threads) t.join();  // each leaves once the queue is empty
    // Left only by a pool that had no worker to run it (never started): dropped
    // with the pool stopped and unlocked, as its captures may call into the pool.
    std::deque<Function<void()>> discarded;
    {
        std::lock_guard lk(mu_);
        discarded.swap(queue_);
        joining_.clear();
        stopped_ = true;
    }
    stoppedCv_.notify_all();
}

void ThreadPool::callInThread(Function<void()> f) {
    {
        std::lock_guard lk(mu_);
        if (joined_) return;
        if (!finished_.empty()) reapFinishedLocked();
        queue_.push_back(std::move(f));
        if (!started_) return;
        if (idle_ < queue_.size() && live_ < max_) spawnLocked();
    }
    cv_.notify_one();
}

void ThreadPool::adjustPoolsize(std::size_t minThreads, std::size_t maxThreads) {
    if (minThreads > maxThreads) throw std::invalid_argument("ThreadPool: minThreads > maxThreads");
    {
        std::lock_guard lk(mu_);
        min_ = minThreads;
        max_ = maxThreads;
        reapFinishedLocked();
        if (started_ && !joined_) {
            while (live_ < min_) spawnLocked();
            // One new worker per queued item that no idle worker will take. (The old
            // test, idle_ + live_ < queue_.size() + live_, never changed as workers
            // were spawned, so any backlog grew the pool straight to the maximum.)
            for (std::size_t fresh = 0; live_ < max_ && idle_ + fresh < queue_.size(); ++fresh) spawnLocked();
        }
    }
    cv_.notify_all();
}

void ThreadPool::workerMain() {
    std::unique_lock lk(mu_);
    for (;;) {
        ++idle_;
        cv_.wait(lk, [&] { return joined_ || !queue_.empty() || live_ > max_; });
        --idle_;
        // At stop() the queue is drained first, as Twisted's team does: accepted work is not lost.
        if (queue_.empty() && (joined_ || live_ > max_)) break;
        auto f = std::move(queue_.front());
        queue_.pop_front();
        lk.unlock();
        try {
            f();
        } catch (...) {
            log::failure(name_, "Unhandled error in a thread pool work item", Failure::current());
        }
        f.reset();  // destroy captures outside the lock
        lk.lock();
    }
    --live_;
    // Left after a shrink: the next spawn or resize joins it. At stop() the
    // stopping thread joins every worker itself.
    if (!joined_) finished_.push_back(std::this_thread::get_id());
}

std::size_t ThreadPool::min() const {
    std::lock_guard lk(mu_);
    return min_;
}
std::size_t ThreadPool::max() const {
    std::lock_guard lk(mu_);
    return max_;
}
bool ThreadPool::started() const {
    std::lock_guard lk(mu_);
    return started_;
}
bool ThreadPool::joined() const {
    std::lock_guard lk(mu_);
    return joined_;
}
std::size_t ThreadPool::workers() const {
    std::lock_guard lk(mu_);
    return live_;
}
std::size_t ThreadPool::pending() const {
    std::lock_guard lk(mu_);
    return queue_.size();
}

}  // namespace weft
