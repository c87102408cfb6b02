// Error and reason types (reactor.md R-70..R-73; twisted.internet.error).
#include <gtest/gtest.h>

#include <cerrno>
#include <netdb.h>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include <weft/failure.hpp>
#include <weft/internet/error.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using namespace weft::error;
using weft::test::LeakCheckedTest;

namespace {
std::error_code errc(int e) { return std::error_code(e, std::generic_category()); }

template <class E>
std::string text(const E& e) {
    return e.what();
}
}  // namespace

class ErrorTest : public LeakCheckedTest {};

// ---- R-70 ------------------------------------------------------------------

TEST_F(ErrorTest, R_70_everyConnectionEndReasonIsAConnectionClosed) {
    // check<ConnectionClosed>() matches every connection-end reason.
    const Failure reasons[] = {
        Failure(ConnectionClosed()),
        Failure(ConnectionDone()),
        Failure(ProcessDone(0)),
        Failure(ConnectionLost()),
        Failure(ConnectionAborted()),
        Failure(FileDescriptorOverrun()),
        Failure(ConnectionFdescWentAway()),
        Failure(ProcessTerminated(1, std::nullopt, 256)),
        Failure(ConnectionLost(errc(ECONNRESET))),
    };
    for (const auto& f : reasons) EXPECT_TRUE(f.check<ConnectionClosed>()) << f.typeName();
}

TEST_F(ErrorTest, R_70_cleanAndUncleanBranchesAreDisjoint) {
    // ConnectionDone ⊃ ProcessDone and ConnectionLost ⊃ {Aborted, Overrun, FdescWentAway, ProcessTerminated}.
    const Failure done[] = {Failure(ConnectionDone()), Failure(ProcessDone(0))};
    for (const auto& f : done) {
        EXPECT_TRUE(f.check<ConnectionDone>()) << f.typeName();
        EXPECT_FALSE(f.check<ConnectionLost>()) << f.typeName();
    }
    const Failure lost[] = {Failure(ConnectionLost()), Failure(ConnectionAborted()), Failure(FileDescriptorOverrun()),
                            Failure(ConnectionFdescWentAway()),
                            Failure(ProcessTerminated(std::nullopt, 9, std::nullopt))};
    for (const auto& f : lost) {
        EXPECT_TRUE(f.check<ConnectionLost>()) << f.typeName();
        EXPECT_FALSE(f.check<ConnectionDone>()) << f.typeName();
    }
    EXPECT_FALSE((Failure(ConnectionClosed()).check<ConnectionDone, ConnectionLost>()));
    EXPECT_FALSE(Failure(ConnectionDone()).check<ProcessDone>());
    EXPECT_FALSE(Failure(ConnectionLost()).check<ConnectionAborted>());
}

TEST_F(ErrorTest, R_70_abortIsAConnectionLostAndCheckReportsTheFirstMatch) {
    // check<ConnectionLost>() matches an abort; check<A, B>() returns the 1-based index of the first match.
    Failure abort(ConnectionAborted{});
    EXPECT_TRUE(abort.check<ConnectionLost>());
    EXPECT_EQ((abort.check<ConnectionDone, ConnectionLost>()), 2);
    EXPECT_EQ((abort.check<ConnectionAborted, ConnectionLost>()), 1);
    EXPECT_NE(abort.get<ConnectionLost>(), nullptr);
}

TEST_F(ErrorTest, R_70_connectionLostCarriesTheErrno) {
    // R-70 (Better than Twisted): ConnectionLost carries the errno and its text.
    ConnectionLost reset(errc(ECONNRESET));
    EXPECT_EQ(reset.code(), errc(ECONNRESET));
    EXPECT_EQ(text(reset), std::string("Connection to the other side was lost in a non-clean fashion: ") +
                               std::strerror(ECONNRESET) + ".");
    ConnectionLost pipe(errc(EPIPE));
    EXPECT_EQ(pipe.code().value(), EPIPE);
    EXPECT_FALSE(ConnectionLost().code()) << "no errno: an empty code";
    // The errno survives a trip through a Failure.
    Failure f(ConnectionLost(errc(EPIPE)));
    ASSERT_NE(f.get<ConnectionLost>(), nullptr);
    EXPECT_EQ(f.get<ConnectionLost>()->code().value(), EPIPE);
}

TEST_F(ErrorTest, R_70_processReasonsCarryTheirStatus) {
    // ProcessDone/ProcessTerminated keep exit code, signal and status (Twisted's attributes).
    ProcessDone done(0);
    EXPECT_EQ(done.exitCode, 0);
    EXPECT_FALSE(done.signal.has_value());
    EXPECT_EQ(done.status, 0);
    ProcessTerminated byCode(3, std::nullopt, 3 << 8);
    EXPECT_EQ(byCode.exitCode, 3);
    EXPECT_FALSE(byCode.signal.has_value());
    EXPECT_EQ(byCode.status, 3 << 8);
    ProcessTerminated bySignal(std::nullopt, 15, 15);
    EXPECT_FALSE(bySignal.exitCode.has_value());
    EXPECT_EQ(bySignal.signal, 15);
}

// ---- R-71 ------------------------------------------------------------------

TEST_F(ErrorTest, R_71_connectErrorSubclassesDeriveFromConnectError) {
    // every connection-attempt error is a ConnectError (TimeoutError through UserError).
    const Failure all[] = {Failure(ConnectBindError()),
                           Failure(UnknownHostError()),
                           Failure(NoRouteError()),
                           Failure(ConnectionRefusedError()),
                           Failure(TCPTimedOutError()),
                           Failure(BadFileError()),
                           Failure(ServiceNameUnknownError()),
                           Failure(UserError()),
                           Failure(TimeoutError()),
                           Failure(SSLError())};
    for (const auto& f : all) {
        EXPECT_TRUE(f.check<ConnectError>()) << f.typeName();
        EXPECT_TRUE(f.check<std::system_error>()) << f.typeName();
        EXPECT_FALSE(f.check<ConnectionClosed>()) << f.typeName();
    }
    EXPECT_TRUE(Failure(TimeoutError()).check<UserError>());
    EXPECT_FALSE(Failure(UserError()).check<TimeoutError>());
    EXPECT_FALSE(Failure(ConnectionRefusedError()).check<NoRouteError>());
}

TEST_F(ErrorTest, R_71_connectErrorKeepsOsErrorAndString) {
    // ConnectError(osError, string) keeps both; the errno is also the system_error code().
    ConnectionRefusedError e(ECONNREFUSED, "refused!");
    EXPECT_EQ(e.osError(), ECONNREFUSED);
    EXPECT_EQ(e.string(), "refused!");
    EXPECT_EQ(e.code(), errc(ECONNREFUSED));
    ConnectError plain;
    EXPECT_EQ(plain.osError(), 0);
    EXPECT_EQ(plain.string(), "");
}

TEST_F(ErrorTest, R_71_getConnectErrorMapsErrnos) {
    // getConnectError maps ECONNREFUSED/ENETUNREACH/ETIMEDOUT, resolver errors and the rest, keeping osError.
    struct Case {
        int err;
        bool resolver;
        int (*check)(const Failure&);
    };
    const Case cases[] = {
        {ECONNREFUSED, false, [](const Failure& f) { return f.check<ConnectionRefusedError>(); }},
        {ENETUNREACH, false, [](const Failure& f) { return f.check<NoRouteError>(); }},
        {ETIMEDOUT, false, [](const Failure& f) { return f.check<TCPTimedOutError>(); }},
        {EAI_NONAME, true, [](const Failure& f) { return f.check<UnknownHostError>(); }},
    };
    for (const auto& c : cases) {
        Failure f(getConnectError(c.err, "text", c.resolver));
        EXPECT_TRUE(c.check(f)) << c.err << " -> " << f.typeName();
        ASSERT_NE(f.get<ConnectError>(), nullptr);
        EXPECT_EQ(f.get<ConnectError>()->osError(), c.err);
        EXPECT_EQ(f.get<ConnectError>()->string(), "text");
    }
    for (int other : {EACCES, EHOSTDOWN, EADDRNOTAVAIL, 0}) {
        Failure f(getConnectError(other, "x"));
        EXPECT_EQ(f.type(), typeid(ConnectError)) << other << " -> " << f.typeName();
        EXPECT_EQ(f.get<ConnectError>()->osError(), other);
    }
}

TEST_F(ErrorTest, R_71_connectErrorText) {
    // ConnectError text is "MESSAGE[: osError][: string]." as in Twisted's __str__.
    EXPECT_STREQ(ConnectError().what(), "An error occurred while connecting.");
    EXPECT_STREQ(ConnectError(0, "foo").what(), "An error occurred while connecting: foo.");
    EXPECT_STREQ(ConnectionRefusedError(111, "Connection refused").what(),
                 "Connection was refused by other side: 111: Connection refused.");
    EXPECT_STREQ(TimeoutError().what(), "User timeout caused connection failure.");
    EXPECT_STREQ(NoRouteError(ENETUNREACH).what(), ("No route to host: " + std::to_string(ENETUNREACH) + ".").c_str());
}

// ---- R-72 ------------------------------------------------------------------

TEST_F(ErrorTest, R_72_cannotListenErrorTextAndBase) {
    // CannotListenError(interface, port, error) is a BindError; text "Couldn't listen on <iface|any>:<port>: <error>."
    CannotListenError any("", 8080, errc(EADDRINUSE));
    EXPECT_EQ(text(any), std::string("Couldn't listen on any:8080: ") + std::strerror(EADDRINUSE) + ".");
    EXPECT_EQ(any.interface, "");
    EXPECT_EQ(any.port, "8080");
    EXPECT_EQ(any.socketError(), errc(EADDRINUSE));
    CannotListenError named("127.0.0.1", "http", errc(EACCES));
    EXPECT_EQ(text(named), std::string("Couldn't listen on 127.0.0.1:http: ") + std::strerror(EACCES) + ".");
    Failure f(named);
    EXPECT_TRUE(f.check<BindError>());
    EXPECT_TRUE(f.check<std::system_error>());
    EXPECT_EQ(f.get<std::system_error>()->code(), errc(EACCES));
}

TEST_F(ErrorTest, R_72_setupErrorKinds) {
    // InvalidAddressError, AlreadyCalled and AlreadyCancelled are ValueError (std::invalid_argument) kinds;
    // NotConnecting/NotListening/ReactorNotRunning/NotRestartable/AlreadyRunning are RuntimeError kinds.
    EXPECT_TRUE(Failure(InvalidAddressError("1.2.3", "not an IPv4 address")).check<std::invalid_argument>());
    EXPECT_TRUE(Failure(AlreadyCalled()).check<std::invalid_argument>());
    EXPECT_TRUE(Failure(AlreadyCancelled()).check<std::invalid_argument>());
    const Failure runtime[] = {Failure(NotConnectingError()), Failure(NotListeningError()),
                               Failure(ReactorNotRunning()), Failure(ReactorNotRestartable()),
                               Failure(ReactorAlreadyRunning())};
    for (const auto& f : runtime) {
        EXPECT_TRUE(f.check<std::runtime_error>()) << f.typeName();
        EXPECT_FALSE(f.check<ConnectionClosed>()) << f.typeName();
    }
    InvalidAddressError bad("::1x", "not an IPv6 address");
    EXPECT_EQ(bad.address, "::1x");
    EXPECT_EQ(bad.message, "not an IPv6 address");
}

TEST_F(ErrorTest, R_72_transportErrorTypesExist) {
    // MessageLengthError, DNSLookupError, MulticastJoinError, UnsupportedAddressFamily/SocketType exist
    // as distinct std::exception types with their sentences.
    EXPECT_STREQ(MessageLengthError().what(), "Message is too long to send.");
    EXPECT_STREQ(DNSLookupError("example.invalid").what(), "DNS lookup failed: example.invalid.");
    EXPECT_STREQ(MulticastJoinError().what(), "An attempt to join a multicast group failed.");
    EXPECT_STREQ(UnsupportedAddressFamily().what(), "Unsupported address family.");
    EXPECT_STREQ(UnsupportedSocketType().what(), "Unsupported socket type.");
    Failure dns(DNSLookupError{});
    EXPECT_FALSE(dns.check<MessageLengthError>());
    EXPECT_FALSE(dns.check<ConnectError>());
}

// ---- R-73 ------------------------------------------------------------------

TEST_F(ErrorTest, R_73_connectionAbortedTextWithAndWithoutArgs) {
    // ConnectionAborted() -> "Connection was aborted locally using ITCPTransport.abortConnection."; args appended.
    EXPECT_STREQ(ConnectionAborted().what(), "Connection was aborted locally using ITCPTransport.abortConnection.");
    EXPECT_STREQ(ConnectionAborted("foo", "bar").what(),
                 "Connection was aborted locally using ITCPTransport.abortConnection: foo bar.");
}

TEST_F(ErrorTest, R_73_fixedSentencesMatchTwisted) {
    // each error's message is its class's fixed sentence, then ": " + args joined by spaces, then ".".
    EXPECT_STREQ(ConnectionDone().what(), "Connection was closed cleanly.");
    EXPECT_STREQ(ConnectionDone("by peer").what(), "Connection was closed cleanly: by peer.");
    EXPECT_STREQ(ConnectionLost().what(), "Connection to the other side was lost in a non-clean fashion.");
    EXPECT_STREQ(ConnectionLost("a", "b", "c").what(),
                 "Connection to the other side was lost in a non-clean fashion: a b c.");
    EXPECT_STREQ(AlreadyCalled().what(), "Tried to cancel an already-called event.");
    EXPECT_STREQ(AlreadyCalled("x").what(), "Tried to cancel an already-called event: x.");
    EXPECT_STREQ(AlreadyCancelled().what(), "Tried to cancel an already-cancelled event.");
    EXPECT_STREQ(NotConnectingError().what(), "The Connector was not connecting when it was asked to stop connecting.");
    EXPECT_STREQ(NotListeningError().what(), "The Port was not listening when it was asked to stop listening.");
    EXPECT_STREQ(ReactorNotRunning().what(), "Can't stop reactor that isn't running.");
    EXPECT_STREQ(MessageLengthError("too", "big").what(), "Message is too long to send: too big.");
    EXPECT_STREQ(BindError().what(), "An error occurred binding to an interface.");
    EXPECT_STREQ(ProcessDone(0).what(),
                 "A process has ended without apparent errors: process finished with exit code 0.");
    EXPECT_STREQ(ProcessTerminated(2, std::nullopt, 512).what(),
                 "A process has ended with a probable error condition: process ended with exit code 2.");
    EXPECT_STREQ(ProcessTerminated(std::nullopt, 9, 9).what(),
                 "A process has ended with a probable error condition: process ended by signal 9.");
    // The MESSAGE constant is the bare sentence.
    EXPECT_EQ(ConnectionDone::MESSAGE, "Connection was closed cleanly");
    EXPECT_EQ(ConnectError::MESSAGE, "An error occurred while connecting");
}

TEST_F(ErrorTest, R_73_fdescWentAwayHasARealSentence) {
    // R-73 (Better than Twisted): ConnectionFdescWentAway says "file descriptor went away", not "Uh".
    EXPECT_STREQ(ConnectionFdescWentAway().what(), "file descriptor went away.");
    EXPECT_STREQ(ConnectionFdescWentAway("fd 7").what(), "file descriptor went away: fd 7.");
}

TEST_F(ErrorTest, R_73_failureReportsTheMessage) {
    // a Failure's error message is the exception's text, so logs show the sentence.
    Failure f(ConnectionAborted("timeout"));
    EXPECT_EQ(f.getErrorMessage(), "Connection was aborted locally using ITCPTransport.abortConnection: timeout.");
}
