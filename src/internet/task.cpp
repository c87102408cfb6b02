#include <weft/internet/task.hpp>

#include <cmath>
#include <stdexcept>

#include "internet/detail/timerqueue.hpp"

namespace weft::task {

Clock::Clock()
    : queue_(std::make_unique<detail::TimerQueue>(
          [](const void* self) { return static_cast<const Clock*>(self)->now_; }, this)) {}

Clock::~Clock() = default;

DelayedCall Clock::callLater(double delay, Function<void()> f) { return queue_->schedule(delay, std::move(f)); }

std::vector<DelayedCall> Clock::getDelayedCalls() const { return queue_->pending(); }

void Clock::advance(double amount) {
    if (std::isnan(amount) || amount < 0) throw std::invalid_argument("Clock::advance: amount must be >= 0");
    now_ += amount;
    queue_->runAllDue(now_);
}

void Clock::pump(std::initializer_list<double> amounts) {
    for (double a : amounts) advance(a);
}

void Clock::pump(const std::vector<double>& amounts) {
    for (double a : amounts) advance(a);
}

}  // namespace weft::task
