// startTLS on a live TCP or UNIX stream connection (TLS-28 … TLS-31). See
// SocketTransport in weft/internet/stream.hpp.
#include <stdexcept>

#include <weft/internet/stream.hpp>
#include <weft/protocols/tls.hpp>

namespace weft {

namespace {

// The TLS layer's transport below: the socket's own write path, in clear, past
// the routing that sends the protocol's writes into TLS. Holds the socket, which
// holds the TLS layer (as its protocol) until that layer's connectionLost has
// returned: the cycle ends there.
class Bypass final : public ITransport, public IConsumer, public IHalfCloseableTransport, public ITCPTransport {
public:
    explicit Bypass(std::shared_ptr<SocketTransport> socket) : socket_(std::move(socket)) {}

    using ITransport::write;
    void write(Bytes data) override { socket_->FileDescriptor::write(data); }
    void writeSequence(std::span<const Bytes> chunks) override { socket_->FileDescriptor::writeSequence(chunks); }
    void loseConnection() override { socket_->FileDescriptor::loseConnection(); }
    void loseConnectionDespiteProducer() override { socket_->FileDescriptor::loseConnectionDespiteProducer(); }
    void loseWriteConnection() override { socket_->FileDescriptor::loseWriteConnection(); }
    Address getPeer() const override { return socket_->getPeer(); }
    Address getHost() const override { return socket_->getHost(); }
    bool isConnected() const noexcept override { return socket_->isConnected(); }
    bool isDisconnecting() const noexcept override { return socket_->isDisconnecting(); }
    std::size_t pendingBytes() const noexcept override { return socket_->FileDescriptor::pendingBytes(); }
    IConsumer* asConsumer() noexcept override { return this; }
    IPushProducer* asInputProducer() noexcept override { return socket_->asInputProducer(); }
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override {
        socket_->FileDescriptor::registerProducer(std::move(producer), streaming);
    }
    void unregisterProducer() override { socket_->FileDescriptor::unregisterProducer(); }

    void abortConnection() override { socket_->StreamTransport::abortConnection(); }
    bool getTcpNoDelay() const override { return tcp().getTcpNoDelay(); }
    void setTcpNoDelay(bool enabled) override { tcp().setTcpNoDelay(enabled); }
    bool getTcpKeepAlive() const override { return tcp().getTcpKeepAlive(); }
    void setTcpKeepAlive(bool enabled) override { tcp().setTcpKeepAlive(enabled); }

private:
    ITCPTransport& tcp() const {
        auto* t = dynamic_cast<ITCPTransport*>(socket_.get());
        if (!t) throw std::logic_error("the connection under TLS is not a TCP connection");
        return *t;
    }
    std::shared_ptr<SocketTransport> socket_;
};

tls::TLSMemoryBIOProtocol* tlsLayer(const std::shared_ptr<Protocol>& p) {
    return static_cast<tls::TLSMemoryBIOProtocol*>(p.get());
}

}  // namespace

void SocketTransport::startTLS(std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, bool normal) {
    if (tlsStarted_) throw std::logic_error("startTLS: TLS was already started on this connection");
    if (dynamic_cast<tls::TLSMemoryBIOProtocol*>(protocol_.get()))
        throw std::logic_error("startTLS: this connection already runs TLS");
    if (!protocol_ || state() != State::connected) throw std::logic_error("startTLS: the connection is not connected");
    if (!contextFactory) throw std::invalid_argument("startTLS: null context factory");
    auto self = std::static_pointer_cast<SocketTransport>(shared_from_this());
    // The connecting side is the TLS client, unless !normal swaps the roles.
    bool connectingSide = dynamic_cast<IConnectingTransport*>(this) != nullptr;
    std::shared_ptr<Factory> appFactory = protocol_->factory ? protocol_->factory : std::make_shared<Factory>();
    auto factory = std::make_shared<tls::TLSMemoryBIOFactory>(std::move(contextFactory), connectingSide == normal,
                                                              appFactory, reactor());
    auto layer = std::make_shared<tls::TLSMemoryBIOProtocol>(factory, protocol_);

    // A producer registered before moves to the TLS layer (TLS-30).
    auto moving = producer();
    bool streaming = producerStreaming();
    if (moving) FileDescriptor::unregisterProducer();

    protocol_ = layer;
    tlsStarted_ = true;
    layer->startBeneath(std::make_shared<Bypass>(self));
    if (moving && !disconnected()) layer->registerProducer(std::move(moving), streaming);
}

std::optional<ssl::Certificate> SocketTransport::getPeerCertificate() const {
    if (!tlsStarted_ || !protocol_) return std::nullopt;
    return tlsLayer(protocol_)->getPeerCertificate();
}

void SocketTransport::write(Bytes data) {
    if (!tlsStarted_) return FileDescriptor::write(data);
    if (auto layer = protocol_) tlsLayer(layer)->write(data);
}

void SocketTransport::write(std::vector<std::byte>&& data) {
    if (!tlsStarted_) return FileDescriptor::write(std::move(data));
    if (auto layer = protocol_) tlsLayer(layer)->write(Bytes(data));
}

void SocketTransport::writeSequence(std::span<const Bytes> chunks) {
    if (!tlsStarted_) return FileDescriptor::writeSequence(chunks);
    if (auto layer = protocol_) tlsLayer(layer)->writeSequence(chunks);
}

void SocketTransport::loseConnection() {
    if (!tlsStarted_) return FileDescriptor::loseConnection();
    if (auto layer = protocol_) tlsLayer(layer)->loseConnection();
}

void SocketTransport::loseConnectionDespiteProducer() {
    if (!tlsStarted_) return FileDescriptor::loseConnectionDespiteProducer();
    if (auto layer = protocol_) tlsLayer(layer)->loseConnectionDespiteProducer();
}

void SocketTransport::loseWriteConnection() {
    if (!tlsStarted_) return FileDescriptor::loseWriteConnection();
    if (auto layer = protocol_) tlsLayer(layer)->loseWriteConnection();
}

void SocketTransport::registerProducer(std::shared_ptr<IProducer> p, bool streaming) {
    if (!tlsStarted_) return FileDescriptor::registerProducer(std::move(p), streaming);
    if (auto layer = protocol_) tlsLayer(layer)->registerProducer(std::move(p), streaming);
    else if (p) p->stopProducing();  // the connection is gone (TLS-18)
}

void SocketTransport::unregisterProducer() {
    if (!tlsStarted_) return FileDescriptor::unregisterProducer();
    if (auto layer = protocol_) tlsLayer(layer)->unregisterProducer();
}

}  // namespace weft
