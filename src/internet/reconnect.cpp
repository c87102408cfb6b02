#include <weft/internet/reconnect.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>

namespace weft {

namespace {

// How log lines name a connector (Twisted prints the connector's repr).
std::string describe(const std::shared_ptr<IConnector>& connector) {
    if (!connector) return "<no connector>";
    try {
        return "<" + className(*connector) + " to " + addressStr(connector->getDestination()) + ">";
    } catch (...) {
        return "<" + className(*connector) + ">";
    }
}

}  // namespace

ReconnectingClientFactory::ReconnectingClientFactory(IReactorTime* fallbackClock)
    : fallbackClock_(fallbackClock), engine_(std::random_device{}()), alive_(std::make_shared<char>(0)) {}

ReconnectingClientFactory::~ReconnectingClientFactory() {
    // Nothing may throw here: a handle whose scheduler is gone is inactive.
    if (callID_ && callID_->active()) {
        try {
            callID_->cancel();
        } catch (...) {}
    }
}

void ReconnectingClientFactory::clientConnectionFailed(const std::shared_ptr<IConnector>& c, const Failure&) {
    if (!continueTrying) return;
    connector = c;
    retry();
}

void ReconnectingClientFactory::clientConnectionLost(const std::shared_ptr<IConnector>& c, const Failure&) {
    if (!continueTrying) return;
    connector = c;
    retry();
}

IReactorTime* ReconnectingClientFactory::resolveClock(const std::shared_ptr<IConnector>& c) const {
    if (clock) return clock;
    if (IReactorTime* connectorClock = c ? c->clock() : nullptr) return connectorClock;
    return fallbackClock_;
}

double ReconnectingClientFactory::draw(double mean, double stddev) {
    if (normalvariate) return normalvariate(mean, stddev);
    stddev = std::fabs(stddev);
    if (!(stddev > 0) || !std::isfinite(stddev)) return mean;  // normal_distribution needs 0 < stddev < inf
    return std::normal_distribution<double>(mean, stddev)(engine_);
}

void ReconnectingClientFactory::retry(std::shared_ptr<IConnector> c) {
    if (!continueTrying) {
        if (noisy) log::info(logPrefix(), "Abandoning {} on explicit request", describe(c ? c : connector.lock()));
        return;
    }
    if (!c) {
        c = connector.lock();
        if (!c) throw std::logic_error("no connector to retry");
    }
    IReactorTime* scheduler = resolveClock(c);
    if (!scheduler)
        throw std::logic_error(logPrefix() +
                               ": no clock to schedule the retry on: set `clock` or give one to the constructor");

    ++retries;
    if (maxRetries && retries > *maxRetries) {
        if (noisy) log::info(logPrefix(), "Abandoning {} after {} retries.", describe(c), retries);
        return;
    }

    delay = std::min(delay * factor, maxDelay);
    if (jitter != 0) delay = draw(delay, delay * jitter);
    // Better than Twisted (RCF-3): the jittered value stays within [0, maxDelay]
    // (a NaN from an injected source becomes 0).
    if (delay > maxDelay) delay = maxDelay;
    if (!(delay >= 0)) delay = 0;

    if (noisy) log::info(logPrefix(), "{} will retry in {:.3f} seconds", describe(c), delay);

    std::weak_ptr<char> alive = alive_;
    callID_ = scheduler->callLater(delay, [this, alive, c] {
        if (alive.expired()) return;  // the factory is gone; so is the loop
        callID_.reset();
        c->connect();
    });
}

void ReconnectingClientFactory::stopTrying() {
    if (callID_) {
        if (callID_->active()) callID_->cancel();
        callID_.reset();
    }
    continueTrying = false;
    if (auto c = connector.lock()) {
        try {
            c->stopConnecting();
        } catch (const error::NotConnectingError&) {}
    }
}

void ReconnectingClientFactory::resetDelay() {
    delay = initialDelay;
    retries = 0;
    callID_.reset();
    continueTrying = true;
}

void ReconnectingClientFactory::copyConfigurationFrom(const ReconnectingClientFactory& other) {
    maxDelay = other.maxDelay;
    initialDelay = other.initialDelay;
    factor = other.factor;
    jitter = other.jitter;
    maxRetries = other.maxRetries;
    normalvariate = other.normalvariate;
    fallbackClock_ = other.fallbackClock_;
    protocol = other.protocol;
    noisy = other.noisy;
    delay = initialDelay;
}

std::shared_ptr<ReconnectingClientFactory> ReconnectingClientFactory::configurationCopy() const {
    auto copy = std::make_shared<ReconnectingClientFactory>();
    copy->copyConfigurationFrom(*this);
    return copy;
}

}  // namespace weft
