// TLS configuration on OpenSSL 3. See weft/internet/ssl.hpp.
#include <weft/internet/ssl.hpp>
#include <weft/log.hpp>
#include <weft/text.hpp>

#include <arpa/inet.h>
#include <idn2.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "internet/detail/sslutil.hpp"
#include "internet/detail/sysutil.hpp"
#include "sys/syscalls.hpp"

namespace weft::ssl {

namespace {

std::string bioText(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr memoryIn(std::string_view text) { return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))); }

std::shared_ptr<X509> shareX509(X509* x) { return std::shared_ptr<X509>(x, X509_free); }
std::shared_ptr<EVP_PKEY> shareKey(EVP_PKEY* k) { return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free); }

std::string nameLine(const X509_NAME* name) {
    BioPtr out(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(out.get(), name, 0, XN_FLAG_RFC2253);
    return bioText(out.get());
}

int protoVersion(TLSVersion v) {
    switch (v) {
        case TLSVersion::SSLv3: return SSL3_VERSION;
        case TLSVersion::TLSv1_0: return TLS1_VERSION;
        case TLSVersion::TLSv1_1: return TLS1_1_VERSION;
        case TLSVersion::TLSv1_2: return TLS1_2_VERSION;
        case TLSVersion::TLSv1_3: return TLS1_3_VERSION;
    }
    return TLS1_2_VERSION;
}

// The default cipher list (TLS-35): forward secrecy and AEADs first, then the
// other AES suites; never anonymous, MD5 or DSS.
constexpr const char* kDefaultCiphers =
    "ECDH+AESGCM:ECDH+CHACHA20:DH+AESGCM:DH+CHACHA20:ECDH+AES256:DH+AES256:ECDH+AES128:DH+AES:RSA+AESGCM:RSA+AES:"
    "!aNULL:!MD5:!DSS";
constexpr const char* kDefaultSuites = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

}  // namespace

// ---- errors -------------------------------------------------------------------------------

namespace {
std::string describeError(const std::string& context, const std::vector<Error::Entry>& entries,
                          const std::optional<Error::Verification>& v) {
    std::string out = context;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        out += i == 0 && !out.empty() ? ": " : (i == 0 ? "" : "; ");
        out += entries[i].library.empty() ? entries[i].reason : entries[i].library + ": " + entries[i].reason;
    }
    if (v) {
        out += fmt::format(" (X.509: {}, depth {}{}{})", v->text, v->depth, v->subject.empty() ? "" : ", subject ",
                           v->subject);
    }
    if (out.empty()) out = "TLS error";
    return out;
}
}  // namespace

Error::Error(std::string context, std::vector<Entry> entries, std::optional<Verification> verification)
    : std::runtime_error(describeError(context, entries, verification)), entries_(std::move(entries)),
      verification_(std::move(verification)) {}

bool Error::mentions(std::string_view text) const noexcept {
    for (const auto& e : entries_)
        if (e.reason.find(text) != std::string::npos) return true;
    if (verification_ && verification_->text.find(text) != std::string::npos) return true;
    return false;
}

Error Error::fromQueue(std::string context, std::optional<Verification> verification) {
    return Error(std::move(context), detail::takeErrorQueue(), std::move(verification));
}

namespace detail {

std::vector<Error::Entry> takeErrorQueue() {
    std::vector<Error::Entry> entries;
    const char* data = nullptr;
    int flags = 0;
    while (unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
        Error::Entry entry;
        if (const char* lib = ERR_lib_error_string(e)) entry.library = lib;
        if (const char* reason = ERR_reason_error_string(e)) entry.reason = reason;
        else entry.reason = fmt::format("error {:#x}", e);
        if ((flags & ERR_TXT_STRING) && data && *data) entry.reason += std::string(" (") + data + ")";
        entries.push_back(std::move(entry));
    }
    return entries;
}

// The names a certificate holds (its subjectAltName DNS and IP entries), for
// a verification error that says what the certificate is for.
std::string certificateNames(X509* cert) {
    std::string out;
    auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (!names) return "no subjectAltName";
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
        std::string one;
        if (n->type == GEN_DNS) {
            one = "DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                                       static_cast<std::size_t>(ASN1_STRING_length(n->d.dNSName)));
        } else if (n->type == GEN_IPADD) {
            const unsigned char* ip = ASN1_STRING_get0_data(n->d.iPAddress);
            int len = ASN1_STRING_length(n->d.iPAddress);
            if (len == 4) one = fmt::format("IP:{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
            else one = "IP:(IPv6)";
        }
        if (!one.empty()) out += (out.empty() ? "" : ", ") + one;
    }
    GENERAL_NAMES_free(names);
    return out.empty() ? "no DNS or IP names" : out;
}

std::string alpnWire(const std::vector<std::string>& names) {
    std::string wire;
    for (const auto& n : names) {
        if (n.empty() || n.size() > 255)
            throw std::invalid_argument("ALPN protocol names must be 1 to 255 bytes: " + n);
        wire.push_back(static_cast<char>(n.size()));
        wire += n;
    }
    return wire;
}

int alpnIndex() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

int verifyInfoIndex() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// Records the first certificate that failed verification on its SSL object
// (the depth and subject OpenSSL's verify result alone does not keep).
int recordingVerifyCallback(int ok, X509_STORE_CTX* store) {
    if (ok) return ok;
    auto* s = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    // OpenSSL checks the chain even where nothing is verified (SSL_VERIFY_NONE):
    // a failure there is no reason for anything and must not be reported with a
    // later, unrelated error (TLS-9).
    if (!s || (SSL_get_verify_mode(s) & SSL_VERIFY_PEER) == 0) return ok;
    auto* info = static_cast<VerifyInfo*>(SSL_get_ex_data(s, verifyInfoIndex()));
    if (info && !info->failed) {
        info->failed = true;
        info->code = X509_STORE_CTX_get_error(store);
        info->depth = X509_STORE_CTX_get_error_depth(store);
        if (X509* cert = X509_STORE_CTX_get_current_cert(store)) {
            info->subject = nameLine(X509_get_subject_name(cert));
            info->names = certificateNames(cert);
        }
    }
    return ok;
}

}  // namespace detail

// ---- certificates and keys ----------------------------------------------------------------

namespace {
// Larger than any PEM a server loads (Debian's whole CA bundle is ≈ 200 KiB).
constexpr std::uintmax_t kMaxPEMFile = 16 << 20;

// A PEM file's text, at most kMaxPEMFile bytes; only a regular file (or a link
// to one) is opened, so a FIFO cannot block the caller and a device such as
// /dev/zero cannot fill memory. Empty when it cannot be opened.
std::optional<std::string> readRegularFile(const std::filesystem::path& path, std::string& why, int* errnum = nullptr) {
    auto fail = [&](int e, std::string text) -> std::optional<std::string> {
        why = std::move(text);
        if (errnum) *errnum = e;
        return std::nullopt;
    };
    struct stat st {};
    if (sys::ops.stat(path.c_str(), &st) != 0) {
        int e = errno;
        return fail(e, fmt::format("cannot be read ({})", std::strerror(e)));
    }
    if (S_ISDIR(st.st_mode)) return fail(0, "is a directory, not a PEM file");
    if (!S_ISREG(st.st_mode)) return fail(0, "is not a regular file (a device, a FIFO or a socket), not a PEM file");
    // O_NONBLOCK: should the path become a FIFO after the stat, the open does not wait for a writer.
    weft::detail::Fd fd(sys::ops.open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0));
    if (fd.get() < 0) {
        int e = errno;
        return fail(e, fmt::format("cannot be opened ({})", std::strerror(e)));
    }
    std::string text;
    char block[16384];
    for (;;) {
        ssize_t n = sys::ops.read(fd.get(), block, sizeof block);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            return fail(e, fmt::format("cannot be read ({})", std::strerror(e)));
        }
        if (n == 0) break;
        text.append(block, static_cast<std::size_t>(n));
        if (text.size() > kMaxPEMFile)
            return fail(0, fmt::format("is larger than {} MiB, too large for a PEM file", kMaxPEMFile >> 20));
    }
    return text;
}
}  // namespace

std::string readPEMFile(const std::string& path, std::string_view what) {
    std::string why;
    auto text = readRegularFile(path, why);
    if (!text) throw CertificateError(fmt::format("{} {}: {}", what, path, why));
    return std::move(*text);
}

namespace {
// OpenSSL asks this for the passphrase of an encrypted key. Without a callback
// it would prompt on the terminal (or read standard input) and block a server
// at start-up: answer from what the caller gave, or refuse.
struct PassphraseAsk {
    std::optional<std::string_view> given;
    bool asked = false;
};

int answerPassphrase(char* buf, int size, int /*rwflag*/, void* u) {
    auto* ask = static_cast<PassphraseAsk*>(u);
    ask->asked = true;
    if (!ask->given || size <= 0) return -1;
    auto n = std::min<std::size_t>(ask->given->size(), static_cast<std::size_t>(size));
    std::memcpy(buf, ask->given->data(), n);
    return static_cast<int>(n);
}
}  // namespace

KeyPair KeyPair::loadPEM(std::string_view pem, std::string_view origin, std::optional<std::string_view> passphrase) {
    ERR_clear_error();
    auto bio = memoryIn(pem);
    PassphraseAsk ask{passphrase};
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, answerPassphrase, &ask);
    if (!key) {
        auto why = Error::fromQueue("");
        if (ask.asked && !passphrase)
            throw PassphraseError(fmt::format("{}: the private key is encrypted and no passphrase was given", origin));
        if (ask.asked)
            throw PassphraseError(
                fmt::format("{}: the passphrase does not decrypt the private key ({})", origin, why.what()));
        throw CertificateError(fmt::format("{}: no PEM private key found ({})", origin, why.what()));
    }
    return KeyPair(shareKey(key));
}

KeyPair KeyPair::generate() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    if (!key) throw Error::fromQueue("generating an EC key");
    return KeyPair(shareKey(key));
}

std::string KeyPair::dumpPEM() const {
    BioPtr out(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(out.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr);
    return bioText(out.get());
}

Certificate Certificate::loadPEM(std::string_view pem, std::string_view origin) {
    ERR_clear_error();
    auto bio = memoryIn(pem);
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (!x) {
        auto why = Error::fromQueue("");
        throw CertificateError(fmt::format("{}: no PEM certificate found ({})", origin, why.what()));
    }
    return Certificate(shareX509(x));
}

std::vector<Certificate> Certificate::loadAllPEM(std::string_view pem) {
    std::vector<Certificate> out;
    auto bio = memoryIn(pem);
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.push_back(Certificate(shareX509(x)));
    ERR_clear_error();  // the end of the text reads as "no start line"
    return out;
}

Certificate Certificate::fromNative(X509* x509) {
    X509_up_ref(x509);
    return Certificate(shareX509(x509));
}

namespace {
SSL* handleOf(ITransport& transport) {
    auto* handle = dynamic_cast<ISystemHandle*>(&transport);
    if (!handle || !dynamic_cast<ISSLTransport*>(&transport))
        throw CertificateError("non-TLS transport: it has no certificate");
    return handle->getHandle();
}
}  // namespace

Certificate Certificate::peerFromTransport(ITransport& transport) {
    if (auto* starting = dynamic_cast<ITLSTransport*>(&transport); starting && !starting->tlsStarted())
        throw CertificateError("non-TLS transport: TLS was not started on it");
    if (auto* tls = dynamic_cast<ISSLTransport*>(&transport)) {
        if (auto cert = tls->getPeerCertificate()) return *cert;
        throw CertificateError("TLS transport without a peer certificate");
    }
    throw CertificateError("non-TLS transport: it has no peer certificate");
}

Certificate Certificate::hostFromTransport(ITransport& transport) {
    SSL* s = handleOf(transport);
    X509* mine = s ? SSL_get_certificate(s) : nullptr;
    if (!mine) throw CertificateError("TLS transport without a certificate of its own");
    return fromNative(mine);
}

std::string Certificate::dumpPEM() const {
    BioPtr out(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(out.get(), cert_.get());
    return bioText(out.get());
}

std::string Certificate::subject() const { return nameLine(X509_get_subject_name(cert_.get())); }
std::string Certificate::issuer() const { return nameLine(X509_get_issuer_name(cert_.get())); }

std::string Certificate::digest() const {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509_digest(cert_.get(), EVP_sha256(), md, &n);
    std::string out;
    for (unsigned i = 0; i < n; ++i) out += fmt::format("{:02X}", md[i]);
    return out;
}

PrivateCertificate PrivateCertificate::loadPEM(std::string_view pem, std::string_view origin) {
    return fromCertificateAndKeyPair(Certificate::loadPEM(pem, origin), KeyPair::loadPEM(pem, origin));
}

PrivateCertificate PrivateCertificate::fromCertificateAndKeyPair(const Certificate& cert, const KeyPair& key) {
    if (X509_check_private_key(cert.native(), key.native()) != 1) {
        ERR_clear_error();
        throw CertificateError("Certificate public and private keys do not match.");
    }
    return PrivateCertificate(cert, key);
}

std::string PrivateCertificate::dumpPEM() const { return Certificate::dumpPEM() + key_.dumpPEM(); }

// ---- versions, ciphers, parameters ------------------------------------------------------------

std::string_view versionName(TLSVersion v) {
    switch (v) {
        case TLSVersion::SSLv3: return "SSLv3";
        case TLSVersion::TLSv1_0: return "TLSv1";
        case TLSVersion::TLSv1_1: return "TLSv1.1";
        case TLSVersion::TLSv1_2: return "TLSv1.2";
        case TLSVersion::TLSv1_3: return "TLSv1.3";
    }
    return "?";
}

AcceptableCiphers AcceptableCiphers::fromOpenSSLCipherString(std::string_view cipherString) {
    AcceptableCiphers out;
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
    if (!ctx) throw Error::fromQueue("SSL_CTX_new");
    std::string spec(cipherString);
    if (SSL_CTX_set_cipher_list(ctx.get(), spec.c_str()) != 1) {
        ERR_clear_error();
        return out;  // nothing usable
    }
    STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx.get());
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
        const SSL_CIPHER* c = sk_SSL_CIPHER_value(ciphers, i);
        if (std::string_view(SSL_CIPHER_get_name(c)).starts_with("TLS_"))
            continue;  // TLS 1.3 suites are configured apart
        out.names_.emplace_back(SSL_CIPHER_get_name(c));
    }
    return out;
}

DiffieHellmanParameters DiffieHellmanParameters::fromFile(const std::string& path) {
    DiffieHellmanParameters out;
    out.pem_ = readPEMFile(path, "dhParameters");
    auto bio = memoryIn(out.pem_);
    EVP_PKEY* params = PEM_read_bio_Parameters(bio.get(), nullptr);
    if (!params) {
        auto why = Error::fromQueue("");
        throw CertificateError(fmt::format("dhParameters {}: no PEM DH parameters found ({})", path, why.what()));
    }
    EVP_PKEY_free(params);
    return out;
}

// ---- trust ----------------------------------------------------------------------------------------

namespace {
class DefaultPaths final : public IOpenSSLTrustRoot {
public:
    void addTo(SSL_CTX* context) const override {
        if (SSL_CTX_set_default_verify_paths(context) != 1) throw Error::fromQueue("loading the platform's CA roots");
    }
};

class Certificates final : public IOpenSSLTrustRoot {
public:
    explicit Certificates(std::vector<Certificate> certs) : certs_(std::move(certs)) {}
    void addTo(SSL_CTX* context) const override {
        X509_STORE* store = SSL_CTX_get_cert_store(context);
        for (const auto& c : certs_) {
            if (X509_STORE_add_cert(store, c.native()) != 1) {
                // the same certificate twice is fine
                unsigned long e = ERR_peek_last_error();
                if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE) throw Error::fromQueue("adding a CA");
                ERR_clear_error();
            }
        }
    }

private:
    std::vector<Certificate> certs_;
};
}  // namespace

std::shared_ptr<IOpenSSLTrustRoot> platformTrust() { return std::make_shared<DefaultPaths>(); }

std::shared_ptr<IOpenSSLTrustRoot> trustRootFromCertificates(std::vector<Certificate> certificates) {
    if (certificates.empty()) throw std::invalid_argument("trustRootFromCertificates: no certificates to trust");
    return std::make_shared<Certificates>(std::move(certificates));
}

std::vector<Certificate> certificatesFromDirectory(const std::string& directory) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(directory, ec))
        throw std::invalid_argument(fmt::format("CA directory {}: not a directory (or missing)", directory));
    std::vector<Certificate> out;
    std::set<std::string> seen;
    std::vector<fs::path> files;
    fs::directory_iterator it(directory, ec);
    if (ec) throw std::invalid_argument(fmt::format("CA directory {}: cannot be listed ({})", directory, ec.message()));
    for (const auto& entry : it) {
        std::string ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
        if (ext == ".pem") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    std::string firstSkipped;  // why the first skipped file was, for the message when none is left
    for (const auto& f : files) {
        std::string why;
        int err = 0;
        auto text = readRegularFile(f, why, &err);
        // Out of descriptors or memory is no property of the file: were it skipped, a directory of
        // good roots would be reported as holding none (or, worse, trusted in part).
        if (!text && (err == EMFILE || err == ENFILE || err == ENOMEM))
            throw std::invalid_argument(fmt::format("CA directory {}: {} {}", directory, f.filename().string(), why));
        if (!text) {
            if (firstSkipped.empty()) firstSkipped = fmt::format("{} {}", f.filename().string(), why);
            continue;  // unreadable, not a file, or too large: skipped (SSLEP-7)
        }
        for (auto& c : Certificate::loadAllPEM(*text))
            if (seen.insert(c.digest()).second) out.push_back(std::move(c));
    }
    if (out.empty())
        throw std::invalid_argument(fmt::format("CA directory {}: no certificate in its .pem files{}", directory,
                                                firstSkipped.empty() ? "" : " (skipped: " + firstSkipped + ")"));
    return out;
}

// ---- CertificateOptions -------------------------------------------------------------------------

void SSLDeleter::operator()(SSL* s) const noexcept { SSL_free(s); }

struct CertificateOptions::Context {
    SSL_CTX* ctx = nullptr;
    std::string alpn;  // the server's list in wire format (the select callback reads it)
    ~Context() { SSL_CTX_free(ctx); }
};

CertificateOptions::CertificateOptions(Settings settings) : settings_(std::move(settings)) {
    const Settings& s = settings_;
    if (s.privateKey.has_value() != s.certificate.has_value())
        throw std::invalid_argument("Specify neither or both of privateKey and certificate");
    if (!s.extraCertChain.empty() && !(s.privateKey && s.certificate))
        throw std::invalid_argument("extraCertChain needs both privateKey and certificate");
    if (s.verify.value_or(false) && !s.caCerts)
        throw std::invalid_argument(
            "Specify client CA certificate information if and only if enabling certificate verification");
    if (s.trustRoot) {
        for (auto [given, name] : {std::pair{s.verify.has_value(), "verify"},
                                   {s.caCerts.has_value(), "caCerts"},
                                   {s.requireCertificate.has_value(), "requireCertificate"}})
            if (given) throw std::invalid_argument(fmt::format("trustRoot and {} are mutually exclusive", name));
    }
    if (s.method) {
        for (auto [given, name] : {std::pair{s.raiseMinimumTo.has_value(), "raiseMinimumTo"},
                                   {s.insecurelyLowerMinimumTo.has_value(), "insecurelyLowerMinimumTo"},
                                   {s.lowerMaximumSecurityTo.has_value(), "lowerMaximumSecurityTo"}})
            if (given) throw std::invalid_argument(fmt::format("method and {} are mutually exclusive", name));
    }
    if (s.raiseMinimumTo && s.insecurelyLowerMinimumTo)
        throw std::invalid_argument("raiseMinimumTo and insecurelyLowerMinimumTo are mutually exclusive");
    if (s.acceptableCiphers && s.acceptableCiphers->names().empty())
        throw std::invalid_argument("Supplied IAcceptableCiphers yielded no usable ciphers on this platform.");
    if (s.privateKey && s.certificate && X509_check_private_key(s.certificate->native(), s.privateKey->native()) != 1) {
        ERR_clear_error();
        throw CertificateError("Certificate public and private keys do not match.");
    }
    detail::alpnWire(s.acceptableProtocols);  // checks the names

    // The version range (TLS-34): the maximum is inclusive.
    if (s.method) {
        switch (*s.method) {
            case Method::TLS:
            case Method::SSLv23: break;
            case Method::TLSv1: min_ = max_ = TLSVersion::TLSv1_0; break;
            case Method::TLSv1_1: min_ = max_ = TLSVersion::TLSv1_1; break;
            case Method::TLSv1_2: min_ = max_ = TLSVersion::TLSv1_2; break;
        }
    } else {
        if (s.raiseMinimumTo && *s.raiseMinimumTo > min_) min_ = *s.raiseMinimumTo;
        if (s.insecurelyLowerMinimumTo) min_ = *s.insecurelyLowerMinimumTo;
        if (s.lowerMaximumSecurityTo) {
            max_ = *s.lowerMaximumSecurityTo;
            if (!s.raiseMinimumTo && !s.insecurelyLowerMinimumTo && min_ > max_) min_ = max_;
        }
        if (min_ > max_)
            throw std::invalid_argument(s.raiseMinimumTo
                                            ? "raiseMinimumTo needs to be lower than lowerMaximumSecurityTo"
                                            : "insecurelyLowerMinimumTo needs to be lower than lowerMaximumSecurityTo");
    }
}

CertificateOptions::~CertificateOptions() = default;

namespace {

int selectALPN(SSL* s, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void* arg) {
    // The connection's own list (its factory's acceptableProtocols()) before the context's.
    const auto* own = static_cast<const std::string*>(SSL_get_ex_data(s, detail::alpnIndex()));
    const std::string& ours = own ? *own : *static_cast<const std::string*>(arg);
    if (ours.empty()) return SSL_TLSEXT_ERR_NOACK;  // no ALPN offered on our side
    // The first of our protocols that the client offered (TLS-46).
    for (std::size_t i = 0; i < ours.size();) {
        auto len = static_cast<unsigned char>(ours[i]);
        std::string_view mine(ours.data() + i + 1, len);
        for (unsigned j = 0; j < inlen;) {
            unsigned char l = in[j];
            if (j + 1 + l > inlen) break;
            if (std::string_view(reinterpret_cast<const char*>(in + j + 1), l) == mine) {
                *out = in + j + 1;
                *outlen = l;
                return SSL_TLSEXT_ERR_OK;
            }
            j += 1u + l;
        }
        i += 1u + len;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol (RFC 7301 §3.2)
}

int selectCertificate(SSL* s, int*, void* arg) {
    const char* name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
    auto* options = static_cast<CertificateOptions*>(arg);
    std::optional<PrivateCertificate> chosen;
    try {
        chosen = options->settings().serverNameCallback(name);
    } catch (...) {
        // The handshake fails with a fatal alert; the application's error is told, not lost.
        log::failure("TLS", fmt::format("Unhandled error in serverNameCallback for {}", weft::quote(name)),
                     Failure::current());
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    if (chosen) {
        if (SSL_use_certificate(s, chosen->native()) != 1 || SSL_use_PrivateKey(s, chosen->privateKey().native()) != 1)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace

SSL_CTX* CertificateOptions::getContext() {
    if (context_) return context_->ctx;
    auto c = std::make_unique<Context>();
    ERR_clear_error();
    c->ctx = SSL_CTX_new(TLS_method());
    if (!c->ctx) throw Error::fromQueue("SSL_CTX_new");
    SSL_CTX* ctx = c->ctx;
    const Settings& s = settings_;

    std::uint64_t options = SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE |
                            SSL_OP_SINGLE_DH_USE | SSL_OP_NO_RENEGOTIATION;  // TLS-35, TLS-39
    if (!s.enableSessionTickets) options |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, options);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (!s.enableSessions) SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!s.enableSessions && !s.enableSessionTickets) SSL_CTX_set_num_tickets(ctx, 0);  // TLS-36
    unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
    RAND_bytes(sid, sizeof sid);
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid);
    SSL_CTX_set_verify_depth(ctx, 9);
    if (SSL_CTX_set_min_proto_version(ctx, protoVersion(min_)) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, protoVersion(max_)) != 1)
        throw Error::fromQueue("setting the TLS version range");

    std::string cipherList;
    if (s.acceptableCiphers) {
        for (const auto& n : s.acceptableCiphers->names()) cipherList += (cipherList.empty() ? "" : ":") + n;
    } else {
        cipherList = kDefaultCiphers;
    }
    if (SSL_CTX_set_cipher_list(ctx, cipherList.c_str()) != 1 || SSL_CTX_set_ciphersuites(ctx, kDefaultSuites) != 1)
        throw std::invalid_argument("Supplied IAcceptableCiphers yielded no usable ciphers on this platform.");

    if (s.certificate && s.privateKey) {
        if (SSL_CTX_use_certificate(ctx, s.certificate->native()) != 1 ||
            SSL_CTX_use_PrivateKey(ctx, s.privateKey->native()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
            throw Error::fromQueue("loading the certificate and key");
        for (const auto& extra : s.extraCertChain)
            if (SSL_CTX_add1_chain_cert(ctx, extra.native()) != 1) throw Error::fromQueue("adding extraCertChain");
    }

    int verifyMode = SSL_VERIFY_NONE;
    if (s.trustRoot) {
        s.trustRoot->addTo(ctx);
        verifyMode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE;
    } else if (s.verify.value_or(false)) {
        Certificates(*s.caCerts).addTo(ctx);
        verifyMode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
        if (s.requireCertificate.value_or(true)) verifyMode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx, verifyMode, detail::recordingVerifyCallback);

    if (s.dhParameters) {
        auto bio = memoryIn(s.dhParameters->pem());
        EVP_PKEY* params = PEM_read_bio_Parameters(bio.get(), nullptr);
        if (!params || SSL_CTX_set0_tmp_dh_pkey(ctx, params) != 1) {
            EVP_PKEY_free(params);
            throw Error::fromQueue("loading dhParameters");
        }
    }
    c->alpn = detail::alpnWire(s.acceptableProtocols);
    SSL_CTX_set_alpn_select_cb(ctx, selectALPN, &c->alpn);
    if (!s.acceptableProtocols.empty()) {
        if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(c->alpn.data()),
                                    static_cast<unsigned>(c->alpn.size())) != 0)
            throw Error::fromQueue("setting the ALPN protocols");
    }
    if (s.serverNameCallback) {
        // SSL_CTX_set_tlsext_servername_callback/_arg, spelled out (the macros cast in C style).
        SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, reinterpret_cast<void (*)()>(selectCertificate));
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG, 0, this);
    }
    context_ = std::move(c);
    return ctx;
}

namespace {
SSLHandle newConnection(SSL_CTX* ctx) {
    SSLHandle s(SSL_new(ctx));
    if (!s) throw Error::fromQueue("SSL_new");
    return s;
}
}  // namespace

SSLHandle CertificateOptions::serverConnectionForTLS() {
    auto s = newConnection(getContext());
    SSL_set_accept_state(s.get());
    return s;
}

SSLHandle CertificateOptions::clientConnectionForTLS() {
    auto s = newConnection(getContext());
    SSL_set_connect_state(s.get());
    return s;
}

// ---- ClientTLSOptions ---------------------------------------------------------------------------

namespace detail {

bool isIPLiteral(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string idnaEncode(const std::string& hostname) {
    // Every label 1 to 63 bytes; only the root's may be empty, as a trailing dot.
    // A leading dot is no host name, and OpenSSL's name check would read one as
    // "any name below this domain": ".com" would accept every .com certificate.
    std::string_view rest = hostname;
    if (rest.size() > 1 && rest.back() == '.') rest.remove_suffix(1);
    for (std::size_t start = 0;;) {
        std::size_t end = std::min(rest.find('.', start), rest.size());
        if (end == start || end - start > 63)
            throw std::invalid_argument(fmt::format("{}: not a host name (a label is {})", hostname,
                                                    end == start ? "empty" : "longer than 63 bytes"));
        if (end == rest.size()) break;
        start = end + 1;
    }
    bool ascii = std::all_of(hostname.begin(), hostname.end(), [](unsigned char c) { return c < 0x80; });
    if (ascii) {
        std::string lower = hostname;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        return lower;
    }
    char* out = nullptr;
    int rc = idn2_to_ascii_8z(hostname.c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK)
        throw std::invalid_argument(
            fmt::format("{}: not a valid internationalized host name ({})", hostname, idn2_strerror(rc)));
    std::string result(out);
    idn2_free(out);
    return result;
}

}  // namespace detail

ClientTLSOptions::ClientTLSOptions(std::string hostname, std::shared_ptr<CertificateOptions> options)
    : hostname_(std::move(hostname)), options_(std::move(options)) {
    if (hostname_.empty()) throw std::invalid_argument("optionsForClientTLS: empty hostname");
    isIP_ = detail::isIPLiteral(hostname_);
    asciiName_ = isIP_ ? hostname_ : detail::idnaEncode(hostname_);
}

SSLHandle ClientTLSOptions::clientConnectionForTLS() {
    auto s = newConnection(options_->getContext());
    SSL_set_connect_state(s.get());
    SSL_set_hostflags(s.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    if (isIP_) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s.get()), asciiName_.c_str()) != 1)
            throw Error::fromQueue("setting the IP address to verify");
    } else {
        // SNI only for DNS names (RFC 6066; TLS-42), and the name to verify (TLS-41).
        // (SSL_set_tlsext_host_name spelled out: the macro casts in C style.)
        if (SSL_ctrl(s.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, asciiName_.data()) != 1 ||
            SSL_set1_host(s.get(), asciiName_.c_str()) != 1)
            throw Error::fromQueue("setting the host name to verify");
    }
    return s;
}

std::shared_ptr<ClientTLSOptions> optionsForClientTLS(std::string hostname,
                                                      std::shared_ptr<IOpenSSLTrustRoot> trustRoot,
                                                      std::optional<PrivateCertificate> clientCertificate,
                                                      std::vector<std::string> acceptableProtocols,
                                                      ClientSettings extra) {
    extra.verify.reset();
    extra.caCerts.reset();
    extra.requireCertificate.reset();
    extra.trustRoot = trustRoot ? std::move(trustRoot) : platformTrust();
    if (clientCertificate) {
        extra.certificate = Certificate(*clientCertificate);
        extra.privateKey = clientCertificate->privateKey();
    }
    if (!acceptableProtocols.empty()) extra.acceptableProtocols = std::move(acceptableProtocols);
    return std::make_shared<ClientTLSOptions>(std::move(hostname),
                                              std::make_shared<CertificateOptions>(std::move(extra)));
}

std::vector<std::string> protocolNegotiationMechanisms() { return {"ALPN"}; }

ClientContextFactory::ClientContextFactory() = default;

DefaultOpenSSLContextFactory::DefaultOpenSSLContextFactory(const std::string& privateKeyFileName,
                                                           const std::string& certificateFileName, SSLMethod method) {
    CertificateSettings s;
    s.privateKey = KeyPair::loadPEM(readPEMFile(privateKeyFileName, "privateKey"), privateKeyFileName);
    s.certificate = Certificate::loadPEM(readPEMFile(certificateFileName, "certificate"), certificateFileName);
    if (method != SSLMethod::TLS) s.method = method;
    options_ = std::make_unique<CertificateOptions>(std::move(s));
    options_->getContext();
}

}  // namespace weft::ssl

// ---- testing ----------------------------------------------------------------------------------

namespace weft::testing {

namespace {

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!ext) throw ssl::Error::fromQueue("making a certificate extension");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

// A certificate for `subjectCN` with `key`, signed by `issuerCert`/`issuerKey`
// (itself when they are null).
ssl::PrivateCertificate makeCertificate(const std::string& subjectCN, const ssl::KeyPair& key, X509* issuerCert,
                                        EVP_PKEY* issuerKey,
                                        const std::vector<std::pair<int, std::string>>& extensions) {
    X509* x = X509_new();
    if (!x) throw ssl::Error::fromQueue("X509_new");
    std::unique_ptr<X509, decltype(&X509_free)> guard(x, X509_free);
    X509_set_version(x, 2);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -86400);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key.native());
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(subjectCN.c_str()), -1,
                               -1, 0);
    X509_set_issuer_name(x, issuerCert ? X509_get_subject_name(issuerCert) : name);
    for (const auto& [nid, value] : extensions) addExtension(x, issuerCert ? issuerCert : x, nid, value);
    if (X509_sign(x, issuerKey ? issuerKey : key.native(), EVP_sha256()) == 0)
        throw ssl::Error::fromQueue("signing a certificate");
    auto cert = ssl::Certificate::fromNative(x);
    return ssl::PrivateCertificate::fromCertificateAndKeyPair(cert, key);
}

}  // namespace

CertificateAuthorityAndServer certificatesForAuthorityAndServer(std::string serviceIdentity) {
    auto caKey = ssl::KeyPair::generate();
    unsigned char tag[6];
    RAND_bytes(tag, sizeof tag);
    std::string caName = "Testing Example CA";  // made unique: two CAs never share a subject
    for (unsigned char b : tag) caName += fmt::format("{:02x}", b);
    auto authority = makeCertificate(caName, caKey, nullptr, nullptr,
                                     {{NID_basic_constraints, "critical,CA:TRUE,pathlen:9"},
                                      {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                      {NID_subject_key_identifier, "hash"}});
    bool ip = ssl::detail::isIPLiteral(serviceIdentity);
    std::string san = ip ? "IP:" + serviceIdentity : "DNS:" + ssl::detail::idnaEncode(serviceIdentity);
    auto serverKey = ssl::KeyPair::generate();
    auto server = makeCertificate(
        serviceIdentity, serverKey, authority.native(), caKey.native(),
        {{NID_basic_constraints, "critical,CA:FALSE"}, {NID_subject_alt_name, san}, {NID_ext_key_usage, "serverAuth"}});
    return {authority, server};
}

ssl::PrivateCertificate clientCertificateSignedBy(const ssl::PrivateCertificate& authority, std::string commonName) {
    auto key = ssl::KeyPair::generate();
    return makeCertificate(commonName, key, authority.native(), authority.privateKey().native(),
                           {{NID_basic_constraints, "critical,CA:FALSE"}, {NID_ext_key_usage, "clientAuth"}});
}

}  // namespace weft::testing
