// Test support: run every reactor test on every backend (Twisted's
// ReactorBuilder), fail a test that hangs, and check after every test that it
// left nothing behind: descriptors, readers, writers, pending calls, threads,
// or errors logged that the test did not expect.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/protocol.hpp>
#include <weft/log.hpp>

namespace weft {
/// Lets gtest print a backend as its name in test listings.
inline void PrintTo(Backend b, std::ostream* os) { *os << backendName(b); }
}  // namespace weft

namespace weft::test {

/// Open descriptor numbers of this process (/proc/self/fd).
std::set<int> openFds();
/// Threads of this process (/proc/self/task).
std::size_t threadCount();

/// Collects error-level log events so that a test can check and flush them.
class LogCapture {
public:
    LogCapture();
    ~LogCapture();
    struct Entry {
        log::Level level;
        std::string prefix, message;
        std::optional<Failure> failure;
    };
    std::vector<Entry> entries() const;
    /// Removes and returns the logged failures that match E.
    template <class E>
    std::vector<Failure> flushLoggedErrors() {
        std::vector<Failure> out;
        std::lock_guard lk(mu_);
        std::erase_if(entries_, [&](const Entry& e) {
            if (e.failure && e.failure->check<E>()) {
                out.push_back(*e.failure);
                return true;
            }
            return false;
        });
        return out;
    }
    /// Removes and returns every entry at or above `level`.
    std::vector<Entry> flush(log::Level level = log::Level::warn);
    std::size_t errorCount() const;

private:
    mutable std::mutex mu_;
    std::vector<Entry> entries_;
    std::size_t token_;
};

/// Base fixture for tests that need no reactor but want the log and leak checks.
class LeakCheckedTest : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;
    LogCapture logs;

private:
    std::set<int> fds_;
    std::size_t threads_ = 0;
};

/// Parameterised by backend: `reactor()` is a fresh reactor of GetParam()'s kind.
class ReactorTest : public ::testing::TestWithParam<Backend> {
protected:
    void SetUp() override;
    void TearDown() override;

    Reactor& reactor() { return *reactor_; }
    /// Builds another reactor of the same backend (for tests that need two).
    std::unique_ptr<Reactor> makeReactor() { return Reactor::create(GetParam()); }

    /// Runs the reactor until it stops; if it is still running after
    /// `timeoutSeconds`, crashes it and fails the test (a hang is a failure).
    void runReactor(double timeoutSeconds = 5.0, bool installSignalHandlers = false);
    /// Same, for another reactor.
    static void runReactor(Reactor& r, double timeoutSeconds = 5.0, bool installSignalHandlers = false);

    /// Iterates the reactor (10 ms waits) until pred() holds; false if it still
    /// does not after `seconds`.
    template <class P>
    bool spinUntil(P pred, double seconds = 10) {
        return spinUntil(reactor(), std::move(pred), seconds);
    }
    /// The same for any reactor.
    template <class P>
    static bool spinUntil(Reactor& r, P pred, double seconds = 10) {
        double end = r.seconds() + seconds;
        while (!pred()) {
            if (r.seconds() > end) return false;
            r.iterate(0.01);
        }
        return true;
    }

    /// port.stopListening(), then iterates until its Deferred fires; false if
    /// it has not after `seconds`.
    bool stopListeningAndWait(IListeningPort& port, double seconds = 5) {
        auto closed = std::make_shared<bool>(false);
        port.stopListening().addBoth([closed](Result<void>) { *closed = true; });
        return spinUntil([&] { return *closed; }, seconds);
    }

    /// Leave the reactor alone in TearDown's leak checks (it is checked anyway
    /// for descriptors and threads).
    LogCapture logs;

private:
    std::unique_ptr<Reactor> reactor_;
    std::set<int> fds_;
    std::size_t threads_ = 0;
};

/// For INSTANTIATE_TEST_SUITE_P(Backends, X, allBackends(), backendParamName).
inline auto allBackends() { return ::testing::Values(Backend::epoll, Backend::poll, Backend::select); }
inline std::string backendParamName(const ::testing::TestParamInfo<Backend>& info) {
    return std::string(backendName(info.param));
}

/// A pipe whose ends close on destruction.
struct Pipe {
    Pipe();
    ~Pipe();
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    int readFd = -1, writeFd = -1;
    void closeRead();
    void closeWrite();
};

/// A connected AF_UNIX stream socketpair whose ends close on destruction.
struct SocketPair {
    SocketPair();
    ~SocketPair();
    SocketPair(const SocketPair&) = delete;
    SocketPair& operator=(const SocketPair&) = delete;
    int a = -1, b = -1;
    void closeA();
    void closeB();
};

/// A descriptor for IReactorFDSet tests: counts doRead/doWrite/connectionLost and
/// runs optional hooks inside them.
class FakeDescriptor : public IReadWriteDescriptor, public IHalfCloseableDescriptor {
public:
    explicit FakeDescriptor(int fd) : fd_(fd) {}
    int fileno() const override { return fd_; }
    void setFileno(int fd) { fd_ = fd; }
    std::string logPrefix() const override { return "FakeDescriptor"; }
    Reason doRead() override;
    Reason doWrite() override;
    void connectionLost(const Failure& reason) override;
    void readConnectionLost(const Failure& reason) override;
    void writeConnectionLost(const Failure& reason) override;

    std::function<Reason()> onRead, onWrite;
    std::function<void(const Failure&)> onLost, onReadLost;
    int reads = 0, writes = 0, lost = 0, readLost = 0;
    std::optional<Failure> lostReason, readLostReason;

private:
    int fd_;
};

/// Takes every free descriptor number below FD_SETSIZE (raising RLIMIT_NOFILE's
/// soft limit first if needed), so that the next descriptor made lands at or
/// above it; gives them back and restores the limit when destroyed. why() says
/// why it could not (a hard limit too low), for GTEST_SKIP.
class BelowFdSetsizeTaken {
public:
    BelowFdSetsizeTaken();
    ~BelowFdSetsizeTaken();
    BelowFdSetsizeTaken(const BelowFdSetsizeTaken&) = delete;
    BelowFdSetsizeTaken& operator=(const BelowFdSetsizeTaken&) = delete;
    bool ok() const noexcept { return why_.empty(); }
    const std::string& why() const noexcept { return why_; }
    /// Gives the numbers back now (the limit is restored at destruction).
    void release() noexcept;

private:
    std::vector<int> fds_;
    unsigned long long oldSoft_ = 0;
    bool raised_ = false;
    std::string why_;
};

/// A push producer that does nothing but count the stopProducing() calls: for a
/// test that a consumer's end stops what it still holds (FD-2).
struct StopCountingProducer : IPushProducer {
    void pauseProducing() override {}
    void resumeProducing() override {}
    void stopProducing() override { ++stops; }
    int stops = 0;
};

}  // namespace weft::test
