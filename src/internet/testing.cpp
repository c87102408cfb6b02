#include <weft/internet/testing.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include <weft/internet/abstract.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/iosim.hpp>
#include <weft/internet/loopback.hpp>

namespace weft::testing {

// ---- StringTransport ----------------------------------------------------------------

StringTransport::StringTransport(std::optional<Address> hostAddress, std::optional<Address> peerAddress, bool lenient)
    : hostAddr(std::move(hostAddress)), peerAddr(std::move(peerAddress)), lenient_(lenient) {}

void StringTransport::write(Bytes data) { io_.append(reinterpret_cast<const char*>(data.data()), data.size()); }

void StringTransport::writeSequence(std::span<const Bytes> chunks) {
    for (Bytes c : chunks) write(c);
}

void StringTransport::loseConnection() { disconnecting = true; }

void StringTransport::loseConnectionDespiteProducer() {
    disconnectingDespiteProducer = true;
    loseConnection();
}

void StringTransport::abortConnection() {
    disconnected = true;
    loseConnection();
}

Address StringTransport::getHost() const {
    if (hostAddr) return *hostAddr;
    return IPv4Address("TCP", "10.0.0.1", 12345);
}

Address StringTransport::getPeer() const {
    if (peerAddr) return *peerAddr;
    return IPv4Address("TCP", "192.168.1.1", 54321);
}

void StringTransport::registerProducer(std::shared_ptr<IProducer> p, bool streamingProducer) {
    if (producer) throw std::runtime_error("Cannot register two producers");
    producer = std::move(p);
    streaming = streamingProducer;
}

void StringTransport::unregisterProducer() {
    if (!producer) throw std::runtime_error("Cannot unregister a producer unless one is registered");
    producer.reset();
    streaming.reset();
}

void StringTransport::checkState() const {
    if (disconnecting && !lenient_) throw std::runtime_error("Cannot resume producing after loseConnection");
    if (producerState == ProducerState::stopped) throw std::runtime_error("Cannot resume a stopped producer");
}

void StringTransport::pauseProducing() {
    checkState();
    producerState = ProducerState::paused;
}

void StringTransport::resumeProducing() {
    checkState();
    producerState = ProducerState::producing;
}

void StringTransport::stopProducing() { producerState = ProducerState::stopped; }

void StringTransportWithDisconnection::disconnectWith(const Failure& reason) {
    if (!connected) return;
    auto p = protocol.lock();  // keeps the protocol alive until connectionLost returns
    if (!p) throw std::logic_error("StringTransportWithDisconnection: set `protocol` before closing");
    connected = false;
    p->connectionLost(reason);
}

void StringTransportWithDisconnection::loseConnection() { disconnectWith(Failure(error::ConnectionDone("Bye."))); }

void StringTransportWithDisconnection::abortConnection() {
    disconnected = true;
    disconnectWith(Failure(error::ConnectionAborted()));
}

// ---- AccumulatingProtocol and factories ------------------------------------------------

void AccumulatingProtocol::connectionMade() {
    made = true;
    auto* source = dynamic_cast<ProtocolConnectionMadeMixin*>(factory.get());
    if (source && source->protocolConnectionMade) {
        auto d = std::move(*source->protocolConnectionMade);
        source->protocolConnectionMade.reset();
        d.callback(std::static_pointer_cast<AccumulatingProtocol>(weak_from_this().lock()));
    }
}

void AccumulatingProtocol::dataReceived(Bytes bytes) {
    data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void AccumulatingProtocol::connectionLost(const Failure& reason) {
    closed = true;
    closedReason = reason;
    if (closedDeferred) {
        auto d = std::move(*closedDeferred);
        closedDeferred.reset();
        d.callback();
    }
}

AccumulatingServerFactory::AccumulatingServerFactory() {
    protocol = [] { return std::static_pointer_cast<Protocol>(std::make_shared<AccumulatingProtocol>()); };
}

AccumulatingClientFactory::AccumulatingClientFactory() {
    protocol = [] { return std::static_pointer_cast<Protocol>(std::make_shared<AccumulatingProtocol>()); };
}

void AccumulatingClientFactory::clientConnectionFailed(const std::shared_ptr<IConnector>&, const Failure& reason) {
    failReason = reason;
}

void AccumulatingClientFactory::clientConnectionLost(const std::shared_ptr<IConnector>&, const Failure& reason) {
    lostReason = reason;
}

// ---- NonStreamingProducer ----------------------------------------------------------------

NonStreamingProducer::NonStreamingProducer(std::shared_ptr<IConsumer> consumer) : consumer_(consumer) {}

void NonStreamingProducer::resumeProducing() {
    auto consumer = consumer_.lock();
    if (!consumer || counter >= 10) throw std::runtime_error("BUG: resume after unregister/stop.");
    consumer->write(asBytes(std::to_string(counter)));
    ++counter;
    if (counter == 10) {
        consumer->unregisterProducer();
        done();
    }
}

void NonStreamingProducer::pauseProducing() { throw std::runtime_error("BUG: pause should never be called."); }

void NonStreamingProducer::stopProducing() {
    stopped = true;
    done();
}

void NonStreamingProducer::done() {
    consumer_.reset();
    if (!result.called()) result.callback();
}

// ---- waitUntilAllDisconnected ------------------------------------------------------------

namespace {

// Which transports are still connected. nullopt: a transport type we cannot ask.
std::optional<bool> transportConnected(const ITransport* t) {
    if (!t) return false;
    if (auto* s = dynamic_cast<const StringTransport*>(t)) return s->connected;
    if (auto* l = dynamic_cast<const loopback::LoopbackTransport*>(t)) return l->connected();
    if (auto* f = dynamic_cast<const iosim::FakeTransport*>(t)) return !f->disconnected;
    if (auto* d = dynamic_cast<const FileDescriptor*>(t)) return d->connected();
    return std::nullopt;
}

struct DisconnectWaiter : std::enable_shared_from_this<DisconnectWaiter> {
    DisconnectWaiter(IReactorTime& c, std::vector<std::shared_ptr<Protocol>> p) : clock(c), protocols(std::move(p)) {}
    IReactorTime& clock;
    std::vector<std::shared_ptr<Protocol>> protocols;
    Deferred<void> done;

    void check() {
        bool any = std::any_of(protocols.begin(), protocols.end(), [](const auto& p) {
            return p && transportConnected(p->transport.get()).value_or(true);
        });
        if (!any) {
            protocols.clear();
            done.callback();
            return;
        }
        clock.callLater(0.01, [self = shared_from_this()] { self->check(); });
    }
};

}  // namespace

Deferred<void> waitUntilAllDisconnected(IReactorTime& clock, std::vector<std::shared_ptr<Protocol>> protocols) {
    for (const auto& p : protocols)
        if (p && !transportConnected(p->transport.get()))
            throw std::invalid_argument("waitUntilAllDisconnected: cannot tell whether a " + className(*p->transport) +
                                        " is connected");
    auto waiter = std::make_shared<DisconnectWaiter>(clock, std::move(protocols));
    Deferred<void> d = waiter->done;
    waiter->check();
    return d;
}

// ---- EventLoggingObserver -----------------------------------------------------------------

struct EventLoggingObserver::State {
    mutable std::mutex mu;
    std::vector<LoggedEvent> events;
    bool alive = true;
    void record(const log::Event& event);
};

EventLoggingObserver::EventLoggingObserver() : state_(std::make_shared<State>()) {}

EventLoggingObserver::~EventLoggingObserver() {
    if (token_) log::removeObserver(*token_);
    std::lock_guard lk(state_->mu);
    state_->alive = false;
}

std::unique_ptr<EventLoggingObserver> EventLoggingObserver::createWithCleanup() {
    auto obs = std::make_unique<EventLoggingObserver>();
    obs->token_ = log::addObserver(obs->observer());
    return obs;
}

void EventLoggingObserver::State::record(const log::Event& event) {
    LoggedEvent e{event.level, std::string(event.prefix), std::string(event.message),
                  event.failure ? std::optional<Failure>(*event.failure) : std::nullopt};
    std::lock_guard lk(mu);
    if (alive) events.push_back(std::move(e));
}

void EventLoggingObserver::operator()(const log::Event& event) { state_->record(event); }

log::Observer EventLoggingObserver::observer() {
    // log::emit may call an observer after removeObserver() returned (it calls a
    // copy of the list outside its lock), so the callable shares the state
    // rather than pointing at this object.
    return [state = state_](const log::Event& event) { state->record(event); };
}

std::size_t EventLoggingObserver::size() const {
    std::lock_guard lk(state_->mu);
    return state_->events.size();
}

const LoggedEvent& EventLoggingObserver::operator[](std::size_t i) const {
    std::lock_guard lk(state_->mu);
    return state_->events.at(i);
}

std::vector<LoggedEvent>::const_iterator EventLoggingObserver::begin() const { return state_->events.cbegin(); }
std::vector<LoggedEvent>::const_iterator EventLoggingObserver::end() const { return state_->events.cend(); }

// ---- MemoryReactor -------------------------------------------------------------------------

namespace {

[[noreturn]] void notSupported(const char* what) {
    throw std::logic_error(std::string(what) + " is not supported by MemoryReactor");
}

Address listenAddress(const char* type, const std::string& interface, std::uint16_t port) {
    if (isIPv6Address(interface)) return IPv6Address(type, interface, port);
    return IPv4Address(type, "0.0.0.0", port);
}

Address connectAddress(const std::string& host, std::uint16_t port) {
    if (isIPv6Address(host)) return IPv6Address("TCP", host, port);
    return IPv4Address("TCP", host, port);
}

Address adoptedAddress(const char* type, int family) {
    if (family == AF_INET) return IPv4Address(type, "0.0.0.0", 1234);
    if (family == AF_INET6) return IPv6Address(type, "::", 1234);
    throw error::UnsupportedAddressFamily(std::to_string(family));
}

}  // namespace

Deferred<void> FakePort::stopListening() { return succeed(); }

void MemoryReactor::run() {
    if (running) throw std::logic_error("MemoryReactor::run: already running");
    running = true;
    hasRun = true;
    // Index loop: a hook may add more hooks. Each runs from a copy: adding one
    // may move the vector, and with it the hook that is running.
    for (std::size_t i = 0; i < whenRunningHooks.size(); ++i) {
        auto hook = std::move(whenRunningHooks[i]);
        hook();
        if (i < whenRunningHooks.size() && !whenRunningHooks[i]) whenRunningHooks[i] = std::move(hook);
    }
    stop();
}

void MemoryReactor::stop() {
    running = false;
    hasStopped = true;
}

void MemoryReactor::crash() {
    running = false;
    hasCrashed = true;
}

void MemoryReactor::callWhenRunning(Function<void()> f) { whenRunningHooks.push_back(std::move(f)); }

TriggerId MemoryReactor::addSystemEventTrigger(const std::string& phase, const std::string& eventType,
                                               Function<void()> f) {
    triggers[phase][eventType].push_back(std::move(f));
    return TriggerId{nextTriggerId_++};
}

void MemoryReactor::removeSystemEventTrigger(TriggerId) { notSupported("removeSystemEventTrigger"); }
void MemoryReactor::fireSystemEvent(const std::string&) { notSupported("fireSystemEvent"); }
void MemoryReactor::iterate(double) { notSupported("iterate"); }
Deferred<std::string> MemoryReactor::resolve(const std::string&, double) { notSupported("resolve"); }

std::shared_ptr<FakeConnector> MemoryReactor::makeConnector(Address destination,
                                                            const std::shared_ptr<ClientFactory>& factory) {
    // A MemoryReactorClock's connectors answer it as their clock (RCF-1).
    auto conn = std::make_shared<FakeConnector>(std::move(destination), dynamic_cast<IReactorTime*>(this));
    if (factory) factory->startedConnecting(conn);
    connectors.push_back(conn);
    return conn;
}

std::shared_ptr<IListeningPort> MemoryReactor::doListenTCP(std::uint16_t port, std::shared_ptr<Factory> factory,
                                                           int backlog, const std::string& interface) {
    tcpServers.push_back({port, std::move(factory), backlog, interface});
    return std::make_shared<FakePort>(listenAddress("TCP", interface, port));
}

std::shared_ptr<IConnector> MemoryReactor::doConnectTCP(const std::string& host, std::uint16_t port,
                                                        std::shared_ptr<ClientFactory> factory, double timeout,
                                                        std::optional<BindAddress> bindAddress) {
    tcpClients.push_back({host, port, factory, timeout, std::move(bindAddress)});
    return makeConnector(connectAddress(host, port), factory);
}

std::shared_ptr<IListeningPort> MemoryReactor::listenSSL(std::uint16_t port, std::shared_ptr<Factory> factory,
                                                         std::shared_ptr<void> contextFactory, int backlog,
                                                         const std::string& interface) {
    sslServers.push_back({port, std::move(factory), std::move(contextFactory), backlog, interface});
    return std::make_shared<FakePort>(IPv4Address("TCP", "0.0.0.0", port));
}

std::shared_ptr<IConnector> MemoryReactor::connectSSL(const std::string& host, std::uint16_t port,
                                                      std::shared_ptr<ClientFactory> factory,
                                                      std::shared_ptr<void> contextFactory, double timeout,
                                                      std::optional<BindAddress> bindAddress) {
    sslClients.push_back({host, port, factory, std::move(contextFactory), timeout, std::move(bindAddress)});
    return makeConnector(IPv4Address("TCP", host, port), factory);
}

std::shared_ptr<IListeningPort> MemoryReactor::doListenUNIX(const std::string& address,
                                                            std::shared_ptr<Factory> factory, int backlog, int mode,
                                                            bool wantPID) {
    unixServers.push_back({address, std::move(factory), backlog, mode, wantPID});
    return std::make_shared<FakePort>(UNIXAddress(address));
}

std::shared_ptr<IConnector> MemoryReactor::doConnectUNIX(const std::string& address,
                                                         std::shared_ptr<ClientFactory> factory, double timeout,
                                                         bool checkPID) {
    unixClients.push_back({address, factory, timeout, checkPID});
    return makeConnector(UNIXAddress(address), factory);
}

std::shared_ptr<IListeningPort> MemoryReactor::doListenUNIXDatagram(const std::string& address,
                                                                    std::shared_ptr<DatagramProtocol> protocol,
                                                                    std::size_t maxPacketSize, int mode) {
    unixDatagramServers.push_back({address, std::move(protocol), maxPacketSize, mode});
    return std::make_shared<FakePort>(UNIXAddress(address));
}

std::shared_ptr<IListeningPort> MemoryReactor::doConnectUNIXDatagram(
    const std::string& address, std::shared_ptr<ConnectedDatagramProtocol> protocol, std::size_t maxPacketSize,
    int mode, std::optional<std::string> bindAddress) {
    Address host = UNIXAddress(bindAddress.value_or(""));
    unixDatagramClients.push_back({address, std::move(protocol), maxPacketSize, mode, std::move(bindAddress)});
    return std::make_shared<FakePort>(std::move(host));
}

std::shared_ptr<IListeningPort> MemoryReactor::doListenUDP(std::uint16_t port,
                                                           std::shared_ptr<DatagramProtocol> protocol,
                                                           const std::string& interface, std::size_t maxPacketSize) {
    udpServers.push_back({port, std::move(protocol), interface, maxPacketSize});
    return std::make_shared<FakePort>(listenAddress("UDP", interface, port));
}

std::shared_ptr<IListeningPort> MemoryReactor::doListenMulticast(std::uint16_t port,
                                                                 std::shared_ptr<DatagramProtocol> protocol,
                                                                 const std::string& interface,
                                                                 std::size_t maxPacketSize, bool listenMultiple) {
    multicastServers.push_back({port, std::move(protocol), interface, maxPacketSize, listenMultiple});
    return std::make_shared<FakePort>(listenAddress("UDP", interface, port));
}

std::shared_ptr<IListeningPort> MemoryReactor::doAdoptStreamPort(int fd, int addressFamily,
                                                                 std::shared_ptr<Factory> factory) {
    Address addr = adoptedAddress("TCP", addressFamily);
    adoptedPorts.push_back({fd, addressFamily, std::move(factory)});
    return std::make_shared<FakePort>(std::move(addr));
}

void MemoryReactor::doAdoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory) {
    adoptedStreamConnections.push_back({fd, addressFamily, std::move(factory)});
}

std::shared_ptr<IListeningPort> MemoryReactor::doAdoptDatagramPort(int fd, int addressFamily,
                                                                   std::shared_ptr<DatagramProtocol> protocol,
                                                                   std::size_t maxPacketSize) {
    Address addr = adoptedAddress("UDP", addressFamily);
    adoptedDatagramPorts.push_back({fd, addressFamily, std::move(protocol), maxPacketSize});
    return std::make_shared<FakePort>(std::move(addr));
}

void MemoryReactor::addReader(std::shared_ptr<IReadDescriptor> reader) {
    if (std::find(readers_.begin(), readers_.end(), reader) == readers_.end()) readers_.push_back(std::move(reader));
}

void MemoryReactor::addWriter(std::shared_ptr<IWriteDescriptor> writer) {
    if (std::find(writers_.begin(), writers_.end(), writer) == writers_.end()) writers_.push_back(std::move(writer));
}

void MemoryReactor::removeReader(IReadDescriptor* reader) {
    std::erase_if(readers_, [&](const auto& r) { return r.get() == reader; });
}

void MemoryReactor::removeWriter(IWriteDescriptor* writer) {
    std::erase_if(writers_, [&](const auto& w) { return w.get() == writer; });
}

std::vector<std::shared_ptr<IFileDescriptor>> MemoryReactor::removeAll() {
    std::vector<std::shared_ptr<IFileDescriptor>> out;
    auto addOnce = [&](std::shared_ptr<IFileDescriptor> d) {
        if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(std::move(d));
    };
    for (auto& r : readers_) addOnce(r);
    for (auto& w : writers_) addOnce(w);
    readers_.clear();
    writers_.clear();
    return out;
}

std::shared_ptr<IProcessTransport> MemoryReactor::doSpawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                                 const std::string& executable,
                                                                 const std::vector<std::string>& args,
                                                                 const ProcessOptions& options) {
    if (options.usePTY && options.childFDs)
        throw std::invalid_argument("spawnProcess: usePTY with childFDs is not supported (PTY-3)");
    if (!protocol) {
        bool pipes = options.usePTY || !options.childFDs;
        if (options.childFDs)
            for (const auto& [fd, what] : *options.childFDs) pipes = pipes || what.kind() != ChildFD::Kind::inherit;
        if (pipes) throw std::invalid_argument("spawnProcess: a null protocol needs childFDs without \"r\" or \"w\"");
        protocol = std::make_shared<ProcessProtocol>();  // FDMAP-6
    }
    auto pid = static_cast<pid_t>(4242 + processes.size());
    auto transport = std::make_shared<FakeProcessTransport>(protocol, pid, options);
    processes.push_back({protocol, executable, args, options, transport});
    protocol->makeProcessConnection(transport);  // PROC-1: before spawnProcess returns
    return transport;
}

// ---- FakeProcessTransport -----------------------------------------------------------------

FakeProcessTransport::FakeProcessTransport(const std::shared_ptr<ProcessProtocol>& protocol, pid_t pid,
                                           ProcessOptions options)
    : protocol_(protocol), options_(std::move(options)), pid_(pid) {
    if (options_.usePTY) {
        pipes_.emplace(1, ChildFD::Kind::parentReads);  // the terminal
        return;
    }
    const ChildFDs fds = options_.childFDs ? *options_.childFDs : ChildFDs{{0, "w"}, {1, "r"}, {2, "r"}};
    for (const auto& [fd, what] : fds)
        if (what.kind() != ChildFD::Kind::inherit) pipes_.emplace(fd, what.kind());
}

std::set<int> FakeProcessTransport::openPipes() const {
    std::set<int> out;
    for (const auto& [fd, kind] : pipes_) out.insert(fd);
    return out;
}

bool FakeProcessTransport::isOpenPipe(int fd, ChildFD::Kind kind) const {
    auto it = pipes_.find(fd);
    return it != pipes_.end() && it->second == kind;
}

std::optional<pid_t> FakeProcessTransport::pid() const noexcept {
    if (exited_) return std::nullopt;
    return pid_;
}

void FakeProcessTransport::childData(int fd, std::string_view bytes) {
    if (!isOpenPipe(fd, ChildFD::Kind::parentReads))
        throw std::logic_error(
            fmt::format("FakeProcessTransport::childData: child fd {} is no open pipe the child "
                        "writes{}",
                        fd, options_.usePTY ? " (a PTY child writes on fd 1)" : ""));
    if (auto p = protocol_.lock()) p->childDataReceived(fd, asBytes(bytes));
}

void FakeProcessTransport::closePipe(int fd) {
    if (pipes_.erase(fd) == 0)
        throw std::logic_error(fmt::format("FakeProcessTransport::closePipe: child fd {} is no open pipe", fd));
    if (!options_.usePTY)
        if (auto p = protocol_.lock()) p->childConnectionLost(fd);
    maybeEnd();
}

void FakeProcessTransport::exit(int waitStatus) {
    if (exited_) throw std::logic_error("FakeProcessTransport::exit: the child has exited already");
    exited_ = true;
    status_ = waitStatus;
    reason_ = processExitReason(waitStatus);
    if (auto p = protocol_.lock()) p->processExited(*reason_);
    maybeEnd();
}

void FakeProcessTransport::kill(int sig) {
    if (sig <= 0 || sig >= 128)
        throw std::invalid_argument(fmt::format("FakeProcessTransport::kill: {} is not a signal", sig));
    exit(sig);  // the wait status of a death by `sig`, without a core dump
}

void FakeProcessTransport::maybeEnd() {
    if (!exited_ || ended_ || !pipes_.empty()) return;
    ended_ = true;
    auto p = protocol_.lock();
    protocol_.reset();  // CB-5: nothing is called afterwards
    if (p) p->processEnded(*reason_);
}

void FakeProcessTransport::closeChildFD(int fd) {
    if (options_.usePTY)
        throw std::logic_error(
            fmt::format("closeChildFD({}): a PTY process has one terminal, not per-fd pipes (PTY-5)", fd));
    closedChildFDs.push_back(fd);
}

void FakeProcessTransport::writeToChild(int fd, Bytes data) {
    if (options_.usePTY)
        throw std::logic_error(
            fmt::format("writeToChild({}): a PTY process has one terminal; use write() (PTY-5)", fd));
    if (!isOpenPipe(fd, ChildFD::Kind::parentWrites))
        throw std::out_of_range(fmt::format("writeToChild: child fd {} is not a pipe the parent writes", fd));
    written[fd].append(reinterpret_cast<const char*>(data.data()), data.size());
}

void FakeProcessTransport::write(Bytes data) {
    // PROC-11, PROC-17: dropped without an open stdin; a PTY child's terminal takes writes while open.
    if (options_.usePTY ? pipes_.empty() : !isOpenPipe(0, ChildFD::Kind::parentWrites)) return;
    written[0].append(reinterpret_cast<const char*>(data.data()), data.size());
}

void FakeProcessTransport::writeSequence(std::span<const Bytes> chunks) {
    for (Bytes c : chunks) write(c);
}

void FakeProcessTransport::signalProcess(int sig) {
    if (exited_) throw error::ProcessExitedAlready();
    signals.push_back(sig);
}

void FakeProcessTransport::signalProcessGroup(int sig) {
    if (!options_.newProcessGroup && !options_.usePTY)
        throw std::logic_error(
            "signalProcessGroup: the child shares its parent's process group "
            "(spawn it with newProcessGroup or usePTY)");
    if (exited_) throw error::ProcessExitedAlready();
    groupSignals.push_back(sig);
}

// ---- RaisingMemoryReactor -------------------------------------------------------------------

void RaisingMemoryReactor::raise(const std::exception_ptr& e) const {
    if (!e) throw std::logic_error("RaisingMemoryReactor: no exception was given for this call");
    std::rethrow_exception(e);
}

std::shared_ptr<IListeningPort> RaisingMemoryReactor::listenSSL(std::uint16_t, std::shared_ptr<Factory>,
                                                                std::shared_ptr<void>, int, const std::string&) {
    raise(listenException_);
}
std::shared_ptr<IConnector> RaisingMemoryReactor::connectSSL(const std::string&, std::uint16_t,
                                                             std::shared_ptr<ClientFactory>, std::shared_ptr<void>,
                                                             double, std::optional<BindAddress>) {
    raise(connectException_);
}
std::shared_ptr<IListeningPort> RaisingMemoryReactor::doListenTCP(std::uint16_t, std::shared_ptr<Factory>, int,
                                                                  const std::string&) {
    raise(listenException_);
}
std::shared_ptr<IConnector> RaisingMemoryReactor::doConnectTCP(const std::string&, std::uint16_t,
                                                               std::shared_ptr<ClientFactory>, double,
                                                               std::optional<BindAddress>) {
    raise(connectException_);
}
std::shared_ptr<IListeningPort> RaisingMemoryReactor::doListenUNIX(const std::string&, std::shared_ptr<Factory>, int,
                                                                   int, bool) {
    raise(listenException_);
}
std::shared_ptr<IConnector> RaisingMemoryReactor::doConnectUNIX(const std::string&, std::shared_ptr<ClientFactory>,
                                                                double, bool) {
    raise(connectException_);
}
std::shared_ptr<IListeningPort> RaisingMemoryReactor::doListenUNIXDatagram(const std::string&,
                                                                           std::shared_ptr<DatagramProtocol>,
                                                                           std::size_t, int) {
    raise(listenException_);
}
std::shared_ptr<IListeningPort> RaisingMemoryReactor::doConnectUNIXDatagram(const std::string&,
                                                                            std::shared_ptr<ConnectedDatagramProtocol>,
                                                                            std::size_t, int,
                                                                            std::optional<std::string>) {
    raise(connectException_);
}
std::shared_ptr<IListeningPort> RaisingMemoryReactor::doListenUDP(std::uint16_t, std::shared_ptr<DatagramProtocol>,
                                                                  const std::string&, std::size_t) {
    raise(listenException_);
}
std::shared_ptr<IListeningPort> RaisingMemoryReactor::doListenMulticast(std::uint16_t,
                                                                        std::shared_ptr<DatagramProtocol>,
                                                                        const std::string&, std::size_t, bool) {
    raise(listenException_);
}
std::shared_ptr<IListeningPort> RaisingMemoryReactor::doAdoptStreamPort(int, int, std::shared_ptr<Factory>) {
    raise(listenException_);
}
void RaisingMemoryReactor::doAdoptStreamConnection(int, int, std::shared_ptr<Factory>) { raise(connectException_); }
std::shared_ptr<IListeningPort> RaisingMemoryReactor::doAdoptDatagramPort(int, int, std::shared_ptr<DatagramProtocol>,
                                                                          std::size_t) {
    raise(connectException_);
}
std::shared_ptr<IProcessTransport> RaisingMemoryReactor::doSpawnProcess(std::shared_ptr<ProcessProtocol>,
                                                                        const std::string&,
                                                                        const std::vector<std::string>&,
                                                                        const ProcessOptions&) {
    raise(connectException_);
}

}  // namespace weft::testing
