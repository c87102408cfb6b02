// process.md: spawnProcess with pipes (PROC-*, FDMAP-*, CB-*, REAP-*, SIG-*)
// on every backend. Children are real programs: /bin/sh, cat, and the
// helper tests/helpers/weft_child.cpp, which reports exactly what it got.
// PTY processes are in test_pty.cpp.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <weft/internet/error.hpp>
#include <weft/internet/process.hpp>

#include "support/faults.hpp"
#include "support/processhelpers.hpp"
#include "support/reactortest.hpp"

using namespace weft;
using namespace weft::test;
namespace err = weft::error;
namespace fs = std::filesystem;

namespace {

/// Waits until `pid` (our child) has exited, without reaping it.
bool waitForZombie(pid_t pid, double seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

class ProcessTest : public ReactorTest {
protected:
    std::shared_ptr<IProcessTransport> spawn(const std::shared_ptr<RecordingProcess>& proto,
                                             std::vector<std::string> args, ProcessOptions options = {}) {
        std::string exe = args.at(0);
        return reactor().spawnProcess(proto, exe, args, options);
    }
    std::shared_ptr<IProcessTransport> child(const std::shared_ptr<RecordingProcess>& proto,
                                             std::vector<std::string> steps, ProcessOptions options = {}) {
        steps.insert(steps.begin(), childHelper());
        return spawn(proto, std::move(steps), std::move(options));
    }
    void waitEnded(const std::shared_ptr<RecordingProcess>& proto, double seconds = 10) {
        ASSERT_TRUE(spinUntil([&] { return proto->ended; }, seconds)) << "processEnded never came";
    }
};

INSTANTIATE_TEST_SUITE_P(Backends, ProcessTest, allBackends(), backendParamName);

class PTYReentrancy : public ProcessTest {};
INSTANTIATE_TEST_SUITE_P(Backends, PTYReentrancy, allBackends(), backendParamName);

// ---- spawning --------------------------------------------------------------------------

TEST_P(ProcessTest, PROC_1_transportReturnedAfterConnectionMadeWithPositivePid) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = spawn(proto, {"/bin/true"});
    ASSERT_TRUE(proto->made);
    ASSERT_TRUE(proto->pidAtMade.has_value());
    EXPECT_GT(*proto->pidAtMade, 0);
    EXPECT_EQ(proto->statusAtMade, -1);
    EXPECT_EQ(proto->processTransport.get(), p.get());
    waitEnded(proto);
    EXPECT_EQ(p->pid(), std::nullopt);
    EXPECT_EQ(p->status(), 0);
}

TEST_P(ProcessTest, PROC_2_argvReachesTheChildByteForByte) {
    std::string every;
    for (int b = 1; b < 256; ++b) every.push_back(static_cast<char>(b));
    // Each odd argument is echoed to stderr by a step, so every one is part of a valid command line.
    std::vector<std::string> args = {childHelper(), "argv"};
    for (std::string extra : {std::string("a b"), std::string("\"q\""), std::string("back\\slash"),
                              std::string("tab\there"), std::string(), every}) {
        args.insert(args.end(), {"--", "fdwrite", "2", extra});
    }
    auto proto = std::make_shared<RecordingProcess>();
    spawn(proto, args);
    waitEnded(proto);
    std::string expected;
    for (const auto& a : args) expected += std::to_string(a.size()) + ":" + a + "\n";
    EXPECT_EQ(proto->out(), expected);
}

TEST_P(ProcessTest, PROC_3_environmentEmptyByDefault) {
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"env"});
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "");
}

TEST_P(ProcessTest, PROC_3_environmentNulloptCopiesTheParentsAtSpawnTime) {
    ::setenv("WEFT_PROC3", "before", 1);
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.env = std::nullopt;
    child(proto, {"env"}, o);
    ::setenv("WEFT_PROC3", "after", 1);
    waitEnded(proto);
    ::unsetenv("WEFT_PROC3");
    EXPECT_THAT(proto->out(), ::testing::HasSubstr(std::string("WEFT_PROC3=before") + '\0'));
}

TEST_P(ProcessTest, PROC_3_environmentGivenIsExactlyThat) {
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.env = Environment{{"A", "1"}, {"B", "two words"}};
    child(proto, {"env"}, o);
    waitEnded(proto);
    EXPECT_EQ(proto->out(), std::string("A=1") + '\0' + "B=two words" + '\0');
}

TEST_P(ProcessTest, PROC_4_pathSetsTheWorkingDirectory) {
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.path = "/tmp";
    child(proto, {"cwd"}, o);
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "/tmp\n");

    auto inherited = std::make_shared<RecordingProcess>();
    child(inherited, {"cwd"});
    waitEnded(inherited);
    EXPECT_EQ(inherited->out(), fs::current_path().string() + "\n");
}

TEST_P(ProcessTest, PROC_5_aBareNameIsFoundOnTheChildsPath) {
    TempDir dir;
    std::string script = dir.path + "/weft-proc5";
    {
        std::ofstream f(script);
        f << "#!/bin/sh\necho shebang \"$1\"\n";
    }
    ::chmod(script.c_str(), 0755);
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.env = Environment{{"PATH", "/nonexistent:" + dir.path}};
    reactor().spawnProcess(proto, "weft-proc5", {"weft-proc5", "ok"}, o);
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "shebang ok\n");
    // Without PATH in the child's environment: the system's default path.
    auto sh = std::make_shared<RecordingProcess>();
    reactor().spawnProcess(sh, "sh", {"sh", "-c", "echo found"});
    waitEnded(sh);
    EXPECT_EQ(sh->out(), "found\n");
}

TEST_P(ProcessTest, PROC_5_aRelativePathEntryIsLookedUpInTheChildsWorkingDirectory) {
    // PROC-5 with PROC-4: the child changes to `path` before exec, so a relative PATH entry (".") names a
    // directory there. The name was checked in the parent's directory and run from the child's: a program
    // only in the child's directory was "not found", and with one in each, the parent's was checked and the
    // child's run.
    TempDir parentDir, childDir;
    auto script = [](const std::string& file, const std::string& text) {
        std::ofstream(file) << "#!/bin/sh\necho " << text << "\n";
        ::chmod(file.c_str(), 0755);
    };
    script(childDir.path + "/weft-proc5-rel", "child-dir");
    ProcessOptions o;
    o.env = Environment{{"PATH", "."}};
    o.path = childDir.path;
    auto proto = std::make_shared<RecordingProcess>();
    reactor().spawnProcess(proto, "weft-proc5-rel", {"weft-proc5-rel"}, o);
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "child-dir\n");
    // Only in the parent's working directory: not found where the child looks.
    std::string previous = fs::current_path().string();
    fs::current_path(parentDir.path);
    script(parentDir.path + "/weft-proc5-parent", "parent-dir");
    auto missing = std::make_shared<RecordingProcess>();
    try {
        reactor().spawnProcess(missing, "weft-proc5-parent", {"weft-proc5-parent"}, o);
        ADD_FAILURE() << "a program only in the parent's directory was found";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOENT) << e.what();
    }
    fs::current_path(previous);
}

TEST_P(ProcessTest, PROC_6_aProgramThatCannotStartThrowsWithTheChildsErrno) {
    TempDir dir;
    std::string notExecutable = dir.path + "/plain";
    std::ofstream(notExecutable) << "data\n";
    auto before = openFds();
    struct Case {
        std::string exe;
        std::optional<std::string> path;
        int err;
    } cases[] = {
        {dir.path + "/missing", std::nullopt, ENOENT},
        {notExecutable, std::nullopt, EACCES},
        {"/bin/true", dir.path + "/no-such-dir", ENOENT},
        {"no-such-program-weft", std::nullopt, ENOENT},
    };
    for (const auto& c : cases) {
        auto proto = std::make_shared<RecordingProcess>();
        ProcessOptions o;
        o.path = c.path;
        try {
            reactor().spawnProcess(proto, c.exe, {c.exe}, o);
            ADD_FAILURE() << c.exe << " started";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), c.err) << e.what();
            EXPECT_THAT(e.what(), ::testing::HasSubstr(c.path                                 ? "chdir"
                                                       : (c.err == ENOENT && c.exe[0] != '/') ? "PATH"
                                                                                              : "execve"));
        }
        EXPECT_FALSE(proto->made) << "no protocol call for " << c.exe;
    }
    EXPECT_EQ(openFds(), before) << "every pipe closed";
    EXPECT_EQ(zombieChildren(), 0) << "the failed child was reaped";
}

TEST_P(ProcessTest, PROC_7_aFailedPipeOrSpawnClosesWhatWasMadeAndKeepsTheCallersFds) {
    Pipe given;
    auto before = openFds();
    {
        ScopedFaults faults;
        faults.pass(Call::pipe2, 2).fail(Call::pipe2, EMFILE);  // the third of three pipes
        auto proto = std::make_shared<RecordingProcess>();
        ProcessOptions o;
        o.childFDs = ChildFDs{{0, "w"}, {1, "r"}, {2, "r"}, {3, given.writeFd}};
        EXPECT_THROW(child(proto, {"exit", "0"}, o), std::system_error);
        EXPECT_FALSE(proto->made);
    }
    EXPECT_EQ(openFds(), before);
    {
        ScopedFaults faults;
        faults.fail(Call::spawn, EAGAIN);
        auto proto = std::make_shared<RecordingProcess>();
        ProcessOptions o;
        o.childFDs = ChildFDs{{0, "w"}, {1, "r"}, {3, given.writeFd}};
        try {
            child(proto, {"exit", "0"}, o);
            ADD_FAILURE() << "spawn succeeded";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), EAGAIN);
        }
        EXPECT_FALSE(proto->made);
    }
    EXPECT_EQ(openFds(), before);
    EXPECT_GE(::fcntl(given.writeFd, F_GETFD), 0) << "the caller's descriptor is still open";
}

TEST_P(ProcessTest, PROC_8_uidAndGidAreTheChildsAndTheParentsStayTheSame) {
    if (::geteuid() != 0) GTEST_SKIP() << "changing ids needs root";
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.uid = 1;
    o.gid = 1;
    o.path = "/";
    child(proto, {"ids"}, o);
    waitEnded(proto);
    EXPECT_THAT(proto->out(), ::testing::StartsWith("uid=1 euid=1 gid=1 egid=1 groups="));
    EXPECT_EQ(::geteuid(), 0u);
    EXPECT_EQ(::getegid(), 0u);
    // A uid with no passwd entry: only the primary group.
    auto nobody = std::make_shared<RecordingProcess>();
    o.uid = 54321;
    o.gid = 54321;
    child(nobody, {"ids"}, o);
    waitEnded(nobody);
    EXPECT_EQ(nobody->out(), "uid=54321 euid=54321 gid=54321 egid=54321 groups=54321\n");
}

TEST_P(ProcessTest, PROC_8_aRefusedSetuidFailsSynchronously) {
    if (::geteuid() == 0) GTEST_SKIP() << "root may take any uid";
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.uid = 0;
    try {
        child(proto, {"exit", "0"}, o);
        ADD_FAILURE() << "started as root";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EPERM);
    }
    EXPECT_FALSE(proto->made);
}

TEST_P(ProcessTest, PROC_9_ignoredAndCaughtSignalsAreDefaultInTheChild) {
    struct sigaction ign {
    }, saved1{}, saved2{}, saved3{};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGUSR1, &ign, &saved1);
    ::sigaction(SIGRTMIN + 3, &ign, &saved3);  // a real-time signal: above the first 32 of the mask
    struct sigaction caught {};
    caught.sa_handler = [](int) {};
    ::sigaction(SIGUSR2, &caught, &saved2);
    sigset_t block, oldMask;
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &block, &oldMask);
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"sigstate"});
    ::pthread_sigmask(SIG_SETMASK, &oldMask, nullptr);
    ::sigaction(SIGUSR1, &saved1, nullptr);
    ::sigaction(SIGUSR2, &saved2, nullptr);
    ::sigaction(SIGRTMIN + 3, &saved3, nullptr);
    waitEnded(proto);
    // The helper's own runtime may catch some signals (a sanitizer's SIGSEGV
    // handler): only the parent's dispositions and mask must not have leaked.
    auto field = [&](const std::string& name) {
        std::string out = proto->out();
        auto at = out.find(name + "=");
        if (at == std::string::npos) return std::set<int>{-1};
        std::set<int> numbers;
        std::istringstream in(out.substr(at + name.size() + 1, out.find('\n', at) - at - name.size() - 1));
        for (std::string n; std::getline(in, n, ',');)
            if (!n.empty()) numbers.insert(std::stoi(n));
        return numbers;
    };
    EXPECT_EQ(field("blocked"), std::set<int>{}) << proto->out();
    EXPECT_EQ(field("ignored"), std::set<int>{}) << proto->out();
    EXPECT_EQ(field("caught").count(SIGUSR2), 0u) << proto->out();
}

TEST_P(ProcessTest, PROC_10_spawningWhileOtherThreadsAllocateIsSafe) {
    // The child runs in the parent's memory until exec: it must take no lock
    // (malloc's included) that another thread may hold. Threads hammer malloc
    // while the reactor spawns; every child must start and end.
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
        threads.emplace_back([&] {
            while (!stop.load()) {
                std::vector<std::string> v(64, std::string(100, 'x'));
                (void)v;
            }
        });
    std::vector<std::shared_ptr<RecordingProcess>> protos;
    for (int i = 0; i < 20; ++i) {
        protos.push_back(std::make_shared<RecordingProcess>());
        child(protos.back(), {"exit", std::to_string(i)});
    }
    bool all = spinUntil([&] {
        for (auto& p : protos)
            if (!p->ended) return false;
        return true;
    });
    stop = true;
    for (auto& t : threads) t.join();
    ASSERT_TRUE(all);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(protos[static_cast<std::size_t>(i)]->exitCode(), i);
}

// ---- childFDs ------------------------------------------------------------------------

TEST_P(ProcessTest, FDMAP_1_byDefaultTheChildHasStdinStdoutAndStderrPipes) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"fds", "--", "fdwrite", "2", "to-stderr"});
    auto* proc = dynamic_cast<process::Process*>(p.get());
    ASSERT_NE(proc, nullptr);
    std::set<int> keys;
    for (auto& [fd, end] : proc->pipes()) keys.insert(fd);
    EXPECT_EQ(keys, (std::set<int>{0, 1, 2}));
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "0 1 2\n");
    EXPECT_EQ(proto->err(), "to-stderr\n");
}

TEST_P(ProcessTest, FDMAP_2_anyChildFdCanBeAReadWriteOrInheritedPipe) {
    Pipe inherited;
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.childFDs = ChildFDs{{0, "w"}, {1, "r"}, {3, "w"}, {4, "r"}, {5, inherited.writeFd}};
    auto p = child(proto, {"fdwrite", "4", "four", "--", "fdwrite", "5", "five", "--", "catfd", "3", "1"}, o);
    p->writeToChild(3, asBytes("three"));
    p->closeChildFD(3);
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "three");
    EXPECT_EQ(proto->data[4], "four\n");
    char buf[16] = {};
    EXPECT_EQ(::read(inherited.readFd, buf, sizeof buf), 5);
    EXPECT_STREQ(buf, "five\n");
    EXPECT_GE(::fcntl(inherited.writeFd, F_GETFD), 0) << "an inherited descriptor stays the parent's";
    EXPECT_EQ(proto->lostFds(), (std::multiset<int>{0, 1, 3, 4})) << "no childConnectionLost for fd 5";
}

TEST_P(ProcessTest, FDMAP_3_theChildHasExactlyTheNamedDescriptors) {
    int stray = ::fcntl(1, F_DUPFD, 300);  // not close-on-exec
    ASSERT_GE(stray, 0);
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.childFDs = ChildFDs{{1, "r"}, {7, "r"}};
    child(proto, {"fds", "--", "fdwrite", "7", "seven"}, o);
    waitEnded(proto);
    ::close(stray);
    EXPECT_EQ(proto->out(), "1 7\n");
    EXPECT_EQ(proto->data[7], "seven\n");

    auto none = std::make_shared<RecordingProcess>();
    o.childFDs = ChildFDs{};
    child(none, {"fds", "--", "exit", "9"}, o);
    waitEnded(none);
    EXPECT_EQ(none->exitCode(), 9);
}

TEST_P(ProcessTest, FDMAP_4_mappingsMaySwapAndAliasDescriptors) {
    Pipe p1, p2;
    int a = ::fcntl(p1.writeFd, F_DUPFD_CLOEXEC, 40);  // close-on-exec in the parent
    int b = ::fcntl(p2.writeFd, F_DUPFD_CLOEXEC, 40);
    ASSERT_GE(a, 40);
    ASSERT_GE(b, 40);
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    // Swap a and b; alias b at 3 too; keep nothing at its own number but a's copy at 1.
    o.childFDs = ChildFDs{{a, b}, {b, a}, {3, b}, {1, "r"}};
    child(proto,
          {"fdwrite", std::to_string(a), "to-a", "--", "fdwrite", std::to_string(b), "to-b", "--", "fdwrite", "3",
           "via-3"},
          o);
    waitEnded(proto);
    ::close(a);
    ::close(b);
    char buf[64] = {};
    ssize_t n = ::read(p1.readFd, buf, sizeof buf);
    EXPECT_EQ(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))), "to-b\n");
    std::memset(buf, 0, sizeof buf);
    n = ::read(p2.readFd, buf, sizeof buf);
    EXPECT_EQ(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))), "to-a\nvia-3\n");
}

TEST_P(ProcessTest, FDMAP_5_parentEndsAreNonBlockingAndCloseOnExec) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"waitclose", "0"});
    auto* proc = dynamic_cast<process::Process*>(p.get());
    ASSERT_NE(proc, nullptr);
    for (auto& [fd, end] : proc->pipes()) {
        EXPECT_TRUE(::fcntl(end->fileno(), F_GETFL) & O_NONBLOCK) << "child fd " << fd;
        EXPECT_TRUE(::fcntl(end->fileno(), F_GETFD) & FD_CLOEXEC) << "child fd " << fd;
    }
    p->closeStdin();
    waitEnded(proto);
}

TEST_P(ProcessTest, PROC_7_aNulByteInTheNameThePathOrAnEnvironmentValueIsRefusedSayingWhere) {
    // PROC-7: the kernel reads C strings, so a NUL byte would quietly run another program, in another
    // directory, or cut a value: each is refused before anything is spawned, naming what holds it.
    auto message = [&](const std::string& exe, ProcessOptions o) {
        try {
            reactor().spawnProcess(std::make_shared<RecordingProcess>(), exe, {"x"}, o);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("(spawned)");
    };
    const std::string nul("\0", 1);
    EXPECT_THAT(message("/bin/echo" + nul + "/evil", {}), ::testing::HasSubstr("executable name contains a NUL byte"));
    ProcessOptions inDir;
    inDir.path = "/tmp" + nul + "/elsewhere";
    EXPECT_THAT(message("/bin/true", inDir), ::testing::HasSubstr("working directory (path) contains a NUL byte"));
    ProcessOptions env;
    env.env = Environment{{"GOOD", "a" + nul + "b"}};
    EXPECT_THAT(message("/bin/true", env),
                ::testing::HasSubstr("value of environment variable 'GOOD' contains a NUL byte"));
    EXPECT_EQ(zombieChildren(), 0);
}

TEST_P(ProcessTest, FDMAP_6_aNullProtocolOnlyWithoutPipes) {
    ProcessOptions o;
    EXPECT_THROW(reactor().spawnProcess(nullptr, "/bin/true", {"true"}, o), std::invalid_argument);
    o.childFDs = ChildFDs{};
    auto p = reactor().spawnProcess(nullptr, "/bin/sh", {"sh", "-c", "exit 5"}, o);
    ASSERT_TRUE(spinUntil([&] { return p->status() != -1; }));
    EXPECT_EQ(WEXITSTATUS(p->status()), 5);
}

TEST_P(ProcessTest, FDMAP_7_aHighParentDescriptorIsNotInherited) {
    int high = ::fcntl(0, F_DUPFD, 1000);
    ASSERT_GE(high, 1000);
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"fdtarget", "1000", "--", "fds"});
    waitEnded(proto);
    ::close(high);
    EXPECT_EQ(proto->out(), "closed\n0 1 2\n");
}

// ---- writing, closing, flow control ------------------------------------------------

TEST_P(ProcessTest, PROC_11_writeGoesToStdinWriteToChildChecksTheFd) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"cat"});
    p->asTransport().write(asBytes("one "));
    Bytes parts[] = {asBytes("two "), asBytes("three")};
    p->asTransport().writeSequence(parts);
    p->writeToChild(0, asBytes("!"));
    EXPECT_THROW(p->writeToChild(1, asBytes("x")), std::out_of_range);
    EXPECT_THROW(p->writeToChild(9, asBytes("x")), std::out_of_range);
    p->closeStdin();
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "one two three!");

    auto noStdin = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.childFDs = ChildFDs{{1, "r"}};
    auto q = child(noStdin, {"exit", "0"}, o);
    q->asTransport().write(asBytes("dropped"));  // no fd-0 pipe: silently dropped
    waitEnded(noStdin);
}

TEST_P(ProcessTest, PROC_12_largeWritesReachASlowChildCompleteAndInOrder) {
    std::string payload = patternBytes(0, 70 * 1024 + 13);
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"sleep", "0.2", "--", "cat"});
    p->asTransport().write(asBytes(payload));
    p->closeStdin();
    waitEnded(proto);
    EXPECT_EQ(proto->out().size(), payload.size());
    EXPECT_TRUE(proto->out() == payload);
}

TEST_P(ProcessTest, PROC_12_socketOutputsCarryTheSameBytesThroughSocketPairs) {
    // ProcessOptions::socketOutputs: the "r" channels are socket pairs (the child sees a
    // socket), everything else as with pipes: bytes in order, EOF, SIGPIPE after closeStdout.
    ProcessOptions o;
    o.socketOutputs = true;
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"fdtarget", "1", "--", "write", "1", "3000000", "--", "write", "2", "100"}, o);
    waitEnded(proto);
    ASSERT_THAT(proto->out(), ::testing::StartsWith("socket:["));
    auto nl = proto->out().find('\n');
    EXPECT_TRUE(proto->out().substr(nl + 1) == patternBytes(0, 3000000));
    EXPECT_EQ(proto->err(), patternBytes(0, 100));
    EXPECT_EQ(proto->lostFds(), (std::multiset<int>{0, 1, 2}));

    auto closed = std::make_shared<RecordingProcess>();
    auto p = child(closed, {"sleep", "0.2", "--", "write", "1", "10000000"}, o);
    p->closeStdout();
    waitEnded(closed);
    EXPECT_EQ(closed->signal(), SIGPIPE);

    auto reads = std::make_shared<RecordingProcess>();
    child(reads, {"fdread", "1"}, o);  // reading its output channel: EOF at once, nothing hangs
    waitEnded(reads);

    Pipe keep;
    auto before = openFds();
    {
        ScopedFaults faults;
        faults.fail(Call::socketpair, EMFILE);
        auto failed = std::make_shared<RecordingProcess>();
        EXPECT_THROW(child(failed, {"exit", "0"}, o), std::system_error);
        EXPECT_FALSE(failed->made);
    }
    EXPECT_EQ(openFds(), before);
}

TEST_P(ProcessTest, PROC_13_closeStdinFlushesThenClosesAndReportsFromTheLoop) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"fdread", "0"});
    std::string payload = patternBytes(0, 200000);
    p->asTransport().write(asBytes(payload));
    p->closeStdin();
    EXPECT_EQ(proto->lostFds().count(0), 0u) << "childConnectionLost(0) not inside closeStdin";
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "0:200000:" + fnv1a(payload) + "\n");
    EXPECT_EQ(proto->lostFds().count(0), 1u);
}

TEST_P(ProcessTest, PROC_14_closeStdoutStopsReadingAndTheChildGetsEpipe) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"sleep", "0.2", "--", "write", "1", "10000000"});
    p->closeStdout();
    EXPECT_EQ(proto->lostFds().count(1), 0u);
    waitEnded(proto);
    EXPECT_EQ(proto->lostFds().count(1), 1u);
    EXPECT_EQ(proto->out(), "");
    EXPECT_EQ(proto->signal(), SIGPIPE);
}

TEST_P(ProcessTest, PROC_15_closeChildFDOnANonPipeDoesNothing) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"exit", "0"});
    p->closeChildFD(7);
    p->closeChildFD(-1);
    waitEnded(proto);
    p->closeChildFD(0);  // already closed
    p->closeStdin();
    EXPECT_EQ(proto->lostFds(), (std::multiset<int>{0, 1, 2}));
}

TEST_P(ProcessTest, PROC_16_loseConnectionClosesAllPipesWithoutASignal) {
    auto reader = std::make_shared<RecordingProcess>();
    auto p = child(reader, {"waitclose", "0", "--", "exit", "3"});
    p->asTransport().loseConnection();
    waitEnded(reader);
    EXPECT_EQ(reader->exitCode(), 3) << "a reading child sees EOF and exits normally";

    auto writer = std::make_shared<RecordingProcess>();
    auto q = child(writer, {"sleep", "0.2", "--", "write", "1", "10000000"});
    q->asTransport().loseConnection();
    waitEnded(writer);
    EXPECT_EQ(writer->signal(), SIGPIPE) << "a writing child dies of SIGPIPE";
}

TEST_P(ProcessTest, PROC_17_theChildClosingStdinIsReportedWithoutAWrite) {
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"close", "0", "--", "sleep", "0.5"});
    ASSERT_TRUE(spinUntil([&] { return proto->lostFds().count(0) == 1; }, 5));
    EXPECT_FALSE(proto->exited) << "noticed while the child still runs";
    proto->processTransport->asTransport().write(asBytes("dropped"));
    waitEnded(proto);
}

TEST_P(ProcessTest, PROC_18_pauseAndResumeProducingStopAndRestartReading) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"fdwrite", "1", "early", "--", "waitclose", "0", "--", "fdwrite", "1", "late"});
    auto* producer = p->asTransport().asInputProducer();
    ASSERT_NE(producer, nullptr);
    producer->pauseProducing();
    for (int i = 0; i < 20; ++i) reactor().iterate(0.01);
    EXPECT_EQ(proto->out(), "") << "nothing read while paused";
    producer->resumeProducing();
    ASSERT_TRUE(spinUntil([&] { return proto->out() == "early\n"; }));
    p->closeStdin();
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "early\nlate\n");
    producer->pauseProducing();  // harmless after the end
    producer->resumeProducing();
}

TEST_P(ProcessTest, PROC_19_registerProducerFeedsStdinOrStopsTheProducerWithoutOne) {
    struct Producer : IPushProducer {
        int stops = 0;
        void pauseProducing() override {}
        void resumeProducing() override {}
        void stopProducing() override { ++stops; }
    };
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.childFDs = ChildFDs{{1, "r"}};
    auto p = child(proto, {"exit", "0"}, o);
    auto producer = std::make_shared<Producer>();
    p->asTransport().asConsumer()->registerProducer(producer, true);
    EXPECT_EQ(producer->stops, 1);
    waitEnded(proto);

    auto withStdin = std::make_shared<RecordingProcess>();
    auto q = child(withStdin, {"waitclose", "0"});
    auto second = std::make_shared<Producer>();
    q->asTransport().asConsumer()->registerProducer(second, true);
    EXPECT_EQ(second->stops, 0);
    q->asTransport().asConsumer()->unregisterProducer();
    q->closeStdin();
    waitEnded(withStdin);
}

TEST_P(ProcessTest, PROC_20_aProcessTransportAnswersPipeAddresses) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"exit", "0"});
    EXPECT_TRUE(std::holds_alternative<PipeAddress>(p->asTransport().getHost()));
    EXPECT_TRUE(std::holds_alternative<PipeAddress>(p->asTransport().getPeer()));
    waitEnded(proto);
}

// ---- callbacks ------------------------------------------------------------------------------

TEST(ProcessProtocolTest, CB_1_theBaseRoutesFdsToTheNamedCallbacks) {
    struct P : ProcessProtocol {
        std::vector<std::string> calls;
        void outReceived(Bytes d) override { calls.push_back("out:" + std::string(asString(d))); }
        void errReceived(Bytes d) override { calls.push_back("err:" + std::string(asString(d))); }
        void inConnectionLost() override { calls.push_back("in-lost"); }
        void outConnectionLost() override { calls.push_back("out-lost"); }
        void errConnectionLost() override { calls.push_back("err-lost"); }
        static std::string_view asString(Bytes d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }
    } p;
    p.childDataReceived(1, asBytes("a"));
    p.childDataReceived(2, asBytes("b"));
    p.childDataReceived(3, asBytes("c"));
    p.childConnectionLost(0);
    p.childConnectionLost(1);
    p.childConnectionLost(2);
    p.childConnectionLost(3);
    EXPECT_EQ(p.calls, (std::vector<std::string>{"out:a", "err:b", "in-lost", "out-lost", "err-lost"}));
    ProcessProtocol base;  // every default does nothing
    base.childDataReceived(1, asBytes("x"));
    base.processExited(Failure(err::ProcessDone(0)));
    base.processEnded(Failure(err::ProcessDone(0)));
}

TEST_P(ProcessTest, CB_2_dataInOrderBeforeEachPipesSingleClose) {
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"write", "1", "3000000", "--", "write", "2", "1000"});
    waitEnded(proto);
    EXPECT_TRUE(proto->out() == patternBytes(0, 3000000));
    EXPECT_EQ(proto->err(), patternBytes(0, 1000));
    EXPECT_EQ(proto->lostFds(), (std::multiset<int>{0, 1, 2}));
    EXPECT_FALSE(proto->dataAfterLoss);
}

TEST_P(ProcessTest, CB_3_eachPipeClosesOnceWhoeverClosedItAndInheritedFdsNever) {
    Pipe inherited;
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.childFDs = ChildFDs{{0, "w"}, {1, "r"}, {2, "r"}, {3, "r"}, {4, inherited.writeFd}};
    // fd 3 closed by the child, fd 1 by the parent, 0 and 2 at the exit.
    auto p = child(proto, {"close", "3", "--", "sleep", "0.2", "--", "exit", "0"}, o);
    p->closeStdout();
    waitEnded(proto);
    EXPECT_EQ(proto->lostFds(), (std::multiset<int>{0, 1, 2, 3}));
}

TEST_P(ProcessTest, CB_6_theGuaranteedOrder) {
    for (int round = 0; round < 5; ++round) {
        auto proto = std::make_shared<RecordingProcess>();
        child(proto, {"fdwrite", "1", "out", "--", "fdwrite", "2", "err", "--", "exit", "0"});
        waitEnded(proto);
        const auto& e = proto->events;
        ASSERT_FALSE(e.empty());
        EXPECT_EQ(e.front(), "made");
        EXPECT_EQ(e.back(), "ended");
        auto at = [&](const std::string& name) { return std::find(e.begin(), e.end(), name) - e.begin(); };
        EXPECT_LT(at("exited"), at("ended"));
        for (const char* lost : {"lost 0", "lost 1", "lost 2"}) EXPECT_LT(at(lost), at("ended")) << lost;
        EXPECT_EQ(proto->out(), "out\n");
        EXPECT_EQ(proto->err(), "err\n");
        EXPECT_FALSE(proto->dataAfterLoss);
    }
}

TEST_P(ProcessTest, CB_4_processExitedComesAtReapingEvenWithPipesStillOpen) {
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"spawn-grandchild", "0.5", "late", "--", "exit", "0"});
    ASSERT_TRUE(spinUntil([&] { return proto->exited; }));
    EXPECT_FALSE(proto->ended);
    EXPECT_EQ(proto->pidAtExited, std::nullopt) << "pid is null during processExited";
    EXPECT_EQ(proto->out(), "") << "the grandchild has not written yet";
    waitEnded(proto);
    EXPECT_EQ(proto->out(), "late\n");
    EXPECT_EQ(proto->events.back(), "ended");
}

TEST_P(ProcessTest, CB_5_processEndedIsLastAndTheTransportLetsGoOfTheProtocol) {
    auto proto = std::make_shared<RecordingProcess>();
    std::weak_ptr<RecordingProcess> weak = proto;
    auto p = child(proto, {"fdwrite", "1", "x", "--", "exit", "0"});
    waitEnded(proto);
    ASSERT_GE(proto->events.size(), 5u);
    EXPECT_EQ(proto->events.front(), "made");
    EXPECT_EQ(proto->events.back(), "ended");
    auto exited = std::find(proto->events.begin(), proto->events.end(), "exited");
    EXPECT_NE(exited, proto->events.end());
    EXPECT_EQ(std::count(proto->events.begin(), proto->events.end(), "ended"), 1);
    proto->processTransport.reset();
    proto->transport.reset();
    proto.reset();
    p.reset();
    EXPECT_TRUE(weak.expired()) << "nothing holds the protocol after processEnded";
}

TEST_P(ProcessTest, CB_7_reasonsCarryExitCodeOrSignal) {
    auto done = std::make_shared<RecordingProcess>();
    auto failed = std::make_shared<RecordingProcess>();
    auto killed = std::make_shared<RecordingProcess>();
    auto pd = child(done, {"exit", "0"});
    auto pf = child(failed, {"exit", "3"});
    auto pk = child(killed, {"kill", "KILL"});
    waitEnded(done);
    waitEnded(failed);
    waitEnded(killed);
    ASSERT_TRUE(done->endedReason->check<err::ProcessDone>());
    EXPECT_THAT(std::string(done->endedReason->get<err::ProcessDone>()->what()),
                ::testing::HasSubstr("process finished with exit code 0"));
    const auto* f = failed->endedReason->get<err::ProcessTerminated>();
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->exitCode, 3);
    EXPECT_EQ(f->signal, std::nullopt);
    EXPECT_THAT(std::string(f->what()), ::testing::HasSubstr("process ended with exit code 3"));
    const auto* k = killed->endedReason->get<err::ProcessTerminated>();
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->exitCode, std::nullopt);
    EXPECT_EQ(k->signal, SIGKILL);
    EXPECT_THAT(std::string(k->what()), ::testing::HasSubstr("process ended by signal 9"));
    EXPECT_TRUE(WIFSIGNALED(pk->status()) && WTERMSIG(pk->status()) == SIGKILL);
    EXPECT_EQ(pf->status(), 3 << 8);
    EXPECT_EQ(failed->exitedReason->get<err::ProcessTerminated>()->exitCode, 3) << "processExited got the same";
}

TEST_P(ProcessTest, CB_8_exceptionsFromCallbacksAreLoggedAndCleanupGoesOn) {
    auto proto = std::make_shared<RecordingProcess>();
    proto->throwIn = {"made", "exited", "lost"};
    child(proto, {"fdwrite", "1", "x", "--", "exit", "0"});
    waitEnded(proto);
    auto logged = logs.flushLoggedErrors<std::runtime_error>();
    EXPECT_GE(logged.size(), 3u);

    auto data = std::make_shared<RecordingProcess>();
    data->throwIn = {"data"};
    child(data, {"fdwrite", "1", "first", "--", "sleep", "0.3", "--", "write", "1", "1000000"});
    waitEnded(data);
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
    EXPECT_EQ(data->lostFds().count(1), 1u);
    EXPECT_EQ(data->signal(), SIGPIPE) << "the closed pipe gave the child SIGPIPE";
}

TEST_P(ProcessTest, CB_9_theReaperLetsGoBeforeProcessEnded) {
    auto proto = std::make_shared<RecordingProcess>();
    bool threw = false;
    proto->onEnded = [&](RecordingProcess& self) {
        EXPECT_EQ(self.processTransport->pid(), std::nullopt);
        try {
            self.processTransport->signalProcess(SIGTERM);
        } catch (const err::ProcessExitedAlready&) {
            threw = true;
        }
        throw std::runtime_error("processEnded fails");
    };
    child(proto, {"exit", "0"});
    waitEnded(proto);
    EXPECT_TRUE(threw);
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 1u);
}

TEST_P(ProcessTest, CB_10_onlyConnectionMadeRunsInsideSpawnProcess) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = spawn(proto, {"/bin/true"});
    ::usleep(100000);  // the child has long exited
    auto again = spawn(std::make_shared<RecordingProcess>(), {"/bin/true"});
    EXPECT_EQ(proto->events, (std::vector<std::string>{"made"}));
    EXPECT_TRUE(p->pid().has_value());
    waitEnded(proto);
    ASSERT_TRUE(spinUntil([&] { return again->status() != -1; }));
}

// ---- reaping -----------------------------------------------------------------------------

TEST_P(ProcessTest, REAP_1_REAP_6_manyChildrenEachGetTheirOwnStatusAndNoZombieStays) {
    std::vector<std::shared_ptr<RecordingProcess>> protos;
    for (int i = 0; i < 25; ++i) {
        protos.push_back(std::make_shared<RecordingProcess>());
        child(protos.back(), {"sleep", i % 3 == 0 ? "0" : "0.05", "--", "exit", std::to_string(i)});
    }
    ASSERT_TRUE(spinUntil([&] { return std::all_of(protos.begin(), protos.end(), [](auto& p) { return p->ended; }); }));
    for (int i = 0; i < 25; ++i) EXPECT_EQ(protos[static_cast<std::size_t>(i)]->exitCode(), i);
    EXPECT_EQ(zombieChildren(), 0);
}

// Whether this kernel gives pidfds (pidfd_open, Linux 5.3).
bool pidfdAvailable() {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

// Until `pid` is gone from the process table (reaped by someone), or `seconds` passed.
bool waitUntilReaped(pid_t pid, double seconds) {
    for (int i = 0; i < static_cast<int>(seconds * 100); ++i) {
        if (::kill(pid, 0) != 0 && errno == ESRCH) return true;  // a zombie still answers kill(pid, 0)
        ::usleep(10000);
    }
    return false;
}

TEST_P(ProcessTest, REAP_1_aReactorDestroyedWhileAChildRunsLetsGoOfTheProcessAndTheChildIsStillReaped) {
    // The pidfd watcher (registered with the reactor), the process and its protocol hold each other while the
    // child runs; a reactor destroyed then must not leave them behind. The child runs on, and when it ends it is
    // reaped all the same (REAP-1: no zombie remains; it stayed one for good before), by a thread that waits for it.
    for (bool pty : {false, true}) {
        SCOPED_TRACE(pty ? "pty" : "pipes");
        auto r = makeReactor();
        auto proto = std::make_shared<RecordingProcess>();
        ProcessOptions options;
        options.usePTY = pty;
        auto p = r->spawnProcess(proto, childHelper(), {childHelper(), "sleep", "30"}, options);
        ASSERT_TRUE(p->pid().has_value());
        pid_t pid = *p->pid();
        std::weak_ptr<RecordingProcess> weakProto = proto;
        std::weak_ptr<IProcessTransport> weakProcess = p;
        proto.reset();
        p.reset();
        r.reset();
        EXPECT_TRUE(weakProto.expired()) << "the protocol outlived its reactor";
        EXPECT_TRUE(weakProcess.expired()) << "the process outlived its reactor";
        ::kill(pid, SIGKILL);  // a PTY child may have died already, of its terminal's hang-up
        EXPECT_TRUE(waitUntilReaped(pid, 10)) << "child " << pid << " was left a zombie";
    }
    EXPECT_EQ(zombieChildren(), 0);
}

TEST_P(ProcessTest, SIG_2_aProcessHeldPastItsReactorIsSignalledThroughItsPidfdAndThenSaysItExited) {
    // SIG-2 once the reactor is gone: the process held by the caller no longer reports a pid (its reaper may
    // have freed it for reuse), signalProcess reaches the child through a pidfd of its own while it runs, and
    // throws ProcessExitedAlready once it has ended and been reaped (it signalled the pid, and said nothing).
    auto r = makeReactor();
    auto proto = std::make_shared<RecordingProcess>();
    auto p = r->spawnProcess(proto, childHelper(), {childHelper(), "sleep", "30"});
    pid_t pid = *p->pid();
    r.reset();
    EXPECT_FALSE(p->pid().has_value());
    if (!pidfdAvailable()) {
        EXPECT_THROW(p->signalProcess(SIGTERM), std::logic_error);
        ::kill(pid, SIGKILL);
    } else {
        EXPECT_NO_THROW(p->signalProcess(SIGTERM));
    }
    ASSERT_TRUE(waitUntilReaped(pid, 10)) << "child " << pid << " was left a zombie";
    if (pidfdAvailable()) {
        EXPECT_THROW(p->signalProcess(SIGTERM), err::ProcessExitedAlready);
    }
    EXPECT_EQ(zombieChildren(), 0);
}

TEST_P(ProcessTest, REAP_1_aChildThatExitedUnseenIsReapedWhenItsReactorIsDestroyed) {
    auto r = makeReactor();
    auto proto = std::make_shared<RecordingProcess>();
    r->spawnProcess(proto, childHelper(), {childHelper(), "exit", "7"});
    // Wait for the exit without the loop seeing it: the pidfd polls readable.
    ASSERT_TRUE(waitForZombie(*proto->pidAtMade, 10));
    r.reset();
    EXPECT_TRUE(proto->exited);
    EXPECT_TRUE(proto->ended);
    EXPECT_EQ(proto->exitCode(), 7);
    EXPECT_EQ(zombieChildren(), 0);
}

TEST_P(ProcessTest, R_41_aChildWhoseDescriptorsAreAllAboveFdSetsizeIsStillReaped) {
    // select gives up an fd at or above FD_SETSIZE (connectionLost). For the child's pidfd that must not
    // mean the child is never reaped: it is polled instead, and processEnded comes with its status.
    weft::test::BelowFdSetsizeTaken taken;  // every fd below FD_SETSIZE taken, so the child's land above
    if (!taken.ok()) GTEST_SKIP() << taken.why();
    auto proto = std::make_shared<RecordingProcess>();
    std::exception_ptr failed;
    try {
        child(proto, {"sleep", "0.05", "--", "exit", "3"});
    } catch (...) {
        failed = std::current_exception();
    }
    bool ended = !failed && spinUntil([&] { return proto->ended; }, 10);
    taken.release();
    ASSERT_FALSE(failed);
    ASSERT_TRUE(ended) << "processEnded never came";
    EXPECT_EQ(proto->exitCode(), 3);
    EXPECT_EQ(zombieChildren(), 0);
}

TEST_P(ProcessTest, REAP_2_aChildThatExitsAfterClosingItsPipesIsStillNoticed) {
    auto proto = std::make_shared<RecordingProcess>();
    spawn(proto, {"/bin/sh", "-c", "exec >&- 2>&- <&-; sleep 0.3; exit 4"});
    ASSERT_TRUE(spinUntil([&] { return proto->lostFds().size() == 3; }));
    EXPECT_FALSE(proto->exited);
    waitEnded(proto);
    EXPECT_EQ(proto->exitCode(), 4);
}

TEST_P(ProcessTest, REAP_3_childrenWeftDidNotStartKeepTheirStatus) {
    pid_t other;
    char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>("exit 7"), nullptr};
    ASSERT_EQ(::posix_spawn(&other, "/bin/sh", nullptr, nullptr, argv, environ), 0);
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"sleep", "0.1", "--", "exit", "0"});
    waitEnded(proto);
    int status = 0;
    ASSERT_EQ(::waitpid(other, &status, 0), other) << "weft reaped a child it did not start";
    EXPECT_EQ(WEXITSTATUS(status), 7);
}

TEST_P(ProcessTest, REAP_4_childExitsDoNotInterruptBlockingCalls) {
    Pipe p;
    int flags = ::fcntl(p.readFd, F_GETFL);
    ::fcntl(p.readFd, F_SETFL, flags & ~O_NONBLOCK);
    std::atomic<int> result{0};
    std::thread reader([&] {
        char c;
        ssize_t n = ::read(p.readFd, &c, 1);
        result = n < 0 ? -errno : static_cast<int>(n);
    });
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"exit", "0"});
    waitEnded(proto);
    EXPECT_EQ(::write(p.writeFd, "x", 1), 1);
    reader.join();
    EXPECT_EQ(result.load(), 1) << "the blocked read was not interrupted";
}

TEST_P(ProcessTest, REAP_5_aChildTheKernelReapedEndsWithAnUnknownStatus) {
    struct sigaction ign {
    }, saved{};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGCHLD, &ign, &saved);
    auto proto = std::make_shared<RecordingProcess>();
    child(proto, {"exit", "3"});
    waitEnded(proto);
    ::sigaction(SIGCHLD, &saved, nullptr);
    const auto* t = proto->endedReason->get<err::ProcessTerminated>();
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->exitCode, std::nullopt);
    EXPECT_EQ(t->signal, std::nullopt);
    EXPECT_EQ(t->status, -1);
}

TEST_P(ProcessTest, REAP_2_withoutPidfdsTheChildIsPolled) {
    ScopedFaults faults;
    faults.fail(Call::pidfd_open, ENOSYS, 2);
    auto proto = std::make_shared<RecordingProcess>();
    spawn(proto, {"/bin/sh", "-c", "exec >&- 2>&- <&-; sleep 0.2; exit 6"});
    waitEnded(proto);
    EXPECT_EQ(proto->exitCode(), 6);
    EXPECT_GE(faults.calls(Call::waitid), 2u);
}

// ---- signals ------------------------------------------------------------------------------

TEST_P(ProcessTest, SIG_1_signalsByNumberAndByName) {
    for (std::string name : {"HUP", "INT", "KILL", "TERM", "SIGUSR1", "usr2", "15"}) {
        auto proto = std::make_shared<RecordingProcess>();
        auto p = child(proto, {"pause-until-signal"});
        p->signalProcess(std::string_view(name));
        waitEnded(proto);
        EXPECT_EQ(proto->signal(), signalNumber(name)) << name;
    }
    EXPECT_EQ(signalNumber("SIGTERM"), SIGTERM);
    EXPECT_THROW(signalNumber("NOPE"), std::invalid_argument);
    EXPECT_THROW(signalNumber(""), std::invalid_argument);
    EXPECT_THROW(signalNumber("0"), std::invalid_argument);
}

TEST_P(ProcessTest, SIG_2_afterReapingOrOnEsrchProcessExitedAlready) {
    auto proto = std::make_shared<RecordingProcess>();
    auto p = child(proto, {"pause-until-signal"});
    {
        ScopedFaults faults;
        faults.fail(Call::pidfd_send_signal, ESRCH).fail(Call::kill, ESRCH).fail(Call::pidfd_send_signal, EPERM);
        faults.fail(Call::kill, EPERM);
        EXPECT_THROW(p->signalProcess(SIGTERM), err::ProcessExitedAlready);
        try {
            p->signalProcess(SIGTERM);
            ADD_FAILURE() << "EPERM not thrown";
        } catch (const err::ProcessExitedAlready&) {
            ADD_FAILURE() << "EPERM is not ProcessExitedAlready";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), EPERM);
        }
    }
    p->signalProcess(SIGKILL);
    waitEnded(proto);
    EXPECT_THROW(p->signalProcess(SIGTERM), err::ProcessExitedAlready);
}

TEST_P(ProcessTest, newProcessGroupLetsSignalProcessGroupEndGrandchildren) {
    auto proto = std::make_shared<RecordingProcess>();
    ProcessOptions o;
    o.newProcessGroup = true;
    auto p = child(proto, {"pgid", "--", "grandchild-pid", "--", "pause-until-signal"}, o);
    ASSERT_TRUE(spinUntil([&] { return proto->out().find("grandchild=") != std::string::npos; }));
    pid_t pid = *p->pid();
    EXPECT_THAT(proto->out(), ::testing::HasSubstr("pid=" + std::to_string(pid) + " pgid=" + std::to_string(pid)));
    p->signalProcessGroup(SIGTERM);
    waitEnded(proto);  // the grandchild held stdout: ended only once it died too
    EXPECT_EQ(proto->signal(), SIGTERM);

    auto plain = std::make_shared<RecordingProcess>();
    auto q = child(plain, {"exit", "0"});
    EXPECT_THROW(q->signalProcessGroup(SIGTERM), std::logic_error);
    waitEnded(plain);
}

}  // namespace

namespace {

// Issue #11's acceptance: 1,000 children from one reactor, some exiting before
// spawnProcess returns, some killed, some with descendants holding their
// pipes; every processEnded exactly once with the right status, no zombie, no
// descriptor left. At most 64 in flight (each holds four descriptors).
TEST_P(ProcessTest, REAP_6_aThousandChildrenEachEndOnceWithTheirStatus) {
    constexpr int kTotal = 1000, kInFlight = 64;
    struct Child {
        std::shared_ptr<RecordingProcess> proto;
        std::shared_ptr<IProcessTransport> transport;
        int kind;
    };
    std::vector<Child> children;
    auto before = openFds();
    int started = 0, running = 0;
    auto startOne = [&] {
        int i = started++;
        int kind = i % 4;
        auto proto = std::make_shared<RecordingProcess>();
        std::vector<std::string> steps;
        switch (kind) {
            case 0: steps = {"exit", std::to_string(i % 200)}; break;                     // gone at once
            case 1: steps = {"pause-until-signal"}; break;                                // killed below
            case 2: steps = {"spawn-grandchild", "0.05", "g", "--", "exit", "1"}; break;  // pipes outlive it
            default: steps = {"write", "1", "5000", "--", "exit", "0"}; break;
        }
        steps.insert(steps.begin(), childHelper());
        proto->onEnded = [&running](RecordingProcess&) { --running; };
        auto t = reactor().spawnProcess(proto, steps[0], steps);
        if (kind == 1) t->signalProcess(SIGKILL);
        children.push_back({proto, t, kind});
        ++running;
    };
    double deadline = reactor().seconds() + 100;
    while ((started < kTotal || running > 0) && reactor().seconds() < deadline) {
        while (started < kTotal && running < kInFlight) startOne();
        reactor().iterate(0.01);
    }
    ASSERT_EQ(running, 0) << "children still running at the deadline";
    for (std::size_t i = 0; i < children.size(); ++i) {
        const auto& c = children[i];
        ASSERT_EQ(std::count(c.proto->events.begin(), c.proto->events.end(), "ended"), 1) << i;
        switch (c.kind) {
            case 0: EXPECT_EQ(c.proto->exitCode(), static_cast<int>(i % 200)) << i; break;
            case 1: EXPECT_EQ(c.proto->signal(), SIGKILL) << i; break;
            case 2:
                EXPECT_EQ(c.proto->exitCode(), 1) << i;
                EXPECT_EQ(c.proto->out(), "g\n") << i;
                break;
            default: EXPECT_EQ(c.proto->out().size(), 5000u) << i; break;
        }
    }
    EXPECT_EQ(zombieChildren(), 0);
    EXPECT_EQ(openFds(), before);
}

// Spawning from several threads at once, each with its own reactor (TSan runs this).
TEST(ProcessThreads, PROC_10_severalThreadsSpawnAtOnce) {
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            auto reactor = Reactor::create(Backend::epoll);
            std::vector<std::shared_ptr<RecordingProcess>> protos;
            for (int i = 0; i < 10; ++i) {
                protos.push_back(std::make_shared<RecordingProcess>());
                reactor->spawnProcess(protos.back(), childHelper(),
                                      {childHelper(), "fdwrite", "1", std::to_string(t * 100 + i)});
            }
            double end = reactor->seconds() + 20;
            while (reactor->seconds() < end &&
                   !std::all_of(protos.begin(), protos.end(), [](auto& p) { return p->ended; }))
                reactor->iterate(0.01);
            for (int i = 0; i < 10; ++i)
                if (protos[static_cast<std::size_t>(i)]->out() == std::to_string(t * 100 + i) + "\n") ++ok;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 40);
}

}  // namespace

namespace {

// Re-entrancy (the brief's classic failure): from inside every callback, a
// protocol closes, writes, signals, closes pipes or drops its transport; each
// child still ends exactly once, nothing leaks (the fixture checks
// descriptors; ASan checks memory) and nothing is called after processEnded.
class ReentrantProcess final : public ProcessProtocol {
public:
    enum Where { made, data, pipeLost, exited, endedCb, kWhere };
    enum What { lose, write, kill, closePipes, drop, kWhat };
    ReentrantProcess(Where w, What a) : where(w), what(a) {}
    Where where;
    What what;
    int endedCount = 0, afterEnd = 0;
    std::weak_ptr<IProcessTransport> weak;

    void act(Where now) {
        if (endedCount) ++afterEnd;
        if (now != where) return;
        auto p = processTransport;
        if (!p) return;
        switch (what) {
            case lose: p->asTransport().loseConnection(); break;
            case write: p->asTransport().write(asBytes("more")); break;
            case kill: try { p->signalProcess(SIGKILL);
                } catch (const error::ProcessExitedAlready&) {}
                break;
            case closePipes:
                p->closeStdin();
                p->closeStdout();
                p->closeChildFD(2);
                break;
            case drop:
                processTransport.reset();
                transport.reset();
                break;
            default: break;
        }
    }
    void connectionMade() override {
        weak = processTransport;
        act(made);
    }
    void childDataReceived(int, Bytes) override { act(data); }
    void childConnectionLost(int) override { act(pipeLost); }
    void processExited(const Failure&) override { act(exited); }
    void processEnded(const Failure&) override {
        act(endedCb);
        ++endedCount;
    }
};

TEST_P(ProcessTest, PROC_OWN_everyCallInsideEveryCallbackIsSafe) {
    for (int w = 0; w < ReentrantProcess::kWhere; ++w) {
        for (int a = 0; a < ReentrantProcess::kWhat; ++a) {
            auto proto = std::make_shared<ReentrantProcess>(static_cast<ReentrantProcess::Where>(w),
                                                            static_cast<ReentrantProcess::What>(a));
            std::weak_ptr<ReentrantProcess> weakProto = proto;
            reactor().spawnProcess(
                proto, childHelper(),
                {childHelper(), "fdwrite", "1", "x", "--", "fdwrite", "2", "y", "--", "sleep", "0.05"});
            ASSERT_TRUE(spinUntil([&] { return proto->endedCount > 0; })) << "where " << w << " what " << a;
            for (int i = 0; i < 3; ++i) reactor().iterate(0);
            EXPECT_EQ(proto->endedCount, 1) << "where " << w << " what " << a;
            EXPECT_EQ(proto->afterEnd, 0);
            proto.reset();
            EXPECT_TRUE(weakProto.expired()) << "where " << w << " what " << a << ": the protocol was kept";
        }
    }
    EXPECT_EQ(zombieChildren(), 0);
}

TEST_P(PTYReentrancy, PTY_OWN_everyCallInsideEveryCallbackIsSafe) {
    for (int w = 0; w < ReentrantProcess::kWhere; ++w) {
        for (int a = 0; a < ReentrantProcess::kWhat; ++a) {
            if (a == ReentrantProcess::closePipes) continue;  // closeChildFD throws on a PTY (PTY-5)
            auto proto = std::make_shared<ReentrantProcess>(static_cast<ReentrantProcess::Where>(w),
                                                            static_cast<ReentrantProcess::What>(a));
            ProcessOptions o;
            o.usePTY = true;
            reactor().spawnProcess(proto, childHelper(), {childHelper(), "fdwrite", "1", "x", "--", "sleep", "0.05"},
                                   o);
            ASSERT_TRUE(spinUntil([&] { return proto->endedCount > 0; })) << "where " << w << " what " << a;
            for (int i = 0; i < 3; ++i) reactor().iterate(0);
            EXPECT_EQ(proto->endedCount, 1);
            EXPECT_EQ(proto->afterEnd, 0);
        }
    }
}

}  // namespace
