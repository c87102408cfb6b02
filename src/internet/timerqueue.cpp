#include "internet/detail/timerqueue.hpp"

#include <algorithm>
#include <stdexcept>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>

namespace weft {

using detail::TimerEntry;

namespace {
void checkPending(const TimerEntry& e) {
    if (e.state == TimerEntry::State::called) throw error::AlreadyCalled();
    if (e.state == TimerEntry::State::cancelled || e.owner == nullptr) throw error::AlreadyCancelled();
}
void checkDelay(double d) {
    if (std::isnan(d)) throw std::invalid_argument("callLater: delay is NaN");
    if (d < 0) throw std::invalid_argument("callLater: negative delay " + std::to_string(d));
}
}  // namespace

double DelayedCall::getTime() const { return entry_ ? entry_->time : NAN; }

void DelayedCall::cancel() {
    if (!entry_) throw std::logic_error("DelayedCall::cancel on an empty handle");
    checkPending(*entry_);
    entry_->owner->cancel(*entry_);
}

void DelayedCall::reset(double secondsFromNow) {
    if (!entry_) throw std::logic_error("DelayedCall::reset on an empty handle");
    checkPending(*entry_);
    if (std::isnan(secondsFromNow)) throw std::invalid_argument("DelayedCall::reset: NaN");
    double time = entry_->owner->now() + secondsFromNow;
    // Each operand may be valid and the sum not: -inf from a clock at +inf.
    if (std::isnan(time)) throw std::invalid_argument("DelayedCall::reset: the new time is not a number");
    entry_->owner->reschedule(*entry_, time);
}

void DelayedCall::delay(double secondsLater) {
    if (!entry_) throw std::logic_error("DelayedCall::delay on an empty handle");
    checkPending(*entry_);
    if (std::isnan(secondsLater)) throw std::invalid_argument("DelayedCall::delay: NaN");
    double time = entry_->time + secondsLater;
    // Each operand may be valid and the sum not: -inf after a call due at +inf.
    if (std::isnan(time)) throw std::invalid_argument("DelayedCall::delay: the new time is not a number");
    entry_->owner->reschedule(*entry_, time);
}

bool DelayedCall::active() const noexcept {
    return entry_ && entry_->state == TimerEntry::State::pending && entry_->owner != nullptr;
}
bool DelayedCall::called() const noexcept { return entry_ && entry_->state == TimerEntry::State::called; }
bool DelayedCall::cancelled() const noexcept {
    return entry_ && (entry_->state == TimerEntry::State::cancelled ||
                      (entry_->state == TimerEntry::State::pending && entry_->owner == nullptr));
}

namespace detail {

TimerQueue::~TimerQueue() {
    // Detach first, then destroy callables: a callable's destructor may touch handles.
    auto heap = std::move(heap_);
    heap.insert(heap.end(), newCalls_.begin(), newCalls_.end());
    newCalls_.clear();
    for (auto& e : heap) e->owner = nullptr;
    for (auto& e : heap) e->fn.reset();
}

DelayedCall TimerQueue::schedule(double delay, Function<void()> fn) {
    checkDelay(delay);
    if (!fn) throw std::invalid_argument("callLater: empty callable");
    auto e = std::make_shared<TimerEntry>();
    sortPoint();  // Twisted's Clock sorts its list here; the new call then goes last
    e->time = now() + delay;
    e->seq = nextSeq_++;
    e->owner = this;
    e->fn = std::move(fn);
    DelayedCall handle(e);
    if (inPass_) stash(std::move(e));
    else push(std::move(e));
    return handle;
}

void TimerQueue::push(std::shared_ptr<TimerEntry> e) {
    heap_.emplace_back();
    place(heap_.size() - 1, std::move(e));
    siftUp(heap_.size() - 1);
}

std::shared_ptr<TimerEntry> TimerQueue::popTop() {
    auto top = std::move(heap_.front());
    auto last = std::move(heap_.back());
    heap_.pop_back();
    if (!heap_.empty()) {
        place(0, std::move(last));
        siftDown(0);
    }
    return top;
}

void TimerQueue::removeAt(std::size_t i) {
    auto last = std::move(heap_.back());
    heap_.pop_back();
    if (i < heap_.size()) {
        place(i, std::move(last));
        siftUp(i);
        siftDown(heap_[i]->index);
    }
}

void TimerQueue::siftUp(std::size_t i) {
    auto e = std::move(heap_[i]);
    while (i > 0) {
        std::size_t parent = (i - 1) / 2;
        if (!less(*e, *heap_[parent])) break;
        place(i, std::move(heap_[parent]));
        i = parent;
    }
    place(i, std::move(e));
}

void TimerQueue::siftDown(std::size_t i) {
    const std::size_t n = heap_.size();
    auto e = std::move(heap_[i]);
    for (;;) {
        std::size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && less(*heap_[child + 1], *heap_[child])) ++child;
        if (!less(*heap_[child], *e)) break;
        place(i, std::move(heap_[child]));
        i = child;
    }
    place(i, std::move(e));
}

void TimerQueue::stash(std::shared_ptr<TimerEntry> e) {
    e->inHeap = false;
    e->index = newCalls_.size();
    newCalls_.push_back(std::move(e));
}

void TimerQueue::unstash(TimerEntry& e) {
    std::size_t i = e.index;
    if (i + 1 != newCalls_.size()) {
        newCalls_[i] = std::move(newCalls_.back());
        newCalls_[i]->index = i;
    }
    newCalls_.pop_back();
}

void TimerQueue::cancel(TimerEntry& e) {
    e.state = TimerEntry::State::cancelled;
    auto fn = std::move(e.fn);  // released when we return, after the heap is consistent
    if (e.inHeap) {
        auto keep = heap_[e.index];
        removeAt(e.index);
    } else {
        auto keep = newCalls_[e.index];
        unstash(e);
    }
}

void TimerQueue::reschedule(TimerEntry& e, double time) {
    if (resetOrder_ == ResetOrder::last) {
        e.time = time;
        e.seq = nextSeq_++;
    } else {
        if (e.anchorEpoch != epoch_) {  // the first reset since the last sort point
            e.anchorTime = e.time;
            e.anchorSeq = e.seq;
            e.anchorEpoch = epoch_;
            if (e.inHeap) resetSinceSort_.push_back(heap_[e.index]);
        }
        e.time = time;
        if (time > e.anchorTime) e.seq = frontSeq_--;
        else if (time < e.anchorTime) e.seq = nextSeq_++;
        else e.seq = e.anchorSeq;
    }
    if (!e.inHeap) return;
    if (inPass_) {  // a reset during a pass waits for the next pass, like a new call
        auto keep = heap_[e.index];
        removeAt(e.index);
        stash(std::move(keep));
        return;
    }
    siftUp(e.index);
    siftDown(e.index);
}

void TimerQueue::run(TimerEntry& e) {
    e.state = TimerEntry::State::called;  // before the call: cancel() inside it throws AlreadyCalled
    auto fn = std::move(e.fn);
    fn();
}

void TimerQueue::runDueOnce(double at) {
    if (heap_.empty() || heap_.front()->time > at) return;
    inPass_ = true;
    while (!heap_.empty() && heap_.front()->time <= at) {
        auto e = popTop();
        e->inHeap = false;
        try {
            run(*e);
        } catch (...) {
            log::failure("", "Unhandled error in a timed call", Failure::current());
        }
    }
    inPass_ = false;
    auto fresh = std::move(newCalls_);
    newCalls_.clear();
    for (auto& e : fresh) push(std::move(e));
}

void TimerQueue::runAllDue(double at) {
    sortPoint();  // sort points: the advance, and after each call
    while (!heap_.empty() && heap_.front()->time <= at) {
        auto e = popTop();
        e->inHeap = false;
        run(*e);
        sortPoint();
    }
}

void TimerQueue::sortPoint() {
    if (resetOrder_ != ResetOrder::stable) return;
    if (!resetSinceSort_.empty()) {
        // What a stable sort of the list by time does to the calls reset since
        // the last sort point: each keeps its place among the calls due at its
        // new time if it was due then at the last sort too; it goes before them
        // if it was due sooner then, after them if later; and calls reset alike
        // keep, among themselves, the order they had at the last sort.
        std::vector<std::shared_ptr<TimerEntry>> later, sooner;
        for (auto& e : resetSinceSort_) {
            if (e->state != TimerEntry::State::pending || !e->inHeap || e->anchorEpoch != epoch_) continue;
            if (e->time > e->anchorTime) later.push_back(e);
            else if (e->time < e->anchorTime) sooner.push_back(e);
            else e->seq = e->anchorSeq;
        }
        resetSinceSort_.clear();
        auto byAnchor = [](const auto& a, const auto& b) {
            return a->anchorTime < b->anchorTime || (a->anchorTime == b->anchorTime && a->anchorSeq < b->anchorSeq);
        };
        std::sort(later.begin(), later.end(), byAnchor);
        std::sort(sooner.begin(), sooner.end(), byAnchor);
        for (auto it = later.rbegin(); it != later.rend(); ++it) (*it)->seq = frontSeq_--;
        for (auto& e : sooner) e->seq = nextSeq_++;
        for (auto* group : {&later, &sooner})
            for (auto& e : *group) {
                siftUp(e->index);
                siftDown(e->index);
            }
    }
    ++epoch_;
}

std::vector<DelayedCall> TimerQueue::pending() const {
    std::vector<DelayedCall> out;
    out.reserve(size());
    for (auto& e : heap_) out.push_back(DelayedCall(e));
    for (auto& e : newCalls_) out.push_back(DelayedCall(e));
    return out;
}

}  // namespace detail
}  // namespace weft
