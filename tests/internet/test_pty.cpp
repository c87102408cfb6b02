// process.md PTY-1..PTY-8: children on pseudo-terminals (process::PTYProcess),
// on every backend, with real terminals from /dev/ptmx and real programs.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <weft/internet/error.hpp>
#include <weft/internet/process.hpp>
#include <weft/text.hpp>

#include "support/processhelpers.hpp"
#include "support/reactortest.hpp"

using namespace weft;
using namespace weft::test;
namespace err = weft::error;

namespace {

class PTYTest : public ReactorTest {
protected:
    void SetUp() override {
        ReactorTest::SetUp();
        if (::access("/dev/ptmx", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/ptmx on this machine";
    }
    std::shared_ptr<IProcessTransport> pty(const std::shared_ptr<RecordingProcess>& proto,
                                           std::vector<std::string> steps, ProcessOptions options = {}) {
        steps.insert(steps.begin(), childHelper());
        options.usePTY = true;
        return reactor().spawnProcess(proto, steps[0], steps, options);
    }
    void waitEnded(const std::shared_ptr<RecordingProcess>& proto, double seconds = 10) {
        ASSERT_TRUE(spinUntil([&] { return proto->ended; }, seconds)) << "processEnded never came";
    }
};

INSTANTIATE_TEST_SUITE_P(Backends, PTYTest, allBackends(), backendParamName);

TEST_P(PTYTest, PTY_1_theChildLeadsASessionOnItsOwnTerminal) {
    auto proto = std::make_shared<RecordingProcess>();
    int stray = ::fcntl(1, F_DUPFD, 300);  // not close-on-exec: must not reach the child
    auto p = pty(proto, {"tty", "--", "fds"});
    ::close(stray);
    auto* proc = dynamic_cast<process::PTYProcess*>(p.get());
    ASSERT_NE(proc, nullptr);
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "tty=" + proc->ttyName() +
                                " isatty0=1 sid_is_pid=1 pgid_is_pid=1 fg_is_pgid=1 rows=24 cols=80\r\n0 1 2\r\n");
    EXPECT_THAT(proc->ttyName(), ::testing::StartsWith("/dev/pts/"));
}

TEST_P(PTYTest, PTY_2_aGivenTerminalIsUsedAndNotClosed) {
    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT_GE(master, 0);
    ASSERT_EQ(::grantpt(master), 0);
    ASSERT_EQ(::unlockpt(master), 0);
    std::string name = ::ptsname(master);
    int slave = ::open(name.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT_GE(slave, 0);
    ProcessOptions o;
    o.usePTY = true;
    o.pty = PTYDescriptors{master, slave, name};
    // A failed spawn leaves them open.
    auto failed = std::make_shared<RecordingProcess>();
    EXPECT_THROW(reactor().spawnProcess(failed, "/no/such/program", {"x"}, o), std::system_error);
    EXPECT_GE(::fcntl(master, F_GETFD), 0);
    EXPECT_GE(::fcntl(slave, F_GETFD), 0);
    auto proto = std::make_shared<RecordingProcess>();
    reactor().spawnProcess(proto, childHelper(), {childHelper(), "tty"}, o);
    EXPECT_GE(::fcntl(slave, F_GETFD), 0) << "spawnProcess did not close the caller's slave";
    ::close(slave);  // the caller's copy would keep the terminal up after the child
    waitEnded(proto);
    EXPECT_THAT(proto->out(), ::testing::StartsWith("tty=" + name + " "));
    EXPECT_GE(::fcntl(master, F_GETFD), 0) << "nor its master";
    ::close(master);
}

TEST_P(PTYTest, PTY_3_usePTYWithChildFDsIsRefused) {
    ProcessOptions o;
    o.usePTY = true;
    o.childFDs = ChildFDs{{0, "w"}};
    auto proto = std::make_shared<RecordingProcess>();
    EXPECT_THROW(reactor().spawnProcess(proto, "/bin/true", {"true"}, o), std::invalid_argument);
    EXPECT_FALSE(proto->made);
}

TEST_P(PTYTest, PTY_4_outputArrivesOnFdOneAfterTerminalProcessing) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = pty(proto, {"stdin-echo-lines"});
    p->asTransport().write(asBytes("hello world!\n"));
    ASSERT_TRUE(spinUntil([&] {
        return proto->out().find("got:") != std::string::npos &&
               proto->out().find("\r\n", proto->out().find("got:")) != std::string::npos;
    }));
    EXPECT_EQ(proto->out(), "hello world!\r\ngot:hello world!\r\n")
        << "echoed input, then the child's line, \\n as \\r\\n";
    p->asTransport().write(asBytes("\x04"));  // ^D: end of input in cooked mode
    waitEnded(proto);
    EXPECT_TRUE(proto->data.count(2) == 0) << "stderr arrives on fd 1 too";
}

TEST_P(PTYTest, PTY_5_perFdCallsHaveNothingToActOn) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = pty(proto, {"fdwrite", "2", "to-stderr", "--", "exit", "0"});
    p->closeStdin();
    p->closeStdout();
    p->closeStderr();
    EXPECT_THROW(p->writeToChild(0, asBytes("x")), std::logic_error);
    EXPECT_THROW(p->closeChildFD(0), std::logic_error);
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "to-stderr\r\n");
    EXPECT_TRUE(proto->lostFds().empty()) << "no childConnectionLost on a PTY";
}

TEST_P(PTYTest, PTY_6_loseConnectionHangsUpTheChildsSession) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = pty(proto, {"fdwrite", "1", "ready", "--", "pause-until-signal"});
    ASSERT_TRUE(spinUntil([&] { return proto->out() == "ready\r\n"; }));
    p->asTransport().loseConnection();
    waitEnded(proto);
    EXPECT_EQ(proto->signal(), SIGHUP);
}

TEST_P(PTYTest, PTY_7_eioAtTheEndIsTheEndOfTheStream) {
    auto proto = std::make_shared<RecordingProcess>();
    pty(proto, {"raw-mode", "--", "write", "1", "300000", "--", "exit", "2"});
    waitEnded(proto);
    EXPECT_EQ(proto->exitCode(), 2);
    ASSERT_GE(proto->out().size(), 4u);
    EXPECT_EQ(proto->out().substr(0, 4), "raw\n") << "raw mode: no \\r added";
    EXPECT_TRUE(proto->out().substr(4) == patternBytes(0, 300000)) << "got " << proto->out().size() - 4 << " bytes";
    EXPECT_TRUE(logs.entries().empty()) << "EIO at the end is not an error";
}

TEST_P(PTYTest, PTY_8_outputWrittenJustBeforeTheExitArrives) {
    for (int round = 0; round < 5; ++round) {
        auto proto = std::make_shared<RecordingProcess>();
        pty(proto, {"raw-mode", "--", "fdwrite", "1", "the last line", "--", "exit", "0"});
        waitEnded(proto);
        EXPECT_EQ(proto->out(), "raw\nthe last line\n");
    }
}

TEST_P(PTYTest, windowSizeIsSetAtSpawnAndChangedLater) {
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.window = WindowSize{40, 132};
    o.env = Environment{{"PATH", "/usr/bin:/bin"}};
    auto p = reactor().spawnProcess(proto, "sh",
                                    {"sh", "-c",
                                     "stty size; trap 'stty size; exit 0' WINCH; echo armed; "
                                     "while :; do sleep 0.05; done"},
                                    [&] {
                                        ProcessOptions f = o;
                                        f.usePTY = true;
                                        return f;
                                    }());
    auto* proc = dynamic_cast<process::PTYProcess*>(p.get());
    ASSERT_NE(proc, nullptr);
    EXPECT_EQ(proc->windowSize(), (WindowSize{40, 132}));
    ASSERT_TRUE(spinUntil([&] { return proto->out().find("armed") != std::string::npos; }));
    proc->setWindowSize({50, 100});
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "40 132\r\narmed\r\n50 100\r\n");
    EXPECT_THROW(proc->windowSize(), std::system_error) << "the terminal is closed";
}

TEST_P(PTYTest, signalsAndReapingWorkOnATerminal) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = pty(proto, {"fdwrite", "1", "up", "--", "pause-until-signal"});
    ASSERT_TRUE(spinUntil([&] { return !proto->out().empty(); }));
    p->signalProcess("TERM");
    waitEnded(proto);
    EXPECT_EQ(proto->signal(), SIGTERM);
    EXPECT_EQ(zombieChildren(), 0);
}

}  // namespace

namespace {

TEST(WindowSizeParsing, parseWindowSizeTakesRowsxColsAndNothingElse) {
    // The --window syntax of weft exec (and any caller's): ROWSxCOLS, 1..65535 each, decimal digits.
    EXPECT_EQ(parseWindowSize("24x80"), (WindowSize{24, 80}));
    EXPECT_EQ(parseWindowSize("40X132"), (WindowSize{40, 132}));
    EXPECT_EQ(parseWindowSize("65535x1"), (WindowSize{65535, 1}));
    for (const char* bad : {"", "x", "24x", "x80", "0x80", "24x0", "65536x80", "24x80x1", "+24x80", "24 x80", "2.4x80",
                            "-1x80", "000001x80", "24\nx80"})
        EXPECT_EQ(parseWindowSize(bad), std::nullopt) << weft::quote(bad);
}

}  // namespace
