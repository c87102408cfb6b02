#include <weft/protocols/portforward.hpp>

#include <weft/log.hpp>

namespace weft::portforward {

// The transports are asked for what they offer through interfaces
// (cross-casts), so any stream transport can be forwarded.
namespace {
IPushProducer* asPushProducer(const std::shared_ptr<ITransport>& t) { return t ? t->asInputProducer() : nullptr; }
IConsumer* asConsumer(const std::shared_ptr<ITransport>& t) { return t ? t->asConsumer() : nullptr; }

// True once a side can no longer be linked: no transport, or one that is closing
// or closed (the protocol holds its transport after the loss; someone may hold it).
bool gone(const std::shared_ptr<ITransport>& t) {
    if (!t) return true;
    return !t->isConnected() || t->isDisconnecting();
}

// Shuts t's write half if it can be shut alone; false if it cannot.
bool loseWriteConnection(ITransport& t) {
    if (auto* halfCloseable = dynamic_cast<IHalfCloseableTransport*>(&t)) {
        halfCloseable->loseWriteConnection();
        return true;
    }
    return false;
}
}  // namespace

void Proxy::dataReceived(Bytes data) {
    if (peer && peer->transport) peer->transport->write(data);  // PF-3
}

void Proxy::readConnectionLost() {
    // Pass the half-close on; our own write half stays open for the answer.
    if (peer && peer->transport) {
        // A peer that cannot half-close ends whole, though it still holds our transport as its producer.
        if (!loseWriteConnection(*peer->transport)) peer->transport->loseConnectionDespiteProducer();
    } else if (transport) {
        transport->loseConnection();
    }
}

void Proxy::connectionLost(const Failure&) {
    // PF-4: the other side closes once its buffer drains. It still holds our
    // transport as its producer; let go of it first, or the close would wait.
    if (auto other = std::move(peer)) {
        if (other->transport) {
            if (auto* consumer = asConsumer(other->transport)) consumer->unregisterProducer();
            other->transport->loseConnection();
        }
        other->peer.reset();
    }
}

void ProxyClient::connectionMade() {
    if (!peer || gone(peer->transport)) {  // the client side went away meanwhile
        transport->loseConnection();
        return;
    }
    peer->setPeer(std::static_pointer_cast<Proxy>(shared_from_this()));
    // PF-2: each side throttles the other.
    auto* mine = asPushProducer(transport);
    auto* theirs = asPushProducer(peer->transport);
    if (mine && theirs) {
        asConsumer(peer->transport)->registerProducer(std::shared_ptr<IProducer>(transport, mine), true);
        asConsumer(transport)->registerProducer(std::shared_ptr<IProducer>(peer->transport, theirs), true);
    }
    if (theirs) theirs->resumeProducing();
}

void ProxyServer::connectionMade() {
    if (auto* p = asPushProducer(transport)) p->pauseProducing();  // PF-1: nothing read until linked
    auto self = std::static_pointer_cast<ProxyServer>(shared_from_this());
    auto clientFactory = std::make_shared<ProxyClientFactory>(self);
    clientFactory->noisy = false;
    if (auto* pf = dynamic_cast<ProxyFactory*>(factory.get())) pf->connectBackend(clientFactory);
    else transport->loseConnection();
}

ProxyClientFactory::ProxyClientFactory(std::shared_ptr<ProxyServer> server) : server_(server) {}

std::shared_ptr<Protocol> ProxyClientFactory::buildProtocol(const Address&) {
    auto server = server_.lock();
    if (!server || gone(server->transport)) return nullptr;
    auto client = std::make_shared<ProxyClient>();
    client->factory = shared_from_this();
    client->setPeer(server);
    return client;
}

void ProxyClientFactory::clientConnectionFailed(const std::shared_ptr<IConnector>&, const Failure& reason) {
    auto server = server_.lock();
    if (!server) return;
    if (server->factory && server->factory->noisy) {
        // Under the connection it was for (the failed attempt's own prefix,
        // the current context here, names no connection: "Uninitialized").
        const auto* context = dynamic_cast<const ILoggingContext*>(server->transport.get());
        log::info(context ? context->logPrefix() : server->logPrefix(), "Unable to connect to peer: {}",
                  reason.getErrorMessage());
    }
    if (server->transport) server->transport->loseConnection();
}

ProxyFactory::ProxyFactory(IReactorTCP& reactor, std::string host, std::uint16_t port)
    : connect_([&reactor, host = std::move(host), port](const std::shared_ptr<ProxyClientFactory>& f) {
          reactor.connectTCP(host, port, f);
      }) {}

ProxyFactory::ProxyFactory(Connect connect) : connect_(std::move(connect)) {}

std::shared_ptr<Protocol> ProxyFactory::buildProtocol(const Address&) {
    auto p = std::make_shared<ProxyServer>();
    p->factory = shared_from_this();
    return p;
}

}  // namespace weft::portforward
