// PEM texts that weft never writes itself, for tests of what it reads.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>
#include <string_view>

#include <weft/internet/ssl.hpp>

namespace weft::testing {

/// `key` encrypted with AES-128-CBC under `passphrase`: PKCS#8 ("BEGIN
/// ENCRYPTED PRIVATE KEY", what `openssl genpkey -aes128` writes) or the
/// traditional form ("Proc-Type: 4,ENCRYPTED", what `openssl genrsa -aes128` writes).
inline std::string encryptedKeyPEM(const ssl::KeyPair& key, std::string_view passphrase, bool pkcs8) {
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    auto* pass = reinterpret_cast<unsigned char*>(const_cast<char*>(passphrase.data()));
    int len = static_cast<int>(passphrase.size());
    int ok = pkcs8 ? PEM_write_bio_PKCS8PrivateKey(out.get(), key.native(), EVP_aes_128_cbc(),
                                                   reinterpret_cast<char*>(pass), len, nullptr, nullptr)
                   : PEM_write_bio_PrivateKey_traditional(out.get(), key.native(), EVP_aes_128_cbc(), pass, len,
                                                          nullptr, nullptr);
    if (ok != 1) return {};
    char* data = nullptr;
    long n = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace weft::testing
