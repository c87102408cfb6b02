// OpenSSL helpers shared by the TLS configuration (ssl.cpp) and the TLS layer
// (protocols/tls.cpp). Internal.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <vector>

#include <weft/internet/ssl.hpp>

namespace weft::ssl::detail {

/// Takes (and clears) the calling thread's OpenSSL error queue.
std::vector<Error::Entry> takeErrorQueue();

/// The first certificate that failed verification on a connection, recorded by
/// recordingVerifyCallback in the SSL object's ex_data slot verifyInfoIndex().
struct VerifyInfo {
    bool failed = false;
    long code = 0;
    int depth = 0;
    std::string subject;
    std::string names;  // its subjectAltName entries, "DNS:a, IP:1.2.3.4"
};
int verifyInfoIndex();
/// The ex_data slot of a connection's own ALPN list (wire format, a
/// std::string*) that replaces its context's (IProtocolNegotiationFactory).
int alpnIndex();
/// ALPN names in wire format; std::invalid_argument for an empty or too long name.
std::string alpnWire(const std::vector<std::string>& names);
int recordingVerifyCallback(int ok, X509_STORE_CTX* store);

/// A certificate's subjectAltName DNS and IP entries, comma-separated.
std::string certificateNames(X509* cert);

/// True for an IPv4 or IPv6 literal.
bool isIPLiteral(const std::string& host);
/// The IDNA 2008 A-label form of a host name (ASCII names lower-cased);
/// std::invalid_argument for a name IDNA refuses.
std::string idnaEncode(const std::string& hostname);

}  // namespace weft::ssl::detail
