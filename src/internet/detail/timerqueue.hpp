// Private: the timer heap shared by every reactor and task::Clock.
//
// A binary min-heap ordered by (time, sequence) with each entry's heap index
// stored in the entry, so insert, cancel and reschedule are O(log n) and a
// cancelled call leaves the heap at once (no tombstones to skip later). Ties
// are broken by a sequence number taken at scheduling (and again at reset), so
// calls due at the same instant run first-in first-out (R-28, Better than Twisted).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include <weft/function.hpp>
#include <weft/internet/delayedcall.hpp>

namespace weft::detail {

struct TimerEntry {
    enum class State : std::uint8_t { pending, called, cancelled };
    double time = 0;
    std::uint64_t seq = 0;
    std::size_t index = 0;  // position in the heap, or in newCalls_ when !inHeap
    bool inHeap = false;
    State state = State::pending;
    TimerQueue* owner = nullptr;  // null once the queue is gone
    Function<void()> fn;
    // ResetOrder::stable: the time and sequence this call had at the queue's
    // last sort point (epoch), which its place among equal times follows.
    double anchorTime = 0;
    std::uint64_t anchorSeq = 0;
    std::uint64_t anchorEpoch = 0;
};

class TimerQueue {
public:
    /// Where "now" comes from (the owner's seconds()).
    using Now = double (*)(const void* self);

    /// How a reset orders a call among others due at the same new time.
    enum class ResetOrder : std::uint8_t {
        last,    ///< after them, as a new call (the reactor: R-28)
        stable,  ///< where Twisted's Clock puts it (R-57): it keeps a list that it
                 ///< sorts stably by time at each callLater, at each advance and
                 ///< after each call it runs, and a reset does not move a call in
                 ///< the list; so against its time at the last of those sorts, a call
                 ///< moved later goes before the others due at its new time, one
                 ///< moved sooner after them, one not moved keeps its place
    };
    TimerQueue(Now nowFn, const void* self, ResetOrder order = ResetOrder::last)
        : now_(nowFn), self_(self), resetOrder_(order) {}
    ~TimerQueue();
    TimerQueue(const TimerQueue&) = delete;
    TimerQueue& operator=(const TimerQueue&) = delete;

    double now() const { return now_(self_); }

    /// Schedules fn at now() + delay. Throws std::invalid_argument on a negative/NaN delay.
    DelayedCall schedule(double delay, Function<void()> fn);

    /// Time of the earliest pending call, or +infinity.
    double nextTime() const { return heap_.empty() ? INFINITY : heap_.front()->time; }
    bool empty() const { return heap_.empty() && newCalls_.empty(); }
    std::size_t size() const { return heap_.size() + newCalls_.size(); }

    /// Reactor pass: runs the calls due at `now` that were scheduled
    /// before the pass began; calls scheduled (or reset) during the pass wait for
    /// the next one. Each exception is logged; the rest of the batch still runs.
    void runDueOnce(double at);

    /// Clock pass: runs every call due at `now`, including ones scheduled
    /// during the pass. An exception propagates out (the call is consumed).
    void runAllDue(double at);

    std::vector<DelayedCall> pending() const;

    // Used by DelayedCall.
    void cancel(TimerEntry& e);
    void reschedule(TimerEntry& e, double time);

private:
    static bool less(const TimerEntry& a, const TimerEntry& b) {
        return a.time < b.time || (a.time == b.time && a.seq < b.seq);
    }
    void push(std::shared_ptr<TimerEntry> e);
    std::shared_ptr<TimerEntry> popTop();
    void removeAt(std::size_t i);
    void siftUp(std::size_t i);
    void siftDown(std::size_t i);
    void place(std::size_t i, std::shared_ptr<TimerEntry> e) {
        e->index = i;
        e->inHeap = true;
        heap_[i] = std::move(e);
    }
    void stash(std::shared_ptr<TimerEntry> e);
    void unstash(TimerEntry& e);
    static void run(TimerEntry& e);

    Now now_;
    const void* self_;
    ResetOrder resetOrder_;
    // Sequence numbers: new calls count up from the middle of the range; a
    // stable reset that moves a call later counts down from just below it, so
    // it sorts before every call already due at its new time.
    static constexpr std::uint64_t kSeqMiddle = std::uint64_t{1} << 63;
    std::uint64_t nextSeq_ = kSeqMiddle;
    std::uint64_t frontSeq_ = kSeqMiddle - 1;
    std::uint64_t epoch_ = 1;                                  // counts the sort points (ResetOrder::stable)
    std::vector<std::shared_ptr<TimerEntry>> resetSinceSort_;  // (ResetOrder::stable)
    void sortPoint();
    std::vector<std::shared_ptr<TimerEntry>> heap_;
    // Calls scheduled or reset while runDueOnce() runs; they join the heap when
    // the pass ends, so none of them runs in the pass that created it.
    std::vector<std::shared_ptr<TimerEntry>> newCalls_;
    bool inPass_ = false;
};

}  // namespace weft::detail
