// weft/failure.hpp — one thrown exception travelling along an error path.
// Mirrors twisted.python.failure.Failure (spec: defer.md DEF-34..DEF-37).
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>

#include <weft/export.hpp>

namespace weft {

/// Thrown by Failure::current() (and errback()/fail() with no argument) when no
/// exception is being handled. Twisted: NoCurrentExceptionError.
class WEFT_EXPORT NoCurrentExceptionError : public std::logic_error {
public:
    NoCurrentExceptionError();
};

/// A Failure wraps one thrown object (a std::exception_ptr).
///
/// Copies share the same exception object, so `value()` compares equal across
/// copies and `raiseException()` rethrows the very object that was thrown.
/// A Failure is never empty.
class WEFT_EXPORT Failure {
public:
    /// Wraps an exception pointer; throws std::invalid_argument for a null one.
    explicit Failure(std::exception_ptr e);

    /// Wraps a copy of the exception object `e` (any throwable type).
    template <class E>
    requires(!std::is_same_v<std::remove_cvref_t<E>, Failure> &&
             !std::is_same_v<std::remove_cvref_t<E>, std::exception_ptr>) explicit Failure(E&& e)
        : value_(std::make_exception_ptr(std::forward<E>(e))) {}

    /// The exception currently being handled (the innermost one in nested
    /// handlers). Throws NoCurrentExceptionError outside any handler.
    static Failure current();

    /// The wrapped exception, equal to the pointer that was given or captured.
    const std::exception_ptr& value() const noexcept { return value_; }

    /// The dynamic type of the exception for std::exception derivatives,
    /// otherwise the static type captured by the exception runtime where known.
    const std::type_info& type() const noexcept;

    /// Demangled, qualified name of type(), e.g. "weft::error::ConnectionDone".
    std::string typeName() const;

    /// 1-based position of the first listed type that the exception is
    /// (same type or a public base, by C++ catch rules); 0 if none matches.
    template <class... E>
    int check() const noexcept {
        static_assert(sizeof...(E) > 0, "check<>() needs at least one type");
        int index = 0;
        int found = 0;
        (void)((++index, matches<E>() ? (found = index, true) : false) || ...);
        return found;
    }

    /// Like check(), but rethrows the wrapped exception when nothing matches.
    template <class... E>
    int trap() const {
        int n = check<E...>();
        if (n == 0) std::rethrow_exception(value_);
        return n;
    }

    /// Pointer to the exception object if it is an E (or derives from it).
    template <class E>
    const E* get() const noexcept {
        void* object = nullptr;
        if (int m = matchWithoutThrowing(typeid(E), object); m >= 0) return m ? static_cast<const E*>(object) : nullptr;
        try {
            std::rethrow_exception(value_);
        } catch (const E& e) {
            return &e;
        } catch (...) {}
        return nullptr;
    }

    /// Rethrows the wrapped exception itself.
    [[noreturn]] void raiseException() const { std::rethrow_exception(value_); }

    /// what() for std::exception derivatives; a placeholder naming the type
    /// otherwise. Never throws.
    std::string getErrorMessage() const noexcept;
    /// "Traceback (most recent call last):\nFailure: TYPE: MESSAGE\n"
    std::string getTraceback() const;
    /// "Traceback (failure with no frames): TYPE: MESSAGE\n"
    std::string getBriefTraceback() const;
    /// "<weft::Failure TYPE: MESSAGE>"
    std::string repr() const;
    /// "[Failure instance: " + brief traceback + "]"
    std::string str() const;

    friend bool operator==(const Failure& a, const Failure& b) noexcept { return a.value_ == b.value_; }

private:
    /// Matches the exception against a handler for `target` the way a catch
    /// clause does (same type or a public base), without throwing it: 1 with
    /// `object` pointing at the `target` subobject, 0 for no match, -1 when it
    /// cannot tell (another C++ runtime, a thrown pointer); then the callers
    /// rethrow and catch. Rethrowing costs an unwind per test, and transports
    /// test every close reason.
    int matchWithoutThrowing(const std::type_info& target, void*& object) const noexcept;

    template <class E>
    bool matches() const noexcept {
        void* object = nullptr;
        if (int m = matchWithoutThrowing(typeid(E), object); m >= 0) return m == 1;
        try {
            std::rethrow_exception(value_);
        } catch (const E&) {
            return true;
        } catch (...) {
            return false;
        }
    }

    std::exception_ptr value_;
};

/// Demangles a type name (used for logging and Failure texts).
WEFT_EXPORT std::string demangle(const char* mangled);

}  // namespace weft
