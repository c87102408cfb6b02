// weft exec (exec.hpp): a program per connection.
//
// The life of one connection (ExecConnection, with its Child):
//
//   accepted     PROGRAM starts with weft's environment plus the ucspi
//                variables of the connection, in a process group of its own
//                (a PTY child leads its own session) so that a signal reaches
//                whatever it started too. A spawn failure is logged and closes
//                that connection; the listener goes on.
//   running      peer → PROGRAM's stdin, PROGRAM's stdout → peer. Each side is
//                the other's streaming producer: a connection whose output
//                buffer is full pauses reading PROGRAM's stdout, a stdin pipe
//                that is full pauses reading the connection, so neither side
//                buffers more than a transport's bufferSize.
//   peer's EOF   closes PROGRAM's stdin (half-close: its output still flows).
//                A PTY has no stdin of its own to close: the terminal's EOF
//                character (^D) is typed instead, twice after an unfinished line.
//   PROGRAM ends processEnded (reaped, and its stdout read to the end): what it
//                wrote is flushed to the peer, then the connection is closed.
//   peer gone    (the connection is lost before PROGRAM ended: reset, or its
//                output refused; an EOF alone is the half-close above)
//                SIGTERM to PROGRAM's process group, SIGKILL after
//                --kill-grace seconds; its stdin is closed and its output
//                drained into nothing meanwhile. It is reaped all the same.
//
// At --max-children running programs the listener stops accepting (clients
// wait in the kernel's backlog) until one ends. SIGTERM/SIGINT to weft: the
// listener closes, every program is ended as if its peer had gone, and once
// all are reaped (and their connections flushed, for at most --kill-grace
// seconds) weft exits 0.
#include "exec.hpp"
#include "oneconnection.hpp"
#include "options.hpp"
#include "signals.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>
#include <variant>

#include <weft/internet/defer.hpp>
#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/process.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/internet/stream.hpp>
#include <weft/log.hpp>
#include <weft/text.hpp>

extern char** environ;  // NOLINT: POSIX declares it nowhere

namespace tool {

namespace {

using weft::Bytes;

// ---- the command line ------------------------------------------------------------------------

/// "ROWSxCOLS" (weft::parseWindowSize) into `out`; false for anything else.
bool parseWindow(const std::string& text, weft::WindowSize& out) {
    auto size = weft::parseWindowSize(text);
    if (size) out = *size;
    return size.has_value();
}
// The variables of the ucspi conventions (ucspi-tcp, ucspi-tcp6, ucspi-unix):
// the ones weft's own environment may carry (say weft runs under tcpserver)
// are dropped, so that a child never sees another connection's.
constexpr const char* kUcspiNames[] = {
    "PROTO",          "TCPLOCALIP",     "TCPLOCALPORT",   "TCPLOCALHOST",   "TCPREMOTEIP",    "TCPREMOTEPORT",
    "TCPREMOTEHOST",  "TCPREMOTEINFO",  "TCP6LOCALIP",    "TCP6LOCALPORT",  "TCP6LOCALHOST",  "TCP6REMOTEIP",
    "TCP6REMOTEPORT", "TCP6REMOTEHOST", "TCP6REMOTEINFO", "TCP6INTERFACE",  "UNIXLOCALPATH",  "UNIXLOCALPID",
    "UNIXLOCALUID",   "UNIXLOCALGID",   "UNIXREMOTEPID",  "UNIXREMOTEEUID", "UNIXREMOTEEGID",
};

/// weft's environment now, less the ucspi variables.
weft::Environment baseEnvironment() {
    weft::Environment env;
    for (char** e = environ; e && *e; ++e) {
        std::string_view entry = *e;
        auto eq = entry.find('=');
        if (eq == std::string_view::npos || eq == 0) continue;
        env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));  // the first one wins
    }
    for (const char* name : kUcspiNames) env.erase(name);
    return env;
}

/// `environment` plus the ucspi variables of the connection `transport` carries.
weft::Environment connectionEnvironment(weft::ITransport& transport, const weft::Environment& environment) {
    weft::Environment env = environment;
    auto inet = [](const weft::Address& a) -> std::optional<std::pair<std::string, std::uint16_t>> {
        if (auto* v4 = std::get_if<weft::IPv4Address>(&a)) return std::pair{v4->host, v4->port};
        if (auto* v6 = std::get_if<weft::IPv6Address>(&a)) return std::pair{v6->host, v6->port};
        return std::nullopt;
    };
    weft::Address host = transport.getHost(), peer = transport.getPeer();
    if (auto local = inet(host)) {
        env["PROTO"] = "TCP";
        env["TCPLOCALIP"] = local->first;
        env["TCPLOCALPORT"] = std::to_string(local->second);
        if (auto remote = inet(peer)) {
            env["TCPREMOTEIP"] = remote->first;
            env["TCPREMOTEPORT"] = std::to_string(remote->second);
        }
    } else if (auto* unixHost = std::get_if<weft::UNIXAddress>(&host)) {
        env["PROTO"] = "UNIX";
        env["UNIXLOCALPATH"] = unixHost->name;
        // ucspi-unix's credentials of the peer, as the kernel recorded them at connect().
        if (auto* stream = dynamic_cast<weft::StreamTransport*>(&transport); stream && stream->getHandle() >= 0) {
            ucred cred{};
            socklen_t length = sizeof cred;
            if (::getsockopt(stream->getHandle(), SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0 &&
                length == sizeof cred) {
                env["UNIXREMOTEPID"] = std::to_string(cred.pid);
                env["UNIXREMOTEEUID"] = std::to_string(cred.uid);
                env["UNIXREMOTEEGID"] = std::to_string(cred.gid);
            }
        }
    }
    return env;
}

/// The PATH a name without '/' is looked up on, as spawnProcess does.
std::string searchPath(const weft::Environment& env) {
    if (auto it = env.find("PATH"); it != env.end()) return it->second;
    char buffer[256];
    std::size_t n = ::confstr(_CS_PATH, buffer, sizeof buffer);
    return n > 0 && n <= sizeof buffer ? std::string(buffer, n - 1) : "/bin:/usr/bin";
}

/// Finds PROGRAM as the child's execve will: the file it names, or the first
/// executable regular file of that name on PATH. Sets `error` (one line,
/// user input quoted) and returns "" when there is none.
std::string resolveProgram(const std::string& name, const weft::Environment& env, std::string& error) {
    const std::string shown = weft::quote(name);
    if (name.empty()) {
        error = "the program name is empty";
        return {};
    }
    if (name.find('/') != std::string::npos) {
        struct stat st {};
        if (::stat(name.c_str(), &st) != 0) {
            int e = errno;
            if (e == ENOENT || e == ENOTDIR) {
                auto slash = name.rfind('/');
                std::string dir = slash == 0 ? std::string("/") : name.substr(0, slash);
                struct stat d {};
                if (::stat(dir.c_str(), &d) != 0 || !S_ISDIR(d.st_mode)) {
                    error = "program " + shown + ": the directory " + weft::quote(dir) + " does not exist";
                } else {
                    error = "program " + shown + " does not exist";
                }
            } else {
                error = "program " + shown + ": " + std::strerror(e);
            }
            return {};
        }
        if (S_ISDIR(st.st_mode)) {
            error = "program " + shown + " is a directory";
            return {};
        }
        if (!S_ISREG(st.st_mode)) {
            error = "program " + shown + " is not a regular file";
            return {};
        }
        if (::access(name.c_str(), X_OK) != 0) {
            error = "program " + shown + " is not executable";
            return {};
        }
        return name;
    }
    const std::string path = searchPath(env);
    std::string notExecutable;
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t end = path.find(':', start);
        if (end == std::string::npos) end = path.size();
        std::string dir = path.substr(start, end - start);
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
        struct stat st {};
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
            if (::access(candidate.c_str(), X_OK) == 0) return candidate;
            if (notExecutable.empty()) notExecutable = candidate;
        }
        start = end + 1;
    }
    if (!notExecutable.empty()) error = "program " + shown + " is not executable (" + weft::quote(notExecutable) + ")";
    else error = "program " + shown + " was not found on PATH " + weft::quote(path);
    return {};
}

/// "exited with status 3", "killed by signal 9 (Killed)", from a wait status.
std::string describeStatus(int status) {
    if (status < 0) return "ended (its status was lost)";
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char* name = ::strsignal(sig);
        return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : std::string()) +
               (WCOREDUMP(status) ? ", core dumped" : "");
    }
    return "ended with wait status " + std::to_string(status);
}

// ---- what every connection shares ---------------------------------------------------------------

struct Settings {
    std::string executable;         // PROGRAM found (a path)
    std::vector<std::string> argv;  // PROGRAM as given, then its arguments
    weft::Environment environment;  // weft's, less the ucspi variables
    bool pty = false;
    weft::WindowSize window;
    std::size_t maxChildren = 64;
    double killGrace = 5;
};

class Child;

/// The running children, the listener's pausing and the shutdown.
class Server {
public:
    Server(weft::Reactor& r, Settings s) : reactor(r), settings(std::move(s)) {}

    weft::Reactor& reactor;
    const Settings settings;
    std::shared_ptr<weft::IListeningPort> port;
    weft::StreamPort* streamPort = nullptr;  // port, when it can pause accepting

    void connectionOpened() { ++connections_; }
    void connectionClosed() {
        --connections_;
        maybeStopped();
    }
    void childStarted(std::shared_ptr<Child> child);
    void childEnded(const Child& child);

    /// The shutdown: stops listening, ends every child; fires once every
    /// child has ended and the listener is closed.
    weft::Deferred<void> stop();
    /// After the reactor stopped: lets go of what may still be held.
    void forget();

private:
    void maybeStopped();
    void finishStop();

    std::vector<std::shared_ptr<Child>> children_;  // running: spawned, processEnded not yet called
    std::size_t connections_ = 0;
    bool stopping_ = false, listenerClosed_ = false, stopped_ = false;
    weft::Deferred<void> stopDone_;
    std::optional<weft::DelayedCall> flushDeadline_, stopDeadline_;
};

/// A producer standing for another one (the process's output, or the
/// connection's input) without holding it: the owner of the target is held
/// weakly, so neither side keeps the other alive. stopProducing (its consumer
/// is gone) resumes the target instead of stopping it, so that side is never
/// left paused: what ends a connection or a child is the protocols' business.
class Relay final : public weft::IPushProducer {
public:
    Relay(std::weak_ptr<const void> owner, weft::IPushProducer* target) : owner_(std::move(owner)), target_(target) {}
    void pauseProducing() override {
        if (auto keep = owner_.lock()) target_->pauseProducing();
    }
    void resumeProducing() override {
        if (auto keep = owner_.lock()) target_->resumeProducing();
    }
    void stopProducing() override { resumeProducing(); }

private:
    std::weak_ptr<const void> owner_;
    weft::IPushProducer* target_;
};

class ExecConnection;

/// One child: its output goes to the connection; it ends it.
class Child final : public weft::ProcessProtocol {
public:
    Child(std::weak_ptr<Server> server, std::weak_ptr<ExecConnection> connection)
        : server_(std::move(server)), connection_(std::move(connection)) {}

    pid_t pid = 0;  // kept for the log once reaped

    void outReceived(Bytes data) override;
    void processExited(const weft::Failure&) override { exited_ = true; }
    void processEnded(const weft::Failure& reason) override;
    bool ended() const noexcept { return ended_; }
    /// SIGTERM now, SIGKILL after the kill grace (once).
    void terminate();

private:
    void sendSignal(int sig);
    void kill();

    std::weak_ptr<Server> server_;
    std::weak_ptr<ExecConnection> connection_;
    std::optional<weft::DelayedCall> killTimer_;
    bool terminating_ = false, ended_ = false;
    bool exited_ = false;  // reaped, while its pipes may still be held open (by a process it started)
};

/// One accepted connection: starts the child and joins the two.
class ExecConnection final : public weft::Protocol, public weft::IHalfCloseableProtocol {
public:
    explicit ExecConnection(std::weak_ptr<Server> server) : server_(std::move(server)) {}

    void connectionMade() override;
    void dataReceived(Bytes data) override;
    void readConnectionLost() override;
    void writeConnectionLost() override {}
    void connectionLost(const weft::Failure& reason) override;
    /// The child has ended and everything it wrote has been queued here.
    void childEnded();

private:
    /// The child's transport while it runs, else null.
    weft::ITransport* childTransport() const {
        return child_ && child_->processTransport ? &child_->processTransport->asTransport() : nullptr;
    }

    std::weak_ptr<Server> server_;
    std::shared_ptr<Child> child_;  // from the spawn until the child or the connection ends
    bool counted_ = false;          // told the server it is open
    bool pty_ = false;
    bool atLineStart_ = true;  // --pty: the peer's last byte ended a line (or there was none)
};

// ---- Server ------------------------------------------------------------------------------------------

void Server::childStarted(std::shared_ptr<Child> child) {
    children_.push_back(std::move(child));
    if (streamPort && children_.size() >= settings.maxChildren && !streamPort->acceptingPaused()) {
        streamPort->pauseAccepting();
        weft::log::info("exec", "{} program(s) running: not accepting until one ends", children_.size());
    }
}

void Server::childEnded(const Child& child) {
    auto it = std::find_if(children_.begin(), children_.end(), [&](auto& c) { return c.get() == &child; });
    if (it == children_.end()) return;
    auto keep = std::move(*it);
    children_.erase(it);
    if (!stopping_ && streamPort && streamPort->acceptingPaused() && children_.size() < settings.maxChildren) {
        try {
            streamPort->resumeAccepting();
            weft::log::debug("exec", "accepting again");
        } catch (const std::exception& e) {  // the poller refused the socket: still paused, try at the next end
            weft::log::error("exec", "cannot accept again: {}", weft::printable(e.what()));
        }
    }
    maybeStopped();
}

weft::Deferred<void> Server::stop() {
    stopping_ = true;
    weft::log::info("weft", "shutting down: closing the listener and ending {} program(s)", children_.size());
    if (port) {
        port->stopListening().addBoth([this](weft::Result<void>) {
            listenerClosed_ = true;
            maybeStopped();
        });
    } else {
        listenerClosed_ = true;
    }
    auto running = children_;
    for (auto& c : running) c->terminate();
    // A child stuck in the kernel even after SIGKILL must not hold weft forever.
    stopDeadline_ = reactor.callLater(2 * settings.killGrace + 5, [this] {
        stopDeadline_.reset();
        if (!children_.empty())
            weft::log::warn("weft", "{} program(s) still running: exiting anyway", children_.size());
        finishStop();
    });
    maybeStopped();
    return stopDone_;
}

void Server::maybeStopped() {
    if (!stopping_ || stopped_ || !listenerClosed_ || !children_.empty()) return;
    if (connections_ == 0) {
        finishStop();
        return;
    }
    // Every child has ended: its connection is flushing what it wrote. A peer
    // that does not read gets --kill-grace seconds.
    if (!flushDeadline_) {
        flushDeadline_ = reactor.callLater(settings.killGrace, [this] {
            flushDeadline_.reset();
            weft::log::warn("weft", "{} connection(s) still flushing: closing them", connections_);
            finishStop();
        });
    }
}

void Server::finishStop() {
    if (stopped_) return;
    stopped_ = true;
    for (auto* timer : {&flushDeadline_, &stopDeadline_}) {
        if (*timer && (*timer)->active()) (*timer)->cancel();
        timer->reset();
    }
    stopDone_.callback();
}

void Server::forget() {
    // A child still running (the stop deadline passed) holds its process and
    // the process holds it: let go of both.
    for (auto& c : children_) c->processTransport.reset();
    children_.clear();
    streamPort = nullptr;
    port.reset();
}

// ---- Child -----------------------------------------------------------------------------------------------

void Child::outReceived(Bytes data) {
    if (auto c = connection_.lock(); c && c->transport) c->transport->write(data);
}

void Child::processEnded(const weft::Failure&) {
    ended_ = true;
    if (killTimer_) {
        if (killTimer_->active()) killTimer_->cancel();
        killTimer_.reset();
    }
    int status = processTransport ? processTransport->status() : -1;
    weft::log::info("exec", "pid {} {}", pid, describeStatus(status));
    auto keep = std::static_pointer_cast<Child>(shared_from_this());
    if (auto server = server_.lock()) server->childEnded(*this);
    if (auto c = connection_.lock()) c->childEnded();
}

void Child::terminate() {
    if (terminating_ || ended_) return;
    terminating_ = true;
    sendSignal(SIGTERM);
    auto server = server_.lock();
    if (!server) return;
    auto weak = std::weak_ptr<Child>(std::static_pointer_cast<Child>(shared_from_this()));
    killTimer_ = server->reactor.callLater(server->settings.killGrace, [weak] {
        if (auto self = weak.lock()) self->kill();
    });
}

void Child::kill() {
    killTimer_.reset();
    if (ended_ || !processTransport) return;
    auto server = server_.lock();
    const double grace = server ? server->settings.killGrace : 0.0;
    if (exited_)
        weft::log::info("exec",
                        "pid {} has exited, but its output is still held open {} s after SIGTERM: SIGKILL to "
                        "its process group, and its pipes closed",
                        pid, grace);
    else weft::log::info("exec", "pid {} still running {} s after SIGTERM: SIGKILL", pid, grace);
    sendSignal(SIGKILL);
    // Whatever still holds its pipes (a descendant that left its process
    // group) must not keep it from ending: close weft's ends.
    auto& pipes = processTransport->asTransport();
    if (auto* consumer = pipes.asConsumer()) consumer->unregisterProducer();
    pipes.loseConnection();
}

void Child::sendSignal(int sig) {
    if (!processTransport) return;
    try {
        processTransport->signalProcessGroup(sig);  // the child and whatever it started
        return;
    } catch (const weft::error::ProcessExitedAlready&) {
        return;
    } catch (const std::exception& e) {
        weft::log::debug("exec", "pid {}: signalling its process group failed: {}", pid, weft::printable(e.what()));
    }
    try {
        processTransport->signalProcess(sig);
    } catch (const weft::error::ProcessExitedAlready&) {
    } catch (const std::exception& e) {
        weft::log::warn("exec", "pid {}: signal {} failed: {}", pid, sig, weft::printable(e.what()));
    }
}

// ---- ExecConnection -------------------------------------------------------------------------------------

void ExecConnection::connectionMade() {
    auto server = server_.lock();
    if (!server) {
        transport->loseConnection();
        return;
    }
    server->connectionOpened();
    counted_ = true;
    const Settings& s = server->settings;
    const std::string peer = weft::addressStr(transport->getPeer());

    weft::ProcessOptions options;
    options.env = connectionEnvironment(*transport, s.environment);
    if (s.pty) {
        options.usePTY = true;
        options.window = s.window;
    } else {
        options.childFDs = weft::ChildFDs{{0, "w"}, {1, "r"}, {2, 2}};  // stderr: weft's own
        options.newProcessGroup = true;
    }
    auto self = std::static_pointer_cast<ExecConnection>(shared_from_this());
    auto child = std::make_shared<Child>(server_, self);
    try {
        server->reactor.spawnProcess(child, s.executable, s.argv, options);
    } catch (const std::exception& e) {
        weft::log::error("exec", "cannot start {} for {}: {}", weft::quote(s.argv.front()), peer,
                         weft::printable(e.what()));
        transport->loseConnection();
        return;
    }
    pty_ = s.pty;
    child->pid = child->processTransport->pid().value_or(0);
    child_ = child;
    weft::log::info("exec", "pid {} for {}", child->pid, peer);
    server->childStarted(child);

    // Flow control both ways (see the file comment).
    weft::ITransport& process = child->processTransport->asTransport();
    std::shared_ptr<const void> processOwner = child->processTransport;
    if (auto* output = process.asInputProducer(); output && transport->asConsumer())
        transport->asConsumer()->registerProducer(std::make_shared<Relay>(processOwner, output), true);
    if (auto* input = transport->asInputProducer(); input && process.asConsumer())
        process.asConsumer()->registerProducer(std::make_shared<Relay>(transport, input), true);
}

void ExecConnection::dataReceived(Bytes data) {
    auto* process = childTransport();
    if (!process || data.empty()) return;  // no child (any more): nobody reads it
    process->write(data);
    if (pty_) {
        auto last = data.back();
        atLineStart_ = last == std::byte{'\n'} || last == std::byte{'\r'} || last == std::byte{0x04};
    }
}

void ExecConnection::readConnectionLost() {
    auto* process = childTransport();
    if (!process) return;
    if (auto* consumer = process->asConsumer()) consumer->unregisterProducer();  // nothing more to read
    if (pty_) {
        // ^D ends the terminal's input at a line start; after an unfinished
        // line the first one only hands that line over.
        process->write(std::string_view(atLineStart_ ? "\x04" : "\x04\x04"));
    } else {
        child_->processTransport->closeStdin();  // after what is queued
    }
}

void ExecConnection::connectionLost(const weft::Failure&) {
    if (child_ && !child_->ended()) {
        // The peer went away before the child ended.
        if (auto* process = childTransport()) {
            if (auto* consumer = process->asConsumer()) consumer->unregisterProducer();
        }
        if (child_->processTransport) child_->processTransport->closeStdin();
        child_->terminate();
    }
    child_.reset();
    if (counted_) {
        counted_ = false;
        if (auto server = server_.lock()) server->connectionClosed();
    }
}

void ExecConnection::childEnded() {
    child_.reset();
    if (!transport) return;
    if (auto* consumer = transport->asConsumer()) consumer->unregisterProducer();
    transport->loseConnection();  // after what the child wrote
}

}  // namespace

/// Builds an ExecConnection per accepted connection (its `protocol` maker is
/// set by runExec). A named class, so that the listener logs under its name.
class ExecFactory final : public weft::Factory {};

std::shared_ptr<ExecOptions> addExecCommand(CLI::App& app) {
    auto o = std::make_shared<ExecOptions>();
    auto* exec = app.add_subcommand("exec", "Run a program for each connection, joined to its stdin and stdout");
    o->command = exec;
    exec->add_option(
            "endpoint", o->endpoint,
            "Server endpoint: tcp:PORT[:interface=ADDRESS], tcp6:PORT, unix:PATH, "
            "ssl:PORT:privateKey=KEY:certKey=CERT, systemd:... or stdio: (weft's own standard input and output as "
            "the one connection; weft exits when it ends)")
        ->required();
    exec->add_option("program", o->program, "After `--`: the program (found on PATH without a '/') and its arguments");
    exec->add_flag("--pty", o->pty, "Run the program on a pseudo-terminal instead of pipes");
    exec->add_option("--window", o->window, "With --pty: the terminal's size in rows and columns")
        ->check(CLI::Validator(
            [](std::string& text) -> std::string {
                weft::WindowSize size;
                if (parseWindow(text, size)) return {};
                return "expected ROWSxCOLS (each 1 to 65535), e.g. 24x80, not " + weft::quote(text);
            },
            "ROWSxCOLS"))
        ->capture_default_str();
    exec->add_option("--max-children", o->maxChildren,
                     "Programs running at once; at this many, new connections wait in the listen backlog")
        ->check(tool::wholeNumber(1, 1000000))
        ->capture_default_str();
    exec->add_option("--kill-grace", o->killGrace, "Seconds between SIGTERM and SIGKILL when a program must end")
        ->check(tool::seconds(86400))
        ->capture_default_str();
    // `--` is how the program is told from weft's own options; CLI11 leaves it
    // among the extras, where runExec looks for it.
    exec->allow_extras();
    exec->footer(
        "weft exec ENDPOINT [OPTIONS] -- PROGRAM [ARG...]\n"
        "\n"
        "For each connection accepted on ENDPOINT, PROGRAM starts with the connection as its standard input\n"
        "and output; its standard error is weft's. PROGRAM is checked before weft listens.\n"
        "  Environment: weft's, plus the ucspi-tcp variables PROTO=TCP, TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP\n"
        "    and TCPLOCALPORT (tcp6: the same, with IPv6 addresses); over UNIX sockets PROTO=UNIX,\n"
        "    UNIXLOCALPATH, UNIXREMOTEPID, UNIXREMOTEEUID and UNIXREMOTEEGID.\n"
        "  The peer's EOF closes PROGRAM's stdin while its output goes on. With --pty there is no stdin of\n"
        "    its own to close: weft types the terminal's EOF character, Ctrl-D (twice after an unfinished\n"
        "    line), which a program in raw mode reads as a byte. A PTY also echoes what the peer sends.\n"
        "  When PROGRAM exits and its output has been read to the end, the output is flushed to the peer\n"
        "    and the connection closed.\n"
        "  When the peer goes away first, PROGRAM (it runs in a process group of its own, with whatever\n"
        "    it starts) gets SIGTERM, then SIGKILL after --kill-grace seconds, and is reaped. A peer that\n"
        "    only ended its stream (EOF) is still there; it has gone when the connection is reset or\n"
        "    refuses PROGRAM's output.\n"
        "  With --max-children programs running, weft stops accepting until one ends.\n"
        "  SIGTERM, SIGINT or SIGHUP to weft: the listener closes, every program ends as above, weft exits 0.\n"
        "Exit status: 0 after SIGTERM/SIGINT/SIGHUP; 2 for bad arguments or a PROGRAM that cannot run; 1 when\n"
        "ENDPOINT cannot listen.\n"
        "Examples: weft exec tcp:8000:interface=127.0.0.1 -- /bin/cat\n"
        "          weft exec unix:/tmp/bc.sock -- bc -q        then  echo '2^64' | nc -N -U /tmp/bc.sock\n"
        "          weft exec tcp:2323:interface=127.0.0.1 --pty --window 40x100 -- /bin/sh\n"
        "                                                then  socat -,rawer tcp:127.0.0.1:2323\n"
        "          weft exec ssl:8443:interface=127.0.0.1:privateKey=key.pem:certKey=cert.pem -- /bin/cat\n"
        "                                                then  openssl s_client -connect 127.0.0.1:8443\n"
        "  Over ssl: PROGRAM talks plaintext: weft runs TLS; the TCP variables describe the TCP connection.");
    return o;
}

int runExec(weft::Backend backend, const ExecOptions& o) {
    auto fail = [](const std::string& message) {
        std::fprintf(stderr, "weft exec: %s\n", weft::printable(message).c_str());
        return 2;
    };
    // What CLI11 left over: `--` (expected) and anything it did not know.
    bool dashes = false;
    std::vector<std::string> unknown;
    for (const auto& extra : o.command->remaining()) {
        if (extra == "--" && !dashes) dashes = true;
        else unknown.push_back(extra);
    }
    if (!dashes) return fail("missing `--` before the program: weft exec ENDPOINT [OPTIONS] -- PROGRAM [ARG...]");
    if (std::find(o.beforeDashes.begin(), o.beforeDashes.end(), o.endpoint) == o.beforeDashes.end())
        return fail("missing ENDPOINT before `--`: weft exec ENDPOINT [OPTIONS] -- PROGRAM [ARG...]");
    if (!unknown.empty()) return fail("unexpected argument " + weft::quote(unknown.front()) + " before `--`");
    if (o.program.empty()) return fail("no program after `--`");

    Settings settings;
    if (!parseWindow(o.window, settings.window)) return fail("bad --window " + weft::quote(o.window));
    settings.pty = o.pty;
    settings.maxChildren = static_cast<std::size_t>(o.maxChildren);
    settings.killGrace = o.killGrace;
    settings.argv = o.program;
    settings.environment = baseEnvironment();
    std::string problem;
    settings.executable = resolveProgram(o.program.front(), settings.environment, problem);
    if (settings.executable.empty()) return fail(problem);

    auto reactor = weft::Reactor::create(backend);
    std::shared_ptr<weft::IStreamServerEndpoint> endpoint;
    try {
        endpoint = weft::endpoints::serverFromString(*reactor, o.endpoint);
    } catch (const std::exception& e) {
        return fail("bad endpoint " + weft::quote(o.endpoint) + ": " + e.what());
    }
    auto server = std::make_shared<Server>(*reactor, std::move(settings));
    auto factory = std::make_shared<ExecFactory>();
    factory->protocol = [weak = std::weak_ptr<Server>(server)] {
        return std::static_pointer_cast<weft::Protocol>(std::make_shared<ExecConnection>(weak));
    };
    factory->noisy = false;
    int status = 0;
    endpoint->listen(factory).addBoth([&](weft::Result<std::shared_ptr<weft::IListeningPort>> r) {
        if (r.ok()) {
            server->port = r.value();
        } else {
            std::fprintf(stderr, "weft exec: %s\n", weft::printable(r.failure().getErrorMessage()).c_str());
            status = 1;
        }
    });
    if (!server->port) {
        if (!status) std::fprintf(stderr, "weft exec: %s did not start listening\n", weft::quote(o.endpoint).c_str());
        return 1;
    }
    server->streamPort = dynamic_cast<weft::StreamPort*>(server->port.get());
    // A stdio: "listener" has its one connection already: nothing to pause.
    if (!server->streamPort && !dynamic_cast<weft::stdio::StandardIOPort*>(server->port.get()))
        weft::log::warn("exec", "this listener cannot pause: --max-children is not enforced");
    weft::log::info("weft", "exec on {} ({} reactor) runs {} per connection; stop with Ctrl-C or SIGTERM",
                    weft::addressStr(server->port->getHost()), weft::backendName(reactor->backend()),
                    weft::quote(server->settings.argv.front()));
    stopWhenTheOnlyConnectionEnds(*reactor, *server->port);
    reactor->addSystemEventTrigger("before", "shutdown", [weak = std::weak_ptr<Server>(server)] {
        if (auto s = weak.lock()) return s->stop();
        return weft::succeed();
    });
    reactor->run();
    tool::logStopSignal(*reactor);
    for (auto& dc : reactor->getDelayedCalls()) dc.cancel();
    server->forget();
    return 0;
}

}  // namespace tool
