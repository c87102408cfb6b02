#include <weft/internet/endpoints.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <initializer_list>
#include <mutex>
#include <typeinfo>
#include <utility>

#include <fmt/format.h>

#include <weft/internet/abstract.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/ssl.hpp>
#include <weft/internet/stdio.hpp>
#include <weft/internet/unix.hpp>
#include <weft/text.hpp>

#include "internet/detail/deviceparsers.hpp"
#include "internet/detail/sslparsers.hpp"
#include "sys/syscalls.hpp"

namespace weft {

// ---- grammar ---------------------------------------------------------------------------

EndpointDescription parseEndpointDescription(std::string_view description) {
    EndpointDescription out;
    std::string current, key;
    bool keyword = false;
    auto finishField = [&] {
        if (keyword) out.kwargs[std::move(key)] = std::move(current);
        else out.args.push_back(std::move(current));
        current.clear();
        key.clear();
        keyword = false;
    };
    for (std::size_t i = 0; i < description.size(); ++i) {
        char c = description[i];
        if (c == '\\') {
            if (i + 1 == description.size())
                throw InvalidEndpointDescription("endpoint description " + quote(description) +
                                                 " ends with a lone backslash");
            current += description[++i];
        } else if (c == ':') {
            finishField();
        } else if (c == '=' && !keyword) {
            key = std::move(current);
            current.clear();
            keyword = true;
        } else {
            current += c;
        }
    }
    finishField();
    return out;
}

std::string quoteStringArgument(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\\' || c == ':' || c == '=') out += '\\';  // '=': Better than Twisted (EP-4)
        out += c;
    }
    return out;
}

namespace endpoints {

namespace detail {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Base-10 integer: an optional sign, then one or more digits. nullopt if the
// text is not that; `overflow` is set when it is but does not fit.
std::optional<long long> parseInteger(std::string_view text, bool& overflow) {
    overflow = false;
    std::string_view digits = text;
    bool negative = false;
    if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) {
        negative = digits.front() == '-';
        digits.remove_prefix(1);
    }
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    unsigned long long value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    (void)end;
    if (ec == std::errc::result_out_of_range || value > static_cast<unsigned long long>(LLONG_MAX)) {
        overflow = true;
        return std::nullopt;
    }
    long long v = static_cast<long long>(value);
    return negative ? -v : v;
}

// An integer argument within [lo, hi]; throws InvalidEndpointDescription naming
// the endpoint type, the argument and the text.
long long integerArgument(std::string_view type, std::string_view name, const std::string& text, long long lo,
                          long long hi) {
    bool overflow = false;
    auto value = parseInteger(text, overflow);
    if (!value && !overflow)
        throw InvalidEndpointDescription(fmt::format("{}: {} {} is not a number", type, name, quote(text)));
    if (overflow || *value < lo || *value > hi)
        throw InvalidEndpointDescription(
            fmt::format("{}: {} {} is out of range {}..{}", type, name, quote(text), lo, hi));
    return *value;
}

std::uint16_t portArgument(std::string_view type, const std::string& text) {
    return static_cast<std::uint16_t>(integerArgument(type, "port", text, 0, 65535));
}

int intArgument(std::string_view type, std::string_view name, const std::string& text) {
    return static_cast<int>(integerArgument(type, name, text, INT_MIN, INT_MAX));
}

// Binds the fields after the type to named parameters as a Python call would:
// positional fields fill `params` in order, keywords by name. An extra
// positional field, an unknown keyword, a parameter given twice or a missing
// required one throws EndpointArgumentError.
using Bound = std::map<std::string, std::string>;

// An empty field is what a bare ':' inside a value leaves (interface=::1 is
// "interface=", "", "1"): say how to write one.
std::string colonHint(const EndpointDescription& d) {
    bool empty = (d.args.size() > 1 &&
                  std::any_of(d.args.begin() + 1, d.args.end(), [](const std::string& a) { return a.empty(); })) ||
                 std::any_of(d.kwargs.begin(), d.kwargs.end(), [](const auto& kv) { return kv.second.empty(); });
    return empty ? " (a ':' inside a value is written '\\:', e.g. interface=\\:\\:1)" : "";
}

void bindKeywords(std::string_view type, const EndpointDescription& d, std::initializer_list<std::string_view> params,
                  Bound& bound) {
    for (const auto& [key, value] : d.kwargs) {
        if (std::find(params.begin(), params.end(), key) == params.end())
            throw EndpointArgumentError(fmt::format("{}: unknown keyword {}", type, quote(key)));
        if (bound.count(key))
            throw EndpointArgumentError(fmt::format("{}: argument {} given both positionally and as a keyword{}", type,
                                                    quote(key), colonHint(d)));
        bound[key] = value;
    }
}

void requireArguments(std::string_view type, const Bound& bound, std::initializer_list<std::string_view> required) {
    for (auto name : required)
        if (!bound.count(std::string(name)))
            throw EndpointArgumentError(fmt::format("{}: missing argument '{}'", type, name));
}

Bound bindArguments(std::string_view type, const EndpointDescription& d, std::initializer_list<std::string_view> params,
                    std::initializer_list<std::string_view> required) {
    Bound bound;
    std::size_t positional = d.args.size() - 1;  // args[0] is the type
    if (positional > params.size()) {
        if (params.size() == 0)
            throw EndpointArgumentError(fmt::format("{}: takes no arguments ({} given)", type, positional));
        std::string names;
        for (auto p : params) names += (names.empty() ? "" : ", ") + std::string(p);
        throw EndpointArgumentError(fmt::format("{}: too many positional arguments ({} given, at most {}: {}){}", type,
                                                positional, params.size(), names, colonHint(d)));
    }
    auto name = params.begin();
    for (std::size_t i = 1; i < d.args.size(); ++i, ++name) bound[std::string(*name)] = d.args[i];
    bindKeywords(type, d, params, bound);
    requireArguments(type, bound, required);
    return bound;
}

std::string valueOr(const Bound& bound, const std::string& key, std::string fallback) {
    auto it = bound.find(key);
    return it == bound.end() ? std::move(fallback) : it->second;
}

void bindHostAndPort(std::string_view type, const EndpointDescription& d, Bound& bound) {
    // EP-13: host and port positionally or by keyword in any mix. One
    // positional field is the host, unless host= is given: then it is the port.
    std::size_t positional = d.args.size() - 1;
    if (positional > 2)
        throw EndpointArgumentError(fmt::format("{}: too many positional arguments ({} given, at most 2: host, port){}",
                                                type, positional, colonHint(d)));
    if (positional == 2) {
        bound["host"] = d.args[1];
        bound["port"] = d.args[2];
    } else if (positional == 1) {
        bound[d.kwargs.count("host") ? "port" : "host"] = d.args[1];
    }
}

}  // namespace detail

namespace {

using namespace detail;

[[noreturn]] void unsupported(const std::string& type, std::string_view why) {
    throw UnsupportedEndpointType(fmt::format("Endpoint type {} is not supported by weft yet ({})", quote(type), why));
}

[[noreturn]] void unknown(std::string_view type) {
    throw UnknownEndpointType(fmt::format("Unknown endpoint type: {}", quote(lower(type))));
}

// ---- server parsers ----------------------------------------------------------------------

std::shared_ptr<IStreamServerEndpoint> parseTCPServer(const ReactorRef& reactor, const EndpointDescription& d,
                                                      const ServerParseContext&) {
    Bound b = bindArguments("tcp", d, {"port", "interface", "backlog"}, {"port"});
    return std::make_shared<TCP4ServerEndpoint>(need<IReactorTCP>(reactor, "tcp"), portArgument("tcp", b["port"]),
                                                intArgument("tcp", "backlog", valueOr(b, "backlog", "50")),
                                                valueOr(b, "interface", ""));
}

std::shared_ptr<IStreamServerEndpoint> parseTCP6Server(const ReactorRef& reactor, const EndpointDescription& d,
                                                       const ServerParseContext&) {
    // EP-9: backlog comes before interface here, unlike "tcp".
    Bound b = bindArguments("tcp6", d, {"port", "backlog", "interface"}, {"port"});
    return std::make_shared<TCP6ServerEndpoint>(need<IReactorTCP>(reactor, "tcp6"), portArgument("tcp6", b["port"]),
                                                intArgument("tcp6", "backlog", valueOr(b, "backlog", "50")),
                                                valueOr(b, "interface", "::"));
}

// EP-7: unix:ADDRESS[:MODE[:BACKLOG[:LOCKFILE]]]; mode in octal, lockfile on by default.
std::shared_ptr<IStreamServerEndpoint> parseUNIXServer(const ReactorRef& reactor, const EndpointDescription& d,
                                                       const ServerParseContext&) {
    Bound b = bindArguments("unix", d, {"address", "mode", "backlog", "lockfile"}, {"address"});
    std::string modeText = valueOr(b, "mode", "666");
    // Python's int(mode, 8) also takes the "0o" prefix ("mode=0o660").
    std::string_view digits = modeText;
    if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'O')) digits.remove_prefix(2);
    int mode = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), mode, 8);
    // A bad value is Twisted's ValueError (int(mode, 8)), as a bad port is.
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || mode < 0 || mode > 07777)
        throw InvalidEndpointDescription(fmt::format("unix: mode {} is not an octal file mode", quote(modeText)));
    if (b["address"].empty()) throw EndpointArgumentError("unix: the address (a socket path) is empty");
    return std::make_shared<UNIXServerEndpoint>(need<IReactorUNIX>(reactor, "unix"), b["address"],
                                                intArgument("unix", "backlog", valueOr(b, "backlog", "50")), mode,
                                                intArgument("unix", "lockfile", valueOr(b, "lockfile", "1")) != 0);
}

// EP-10: stdio (no arguments). Standard I/O runs on a weft::Reactor only.
std::shared_ptr<IStreamServerEndpoint> parseStdioServer(const ReactorRef& reactor, const EndpointDescription& d,
                                                        const ServerParseContext&) {
    // "stdio" and "stdio:" alike (EP-10): one empty positional argument is no argument.
    EndpointDescription bare = d;
    if (bare.args.size() == 2 && bare.args[1].empty()) bare.args.pop_back();
    bindArguments("stdio", bare, {}, {});
    auto* reactorImpl = dynamic_cast<Reactor*>(reactor.find<IReactorFDSet>());
    if (!reactorImpl) throw UnsupportedEndpointType("Endpoint type 'stdio' needs a weft::Reactor");
    return std::make_shared<stdio::StandardIOEndpoint>(*reactorImpl);
}

std::shared_ptr<IStreamServerEndpoint> parseSystemd(const ReactorRef& reactor, const EndpointDescription& d,
                                                    const ServerParseContext& context) {
    Bound b = bindArguments("systemd", d, {"domain", "index", "name"}, {"domain"});
    bool hasIndex = b.count("index") != 0, hasName = b.count("name") != 0;
    if (hasIndex == hasName)
        throw InvalidEndpointDescription("systemd: specify exactly one of descriptor index or name");
    const std::string& domain = b["domain"];
    int family;
    if (domain == "INET") family = AF_INET;
    else if (domain == "INET6") family = AF_INET6;
    else if (domain == "UNIX") family = AF_UNIX;
    else
        throw InvalidEndpointDescription(
            fmt::format("systemd: unknown domain {} (expected INET, INET6 or UNIX)", quote(domain)));
    IReactorSocket& sockets = need<IReactorSocket>(reactor, "systemd");

    ListenFDs fromEnvironment;
    if (!context.inherited) fromEnvironment = ListenFDs::fromEnvironment();
    const ListenFDs& inherited = context.inherited ? *context.inherited : fromEnvironment;
    int fd;
    if (hasIndex) {
        bool overflow = false;
        auto index = parseInteger(b["index"], overflow);
        if (!index && !overflow)
            throw InvalidEndpointDescription(fmt::format("systemd: index {} is not a number", quote(b["index"])));
        if (overflow || *index < 0 || *index >= static_cast<long long>(inherited.descriptors.size()))
            throw InvalidEndpointDescription(fmt::format("systemd: no inherited descriptor at index {} ({} inherited)",
                                                         b["index"], inherited.descriptors.size()));
        fd = inherited.descriptors[static_cast<std::size_t>(*index)];
    } else {
        auto named = inherited.inheritedNamedDescriptors();
        auto it = named.find(b["name"]);
        if (it == named.end())
            throw InvalidEndpointDescription(
                fmt::format("systemd: no inherited descriptor named {} ({} named)", quote(b["name"]), named.size()));
        fd = it->second;
    }
    return std::make_shared<AdoptedStreamServerEndpoint>(sockets, fd, family);
}

// ---- client parsers ----------------------------------------------------------------------

std::shared_ptr<IStreamClientEndpoint> parseTCPClient(const ReactorRef& reactor, const EndpointDescription& d) {
    // EP-13: host and port positionally or by keyword in any mix. One
    // positional field is the host, unless host= is given: then it is the port.
    Bound b;
    bindHostAndPort("tcp", d, b);
    bindKeywords("tcp", d, {"host", "port", "timeout", "bindAddress"}, b);
    requireArguments("tcp", b, {"host", "port"});
    std::optional<BindAddress> bindAddress;
    if (b.count("bindAddress")) bindAddress = BindAddress{b["bindAddress"], 0};
    return std::make_shared<TCP4ClientEndpoint>(
        need<IReactorTCP>(reactor, "tcp"), b["host"], portArgument("tcp", b["port"]),
        intArgument("tcp", "timeout", valueOr(b, "timeout", "30")), std::move(bindAddress));
}

// EP-14: unix:PATH (or path=) with timeout= and lockfile= (checkPID, off by default).
std::shared_ptr<IStreamClientEndpoint> parseUNIXClient(const ReactorRef& reactor, const EndpointDescription& d) {
    // EP-14: only the path is positional (Twisted: TypeError for "unix:/s:5").
    if (d.args.size() > 2)
        throw EndpointArgumentError(fmt::format(
            "unix: too many positional arguments ({} given, at most 1: path; timeout= and lockfile= are keywords){}",
            d.args.size() - 1, colonHint(d)));
    Bound b = bindArguments("unix", d, {"path", "timeout", "lockfile"}, {"path"});
    if (b["path"].empty()) throw EndpointArgumentError("unix: the path is empty");
    return std::make_shared<UNIXClientEndpoint>(need<IReactorUNIX>(reactor, "unix"), b["path"],
                                                intArgument("unix", "timeout", valueOr(b, "timeout", "30")),
                                                intArgument("unix", "lockfile", valueOr(b, "lockfile", "0")) != 0);
}

// ---- datagram parsers ----------------------------------------------------------------------

std::shared_ptr<IDatagramServerEndpoint> parseUDPServer(const ReactorRef& reactor, const EndpointDescription& d) {
    Bound b = bindArguments("udp", d, {"port", "interface", "maxPacketSize"}, {"port"});
    int size = intArgument("udp", "maxPacketSize", valueOr(b, "maxPacketSize", "8192"));
    if (size <= 0 || size > 65535)
        throw InvalidEndpointDescription(fmt::format("udp: maxPacketSize {} is outside 1..65535", size));
    return std::make_shared<UDPServerEndpoint>(need<IReactorUDP>(reactor, "udp"), portArgument("udp", b["port"]),
                                               valueOr(b, "interface", ""), static_cast<std::size_t>(size));
}

// ---- the registry ----------------------------------------------------------------------------

// Parsers by prefix: exact ones as registered, any-case ones in lower case.
// Lookups copy the parser out, so a parser runs without the lock (and may
// register others).
template <class Parser>
class ParserTable {
public:
    struct Entry {
        std::string prefix;
        Parser parser;
        PrefixMatch match;
    };
    explicit ParserTable(std::initializer_list<Entry> builtIn) {
        for (const Entry& e : builtIn) add(e.prefix, e.parser, e.match);
    }

    void add(std::string prefix, Parser parser, PrefixMatch match) {
        if (prefix.empty()) throw std::invalid_argument("an endpoint parser needs a non-empty prefix");
        if (!parser) throw std::invalid_argument("no parser given for endpoint type " + quote(prefix));
        std::lock_guard lock(mu_);
        table(match)[key(std::move(prefix), match)] = std::move(parser);
    }
    bool remove(std::string_view prefix, PrefixMatch match) {
        std::lock_guard lock(mu_);
        return table(match).erase(key(std::string(prefix), match)) != 0;
    }
    // The parser for `type`: an exact prefix first, then an any-case one (EP-5).
    Parser find(const std::string& type) const {
        std::lock_guard lock(mu_);
        if (auto it = exact_.find(type); it != exact_.end()) return it->second;
        if (auto it = anyCase_.find(lower(type)); it != anyCase_.end()) return it->second;
        return nullptr;
    }

private:
    static std::string key(std::string prefix, PrefixMatch match) {
        return match == PrefixMatch::anyCase ? lower(prefix) : std::move(prefix);
    }
    std::map<std::string, Parser>& table(PrefixMatch match) { return match == PrefixMatch::exact ? exact_ : anyCase_; }

    mutable std::mutex mu_;
    std::map<std::string, Parser> exact_;
    std::map<std::string, Parser> anyCase_;
};

// Stands for a Twisted type weft does not have yet.
template <class Parser>
Parser notYet(std::string_view why) {
    return [why](const ReactorRef&, const EndpointDescription& d, auto&&...) ->
           typename Parser::result_type { unsupported(lower(d.type()), why); };
}

// The built-in types, registered as anyone registers theirs. Twisted's own
// server parsers ("tcp", "unix", "ssl") match only as written; its plugins
// ("tcp6", "systemd", "stdio", "haproxy") and every client type in any case.
ParserTable<ServerParser>& serverParsers() {
    static ParserTable<ServerParser> table{
        {"tcp", parseTCPServer, PrefixMatch::exact},
        {"unix", parseUNIXServer, PrefixMatch::exact},
        {"ssl", parseSSLServer, PrefixMatch::exact},
        {"tcp6", parseTCP6Server, PrefixMatch::anyCase},
        {"systemd", parseSystemd, PrefixMatch::anyCase},
        {"stdio", parseStdioServer, PrefixMatch::anyCase},
        {"haproxy", notYet<ServerParser>("weft has no PROXY protocol support"), PrefixMatch::anyCase},
    };
    return table;
}

ParserTable<ClientParser>& clientParsers() {
    static ParserTable<ClientParser> table{
        {"tcp", parseTCPClient, PrefixMatch::anyCase},       {"unix", parseUNIXClient, PrefixMatch::anyCase},
        {"ssl", parseSSLClient, PrefixMatch::anyCase},       {"tls", parseTLSClient, PrefixMatch::anyCase},
        {"serial", parseSerialClient, PrefixMatch::anyCase},
    };
    return table;
}

ParserTable<DatagramServerParser>& datagramServerParsers() {
    static ParserTable<DatagramServerParser> table{{"udp", parseUDPServer, PrefixMatch::anyCase}};
    return table;
}

// ---- the client endpoint's factory and protocol wrappers ---------------------------------

class WrappingFactory;

// Stands between the transport and the application's protocol: forwards every
// callback, and reports the connection once the protocol's connectionMade() ran.
class WrappingProtocol : public Protocol {
public:
    WrappingProtocol(std::shared_ptr<WrappingFactory> owner, std::shared_ptr<Protocol> wrapped)
        : owner_(std::move(owner)), wrapped_(std::move(wrapped)) {}

    void connectionMade() override;
    void dataReceived(Bytes data) override { wrapped_->dataReceived(data); }
    void connectionLost(const Failure& reason) override { wrapped_->connectionLost(reason); }
    std::string logPrefix() const override { return FileDescriptor::getLogPrefix(*wrapped_); }

protected:
    /// The wrapped protocol as one of the optional interfaces below: only the
    /// wrappers made for a protocol that has it ask.
    template <class I>
    I& wrappedAs() const {
        return dynamic_cast<I&>(*wrapped_);
    }

    std::shared_ptr<WrappingFactory> owner_;
    std::shared_ptr<Protocol> wrapped_;
};

// The optional interfaces a transport looks for on its protocol. A wrapper has
// each one its wrapped protocol has, and no other, so the transport treats the
// pair as it would the protocol alone (Twisted's _WrappingProtocol provides
// IHalfCloseableProtocol, IFileDescriptorReceiver and IHandshakeListener so).
template <class Base>
class ForwardHalfClose : public Base, public IHalfCloseableProtocol {
public:
    using Base::Base;
    void readConnectionLost() override { this->template wrappedAs<IHalfCloseableProtocol>().readConnectionLost(); }
    void writeConnectionLost() override { this->template wrappedAs<IHalfCloseableProtocol>().writeConnectionLost(); }
};

template <class Base>
class ForwardDescriptors : public Base, public IFileDescriptorReceiver {
public:
    using Base::Base;
    void fileDescriptorReceived(int fd) override {
        this->template wrappedAs<IFileDescriptorReceiver>().fileDescriptorReceived(fd);
    }
};

template <class Base>
class ForwardHandshake : public Base, public ssl::IHandshakeListener {
public:
    using Base::Base;
    void handshakeCompleted() override { this->template wrappedAs<ssl::IHandshakeListener>().handshakeCompleted(); }
};

// The wrapper with exactly the interfaces `built` has (one of eight classes).
template <class W>
std::shared_ptr<Protocol> wrapHandshake(bool handshake, std::shared_ptr<WrappingFactory>&& owner,
                                        std::shared_ptr<Protocol>&& built) {
    if (handshake) return std::make_shared<ForwardHandshake<W>>(std::move(owner), std::move(built));
    return std::make_shared<W>(std::move(owner), std::move(built));
}

template <class W>
std::shared_ptr<Protocol> wrapWith(bool descriptors, bool handshake, std::shared_ptr<WrappingFactory>&& owner,
                                   std::shared_ptr<Protocol>&& built) {
    if (descriptors) return wrapHandshake<ForwardDescriptors<W>>(handshake, std::move(owner), std::move(built));
    return wrapHandshake<W>(handshake, std::move(owner), std::move(built));
}

std::shared_ptr<Protocol> wrapProtocol(std::shared_ptr<WrappingFactory> owner, std::shared_ptr<Protocol> built) {
    const bool descriptors = dynamic_cast<IFileDescriptorReceiver*>(built.get()) != nullptr;
    const bool handshake = dynamic_cast<ssl::IHandshakeListener*>(built.get()) != nullptr;
    if (dynamic_cast<IHalfCloseableProtocol*>(built.get()))
        return wrapWith<ForwardHalfClose<WrappingProtocol>>(descriptors, handshake, std::move(owner), std::move(built));
    return wrapWith<WrappingProtocol>(descriptors, handshake, std::move(owner), std::move(built));
}

// The ClientFactory given to connectTCP: builds the application's protocol
// with its factory and settles the endpoint's Deferred exactly once.
class WrappingFactory final : public ClientFactory {
public:
    explicit WrappingFactory(std::shared_ptr<Factory> wrapped) : wrapped_(std::move(wrapped)) { noisy = false; }

    /// A factory whose Deferred cancels the attempt, as Twisted's
    /// _WrappingFactory._canceller: it fails with ConnectingCancelledError and
    /// stops the connector, so no protocol is built or connected.
    static std::shared_ptr<WrappingFactory> create(std::shared_ptr<Factory> wrapped) {
        auto w = std::make_shared<WrappingFactory>(std::move(wrapped));
        w->onConnection_.emplace([weak = std::weak_ptr<WrappingFactory>(w)](Deferred<std::shared_ptr<Protocol>>&) {
            if (auto self = weak.lock()) self->cancel();
        });
        return w;
    }

    Deferred<std::shared_ptr<Protocol>> deferred() const { return *onConnection_; }
    /// The connector of the attempt, for cancel().
    void attempting(const std::shared_ptr<IConnector>& connector) { connector_ = connector; }

    // The application's factory is in use while the attempt and the connection last.
    void startFactory() override { wrapped_->doStart(); }
    void stopFactory() override { wrapped_->doStop(); }

    std::shared_ptr<Protocol> buildProtocol(const Address& addr) override {
        std::shared_ptr<Protocol> built;
        try {
            built = wrapped_->buildProtocol(addr);
            if (!built) throw error::NoProtocol();
        } catch (...) {
            fail(Failure::current());
            return nullptr;  // the transport closes the connection
        }
        return wrapProtocol(std::static_pointer_cast<WrappingFactory>(shared_from_this()), std::move(built));
    }

    void clientConnectionFailed(const std::shared_ptr<IConnector>&, const Failure& reason) override { fail(reason); }
    // Only reached before the Deferred fired if the protocol's connectionMade()
    // threw: the attempt failed with that reason.
    void clientConnectionLost(const std::shared_ptr<IConnector>&, const Failure& reason) override { fail(reason); }

    void connected(std::shared_ptr<Protocol> made) {
        if (!onConnection_) return;
        auto d = std::move(*onConnection_);
        onConnection_.reset();  // released once settled: it holds the protocol
        d.callback(std::move(made));
    }

private:
    void fail(const Failure& reason) {
        if (!onConnection_) return;
        auto d = std::move(*onConnection_);
        onConnection_.reset();
        d.errback(reason);
    }

    void cancel() {
        auto connector = connector_.lock();
        fail(Failure(error::ConnectingCancelledError(connector ? addressStr(connector->getDestination())
                                                               : std::string("an endpoint"))));
        if (!connector) return;
        try {
            connector->stopConnecting();  // its clientConnectionFailed finds the Deferred settled
        } catch (const error::NotConnectingError&) {}
    }

    std::shared_ptr<Factory> wrapped_;
    std::optional<Deferred<std::shared_ptr<Protocol>>> onConnection_;
    std::weak_ptr<IConnector> connector_;
};

void WrappingProtocol::connectionMade() {
    wrapped_->makeConnection(transport);
    owner_->connected(wrapped_);
}

}  // namespace

// ---- TCP endpoints -----------------------------------------------------------------------

TCPServerEndpoint::TCPServerEndpoint(IReactorTCP& reactor, std::uint16_t port, int backlog, std::string interface)
    : reactor_(reactor), port_(port), backlog_(backlog), interface_(std::move(interface)) {}

Deferred<std::shared_ptr<IListeningPort>> TCPServerEndpoint::listen(std::shared_ptr<Factory> factory) {
    try {
        std::shared_ptr<IListeningPort> port = reactor_.listenTCP(port_, std::move(factory), backlog_, interface_);
        return succeed(std::move(port));
    } catch (...) {
        return fail<std::shared_ptr<IListeningPort>>(Failure::current());
    }
}

TCP4ServerEndpoint::TCP4ServerEndpoint(IReactorTCP& reactor, std::uint16_t port, int backlog, std::string interface)
    : TCPServerEndpoint(reactor, port, backlog, std::move(interface)) {}

TCP6ServerEndpoint::TCP6ServerEndpoint(IReactorTCP& reactor, std::uint16_t port, int backlog, std::string interface)
    : TCPServerEndpoint(reactor, port, backlog, std::move(interface)) {}

TCP4ClientEndpoint::TCP4ClientEndpoint(IReactorTCP& reactor, std::string host, std::uint16_t port, double timeout,
                                       std::optional<BindAddress> bindAddress)
    : reactor_(reactor), host_(std::move(host)), port_(port), timeout_(timeout), bindAddress_(std::move(bindAddress)) {}

Deferred<std::shared_ptr<Protocol>> TCP4ClientEndpoint::connect(std::shared_ptr<Factory> factory) {
    try {
        if (!factory) throw std::invalid_argument("TCP4ClientEndpoint::connect: null factory");
        auto wrapping = WrappingFactory::create(std::move(factory));
        auto d = wrapping->deferred();
        wrapping->attempting(reactor_.connectTCP(host_, port_, wrapping, timeout_, bindAddress_));
        return d;
    } catch (...) {
        return fail<std::shared_ptr<Protocol>>(Failure::current());
    }
}

// ---- UNIX endpoints ------------------------------------------------------------------------

UNIXServerEndpoint::UNIXServerEndpoint(IReactorUNIX& reactor, std::string address, int backlog, int mode, bool wantPID)
    : reactor_(reactor), address_(std::move(address)), backlog_(backlog), mode_(mode), wantPID_(wantPID) {}

Deferred<std::shared_ptr<IListeningPort>> UNIXServerEndpoint::listen(std::shared_ptr<Factory> factory) {
    try {
        std::shared_ptr<IListeningPort> port =
            reactor_.listenUNIX(address_, std::move(factory), backlog_, mode_, wantPID_);
        return succeed(std::move(port));
    } catch (...) {
        return fail<std::shared_ptr<IListeningPort>>(Failure::current());
    }
}

UNIXClientEndpoint::UNIXClientEndpoint(IReactorUNIX& reactor, std::string path, double timeout, bool checkPID)
    : reactor_(reactor), path_(std::move(path)), timeout_(timeout), checkPID_(checkPID) {}

Deferred<std::shared_ptr<Protocol>> UNIXClientEndpoint::connect(std::shared_ptr<Factory> factory) {
    try {
        if (!factory) throw std::invalid_argument("UNIXClientEndpoint::connect: null factory");
        auto wrapping = WrappingFactory::create(std::move(factory));
        auto d = wrapping->deferred();
        wrapping->attempting(reactor_.connectUNIX(path_, wrapping, timeout_, checkPID_));
        return d;
    } catch (...) {
        return fail<std::shared_ptr<Protocol>>(Failure::current());
    }
}

// ---- UDP ------------------------------------------------------------------------------------

UDPServerEndpoint::UDPServerEndpoint(IReactorUDP& reactor, std::uint16_t port, std::string interface,
                                     std::size_t maxPacketSize)
    : reactor_(reactor), port_(port), interface_(std::move(interface)), maxPacketSize_(maxPacketSize) {}

Deferred<std::shared_ptr<IListeningPort>> UDPServerEndpoint::listen(std::shared_ptr<DatagramProtocol> protocol) {
    try {
        std::shared_ptr<IListeningPort> port =
            reactor_.listenUDP(port_, std::move(protocol), interface_, maxPacketSize_);
        return succeed(std::move(port));
    } catch (...) {
        return fail<std::shared_ptr<IListeningPort>>(Failure::current());
    }
}

// ---- systemd -------------------------------------------------------------------------------

ListenFDs ListenFDs::fromEnvironment(const Environment& environment, int start) {
    Environment env = environment ? environment : [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        return v ? std::optional<std::string>(v) : std::nullopt;
    };
    ListenFDs out;
    auto pid = env("LISTEN_PID");
    if (!pid || *pid != std::to_string(sys::ops.getpid())) return out;
    auto count = env("LISTEN_FDS");
    bool overflow = false;
    auto n = count ? parseInteger(*count, overflow) : std::nullopt;
    if (!n || *n <= 0 || *n > INT_MAX - start) return out;
    for (int i = 0; i < *n; ++i) out.descriptors.push_back(start + i);
    if (auto names = env("LISTEN_FDNAMES"); names && !names->empty()) {
        std::size_t from = 0;
        while (true) {
            std::size_t colon = names->find(':', from);
            out.names.push_back(names->substr(from, colon == std::string::npos ? std::string::npos : colon - from));
            if (colon == std::string::npos) break;
            from = colon + 1;
        }
        if (out.names.size() != out.descriptors.size()) out.names.clear();
    }
    return out;
}

std::map<std::string, int> ListenFDs::inheritedNamedDescriptors() const {
    std::map<std::string, int> out;
    if (names.size() != descriptors.size()) return out;
    for (std::size_t i = 0; i < names.size(); ++i) out.emplace(names[i], descriptors[i]);
    return out;
}

AdoptedStreamServerEndpoint::AdoptedStreamServerEndpoint(IReactorSocket& reactor, int fileno, int addressFamily)
    : reactor_(reactor), fileno_(fileno), addressFamily_(addressFamily) {}

Deferred<std::shared_ptr<IListeningPort>> AdoptedStreamServerEndpoint::listen(std::shared_ptr<Factory> factory) {
    if (used_) return fail<std::shared_ptr<IListeningPort>>(error::AlreadyListened());
    used_ = true;
    try {
        std::shared_ptr<IListeningPort> port = reactor_.adoptStreamPort(fileno_, addressFamily_, std::move(factory));
        sys::ops.close(fileno_);  // the port listens on its own duplicate
        return succeed(std::move(port));
    } catch (...) {
        return fail<std::shared_ptr<IListeningPort>>(Failure::current());
    }
}

// ---- the registry and descriptions → endpoints -----------------------------------------------

void registerServerParser(std::string prefix, ServerParser parser, PrefixMatch match) {
    serverParsers().add(std::move(prefix), std::move(parser), match);
}
bool unregisterServerParser(std::string_view prefix, PrefixMatch match) {
    return serverParsers().remove(prefix, match);
}
void registerClientParser(std::string prefix, ClientParser parser, PrefixMatch match) {
    clientParsers().add(std::move(prefix), std::move(parser), match);
}
bool unregisterClientParser(std::string_view prefix, PrefixMatch match) {
    return clientParsers().remove(prefix, match);
}
void registerDatagramServerParser(std::string prefix, DatagramServerParser parser, PrefixMatch match) {
    datagramServerParsers().add(std::move(prefix), std::move(parser), match);
}
bool unregisterDatagramServerParser(std::string_view prefix, PrefixMatch match) {
    return datagramServerParsers().remove(prefix, match);
}

namespace {

std::shared_ptr<IStreamServerEndpoint> parseServer(const ReactorRef& reactor, std::string_view description,
                                                   const ServerParseContext& context) {
    EndpointDescription d = parseEndpointDescription(description);
    auto parser = serverParsers().find(d.type());
    if (!parser) unknown(d.type());
    return parser(reactor, d, context);
}

}  // namespace

std::shared_ptr<IStreamServerEndpoint> serverFromString(const ReactorRef& reactor, std::string_view description) {
    return parseServer(reactor, description, ServerParseContext{});
}

std::shared_ptr<IStreamServerEndpoint> serverFromString(const ReactorRef& reactor, std::string_view description,
                                                        const ListenFDs& inherited) {
    return parseServer(reactor, description, ServerParseContext{&inherited});
}

std::shared_ptr<IStreamClientEndpoint> clientFromString(const ReactorRef& reactor, std::string_view description) {
    EndpointDescription d = parseEndpointDescription(description);
    auto parser = clientParsers().find(d.type());
    if (!parser) unknown(d.type());
    return parser(reactor, d);
}

std::shared_ptr<IDatagramServerEndpoint> datagramServerFromString(const ReactorRef& reactor,
                                                                  std::string_view description) {
    EndpointDescription d = parseEndpointDescription(description);
    auto parser = datagramServerParsers().find(d.type());
    if (!parser) unknown(d.type());
    return parser(reactor, d);
}

namespace {
// Twisted's OneShotFactory: hands out the one protocol, then holds nothing.
class OneShotFactory final : public Factory {
public:
    explicit OneShotFactory(std::shared_ptr<Protocol> given) : protocol_(std::move(given)) { noisy = false; }
    std::shared_ptr<Protocol> buildProtocol(const Address&) override {
        auto p = std::exchange(protocol_, nullptr);  // a second connection gets none (NoProtocol)
        if (p) p->factory = std::static_pointer_cast<Factory>(shared_from_this());
        return p;
    }
    std::string logPrefix() const override { return "OneShotFactory"; }

private:
    std::shared_ptr<Protocol> protocol_;
};
}  // namespace

Deferred<std::shared_ptr<Protocol>> connectProtocol(IStreamClientEndpoint& endpoint,
                                                    std::shared_ptr<Protocol> protocol) {
    if (!protocol) throw std::invalid_argument("connectProtocol: null protocol");
    return endpoint.connect(std::make_shared<OneShotFactory>(std::move(protocol)));
}

}  // namespace endpoints
}  // namespace weft
