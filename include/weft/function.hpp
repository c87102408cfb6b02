// weft/function.hpp — a move-only type-erased callable.
//
// C++20 on g++ 12 / clang 14 lacks std::move_only_function; callbacks that
// capture move-only state (a unique_ptr, a Deferred's frame) need one. Small
// callables (up to kInline bytes, nothrow-movable) are stored in place, so
// scheduling a lambda with a couple of captures does not allocate.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace weft {

template <class Sig>
class Function;

template <class R, class... Args>
class Function<R(Args...)> {
    static constexpr std::size_t kInline = 3 * sizeof(void*);

    struct VTable {
        R (*invoke)(void*, Args&&...);
        void (*move)(void* dst, void* src) noexcept;  // move-construct dst from src, destroy src
        void (*destroy)(void*) noexcept;
    };

    template <class F>
    static constexpr bool kFitsInline =
        sizeof(F) <= kInline && alignof(F) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<F>;

    template <class F>
    static constexpr VTable kInlineTable{
        [](void* p, Args&&... a) -> R { return std::invoke(*static_cast<F*>(p), std::forward<Args>(a)...); },
        [](void* d, void* s) noexcept {
            ::new (d) F(std::move(*static_cast<F*>(s)));
            static_cast<F*>(s)->~F();
        },
        [](void* p) noexcept { static_cast<F*>(p)->~F(); }};

    template <class F>
    static constexpr VTable kHeapTable{
        [](void* p, Args&&... a) -> R { return std::invoke(**static_cast<F**>(p), std::forward<Args>(a)...); },
        [](void* d, void* s) noexcept {
            *static_cast<F**>(d) = *static_cast<F**>(s);
            *static_cast<F**>(s) = nullptr;
        },
        [](void* p) noexcept { delete *static_cast<F**>(p); }};

public:
    Function() noexcept = default;
    Function(std::nullptr_t) noexcept {}

    template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, Function> && std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
        Function(F&& f) {  // NOLINT: implicit like std::function
        using D = std::decay_t<F>;
        if constexpr (std::is_pointer_v<D> || std::is_member_pointer_v<D>) {
            if (f == nullptr) return;
        }
        if constexpr (kFitsInline<D>) {
            ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
            vt_ = &kInlineTable<D>;
        } else {
            *reinterpret_cast<D**>(buf_) = new D(std::forward<F>(f));
            vt_ = &kHeapTable<D>;
        }
    }

    Function(Function&& o) noexcept : vt_(o.vt_) {
        if (vt_) {
            vt_->move(buf_, o.buf_);
            o.vt_ = nullptr;
        }
    }

    Function& operator=(Function&& o) noexcept {
        if (this != &o) {
            reset();
            if (o.vt_) {
                o.vt_->move(buf_, o.buf_);
                vt_ = o.vt_;
                o.vt_ = nullptr;
            }
        }
        return *this;
    }

    Function& operator=(std::nullptr_t) noexcept {
        reset();
        return *this;
    }

    Function(const Function&) = delete;
    Function& operator=(const Function&) = delete;
    ~Function() { reset(); }

    explicit operator bool() const noexcept { return vt_ != nullptr; }

    /// Calls the target. Calling an empty Function throws std::bad_function_call.
    R operator()(Args... a) {
        if (!vt_) throw std::bad_function_call();
        return vt_->invoke(buf_, std::forward<Args>(a)...);
    }

    /// Destroys the target (and everything it captured) now.
    void reset() noexcept {
        if (vt_) {
            auto* vt = vt_;
            vt_ = nullptr;
            vt->destroy(buf_);
        }
    }

private:
    alignas(std::max_align_t) unsigned char buf_[kInline];
    const VTable* vt_ = nullptr;
};

}  // namespace weft
