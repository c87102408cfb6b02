// Private: a cross-cast whose answer is remembered per dynamic type.
//
// dynamic_cast from one base of a protocol to another (Protocol* to
// IHalfCloseableProtocol*) walks the class hierarchy, and libstdc++ compares
// type names with strcmp on the way: ≈ 1 200 instructions, twice in every
// connection's close (bench/README.md, "The stream layer's cost"). For one
// complete type the answer never changes — a base sits at a fixed offset from
// the complete object, or the cast fails — so it is worked out once per type
// and thread and then costs a typeid, an offset-to-top and a comparison.
#pragma once

#include <array>
#include <cstddef>
#include <limits>
#include <typeinfo>

namespace weft::detail {

/// dynamic_cast<To*>(p), remembered for the last few dynamic types seen on
/// this thread. Only for types whose objects are complete when cast (not from
/// constructors or destructors of a base).
template <class To, class From>
To* crossCast(From* p) {
    if (!p) return nullptr;
    static constexpr std::ptrdiff_t kNone = std::numeric_limits<std::ptrdiff_t>::min();
    struct Entry {
        const std::type_info* type = nullptr;
        std::ptrdiff_t offset = kNone;  // from the complete object to its To, or kNone: no such base
    };
    thread_local std::array<Entry, 4> cache{};
    thread_local unsigned next = 0;
    // Type identity by address: a type may have two type_info objects (one per
    // shared object), which only costs a miss; two types never share one.
    const std::type_info* type = &typeid(*p);
    auto* complete = static_cast<char*>(dynamic_cast<void*>(p));  // offset-to-top only, no walk
    for (const Entry& e : cache)
        if (e.type == type) return e.offset == kNone ? nullptr : reinterpret_cast<To*>(complete + e.offset);
    To* to = dynamic_cast<To*>(p);
    cache[next++ % cache.size()] = {type, to ? reinterpret_cast<char*>(to) - complete : kNone};
    return to;
}

}  // namespace weft::detail
