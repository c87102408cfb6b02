#include <weft/internet/loopback.hpp>

#include <unistd.h>

#include <atomic>
#include <string>
#include <stdexcept>
#include <utility>

#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/unix.hpp>

#include "sys/syscalls.hpp"

namespace weft::loopback {

namespace {

void resumeProducer(IProducer& p) {
    if (auto* push = dynamic_cast<IPushProducer*>(&p)) push->resumeProducing();
    else if (auto* pull = dynamic_cast<IPullProducer*>(&p)) pull->resumeProducing();
}

std::vector<std::byte> toVector(Bytes b) { return {b.begin(), b.end()}; }

}  // namespace

// ---- LoopbackQueue and pump policies --------------------------------------------

LoopbackQueue::Item LoopbackQueue::get() {
    if (items_.empty()) throw std::out_of_range("LoopbackQueue::get: the queue is empty");
    Item item = std::move(items_.front());
    items_.pop_front();
    if (item) bytes_ -= item->size();
    return item;
}

void LoopbackQueue::put(Item item) {
    if (item) bytes_ += item->size();
    items_.push_back(std::move(item));
    if (onPut_) onPut_();
}

void identityPumpPolicy(LoopbackQueue& queue, Protocol& target) {
    while (queue) {
        auto chunk = queue.get();
        if (!chunk) break;
        target.dataReceived(*chunk);
    }
}

void collapsingPumpPolicy(LoopbackQueue& queue, Protocol& target) {
    std::vector<std::byte> joined;
    bool any = false;
    while (queue) {
        auto chunk = queue.get();
        if (!chunk) break;
        joined.insert(joined.end(), chunk->begin(), chunk->end());
        any = true;
    }
    if (any && !joined.empty()) target.dataReceived(joined);
}

// ---- the pump (Twisted _loopbackAsyncBody) -------------------------------------

namespace detail {

struct Session : std::enable_shared_from_this<Session> {
    Session(IReactorTime& c, PumpPolicy p) : clock(c), policy(std::move(p)) {}

    IReactorTime& clock;
    PumpPolicy policy;
    std::shared_ptr<Protocol> protocols[2];          // 0 = server, 1 = client; owned until the end
    std::weak_ptr<LoopbackTransport> transports[2];  // the protocols own their transports
    LoopbackQueue out[2];                            // out[0]: server → client
    Deferred<void> done;
    bool waiting = false;   // idle: the next put() schedules a pass
    bool finished = false;  // connection over (or pumping failed)

    void armNotifications() {
        for (auto& q : out)
            q.onPut_ = [w = weak_from_this()] {
                if (auto s = w.lock()) s->notify();
            };
    }

    void notify() {
        if (!waiting || finished) return;
        waiting = false;
        // Not synchronously: no real transport re-enters dataReceived from write().
        clock.callLater(0, [self = shared_from_this()] { self->bodyGuarded(); });
    }

    // Delivers side `from`'s output to the other protocol; true if anything was queued.
    bool pump(int from) {
        LoopbackQueue& q = out[from];
        if (!q) return false;
        auto target = protocols[1 - from];  // keep it alive across the policy call
        policy(q, *target);
        if (!q)
            if (auto t = transports[from].lock()) t->pollProducer();
        return true;
    }

    void bodyGuarded() {
        try {
            body();
        } catch (...) {
            fail(Failure::current());
        }
    }

    void body() {
        while (!finished) {
            bool serverSent = pump(0);
            bool clientSent = pump(1);
            if (!serverSent && !clientSent) {
                waiting = true;
                return;
            }
            bool disconnect = false;
            if (out[0].disconnect) {
                disconnect = true;
                pump(0);
            } else if (out[1].disconnect) {
                disconnect = true;
                pump(1);
            }
            if (disconnect) {
                finish();
                return;
            }
        }
    }

    void finish() {
        finished = true;
        Failure reason(error::ConnectionDone{});
        auto server = std::move(protocols[0]);
        auto client = std::move(protocols[1]);
        // Both sides hear of the end, server first, even if the first one's
        // connectionLost throws; the Deferred then fails with the first error.
        std::optional<Failure> failed;
        for (int side : {0, 1}) {
            try {
                endSide(side, side == 0 ? *server : *client, reason);
            } catch (...) {
                if (!failed) failed = Failure::current();
            }
        }
        release();
        if (failed) done.errback(*failed);
        else done.callback();
    }

    void endSide(int side, Protocol& p, const Failure& reason) {
        if (auto t = transports[side].lock()) {
            if (auto producer = std::move(t->producer_)) {
                t->paused_ = false;
                producer->stopProducing();  // FD-30: before the protocol hears of it
            }
        }
        p.connectionLost(reason);
    }

    void fail(const Failure& f) {
        if (finished) return;
        finished = true;
        release();
        done.errback(f);
    }

    void release() {
        for (auto& p : protocols) p.reset();
        for (auto& q : out) q.onPut_ = nullptr;
    }
};

}  // namespace detail

// ---- LoopbackTransport ----------------------------------------------------------------

LoopbackTransport::LoopbackTransport(std::shared_ptr<detail::Session> session, int side)
    : session_(std::move(session)), side_(side) {}

bool LoopbackTransport::connected() const noexcept { return !session_->finished; }

void LoopbackTransport::write(Bytes data) {
    if (disconnecting_ || session_->finished) return;
    session_->out[side_].put(toVector(data));
    maybePause();
}

void LoopbackTransport::writeSequence(std::span<const Bytes> chunks) {
    if (disconnecting_ || session_->finished) return;
    std::vector<std::byte> joined;
    for (Bytes c : chunks) joined.insert(joined.end(), c.begin(), c.end());
    session_->out[side_].put(std::move(joined));
    maybePause();
}

void LoopbackTransport::loseConnection() {
    if (disconnecting_ || session_->finished) return;
    disconnecting_ = true;
    auto& q = session_->out[side_];
    q.disconnect = true;
    q.put(std::nullopt);
}

void LoopbackTransport::registerProducer(std::shared_ptr<IProducer> producer, bool streaming) {
    if (!producer) throw std::invalid_argument("registerProducer: null producer");
    checkProducerKind(*producer, streaming);
    if (producer_)
        throw std::runtime_error("Cannot register producer " + className(*producer) + ": producer " +
                                 className(*producer_) + " is already registered");
    if (session_->finished) {  // FD-22: a finished transport stops it at once
        producer->stopProducing();
        return;
    }
    producer_ = std::move(producer);
    streaming_ = streaming;
    paused_ = false;
    if (!streaming_) pollProducer();
}

void LoopbackTransport::unregisterProducer() {
    producer_.reset();
    paused_ = false;
}

void LoopbackTransport::pollProducer() {
    if (!producer_) return;
    auto keep = producer_;  // it may unregister itself while producing
    if (!streaming_) {
        resumeProducer(*keep);
    } else if (paused_) {
        paused_ = false;
        resumeProducer(*keep);
    }
}

void LoopbackTransport::maybePause() {
    if (!producer_ || !streaming_ || paused_) return;
    if (session_->out[side_].pendingBytes() <= bufferSize) return;
    paused_ = true;
    auto keep = producer_;
    if (auto* push = dynamic_cast<IPushProducer*>(keep.get())) push->pauseProducing();
}

// ---- loopbackAsync ----------------------------------------------------------------------

Deferred<void> loopbackAsync(std::shared_ptr<Protocol> server, std::shared_ptr<Protocol> client, IReactorTime& clock,
                             PumpPolicy pumpPolicy, std::size_t bufferSize) {
    if (!server || !client) throw std::invalid_argument("loopbackAsync: server and client must not be null");
    if (!pumpPolicy) throw std::invalid_argument("loopbackAsync: empty pump policy");
    auto session = std::make_shared<detail::Session>(clock, std::move(pumpPolicy));
    session->armNotifications();
    session->protocols[0] = server;
    session->protocols[1] = client;
    auto serverTransport = std::make_shared<LoopbackTransport>(session, 0);
    auto clientTransport = std::make_shared<LoopbackTransport>(session, 1);
    serverTransport->bufferSize = bufferSize;
    clientTransport->bufferSize = bufferSize;
    session->transports[0] = serverTransport;
    session->transports[1] = clientTransport;
    Deferred<void> d = session->done;
    try {
        server->makeConnection(std::move(serverTransport));
        client->makeConnection(std::move(clientTransport));
    } catch (...) {
        // The error reaches the caller, as Twisted's does; the session (which
        // holds both protocols, whose transports hold it) lets go of them.
        session->finished = true;
        session->release();
        throw;
    }
    session->bodyGuarded();
    return d;
}

// ---- loopbackTCP (Twisted loopbackTCP, _FireOnClose, LoopbackClientFactory) ----------------

namespace {

// What the two sides and the port report to; fires `done` once all three are over.
struct TCPSession : std::enable_shared_from_this<TCPSession> {
    Deferred<void> done;
    std::shared_ptr<IListeningPort> port;  // until it is stopped
    bool serverLost = false;
    bool clientLost = false;
    bool stopping = false;

    void sideLost() {
        if (serverLost && clientLost) stop(std::nullopt);
    }

    // Stops the port (once), then fires `done`: with `failure` if one is
    // given, else with what stopListening() delivered.
    void stop(std::optional<Failure> failure) {
        if (stopping) return;
        stopping = true;
        auto p = std::move(port);  // the port holds the server factory: no cycle past here
        p->stopListening().addBoth([self = shared_from_this(), failure = std::move(failure)](Result<void> r) {
            if (failure) self->done.errback(*failure);
            else if (!r.ok()) self->done.errback(r.failure());
            else self->done.callback();
        });
    }
};

// Forwards every callback to the server protocol and reports its loss
// (Twisted _FireOnClose). The server sees the real transport.
class ServerSide : public Protocol {
public:
    ServerSide(std::shared_ptr<Protocol> wrapped, std::shared_ptr<TCPSession> session)
        : wrapped_(std::move(wrapped)), session_(std::move(session)) {}

    void connectionMade() override { wrapped_->makeConnection(transport); }
    void dataReceived(Bytes data) override { wrapped_->dataReceived(data); }
    void connectionLost(const Failure& reason) override {
        auto session = std::move(session_);
        if (!session) return;
        try {
            wrapped_->connectionLost(reason);
        } catch (...) {
            session->serverLost = true;  // the reactor logs it; the pair is over all the same
            session->sideLost();
            throw;
        }
        session->serverLost = true;
        session->sideLost();
    }
    std::string logPrefix() const override { return wrapped_->logPrefix(); }

protected:
    std::shared_ptr<Protocol> wrapped_;
    std::shared_ptr<TCPSession> session_;
};

// The same for a server that hears each half close on its own.
class HalfCloseableServerSide final : public ServerSide, public IHalfCloseableProtocol {
public:
    using ServerSide::ServerSide;
    void readConnectionLost() override { dynamic_cast<IHalfCloseableProtocol&>(*wrapped_).readConnectionLost(); }
    void writeConnectionLost() override { dynamic_cast<IHalfCloseableProtocol&>(*wrapped_).writeConnectionLost(); }
};

// Hands out its one protocol to the first connection and refuses the others.
class OnceServerFactory final : public ServerFactory {
public:
    explicit OnceServerFactory(std::shared_ptr<Protocol> p) : protocol_(std::move(p)) {}
    std::shared_ptr<Protocol> buildProtocol(const Address&) override { return std::exchange(protocol_, nullptr); }

private:
    std::shared_ptr<Protocol> protocol_;
};

// Hands out the client protocol and reports the end of the connection
// (Twisted LoopbackClientFactory).
class LoopbackClientFactory final : public ClientFactory {
public:
    LoopbackClientFactory(std::shared_ptr<Protocol> p, std::shared_ptr<TCPSession> session)
        : protocol_(std::move(p)), session_(std::move(session)) {}
    std::shared_ptr<Protocol> buildProtocol(const Address&) override { return std::exchange(protocol_, nullptr); }
    void clientConnectionLost(const std::shared_ptr<IConnector>&, const Failure&) override {
        if (auto session = std::move(session_)) {
            session->clientLost = true;
            session->sideLost();
        }
    }
    void clientConnectionFailed(const std::shared_ptr<IConnector>&, const Failure& reason) override {
        protocol_.reset();
        if (auto session = std::move(session_)) session->stop(reason);
    }

private:
    std::shared_ptr<Protocol> protocol_;
    std::shared_ptr<TCPSession> session_;
};

std::uint16_t portOf(const Address& a) {
    if (auto* v4 = std::get_if<IPv4Address>(&a)) return v4->port;
    if (auto* v6 = std::get_if<IPv6Address>(&a)) return v6->port;
    return 0;
}

}  // namespace

namespace {
// The pair over any stream transport: `listen` returns the port for a
// factory, `connect` starts the client once the port is listening.
template <class Listen, class Connect>
Deferred<void> loopbackOver(const char* what, std::shared_ptr<Protocol> server, std::shared_ptr<Protocol> client,
                            Listen&& listen, Connect&& connect) {
    if (!server || !client) throw std::invalid_argument(std::string(what) + ": server and client must not be null");
    auto session = std::make_shared<TCPSession>();
    std::shared_ptr<Protocol> side;
    if (dynamic_cast<IHalfCloseableProtocol*>(server.get()))
        side = std::make_shared<HalfCloseableServerSide>(std::move(server), session);
    else side = std::make_shared<ServerSide>(std::move(server), session);
    session->port = listen(std::make_shared<OnceServerFactory>(std::move(side)));
    Deferred<void> d = session->done;
    try {
        connect(session->port->getHost(), std::make_shared<LoopbackClientFactory>(std::move(client), session));
    } catch (...) {
        auto p = std::move(session->port);  // nothing will connect: do not leave the port listening
        p->stopListening();
        throw;
    }
    return d;
}
}  // namespace

Deferred<void> loopbackTCP(Reactor& reactor, std::shared_ptr<Protocol> server, std::shared_ptr<Protocol> client,
                           std::uint16_t port) {
    return loopbackOver(
        "loopbackTCP", std::move(server), std::move(client),
        [&](std::shared_ptr<Factory> f) { return reactor.listenTCP(port, std::move(f), 50, "127.0.0.1"); },
        [&](const Address& host, std::shared_ptr<ClientFactory> f) {
            reactor.connectTCP("127.0.0.1", portOf(host), std::move(f));
        });
}

Deferred<void> loopbackUNIX(Reactor& reactor, std::shared_ptr<Protocol> server, std::shared_ptr<Protocol> client,
                            std::string path) {
    if (path.empty()) {
        // A fresh abstract-namespace name: nothing is left in the filesystem.
        static std::atomic<unsigned> counter{0};
        path = std::string(1, '\0') + "weft-loopback-" + std::to_string(sys::ops.getpid()) + "-" +
               std::to_string(++counter);
    }
    return loopbackOver(
        "loopbackUNIX", std::move(server), std::move(client),
        [&](std::shared_ptr<Factory> f) { return reactor.listenUNIX(path, std::move(f)); },
        [&](const Address&, std::shared_ptr<ClientFactory> f) { reactor.connectUNIX(path, std::move(f)); });
}

// ---- LoopbackRelay --------------------------------------------------------------------------

LoopbackRelay::LoopbackRelay(std::shared_ptr<Protocol> target)
    : target_(target), targetName_(target ? className(*target) : "None") {}

void LoopbackRelay::write(Bytes data) { buffer_.append(reinterpret_cast<const char*>(data.data()), data.size()); }

void LoopbackRelay::writeSequence(std::span<const Bytes> chunks) {
    for (Bytes c : chunks) write(c);
}

void LoopbackRelay::clearBuffer() {
    if (lose_ == Lose::done) return;
    if (producer_) {
        auto keep = producer_;
        resumeProducer(*keep);
    }
    auto target = target_.lock();
    if (!target) return;
    if (!buffer_.empty()) {
        std::string data = std::move(buffer_);
        buffer_.clear();
        target->dataReceived(asBytes(data));
    }
    if (lose_ == Lose::pending) {
        lose_ = Lose::done;
        target->connectionLost(Failure(error::ConnectionDone{}));
    }
}

void LoopbackRelay::loseConnection() {
    if (lose_ != Lose::done) lose_ = Lose::pending;
}

void LoopbackRelay::registerProducer(std::shared_ptr<IProducer> producer, bool) {
    if (producer_) throw std::runtime_error("LoopbackRelay: a producer is already registered");
    producer_ = std::move(producer);
}

std::string LoopbackRelay::logPrefix() const { return "Loopback('" + targetName_ + "')"; }

}  // namespace weft::loopback
