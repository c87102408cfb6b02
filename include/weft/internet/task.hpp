// weft/internet/task.hpp — time-based helpers (twisted.internet.task).
//   Clock                 deterministic time for tests (R-56..R-58)
//   LoopingCall           call a function every interval (R-59..R-64)
//   deferLater            a Deferred that fires after a delay
//   Cooperator, cooperate, CooperativeTask
//                         run long jobs in small steps between other work (R-66..R-69)
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/function.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>

namespace weft::detail {
class TimerQueue;
struct CooperatorState;

/// Runs f(args...) through maybeDeferred and forgets the value, keeping only
/// "when" and "how" it finished. Never throws.
template <class F, class... A>
Deferred<void> callIgnoringValue(F& f, A&... args) {
    auto d = maybeDeferred(f, args...);
    using U = typename decltype(d)::value_type;
    if constexpr (std::is_void_v<U>) {
        return d;
    } else {
        return d.addCallback([](U) {});
    }
}

/// What LoopingCall accepts: anything callable with its bound arguments.
template <class F, class... A>
concept Loopable = std::invocable < std::decay_t<F>
&, std::decay_t<A>&... > ;

}  // namespace weft::detail

namespace weft::task {

/// A deterministic IReactorTime: time starts at 0 and moves only when advance()
/// is called. Calls run inside advance(), in time order, ties first-in first-out.
/// Not thread-safe; use it from one thread.
class WEFT_EXPORT Clock : public IReactorTime {
public:
    Clock();
    ~Clock() override;
    Clock(const Clock&) = delete;
    Clock& operator=(const Clock&) = delete;

    double seconds() const override { return now_; }
    using IReactorTime::callLater;
    DelayedCall callLater(double delay, Function<void()> f) override;
    std::vector<DelayedCall> getDelayedCalls() const override;

    /// Moves time forward by `amount` seconds (must be >= 0) and runs every call
    /// that is then due, including calls scheduled during the advance that are
    /// already due. An exception from a call propagates out of advance(); that call
    /// is consumed and later calls stay pending.
    void advance(double amount);

    /// advance(a); advance(b); ... for each amount in turn.
    void pump(std::initializer_list<double> amounts);
    void pump(const std::vector<double>& amounts);

private:
    double now_ = 0;
    std::unique_ptr<detail::TimerQueue> queue_;
};

// ---- LoopingCall ------------------------------------------------------------

/// Calls a function repeatedly, every `interval` seconds on a clock
/// (Twisted twisted.internet.task.LoopingCall; R-59..R-64).
///
/// The function may return nothing, any value (ignored), or a Deferred<T>: then
/// nothing is scheduled until that Deferred fires, and its value is ignored
/// . If it throws, or its Deferred fails, the loop stops and the Deferred
/// returned by start() fails with that error.
///
/// ```cpp
/// weft::task::LoopingCall heartbeat(reactor, [&] { transport->write(ping); });
/// heartbeat.start(30.0).addErrback([](weft::Failure f) { weft::log::failure("", "heartbeat died", f); });
/// ...
/// heartbeat.stop();    // the start() Deferred fires with &heartbeat
/// ```
///
/// Clock: the IReactorTime given at construction — normally the Reactor
/// (Twisted's default clock), a task::Clock in tests. It must outlive every
/// call to start()/stop()/reset(); the destructor is safe even if it did not.
///
/// Ownership and lifetime: the LoopingCall owns the function (and its bound
/// arguments) and is neither copyable nor movable, because start()'s Deferred
/// fires with its address. Destroying a running LoopingCall is RAII: the pending
/// call is cancelled, the function never runs again, and the start() Deferred
/// is dropped without firing (a weft coroutine awaiting it is destroyed, not
/// resumed). The function may call stop(), reset(), or destroy the
/// LoopingCall itself; the function object is then destroyed after it returns.
/// Not thread-safe: use it on the clock's thread.
class WEFT_EXPORT LoopingCall {
public:
    /// Loops f(args...). Arguments are stored and passed as lvalues on every call.
    /// Nothing runs until start().
    template <class F, class... A>
    requires detail::Loopable<F, A...> LoopingCall(IReactorTime& clock, F&& f, A&&... args)
        : LoopingCall(
              clock, false,
              [f = std::decay_t<F>(std::forward<F>(f)), args = std::make_tuple(std::forward<A>(args)...)](int) mutable {
                  return std::apply([&](auto&... a) { return detail::callIgnoringValue(f, a...); }, args);
              }) {}

    /// Twisted LoopingCall.withCount: a loop that calls g(n), where n >= 1
    /// is the number of intervals that elapsed since the previous call (since
    /// start() for the first one) — more than 1 when the clock jumped, g ran long
    /// or a Deferred g returned was pending across intervals; always 1 with
    /// interval 0. When less than one whole interval has elapsed (an early
    /// reset), g is not called at that tick. g may return what f may.
    template <class G>
    requires std::invocable < std::decay_t<G>
    &, int > static LoopingCall withCount(IReactorTime& clock, G&& g) {
        return LoopingCall(clock, true, [g = std::decay_t<G>(std::forward<G>(g))](int n) mutable {
            return detail::callIgnoringValue(g, n);
        });
    }

    /// Stops the loop silently if running (see the class comment).
    ~LoopingCall();
    LoopingCall(const LoopingCall&) = delete;
    LoopingCall& operator=(const LoopingCall&) = delete;

    /// Starts calling the function every `interval` seconds. With `now`
    /// the first call happens synchronously, inside start(); otherwise after
    /// `interval`. Later calls happen at the next multiple of `interval` after
    /// the start time that is strictly in the future: missed intervals are
    /// skipped, not replayed. Interval 0 calls once per reactor
    /// iteration (on a task::Clock: again and again within one advance() until
    /// stopped).
    ///
    /// Returns a Deferred that fires with `this` after stop(), or fails with
    /// what the function threw or its Deferred failed with; the
    /// loop is no longer running when it fires. It may already have fired
    /// when start() returns (the first call stopped or failed).
    ///
    /// Throws std::logic_error if already running — or if stop() was called
    /// while a call was in progress and that call (or its Deferred) has not
    /// finished yet — and std::invalid_argument if `interval` is negative, NaN
    /// or infinite; the loop is then unchanged and nothing is called.
    Deferred<LoopingCall*> start(double interval, bool now = true);

    /// Stops the loop: running() becomes false, the pending call is
    /// cancelled and the start() Deferred fires with `this` before stop()
    /// returns. Called while the function (or a Deferred it returned) is in
    /// progress, the start() Deferred fires when that finishes, and no further
    /// call is made. Throws std::logic_error if the loop is not running.
    void stop();

    /// Skips the pending call and restarts the interval from now: started
    /// with interval 2 at t0 and reset at t1, the next call is at t1 + 2. Does
    /// nothing while the function or its Deferred is in progress (Twisted does
    /// the same). Throws std::logic_error if the loop is not running.
    void reset();

    /// True from start() until stop() or a failure; false by the time the
    /// start() Deferred fires.
    bool running() const noexcept;

    /// The interval given to the latest start(), in seconds (0 before any start()).
    double interval() const noexcept;

    /// The clock the loop schedules on (Twisted LoopingCall.clock).
    IReactorTime& clock() const noexcept;

    struct State;  ///< Internal.

private:
    LoopingCall(IReactorTime& clock, bool counting, Function<Deferred<void>(int)> call);
    std::shared_ptr<State> state_;
};

// ---- deferLater -------------------------------------------------------------

/// A Deferred<void> that fires with nothing after `delay` seconds on `clock`
/// (Twisted deferLater without a callable; R-65). Cancelling it cancels the
/// timer — no pending call remains — and it fails with defer::CancelledError.
/// Throws std::invalid_argument for a negative or NaN delay (nothing is
/// scheduled). The pending timer owns the Deferred, so the caller may drop its
/// handle; `clock` must outlive the call or be destroyed (which drops the timer
/// and the Deferred unfired).
WEFT_EXPORT Deferred<void> deferLater(IReactorTime& clock, double delay);

/// After `delay` seconds, calls f(args...) and fires the returned Deferred
/// with its result: a value U gives Deferred<U>, a Deferred<U> is waited
/// for, void gives Deferred<void>, and a throw fails it. Cancelling before the
/// delay has passed cancels the timer, f is never called, and the Deferred fails
/// with defer::CancelledError. f and args are owned by the Deferred's chain
/// until f has run or the chain was cancelled.
template <class F, class... A>
requires std::invocable < std::decay_t<F>
&, std::decay_t<A>&... > auto deferLater(IReactorTime& clock, double delay, F&& f, A&&... args) {
    return deferLater(clock, delay)
        .addCallback([f = std::decay_t<F>(std::forward<F>(f)),
                      args = std::make_tuple(std::forward<A>(args)...)]() mutable -> decltype(auto) {
            return std::apply(f, args);
        });
}

// ---- Cooperator -------------------------------------------------------------

/// Base of the cooperator's errors (Twisted SchedulerError).
class WEFT_EXPORT SchedulerError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The Cooperator was stopped, or was already stopped when the task was added.
class WEFT_EXPORT SchedulerStopped : public SchedulerError {
public:
    SchedulerStopped();
};

/// The task has finished for good: base of TaskDone, TaskStopped, TaskFailed.
class WEFT_EXPORT TaskFinished : public SchedulerError {
public:
    using SchedulerError::SchedulerError;
};

/// The task's iterator was exhausted (it returned Step::done()).
class WEFT_EXPORT TaskDone : public TaskFinished {
public:
    TaskDone();
};

/// The task was stopped with CooperativeTask::stop().
class WEFT_EXPORT TaskStopped : public TaskFinished {
public:
    TaskStopped();
};

/// The task's iterator threw, or a Deferred it waited on failed.
class WEFT_EXPORT TaskFailed : public TaskFinished {
public:
    TaskFailed();
};

/// CooperativeTask::resume() without a matching pause().
class WEFT_EXPORT NotPaused : public SchedulerError {
public:
    NotPaused();
};

/// What one step of a cooperative task reports. Python iterators yield a value
/// (more work), yield a Deferred (wait for it) or raise StopIteration (done);
/// a weft task's iterator returns one of these.
class WEFT_EXPORT Step {
public:
    /// One unit of work was done; call me again on a later turn.
    static Step more() noexcept { return Step(Kind::more); }
    /// The task is finished; whenDone() fires with the iterator.
    static Step done() noexcept { return Step(Kind::done); }
    /// Do not call me again until d fires; if it fails, the task fails with
    /// that error. d's value is consumed by the task.
    template <class T>
    static Step waitFor(Deferred<T> d) {
        Step s(Kind::wait);
        if constexpr (std::is_void_v<T>) {
            s.wait_.emplace(std::move(d));
        } else {
            s.wait_.emplace(d.addCallback([](T) {}));
        }
        return s;
    }

    enum class Kind : std::uint8_t { more, done, wait };
    /// Which of the three this is.
    Kind kind() const noexcept { return kind_; }
    /// The Deferred of a Step::waitFor(); empty otherwise. Internal.
    std::optional<Deferred<void>>& waitingOn() noexcept { return wait_; }

private:
    explicit Step(Kind k) noexcept : kind_(k) {}
    Kind kind_;
    std::optional<Deferred<void>> wait_;
};

/// A cooperative task's iterator: each call does one small unit of work and
/// says what comes next. It is called on the cooperator's clock thread, never
/// re-entrantly.
using Iterator = Function<Step()>;

class Cooperator;

/// One job inside a Cooperator (Twisted CooperativeTask): it can be paused,
/// resumed, stopped, and waited on. Created by Cooperator::cooperate().
///
/// Ownership: shared. The Cooperator holds every unfinished task; a Deferred
/// the task waits on holds it until it fires. The task owns its iterator and
/// keeps it after a normal finish (whenDone() hands it out); after a stop or
/// failure the iterator is destroyed.
class WEFT_EXPORT CooperativeTask : public std::enable_shared_from_this<CooperativeTask> {
    struct Key {};

public:
    /// Internal; use Cooperator::cooperate().
    CooperativeTask(Key, Iterator it, std::weak_ptr<detail::CooperatorState> coop);
    ~CooperativeTask();
    CooperativeTask(const CooperativeTask&) = delete;
    CooperativeTask& operator=(const CooperativeTask&) = delete;

    /// A new Deferred for the task's end, each call a separate one: it
    /// fires with the iterator when the iterator returns Step::done(); fails
    /// with the iterator's exception (or the failure of a Deferred it waited
    /// on), with TaskStopped after stop(), with SchedulerStopped when the
    /// Cooperator stops. Called after the end, it has already fired. The task is
    /// out of its Cooperator before any of these Deferreds fire, so their
    /// callbacks may stop the Cooperator or add tasks.
    Deferred<std::shared_ptr<Iterator>> whenDone();

    /// Stops doing work until resume(). Pauses nest: two pause() calls
    /// need two resume() calls. Throws TaskDone, TaskStopped, TaskFailed or
    /// SchedulerStopped when the task has ended, according to how it ended.
    void pause();

    /// Undoes one pause(); the one that balances the last pause() makes the task
    /// runnable again (work happens on a later tick, never inside resume()).
    /// Throws NotPaused if no pause() is outstanding — waiting on a Deferred
    /// from Step::waitFor() is not a pause() (unlike Twisted, whose resume()
    /// there would run the task before its Deferred fired). Resuming an ended
    /// task only balances the count.
    void resume();

    /// Ends the task now: it leaves the Cooperator, its iterator is never
    /// called again, and whenDone() Deferreds fail with TaskStopped before
    /// stop() returns. Throws like pause() if the task has already ended.
    void stop();

    /// The iterator this task steps (shared with whenDone()'s result); empty
    /// once the task has stopped or failed.
    const std::shared_ptr<Iterator>& iterator() const noexcept { return iterator_; }

private:
    friend struct detail::CooperatorState;
    enum class End : std::uint8_t { none, done, stopped, failed, schedulerStopped };
    void oneWorkUnit();
    void completeWith(End how, std::optional<Failure> why);
    void checkFinish() const;
    bool runnable() const noexcept { return end_ == End::none && pauses_ == 0 && !waiting_; }

    std::shared_ptr<Iterator> iterator_;
    std::weak_ptr<detail::CooperatorState> coop_;
    std::vector<Deferred<std::shared_ptr<Iterator>>> waiters_;
    std::optional<Failure> failure_;
    int pauses_ = 0;
    bool waiting_ = false;
    End end_ = End::none;
};

/// Runs many long jobs in small steps, sharing the time between them and the
/// rest of the reactor's work (Twisted Cooperator; R-66..R-69).
///
/// Each tick steps the runnable tasks round-robin, one step per task per pass,
/// until about 10 ms have passed (or a custom termination predicate says
/// stop), then schedules the next tick with a tiny callLater (1e-8 s). No tick
/// is pending while there is no runnable task.
///
/// ```cpp
/// // Sums 0 .. 999'999 a thousand numbers at a time without blocking the reactor.
/// weft::task::Cooperator coop(reactor);
/// auto sum = std::make_shared<long>(0);
/// auto job = coop.cooperate([i = 0L, sum]() mutable {
///     for (long end = i + 1000; i < end && i < 1'000'000; ++i) *sum += i;
///     return i < 1'000'000 ? weft::task::Step::more() : weft::task::Step::done();
/// });
/// job->whenDone().addCallback([sum](std::shared_ptr<weft::task::Iterator>) { fmt::print("{}\n", *sum); });
/// ```
///
/// weft has no global reactor and so no global Cooperator (Twisted's
/// `task.cooperate` uses one): create one Cooperator next to your reactor and
/// pass it to cooperate()/coiterate().
///
/// Ownership: the user owns the Cooperator (not copyable, not movable). It holds
/// every unfinished task. Destroying it stops it (stop(): every unfinished
/// task fails with SchedulerStopped). The clock must outlive it. Tasks and
/// iterators may stop the Cooperator, stop tasks, add tasks, or destroy the
/// Cooperator from inside a step. Not thread-safe.
class WEFT_EXPORT Cooperator {
public:
    /// Schedules `tick` to run soon (once) and returns a function that cancels it.
    using Scheduler = Function<Function<void()>(Function<void()> tick)>;
    /// Called at the start of every tick; the predicate it returns is asked
    /// after every step whether the tick should end now.
    using TerminationPredicateFactory = Function<Function<bool()>()>;

    /// Longest tick of the default termination predicate, in seconds (Twisted _Timer.MAX_SLICE).
    static constexpr double kMaxSlice = 0.01;
    /// Delay of the callLater that schedules each tick (Twisted _EPSILON).
    static constexpr double kTickDelay = 1e-8;

    /// A cooperator that ticks with clock.callLater(kTickDelay, …). With
    /// `started` false, tasks queue up until start(). An empty
    /// factory means "at most kMaxSlice seconds of steady_clock time per tick".
    explicit Cooperator(IReactorTime& clock, bool started = true,
                        TerminationPredicateFactory terminationPredicateFactory = {});
    /// A cooperator that ticks through `scheduler` (Twisted's scheduler argument).
    explicit Cooperator(Scheduler scheduler, bool started = true,
                        TerminationPredicateFactory terminationPredicateFactory = {});
    /// stop()s the cooperator.
    ~Cooperator();
    Cooperator(const Cooperator&) = delete;
    Cooperator& operator=(const Cooperator&) = delete;

    /// Adds a task that calls `it` once per turn until it returns Step::done()
    /// or throws. Nothing is called inside cooperate(). If the Cooperator
    /// is stopped, the task has already failed with SchedulerStopped.
    std::shared_ptr<CooperativeTask> cooperate(Iterator it);

    /// cooperate(it)->whenDone() (Twisted coiterate).
    Deferred<std::shared_ptr<Iterator>> coiterate(Iterator it);

    /// Begins ticking (also after stop(): a stopped Cooperator can be restarted;
    /// tasks it failed stay failed).
    void start();

    /// Fails every unfinished task — running, paused or waiting on a Deferred —
    /// with SchedulerStopped before returning, cancels the pending tick, and makes
    /// later cooperate() calls fail at once with SchedulerStopped. Calling
    /// it again (also from a whenDone() callback) is harmless.
    void stop();

    /// True between start() (or construction with started = true) and stop().
    bool running() const noexcept;

private:
    std::shared_ptr<detail::CooperatorState> state_;
};

/// cooperator.cooperate(it) (Twisted task.cooperate, with the Cooperator explicit
/// because weft has no global one).
WEFT_EXPORT std::shared_ptr<CooperativeTask> cooperate(Cooperator& cooperator, Iterator it);

/// cooperator.coiterate(it) (Twisted task.coiterate).
WEFT_EXPORT Deferred<std::shared_ptr<Iterator>> coiterate(Cooperator& cooperator, Iterator it);

}  // namespace weft::task
