// twisted.internet.utils: a ProcessProtocol per helper that collects what the
// child does and fires one Deferred (weft/internet/utils.hpp; process.md UTIL-*).
#include <weft/internet/utils.hpp>

#include <memory>
#include <utility>

#include <fmt/format.h>
#include <weft/internet/error.hpp>
#include <weft/internet/process.hpp>
#include <weft/text.hpp>

namespace weft::utils {

StderrOutput::StderrOutput(std::string bytes, Deferred<void> ended)
    : std::runtime_error("got stderr: " + quote(bytes)), processEnded(std::move(ended)), bytes_(std::move(bytes)) {}

StderrOutput::~StderrOutput() = default;

ProcessKilled::ProcessKilled(std::string out_, std::string err_, int signal_)
    : std::runtime_error(fmt::format("process killed by signal {}", signal_)), out(std::move(out_)),
      err(std::move(err_)), signal(signal_) {}

ProcessKilled::~ProcessKilled() = default;

namespace {

void append(std::string& to, Bytes data) { to.append(reinterpret_cast<const char*>(data.data()), data.size()); }

// The exit code and the signal a process end reason carries (CB-7); both
// empty for a reason of another kind.
struct Exit {
    std::optional<int> code;
    std::optional<int> signal;
};

Exit exitOf(const Failure& reason) {
    if (const auto* done = reason.get<error::ProcessDone>()) return {done->exitCode, done->signal};
    if (const auto* term = reason.get<error::ProcessTerminated>()) return {term->exitCode, term->signal};
    return {};
}

// Fires `d` unless it has fired already (a cancel() without canceller, DEF-20).
template <class T, class V>
void settle(Deferred<T>& d, V&& v) {
    if (!d.called()) d.callback(std::forward<V>(v));
}
template <class T>
void settleFailure(Deferred<T>& d, Failure f) {
    if (!d.called()) d.errback(std::move(f));
}

// Starts the child; whatever spawnProcess throws fails `d` instead (see the
// header). No protocol method has run when it throws (PROC-6).
template <class T>
Deferred<T> start(IReactorProcess& reactor, std::shared_ptr<ProcessProtocol> protocol, Deferred<T> d,
                  std::string executable, std::vector<std::string> args, std::optional<Environment> env,
                  std::optional<std::string> path) {
    args.insert(args.begin(), executable);
    ProcessOptions options;
    options.env = std::move(env);
    options.path = std::move(path);
    try {
        reactor.spawnProcess(std::move(protocol), executable, args, options);
    } catch (...) {
        settleFailure(d, Failure::current());
    }
    return d;
}

// getProcessOutput (Twisted _BackRelay).
class OutputGetter final : public ProcessProtocol {
public:
    explicit OutputGetter(bool errortoo) : errortoo_(errortoo) {}
    Deferred<std::string> deferred;

    void outReceived(Bytes data) override { append(out_, data); }

    void errReceived(Bytes data) override {
        if (errortoo_) {
            append(out_, data);  // UTIL-2: in arrival order
            return;
        }
        if (ended_) return;  // only the first bytes count
        ended_.emplace();
        settleFailure(deferred, Failure(StderrOutput(
                                    std::string(reinterpret_cast<const char*>(data.data()), data.size()), *ended_)));
        if (transport) transport->loseConnection();
    }

    void processEnded(const Failure& reason) override {
        if (ended_) {
            settleFailure(*ended_, reason);  // always the error path, even for ProcessDone (UTIL-2)
            ended_.reset();
            return;
        }
        settle(deferred, std::move(out_));
    }

private:
    std::string out_;
    std::optional<Deferred<void>> ended_;  // set by the first stderr bytes when !errortoo_
    bool errortoo_;
};

// getProcessValue (Twisted _ValueGetter).
class ValueGetter final : public ProcessProtocol {
public:
    Deferred<std::optional<int>> deferred;

    void processEnded(const Failure& reason) override {
        if (!reason.check<error::ProcessDone, error::ProcessTerminated>()) {
            settleFailure(deferred, reason);
            return;
        }
        settle(deferred, exitOf(reason).code);  // UTIL-3: nullopt after a signal
    }
};

// getProcessOutputAndValue (Twisted _EverythingGetter).
class EverythingGetter final : public ProcessProtocol {
public:
    explicit EverythingGetter(std::optional<std::string> stdinBytes) : stdin_(std::move(stdinBytes)) {}
    Deferred<ProcessOutputAndValue> deferred;

    void connectionMade() override {
        if (!stdin_) return;  // UTIL-4: stdin stays open
        transport->write(std::string_view(*stdin_));
        stdin_.reset();
        processTransport->closeStdin();  // flushes first (PROC-13)
    }

    void outReceived(Bytes data) override { append(out_, data); }
    void errReceived(Bytes data) override { append(err_, data); }

    void processEnded(const Failure& reason) override {
        Exit exit = exitOf(reason);
        if (exit.signal) {
            settleFailure(deferred, Failure(ProcessKilled(std::move(out_), std::move(err_), *exit.signal)));
        } else if (exit.code) {
            settle(deferred, ProcessOutputAndValue{std::move(out_), std::move(err_), *exit.code});
        } else {
            settleFailure(deferred, reason);  // REAP-5: the status was lost
        }
    }

private:
    std::optional<std::string> stdin_;
    std::string out_, err_;
};

}  // namespace

Deferred<std::string> getProcessOutput(IReactorProcess& reactor, std::string executable, std::vector<std::string> args,
                                       std::optional<Environment> env, std::optional<std::string> path, bool errortoo) {
    auto protocol = std::make_shared<OutputGetter>(errortoo);
    Deferred<std::string> d = protocol->deferred;
    return start(reactor, std::move(protocol), std::move(d), std::move(executable), std::move(args), std::move(env),
                 std::move(path));
}

Deferred<std::optional<int>> getProcessValue(IReactorProcess& reactor, std::string executable,
                                             std::vector<std::string> args, std::optional<Environment> env,
                                             std::optional<std::string> path) {
    auto protocol = std::make_shared<ValueGetter>();
    Deferred<std::optional<int>> d = protocol->deferred;
    return start(reactor, std::move(protocol), std::move(d), std::move(executable), std::move(args), std::move(env),
                 std::move(path));
}

Deferred<ProcessOutputAndValue> getProcessOutputAndValue(IReactorProcess& reactor, std::string executable,
                                                         std::vector<std::string> args, std::optional<Environment> env,
                                                         std::optional<std::string> path,
                                                         std::optional<std::string> stdinBytes) {
    auto protocol = std::make_shared<EverythingGetter>(std::move(stdinBytes));
    Deferred<ProcessOutputAndValue> d = protocol->deferred;
    return start(reactor, std::move(protocol), std::move(d), std::move(executable), std::move(args), std::move(env),
                 std::move(path));
}

}  // namespace weft::utils
