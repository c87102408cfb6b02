#include <weft/internet/iosim.hpp>

#include <fmt/format.h>

#include <atomic>
#include <stdexcept>

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
    stream.emplace_back(data.begin(), data.end());
}

void FakeTransport::writeSequence(std::span<const Bytes> chunks) {
    if (disconnecting) return;
    std::vector<std::byte> joined;
    for (Bytes c : chunks) joined.insert(joined.end(), c.begin(), c.end());
    stream.push_back(std::move(joined));
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
    if (auto p = protocol.lock()) p->connectionLost(disconnectReason);
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
    clientIO->checkProducer();
    serverIO->checkProducer();
    if (cData) serverIO->bufferReceived(*cData);
    if (sData) clientIO->bufferReceived(*sData);
    if (cData || sData) return true;
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
