// weft/internet/defer/core.hpp — the untyped engine under weft::Deferred<T>,
// plus Result<T>, the errors of twisted.internet.defer and the debugging switch.
// Spec: defer.md (DEF-1 … DEF-59). Include <weft/internet/defer.hpp> instead.
#pragma once

#include <coroutine>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/function.hpp>
#include <weft/internet/error.hpp>

namespace weft {

/// Where a call was made: the caller's file, line and function. weft's stand-in
/// for std::source_location, which clang 14 lacks. Used as a defaulted last
/// parameter, `SourceLocation::current()` names the caller.
struct SourceLocation {
    const char* file = "<unknown>";
    unsigned line = 0;
    const char* function = "<unknown>";

    /// The location of the call this appears in as a default argument.
    static constexpr SourceLocation current(const char* f = __builtin_FILE(), unsigned l = __builtin_LINE(),
                                            const char* fn = __builtin_FUNCTION()) noexcept {
        return SourceLocation{f, l, fn};
    }
};

/// Turns the recording of creation and first-firing locations on or off for
/// Deferreds created or fired from now on (DEF-57; Twisted setDebugging).
/// Deferreds that already exist keep working either way.
WEFT_EXPORT void setDebugging(bool on) noexcept;
/// Whether debugging is on (Twisted getDebugging). Off by default.
WEFT_EXPORT bool getDebugging() noexcept;

namespace defer {

/// callback()/errback() on a Deferred that has already fired (DEF-8). With
/// debugging on, what() ends with " C:" lines (where the Deferred was created)
/// and " I:" lines (where it was first fired) (DEF-57).
class WEFT_EXPORT AlreadyCalledError : public std::logic_error {
public:
    explicit AlreadyCalledError(const std::string& debugInfo = {});
};

/// The Failure a cancelled Deferred errbacks with when its canceller did not
/// fire it (DEF-18).
class WEFT_EXPORT CancelledError : public std::runtime_error {
public:
    CancelledError();
};

/// A Deferred timed out (addTimeout, DEF-23). Not weft::error::TimeoutError,
/// which is about connection attempts.
class WEFT_EXPORT TimeoutError : public std::runtime_error {
public:
    explicit TimeoutError(double timeout);
    /// The timeout that expired, in seconds (Twisted args[0]).
    double timeout() const noexcept { return timeout_; }

private:
    double timeout_;
};

/// One member of a DeferredList / gatherResults failed first (DEF-42, DEF-43).
/// what() is "FirstError[#INDEX, " + subFailure.str() + "]".
class WEFT_EXPORT FirstError : public std::runtime_error {
public:
    FirstError(Failure subFailure, std::size_t index);
    /// The member's Failure.
    const Failure& subFailure() const noexcept { return subFailure_; }
    /// The member's position in the input.
    std::size_t index() const noexcept { return index_; }
    /// Equal exactly when both index and sub-failure (its exception) are equal.
    friend bool operator==(const FirstError& a, const FirstError& b) noexcept {
        return a.index_ == b.index_ && a.subFailure_ == b.subFailure_;
    }

private:
    Failure subFailure_;
    std::size_t index_;
};

/// Every member failed: race() (DEF-44), and DeferredList::fireOnOneCallback
/// (DEF-39). Holds the members' Failures in input order.
class WEFT_EXPORT FailureGroup : public std::runtime_error {
public:
    explicit FailureGroup(std::vector<Failure> failures);
    const std::vector<Failure>& failures() const noexcept { return failures_; }

private:
    std::vector<Failure> failures_;
};

/// DeferredQueue::put() on a full queue with no waiting get() (DEF-56).
class WEFT_EXPORT QueueOverflow : public std::runtime_error {
public:
    QueueOverflow();
};

/// DeferredQueue::get() on an empty queue whose backlog is full (DEF-56).
class WEFT_EXPORT QueueUnderflow : public std::runtime_error {
public:
    QueueUnderflow();
};

}  // namespace defer

/// A success value of type T, or a Failure. What addBoth() steps receive, what
/// a DeferredList reports per member, and what a step may return to switch to
/// the error path without throwing (DEF-30).
template <class T>
class Result {
public:
    /// A success holding v.
    Result(T v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT: implicit by design
    /// A failure holding f (for Result<Failure> use Result::failed).
    Result(Failure f)  // NOLINT
        requires(!std::is_same_v<T, Failure>)
        : v_(std::in_place_index<1>, std::move(f)) {}
    /// A failure holding f.
    static Result failed(Failure f) { return Result(std::in_place_index<1>, std::move(f)); }

    /// True for a success.
    bool ok() const noexcept { return v_.index() == 0; }
    /// The value; rethrows the wrapped exception when this is a failure.
    T& value() & {
        if (!ok()) std::get<1>(v_).raiseException();
        return std::get<0>(v_);
    }
    const T& value() const& {
        if (!ok()) std::get<1>(v_).raiseException();
        return std::get<0>(v_);
    }
    T&& value() && { return std::move(value()); }
    /// The Failure; throws std::logic_error when this is a success.
    const Failure& failure() const {
        if (ok()) throw std::logic_error("weft::Result::failure() on a success");
        return std::get<1>(v_);
    }

private:
    Result(std::in_place_index_t<1> tag, Failure f) : v_(tag, std::move(f)) {}
    std::variant<T, Failure> v_;
};

/// Result<void>: nothing on success, or a Failure.
template <>
class Result<void> {
public:
    /// A success.
    Result() = default;
    /// A failure holding f.
    Result(Failure f) : f_(std::move(f)) {}  // NOLINT
    static Result failed(Failure f) { return Result(std::move(f)); }
    bool ok() const noexcept { return !f_; }
    /// Does nothing on success; rethrows the wrapped exception on failure.
    void value() const {
        if (f_) f_->raiseException();
    }
    /// The Failure; throws std::logic_error when this is a success.
    const Failure& failure() const {
        if (!f_) throw std::logic_error("weft::Result::failure() on a success");
        return *f_;
    }

private:
    std::optional<Failure> f_;
};

/// Fallback of the DeferredValueType check; Deferred handles match the
/// overload declared next to Deferred (found by argument-dependent lookup).
constexpr bool isWeftDeferred(const volatile void*) noexcept { return false; }

/// What a Deferred may hold: anything but a reference or another Deferred
/// (Deferred<Deferred<U>> is ill-formed, DEF-33).
template <class T>
concept DeferredValueType = !std::is_reference_v<T> && !isWeftDeferred(static_cast<std::remove_cv_t<T>*>(nullptr));

template <class T = void>
requires DeferredValueType<T>
class Deferred;

namespace detail {

class Core;
using CorePtr = std::shared_ptr<Core>;
struct PromiseBase;

/// A type-erased owned value (one step's output).
struct BoxBase {
    virtual ~BoxBase() = default;
    virtual const std::type_info& type() const noexcept = 0;
    virtual std::string describe() const = 0;
};

template <class T>
std::string describeValue(const T& v) {
    if constexpr (std::is_pointer_v<T>) {
        return fmt::format("{}", fmt::ptr(v));
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        return fmt::format("'{}'", std::string_view(v));
    } else if constexpr (std::is_same_v<T, bool>) {
        return v ? "True" : "False";
    } else if constexpr (std::is_arithmetic_v<T>) {
        return fmt::format("{}", v);
    } else if constexpr (std::is_same_v<T, Failure>) {
        return v.repr();
    } else {
        return "<" + demangle(typeid(T).name()) + ">";
    }
}

template <class T>
struct BoxOf final : BoxBase {
    template <class... A>
    explicit BoxOf(A&&... a) : value(std::forward<A>(a)...) {}
    const std::type_info& type() const noexcept override { return typeid(T); }
    std::string describe() const override { return describeValue(value); }
    T value;
};

/// A Deferred's current result: an empty success (void; Twisted's None), a
/// boxed value, or a Failure.
class WEFT_EXPORT Slot {
public:
    Slot() = default;
    template <class T, class... A>
    static Slot of(A&&... a) {
        Slot s;
        s.box_ = std::make_unique<BoxOf<T>>(std::forward<A>(a)...);
        return s;
    }
    static Slot failed(Failure f) {
        Slot s;
        s.failure_.emplace(std::move(f));
        return s;
    }
    bool isFailure() const noexcept { return failure_.has_value(); }
    bool hasValue() const noexcept { return box_ != nullptr; }
    const Failure& failure() const { return *failure_; }
    Failure& failure() { return *failure_; }

    /// Moves the T out; throws std::logic_error if this holds no T.
    template <class T>
    T take() {
        return std::move(ref<T>());
    }
    /// The held T; throws std::logic_error if this holds no T.
    template <class T>
    T& ref() {
        if (!box_ || box_->type() != typeid(T)) throwWrongType(typeid(T));
        return static_cast<BoxOf<T>*>(box_.get())->value;
    }
    std::string describe() const;

private:
    [[noreturn]] void throwWrongType(const std::type_info& wanted) const;
    std::unique_ptr<BoxBase> box_;
    std::optional<Failure> failure_;
};

/// What a step produced: a new current result, or a Deferred to wait for.
struct StepOut {
    Slot slot;
    CorePtr wait;
};

using StepFn = Function<StepOut(Core&, Slot&)>;

enum class StepKind : unsigned char {
    call,     ///< run cb on a value, eb on a Failure (either may be empty: pass through)
    both,     ///< run cb on anything
    handOff,  ///< give the result to `other`, which waits on this one (DEF-11)
    fire,     ///< fire `other` with the result (chainDeferred, DEF-17)
};

struct Step {
    StepKind kind = StepKind::call;
    StepFn cb;
    StepFn eb;
    CorePtr other;
};

struct DebugInfo {
    std::optional<SourceLocation> creator;
    std::optional<SourceLocation> invoker;
    std::string text() const;  // " C:"/" I:" lines, Twisted's _getDebugTracebacks
};

/// A weft coroutine's last step, once its frame (at `frame`, already
/// destroyed) is gone: fires `core`, its Deferred, with `s` (or with "wait for
/// `returned`", DEF-51), then resumes the coroutine that awaited it, if the
/// firing handed one over (Core::resumeAwaiting), and the ones that coroutine
/// hands over in turn, in a loop: unless this coroutine was itself resumed by
/// such a loop, which then goes on with the next.
WEFT_EXPORT void finishCoroutine(void* frame, CorePtr core, CorePtr returned, Slot s) noexcept;

/// The shared state every Deferred<T> handle points to. Not thread-safe: a
/// Deferred belongs to one thread.
class WEFT_EXPORT Core : public std::enable_shared_from_this<Core> {
public:
    Core(const std::type_info& created, const SourceLocation& loc);
    ~Core();
    Core(const Core&) = delete;
    Core& operator=(const Core&) = delete;

    /// Appends a step; runs it at once when the Deferred has a result and is
    /// neither paused, waiting nor running (DEF-5, DEF-7).
    void addStep(Step s);
    /// callback()/errback(): throws AlreadyCalledError when already fired.
    void fire(Slot s, const SourceLocation& loc);
    /// Fires with "wait for x" (a coroutine's co_return of a Deferred, DEF-51).
    void fireWaiting(CorePtr x);
    void cancel(const SourceLocation& loc = SourceLocation{"<cancel>", 0, "cancel"});
    void pause() noexcept { ++paused_; }
    void unpause();

    /// Has a result that can be taken now: fired, not paused, not waiting and
    /// not in the middle of one of its own steps.
    bool ready() const noexcept { return called_ && paused_ == 0 && !waiting_ && !running_; }
    /// Takes the result away, leaving an empty success (DEF-32).
    Slot take();
    /// Carries `from`'s consumed mark to this Deferred if its result is that error.
    void inheritConsumed(const Core& from) noexcept;

    /// Throws std::logic_error unless t is the chain's current output type (DEF-31).
    void checkOutput(const std::type_info& t) const;
    /// Throws std::logic_error unless t is the type the Deferred was created with.
    void checkCreated(const std::type_info& t) const;
    void setOutput(const std::type_info& t) noexcept { outType_ = &t; }
    const std::type_info& outputType() const noexcept { return *outType_; }

    bool called() const noexcept { return called_; }
    int paused() const noexcept { return paused_; }
    bool waiting() const noexcept { return waiting_; }
    std::string repr() const;
    std::string debugText() const;

    /// The canceller given at construction; released when the Deferred fires.
    Function<void(Core&)> canceller;
    /// Replaces cancel()'s whole unfired behaviour: no default CancelledError,
    /// may run more than once (DeferredList, DEF-41).
    Function<void(Core&)> cancelOverride;
    /// Set while a coroutine owns this Deferred; cancel() then cancels what it
    /// is suspended on (DEF-50).
    PromiseBase* coroutine = nullptr;
    /// The error a DeferredList took with consumeErrors (DEF-40): while the
    /// result is a Failure carrying this very exception, it is never reported;
    /// a new error later in the chain is (DEF-25). A Deferred the result moves
    /// on to (a hand-off, chainDeferred) takes the mark with it.
    std::exception_ptr consumed;
    /// The raw result; steps read and write it.
    Slot result;

    /// Records, for repr(), that this waits to be fired by `by` (chainDeferred).
    void setChainedTo(const CorePtr& by) { chainedTo_ = by; }

    /// Resumes `frame`, a weft coroutine suspended on this Deferred, from the
    /// step that took its result. When that step is the last one of the
    /// Deferred that a finishing coroutine is firing (finishCoroutine), the
    /// frame is handed to that coroutine's final step instead, which resumes it
    /// once the firing is over: a chain of coroutines each awaiting the next
    /// then ends in a loop, at a constant stack depth, where it nested one
    /// level per coroutine (20 000 overflowed an 8 MiB stack).
    void resumeAwaiting(std::coroutine_handle<> frame);

private:
    void cancelOne(const SourceLocation& loc);
    void runChain();

    void runCallbacks();
    bool absorb(StepOut&& out);  // true when this now waits on another Deferred
    void markFired(const SourceLocation& loc);

    friend void finishCoroutine(void* frame, CorePtr core, CorePtr returned, Slot s) noexcept;
    std::deque<Step> steps_;
    std::weak_ptr<Core> waitingOn_;  // non-owning (DEF-27)
    std::weak_ptr<Core> chainedTo_;  // for repr(): what this is waiting on (DEF-58)
    const std::type_info* createdType_;
    const std::type_info* outType_;
    std::unique_ptr<DebugInfo> debug_;
    int paused_ = 0;
    bool called_ = false;
    bool waiting_ = false;
    bool running_ = false;
    bool suppressAlreadyCalled_ = false;
};

/// The part of a weft coroutine's promise that Core::cancel() needs.
struct PromiseBase {
    CorePtr core;                  ///< the coroutine's own Deferred (owned by the frame)
    std::weak_ptr<Core> awaiting;  ///< what the frame is suspended on (non-owning)
    PromiseBase() = default;
    PromiseBase(const PromiseBase&) = delete;
    PromiseBase& operator=(const PromiseBase&) = delete;
    ~PromiseBase() {
        if (core) core->coroutine = nullptr;
    }
};

}  // namespace detail
}  // namespace weft
