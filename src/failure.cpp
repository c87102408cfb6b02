#include <weft/failure.hpp>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace weft {

NoCurrentExceptionError::NoCurrentExceptionError()
    : std::logic_error("Failure() with no exception being handled") {}

Failure::Failure(std::exception_ptr e) : value_(std::move(e)) {
    if (!value_) throw std::invalid_argument("weft::Failure needs a non-null exception_ptr");
}

Failure Failure::current() {
    auto e = std::current_exception();
    if (!e) throw NoCurrentExceptionError();
    return Failure(std::move(e));
}

const std::type_info& Failure::type() const noexcept {
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
    std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                               std::free);
    return status == 0 && out ? std::string(out.get()) : std::string(mangled);
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
