// weft/internet/defer/deferred.hpp — weft::Deferred<T>, its coroutine support
// and the free functions of twisted.internet.defer (succeed, fail,
// maybeDeferred, ensureDeferred, logError). Spec: defer.md DEF-1 … DEF-33,
// DEF-45 … DEF-52. Include <weft/internet/defer.hpp>.
#pragma once

#include <concepts>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <weft/failure.hpp>
#include <weft/function.hpp>
#include <weft/internet/defer/core.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/log.hpp>

namespace weft {

/// DeferredValueType's match for Deferred handles (and classes derived from them).
template <class U>
constexpr bool isWeftDeferred(const Deferred<U>*) noexcept {
    return true;
}

namespace detail {

struct FromCore {};

template <class T>
struct DeferredValue {
    static constexpr bool isDeferred = false;
};
template <class U>
struct DeferredValue<Deferred<U>> {
    static constexpr bool isDeferred = true;
    using type = U;
};
template <class U>
U deferredValueOf(const Deferred<U>*);  // finds Deferred<U> also as a base class

template <class R>
concept DeferredLike = requires(std::remove_cvref_t<R>* p) {
    detail::deferredValueOf(p);
};

template <class R>
using DeferredValueT = decltype(detail::deferredValueOf(static_cast<std::remove_cvref_t<R>*>(nullptr)));

template <class R>
struct IsResult : std::false_type {};
template <class U>
struct IsResult<Result<U>> : std::true_type {
    using type = U;
};

/// The chain's output type after a step whose function returns R, on a chain
/// whose current type is T (DEF-30): void → void, Deferred<U> → U,
/// Result<U> → U, Failure → T (an error keeps the type), anything else → R.
template <class R, class T>
struct StepOutput {
    using type = std::remove_cvref_t<R>;
};
template <class T>
struct StepOutput<void, T> {
    using type = void;
};
template <class R, class T>
requires DeferredLike<R>
struct StepOutput<R, T> {
    using type = DeferredValueT<R>;
};
template <class U, class T>
struct StepOutput<Result<U>, T> {
    using type = U;
};
template <class T>
struct StepOutput<Failure, T> {
    using type = T;
};
template <class R, class T>
using StepOutputT = typename StepOutput<std::remove_cvref_t<R>, T>::type;

/// Converts a step's return value into the chain's next state.
template <class U, class R>
StepOut toStepOut(R&& r) {
    using D = std::remove_cvref_t<R>;
    if constexpr (DeferredLike<D>) {
        const CorePtr& c = r.detailCore();
        c->checkOutput(typeid(U));
        return StepOut{Slot{}, c};
    } else if constexpr (IsResult<D>::value) {
        if (!r.ok()) return StepOut{Slot::failed(r.failure()), nullptr};
        if constexpr (std::is_void_v<U>) {
            return StepOut{};
        } else {
            return StepOut{Slot::of<U>(std::forward<R>(r).value()), nullptr};
        }
    } else if constexpr (std::is_same_v<D, Failure>) {
        return StepOut{Slot::failed(std::forward<R>(r)), nullptr};
    } else {
        return StepOut{Slot::of<U>(std::forward<R>(r)), nullptr};
    }
}

/// Calls f() and converts what it returns.
template <class U, class F>
StepOut invokeToStepOut(F&& f) {
    using R = decltype(std::forward<F>(f)());
    if constexpr (std::is_void_v<R>) {
        std::forward<F>(f)();
        return StepOut{};
    } else {
        return toStepOut<U>(std::forward<F>(f)());
    }
}

template <class T>
Result<T> takeResult(Slot& in) {
    if (in.isFailure()) return Result<T>::failed(std::move(in.failure()));
    if constexpr (std::is_void_v<T>) {
        return Result<T>();
    } else {
        return Result<T>(in.take<T>());
    }
}

struct DeferredAccess;

/// f can be a callback on a chain whose current type is T (DEF-30).
template <class F, class T, class... A>
concept CallbackOn = (std::is_void_v<T> && std::is_invocable_v<std::decay_t<F>&, std::decay_t<A>&&...>) ||
                     (!std::is_void_v<T> && std::is_invocable_v<std::decay_t<F>&, T&&, std::decay_t<A>&&...>);

/// g can be an errback producing type U: U, Deferred<U>, Result<U>, a Failure,
/// or nothing for void (DEF-30).
template <class G, class U, class... A>
concept ErrbackTo = std::is_invocable_v < std::decay_t<G>
&, Failure&&,
    std::decay_t<A>&&... >
        &&std::is_same_v<StepOutputT<std::invoke_result_t<std::decay_t<G>&, Failure&&, std::decay_t<A>&&...>, U>, U>;

/// h can be an addBoth step on a chain whose current type is T.
template <class H, class T, class... A>
concept BothOn = std::is_invocable_v < std::decay_t<H>
&, Result<T>&&, std::decay_t<A>&&... > ;

template <class T>
struct Promise;

/// Owns a suspended weft coroutine frame (DEF-27); does not own a foreign one.
class FrameOwner {
public:
    FrameOwner(std::coroutine_handle<> h, bool owning) noexcept : h_(h), owning_(owning) {}
    FrameOwner(FrameOwner&& o) noexcept : h_(std::exchange(o.h_, {})), owning_(o.owning_) {}
    FrameOwner& operator=(FrameOwner&&) = delete;
    ~FrameOwner() {
        if (h_ && owning_) h_.destroy();
    }
    std::coroutine_handle<> release() noexcept { return std::exchange(h_, {}); }

private:
    std::coroutine_handle<> h_;
    bool owning_;
};

}  // namespace detail

/// One result that may not exist yet plus the chain of steps that transform it
/// (Twisted twisted.internet.defer.Deferred; spec defer.md).
///
/// A Deferred<T> is a handle: copies denote the same Deferred (identity,
/// called(), chain and result), as Python references do. A moved-from handle
/// may only be assigned to or destroyed. T is the type of the chain's current
/// result as seen through this handle; a type-changing addCallback() returns a
/// new handle and leaves this one stale (DEF-31).
///
/// Everything is synchronous and single-threaded: callback()/errback() run the
/// chain before returning, and add*() run the new step at once when a result
/// is available (DEF-1, DEF-5). No reactor is involved except for addTimeout's
/// clock. A function returning Deferred<T> may be a coroutine (co_await any
/// Deferred<U>, co_return a T or a Deferred<T>) (DEF-45 … DEF-52).
///
/// Ownership (DEF-27): handles own the Deferred; steps own what they capture
/// until they have run, then release it at once (DEF-6). A Deferred waiting on
/// another is owned by that other's pending hand-off step and owns nothing in
/// return. When the last handle and step referring to a Deferred whose current
/// result is a Failure go away, that Failure is logged once at critical level
/// as "Unhandled error in Deferred:" (DEF-25).
template <class T>
requires DeferredValueType<T>
class Deferred {
    template <class F, class... A>
    struct Invoke {
        using type = typename std::conditional_t<
            std::is_void_v<T>, std::invoke_result<std::decay_t<F>&, std::decay_t<A>&&...>,
            std::invoke_result<std::decay_t<F>&, std::add_rvalue_reference_t<T>, std::decay_t<A>&&...>>::type;
    };

public:
    /// The type of the result as seen through this handle.
    using value_type = T;
    /// Makes functions returning Deferred<T> coroutines (DEF-45).
    using promise_type = detail::Promise<T>;

    /// A new Deferred with no result and no canceller (DEF-1). `loc` is recorded
    /// as its creation site while debugging is on (DEF-57).
    explicit Deferred(SourceLocation loc = SourceLocation::current())
        : core_(std::make_shared<detail::Core>(typeid(T), loc)) {}

    /// A new Deferred whose cancel() first calls canceller(*this) (at most once;
    /// DEF-18). The canceller may fire the Deferred; if it does not,
    /// CancelledError is delivered. It is destroyed as soon as the Deferred fires
    /// by any route (DEF-21). An exception it throws propagates out of cancel().
    template <class C>
    requires std::invocable < C&, Deferred<T>
    & > explicit Deferred(C canceller, SourceLocation loc = SourceLocation::current()) : Deferred(loc) {
        core_->canceller = [c = std::move(canceller)](detail::Core& core) mutable {
            Deferred<T> self(core.shared_from_this(), detail::FromCore{});
            c(self);
        };
    }

    /// Internal: a handle to an existing Deferred.
    Deferred(detail::CorePtr core, detail::FromCore) noexcept : core_(std::move(core)) {}

    /// Fires the Deferred with v and runs its chain before returning (DEF-1).
    /// Always the success path, whatever T is (DEF-33). Throws
    /// defer::AlreadyCalledError if it has fired (DEF-8) — except once, silently,
    /// after a cancel() without canceller (DEF-20) — and std::logic_error through
    /// a handle whose T is not the type the Deferred was created with (DEF-31).
    template <class V = T>
    requires(!std::is_void_v<V>) void callback(std::type_identity_t<V> v,
                                               SourceLocation loc = SourceLocation::current()) {
        core_->checkCreated(typeid(T));
        core_->fire(detail::Slot::of<T>(std::move(v)), loc);
    }
    /// Fires a Deferred<void> (DEF-1); throws like callback(v).
    void callback(SourceLocation loc = SourceLocation::current()) requires std::is_void_v<T> {
        core_->checkCreated(typeid(T));
        core_->fire(detail::Slot{}, loc);
    }

    /// Fires the error path with f itself (DEF-9). Works through any handle.
    /// Throws defer::AlreadyCalledError like callback().
    void errback(Failure f, SourceLocation loc = SourceLocation::current()) {
        core_->fire(detail::Slot::failed(std::move(f)), loc);
    }
    /// Fires the error path with a new Failure wrapping e (throws
    /// std::invalid_argument for a null pointer).
    void errback(std::exception_ptr e, SourceLocation loc = SourceLocation::current()) {
        errback(Failure(std::move(e)), loc);
    }
    /// Fires the error path with a new Failure wrapping a copy of e.
    template <class E>
    requires(!std::is_same_v<std::remove_cvref_t<E>, Failure> &&
             !std::is_same_v<std::remove_cvref_t<E>, std::exception_ptr> &&
             !std::is_same_v<std::remove_cvref_t<E>, SourceLocation>) void errback(E&& e,
                                                                                   SourceLocation loc =
                                                                                       SourceLocation::current()) {
        errback(Failure(std::forward<E>(e)), loc);
    }
    /// Fires the error path with the exception being handled; outside any
    /// handler throws NoCurrentExceptionError and does not fire (DEF-9).
    void errback(SourceLocation loc = SourceLocation::current()) { errback(Failure::current(), loc); }

    /// Appends (f, pass-through) (DEF-2). f takes the T (by value or rvalue;
    /// nothing for void) followed by `args`, and may return U, Deferred<U>
    /// (waited for, DEF-11), Result<U>, a Failure (error path, type kept) or
    /// nothing. Returns a Deferred<U> handle to this same Deferred. Runs f at
    /// once if a result is available (DEF-5). Throws std::logic_error through a
    /// stale handle (DEF-31).
    template <class F, class... A>
    requires detail::CallbackOn<F, T, A...>
    auto addCallback(F&& f, A&&... args) {
        using R = typename Invoke<F, A...>::type;
        using U = detail::StepOutputT<R, T>;
        core_->checkOutput(typeid(T));
        detail::Step s;
        s.cb = makeCallback<U>(std::forward<F>(f), std::forward<A>(args)...);
        return append<U>(std::move(s));
    }

    /// Appends (pass-through, g) (DEF-2). g takes a Failure followed by `args`
    /// and must produce the current type: T, Deferred<T>, Result<T>, a Failure
    /// (stays on the error path) or — for void — nothing; or throw (DEF-30).
    template <class G, class... A>
    requires detail::ErrbackTo<G, T, A...> Deferred<T> addErrback(G&& g, A&&... args) {
        core_->checkOutput(typeid(T));
        detail::Step s;
        s.eb = makeErrback(std::forward<G>(g), std::forward<A>(args)...);
        return append<T>(std::move(s));
    }

    /// Appends (h, h) (DEF-2): h takes a Result<T> followed by `args` and its
    /// output type decides the returned handle's type, as for addCallback.
    template <class H, class... A>
    requires detail::BothOn<H, T, A...>
    auto addBoth(H&& h, A&&... args) {
        using R = std::invoke_result_t<std::decay_t<H>&, Result<T>&&, std::decay_t<A>&&...>;
        using U = detail::StepOutputT<R, T>;
        core_->checkOutput(typeid(T));
        detail::Step s;
        s.kind = detail::StepKind::both;
        s.cb = [h = std::decay_t<H>(std::forward<H>(h)), args = std::make_tuple(std::forward<A>(args)...)](
                   detail::Core&, detail::Slot& in) mutable {
            Result<T> r = detail::takeResult<T>(in);
            return detail::invokeToStepOut<U>([&]() -> decltype(auto) {
                return std::apply(
                    [&](auto&&... a) -> decltype(auto) {
                        return std::invoke(h, std::move(r), std::forward<decltype(a)>(a)...);
                    },
                    std::move(args));
            });
        };
        return append<U>(std::move(s));
    }

    /// Appends (f, g) as one pair (DEF-2, DEF-4): exactly one of them runs, and
    /// neither sees the other's output. Both must produce the same type U.
    template <class F, class G>
    requires detail::CallbackOn<F, T> && detail::ErrbackTo<G, detail::StepOutputT<typename Invoke<F>::type, T>>
    auto addCallbacks(F&& f, G&& g) {
        using R = typename Invoke<F>::type;
        using U = detail::StepOutputT<R, T>;
        core_->checkOutput(typeid(T));
        detail::Step s;
        s.cb = makeCallback<U>(std::forward<F>(f));
        s.eb = makeErrbackTo<U>(std::forward<G>(g));
        return append<U>(std::move(s));
    }

    /// Appends the pair (d2.callback, d2.errback) and returns this Deferred as a
    /// Deferred<void> (DEF-17). When the chain reaches it, d2 fires with the
    /// current result (taken from this Deferred), d2's chain runs, then this one
    /// continues with nothing. If d2 had already fired, defer::AlreadyCalledError
    /// becomes this chain's Failure. Links are run by a loop, not nested calls.
    Deferred<void> chainDeferred(Deferred<T> d2) {
        core_->checkOutput(typeid(T));
        d2.core_->checkCreated(typeid(T));
        d2.core_->setChainedTo(core_);
        detail::Step s;
        s.kind = detail::StepKind::fire;
        s.other = d2.core_;
        return append<void>(std::move(s));
    }

    /// Cancels at `seconds` on `clock` unless the chain reaches this point first
    /// (DEF-22 … DEF-24); returns this Deferred. A timer-caused CancelledError
    /// becomes defer::TimeoutError(seconds); with onTimeoutCancel, that function
    /// receives whatever arrived and its return value (or throw) replaces it. The
    /// timer holds this Deferred weakly and is cancelled when the chain passes.
    Deferred<T> addTimeout(double seconds, IReactorTime& clock,
                           Function<Result<T>(Result<T>, double)> onTimeoutCancel = {}) {
        core_->checkOutput(typeid(T));
        auto timedOut = std::make_shared<bool>(false);
        std::weak_ptr<detail::Core> weak = core_;
        DelayedCall call = clock.callLater(seconds, [weak, timedOut] {
            *timedOut = true;
            if (auto c = weak.lock()) c->cancel();
        });
        addBoth([timedOut, seconds, f = std::move(onTimeoutCancel)](Result<T> r) mutable -> Result<T> {
            if (!*timedOut) return r;
            if (f) return f(std::move(r), seconds);
            if (!r.ok()) {
                r.failure().template trap<defer::CancelledError>();
                throw defer::TimeoutError(seconds);
            }
            return r;
        });
        addBoth([call](Result<T> r) mutable -> Result<T> {
            if (call.active()) call.cancel();
            return r;
        });
        return *this;
    }

    /// True from the first callback()/errback() on, also while paused or
    /// waiting on another Deferred (DEF-58).
    bool called() const noexcept { return core_->called(); }
    /// The number of explicit pause() calls outstanding (DEF-16).
    int paused() const noexcept { return core_->paused(); }
    /// Stops the chain from running until the matching unpause() (DEF-10).
    void pause() noexcept { core_->pause(); }
    /// Undoes one pause(); the one that reaches zero runs the waiting steps
    /// before returning. Throws std::logic_error with no pause() outstanding.
    void unpause() { core_->unpause(); }
    /// Cancels (DEF-18 … DEF-20, DEF-50): an unfired Deferred calls its
    /// canceller once and errbacks with CancelledError unless the canceller
    /// fired it; a Deferred waiting on another cancels that one instead; a
    /// coroutine's Deferred cancels what the coroutine is suspended on. With
    /// debugging on, `loc` is the first invoker a later AlreadyCalledError names.
    void cancel(SourceLocation loc = SourceLocation::current()) { core_->cancel(loc); }

    /// "<Deferred at 0xADDR>", "... current result: R>" or
    /// "... waiting on Deferred at 0xOTHER>" (DEF-58).
    std::string repr() const { return core_->repr(); }
    /// The address used by repr(): the identity of the Deferred.
    const void* id() const noexcept { return core_.get(); }
    /// Same Deferred.
    friend bool operator==(const Deferred& a, const Deferred& b) noexcept { return a.core_ == b.core_; }

    /// Internal: the shared state.
    const detail::CorePtr& detailCore() const noexcept { return core_; }

    struct Awaiter;
    /// co_await takes the result (DEF-32, DEF-46 … DEF-48). Prefer
    /// `co_await std::move(d)` or a temporary: a frame that keeps its own
    /// handle to the Deferred it awaits forms a cycle with it (the Deferred owns
    /// the suspended frame), released only when that Deferred fires.
    Awaiter operator co_await() && noexcept { return Awaiter{std::move(core_)}; }
    Awaiter operator co_await() & noexcept { return Awaiter{core_}; }

private:
    template <class U>
    Deferred<U> append(detail::Step s) {
        core_->setOutput(typeid(U));
        Deferred<U> out(core_, detail::FromCore{});
        core_->addStep(std::move(s));
        return out;
    }

    template <class U, class F, class... A>
    static detail::StepFn makeCallback(F&& f, A&&... args) {
        return [f = std::decay_t<F>(std::forward<F>(f)), args = std::make_tuple(std::forward<A>(args)...)](
                   detail::Core&, detail::Slot& in) mutable {
            if constexpr (std::is_void_v<T>) {
                return detail::invokeToStepOut<U>([&]() -> decltype(auto) { return std::apply(f, std::move(args)); });
            } else {
                T v = in.take<T>();
                return detail::invokeToStepOut<U>([&]() -> decltype(auto) {
                    return std::apply(
                        [&](auto&&... a) -> decltype(auto) {
                            return std::invoke(f, std::move(v), std::forward<decltype(a)>(a)...);
                        },
                        std::move(args));
                });
            }
        };
    }

    template <class G, class... A>
    static detail::StepFn makeErrback(G&& g, A&&... args) {
        return makeErrbackTo<T>(std::forward<G>(g), std::forward<A>(args)...);
    }

    template <class U, class G, class... A>
    static detail::StepFn makeErrbackTo(G&& g, A&&... args) {
        using R = std::invoke_result_t<std::decay_t<G>&, Failure&&, std::decay_t<A>&&...>;
        static_assert(std::is_same_v<detail::StepOutputT<R, U>, U>,
                      "an errback must produce the chain's current type: T, Deferred<T>, Result<T>, a Failure, "
                      "or nothing for void (DEF-30)");
        return [g = std::decay_t<G>(std::forward<G>(g)), args = std::make_tuple(std::forward<A>(args)...)](
                   detail::Core&, detail::Slot& in) mutable {
            Failure f = std::move(in.failure());
            return detail::invokeToStepOut<U>([&]() -> decltype(auto) {
                return std::apply(
                    [&](auto&&... a) -> decltype(auto) {
                        return std::invoke(g, std::move(f), std::forward<decltype(a)>(a)...);
                    },
                    std::move(args));
            });
        };
    }

    detail::CorePtr core_;
};

namespace detail {

/// Test helpers and combinators reach the core through this.
struct DeferredAccess {
    template <class T>
    static Core& core(const Deferred<T>& d) {
        return *d.detailCore();
    }
};

struct PromiseCommon : PromiseBase {
    std::optional<Failure> failure;
    CorePtr returned;  // co_return of a Deferred (DEF-51)

    std::suspend_never initial_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { failure.emplace(std::exception_ptr(std::current_exception())); }
};

template <class T>
struct PromiseValue : PromiseCommon {
    std::optional<T> value;
    void return_value(T v) { value.emplace(std::move(v)); }
    void return_value(Deferred<T> d) {
        d.detailCore()->checkOutput(typeid(T));
        returned = d.detailCore();
    }
    Slot slot() { return Slot::of<T>(std::move(*value)); }
};

template <>
struct PromiseValue<void> : PromiseCommon {
    void return_void() noexcept {}
    Slot slot() { return Slot{}; }
};

template <class T>
struct Promise : PromiseValue<T> {
    Deferred<T> get_return_object() {
        this->core = std::make_shared<Core>(typeid(T), SourceLocation{"<coroutine>", 0, "<coroutine>"});
        this->core->coroutine = this;
        return Deferred<T>(this->core, FromCore{});
    }

    // The frame is destroyed before the coroutine's Deferred fires, so no local,
    // argument or guard of the body outlives it (DEF-27, DEF-55).
    struct FinalAwaiter {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<Promise> h) noexcept {
            Promise& p = h.promise();
            CorePtr core = std::move(p.core);
            core->coroutine = nullptr;
            CorePtr returned = std::move(p.returned);
            Slot s;
            if (p.failure) {
                s = Slot::failed(std::move(*p.failure));
            } else if (!returned) {
                s = p.slot();
            }
            void* frame = h.address();
            h.destroy();
            finishCoroutine(frame, std::move(core), std::move(returned), std::move(s));
        }
        void await_resume() const noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {}; }
};

}  // namespace detail

/// What `co_await d` uses (DEF-46 … DEF-48, DEF-52). Does not suspend when d
/// has a result that can be taken now; otherwise appends a step that takes the
/// result and resumes the coroutine synchronously inside the call that gives d
/// its final result. A weft coroutine's frame is then owned by d: if d is
/// destroyed unfired, the frame is destroyed without resuming. Works from
/// other coroutine types too (no ownership, no cancel propagation).
template <class T>
requires DeferredValueType<T>
struct Deferred<T>::Awaiter {
    detail::CorePtr awaited;
    detail::Slot slot{};

    bool await_ready() {
        awaited->checkOutput(typeid(T));  // a second co_await of a non-void Deferred (DEF-32)
        if (!awaited->ready()) return false;
        slot = awaited->take();
        awaited.reset();
        return true;
    }

    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
        constexpr bool ours = std::is_base_of_v<detail::PromiseBase, P>;
        detail::PromiseBase* promise = nullptr;
        if constexpr (ours) {
            promise = &h.promise();
            promise->awaiting = awaited;  // for cancel() propagation (DEF-50)
        }
        detail::Step s;
        s.kind = detail::StepKind::both;
        s.cb = [owner = detail::FrameOwner(h, ours), self = this, promise](detail::Core& core, detail::Slot&) mutable {
            self->slot = core.take();
            if (promise) {
                promise->awaiting.reset();
                core.resumeAwaiting(owner.release());  // a weft frame: maybe through its awaited's final step
            } else {
                owner.release().resume();
            }
            return detail::StepOut{};
        };
        awaited->setOutput(typeid(void));
        detail::CorePtr d = std::move(awaited);  // the frame must not own what it awaits
        d->addStep(std::move(s));
    }

    T await_resume() {
        if (slot.isFailure()) std::rethrow_exception(slot.failure().value());
        if constexpr (!std::is_void_v<T>) return slot.template take<T>();
    }
};

/// A Deferred that has already fired with v (DEF-28).
template <class V>
Deferred<std::decay_t<V>> succeed(V&& v, SourceLocation loc = SourceLocation::current()) {
    Deferred<std::decay_t<V>> d(loc);
    d.callback(std::forward<V>(v), loc);
    return d;
}
/// A Deferred<void> that has already fired (DEF-28).
inline Deferred<void> succeed(SourceLocation loc = SourceLocation::current()) {
    Deferred<void> d(loc);
    d.callback(loc);
    return d;
}

/// A Deferred<T> that has already errbacked with f (DEF-28).
template <class T = void>
Deferred<T> fail(Failure f, SourceLocation loc = SourceLocation::current()) {
    Deferred<T> d(loc);
    d.errback(std::move(f), loc);
    return d;
}
/// fail() with a new Failure wrapping e.
template <class T = void>
Deferred<T> fail(std::exception_ptr e, SourceLocation loc = SourceLocation::current()) {
    return fail<T>(Failure(std::move(e)), loc);
}
/// fail() with a new Failure wrapping a copy of e.
template <class T = void, class E>
requires(!std::is_same_v<std::remove_cvref_t<E>, Failure> &&
         !std::is_same_v<std::remove_cvref_t<E>, std::exception_ptr> &&
         !std::is_same_v<std::remove_cvref_t<E>, SourceLocation>)
    Deferred<T> fail(E&& e, SourceLocation loc = SourceLocation::current()) {
    return fail<T>(Failure(std::forward<E>(e)), loc);
}
/// fail() with the exception being handled; throws NoCurrentExceptionError
/// outside any handler (DEF-28).
template <class T = void>
Deferred<T> fail(SourceLocation loc = SourceLocation::current()) {
    return fail<T>(Failure::current(), loc);
}

namespace detail {
template <class R>
struct MaybeDeferredType {
    using type = StepOutputT<R, void>;
};
}  // namespace detail

/// Calls f(args...) now and wraps its outcome; never throws (DEF-29). A
/// returned Deferred (e.g. from a coroutine) is returned itself; a Failure
/// gives fail(f) (a Deferred<void>); a Result<U> gives succeed/fail; a throw
/// gives fail; a value v gives succeed(v); void gives succeed().
template <class F, class... A>
auto maybeDeferred(F&& f, A&&... args)
    -> Deferred<typename detail::MaybeDeferredType<std::invoke_result_t<F, A...>>::type> {
    using R = std::invoke_result_t<F, A...>;
    using U = typename detail::MaybeDeferredType<R>::type;
    try {
        if constexpr (std::is_void_v<R>) {
            std::invoke(std::forward<F>(f), std::forward<A>(args)...);
            return succeed();
        } else {
            detail::StepOut out = detail::toStepOut<U>(std::invoke(std::forward<F>(f), std::forward<A>(args)...));
            if (out.wait) return Deferred<U>(std::move(out.wait), detail::FromCore{});
            if (out.slot.isFailure()) return fail<U>(std::move(out.slot.failure()));
            if constexpr (std::is_void_v<U>) {
                return succeed();
            } else {
                return succeed(out.slot.template take<U>());
            }
        }
    } catch (...) {
        return fail<U>(Failure::current());
    }
}

namespace detail {
template <class A>
decltype(auto) getAwaiter(A&& a) {
    if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
        return std::forward<A>(a).operator co_await();
    } else if constexpr (requires { operator co_await(std::forward<A>(a)); }) {
        return operator co_await(std::forward<A>(a));
    } else {
        return std::forward<A>(a);
    }
}
template <class A>
concept Awaitable = requires(A&& a) {
    { detail::getAwaiter(std::forward<A>(a)).await_ready() } -> std::convertible_to<bool>;
    detail::getAwaiter(std::forward<A>(a)).await_resume();
};
template <class A>
using AwaitResultT = std::remove_cvref_t<decltype(detail::getAwaiter(std::declval<A>()).await_resume())>;
}  // namespace detail

/// Returns d itself (DEF-52).
template <class T>
Deferred<T> ensureDeferred(Deferred<T> d) {
    return d;
}

/// Runs any awaitable in a coroutine and returns that coroutine's Deferred
/// (DEF-52). Anything that is neither a Deferred nor awaitable does not
/// compile (Twisted: NotACoroutineError).
template <class A>
requires(detail::Awaitable<A> && !detail::DeferredLike<A>) Deferred<detail::AwaitResultT<A>> ensureDeferred(A a) {
    if constexpr (std::is_void_v<detail::AwaitResultT<A>>) {
        co_await std::move(a);
    } else {
        co_return co_await std::move(a);
    }
}

/// Logs f at critical level and returns it unchanged, so it works as a
/// pass-through errback (DEF-26). As the last step, the Failure is reported
/// again when the Deferred goes away (DEF-25).
WEFT_EXPORT Failure logError(Failure f);

}  // namespace weft
