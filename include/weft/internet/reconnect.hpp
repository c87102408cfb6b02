// weft/internet/reconnect.hpp — a client factory that reconnects with
// exponential back-off (Twisted twisted.internet.protocol.ReconnectingClientFactory).
// Spec: protocols.md RCF-1 … RCF-7.
//
// Ownership: the factory remembers the last connector it was handed only
// weakly (`connector`), because a tcp::Connector holds its factory strongly; a
// strong pointer back would make a cycle that outlives the reactor. While a
// reconnect is pending, the scheduled call holds the connector; while a
// connection is being made or is up, the transport holds it. So a reconnect
// loop keeps its connector alive by itself, and the connector is freed once
// the loop ends (stopTrying(), maxRetries reached, or a loss after
// stopTrying()) unless the application keeps the shared_ptr that connectTCP
// returned. The scheduled call never keeps the factory alive: if the factory
// is destroyed first, the call does nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/error.hpp>

namespace weft {

/// A ClientFactory that, after a failed attempt or a lost connection, calls
/// the connector's connect() again after a growing, jittered delay (RCF-1 …
/// RCF-6). Call resetDelay() once a connection succeeds (typically from
/// buildProtocol) and stopTrying() to end the loop.
///
/// Every member runs on the clock's thread (the reactor thread).
class WEFT_EXPORT ReconnectingClientFactory : public ClientFactory {
public:
    /// A draw from a normal distribution with the given mean and standard
    /// deviation (Python's random.normalvariate).
    using RandomSource = std::function<double(double mean, double stddev)>;

    // ---- configuration (kept by configurationCopy(), RCF-7) ---------------------

    /// Upper bound of the delay, in seconds (RCF-1: 3600).
    double maxDelay = 3600;
    /// The delay before the growth of the first retry, in seconds (RCF-1: 1.0).
    double initialDelay = 1.0;
    /// Each retry multiplies the delay by this (RCF-1: e).
    double factor = 2.718281828459045;
    /// Relative standard deviation of the random jitter; 0 disables it (RCF-1).
    double jitter = 0.119626565582;
    /// Give up after this many retries; empty (the default): never (RCF-1).
    std::optional<int> maxRetries;
    /// Where the jitter comes from: empty (the default) draws from this
    /// factory's own std::mt19937_64 (seeded from std::random_device; see
    /// seed()). Better than Twisted: injectable (RCF-3).
    RandomSource normalvariate;

    // ---- run state (reset by configurationCopy(), RCF-7) ------------------------

    /// The current delay, in seconds; the next retry grows it (RCF-3).
    double delay = initialDelay;
    /// Retries made since construction or the last resetDelay() (RCF-3).
    int retries = 0;
    /// False after stopTrying() (RCF-5); resetDelay() sets it again (RCF-6).
    bool continueTrying = true;
    /// The connector given to the last clientConnectionFailed() or
    /// clientConnectionLost(), held weakly (see the file comment) (RCF-2).
    std::weak_ptr<IConnector> connector;
    /// The clock retries are scheduled on. Null (the default) means: the
    /// connector's clock() — a reactor's connectors answer their reactor, a
    /// MemoryReactorClock's its clock — or, when it answers null, the fallback
    /// clock given to the constructor (RCF-1). Not owned; it must outlive any
    /// pending retry.
    IReactorTime* clock = nullptr;

    /// `fallbackClock` is used when `clock` is unset and the connector knows
    /// no clock (IConnector::clock() is null, as for a testing::FakeConnector
    /// made by hand). Not owned.
    explicit ReconnectingClientFactory(IReactorTime* fallbackClock = nullptr);
    /// Cancels a pending retry.
    ~ReconnectingClientFactory() override;

    /// Remembers `connector` and retry()s while continueTrying (RCF-2).
    void clientConnectionFailed(const std::shared_ptr<IConnector>& connector, const Failure& reason) override;
    /// Remembers `connector` and retry()s while continueTrying (RCF-2).
    void clientConnectionLost(const std::shared_ptr<IConnector>& connector, const Failure& reason) override;

    /// Schedules connector->connect() (RCF-3, RCF-4). After stopTrying() it
    /// only logs "Abandoning …" and returns. Otherwise it uses `connector`, or
    /// the remembered one, and throws std::logic_error("no connector to retry")
    /// when there is neither; increments `retries` and, past maxRetries, logs
    /// and gives up; else grows `delay` to min(delay × factor, maxDelay),
    /// replaces it by a normal draw (mean delay, deviation delay × jitter) when
    /// jitter ≠ 0, clamps the result to [0, maxDelay] (Better than Twisted),
    /// keeps it as `delay` and schedules the connect after it. Throws
    /// std::logic_error, changing nothing, when no clock can be found (see
    /// `clock`).
    void retry(std::shared_ptr<IConnector> connector = nullptr);

    /// Cancels a pending retry, clears continueTrying and calls the remembered
    /// connector's stopConnecting(), ignoring error::NotConnectingError (RCF-5).
    /// continueTrying is cleared first, so a failure that stopConnecting()
    /// reports synchronously does not retry.
    void stopTrying();

    /// delay = initialDelay, retries = 0, continueTrying = true, and the
    /// pending retry is forgotten — not cancelled: it still runs (RCF-6).
    void resetDelay();

    /// Seeds the built-in random source, for repeatable jitter.
    void seed(std::uint64_t value) { engine_.seed(value); }

    /// The pending retry, if one is scheduled (Twisted `_callID`).
    const std::optional<DelayedCall>& callID() const noexcept { return callID_; }

    /// The analogue of Twisted's pickling (RCF-7): a new factory with this
    /// one's configuration — maxDelay, initialDelay, factor, jitter,
    /// maxRetries, normalvariate, the fallback clock, `protocol` and `noisy` —
    /// and fresh run state: no connector, retries 0, delay = initialDelay,
    /// continueTrying, no pending call, `clock` unset, numPorts 0, and its own
    /// freshly seeded random engine. Subclasses override it to copy their own
    /// configuration too (use copyConfigurationFrom()).
    virtual std::shared_ptr<ReconnectingClientFactory> configurationCopy() const;

protected:
    /// For a freshly constructed factory: copies `other`'s configuration (the
    /// list in configurationCopy()) and sets delay = initialDelay.
    void copyConfigurationFrom(const ReconnectingClientFactory& other);

private:
    IReactorTime* resolveClock(const std::shared_ptr<IConnector>& connector) const;
    double draw(double mean, double stddev);

    IReactorTime* fallbackClock_;
    std::optional<DelayedCall> callID_;
    std::mt19937_64 engine_;
    /// Expires with the factory; a pending retry checks it before touching `this`.
    std::shared_ptr<char> alive_;
};

}  // namespace weft
