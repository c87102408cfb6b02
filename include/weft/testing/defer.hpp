// weft/testing/defer.hpp — trial's Deferred assertions for any test framework
// (spec: defer.md DEF-59; Twisted src/twisted/trial/_synctest.py).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

#include <weft/failure.hpp>
#include <weft/internet/defer.hpp>

namespace weft::testing {

/// What the helpers throw when an assertion fails; what() is the message.
/// Derives from std::logic_error so any framework reports it as a failure.
class AssertionFailed : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// d's success result, taken from d (DEF-32). Throws AssertionFailed with
/// "Success result expected on <d>, found no result instead" when d has no
/// result that can be taken now (unfired, paused or waiting), or "… found
/// failure result instead:\n<traceback>" (the Failure is taken, so it is not
/// reported again as unhandled).
template <class T>
T successResultOf(const Deferred<T>& d) {
    auto& core = detail::DeferredAccess::core(d);
    if (!core.ready())
        throw AssertionFailed(fmt::format("Success result expected on {}, found no result instead", d.repr()));
    core.checkOutput(typeid(T));
    std::string repr = d.repr();
    detail::Slot s = core.take();
    if (s.isFailure())
        throw AssertionFailed(fmt::format("Success result expected on {}, found failure result instead:\n{}", repr,
                                          s.failure().getTraceback()));
    if constexpr (!std::is_void_v<T>) return s.template take<T>();
}

/// d's Failure, taken from d (DEF-32). Throws AssertionFailed when d has no
/// result ("Failure result expected on <d>, found no result instead"), a
/// success ("… found success result (<v>) instead") or — when types are given —
/// a Failure matching none of them ("Failure of type (<types>) expected on <d>,
/// found type <type> instead: <traceback>").
template <class... E, class T>
Failure failureResultOf(const Deferred<T>& d) {
    auto& core = detail::DeferredAccess::core(d);
    if (!core.ready())
        throw AssertionFailed(fmt::format("Failure result expected on {}, found no result instead", d.repr()));
    std::string repr = d.repr();
    detail::Slot s = core.take();
    if (!s.isFailure())
        throw AssertionFailed(
            fmt::format("Failure result expected on {}, found success result ({}) instead", repr, s.describe()));
    Failure f = s.failure();
    if constexpr (sizeof...(E) > 0) {
        if (!f.check<E...>()) {
            std::string expected;
            ((expected += (expected.empty() ? "" : " or ") + demangle(typeid(E).name())), ...);
            throw AssertionFailed(fmt::format("Failure of type ({}) expected on {}, found type {} instead: {}",
                                              expected, repr, f.typeName(), f.getTraceback()));
        }
    }
    return f;
}

/// Throws AssertionFailed ("No result expected on <d>, found <r> instead") when
/// d has a result, swallowing a Failure so it is not reported twice; otherwise
/// leaves d exactly as it was.
template <class T>
void assertNoResult(const Deferred<T>& d) {
    auto& core = detail::DeferredAccess::core(d);
    if (!core.ready()) return;
    std::string repr = d.repr();
    std::string found = core.result.describe();
    if (core.result.isFailure()) core.take();
    throw AssertionFailed(fmt::format("No result expected on {}, found {} instead", repr, found));
}

}  // namespace weft::testing
