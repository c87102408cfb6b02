// weft — the command-line tool that puts weft's transports to use.
//
//   weft echo ENDPOINT                     echo every byte back (tcp:, tcp6:, unix:, ssl:, systemd:, udp:, stdio:)
//   weft echo --lines ENDPOINT             echo line by line, refusing lines over --max-line bytes
//   weft portforward ENDPOINT --to CLIENT  proxy each connection to CLIENT (tcp:, unix:, tls:, ssl:)
//   weft connect CLIENT                    stdin and stdout joined to a connection, as nc does
//   weft demo                              timers, a worker thread and a child process (cat)
//
// SIGINT/SIGTERM stop the reactor through its shutdown triggers: listeners are
// closed, every connection is asked to close after flushing what it has
// buffered (bounded by --grace seconds), then the process exits 0.
#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <string>

#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/process.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/stream.hpp>
#include <weft/log.hpp>
#include <weft/protocols/basic.hpp>
#include <weft/protocols/portforward.hpp>
#include <weft/text.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "connect.hpp"
#include "exec.hpp"
#include "oneconnection.hpp"
#include "watch.hpp"
#include "tunnel.hpp"
#include "options.hpp"
#include "signals.hpp"

namespace {

// Descriptors 0, 1 and 2 that the caller left closed (`weft echo 2>&-`) are
// opened on /dev/null first thing, as OpenSSH's sanitise_stdfd does. Left
// closed, the first descriptors weft makes (the epoll instance, a listening
// socket, a client's connection) would take those numbers, and a log line,
// `weft connect`'s output or a child's standard error would land in them.
bool sanitizeStandardDescriptors() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        // Every lower number is open, so the lowest free one is fd itself.
        int null = ::open("/dev/null", O_RDWR);
        if (null == fd) continue;
        if (null >= 0) ::close(null);
        return false;
    }
    return true;
}

// The demo's child: `cat`, whose output (what the worker threads' lines
// became after a trip through its pipes) goes to our stdout.
class DemoChild final : public weft::ProcessProtocol {
public:
    void outReceived(weft::Bytes data) override {
        bytes_ += data.size();
        std::fwrite(data.data(), 1, data.size(), stdout);
        std::fflush(stdout);
    }
    void processEnded(const weft::Failure& why) override {
        weft::log::info("demo", "cat ended after echoing {} bytes: {}", bytes_, why.getErrorMessage());
        ended.callback();
    }
    /// Fires once the child has ended and its pipes are drained.
    weft::Deferred<void> ended;

private:
    std::size_t bytes_ = 0;
};

int runDemo(weft::Backend backend, double seconds) {
    auto reactor = weft::Reactor::create(backend);
    auto child = std::make_shared<DemoChild>();
    std::shared_ptr<weft::IProcessTransport> cat;
    try {
        weft::ProcessOptions options;
        options.env = std::nullopt;  // our PATH finds cat
        cat = reactor->spawnProcess(child, "cat", {"cat"}, options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft demo: cannot start cat: %s\n", weft::printable(e.what()).c_str());
        return 1;
    }
    if (seconds > 0) weft::log::info("weft", "demo on the {} reactor for {} s", weft::backendName(backend), seconds);
    else weft::log::info("weft", "demo on the {} reactor until Ctrl-C or SIGTERM", weft::backendName(backend));

    reactor->suggestThreadPoolSize(1);  // one worker: lines stay in order
    int n = 0;
    weft::Function<void()> tick;
    tick = [&] {
        ++n;
        // A pool thread makes the line; the reactor thread writes it to cat,
        // whose echo comes back through its stdout pipe.
        reactor->callInThread([&reactor = *reactor, &cat, n] {
            std::string line = "tick " + std::to_string(n) + " from a worker thread, through a child's pipes\n";
            reactor.callFromThread([&cat, line] { cat->asTransport().write(line); });
        });
        reactor->callLater(0.5, [&] { tick(); });
    };
    reactor->callWhenRunning([&] { tick(); });
    if (seconds > 0) reactor->callLater(seconds, [&] { reactor->stop(); });
    // Shutdown waits (a before trigger returning a Deferred) until cat has
    // echoed everything and ended, so nothing written is lost.
    reactor->addSystemEventTrigger("before", "shutdown", [&] {
        // Queued behind every line the worker still has to hand over.
        reactor->callInThread([&reactor = *reactor, &cat] { reactor.callFromThread([&cat] { cat->closeStdin(); }); });
        return child->ended;
    });
    reactor->run();
    for (auto& dc : reactor->getDelayedCalls()) dc.cancel();
    tool::logStopSignal(*reactor);
    return 0;
}

// Closes every stream connection of the reactor gracefully at shutdown. It
// looks them up in the reactor's reader and writer sets (every registered
// ITransport is one) instead of keeping a list, so an idle connection costs
// the tool nothing.
class Tracker {
public:
    /// Asks every open connection to close (flushing first) and fires once none
    /// is left or `grace` seconds have passed on `clock`.
    weft::Deferred<void> closeAll(weft::IReactorFDSet& descriptors, weft::IReactorTime& clock, double grace) {
        for (auto* c : connections(descriptors)) c->loseConnection();
        weft::Deferred<void> done;
        poll(descriptors, clock, done, clock.seconds() + grace);
        return done;
    }

private:
    // The transports among the registered descriptors, each once. Raw
    // pointers: the reactor holds them while they are registered. A
    // connection whose protocol is itself a transport (the TLS layer of an
    // ssl: listener) is closed through that layer, so it ends with a TLS
    // close_notify rather than a bare end of stream.
    static std::vector<weft::ITransport*> connections(weft::IReactorFDSet& descriptors) {
        std::vector<weft::ITransport*> out;
        auto add = [&](weft::IFileDescriptor* d) {
            auto* t = dynamic_cast<weft::ITransport*>(d);
            if (auto* stream = dynamic_cast<weft::StreamTransport*>(d); stream && stream->protocol())
                if (auto* layer = dynamic_cast<weft::ITransport*>(stream->protocol().get())) t = layer;
            if (t && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
        };
        for (auto& r : descriptors.getReaders()) add(r.get());
        for (auto& w : descriptors.getWriters()) add(w.get());  // writing, perhaps no longer reading
        return out;
    }
    void poll(weft::IReactorFDSet& descriptors, weft::IReactorTime& clock, weft::Deferred<void> done, double deadline) {
        std::size_t n = connections(descriptors).size();
        if (n == 0 || clock.seconds() >= deadline) {
            if (n) weft::log::warn("weft", "{} connection(s) still open after the grace period", n);
            done.callback();
            return;
        }
        clock.callLater(0.02,
                        [this, &descriptors, &clock, done, deadline] { poll(descriptors, clock, done, deadline); });
    }
};

// Echoes what it receives. The transport is its own streaming producer: while
// the peer does not read, its output buffer fills, reading pauses, and memory
// stays bounded. The end of the peer's stream closes after the flush.
class Echo final : public weft::Protocol, public weft::IHalfCloseableProtocol {
public:
    void connectionMade() override {
        // The transport produces what it echoes: reading pauses while the output is full.
        auto* consumer = transport->asConsumer();
        auto* producer = transport->asInputProducer();
        if (consumer && producer) {
            consumer->registerProducer(std::shared_ptr<weft::IPushProducer>(transport, producer), true);
        }
    }
    void dataReceived(weft::Bytes data) override { transport->write(data); }
    void readConnectionLost() override {
        // Asked again rather than kept: a pointer per idle connection (docs/architecture.md §6).
        if (auto* consumer = transport->asConsumer()) consumer->unregisterProducer();
        transport->loseConnection();
    }
    void writeConnectionLost() override {}
};

// Echoes line by line (weft echo --lines): a LineReceiver on "\n" whose every
// complete line goes back as it came ("\r\n" too: the "\r" stays part of the
// line, and --max-line does not count it). A longer line gets a short error
// line and closes the connection (the log names the reason). It is its
// transport's streaming producer, as Echo's transport is: a peer that does not
// read its answers stops being read from, and the buffers stay bounded.
class LineEcho final : public weft::basic::LineReceiver, public weft::IHalfCloseableProtocol {
public:
    explicit LineEcho(std::size_t maxLine) : maxLine_(maxLine) {
        delimiter = "\n";
        MAX_LENGTH = maxLine + 1;  // room for the "\r" of "\r\n"
    }
    void connectionMade() override {
        if (auto* consumer = transport->asConsumer()) {
            consumer->registerProducer(std::shared_ptr<weft::IPushProducer>(shared_from_this(), this), true);
            consumer_ = consumer;
        }
    }
    void lineReceived(std::string_view line) override {
        std::size_t length = line.size() - (line.ends_with('\r') ? 1 : 0);
        if (length > maxLine_) return refuse(length);
        sendLine(line);
    }
    void lineLengthExceeded(std::string_view line) override { refuse(line.size()); }
    void resumeProducing() override {
        LineReceiver::resumeProducing();
        if (ended_ && !paused()) finish();
    }
    // The peer's end of stream: answer what is left (an unterminated last
    // line comes back as is), then close. Paused, that waits for the resume.
    void readConnectionLost() override {
        ended_ = true;
        if (!paused()) finish();
    }
    void writeConnectionLost() override {}

private:
    void refuse(std::size_t length) {
        transport->write(fmt::format("error: line longer than {} bytes\n", maxLine_));
        // stopReceiving's close does not wait for this producer: it is stopped with the connection.
        stopReceiving(weft::Failure(weft::basic::LengthLimitExceededError("line", length, maxLine_)));
    }
    void finish() {
        if (!stopReason()) {
            // The unterminated last line is held to --max-line too (MAX_LENGTH
            // leaves it one more byte, for the "\r" of a "\r\n").
            std::string rest = clearLineBuffer();
            std::size_t length = rest.size() - (rest.ends_with('\r') ? 1 : 0);
            if (length > maxLine_) return refuse(length);
            transport->write(rest);
        }
        unregister();
        transport->loseConnection();
    }
    void unregister() {
        if (consumer_) std::exchange(consumer_, nullptr)->unregisterProducer();
    }

    std::size_t maxLine_;
    bool ended_ = false;
    weft::IConsumer* consumer_ = nullptr;  // the transport, while connected (it owns us)
};

template <class Base>
class TrackingFactory : public Base {
public:
    using Base::Base;
    Tracker tracker;
};

// Listens with `factory`; on shutdown stops listening and closes connections gracefully.
template <class F>
int serve(weft::Reactor& reactor, const std::string& description, const std::shared_ptr<F>& factory, double grace,
          const char* what) {
    std::shared_ptr<weft::IStreamServerEndpoint> endpoint;
    try {
        endpoint = weft::endpoints::serverFromString(reactor, description);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft %s: bad endpoint %s: %s\n", what, weft::quote(description).c_str(),
                     weft::printable(e.what()).c_str());
        return 2;
    }
    std::shared_ptr<weft::IListeningPort> port;
    int status = 0;
    endpoint->listen(factory).addBoth([&](weft::Result<std::shared_ptr<weft::IListeningPort>> r) {
        if (r.ok()) {
            port = r.value();
        } else {
            std::fprintf(stderr, "weft %s: %s\n", what, weft::printable(r.failure().getErrorMessage()).c_str());
            status = 1;
        }
    });
    if (!port) return status ? status : 1;
    weft::log::info("weft", "{} on {} ({} reactor); stop with Ctrl-C or SIGTERM", what,
                    weft::addressStr(port->getHost()), weft::backendName(reactor.backend()));
    tool::stopWhenTheOnlyConnectionEnds(reactor, *port);
    reactor.addSystemEventTrigger("before", "shutdown", [&]() -> weft::Deferred<void> {
        weft::log::info("weft", "shutting down: closing the listener and draining connections");
        auto closed = factory->tracker.closeAll(reactor, reactor, grace);
        weft::Deferred<void> all;
        port->stopListening().addBoth([closed, all](weft::Result<void>) mutable {
            closed.addBoth([all](weft::Result<void>) mutable { all.callback(); });
        });
        return all;
    });
    reactor.run();
    tool::logStopSignal(reactor);
    for (auto& dc : reactor.getDelayedCalls()) dc.cancel();
    return 0;
}

}  // namespace

namespace tool {
class EchoFactory final : public TrackingFactory<weft::Factory> {};
class ForwardFactory final : public TrackingFactory<weft::portforward::ProxyFactory> {
public:
    using TrackingFactory::TrackingFactory;
};
}  // namespace tool

namespace {

// Sends every datagram back to its sender.
class DatagramEcho final : public weft::DatagramProtocol {
public:
    void datagramReceived(weft::Bytes datagram, const weft::Address& from) override {
        transport->write(datagram, from);  // a full socket buffer drops it: UDP is lossy (UDP-14)
    }
};

// An endpoint description's type, in lower case ("udp", "stdio", …).
std::string endpointType(const std::string& description) {
    std::string type = description.substr(0, description.find(':'));
    for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return type;
}

bool isDatagramDescription(const std::string& description) { return endpointType(description) == "udp"; }

int serveDatagrams(weft::Reactor& reactor, const std::string& description) {
    std::shared_ptr<weft::endpoints::IDatagramServerEndpoint> endpoint;
    try {
        endpoint = weft::endpoints::datagramServerFromString(reactor, description);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft echo: bad endpoint %s: %s\n", weft::quote(description).c_str(),
                     weft::printable(e.what()).c_str());
        return 2;
    }
    auto protocol = std::make_shared<DatagramEcho>();
    protocol->noisy = false;
    std::shared_ptr<weft::IListeningPort> port;
    int status = 0;
    endpoint->listen(protocol).addBoth([&](weft::Result<std::shared_ptr<weft::IListeningPort>> r) {
        if (r.ok()) {
            port = r.value();
        } else {
            std::fprintf(stderr, "weft echo: %s\n", weft::printable(r.failure().getErrorMessage()).c_str());
            status = 1;
        }
    });
    if (!port) return status ? status : 1;
    weft::log::info("weft", "echo on {} ({} reactor); stop with Ctrl-C or SIGTERM", weft::addressStr(port->getHost()),
                    weft::backendName(reactor.backend()));
    reactor.addSystemEventTrigger("before", "shutdown",
                                  [&]() -> weft::Deferred<void> { return port->stopListening(); });
    reactor.run();
    tool::logStopSignal(reactor);
    if (auto* datagrams = dynamic_cast<weft::IDatagramTransport*>(port.get());
        datagrams && datagrams->droppedDatagrams())
        weft::log::info("weft", "{} datagram(s) dropped: the socket's send buffer was full",
                        datagrams->droppedDatagrams());
    return 0;
}

int runEcho(weft::Backend backend, const std::string& description, double grace, bool lines, std::size_t maxLine) {
    if (lines && isDatagramDescription(description)) {
        std::fprintf(stderr, "weft echo: --lines needs a stream endpoint (tcp:, unix:, ...), not %s\n",
                     weft::quote(description).c_str());
        return 2;
    }
    auto reactor = weft::Reactor::create(backend);
    if (isDatagramDescription(description)) return serveDatagrams(*reactor, description);
    auto factory = std::make_shared<tool::EchoFactory>();
    if (lines) {
        factory->protocol = [maxLine] {
            return std::static_pointer_cast<weft::Protocol>(std::make_shared<LineEcho>(maxLine));
        };
    } else {
        factory->protocol = [] { return std::static_pointer_cast<weft::Protocol>(std::make_shared<Echo>()); };
    }
    factory->noisy = false;
    return serve(*reactor, description, factory, grace, "echo");
}

int runPortforward(weft::Backend backend, const std::string& description, const std::string& to, double grace) {
    auto reactor = weft::Reactor::create(backend);
    std::shared_ptr<weft::IStreamClientEndpoint> target;
    try {
        target = weft::endpoints::clientFromString(*reactor, to);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft portforward: bad --to endpoint %s: %s%s\n", weft::quote(to).c_str(),
                     weft::printable(e.what()).c_str(), tool::clientTypesHint(e));
        return 2;
    }
    auto failed = std::make_shared<bool>(false);
    auto factory = std::make_shared<tool::ForwardFactory>(
        [target, failed, to](const std::shared_ptr<weft::portforward::ProxyClientFactory>& f) {
            target->connect(f).addBoth([f, failed, to](weft::Result<std::shared_ptr<weft::Protocol>> r) {
                if (r.ok()) return;
                // NoProtocol: the target answered after the client had gone, and the
                // proxy built nothing for it; the target was reached, nothing to warn of.
                if (!r.failure().check<weft::error::NoProtocol>()) {
                    weft::log::warn("portforward", "cannot connect to {}: {}", weft::quote(to),
                                    r.failure().getErrorMessage());
                    *failed = true;
                }
                f->clientConnectionFailed(nullptr, r.failure());
            });
        });
    factory->noisy = true;
    int status = serve(*reactor, description, factory, grace, "portforward");
    // stdio: forwards one connection, so its fate is weft's: a target that
    // could not be reached is a failure (a listener goes on serving others).
    if (status == 0 && *failed && endpointType(description) == "stdio") status = 1;
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    if (!sanitizeStandardDescriptors()) {
        std::fprintf(stderr, "weft: cannot open /dev/null for a closed standard descriptor\n");
        return 2;
    }
    CLI::App app{"weft: Twisted's event-driven I/O core in C++"};
    app.require_subcommand(1);
    // The global options (--reactor, --log-level) may come after the subcommand too.
    app.fallthrough();
    // CLI11's own errors quote the arguments too: keep each line free of raw control bytes.
    // The error itself is one line, whatever the user's words hold (a newline
    // is written as \n); CLI11's hint follows on its own line.
    app.failure_message([](const CLI::App* a, const CLI::Error& e) {
        std::string what = e.what();
        auto remaining = a->remaining();
        if (e.get_name() == "RequiredError" && a->get_subcommands().empty() && !remaining.empty()) {
            // A mistyped subcommand is named, not taken for a missing one.
            std::string known;
            for (const CLI::App* sub : a->get_subcommands({})) known += (known.empty() ? "" : ", ") + sub->get_name();
            what = "unknown subcommand " + weft::quote(remaining.front()) + " (one of: " + known + ")";
        }
        std::string text = CLI::FailureMessage::simple(a, e);
        std::string hint = text.starts_with(e.what()) ? text.substr(std::string_view(e.what()).size()) : "\n";
        // Named after the subcommand, as every other error of the tool is ("weft tunnel: …").
        std::string who = "weft";
        for (const CLI::App* sub = a; sub;) {
            auto parsed = sub->get_subcommands();
            sub = parsed.empty() ? nullptr : parsed.front();
            if (sub) who += " " + sub->get_name();
        }
        return who + ": " + weft::printable(what) + hint;
    });
    app.set_version_flag("--version", "weft " WEFT_TOOL_VERSION, "Print weft's version and exit");
    std::string reactorName = "epoll", level = "info";
    app.add_option("--reactor", reactorName, "Reactor backend: epoll, poll or select")
        ->check(CLI::IsMember({"epoll", "poll", "select"}));
    app.add_option("--log-level", level, "debug, info, warn, error or critical")
        ->check(CLI::IsMember({"debug", "info", "warn", "warning", "error", "critical"}));

    double seconds = 0;
    auto* demo = app.add_subcommand("demo", "Run the reactor demo: timers, a worker thread and a child process");
    demo->add_option("--seconds", seconds, "Stop after this many seconds (0: until SIGINT/SIGTERM)")
        ->check(tool::seconds(86400));

    std::string listenOn = "tcp:8000:interface=127.0.0.1", to;
    double grace = 5;
    auto* echo = app.add_subcommand("echo", "Echo every byte (or datagram) back to each client");
    echo->add_option("endpoint", listenOn,
                     "Server endpoint, e.g. tcp:8000, tcp:0:interface=127.0.0.1, tcp6:8000, unix:/tmp/echo.sock, "
                     "udp:8000:interface=127.0.0.1 (datagrams up to 8192 bytes; maxPacketSize=65535 for larger ones), "
                     "ssl:8443:privateKey=key.pem:certKey=cert.pem, or stdio: (standard input and output as the one "
                     "connection; weft exits when it ends)")
        ->capture_default_str();
    echo->add_option("--grace", grace, "Seconds to let connections flush on shutdown")
        ->check(tool::seconds(86400))
        ->capture_default_str();
    bool lines = false;
    std::size_t maxLine = 16384;
    auto* linesFlag = echo->add_flag(
        "--lines", lines,
        "Echo line by line (a LineReceiver): each line ending in \\n comes back as it came, \\r\\n included; "
        "an unterminated last line comes back when the client half-closes. Stream endpoints only");
    echo->add_option("--max-line", maxLine,
                     "With --lines: the longest line accepted, in bytes without its \\n or \\r\\n; a longer one "
                     "gets \"error: line longer than N bytes\" and the connection closes")
        ->check(tool::wholeNumber(1, std::uint64_t{1} << 30))
        ->needs(linesFlag)
        ->capture_default_str();
    echo->footer(
        "Examples: weft echo tcp:8000:interface=127.0.0.1  then  nc 127.0.0.1 8000\n"
        "          weft echo unix:/tmp/echo.sock           then  nc -U /tmp/echo.sock\n"
        "          weft echo udp:8000:interface=127.0.0.1  then  nc -u 127.0.0.1 8000\n"
        "          weft echo --lines --max-line 80 tcp:8000:interface=127.0.0.1\n"
        "          weft echo ssl:8443:interface=127.0.0.1:privateKey=key.pem:certKey=cert.pem\n"
        "                                                  then  openssl s_client -connect 127.0.0.1:8443\n"
        "ssl: reads its key and certificate (privateKey=, certKey=; one file may hold both, default\n"
        "server.pem) when it starts, with extraCertChain=, dhParameters=, sslmethod=, interface=, backlog=.\n"
        "An encrypted key is refused with its name (weft never prompts for a passphrase): decrypt it\n"
        "once with openssl pkey -in KEY -out PLAIN.");

    auto* forward = app.add_subcommand("portforward", "Forward each connection to another endpoint");
    forward
        ->add_option("endpoint", listenOn,
                     "Server endpoint to listen on (stdio: forwards standard input and output, then exits)")
        ->capture_default_str();
    forward
        ->add_option("--to", to,
                     "Client endpoint to forward to, e.g. tcp:localhost:8080, unix:/run/app.sock, "
                     "tls:example.org:443")
        ->required();
    forward->add_option("--grace", grace, "Seconds to let connections flush on shutdown")
        ->check(tool::seconds(86400))
        ->capture_default_str();
    forward->footer(
        "Examples: weft portforward tcp:8080:interface=127.0.0.1 --to tcp:example.org:80\n"
        "          weft portforward ssl:8443:privateKey=key.pem:certKey=cert.pem --to tcp:127.0.0.1:8080\n"
        "                (terminates TLS in front of a plain server)\n"
        "          weft portforward tcp:8080:interface=127.0.0.1 --to tls:example.org:443\n"
        "                (originates TLS: the server's certificate and name are verified against the\n"
        "                 system's CAs, or trustRoots=DIR)\n"
        "          weft portforward unix:/tmp/app.sock --to tcp:127.0.0.1:8080");

    tool::ConnectOptions connectOptions;
    auto* connect = tool::addConnectCommand(app, connectOptions);

    auto execCmd = tool::addExecCommand(app);
    tool::WatchOptions watchOptions;
    auto* watch = tool::addWatchCommand(app, watchOptions);
    auto tunnelCmd = tool::addTunnelCommand(app);

    for (int i = 1; i < argc && std::string_view(argv[i]) != "--"; ++i) execCmd->beforeDashes.emplace_back(argv[i]);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help is a ParseError that exits 0; every other is bad usage: exit 2,
        // as every error weft finds in an argument itself (CLI11's own codes, 104-109, would not be).
        return app.exit(e) == 0 ? 0 : 2;
    }
    tool::stopOnHangUp();
    weft::log::setLevel(*weft::log::parseLevel(level));
    auto backend = *weft::parseBackend(reactorName);
    if (*demo) return runDemo(backend, seconds);
    if (*echo) return runEcho(backend, listenOn, grace, lines, maxLine);
    if (*forward) return runPortforward(backend, listenOn, to, grace);
    if (*connect) return tool::runConnect(backend, connectOptions);
    if (execCmd->parsed()) return tool::runExec(backend, *execCmd);
    if (*watch) return tool::runWatch(backend, watchOptions);
    if (tunnelCmd->parsed()) return tool::runTunnel(backend, *tunnelCmd);
    return 0;
}
