// weft/internet/sslendpoints.hpp — TLS endpoints and listenSSL/connectSSL
// (twisted.internet.endpoints SSL4ServerEndpoint, SSL4ClientEndpoint,
// wrapClientTLS; IReactorSSL). Spec: tls.md TLS-32, TLS-49, SSLEP-1 … SSLEP-12;
// protocols.md EP-8, EP-15, EP-16.
//
//   ssl::listenSSL, ssl::connectSSL          listenTCP / connectTCP with the TLS layer (TLS-32)
//   endpoints::SSL4ServerEndpoint            "ssl:PORT:privateKey=…:certKey=…" (SSLEP-1 … SSLEP-5)
//   endpoints::SSL4ClientEndpoint            "ssl:HOST:PORT[:caCertsDir=…][:hostname=…]" (SSLEP-6)
//   endpoints::wrapClientTLS,
//   endpoints::TLSWrapperClientEndpoint      TLS over any client endpoint; "tls:HOST:PORT" (SSLEP-8 … SSLEP-11)
//
// The description strings are parsed by serverFromString / clientFromString
// (weft/internet/endpoints.hpp), which know "ssl" (server, lower case only)
// and "ssl"/"tls" (client, any case). Every file a description names is read
// and checked when the string is parsed; a file that cannot be used throws
// InvalidEndpointDescription naming the keyword, the path and the problem
// (SSLEP-2, SSLEP-9, Better than Twisted), and a keyword without the one it
// needs (privateKey without a certificate) throws EndpointArgumentError.
//
// Timing (TLS-49, Better than Twisted): a TLS client endpoint's connect()
// fires after the TLS handshake completed — after the application protocol's
// connectionMade() and handshakeCompleted() (if it is an IHandshakeListener)
// — with the application protocol, whose transport is the TLS layer. If the
// connection ends before that, the Deferred fails with the reason the TLS
// layer gave (an ssl::Error or ssl::VerificationError for a failed handshake
// or verification). So a server whose certificate fails verification never
// "connects".
//
// Clocks: the TLS layer schedules write aggregation and its close timeout on
// an IReactorTime. The endpoints and the functions below take it explicitly,
// or use the reactor itself when it is one (a weft::Reactor or a
// testing::MemoryReactorClock); the string parsers ask the ReactorRef for it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <weft/export.hpp>
#include <weft/internet/endpoints.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/ssl.hpp>
#include <weft/internet/error.hpp>

namespace weft::ssl {

/// listenTCP with a server TLSMemoryBIOFactory around `factory` (Twisted
/// IReactorSSL.listenSSL; TLS-32): each accepted connection runs TLS before
/// the protocol's connectionMade. contextFactory->getContext() is called
/// here, so a context that cannot be built throws from this call, as does
/// listenTCP (error::CannotListenError). `clock` schedules the TLS layer's
/// timers; not owned, it must outlive the port's connections.
WEFT_EXPORT std::shared_ptr<IListeningPort> listenSSL(IReactorTCP& reactor, IReactorTime& clock, std::uint16_t port,
                                                      std::shared_ptr<Factory> factory,
                                                      std::shared_ptr<IOpenSSLContextFactory> contextFactory,
                                                      int backlog = 50, const std::string& interface = "");
/// The same on the reactor's own clock: std::invalid_argument if `reactor`
/// is no IReactorTime.
WEFT_EXPORT std::shared_ptr<IListeningPort> listenSSL(IReactorTCP& reactor, std::uint16_t port,
                                                      std::shared_ptr<Factory> factory,
                                                      std::shared_ptr<IOpenSSLContextFactory> contextFactory,
                                                      int backlog = 50, const std::string& interface = "");

/// connectTCP with a client TLSMemoryBIOFactory around `factory` (Twisted
/// IReactorSSL.connectSSL; TLS-32). The factory's client callbacks
/// (startedConnecting, clientConnectionFailed, clientConnectionLost) are
/// passed on. Throws what getContext() or connectTCP throws.
WEFT_EXPORT std::shared_ptr<IConnector> connectSSL(IReactorTCP& reactor, IReactorTime& clock, const std::string& host,
                                                   std::uint16_t port, std::shared_ptr<ClientFactory> factory,
                                                   std::shared_ptr<IOpenSSLContextFactory> contextFactory,
                                                   double timeout = 30,
                                                   std::optional<BindAddress> bindAddress = std::nullopt);
/// The same on the reactor's own clock: std::invalid_argument if `reactor`
/// is no IReactorTime.
WEFT_EXPORT std::shared_ptr<IConnector> connectSSL(IReactorTCP& reactor, const std::string& host, std::uint16_t port,
                                                   std::shared_ptr<ClientFactory> factory,
                                                   std::shared_ptr<IOpenSSLContextFactory> contextFactory,
                                                   double timeout = 30,
                                                   std::optional<BindAddress> bindAddress = std::nullopt);

}  // namespace weft::ssl

namespace weft::endpoints {

/// Listens with TLS on a TCP port (Twisted SSL4ServerEndpoint; SSLEP-1):
/// listen() is ssl::listenSSL(reactor, clock, port, factory, contextFactory,
/// backlog, interface).
class WEFT_EXPORT SSL4ServerEndpoint final : public IStreamServerEndpoint {
public:
    SSL4ServerEndpoint(IReactorTCP& reactor, IReactorTime& clock, std::uint16_t port,
                       std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, int backlog = 50,
                       std::string interface = "");
    /// The same on the reactor's own clock (std::invalid_argument if it has none).
    SSL4ServerEndpoint(IReactorTCP& reactor, std::uint16_t port,
                       std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, int backlog = 50,
                       std::string interface = "");

    /// A fired Deferred with the port, or a failed one (CannotListenError, or
    /// what building the context threw); it never throws.
    Deferred<std::shared_ptr<IListeningPort>> listen(std::shared_ptr<Factory> factory) override;

    IReactorTCP& reactor() const noexcept { return reactor_; }
    IReactorTime& clock() const noexcept { return clock_; }
    std::uint16_t port() const noexcept { return port_; }
    const std::shared_ptr<ssl::IOpenSSLContextFactory>& contextFactory() const noexcept { return contextFactory_; }
    int backlog() const noexcept { return backlog_; }
    const std::string& interface() const noexcept { return interface_; }

private:
    IReactorTCP& reactor_;
    IReactorTime& clock_;
    std::uint16_t port_;
    std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory_;
    int backlog_;
    std::string interface_;
};

/// TLS over another client endpoint (Twisted's _WrapperEndpoint, made by
/// wrapClientTLS; TLS-49). connect(factory) connects the wrapped endpoint
/// with a client TLSMemoryBIOFactory around `factory` and fires with the
/// application protocol once the handshake completed (see the file comment).
/// Failures of the wrapped endpoint reach the Deferred unchanged. cancel()
/// cancels the wrapped endpoint's Deferred while it is connecting (its
/// failure, CancelledError for weft's endpoints, is the result), and aborts
/// the TLS connection during the handshake (CancelledError).
class WEFT_EXPORT TLSWrapperClientEndpoint final : public IStreamClientEndpoint {
public:
    /// `clock`: not owned; it must outlive the connections.
    TLSWrapperClientEndpoint(std::shared_ptr<ssl::IOpenSSLContextFactory> connectionCreator,
                             std::shared_ptr<IStreamClientEndpoint> wrappedEndpoint, IReactorTime& clock);

    Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> factory) override;

    /// The client connection creator (a ClientTLSOptions from optionsForClientTLS, a CertificateOptions, …).
    const std::shared_ptr<ssl::IOpenSSLContextFactory>& connectionCreator() const noexcept { return creator_; }
    const std::shared_ptr<IStreamClientEndpoint>& wrappedEndpoint() const noexcept { return wrapped_; }
    IReactorTime& clock() const noexcept { return clock_; }

private:
    std::shared_ptr<ssl::IOpenSSLContextFactory> creator_;
    std::shared_ptr<IStreamClientEndpoint> wrapped_;
    IReactorTime& clock_;
};

/// An endpoint that runs TLS, as a client made by `connectionCreator`, over
/// the connections `wrappedEndpoint` makes (Twisted wrapClientTLS; TLS-49).
/// Throws std::invalid_argument for a null creator or endpoint.
WEFT_EXPORT std::shared_ptr<TLSWrapperClientEndpoint> wrapClientTLS(
    std::shared_ptr<ssl::IOpenSSLContextFactory> connectionCreator,
    std::shared_ptr<IStreamClientEndpoint> wrappedEndpoint, IReactorTime& clock);

/// Connects with TLS over TCP (Twisted SSL4ClientEndpoint; SSLEP-6): the
/// connection is connectTCP(host, port, …, timeout, bindAddress) with a
/// client TLSMemoryBIOFactory, and connect() fires after the handshake
/// (SSLEP-12, TLS-49), as TLSWrapperClientEndpoint's does.
class WEFT_EXPORT SSL4ClientEndpoint final : public IStreamClientEndpoint {
public:
    SSL4ClientEndpoint(IReactorTCP& reactor, IReactorTime& clock, std::string host, std::uint16_t port,
                       std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, double timeout = 30,
                       std::optional<BindAddress> bindAddress = std::nullopt);
    /// The same on the reactor's own clock (std::invalid_argument if it has none).
    SSL4ClientEndpoint(IReactorTCP& reactor, std::string host, std::uint16_t port,
                       std::shared_ptr<ssl::IOpenSSLContextFactory> contextFactory, double timeout = 30,
                       std::optional<BindAddress> bindAddress = std::nullopt);

    Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> factory) override;

    IReactorTCP& reactor() const noexcept { return tcp_->reactor(); }
    IReactorTime& clock() const noexcept { return tls_->clock(); }
    const std::string& host() const noexcept { return tcp_->host(); }
    std::uint16_t port() const noexcept { return tcp_->port(); }
    double timeout() const noexcept { return tcp_->timeout(); }
    const std::optional<BindAddress>& bindAddress() const noexcept { return tcp_->bindAddress(); }
    const std::shared_ptr<ssl::IOpenSSLContextFactory>& contextFactory() const noexcept {
        return tls_->connectionCreator();
    }

private:
    std::shared_ptr<TCP4ClientEndpoint> tcp_;
    std::shared_ptr<TLSWrapperClientEndpoint> tls_;
};

}  // namespace weft::endpoints
