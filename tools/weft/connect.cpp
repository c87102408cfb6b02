// weft connect: nc over any client endpoint, built from StandardIO.
//
//   stdin  ──StandardIO──▶ connection      end of stdin: the connection's write half closes
//   stdout ◀─StandardIO─── connection      the peer's end: stdout is flushed, then weft exits 0
//
// Each side is the other's producer, so neither buffers more than a socket's
// worth when the other is slow.
#include "connect.hpp"
#include "signals.hpp"

#include <cstdio>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <weft/internet/abort.hpp>
#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/stdio.hpp>
#include <weft/log.hpp>
#include <weft/text.hpp>

namespace tool {

namespace {

struct Session;

// The connection's side: what the peer sends goes to stdout.
class NetSide final : public weft::Protocol, public weft::IHalfCloseableProtocol {
public:
    explicit NetSide(std::shared_ptr<Session> s) : session(std::move(s)) {}
    void connectionMade() override;
    void dataReceived(weft::Bytes data) override;
    void readConnectionLost() override;
    void writeConnectionLost() override {}
    void connectionLost(const weft::Failure& reason) override;
    std::shared_ptr<Session> session;
};

// Standard I/O's side: what stdin gives goes to the peer.
class StdioSide final : public weft::Protocol, public weft::IHalfCloseableProtocol {
public:
    explicit StdioSide(std::shared_ptr<Session> s) : session(std::move(s)) {}
    void dataReceived(weft::Bytes data) override;
    void readConnectionLost() override;
    void writeConnectionLost() override;
    void connectionLost(const weft::Failure& reason) override;
    std::shared_ptr<Session> session;
};

struct Session {
    weft::Reactor& reactor;
    std::string endpoint;
    std::shared_ptr<weft::ITransport> net;
    std::shared_ptr<weft::stdio::StandardIO> io;
    bool netDone = false, ioDone = false;
    bool peerDone = false;      // the peer's end of stream arrived: a later reset is no failure
    bool stdoutFailed = false;  // said already; the abort that follows is ours
    bool connected = false;     // the endpoint's attempt succeeded (for tls:, at the handshake)
    bool stopping = false;
    int status = 0;
    weft::Function<void()> shutdownDone{};  // the before-shutdown trigger's, while it waits for the flush

    /// Stopped by a signal: the connection and standard output close as at any
    /// end, and what the shutdown does to them is no failure to report.
    bool signalled() const { return reactor.exitSignal().has_value(); }
    void maybeStop() {
        if (!(netDone && ioDone)) return;
        if (auto done = std::move(shutdownDone)) done();
        stop();
    }
    // Once: a failed attempt and the end of standard I/O may both ask.
    void stop() {
        if (stopping || !reactor.running() || signalled()) return;  // a signal stopped it already
        stopping = true;
        reactor.stop();
    }
    // Half-closes the connection (what nc -N does at the end of stdin).
    void closeNetWrite() {
        if (auto* half = dynamic_cast<weft::IHalfCloseableTransport*>(net.get())) half->loseWriteConnection();
        else net->loseConnection();
    }
};

void NetSide::connectionMade() {
    auto& s = *session;
    s.net = transport;
    s.io = weft::stdio::StandardIO::create(s.reactor, std::make_shared<StdioSide>(session));
    // Flow control both ways: a slow stdout pauses the socket, a slow peer pauses stdin.
    if (auto* input = transport->asInputProducer())
        s.io->registerProducer(std::shared_ptr<weft::IProducer>(transport, input), true);
    if (auto* consumer = transport->asConsumer())
        consumer->registerProducer(std::shared_ptr<weft::IProducer>(s.io, s.io->asInputProducer()), true);
}

void NetSide::dataReceived(weft::Bytes data) {
    if (session->io) session->io->write(data);
}

void NetSide::readConnectionLost() {
    // The peer is done sending: flush stdout and finish (nc exits here too).
    // Neither close waits for the other side's producer.
    session->peerDone = true;
    if (auto* consumer = transport->asConsumer()) consumer->unregisterProducer();
    if (session->io) {
        session->io->unregisterProducer();
        session->io->loseConnection();
    }
    transport->loseConnection();
}

void NetSide::connectionLost(const weft::Failure& reason) {
    auto& s = *session;
    s.netDone = true;
    if (!reason.check<weft::error::ConnectionDone>() && !s.peerDone && !s.stdoutFailed && !s.signalled()) {
        // Lost before the attempt succeeded (a TLS handshake that failed): the
        // attempt's failure says it, once, as "cannot connect".
        if (s.connected)
            weft::log::error("connect", "connection to {} lost: {}", weft::quote(s.endpoint), reason.getErrorMessage());
        s.status = 1;
    }
    if (s.io) {
        s.io->unregisterProducer();
        s.io->loseConnection();  // stdout flushed first; then the session ends
    } else {
        s.ioDone = true;
    }
    s.maybeStop();
    session.reset();
}

void StdioSide::dataReceived(weft::Bytes data) {
    if (session->net) session->net->write(data);
}

void StdioSide::readConnectionLost() {
    if (!session->net || session->netDone) return;
    if (auto* consumer = session->net->asConsumer()) consumer->unregisterProducer();  // stdin has ended
    session->closeNetWrite();
}

void StdioSide::writeConnectionLost() {
    // Standard output ended (its reader went away, the device is full):
    // nothing the peer sends can go anywhere. Drop the connection at once; a
    // close that waited to flush could wait for ever on a peer that is itself
    // blocked writing to us.
    auto& s = *session;
    if (const auto* failure = s.io ? s.io->writeFailure() : nullptr) {
        s.stdoutFailed = true;
        const auto* lost = failure->get<weft::error::ConnectionLost>();
        // A reader that went away (`| head`) ends the session quietly, as
        // SIGPIPE ends nc and as `weft watch` does; any other failure is
        // reported, by its errno where it has one.
        if ((!lost || lost->code() != std::errc::broken_pipe) && !s.signalled()) {
            std::string why = lost && lost->code() ? lost->code().message() : failure->getErrorMessage();
            std::fprintf(stderr, "weft connect: cannot write standard output: %s\n", weft::printable(why).c_str());
            s.status = 1;
        }
    }
    if (s.net && !s.netDone) weft::abortTransport(*s.net);  // what it still queues is dropped
}

void StdioSide::connectionLost(const weft::Failure&) {
    auto& s = *session;
    s.ioDone = true;
    if (s.net && !s.netDone) {
        if (auto* consumer = s.net->asConsumer()) consumer->unregisterProducer();
        s.net->loseConnection();
    }
    s.maybeStop();
    session.reset();
}

}  // namespace

CLI::App* addConnectCommand(CLI::App& app, ConnectOptions& options) {
    auto* cmd = app.add_subcommand("connect", "Join standard input and output to a connection, as nc does");
    cmd->add_option("endpoint", options.endpoint,
                    "Client endpoint, e.g. tcp:127.0.0.1:8000, tcp:host=localhost:port=8000, unix:/tmp/echo.sock, "
                    "tls:example.org:443, tls:127.0.0.1:8443:trustRoots=/etc/weft/ca")
        ->required();
    cmd->footer(
        "End of standard input half-closes the connection (shutdown of its write side); when the peer\n"
        "closes, everything it sent is written to standard output and weft exits 0. A connection that\n"
        "cannot be made, or is lost, exits 1 naming the endpoint; a bad endpoint exits 2. When standard\n"
        "output's reader goes away (| head) the connection is dropped and weft exits 0; standard output\n"
        "that fails otherwise (a full disk) drops it too, says why and exits 1. SIGINT, SIGTERM and a\n"
        "terminal's hang-up close the connection after it flushes (what the peer sent before goes to\n"
        "standard output; at most 2 s) and exit 0, as every subcommand stops.\n"
        "tls: verifies the server's certificate and name (the system's CAs, or the .pem files of\n"
        "trustRoots=DIR); a server that fails verification exits 1 with OpenSSL's reason (a TLS layer\n"
        "half-closes with close_notify, after its handshake).\n"
        "Examples: weft echo tcp:8000:interface=127.0.0.1 &  echo hi | weft connect tcp:127.0.0.1:8000\n"
        "          weft connect tls:example.org:443   (then type: GET / HTTP/1.0, and an empty line)\n"
        "          weft echo ssl:8443:interface=127.0.0.1:privateKey=key.pem:certKey=cert.pem &\n"
        "          echo hi | weft connect tls:localhost:8443:trustRoots=ca-dir");
    return cmd;
}

const char* clientTypesHint(const std::exception& e) {
    if (!dynamic_cast<const weft::endpoints::UnknownEndpointType*>(&e)) return "";
    return " (a client endpoint is one of tcp:, unix:, ssl:, tls: or serial:)";
}

int runConnect(weft::Backend backend, const ConnectOptions& options) {
    auto reactor = weft::Reactor::create(backend);
    std::shared_ptr<weft::IStreamClientEndpoint> endpoint;
    try {
        endpoint = weft::endpoints::clientFromString(*reactor, options.endpoint);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft connect: bad endpoint %s: %s%s\n", weft::quote(options.endpoint).c_str(),
                     weft::printable(e.what()).c_str(), clientTypesHint(e));
        return 2;
    }
    auto session = std::make_shared<Session>(Session{*reactor, options.endpoint, nullptr, nullptr});
    auto factory = std::make_shared<weft::Factory>();
    factory->noisy = false;
    factory->protocol = [session] {
        return std::static_pointer_cast<weft::Protocol>(std::make_shared<NetSide>(session));
    };
    reactor->callWhenRunning([&, session] {
        endpoint->connect(factory).addBoth([&, session](weft::Result<std::shared_ptr<weft::Protocol>> r) {
            if (r.ok()) {
                session->connected = true;
                return;
            }
            if (reactor->exitSignal()) {  // stopped while connecting: that is no failure to report
                session->stop();
                return;
            }
            std::fprintf(stderr, "weft connect: cannot connect to %s: %s\n", weft::quote(options.endpoint).c_str(),
                         weft::printable(r.failure().getErrorMessage()).c_str());
            session->status = 1;
            session->stop();
        });
    });
    // SIGINT, SIGTERM, SIGHUP: as every subcommand, close cleanly and exit 0.
    // The connection flushes what it queues and closes; standard output gets
    // what the peer sent before that; at most kGrace seconds are given.
    constexpr double kGrace = 2.0;
    reactor->addSystemEventTriggerAsync("before", "shutdown", [&, session](weft::Function<void()> done) {
        auto& s = *session;
        if (!s.signalled() || !s.net || (s.netDone && s.ioDone)) {
            done();
            return;
        }
        s.shutdownDone = std::move(done);
        reactor->callLater(kGrace, [session] {
            if (auto d = std::move(session->shutdownDone)) d();
        });
        if (!s.netDone) {
            if (auto* consumer = s.net->asConsumer()) consumer->unregisterProducer();
            s.net->loseConnection();
        }
    });
    reactor->run();
    tool::logStopSignal(*reactor);
    return session->status;
}

}  // namespace tool
