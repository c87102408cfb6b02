// TLS endpoints, listenSSL/connectSSL and the "ssl:"/"tls:" description
// parsers. See weft/internet/sslendpoints.hpp.
#include <weft/internet/sslendpoints.hpp>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <weft/internet/abort.hpp>
#include <weft/internet/abstract.hpp>
#include <weft/internet/error.hpp>
#include <weft/protocols/tls.hpp>
#include <weft/text.hpp>

#include "internet/detail/sslparsers.hpp"
#include "internet/detail/sslutil.hpp"

namespace weft {

namespace {

IReactorTime& clockOf(IReactorTCP& reactor) {
    if (auto* clock = dynamic_cast<IReactorTime*>(&reactor)) return *clock;
    throw std::invalid_argument("TLS needs a clock: the reactor given is no IReactorTime (pass one explicitly)");
}

}  // namespace

// ---- listenSSL / connectSSL (TLS-32) ----------------------------------------------------------

namespace ssl {

std::shared_ptr<IListeningPort> listenSSL(IReactorTCP& reactor, IReactorTime& clock, std::uint16_t port,
                                          std::shared_ptr<Factory> factory,
                                          std::shared_ptr<IOpenSSLContextFactory> contextFactory, int backlog,
                                          const std::string& interface) {
    if (!factory) throw std::invalid_argument("listenSSL: null factory");
    auto tlsFactory =
        std::make_shared<tls::TLSMemoryBIOFactory>(std::move(contextFactory), false, std::move(factory), clock);
    return reactor.listenTCP(port, std::move(tlsFactory), backlog, interface);
}

std::shared_ptr<IListeningPort> listenSSL(IReactorTCP& reactor, std::uint16_t port, std::shared_ptr<Factory> factory,
                                          std::shared_ptr<IOpenSSLContextFactory> contextFactory, int backlog,
                                          const std::string& interface) {
    return listenSSL(reactor, clockOf(reactor), port, std::move(factory), std::move(contextFactory), backlog,
                     interface);
}

std::shared_ptr<IConnector> connectSSL(IReactorTCP& reactor, IReactorTime& clock, const std::string& host,
                                       std::uint16_t port, std::shared_ptr<ClientFactory> factory,
                                       std::shared_ptr<IOpenSSLContextFactory> contextFactory, double timeout,
                                       std::optional<BindAddress> bindAddress) {
    if (!factory) throw std::invalid_argument("connectSSL: null factory");
    auto tlsFactory =
        std::make_shared<tls::TLSMemoryBIOFactory>(std::move(contextFactory), true, std::move(factory), clock);
    return reactor.connectTCP(host, port, std::move(tlsFactory), timeout, std::move(bindAddress));
}

std::shared_ptr<IConnector> connectSSL(IReactorTCP& reactor, const std::string& host, std::uint16_t port,
                                       std::shared_ptr<ClientFactory> factory,
                                       std::shared_ptr<IOpenSSLContextFactory> contextFactory, double timeout,
                                       std::optional<BindAddress> bindAddress) {
    return connectSSL(reactor, clockOf(reactor), host, port, std::move(factory), std::move(contextFactory), timeout,
                      std::move(bindAddress));
}

}  // namespace ssl

namespace endpoints {

// ---- SSL4ServerEndpoint ----------------------------------------------------------------------

SSL4ServerEndpoint::SSL4ServerEndpoint(IReactorTCP& reactor, IReactorTime& clock, std::uint16_t port,
                                       std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, int backlog,
                                       std::string interface)
    : reactor_(reactor), clock_(clock), port_(port), contextFactory_(std::move(contextFactory)), backlog_(backlog),
      interface_(std::move(interface)) {
    if (!contextFactory_) throw std::invalid_argument("SSL4ServerEndpoint: null context factory");
}

SSL4ServerEndpoint::SSL4ServerEndpoint(IReactorTCP& reactor, std::uint16_t port,
                                       std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, int backlog,
                                       std::string interface)
    : SSL4ServerEndpoint(reactor, clockOf(reactor), port, std::move(contextFactory), backlog, std::move(interface)) {}

Deferred<std::shared_ptr<IListeningPort>> SSL4ServerEndpoint::listen(std::shared_ptr<Factory> factory) {
    try {
        return succeed(
            ssl::listenSSL(reactor_, clock_, port_, std::move(factory), contextFactory_, backlog_, interface_));
    } catch (...) {
        return fail<std::shared_ptr<IListeningPort>>(Failure::current());
    }
}

// ---- wrapClientTLS (TLS-49) --------------------------------------------------------------------

namespace {

// One connect() of a TLS client endpoint: the Deferred the caller holds, and
// the wrapped endpoint's while it is pending.
struct Attempt {
    std::optional<Deferred<std::shared_ptr<Protocol>>> result;  // until settled
    std::optional<Deferred<void>> inner;                        // the wrapped endpoint's, observed
    std::weak_ptr<ITransport> tls;                              // the TLS layer, once connected
    bool cancelled = false;

    void succeed(std::shared_ptr<Protocol> protocol) {
        if (!result) return;
        auto d = std::move(*result);
        result.reset();
        d.callback(std::move(protocol));
    }
    void fail(const Failure& reason) {
        if (!result) return;
        auto d = std::move(*result);
        result.reset();
        d.errback(reason);
    }
};

// The protocol the TLS layer wraps: it stands between the TLS layer and the
// application's protocol, whose transport is the TLS layer itself. It passes
// every callback on and settles the attempt: success at handshakeCompleted,
// failure when the connection ends before that.
class HandshakeWatcher : public Protocol, public ssl::IHandshakeListener {
public:
    HandshakeWatcher(std::shared_ptr<Attempt> attempt, std::shared_ptr<Protocol> app)
        : attempt_(std::move(attempt)), app_(std::move(app)) {}

    void connectionMade() override {
        attempt_->tls = transport;
        if (attempt_->cancelled) {  // the attempt was given up while the transport below connected
            abortTransport(*transport);
            return;
        }
        appConnected_ = true;
        app_->makeConnection(transport);  // TLS-6: before any TLS byte moves
    }
    void dataReceived(Bytes data) override {
        if (app_ && appConnected_) app_->dataReceived(data);
    }
    void handshakeCompleted() override {
        if (!app_ || !appConnected_) return;
        auto app = app_;
        if (auto* listener = dynamic_cast<ssl::IHandshakeListener*>(app.get())) listener->handshakeCompleted();
        attempt_->succeed(std::move(app));
    }
    void connectionLost(const Failure& reason) override {
        auto app = std::move(app_);
        if (app && appConnected_) app->connectionLost(reason);
        attempt_->fail(reason);  // nothing once it has fired (TLS-49)
    }
    std::string logPrefix() const override {
        return app_ ? FileDescriptor::getLogPrefix(*app_) : std::string("HandshakeWatcher");
    }

protected:
    std::shared_ptr<Attempt> attempt_;
    std::shared_ptr<Protocol> app_;  // until the connection is lost
    bool appConnected_ = false;
};

// For an application protocol that is half-closeable, so the TLS layer still sees one (TLS-27).
class HalfCloseableWatcher final : public HandshakeWatcher, public IHalfCloseableProtocol {
public:
    HalfCloseableWatcher(std::shared_ptr<Attempt> attempt, std::shared_ptr<Protocol> app,
                         IHalfCloseableProtocol& halfCloseable)
        : HandshakeWatcher(std::move(attempt), std::move(app)), halfCloseable_(halfCloseable) {}
    void readConnectionLost() override {
        if (app_ && appConnected_) halfCloseable_.readConnectionLost();
    }
    void writeConnectionLost() override {
        if (app_ && appConnected_) halfCloseable_.writeConnectionLost();
    }

private:
    IHalfCloseableProtocol& halfCloseable_;  // a base of *app_, held while it is called
};

// The factory the TLS layer wraps: builds the application's protocols with its
// factory, each inside a watcher, and starts and stops that factory with itself.
class WatchingFactory : public Factory {
public:
    WatchingFactory(std::shared_ptr<Factory> app, std::shared_ptr<Attempt> attempt)
        : app_(std::move(app)), attempt_(std::move(attempt)) {
        noisy = false;
    }
    void startFactory() override { app_->doStart(); }
    void stopFactory() override { app_->doStop(); }
    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override {
        auto built = app_->buildProtocol(addr);
        if (!built) return nullptr;  // refused: the endpoint fails with NoProtocol
        if (auto* hc = dynamic_cast<IHalfCloseableProtocol*>(built.get()))
            return std::make_shared<HalfCloseableWatcher>(attempt_, built, *hc);
        return std::make_shared<HandshakeWatcher>(attempt_, std::move(built));
    }
    std::string logPrefix() const override { return FileDescriptor::getLogPrefix(*app_); }

private:
    std::shared_ptr<Factory> app_;
    std::shared_ptr<Attempt> attempt_;
};

// For an application factory that chooses its ALPN protocols: the TLS layer
// asks the factory it wraps, so the watcher answers for it (TLS-46, as
// Twisted's wrapClientTLS hands the application's factory to the TLS layer).
class NegotiatingWatchingFactory final : public WatchingFactory, public ssl::IProtocolNegotiationFactory {
public:
    NegotiatingWatchingFactory(std::shared_ptr<Factory> app, std::shared_ptr<Attempt> attempt,
                               ssl::IProtocolNegotiationFactory& chooser)
        : WatchingFactory(std::move(app), std::move(attempt)), chooser_(chooser) {}
    std::vector<std::string> acceptableProtocols() const override { return chooser_.acceptableProtocols(); }

private:
    ssl::IProtocolNegotiationFactory& chooser_;  // a base of the application's factory, which the base holds
};

std::shared_ptr<Factory> watching(std::shared_ptr<Factory> app, std::shared_ptr<Attempt> attempt) {
    if (auto* chooser = dynamic_cast<ssl::IProtocolNegotiationFactory*>(app.get()))
        return std::make_shared<NegotiatingWatchingFactory>(std::move(app), std::move(attempt), *chooser);
    return std::make_shared<WatchingFactory>(std::move(app), std::move(attempt));
}

}  // namespace

TLSWrapperClientEndpoint::TLSWrapperClientEndpoint(std::shared_ptr<ssl::IOpenSSLContextFactory> connectionCreator,
                                                   std::shared_ptr<IStreamClientEndpoint> wrappedEndpoint,
                                                   IReactorTime& clock)
    : creator_(std::move(connectionCreator)), wrapped_(std::move(wrappedEndpoint)), clock_(clock) {
    if (!creator_) throw std::invalid_argument("wrapClientTLS: null connection creator");
    if (!wrapped_) throw std::invalid_argument("wrapClientTLS: null endpoint");
}

Deferred<std::shared_ptr<Protocol>> TLSWrapperClientEndpoint::connect(std::shared_ptr<Factory> factory) {
    std::shared_ptr<tls::TLSMemoryBIOFactory> tlsFactory;
    auto attempt = std::make_shared<Attempt>();
    try {
        if (!factory) throw std::invalid_argument("TLS client endpoint: null factory");
        tlsFactory =
            std::make_shared<tls::TLSMemoryBIOFactory>(creator_, true, watching(std::move(factory), attempt), clock_);
    } catch (...) {
        return fail<std::shared_ptr<Protocol>>(Failure::current());
    }
    std::weak_ptr<Attempt> weak = attempt;
    Deferred<std::shared_ptr<Protocol>> result([weak](Deferred<std::shared_ptr<Protocol>>&) {
        auto a = weak.lock();
        if (!a) return;
        a->cancelled = true;
        if (a->inner && !a->inner->called()) {
            a->inner->cancel();  // connecting: the wrapped endpoint's failure is ours
            return;
        }
        // The handshake is under way: give it up. The result is CancelledError,
        // not the loss the abort causes.
        a->result.reset();
        if (auto t = a->tls.lock()) abortTransport(*t);
    });
    attempt->result = result;
    // The step holds the attempt weakly (the attempt holds this Deferred): the
    // connection's factories hold it while the connection is being made.
    auto inner = wrapped_->connect(tlsFactory).addBoth([weak](Result<std::shared_ptr<Protocol>> r) {
        // Success is only the transport below: the watcher settles the attempt
        // at the handshake. A failure before that is the attempt's (TLS-49).
        if (auto a = weak.lock(); a && !r.ok()) a->fail(r.failure());
    });
    if (attempt->result) attempt->inner = std::move(inner);
    return result;
}

std::shared_ptr<TLSWrapperClientEndpoint> wrapClientTLS(std::shared_ptr<ssl::IOpenSSLContextFactory> connectionCreator,
                                                        std::shared_ptr<IStreamClientEndpoint> wrappedEndpoint,
                                                        IReactorTime& clock) {
    return std::make_shared<TLSWrapperClientEndpoint>(std::move(connectionCreator), std::move(wrappedEndpoint), clock);
}

// ---- SSL4ClientEndpoint -----------------------------------------------------------------------

SSL4ClientEndpoint::SSL4ClientEndpoint(IReactorTCP& reactor, IReactorTime& clock, std::string host, std::uint16_t port,
                                       std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, double timeout,
                                       std::optional<BindAddress> bindAddress)
    : tcp_(std::make_shared<TCP4ClientEndpoint>(reactor, std::move(host), port, timeout, std::move(bindAddress))),
      tls_(std::make_shared<TLSWrapperClientEndpoint>(std::move(contextFactory), tcp_, clock)) {}

SSL4ClientEndpoint::SSL4ClientEndpoint(IReactorTCP& reactor, std::string host, std::uint16_t port,
                                       std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, double timeout,
                                       std::optional<BindAddress> bindAddress)
    : SSL4ClientEndpoint(reactor, clockOf(reactor), std::move(host), port, std::move(contextFactory), timeout,
                         std::move(bindAddress)) {}

Deferred<std::shared_ptr<Protocol>> SSL4ClientEndpoint::connect(std::shared_ptr<Factory> factory) {
    return tls_->connect(std::move(factory));
}

// ---- the description parsers (SSLEP-1 … SSLEP-11) ---------------------------------------------

namespace detail {

namespace {

// A file named by `keyword`, read whole; InvalidEndpointDescription naming the
// endpoint type, the keyword and the path if it cannot be.
std::string readFileArgument(std::string_view type, std::string_view keyword, const std::string& path,
                             bool defaulted = false) {
    try {
        return ssl::readPEMFile(path, keyword);
    } catch (const ssl::CertificateError& e) {
        std::string where;
        if (defaulted) {
            std::error_code ec;
            auto cwd = std::filesystem::current_path(ec);
            where = fmt::format(" (the default {}, looked for in the working directory {})", keyword,
                                ec ? std::string("?") : quote(cwd.string()));
        }
        throw InvalidEndpointDescription(fmt::format("{}: {}{}", type, printable(e.what()), where));
    }
}

// The certificate (from the certificate file, else the key file) and the key
// (from the key file, else the certificate file): one file may hold both in
// either order (SSLEP-2, SSLEP-9). Errors name the keyword and the path.
ssl::PrivateCertificate certificateAndKey(std::string_view type, std::string_view certKeyword,
                                          const std::string& certPath, const std::string& certText,
                                          std::string_view keyKeyword, const std::string& keyPath,
                                          const std::string& keyText) {
    const bool oneFile = certPath == keyPath;
    auto certs = ssl::Certificate::loadAllPEM(certText);
    if (certs.empty() && !oneFile) certs = ssl::Certificate::loadAllPEM(keyText);
    if (certs.empty())
        throw InvalidEndpointDescription(fmt::format("{}: {} {}: no PEM certificate found{}", type, certKeyword,
                                                     quote(certPath),
                                                     oneFile ? "" : fmt::format(" (nor in {})", quote(keyPath))));
    std::optional<ssl::KeyPair> key;
    for (const std::string* text : {&keyText, &certText}) {
        try {
            key = ssl::KeyPair::loadPEM(*text, "");
            break;
        } catch (const ssl::PassphraseError&) {
            const std::string& where = text == &keyText ? keyPath : certPath;
            throw InvalidEndpointDescription(
                fmt::format("{}: {} {}: the private key is encrypted, and an endpoint cannot be given its passphrase "
                            "(decrypt it once: openssl pkey -in {} -out PLAIN.pem)",
                            type, keyKeyword, quote(where), quote(where)));
        } catch (const ssl::CertificateError&) {
            if (oneFile) break;
        }
    }
    if (!key)
        throw InvalidEndpointDescription(fmt::format("{}: {} {}: no PEM private key found{}", type, keyKeyword,
                                                     quote(keyPath),
                                                     oneFile ? "" : fmt::format(" (nor in {})", quote(certPath))));
    try {
        return ssl::PrivateCertificate::fromCertificateAndKeyPair(certs.front(), *key);
    } catch (const ssl::CertificateError&) {
        throw InvalidEndpointDescription(fmt::format("{}: {} {}: the private key does not match the certificate in {}",
                                                     type, keyKeyword, quote(keyPath), quote(certPath)));
    }
}

// A client certificate from `certKeyword`=FILE and privateKey=FILE (the same
// file when absent); nullopt without the certificate. privateKey alone throws
// (SSLEP-9, Better than Twisted).
std::optional<ssl::PrivateCertificate> clientCertificate(std::string_view type, std::string_view certKeyword,
                                                         const Bound& b) {
    bool hasCert = b.count(std::string(certKeyword)) != 0, hasKey = b.count("privateKey") != 0;
    if (!hasCert) {
        if (hasKey)
            throw EndpointArgumentError(fmt::format(
                "{}: privateKey is given without {} (the client certificate it belongs to)", type, certKeyword));
        return std::nullopt;
    }
    const std::string& certPath = b.at(std::string(certKeyword));
    std::string keyPath = hasKey ? b.at("privateKey") : certPath;
    std::string certText = readFileArgument(type, certKeyword, certPath);
    std::string keyText = keyPath == certPath ? certText : readFileArgument(type, "privateKey", keyPath);
    return certificateAndKey(type, certKeyword, certPath, certText, "privateKey", keyPath, keyText);
}

// The certificates of a directory (SSLEP-7) as the only trust roots.
std::shared_ptr<ssl::IOpenSSLTrustRoot> trustRootFromDirectory(std::string_view type, std::string_view keyword,
                                                               const std::string& directory) {
    try {
        return ssl::trustRootFromCertificates(ssl::certificatesFromDirectory(directory));
    } catch (const std::invalid_argument& e) {
        throw InvalidEndpointDescription(fmt::format("{}: {}: {}", type, keyword, printable(e.what())));
    }
}

// Runs f, turning what the TLS configuration throws (a refused setting, a
// certificate OpenSSL will not use, a name IDNA refuses) into InvalidEndpointDescription.
template <class F>
auto configuring(std::string_view type, F&& f) {
    try {
        return f();
    } catch (const InvalidEndpointDescription&) {
        throw;
    } catch (const EndpointArgumentError&) {
        throw;
    } catch (const std::invalid_argument& e) {
        throw InvalidEndpointDescription(fmt::format("{}: {}", type, printable(e.what())));
    } catch (const ssl::CertificateError& e) {
        throw InvalidEndpointDescription(fmt::format("{}: {}", type, printable(e.what())));
    } catch (const ssl::Error& e) {
        throw InvalidEndpointDescription(fmt::format("{}: {}", type, printable(e.what())));
    }
}

ssl::SSLMethod methodArgument(const std::string& name) {
    static const std::pair<const char*, ssl::SSLMethod> kMethods[] = {
        {"TLS_METHOD", ssl::SSLMethod::TLS},         {"SSLv23_METHOD", ssl::SSLMethod::SSLv23},
        {"TLSv1_2_METHOD", ssl::SSLMethod::TLSv1_2}, {"TLSv1_1_METHOD", ssl::SSLMethod::TLSv1_1},
        {"TLSv1_METHOD", ssl::SSLMethod::TLSv1},
    };
    std::string names;
    for (const auto& [n, m] : kMethods) {
        if (name == n) return m;
        names += (names.empty() ? "" : ", ") + std::string(n);
    }
    throw InvalidEndpointDescription(fmt::format("ssl: sslmethod {} is not one of {}", quote(name), names));
}

}  // namespace

// SSLEP-1 … SSLEP-5: ssl:PORT[:privateKey[:certKey[:sslmethod[:interface[:backlog[:extraCertChain[:dhParameters]]]]]]]
std::shared_ptr<IStreamServerEndpoint> parseSSLServer(const ReactorRef& reactor, const EndpointDescription& d,
                                                      const ServerParseContext&) {
    Bound b = bindArguments(
        "ssl", d,
        {"port", "privateKey", "certKey", "sslmethod", "interface", "backlog", "extraCertChain", "dhParameters"},
        {"port"});
    std::uint16_t port = portArgument("ssl", b["port"]);
    int backlog = intArgument("ssl", "backlog", valueOr(b, "backlog", "50"));
    std::optional<ssl::SSLMethod> method;
    if (b.count("sslmethod")) method = methodArgument(b["sslmethod"]);
    IReactorTCP& tcp = need<IReactorTCP>(reactor, "ssl");
    IReactorTime& clock = need<IReactorTime>(reactor, "ssl");

    const bool defaultKey = !b.count("privateKey");
    const std::string keyPath = valueOr(b, "privateKey", "server.pem");
    const std::string certPath = valueOr(b, "certKey", keyPath);
    std::string keyText = readFileArgument("ssl", "privateKey", keyPath, defaultKey);
    std::string certText = certPath == keyPath ? keyText : readFileArgument("ssl", "certKey", certPath);
    auto identity = certificateAndKey("ssl", "certKey", certPath, certText, "privateKey", keyPath, keyText);

    ssl::CertificateSettings settings;
    settings.certificate = ssl::Certificate(identity);
    settings.privateKey = identity.privateKey();
    settings.method = method;
    if (b.count("extraCertChain")) {
        const std::string& chainPath = b["extraCertChain"];
        settings.extraCertChain = ssl::Certificate::loadAllPEM(readFileArgument("ssl", "extraCertChain", chainPath));
        if (settings.extraCertChain.empty())
            throw InvalidEndpointDescription(fmt::format(
                "ssl: extraCertChain: Specified chain file {} doesn't contain any valid certificates in PEM format.",
                quote(chainPath)));
    }
    if (b.count("dhParameters"))  // read and checked now (SSLEP-4, Better than Twisted)
        settings.dhParameters =
            configuring("ssl", [&] { return ssl::DiffieHellmanParameters::fromFile(b["dhParameters"]); });
    auto options = configuring("ssl", [&] {
        auto o = std::make_shared<ssl::CertificateOptions>(std::move(settings));
        o->getContext();  // what OpenSSL refuses, refused now
        return o;
    });
    return std::make_shared<SSL4ServerEndpoint>(tcp, clock, port, std::move(options), backlog,
                                                valueOr(b, "interface", ""));
}

// SSLEP-6, EP-15: ssl:HOST:PORT with the tcp client arguments, certKey,
// privateKey, caCertsDir and hostname.
std::shared_ptr<IStreamClientEndpoint> parseSSLClient(const ReactorRef& reactor, const EndpointDescription& d) {
    Bound b;
    bindHostAndPort("ssl", d, b);
    bindKeywords("ssl", d,
                 {"host", "port", "timeout", "bindAddress", "certKey", "privateKey", "caCertsDir", "hostname"}, b);
    requireArguments("ssl", b, {"host", "port"});
    std::uint16_t port = portArgument("ssl", b["port"]);
    int timeout = intArgument("ssl", "timeout", valueOr(b, "timeout", "30"));
    std::optional<BindAddress> bindAddress;
    if (b.count("bindAddress")) bindAddress = BindAddress{b["bindAddress"], 0};
    IReactorTCP& tcp = need<IReactorTCP>(reactor, "ssl");
    IReactorTime& clock = need<IReactorTime>(reactor, "ssl");

    auto certificate = clientCertificate("ssl", "certKey", b);
    std::shared_ptr<ssl::IOpenSSLTrustRoot> trustRoot;
    if (b.count("caCertsDir")) trustRoot = trustRootFromDirectory("ssl", "caCertsDir", b["caCertsDir"]);
    std::shared_ptr<ssl::IOpenSSLContextFactory> options = configuring("ssl", [&] {
        std::shared_ptr<ssl::IOpenSSLContextFactory> o;
        if (b.count("hostname")) {
            // Chain and name verified against the directory or the platform's roots; SNI sent.
            o = ssl::optionsForClientTLS(b["hostname"], trustRoot, certificate);
        } else {
            // No name to check: the chain is verified only with caCertsDir (EP-15).
            ssl::CertificateSettings s;
            s.trustRoot = trustRoot;
            if (certificate) {
                s.certificate = ssl::Certificate(*certificate);
                s.privateKey = certificate->privateKey();
            }
            o = std::make_shared<ssl::CertificateOptions>(std::move(s));
        }
        return o;
    });
    return std::make_shared<SSL4ClientEndpoint>(tcp, clock, b["host"], port, std::move(options), timeout,
                                                std::move(bindAddress));
}

// SSLEP-8 … SSLEP-11, EP-16: tls:HOST:PORT with timeout, bindAddress,
// certificate, privateKey, trustRoots and endpoint.
std::shared_ptr<IStreamClientEndpoint> parseTLSClient(const ReactorRef& reactor, const EndpointDescription& d) {
    const std::initializer_list<std::string_view> kKeywords = {"host",        "port",       "timeout",    "bindAddress",
                                                               "certificate", "privateKey", "trustRoots", "endpoint"};
    std::string unknown;  // every unknown keyword at once (SSLEP-8)
    for (const auto& [key, value] : d.kwargs)
        if (std::find(kKeywords.begin(), kKeywords.end(), key) == kKeywords.end())
            unknown += (unknown.empty() ? "" : ", ") + quote(key);
    if (!unknown.empty()) throw EndpointArgumentError("tls: unrecognized keyword arguments: " + unknown);
    Bound b;
    bindHostAndPort("tls", d, b);
    bindKeywords("tls", d, kKeywords, b);
    requireArguments("tls", b, {"host", "port"});
    std::uint16_t port = portArgument("tls", b["port"]);
    int timeout = intArgument("tls", "timeout", valueOr(b, "timeout", "30"));
    const std::string& host = b["host"];
    if (host.empty()) throw InvalidEndpointDescription("tls: the host is empty (it names the server to verify)");
    IReactorTime& clock = need<IReactorTime>(reactor, "tls");

    std::shared_ptr<IStreamClientEndpoint> below;
    if (b.count("endpoint")) {
        // SSLEP-11: HOST is used only for SNI and verification.
        below = clientFromString(reactor, b["endpoint"]);
    } else {
        IReactorTCP& tcp = need<IReactorTCP>(reactor, "tls");
        std::string connectTo =
            configuring("tls", [&] { return ssl::detail::isIPLiteral(host) ? host : ssl::detail::idnaEncode(host); });
        std::optional<BindAddress> bindAddress;
        if (b.count("bindAddress")) bindAddress = BindAddress{b["bindAddress"], 0};
        below = std::make_shared<TCP4ClientEndpoint>(tcp, std::move(connectTo), port, timeout, std::move(bindAddress));
    }
    auto certificate = clientCertificate("tls", "certificate", b);
    // SSLEP-10: the platform's roots, or only the directory's; never unverified.
    std::shared_ptr<ssl::IOpenSSLTrustRoot> trustRoot =
        b.count("trustRoots") ? trustRootFromDirectory("tls", "trustRoots", b["trustRoots"]) : ssl::platformTrust();
    std::shared_ptr<ssl::IOpenSSLContextFactory> options =
        configuring("tls", [&] { return ssl::optionsForClientTLS(host, trustRoot, certificate); });
    return wrapClientTLS(std::move(options), std::move(below), clock);
}

}  // namespace detail

}  // namespace endpoints
}  // namespace weft
