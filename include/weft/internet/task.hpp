// weft/internet/task.hpp — time-based helpers (twisted.internet.task).
// Clock: deterministic time for tests (R-56..R-58).
#pragma once

#include <initializer_list>
#include <memory>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/interfaces.hpp>

namespace weft::detail {
class TimerQueue;
}

namespace weft::task {

/// A deterministic IReactorTime: time starts at 0 and moves only when advance()
/// is called. Calls run inside advance(), in time order, ties first-in first-out.
/// Not thread-safe; use it from one thread.
class WEFT_EXPORT Clock : public IReactorTime {
public:
    Clock();
    ~Clock() override;
    Clock(const Clock&) = delete;
    Clock& operator=(const Clock&) = delete;

    double seconds() const override { return now_; }
    using IReactorTime::callLater;
    DelayedCall callLater(double delay, Function<void()> f) override;
    std::vector<DelayedCall> getDelayedCalls() const override;

    /// Moves time forward by `amount` seconds (must be >= 0) and runs every call
    /// that is then due, including calls scheduled during the advance that are
    /// already due. An exception from a call propagates out of advance(); that call
    /// is consumed and later calls stay pending.
    void advance(double amount);

    /// advance(a); advance(b); ... for each amount in turn.
    void pump(std::initializer_list<double> amounts);
    void pump(const std::vector<double>& amounts);

private:
    double now_ = 0;
    std::unique_ptr<detail::TimerQueue> queue_;
};

}  // namespace weft::task
