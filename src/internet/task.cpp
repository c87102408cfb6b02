#include <weft/internet/task.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <stdexcept>

#include "internet/detail/timerqueue.hpp"

namespace weft::task {

// ---- Clock -------------------------------------------------------------------

Clock::Clock()
    : queue_(
          std::make_unique<detail::TimerQueue>([](const void* self) { return static_cast<const Clock*>(self)->now_; },
                                               this, detail::TimerQueue::ResetOrder::stable)) {}

Clock::~Clock() = default;

DelayedCall Clock::callLater(double delay, Function<void()> f) { return queue_->schedule(delay, std::move(f)); }

std::vector<DelayedCall> Clock::getDelayedCalls() const { return queue_->pending(); }

void Clock::advance(double amount) {
    if (std::isnan(amount) || amount < 0) throw std::invalid_argument("Clock::advance: amount must be >= 0");
    now_ += amount;
    queue_->runAllDue(now_);
}

void Clock::pump(std::initializer_list<double> amounts) {
    for (double a : amounts) advance(a);
}

void Clock::pump(const std::vector<double>& amounts) {
    for (double a : amounts) advance(a);
}

// ---- LoopingCall ---------------------------------------------------------------

struct LoopingCall::State : std::enable_shared_from_this<State> {
    State(IReactorTime& c, bool count, Function<Deferred<void>(int)> f)
        : clock(c), call(std::move(f)), counting(count) {}

    IReactorTime& clock;
    Function<Deferred<void>(int)> call;
    LoopingCall* owner = nullptr;  // null once the LoopingCall is destroyed
    bool counting;
    bool running = false;
    bool inProgress = false;  // the function, or a Deferred it returned, has not finished
    bool runAtStart = false;
    double interval = 0;
    double startTime = 0;
    std::optional<double> realLastTime;  // withCount: when the function last ran
    DelayedCall pending;                 // the next run, while waiting for it
    std::optional<Deferred<LoopingCall*>> deferred;

    // Twisted LoopingCall.withCount's counter: whole intervals since the last run.
    int countIntervals() {
        double now = clock.seconds();
        if (interval == 0) {
            realLastTime = now;
            return 1;
        }
        double last = realLastTime ? *realLastTime : startTime - (runAtStart ? interval : 0.0);
        double n = std::trunc((now - startTime) / interval) - std::trunc((last - startTime) / interval);
        if (!(n > 0)) return 0;
        realLastTime = now;
        return n >= static_cast<double>(INT_MAX) ? INT_MAX : static_cast<int>(n);
    }

    void invoke() {
        auto self = shared_from_this();  // the function may destroy the LoopingCall
        pending = DelayedCall{};
        inProgress = true;
        int count = counting ? countIntervals() : 1;
        Deferred<void> d = count > 0 ? call(count) : succeed();
        std::weak_ptr<State> weak = self;
        d.addCallbacks(
            [weak] {
                if (auto s = weak.lock()) s->callFinished();
            },
            [weak](Failure f) -> Result<void> {
                auto s = weak.lock();
                if (!s || !s->owner) return f;  // nobody left to tell: stays unhandled and is logged
                s->callFailed(std::move(f));
                return {};
            });
    }

    void callFinished() {
        inProgress = false;
        if (!owner) return;
        if (running) {
            scheduleFrom(clock.seconds());
        } else {
            fire();
        }
    }

    void callFailed(Failure f) {
        inProgress = false;
        running = false;
        auto d = std::move(*deferred);
        deferred.reset();
        d.errback(std::move(f));
    }

    void fire() {
        auto d = std::move(*deferred);
        deferred.reset();
        d.callback(owner);
    }

    // The next multiple of `interval` after startTime that is strictly later
    // than `when` (Twisted _scheduleFrom).
    void scheduleFrom(double when) {
        double delay = 0;
        if (interval != 0) {
            double runningFor = std::fmod(when - startTime, interval);
            if (runningFor < 0) runningFor += interval;  // Python's % is never negative here
            delay = interval - runningFor;
            // A remainder so close to a whole interval that adding it does not move
            // `when` means "now", which is not the future: wait a whole interval.
            if (when == when + delay) delay = interval;
        }
        std::weak_ptr<State> weak = weak_from_this();
        pending = clock.callLater(delay, [weak] {
            if (auto s = weak.lock()) s->invoke();
        });
    }

    void cancelPending() noexcept {
        if (pending.active()) pending.cancel();
        pending = DelayedCall{};
    }
};

LoopingCall::LoopingCall(IReactorTime& clock, bool counting, Function<Deferred<void>(int)> call)
    : state_(std::make_shared<State>(clock, counting, std::move(call))) {
    state_->owner = this;
}

LoopingCall::~LoopingCall() {
    state_->owner = nullptr;
    state_->running = false;
    state_->cancelPending();
    state_->deferred.reset();
}

Deferred<LoopingCall*> LoopingCall::start(double interval, bool now) {
    auto s = state_;
    if (s->running) throw std::logic_error("LoopingCall::start: the loop is already running");
    if (s->inProgress) throw std::logic_error("LoopingCall::start: the previous run's call has not finished yet");
    if (!(interval >= 0) || std::isinf(interval))
        throw std::invalid_argument("LoopingCall::start: interval must be finite and >= 0");
    s->running = true;
    s->deferred.emplace();
    Deferred<LoopingCall*> d = *s->deferred;
    s->startTime = s->clock.seconds();
    s->interval = interval;
    s->runAtStart = now;
    s->realLastTime.reset();
    if (now) {
        s->invoke();
    } else {
        s->scheduleFrom(s->startTime);
    }
    return d;
}

void LoopingCall::stop() {
    auto s = state_;  // the start() Deferred's callbacks may destroy *this
    if (!s->running) throw std::logic_error("LoopingCall::stop: the loop is not running");
    s->running = false;
    if (s->pending) {
        s->cancelPending();
        s->fire();
    }
}

void LoopingCall::reset() {
    auto s = state_;
    if (!s->running) throw std::logic_error("LoopingCall::reset: the loop is not running");
    if (s->pending) {
        s->cancelPending();
        s->startTime = s->clock.seconds();
        s->scheduleFrom(s->startTime);
    }
}

bool LoopingCall::running() const noexcept { return state_->running; }
double LoopingCall::interval() const noexcept { return state_->interval; }
IReactorTime& LoopingCall::clock() const noexcept { return state_->clock; }

// ---- deferLater ------------------------------------------------------------------

Deferred<void> deferLater(IReactorTime& clock, double delay) {
    // The timer owns the Deferred and the canceller owns the timer's handle; the
    // cycle ends when the timer runs or is cancelled, or the clock goes away.
    auto call = std::make_shared<DelayedCall>();
    Deferred<void> d([call](Deferred<void>&) {
        if (call->active()) call->cancel();
    });
    *call = clock.callLater(delay, [d]() mutable { d.callback(); });
    return d;
}

// ---- errors -------------------------------------------------------------------

SchedulerStopped::SchedulerStopped() : SchedulerError("the Cooperator was stopped") {}
TaskDone::TaskDone() : TaskFinished("the task has finished") {}
TaskStopped::TaskStopped() : TaskFinished("the task was stopped") {}
TaskFailed::TaskFailed() : TaskFinished("the task failed") {}
NotPaused::NotPaused() : SchedulerError("the task is not paused") {}

// ---- Cooperator ---------------------------------------------------------------

}  // namespace weft::task

namespace weft::detail {

using task::CooperativeTask;
using task::Cooperator;
using task::Iterator;
using task::SchedulerStopped;

struct CooperatorState : std::enable_shared_from_this<CooperatorState> {
    CooperatorState(Cooperator::Scheduler s, bool start, Cooperator::TerminationPredicateFactory f)
        : scheduler(std::move(s)), terminator(std::move(f)), started(start) {}

    Cooperator::Scheduler scheduler;
    Cooperator::TerminationPredicateFactory terminator;
    std::vector<std::shared_ptr<CooperativeTask>> tasks;  // every unfinished task, round-robin order
    std::size_t cursor = 0;                               // where the next pass continues
    Function<void()> cancelTick;
    bool tickPending = false;
    bool started;
    bool stopped = false;

    bool anyRunnable() const {
        return std::any_of(tasks.begin(), tasks.end(), [](const auto& t) { return t->runnable(); });
    }

    std::shared_ptr<CooperativeTask> nextRunnable() {
        for (std::size_t k = 0, n = tasks.size(); k < n; ++k) {
            std::size_t i = (cursor + k) % n;
            if (tasks[i]->runnable()) {
                cursor = i + 1;
                return tasks[i];
            }
        }
        return nullptr;
    }

    std::shared_ptr<CooperativeTask> create(Iterator it) {
        auto t = std::make_shared<CooperativeTask>(CooperativeTask::Key{}, std::move(it), weak_from_this());
        add(t);
        return t;
    }

    void add(std::shared_ptr<CooperativeTask> t) {
        if (stopped) {
            t->completeWith(CooperativeTask::End::schedulerStopped, Failure(SchedulerStopped()));
            return;
        }
        tasks.push_back(std::move(t));
        reschedule();
    }

    void forget(const CooperativeTask* t) {
        auto it = std::find_if(tasks.begin(), tasks.end(), [t](const auto& p) { return p.get() == t; });
        if (it == tasks.end()) return;
        auto i = static_cast<std::size_t>(it - tasks.begin());
        if (i < cursor) --cursor;
        tasks.erase(it);
        taskBlocked();
    }

    // A task stopped being runnable: a tick with nothing to do must not stay
    // scheduled (R-66; lets tests assert that no call was left behind).
    void taskBlocked() {
        if (tickPending && !anyRunnable()) cancelPendingTick();
    }

    void cancelPendingTick() {
        tickPending = false;
        auto cancel = std::move(cancelTick);
        cancelTick = nullptr;
        if (cancel) cancel();
    }

    void reschedule() {
        if (!started || stopped || tickPending || !anyRunnable()) return;
        std::weak_ptr<CooperatorState> weak = weak_from_this();
        tickPending = true;
        try {
            cancelTick = scheduler([weak] {
                if (auto s = weak.lock()) s->tick();
            });
        } catch (...) {
            tickPending = false;
            throw;
        }
    }

    void tick() {
        auto self = shared_from_this();  // a step may destroy the Cooperator
        tickPending = false;
        cancelTick = nullptr;
        Function<bool()> enough;
        if (terminator) {
            enough = terminator();
        } else {
            auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(Cooperator::kMaxSlice);
            enough = [end] { return std::chrono::steady_clock::now() >= end; };
        }
        while (auto t = nextRunnable()) {
            t->oneWorkUnit();
            if (enough()) break;
        }
        reschedule();
    }

    void stop() {
        stopped = true;
        cancelPendingTick();
        auto all = std::move(tasks);
        tasks.clear();
        cursor = 0;
        for (auto& t : all) t->completeWith(CooperativeTask::End::schedulerStopped, Failure(SchedulerStopped()));
    }
};

}  // namespace weft::detail

namespace weft::task {

CooperativeTask::CooperativeTask(Key, Iterator it, std::weak_ptr<detail::CooperatorState> coop)
    : iterator_(std::make_shared<Iterator>(std::move(it))), coop_(std::move(coop)) {}

CooperativeTask::~CooperativeTask() = default;

Deferred<std::shared_ptr<Iterator>> CooperativeTask::whenDone() {
    Deferred<std::shared_ptr<Iterator>> d;
    if (end_ == End::none) {
        waiters_.push_back(d);
    } else if (end_ == End::done) {
        d.callback(iterator_);
    } else {
        d.errback(*failure_);
    }
    return d;
}

void CooperativeTask::checkFinish() const {
    switch (end_) {
        case End::none: return;
        case End::done: throw TaskDone();
        case End::stopped: throw TaskStopped();
        case End::failed: throw TaskFailed();
        case End::schedulerStopped: throw SchedulerStopped();
    }
}

void CooperativeTask::pause() {
    checkFinish();
    if (++pauses_ == 1) {
        if (auto c = coop_.lock()) c->taskBlocked();
    }
}

void CooperativeTask::resume() {
    if (pauses_ == 0) throw NotPaused();
    if (--pauses_ == 0 && runnable()) {
        if (auto c = coop_.lock()) c->reschedule();
    }
}

void CooperativeTask::stop() {
    checkFinish();
    completeWith(End::stopped, Failure(TaskStopped()));
}

void CooperativeTask::completeWith(End how, std::optional<Failure> why) {
    if (end_ != End::none) return;
    auto self = shared_from_this();  // the Cooperator may hold the last reference
    end_ = how;
    failure_ = std::move(why);
    // Leave the Cooperator before any whenDone() callback runs: it may stop the
    // Cooperator or add tasks (Twisted _completeWith, test_stopCooperatorReentrancy).
    if (auto c = coop_.lock()) c->forget(this);
    // A stopped or failed task will never hand out its iterator: free what it
    // captured. oneWorkUnit() keeps its own reference while the iterator runs.
    if (how != End::done) iterator_.reset();
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& d : waiters) {
        if (how == End::done) {
            d.callback(iterator_);
        } else {
            d.errback(*failure_);
        }
    }
}

void CooperativeTask::oneWorkUnit() {
    auto self = shared_from_this();
    auto it = iterator_;  // the step may stop this task, which drops iterator_
    std::optional<Step> step;
    try {
        step.emplace((*it)());
    } catch (...) {
        completeWith(End::failed, Failure::current());
        return;
    }
    if (end_ != End::none) return;  // the step stopped this task or the Cooperator
    switch (step->kind()) {
        case Step::Kind::more: return;
        case Step::Kind::done: completeWith(End::done, std::nullopt); return;
        case Step::Kind::wait: break;
    }
    waiting_ = true;
    if (auto c = coop_.lock()) c->taskBlocked();
    Deferred<void> d = std::move(*step->waitingOn());
    // The Deferred owns the task until it fires, as Twisted's callbacks do.
    d.addCallbacks(
        [self] {
            self->waiting_ = false;
            if (self->runnable()) {
                if (auto c = self->coop_.lock()) c->reschedule();
            }
        },
        [self](Failure f) {
            self->waiting_ = false;
            // After stop() the task no longer cares how the wait ended.
            if (self->end_ == End::none) self->completeWith(End::failed, std::move(f));
        });
}

Cooperator::Cooperator(IReactorTime& clock, bool started, TerminationPredicateFactory terminationPredicateFactory)
    : Cooperator(Scheduler([&clock](Function<void()> tick) -> Function<void()> {
                     DelayedCall call = clock.callLater(kTickDelay, std::move(tick));
                     return [call]() mutable {
                         if (call.active()) call.cancel();
                     };
                 }),
                 started, std::move(terminationPredicateFactory)) {}

Cooperator::Cooperator(Scheduler scheduler, bool started, TerminationPredicateFactory terminationPredicateFactory)
    : state_(std::make_shared<detail::CooperatorState>(std::move(scheduler), started,
                                                       std::move(terminationPredicateFactory))) {
    if (!state_->scheduler) throw std::invalid_argument("Cooperator: empty scheduler");
}

Cooperator::~Cooperator() {
    try {
        auto s = state_;
        s->stop();
    } catch (...) {
        log::failure("", "Unhandled error while destroying a Cooperator:", Failure::current());
    }
}

std::shared_ptr<CooperativeTask> Cooperator::cooperate(Iterator it) {
    if (!it) throw std::invalid_argument("Cooperator::cooperate: empty iterator");
    auto s = state_;
    return s->create(std::move(it));
}

Deferred<std::shared_ptr<Iterator>> Cooperator::coiterate(Iterator it) { return cooperate(std::move(it))->whenDone(); }

void Cooperator::start() {
    auto s = state_;
    s->stopped = false;
    s->started = true;
    s->reschedule();
}

void Cooperator::stop() {
    auto s = state_;
    s->stop();
}

bool Cooperator::running() const noexcept { return state_->started && !state_->stopped; }

std::shared_ptr<CooperativeTask> cooperate(Cooperator& cooperator, Iterator it) {
    return cooperator.cooperate(std::move(it));
}

Deferred<std::shared_ptr<Iterator>> coiterate(Cooperator& cooperator, Iterator it) {
    return cooperator.coiterate(std::move(it));
}

}  // namespace weft::task
