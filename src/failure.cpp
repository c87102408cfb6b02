#include <weft/failure.hpp>

#include <cxxabi.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace weft {

NoCurrentExceptionError::NoCurrentExceptionError() : std::logic_error("Failure() with no exception being handled") {}

Failure::Failure(std::exception_ptr e) : value_(std::move(e)) {
    if (!value_) throw std::invalid_argument("weft::Failure needs a non-null exception_ptr");
}

Failure Failure::current() {
    auto e = std::current_exception();
    if (!e) throw NoCurrentExceptionError();
    return Failure(std::move(e));
}

int Failure::matchWithoutThrowing(const std::type_info& target, void*& object) const noexcept {
#if defined(__GLIBCXX__)
    // libstdc++: an exception_ptr holds the address of the thrown object, and
    // type_info::__do_catch is the test its personality routine applies to
    // each catch clause (adjusting the address to the base subobject).
    static_assert(sizeof(std::exception_ptr) == sizeof(void*), "libstdc++'s exception_ptr is one pointer");
    const std::type_info* thrown = value_.__cxa_exception_type();
    if (!thrown || thrown->__is_pointer_p()) return -1;
    void* const exception = *reinterpret_cast<void* const*>(&value_);
    if (thrown == &target) {  // the exact type: nothing to walk
        object = exception;
        return 1;
    }
    // __do_catch walks the thrown type's bases, comparing type names with
    // strcmp (≈ 150 instructions a check, several in every connection's
    // close). Its answer depends only on the two types: whether one is a
    // public unambiguous base of the other, and at which offset the base sits
    // in the thrown object, fixed for a complete type. So it is remembered per
    // pair on this thread (types by address: a second type_info object of a
    // type only costs a miss).
    static constexpr std::ptrdiff_t kNoMatch = PTRDIFF_MIN;
    struct Answer {
        const std::type_info* thrown = nullptr;
        const std::type_info* target = nullptr;
        std::ptrdiff_t offset = kNoMatch;
    };
    thread_local std::array<Answer, 8> answers{};
    thread_local unsigned next = 0;
    for (const Answer& a : answers) {
        if (a.thrown != thrown || a.target != &target) continue;
        if (a.offset == kNoMatch) return 0;
        object = static_cast<char*>(exception) + a.offset;
        return 1;
    }
    void* candidate = exception;
    bool match = target.__do_catch(thrown, &candidate, 1);
    answers[next++ % answers.size()] = {
        thrown, &target, match ? static_cast<char*>(candidate) - static_cast<char*>(exception) : kNoMatch};
    if (!match) return 0;
    object = candidate;
    return 1;
#else
    (void)target;
    (void)object;
    return -1;
#endif
}

const std::type_info& Failure::type() const noexcept {
#if defined(__GLIBCXX__)
    if (const std::type_info* thrown = value_.__cxa_exception_type()) return *thrown;
#endif
    try {
        std::rethrow_exception(value_);
    } catch (const std::exception& e) {
        return typeid(e);
    } catch (...) {
        // The Itanium ABI records the thrown type for every exception.
        if (const std::type_info* t = abi::__cxa_current_exception_type()) return *t;
    }
    return typeid(void);
}

std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    if (status != 0 || !out) return mangled;
    // The names a reader writes: std::string for the string type's full spelling, and no ABI namespace.
    std::string name = out.get();
    auto replaceAll = [&](std::string_view from, std::string_view to) {
        for (auto at = name.find(from); at != std::string::npos; at = name.find(from, at + to.size()))
            name.replace(at, from.size(), to);
    };
    replaceAll("std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string");
    replaceAll("std::__cxx11::", "std::");
    return name;
}

std::string Failure::typeName() const { return demangle(type().name()); }

std::string Failure::getErrorMessage() const noexcept {
    try {
        try {
            std::rethrow_exception(value_);
        } catch (const std::exception& e) {
            return e.what();
        } catch (...) {
            return "<exception of type " + typeName() + ">";
        }
    } catch (...) {
        return "<unprintable exception>";
    }
}

std::string Failure::getTraceback() const {
    return "Traceback (most recent call last):\nFailure: " + typeName() + ": " + getErrorMessage() + "\n";
}

std::string Failure::getBriefTraceback() const {
    return "Traceback (failure with no frames): " + typeName() + ": " + getErrorMessage() + "\n";
}

std::string Failure::repr() const { return "<weft::Failure " + typeName() + ": " + getErrorMessage() + ">"; }

std::string Failure::str() const { return "[Failure instance: " + getBriefTraceback() + "]"; }

}  // namespace weft
