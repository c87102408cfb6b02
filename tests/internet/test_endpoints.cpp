// Endpoint descriptions and endpoints (protocols.md EP-1..EP-7, EP-9, EP-11..EP-14).
// EP-8/EP-15/EP-16 (ssl, tls) are in test_sslendpoints.cpp, EP-10 (stdio) in
// test_stdio.cpp.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/testing.hpp>
#include <weft/internet/unix.hpp>
#include <weft/testing/defer.hpp>

#include "support/reactortest.hpp"

using weft::EndpointArgumentError;
using weft::EndpointDescription;
using weft::InvalidEndpointDescription;
using weft::parseEndpointDescription;
using weft::quoteStringArgument;
using weft::UnknownEndpointType;
using weft::UnsupportedEndpointType;
using Args = std::vector<std::string>;

TEST(EndpointGrammar, EP_1_fieldsSplitAtUnescapedColons) {
    // EP-1: fields split at unescaped ':'; positional fields keep their order.
    auto d = parseEndpointDescription("tcp:8000:127.0.0.1");
    EXPECT_EQ(d.args, (Args{"tcp", "8000", "127.0.0.1"}));
    EXPECT_TRUE(d.kwargs.empty());
}

TEST(EndpointGrammar, EP_1_firstEqualsSeparatesKeyLaterOnesAreLiteral) {
    // EP-1: within a field the first unescaped '=' separates key and value; later '=' are literal.
    auto d = parseEndpointDescription("tcp:port=80:query=a=b=c");
    EXPECT_EQ(d.args, (Args{"tcp"}));
    EXPECT_EQ(d.kwargs.at("port"), "80");
    EXPECT_EQ(d.kwargs.at("query"), "a=b=c");
}

TEST(EndpointGrammar, EP_1_backslashMakesNextCharacterLiteral) {
    // EP-1: '\:' → ':', '\=' → '=', '\\' → '\', '\x' → 'x'.
    auto d = parseEndpointDescription(R"(tcp6:80:interface=\:\:1:a\=b:c\\d:\x)");
    EXPECT_EQ(d.args, (Args{"tcp6", "80", "a=b", R"(c\d)", "x"}));
    EXPECT_EQ(d.kwargs.at("interface"), "::1");
}

TEST(EndpointGrammar, EP_1_repeatedKeyKeepsLastValueAndEmptyFieldsAreKept) {
    // EP-1: a repeated key keeps its last value; empty fields are kept; "=x" is key "" = "x".
    auto d = parseEndpointDescription("a::b:k=1:k=2:=x:e=");
    EXPECT_EQ(d.args, (Args{"a", "", "b"}));
    EXPECT_EQ(d.kwargs.at("k"), "2");
    EXPECT_EQ(d.kwargs.at(""), "x");
    EXPECT_EQ(d.kwargs.at("e"), "");
    EXPECT_EQ(d.kwargs.size(), 3u);
}

TEST(EndpointGrammar, EP_2_firstPositionalFieldIsTheTypeEmptyDescriptionIsTypeEmpty) {
    // EP-2: the first positional field names the type; an empty description is the unknown type "".
    EXPECT_EQ(parseEndpointDescription("unix:/tmp/sock:mode=600").type(), "unix");
    EXPECT_EQ(parseEndpointDescription("port=80:tcp").type(), "tcp");
    auto empty = parseEndpointDescription("");
    EXPECT_EQ(empty.type(), "");
    EXPECT_EQ(empty.args, (Args{""}));
}

TEST(EndpointGrammar, EP_3_trailingLoneBackslashIsInvalid) {
    // EP-3: a description ending in a lone backslash is invalid, and the error names the description.
    try {
        parseEndpointDescription(R"(tcp:80\)");
        FAIL() << "no exception";
    } catch (const InvalidEndpointDescription& e) {
        EXPECT_NE(std::string(e.what()).find(R"(tcp:80\)"), std::string::npos);
    }
    EXPECT_THROW(parseEndpointDescription("\\"), std::invalid_argument);
    EXPECT_NO_THROW(parseEndpointDescription(R"(tcp:80\\)"));  // an escaped backslash is fine
}

TEST(EndpointGrammar, EP_4_quotedValuesSurviveParsing) {
    // EP-4: quoteStringArgument escapes '\' and ':' so an interpolated value survives parsing as one field.
    EXPECT_EQ(quoteStringArgument(R"(C:\dir)"), R"(C\:\\dir)");
    EXPECT_EQ(quoteStringArgument(R"(some : stuff \)"), R"(some \: stuff \\)");
    EXPECT_EQ(quoteStringArgument("plain"), "plain");
    for (std::string value : {std::string("::1"), std::string(R"(a\b:c)"), std::string(R"(\)"), std::string("x=y"),
                              std::string("=a=:b"), std::string("")}) {
        auto d = parseEndpointDescription("unix:path=" + quoteStringArgument(value) + ":" + quoteStringArgument(value));
        EXPECT_EQ(d.kwargs.at("path"), value);
        ASSERT_EQ(d.args.size(), 2u) << value;
        EXPECT_EQ(d.args[1], value);
    }
}

TEST(EndpointGrammar, EP_4_equalsIsEscapedSoPositionalValuesStayPositional) {
    // EP-4 Better than Twisted: '=' is escaped too, so a quoted positional value containing '=' is not read as a keyword.
    EXPECT_EQ(quoteStringArgument("/tmp/a=b"), R"(/tmp/a\=b)");
    auto d = parseEndpointDescription("unix:" + quoteStringArgument("/tmp/a=b"));
    EXPECT_EQ(d.args, (Args{"unix", "/tmp/a=b"}));
    EXPECT_TRUE(d.kwargs.empty());
}

// ---- serverFromString / clientFromString: parsing only (no I/O) ---------------------------

namespace ep = weft::endpoints;

namespace {

// Parsing needs a reactor to hand to the endpoints; it is never run.
class EndpointParsing : public weft::test::LeakCheckedTest {
protected:
    std::unique_ptr<weft::Reactor> reactor = weft::Reactor::create();

    template <class E>
    std::shared_ptr<E> server(std::string_view description) {
        auto endpoint = ep::serverFromString(*reactor, description);
        auto typed = std::dynamic_pointer_cast<E>(endpoint);
        EXPECT_TRUE(typed) << description;
        return typed;
    }
    template <class E>
    std::shared_ptr<E> server(std::string_view description, const ep::ListenFDs& fds) {
        auto typed = std::dynamic_pointer_cast<E>(ep::serverFromString(*reactor, description, fds));
        EXPECT_TRUE(typed) << description;
        return typed;
    }
    std::shared_ptr<ep::TCP4ClientEndpoint> client(std::string_view description) {
        auto typed = std::dynamic_pointer_cast<ep::TCP4ClientEndpoint>(ep::clientFromString(*reactor, description));
        EXPECT_TRUE(typed) << description;
        return typed;
    }
};

// what() of the exception E that f throws; fails the test if it throws nothing or something else.
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

}  // namespace

// ---- EP-5 -------------------------------------------------------------------------------

TEST_F(EndpointParsing, EP_5_unknownServerTypeThrowsNamingItInLowerCase) {
    // EP-5: an unknown server type throws ValueError("Unknown endpoint type: '<type in lower case>'").
    auto serve = [&](const char* d) { return [this, d] { ep::serverFromString(*reactor, d); }; };
    EXPECT_EQ(messageOf<UnknownEndpointType>(serve("ftl:andromeda/carcoordinate/nebulae")),
              "Unknown endpoint type: 'ftl'");
    EXPECT_EQ(messageOf<UnknownEndpointType>(serve("FTL:1")), "Unknown endpoint type: 'ftl'");
    EXPECT_EQ(messageOf<UnknownEndpointType>(serve("")), "Unknown endpoint type: ''");
    EXPECT_THROW(ep::serverFromString(*reactor, "ftl:1"), InvalidEndpointDescription);  // a ValueError kind
    EXPECT_THROW(ep::serverFromString(*reactor, "ftl:1"), std::invalid_argument);
}

TEST_F(EndpointParsing, EP_5_builtInServerTypesMatchOnlyInLowerCase) {
    // EP-5: "tcp", "unix" and "ssl" match only in lower case: "TCP:80" is the unknown type 'tcp'.
    EXPECT_EQ(messageOf<UnknownEndpointType>([&] { ep::serverFromString(*reactor, "TCP:80"); }),
              "Unknown endpoint type: 'tcp'");
    EXPECT_THROW(ep::serverFromString(*reactor, "Tcp:80"), UnknownEndpointType);
    EXPECT_THROW(ep::serverFromString(*reactor, "UNIX:/tmp/s"), UnknownEndpointType);
    EXPECT_THROW(ep::serverFromString(*reactor, "SSL:443"), UnknownEndpointType);
    EXPECT_TRUE(server<ep::TCP4ServerEndpoint>("tcp:80"));
}

TEST_F(EndpointParsing, EP_5_pluginServerTypesMatchInAnyCase) {
    // EP-5: the plugin types "tcp6" and "systemd" match case-insensitively.
    EXPECT_TRUE(server<ep::TCP6ServerEndpoint>("TCP6:80"));
    EXPECT_TRUE(server<ep::TCP6ServerEndpoint>("Tcp6:80"));
    ep::ListenFDs fds{{3}, {"web"}};
    EXPECT_TRUE(server<ep::AdoptedStreamServerEndpoint>("SYSTEMD:domain=INET:index=0", fds));
    EXPECT_TRUE(server<ep::AdoptedStreamServerEndpoint>("SystemD:domain=INET:name=web", fds));
}

TEST_F(EndpointParsing, EP_5_typesWeftLacksThrowNotSupportedNamingThem) {
    // EP-5: the Twisted type weft lacks (the haproxy plugin) throws a clear "not supported yet".
    // (stdio, EP-10, is in test_stdio.cpp; ssl, EP-8, in test_sslendpoints.cpp.)
    for (const char* d : {"haproxy:tcp\\:80", "HAProxy:tcp\\:80"}) {
        std::string message = messageOf<UnsupportedEndpointType>([&] { ep::serverFromString(*reactor, d); });
        EXPECT_NE(message.find("'haproxy'"), std::string::npos) << message;
        EXPECT_NE(message.find("not supported"), std::string::npos) << message;
    }
    EXPECT_THROW(ep::serverFromString(*reactor, "haproxy:tcp\\:80"), InvalidEndpointDescription);
}

// ---- EP-7 -------------------------------------------------------------------------------

TEST_F(EndpointParsing, EP_7_unixServerDefaults) {
    // EP-7: "unix:ADDRESS" → UNIXServerEndpoint with mode 0o666, backlog 50 and wantPID true (lockfile defaults to on).
    auto e = server<ep::UNIXServerEndpoint>("unix:/var/run/finger");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->address(), "/var/run/finger");
    EXPECT_EQ(e->mode(), 0666);
    EXPECT_EQ(e->backlog(), 50);
    EXPECT_TRUE(e->wantPID());
}

TEST_F(EndpointParsing, EP_7_unixServerModeIsOctalAndLockfileAndBacklogParse) {
    // EP-7: mode is octal ("mode=0660" → 0o660), positionally or by keyword; lockfile=0 turns wantPID off; backlog by position.
    auto e = server<ep::UNIXServerEndpoint>("unix:/tmp/s:mode=0660:lockfile=0");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->mode(), 0660);
    EXPECT_FALSE(e->wantPID());
    e = server<ep::UNIXServerEndpoint>("unix:/tmp/s:600:7:1");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->mode(), 0600);
    EXPECT_EQ(e->backlog(), 7);
    EXPECT_TRUE(e->wantPID());
    e = server<ep::UNIXServerEndpoint>("unix:address=/tmp/k");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->address(), "/tmp/k");
    // Python's int(mode, 8) takes a "0o" prefix, so Twisted does: "mode=0o660" was refused.
    for (const char* m : {"unix:/tmp/s:mode=0o660", "unix:/tmp/s:mode=0O660", "unix:/tmp/s:0o660"}) {
        e = server<ep::UNIXServerEndpoint>(m);
        ASSERT_TRUE(e) << m;
        EXPECT_EQ(e->mode(), 0660) << m;
    }
    EXPECT_THROW(ep::serverFromString(*reactor, "unix:/tmp/s:mode=0o"), InvalidEndpointDescription);
    EXPECT_THROW(ep::serverFromString(*reactor, "unix:/tmp/s:mode=0o8"), InvalidEndpointDescription);
}

TEST_F(EndpointParsing, EP_7_unixServerBadArgumentsNameTheProblem) {
    // EP-7 (bad input): a mode that is not octal is a bad value (Twisted's ValueError from int(mode, 8):
    // InvalidEndpointDescription; it was EndpointArgumentError, the TypeError kind); an empty path or an unknown
    // keyword is an argument error. Each names the problem.
    EXPECT_NE(messageOf<InvalidEndpointDescription>([&] {
                  ep::serverFromString(*reactor, "unix:/tmp/s:mode=999");
              }).find("mode '999'"),
              std::string::npos);
    EXPECT_THROW(ep::serverFromString(*reactor, "unix:/tmp/s:mode=abc"), InvalidEndpointDescription);
    EXPECT_THROW(ep::serverFromString(*reactor, "unix:"), ep::EndpointArgumentError);
    EXPECT_THROW(ep::serverFromString(*reactor, "unix:/tmp/s:timeout=3"), ep::EndpointArgumentError);
    EXPECT_THROW(ep::serverFromString(*reactor, "unix"), ep::EndpointArgumentError);
}

// ---- EP-6 -------------------------------------------------------------------------------

TEST_F(EndpointParsing, EP_6_tcpPortOnlyGivesDefaults) {
    // EP-6: "tcp:PORT" → TCP4ServerEndpoint on that port, interface "" (all IPv4 addresses), backlog 50.
    auto e = server<ep::TCP4ServerEndpoint>("tcp:80");
    ASSERT_TRUE(e);
    EXPECT_EQ(&e->reactor(), reactor.get());
    EXPECT_EQ(e->port(), 80);
    EXPECT_EQ(e->interface(), "");
    EXPECT_EQ(e->backlog(), 50);
    EXPECT_FALSE(std::dynamic_pointer_cast<ep::TCP6ServerEndpoint>(ep::serverFromString(*reactor, "tcp:80")));
}

TEST_F(EndpointParsing, EP_6_tcpPositionalAndKeywordArguments) {
    // EP-6: tcp:PORT[:INTERFACE[:BACKLOG]], each also as the keywords port, interface, backlog, in any mix.
    auto e = server<ep::TCP4ServerEndpoint>("tcp:80:127.0.0.1:7");
    EXPECT_EQ(e->port(), 80);
    EXPECT_EQ(e->interface(), "127.0.0.1");
    EXPECT_EQ(e->backlog(), 7);
    e = server<ep::TCP4ServerEndpoint>("tcp:port=8080:interface=10.0.0.1:backlog=3");
    EXPECT_EQ(e->port(), 8080);
    EXPECT_EQ(e->interface(), "10.0.0.1");
    EXPECT_EQ(e->backlog(), 3);
    e = server<ep::TCP4ServerEndpoint>("tcp:1234:backlog=12:interface=127.0.0.1");
    EXPECT_EQ(e->port(), 1234);
    EXPECT_EQ(e->interface(), "127.0.0.1");
    EXPECT_EQ(e->backlog(), 12);
    e = server<ep::TCP4ServerEndpoint>("tcp:+0080");  // base 10 with an optional sign, as int()
    EXPECT_EQ(e->port(), 80);
}

TEST_F(EndpointParsing, EP_6_nonNumericPortOrBacklogThrowsValueErrorNamingIt) {
    // EP-6: port and backlog are base-10 integers; other text throws a ValueError kind naming the argument and the text.
    auto serve = [&](const char* d) { return [this, d] { ep::serverFromString(*reactor, d); }; };
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp:http")), "tcp: port 'http' is not a number");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp:abc")), "tcp: port 'abc' is not a number");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp:")), "tcp: port '' is not a number");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp:80:backlog=lots")),
              "tcp: backlog 'lots' is not a number");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp:8 0")), "tcp: port '8 0' is not a number");
}

TEST_F(EndpointParsing, EP_6_portOutsideZeroTo65535IsRejectedAtParseTime) {
    // EP-6 Better than Twisted: a port outside 0..65535 is a clear error when parsing, not a later listen() failure.
    auto serve = [&](const char* d) { return [this, d] { ep::serverFromString(*reactor, d); }; };
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp:65536")), "tcp: port '65536' is out of range 0..65535");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp:-1")), "tcp: port '-1' is out of range 0..65535");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp:99999999999999999999999")),
              "tcp: port '99999999999999999999999' is out of range 0..65535");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("tcp6:70000")),
              "tcp6: port '70000' is out of range 0..65535");
    EXPECT_EQ(server<ep::TCP4ServerEndpoint>("tcp:65535")->port(), 65535);
    EXPECT_EQ(server<ep::TCP4ServerEndpoint>("tcp:0")->port(), 0);
}

TEST_F(EndpointParsing, EP_6_unknownKeywordOrBadArgumentsThrowTypeErrorKind) {
    // EP-6: an unknown keyword throws a TypeError kind (EndpointArgumentError, not a ValueError kind) naming it; so do a missing port, extra fields and a doubly given argument.
    auto serve = [&](const char* d) { return [this, d] { ep::serverFromString(*reactor, d); }; };
    EXPECT_EQ(messageOf<EndpointArgumentError>(serve("tcp:80:bogus=1")), "tcp: unknown keyword 'bogus'");
    EXPECT_EQ(messageOf<EndpointArgumentError>(serve("tcp:80:colour=red")), "tcp: unknown keyword 'colour'");
    EXPECT_EQ(messageOf<EndpointArgumentError>(serve("tcp")), "tcp: missing argument 'port'");
    EXPECT_EQ(messageOf<EndpointArgumentError>(serve("tcp:interface=127.0.0.1")), "tcp: missing argument 'port'");
    EXPECT_NE(messageOf<EndpointArgumentError>(serve("tcp:1:127.0.0.1:3:4")).find("too many positional"),
              std::string::npos);
    EXPECT_NE(messageOf<EndpointArgumentError>(serve("tcp:80:port=81")).find("'port'"), std::string::npos);
    // A bare ':' inside a value leaves empty fields: the message says how to escape it, and only then.
    EXPECT_EQ(messageOf<EndpointArgumentError>(serve("tcp6:0:interface=::1")),
              "tcp6: argument 'interface' given both positionally and as a keyword (a ':' inside a value is "
              "written '\\:', e.g. interface=\\:\\:1)");
    auto connectTo = [&](const char* d) { return [this, d] { ep::clientFromString(*reactor, d); }; };
    EXPECT_NE(messageOf<EndpointArgumentError>(connectTo("tcp:::1:80")).find("written '\\:'"), std::string::npos);
    EXPECT_EQ(messageOf<EndpointArgumentError>(serve("tcp:1:127.0.0.1:3:4")).find("written"), std::string::npos);
    try {
        ep::serverFromString(*reactor, "tcp:80:bogus=1");
    } catch (const InvalidEndpointDescription&) {
        ADD_FAILURE() << "an argument error is not a ValueError kind";
    } catch (const std::invalid_argument&) {}
}

// ---- EP-9 -------------------------------------------------------------------------------

TEST_F(EndpointParsing, EP_9_tcp6TakesBacklogBeforeInterface) {
    // EP-9: tcp6:PORT[:BACKLOG[:INTERFACE]] — backlog before interface — with interface default "::"; IPv6 colons are escaped.
    auto e = server<ep::TCP6ServerEndpoint>(R"(tcp6:8080:5:\:\:1)");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->port(), 8080);
    EXPECT_EQ(e->backlog(), 5);
    EXPECT_EQ(e->interface(), "::1");
    e = server<ep::TCP6ServerEndpoint>("tcp6:80");
    EXPECT_EQ(e->port(), 80);
    EXPECT_EQ(e->backlog(), 50);
    EXPECT_EQ(e->interface(), "::");
    e = server<ep::TCP6ServerEndpoint>(R"(tcp6:port=443:interface=\:\:1)");
    EXPECT_EQ(e->port(), 443);
    EXPECT_EQ(e->interface(), "::1");
    EXPECT_EQ(e->backlog(), 50);
    EXPECT_EQ(messageOf<InvalidEndpointDescription>([&] { ep::serverFromString(*reactor, "tcp6:80:any"); }),
              "tcp6: backlog 'any' is not a number");
    EXPECT_THROW(ep::serverFromString(*reactor, "tcp6:80:mode=1"), EndpointArgumentError);
    EXPECT_FALSE(std::dynamic_pointer_cast<ep::TCP4ServerEndpoint>(ep::serverFromString(*reactor, "tcp6:80")));
}

// ---- EP-11 ------------------------------------------------------------------------------

TEST_F(EndpointParsing, EP_11_systemdIndexSelectsInheritedDescriptorForEachDomain) {
    // EP-11: systemd:domain=INET|INET6|UNIX:index=N adopts the N-th inherited descriptor with that address family.
    ep::ListenFDs fds{{3, 4, 5}, {"a", "b", "c"}};
    auto e = server<ep::AdoptedStreamServerEndpoint>("systemd:domain=INET:index=0", fds);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->fileno(), 3);
    EXPECT_EQ(e->addressFamily(), AF_INET);
    EXPECT_EQ(&e->reactor(), reactor.get());
    e = server<ep::AdoptedStreamServerEndpoint>("systemd:domain=INET6:index=1", fds);
    EXPECT_EQ(e->fileno(), 4);
    EXPECT_EQ(e->addressFamily(), AF_INET6);
    e = server<ep::AdoptedStreamServerEndpoint>("systemd:domain=UNIX:index=2", fds);
    EXPECT_EQ(e->fileno(), 5);
    EXPECT_EQ(e->addressFamily(), AF_UNIX);
}

TEST_F(EndpointParsing, EP_11_systemdNameSelectsByListenFdNames) {
    // EP-11: systemd:domain=…:name=NAME adopts the inherited descriptor with that LISTEN_FDNAMES name.
    ep::ListenFDs fds{{3, 4, 5}, {"web", "admin", "metrics"}};
    auto e = server<ep::AdoptedStreamServerEndpoint>("systemd:domain=INET:name=admin", fds);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->fileno(), 4);
    EXPECT_EQ(e->addressFamily(), AF_INET);
    e = server<ep::AdoptedStreamServerEndpoint>("systemd:domain=INET6:name=metrics", fds);
    EXPECT_EQ(e->fileno(), 5);
    EXPECT_EQ(e->addressFamily(), AF_INET6);
    e = server<ep::AdoptedStreamServerEndpoint>("systemd:domain=UNIX:name=web", fds);
    EXPECT_EQ(e->fileno(), 3);
}

TEST_F(EndpointParsing, EP_11_exactlyOneOfIndexAndNameIsRequired) {
    // EP-11: giving both index and name, or neither, throws a ValueError kind.
    ep::ListenFDs fds{{3}, {"web"}};
    auto serve = [&](const char* d) { return [&, d] { ep::serverFromString(*reactor, d, fds); }; };
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("systemd:domain=INET:index=0:name=web")),
              "systemd: specify exactly one of descriptor index or name");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("systemd:domain=INET")),
              "systemd: specify exactly one of descriptor index or name");
}

TEST_F(EndpointParsing, EP_11_unavailableIndexOrNameThrows) {
    // EP-11: an index or name that was not inherited throws, naming it.
    ep::ListenFDs fds{{3, 4}, {"web", "admin"}};
    auto serve = [&](const char* d) { return [&, d] { ep::serverFromString(*reactor, d, fds); }; };
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("systemd:domain=INET:index=2")),
              "systemd: no inherited descriptor at index 2 (2 inherited)");
    EXPECT_NE(messageOf<InvalidEndpointDescription>(serve("systemd:domain=INET:index=-1")).find("index -1"),
              std::string::npos);
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(serve("systemd:domain=INET:index=first")),
              "systemd: index 'first' is not a number");
    EXPECT_NE(messageOf<InvalidEndpointDescription>(serve("systemd:domain=INET:name=metrics")).find("'metrics'"),
              std::string::npos);
    ep::ListenFDs none;
    EXPECT_THROW(ep::serverFromString(*reactor, "systemd:domain=INET:index=0", none), InvalidEndpointDescription);
}

TEST_F(EndpointParsing, EP_11_domainIsRequiredAndMustBeKnown) {
    // EP-11: the domain is INET, INET6 or UNIX; a missing one is an argument error, another value a ValueError kind.
    ep::ListenFDs fds{{3}, {"web"}};
    EXPECT_EQ(messageOf<EndpointArgumentError>([&] { ep::serverFromString(*reactor, "systemd:index=0", fds); }),
              "systemd: missing argument 'domain'");
    EXPECT_NE(messageOf<InvalidEndpointDescription>([&] {
                  ep::serverFromString(*reactor, "systemd:domain=IPX:index=0", fds);
              }).find("'IPX'"),
              std::string::npos);
    EXPECT_THROW(ep::serverFromString(*reactor, "systemd:domain=inet:index=0", fds), InvalidEndpointDescription);
    EXPECT_THROW(ep::serverFromString(*reactor, "systemd:domain=INET:index=0:port=1", fds), EndpointArgumentError);
}

TEST(ListenFDs, EP_11_readsListenPidListenFdsAndNamesFromTheEnvironment) {
    // EP-11: LISTEN_PID must equal our pid; LISTEN_FDS descriptors start at fd 3; names come from LISTEN_FDNAMES.
    std::map<std::string, std::string> vars{
        {"LISTEN_PID", std::to_string(::getpid())}, {"LISTEN_FDS", "2"}, {"LISTEN_FDNAMES", "web:admin"}};
    auto env = [&](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    auto fds = ep::ListenFDs::fromEnvironment(env);
    EXPECT_EQ(fds.inheritedDescriptors(), (std::vector<int>{3, 4}));
    EXPECT_EQ(fds.inheritedNamedDescriptors(), (std::map<std::string, int>{{"web", 3}, {"admin", 4}}));
    EXPECT_EQ(ep::ListenFDs::fromEnvironment(env, 10).inheritedDescriptors(), (std::vector<int>{10, 11}));

    vars["LISTEN_PID"] = std::to_string(::getpid() + 1);  // meant for another process
    EXPECT_TRUE(ep::ListenFDs::fromEnvironment(env).inheritedDescriptors().empty());
    vars.erase("LISTEN_PID");
    EXPECT_TRUE(ep::ListenFDs::fromEnvironment(env).inheritedDescriptors().empty());
    vars["LISTEN_PID"] = std::to_string(::getpid());
    vars["LISTEN_FDS"] = "two";
    EXPECT_TRUE(ep::ListenFDs::fromEnvironment(env).inheritedDescriptors().empty());

    // Better than Twisted: without (matching) names the descriptors stay available by index.
    vars["LISTEN_FDS"] = "3";
    fds = ep::ListenFDs::fromEnvironment(env);
    EXPECT_EQ(fds.inheritedDescriptors(), (std::vector<int>{3, 4, 5}));
    EXPECT_TRUE(fds.inheritedNamedDescriptors().empty());
    vars.erase("LISTEN_FDNAMES");
    EXPECT_EQ(ep::ListenFDs::fromEnvironment(env).inheritedDescriptors().size(), 3u);
}

TEST_F(EndpointParsing, EP_11_serverFromStringReadsTheProcessEnvironment) {
    // EP-11: without explicit descriptors, serverFromString reads LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES of this process.
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "2", 1);
    ::setenv("LISTEN_FDNAMES", "web:admin", 1);
    auto e = std::dynamic_pointer_cast<ep::AdoptedStreamServerEndpoint>(
        ep::serverFromString(*reactor, "systemd:domain=INET6:name=admin"));
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->fileno(), 4);
    EXPECT_EQ(e->addressFamily(), AF_INET6);
    EXPECT_THROW(ep::serverFromString(*reactor, "systemd:domain=INET:index=0"), InvalidEndpointDescription);
}

// ---- EP-12 ------------------------------------------------------------------------------

TEST_F(EndpointParsing, EP_12_clientTypeNamesAreCaseInsensitive) {
    // EP-12: client type names match in any case ("TCP:h:80" works).
    auto e = client("TCP:example.com:80");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->host(), "example.com");
    EXPECT_EQ(e->port(), 80);
    EXPECT_TRUE(client("tCp:example.com:80"));
}

TEST_F(EndpointParsing, EP_12_unknownClientTypeThrowsAndTcp6IsNotAClientType) {
    // EP-12: an unknown client type throws ValueError("Unknown endpoint type: '…'"); "tcp6" is not a client type.
    auto connectTo = [&](const char* d) { return [this, d] { ep::clientFromString(*reactor, d); }; };
    EXPECT_EQ(messageOf<UnknownEndpointType>(connectTo("ftl:andromeda:1")), "Unknown endpoint type: 'ftl'");
    EXPECT_EQ(messageOf<UnknownEndpointType>(connectTo("FTL:x")), "Unknown endpoint type: 'ftl'");
    EXPECT_EQ(messageOf<UnknownEndpointType>(connectTo("tcp6:h:80")), "Unknown endpoint type: 'tcp6'");
    EXPECT_EQ(messageOf<UnknownEndpointType>(connectTo("systemd:domain=INET:index=0")),
              "Unknown endpoint type: 'systemd'");
    EXPECT_EQ(messageOf<UnknownEndpointType>(connectTo("")), "Unknown endpoint type: ''");
}

TEST_F(EndpointParsing, EP_12_sslAndTlsClientTypesMatchInAnyCase) {
    // EP-12: the client types ssl and tls (EP-15, EP-16; test_sslendpoints.cpp) match in any case: their own
    // parser answers, here that the port is missing.
    for (const char* d : {"ssl:example.com", "SSL:example.com", "tls:example.com", "TLS:example.com"}) {
        std::string message = messageOf<EndpointArgumentError>([&] { ep::clientFromString(*reactor, d); });
        EXPECT_NE(message.find("'port'"), std::string::npos) << message;
    }
}

TEST_F(EndpointParsing, EP_6_udpDatagramDescriptions) {
    // EP-6 (weft's datagram descriptions): "udp:PORT[:interface][:maxPacketSize]" → UDPServerEndpoint; bad fields name themselves.
    auto e = std::dynamic_pointer_cast<ep::UDPServerEndpoint>(ep::datagramServerFromString(*reactor, "udp:5353"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->port(), 5353);
    EXPECT_EQ(e->interface(), "");
    EXPECT_EQ(e->maxPacketSize(), 8192u);
    e = std::dynamic_pointer_cast<ep::UDPServerEndpoint>(
        ep::datagramServerFromString(*reactor, "UDP:0:interface=\\:\\:1:maxPacketSize=1500"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->interface(), "::1");
    EXPECT_EQ(e->maxPacketSize(), 1500u);
    EXPECT_THROW(ep::datagramServerFromString(*reactor, "tcp:80"), UnknownEndpointType);
    EXPECT_THROW(ep::datagramServerFromString(*reactor, "udp:70000"), InvalidEndpointDescription);
    // A maxPacketSize out of range is a bad value, as a bad port is (the ValueError kind).
    EXPECT_THROW(ep::datagramServerFromString(*reactor, "udp:1:maxPacketSize=0"), InvalidEndpointDescription);
    EXPECT_THROW(ep::datagramServerFromString(*reactor, "udp:1:maxPacketSize=70000"), InvalidEndpointDescription);
    EXPECT_THROW(ep::datagramServerFromString(*reactor, "udp"), ep::EndpointArgumentError);
}

TEST_F(EndpointParsing, EP_14_unixClientPathTimeoutAndLockfile) {
    // EP-14: "unix:PATH" or "unix:path=PATH" → UNIXClientEndpoint, timeout 30 and checkPID false by default; lockfile=1 → checkPID.
    auto e = std::dynamic_pointer_cast<ep::UNIXClientEndpoint>(ep::clientFromString(*reactor, "unix:/var/run/finger"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->path(), "/var/run/finger");
    EXPECT_EQ(e->timeout(), 30);
    EXPECT_FALSE(e->checkPID());
    e = std::dynamic_pointer_cast<ep::UNIXClientEndpoint>(
        ep::clientFromString(*reactor, "UNIX:path=/tmp/s:lockfile=1:timeout=9"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->path(), "/tmp/s");
    EXPECT_EQ(e->timeout(), 9);
    EXPECT_TRUE(e->checkPID());
}

TEST_F(EndpointParsing, EP_14_unixClientRejectsServerOnlyKeywords) {
    // EP-14: server-only keywords such as mode are a TypeError kind (EndpointArgumentError); the path is required.
    EXPECT_THROW(ep::clientFromString(*reactor, "unix:/tmp/s:mode=660"), ep::EndpointArgumentError);
    EXPECT_THROW(ep::clientFromString(*reactor, "unix:"), ep::EndpointArgumentError);
    EXPECT_THROW(ep::clientFromString(*reactor, "unix:timeout=3"), ep::EndpointArgumentError);
    // Only the path is positional: "unix:/tmp/s:5" took 5 as the timeout (Twisted: TypeError).
    EXPECT_THROW(ep::clientFromString(*reactor, "unix:/tmp/s:5"), ep::EndpointArgumentError);
    EXPECT_THROW(ep::clientFromString(*reactor, "unix:/tmp/s:5:1"), ep::EndpointArgumentError);
    EXPECT_THROW(ep::clientFromString(*reactor, "unix:/a:/b"), ep::EndpointArgumentError);
}

// ---- EP-13 ------------------------------------------------------------------------------

TEST_F(EndpointParsing, EP_13_tcpHostAndPortPositionallyWithDefaults) {
    // EP-13: tcp:HOST:PORT → TCP4ClientEndpoint with timeout 30 and no bind address.
    auto e = client("tcp:example.com:1234");
    ASSERT_TRUE(e);
    EXPECT_EQ(&e->reactor(), reactor.get());
    EXPECT_EQ(e->host(), "example.com");
    EXPECT_EQ(e->port(), 1234);
    EXPECT_EQ(e->timeout(), 30);
    EXPECT_FALSE(e->bindAddress().has_value());
}

TEST_F(EndpointParsing, EP_13_tcpHostAndPortAsKeywordsInAnyMix) {
    // EP-13: host and port may be given as host=/port= in any mix with positional fields; timeout and bindAddress=IP (→ (IP, 0)).
    auto e = client("tcp:host=example.com:port=1234:timeout=7:bindAddress=10.0.0.2");
    EXPECT_EQ(e->host(), "example.com");
    EXPECT_EQ(e->port(), 1234);
    EXPECT_EQ(e->timeout(), 7);
    ASSERT_TRUE(e->bindAddress().has_value());
    EXPECT_EQ(*e->bindAddress(), (weft::BindAddress{"10.0.0.2", 0}));
    e = client("tcp:host=example.com:80");  // one positional field after host= is the port
    EXPECT_EQ(e->host(), "example.com");
    EXPECT_EQ(e->port(), 80);
    e = client("tcp:example.com:port=80");  // … otherwise it is the host
    EXPECT_EQ(e->host(), "example.com");
    EXPECT_EQ(e->port(), 80);
    e = client("tcp:port=80:host=example.com");
    EXPECT_EQ(e->host(), "example.com");
    EXPECT_EQ(e->port(), 80);
}

TEST_F(EndpointParsing, EP_13_tcpHostMayBeAnEscapedIPv6Literal) {
    // EP-13: the host may be an IPv6 literal, its colons escaped.
    auto e = client(R"(tcp:\:\:1:8080)");
    EXPECT_EQ(e->host(), "::1");
    EXPECT_EQ(e->port(), 8080);
    e = client("tcp:host=" + quoteStringArgument("fe80::1%lo") + ":port=80");
    EXPECT_EQ(e->host(), "fe80::1%lo");
}

TEST_F(EndpointParsing, EP_13_missingPortOrUnknownKeywordThrowsTypeErrorKind) {
    // EP-13: a missing host or port, or an unknown keyword, throws a TypeError kind (EndpointArgumentError) naming it.
    auto connectTo = [&](const char* d) { return [this, d] { ep::clientFromString(*reactor, d); }; };
    EXPECT_EQ(messageOf<EndpointArgumentError>(connectTo("tcp:example.com")), "tcp: missing argument 'port'");
    EXPECT_EQ(messageOf<EndpointArgumentError>(connectTo("tcp:host=example.com")), "tcp: missing argument 'port'");
    EXPECT_EQ(messageOf<EndpointArgumentError>(connectTo("tcp:port=80")), "tcp: missing argument 'host'");
    EXPECT_EQ(messageOf<EndpointArgumentError>(connectTo("tcp:example.com:80:colour=red")),
              "tcp: unknown keyword 'colour'");
    EXPECT_NE(messageOf<EndpointArgumentError>(connectTo("tcp:h:80:extra")).find("too many positional"),
              std::string::npos);
    EXPECT_NE(messageOf<EndpointArgumentError>(connectTo("tcp:h:80:host=g")).find("'host'"), std::string::npos);
}

TEST_F(EndpointParsing, EP_13_badPortOrTimeoutThrowsValueErrorKind) {
    // EP-13: a port or timeout that is not an integer throws a ValueError kind naming it; a port outside 0..65535 too (Better than Twisted).
    auto connectTo = [&](const char* d) { return [this, d] { ep::clientFromString(*reactor, d); }; };
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(connectTo("tcp:h:abc")), "tcp: port 'abc' is not a number");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(connectTo("tcp:h:70000")),
              "tcp: port '70000' is out of range 0..65535");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(connectTo("tcp:h:80:timeout=soon")),
              "tcp: timeout 'soon' is not a number");
    EXPECT_EQ(messageOf<InvalidEndpointDescription>(connectTo("tcp:h:80:timeout=1.5")),
              "tcp: timeout '1.5' is not a number");
}

// ---- endpoints against a MemoryReactor: each takes the reactor interface it needs --------

namespace {

namespace wt = weft::testing;
using weft::Failure;
using weft::Protocol;

// Tells its test when it was made.
struct Hello : weft::Protocol {
    bool made = false;
    void connectionMade() override { made = true; }
};

// A reactor that has IReactorTCP and nothing else: it records the listenTCP.
struct TCPOnlyReactor : weft::IReactorTCP {
    std::vector<std::uint16_t> listened;

protected:
    std::shared_ptr<weft::IListeningPort> doListenTCP(std::uint16_t port, std::shared_ptr<weft::Factory>, int,
                                                      const std::string&) override {
        listened.push_back(port);
        return std::make_shared<wt::FakePort>(weft::IPv4Address("TCP", "0.0.0.0", port));
    }
    std::shared_ptr<weft::IConnector> doConnectTCP(const std::string&, std::uint16_t,
                                                   std::shared_ptr<weft::ClientFactory>, double,
                                                   std::optional<weft::BindAddress>) override {
        throw std::logic_error("not used");
    }
};

// An endpoint a plugin builds: it remembers what it was parsed from.
struct NamedServerEndpoint : weft::IStreamServerEndpoint {
    std::string type, argument;
    weft::IReactorTCP* reactor = nullptr;
    weft::Deferred<std::shared_ptr<weft::IListeningPort>> listen(std::shared_ptr<weft::Factory> f) override {
        return weft::succeed(reactor->listenTCP(80, std::move(f)));
    }
};
struct NamedClientEndpoint : weft::IStreamClientEndpoint {
    std::string type;
    weft::Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<weft::Factory>) override {
        return weft::fail<std::shared_ptr<Protocol>>(Failure(std::runtime_error("not connected")));
    }
};

// Registers a parser for the length of a test, so the registry is left as found.
class ScopedServerParser {
public:
    ScopedServerParser(std::string prefix, ep::ServerParser parser, ep::PrefixMatch match = ep::PrefixMatch::anyCase)
        : prefix_(std::move(prefix)), match_(match) {
        ep::registerServerParser(prefix_, std::move(parser), match_);
    }
    ~ScopedServerParser() { ep::unregisterServerParser(prefix_, match_); }
    ScopedServerParser(const ScopedServerParser&) = delete;
    ScopedServerParser& operator=(const ScopedServerParser&) = delete;

private:
    std::string prefix_;
    ep::PrefixMatch match_;
};

// A plugin parser for the type "greeting": greeting:ARGUMENT.
ep::ServerParser greetingParser() {
    return [](const weft::ReactorRef& reactor, const EndpointDescription& d, const ep::ServerParseContext&) {
        auto e = std::make_shared<NamedServerEndpoint>();
        e->type = d.type();
        e->argument = d.args.size() > 1 ? d.args[1] : "";
        e->reactor = &reactor.get<weft::IReactorTCP>();
        return std::static_pointer_cast<weft::IStreamServerEndpoint>(e);
    };
}

}  // namespace

class MemoryReactorEndpoints : public weft::test::LeakCheckedTest {
protected:
    wt::MemoryReactor reactor;
};

TEST_F(MemoryReactorEndpoints, EP_12_cancellingAConnectStopsTheAttemptWithConnectingCancelledError) {
    // Twisted's _WrappingFactory._canceller: the Deferred fails with ConnectingCancelledError(destination)
    // and the connector stops connecting. It failed with a bare CancelledError and the connection went
    // on: the protocol was built and connected with nobody holding it.
    for (const char* description : {"tcp:example.org:80", "unix:/tmp/weft-cancel.sock"}) {
        SCOPED_TRACE(description);
        reactor.connectors.clear();
        auto d = ep::clientFromString(reactor, description)->connect(weft::Factory::forProtocol<Hello>());
        ASSERT_EQ(reactor.connectors.size(), 1u);
        d.cancel();
        auto f = wt::failureResultOf<weft::error::ConnectingCancelledError>(d);
        EXPECT_NE(f.getErrorMessage().find("was cancelled"), std::string::npos) << f.getErrorMessage();
        EXPECT_TRUE(reactor.connectors[0]->stoppedConnecting);
    }
}

TEST_F(MemoryReactorEndpoints, EP_6_tcpServerEndpointListensThroughIReactorTCP) {
    // EP-6: "tcp:PORT:INTERFACE:BACKLOG" listens with listenTCP(port, factory, backlog, interface) on any IReactorTCP; a MemoryReactor records it.
    auto endpoint = ep::serverFromString(reactor, "tcp:8080:interface=127.0.0.1:backlog=7");
    EXPECT_TRUE(reactor.tcpServers.empty());  // nothing until listen()
    auto factory = weft::Factory::forProtocol<Hello>();
    auto port = wt::successResultOf(endpoint->listen(factory));
    ASSERT_EQ(reactor.tcpServers.size(), 1u);
    EXPECT_EQ(reactor.tcpServers[0].port, 8080);
    EXPECT_EQ(reactor.tcpServers[0].factory, factory);
    EXPECT_EQ(reactor.tcpServers[0].backlog, 7);
    EXPECT_EQ(reactor.tcpServers[0].interface, "127.0.0.1");
    EXPECT_EQ(std::get<weft::IPv4Address>(port->getHost()), weft::IPv4Address("TCP", "0.0.0.0", 8080));
    auto tcp = std::dynamic_pointer_cast<ep::TCP4ServerEndpoint>(endpoint);
    ASSERT_TRUE(tcp);
    EXPECT_EQ(&tcp->reactor(), static_cast<weft::IReactorTCP*>(&reactor));

    wt::successResultOf(ep::serverFromString(reactor, R"(tcp6:9090:interface=\:\:1)")->listen(factory));
    ASSERT_EQ(reactor.tcpServers.size(), 2u);
    EXPECT_EQ(reactor.tcpServers[1].interface, "::1");
    EXPECT_EQ(reactor.tcpServers[1].backlog, 50);
}

TEST_F(MemoryReactorEndpoints, EP_14_unixClientEndpointConnectsThroughIReactorUNIX) {
    // EP-14: "unix:PATH:timeout=T:lockfile=1" connects with connectUNIX(path, …, timeout, checkPID) on any IReactorUNIX; the Deferred fires once the protocol is connected.
    auto endpoint = ep::clientFromString(reactor, "unix:/run/app.sock:timeout=9:lockfile=1");
    EXPECT_TRUE(reactor.unixClients.empty());  // nothing until connect()
    auto d = endpoint->connect(weft::Factory::forProtocol<Hello>());
    ASSERT_EQ(reactor.unixClients.size(), 1u);
    const auto& call = reactor.unixClients[0];
    EXPECT_EQ(call.address, "/run/app.sock");
    EXPECT_EQ(call.timeout, 9);
    EXPECT_TRUE(call.checkPID);
    ASSERT_EQ(reactor.connectors.size(), 1u);
    EXPECT_EQ(std::get<weft::UNIXAddress>(reactor.connectors[0]->getDestination()), weft::UNIXAddress("/run/app.sock"));
    wt::assertNoResult(d);

    // The test completes the connection (TEST-12): the endpoint's factory builds the protocol.
    auto built = call.factory->buildProtocol(weft::UNIXAddress("/run/app.sock"));
    ASSERT_TRUE(built);
    built->makeConnection(std::make_shared<wt::StringTransport>());
    auto protocol = std::dynamic_pointer_cast<Hello>(wt::successResultOf(d));
    ASSERT_TRUE(protocol);
    EXPECT_TRUE(protocol->made);
    built->connectionLost(Failure(weft::error::ConnectionDone()));
}

TEST_F(MemoryReactorEndpoints, EP_13_tcpClientEndpointConnectsThroughIReactorTCP) {
    // EP-13: "tcp:HOST:PORT:timeout=T:bindAddress=IP" connects with connectTCP(host, port, …, timeout, {IP, 0}).
    auto d = ep::clientFromString(reactor, "tcp:example.com:443:timeout=5:bindAddress=10.0.0.2")
                 ->connect(weft::Factory::forProtocol<Hello>());
    ASSERT_EQ(reactor.tcpClients.size(), 1u);
    EXPECT_EQ(reactor.tcpClients[0].host, "example.com");
    EXPECT_EQ(reactor.tcpClients[0].port, 443);
    EXPECT_EQ(reactor.tcpClients[0].timeout, 5);
    EXPECT_EQ(reactor.tcpClients[0].bindAddress, (weft::BindAddress{"10.0.0.2", 0}));
    wt::assertNoResult(d);
}

TEST_F(MemoryReactorEndpoints, EP_7_unixServerAndUdpEndpointsListenThroughTheirInterfaces) {
    // EP-7: "unix:ADDRESS:MODE:BACKLOG:LOCKFILE" listens with listenUNIX(address, factory, backlog, mode, wantPID); "udp:…" with listenUDP.
    auto factory = weft::Factory::forProtocol<Hello>();
    wt::successResultOf(ep::serverFromString(reactor, "unix:/tmp/s.sock:600:9:0")->listen(factory));
    ASSERT_EQ(reactor.unixServers.size(), 1u);
    EXPECT_EQ(reactor.unixServers[0].address, "/tmp/s.sock");
    EXPECT_EQ(reactor.unixServers[0].mode, 0600);
    EXPECT_EQ(reactor.unixServers[0].backlog, 9);
    EXPECT_FALSE(reactor.unixServers[0].wantPID);

    auto protocol = std::make_shared<weft::DatagramProtocol>();
    wt::successResultOf(
        ep::datagramServerFromString(reactor, R"(udp:5353:interface=\:\:1:maxPacketSize=512)")->listen(protocol));
    ASSERT_EQ(reactor.udpServers.size(), 1u);
    EXPECT_EQ(reactor.udpServers[0].port, 5353);
    EXPECT_EQ(reactor.udpServers[0].protocol, protocol);
    EXPECT_EQ(reactor.udpServers[0].interface, "::1");
    EXPECT_EQ(reactor.udpServers[0].maxPacketSize, 512u);
}

TEST_F(MemoryReactorEndpoints, EP_11_systemdEndpointAdoptsThroughIReactorSocket) {
    // EP-11: a systemd endpoint listens with adoptStreamPort(fd, family, factory) on any IReactorSocket, then closes the inherited descriptor.
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ep::ListenFDs fds{{fd}, {"web"}};
    auto factory = weft::Factory::forProtocol<Hello>();
    wt::successResultOf(ep::serverFromString(reactor, "systemd:domain=INET6:name=web", fds)->listen(factory));
    ASSERT_EQ(reactor.adoptedPorts.size(), 1u);
    EXPECT_EQ(reactor.adoptedPorts[0].fd, fd);
    EXPECT_EQ(reactor.adoptedPorts[0].addressFamily, AF_INET6);
    EXPECT_EQ(reactor.adoptedPorts[0].factory, factory);
    errno = 0;
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1);  // the port would listen on its own duplicate
    EXPECT_EQ(errno, EBADF);
}

TEST_F(MemoryReactorEndpoints, EP_5_aTypeWhoseInterfaceTheReactorLacksIsUnsupported) {
    // EP-5: each parser asks the reactor for the interface its type needs: a reactor with IReactorTCP only parses tcp, and a unix description throws UnsupportedEndpointType naming IReactorUNIX, before any endpoint exists.
    TCPOnlyReactor tcpOnly;
    wt::successResultOf(ep::serverFromString(tcpOnly, "tcp:81")->listen(weft::Factory::forProtocol<Hello>()));
    EXPECT_EQ(tcpOnly.listened, std::vector<std::uint16_t>{81});
    std::string message;
    try {
        ep::serverFromString(tcpOnly, "unix:/tmp/s");
        ADD_FAILURE() << "no exception";
    } catch (const UnsupportedEndpointType& e) {
        message = e.what();
    }
    EXPECT_NE(message.find("'unix'"), std::string::npos) << message;
    EXPECT_NE(message.find("IReactorUNIX"), std::string::npos) << message;
    EXPECT_THROW(ep::clientFromString(tcpOnly, "unix:/tmp/s"), UnsupportedEndpointType);
    EXPECT_THROW(ep::datagramServerFromString(tcpOnly, "udp:53"), UnsupportedEndpointType);
    EXPECT_THROW(ep::serverFromString(tcpOnly, "systemd:domain=INET:index=0", ep::ListenFDs{{3}, {}}),
                 UnsupportedEndpointType);

    // Seen through one interface, a reactor still offers the others it has (a cross-cast).
    weft::IReactorTCP& asTCP = reactor;
    weft::ReactorRef ref(asTCP);
    EXPECT_EQ(ref.find<weft::IReactorUNIX>(), static_cast<weft::IReactorUNIX*>(&reactor));
    EXPECT_EQ(ref.find<weft::IReactorThreads>(), nullptr);
    EXPECT_THROW(ref.get<weft::IReactorThreads>(), std::invalid_argument);
    EXPECT_TRUE(std::dynamic_pointer_cast<ep::UNIXClientEndpoint>(ep::clientFromString(asTCP, "unix:/x")));
}

// ---- the parser registry (Twisted's endpoint string parser plugins) ----------------------------

TEST_F(MemoryReactorEndpoints, EP_5_aRegisteredServerTypeIsParsedByItsParserInAnyCase) {
    // EP-5: a user-registered server type is a plugin type: it matches in any case and its parser gets the reactor and the description; unregistered, it is unknown again.
    {
        ScopedServerParser plugin("greeting", greetingParser());
        for (const char* d : {"greeting:hi", "GREETING:hi", "Greeting:hi"}) {
            auto e = std::dynamic_pointer_cast<NamedServerEndpoint>(ep::serverFromString(reactor, d));
            ASSERT_TRUE(e) << d;
            EXPECT_EQ(e->type, weft::parseEndpointDescription(d).type());
            EXPECT_EQ(e->argument, "hi");
            EXPECT_EQ(e->reactor, static_cast<weft::IReactorTCP*>(&reactor));
        }
        wt::successResultOf(ep::serverFromString(reactor, "greeting:x")->listen(weft::Factory::forProtocol<Hello>()));
        EXPECT_EQ(reactor.tcpServers.size(), 1u);
    }
    EXPECT_THROW(ep::serverFromString(reactor, "greeting:hi"), UnknownEndpointType);
    EXPECT_FALSE(ep::unregisterServerParser("greeting"));
}

TEST_F(MemoryReactorEndpoints, EP_5_exactTypesAreLookedUpBeforeAnyCaseOnes) {
    // EP-5: like Twisted's built-in "tcp", a type registered PrefixMatch::exact matches only as written, and is found before an any-case (plugin) type: a plugin named "tcp" gets "TCP:80" but never "tcp:80".
    {
        ScopedServerParser exact("Shout", greetingParser(), ep::PrefixMatch::exact);
        EXPECT_TRUE(std::dynamic_pointer_cast<NamedServerEndpoint>(ep::serverFromString(reactor, "Shout:1")));
        EXPECT_THROW(ep::serverFromString(reactor, "shout:1"), UnknownEndpointType);
        EXPECT_THROW(ep::serverFromString(reactor, "SHOUT:1"), UnknownEndpointType);
    }
    {
        ScopedServerParser plugin("tcp", greetingParser());
        EXPECT_TRUE(std::dynamic_pointer_cast<NamedServerEndpoint>(ep::serverFromString(reactor, "TCP:80")));
        EXPECT_TRUE(std::dynamic_pointer_cast<ep::TCP4ServerEndpoint>(ep::serverFromString(reactor, "tcp:80")));
    }
    EXPECT_THROW(ep::serverFromString(reactor, "TCP:80"), UnknownEndpointType);  // the built-ins are as they were
    EXPECT_THROW(ep::registerServerParser("", greetingParser()), std::invalid_argument);
    EXPECT_THROW(ep::registerServerParser("empty", nullptr), std::invalid_argument);
}

TEST_F(MemoryReactorEndpoints, EP_12_aRegisteredClientTypeIsParsedByItsParser) {
    // EP-12: client types (built-in and registered) match in any case; a registered client type's parser builds the endpoint.
    ep::registerClientParser("Relay", [](const weft::ReactorRef&, const EndpointDescription& d) {
        auto e = std::make_shared<NamedClientEndpoint>();
        e->type = d.type();
        return std::static_pointer_cast<weft::IStreamClientEndpoint>(e);
    });
    auto e = std::dynamic_pointer_cast<NamedClientEndpoint>(ep::clientFromString(reactor, "RELAY:somewhere"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->type, "RELAY");
    EXPECT_TRUE(ep::unregisterClientParser("relay"));  // any-case prefixes are kept in lower case
    EXPECT_THROW(ep::clientFromString(reactor, "relay:somewhere"), UnknownEndpointType);
}

TEST_F(MemoryReactorEndpoints, EP_6_aRegisteredDatagramTypeIsParsedByItsParser) {
    // EP-6 (weft's datagram descriptions): datagramServerFromString looks types up in its own registry, "udp" included.
    struct Named : ep::IDatagramServerEndpoint {
        weft::Deferred<std::shared_ptr<weft::IListeningPort>> listen(std::shared_ptr<weft::DatagramProtocol>) override {
            return weft::succeed(std::shared_ptr<weft::IListeningPort>());
        }
    };
    ep::registerDatagramServerParser("beacon", [](const weft::ReactorRef&, const EndpointDescription&) {
        return std::static_pointer_cast<ep::IDatagramServerEndpoint>(std::make_shared<Named>());
    });
    EXPECT_TRUE(std::dynamic_pointer_cast<Named>(ep::datagramServerFromString(reactor, "Beacon:1")));
    EXPECT_TRUE(std::dynamic_pointer_cast<ep::UDPServerEndpoint>(ep::datagramServerFromString(reactor, "UDP:53")));
    EXPECT_TRUE(ep::unregisterDatagramServerParser("BEACON"));
    EXPECT_THROW(ep::datagramServerFromString(reactor, "beacon:1"), UnknownEndpointType);
}

// ---- endpoints doing I/O (every backend) ------------------------------------------------

namespace {

using weft::Failure;
using weft::Protocol;
namespace wt = weft::testing;

// A TCP port that refuses connections: bound, never listening. Closed on destruction.
struct RefusingPort {
    RefusingPort() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error("RefusingPort");
        port = ntohs(a.sin_port);
    }
    ~RefusingPort() { ::close(fd); }
    RefusingPort(const RefusingPort&) = delete;
    RefusingPort& operator=(const RefusingPort&) = delete;
    int fd = -1;
    std::uint16_t port = 0;
};

std::uint16_t portOf(const weft::IListeningPort& port) {
    auto host = port.getHost();
    if (auto* v4 = std::get_if<weft::IPv4Address>(&host)) return v4->port;
    if (auto* v6 = std::get_if<weft::IPv6Address>(&host)) return v6->port;
    return 0;
}

// Server side of the round trip: answers "hello" with "bye" and closes.
struct Greeter : Protocol {
    std::string* received = nullptr;
    std::string data;
    void dataReceived(weft::Bytes bytes) override {
        data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        if (data == "hello") {
            if (received) *received = data;
            transport->write("bye");
            transport->loseConnection();
        }
    }
};

struct CountingFactory : weft::Factory {
    int starts = 0, stops = 0;
    void startFactory() override { ++starts; }
    void stopFactory() override { ++stops; }
};

}  // namespace

class EndpointsTest : public weft::test::ReactorTest {};

TEST_P(EndpointsTest, EP_6_listenAndConnectRoundTripOverLoopback) {
    // EP-6/EP-13: a "tcp:0:interface=127.0.0.1" server endpoint listens at once; a "tcp:127.0.0.1:PORT" client endpoint's Deferred fires with the factory's protocol after its connectionMade, and bytes flow both ways.
    std::string serverGot;
    auto serverFactory = std::make_shared<weft::ServerFactory>();
    serverFactory->noisy = false;
    serverFactory->protocol = [&] {
        auto p = std::make_shared<Greeter>();
        p->received = &serverGot;
        return p;
    };
    auto listening = ep::serverFromString(reactor(), "tcp:0:interface=127.0.0.1")->listen(serverFactory);
    ASSERT_TRUE(listening.called());
    std::shared_ptr<weft::IListeningPort> port = wt::successResultOf(listening);
    ASSERT_TRUE(port);
    std::uint16_t number = portOf(*port);
    ASSERT_NE(number, 0);

    auto clientFactory = weft::Factory::forProtocol<wt::AccumulatingProtocol, CountingFactory>();
    clientFactory->noisy = false;
    auto connected = ep::clientFromString(reactor(), "tcp:127.0.0.1:" + std::to_string(number))->connect(clientFactory);
    EXPECT_FALSE(connected.called());  // connecting happens on later iterations
    EXPECT_EQ(clientFactory->starts, 1);

    std::shared_ptr<wt::AccumulatingProtocol> clientProtocol;
    bool madeWhenFired = false;
    connected.addCallbacks(
        [&](std::shared_ptr<Protocol> p) {
            clientProtocol = std::dynamic_pointer_cast<wt::AccumulatingProtocol>(p);
            ASSERT_TRUE(clientProtocol) << "the Deferred carries the factory's own protocol";
            madeWhenFired = clientProtocol->made && clientProtocol->transport != nullptr;
            EXPECT_EQ(clientProtocol->factory, clientFactory);
            clientProtocol->closedDeferred.emplace();
            clientProtocol->closedDeferred->addCallback(
                [&] { port->stopListening().addCallback([&] { reactor().stop(); }); });
            clientProtocol->transport->write("hello");
        },
        [&](Failure f) {
            ADD_FAILURE() << "connect failed: " << f.str();
            reactor().stop();
        });
    runReactor();
    ASSERT_TRUE(clientProtocol);
    EXPECT_TRUE(madeWhenFired);
    EXPECT_EQ(serverGot, "hello");
    EXPECT_EQ(clientProtocol->data, "bye");
    EXPECT_TRUE(clientProtocol->closed);
    EXPECT_TRUE(clientProtocol->closedReason && clientProtocol->closedReason->check<weft::ConnectionDone>());
    EXPECT_EQ(clientFactory->stops, 1);  // the wrapped factory is stopped once the connection is over
}

TEST_P(EndpointsTest, EP_12_aCancelledConnectBuildsNoProtocolOnARealReactor) {
    // Cancelled before the loop ran: the attempt stops; the factory never builds a protocol, and the
    // factory is stopped again (it stayed started with a connection nobody held).
    auto serverFactory = std::make_shared<weft::ServerFactory>();
    serverFactory->noisy = false;
    serverFactory->protocol = [] { return std::make_shared<Greeter>(); };
    auto port =
        wt::successResultOf(ep::serverFromString(reactor(), "tcp:0:interface=127.0.0.1")->listen(serverFactory));
    auto clientFactory = weft::Factory::forProtocol<wt::AccumulatingProtocol, CountingFactory>();
    clientFactory->noisy = false;
    bool built = false;
    clientFactory->protocol = [&built] {
        built = true;
        return std::make_shared<wt::AccumulatingProtocol>();
    };
    auto d = ep::clientFromString(reactor(), "tcp:127.0.0.1:" + std::to_string(portOf(*port)))->connect(clientFactory);
    d.cancel();
    (void)wt::failureResultOf<weft::error::ConnectingCancelledError>(d);
    for (int i = 0; i < 10; ++i) reactor().iterate(0.01);
    EXPECT_FALSE(built);
    EXPECT_EQ(clientFactory->starts, 1);
    EXPECT_EQ(clientFactory->stops, 1);
    bool stopped = false;
    port->stopListening().addBoth([&](weft::Result<void>) { stopped = true; });
    ASSERT_TRUE(spinUntil([&] { return stopped; }));
}

TEST_P(EndpointsTest, EP_9_tcp6EndpointListensOnIPv6) {
    // EP-9: a "tcp6:" endpoint listens on IPv6 (here ::1) and a client endpoint reaches it through an escaped IPv6 literal.
    auto serverFactory = weft::Factory::forProtocol<wt::AccumulatingProtocol, wt::AccumulatingServerFactory>();
    serverFactory->noisy = false;
    auto listening = ep::serverFromString(reactor(), R"(tcp6:0:interface=\:\:1)")->listen(serverFactory);
    ASSERT_TRUE(listening.called());
    std::shared_ptr<weft::IListeningPort> port;
    std::optional<Failure> failed;
    listening.addCallbacks([&](std::shared_ptr<weft::IListeningPort> p) { port = p; }, [&](Failure f) { failed = f; });
    if (failed) GTEST_SKIP() << "no IPv6 loopback here: " << failed->str();
    auto host = port->getHost();
    ASSERT_TRUE(std::holds_alternative<weft::IPv6Address>(host)) << weft::addressStr(host);
    EXPECT_EQ(std::get<weft::IPv6Address>(host).host, "::1");

    auto clientFactory = weft::Factory::forProtocol<wt::AccumulatingProtocol>();
    clientFactory->noisy = false;
    auto d = ep::clientFromString(reactor(), "tcp:" + quoteStringArgument("::1") + ":" + std::to_string(portOf(*port)))
                 ->connect(clientFactory);
    std::shared_ptr<Protocol> client;
    d.addCallbacks(
        [&](std::shared_ptr<Protocol> p) {
            client = p;
            p->transport->loseConnection();
            port->stopListening().addCallback([&] { reactor().stop(); });
        },
        [&](Failure f) {
            ADD_FAILURE() << f.str();
            reactor().stop();
        });
    runReactor();
    ASSERT_TRUE(client);
    auto peer = client->transport->getPeer();
    EXPECT_TRUE(std::holds_alternative<weft::IPv6Address>(peer)) << weft::addressStr(peer);
}

TEST_P(EndpointsTest, EP_13_refusedConnectionFailsTheDeferredWithConnectionRefusedError) {
    // EP-13: a client endpoint whose connection is refused fails its Deferred with ConnectionRefusedError.
    RefusingPort refusing;
    auto factory = weft::Factory::forProtocol<wt::AccumulatingProtocol, CountingFactory>();
    factory->noisy = false;
    auto d = ep::clientFromString(reactor(), "tcp:127.0.0.1:" + std::to_string(refusing.port))->connect(factory);
    std::optional<Failure> reason;
    d.addCallbacks(
        [&](std::shared_ptr<Protocol>) {
            ADD_FAILURE() << "connected to a refusing port";
            reactor().stop();
        },
        [&](Failure f) {
            reason = f;
            reactor().stop();
        });
    runReactor();
    ASSERT_TRUE(reason);
    EXPECT_TRUE(reason->check<weft::error::ConnectionRefusedError>()) << reason->str();
    EXPECT_EQ(factory->starts, 1);
    EXPECT_EQ(factory->stops, 1);
}

TEST_P(EndpointsTest, EP_13_connectProtocolConnectsTheGivenProtocolAndHoldsNoCycle) {
    // EP-13 through endpoints::connectProtocol (Twisted's): the Deferred fires with the very protocol given, after
    // its connectionMade; nothing keeps it alive once the connection is over and the caller lets go (a factory
    // whose `protocol` returned a prebuilt instance kept the two in a cycle). A failed connect fails the
    // Deferred and releases the protocol.
    auto serverFactory = weft::Factory::forProtocol<wt::AccumulatingProtocol, weft::ServerFactory>();
    serverFactory->noisy = false;
    auto port =
        wt::successResultOf(ep::serverFromString(reactor(), "tcp:0:interface=127.0.0.1")->listen(serverFactory));
    auto endpoint = ep::clientFromString(reactor(), "tcp:127.0.0.1:" + std::to_string(portOf(*port)));
    auto mine = std::make_shared<wt::AccumulatingProtocol>();
    std::weak_ptr<wt::AccumulatingProtocol> weak = mine;
    auto d = ep::connectProtocol(*endpoint, mine);
    std::shared_ptr<Protocol> got;
    d.addCallbacks([&](std::shared_ptr<Protocol> p) { got = p; }, [&](Failure f) { ADD_FAILURE() << f.str(); });
    ASSERT_TRUE(spinUntil([&] { return got != nullptr; }));
    EXPECT_EQ(got.get(), mine.get());
    EXPECT_TRUE(mine->made);
    ASSERT_TRUE(mine->factory);
    EXPECT_EQ(mine->factory->logPrefix(), "OneShotFactory");
    mine->closedDeferred.emplace();
    bool closed = false;
    mine->closedDeferred->addCallback([&] { closed = true; });
    mine->transport->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return closed; }));
    got.reset();
    mine.reset();
    EXPECT_TRUE(weak.expired()) << "the protocol outlived its connection";

    RefusingPort refusing;
    auto refused = std::make_shared<wt::AccumulatingProtocol>();
    std::weak_ptr<wt::AccumulatingProtocol> weakRefused = refused;
    std::optional<Failure> reason;
    ep::connectProtocol(*ep::clientFromString(reactor(), "tcp:127.0.0.1:" + std::to_string(refusing.port)), refused)
        .addCallbacks([&](std::shared_ptr<Protocol>) { ADD_FAILURE() << "connected to a refusing port"; },
                      [&](Failure f) { reason = f; });
    ASSERT_TRUE(spinUntil([&] { return reason.has_value(); }));
    EXPECT_TRUE(reason->check<weft::error::ConnectionRefusedError>()) << reason->str();
    EXPECT_FALSE(refused->made);
    refused.reset();
    EXPECT_TRUE(weakRefused.expired());
    EXPECT_THROW(ep::connectProtocol(*endpoint, nullptr), std::invalid_argument);
    bool stopped = false;
    port->stopListening().addCallback([&] { stopped = true; });
    ASSERT_TRUE(spinUntil([&] { return stopped; }));
}

TEST_P(EndpointsTest, EP_6_portInUseFailsTheListenDeferredWithCannotListenError) {
    // EP-6: listen() on a port already in use returns a failed Deferred carrying CannotListenError, at once.
    auto factory = std::make_shared<weft::ServerFactory>();
    factory->noisy = false;
    factory->protocol = [] { return std::make_shared<Protocol>(); };
    auto first = wt::successResultOf(ep::serverFromString(reactor(), "tcp:0:interface=127.0.0.1")->listen(factory));
    std::uint16_t number = portOf(*first);
    auto second =
        ep::serverFromString(reactor(), "tcp:" + std::to_string(number) + ":interface=127.0.0.1")->listen(factory);
    ASSERT_TRUE(second.called());
    Failure f = wt::failureResultOf<weft::error::CannotListenError>(second);
    EXPECT_EQ(f.get<weft::error::CannotListenError>()->port, std::to_string(number));
    EXPECT_EQ(factory->numPorts, 1);
    first->stopListening().addCallback([&] { reactor().stop(); });
    runReactor();
}

TEST_P(EndpointsTest, EP_13_factoryReturningNoProtocolFailsTheDeferred) {
    // EP-13: when the factory builds no protocol, the client endpoint's Deferred fails with NoProtocol and the connection is closed.
    auto serverFactory = std::make_shared<weft::ServerFactory>();
    serverFactory->noisy = false;
    serverFactory->protocol = [] { return std::make_shared<wt::AccumulatingProtocol>(); };
    auto port =
        wt::successResultOf(ep::serverFromString(reactor(), "tcp:0:interface=127.0.0.1")->listen(serverFactory));
    auto refusing = std::make_shared<CountingFactory>();
    refusing->noisy = false;
    refusing->protocol = [] { return std::shared_ptr<Protocol>(); };
    auto d = ep::clientFromString(reactor(), "tcp:127.0.0.1:" + std::to_string(portOf(*port)))->connect(refusing);
    std::optional<Failure> reason;
    d.addCallbacks([&](std::shared_ptr<Protocol>) { ADD_FAILURE() << "fired with a protocol"; },
                   [&](Failure f) {
                       reason = f;
                       // Let the refused connection close, then stop.
                       reactor().callLater(0.05, [&] { port->stopListening().addCallback([&] { reactor().stop(); }); });
                   });
    runReactor();
    ASSERT_TRUE(reason);
    EXPECT_TRUE(reason->check<weft::error::NoProtocol>()) << reason->str();
}

TEST_P(EndpointsTest, EP_13_halfCloseableProtocolStillHearsReadConnectionLost) {
    // EP-13: the client endpoint's wrapping keeps a half-closeable protocol half-closeable: it hears readConnectionLost() and may still write.
    struct HalfServer : Protocol {
        std::string data;
        void connectionMade() override {
            transport->write("x");
            std::dynamic_pointer_cast<weft::FileDescriptor>(transport)->loseWriteConnection();
        }
        void dataReceived(weft::Bytes bytes) override {
            data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        }
    };
    struct HalfClient : Protocol, weft::IHalfCloseableProtocol {
        bool readLost = false;
        std::function<void()> onLost;
        void readConnectionLost() override {
            readLost = true;
            transport->write("after EOF");
            transport->loseConnection();
        }
        void writeConnectionLost() override {}
        void connectionLost(const Failure&) override { onLost(); }
    };
    std::shared_ptr<HalfServer> server;
    auto serverFactory = std::make_shared<weft::ServerFactory>();
    serverFactory->noisy = false;
    serverFactory->protocol = [&] { return server = std::make_shared<HalfServer>(); };
    auto port =
        wt::successResultOf(ep::serverFromString(reactor(), "tcp:0:interface=127.0.0.1")->listen(serverFactory));
    auto clientFactory = weft::Factory::forProtocol<HalfClient>();
    clientFactory->noisy = false;
    std::shared_ptr<HalfClient> client;
    auto d = ep::clientFromString(reactor(), "tcp:127.0.0.1:" + std::to_string(portOf(*port)))->connect(clientFactory);
    d.addCallbacks(
        [&](std::shared_ptr<Protocol> p) {
            client = std::dynamic_pointer_cast<HalfClient>(p);
            ASSERT_TRUE(client);
            client->onLost = [&] {
                reactor().callLater(0.05, [&] { port->stopListening().addCallback([&] { reactor().stop(); }); });
            };
        },
        [&](Failure f) {
            ADD_FAILURE() << f.str();
            reactor().stop();
        });
    runReactor();
    ASSERT_TRUE(client);
    EXPECT_TRUE(client->readLost);
    ASSERT_TRUE(server);
    EXPECT_EQ(server->data, "after EOF");
}

TEST_P(EndpointsTest, EP_11_systemdEndpointAdoptsTheInheritedListeningSocket) {
    // EP-11: a systemd: endpoint adopts the inherited listening socket (closing the inherited descriptor), accepts on it, and listens only once.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
    ASSERT_EQ(::listen(fd, 5), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    std::uint16_t number = ntohs(a.sin_port);

    ep::ListenFDs inherited{{fd}, {"web"}};
    auto endpoint = ep::serverFromString(reactor(), "systemd:domain=INET:name=web", inherited);
    auto serverFactory = weft::Factory::forProtocol<wt::AccumulatingProtocol, wt::AccumulatingServerFactory>();
    serverFactory->noisy = false;
    auto port = wt::successResultOf(endpoint->listen(serverFactory));
    ASSERT_TRUE(port);
    EXPECT_EQ(portOf(*port), number);
    errno = 0;
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the inherited descriptor is closed once adopted";
    EXPECT_EQ(errno, EBADF);
    wt::failureResultOf<weft::error::AlreadyListened>(endpoint->listen(serverFactory));

    serverFactory->protocolConnectionMade.emplace();
    serverFactory->protocolConnectionMade->addCallback([&](std::shared_ptr<wt::AccumulatingProtocol> p) {
        EXPECT_TRUE(p);
        p->transport->loseConnection();
    });
    auto clientFactory = weft::Factory::forProtocol<wt::AccumulatingProtocol>();
    clientFactory->noisy = false;
    auto d = ep::clientFromString(reactor(), "tcp:127.0.0.1:" + std::to_string(number))->connect(clientFactory);
    d.addCallbacks(
        [&](std::shared_ptr<Protocol> p) {
            auto c = std::dynamic_pointer_cast<wt::AccumulatingProtocol>(p);
            c->closedDeferred.emplace();
            c->closedDeferred->addCallback([&] { port->stopListening().addCallback([&] { reactor().stop(); }); });
        },
        [&](Failure f) {
            ADD_FAILURE() << f.str();
            reactor().stop();
        });
    runReactor();
    EXPECT_FALSE(serverFactory->protocolConnectionMade.has_value()) << "the adopted port accepted";
}

TEST_P(EndpointsTest, EP_11_adoptingAMismatchedFamilyFailsTheDeferred) {
    // EP-11: "domain=INET" for a descriptor that is a UNIX socket: listen() fails (the family must match) and the descriptor stays open.
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    ep::ListenFDs inherited{{fd}, {"sock"}};
    auto endpoint = ep::serverFromString(reactor(), "systemd:domain=INET:index=0", inherited);
    auto factory = weft::Factory::forProtocol<Protocol>();
    wt::failureResultOf<std::invalid_argument>(endpoint->listen(factory));
    EXPECT_EQ(::fcntl(fd, F_GETFD) >= 0, true);
    ::close(fd);
}

TEST_P(EndpointsTest, EP_7_unixServerAndClientEndpointsTalk) {
    // EP-7/EP-14: a unix: server endpoint listens (with its lock file) and a unix: client endpoint connects to it.
    char tmpl[] = "/tmp/weft-ep-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string path = std::string(tmpl) + "/s";
    auto serverFactory = weft::Factory::forProtocol<Protocol>();
    auto port = wt::successResultOf(ep::serverFromString(reactor(), "unix:" + path)->listen(serverFactory));
    EXPECT_EQ(port->getHost(), weft::Address(weft::UNIXAddress(path)));
    EXPECT_EQ(::access((path + ".lock").c_str(), F_OK), -1);  // a symlink to our pid: access follows it to a pid "file"
    char target[32] = {};
    EXPECT_GT(::readlink((path + ".lock").c_str(), target, sizeof target - 1), 0);
    EXPECT_EQ(std::string(target), std::to_string(::getpid()));
    std::shared_ptr<Protocol> client;
    ep::clientFromString(reactor(), "unix:" + path + ":lockfile=1")
        ->connect(weft::Factory::forProtocol<Protocol>())
        .addCallback([&](std::shared_ptr<Protocol> p) { client = p; });
    for (int i = 0; i < 500 && !client; ++i) reactor().iterate(0.01);
    ASSERT_TRUE(client);
    EXPECT_EQ(client->transport->getPeer(), weft::Address(weft::UNIXAddress(path)));
    client->transport->loseConnection();
    bool stopped = false;
    port->stopListening().addBoth([&](weft::Result<void>) { stopped = true; });
    for (int i = 0; i < 500 && !(stopped && reactor().getReaders().empty()); ++i) reactor().iterate(0.01);
    EXPECT_TRUE(stopped);
    EXPECT_EQ(::access(path.c_str(), F_OK), -1);
    ::rmdir(tmpl);
}

TEST_P(EndpointsTest, EP_14_aDescriptorReceiverConnectedThroughAUnixClientEndpointReceivesDescriptors) {
    // EP-14, UNIX-18: the client endpoint's wrapping keeps an IFileDescriptorReceiver one (as Twisted's
    // _WrappingProtocol does): descriptors the server passes reach it, before the bytes sent with them.
    char tmpl[] = "/tmp/weft-ep-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string path = std::string(tmpl) + "/s";
    struct Passer : Protocol {
        void connectionMade() override {
            int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            dynamic_cast<weft::IUNIXTransport&>(*transport).sendFileDescriptor(fd);
            ::close(fd);  // sendFileDescriptor keeps its own copy (UNIX-20)
            transport->write("x");
        }
    };
    struct Receiver : Protocol, weft::IFileDescriptorReceiver {
        std::vector<std::string> events;
        void fileDescriptorReceived(int fd) override {
            struct stat st {};
            events.push_back(::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) ? "fd" : "bad fd");
            ::close(fd);
        }
        void dataReceived(weft::Bytes data) override {
            events.push_back(std::string(reinterpret_cast<const char*>(data.data()), data.size()));
        }
    };
    auto serverFactory = weft::Factory::forProtocol<Passer>();
    serverFactory->noisy = false;
    auto port = wt::successResultOf(ep::serverFromString(reactor(), "unix:" + path)->listen(serverFactory));
    std::shared_ptr<Receiver> client;
    ep::clientFromString(reactor(), "unix:" + path)
        ->connect(weft::Factory::forProtocol<Receiver>())
        .addCallback([&](std::shared_ptr<Protocol> p) { client = std::dynamic_pointer_cast<Receiver>(p); });
    for (int i = 0; i < 500 && !(client && client->events.size() >= 2); ++i) reactor().iterate(0.01);
    ASSERT_TRUE(client);
    EXPECT_EQ(client->events, (std::vector<std::string>{"fd", "x"}));
    client->transport->loseConnection();
    bool stopped = false;
    port->stopListening().addBoth([&](weft::Result<void>) { stopped = true; });
    for (int i = 0; i < 500 && !(stopped && reactor().getReaders().empty()); ++i) reactor().iterate(0.01);
    ::rmdir(tmpl);
}

INSTANTIATE_TEST_SUITE_P(Backends, EndpointsTest, weft::test::allBackends(), weft::test::backendParamName);
