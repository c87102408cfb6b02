// tls.md TLS-32, TLS-49, SSLEP-1 … SSLEP-12; protocols.md EP-8, EP-15, EP-16:
// listenSSL/connectSSL, wrapClientTLS and the "ssl:"/"tls:" description
// strings. Parsing is checked against a testing::MemoryReactorClock with
// certificate files written by the test (testing::certificatesForAuthorityAndServer);
// the connection tests run over real TCP on every backend.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/ssl.hpp>
#include <weft/internet/sslendpoints.hpp>
#include <weft/internet/task.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/testing.hpp>
#include <weft/protocols/tls.hpp>
#include <weft/testing/defer.hpp>

#include "support/faults.hpp"
#include "support/pemhelpers.hpp"
#include "support/reactortest.hpp"
#include "support/tcphelpers.hpp"
#include "support/udphelpers.hpp"

using namespace weft;
using namespace weft::test;
namespace ep = weft::endpoints;
namespace wt = weft::testing;

namespace {

std::string str(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

void writeFile(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// A CA, a server certificate for 127.0.0.1 and one for "localhost", written as PEM files.
struct PKI {
    wt::CertificateAuthorityAndServer ip = wt::certificatesForAuthorityAndServer("127.0.0.1");
    TempDir dir;
    std::string key = dir.file("key.pem"), cert = dir.file("cert.pem"), both = dir.file("both.pem"),
                reversed = dir.file("reversed.pem"), caDir = dir.file("ca");
    PKI() {
        writeFile(key, ip.server.privateKey().dumpPEM());
        writeFile(cert, ssl::Certificate(ip.server).dumpPEM());
        writeFile(both, ssl::Certificate(ip.server).dumpPEM() + ip.server.privateKey().dumpPEM());
        writeFile(reversed, ip.server.privateKey().dumpPEM() + ssl::Certificate(ip.server).dumpPEM());
        std::filesystem::create_directory(caDir);
        writeFile(caDir + "/ca.pem", ssl::Certificate(ip.authority).dumpPEM());
    }
    std::string quoted(const std::string& path) const { return quoteStringArgument(path); }
    std::string serverKeys() const { return ":privateKey=" + quoted(key) + ":certKey=" + quoted(cert); }
};

template <class E, class F>
std::string messageOf(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no exception";
    return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class SSLParsing : public LeakCheckedTest {
protected:
    wt::MemoryReactorClock reactor;
    PKI pki;

    std::shared_ptr<ep::SSL4ServerEndpoint> server(const std::string& description) {
        auto typed = std::dynamic_pointer_cast<ep::SSL4ServerEndpoint>(ep::serverFromString(reactor, description));
        EXPECT_TRUE(typed) << description;
        return typed;
    }
    template <class E>
    std::shared_ptr<E> client(const std::string& description) {
        auto typed = std::dynamic_pointer_cast<E>(ep::clientFromString(reactor, description));
        EXPECT_TRUE(typed) << description;
        return typed;
    }
    ssl::CertificateOptions& optionsOf(const ep::SSL4ServerEndpoint& e) {
        return dynamic_cast<ssl::CertificateOptions&>(*e.contextFactory());
    }
};

}  // namespace

// ---- the ssl: server string ------------------------------------------------------------------

TEST_F(SSLParsing, SSLEP_1_portBacklogInterfaceAndTheirDefaults) {
    // SSLEP-1, EP-8: "ssl:PORT" (or port=) builds SSL4ServerEndpoint with interface "" and backlog 50 by default;
    // interface (escaped IPv6 colons) and backlog are taken as keywords.
    auto e = server("ssl:4433" + pki.serverKeys());
    ASSERT_TRUE(e);
    EXPECT_EQ(e->port(), 4433);
    EXPECT_EQ(e->backlog(), 50);
    EXPECT_EQ(e->interface(), "");
    EXPECT_EQ(&e->clock(), static_cast<IReactorTime*>(&reactor));
    auto k = server("ssl:port=4434:interface=\\:\\:1:backlog=7" + pki.serverKeys());
    ASSERT_TRUE(k);
    EXPECT_EQ(k->port(), 4434);
    EXPECT_EQ(k->interface(), "::1");
    EXPECT_EQ(k->backlog(), 7);
    // The certificate the server presents is the one in certKey.
    EXPECT_EQ(*optionsOf(*e).settings().certificate, ssl::Certificate(pki.ip.server));
    EXPECT_FALSE(optionsOf(*e).settings().trustRoot);  // no client certificates asked for
}

TEST_F(SSLParsing, SSLEP_1_unknownKeywordUpperCaseTypeAndBadNumbers) {
    // SSLEP-1: an unknown keyword throws TypeError (EndpointArgumentError); "SSL:…" is an unknown type (EP-5);
    // port and backlog are base-10 integers.
    EXPECT_TRUE(contains(messageOf<EndpointArgumentError>(
                             [&] { ep::serverFromString(reactor, "ssl:4433" + pki.serverKeys() + ":bogus=1"); }),
                         "'bogus'"));
    EXPECT_EQ(messageOf<UnknownEndpointType>([&] { ep::serverFromString(reactor, "SSL:4433" + pki.serverKeys()); }),
              "Unknown endpoint type: 'ssl'");
    EXPECT_THROW(ep::serverFromString(reactor, "ssl:http" + pki.serverKeys()), InvalidEndpointDescription);
    EXPECT_THROW(ep::serverFromString(reactor, "ssl:443:backlog=x" + pki.serverKeys()), InvalidEndpointDescription);
    EXPECT_THROW(ep::serverFromString(reactor, "ssl:70000" + pki.serverKeys()), InvalidEndpointDescription);
    EXPECT_THROW(ep::serverFromString(reactor, "ssl:privateKey=x.pem"), EndpointArgumentError);  // no port
}

TEST_F(SSLParsing, SSLEP_1_listenIsListenTCPWithAServerTLSFactory) {
    // SSLEP-1, TLS-32: listen(factory) calls listenTCP(port, a server TLSMemoryBIOFactory around factory, backlog,
    // interface); nothing is listened on at parse time.
    auto e = server("ssl:4433:interface=127.0.0.1:backlog=9" + pki.serverKeys());
    ASSERT_TRUE(e);
    EXPECT_TRUE(reactor.tcpServers.empty());
    auto factory = Factory::forProtocol<Protocol>();
    auto port = wt::successResultOf(e->listen(factory));
    ASSERT_TRUE(port);
    ASSERT_EQ(reactor.tcpServers.size(), 1u);
    auto tls = std::dynamic_pointer_cast<tls::TLSMemoryBIOFactory>(reactor.tcpServers[0].factory);
    ASSERT_TRUE(tls);
    EXPECT_FALSE(tls->isClient);
    EXPECT_EQ(tls->wrappedFactory, factory);
    EXPECT_EQ(reactor.tcpServers[0].port, 4433);
    EXPECT_EQ(reactor.tcpServers[0].backlog, 9);
    EXPECT_EQ(reactor.tcpServers[0].interface, "127.0.0.1");
}

TEST_F(SSLParsing, SSLEP_1_listenFailureFailsTheDeferredInsteadOfThrowing) {
    // SSLEP-1: listen() returns a failed Deferred with the listen error; it does not throw.
    wt::RaisingMemoryReactor raising(
        std::make_exception_ptr(error::CannotListenError("", "4433", std::make_error_code(std::errc::address_in_use))));
    task::Clock clock;
    auto options = optionsOf(*server("ssl:4433" + pki.serverKeys())).settings();
    ep::SSL4ServerEndpoint e(raising, clock, 4433, std::make_shared<ssl::CertificateOptions>(options));
    auto d = e.listen(Factory::forProtocol<Protocol>());
    wt::failureResultOf<error::CannotListenError>(d);
}

TEST_F(SSLParsing, SSLEP_2_keyAndCertInOneFileEitherOrder) {
    // SSLEP-2: certKey defaults to privateKey's file; one file may hold the key and the certificate in either order.
    for (const auto& file : {pki.both, pki.reversed}) {
        auto e = server("ssl:4433:privateKey=" + pki.quoted(file));
        ASSERT_TRUE(e);
        EXPECT_EQ(*optionsOf(*e).settings().certificate, ssl::Certificate(pki.ip.server));
    }
    // The key and the certificate may also sit in each other's file.
    EXPECT_TRUE(server("ssl:4433:privateKey=" + pki.quoted(pki.cert) + ":certKey=" + pki.quoted(pki.key)));
}

TEST_F(SSLParsing, SSLEP_2_missingTrailingNewlineIsFine) {
    // SSLEP-2, EP-8: PEM files without a trailing newline are accepted.
    std::string k = pki.ip.server.privateKey().dumpPEM(), c = ssl::Certificate(pki.ip.server).dumpPEM();
    while (!k.empty() && k.back() == '\n') k.pop_back();
    while (!c.empty() && c.back() == '\n') c.pop_back();
    writeFile(pki.dir.file("k.pem"), k);
    writeFile(pki.dir.file("c.pem"), c);
    writeFile(pki.dir.file("kc.pem"), k + "\n" + c);
    EXPECT_TRUE(server("ssl:4433:privateKey=" + pki.quoted(pki.dir.file("k.pem")) +
                       ":certKey=" + pki.quoted(pki.dir.file("c.pem"))));
    EXPECT_TRUE(server("ssl:4433:privateKey=" + pki.quoted(pki.dir.file("kc.pem"))));
}

TEST_F(SSLParsing, SSLEP_2_unusableFilesThrowAtParseTimeNamingKeywordAndPath) {
    // SSLEP-2, Better than Twisted: a missing file, a file without the PEM block, or a key that does not match the
    // certificate throws when the string is parsed, naming the keyword, the path and the problem.
    std::string missing = pki.dir.file("missing.pem");
    auto m = messageOf<InvalidEndpointDescription>(
        [&] { ep::serverFromString(reactor, "ssl:4433:privateKey=" + pki.quoted(missing)); });
    EXPECT_TRUE(contains(m, "privateKey") && contains(m, missing)) << m;
    m = messageOf<InvalidEndpointDescription>([&] {
        ep::serverFromString(reactor, "ssl:4433:privateKey=" + pki.quoted(pki.key) + ":certKey=" + pki.quoted(missing));
    });
    EXPECT_TRUE(contains(m, "certKey") && contains(m, missing)) << m;

    writeFile(pki.dir.file("junk.pem"), "not a PEM file\n");
    m = messageOf<InvalidEndpointDescription>(
        [&] { ep::serverFromString(reactor, "ssl:4433:privateKey=" + pki.quoted(pki.dir.file("junk.pem"))); });
    EXPECT_TRUE(contains(m, "no PEM certificate") && contains(m, "junk.pem")) << m;
    m = messageOf<InvalidEndpointDescription>(
        [&] { ep::serverFromString(reactor, "ssl:4433:privateKey=" + pki.quoted(pki.cert)); });
    EXPECT_TRUE(contains(m, "privateKey") && contains(m, "no PEM private key")) << m;

    auto other = wt::certificatesForAuthorityAndServer("127.0.0.1");
    writeFile(pki.dir.file("other-key.pem"), other.server.privateKey().dumpPEM());
    m = messageOf<InvalidEndpointDescription>([&] {
        ep::serverFromString(reactor, "ssl:4433:privateKey=" + pki.quoted(pki.dir.file("other-key.pem")) +
                                          ":certKey=" + pki.quoted(pki.cert));
    });
    EXPECT_TRUE(contains(m, "does not match") && contains(m, "other-key.pem") && contains(m, "cert.pem")) << m;
}

TEST_F(SSLParsing, SSLEP_2_aDeviceAFIFOOrAHugeFileIsRefusedWithoutReadingIt) {
    // SSLEP-2, Better than Twisted: only a regular file is read, and at most 16 MiB of it. /dev/zero never
    // ends (it filled memory at 1 GB/s) and a FIFO without a writer blocks its opener for ever; each is
    // refused at parse time naming the keyword and the path, as any unusable file is.
    std::string fifo = pki.dir.file("key.fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::string huge = pki.dir.file("huge.pem");
    {
        std::ofstream out(huge, std::ios::binary);
        out << pki.ip.server.privateKey().dumpPEM();
    }
    std::filesystem::resize_file(huge, (16u << 20) + 1);  // sparse: nothing written
    struct Case {
        std::string description, keyword, path, why;
    };
    const std::string key = ":privateKey=" + pki.quoted(pki.key) + ":certKey=" + pki.quoted(pki.cert);
    const std::vector<Case> cases = {
        {"ssl:4433:privateKey=/dev/zero:certKey=" + pki.quoted(pki.cert), "privateKey", "/dev/zero",
         "not a regular file"},
        {"ssl:4433:privateKey=" + pki.quoted(pki.key) + ":certKey=/dev/zero", "certKey", "/dev/zero",
         "not a regular file"},
        {"ssl:4433:privateKey=" + pki.quoted(fifo) + ":certKey=" + pki.quoted(pki.cert), "privateKey", fifo,
         "not a regular file"},
        {"ssl:4433" + key + ":extraCertChain=/dev/zero", "extraCertChain", "/dev/zero", "not a regular file"},
        {"ssl:4433" + key + ":dhParameters=/dev/zero", "dhParameters", "/dev/zero", "not a regular file"},
        {"ssl:4433:privateKey=" + pki.quoted(huge) + ":certKey=" + pki.quoted(pki.cert), "privateKey", huge,
         "larger than 16 MiB"},
    };
    for (const auto& c : cases) {
        auto m = messageOf<InvalidEndpointDescription>([&] { ep::serverFromString(reactor, c.description); });
        EXPECT_TRUE(contains(m, c.keyword) && contains(m, c.path) && contains(m, c.why)) << c.description << ": " << m;
    }
}

TEST_F(SSLParsing, SSLEP_2_anEncryptedKeyIsRefusedAtParseTimeWithoutAPrompt) {
    // Better than Twisted (TLS-47): an encrypted key is named as such, with the way out; OpenSSL's
    // default would have prompted for the passphrase on the terminal and blocked.
    auto encrypted = wt::encryptedKeyPEM(pki.ip.server.privateKey(), "secret", true);
    writeFile(pki.dir.file("enc.pem"), encrypted);
    auto m = messageOf<InvalidEndpointDescription>([&] {
        ep::serverFromString(
            reactor, "ssl:4433:privateKey=" + pki.quoted(pki.dir.file("enc.pem")) + ":certKey=" + pki.quoted(pki.cert));
    });
    EXPECT_TRUE(contains(m, "privateKey") && contains(m, "enc.pem") && contains(m, "is encrypted") &&
                contains(m, "openssl pkey"))
        << m;
    // In one file with the certificate, and for a client certificate's key.
    writeFile(pki.dir.file("enc-both.pem"), ssl::Certificate(pki.ip.server).dumpPEM() + encrypted);
    m = messageOf<InvalidEndpointDescription>(
        [&] { ep::serverFromString(reactor, "ssl:4433:privateKey=" + pki.quoted(pki.dir.file("enc-both.pem"))); });
    EXPECT_TRUE(contains(m, "enc-both.pem") && contains(m, "is encrypted")) << m;
    m = messageOf<InvalidEndpointDescription>([&] {
        ep::clientFromString(reactor, "tls:example.com:443:certificate=" + pki.quoted(pki.cert) +
                                          ":privateKey=" + pki.quoted(pki.dir.file("enc.pem")));
    });
    EXPECT_TRUE(contains(m, "enc.pem") && contains(m, "is encrypted")) << m;
}

TEST_F(SSLParsing, SSLEP_2_defaultServerPemIsLookedForInTheWorkingDirectory) {
    // SSLEP-2: privateKey defaults to "server.pem" in the working directory; the error says so.
    auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(pki.dir.path);
    auto m = messageOf<InvalidEndpointDescription>([&] { ep::serverFromString(reactor, "ssl:4433"); });
    EXPECT_TRUE(contains(m, "server.pem") && contains(m, "working directory") && contains(m, pki.dir.path)) << m;
    std::filesystem::copy_file(pki.both, pki.dir.file("server.pem"));
    auto e = server("ssl:4433");
    std::filesystem::current_path(cwd);
    ASSERT_TRUE(e);
    EXPECT_EQ(*optionsOf(*e).settings().certificate, ssl::Certificate(pki.ip.server));
}

TEST_F(SSLParsing, SSLEP_3_extraCertChainInFileOrderAndAFileWithoutCertificatesThrows) {
    // SSLEP-3: extraCertChain's certificates, in file order, complete the chain; a file with none throws ValueError.
    auto second = wt::certificatesForAuthorityAndServer("example.com");
    writeFile(pki.dir.file("chain.pem"),
              ssl::Certificate(pki.ip.authority).dumpPEM() + ssl::Certificate(second.authority).dumpPEM());
    auto e = server("ssl:4433" + pki.serverKeys() + ":extraCertChain=" + pki.quoted(pki.dir.file("chain.pem")));
    ASSERT_TRUE(e);
    const auto& chain = optionsOf(*e).settings().extraCertChain;
    ASSERT_EQ(chain.size(), 2u);
    EXPECT_EQ(chain[0], ssl::Certificate(pki.ip.authority));
    EXPECT_EQ(chain[1], ssl::Certificate(second.authority));

    auto m = messageOf<InvalidEndpointDescription>([&] {
        ep::serverFromString(reactor, "ssl:4433" + pki.serverKeys() + ":extraCertChain=" + pki.quoted(pki.key));
    });
    EXPECT_TRUE(contains(m, "doesn't contain any valid certificates in PEM format") && contains(m, pki.key)) << m;
}

TEST_F(SSLParsing, SSLEP_4_dhParametersAreReadAndCheckedAtParseTime) {
    // SSLEP-4, Better than Twisted: dhParameters=PATH is read and checked when the string is parsed.
    std::string missing = pki.dir.file("dh-missing.pem");
    auto m = messageOf<InvalidEndpointDescription>(
        [&] { ep::serverFromString(reactor, "ssl:4433" + pki.serverKeys() + ":dhParameters=" + pki.quoted(missing)); });
    EXPECT_TRUE(contains(m, "dhParameters") && contains(m, missing)) << m;
    std::string dh = pki.dir.file("dh.pem");
    // scripts/deps.sh installs the openssl command: its absence is a failure, not a skip.
    ASSERT_EQ(
        std::system(("openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out " + dh + " >/dev/null 2>&1")
                        .c_str()),
        0)
        << "the openssl command could not make DH parameters";
    auto e = server("ssl:4433" + pki.serverKeys() + ":dhParameters=" + pki.quoted(dh));
    ASSERT_TRUE(e);
    ASSERT_TRUE(optionsOf(*e).settings().dhParameters);
    EXPECT_TRUE(contains(optionsOf(*e).settings().dhParameters->pem(), "DH PARAMETERS"));
}

TEST_F(SSLParsing, SSLEP_5_sslmethodPinsTheMethodAndUnknownNamesAreListed) {
    // SSLEP-5: sslmethod=TLSv1_2_METHOD allows exactly TLS 1.2; TLS_METHOD/SSLv23_METHOD negotiate and keep the
    // TLS 1.2 minimum; without it the defaults (TLS 1.2 … 1.3); an unknown name throws naming it and the accepted ones.
    auto pinned = server("ssl:4433" + pki.serverKeys() + ":sslmethod=TLSv1_2_METHOD");
    ASSERT_TRUE(pinned);
    EXPECT_EQ(optionsOf(*pinned).settings().method, ssl::SSLMethod::TLSv1_2);
    EXPECT_EQ(optionsOf(*pinned).minimumVersion(), ssl::TLSVersion::TLSv1_2);
    EXPECT_EQ(optionsOf(*pinned).maximumVersion(), ssl::TLSVersion::TLSv1_2);
    for (const char* any : {"TLS_METHOD", "SSLv23_METHOD"}) {
        auto e = server("ssl:4433" + pki.serverKeys() + ":sslmethod=" + any);
        ASSERT_TRUE(e);
        EXPECT_EQ(optionsOf(*e).minimumVersion(), ssl::TLSVersion::TLSv1_2) << any;
        EXPECT_EQ(optionsOf(*e).maximumVersion(), ssl::TLSVersion::TLSv1_3) << any;
    }
    auto plain = server("ssl:4433" + pki.serverKeys());
    EXPECT_FALSE(optionsOf(*plain).settings().method);
    EXPECT_EQ(optionsOf(*plain).minimumVersion(), ssl::TLSVersion::TLSv1_2);
    auto m = messageOf<InvalidEndpointDescription>(
        [&] { ep::serverFromString(reactor, "ssl:4433" + pki.serverKeys() + ":sslmethod=BOGUS"); });
    EXPECT_TRUE(contains(m, "'BOGUS'") && contains(m, "TLSv1_2_METHOD") && contains(m, "TLS_METHOD")) << m;
}

// ---- the ssl: client string ------------------------------------------------------------------

TEST_F(SSLParsing, SSLEP_6_sslClientTakesTheTcpArgumentsAndVerifiesNothingByDefault) {
    // SSLEP-6, EP-15: "ssl:HOST:PORT" (also host=/port=, any case) with timeout (30) and bindAddress → SSL4ClientEndpoint;
    // with neither hostname nor caCertsDir a plain CertificateOptions that verifies nothing.
    auto e = client<ep::SSL4ClientEndpoint>("ssl:example.net:4321");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->host(), "example.net");
    EXPECT_EQ(e->port(), 4321);
    EXPECT_EQ(e->timeout(), 30);
    EXPECT_FALSE(e->bindAddress());
    auto* plain = dynamic_cast<ssl::CertificateOptions*>(e->contextFactory().get());
    ASSERT_TRUE(plain);
    EXPECT_FALSE(plain->settings().trustRoot);
    EXPECT_FALSE(plain->settings().verify.value_or(false));

    auto k = client<ep::SSL4ClientEndpoint>("SSL:host=example.net:port=4321:timeout=7:bindAddress=10.0.0.3");
    ASSERT_TRUE(k);
    EXPECT_EQ(k->host(), "example.net");
    EXPECT_EQ(k->timeout(), 7);
    EXPECT_EQ(k->bindAddress(), (BindAddress{"10.0.0.3", 0}));
    EXPECT_TRUE(client<ep::SSL4ClientEndpoint>("ssl:example.net:port=4321"));
    EXPECT_THROW(ep::clientFromString(reactor, "ssl:example.net"), EndpointArgumentError);
    EXPECT_THROW(ep::clientFromString(reactor, "ssl:example.net:1:bogus=1"), EndpointArgumentError);
    EXPECT_THROW(ep::clientFromString(reactor, "ssl:example.net:1:timeout=x"), InvalidEndpointDescription);
}

TEST_F(SSLParsing, SSLEP_6_hostnameCaCertsDirAndCertKeyChooseTheOptions) {
    // SSLEP-6: hostname= → optionsForClientTLS(name, directory or platform roots); caCertsDir alone verifies the
    // chain only; certKey (+ privateKey) gives the client certificate.
    auto named = client<ep::SSL4ClientEndpoint>("ssl:10.1.1.1:443:hostname=example.com");
    ASSERT_TRUE(named);
    auto* tlsOptions = dynamic_cast<ssl::ClientTLSOptions*>(named->contextFactory().get());
    ASSERT_TRUE(tlsOptions);
    EXPECT_EQ(tlsOptions->hostname(), "example.com");
    EXPECT_TRUE(tlsOptions->options().settings().trustRoot);

    auto chainOnly = client<ep::SSL4ClientEndpoint>("ssl:example.com:443:caCertsDir=" + pki.quoted(pki.caDir));
    ASSERT_TRUE(chainOnly);
    auto* options = dynamic_cast<ssl::CertificateOptions*>(chainOnly->contextFactory().get());
    ASSERT_TRUE(options);
    EXPECT_TRUE(options->settings().trustRoot);

    auto withCert = client<ep::SSL4ClientEndpoint>("ssl:example.com:443:certKey=" + pki.quoted(pki.cert) +
                                                   ":privateKey=" + pki.quoted(pki.key));
    ASSERT_TRUE(withCert);
    auto* certOptions = dynamic_cast<ssl::CertificateOptions*>(withCert->contextFactory().get());
    ASSERT_TRUE(certOptions);
    EXPECT_EQ(*certOptions->settings().certificate, ssl::Certificate(pki.ip.server));
    EXPECT_TRUE(client<ep::SSL4ClientEndpoint>("ssl:example.com:443:certKey=" + pki.quoted(pki.both)));
}

TEST_F(SSLParsing, SSLEP_7_directoriesTrustEveryPemOnceSkipInvalidAndMustYieldOne) {
    // SSLEP-7: every "*.pem" (any case) of the directory is read, duplicates once, invalid or unreadable files
    // skipped; Better than Twisted: a missing directory or one without any certificate throws naming it.
    std::string dir = pki.dir.file("roots");
    std::filesystem::create_directory(dir);
    writeFile(dir + "/a.pem", ssl::Certificate(pki.ip.authority).dumpPEM());
    writeFile(dir + "/B.PEM", ssl::Certificate(pki.ip.authority).dumpPEM());   // a duplicate
    writeFile(dir + "/key.pem", pki.ip.server.privateKey().dumpPEM());         // not a certificate
    writeFile(dir + "/notes.txt", ssl::Certificate(pki.ip.server).dumpPEM());  // not ".pem"
    ASSERT_EQ(::mkfifo((dir + "/fifo.pem").c_str(), 0600), 0);                 // never opened: it would block the parse
    auto found = ssl::certificatesFromDirectory(dir);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0], ssl::Certificate(pki.ip.authority));
    EXPECT_TRUE(client<ep::TLSWrapperClientEndpoint>("tls:example.com:443:trustRoots=" + pki.quoted(dir)));

    std::string empty = pki.dir.file("empty");
    std::filesystem::create_directory(empty);
    for (const std::string& bad : {empty, pki.dir.file("nowhere")}) {
        auto m = messageOf<InvalidEndpointDescription>(
            [&] { ep::clientFromString(reactor, "tls:example.com:443:trustRoots=" + pki.quoted(bad)); });
        EXPECT_TRUE(contains(m, "trustRoots") && contains(m, bad)) << m;
        m = messageOf<InvalidEndpointDescription>(
            [&] { ep::clientFromString(reactor, "ssl:example.com:443:caCertsDir=" + pki.quoted(bad)); });
        EXPECT_TRUE(contains(m, "caCertsDir") && contains(m, bad)) << m;
    }
}

TEST_F(SSLParsing, SSLEP_7_aDirectoryReadOutOfDescriptorsSaysSoAndSkippedFilesAreNamed) {
    // SSLEP-7, Better than Twisted: a .pem that cannot be opened for want of descriptors (EMFILE) is no
    // unreadable file to skip: the parse fails naming the cause instead of "no certificate", or of
    // trusting only the files read before the limit. A directory whose every .pem was skipped says why.
    std::string dir = pki.dir.file("limited");
    std::filesystem::create_directory(dir);
    writeFile(dir + "/a.pem", ssl::Certificate(pki.ip.authority).dumpPEM());
    {
        test::ScopedFaults faults;
        faults.fail(test::Call::open, EMFILE);
        auto m = messageOf<InvalidEndpointDescription>(
            [&] { ep::clientFromString(reactor, "tls:example.com:443:trustRoots=" + pki.quoted(dir)); });
        EXPECT_TRUE(contains(m, "a.pem") && contains(m, "Too many open files")) << m;
        EXPECT_FALSE(contains(m, "no certificate")) << m;
    }
    EXPECT_EQ(ssl::certificatesFromDirectory(dir).size(), 1u);  // the same directory, descriptors to spare

    std::string odd = pki.dir.file("odd");
    std::filesystem::create_directory(odd);
    std::filesystem::create_directory(odd + "/sub.pem");
    auto m = messageOf<InvalidEndpointDescription>(
        [&] { ep::clientFromString(reactor, "tls:example.com:443:trustRoots=" + pki.quoted(odd)); });
    EXPECT_TRUE(contains(m, "no certificate") && contains(m, "sub.pem is a directory")) << m;
}

// ---- the tls: client string ------------------------------------------------------------------

TEST_F(SSLParsing, SSLEP_8_tlsOverATcpEndpointWithTheHostIdnaEncoded) {
    // SSLEP-8, EP-16: "tls:HOST:PORT" (any case) → wrapClientTLS(optionsForClientTLS(HOST, …), a TCP endpoint to
    // IDNA(HOST):PORT with timeout 30); the UTF-8 name is verified, its A-label connected to.
    auto e = client<ep::TLSWrapperClientEndpoint>("tls:\xC3\xA9xample.example.com:443");
    ASSERT_TRUE(e);
    auto tcp = std::dynamic_pointer_cast<ep::TCP4ClientEndpoint>(e->wrappedEndpoint());
    ASSERT_TRUE(tcp);
    EXPECT_EQ(tcp->host(), "xn--xample-9ua.example.com");
    EXPECT_EQ(tcp->port(), 443);
    EXPECT_EQ(tcp->timeout(), 30);
    EXPECT_FALSE(tcp->bindAddress());
    auto* options = dynamic_cast<ssl::ClientTLSOptions*>(e->connectionCreator().get());
    ASSERT_TRUE(options);
    EXPECT_EQ(options->hostname(), "\xC3\xA9xample.example.com");

    auto k = client<ep::TLSWrapperClientEndpoint>("TLS:host=127.0.0.1:port=8443:timeout=3:bindAddress=127.0.0.2");
    ASSERT_TRUE(k);
    auto ktcp = std::dynamic_pointer_cast<ep::TCP4ClientEndpoint>(k->wrappedEndpoint());
    ASSERT_TRUE(ktcp);
    EXPECT_EQ(ktcp->host(), "127.0.0.1");
    EXPECT_EQ(ktcp->timeout(), 3);
    EXPECT_EQ(ktcp->bindAddress(), (BindAddress{"127.0.0.2", 0}));
}

TEST_F(SSLParsing, SSLEP_8_missingPortUnknownKeywordsAndBadTimeout) {
    // SSLEP-8: a missing port throws TypeError; unknown keywords throw TypeError listing all of them; a timeout that
    // is not an integer throws ValueError.
    EXPECT_THROW(ep::clientFromString(reactor, "tls:example.com"), EndpointArgumentError);
    auto m =
        messageOf<EndpointArgumentError>([&] { ep::clientFromString(reactor, "tls:example.com:443:bogus=1:other=2"); });
    EXPECT_TRUE(contains(m, "'bogus'") && contains(m, "'other'")) << m;
    EXPECT_THROW(ep::clientFromString(reactor, "tls:example.com:443:timeout=abc"), InvalidEndpointDescription);
    EXPECT_THROW(ep::clientFromString(reactor, "tls:example.com:99999"), InvalidEndpointDescription);
}

TEST_F(SSLParsing, SSLEP_9_clientCertificateFilesAreReadAtParseTime) {
    // SSLEP-9: certificate=FILE with privateKey=FILE (or the same file); files are read at parse time; errors name the
    // keyword and the path; Better than Twisted: privateKey without certificate throws.
    auto e = client<ep::TLSWrapperClientEndpoint>("tls:example.com:443:certificate=" + pki.quoted(pki.cert) +
                                                  ":privateKey=" + pki.quoted(pki.key));
    ASSERT_TRUE(e);
    auto& options = dynamic_cast<ssl::ClientTLSOptions&>(*e->connectionCreator()).options();
    EXPECT_EQ(*options.settings().certificate, ssl::Certificate(pki.ip.server));
    EXPECT_TRUE(client<ep::TLSWrapperClientEndpoint>("tls:example.com:443:certificate=" + pki.quoted(pki.reversed)));

    std::string missing = pki.dir.file("nope.pem");
    auto m = messageOf<InvalidEndpointDescription>(
        [&] { ep::clientFromString(reactor, "tls:example.com:443:certificate=" + pki.quoted(missing)); });
    EXPECT_TRUE(contains(m, "certificate") && contains(m, missing)) << m;
    m = messageOf<InvalidEndpointDescription>(
        [&] { ep::clientFromString(reactor, "tls:example.com:443:certificate=" + pki.quoted(pki.cert)); });
    EXPECT_TRUE(contains(m, "privateKey") && contains(m, "no PEM private key") && contains(m, pki.cert)) << m;
    m = messageOf<EndpointArgumentError>(
        [&] { ep::clientFromString(reactor, "tls:example.com:443:privateKey=" + pki.quoted(pki.key)); });
    EXPECT_TRUE(contains(m, "privateKey") && contains(m, "certificate")) << m;
    EXPECT_THROW(ep::clientFromString(reactor, "ssl:example.com:443:privateKey=" + pki.quoted(pki.key)),
                 EndpointArgumentError);
}

TEST_F(SSLParsing, SSLEP_10_tlsVerifiesAgainstThePlatformOrOnlyTheDirectory) {
    // SSLEP-10: without trustRoots the platform's roots; with trustRoots only the directory's (SSLEP-7).
    auto platform = client<ep::TLSWrapperClientEndpoint>("tls:example.com:443");
    auto own = client<ep::TLSWrapperClientEndpoint>("tls:example.com:443:trustRoots=" + pki.quoted(pki.caDir));
    ASSERT_TRUE(platform && own);
    auto rootOf = [](ep::TLSWrapperClientEndpoint& e) {
        return dynamic_cast<ssl::ClientTLSOptions&>(*e.connectionCreator()).options().settings().trustRoot;
    };
    auto platformRoot = rootOf(*platform), ownRoot = rootOf(*own), reference = ssl::platformTrust();
    ASSERT_TRUE(platformRoot);
    ASSERT_TRUE(ownRoot);
    const ssl::IOpenSSLTrustRoot& platformObject = *platformRoot;
    const ssl::IOpenSSLTrustRoot& ownObject = *ownRoot;
    const ssl::IOpenSSLTrustRoot& referenceObject = *reference;
    const auto& platformType = typeid(platformObject);
    const auto& ownType = typeid(ownObject);
    const auto& referenceType = typeid(referenceObject);
    EXPECT_EQ(platformType, referenceType);
    EXPECT_NE(ownType, referenceType);
}

TEST_F(SSLParsing, SSLEP_11_endpointKeywordWrapsANestedClientDescription) {
    // SSLEP-11: endpoint=DESCRIPTION (escaped) is connected through clientFromString; HOST is only for verification.
    auto e = client<ep::TLSWrapperClientEndpoint>("tls:example.com:443:endpoint=unix\\:/run/x.sock");
    ASSERT_TRUE(e);
    auto unixEndpoint = std::dynamic_pointer_cast<ep::UNIXClientEndpoint>(e->wrappedEndpoint());
    ASSERT_TRUE(unixEndpoint);
    EXPECT_EQ(unixEndpoint->path(), "/run/x.sock");
    EXPECT_EQ(dynamic_cast<ssl::ClientTLSOptions&>(*e->connectionCreator()).hostname(), "example.com");
    EXPECT_THROW(ep::clientFromString(reactor, "tls:example.com:endpoint=unix\\:/run/x.sock"), EndpointArgumentError);
    EXPECT_THROW(ep::clientFromString(reactor, "tls:example.com:443:timeout=x:endpoint=unix\\:/x"),
                 InvalidEndpointDescription);
}

TEST_F(SSLParsing, SSLEP_6_SSLEP_8_aReactorWithoutAClockCannotRunTLS) {
    // The TLS layer schedules on the reactor's clock: a reactor without IReactorTime makes ssl:/tls: unsupported.
    wt::MemoryReactor noClock;
    EXPECT_THROW(ep::clientFromString(noClock, "tls:example.com:443"), UnsupportedEndpointType);
    EXPECT_THROW(ep::clientFromString(noClock, "ssl:example.com:443"), UnsupportedEndpointType);
    EXPECT_THROW(ep::serverFromString(noClock, "ssl:443"), UnsupportedEndpointType);
}

TEST_F(SSLParsing, SSLEP_12_connectIsConnectTCPWithAClientTLSFactory) {
    // SSLEP-6, TLS-49: connect() goes through connectTCP with a client TLSMemoryBIOFactory; nothing fires before the
    // handshake.
    auto e = client<ep::TLSWrapperClientEndpoint>("tls:127.0.0.1:8443:trustRoots=" + pki.quoted(pki.caDir));
    ASSERT_TRUE(e);
    auto d = e->connect(Factory::forProtocol<Protocol>());
    wt::assertNoResult(d);
    ASSERT_EQ(reactor.tcpClients.size(), 1u);
    EXPECT_EQ(reactor.tcpClients[0].host, "127.0.0.1");
    EXPECT_EQ(reactor.tcpClients[0].port, 8443);
    auto s = client<ep::SSL4ClientEndpoint>("ssl:127.0.0.1:8444");
    ASSERT_TRUE(s);
    wt::assertNoResult(s->connect(Factory::forProtocol<Protocol>()));
    ASSERT_EQ(reactor.tcpClients.size(), 2u);
    EXPECT_EQ(reactor.tcpClients[1].port, 8444);
}

TEST_F(SSLParsing, EP_8_sslServerStringBuildsAnSSL4ServerEndpoint) {
    // EP-8: "ssl:PORT" with privateKey/certKey/sslmethod/interface/backlog/extraCertChain/dhParameters (positionally in
    // that order after the port, or as keywords) → SSL4ServerEndpoint.
    auto e = server("ssl:4433:" + pki.quoted(pki.key) + ":" + pki.quoted(pki.cert) + ":TLSv1_2_METHOD:127.0.0.1:5");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->interface(), "127.0.0.1");
    EXPECT_EQ(e->backlog(), 5);
    EXPECT_EQ(optionsOf(*e).settings().method, ssl::SSLMethod::TLSv1_2);
}

TEST_F(SSLParsing, EP_15_sslClientStringBuildsAnSSL4ClientEndpoint) {
    // EP-15: client "ssl" takes the tcp arguments plus certKey/privateKey, caCertsDir and hostname → SSL4ClientEndpoint;
    // without caCertsDir and hostname it does not verify the server.
    auto e = client<ep::SSL4ClientEndpoint>("ssl:host=example.com:port=443:caCertsDir=" + pki.quoted(pki.caDir) +
                                            ":hostname=example.com:certKey=" + pki.quoted(pki.both));
    ASSERT_TRUE(e);
    auto* options = dynamic_cast<ssl::ClientTLSOptions*>(e->contextFactory().get());
    ASSERT_TRUE(options);
    EXPECT_TRUE(options->options().settings().certificate);
    auto plain = client<ep::SSL4ClientEndpoint>("ssl:example.com:443");
    ASSERT_TRUE(plain);
    EXPECT_FALSE(dynamic_cast<ssl::CertificateOptions&>(*plain->contextFactory()).settings().trustRoot);
}

TEST_F(SSLParsing, EP_16_tlsClientStringBuildsAVerifyingTLSEndpoint) {
    // EP-16: "tls:HOST:PORT" with timeout, bindAddress, certificate, privateKey, trustRoots and endpoint → a verifying
    // TLS endpoint over a TCP endpoint to the IDNA host; a missing port and unknown keywords throw TypeError.
    auto e = client<ep::TLSWrapperClientEndpoint>("tls:example.com:443:timeout=5:trustRoots=" + pki.quoted(pki.caDir));
    ASSERT_TRUE(e);
    EXPECT_EQ(std::dynamic_pointer_cast<ep::TCP4ClientEndpoint>(e->wrappedEndpoint())->timeout(), 5);
    EXPECT_TRUE(dynamic_cast<ssl::ClientTLSOptions&>(*e->connectionCreator()).options().settings().trustRoot);
    EXPECT_THROW(ep::clientFromString(reactor, "tls:example.com"), EndpointArgumentError);
    EXPECT_THROW(ep::clientFromString(reactor, "tls:example.com:443:nope=1"), EndpointArgumentError);
}

// ---- wrapClientTLS in memory (TLS-49) ----------------------------------------------------------

namespace {

// A client endpoint whose connect() returns a Deferred the test settles.
class ScriptedEndpoint final : public IStreamClientEndpoint {
public:
    Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> f) override {
        factory = std::move(f);
        pending.emplace([this](Deferred<std::shared_ptr<Protocol>>& d) {
            ++cancels;
            d.errback(error::ConnectionRefusedError());  // a canceller with its own result
        });
        return *pending;
    }
    // The transport below connects: builds the protocol, connects it to `t`, fires.
    std::shared_ptr<Protocol> connectTo(std::shared_ptr<ITransport> t) {
        auto p = factory->buildProtocol(IPv4Address("TCP", "127.0.0.1", 443));
        p->makeConnection(std::move(t));
        pending->callback(p);
        return p;
    }
    std::shared_ptr<Factory> factory;
    std::optional<Deferred<std::shared_ptr<Protocol>>> pending;
    int cancels = 0;
};

class Recording : public Protocol, public ssl::IHandshakeListener {
public:
    void connectionMade() override { events.push_back("made"); }
    void handshakeCompleted() override { events.push_back("handshake"); }
    void connectionLost(const Failure&) override { events.push_back("lost"); }
    std::vector<std::string> events;
};

struct MemoryTLS {
    PKI pki;
    task::Clock clock;
    std::shared_ptr<ScriptedEndpoint> below = std::make_shared<ScriptedEndpoint>();
    std::shared_ptr<ep::TLSWrapperClientEndpoint> endpoint = ep::wrapClientTLS(
        ssl::optionsForClientTLS("127.0.0.1", ssl::trustRootFromCertificates({pki.ip.authority})), below, clock);
    std::shared_ptr<Recording> app = std::make_shared<Recording>();
    std::shared_ptr<Factory> factory() {
        auto f = std::make_shared<Factory>();
        // Weakly: the app holds its transport (the TLS layer), which holds this factory.
        f->protocol = [a = std::weak_ptr<Recording>(app)] { return std::static_pointer_cast<Protocol>(a.lock()); };
        return f;
    }
};

}  // namespace

TEST(WrapClientTLS, TLS_49_cancelWhileConnectingPassesThroughToTheWrappedEndpoint) {
    // TLS-49: cancelling connect()'s Deferred while the wrapped endpoint connects cancels that endpoint's Deferred,
    // whose failure reaches the caller unchanged.
    MemoryTLS m;
    auto d = m.endpoint->connect(m.factory());
    wt::assertNoResult(d);
    d.cancel();
    EXPECT_EQ(m.below->cancels, 1);
    wt::failureResultOf<error::ConnectionRefusedError>(d);
}

TEST(WrapClientTLS, TLS_49_failureOfTheWrappedEndpointArrivesUnchanged) {
    // TLS-49: a connection failure of the wrapped endpoint fails connect()'s Deferred with that failure.
    MemoryTLS m;
    auto d = m.endpoint->connect(m.factory());
    m.below->pending->errback(error::ConnectionRefusedError());
    wt::failureResultOf<error::ConnectionRefusedError>(d);
}

TEST(WrapClientTLS, TLS_49_firesOnlyAfterTheHandshakeAndFailsWithTheLossBeforeIt) {
    // TLS-49, Better than Twisted: the transport below connecting is not enough: the app protocol is connected to the
    // TLS layer (connectionMade first), and a connection lost before the handshake fails the Deferred with its reason.
    MemoryTLS m;
    auto d = m.endpoint->connect(m.factory());
    auto transport = std::make_shared<wt::StringTransport>();
    auto tlsLayer = m.below->connectTo(transport);
    EXPECT_FALSE(transport->value().empty());  // the ClientHello left
    wt::assertNoResult(d);
    EXPECT_EQ(m.app->events, (std::vector<std::string>{"made"}));
    EXPECT_EQ(m.app->transport.get(), dynamic_cast<ITransport*>(tlsLayer.get()));  // its transport is the TLS layer
    tlsLayer->connectionLost(Failure(error::ConnectionLost("reset")));
    wt::failureResultOf<error::ConnectionLost>(d);
    EXPECT_EQ(m.app->events, (std::vector<std::string>{"made", "lost"}));
}

TEST(WrapClientTLS, TLS_49_cancelDuringTheHandshakeAbortsTheConnection) {
    // TLS-49: cancelling during the handshake gives CancelledError and ends the connection below.
    MemoryTLS m;
    auto d = m.endpoint->connect(m.factory());
    auto transport = std::make_shared<wt::StringTransport>();
    auto tlsLayer = m.below->connectTo(transport);
    d.cancel();
    wt::failureResultOf<defer::CancelledError>(d);
    EXPECT_TRUE(transport->disconnecting);
    tlsLayer->connectionLost(Failure(error::ConnectionAborted()));
    EXPECT_EQ(m.app->events, (std::vector<std::string>{"made", "lost"}));
    EXPECT_EQ(m.below->cancels, 0);
}

TEST(WrapClientTLS, TLS_49_nullCreatorOrEndpointIsRefused) {
    // TLS-49: wrapClientTLS needs a connection creator and an endpoint.
    MemoryTLS m;
    EXPECT_THROW(ep::wrapClientTLS(nullptr, m.below, m.clock), std::invalid_argument);
    EXPECT_THROW(ep::wrapClientTLS(ssl::optionsForClientTLS("x.example"), nullptr, m.clock), std::invalid_argument);
}

// ---- over real TCP ----------------------------------------------------------------------------

namespace {

class App : public Protocol, public IHalfCloseableProtocol {
public:
    void connectionMade() override { events.push_back("made"); }
    void dataReceived(Bytes data) override {
        received += str(data);
        if (echo) transport->write(data);
        if (onData) onData(*this);
    }
    void readConnectionLost() override {
        events.push_back("eof");
        transport->loseConnection();
    }
    void writeConnectionLost() override {}
    void connectionLost(const Failure& reason) override {
        events.push_back("lost");
        lostReason = reason;
    }
    bool echo = false;
    std::string received;
    std::vector<std::string> events;
    std::optional<Failure> lostReason;
    std::function<void(App&)> onData;
};

class ListeningApp final : public App, public ssl::IHandshakeListener {
public:
    void handshakeCompleted() override { events.push_back("handshake"); }
};

class SSLEndpointsTest : public ReactorTest {
protected:
    void TearDown() override {
        if (port) {
            EXPECT_TRUE(stopListeningAndWait(*port));
            port.reset();
        }
        spinUntil([&] { return reactor().getDelayedCalls().empty(); }, 5);
        ReactorTest::TearDown();
    }
    // An echo server from a description; returns its port number.
    std::uint16_t serve(const std::string& description, std::vector<std::weak_ptr<App>>* served = nullptr) {
        auto factory = std::make_shared<Factory>();
        factory->noisy = false;
        factory->protocol = [served] {
            auto p = std::make_shared<App>();
            p->echo = true;
            if (served) served->push_back(p);
            return std::static_pointer_cast<Protocol>(p);
        };
        auto listening = wt::successResultOf(ep::serverFromString(reactor(), description)->listen(factory));
        port = std::dynamic_pointer_cast<tcp::Port>(listening);
        EXPECT_TRUE(port);
        return port ? portNumber(*port) : 0;
    }
    std::shared_ptr<tcp::Port> port;
    PKI pki;
};

template <class P>
std::shared_ptr<Factory> factoryOf(std::shared_ptr<P> p) {
    auto f = std::make_shared<Factory>();
    f->noisy = false;
    // Weakly: the protocol keeps its transport (the TLS layer), which holds this factory.
    f->protocol = [w = std::weak_ptr<P>(p)] { return std::static_pointer_cast<Protocol>(w.lock()); };
    return f;
}

}  // namespace

TEST_P(SSLEndpointsTest, SSLEP_12_tlsClientFiresAfterTheHandshakeWithTheAppProtocol) {
    // SSLEP-12, TLS-49: connect() fires with the application protocol after connectionMade and handshakeCompleted;
    // its transport provides ISSLTransport and the server's certificate is there at once; bytes go both ways.
    std::uint16_t number = serve("ssl:0:interface=127.0.0.1" + pki.serverKeys());
    auto app = std::make_shared<ListeningApp>();
    auto endpoint = ep::clientFromString(
        reactor(), "tls:127.0.0.1:" + std::to_string(number) + ":trustRoots=" + pki.quoted(pki.caDir));
    std::optional<Result<std::shared_ptr<Protocol>>> outcome;
    std::vector<std::string> eventsAtFire;
    std::optional<ssl::Certificate> peerAtFire;
    endpoint->connect(factoryOf(app)).addBoth([&](Result<std::shared_ptr<Protocol>> r) {
        eventsAtFire = app->events;
        if (r.ok()) peerAtFire = ssl::Certificate::peerFromTransport(*r.value()->transport);
        outcome = std::move(r);
    });
    ASSERT_TRUE(spinUntil([&] { return outcome.has_value(); }, 10));
    ASSERT_TRUE(outcome->ok()) << outcome->failure().getErrorMessage();
    EXPECT_EQ(outcome->value(), app);
    EXPECT_EQ(eventsAtFire, (std::vector<std::string>{"made", "handshake"}));
    ASSERT_TRUE(peerAtFire);
    EXPECT_EQ(*peerAtFire, ssl::Certificate(pki.ip.server));
    EXPECT_TRUE(dynamic_cast<ssl::ISSLTransport*>(app->transport.get()));
    std::string payload(100000, 'x');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 % 251);
    app->onData = [&](App& self) {
        if (self.received.size() == payload.size()) self.transport->loseConnection();
    };
    app->transport->write(payload);
    ASSERT_TRUE(spinUntil([&] { return app->lostReason.has_value(); }, 10));
    EXPECT_EQ(app->received, payload);
    EXPECT_TRUE(app->lostReason->check<error::ConnectionDone>()) << app->lostReason->getErrorMessage();
    outcome.reset();
}

TEST_P(SSLEndpointsTest, SSLEP_12_clientCertificateIsSeenByTheServer) {
    // SSLEP-12: a tls: endpoint given certificate= presents it; the server's peerFromTransport returns it.
    auto clientCert = wt::clientCertificateSignedBy(pki.ip.authority, "weft-client");
    writeFile(pki.dir.file("client.pem"), clientCert.dumpPEM());
    // A server that asks for client certificates (trustRoot) cannot come from an ssl: string; build it directly.
    ssl::CertificateSettings s;
    s.certificate = ssl::Certificate(pki.ip.server);
    s.privateKey = pki.ip.server.privateKey();
    s.trustRoot = ssl::trustRootFromCertificates({pki.ip.authority});
    std::vector<std::weak_ptr<App>> served;
    auto serverFactory = std::make_shared<Factory>();
    std::optional<ssl::Certificate> seen;
    serverFactory->protocol = [&] {
        auto p = std::make_shared<App>();
        p->onData = [&seen](App& self) { seen = ssl::Certificate::peerFromTransport(*self.transport); };
        p->echo = true;
        served.push_back(p);
        return std::static_pointer_cast<Protocol>(p);
    };
    ep::SSL4ServerEndpoint server(reactor(), 0, std::make_shared<ssl::CertificateOptions>(s), 50, "127.0.0.1");
    port = std::dynamic_pointer_cast<tcp::Port>(wt::successResultOf(server.listen(serverFactory)));
    ASSERT_TRUE(port);
    auto app = std::make_shared<App>();
    auto endpoint = ep::clientFromString(reactor(), "tls:127.0.0.1:" + std::to_string(portNumber(*port)) +
                                                        ":trustRoots=" + pki.quoted(pki.caDir) +
                                                        ":certificate=" + pki.quoted(pki.dir.file("client.pem")));
    bool connected = false;
    endpoint->connect(factoryOf(app)).addCallback([&](std::shared_ptr<Protocol> p) {
        connected = true;
        p->transport->write(std::string_view("hi"));
    });
    ASSERT_TRUE(spinUntil([&] { return app->received == "hi"; }, 10));
    EXPECT_TRUE(connected);
    ASSERT_TRUE(seen);
    EXPECT_EQ(*seen, ssl::Certificate(clientCert));
    app->transport->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return app->lostReason.has_value(); }, 10));
}

TEST_P(SSLEndpointsTest, TLS_49_untrustedServerFailsTheDeferredWithTheVerificationError) {
    // TLS-49, SSLEP-10: a server whose certificate the client does not trust never "connects": the Deferred fails
    // with the handshake's ssl::Error (the X.509 reason), after the app saw connectionMade and connectionLost.
    std::uint16_t number = serve("ssl:0:interface=127.0.0.1" + pki.serverKeys());
    auto stranger = wt::certificatesForAuthorityAndServer("127.0.0.1");
    std::string otherCA = pki.dir.file("other-ca");
    std::filesystem::create_directory(otherCA);
    writeFile(otherCA + "/ca.pem", ssl::Certificate(stranger.authority).dumpPEM());
    auto app = std::make_shared<ListeningApp>();
    auto endpoint = ep::clientFromString(
        reactor(), "tls:127.0.0.1:" + std::to_string(number) + ":trustRoots=" + pki.quoted(otherCA));
    std::optional<Failure> failed;
    endpoint->connect(factoryOf(app)).addErrback([&](Failure f) -> std::shared_ptr<Protocol> {
        failed = f;
        return nullptr;
    });
    ASSERT_TRUE(spinUntil([&] { return failed.has_value(); }, 10));
    ASSERT_TRUE(failed->check<ssl::Error>()) << failed->getErrorMessage();
    EXPECT_TRUE(contains(failed->getErrorMessage(), "certificate verify failed")) << failed->getErrorMessage();
    EXPECT_EQ(app->events, (std::vector<std::string>{"made", "lost"}));
}

TEST_P(SSLEndpointsTest, TLS_32_listenSSLAndConnectSSLRoundTrip) {
    // TLS-32: listenSSL is listenTCP with a server TLS factory, connectSSL connectTCP with a client one: the TLS layer
    // is in place before connectionMade, and a context that cannot be built throws from the call.
    auto serverFactory = std::make_shared<Factory>();
    serverFactory->noisy = false;
    serverFactory->protocol = [] {
        auto p = std::make_shared<App>();
        p->echo = true;
        return std::static_pointer_cast<Protocol>(p);
    };
    ssl::CertificateSettings s;
    s.certificate = ssl::Certificate(pki.ip.server);
    s.privateKey = pki.ip.server.privateKey();
    auto listening =
        ssl::listenSSL(reactor(), 0, serverFactory, std::make_shared<ssl::CertificateOptions>(s), 50, "127.0.0.1");
    port = std::dynamic_pointer_cast<tcp::Port>(listening);
    ASSERT_TRUE(port);
    auto app = std::make_shared<App>();
    bool tlsAtMade = false;
    auto clientFactory = std::make_shared<ClientFactory>();
    clientFactory->noisy = false;
    clientFactory->protocol = [&] { return std::static_pointer_cast<Protocol>(app); };
    app->onData = [](App& self) {
        if (self.received == "ping") self.transport->loseConnection();
    };
    ssl::connectSSL(reactor(), "127.0.0.1", portNumber(*port), clientFactory,
                    ssl::optionsForClientTLS("127.0.0.1", ssl::trustRootFromCertificates({pki.ip.authority})));
    ASSERT_TRUE(spinUntil([&] { return !app->events.empty(); }, 10));
    tlsAtMade = dynamic_cast<ssl::ISSLTransport*>(app->transport.get()) != nullptr;
    app->transport->write(std::string_view("ping"));
    ASSERT_TRUE(spinUntil([&] { return app->lostReason.has_value(); }, 10));
    EXPECT_TRUE(tlsAtMade);
    EXPECT_EQ(app->received, "ping");

    // A context factory whose getContext() throws: the exception comes out of listenSSL / connectSSL unchanged.
    class Broken final : public ssl::IOpenSSLContextFactory {
    public:
        ssl_ctx_st* getContext() override { throw std::runtime_error("no context today"); }
    };
    EXPECT_THROW(ssl::listenSSL(reactor(), 0, serverFactory, std::make_shared<Broken>(), 50, "127.0.0.1"),
                 std::runtime_error);
    EXPECT_THROW(ssl::connectSSL(reactor(), "127.0.0.1", 1, clientFactory, std::make_shared<Broken>()),
                 std::runtime_error);
}

TEST_P(SSLEndpointsTest, SSLEP_6_sslClientStringWithHostnameVerifiesAndTalks) {
    // SSLEP-6: "ssl:HOST:PORT:caCertsDir=DIR:hostname=NAME" verifies chain and name and then talks.
    std::uint16_t number = serve("ssl:0:interface=127.0.0.1:privateKey=" + pki.quoted(pki.both));
    auto app = std::make_shared<App>();
    auto endpoint = ep::clientFromString(reactor(), "ssl:127.0.0.1:" + std::to_string(number) +
                                                        ":caCertsDir=" + pki.quoted(pki.caDir) + ":hostname=127.0.0.1");
    std::shared_ptr<Protocol> made;
    endpoint->connect(factoryOf(app)).addCallback([&](std::shared_ptr<Protocol> p) {
        made = p;
        p->transport->write(std::string_view("abc"));
        dynamic_cast<IHalfCloseableTransport&>(*p->transport).loseWriteConnection();
    });
    ASSERT_TRUE(spinUntil([&] { return app->lostReason.has_value(); }, 10));
    EXPECT_EQ(made, app);
    EXPECT_EQ(app->received, "abc");
    // A wrong hostname fails the Deferred with the verification error.
    auto wrong = ep::clientFromString(reactor(), "ssl:127.0.0.1:" + std::to_string(number) +
                                                     ":caCertsDir=" + pki.quoted(pki.caDir) + ":hostname=example.org");
    std::optional<Failure> failed;
    auto other = std::make_shared<App>();
    wrong->connect(factoryOf(other)).addErrback([&](Failure f) -> std::shared_ptr<Protocol> {
        failed = f;
        return nullptr;
    });
    ASSERT_TRUE(spinUntil([&] { return failed.has_value(); }, 10));
    EXPECT_TRUE(failed->check<ssl::VerificationError>()) << failed->getErrorMessage();
}

INSTANTIATE_TEST_SUITE_P(Backends, SSLEndpointsTest, allBackends(), backendParamName);
