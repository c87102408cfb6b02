// weft/internet/delayedcall.hpp — a handle to a call scheduled with callLater.
// Mirrors twisted.internet.base.DelayedCall (spec: reactor.md R-21..R-28).
#pragma once

#include <memory>

#include <weft/export.hpp>
#include <weft/internet/error.hpp>

namespace weft {

namespace detail {
struct TimerEntry;
class TimerQueue;
}  // namespace detail

/// A handle to one scheduled call. Copies refer to the same call.
///
/// Ownership: the scheduler (reactor or task::Clock) owns the callable until it
/// runs or is cancelled, then destroys it at once. The handle only
/// observes; dropping every handle does not cancel the call. A handle may
/// outlive its scheduler: after the scheduler is destroyed the call is inert
/// (active() is false; cancel() throws AlreadyCancelled).
class WEFT_EXPORT DelayedCall {
public:
    DelayedCall() = default;

    /// Absolute time the call is scheduled for, on the scheduler's seconds() clock,
    /// including any reset()/delay().
    double getTime() const;

    /// Guarantees the callable never runs, and releases it now.
    /// Throws error::AlreadyCalled if it ran (or is running), error::AlreadyCancelled
    /// if it was cancelled.
    void cancel();

    /// Reschedules to seconds() + secondsFromNow (earlier or later). The call
    /// takes a new place among calls due at the same instant. Throws like cancel().
    void reset(double secondsFromNow);

    /// Moves the call by secondsLater (may be negative). Throws like cancel().
    void delay(double secondsLater);

    /// True until the call has started running or was cancelled.
    bool active() const noexcept;
    bool called() const noexcept;
    bool cancelled() const noexcept;

    /// True when this handle refers to a call (a default-constructed one does not).
    explicit operator bool() const noexcept { return entry_ != nullptr; }
    friend bool operator==(const DelayedCall& a, const DelayedCall& b) noexcept { return a.entry_ == b.entry_; }

private:
    friend class detail::TimerQueue;
    explicit DelayedCall(std::shared_ptr<detail::TimerEntry> e) : entry_(std::move(e)) {}
    std::shared_ptr<detail::TimerEntry> entry_;
};

}  // namespace weft
