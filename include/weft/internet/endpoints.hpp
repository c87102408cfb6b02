// weft/internet/endpoints.hpp — endpoints and endpoint description strings
// ("tcp:8000:interface=127.0.0.1") (twisted.internet.endpoints).
// Spec: protocols.md EP-1 … EP-16.
//
//   parseEndpointDescription, quoteStringArgument   the grammar (EP-1 … EP-4)
//   IStreamServerEndpoint, IStreamClientEndpoint    what an endpoint is
//   endpoints::TCP4ServerEndpoint, TCP6ServerEndpoint (TCPServerEndpoint), TCP4ClientEndpoint,
//   UNIXServerEndpoint, UNIXClientEndpoint, UDPServerEndpoint,
//   AdoptedStreamServerEndpoint, ListenFDs          the endpoint types
//   endpoints::serverFromString, clientFromString,
//   datagramServerFromString                        description → endpoint (EP-5 … EP-14)
//   endpoints::registerServerParser, registerClientParser,
//   registerDatagramServerParser                    the parser registry (Twisted's
//                                                   IStreamServerEndpointStringParser plugins)
//
// Each endpoint takes the narrowest reactor interface it uses (IReactorTCP&,
// IReactorUNIX&, IReactorUDP&, IReactorSocket&; interfaces.hpp), so it works
// on a weft::Reactor and on a testing::MemoryReactor alike. The *FromString
// functions take a ReactorRef — any reactor converts to one — and each
// parser asks it for the interface its type needs.
//
// "ssl" (server) and "ssl"/"tls" (client) are TLS endpoints (EP-8, EP-15,
// EP-16): weft/internet/sslendpoints.hpp has their classes and grammar; they
// need a reactor that is also an IReactorTime. The type weft does not have
// yet, "haproxy", throws UnsupportedEndpointType naming it (it is registered
// as a parser that does so). ("stdio", EP-10, needs a weft::Reactor.)
// "serial" (client) opens a serial line (weft/internet/serialport.hpp; needs a
// weft::Reactor).
//
// Errors: a description Twisted rejects with ValueError throws
// InvalidEndpointDescription (or its UnknownEndpointType and
// UnsupportedEndpointType subclasses); one it rejects with TypeError (an
// unknown keyword, a missing or doubly given argument) throws
// EndpointArgumentError. Both derive from std::invalid_argument and what()
// names the bad part. A type whose endpoint needs a reactor interface the
// given reactor lacks throws UnsupportedEndpointType naming both. What a
// registered parser throws reaches the caller as it is. When a string throws,
// no endpoint exists and nothing was done.
//
// Ownership: an endpoint keeps a reference to its reactor, which must outlive
// it. The Deferreds returned by listen()/connect() hold what they deliver.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/error.hpp>

namespace weft {

// ---- the description grammar (EP-1 … EP-4) ------------------------------------------

/// A description split into its fields (EP-1).
struct WEFT_EXPORT EndpointDescription {
    /// Positional fields in order; the first names the endpoint type (EP-2).
    std::vector<std::string> args;
    /// Keyword fields; a repeated key keeps its last value.
    std::map<std::string, std::string> kwargs;

    /// The endpoint type: the first positional field, or "" when there is none.
    std::string type() const { return args.empty() ? std::string() : args.front(); }
};

/// Thrown for a description that cannot be parsed or has a bad value (Twisted:
/// ValueError); what() names the bad part.
class WEFT_EXPORT InvalidEndpointDescription : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// The description names no endpoint type weft knows:
/// "Unknown endpoint type: '<type in lower case>'" (EP-5, EP-12).
class WEFT_EXPORT UnknownEndpointType : public InvalidEndpointDescription {
public:
    using InvalidEndpointDescription::InvalidEndpointDescription;
};

/// The description names a Twisted endpoint type that weft does not provide
/// yet ("haproxy"), or a type whose endpoint needs a
/// reactor interface the given reactor lacks; what() names the type (and the
/// interface).
class WEFT_EXPORT UnsupportedEndpointType : public InvalidEndpointDescription {
public:
    using InvalidEndpointDescription::InvalidEndpointDescription;
};

/// The arguments do not fit the endpoint type: an unknown keyword, a missing
/// required argument, too many positional ones, or one given both positionally
/// and as a keyword (Twisted: TypeError); what() names it.
class WEFT_EXPORT EndpointArgumentError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Splits `description` at every unescaped ':'; in each field the first
/// unescaped '=' separates key from value (later ones are literal); a backslash
/// makes the next character literal. Empty fields are kept ("a::b" → a, "", b).
/// Throws InvalidEndpointDescription for a trailing lone backslash (EP-3).
WEFT_EXPORT EndpointDescription parseEndpointDescription(std::string_view description);

/// Escapes `s` so that it survives parseEndpointDescription as one field value:
/// a backslash goes before every '\', ':' and '=' (EP-4). Better than Twisted:
/// '=' is escaped too, so a positional value containing '=' stays positional.
WEFT_EXPORT std::string quoteStringArgument(std::string_view s);

// ---- endpoint interfaces (Twisted interfaces.IStreamServerEndpoint, …) ---------------

/// Something that can listen for stream connections (Twisted IStreamServerEndpoint).
class WEFT_EXPORT IStreamServerEndpoint {
public:
    virtual ~IStreamServerEndpoint() = default;
    /// Starts listening with `factory`: a Deferred that has fired with the
    /// listening port, or has failed (error::CannotListenError when the port
    /// cannot be bound or listened on). It never throws.
    virtual Deferred<std::shared_ptr<IListeningPort>> listen(std::shared_ptr<Factory> factory) = 0;
};

/// Something that can make an outgoing stream connection (Twisted IStreamClientEndpoint).
class WEFT_EXPORT IStreamClientEndpoint {
public:
    virtual ~IStreamClientEndpoint() = default;
    /// Connects, building the protocol with `factory`: a Deferred that fires
    /// with that protocol once its connectionMade() has run, or fails with the
    /// reason the attempt failed (usually a weft::error::ConnectError kind;
    /// error::DNSLookupError for a name that does not resolve). It never throws.
    virtual Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> factory) = 0;
};

namespace endpoints {

using weft::EndpointArgumentError;
using weft::InvalidEndpointDescription;
using weft::quoteStringArgument;
using weft::UnknownEndpointType;
using weft::UnsupportedEndpointType;

// ---- TCP ------------------------------------------------------------------------------

/// Listens on a TCP port (Twisted _TCPServerEndpoint): listen() is
/// IReactorTCP::listenTCP(port, factory, backlog, interface), whose family
/// follows the interface literal. Use TCP4ServerEndpoint or TCP6ServerEndpoint.
class WEFT_EXPORT TCPServerEndpoint : public IStreamServerEndpoint {
public:
    /// A fired Deferred with the port (a tcp::Port on a weft::Reactor), or a
    /// failed one (CannotListenError).
    Deferred<std::shared_ptr<IListeningPort>> listen(std::shared_ptr<Factory> factory) override;

    IReactorTCP& reactor() const noexcept { return reactor_; }
    /// The port asked for (0: the kernel chooses).
    std::uint16_t port() const noexcept { return port_; }
    int backlog() const noexcept { return backlog_; }
    const std::string& interface() const noexcept { return interface_; }

protected:
    TCPServerEndpoint(IReactorTCP& reactor, std::uint16_t port, int backlog, std::string interface);

private:
    IReactorTCP& reactor_;
    std::uint16_t port_;
    int backlog_;
    std::string interface_;
};

/// Listens on an IPv4 TCP port (Twisted TCP4ServerEndpoint); the interface
/// defaults to "" (every IPv4 address).
class WEFT_EXPORT TCP4ServerEndpoint final : public TCPServerEndpoint {
public:
    TCP4ServerEndpoint(IReactorTCP& reactor, std::uint16_t port, int backlog = 50, std::string interface = "");
};

/// Listens on an IPv6 TCP port (Twisted TCP6ServerEndpoint); the interface
/// defaults to "::" (every IPv6 address; the port is IPv6-only).
class WEFT_EXPORT TCP6ServerEndpoint final : public TCPServerEndpoint {
public:
    TCP6ServerEndpoint(IReactorTCP& reactor, std::uint16_t port, int backlog = 50, std::string interface = "::");
};

/// Connects over TCP (Twisted TCP4ClientEndpoint): connect() is
/// IReactorTCP::connectTCP(host, port, …, timeout, bindAddress). `host` may be a
/// name (resolved to both families), an IPv4 or an IPv6 literal.
class WEFT_EXPORT TCP4ClientEndpoint : public IStreamClientEndpoint {
public:
    /// `timeout` in seconds (<= 0: none).
    TCP4ClientEndpoint(IReactorTCP& reactor, std::string host, std::uint16_t port, double timeout = 30,
                       std::optional<BindAddress> bindAddress = std::nullopt);
    /// Starts connecting. The factory is wrapped: its doStart()/doStop() run
    /// when the attempt starts and ends, it builds the protocol, and the
    /// protocol sees every callback as usual (a half-closeable protocol still
    /// hears readConnectionLost()). A factory returning null fails the Deferred
    /// with error::NoProtocol; one that throws fails it with that exception.
    Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> factory) override;

    IReactorTCP& reactor() const noexcept { return reactor_; }
    const std::string& host() const noexcept { return host_; }
    std::uint16_t port() const noexcept { return port_; }
    double timeout() const noexcept { return timeout_; }
    const std::optional<BindAddress>& bindAddress() const noexcept { return bindAddress_; }

private:
    IReactorTCP& reactor_;
    std::string host_;
    std::uint16_t port_;
    double timeout_;
    std::optional<BindAddress> bindAddress_;
};

// ---- UNIX (EP-7, EP-14) ----------------------------------------------------------------

/// Listens on a UNIX socket (Twisted UNIXServerEndpoint): listen() is
/// IReactorUNIX::listenUNIX(address, factory, backlog, mode, wantPID).
class WEFT_EXPORT UNIXServerEndpoint final : public IStreamServerEndpoint {
public:
    UNIXServerEndpoint(IReactorUNIX& reactor, std::string address, int backlog = 50, int mode = 0666,
                       bool wantPID = false);
    /// A fired Deferred with the port (a unix_::Port on a weft::Reactor), or a
    /// failed one (CannotListenError).
    Deferred<std::shared_ptr<IListeningPort>> listen(std::shared_ptr<Factory> factory) override;

    IReactorUNIX& reactor() const noexcept { return reactor_; }
    const std::string& address() const noexcept { return address_; }
    int backlog() const noexcept { return backlog_; }
    int mode() const noexcept { return mode_; }
    bool wantPID() const noexcept { return wantPID_; }

private:
    IReactorUNIX& reactor_;
    std::string address_;
    int backlog_;
    int mode_;
    bool wantPID_;
};

/// Connects to a UNIX socket (Twisted UNIXClientEndpoint): connect() is
/// IReactorUNIX::connectUNIX(path, …, timeout, checkPID), with the factory
/// wrapped as TCP4ClientEndpoint wraps it.
class WEFT_EXPORT UNIXClientEndpoint final : public IStreamClientEndpoint {
public:
    UNIXClientEndpoint(IReactorUNIX& reactor, std::string path, double timeout = 30, bool checkPID = false);
    Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> factory) override;

    IReactorUNIX& reactor() const noexcept { return reactor_; }
    const std::string& path() const noexcept { return path_; }
    double timeout() const noexcept { return timeout_; }
    bool checkPID() const noexcept { return checkPID_; }

private:
    IReactorUNIX& reactor_;
    std::string path_;
    double timeout_;
    bool checkPID_;
};

// ---- datagram ports (weft's own: Twisted's strports describe streams only) -------------

/// Something that can listen for datagrams with a DatagramProtocol.
class WEFT_EXPORT IDatagramServerEndpoint {
public:
    virtual ~IDatagramServerEndpoint() = default;
    /// A fired Deferred with the listening port, or a failed one
    /// (CannotListenError, InvalidAddressError). It never throws.
    virtual Deferred<std::shared_ptr<IListeningPort>> listen(std::shared_ptr<DatagramProtocol> protocol) = 0;
};

/// Listens on a UDP port: listen() is IReactorUDP::listenUDP(port, protocol,
/// interface, maxPacketSize); the family follows the interface literal.
class WEFT_EXPORT UDPServerEndpoint final : public IDatagramServerEndpoint {
public:
    UDPServerEndpoint(IReactorUDP& reactor, std::uint16_t port, std::string interface = "",
                      std::size_t maxPacketSize = 8192);
    Deferred<std::shared_ptr<IListeningPort>> listen(std::shared_ptr<DatagramProtocol> protocol) override;

    IReactorUDP& reactor() const noexcept { return reactor_; }
    std::uint16_t port() const noexcept { return port_; }
    const std::string& interface() const noexcept { return interface_; }
    std::size_t maxPacketSize() const noexcept { return maxPacketSize_; }

private:
    IReactorUDP& reactor_;
    std::uint16_t port_;
    std::string interface_;
    std::size_t maxPacketSize_;
};

// ---- systemd socket activation (EP-11) ------------------------------------------------

/// Listening sockets inherited from systemd (Twisted python.systemd.ListenFDs).
struct WEFT_EXPORT ListenFDs {
    /// Reads an environment variable: its value, or nullopt if it is unset.
    using Environment = std::function<std::optional<std::string>(const std::string& name)>;
    /// systemd's first inherited descriptor.
    static constexpr int START = 3;

    /// The inherited descriptors, in order.
    std::vector<int> descriptors;
    /// Their names (LISTEN_FDNAMES), in the same order; empty when unknown.
    std::vector<std::string> names;

    /// Reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from `environment`
    /// (default: the process environment, left unchanged). Nothing is
    /// inherited unless LISTEN_PID is this process's pid and LISTEN_FDS a
    /// count; the descriptors are then start, start+1, … Names are used only
    /// when LISTEN_FDNAMES has one ':'-separated name per descriptor. Better
    /// than Twisted: without (matching) names the descriptors are still
    /// available by index — Twisted then forgets them all.
    static ListenFDs fromEnvironment(const Environment& environment = {}, int start = START);

    /// The descriptors (Twisted's name).
    std::vector<int> inheritedDescriptors() const { return descriptors; }
    /// Name → descriptor (Twisted's name); empty when names are unknown.
    std::map<std::string, int> inheritedNamedDescriptors() const;
};

/// Listens by adopting a listening socket made elsewhere (Twisted
/// AdoptedStreamServerEndpoint): listen() is IReactorSocket::adoptStreamPort(fileno,
/// addressFamily, factory), after which this endpoint closes `fileno` (the
/// port has its own duplicate). It can listen once: a second listen() fails
/// with error::AlreadyListened. An address family the reactor cannot adopt
/// fails with error::UnsupportedAddressFamily (weft::Reactor takes AF_INET,
/// AF_INET6 and AF_UNIX); `fileno` is then left open.
class WEFT_EXPORT AdoptedStreamServerEndpoint : public IStreamServerEndpoint {
public:
    AdoptedStreamServerEndpoint(IReactorSocket& reactor, int fileno, int addressFamily);
    Deferred<std::shared_ptr<IListeningPort>> listen(std::shared_ptr<Factory> factory) override;

    IReactorSocket& reactor() const noexcept { return reactor_; }
    int fileno() const noexcept { return fileno_; }
    int addressFamily() const noexcept { return addressFamily_; }

private:
    IReactorSocket& reactor_;
    int fileno_;
    int addressFamily_;
    bool used_ = false;
};

// ---- the parser registry (Twisted IStreamServerEndpointStringParser, …) ----------------

/// How a registered prefix matches a description's type (EP-5, EP-12).
enum class PrefixMatch {
    /// In any case ("TCP6", "tcp6", "Tcp6"): Twisted's plugins, and every client type.
    anyCase,
    /// Only exactly as registered: Twisted's built-in server types "tcp",
    /// "unix" and "ssl" ("TCP:80" is an unknown type).
    exact,
};

/// What serverFromString hands a server parser besides the reactor and the description.
struct WEFT_EXPORT ServerParseContext {
    /// The systemd descriptors serverFromString was given, or null when it
    /// was given none (a parser that wants them then reads
    /// ListenFDs::fromEnvironment()).
    const ListenFDs* inherited = nullptr;
};

/// Makes a server endpoint from a parsed description (Twisted
/// IStreamServerEndpointStringParser.parseStreamServer). `description.args[0]`
/// is the type as written; the other fields are the type's arguments. It asks
/// `reactor` for the interface it needs (reactor.find<IReactorTCP>()) and
/// throws as the file comment describes; it must not listen yet.
using ServerParser = std::function<std::shared_ptr<IStreamServerEndpoint>(
    const ReactorRef& reactor, const EndpointDescription& description, const ServerParseContext& context)>;
/// Makes a client endpoint (Twisted IStreamClientEndpointStringParserWithReactor).
using ClientParser = std::function<std::shared_ptr<IStreamClientEndpoint>(const ReactorRef& reactor,
                                                                          const EndpointDescription& description)>;
/// Makes a datagram server endpoint (weft's own).
using DatagramServerParser = std::function<std::shared_ptr<IDatagramServerEndpoint>(
    const ReactorRef& reactor, const EndpointDescription& description)>;

/// Registers `parser` for the server type `prefix`: serverFromString hands it
/// every description whose type matches. Exact prefixes are looked up first,
/// then any-case ones (as Twisted looks at its built-in parsers before its
/// plugins). A parser registered for the same prefix and match replaces the
/// earlier one — a built-in one too. Throws std::invalid_argument for an
/// empty prefix or parser. Thread-safe; a parser may register others.
WEFT_EXPORT void registerServerParser(std::string prefix, ServerParser parser,
                                      PrefixMatch match = PrefixMatch::anyCase);
/// Removes what registerServerParser(prefix, …, match) registered; false if
/// there was nothing.
WEFT_EXPORT bool unregisterServerParser(std::string_view prefix, PrefixMatch match = PrefixMatch::anyCase);
/// registerServerParser for clientFromString.
WEFT_EXPORT void registerClientParser(std::string prefix, ClientParser parser,
                                      PrefixMatch match = PrefixMatch::anyCase);
/// unregisterServerParser for clientFromString.
WEFT_EXPORT bool unregisterClientParser(std::string_view prefix, PrefixMatch match = PrefixMatch::anyCase);
/// registerServerParser for datagramServerFromString.
WEFT_EXPORT void registerDatagramServerParser(std::string prefix, DatagramServerParser parser,
                                              PrefixMatch match = PrefixMatch::anyCase);
/// unregisterServerParser for datagramServerFromString.
WEFT_EXPORT bool unregisterDatagramServerParser(std::string_view prefix, PrefixMatch match = PrefixMatch::anyCase);

// ---- descriptions → endpoints ---------------------------------------------------------

/// A server endpoint from a description (EP-5, EP-6, EP-7, EP-9, EP-11),
/// built by the parser registered for its type. The built-in ones:
///   tcp:PORT[:INTERFACE[:BACKLOG]]   (keywords port, interface="", backlog=50) → TCP4ServerEndpoint
///   tcp6:PORT[:BACKLOG[:INTERFACE]]  (keywords port, backlog=50, interface="::") → TCP6ServerEndpoint
///   unix:ADDRESS[:MODE[:BACKLOG[:LOCKFILE]]] (mode octal, 666; lockfile=1)  → UNIXServerEndpoint
///   systemd:domain=INET|INET6|UNIX:index=N or :name=NAME            → AdoptedStreamServerEndpoint
///   ssl:PORT:privateKey=…:certKey=…  (sslendpoints.hpp, SSLEP-1 … SSLEP-5) → SSL4ServerEndpoint
/// "tcp", "unix" and "ssl" match only in lower case (PrefixMatch::exact); "tcp6" and
/// "systemd" in any case. Port and backlog are base-10 integers (an optional
/// sign, then digits). Better than Twisted: a port outside 0..65535 is
/// rejected here, not at listen(). Throws as described in the file comment;
/// "systemd:" also throws InvalidEndpointDescription for an index or name
/// that was not inherited. Nothing is listened on until listen(). systemd
/// descriptors come from ListenFDs::fromEnvironment(), read at each call.
/// tcp/tcp6 need IReactorTCP, unix IReactorUNIX, systemd IReactorSocket.
WEFT_EXPORT std::shared_ptr<IStreamServerEndpoint> serverFromString(const ReactorRef& reactor,
                                                                    std::string_view description);
/// The same, with the systemd descriptors given (for tests and for programs
/// that read the environment themselves).
WEFT_EXPORT std::shared_ptr<IStreamServerEndpoint> serverFromString(const ReactorRef& reactor,
                                                                    std::string_view description,
                                                                    const ListenFDs& inherited);

/// A client endpoint from a description (EP-12, EP-13, EP-14): the type
/// matches in any case;
///   tcp:HOST:PORT, tcp:host=HOST:port=PORT or any mix ("tcp:h:port=80",
///   "tcp:host=h:80"), optional timeout=SECONDS (an integer, default 30) and
///   bindAddress=IP (→ {IP, 0})                                   → TCP4ClientEndpoint
///   unix:PATH (or path=), optional timeout= (30) and lockfile=0|1 (checkPID,
///   default 0)                                                    → UNIXClientEndpoint
///   ssl:HOST:PORT…, tls:HOST:PORT… (sslendpoints.hpp, SSLEP-6 … SSLEP-11)
///                                      → SSL4ClientEndpoint, TLSWrapperClientEndpoint
/// A missing host or port, an unknown keyword, an extra positional field or
/// an argument given twice throws EndpointArgumentError; a port that is not a
/// number in 0..65535 or a timeout that is not an integer throws
/// InvalidEndpointDescription. "tcp6" is not a client type. tcp needs
/// IReactorTCP, unix IReactorUNIX.
WEFT_EXPORT std::shared_ptr<IStreamClientEndpoint> clientFromString(const ReactorRef& reactor,
                                                                    std::string_view description);

/// A datagram server endpoint from a description (weft's own; the type
/// matches in any case): "udp:PORT[:interface=ADDR][:maxPacketSize=N]"
/// (fields also by position, in that order; maxPacketSize 1..65535, default
/// 8192) → UDPServerEndpoint, which needs IReactorUDP. The grammar and errors
/// are those of serverFromString.
WEFT_EXPORT std::shared_ptr<IDatagramServerEndpoint> datagramServerFromString(const ReactorRef& reactor,
                                                                              std::string_view description);

/// Connects `protocol` itself (not one a factory makes) through `endpoint`
/// (Twisted endpoints.connectProtocol): a one-shot factory hands it to the
/// endpoint once and keeps no reference to it afterwards, so the protocol,
/// which holds its factory, and the factory do not hold each other. The
/// Deferred fires with `protocol` once its connectionMade() has run, or fails
/// as IStreamClientEndpoint::connect() does; `protocol` is never reused.
/// Throws std::invalid_argument for a null protocol.
///
///     auto p = std::make_shared<Client>();
///     auto proto = co_await endpoints::connectProtocol(*endpoint, p);
WEFT_EXPORT Deferred<std::shared_ptr<Protocol>> connectProtocol(IStreamClientEndpoint& endpoint,
                                                                std::shared_ptr<Protocol> protocol);

}  // namespace endpoints
}  // namespace weft
