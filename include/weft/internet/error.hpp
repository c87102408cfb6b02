// weft/internet/error.hpp — the reasons and errors of twisted.internet.error.
//
// Two families (spec: reactor.md R-70..R-73):
//  * reasons a connection ended, delivered inside a weft::Failure to
//    connectionLost(): ConnectionClosed ⊃ {ConnectionDone ⊃ ProcessDone,
//    ConnectionLost ⊃ {ConnectionAborted, FileDescriptorOverrun,
//    ConnectionFdescWentAway, ProcessTerminated}};
//  * errors thrown by set-up calls or given to clientConnectionFailed:
//    ConnectError and its subclasses, CannotListenError, ...
//
// Every class's what() is its fixed sentence, then ": " and any extra
// arguments joined by spaces, then "." (Twisted's __str__).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <weft/export.hpp>
#include <weft/failure.hpp>

namespace weft::error {

namespace detail {
struct Text {
    std::string value;
};
/// "MESSAGE" / "MESSAGE: a b" followed by ".".
WEFT_EXPORT Text describe(std::string_view message, std::initializer_list<std::string_view> args);
}  // namespace detail

// Declares an error class with a fixed sentence. Each class accepts any number
// of extra string arguments, appended to the sentence as Twisted does.
#define WEFT_DETAIL_ERROR(Name, Base, Message)                                                             \
    class WEFT_EXPORT Name : public Base {                                                                 \
    public:                                                                                                \
        static constexpr std::string_view MESSAGE = Message;                                               \
        template <class... A>                                                                              \
        requires(std::is_convertible_v<const A&, std::string_view> && ...) explicit Name(const A&... args) \
            : Base(detail::describe(MESSAGE, {std::string_view(args)...})) {}                              \
                                                                                                           \
    protected:                                                                                             \
        explicit Name(detail::Text t) : Base(std::move(t)) {}                                              \
    }

/// Root of the errors that carry a fixed sentence; derives from Std.
template <class Std>
class WEFT_EXPORT Described : public Std {
public:
    explicit Described(detail::Text t) : Std(std::move(t.value)) {}
};

// ---- connection-end reasons ------------------------------------------------

/// A connection ended, cleanly or not. Match every reason with check<ConnectionClosed>().
WEFT_DETAIL_ERROR(ConnectionClosed, Described<std::runtime_error>, "Connection was closed");

/// The connection was closed cleanly (EOF, or loseConnection() after a flush).
WEFT_DETAIL_ERROR(ConnectionDone, ConnectionClosed, "Connection was closed cleanly");

/// The connection was lost uncleanly. Better than Twisted: carries the errno
/// (e.g. ECONNRESET, EPIPE) when the loss came from a failed system call.
class WEFT_EXPORT ConnectionLost : public ConnectionClosed {
public:
    static constexpr std::string_view MESSAGE = "Connection to the other side was lost in a non-clean fashion";
    template <class... A>
    requires(std::is_convertible_v<const A&, std::string_view>&&...) explicit ConnectionLost(const A&... args)
        : ConnectionClosed(detail::describe(MESSAGE, {std::string_view(args)...})) {}
    /// A loss caused by a failed system call; what() ends with the errno's text.
    explicit ConnectionLost(std::error_code ec);
    /// The errno behind the loss, or an empty code.
    std::error_code code() const noexcept { return code_; }

protected:
    explicit ConnectionLost(detail::Text t) : ConnectionClosed(std::move(t)) {}
    ConnectionLost(detail::Text t, std::error_code ec) : ConnectionClosed(std::move(t)), code_(ec) {}

private:
    std::error_code code_;
};

/// The connection was aborted locally with abortConnection().
WEFT_DETAIL_ERROR(ConnectionAborted, ConnectionLost,
                  "Connection was aborted locally using ITCPTransport.abortConnection");
/// More descriptors than bytes were sent over a UNIX socket.
WEFT_DETAIL_ERROR(FileDescriptorOverrun, ConnectionLost,
                  "A mis-use of IUNIXTransport.sendFileDescriptor caused the connection to be closed");
/// fileno() returned -1 while the descriptor was registered (Better than Twisted: a real sentence).
WEFT_DETAIL_ERROR(ConnectionFdescWentAway, ConnectionLost, "file descriptor went away");

/// A child process exited with status 0.
class WEFT_EXPORT ProcessDone : public ConnectionDone {
public:
    static constexpr std::string_view MESSAGE = "A process has ended without apparent errors";
    explicit ProcessDone(int status_);
    int exitCode = 0;
    std::optional<int> signal;
    int status;
};

/// A child process exited with a non-zero status or was killed by a signal.
class WEFT_EXPORT ProcessTerminated : public ConnectionLost {
public:
    static constexpr std::string_view MESSAGE = "A process has ended with a probable error condition";
    ProcessTerminated(std::optional<int> exitCode_, std::optional<int> signal_, std::optional<int> status_);
    std::optional<int> exitCode;
    std::optional<int> signal;
    std::optional<int> status;
};

// ---- connection-attempt errors ---------------------------------------------

/// Base of connection-attempt errors: ConnectError(osError, string).
/// what(): "MESSAGE[: osError][: string]." Derives from std::system_error so the
/// errno is available as code().
class WEFT_EXPORT ConnectError : public std::system_error {
public:
    static constexpr std::string_view MESSAGE = "An error occurred while connecting";
    explicit ConnectError(int osError = 0, std::string string = {})
        : ConnectError(MESSAGE, osError, std::move(string)) {}
    int osError() const noexcept { return code().value(); }
    const std::string& string() const noexcept { return string_; }
    const char* what() const noexcept override { return text_.c_str(); }

protected:
    ConnectError(std::string_view message, int osError, std::string string);

private:
    std::string string_;
    std::string text_;
};

#define WEFT_DETAIL_CONNECT_ERROR(Name, Base, Message)                                                         \
    class WEFT_EXPORT Name : public Base {                                                                     \
    public:                                                                                                    \
        static constexpr std::string_view MESSAGE = Message;                                                   \
        explicit Name(int osError = 0, std::string string = {}) : Base(MESSAGE, osError, std::move(string)) {} \
                                                                                                               \
    protected:                                                                                                 \
        Name(std::string_view m, int e, std::string s) : Base(m, e, std::move(s)) {}                           \
    }

WEFT_DETAIL_CONNECT_ERROR(ConnectBindError, ConnectError, "Couldn't bind");
WEFT_DETAIL_CONNECT_ERROR(UnknownHostError, ConnectError, "Hostname couldn't be looked up");
WEFT_DETAIL_CONNECT_ERROR(NoRouteError, ConnectError, "No route to host");
WEFT_DETAIL_CONNECT_ERROR(ConnectionRefusedError, ConnectError, "Connection was refused by other side");
WEFT_DETAIL_CONNECT_ERROR(TCPTimedOutError, ConnectError, "TCP connection timed out");
WEFT_DETAIL_CONNECT_ERROR(BadFileError, ConnectError, "File used for UNIX socket is no good");
WEFT_DETAIL_CONNECT_ERROR(ServiceNameUnknownError, ConnectError, "Service name given as port is unknown");
WEFT_DETAIL_CONNECT_ERROR(UserError, ConnectError, "User aborted connection");
WEFT_DETAIL_CONNECT_ERROR(TimeoutError, UserError, "User timeout caused connection failure");
WEFT_DETAIL_CONNECT_ERROR(SSLError, ConnectError, "An SSL error occurred");

/// Maps an errno to the matching ConnectError subclass, as a Failure-ready
/// exception_ptr: ECONNREFUSED → ConnectionRefusedError, ENETUNREACH →
/// NoRouteError, ETIMEDOUT → TCPTimedOutError, a resolver error
/// (resolverError=true) → UnknownHostError, anything else → ConnectError.
WEFT_EXPORT std::exception_ptr getConnectError(int osError, std::string text, bool resolverError = false);

// ---- set-up errors ---------------------------------------------------------

/// Binding to an interface failed.
class WEFT_EXPORT BindError : public std::system_error {
public:
    static constexpr std::string_view MESSAGE = "An error occurred binding to an interface";
    explicit BindError(std::error_code ec = {}, std::string text = {});
    const char* what() const noexcept override { return text_.c_str(); }

protected:
    std::string text_;
};

/// listen* failed: "Couldn't listen on <interface or 'any'>:<port>: <error>."
class WEFT_EXPORT CannotListenError : public BindError {
public:
    CannotListenError(std::string interface_, std::string port_, std::error_code socketError_);
    CannotListenError(std::string interface_, int port_, std::error_code socketError_)
        : CannotListenError(std::move(interface_), std::to_string(port_), socketError_) {}
    /// With a description in place of the error code's message ("Cannot acquire lock").
    CannotListenError(std::string interface_, std::string port_, std::error_code socketError_, std::string detail);
    std::string interface;
    std::string port;
    std::error_code socketError() const noexcept { return code(); }
};

WEFT_DETAIL_ERROR(MessageLengthError, Described<std::runtime_error>, "Message is too long to send");
WEFT_DETAIL_ERROR(DNSLookupError, Described<std::runtime_error>, "DNS lookup failed");
WEFT_DETAIL_ERROR(MulticastJoinError, Described<std::runtime_error>, "An attempt to join a multicast group failed");
WEFT_DETAIL_ERROR(ConnectInProgressError, Described<std::runtime_error>,
                  "A connect operation was started and isn't done yet");
WEFT_DETAIL_ERROR(UnsupportedAddressFamily, Described<std::runtime_error>, "Unsupported address family");
WEFT_DETAIL_ERROR(UnsupportedSocketType, Described<std::runtime_error>, "Unsupported socket type");
WEFT_DETAIL_ERROR(AlreadyListened, Described<std::runtime_error>, "This file descriptor was already listened on");
WEFT_DETAIL_ERROR(NoProtocol, Described<std::runtime_error>, "The factory returned no protocol");
WEFT_DETAIL_ERROR(ProcessExitedAlready, Described<std::runtime_error>, "The process has already exited");

/// A client endpoint's connect() Deferred was cancelled before the connection
/// was made (Twisted ConnectingCancelledError): the attempt is stopped, and
/// no protocol is built or connected. `address` is the destination, as text.
class WEFT_EXPORT ConnectingCancelledError : public std::runtime_error {
public:
    explicit ConnectingCancelledError(std::string address_);
    std::string address;
};

/// An invalid address (neither IPv4 nor IPv6, or the wrong one of the two).
class WEFT_EXPORT InvalidAddressError : public std::invalid_argument {
public:
    InvalidAddressError(std::string address_, std::string message_);
    std::string address;
    std::string message;
};

/// cancel()/reset()/delay() on a DelayedCall that already ran.
WEFT_DETAIL_ERROR(AlreadyCalled, Described<std::invalid_argument>, "Tried to cancel an already-called event");
/// cancel()/reset()/delay() on a DelayedCall that was cancelled.
WEFT_DETAIL_ERROR(AlreadyCancelled, Described<std::invalid_argument>, "Tried to cancel an already-cancelled event");

WEFT_DETAIL_ERROR(NotConnectingError, Described<std::runtime_error>,
                  "The Connector was not connecting when it was asked to stop connecting");
WEFT_DETAIL_ERROR(NotListeningError, Described<std::runtime_error>,
                  "The Port was not listening when it was asked to stop listening");
/// stop() on a reactor that is not running (or already stopping).
WEFT_DETAIL_ERROR(ReactorNotRunning, Described<std::runtime_error>, "Can't stop reactor that isn't running");
/// run() on a reactor that was stopped: reactors are not restartable.
WEFT_DETAIL_ERROR(ReactorNotRestartable, Described<std::runtime_error>,
                  "The reactor was stopped and cannot be restarted");
/// run() on a reactor that is already running.
WEFT_DETAIL_ERROR(ReactorAlreadyRunning, Described<std::runtime_error>, "The reactor is already running");

#undef WEFT_DETAIL_ERROR
#undef WEFT_DETAIL_CONNECT_ERROR

/// A Failure holding a ConnectionDone: every clean end of a connection shares
/// this one immutable exception instead of building (and formatting) its own.
WEFT_EXPORT Failure connectionDone();

}  // namespace weft::error

namespace weft {
// The reasons are used everywhere; let users write weft::ConnectionDone.
using error::ConnectionAborted;
using error::ConnectionClosed;
using error::ConnectionDone;
using error::ConnectionFdescWentAway;
using error::ConnectionLost;
}  // namespace weft
