// weft/internet/utils.hpp — run a child program and get what it did as one
// Deferred (twisted.internet.utils). Spec: process.md UTIL-1 … UTIL-5.
//
//   getProcessOutput          its stdout (and, on request, its stderr)   UTIL-1, UTIL-2
//   getProcessValue           its exit code                              UTIL-3
//   getProcessOutputAndValue  stdout, stderr and exit code, stdin given  UTIL-4
//
// weft has no global reactor: each helper takes the IReactorProcess to spawn
// on (a weft::Reactor, or a testing::MemoryReactor whose
// FakeProcessTransport lets a test script the child). The child is started
// with argv = [executable] + args, through reactor.spawnProcess, so `env` and
// `path` mean exactly what ProcessOptions::env and ::path mean (UTIL-5,
// PROC-3 … PROC-5): by default an empty environment and the parent's working
// directory; std::nullopt for `env` gives a copy of the parent's environment.
//
// Better than Twisted (a choice, not a contract): whatever spawnProcess
// throws — std::system_error for a program that cannot start (PROC-6),
// std::invalid_argument for a malformed environment — is not thrown by the
// helper but becomes the returned Deferred's Failure, so a caller has one
// error path. (Twisted's helpers raise spawnProcess's OSError synchronously.)
//
// Cancelling a returned Deferred only makes it fail with
// defer::CancelledError; the child runs on and is reaped as usual (Twisted's
// helpers are not cancellable either).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/error.hpp>

namespace weft::utils {

/// getProcessOutput's failure when the child wrote to stderr and errortoo was
/// false (Twisted's _UnexpectedErrorOutput; UTIL-2). what() is
/// "got stderr: " followed by the bytes quoted with weft::quote (single
/// quotes, C escapes), e.g. "got stderr: 'oops\\n'"; bytes() has them raw.
///
/// `processEnded` fires when the child has ended — always on its error path,
/// with the end reason (error::ProcessDone for a clean exit,
/// error::ProcessTerminated otherwise). Like any Deferred that ends on a
/// Failure, it is logged as "Unhandled error in Deferred" when the last handle
/// goes away unhandled; add an errback to it if the end does not matter.
class WEFT_EXPORT StderrOutput : public std::runtime_error {
public:
    StderrOutput(std::string bytes, Deferred<void> processEnded);
    ~StderrOutput() override;

    /// The first chunk read from the child's fd 2, exactly as read (at least
    /// one byte; how much one read gets is up to the kernel, CB-2).
    const std::string& bytes() const noexcept { return bytes_; }

    /// Fails with the child's end reason once it has ended.
    Deferred<void> processEnded;

private:
    std::string bytes_;
};

/// Runs `executable` with argv [executable] + args and fires with everything
/// it wrote to stdout once it has ended (processEnded), whatever its exit
/// status (UTIL-1). stdin stays open until the child exits.
///
/// errortoo = false: the first bytes on stderr make the Deferred fail at once
/// with StderrOutput, and the helper then calls loseConnection() on the
/// process (closing its stdin, stdout and stderr; no signal is sent, PROC-16)
/// (UTIL-2). errortoo = true: stderr bytes join the result in the order they
/// were read, interleaved with stdout's.
WEFT_EXPORT Deferred<std::string> getProcessOutput(IReactorProcess& reactor, std::string executable,
                                                   std::vector<std::string> args = {},
                                                   std::optional<Environment> env = Environment{},
                                                   std::optional<std::string> path = std::nullopt,
                                                   bool errortoo = false);

/// Runs the child like getProcessOutput and fires with its exit code once it
/// has ended, or with std::nullopt when it has no exit code: a signal killed
/// it, or (REAP-5) its status was lost to the kernel (UTIL-3). Its output is
/// read and dropped; stderr is no error here. stdin stays open until it exits.
WEFT_EXPORT Deferred<std::optional<int>> getProcessValue(IReactorProcess& reactor, std::string executable,
                                                         std::vector<std::string> args = {},
                                                         std::optional<Environment> env = Environment{},
                                                         std::optional<std::string> path = std::nullopt);

/// What getProcessOutputAndValue fires with.
struct ProcessOutputAndValue {
    /// Everything the child wrote to stdout.
    std::string out;
    /// Everything the child wrote to stderr.
    std::string err;
    /// Its exit code.
    int code = 0;
    friend bool operator==(const ProcessOutputAndValue&, const ProcessOutputAndValue&) = default;
};

/// getProcessOutputAndValue's failure when a signal killed the child (Twisted
/// errbacks with the tuple (out, err, signalNumber); UTIL-4). what() is
/// "process killed by signal N".
class WEFT_EXPORT ProcessKilled : public std::runtime_error {
public:
    ProcessKilled(std::string out, std::string err, int signal);
    ~ProcessKilled() override;
    /// Everything the child wrote to stdout and stderr before it died.
    std::string out;
    std::string err;
    /// The signal that killed it.
    int signal;
};

/// Runs the child like getProcessOutput and fires, once it has ended, with
/// its stdout, its stderr and its exit code (UTIL-4). If a signal killed it
/// the Deferred fails with ProcessKilled; if its status was lost (REAP-5, no
/// exit code and no signal) it fails with that error::ProcessTerminated.
///
/// With stdinBytes, they are written to the child's fd 0 as it starts
/// (connectionMade) and stdin is closed after them, so a child reading to EOF
/// sees exactly those bytes; without, stdin stays open until the child exits.
WEFT_EXPORT Deferred<ProcessOutputAndValue> getProcessOutputAndValue(
    IReactorProcess& reactor, std::string executable, std::vector<std::string> args = {},
    std::optional<Environment> env = Environment{}, std::optional<std::string> path = std::nullopt,
    std::optional<std::string> stdinBytes = std::nullopt);

}  // namespace weft::utils
