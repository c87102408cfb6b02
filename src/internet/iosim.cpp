#include <weft/internet/iosim.hpp>

#include <fmt/format.h>

#include <atomic>
#include <stdexcept>
#include <utility>

#include <weft/internet/error.hpp>

namespace weft::iosim {

namespace {
std::atomic<std::uint64_t> gNextSerial{0};
}

FakeTransport::FakeTransport(std::shared_ptr<Protocol> p, bool server, std::optional<Address> host,
                             std::optional<Address> peer)
    : protocol(p), isServer(server), serial(gNextSerial.fetch_add(1)),
      disconnectReason(error::ConnectionDone("Connection done")),
      hostAddress(host ? std::move(*host) : Address(NoAddress{})),
      peerAddress(peer ? std::move(*peer) : Address(NoAddress{})) {}

void FakeTransport::write(Bytes data) {
    if (disconnecting) return;  // a closed transport accepts writes but drops them
    (tls ? tlsbuf : stream).emplace_back(data.begin(), data.end());
}

void FakeTransport::writeSequence(std::span<const Bytes> chunks) {
    if (disconnecting) return;
    std::vector<std::byte> joined;
    for (Bytes c : chunks) joined.insert(joined.end(), c.begin(), c.end());
    (tls ? tlsbuf : stream).push_back(std::move(joined));
}

void FakeTransport::startTLS(std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, bool normal) {
    if (tlsStarted_) throw std::logic_error("FakeTransport::startTLS: TLS was already started");
    if (!contextFactory) throw std::invalid_argument("FakeTransport::startTLS: null context factory");
    tlsStarted_ = true;
    tls = std::make_shared<TLSNegotiation>();
    tls->factory = std::move(contextFactory);
    tls->connectState = isServer != normal;  // the connecting side speaks first, unless !normal
    tls->readyToSend = tls->connectState;
    if (auto peer = std::exchange(early_, nullptr)) negotiationReceived(std::move(peer));
}

std::shared_ptr<TLSNegotiation> FakeTransport::takeNegotiation() {
    if (!tls || !tls->readyToSend || tls->sent || !stream.empty()) return nullptr;
    tls->sent = true;
    auto ours = tls;
    // The peer's arrived first: ours completes it there, and this side is done too.
    if (auto peer = tls->peer) completeNegotiation(*peer);
    return ours;
}

void FakeTransport::negotiationReceived(std::shared_ptr<TLSNegotiation> peer) {
    if (!tls) {  // the peer started first: keep its negotiation for our startTLS
        early_ = std::move(peer);
        return;
    }
    if (tls->sent) {
        completeNegotiation(*peer);
        return;
    }
    tls->readyToSend = true;  // our turn to answer
    tls->peer = std::move(peer);
}

void FakeTransport::completeNegotiation(const TLSNegotiation& peer) {
    auto ours = std::exchange(tls, nullptr);
    negotiated = true;
    if (auto* verifier = dynamic_cast<IIOSimVerifier*>(ours->factory.get());
        verifier && !verifier->iosimVerify(*peer.factory)) {
        disconnectReason = Failure(NativeOpenSSLError());
        loseConnection();
        return;
    }
    for (auto& chunk : tlsbuf) stream.push_back(std::move(chunk));  // what waited now leaves, unchanged
    tlsbuf.clear();
}

void FakeTransport::registerProducer(std::shared_ptr<IProducer> p, bool streaming) {
    if (producer) throw std::runtime_error("FakeTransport: a producer is already registered");
    producer = std::move(p);
    streamingProducer = streaming;
    if (!streaming) checkProducer();
}

void FakeTransport::unregisterProducer() {
    producer.reset();
    streamingProducer = false;
}

void FakeTransport::stopConsuming() {
    unregisterProducer();
    loseConnection();
}

std::string FakeTransport::str() const {
    auto p = protocol.lock();
    return fmt::format("FakeTransport<{},{},{}>", isServer ? "S" : "C", serial, p ? className(*p) : "None");
}

std::optional<std::vector<std::byte>> FakeTransport::getOutBuffer() {
    if (stream.empty()) return std::nullopt;
    std::vector<std::byte> joined;
    for (auto& c : stream) joined.insert(joined.end(), c.begin(), c.end());
    stream.clear();
    return joined;
}

void FakeTransport::bufferReceived(Bytes data) {
    if (auto p = protocol.lock()) p->dataReceived(data);
}

void FakeTransport::reportDisconnect() {
    // Lost in the middle of a negotiation: a TLS problem (TLS-51).
    Failure reason = tls ? Failure(NativeOpenSSLError()) : disconnectReason;
    if (auto p = protocol.lock()) p->connectionLost(reason);
}

void FakeTransport::checkProducer() {
    if (!producer || streamingProducer) return;
    auto keep = producer;  // it may unregister itself while producing
    if (auto* pull = dynamic_cast<IPullProducer*>(keep.get())) pull->resumeProducing();
    else if (auto* push = dynamic_cast<IPushProducer*>(keep.get())) push->resumeProducing();
}

std::shared_ptr<FakeTransport> makeFakeClient(std::shared_ptr<Protocol> clientProtocol) {
    return std::make_shared<FakeTransport>(std::move(clientProtocol), false);
}

std::shared_ptr<FakeTransport> makeFakeServer(std::shared_ptr<Protocol> serverProtocol) {
    return std::make_shared<FakeTransport>(std::move(serverProtocol), true);
}

IOPump::IOPump(std::shared_ptr<Protocol> c, std::shared_ptr<Protocol> s, std::shared_ptr<FakeTransport> cio,
               std::shared_ptr<FakeTransport> sio, std::shared_ptr<task::Clock> clk)
    : client(std::move(c)), server(std::move(s)), clientIO(std::move(cio)), serverIO(std::move(sio)),
      clock(clk ? std::move(clk) : std::make_shared<task::Clock>()) {}

bool IOPump::pump(bool advanceClock) {
    if (advanceClock) clock->advance(0);
    auto sData = serverIO->getOutBuffer();
    auto cData = clientIO->getOutBuffer();
    // A fake TLS negotiation travels when no bytes do (TLS-51).
    auto sNegotiation = sData ? nullptr : serverIO->takeNegotiation();
    auto cNegotiation = cData ? nullptr : clientIO->takeNegotiation();
    clientIO->checkProducer();
    serverIO->checkProducer();
    if (cData) serverIO->bufferReceived(*cData);
    else if (cNegotiation) serverIO->negotiationReceived(cNegotiation);
    if (sData) clientIO->bufferReceived(*sData);
    else if (sNegotiation) clientIO->negotiationReceived(sNegotiation);
    if (cData || sData || cNegotiation || sNegotiation) return true;
    if (serverIO->disconnecting && !serverIO->disconnected) {
        serverIO->disconnected = true;
        clientIO->disconnecting = true;
        clientIO->reportDisconnect();
        return true;
    }
    if (clientIO->disconnecting && !clientIO->disconnected) {
        clientIO->disconnected = true;
        serverIO->disconnecting = true;
        serverIO->reportDisconnect();
        return true;
    }
    return false;
}

bool IOPump::flush(bool advanceClock) {
    bool result = false;
    for (int i = 0; i < 1000; ++i) {
        if (!pump(advanceClock)) return result;
        result = true;
    }
    throw std::runtime_error("IOPump::flush: Too long (1000 busy rounds)");
}

IOPump connect(std::shared_ptr<Protocol> serverProtocol, std::shared_ptr<FakeTransport> serverTransport,
               std::shared_ptr<Protocol> clientProtocol, std::shared_ptr<FakeTransport> clientTransport, bool greet,
               std::shared_ptr<task::Clock> clock) {
    serverProtocol->makeConnection(serverTransport);
    clientProtocol->makeConnection(clientTransport);
    IOPump pump(std::move(clientProtocol), std::move(serverProtocol), std::move(clientTransport),
                std::move(serverTransport), std::move(clock));
    if (greet) pump.flush();
    return pump;
}

}  // namespace weft::iosim
