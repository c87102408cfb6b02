// Wrapping policies (twisted.protocols.policies). See weft/protocols/policies.hpp.
#include <weft/protocols/policies.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include <weft/internet/abstract.hpp>
#include <weft/log.hpp>

namespace weft::policies {

namespace {
// A timeout's period: seconds, 0 or more, or none. Refused before anything
// changes: a NaN kept as the period made every later resetTimeout() throw.
void checkPeriod(std::optional<double> period) {
    if (period && (std::isnan(*period) || *period < 0))
        throw std::invalid_argument(
            fmt::format("setTimeout: the period must be a number of seconds >= 0, not {}", *period));
}

// "<wrapped's prefix> (<wrapper's class name>)" (POL-3's _wrappedLogPrefix).
template <class Wrapper, class Wrapped>
std::string wrappedLogPrefix(const Wrapper& wrapper, const Wrapped& wrapped) {
    return FileDescriptor::getLogPrefix(wrapped) + " (" + className(wrapper) + ")";
}

// A DelayedCall that may have run or been cancelled elsewhere: cancel it if it
// is still pending, and forget it either way.
void cancelQuietly(DelayedCall& call) noexcept {
    if (call && call.active()) {
        try {
            call.cancel();
        } catch (...) {  // active() said it could not throw
        }
    }
    call = DelayedCall();
}

}  // namespace

// ---- ProtocolWrapper --------------------------------------------------------------------

ProtocolWrapper::ProtocolWrapper(std::shared_ptr<Factory> owner, ProtocolRegistry* registry,
                                 std::shared_ptr<Protocol> wrapped)
    : wrappedProtocol(std::move(wrapped)), registry_(registry) {
    if (!wrappedProtocol) throw std::invalid_argument("ProtocolWrapper: null protocol to wrap");
    factory = std::move(owner);
}

ProtocolWrapper::~ProtocolWrapper() { leaveRegistry(); }

void ProtocolWrapper::leaveRegistry() noexcept {
    if (!registered_) return;
    registered_ = false;
    try {
        registry_->unregisterProtocol(*this);
    } catch (...) {
        log::failure(logPrefix(), "Unhandled error in unregisterProtocol", Failure::current());
    }
}

std::shared_ptr<ITransport> ProtocolWrapper::asSharedTransport() {
    return std::shared_ptr<ITransport>(shared_from_this(), static_cast<ITransport*>(this));
}

void ProtocolWrapper::makeConnection(std::shared_ptr<ITransport> t) {
    Protocol::makeConnection(std::move(t));
    registered_ = true;
    registry_->registerProtocol(*this);
    if (auto wrapped = wrappedProtocol) wrapped->makeConnection(asSharedTransport());
}

void ProtocolWrapper::attachBeneath(std::shared_ptr<ITransport> t) {
    Protocol::makeConnection(std::move(t));
    registered_ = true;
    registry_->registerProtocol(*this);
}

void ProtocolWrapper::dataReceived(Bytes data) {
    if (auto wrapped = wrappedProtocol) wrapped->dataReceived(data);
}

void ProtocolWrapper::connectionLost(const Failure& reason) {
    leaveRegistry();
    auto wrapped = std::move(wrappedProtocol);  // POL-2: the cycle with the wrapped protocol ends here
    // The factory goes too, once this returns: the wrapped protocol keeps this
    // wrapper as its transport, and a factory that (through its own state)
    // holds that protocol would otherwise never be freed. A plain transport
    // holds no factory either.
    auto done = std::move(factory);
    if (wrapped) wrapped->connectionLost(reason);
}

void ProtocolWrapper::readConnectionLost() {
    auto wrapped = wrappedProtocol;
    if (!wrapped) return;
    if (auto* hc = dynamic_cast<IHalfCloseableProtocol*>(wrapped.get())) {
        hc->readConnectionLost();
        return;
    }
    // What a transport does for a protocol that is not half-closeable (TCP-27):
    // flush what is queued, then end the connection, whatever producer is registered.
    if (transport && transport->isConnected()) transport->loseConnectionDespiteProducer();
}

void ProtocolWrapper::writeConnectionLost() {
    auto wrapped = wrappedProtocol;
    if (auto* hc = dynamic_cast<IHalfCloseableProtocol*>(wrapped.get())) hc->writeConnectionLost();
}

std::string ProtocolWrapper::logPrefix() const {
    if (!wrappedProtocol) return className(*this);
    return wrappedLogPrefix(*this, *wrappedProtocol);
}

void ProtocolWrapper::write(Bytes data) {
    if (transport) transport->write(data);
}

void ProtocolWrapper::writeSequence(std::span<const Bytes> chunks) {
    if (transport) transport->writeSequence(chunks);
}

void ProtocolWrapper::loseConnection() {
    disconnecting_ = true;
    if (transport) transport->loseConnection();
}

void ProtocolWrapper::loseConnectionDespiteProducer() {
    disconnecting_ = true;
    if (transport) transport->loseConnectionDespiteProducer();
}

Address ProtocolWrapper::getPeer() const { return transport ? transport->getPeer() : Address(NoAddress()); }

Address ProtocolWrapper::getHost() const { return transport ? transport->getHost() : Address(NoAddress()); }

bool ProtocolWrapper::isConnected() const noexcept { return transport && transport->isConnected(); }

std::size_t ProtocolWrapper::pendingBytes() const noexcept { return transport ? transport->pendingBytes() : 0; }

bool ProtocolWrapper::isDisconnecting() const noexcept {
    return disconnecting_ || (transport && transport->isDisconnecting());
}

IConsumer* ProtocolWrapper::asConsumer() noexcept { return transport && transport->asConsumer() ? this : nullptr; }

IPushProducer* ProtocolWrapper::asInputProducer() noexcept {
    return transport && transport->asInputProducer() ? this : nullptr;
}

void ProtocolWrapper::registerProducer(std::shared_ptr<IProducer> producer, bool streaming) {
    IConsumer* consumer = transport ? transport->asConsumer() : nullptr;
    if (!consumer) throw std::logic_error(logPrefix() + ": the transport takes no producer");
    consumer->registerProducer(std::move(producer), streaming);
}

void ProtocolWrapper::unregisterProducer() {
    if (IConsumer* consumer = transport ? transport->asConsumer() : nullptr) consumer->unregisterProducer();
}

void ProtocolWrapper::stopConsuming() {
    unregisterProducer();
    loseConnection();
}

void ProtocolWrapper::pauseProducing() {
    if (IPushProducer* p = transport ? transport->asInputProducer() : nullptr) p->pauseProducing();
}

void ProtocolWrapper::resumeProducing() {
    if (IPushProducer* p = transport ? transport->asInputProducer() : nullptr) p->resumeProducing();
}

void ProtocolWrapper::stopProducing() {
    if (IPushProducer* p = transport ? transport->asInputProducer() : nullptr) p->stopProducing();
}

void ProtocolWrapper::loseWriteConnection() {
    auto* hc = dynamic_cast<IHalfCloseableTransport*>(transport.get());
    if (!hc) throw std::logic_error(logPrefix() + ": the transport cannot close its write half alone");
    hc->loseWriteConnection();
}

// ---- WrappingFactory ----------------------------------------------------------------------

WrappingFactory::WrappingFactory(std::shared_ptr<Factory> wrapped) : wrappedFactory(std::move(wrapped)) {
    if (!wrappedFactory) throw std::invalid_argument("WrappingFactory: null factory to wrap");
}

void WrappingFactory::doStart() {
    wrappedFactory->doStart();
    ClientFactory::doStart();
}

void WrappingFactory::doStop() {
    wrappedFactory->doStop();
    ClientFactory::doStop();
}

void WrappingFactory::startedConnecting(const std::shared_ptr<IConnector>& connector) {
    if (auto* client = dynamic_cast<ClientFactory*>(wrappedFactory.get())) client->startedConnecting(connector);
}

void WrappingFactory::clientConnectionFailed(const std::shared_ptr<IConnector>& connector, const Failure& reason) {
    if (auto* client = dynamic_cast<ClientFactory*>(wrappedFactory.get()))
        client->clientConnectionFailed(connector, reason);
}

void WrappingFactory::clientConnectionLost(const std::shared_ptr<IConnector>& connector, const Failure& reason) {
    if (auto* client = dynamic_cast<ClientFactory*>(wrappedFactory.get()))
        client->clientConnectionLost(connector, reason);
}

std::shared_ptr<Protocol> WrappingFactory::buildProtocol(const Address& addr) {
    auto built = wrappedFactory->buildProtocol(addr);
    if (!built) return nullptr;  // POL-3, Better than Twisted: the connection is refused
    return wrapProtocol(std::move(built));
}

std::shared_ptr<ProtocolWrapper> WrappingFactory::wrapProtocol(std::shared_ptr<Protocol> wrapped) {
    return std::make_shared<ProtocolWrapper>(std::static_pointer_cast<WrappingFactory>(shared_from_this()),
                                             std::move(wrapped));
}

std::string WrappingFactory::logPrefix() const { return wrappedLogPrefix(*this, *wrappedFactory); }

void WrappingFactory::registerProtocol(ProtocolWrapper& p) { protocols_.push_back(&p); }

void WrappingFactory::unregisterProtocol(ProtocolWrapper& p) {
    auto it = std::find(protocols_.begin(), protocols_.end(), &p);
    if (it != protocols_.end()) protocols_.erase(it);
}

std::vector<std::shared_ptr<ProtocolWrapper>> WrappingFactory::liveProtocols() const {
    std::vector<std::shared_ptr<ProtocolWrapper>> out;
    out.reserve(protocols_.size());
    for (ProtocolWrapper* p : protocols_)
        if (auto held = p->weak_from_this().lock())  // not one being destroyed
            out.push_back(std::static_pointer_cast<ProtocolWrapper>(std::static_pointer_cast<Protocol>(held)));
    return out;
}

// ---- ThrottlingFactory --------------------------------------------------------------------

ThrottlingProtocol::ThrottlingProtocol(std::shared_ptr<ThrottlingFactory> owner, std::shared_ptr<Protocol> wrapped)
    : ProtocolWrapper(owner, std::move(wrapped)), throttler_(*owner) {}

void ThrottlingProtocol::write(Bytes data) {
    if (!wrappedProtocol) return ProtocolWrapper::write(data);  // lost: the factory is gone
    throttler_.registerWritten(data.size());
    ProtocolWrapper::write(data);
}

void ThrottlingProtocol::writeSequence(std::span<const Bytes> chunks) {
    if (!wrappedProtocol) return ProtocolWrapper::writeSequence(chunks);
    std::size_t n = 0;
    for (Bytes c : chunks) n += c.size();
    throttler_.registerWritten(n);
    ProtocolWrapper::writeSequence(chunks);
}

void ThrottlingProtocol::dataReceived(Bytes data) {
    if (!wrappedProtocol) return;
    throttler_.registerRead(data.size());
    ProtocolWrapper::dataReceived(data);
}

void ThrottlingProtocol::registerProducer(std::shared_ptr<IProducer> producer, bool streaming) {
    ProtocolWrapper::registerProducer(producer, streaming);
    producer_ = std::move(producer);
}

void ThrottlingProtocol::unregisterProducer() {
    producer_.reset();
    ProtocolWrapper::unregisterProducer();
}

void ThrottlingProtocol::throttleReads() { ProtocolWrapper::pauseProducing(); }

void ThrottlingProtocol::unthrottleReads() { ProtocolWrapper::resumeProducing(); }

void ThrottlingProtocol::throttleWrites() {
    if (auto producer = producer_)
        if (IPushProducer* push = producer->asPushProducer()) push->pauseProducing();
}

void ThrottlingProtocol::unthrottleWrites() {
    if (auto producer = producer_)
        if (IPushProducer* push = producer->asPushProducer()) push->resumeProducing();
}

ThrottlingFactory::ThrottlingFactory(std::shared_ptr<Factory> wrapped, IReactorTime& clock, std::size_t maxConnections,
                                     std::optional<std::uint64_t> readBytesPerSecond,
                                     std::optional<std::uint64_t> writeBytesPerSecond)
    : WrappingFactory(std::move(wrapped)), maxConnectionCount(maxConnections), readLimit(readBytesPerSecond),
      writeLimit(writeBytesPerSecond), clock_(clock) {
    if ((readLimit && *readLimit == 0) || (writeLimit && *writeLimit == 0))
        throw std::invalid_argument("ThrottlingFactory: a bandwidth limit must be at least 1 byte per second");
}

ThrottlingFactory::~ThrottlingFactory() { cancelTimers(); }

std::shared_ptr<ProtocolWrapper> ThrottlingFactory::wrapProtocol(std::shared_ptr<Protocol> wrapped) {
    return std::make_shared<ThrottlingProtocol>(std::static_pointer_cast<ThrottlingFactory>(shared_from_this()),
                                                std::move(wrapped));
}

std::shared_ptr<Protocol> ThrottlingFactory::buildProtocol(const Address& addr) {
    if (connectionCount_ >= maxConnectionCount) {
        log::info(logPrefix(), "Max connection count reached!");
        return nullptr;
    }
    auto built = WrappingFactory::buildProtocol(addr);
    if (!built) return nullptr;
    if (connectionCount_++ == 0) {  // the first connection starts the checks (POL-5)
        if (readLimit) checkReadBandwidth();
        if (writeLimit) checkWriteBandwidth();
    }
    return built;
}

void ThrottlingFactory::unregisterProtocol(ProtocolWrapper& p) {
    WrappingFactory::unregisterProtocol(p);
    if (connectionCount_ > 0 && --connectionCount_ == 0) cancelTimers();
}

void ThrottlingFactory::cancelTimers() noexcept {
    cancelQuietly(unthrottleReadsCall_);
    cancelQuietly(checkReadCall_);
    cancelQuietly(unthrottleWritesCall_);
    cancelQuietly(checkWriteCall_);
}

void ThrottlingFactory::checkReadBandwidth() {
    if (readLimit && readThisSecond_ > *readLimit) {
        throttleReads();
        double pause = static_cast<double>(readThisSecond_) / static_cast<double>(*readLimit) - 1.0;
        cancelQuietly(unthrottleReadsCall_);
        unthrottleReadsCall_ = clock_.callLater(pause, [this] { unthrottleReads(); });
    }
    readThisSecond_ = 0;
    checkReadCall_ = clock_.callLater(1.0, [this] { checkReadBandwidth(); });
}

void ThrottlingFactory::checkWriteBandwidth() {
    if (writeLimit && writtenThisSecond_ > *writeLimit) {
        throttleWrites();
        double pause = static_cast<double>(writtenThisSecond_) / static_cast<double>(*writeLimit) - 1.0;
        cancelQuietly(unthrottleWritesCall_);
        unthrottleWritesCall_ = clock_.callLater(pause, [this] { unthrottleWrites(); });
    }
    writtenThisSecond_ = 0;
    checkWriteCall_ = clock_.callLater(1.0, [this] { checkWriteBandwidth(); });
}

void ThrottlingFactory::throttleReads() {
    log::info(logPrefix(), "Throttling reads on {}", repr());
    for (auto& p : liveProtocols()) static_cast<ThrottlingProtocol&>(*p).throttleReads();
}

void ThrottlingFactory::unthrottleReads() {
    unthrottleReadsCall_ = DelayedCall();
    log::info(logPrefix(), "Stopped throttling reads on {}", repr());
    for (auto& p : liveProtocols()) static_cast<ThrottlingProtocol&>(*p).unthrottleReads();
}

void ThrottlingFactory::throttleWrites() {
    log::info(logPrefix(), "Throttling writes on {}", repr());
    for (auto& p : liveProtocols()) static_cast<ThrottlingProtocol&>(*p).throttleWrites();
}

void ThrottlingFactory::unthrottleWrites() {
    unthrottleWritesCall_ = DelayedCall();
    log::info(logPrefix(), "Stopped throttling writes on {}", repr());
    for (auto& p : liveProtocols()) static_cast<ThrottlingProtocol&>(*p).unthrottleWrites();
}

// ---- LimitTotalConnectionsFactory -----------------------------------------------------------

std::shared_ptr<Protocol> LimitTotalConnectionsFactory::buildProtocol(const Address&) {
    std::shared_ptr<Protocol> built;
    if (!connectionLimit || connectionCount_ < *connectionLimit) {
        if (!protocol) throw std::logic_error(logPrefix() + ": `protocol` is not set");
        built = protocol();
    } else if (overflowProtocol) {
        built = overflowProtocol();
    } else {
        return nullptr;  // at the limit: the connection is closed at once
    }
    if (!built) return nullptr;
    auto self = std::static_pointer_cast<LimitTotalConnectionsFactory>(shared_from_this());
    built->factory = self;
    auto wrapper = std::make_shared<ProtocolWrapper>(std::move(self), std::move(built));
    ++connectionCount_;
    return wrapper;
}

void LimitTotalConnectionsFactory::unregisterProtocol(ProtocolWrapper&) {
    if (connectionCount_ > 0) --connectionCount_;
}

// ---- TimeoutFactory -------------------------------------------------------------------------

TimeoutProtocol::TimeoutProtocol(std::shared_ptr<TimeoutFactory> owner, std::shared_ptr<Protocol> wrapped,
                                 std::optional<double> period)
    : ProtocolWrapper(owner, std::move(wrapped)), timeouts_(*owner) {
    setTimeout(period);
}

TimeoutProtocol::~TimeoutProtocol() { cancelTimeout(); }

void TimeoutProtocol::setTimeout(std::optional<double> period) {
    checkPeriod(period);
    cancelTimeout();
    if (!wrappedProtocol) return;  // lost: nothing to time out (and the factory is gone)
    period_ = period;
    if (period_) call_ = timeouts_.callLater(*period_, [this] { timeoutFunc(); });
}

void TimeoutProtocol::cancelTimeout() noexcept {
    period_.reset();
    cancelQuietly(call_);
}

void TimeoutProtocol::resetTimeout() {
    if (call_ && call_.active() && period_) call_.reset(*period_);
}

void TimeoutProtocol::write(Bytes data) {
    resetTimeout();
    ProtocolWrapper::write(data);
}

void TimeoutProtocol::writeSequence(std::span<const Bytes> chunks) {
    resetTimeout();
    ProtocolWrapper::writeSequence(chunks);
}

void TimeoutProtocol::dataReceived(Bytes data) {
    resetTimeout();
    ProtocolWrapper::dataReceived(data);
}

void TimeoutProtocol::connectionLost(const Failure& reason) {
    cancelTimeout();
    ProtocolWrapper::connectionLost(reason);
}

// A timeout ends the connection whatever producer the wrapped protocol registered.
void TimeoutProtocol::timeoutFunc() { loseConnectionDespiteProducer(); }

TimeoutFactory::TimeoutFactory(std::shared_ptr<Factory> wrapped, IReactorTime& clock, double period)
    : WrappingFactory(std::move(wrapped)), timeoutPeriod(period), clock_(clock) {
    if (!(period >= 0)) throw std::invalid_argument("TimeoutFactory: the period must be a number >= 0");
}

DelayedCall TimeoutFactory::callLater(double delay, Function<void()> f) {
    return clock_.callLater(delay, std::move(f));
}

std::shared_ptr<ProtocolWrapper> TimeoutFactory::wrapProtocol(std::shared_ptr<Protocol> wrapped) {
    return std::make_shared<TimeoutProtocol>(std::static_pointer_cast<TimeoutFactory>(shared_from_this()),
                                             std::move(wrapped), timeoutPeriod);
}

// ---- TimeoutMixin ---------------------------------------------------------------------------

TimeoutMixin::~TimeoutMixin() { cancelQuietly(call_); }

std::optional<double> TimeoutMixin::setTimeout(std::optional<double> period) {
    checkPeriod(period);  // before anything changes
    auto previous = timeOut_;
    timeOut_ = period;
    if (call_ && call_.active()) {
        if (!period) cancelQuietly(call_);
        else call_.reset(*period);
    } else {
        call_ = DelayedCall();  // one that ran or was cancelled elsewhere is forgotten
        if (period) call_ = callLater(*period, [this] { timedOut(); });
    }
    return previous;
}

void TimeoutMixin::resetTimeout() {
    if (call_ && call_.active() && timeOut_) call_.reset(*timeOut_);
}

void TimeoutMixin::timedOut() {
    call_ = DelayedCall();
    timeoutConnection();
}

void TimeoutMixin::timeoutConnection() {
    if (auto* protocol = dynamic_cast<BaseProtocol*>(this))
        if (auto t = protocol->transport) t->loseConnectionDespiteProducer();  // a registered producer must not hold it
}

DelayedCall TimeoutMixin::callLater(double delay, Function<void()> f) {
    if (!clock_) {
        // Twisted's countdown runs on the global reactor; a protocol's is the
        // one its connection runs on (through any wrapper's transport).
        if (auto* protocol = dynamic_cast<BaseProtocol*>(this)) {
            for (ITransport* t = protocol->transport.get(); t && !clock_; t = t->transportBelow())
                if (auto* descriptor = dynamic_cast<FileDescriptor*>(t)) clock_ = &descriptor->reactor();
        }
    }
    if (!clock_)
        throw std::logic_error(
            "TimeoutMixin: no clock to time out on (a protocol without a transport on a reactor: pass one to "
            "the constructor or setClock, or override callLater)");
    return clock_->callLater(delay, std::move(f));
}

}  // namespace weft::policies
