// weft/internet/iosim.hpp — a pump-driven pair of in-memory transports
// (twisted.test.iosim). Spec: testing.md TEST-28 … TEST-30.
//
// Unlike loopbackAsync, nothing moves until the test calls IOPump::pump() or
// flush(): the test decides exactly when bytes cross. Time is a task::Clock
// that pump() advances by 0, so calls scheduled with callLater(0) run too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/ssl.hpp>
#include <weft/internet/task.hpp>

namespace weft::iosim {

/// What a fake TLS negotiation fails with (Twisted iosim's NativeOpenSSLError; TLS-51).
class WEFT_EXPORT NativeOpenSSLError : public std::runtime_error {
public:
    NativeOpenSSLError() : std::runtime_error("the simulated TLS negotiation failed") {}
};

/// A context factory that tells iosim whether it accepts the peer's (Twisted's
/// iosimVerify; TLS-51). A factory that is not one accepts every peer.
class WEFT_EXPORT IIOSimVerifier {
public:
    virtual ~IIOSimVerifier() = default;
    virtual bool iosimVerify(const ssl::IOpenSSLContextFactory& peer) const = 0;
};

/// One side's fake TLS handshake (Twisted iosim.TLSNegotiation), exchanged by
/// the pump in place of bytes.
struct WEFT_EXPORT TLSNegotiation {
    std::shared_ptr<ssl::IOpenSSLContextFactory> factory;
    bool connectState = false;  // the side that speaks first (the TLS client)
    bool readyToSend = false;
    bool sent = false;
    std::shared_ptr<TLSNegotiation> peer;  // the peer's, if it arrived before ours left
};

/// One end of a simulated connection (Twisted iosim.FakeTransport; TEST-28).
///
/// write() appends to `stream`, which IOPump collects with getOutBuffer() and
/// hands to the peer's bufferReceived(). Ownership: the protocol is held
/// weakly — the IOPump (or the test) owns both protocols, so no cycle is left
/// when a test never disconnects.
///
/// startTLS() fakes a TLS negotiation without cryptography (TLS-51): what is
/// written afterwards is held until both sides have called it, then sent
/// unchanged; a side whose context factory is an IIOSimVerifier that refuses
/// the peer's is closed with NativeOpenSSLError, and so is a side that loses
/// its connection while the negotiation is pending.
class WEFT_EXPORT FakeTransport : public ITransport,
                                  public IConsumer,
                                  public IPushProducer,
                                  public ssl::ITLSTransport,
                                  public virtual ILoggingContext {
public:
    IConsumer* asConsumer() noexcept override { return this; }
    IPushProducer* asInputProducer() noexcept override { return this; }
    /// A transport delivering to `protocol`; isServer: the accepting side.
    /// hostAddress/peerAddress: what getHost()/getPeer() return (NoAddress
    /// when not given, Twisted's FakeAddress).
    FakeTransport(std::shared_ptr<Protocol> protocol, bool isServer, std::optional<Address> hostAddress = std::nullopt,
                  std::optional<Address> peerAddress = std::nullopt);

    /// The protocol bytes are delivered to.
    std::weak_ptr<Protocol> protocol;
    /// True for the accepting side.
    bool isServer;
    /// Unique per transport, increasing in creation order (TEST-28).
    std::uint64_t serial;
    /// Set by loseConnection()/abortConnection() (and by the pump for the peer).
    bool disconnecting = false;
    /// Set by the pump once the loss was reported.
    bool disconnected = false;
    /// The reason reportDisconnect() delivers (ConnectionDone("Connection done")).
    Failure disconnectReason;
    /// The registered producer, or null.
    std::shared_ptr<IProducer> producer;
    /// Whether the registered producer is a push producer.
    bool streamingProducer = false;
    /// Chunks written and not yet collected by the pump.
    std::vector<std::vector<std::byte>> stream;
    /// What getHost() returns.
    Address hostAddress;
    /// What getPeer() returns.
    Address peerAddress;

    using ITransport::write;
    /// Appends a copy to `stream`; silently dropped once disconnecting (TEST-28).
    void write(Bytes data) override;
    /// Appends the chunks joined into one.
    void writeSequence(std::span<const Bytes> chunks) override;
    /// Sets disconnecting; the pump reports the loss once the output is drained.
    void loseConnection() override { disconnecting = true; }
    /// Same as loseConnection(): what was already written is kept (TEST-28).
    void abortConnection() { disconnecting = true; }
    /// hostAddress.
    Address getHost() const override { return hostAddress; }
    /// peerAddress.
    Address getPeer() const override { return peerAddress; }
    /// Not yet `disconnected`, as code under test sees it through ITransport.
    bool isConnected() const noexcept override { return !disconnected; }
    /// `disconnecting`, as code under test sees it through ITransport.
    bool isDisconnecting() const noexcept override { return disconnecting; }
    /// The bytes in `stream`: written, not yet collected by the pump.
    std::size_t pendingBytes() const noexcept override {
        std::size_t n = 0;
        for (const auto& chunk : stream) n += chunk.size();
        return n;
    }
    /// Records the producer; a pull producer is resumed before this returns
    /// (TEST-28). Throws std::runtime_error if one is already registered.
    void registerProducer(std::shared_ptr<IProducer> p, bool streaming) override;
    /// Forgets the producer.
    void unregisterProducer() override;
    /// unregisterProducer() then loseConnection().
    void stopConsuming();
    /// Does nothing (the simulated transport never reads on its own).
    void pauseProducing() override {}
    /// Does nothing.
    void resumeProducing() override {}
    /// loseConnection().
    void stopProducing() override { loseConnection(); }
    /// "iosim".
    std::string logPrefix() const override { return "iosim"; }
    /// "FakeTransport<S|C,serial,ProtocolClass>".
    std::string str() const;

    /// Takes everything written since the last call, joined; nullopt if nothing.
    std::optional<std::vector<std::byte>> getOutBuffer();

    // ---- the fake TLS negotiation (TLS-51) ----
    using ssl::ITLSTransport::startTLS;
    /// Starts the fake negotiation; the connecting side speaks first unless
    /// `normal` is false. std::logic_error if called twice.
    void startTLS(std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, bool normal) override;
    bool tlsStarted() const noexcept override { return tlsStarted_; }
    /// None: the negotiation is fake.
    std::optional<ssl::Certificate> getPeerCertificate() const override { return std::nullopt; }
    /// True once both sides' negotiations met (whatever the verification said).
    bool negotiated = false;
    /// The pump: our negotiation, once it is our turn to send it (and nothing else is queued).
    std::shared_ptr<TLSNegotiation> takeNegotiation();
    /// The pump: the peer's negotiation arrived.
    void negotiationReceived(std::shared_ptr<TLSNegotiation> peer);
    /// Writes made after startTLS(), held until the negotiation completes.
    std::vector<std::vector<std::byte>> tlsbuf;
    /// The pending negotiation, or null.
    std::shared_ptr<TLSNegotiation> tls;

    /// Delivers bytes from the peer to the protocol's dataReceived().
    void bufferReceived(Bytes data);
    /// Calls the protocol's connectionLost(disconnectReason), or
    /// NativeOpenSSLError while a fake negotiation is pending (TLS-51).
    void reportDisconnect();
    /// Resumes a registered pull producer (called by the pump at idle points).
    void checkProducer();

private:
    void completeNegotiation(const TLSNegotiation& peer);
    bool tlsStarted_ = false;
    std::shared_ptr<TLSNegotiation> early_;  // the peer's, arrived before our startTLS
};

/// A FakeTransport for the connecting side (Twisted makeFakeClient).
WEFT_EXPORT std::shared_ptr<FakeTransport> makeFakeClient(std::shared_ptr<Protocol> clientProtocol);
/// A FakeTransport for the accepting side (Twisted makeFakeServer).
WEFT_EXPORT std::shared_ptr<FakeTransport> makeFakeServer(std::shared_ptr<Protocol> serverProtocol);

/// Moves bytes between a client and a server when asked (Twisted IOPump;
/// TEST-29). Owns both protocols, both transports and the clock.
class WEFT_EXPORT IOPump {
public:
    /// A pump over the given pair; without a clock it makes its own task::Clock.
    IOPump(std::shared_ptr<Protocol> client, std::shared_ptr<Protocol> server, std::shared_ptr<FakeTransport> clientIO,
           std::shared_ptr<FakeTransport> serverIO, std::shared_ptr<task::Clock> clock = nullptr);

    /// The connecting side's protocol.
    std::shared_ptr<Protocol> client;
    /// The accepting side's protocol.
    std::shared_ptr<Protocol> server;
    /// The client's transport.
    std::shared_ptr<FakeTransport> clientIO;
    /// The server's transport.
    std::shared_ptr<FakeTransport> serverIO;
    /// The clock pump() advances by 0.
    std::shared_ptr<task::Clock> clock;

    /// One round (TEST-29): advance the clock by 0, take both sides' output,
    /// resume pull producers, deliver the client's bytes to the server and the
    /// server's to the client. With nothing to move, a side that is
    /// disconnecting (and not yet disconnected) is marked disconnected, its
    /// peer is marked disconnecting and the peer's protocol gets connectionLost
    /// — one side per round. Returns true if anything happened.
    /// With `advanceClock` false the clock is left alone: calls due now (a TLS
    /// layer's aggregated writes, TLS-50) stay pending.
    bool pump(bool advanceClock = true);
    /// pump() until it returns false; returns whether anything happened.
    /// Throws std::runtime_error ("Too long") after 1000 busy rounds.
    bool flush(bool advanceClock = true);
};

/// Connects the pair (Twisted iosim.connect; TEST-30): server->makeConnection
/// then client->makeConnection, and with `greet` one flush() so greetings are
/// exchanged before it returns.
WEFT_EXPORT IOPump connect(std::shared_ptr<Protocol> serverProtocol, std::shared_ptr<FakeTransport> serverTransport,
                           std::shared_ptr<Protocol> clientProtocol, std::shared_ptr<FakeTransport> clientTransport,
                           bool greet = true, std::shared_ptr<task::Clock> clock = nullptr);

/// What connectedServerAndClient() returns: use as `auto [client, server, pump] = …`.
template <class C, class S>
struct ConnectedPair {
    /// The client protocol.
    std::shared_ptr<C> client;
    /// The server protocol.
    std::shared_ptr<S> server;
    /// The pump between them.
    IOPump pump;
};

/// Builds a ClientClass and a ServerClass protocol (default-constructed with
/// make_shared), gives each a FakeTransport and connect()s them (Twisted
/// connectedServerAndClient; TEST-30).
template <class ServerClass, class ClientClass>
requires std::is_base_of_v<Protocol, ServerClass> && std::is_base_of_v<Protocol, ClientClass>
    ConnectedPair<ClientClass, ServerClass> connectedServerAndClient(bool greet = true,
                                                                     std::shared_ptr<task::Clock> clock = nullptr) {
    auto c = std::make_shared<ClientClass>();
    auto s = std::make_shared<ServerClass>();
    auto cio = makeFakeClient(c);
    auto sio = makeFakeServer(s);
    return {c, s, connect(s, sio, c, cio, greet, std::move(clock))};
}

}  // namespace weft::iosim
