// weft/internet/threads.hpp — results across threads (twisted.internet.threads).
// Spec: reactor.md R-51.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>

namespace weft {

namespace detail {
template <class R, class F>
Result<R> captureResult(F& f) noexcept {
    try {
        if constexpr (std::is_void_v<R>) {
            f();
            return Result<R>();
        } else {
            return Result<R>(f());
        }
    } catch (...) {
        return Result<R>::failed(Failure::current());
    }
}
}  // namespace detail

/// Runs f(args...) on the reactor's thread pool and returns a Deferred that fires
/// on the reactor thread with f's result, or fails with what f threw.
///
/// Call it on the reactor thread. f and the arguments are moved to the pool
/// thread and destroyed there; the result is moved back. If the pool is stopped
/// before f runs, the Deferred never fires.
template <class F, class... A>
auto deferToThread(Reactor& reactor, F f, A... args) -> Deferred<std::invoke_result_t<F&, A&...>> {
    using R = std::invoke_result_t<F&, A&...>;
    Deferred<R> d;
    reactor.callInThread([&reactor, d, call = [f = std::move(f), ... args = std::move(args)]() mutable {
        return std::invoke(f, args...);
    }]() mutable {
        Result<R> r = detail::captureResult<R>(call);
        reactor.callFromThread([d = std::move(d), r = std::move(r)]() mutable {
            if (!r.ok()) d.errback(r.failure());
            else if constexpr (std::is_void_v<R>) d.callback();
            else d.callback(std::move(r).value());
        });
    });
    return d;
}

/// blockingCallFromThread gave up waiting: the reactor stopped, was destroyed,
/// or was stopping its thread pool before it ran the call (see below), or the
/// Deferred the call returned was destroyed without firing.
class BlockingCallAbandoned : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Runs f() on the reactor thread, waits for it — and, if it returns a Deferred,
/// for that Deferred — and returns its result or rethrows its failure.
///
/// Call it from a thread other than the reactor's; from the thread inside run()
/// it throws std::logic_error (it would wait for itself). Before run() the call
/// waits for some thread to run the reactor. Better than Twisted, whose caller
/// waits for ever, it throws BlockingCallAbandoned when no answer can come: the
/// reactor has returned from run() after stop(), or is destroyed with the call
/// still queued, or has begun to stop its thread pool at shutdown (a pool worker
/// waiting then would deadlock the join; calls queued before that still run).
template <class F>
auto blockingCallFromThread(Reactor& reactor, F f) {
    using Raw = std::invoke_result_t<F&>;
    using R = typename decltype([] {
        if constexpr (isWeftDeferred(static_cast<Raw*>(nullptr))) return std::type_identity<typename Raw::value_type>{};
        else return std::type_identity<Raw>{};
    }())::type;

    struct Shared {
        std::mutex mu;
        std::condition_variable cv;
        std::optional<Result<R>> result;
        void set(Result<R> r) {
            std::lock_guard lk(mu);
            if (!result) result.emplace(std::move(r));
            cv.notify_all();
        }
    };
    // Answers the waiter once: with the result, or, if destroyed unanswered (the
    // reactor dropped the call, or the Deferred was destroyed unfired), with `why`.
    struct Answer {
        std::shared_ptr<Shared> shared;
        const char* why;
        Answer(std::shared_ptr<Shared> s, const char* w) noexcept : shared(std::move(s)), why(w) {}
        Answer(Answer&& o) noexcept : shared(std::move(o.shared)), why(o.why) {}
        Answer& operator=(Answer&&) = delete;
        ~Answer() {
            if (shared) shared->set(Result<R>::failed(Failure(BlockingCallAbandoned(why))));
        }
        void operator()(Result<R> r) { std::exchange(shared, nullptr)->set(std::move(r)); }
    };
    auto shared = std::make_shared<Shared>();
    reactor.callFromThreadForWaiter(
        [answer = Answer(shared, "blockingCallFromThread: the reactor stopped without running the call"),
         f = std::move(f)]() mutable {
            auto d = maybeDeferred(std::move(f));
            d.addBoth([answer = Answer(std::move(answer.shared),
                                       "blockingCallFromThread: the Deferred the call returned was destroyed unfired")](
                          Result<R> r) mutable { answer(std::move(r)); });
        });
    std::unique_lock lk(shared->mu);
    shared->cv.wait(lk, [&] { return shared->result.has_value(); });
    Result<R> r = std::move(*shared->result);
    lk.unlock();
    if constexpr (std::is_void_v<R>) r.value();
    else return std::move(r).value();
}

}  // namespace weft
