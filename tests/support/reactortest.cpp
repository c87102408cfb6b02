#include "support/reactortest.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace weft::test {

namespace {
std::set<int> listDir(const char* path) {
    std::set<int> out;
    DIR* d = ::opendir(path);
    if (!d) return out;
    int self = ::dirfd(d);
    while (auto* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        int n = std::atoi(e->d_name);
        if (n != self) out.insert(n);
    }
    ::closedir(d);
    return out;
}

void checkLeaks(const std::set<int>& fdsBefore, std::size_t threadsBefore) {
    // Threads may take a moment to leave the kernel's list after join().
    for (int i = 0; i < 200 && threadCount() > threadsBefore; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_LE(threadCount(), threadsBefore) << "the test left threads running";
    auto fds = openFds();
    std::vector<int> leaked;
    for (int fd : fds)
        if (!fdsBefore.count(fd)) leaked.push_back(fd);
    EXPECT_TRUE(leaked.empty()) << "the test leaked " << leaked.size()
                                << " descriptor(s), first: " << (leaked.empty() ? -1 : leaked.front());
}

void checkLogs(LogCapture& logs) {
    auto rest = logs.flush(log::Level::error);
    for (auto& e : rest)
        ADD_FAILURE() << "unexpected error logged: " << e.prefix << ": " << e.message
                      << (e.failure ? "\n" + e.failure->getTraceback() : std::string());
}
}  // namespace

// ThreadSanitizer starts a background thread of its own the first time a thread
// is created; start (and join) one before any test so the thread-count leak
// check of the first test does not count it.
const bool kRuntimeThreadsStarted = [] {
    std::thread([] {}).join();
    return true;
}();

std::set<int> openFds() { return listDir("/proc/self/fd"); }
std::size_t threadCount() { return listDir("/proc/self/task").size(); }

LogCapture::LogCapture() {
    token_ = log::addObserver([this](const log::Event& ev) {
        std::lock_guard lk(mu_);
        entries_.push_back({ev.level, std::string(ev.prefix), std::string(ev.message),
                            ev.failure ? std::optional<Failure>(*ev.failure) : std::nullopt});
    });
}
LogCapture::~LogCapture() { log::removeObserver(token_); }

std::vector<LogCapture::Entry> LogCapture::entries() const {
    std::lock_guard lk(mu_);
    return entries_;
}

std::vector<LogCapture::Entry> LogCapture::flush(log::Level level) {
    std::vector<Entry> out;
    std::lock_guard lk(mu_);
    std::erase_if(entries_, [&](const Entry& e) {
        if (e.level >= level) {
            out.push_back(e);
            return true;
        }
        return false;
    });
    return out;
}

std::size_t LogCapture::errorCount() const {
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    for (auto& e : entries_) n += e.level >= log::Level::error;
    return n;
}

void LeakCheckedTest::SetUp() {
    fds_ = openFds();
    threads_ = threadCount();
}

void LeakCheckedTest::TearDown() {
    checkLogs(logs);
    checkLeaks(fds_, threads_);
}

void ReactorTest::SetUp() {
    fds_ = openFds();
    threads_ = threadCount();
    reactor_ = Reactor::create(GetParam());
}

void ReactorTest::TearDown() {
    EXPECT_TRUE(reactor_->getReaders().empty()) << "the test left readers registered";
    EXPECT_TRUE(reactor_->getWriters().empty()) << "the test left writers registered";
    EXPECT_TRUE(reactor_->getDelayedCalls().empty()) << "the test left pending DelayedCalls";
    reactor_->removeAll();
    reactor_.reset();
    checkLogs(logs);
    checkLeaks(fds_, threads_);
}

void ReactorTest::runReactor(double timeoutSeconds, bool installSignalHandlers) {
    runReactor(*reactor_, timeoutSeconds, installSignalHandlers);
}

void ReactorTest::runReactor(Reactor& r, double timeoutSeconds, bool installSignalHandlers) {
    bool timedOut = false;
    auto guard = r.callLater(timeoutSeconds, [&] {
        timedOut = true;
        r.crash();
    });
    r.run(installSignalHandlers);
    if (guard.active()) guard.cancel();
    if (timedOut) ADD_FAILURE() << "reactor still running after " << timeoutSeconds << " s: the test hung";
}

Pipe::Pipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
    readFd = p[0];
    writeFd = p[1];
}
Pipe::~Pipe() {
    closeRead();
    closeWrite();
}
void Pipe::closeRead() {
    if (readFd >= 0) ::close(readFd);
    readFd = -1;
}
void Pipe::closeWrite() {
    if (writeFd >= 0) ::close(writeFd);
    writeFd = -1;
}

SocketPair::SocketPair() {
    int s[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) != 0)
        throw std::runtime_error("socketpair failed");
    a = s[0];
    b = s[1];
}
SocketPair::~SocketPair() {
    closeA();
    closeB();
}
void SocketPair::closeA() {
    if (a >= 0) ::close(a);
    a = -1;
}
void SocketPair::closeB() {
    if (b >= 0) ::close(b);
    b = -1;
}

Reason FakeDescriptor::doRead() {
    ++reads;
    return onRead ? onRead() : std::nullopt;
}
Reason FakeDescriptor::doWrite() {
    ++writes;
    return onWrite ? onWrite() : std::nullopt;
}
void FakeDescriptor::connectionLost(const Failure& reason) {
    ++lost;
    lostReason = reason;
    if (onLost) onLost(reason);
}
void FakeDescriptor::readConnectionLost(const Failure& reason) {
    ++readLost;
    readLostReason = reason;
    if (onReadLost) onReadLost(reason);
}
void FakeDescriptor::writeConnectionLost(const Failure&) {}

BelowFdSetsizeTaken::BelowFdSetsizeTaken() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        why_ = "getrlimit failed";
        return;
    }
    constexpr rlim_t kNeeded = FD_SETSIZE + 64;
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < kNeeded) {
        why_ = "RLIMIT_NOFILE's hard limit (" + std::to_string(lim.rlim_max) + ") is too low";
        return;
    }
    oldSoft_ = lim.rlim_cur;
    if (lim.rlim_cur < kNeeded) {
        lim.rlim_cur = kNeeded;
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
            why_ = "setrlimit failed";
            return;
        }
        raised_ = true;
    }
    for (;;) {
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            why_ = "open(/dev/null) failed";
            return;
        }
        if (fd >= FD_SETSIZE) {
            ::close(fd);
            return;
        }
        fds_.push_back(fd);
    }
}

void BelowFdSetsizeTaken::release() noexcept {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
}

BelowFdSetsizeTaken::~BelowFdSetsizeTaken() {
    release();
    if (raised_) {
        rlimit lim{};
        ::getrlimit(RLIMIT_NOFILE, &lim);
        lim.rlim_cur = static_cast<rlim_t>(oldSoft_);
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

}  // namespace weft::test
