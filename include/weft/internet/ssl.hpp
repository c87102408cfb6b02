// weft/internet/ssl.hpp — TLS configuration on OpenSSL 3 (twisted.internet.ssl,
// twisted.internet._sslverify). Spec: tls.md TLS-33 … TLS-47, TLS-52.
//
// What is here builds OpenSSL contexts and connections; the TLS layer that uses
// them on a connection is weft::tls::TLSMemoryBIOProtocol (weft/protocols/tls.hpp).
//
//  * Certificates and keys: Certificate, KeyPair, PrivateCertificate, loaded from
//    PEM text or files; every loading error names what was wrong (TLS-47).
//  * CertificateOptions: one context (server or client) from a Settings struct
//    whose optional fields record what the caller set (TLS-33 … TLS-39).
//  * optionsForClientTLS: a client that always verifies the server's chain and
//    name, with SNI (TLS-40 … TLS-42).
//  * Trust roots: platformTrust() (OpenSSL's default paths, SSL_CERT_FILE /
//    SSL_CERT_DIR) or trustRootFromCertificates() (TLS-43).
//  * The transport-side interfaces a TLS connection offers: ISSLTransport,
//    INegotiated, ISystemHandle, and IHandshakeListener for protocols.
//
// OpenSSL types appear only as forward-declared pointers (SSL*, SSL_CTX*, X509*,
// EVP_PKEY*), so including this header needs no OpenSSL headers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/interfaces.hpp>

struct ssl_st;
struct ssl_ctx_st;
struct x509_st;
struct evp_pkey_st;

namespace weft::ssl {

// ---- errors -----------------------------------------------------------------------------

/// An OpenSSL failure (Twisted's OpenSSL.SSL.Error): this operation's entries
/// of OpenSSL's error queue as (library, reason) pairs, and for a certificate
/// that failed verification the X.509 result, the chain depth and the subject
/// of the certificate that failed (TLS-9, Better than Twisted). what() joins
/// them into one line, e.g. "SSL routines: certificate verify failed
/// (X.509: unable to get local issuer certificate, depth 0, subject CN=x)".
class WEFT_EXPORT Error : public std::runtime_error {
public:
    struct Entry {
        std::string library;
        std::string reason;
    };
    struct Verification {
        long code = 0;        ///< X509_V_ERR_*
        std::string text;     ///< X509_verify_cert_error_string(code)
        int depth = 0;        ///< in the peer's chain (0: the leaf)
        std::string subject;  ///< of the certificate that failed, one line
    };
    Error(std::string context, std::vector<Entry> entries, std::optional<Verification> verification = std::nullopt);

    const std::vector<Entry>& entries() const noexcept { return entries_; }
    const std::optional<Verification>& verification() const noexcept { return verification_; }
    /// True if some entry's reason contains `text`.
    bool mentions(std::string_view text) const noexcept;

    /// Takes (and clears) the calling thread's OpenSSL error queue.
    static Error fromQueue(std::string context, std::optional<Verification> verification = std::nullopt);

private:
    std::vector<Entry> entries_;
    std::optional<Verification> verification_;
};

/// The server's certificate does not match the name the client expected
/// (service_identity's VerificationError; TLS-41). what() names the expected
/// name and the names the certificate holds.
class WEFT_EXPORT VerificationError : public Error {
public:
    using Error::Error;
};

/// A certificate or key that cannot be used: unreadable, not PEM, not matching
/// (Twisted CertificateError / VerifyError; TLS-5, TLS-47).
class WEFT_EXPORT CertificateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A private key that is encrypted and was given no passphrase, or a wrong one.
/// weft never asks for a passphrase on the terminal (OpenSSL's default would
/// prompt and block on standard input; Better than Twisted).
class WEFT_EXPORT PassphraseError : public CertificateError {
public:
    using CertificateError::CertificateError;
};

// ---- certificates and keys --------------------------------------------------------------

/// A private (and public) key (Twisted KeyPair).
class WEFT_EXPORT KeyPair {
public:
    /// The first private key in PEM text; `origin` names where it came from in errors.
    /// An encrypted key (PKCS#8 or traditional PEM) needs `passphrase`: without
    /// one, or with a wrong one, it throws PassphraseError; nothing is prompted.
    static KeyPair loadPEM(std::string_view pem, std::string_view origin = "PEM data",
                           std::optional<std::string_view> passphrase = std::nullopt);
    /// A new ECDSA P-256 key.
    static KeyPair generate();
    std::string dumpPEM() const;
    evp_pkey_st* native() const noexcept { return key_.get(); }

private:
    explicit KeyPair(std::shared_ptr<evp_pkey_st> k) : key_(std::move(k)) {}
    std::shared_ptr<evp_pkey_st> key_;
    friend class PrivateCertificate;
};

/// An X.509 certificate (Twisted Certificate). Cheap to copy (shared).
class WEFT_EXPORT Certificate {
public:
    /// The first certificate in PEM text; CertificateError naming `origin` if none.
    static Certificate loadPEM(std::string_view pem, std::string_view origin = "PEM data");
    /// Every certificate in PEM text, in order (none: an empty vector).
    static std::vector<Certificate> loadAllPEM(std::string_view pem);
    /// The peer's / our certificate on a TLS transport (TLS-5). CertificateError
    /// "non-TLS transport" for a transport without TLS, "TLS transport …" when
    /// that side has none.
    static Certificate peerFromTransport(ITransport& transport);
    static Certificate hostFromTransport(ITransport& transport);
    /// Wraps an X509* (taking a reference of its own).
    static Certificate fromNative(x509_st* x509);

    std::string dumpPEM() const;
    /// The subject and issuer in one line, as "CN=example.com,O=…".
    std::string subject() const;
    std::string issuer() const;
    /// Hex SHA-256 digest of the DER encoding.
    std::string digest() const;
    x509_st* native() const noexcept { return cert_.get(); }
    friend bool operator==(const Certificate& a, const Certificate& b) { return a.digest() == b.digest(); }

protected:
    explicit Certificate(std::shared_ptr<x509_st> c) : cert_(std::move(c)) {}
    std::shared_ptr<x509_st> cert_;
};

/// A certificate with its private key (Twisted PrivateCertificate).
class WEFT_EXPORT PrivateCertificate : public Certificate {
public:
    /// The certificate and the key from one PEM text, in either order (TLS-47).
    static PrivateCertificate loadPEM(std::string_view pem, std::string_view origin = "PEM data");
    /// Checks that `key` belongs to `cert`: CertificateError "Certificate public
    /// and private keys do not match." otherwise.
    static PrivateCertificate fromCertificateAndKeyPair(const Certificate& cert, const KeyPair& key);
    const KeyPair& privateKey() const noexcept { return key_; }
    /// Certificate then key, PEM.
    std::string dumpPEM() const;

private:
    PrivateCertificate(Certificate c, KeyPair k) : Certificate(std::move(c)), key_(std::move(k)) {}
    KeyPair key_;
};

/// Reads a whole file for the loaders; CertificateError naming the path and the
/// keyword (e.g. "privateKey") if it cannot be read, is not a regular file (a
/// FIFO would block, a device such as /dev/zero never ends) or is larger than
/// 16 MiB.
WEFT_EXPORT std::string readPEMFile(const std::string& path, std::string_view what);

// ---- versions, ciphers, parameters -----------------------------------------------------------

/// TLS protocol versions (Twisted TLSVersion), oldest first.
enum class TLSVersion { SSLv3, TLSv1_0, TLSv1_1, TLSv1_2, TLSv1_3 };
/// "TLSv1.2" …
WEFT_EXPORT std::string_view versionName(TLSVersion v);

/// A cipher list (Twisted OpenSSLAcceptableCiphers).
class WEFT_EXPORT AcceptableCiphers {
public:
    /// The ciphers of an OpenSSL cipher string that this OpenSSL offers (TLS 1.2
    /// and older; TLS 1.3 suites are always OpenSSL's). Empty if none.
    static AcceptableCiphers fromOpenSSLCipherString(std::string_view cipherString);
    /// The names, in order.
    const std::vector<std::string>& names() const noexcept { return names_; }

private:
    std::vector<std::string> names_;
};

/// Finite-field Diffie-Hellman parameters (Twisted DiffieHellmanParameters).
class WEFT_EXPORT DiffieHellmanParameters {
public:
    /// Reads and checks a PEM "DH PARAMETERS" file now (TLS-35, Better than
    /// Twisted): CertificateError naming the path otherwise.
    static DiffieHellmanParameters fromFile(const std::string& path);
    const std::string& pem() const noexcept { return pem_; }

private:
    std::string pem_;
};

// ---- trust ------------------------------------------------------------------------------------

/// Where a verifying side looks for trusted certificates (Twisted IOpenSSLTrustRoot).
class WEFT_EXPORT IOpenSSLTrustRoot {
public:
    virtual ~IOpenSSLTrustRoot() = default;
    /// Installs the roots into `context`'s store.
    virtual void addTo(ssl_ctx_st* context) const = 0;
};

/// OpenSSL's default verify paths: the system CA bundle, or SSL_CERT_FILE /
/// SSL_CERT_DIR when set (TLS-43).
WEFT_EXPORT std::shared_ptr<IOpenSSLTrustRoot> platformTrust();
/// Exactly these certificates, CAs or self-signed leaves (TLS-43).
WEFT_EXPORT std::shared_ptr<IOpenSSLTrustRoot> trustRootFromCertificates(std::vector<Certificate> certificates);
/// Every readable certificate in the ".pem" files (any case) of `directory`,
/// duplicates once, invalid files skipped; std::invalid_argument naming the
/// directory if it is missing, unreadable, or holds no certificate (SSLEP-7).
WEFT_EXPORT std::vector<Certificate> certificatesFromDirectory(const std::string& directory);

// ---- context factories and connection creators --------------------------------------------

/// Owns an SSL* (SSL_free).
struct WEFT_EXPORT SSLDeleter {
    void operator()(ssl_st* s) const noexcept;
};
using SSLHandle = std::unique_ptr<ssl_st, SSLDeleter>;

/// Makes an OpenSSL context (Twisted IOpenSSLContextFactory). getContext()
/// returns the same context each time; the factory keeps it alive.
class WEFT_EXPORT IOpenSSLContextFactory {
public:
    virtual ~IOpenSSLContextFactory() = default;
    virtual ssl_ctx_st* getContext() = 0;
};

/// Makes the SSL object of one server connection (Twisted IOpenSSLServerConnectionCreator).
class WEFT_EXPORT IOpenSSLServerConnectionCreator {
public:
    virtual ~IOpenSSLServerConnectionCreator() = default;
    virtual SSLHandle serverConnectionForTLS() = 0;
};

/// Makes the SSL object of one client connection (Twisted IOpenSSLClientConnectionCreator).
class WEFT_EXPORT IOpenSSLClientConnectionCreator {
public:
    virtual ~IOpenSSLClientConnectionCreator() = default;
    virtual SSLHandle clientConnectionForTLS() = 0;
};

/// OpenSSL methods for CertificateSettings::method, deprecated (SSLEP-5, TLS-34).
enum class SSLMethod { TLS, SSLv23, TLSv1, TLSv1_1, TLSv1_2 };

/// What the caller set; a field left empty is "not given" (TLS-33).
struct CertificateSettings {
    std::optional<KeyPair> privateKey;
    std::optional<Certificate> certificate;
    std::vector<Certificate> extraCertChain;
    /// Legacy verification: verify with caCerts; requireCertificate (default
    /// true) refuses a peer without one.
    std::optional<bool> verify;
    std::optional<std::vector<Certificate>> caCerts;
    std::optional<bool> requireCertificate;
    /// Verify the peer against these roots (and, on a server, require a
    /// client certificate) (TLS-43, TLS-44).
    std::shared_ptr<IOpenSSLTrustRoot> trustRoot;
    std::optional<SSLMethod> method;
    std::optional<TLSVersion> raiseMinimumTo;
    std::optional<TLSVersion> insecurelyLowerMinimumTo;
    std::optional<TLSVersion> lowerMaximumSecurityTo;
    std::optional<AcceptableCiphers> acceptableCiphers;
    std::optional<DiffieHellmanParameters> dhParameters;
    bool enableSessions = false;
    bool enableSessionTickets = false;
    /// ALPN protocol names, most preferred first; empty: no ALPN (TLS-46).
    std::vector<std::string> acceptableProtocols;
    /// A server's certificate by SNI name; nullopt keeps the default (TLS-42).
    std::function<std::optional<PrivateCertificate>(std::string_view serverName)> serverNameCallback;
};

/// A context, and connections on it, configured by Settings (Twisted
/// OpenSSLCertificateOptions; TLS-33 … TLS-39, TLS-42, TLS-44, TLS-46).
/// Serves as both server and client connection creator.
class WEFT_EXPORT CertificateOptions : public IOpenSSLContextFactory,
                                       public IOpenSSLServerConnectionCreator,
                                       public IOpenSSLClientConnectionCreator {
public:
    using Method = SSLMethod;
    using Settings = CertificateSettings;

    /// Checks the settings now (TLS-33): std::invalid_argument (Twisted's
    /// ValueError and TypeError) naming the conflict.
    explicit CertificateOptions(Settings settings = {});
    ~CertificateOptions() override;
    CertificateOptions(const CertificateOptions&) = delete;
    CertificateOptions& operator=(const CertificateOptions&) = delete;

    const Settings& settings() const noexcept { return settings_; }
    /// The minimum and maximum version the context allows (TLS-34).
    TLSVersion minimumVersion() const noexcept { return min_; }
    TLSVersion maximumVersion() const noexcept { return max_; }

    /// Builds the context on first use (ssl::Error / CertificateError if the
    /// certificate, key, chain or parameters are refused), then returns it.
    ssl_ctx_st* getContext() override;
    SSLHandle serverConnectionForTLS() override;
    SSLHandle clientConnectionForTLS() override;

private:
    struct Context;
    Settings settings_;
    TLSVersion min_ = TLSVersion::TLSv1_2, max_ = TLSVersion::TLSv1_3;
    std::unique_ptr<Context> context_;
};

/// A client context for TLS 1.2 or later that verifies nothing (Twisted
/// ssl.ClientContextFactory, legacy; TLS-38). Prefer optionsForClientTLS.
class WEFT_EXPORT ClientContextFactory : public IOpenSSLContextFactory {
public:
    ClientContextFactory();
    ssl_ctx_st* getContext() override { return options_.getContext(); }

private:
    CertificateOptions options_;
};

/// A server context from a key file and a certificate file, both read now
/// (CertificateError naming a missing or bad file) (Twisted
/// ssl.DefaultOpenSSLContextFactory, legacy; TLS-38). Better than Twisted: the
/// TLS 1.2 minimum of TLS-34 applies.
class WEFT_EXPORT DefaultOpenSSLContextFactory : public IOpenSSLContextFactory {
public:
    DefaultOpenSSLContextFactory(const std::string& privateKeyFileName, const std::string& certificateFileName,
                                 SSLMethod method = SSLMethod::TLS);
    ssl_ctx_st* getContext() override { return options_->getContext(); }

private:
    std::unique_ptr<CertificateOptions> options_;
};

/// A client connection creator that verifies the server as `hostname`
/// (Twisted ClientTLSOptions; TLS-40 … TLS-42).
class WEFT_EXPORT ClientTLSOptions : public IOpenSSLClientConnectionCreator, public IOpenSSLContextFactory {
public:
    ClientTLSOptions(std::string hostname, std::shared_ptr<CertificateOptions> options);
    /// The name verified (UTF-8 as given) and the A-label sent as SNI.
    const std::string& hostname() const noexcept { return hostname_; }
    SSLHandle clientConnectionForTLS() override;
    ssl_ctx_st* getContext() override { return options_->getContext(); }
    CertificateOptions& options() noexcept { return *options_; }

private:
    std::string hostname_;
    std::string asciiName_;  // the A-label form (or the IP literal)
    bool isIP_ = false;
    std::shared_ptr<CertificateOptions> options_;
};

/// Extra settings for optionsForClientTLS (Twisted's extraCertificateOptions).
using ClientSettings = CertificateSettings;

/// A client that verifies the server's chain against `trustRoot` (null:
/// platformTrust()) and its name against `hostname`, sends SNI for a DNS
/// name, offers `acceptableProtocols` by ALPN and presents `clientCertificate`
/// when asked (TLS-40 … TLS-46). Verification cannot be turned off here.
WEFT_EXPORT std::shared_ptr<ClientTLSOptions> optionsForClientTLS(
    std::string hostname, std::shared_ptr<IOpenSSLTrustRoot> trustRoot = nullptr,
    std::optional<PrivateCertificate> clientCertificate = std::nullopt,
    std::vector<std::string> acceptableProtocols = {}, ClientSettings extra = {});

/// The mechanisms this OpenSSL offers for protocol negotiation: ALPN only (TLS-46).
WEFT_EXPORT std::vector<std::string> protocolNegotiationMechanisms();

// ---- what a TLS connection offers --------------------------------------------------------

/// A transport with TLS (Twisted ISSLTransport).
class WEFT_EXPORT ISSLTransport {
public:
    virtual ~ISSLTransport() = default;
    /// The peer's leaf certificate once the handshake completed and if it sent
    /// one; kept after the connection is lost (TLS-45).
    virtual std::optional<Certificate> getPeerCertificate() const = 0;
};

/// A stream transport that can start TLS on a live connection (Twisted
/// ITLSTransport; TLS-28 … TLS-31): TCP and UNIX stream connections.
class WEFT_EXPORT ITLSTransport : public ISSLTransport {
public:
    /// Puts a TLS layer under the current protocol, which stays the same (no
    /// second connectionMade; handshakeCompleted() when the handshake ends).
    /// With `normal`, the connecting side is the TLS client; false swaps the
    /// roles. Bytes already written go out in clear first (TLS-29); a
    /// registered producer moves to the TLS layer (TLS-30). Throws
    /// std::logic_error for a second call, a connection already running TLS,
    /// or one that is no longer connected (TLS-31, Better than Twisted).
    virtual void startTLS(std::shared_ptr<IOpenSSLContextFactory> contextFactory, bool normal) = 0;
    void startTLS(std::shared_ptr<IOpenSSLContextFactory> contextFactory) { startTLS(std::move(contextFactory), true); }
    /// True once startTLS() ran.
    virtual bool tlsStarted() const noexcept = 0;
};

/// The ALPN result (Twisted INegotiated): nullopt before the handshake, or
/// when either side offered nothing (TLS-46).
class WEFT_EXPORT INegotiated {
public:
    virtual ~INegotiated() = default;
    virtual std::optional<std::string> negotiatedProtocol() const = 0;
};

/// The native object under a transport (Twisted ISystemHandle): the SSL* of a
/// TLS connection (TLS-5); null once it is gone.
class WEFT_EXPORT ISystemHandle {
public:
    virtual ~ISystemHandle() = default;
    virtual ssl_st* getHandle() const noexcept = 0;
};

/// A protocol that wants to hear when the handshake completed (Twisted
/// IHandshakeListener; TLS-7): called once, before the peer's first data.
class WEFT_EXPORT IHandshakeListener {
public:
    virtual ~IHandshakeListener() = default;
    virtual void handshakeCompleted() = 0;
};

/// A factory that chooses the ALPN protocols (Twisted IProtocolNegotiationFactory; TLS-46).
class WEFT_EXPORT IProtocolNegotiationFactory {
public:
    virtual ~IProtocolNegotiationFactory() = default;
    virtual std::vector<std::string> acceptableProtocols() const = 0;
};

}  // namespace weft::ssl

namespace weft::testing {

/// A new self-signed CA and a server certificate it signed for
/// `serviceIdentity` (a DNS name, or an IP literal as an iPAddress entry),
/// valid from a day ago to a day from now; ECDSA P-256 keys (TLS-52).
struct CertificateAuthorityAndServer {
    ssl::PrivateCertificate authority;
    ssl::PrivateCertificate server;
};
WEFT_EXPORT CertificateAuthorityAndServer
certificatesForAuthorityAndServer(std::string serviceIdentity = "example.com");

/// A certificate signed by `authority` for a client called `commonName`.
WEFT_EXPORT ssl::PrivateCertificate clientCertificateSignedBy(const ssl::PrivateCertificate& authority,
                                                              std::string commonName = "client");

}  // namespace weft::testing
