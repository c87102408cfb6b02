// weft/protocols/tls.hpp — TLS as a protocol wrapper over any stream transport
// (twisted.protocols.tls). Spec: tls.md TLS-1 … TLS-27, TLS-45, TLS-46, TLS-48, TLS-50.
//
// TLSMemoryBIOProtocol sits between a transport (TCP, UNIX, a process's pipes,
// standard I/O, an in-memory test transport, another TLS layer) and the
// application's protocol. Ciphertext from below goes into OpenSSL through a
// memory BIO; the plaintext OpenSSL returns goes up to the wrapped protocol;
// what the wrapped protocol writes is encrypted and everything OpenSSL puts in
// the outgoing BIO goes down at once (TLS-12). OpenSSL never touches a socket.
//
// Writes are aggregated: plaintext written in one reactor iteration leaves as
// few records as possible (TLS-11), flushed by a zero-delay call on the
// factory's clock, or at once once more than 64 000 bytes wait.
//
// Closing (TLS-21 … TLS-25): loseConnection() flushes, sends close_notify and
// waits for the peer's, bounded by closeTimeout (TLS-22, Better than Twisted:
// default 30 s, then the transport below is aborted); abortConnection() sends
// nothing and drops what waits (TLS-26). The wrapped protocol hears
// connectionLost once: ConnectionDone after an orderly close, ConnectionLost
// for a stream truncated without close_notify, ConnectionAborted after an
// abort, and an ssl::Error (OpenSSL's reasons in words) for a failed handshake
// or a corrupt record.
//
// Ownership is ProtocolWrapper's (weft/protocols/policies.hpp): the transport
// below owns the TLS protocol until its connectionLost() returns; the TLS
// protocol owns the wrapped protocol and lets it go in connectionLost().
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/internet/ssl.hpp>
#include <weft/protocols/policies.hpp>

namespace weft {
class Reactor;
}

namespace weft::ssl::detail {
struct VerifyInfo;
}

namespace weft::tls {

class TLSMemoryBIOFactory;

/// One TLS connection (Twisted TLSMemoryBIOProtocol).
class WEFT_EXPORT TLSMemoryBIOProtocol : public policies::ProtocolWrapper,
                                         public ITCPTransport,
                                         public ssl::ISSLTransport,
                                         public ssl::INegotiated,
                                         public ssl::ISystemHandle {
public:
    /// More pending plaintext than this is encrypted at once instead of at the
    /// next flush (TLS-11).
    static constexpr std::size_t MAX_BUFFER_SIZE = 64000;

    TLSMemoryBIOProtocol(std::shared_ptr<TLSMemoryBIOFactory> factory, std::shared_ptr<Protocol> wrapped);
    ~TLSMemoryBIOProtocol() override;

    /// Seconds loseConnection() waits for the peer's close_notify before it
    /// aborts the transport below; 0: do not wait (TLS-22). The factory's value
    /// by default.
    double closeTimeout;

    // ---- from the transport below ----
    void makeConnection(std::shared_ptr<ITransport> t) override;
    /// Starts TLS beneath a wrapped protocol that is already connected
    /// (ITLSTransport::startTLS): `below` writes to the connection in clear;
    /// the wrapped protocol keeps its transport and gets no connectionMade.
    void startBeneath(std::shared_ptr<ITransport> below);
    void dataReceived(Bytes data) override;
    void connectionLost(const Failure& reason) override;
    /// The end of the stream below: orderly if the peer's close_notify came
    /// first (or we were closing the whole connection), a truncation otherwise
    /// (TLS-24, TLS-25); after loseWriteConnection() alone, only the peer's
    /// close_notify makes the end orderly.
    void readConnectionLost() override;
    /// The write half below shut, after loseWriteConnection()'s close_notify:
    /// passed on to a half-closeable wrapped protocol (TLS-27).
    void writeConnectionLost() override;

    // ---- to the wrapped protocol ----
    using ProtocolWrapper::write;
    void write(Bytes data) override;
    void writeSequence(std::span<const Bytes> chunks) override;
    void loseConnection() override;
    /// As loseConnection(), without waiting for the wrapped protocol's producer
    /// (TLS-19 waits for it otherwise); the producer is stopped with the connection.
    void loseConnectionDespiteProducer() override;
    /// Flushes, sends close_notify and shuts the write half below when the
    /// transport below can (TLS-27, Better than Twisted). Asked during the
    /// handshake, it happens once the handshake completes; asked while a pull
    /// producer is registered, once it is unregistered (as over TCP, FD-31).
    void loseWriteConnection() override;
    void abortConnection() override;
    bool isConnected() const noexcept override;
    bool isDisconnecting() const noexcept override;
    /// Plaintext not yet encrypted, and what the transport below holds.
    std::size_t pendingBytes() const noexcept override;
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    void unregisterProducer() override;
    /// Forwarded to the transport below when it is a TCP connection;
    /// std::logic_error otherwise (TLS-4).
    bool getTcpNoDelay() const override;
    void setTcpNoDelay(bool enabled) override;
    bool getTcpKeepAlive() const override;
    void setTcpKeepAlive(bool enabled) override;

    std::optional<ssl::Certificate> getPeerCertificate() const override;
    std::optional<std::string> negotiatedProtocol() const override;
    ssl_st* getHandle() const noexcept override;
    /// True once the handshake completed.
    bool handshakeDone() const noexcept { return phase_ != Phase::handshaking; }
    /// The negotiated version ("TLSv1.3") and cipher, once the handshake completed.
    std::string protocolVersion() const;
    std::string cipherName() const;
    /// Encrypts what is waiting now (the zero-delay flush calls it; TLS-11).
    void flushPending();

private:
    class Membrane;
    enum class Phase : std::uint8_t { handshaking, open, closing, closed };

    void setUpSSL();
    void pumpIncoming();
    bool advanceHandshake();
    void deliverPlaintext();
    void encryptPending();
    void drainOutgoing();
    void encryptPendingNow();
    void drainOutgoingNow();
    template <class F>
    void holdingProducer(F&& f);
    bool acceptsWrites() const noexcept;
    /// A registered producer holds a close or half-close until it is
    /// unregistered (TLS-19), unless loseConnectionDespiteProducer() was called.
    bool producerHoldsClose() const noexcept { return membrane_ && !closeDespiteProducer_; }
    /// A registered pull producer holds a half-close until it is unregistered.
    bool pullProducerHoldsHalfClose() const noexcept;
    void queued();
    void scheduleFlush();
    void sendCloseNotify();
    void startClose();
    void fail(Failure reason);
    void closeBelow();
    void armCloseTimer();
    void cancelTimers() noexcept;
    void peerClosed();
    Failure sslFailure(int rc, const char* during);
    void updateProducerPause();
    ITCPTransport* tcpBelow() const noexcept;
    bool orderlyEnd() const noexcept;

    TLSMemoryBIOFactory& tlsFactory_;  // held through `factory`
    ssl::SSLHandle ssl_;
    std::unique_ptr<ssl::detail::VerifyInfo> verifyInfo_;  // what the verify callback recorded
    Phase phase_ = Phase::handshaking;
    std::vector<std::byte> pending_;  // plaintext not yet encrypted
    std::optional<Failure> reason_;   // why the connection is ending, once known
    std::optional<ssl::Certificate> peerCertificate_;
    std::optional<std::string> negotiated_;
    std::string ownALPN_;  // the wrapped factory's acceptableProtocols(), wire format (TLS-46)
    std::shared_ptr<Membrane> membrane_;
    DelayedCall flushCall_, closeTimer_;
    bool wantClose_ = false;        // loseConnection() asked
    bool wantWriteClose_ = false;   // loseWriteConnection() asked during the handshake or while producing
    bool sentCloseNotify_ = false;  // ours went out
    bool gotCloseNotify_ = false;   // the peer's arrived
    bool aborted_ = false;
    bool closeDespiteProducer_ = false;  // loseConnectionDespiteProducer(): the producer does not hold the close
    bool lost_ = false;                  // connectionLost() ran
    bool inReceive_ = false;             // re-entrant dataReceived: append only
    bool flushQueued_ = false;           // a Reactor::callBeforeWait flush is pending
};

/// Wraps a factory's protocols in TLS (Twisted TLSMemoryBIOFactory; TLS-1 … TLS-3).
///
/// `isClient` fixes the role: a client asks `creator` for
/// clientConnectionForTLS() per connection and speaks first, a server uses
/// serverConnectionForTLS(). The context is built here, so bad settings throw
/// from the constructor (TLS-1). `clock` schedules write aggregation and the
/// close timeout (a Reactor, or a task::Clock in tests); not owned. The factory
/// is quiet (noisy = false) and its logPrefix is "<wrapped> (TLS)" (TLS-2).
class WEFT_EXPORT TLSMemoryBIOFactory : public policies::WrappingFactory {
public:
    TLSMemoryBIOFactory(std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, bool isClient,
                        std::shared_ptr<Factory> wrappedFactory, IReactorTime& clock);

    const bool isClient;
    /// closeTimeout given to each new connection (TLS-22).
    double closeTimeout = 30.0;

    std::string logPrefix() const override;
    IReactorTime& clock() const noexcept { return clock_; }
    /// The clock as a Reactor (null for a task::Clock): flushes then go through
    /// Reactor::callBeforeWait instead of callLater(0) (TLS-11).
    Reactor* reactor() const noexcept { return reactor_; }
    /// A new SSL object for one connection, in connect or accept state.
    ssl::SSLHandle connectionForTLS();

protected:
    std::shared_ptr<policies::ProtocolWrapper> wrapProtocol(std::shared_ptr<Protocol> wrapped) override;

private:
    std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory_;
    IReactorTime& clock_;
    Reactor* reactor_;
};

}  // namespace weft::tls
