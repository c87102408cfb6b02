// TLS as a protocol wrapper (twisted.protocols.tls). See weft/protocols/tls.hpp.
#include <weft/protocols/tls.hpp>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include <weft/internet/abort.hpp>
#include <weft/internet/abstract.hpp>
#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/stream.hpp>
#include <weft/log.hpp>

#include "internet/detail/sslutil.hpp"

namespace weft::tls {

using ssl::detail::VerifyInfo;

namespace {

constexpr std::size_t kRecordPlaintext = 16384;  // the most plaintext one TLS record carries
constexpr std::size_t kDrainSlice = 64 * 1024;   // plaintext encrypted before the records go below
constexpr std::size_t kKeepBIO = 32 * 1024;      // a memory BIO grown past this is replaced, not reset
constexpr std::size_t kKeepPending = 1 << 20;    // plaintext capacity kept between batches

}  // namespace

// ---- the producer stand-in (TLS-15 … TLS-17) -------------------------------------------------

// Registered with the transport below in place of the application's producer:
// forwards stop, and pause/resume only when the combined state changes, so the
// producer is paused while the transport below or the TLS layer (writes waiting
// for the handshake) wants it paused, and never twice in a row.
class TLSMemoryBIOProtocol::Membrane final : public IPushProducer, public IPullProducer {
public:
    Membrane(std::shared_ptr<IProducer> p, bool streaming) : producer(std::move(p)), streaming_(streaming) {}
    IPushProducer* asPushProducer() noexcept override { return streaming_ ? this : nullptr; }
    IPullProducer* asPullProducer() noexcept override { return streaming_ ? nullptr : this; }

    void pauseProducing() override {
        pausedBelow_ = true;
        update();
    }
    void resumeProducing() override {
        if (!streaming_) {  // a pull producer: asked for more
            // Not while the TLS layer still holds what it wrote (the handshake's
            // records drained below, its plaintext did not): the records made
            // of that plaintext ask again when they have drained (TLS-17).
            if (!pausedByTLS_) producer->asPullProducer()->resumeProducing();
            return;
        }
        pausedBelow_ = false;
        update();
    }
    void stopProducing() override { producer->stopProducing(); }
    bool streaming() const noexcept { return streaming_; }
    void pauseForTLS(bool paused) {
        pausedByTLS_ = paused;
        update();
    }
    /// While held (the TLS layer is encrypting or handing records below), a
    /// pause or resume from below is kept and passed on at the release: the
    /// producer it reaches may write or close, which must not re-enter the
    /// layer halfway through its own output (records duplicated, a memory BIO
    /// freed under its reader).
    void hold() noexcept { ++holds_; }
    void release() {
        if (--holds_ == 0 && updateHeld_) {
            updateHeld_ = false;
            update();
        }
    }
    void releaseQuietly() noexcept { --holds_; }

    const std::shared_ptr<IProducer> producer;

private:
    void update() {
        if (!streaming_) return;
        if (holds_ > 0) {
            updateHeld_ = true;
            return;
        }
        bool want = pausedBelow_ || pausedByTLS_;
        if (want == forwardedPause_) return;
        forwardedPause_ = want;
        auto* push = producer->asPushProducer();  // checked at registration
        if (want) push->pauseProducing();
        else push->resumeProducing();
    }

    const bool streaming_;
    bool pausedBelow_ = false, pausedByTLS_ = false, forwardedPause_ = false;
    bool updateHeld_ = false;
    int holds_ = 0;
};

// ---- TLSMemoryBIOProtocol ---------------------------------------------------------------------

TLSMemoryBIOProtocol::TLSMemoryBIOProtocol(std::shared_ptr<TLSMemoryBIOFactory> owner,
                                           std::shared_ptr<Protocol> wrapped)
    : ProtocolWrapper(owner, std::move(wrapped)), closeTimeout(owner->closeTimeout), tlsFactory_(*owner) {}

TLSMemoryBIOProtocol::~TLSMemoryBIOProtocol() {
    cancelTimers();
    ssl_.reset();
}

void TLSMemoryBIOProtocol::setUpSSL() {
    ssl_ = tlsFactory_.connectionForTLS();
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    if (!in || !out) {
        BIO_free(in);
        BIO_free(out);
        throw ssl::Error::fromQueue("BIO_new");
    }
    BIO_set_mem_eof_return(in, -1);  // an empty input BIO means "wait for more", never EOF
    SSL_set_bio(ssl_.get(), in, out);
    verifyInfo_ = std::make_unique<VerifyInfo>();
    SSL_set_ex_data(ssl_.get(), ssl::detail::verifyInfoIndex(), verifyInfo_.get());
    // A factory that chooses its own ALPN protocols overrides the options' (TLS-46).
    if (auto* chooser = dynamic_cast<ssl::IProtocolNegotiationFactory*>(tlsFactory_.wrappedFactory.get())) {
        ownALPN_ = ssl::detail::alpnWire(chooser->acceptableProtocols());
        if (tlsFactory_.isClient) {
            if (SSL_set_alpn_protos(ssl_.get(), reinterpret_cast<const unsigned char*>(ownALPN_.data()),
                                    static_cast<unsigned>(ownALPN_.size())) != 0)
                throw ssl::Error::fromQueue("setting the ALPN protocols");
        } else {
            SSL_set_ex_data(ssl_.get(), ssl::detail::alpnIndex(), &ownALPN_);
        }
    }
}

void TLSMemoryBIOProtocol::makeConnection(std::shared_ptr<ITransport> t) {
    auto self = shared_from_this();
    setUpSSL();
    // The wrapped protocol's connectionMade runs before any TLS byte moves (TLS-6).
    ProtocolWrapper::makeConnection(std::move(t));
    if (lost_ || aborted_ || phase_ != Phase::handshaking) return;
    if (tlsFactory_.isClient) {  // the client speaks first: its ClientHello leaves now
        advanceHandshake();
        drainOutgoing();
    }
}

void TLSMemoryBIOProtocol::startBeneath(std::shared_ptr<ITransport> below) {
    auto self = shared_from_this();
    setUpSSL();
    attachBeneath(std::move(below));
    if (tlsFactory_.isClient) {
        advanceHandshake();
        drainOutgoing();
    }
}

void TLSMemoryBIOProtocol::dataReceived(Bytes data) {
    if (lost_ || aborted_ || !ssl_) return;
    if (!data.empty()) BIO_write(SSL_get_rbio(ssl_.get()), data.data(), static_cast<int>(data.size()));
    if (inReceive_) return;  // the outer call goes on with these bytes too
    auto self = shared_from_this();
    inReceive_ = true;
    pumpIncoming();
    inReceive_ = false;
}

void TLSMemoryBIOProtocol::pumpIncoming() {
    if (phase_ == Phase::handshaking && !advanceHandshake()) {
        drainOutgoing();
        return;
    }
    deliverPlaintext();
    drainOutgoing();
}

bool TLSMemoryBIOProtocol::advanceHandshake() {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_.get());
    if (rc != 1) {
        int err = SSL_get_error(ssl_.get(), rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return false;
        fail(sslFailure(rc, "handshake"));
        return false;
    }
    phase_ = Phase::open;
    if (X509* peer = SSL_get0_peer_certificate(ssl_.get())) peerCertificate_ = ssl::Certificate::fromNative(peer);
    const unsigned char* proto = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl_.get(), &proto, &len);
    if (proto && len) negotiated_ = std::string(reinterpret_cast<const char*>(proto), len);
    drainOutgoing();  // our Finished (and a server's tickets, if any)
    if (auto* listener = dynamic_cast<ssl::IHandshakeListener*>(wrappedProtocol.get())) {
        auto keep = wrappedProtocol;
        listener->handshakeCompleted();  // TLS-7: once, before the peer's first data
        if (lost_ || aborted_) return false;
    }
    // What was written before the handshake leaves now (TLS-10).
    encryptPending();
    updateProducerPause();
    if (wantClose_ && !producerHoldsClose() && phase_ == Phase::open) startClose();
    if (wantWriteClose_ && !wantClose_ && phase_ == Phase::open) loseWriteConnection();
    return !(lost_ || aborted_);
}

void TLSMemoryBIOProtocol::deliverPlaintext() {
    char buf[kRecordPlaintext];
    while (!lost_ && !aborted_ && ssl_ && phase_ != Phase::handshaking) {
        ERR_clear_error();
        int n = SSL_read(ssl_.get(), buf, sizeof buf);
        if (n > 0) {
            if (auto wrapped = wrappedProtocol)
                wrapped->dataReceived(Bytes(reinterpret_cast<const std::byte*>(buf), static_cast<std::size_t>(n)));
            continue;
        }
        int err = SSL_get_error(ssl_.get(), n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
        if (err == SSL_ERROR_ZERO_RETURN) {
            if (!gotCloseNotify_) peerClosed();
            return;
        }
        fail(sslFailure(n, "reading"));
        return;
    }
}

void TLSMemoryBIOProtocol::peerClosed() {
    gotCloseNotify_ = true;
    if (sentCloseNotify_) {  // we started the close, the peer answered: done (TLS-21)
        if (!reason_) reason_ = error::connectionDone();
        phase_ = Phase::closed;
        cancelTimers();
        closeBelow();
        return;
    }
    if (auto* hc = dynamic_cast<IHalfCloseableProtocol*>(wrappedProtocol.get())) {
        // TLS-27, Better than Twisted: the peer closed its direction only.
        auto keep = wrappedProtocol;
        hc->readConnectionLost();
        return;
    }
    // The full close: what we had, then our close_notify, then the transport below.
    wantClose_ = true;
    sendCloseNotify();
    if (!reason_) reason_ = error::connectionDone();
    phase_ = Phase::closed;
    closeBelow();
}

// The output paths hold the producer's membrane while they run (Membrane::hold).
template <class F>
void TLSMemoryBIOProtocol::holdingProducer(F&& f) {
    auto membrane = membrane_;  // unregisterProducer() may drop membrane_ meanwhile
    if (!membrane) return f();
    membrane->hold();
    try {
        f();
    } catch (...) {
        membrane->releaseQuietly();
        throw;
    }
    membrane->release();  // what was held reaches the producer now: it may write or close
}

void TLSMemoryBIOProtocol::encryptPending() {
    holdingProducer([this] { encryptPendingNow(); });
}

void TLSMemoryBIOProtocol::drainOutgoing() {
    holdingProducer([this] { drainOutgoingNow(); });
}

void TLSMemoryBIOProtocol::encryptPendingNow() {
    if (phase_ == Phase::handshaking || pending_.empty() || sentCloseNotify_ || !ssl_ || lost_ || aborted_) return;
    std::size_t off = 0, sinceDrain = 0;
    while (off < pending_.size()) {
        std::size_t n = std::min(kRecordPlaintext, pending_.size() - off);
        ERR_clear_error();
        int rc = SSL_write(ssl_.get(), pending_.data() + off, static_cast<int>(n));
        if (rc <= 0) {
            pending_.clear();
            fail(sslFailure(rc, "writing"));
            return;
        }
        off += static_cast<std::size_t>(rc);
        sinceDrain += static_cast<std::size_t>(rc);
        // A large write leaves in slices: the memory BIO never holds much more
        // than one (a 50 MB write held 50 MB there, beside the plaintext and
        // the transport's copy).
        if (sinceDrain >= kDrainSlice && off < pending_.size()) {
            drainOutgoingNow();
            sinceDrain = 0;
        }
    }
    pending_.clear();
    if (pending_.capacity() > kKeepPending) std::vector<std::byte>().swap(pending_);
}

void TLSMemoryBIOProtocol::drainOutgoingNow() {
    if (!ssl_) return;
    BIO* out = SSL_get_wbio(ssl_.get());
    char* data = nullptr;
    long n = BIO_get_mem_data(out, &data);
    if (n <= 0) return;
    if (transport && !aborted_ && !lost_)
        transport->write(Bytes(reinterpret_cast<const std::byte*>(data), static_cast<std::size_t>(n)));
    // OpenSSL's BIO_reset() on a memory BIO clears its whole capacity, which
    // only grows: after one large batch every later drain, however small, paid
    // for it (2.4 ms per record after a 50 MB write). A BIO grown past
    // kKeepBIO is replaced instead, its memory given back.
    BUF_MEM* mem = nullptr;
    if (BIO_get_mem_ptr(out, &mem) == 1 && mem && mem->max > kKeepBIO) {
        if (BIO* fresh = BIO_new(BIO_s_mem())) {
            SSL_set0_wbio(ssl_.get(), fresh);  // frees the old one
            return;
        }
    }
    (void)BIO_reset(out);
}

bool TLSMemoryBIOProtocol::acceptsWrites() const noexcept {
    // TLS-27: after loseWriteConnection nothing more is sent, also when it was
    // asked during the handshake (the close_notify itself waits for its end).
    // A producer still registered holds the close, a pull producer the
    // half-close, and may write until it is unregistered (TLS-13, TLS-19; as
    // FD-12 and FD-31 over TCP).
    if (lost_ || aborted_ || sentCloseNotify_ || phase_ == Phase::closed) return false;
    if (wantWriteClose_ && !pullProducerHoldsHalfClose()) return false;
    return !wantClose_ || producerHoldsClose();
}

void TLSMemoryBIOProtocol::queued() {
    if (phase_ == Phase::handshaking) {
        updateProducerPause();  // TLS-16
        return;
    }
    if (pending_.size() > MAX_BUFFER_SIZE) {  // TLS-11: a full batch leaves at once
        encryptPending();
        drainOutgoing();
        return;
    }
    scheduleFlush();
}

void TLSMemoryBIOProtocol::write(Bytes data) {
    if (!acceptsWrites() || data.empty()) return;
    pending_.insert(pending_.end(), data.begin(), data.end());
    queued();
}

void TLSMemoryBIOProtocol::writeSequence(std::span<const Bytes> chunks) {
    if (!acceptsWrites()) return;
    std::size_t total = 0;
    for (Bytes c : chunks) total += c.size();
    if (total == 0) return;
    pending_.reserve(pending_.size() + total);
    for (Bytes c : chunks) pending_.insert(pending_.end(), c.begin(), c.end());
    queued();
}

void TLSMemoryBIOProtocol::scheduleFlush() {
    std::weak_ptr<BaseProtocol> weak = weak_from_this();
    if (Reactor* r = tlsFactory_.reactor()) {
        // Better than Twisted (TLS-11): no DelayedCall per batch, no extra zero-timeout pass.
        if (flushQueued_) return;
        flushQueued_ = true;
        r->callBeforeWait([weak] {
            if (auto self = weak.lock()) static_cast<TLSMemoryBIOProtocol&>(*self).flushPending();
        });
        return;
    }
    if (flushCall_ && flushCall_.active()) return;
    flushCall_ = tlsFactory_.clock().callLater(0, [weak] {
        if (auto self = weak.lock()) static_cast<TLSMemoryBIOProtocol&>(*self).flushPending();
    });
}

void TLSMemoryBIOProtocol::flushPending() {
    flushCall_ = DelayedCall();
    flushQueued_ = false;
    if (lost_ || aborted_) return;
    encryptPending();
    drainOutgoing();
}

void TLSMemoryBIOProtocol::sendCloseNotify() {
    if (sentCloseNotify_ || !ssl_ || phase_ == Phase::handshaking) return;
    encryptPending();  // Better than Twisted (TLS-21): what waits leaves before our close_notify
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
    sentCloseNotify_ = true;
    if (flushCall_ && flushCall_.active()) flushCall_.cancel();
    flushCall_ = DelayedCall();
    drainOutgoing();
}

void TLSMemoryBIOProtocol::startClose() {
    if (phase_ == Phase::closed || lost_) return;
    phase_ = Phase::closing;
    sendCloseNotify();
    if (gotCloseNotify_ || closeTimeout <= 0) {
        if (!reason_) reason_ = error::connectionDone();
        phase_ = Phase::closed;
        closeBelow();
        return;
    }
    armCloseTimer();
}

void TLSMemoryBIOProtocol::armCloseTimer() {
    if (closeTimeout <= 0 || (closeTimer_ && closeTimer_.active())) return;
    std::weak_ptr<BaseProtocol> weak = weak_from_this();
    closeTimer_ = tlsFactory_.clock().callLater(closeTimeout, [weak] {
        auto self = weak.lock();
        if (!self) return;
        auto& tls = static_cast<TLSMemoryBIOProtocol&>(*self);
        tls.closeTimer_ = DelayedCall();
        if (tls.lost_) return;
        // A peer still reading what we sent is not cut off: wait while bytes are queued below (TLS-22).
        // Through startTLS's bypass or a policy's wrapper too: any transport says what it holds.
        if (tls.transport && tls.transport->pendingBytes() > 0) {
            tls.armCloseTimer();
            return;
        }
        // Asked during the handshake, the close waited for it: say which wait ran out.
        tls.reason_ = Failure(error::ConnectionAborted(
            tls.phase_ == Phase::handshaking
                ? fmt::format("the handshake did not complete within {} s (closeTimeout) after the close was asked; "
                              "what was written was not sent",
                              tls.closeTimeout)
                : fmt::format("the peer did not answer close_notify within {} s (closeTimeout)", tls.closeTimeout)));
        tls.aborted_ = true;
        tls.phase_ = Phase::closed;
        if (tls.transport) abortTransport(*tls.transport);
    });
}

void TLSMemoryBIOProtocol::cancelTimers() noexcept {
    for (DelayedCall* c : {&flushCall_, &closeTimer_}) {
        if (*c && c->active()) {
            try {
                c->cancel();
            } catch (...) {}
        }
        *c = DelayedCall();
    }
}

void TLSMemoryBIOProtocol::loseConnection() {
    if (lost_ || aborted_ || wantClose_) return;
    auto self = shared_from_this();
    wantClose_ = true;
    if (producerHoldsClose()) return;  // TLS-19: the close waits for unregisterProducer()
    if (phase_ == Phase::handshaking) {
        if (pending_.empty()) {
            // TLS-23, Better than Twisted: give up the handshake with an orderly end of stream.
            reason_ = error::connectionDone();
            phase_ = Phase::closed;
            closeBelow();
            return;
        }
        armCloseTimer();  // the handshake, then the close, bounded as TLS-22
        return;
    }
    startClose();
}

void TLSMemoryBIOProtocol::loseConnectionDespiteProducer() {
    if (lost_ || aborted_) return;
    auto self = shared_from_this();
    closeDespiteProducer_ = true;
    wantClose_ = false;  // a close already waiting for unregisterProducer() starts now
    loseConnection();
}

bool TLSMemoryBIOProtocol::pullProducerHoldsHalfClose() const noexcept {
    return membrane_ && !membrane_->streaming() && !closeDespiteProducer_;
}

void TLSMemoryBIOProtocol::loseWriteConnection() {
    if (lost_ || aborted_) return;
    auto self = shared_from_this();
    // A close_notify waits for the end of the handshake, and for a registered
    // pull producer to be unregistered, as a TCP half-close does (FD-19, FD-31):
    // it writes only when asked, so until then it may have more to say. A push
    // producer does not hold it (a proxy's peer stays registered to the end).
    if (phase_ == Phase::handshaking || pullProducerHoldsHalfClose()) {
        wantWriteClose_ = true;
        return;
    }
    wantWriteClose_ = false;
    sendCloseNotify();
    if (gotCloseNotify_) {  // both directions are closed now
        if (!reason_) reason_ = error::connectionDone();
        phase_ = Phase::closed;
        closeBelow();
        return;
    }
    if (auto* hc = dynamic_cast<IHalfCloseableTransport*>(transport.get())) hc->loseWriteConnection();
    else if (auto* wrapped = dynamic_cast<IHalfCloseableProtocol*>(wrappedProtocol.get()))
        wrapped->writeConnectionLost();
}

void TLSMemoryBIOProtocol::abortConnection() {
    if (lost_ || aborted_) return;
    auto self = shared_from_this();
    aborted_ = true;  // TLS-26: no delivery after this, nothing more encrypted, no close_notify
    reason_ = Failure(error::ConnectionAborted());
    pending_.clear();
    phase_ = Phase::closed;
    cancelTimers();
    if (transport) abortTransport(*transport);
}

void TLSMemoryBIOProtocol::readConnectionLost() {
    if (lost_) return;
    auto self = shared_from_this();
    // The peer closed its direction after its close_notify, and a half-closeable
    // protocol still writes: wait for it (TLS-27).
    if (gotCloseNotify_ && !sentCloseNotify_ && dynamic_cast<IHalfCloseableProtocol*>(wrappedProtocol.get())) return;
    if (!reason_) {
        if (orderlyEnd()) reason_ = error::connectionDone();  // TLS-25, Better than Twisted
        else reason_ = Failure(error::ConnectionLost("the peer ended the stream without a TLS close_notify"));
    }
    phase_ = Phase::closed;
    cancelTimers();
    closeBelow();
}

void TLSMemoryBIOProtocol::connectionLost(const Failure& below) {
    if (lost_) return;
    auto self = shared_from_this();
    lost_ = true;
    cancelTimers();
    Failure reason = reason_.value_or(below);
    if (!reason_ && below.check<error::ConnectionDone>()) {
        reason = orderlyEnd() ? error::connectionDone()
                              : Failure(error::ConnectionLost("the peer ended the stream without a TLS close_notify"));
    }
    phase_ = Phase::closed;
    pending_.clear();
    membrane_.reset();
    ProtocolWrapper::connectionLost(reason);
    ssl_.reset();  // TLS-20: the OpenSSL objects go with the connection
}

bool TLSMemoryBIOProtocol::isConnected() const noexcept {
    return !lost_ && !aborted_ && transport && transport->isConnected();
}

bool TLSMemoryBIOProtocol::orderlyEnd() const noexcept {
    // The peer's close_notify; or our own, sent to close the whole connection (we
    // were ending it: what the peer still sends does not matter). Our close_notify
    // after loseWriteConnection() alone proves nothing about the peer's stream: an
    // end without its close_notify is a truncation (an injected FIN) there too.
    return gotCloseNotify_ || (wantClose_ && (sentCloseNotify_ || phase_ == Phase::closed));
}

void TLSMemoryBIOProtocol::writeConnectionLost() {
    if (lost_ || aborted_) return;
    if (auto* wrapped = dynamic_cast<IHalfCloseableProtocol*>(wrappedProtocol.get())) {
        auto self = shared_from_this();
        wrapped->writeConnectionLost();
    }
}

std::size_t TLSMemoryBIOProtocol::pendingBytes() const noexcept {
    return pending_.size() + (transport ? transport->pendingBytes() : 0);
}

bool TLSMemoryBIOProtocol::isDisconnecting() const noexcept {
    return wantClose_ || (transport && transport->isDisconnecting());
}

void TLSMemoryBIOProtocol::registerProducer(std::shared_ptr<IProducer> producer, bool streaming) {
    if (!producer) throw std::invalid_argument("registerProducer: null producer");
    checkProducerKind(*producer, streaming);  // the membrane stands for either kind
    if (lost_) {                              // TLS-18
        producer->stopProducing();
        return;
    }
    if (membrane_)
        throw std::runtime_error("Cannot register producer " + className(*producer) +
                                 ", because producer is already registered.");
    IConsumer* below = transport ? transport->asConsumer() : nullptr;
    if (!below) throw std::logic_error(logPrefix() + ": the transport below takes no producer");
    auto membrane = std::make_shared<Membrane>(std::move(producer), streaming);
    // Registered here first: a pull producer is asked for data inside the
    // registration below, and may unregister there (a producer with one chunk).
    membrane_ = membrane;
    try {
        below->registerProducer(membrane, streaming);
    } catch (...) {
        if (membrane_ == membrane) membrane_.reset();
        throw;
    }
    updateProducerPause();
}

void TLSMemoryBIOProtocol::unregisterProducer() {
    if (!membrane_) return;
    auto self = shared_from_this();
    membrane_.reset();
    if (IConsumer* below = transport ? transport->asConsumer() : nullptr) below->unregisterProducer();
    if (lost_ || aborted_) return;
    // TLS-19: the close asked for while producing starts now; or the half-close.
    if (wantClose_) {
        wantClose_ = false;
        loseConnection();
    } else if (wantWriteClose_ && phase_ == Phase::open) {
        loseWriteConnection();
    }
}

void TLSMemoryBIOProtocol::updateProducerPause() {
    // Held for the call: the producer's pauseProducing may unregister it, which drops membrane_.
    if (auto membrane = membrane_) membrane->pauseForTLS(phase_ == Phase::handshaking && !pending_.empty());
}

ITCPTransport* TLSMemoryBIOProtocol::tcpBelow() const noexcept { return dynamic_cast<ITCPTransport*>(transport.get()); }

bool TLSMemoryBIOProtocol::getTcpNoDelay() const {
    if (auto* t = tcpBelow()) return t->getTcpNoDelay();
    throw std::logic_error("getTcpNoDelay: the transport below TLS is not a TCP connection");
}
void TLSMemoryBIOProtocol::setTcpNoDelay(bool enabled) {
    if (auto* t = tcpBelow()) return t->setTcpNoDelay(enabled);
    throw std::logic_error("setTcpNoDelay: the transport below TLS is not a TCP connection");
}
bool TLSMemoryBIOProtocol::getTcpKeepAlive() const {
    if (auto* t = tcpBelow()) return t->getTcpKeepAlive();
    throw std::logic_error("getTcpKeepAlive: the transport below TLS is not a TCP connection");
}
void TLSMemoryBIOProtocol::setTcpKeepAlive(bool enabled) {
    if (auto* t = tcpBelow()) return t->setTcpKeepAlive(enabled);
    throw std::logic_error("setTcpKeepAlive: the transport below TLS is not a TCP connection");
}

std::optional<ssl::Certificate> TLSMemoryBIOProtocol::getPeerCertificate() const { return peerCertificate_; }

std::optional<std::string> TLSMemoryBIOProtocol::negotiatedProtocol() const { return negotiated_; }

ssl_st* TLSMemoryBIOProtocol::getHandle() const noexcept { return ssl_.get(); }

std::string TLSMemoryBIOProtocol::protocolVersion() const {
    return ssl_ && handshakeDone() ? SSL_get_version(ssl_.get()) : "";
}

std::string TLSMemoryBIOProtocol::cipherName() const {
    const SSL_CIPHER* c = ssl_ && handshakeDone() ? SSL_get_current_cipher(ssl_.get()) : nullptr;
    return c ? SSL_CIPHER_get_name(c) : "";
}

void TLSMemoryBIOProtocol::fail(Failure reason) {
    if (lost_) return;
    if (!reason_) reason_ = std::move(reason);
    drainOutgoing();  // the alert OpenSSL produced goes to the peer (TLS-9)
    phase_ = Phase::closed;
    pending_.clear();
    cancelTimers();
    closeBelow();
}

void TLSMemoryBIOProtocol::closeBelow() {
    if (!transport) return;
    // Whenever this layer closes the transport below, the TLS side of the close is
    // decided: the wrapped protocol's producer was unregistered (TLS-19), or the
    // connection ends on this layer's account (a fatal error, the peer's end of the
    // stream, both close_notifys exchanged, loseConnectionDespiteProducer()). The
    // membrane registered below must not hold it (FD-13): the wrapped protocol may
    // never unregister a producer when it did not ask to close. Queued bytes (an
    // alert, a close_notify) still go first.
    transport->loseConnectionDespiteProducer();  // the membrane below is stopped with it (FD-2)
}

Failure TLSMemoryBIOProtocol::sslFailure(int rc, const char* during) {
    int err = SSL_get_error(ssl_.get(), rc);
    auto entries = ssl::detail::takeErrorQueue();
    std::optional<ssl::Error::Verification> verification;
    auto* info = verifyInfo_.get();
    if (info && info->failed) {
        verification =
            ssl::Error::Verification{info->code, X509_verify_cert_error_string(info->code), info->depth, info->subject};
        if (info->code == X509_V_ERR_HOSTNAME_MISMATCH || info->code == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            std::string expected;
            if (const char* sni = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name)) expected = sni;
            else if (char* ip = X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param(ssl_.get()))) {
                expected = ip;
                OPENSSL_free(ip);
            }
            std::string held = info->names.empty() ? std::string("no certificate") : info->names;
            return Failure(ssl::VerificationError(
                fmt::format("TLS {}: the certificate does not match the expected name {} (it is for {})", during,
                            expected, held),
                std::move(entries), std::move(verification)));
        }
    }
    if (entries.empty()) {
        std::string what = err == SSL_ERROR_SYSCALL ? "unexpected end of the stream" : fmt::format("error {}", err);
        entries.push_back({"", what});
    }
    return Failure(ssl::Error(fmt::format("TLS {} failed", during), std::move(entries), std::move(verification)));
}

// ---- TLSMemoryBIOFactory ------------------------------------------------------------------

TLSMemoryBIOFactory::TLSMemoryBIOFactory(std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, bool client,
                                         std::shared_ptr<Factory> wrapped, IReactorTime& clock)
    : WrappingFactory(std::move(wrapped)), isClient(client), contextFactory_(std::move(contextFactory)), clock_(clock),
      reactor_(dynamic_cast<Reactor*>(&clock)) {
    if (!contextFactory_) throw std::invalid_argument("TLSMemoryBIOFactory: null context factory");
    noisy = false;                  // TLS-2
    contextFactory_->getContext();  // TLS-1: bad settings throw here
}

std::string TLSMemoryBIOFactory::logPrefix() const { return FileDescriptor::getLogPrefix(*wrappedFactory) + " (TLS)"; }

ssl::SSLHandle TLSMemoryBIOFactory::connectionForTLS() {
    if (isClient) {
        if (auto* creator = dynamic_cast<ssl::IOpenSSLClientConnectionCreator*>(contextFactory_.get()))
            return creator->clientConnectionForTLS();
    } else if (auto* creator = dynamic_cast<ssl::IOpenSSLServerConnectionCreator*>(contextFactory_.get())) {
        return creator->serverConnectionForTLS();
    }
    // A bare context factory is adapted (TLS-1).
    ssl::SSLHandle s(SSL_new(contextFactory_->getContext()));
    if (!s) throw ssl::Error::fromQueue("SSL_new");
    if (isClient) SSL_set_connect_state(s.get());
    else SSL_set_accept_state(s.get());
    return s;
}

std::shared_ptr<policies::ProtocolWrapper> TLSMemoryBIOFactory::wrapProtocol(std::shared_ptr<Protocol> wrapped) {
    return std::make_shared<TLSMemoryBIOProtocol>(std::static_pointer_cast<TLSMemoryBIOFactory>(shared_from_this()),
                                                  std::move(wrapped));
}

}  // namespace weft::tls
