// process.md UTIL-1 … UTIL-5: getProcessOutput, getProcessValue and
// getProcessOutputAndValue (weft/internet/utils.hpp) on every backend, with
// real children (/bin/sh -c and the helper tests/helpers/weft_child.cpp), then
// the same contracts on a testing::MemoryReactor whose scripted child makes
// the order of events exact.
#include <signal.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <weft/internet/error.hpp>
#include <weft/internet/testing.hpp>
#include <weft/internet/utils.hpp>
#include <weft/testing/defer.hpp>

#include "support/processhelpers.hpp"
#include "support/reactortest.hpp"

using namespace weft;
using namespace weft::test;
using weft::testing::assertNoResult;
using weft::testing::failureResultOf;
using weft::testing::MemoryReactor;
using weft::testing::successResultOf;
namespace err = weft::error;
namespace fs = std::filesystem;

namespace {

class UtilsTest : public ReactorTest {
protected:
    /// Runs the reactor until d has fired; false after `seconds`.
    template <class T>
    bool fired(const Deferred<T>& d, double seconds = 10) {
        return spinUntil([&] { return d.called(); }, seconds);
    }
    /// Runs the reactor for `seconds` whatever happens.
    void spinFor(double seconds) {
        double end = reactor().seconds() + seconds;
        while (reactor().seconds() < end) reactor().iterate(0.01);
    }
    /// weft_child's argv verb output for `argv`.
    static std::string argvReport(const std::vector<std::string>& argv) {
        std::string out;
        for (const auto& a : argv) out += std::to_string(a.size()) + ":" + a + "\n";
        return out;
    }
};

INSTANTIATE_TEST_SUITE_P(Backends, UtilsTest, allBackends(), backendParamName);

// ---- UTIL-1: getProcessOutput ------------------------------------------------------------

TEST_P(UtilsTest, UTIL_1_firesWithAllStdoutOnceTheProcessHasEnded) {
    // 300 000 bytes in many reads, then stdout closes while the child lives on:
    // the Deferred waits for the end of the process, not of its stdout.
    auto d = utils::getProcessOutput(reactor(), childHelper(),
                                     {"write", "1", "300000", "--", "close", "1", "--", "sleep", "0.8"});
    spinFor(0.1);
    assertNoResult(d);
    ASSERT_TRUE(fired(d));
    std::string out = successResultOf(d);
    EXPECT_EQ(out.size(), 300000u);
    EXPECT_TRUE(out == patternBytes(0, 300000)) << "the bytes differ";
}

TEST_P(UtilsTest, UTIL_1_argvIsTheExecutableFollowedByArgs) {
    std::vector<std::string> args = {"argv", "--", "echo", "1", "a b", "--", "echo", "1", "tab\there \"q\""};
    auto d = utils::getProcessOutput(reactor(), childHelper(), args);
    ASSERT_TRUE(fired(d));
    std::vector<std::string> argv = args;
    argv.insert(argv.begin(), childHelper());
    EXPECT_EQ(successResultOf(d), argvReport(argv) + "a b\ntab\there \"q\"\n");
}

TEST_P(UtilsTest, UTIL_1_firesWithStdoutWhateverTheExitStatus) {
    // A bare name is looked up like spawnProcess does (PROC-5); the exit status is ignored.
    auto d = utils::getProcessOutput(reactor(), "sh", {"-c", "echo partial; exit 3"});
    ASSERT_TRUE(fired(d));
    EXPECT_EQ(successResultOf(d), "partial\n");
    auto killed = utils::getProcessOutput(reactor(), "/bin/sh", {"-c", "echo last words; kill -9 $$"});
    ASSERT_TRUE(fired(killed));
    EXPECT_EQ(successResultOf(killed), "last words\n");
}

// ---- UTIL-2: stderr ------------------------------------------------------------------------

TEST_P(UtilsTest, UTIL_2_firstStderrBytesFailAtOnceAndTheConnectionIsLost) {
    // The child blocks until its stdin closes: only the helper's
    // loseConnection() lets it go on (and die writing to its closed stdout).
    auto d = utils::getProcessOutput(reactor(), childHelper(),
                                     {"fdwrite", "1", "before", "--", "fdwrite", "2", "oops", "--", "waitclose", "0",
                                      "--", "fdwrite", "1", "after"});
    ASSERT_TRUE(fired(d));
    Failure f = failureResultOf<utils::StderrOutput>(d);
    const auto* e = f.get<utils::StderrOutput>();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->bytes(), "oops\n");
    EXPECT_STREQ(e->what(), "got stderr: 'oops\\n'");
    EXPECT_TRUE(f.check<std::runtime_error>());
    Deferred<void> ended = e->processEnded;
    assertNoResult(ended);  // the Deferred failed before the child ended
    ASSERT_TRUE(fired(ended)) << "stdin was never closed";
    failureResultOf<err::ProcessDone, err::ProcessTerminated>(ended);
}

TEST_P(UtilsTest, UTIL_2_processEndedFailsEvenWithProcessDone) {
    auto d = utils::getProcessOutput(reactor(), "/bin/sh", {"-c", "echo fine; echo 'warning: x' >&2; exit 0"});
    ASSERT_TRUE(fired(d));
    Failure f = failureResultOf<utils::StderrOutput>(d);
    EXPECT_THAT(f.getErrorMessage(), ::testing::StartsWith("got stderr: 'warning"));
    Deferred<void> ended = f.get<utils::StderrOutput>()->processEnded;
    ASSERT_TRUE(fired(ended));
    Failure why = failureResultOf<err::ProcessDone>(ended);
    EXPECT_EQ(why.get<err::ProcessDone>()->exitCode, 0);
}

TEST_P(UtilsTest, UTIL_2_errortooMixesStderrIntoTheResultInArrivalOrder) {
    // The pauses make the arrival order the writing order.
    std::vector<std::string> steps = {"fdwrite", "1",  "a",     "--",    "sleep", "0.2",     "--",      "fdwrite",
                                      "2",       "b",  "--",    "sleep", "0.2",   "--",      "fdwrite", "1",
                                      "c",       "--", "sleep", "0.2",   "--",    "fdwrite", "2",       "d"};
    auto d = utils::getProcessOutput(reactor(), childHelper(), steps, Environment{}, std::nullopt, true);
    ASSERT_TRUE(fired(d));
    EXPECT_EQ(successResultOf(d), "a\nb\nc\nd\n");

    // The same child without errortoo: stdout before stderr changes nothing.
    auto strict = utils::getProcessOutput(reactor(), childHelper(), steps);
    ASSERT_TRUE(fired(strict));
    Failure f = failureResultOf<utils::StderrOutput>(strict);
    EXPECT_EQ(f.get<utils::StderrOutput>()->bytes(), "b\n");
    Deferred<void> ended = f.get<utils::StderrOutput>()->processEnded;
    ASSERT_TRUE(fired(ended));
    failureResultOf<err::ProcessDone, err::ProcessTerminated>(ended);
}

// ---- UTIL-3: getProcessValue -------------------------------------------------------------

TEST_P(UtilsTest, UTIL_3_firesWithTheExitCode) {
    auto seven = utils::getProcessValue(reactor(), "/bin/sh", {"-c", "exit 7"});
    auto zero = utils::getProcessValue(reactor(), childHelper(), {"exit", "0"});
    // Output, stderr included, is no error here.
    auto noisy = utils::getProcessValue(reactor(), childHelper(),
                                        {"write", "1", "100000", "--", "fdwrite", "2", "noise", "--", "exit", "3"});
    ASSERT_TRUE(fired(seven));
    ASSERT_TRUE(fired(zero));
    ASSERT_TRUE(fired(noisy));
    EXPECT_EQ(successResultOf(seven), std::optional<int>(7));
    EXPECT_EQ(successResultOf(zero), std::optional<int>(0));
    EXPECT_EQ(successResultOf(noisy), std::optional<int>(3));
}

TEST_P(UtilsTest, UTIL_3_firesWithNulloptWhenASignalKilledTheChild) {
    auto nine = utils::getProcessValue(reactor(), "/bin/sh", {"-c", "kill -9 $$"});
    auto term = utils::getProcessValue(reactor(), childHelper(), {"kill", "TERM"});
    ASSERT_TRUE(fired(nine));
    ASSERT_TRUE(fired(term));
    EXPECT_EQ(successResultOf(nine), std::nullopt);
    EXPECT_EQ(successResultOf(term), std::nullopt);
}

// ---- UTIL-4: getProcessOutputAndValue ------------------------------------------------

TEST_P(UtilsTest, UTIL_4_firesWithStdoutStderrAndExitCode) {
    auto d = utils::getProcessOutputAndValue(reactor(), "/bin/sh",
                                             {"-c", "echo out; echo err >&2; echo more; echo again >&2; exit 3"});
    auto clean = utils::getProcessOutputAndValue(reactor(), childHelper(), {"echo", "1", "only"});
    ASSERT_TRUE(fired(d));
    ASSERT_TRUE(fired(clean));
    EXPECT_EQ(successResultOf(d), (utils::ProcessOutputAndValue{"out\nmore\n", "err\nagain\n", 3}));
    EXPECT_EQ(successResultOf(clean), (utils::ProcessOutputAndValue{"only\n", "", 0}));
}

TEST_P(UtilsTest, UTIL_4_aSignalFailsWithProcessKilledCarryingOutputAndSignal) {
    auto d = utils::getProcessOutputAndValue(reactor(), "/bin/sh", {"-c", "echo out; echo err >&2; kill -9 $$"});
    ASSERT_TRUE(fired(d));
    Failure f = failureResultOf<utils::ProcessKilled>(d);
    const auto* k = f.get<utils::ProcessKilled>();
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->out, "out\n");
    EXPECT_EQ(k->err, "err\n");
    EXPECT_EQ(k->signal, SIGKILL);
    EXPECT_STREQ(k->what(), "process killed by signal 9");
}

TEST_P(UtilsTest, UTIL_4_stdinBytesAreWrittenThenStdinIsClosed) {
    // Children that read to EOF: they end only if stdin is closed after the bytes.
    std::string big = patternBytes(0, 300000);
    auto hashed =
        utils::getProcessOutputAndValue(reactor(), childHelper(), {"fdread", "0"}, Environment{}, std::nullopt, big);
    auto echoed = utils::getProcessOutputAndValue(reactor(), childHelper(), {"cat"}, Environment{}, std::nullopt,
                                                  std::string("hello\nworld"));
    auto empty =
        utils::getProcessOutputAndValue(reactor(), childHelper(), {"cat"}, Environment{}, std::nullopt, std::string());
    ASSERT_TRUE(fired(hashed));
    ASSERT_TRUE(fired(echoed));
    ASSERT_TRUE(fired(empty));
    EXPECT_EQ(successResultOf(hashed), (utils::ProcessOutputAndValue{"0:300000:" + fnv1a(big) + "\n", "", 0}));
    EXPECT_EQ(successResultOf(echoed), (utils::ProcessOutputAndValue{"hello\nworld", "", 0}));
    EXPECT_EQ(successResultOf(empty), (utils::ProcessOutputAndValue{"", "", 0}));
}

TEST_P(UtilsTest, UTIL_4_withoutStdinBytesStdinStaysOpenUntilTheChildExits) {
    // `timeout` ends a cat still waiting for input with status 124; a cat that
    // sees EOF ends with 0. The other two helpers leave stdin open too.
    const std::string script = "timeout 0.3 cat; echo status=$?";
    auto open = utils::getProcessOutputAndValue(reactor(), "/bin/sh", {"-c", script});
    auto given = utils::getProcessOutputAndValue(reactor(), "/bin/sh", {"-c", script}, Environment{}, std::nullopt,
                                                 std::string("x"));
    auto output = utils::getProcessOutput(reactor(), "/bin/sh", {"-c", script});
    auto value = utils::getProcessValue(reactor(), "/bin/sh", {"-c", "timeout 0.3 cat; exit $?"});
    ASSERT_TRUE(fired(open));
    ASSERT_TRUE(fired(given));
    ASSERT_TRUE(fired(output));
    ASSERT_TRUE(fired(value));
    EXPECT_EQ(successResultOf(open), (utils::ProcessOutputAndValue{"status=124\n", "", 0}));
    EXPECT_EQ(successResultOf(given), (utils::ProcessOutputAndValue{"xstatus=0\n", "", 0}));
    EXPECT_EQ(successResultOf(output), "status=124\n");
    EXPECT_EQ(successResultOf(value), std::optional<int>(124));
}

// ---- UTIL-5: path and env ------------------------------------------------------------------

TEST_P(UtilsTest, UTIL_5_pathSetsTheWorkingDirectoryOfAllThree) {
    TempDir dir;
    const std::string where = fs::canonical(dir.path).string();
    const std::string here = fs::current_path().string();
    const std::vector<std::string> isWhere = {"-c", "[ \"$(pwd -P)\" = \"$1\" ]", "sh", where};
    auto output = utils::getProcessOutput(reactor(), childHelper(), {"cwd"}, Environment{}, where);
    auto value = utils::getProcessValue(reactor(), "/bin/sh", isWhere, Environment{}, where);
    auto both = utils::getProcessOutputAndValue(reactor(), childHelper(), {"cwd"}, Environment{}, where);
    // Without a path: the parent's working directory.
    auto defaultOutput = utils::getProcessOutput(reactor(), childHelper(), {"cwd"});
    auto defaultValue = utils::getProcessValue(reactor(), "/bin/sh", isWhere);
    auto defaultBoth = utils::getProcessOutputAndValue(reactor(), childHelper(), {"cwd"});
    for (bool ok :
         {fired(output), fired(value), fired(both), fired(defaultOutput), fired(defaultValue), fired(defaultBoth)})
        ASSERT_TRUE(ok);
    EXPECT_EQ(successResultOf(output), where + "\n");
    EXPECT_EQ(successResultOf(value), std::optional<int>(0));
    EXPECT_EQ(successResultOf(both), (utils::ProcessOutputAndValue{where + "\n", "", 0}));
    EXPECT_EQ(successResultOf(defaultOutput), here + "\n");
    EXPECT_EQ(successResultOf(defaultValue), std::optional<int>(1));
    EXPECT_EQ(successResultOf(defaultBoth), (utils::ProcessOutputAndValue{here + "\n", "", 0}));
}

TEST_P(UtilsTest, UTIL_5_environmentIsExactlyWhatWasGivenForAllThree) {
    ::setenv("WEFT_UTIL5", "parent", 1);
    auto empty = utils::getProcessOutput(reactor(), childHelper(), {"env"});
    auto given =
        utils::getProcessOutput(reactor(), childHelper(), {"env"}, Environment{{"A", "1"}, {"B", "two words"}});
    auto inherited = utils::getProcessOutput(reactor(), childHelper(), {"env"}, std::nullopt);
    auto value = utils::getProcessValue(reactor(), "/bin/sh", {"-c", "exit $CODE"}, Environment{{"CODE", "42"}});
    auto inheritedValue =
        utils::getProcessValue(reactor(), "/bin/sh", {"-c", "[ \"$WEFT_UTIL5\" = parent ]"}, std::nullopt);
    auto both = utils::getProcessOutputAndValue(reactor(), childHelper(), {"env"}, Environment{{"X", "y"}});
    ::unsetenv("WEFT_UTIL5");
    for (bool ok : {fired(empty), fired(given), fired(inherited), fired(value), fired(inheritedValue), fired(both)})
        ASSERT_TRUE(ok);
    EXPECT_EQ(successResultOf(empty), "");
    EXPECT_EQ(successResultOf(given), std::string("A=1") + '\0' + "B=two words" + '\0');
    EXPECT_THAT(successResultOf(inherited), ::testing::HasSubstr(std::string("WEFT_UTIL5=parent") + '\0'));
    EXPECT_EQ(successResultOf(value), std::optional<int>(42));
    EXPECT_EQ(successResultOf(inheritedValue), std::optional<int>(0));
    EXPECT_EQ(successResultOf(both), (utils::ProcessOutputAndValue{std::string("X=y") + '\0', "", 0}));
}

TEST_P(UtilsTest, UTIL_5_aProgramThatCannotStartFailsTheDeferredInsteadOfThrowing) {
    // spawnProcess throws (PROC-6); the helpers hand that error to the Deferred.
    TempDir dir;
    const std::string missing = dir.path + "/missing";
    const std::string badPath = dir.path + "/no-such-dir";
    auto code = [](const Failure& f) { return f.get<std::system_error>()->code().value(); };

    std::optional<Deferred<std::string>> output;
    std::optional<Deferred<std::optional<int>>> value;
    std::optional<Deferred<utils::ProcessOutputAndValue>> both;
    std::optional<Deferred<std::string>> elsewhere;
    EXPECT_NO_THROW(output = utils::getProcessOutput(reactor(), missing));
    EXPECT_NO_THROW(value = utils::getProcessValue(reactor(), missing));
    EXPECT_NO_THROW(both = utils::getProcessOutputAndValue(reactor(), missing, {}, Environment{}, std::nullopt, "in"));
    EXPECT_NO_THROW(elsewhere = utils::getProcessOutput(reactor(), "/bin/true", {}, Environment{}, badPath));
    ASSERT_TRUE(output && value && both && elsewhere);
    EXPECT_EQ(code(failureResultOf<std::system_error>(*output)), ENOENT);
    EXPECT_EQ(code(failureResultOf<std::system_error>(*value)), ENOENT);
    EXPECT_EQ(code(failureResultOf<std::system_error>(*both)), ENOENT);
    Failure chdir = failureResultOf<std::system_error>(*elsewhere);
    EXPECT_EQ(code(chdir), ENOENT);
    EXPECT_THAT(chdir.getErrorMessage(), ::testing::HasSubstr("chdir"));
    EXPECT_EQ(zombieChildren(), 0);
}

// ---- the same contracts with a scripted child (testing::MemoryReactor) -----------------

class UtilsScriptedTest : public LeakCheckedTest {};

TEST_F(UtilsScriptedTest, UTIL_1_spawnsExecutablePlusArgsWithTheGivenPathAndEnv) {
    MemoryReactor r;
    auto d = utils::getProcessOutput(r, "prog", {"-x", "y"}, std::nullopt, std::string("/srv"));
    ASSERT_EQ(r.processes.size(), 1u);
    const auto& spawned = r.processes[0];
    EXPECT_EQ(spawned.executable, "prog");
    EXPECT_EQ(spawned.args, (std::vector<std::string>{"prog", "-x", "y"}));
    EXPECT_EQ(spawned.options.env, std::nullopt);
    EXPECT_EQ(spawned.options.path, std::optional<std::string>("/srv"));
    EXPECT_FALSE(spawned.options.usePTY);
    EXPECT_FALSE(spawned.options.childFDs.has_value());
    auto child = spawned.transport;
    child->childData(1, "part one, ");
    child->childData(1, "part two");
    child->closePipe(1);
    child->closePipe(2);
    child->exit(W_EXITCODE(1, 0));
    assertNoResult(d);  // stdin is still open: the process has not ended
    EXPECT_TRUE(child->closedChildFDs.empty()) << "stdin stays open";
    child->closePipe(0);
    EXPECT_EQ(successResultOf(d), "part one, part two");
    // Defaults: an empty environment, the parent's directory.
    utils::getProcessValue(r, "other");
    EXPECT_EQ(r.processes[1].options.env, Environment{});
    EXPECT_EQ(r.processes[1].options.path, std::nullopt);
    EXPECT_EQ(r.processes[1].args, std::vector<std::string>{"other"});
}

TEST_F(UtilsScriptedTest, UTIL_2_stderrFailsBeforeTheEndThenLosesTheConnection) {
    MemoryReactor r;
    auto d = utils::getProcessOutput(r, "prog");
    auto child = r.processes.at(0).transport;
    child->childData(1, "out");
    assertNoResult(d);
    EXPECT_FALSE(child->disconnecting);
    child->childData(2, "bad\x01\n");
    EXPECT_TRUE(child->disconnecting) << "loseConnection() right after the failure";
    Failure f = failureResultOf<utils::StderrOutput>(d);
    EXPECT_EQ(f.getErrorMessage(), "got stderr: 'bad\\x01\\n'");
    Deferred<void> ended = f.get<utils::StderrOutput>()->processEnded;
    child->childData(2, "more");  // later stderr changes nothing
    child->closePipe(0);
    child->closePipe(1);
    child->closePipe(2);
    assertNoResult(ended);
    child->exit(0);
    Failure why = failureResultOf<err::ProcessDone>(ended);
    EXPECT_EQ(why.get<err::ProcessDone>()->status, 0);
}

TEST_F(UtilsScriptedTest, UTIL_2_errortooKeepsArrivalOrderAndNeverDisconnects) {
    MemoryReactor r;
    auto d = utils::getProcessOutput(r, "prog", {}, Environment{}, std::nullopt, true);
    auto child = r.processes.at(0).transport;
    for (auto [fd, text] : std::vector<std::pair<int, std::string>>{{2, "e1 "}, {1, "o1 "}, {2, "e2 "}, {1, "o2"}})
        child->childData(fd, text);
    child->exit(W_EXITCODE(2, 0));
    child->closePipe(2);
    child->closePipe(0);
    child->closePipe(1);
    EXPECT_FALSE(child->disconnecting);
    EXPECT_EQ(successResultOf(d), "e1 o1 e2 o2");
}

TEST_F(UtilsScriptedTest, UTIL_3_exitCodeSignalAndLostStatus) {
    MemoryReactor r;
    auto code = utils::getProcessValue(r, "a");
    auto signalled = utils::getProcessValue(r, "b");
    auto lost = utils::getProcessValue(r, "c");
    auto close = [](const std::shared_ptr<weft::testing::FakeProcessTransport>& t) {
        for (int fd : {0, 1, 2}) t->closePipe(fd);
    };
    r.processes[0].transport->childData(2, "stderr is no error here");
    r.processes[0].transport->exit(W_EXITCODE(3, 0));
    r.processes[1].transport->kill(SIGTERM);
    r.processes[2].transport->exit(-1);  // REAP-5: neither an exit code nor a signal
    assertNoResult(code);                // the pipes are still open
    assertNoResult(signalled);
    assertNoResult(lost);
    for (auto& p : r.processes) close(p.transport);
    EXPECT_EQ(successResultOf(code), std::optional<int>(3));
    EXPECT_EQ(successResultOf(signalled), std::nullopt);
    EXPECT_EQ(successResultOf(lost), std::nullopt);
}

TEST_F(UtilsScriptedTest, UTIL_4_stdinIsWrittenAndClosedOnlyWhenGiven) {
    MemoryReactor r;
    auto d = utils::getProcessOutputAndValue(r, "prog", {}, Environment{}, std::nullopt, std::string("input"));
    auto child = r.processes.at(0).transport;
    EXPECT_EQ(child->written[0], "input");
    EXPECT_EQ(child->closedChildFDs, std::vector<int>{0}) << "closeStdin() after the bytes";
    child->closePipe(0);
    child->childData(1, "o");
    child->childData(2, "e");
    child->childData(1, "o");
    child->exit(W_EXITCODE(5, 0));
    child->closePipe(1);
    child->closePipe(2);
    EXPECT_EQ(successResultOf(d), (utils::ProcessOutputAndValue{"oo", "e", 5}));

    auto open = utils::getProcessOutputAndValue(r, "prog");
    auto second = r.processes.at(1).transport;
    EXPECT_TRUE(second->written.empty());
    EXPECT_TRUE(second->closedChildFDs.empty()) << "stdin stays open";
    second->childData(1, "partial");
    second->childData(2, "dying");
    second->kill(SIGTERM);
    for (int fd : {0, 1, 2}) second->closePipe(fd);
    Failure f = failureResultOf<utils::ProcessKilled>(open);
    const auto* k = f.get<utils::ProcessKilled>();
    EXPECT_EQ(k->out, "partial");
    EXPECT_EQ(k->err, "dying");
    EXPECT_EQ(k->signal, SIGTERM);

    // REAP-5: with no exit code and no signal, the end reason itself.
    auto lost = utils::getProcessOutputAndValue(r, "prog");
    auto third = r.processes.at(2).transport;
    third->exit(-1);
    for (int fd : {0, 1, 2}) third->closePipe(fd);
    Failure why = failureResultOf<err::ProcessTerminated>(lost);
    EXPECT_EQ(why.get<err::ProcessTerminated>()->exitCode, std::nullopt);
    EXPECT_EQ(why.get<err::ProcessTerminated>()->signal, std::nullopt);
}

TEST_F(UtilsScriptedTest, UTIL_5_aSpawnFailureFailsTheDeferred) {
    weft::testing::RaisingMemoryReactor r(nullptr, std::make_exception_ptr(std::system_error(
                                                       std::make_error_code(std::errc::permission_denied), "spawn")));
    auto d = utils::getProcessOutputAndValue(r, "prog");
    Failure f = failureResultOf<std::system_error>(d);
    EXPECT_EQ(f.get<std::system_error>()->code(), std::errc::permission_denied);
    EXPECT_TRUE(r.processes.empty());
    // Any exception spawnProcess throws, not only system errors.
    weft::testing::RaisingMemoryReactor invalid(nullptr,
                                                std::make_exception_ptr(std::invalid_argument("bad environment")));
    auto bad = utils::getProcessValue(invalid, "prog");
    EXPECT_EQ(failureResultOf<std::invalid_argument>(bad).getErrorMessage(), "bad environment");
}

}  // namespace
