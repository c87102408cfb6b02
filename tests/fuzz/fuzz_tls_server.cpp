// libFuzzer target: the server side of a TLS connection fed arbitrary bytes
// (tls.md TLS-8, TLS-9, TLS-20, TLS-24; issue #12 item 5).
//
// A server TLSMemoryBIOProtocol (its certificate made once, at the first
// input) sits on a testing::StringTransport and schedules on a task::Clock.
// Its application protocol echoes whatever plaintext arrives, so a handshake
// that gets through also exercises the encrypting side. The input is
//   byte 0       control: bits 0-1 the number of chunks - 1, bit 6 calls
//                loseConnection() after the last chunk, bit 7 abortConnection()
//                instead;
//   next bytes   one length byte per chunk but the last (the last takes the rest);
//   the rest     ciphertext "from the client", fed as those chunks with the
//                clock advanced between them.
// Then the close timer is run out and connectionLost() is called. Any crash,
// leak or undefined behaviour (ASan + UBSan) is a bug; so is an exception out of
// dataReceived() or connectionLost(), or an application protocol that hears
// connectionLost other than once.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <memory>
#include <string>

#include <weft/internet/error.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/ssl.hpp>
#include <weft/internet/task.hpp>
#include <weft/internet/testing.hpp>
#include <weft/protocols/tls.hpp>

namespace {

class Echo final : public weft::Protocol {
public:
    explicit Echo(std::shared_ptr<int> lost) : lost_(std::move(lost)) {}
    void dataReceived(weft::Bytes data) override { transport->write(data); }
    void connectionLost(const weft::Failure&) override { ++*lost_; }

private:
    std::shared_ptr<int> lost_;  // the count, shared with the harness (the protocol itself is the TLS layer's)
};

std::shared_ptr<weft::ssl::CertificateOptions> serverOptions() {
    static const std::shared_ptr<weft::ssl::CertificateOptions> options = [] {
        auto pki = weft::testing::certificatesForAuthorityAndServer("example.com");
        weft::ssl::CertificateSettings s;
        s.certificate = weft::ssl::Certificate(pki.server);
        s.privateKey = pki.server.privateKey();
        s.acceptableProtocols = {"h2", "http/1.1"};
        auto o = std::make_shared<weft::ssl::CertificateOptions>(std::move(s));
        o->getContext();
        return o;
    }();
    return options;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t control = data[0];
    std::size_t chunks = 1 + (control & 3u);
    std::size_t pos = 1;
    std::size_t lengths[3] = {0, 0, 0};
    for (std::size_t i = 0; i + 1 < chunks; ++i) lengths[i] = pos < size ? data[pos++] : 0;

    weft::task::Clock clock;
    auto lost = std::make_shared<int>(0);
    auto appFactory = std::make_shared<weft::Factory>();
    appFactory->noisy = false;
    appFactory->protocol = [lost] { return std::make_shared<Echo>(lost); };
    auto factory = std::make_shared<weft::tls::TLSMemoryBIOFactory>(serverOptions(), false, appFactory, clock);
    auto built = factory->buildProtocol(weft::IPv4Address("TCP", "192.0.2.1", 4433));
    auto tls = std::dynamic_pointer_cast<weft::tls::TLSMemoryBIOProtocol>(built);
    if (!tls) __builtin_trap();
    auto transport = std::make_shared<weft::testing::StringTransport>();
    tls->makeConnection(transport);

    for (std::size_t i = 0; i < chunks; ++i) {
        std::size_t n = i + 1 == chunks ? size - pos : std::min<std::size_t>(lengths[i], size - pos);
        tls->dataReceived(weft::Bytes(reinterpret_cast<const std::byte*>(data + pos), n));
        pos += n;
        clock.advance(0);  // the aggregated writes leave (TLS-11)
    }
    if (control & 0x80u) tls->abortConnection();
    else if (control & 0x40u) tls->loseConnection();
    clock.advance(tls->closeTimeout + 1);  // a close waiting for the peer's close_notify gives up (TLS-22)
    tls->connectionLost(weft::error::connectionDone());
    clock.advance(1);
    if (*lost != 1 || tls->wrappedProtocol) __builtin_trap();
    if (!clock.getDelayedCalls().empty()) __builtin_trap();  // nothing outlives the connection (TLS-20)
    return 0;
}
