// inotify.md INO-1..INO-24: INotify on real files in temporary directories
// and a real inotify instance, on every backend; the record decoder on
// hand-built buffers; hand-built records through the notifier's own read path
// (its descriptor number is pointed at a pipe); the syscall seam only for
// faults a real system does not produce on demand (EMFILE from
// inotify_init1, ENOSPC and EACCES — we run as root — from inotify_add_watch,
// a failing close or getdents64).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <weft/internet/error.hpp>
#include <weft/internet/inotify.hpp>

#include "support/faults.hpp"
#include "support/reactortest.hpp"
#include "support/udphelpers.hpp"  // TempDir

using namespace weft;
using namespace weft::test;
using namespace weft::inotify;
namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

struct Seen {
    std::string path;
    std::uint32_t mask;
    std::uint32_t cookie;
    int wd;
};

// Records what its callback receives; `hook` runs inside the callback.
struct Recorder {
    std::vector<Seen> events;
    std::function<void(const Event&)> hook;

    static Callback callback(const std::shared_ptr<Recorder>& self) {
        return [self](const Event& e) {
            self->events.push_back({e.path.native(), e.mask, e.cookie, e.watch.descriptor()});
            if (self->hook) self->hook(e);
        };
    }
    std::size_t count(const std::string& path, std::uint32_t bits) const {
        return static_cast<std::size_t>(std::count_if(
            events.begin(), events.end(), [&](const Seen& s) { return s.path == path && (s.mask & bits) == bits; }));
    }
    bool has(const std::string& path, std::uint32_t bits) const { return count(path, bits) > 0; }
    std::set<std::string> paths() const {
        std::set<std::string> out;
        for (auto& e : events) out.insert(e.path);
        return out;
    }
};

void touch(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    ::close(fd);
}

void writeFile(const std::string& path, std::string_view data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
}

// One inotify record as the kernel lays it out: header, then the name padded
// with NULs to `nameLength` bytes (default: the name and at least one NUL,
// rounded up to 16, as the kernel does).
std::string record(std::int32_t wd, std::uint32_t mask, std::uint32_t cookie, std::string_view name = {},
                   std::size_t nameLength = SIZE_MAX) {
    if (nameLength == SIZE_MAX) nameLength = name.empty() ? 0 : (name.size() + 16) / 16 * 16;
    std::string out(16 + nameLength, '\0');
    auto len = static_cast<std::uint32_t>(nameLength);
    std::memcpy(out.data(), &wd, 4);
    std::memcpy(out.data() + 4, &mask, 4);
    std::memcpy(out.data() + 8, &cookie, 4);
    std::memcpy(out.data() + 12, &len, 4);
    if (!name.empty()) std::memcpy(out.data() + 16, name.data(), std::min(name.size(), nameLength));
    return out;
}

struct Decoded {
    std::int32_t wd;
    std::uint32_t mask, cookie;
    std::string name;
    bool operator==(const Decoded&) const = default;
};

std::span<const std::byte> bytesOf(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

EventDecoder::Status decodeInto(EventDecoder& d, std::string_view data, std::vector<Decoded>& out) {
    return d.feed(bytesOf(data), [&](const RawEvent& e) {
        out.push_back({e.wd, e.mask, e.cookie, std::string(e.name)});
        return true;
    });
}

// The pure parts: constants, names, the decoder.
class INotifyPure : public LeakCheckedTest {};

class INotifyTest : public ReactorTest {
protected:
    std::string path(std::string_view rel) const { return dir + "/" + std::string(rel); }
    std::shared_ptr<INotify> make(bool start = true) {
        auto n = std::make_shared<INotify>(reactor());
        if (start) n->startReading();
        return n;
    }
    void close(const std::shared_ptr<INotify>& n) {
        n->loseConnection();
        EXPECT_TRUE(spinUntil([&] { return n->disconnected(); }, 5));
    }
    // Iterates until the recorder has an event with these bits at `p`.
    bool waitFor(const Recorder& r, const std::string& p, std::uint32_t bits, double seconds = 5) {
        return spinUntil([&] { return r.has(p, bits); }, seconds);
    }
    // A few iterations: enough for anything already queued to be read and dispatched.
    void settle() {
        for (int i = 0; i < 5; ++i) reactor().iterate(0.01);
    }

    TempDir tmp;  // removed with its contents when the test ends
    const std::string dir = tmp.path;
};

// Points the notifier's descriptor number at the read end of a pipe, so
// that it reads hand-built records through its real read path.
void readFromPipe(INotify& n, Pipe& p) {
    ASSERT_EQ(::dup3(p.readFd, n.fileno(), O_CLOEXEC), n.fileno());
    ASSERT_EQ(::fcntl(p.readFd, F_SETFL, O_NONBLOCK), 0);
}

void writeAll(int fd, std::string_view data) {
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
}

int unread(const Pipe& p) {
    int n = 0;
    ::ioctl(p.readFd, FIONREAD, &n);
    return n;
}

}  // namespace

// ---- INO-1, INO-2: the instance ------------------------------------------------------

TEST_P(INotifyTest, INO_1_descriptorIsNonBlockingAndCloseOnExecAndConnected) {
    // INO-1: a non-blocking, close-on-exec inotify descriptor; the object counts as connected at once.
    auto n = make(false);
    ASSERT_GE(n->fileno(), 0);
    EXPECT_TRUE(::fcntl(n->fileno(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(n->fileno(), F_GETFD) & FD_CLOEXEC);
    EXPECT_EQ(fs::read_symlink("/proc/self/fd/" + std::to_string(n->fileno())).native(), "anon_inode:inotify");
    EXPECT_TRUE(n->connected());
    close(n);
}

TEST_P(INotifyTest, INO_1_loseConnectionBeforeStartReadingClosesAndCallsConnectionLost) {
    // INO-1: loseConnection() before startReading() still closes and calls connectionLost (from the reactor).
    auto n = make(false);
    int fd = n->fileno();
    n->loseConnection();
    EXPECT_FALSE(n->disconnected());  // never on the caller's stack
    ASSERT_TRUE(spinUntil([&] { return n->disconnected(); }));
    EXPECT_EQ(n->fileno(), -1);
    EXPECT_EQ(openFds().count(fd), 0u);
}

TEST_P(INotifyTest, INO_1_initFailureThrowsINotifyError) {
    // INO-1: inotify_init1 failing (EMFILE) throws INotifyError naming the limit; nothing is left behind.
    ScopedFaults faults;
    faults.fail(Call::inotify_init1, EMFILE);
    try {
        auto n = std::make_shared<INotify>(reactor());
        FAIL() << "no exception";
    } catch (const INotifyError& e) {
        EXPECT_EQ(e.code().value(), EMFILE);
        EXPECT_THAT(e.what(), HasSubstr("max_user_instances"));
        EXPECT_THAT(e.what(), HasSubstr("Too many open files"));
    }
}

TEST_P(INotifyTest, INO_2_connectionLostClosesAndNoCallbackRunsAfterwards) {
    // INO-2: connectionLost closes the descriptor; events already queued are never delivered; the table is unusable.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
    touch(path("queued"));  // queued in the kernel, not yet read
    int fd = n->fileno();
    n->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return n->disconnected(); }));
    settle();
    EXPECT_TRUE(rec->events.empty());
    EXPECT_EQ(openFds().count(fd), 0u);
    try {
        n->watch(dir);
        FAIL() << "watch after connectionLost";
    } catch (const INotifyError& e) {
        EXPECT_EQ(e.code().value(), EBADF);
        EXPECT_THAT(e.what(), HasSubstr(dir));
    }
    EXPECT_THROW(n->ignore(dir), std::out_of_range);
    EXPECT_TRUE(n->watchedPaths().empty());
}

TEST_P(INotifyTest, INO_2_failingCloseIsLoggedNotThrown) {
    // INO-2: a failing close of the inotify descriptor is logged, not thrown.
    auto n = make();
    int fd = n->fileno();
    {
        ScopedFaults faults;
        faults.onlyFd(fd).fail(Call::close, EIO);
        n->loseConnection();
        ASSERT_TRUE(spinUntil([&] { return n->disconnected(); }));
        EXPECT_EQ(faults.calls(Call::close), 1u);
    }
    auto logged = logs.flush(log::Level::error);
    ASSERT_EQ(logged.size(), 1u);
    EXPECT_THAT(logged[0].message, HasSubstr("Couldn't close INotify file descriptor"));
    ::close(fd);  // the injected failure left the real descriptor open
}

// ---- INO-3, INO-4: masks ---------------------------------------------------------------

TEST_F(INotifyPure, INO_3_constantsHaveTwistedsValues) {
    // INO-3: every flag's value, and the combinations IN_CLOSE, IN_MOVED, IN_CHANGED, IN_WATCH_MASK (0x2fc6).
    EXPECT_EQ(IN_ACCESS, 0x1u);
    EXPECT_EQ(IN_MODIFY, 0x2u);
    EXPECT_EQ(IN_ATTRIB, 0x4u);
    EXPECT_EQ(IN_CLOSE_WRITE, 0x8u);
    EXPECT_EQ(IN_CLOSE_NOWRITE, 0x10u);
    EXPECT_EQ(IN_OPEN, 0x20u);
    EXPECT_EQ(IN_MOVED_FROM, 0x40u);
    EXPECT_EQ(IN_MOVED_TO, 0x80u);
    EXPECT_EQ(IN_CREATE, 0x100u);
    EXPECT_EQ(IN_DELETE, 0x200u);
    EXPECT_EQ(IN_DELETE_SELF, 0x400u);
    EXPECT_EQ(IN_MOVE_SELF, 0x800u);
    EXPECT_EQ(IN_UNMOUNT, 0x2000u);
    EXPECT_EQ(IN_Q_OVERFLOW, 0x4000u);
    EXPECT_EQ(IN_IGNORED, 0x8000u);
    EXPECT_EQ(IN_ONLYDIR, 0x01000000u);
    EXPECT_EQ(IN_DONT_FOLLOW, 0x02000000u);
    EXPECT_EQ(IN_MASK_ADD, 0x20000000u);
    EXPECT_EQ(IN_ISDIR, 0x40000000u);
    EXPECT_EQ(IN_ONESHOT, 0x80000000u);
    EXPECT_EQ(IN_CLOSE, 0x18u);
    EXPECT_EQ(weft::inotify::IN_MOVED, 0xc0u);
    EXPECT_EQ(weft::inotify::IN_CHANGED, 0x6u);
    EXPECT_EQ(weft::inotify::IN_WATCH_MASK, 0x2fc6u);
}

TEST_F(INotifyPure, INO_4_humanReadableMaskNamesKnownBitsInTwistedsOrder) {
    // INO-4: one name per known bit, always in the fixed order; unknown bits skipped.
    EXPECT_THAT(humanReadableMask(0xffffffff),
                ElementsAre("access", "modify", "attrib", "close_write", "close_nowrite", "open", "moved_from",
                            "moved_to", "create", "delete", "delete_self", "move_self", "unmount", "queue_overflow",
                            "ignored", "only_dir", "dont_follow", "mask_add", "is_dir", "one_shot"));
    EXPECT_THAT(humanReadableMask(IN_ISDIR | IN_CREATE | IN_ACCESS), ElementsAre("access", "create", "is_dir"));
    EXPECT_THAT(humanReadableMask(0x1000 | 0x10000 | 0x10000000), ElementsAre());  // no names for these
    EXPECT_TRUE(humanReadableMask(0).empty());
    // The inverse, used by `weft watch --events`.
    for (std::uint32_t bit = 1; bit != 0; bit <<= 1) {
        auto names = humanReadableMask(bit);
        if (names.empty()) continue;
        EXPECT_EQ(maskFromName(names[0]), bit) << names[0];
    }
    EXPECT_EQ(maskFromName("closewrite"), std::nullopt);
    EXPECT_EQ(maskFromName(""), std::nullopt);
}

// ---- INO-5..INO-9: watch and ignore ---------------------------------------------------

TEST_P(INotifyTest, INO_5_deleteSelfIsReportedEvenWithAnEmptyMask) {
    // INO-5: the kernel watch always includes IN_DELETE_SELF; watch returns a positive descriptor.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    touch(path("f"));
    int wd = n->watch(path("f"), 0, false, {Recorder::callback(rec)});
    EXPECT_GT(wd, 0);
    writeFile(path("f"), "not reported");
    ::unlink(path("f").c_str());
    ASSERT_TRUE(waitFor(*rec, path("f"), IN_DELETE_SELF));
    EXPECT_EQ(rec->events.front().mask & ~IN_ISDIR, IN_DELETE_SELF);  // nothing before it: the mask was empty
    EXPECT_EQ(rec->events.front().wd, wd);
    close(n);
}

TEST_P(INotifyTest, INO_5_flagsGoToTheKernelUnchanged) {
    // INO-5: IN_ONLYDIR makes the kernel refuse a file (ENOTDIR); IN_ONESHOT reports one event; IN_DONT_FOLLOW
    // watches a symbolic link itself.
    auto n = make();
    touch(path("file"));
    try {
        n->watch(path("file"), IN_ATTRIB | IN_ONLYDIR);
        FAIL() << "IN_ONLYDIR on a file";
    } catch (const INotifyError& e) {
        EXPECT_EQ(e.code().value(), ENOTDIR);
    }
    auto rec = std::make_shared<Recorder>();
    n->watch(path("file"), IN_ATTRIB | IN_ONESHOT, false, {Recorder::callback(rec)});
    ::chmod(path("file").c_str(), 0600);
    ASSERT_TRUE(waitFor(*rec, path("file"), IN_IGNORED));
    ::chmod(path("file").c_str(), 0644);
    settle();
    EXPECT_EQ(rec->count(path("file"), IN_ATTRIB), 1u);

    auto link = std::make_shared<Recorder>();
    ASSERT_EQ(::symlink(path("file").c_str(), path("link").c_str()), 0);
    n->watch(path("link"), IN_ATTRIB | IN_DONT_FOLLOW, false, {Recorder::callback(link)});
    ::chmod(path("file").c_str(), 0600);  // the target: not watched through the link
    auto marker = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE, false, {Recorder::callback(marker)});
    touch(path("marker"));
    ASSERT_TRUE(waitFor(*marker, path("marker"), IN_CREATE));
    EXPECT_TRUE(link->events.empty());
    close(n);
}

TEST_P(INotifyTest, INO_6_watchingAWatchedPathReturnsItsDescriptorAndChangesNothing) {
    // INO-6: a second watch() of the same path (spelled differently) returns the same descriptor; the new mask,
    // callbacks and autoAdd are ignored.
    auto n = make();
    auto first = std::make_shared<Recorder>(), second = std::make_shared<Recorder>();
    int wd = n->watch(dir, IN_CREATE, false, {Recorder::callback(first)});
    EXPECT_EQ(n->watch(dir + "/", IN_DELETE | IN_CREATE, true, {Recorder::callback(second)}), wd);
    EXPECT_EQ(n->watch(dir + "/./", IN_DELETE), wd);
    ::mkdir(path("sub").c_str(), 0755);  // autoAdd was not taken over
    touch(path("f"));
    ::unlink(path("f").c_str());
    touch(path("marker"));
    ASSERT_TRUE(waitFor(*first, path("marker"), IN_CREATE));
    settle();
    EXPECT_TRUE(second->events.empty());
    EXPECT_FALSE(first->has(path("f"), IN_DELETE));  // the kernel mask was not changed
    EXPECT_FALSE(n->isWatched(path("sub")));
    EXPECT_EQ(n->watchedPaths().size(), 1u);
    close(n);
}

TEST_P(INotifyTest, INO_7_missingPathThrowsINotifyErrorNamingIt) {
    // INO-7: a path that does not exist: INotifyError with ENOENT, naming the path.
    auto n = make();
    try {
        n->watch(path("missing"));
        FAIL() << "no exception";
    } catch (const INotifyError& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
        EXPECT_THAT(e.what(), HasSubstr("'" + path("missing") + "'"));
        EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
    }
    EXPECT_TRUE(n->watchedPaths().empty());
    close(n);
}

TEST_P(INotifyTest, INO_7_permissionAndWatchLimitErrorsSayWhatHappened) {
    // INO-7: a path that may not be watched (EACCES), and the watch limit (ENOSPC), each throw INotifyError
    // naming the path and the errno (seam: root may watch anything, and the limit is system-wide).
    auto n = make();
    {
        ScopedFaults faults;
        faults.fail(Call::inotify_add_watch, EACCES).fail(Call::inotify_add_watch, ENOSPC);
        try {
            n->watch(dir);
            FAIL() << "no EACCES";
        } catch (const INotifyError& e) {
            EXPECT_EQ(e.code().value(), EACCES);
            EXPECT_THAT(e.what(), HasSubstr(dir));
            EXPECT_THAT(e.what(), HasSubstr("Permission denied"));
        }
        try {
            n->watch(dir);
            FAIL() << "no ENOSPC";
        } catch (const INotifyError& e) {
            EXPECT_EQ(e.code().value(), ENOSPC);
            EXPECT_THAT(e.what(), HasSubstr(dir));
            EXPECT_THAT(e.what(), HasSubstr("/proc/sys/fs/inotify/max_user_watches"));
        }
    }
    EXPECT_TRUE(n->watchedPaths().empty());
    EXPECT_GT(n->watch(dir), 0);  // nothing stuck
    close(n);
}

TEST_P(INotifyTest, INO_8_ignoredPathDeliversNothingMore) {
    // INO-8: after ignore(path) no event for it is delivered, not even its IN_IGNORED.
    auto n = make();
    ::mkdir(path("a").c_str(), 0755);
    ::mkdir(path("b").c_str(), 0755);
    auto a = std::make_shared<Recorder>(), b = std::make_shared<Recorder>();
    n->watch(path("a"), IN_CREATE, false, {Recorder::callback(a)});
    n->watch(path("b"), IN_CREATE, false, {Recorder::callback(b)});
    touch(path("a/before"));  // read after the ignore: not delivered either
    n->ignore(path("a"));
    touch(path("a/after"));
    touch(path("b/marker"));
    ASSERT_TRUE(waitFor(*b, path("b/marker"), IN_CREATE));
    settle();
    EXPECT_TRUE(a->events.empty());
    EXPECT_FALSE(n->isWatched(path("a")));
    close(n);
}

TEST_P(INotifyTest, INO_8_ignoringAPathThatIsNotWatchedThrowsOutOfRange) {
    // INO-8: ignore() of a path that is not watched throws std::out_of_range naming it.
    auto n = make();
    try {
        n->ignore(path("never"));
        FAIL() << "no exception";
    } catch (const std::out_of_range& e) {
        EXPECT_THAT(e.what(), HasSubstr(path("never")));
    }
    n->watch(dir);
    n->ignore(dir);
    EXPECT_THROW(n->ignore(dir), std::out_of_range);
    close(n);
}

TEST_P(INotifyTest, INO_8_pathMayBeWatchedIgnoredAndWatchedAgain) {
    // INO-8: watch, ignore, watch again (three times over): the last watch delivers.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    for (int i = 0; i < 3; ++i) {
        n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
        n->ignore(dir);
    }
    n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
    touch(path("f"));
    ASSERT_TRUE(waitFor(*rec, path("f"), IN_CREATE));
    EXPECT_EQ(rec->count(path("f"), IN_CREATE), 1u);
    close(n);
}

TEST_P(INotifyTest, INO_9_recursiveWatchCoversTheTreeAndReturnsTheRootDescriptor) {
    // INO-9: recursive=true watches path and every directory below it with the same mask and callbacks; it
    // returns the root's descriptor (Better than Twisted); calling it again is harmless.
    fs::create_directories(path("t/a/b"));
    fs::create_directories(path("t/c"));
    touch(path("t/file"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    int wd = n->watch(path("t"), IN_CREATE, false, {Recorder::callback(rec)}, true);
    EXPECT_EQ(n->isWatched(path("t")), wd);
    std::vector<FilePath> want{path("t"), path("t/a"), path("t/a/b"), path("t/c")};
    EXPECT_EQ(n->watchedPaths(), want);
    EXPECT_EQ(n->watch(path("t"), IN_CREATE, false, {Recorder::callback(rec)}, true), wd);
    EXPECT_EQ(n->watchedPaths(), want);
    touch(path("t/a/b/deep"));
    touch(path("t/c/other"));
    ASSERT_TRUE(waitFor(*rec, path("t/a/b/deep"), IN_CREATE));
    ASSERT_TRUE(waitFor(*rec, path("t/c/other"), IN_CREATE));
    EXPECT_EQ(rec->events.size(), 2u);  // one callback list, once per event
    close(n);
}

TEST_P(INotifyTest, INO_9_recursiveWatchDoesNotFollowSymbolicLinks) {
    // INO-9: a symbolic link to a directory below the path is not descended into (no cycles, no escape).
    fs::create_directories(path("t/real"));
    fs::create_directories(path("outside/deeper"));
    ASSERT_EQ(::symlink(path("outside").c_str(), path("t/link").c_str()), 0);
    ASSERT_EQ(::symlink(path("t").c_str(), path("t/real/loop").c_str()), 0);
    auto n = make();
    n->watch(path("t"), IN_CREATE, false, {}, true);
    EXPECT_EQ(n->watchedPaths(), (std::vector<FilePath>{path("t"), path("t/real")}));
    close(n);
}

TEST_P(INotifyTest, INO_9_failedRecursiveWatchLeavesNothingBehind) {
    // INO-9: a recursive watch that fails below the path removes the watches it had added, then throws.
    fs::create_directories(path("t/a/b"));
    auto n = make();
    {
        ScopedFaults faults;
        faults.pass(Call::inotify_add_watch, 2).fail(Call::inotify_add_watch, ENOSPC);
        try {
            n->watch(path("t"), IN_CREATE, false, {}, true);
            FAIL() << "no exception";
        } catch (const INotifyError& e) {
            EXPECT_EQ(e.code().value(), ENOSPC);
            EXPECT_THAT(e.what(), HasSubstr(path("t/a/b")));
        }
        EXPECT_EQ(faults.calls(Call::inotify_rm_watch), 2u);
    }
    EXPECT_TRUE(n->watchedPaths().empty());
    close(n);
}

TEST_P(INotifyTest, INO_9_aRecursiveWatchWithNoDescriptorFreeFailsAndSaysSo) {
    // Listing a directory needs a descriptor; with none free (EMFILE) every directory below the root was
    // skipped as if it had vanished: watch() returned and only the root was watched, silently. It now throws
    // INotifyError naming the directory and the errno, and leaves nothing behind (Twisted raises OSError).
    // EMFILE through the syscall seam: with a real RLIMIT_NOFILE at its limit, UndefinedBehaviorSanitizer's
    // own check of a vtable pointer (a pipe it makes to probe memory) fails and reports a false error.
    fs::create_directories(path("t/a/b"));
    auto n = make();
    {
        ScopedFaults faults;
        faults.fail(Call::open, EMFILE);
        try {
            n->watch(path("t"), IN_CREATE, false, {}, true);
            ADD_FAILURE() << "no exception";
        } catch (const INotifyError& e) {
            EXPECT_EQ(e.code().value(), EMFILE);
            EXPECT_THAT(e.what(), HasSubstr(path("t")));
        }
    }
    EXPECT_TRUE(n->watchedPaths().empty());
    close(n);
}

TEST_P(INotifyTest, INO_18_aScanThatCannotOpenTheNewDirectoryIsLogged) {
    // The scan of a new directory (autoAdd) that failed for want of a descriptor returned as if the
    // directory had vanished: what it held was never reported and nothing was said. It is logged now.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE, true, {Recorder::callback(rec)});
    fs::create_directories(path("new"));
    touch(path("new/held"));
    {
        ScopedFaults faults;  // EMFILE through the seam, as above
        faults.fail(Call::open, EMFILE);
        ASSERT_TRUE(waitFor(*rec, path("new"), IN_CREATE));
        settle();
        EXPECT_EQ(faults.calls(Call::open), 1u);
    }
    auto errors = logs.flush(log::Level::error);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_THAT(errors[0].message, HasSubstr(path("new")));
    EXPECT_THAT(errors[0].message, HasSubstr("Too many open files"));
    close(n);
}

// ---- INO-10..INO-15: event delivery --------------------------------------------------

TEST_P(INotifyTest, INO_10_callbacksRunInOrderWithTheWatchedOrTheEntryPath) {
    // INO-10: each event goes to every callback of its watch in list order, with the watched path (event on
    // the watch itself) or path/name (an entry); Twisted's (watch, path, mask) shape works too.
    auto n = make();
    std::vector<std::string> order;
    std::vector<std::string> twisted;
    int wd = n->watch(dir, IN_ATTRIB | IN_CREATE, false,
                      {[&](const Event& e) { order.push_back("1:" + e.path.native()); },
                       [&](Watch& w, const FilePath& p, std::uint32_t mask) {
                           EXPECT_EQ(w.path(), FilePath(dir));
                           twisted.push_back(p.native() + (mask & IN_CREATE ? " create" : " attrib"));
                           order.push_back("2:" + p.native());
                       }});
    ::chmod(dir.c_str(), 0755);
    touch(path("child"));
    ASSERT_TRUE(spinUntil([&] { return order.size() == 4; }));
    EXPECT_THAT(order, ElementsAre("1:" + dir, "2:" + dir, "1:" + path("child"), "2:" + path("child")));
    EXPECT_THAT(twisted, ElementsAre(dir + " attrib", path("child") + " create"));
    EXPECT_EQ(n->isWatched(dir), wd);
    close(n);
}

namespace {
struct Case {
    const char* name;
    std::uint32_t bit;
    bool watchFile;    // watch the file itself, else the directory
    const char* path;  // relative path of the expected event
};
}  // namespace

TEST_P(INotifyTest, INO_11_eachKindOfChangeIsReported) {
    // INO-11: ACCESS, MODIFY, ATTRIB, CLOSE_WRITE, CLOSE_NOWRITE, OPEN, MOVED_FROM, MOVED_TO, CREATE, DELETE,
    // DELETE_SELF and MOVE_SELF are delivered for reading, writing, a metadata change, closing after writing,
    // closing a read-only open, opening, moving out, moving in, creating, deleting an entry, deleting and
    // renaming the watched object.
    fs::create_directories(path("w"));
    fs::create_directories(path("out"));
    auto run = [&](std::uint32_t bit, const std::string& watched, const std::function<void()>& act,
                   const std::string& expected) {
        auto n = make();
        auto rec = std::make_shared<Recorder>();
        n->watch(watched, bit, false, {Recorder::callback(rec)});
        act();
        EXPECT_TRUE(waitFor(*rec, expected, bit)) << humanReadableMask(bit)[0] << " at " << expected;
        close(n);
    };
    std::string f = path("w/f");
    writeFile(f, "data");
    run(
        IN_ACCESS, f, [&] { std::ifstream(f).get(); }, f);
    run(
        IN_MODIFY, f, [&] { writeFile(f, "more"); }, f);
    run(
        IN_ATTRIB, f, [&] { ::chmod(f.c_str(), 0600); }, f);
    run(
        IN_CLOSE_WRITE, f, [&] { writeFile(f, "x"); }, f);
    run(
        IN_CLOSE_NOWRITE, f, [&] { std::ifstream(f).get(); }, f);
    run(
        IN_OPEN, f, [&] { std::ifstream(f).get(); }, f);
    run(
        IN_MOVED_FROM, path("w"), [&] { ::rename(f.c_str(), path("out/f").c_str()); }, f);
    run(
        IN_MOVED_TO, path("w"), [&] { ::rename(path("out/f").c_str(), f.c_str()); }, f);
    run(
        IN_CREATE, path("w"), [&] { touch(path("w/new")); }, path("w/new"));
    run(
        IN_DELETE, path("w"), [&] { ::unlink(path("w/new").c_str()); }, path("w/new"));
    run(
        IN_MOVE_SELF, f, [&] { ::rename(f.c_str(), path("w/g").c_str()); }, f);
    run(
        IN_DELETE_SELF, path("w/g"), [&] { ::unlink(path("w/g").c_str()); }, path("w/g"));
}

TEST_F(INotifyPure, INO_12_decodesSeveralRecordsOfOneBuffer) {
    // INO-12: 16-byte headers (signed wd, mask, cookie, length), names padded with NULs that are removed,
    // length 0 meaning no name; several records in one buffer.
    EventDecoder d;
    std::vector<Decoded> out;
    std::string data = record(1, IN_CREATE, 0, "a.txt") + record(2, IN_ATTRIB, 0) + record(-1, IN_Q_OVERFLOW, 0) +
                       record(7, IN_MOVED_FROM, 42, "x", 64) + record(3, IN_DELETE, 0, std::string(255, 'n'));
    EXPECT_EQ(decodeInto(d, data, out), EventDecoder::Status::ok);
    EXPECT_THAT(out, ElementsAre(Decoded{1, IN_CREATE, 0, "a.txt"}, Decoded{2, IN_ATTRIB, 0, ""},
                                 Decoded{-1, IN_Q_OVERFLOW, 0, ""}, Decoded{7, IN_MOVED_FROM, 42, "x"},
                                 Decoded{3, IN_DELETE, 0, std::string(255, 'n')}));
    EXPECT_EQ(d.buffered(), 0u);
    // Only trailing NULs go: a NUL inside the name field is kept as Twisted's rstrip keeps it.
    out.clear();
    std::string odd = record(1, IN_CREATE, 0, std::string("a\0b", 3), 16);
    EXPECT_EQ(decodeInto(d, odd, out), EventDecoder::Status::ok);
    EXPECT_EQ(out.at(0).name, std::string("a\0b", 3));
}

TEST_P(INotifyTest, INO_12_recordsForUnknownDescriptorsAreDroppedSilently) {
    // INO-12: records whose watch descriptor is not in the table are dropped; the others are delivered.
    auto n = make(false);
    auto rec = std::make_shared<Recorder>();
    int wd = n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
    Pipe p;
    readFromPipe(*n, p);
    n->startReading();
    writeAll(p.writeFd, record(wd + 100, IN_CREATE, 0, "stranger") + record(wd, IN_CREATE, 0, "known") +
                            record(-7, IN_CREATE, 0, "negative"));
    ASSERT_TRUE(waitFor(*rec, path("known"), IN_CREATE));
    settle();
    EXPECT_EQ(rec->events.size(), 1u);
    EXPECT_EQ(logs.flush(log::Level::warn).size(), 0u);
    close(n);
}

TEST_F(INotifyPure, INO_13_recordSplitAnywhereIsDecodedWhole) {
    // INO-13: whatever way the stream is cut (inside a header, inside a name, between records), every record is
    // decoded whole, in order (Better than Twisted: it cut "a.txt" to "a.tx" and lost step).
    std::string data = record(1, IN_CREATE, 0, "a.txt") + record(2, IN_MOVED_FROM, 9, "some-longer-name") +
                       record(3, IN_ATTRIB, 0) + record(4, IN_DELETE, 0, std::string(200, 'z'));
    std::vector<Decoded> whole;
    {
        EventDecoder d;
        decodeInto(d, data, whole);
    }
    ASSERT_EQ(whole.size(), 4u);
    for (std::size_t a = 0; a <= data.size(); ++a) {
        for (std::size_t b = a; b <= data.size(); b += 7) {
            EventDecoder d;
            std::vector<Decoded> out;
            decodeInto(d, std::string_view(data).substr(0, a), out);
            decodeInto(d, std::string_view(data).substr(a, b - a), out);
            decodeInto(d, std::string_view(data).substr(b), out);
            ASSERT_EQ(out, whole) << "cut at " << a << " and " << b;
            ASSERT_EQ(d.buffered(), 0u);
        }
    }
    // Byte by byte.
    EventDecoder d;
    std::vector<Decoded> out;
    for (char c : data) decodeInto(d, std::string_view(&c, 1), out);
    EXPECT_EQ(out, whole);
}

TEST_F(INotifyPure, INO_13_decoderKeepsWhatAStopLeftAndRefusesImpossibleLengths) {
    // INO-13: a sink that stops keeps the rest for the next feed; a name longer than any the kernel makes is a
    // corrupt stream, refused for good rather than buffered.
    std::string data = record(1, IN_CREATE, 0, "one") + record(2, IN_CREATE, 0, "two") + record(3, IN_CREATE, 0);
    EventDecoder d;
    std::vector<std::string> names;
    auto stopAfterOne = [&](const RawEvent& e) {
        names.emplace_back(e.name);
        return false;
    };
    EXPECT_EQ(d.feed(bytesOf(std::string_view(data).substr(0, 50)), stopAfterOne), EventDecoder::Status::stopped);
    EXPECT_THAT(names, ElementsAre("one"));
    EXPECT_EQ(d.feed(bytesOf(std::string_view(data).substr(50)), stopAfterOne), EventDecoder::Status::stopped);
    EXPECT_EQ(d.feed({}, stopAfterOne), EventDecoder::Status::stopped);
    EXPECT_EQ(d.feed({}, stopAfterOne), EventDecoder::Status::ok);  // nothing left
    EXPECT_THAT(names, ElementsAre("one", "two", ""));
    EXPECT_EQ(d.buffered(), 0u);

    std::vector<Decoded> out;
    std::string bad = record(1, IN_CREATE, 0, "ok") + record(2, IN_CREATE, 0).substr(0, 12) +
                      std::string("\xff\xff\x00\x00", 4) + record(3, IN_CREATE, 0, "after");
    EXPECT_EQ(decodeInto(d, bad, out), EventDecoder::Status::corrupt);
    EXPECT_TRUE(d.corrupt());
    EXPECT_EQ(decodeInto(d, record(4, IN_CREATE, 0), out), EventDecoder::Status::corrupt);
    EXPECT_THAT(out, ElementsAre(Decoded{1, IN_CREATE, 0, "ok"}));
    d.reset();
    EXPECT_EQ(decodeInto(d, record(5, IN_CREATE, 0), out), EventDecoder::Status::ok);
    EXPECT_EQ(out.size(), 2u);
}

TEST_P(INotifyTest, INO_13_recordSplitAcrossReadsIsDeliveredWhole) {
    // INO-13: through the notifier's read path: a record whose name arrives in a later read is delivered whole.
    auto n = make(false);
    auto rec = std::make_shared<Recorder>();
    int wd = n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
    Pipe p;
    readFromPipe(*n, p);
    n->startReading();
    std::string data = record(wd, IN_CREATE, 0, "first") + record(wd, IN_CREATE, 0, "a.txt");
    writeAll(p.writeFd, std::string_view(data).substr(0, data.size() - 14));  // cut inside "a.txt"'s name
    ASSERT_TRUE(spinUntil([&] { return unread(p) == 0 && rec->events.size() == 1; }));
    settle();
    EXPECT_EQ(rec->events.size(), 1u);
    writeAll(p.writeFd, std::string_view(data).substr(data.size() - 14));
    ASSERT_TRUE(waitFor(*rec, path("a.txt"), IN_CREATE));
    EXPECT_EQ(rec->events.size(), 2u);
    close(n);
}

TEST_P(INotifyTest, INO_13_readsHaveRoomForTheLongestRecordWhateverBufferSize) {
    // INO-13: each read has room for sizeof(inotify_event) + NAME_MAX + 1 bytes even when bufferSize is smaller
    // (the kernel refuses a read that cannot hold the next record with EINVAL).
    auto n = make();
    n->bufferSize = 1;
    auto rec = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
    std::string longName(255, 'L');
    touch(path(longName));
    touch(path("short"));
    ASSERT_TRUE(waitFor(*rec, path("short"), IN_CREATE));
    EXPECT_TRUE(rec->has(path(longName), IN_CREATE));
    EXPECT_TRUE(n->connected());
    close(n);
}

TEST_P(INotifyTest, INO_14_eventsArriveInKernelOrderAndCreationCallbacksRunBeforeTheAutoWatch) {
    // INO-14: events in the order the kernel reports them; for a creation that triggers automatic watching, the
    // creation's callbacks run before the new directory is watched.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    std::optional<bool> watchedInsideCallback;
    rec->hook = [&](const Event& e) {
        if (e.path.native() == path("sub") && (e.mask & IN_CREATE))
            watchedInsideCallback = n->isWatched(path("sub")).has_value();
    };
    n->watch(dir, IN_CREATE | IN_MODIFY | IN_DELETE, true, {Recorder::callback(rec)});
    writeFile(path("f"), "1");
    ::unlink(path("f").c_str());
    ::mkdir(path("sub").c_str(), 0755);
    ASSERT_TRUE(waitFor(*rec, path("sub"), IN_CREATE | IN_ISDIR));
    std::vector<std::uint32_t> masks;
    for (auto& e : rec->events) masks.push_back(e.mask);
    EXPECT_THAT(masks, ElementsAre(IN_CREATE, IN_MODIFY, IN_DELETE, IN_CREATE | IN_ISDIR));
    EXPECT_EQ(watchedInsideCallback, false);
    EXPECT_TRUE(n->isWatched(path("sub")));
    settle();  // the scan of the new (empty) directory
    close(n);
}

TEST_P(INotifyTest, INO_15_theTwoHalvesOfAMoveCarryTheSameCookie) {
    // INO-15 (Better than Twisted): MOVED_FROM (old parent, old name) and MOVED_TO (new parent, new name) carry
    // the kernel's cookie, the same on both, non-zero.
    fs::create_directories(path("a"));
    fs::create_directories(path("b"));
    touch(path("a/f"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(path("a"), IN_MOVED, false, {Recorder::callback(rec)});
    n->watch(path("b"), IN_MOVED, false, {Recorder::callback(rec)});
    ::rename(path("a/f").c_str(), path("b/g").c_str());
    ::rename(path("b/g").c_str(), path("b/h").c_str());
    ASSERT_TRUE(spinUntil([&] { return rec->events.size() == 4; }));
    auto& e = rec->events;
    EXPECT_EQ(e[0].path, path("a/f"));
    EXPECT_EQ(e[0].mask, IN_MOVED_FROM);
    EXPECT_EQ(e[1].path, path("b/g"));
    EXPECT_EQ(e[1].mask, IN_MOVED_TO);
    EXPECT_NE(e[0].cookie, 0u);
    EXPECT_EQ(e[0].cookie, e[1].cookie);
    EXPECT_EQ(e[2].cookie, e[3].cookie);
    EXPECT_NE(e[0].cookie, e[2].cookie);
    close(n);
}

TEST_P(INotifyTest, INO_15_directoryMovedWithinTheTreeKeepsItsWatchesUnderItsNewPath) {
    // INO-15 (Better than Twisted): when both halves of a directory move are seen, the stored paths of that
    // directory and of the watches below it are rewritten; later events carry the new paths.
    fs::create_directories(path("t/a/sub/deeper"));
    fs::create_directories(path("t/b"));
    fs::create_directories(path("t/a-sibling"));  // sorts between "a" and "a/…" in byte order: must not move
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(path("t"), IN_CREATE | IN_MOVED | IN_MOVE_SELF, false, {Recorder::callback(rec)}, true);
    ::rename(path("t/a").c_str(), path("t/b/moved").c_str());
    ASSERT_TRUE(waitFor(*rec, path("t/b/moved"), IN_MOVED_TO | IN_ISDIR));
    ASSERT_TRUE(waitFor(*rec, path("t/b/moved"), IN_MOVE_SELF));  // the directory's own watch, renamed already
    EXPECT_EQ(n->watchedPaths(), (std::vector<FilePath>{path("t"), path("t/a-sibling"), path("t/b"), path("t/b/moved"),
                                                        path("t/b/moved/sub"), path("t/b/moved/sub/deeper")}));
    touch(path("t/b/moved/sub/deeper/f"));
    ASSERT_TRUE(waitFor(*rec, path("t/b/moved/sub/deeper/f"), IN_CREATE));
    EXPECT_FALSE(n->isWatched(path("t/a")));
    EXPECT_FALSE(rec->has(path("t/a/sub/deeper/f"), IN_CREATE));
    close(n);
}

TEST_P(INotifyTest, INO_15_INO_16_aDirectoryMovedOutOfTheTreeLeavesNoWatchAtItsOldPath) {
    // Only MOVED_FROM comes when a directory leaves the watched tree. Its watches (and those below it) end
    // then: a new directory made at the old path is watched afresh and reported (its events were lost to a
    // stale watch, which watch() also handed back), and what happens in the moved-away directory is not
    // reported under the in-tree path it no longer has.
    fs::create_directories(path("t/sub/deeper"));
    fs::create_directories(path("outside"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(path("t"), IN_CREATE | IN_MOVED | IN_DELETE, true, {Recorder::callback(rec)}, true);
    const int old = *n->isWatched(path("t/sub"));
    ::rename(path("t/sub").c_str(), path("outside/away").c_str());
    ASSERT_TRUE(waitFor(*rec, path("t/sub"), IN_MOVED_FROM | IN_ISDIR));
    settle();
    EXPECT_FALSE(n->isWatched(path("t/sub")));
    EXPECT_FALSE(n->isWatched(path("t/sub/deeper")));
    EXPECT_EQ(n->watchedPaths(), (std::vector<FilePath>{path("t")}));
    ::mkdir(path("t/sub").c_str(), 0755);
    ASSERT_TRUE(waitFor(*rec, path("t/sub"), IN_CREATE | IN_ISDIR));
    settle();
    ASSERT_TRUE(n->isWatched(path("t/sub")));
    EXPECT_NE(*n->isWatched(path("t/sub")), old);
    touch(path("t/sub/new"));
    ASSERT_TRUE(waitFor(*rec, path("t/sub/new"), IN_CREATE));
    touch(path("outside/away/elsewhere"));
    touch(path("outside/away/deeper/further"));
    touch(path("t/marker"));
    ASSERT_TRUE(waitFor(*rec, path("t/marker"), IN_CREATE));
    settle();
    EXPECT_FALSE(rec->has(path("t/sub/elsewhere"), IN_CREATE));
    EXPECT_FALSE(rec->has(path("t/sub/deeper/further"), IN_CREATE));
    close(n);
}

TEST_P(INotifyTest, INO_15_aDirectoryMovedOutAndBackUnderAnotherNameIsReportedOnce) {
    // Out of the tree and back in under a new name before weft read the events: the directory's watch comes
    // back with its new path (it was added a second time beside the stale one, and every event inside it
    // arrived twice, under the old and the new path).
    fs::create_directories(path("t/sub"));
    fs::create_directories(path("outside"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(path("t"), IN_CREATE | IN_MOVED, true, {Recorder::callback(rec)}, true);
    ::rename(path("t/sub").c_str(), path("outside/x").c_str());
    ::rename(path("outside/x").c_str(), path("t/back").c_str());
    ASSERT_TRUE(waitFor(*rec, path("t/back"), IN_MOVED_TO | IN_ISDIR));
    settle();
    EXPECT_EQ(n->watchedPaths(), (std::vector<FilePath>{path("t"), path("t/back")}));
    touch(path("t/back/f"));
    ASSERT_TRUE(waitFor(*rec, path("t/back/f"), IN_CREATE));
    settle();
    EXPECT_EQ(rec->count(path("t/back/f"), IN_CREATE), 1u);
    EXPECT_FALSE(rec->has(path("t/sub/f"), IN_CREATE));
    close(n);
}

TEST_P(INotifyTest, INO_8_INO_9_aRecursiveWatchOfARelativePathKeepsItsSubdirectoriesFindable) {
    // watch(".", recursive) stored "./a" for the subdirectory, which no lookup (normalised to "a") found:
    // isWatched and ignore missed it, and watch("a") added a second watch of the same directory.
    fs::create_directories(path("a/b"));
    struct Cwd {
        std::string old = fs::current_path();
        ~Cwd() { fs::current_path(old); }
    } cwd;
    fs::current_path(dir);
    auto n = make();
    int root = n->watch(".", IN_CREATE, false, {}, true);
    EXPECT_EQ(n->watchedPaths(), (std::vector<FilePath>{".", "a", "a/b"}));
    ASSERT_TRUE(n->isWatched("a"));
    EXPECT_EQ(n->isWatched("./a"), n->isWatched("a"));
    int a = *n->isWatched("a");
    EXPECT_EQ(n->watch("a"), a);  // the existing watch (INO-6)
    EXPECT_NO_THROW(n->ignore("./a/b"));
    EXPECT_EQ(n->watchedPaths(), (std::vector<FilePath>{".", "a"}));
    EXPECT_EQ(*n->isWatched("."), root);
    close(n);
}

// ---- INO-16..INO-20: automatic and recursive watching ---------------------------------

TEST_P(INotifyTest, INO_16_autoAddWatchesNewSubdirectoriesWithTheSameMaskAndCallbacks) {
    // INO-16: with autoAdd a created subdirectory is watched with the same mask (plus DELETE_SELF), callbacks
    // and autoAdd.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE, true, {Recorder::callback(rec)});
    ::mkdir(path("sub").c_str(), 0755);
    ASSERT_TRUE(waitFor(*rec, path("sub"), IN_CREATE | IN_ISDIR));
    ASSERT_TRUE(n->isWatched(path("sub")));
    settle();
    ::mkdir(path("sub/subsub").c_str(), 0755);
    ASSERT_TRUE(waitFor(*rec, path("sub/subsub"), IN_CREATE | IN_ISDIR));
    touch(path("sub/subsub/f"));
    ASSERT_TRUE(waitFor(*rec, path("sub/subsub/f"), IN_CREATE));
    writeFile(path("sub/subsub/f"), "not in the mask");
    ::rmdir(path("sub/subsub").c_str());  // fails (not empty); nothing to see
    touch(path("marker"));
    ASSERT_TRUE(waitFor(*rec, path("marker"), IN_CREATE));
    for (auto& e : rec->events) EXPECT_TRUE(e.mask & (IN_CREATE | IN_DELETE_SELF | IN_IGNORED)) << e.path;
    close(n);
}

TEST_P(INotifyTest, INO_17_withoutAutoAddNewSubdirectoriesAreNotWatched) {
    // INO-17: autoAdd=false: a new subdirectory is reported but not watched.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
    ::mkdir(path("sub").c_str(), 0755);
    ASSERT_TRUE(waitFor(*rec, path("sub"), IN_CREATE | IN_ISDIR));
    touch(path("sub/f"));
    touch(path("marker"));
    ASSERT_TRUE(waitFor(*rec, path("marker"), IN_CREATE));
    settle();
    EXPECT_FALSE(n->isWatched(path("sub")));
    EXPECT_FALSE(rec->has(path("sub/f"), IN_CREATE));
    close(n);
}

TEST_P(INotifyTest, INO_18_newDirectoryIsScannedAndWhatItHeldIsReported) {
    // INO-18: a tree made at once (mkdir -p a/b/c plus a file in each): every directory becomes watched and
    // every entry is reported — directories as CREATE|ISDIR, files as CREATE|CLOSE_WRITE — within a few
    // iterations (Twisted's test_complexSubdirectoryAutoAdd: six distinct paths).
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE, true, {Recorder::callback(rec)});
    fs::create_directories(path("a/b/c"));
    touch(path("a/f1"));
    touch(path("a/b/f2"));
    touch(path("a/b/c/f3"));
    ASSERT_TRUE(waitFor(*rec, path("a/b/c/f3"), IN_CREATE | IN_CLOSE_WRITE));
    ASSERT_TRUE(spinUntil([&] { return rec->paths().size() == 6; }));
    EXPECT_EQ(rec->paths(), (std::set<std::string>{path("a"), path("a/f1"), path("a/b"), path("a/b/f2"), path("a/b/c"),
                                                   path("a/b/c/f3")}));
    EXPECT_TRUE(rec->has(path("a/b"), IN_CREATE | IN_ISDIR));
    EXPECT_TRUE(rec->has(path("a/b/c"), IN_CREATE | IN_ISDIR));
    EXPECT_TRUE(rec->has(path("a/f1"), IN_CREATE | IN_CLOSE_WRITE));
    EXPECT_EQ(n->watchedPaths(), (std::vector<FilePath>{dir, path("a"), path("a/b"), path("a/b/c")}));
    settle();
    EXPECT_EQ(rec->paths().size(), 6u);
    close(n);
}

TEST_P(INotifyTest, INO_18_scanReportsOtherEntriesAsCreatedAndDoesNotFollowLinks) {
    // INO-18: an entry that is neither a file nor a directory (a symbolic link, a FIFO) found by the scan is
    // reported as the kernel reports its creation, IN_CREATE; a link to a directory is not watched.
    fs::create_directories(path("elsewhere"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(path("elsewhere"), IN_CREATE);  // a separate watch: must stay the only one there
    ::mkdir(path("w").c_str(), 0755);
    n->watch(path("w"), IN_CREATE, true, {Recorder::callback(rec)});
    fs::create_directories(path("w/new"));
    ASSERT_EQ(::symlink(path("elsewhere").c_str(), path("w/new/link").c_str()), 0);
    ASSERT_EQ(::mkfifo(path("w/new/fifo").c_str(), 0600), 0);
    ASSERT_TRUE(waitFor(*rec, path("w/new/link"), IN_CREATE));
    ASSERT_TRUE(waitFor(*rec, path("w/new/fifo"), IN_CREATE));
    EXPECT_FALSE(rec->has(path("w/new/link"), IN_ISDIR));
    EXPECT_FALSE(rec->has(path("w/new/link"), IN_CLOSE_WRITE));
    EXPECT_FALSE(n->isWatched(path("w/new/link")));
    close(n);
}

TEST_P(INotifyTest, INO_18_directoryThatVanishedBeforeItsScanIsSkipped) {
    // INO-18: a new directory removed before its scan runs is skipped, without an error. One whose listing
    // fails for another reason is skipped too, and said (Better than Twisted, which swallows every OSError
    // there): what it held is not reported.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    rec->hook = [&](const Event& e) {
        // Runs before the scan the automatic watch schedules (both are callLater(0), this one first).
        if (e.path.native() == path("gone") && (e.mask & IN_CREATE))
            reactor().callLater(0, [this] { ::rmdir(path("gone").c_str()); });
    };
    n->watch(dir, IN_CREATE, true, {Recorder::callback(rec)});
    ::mkdir(path("gone").c_str(), 0755);
    ASSERT_TRUE(waitFor(*rec, path("gone"), IN_IGNORED));  // its watch ended with it
    EXPECT_FALSE(n->isWatched(path("gone")));

    {
        ScopedFaults faults;
        faults.fail(Call::getdents64, EIO);
        fs::create_directories(path("unlistable/inner"));
        ASSERT_TRUE(waitFor(*rec, path("unlistable"), IN_CREATE | IN_ISDIR));
        ASSERT_TRUE(spinUntil([&] { return faults.calls(Call::getdents64) == 1; }));
        settle();
    }
    EXPECT_FALSE(rec->has(path("unlistable/inner"), IN_CREATE));
    auto errors = logs.flush(log::Level::error);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_THAT(errors[0].message, HasSubstr(path("unlistable")));
    EXPECT_THAT(errors[0].message, HasSubstr("Input/output error"));
    close(n);
}

TEST_P(INotifyTest, INO_19_directoryMovedIntoAnAutoAddTreeIsWatchedAndScanned) {
    // INO-19 (Better than Twisted): IN_MOVED_TO|IN_ISDIR is treated like creation for autoAdd: the directory is
    // watched and what it holds is reported.
    fs::create_directories(path("outside/m/n"));
    touch(path("outside/m/n/f"));
    ::mkdir(path("w").c_str(), 0755);
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(path("w"), IN_CREATE | IN_MOVED_TO, true, {Recorder::callback(rec)});
    ::rename(path("outside/m").c_str(), path("w/m").c_str());
    ASSERT_TRUE(waitFor(*rec, path("w/m"), IN_MOVED_TO | IN_ISDIR));
    ASSERT_TRUE(waitFor(*rec, path("w/m/n/f"), IN_CREATE | IN_CLOSE_WRITE));
    EXPECT_TRUE(rec->has(path("w/m/n"), IN_CREATE | IN_ISDIR));
    EXPECT_TRUE(n->isWatched(path("w/m")));
    EXPECT_TRUE(n->isWatched(path("w/m/n")));
    close(n);
}

TEST_P(INotifyTest, INO_20_entriesMadeBeforeTheWatchAreReportedOnlyByTheScan) {
    // INO-20: what happened inside a new directory before its watch existed is reported only by the scan,
    // as CREATE|CLOSE_WRITE, not with its real history (the writes are not seen).
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE, true, {Recorder::callback(rec)});
    ::mkdir(path("d").c_str(), 0755);
    writeFile(path("d/f"), "first");
    writeFile(path("d/f"), "second");
    ASSERT_TRUE(waitFor(*rec, path("d/f"), IN_CREATE | IN_CLOSE_WRITE));
    settle();
    EXPECT_EQ(rec->count(path("d/f"), 0), 1u);
    EXPECT_EQ(rec->count(path("d/f"), IN_MODIFY), 0u);
    close(n);
}

// ---- INO-21..INO-24: watch removal, overflow, shared inodes ---------------------------

TEST_P(INotifyTest, INO_21_deleteSelfEndsOnlyThatWatch) {
    // INO-21 (Better than Twisted): DELETE_SELF is delivered with the watched path, then that watch is dropped;
    // the notifier stays open and every other watch goes on.
    fs::create_directories(path("a/sub"));
    fs::create_directories(path("b"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    int old = n->watch(path("a"), IN_CREATE, true, {Recorder::callback(rec)}, true);
    n->watch(path("b"), IN_CREATE, false, {Recorder::callback(rec)});
    ::rmdir(path("a/sub").c_str());
    ASSERT_TRUE(waitFor(*rec, path("a/sub"), IN_DELETE_SELF));
    EXPECT_FALSE(n->isWatched(path("a/sub")));
    EXPECT_TRUE(n->connected());
    touch(path("b/still"));
    ASSERT_TRUE(waitFor(*rec, path("b/still"), IN_CREATE));
    fs::remove_all(path("a"));
    ASSERT_TRUE(waitFor(*rec, path("a"), IN_DELETE_SELF));
    EXPECT_FALSE(n->isWatched(path("a")));
    ::mkdir(path("a").c_str(), 0755);
    int again = n->watch(path("a"), IN_CREATE, false, {Recorder::callback(rec)});
    EXPECT_NE(again, old);  // a new watch, not the dead descriptor
    touch(path("a/new"));
    ASSERT_TRUE(waitFor(*rec, path("a/new"), IN_CREATE));
    close(n);
}

TEST_P(INotifyTest, INO_21_theWatchIsDroppedAfterDeleteSelfsCallbacksWhichMayIgnoreIt) {
    // INO-21: the callbacks receive DELETE_SELF, then the watch leaves the table. The common clean-up,
    // ignore(path) from the callback, works (it threw "not watched"); without it, the path is
    // unwatched once the callbacks have returned.
    for (bool ignoreInCallback : {true, false}) {
        SCOPED_TRACE(ignoreInCallback ? "ignore() in the callback" : "left alone");
        fs::create_directories(path("d"));
        auto n = make();
        std::optional<int> during;
        bool ignored = false, deleted = false;
        n->watch(path("d"), IN_DELETE_SELF, false, {[&](const Event& e) {
                     if (!(e.mask & IN_DELETE_SELF)) return;
                     deleted = true;
                     during = n->isWatched(path("d"));
                     if (ignoreInCallback) {
                         n->ignore(path("d"));
                         ignored = true;
                     }
                 }});
        fs::remove(path("d"));
        ASSERT_TRUE(spinUntil([&] { return deleted; }));
        EXPECT_TRUE(during.has_value());
        EXPECT_EQ(ignored, ignoreInCallback);
        EXPECT_FALSE(n->isWatched(path("d")));
        EXPECT_TRUE(n->watchedPaths().empty());
        close(n);
    }
}

TEST_P(INotifyTest, INO_21_aCallbackThatWatchesTheDeletedPathAgainGetsANewWatch) {
    // INO-21: DELETE_SELF's callbacks get the event with the watch still in the table (it is dropped
    // after them), yet a callback that re-creates the file and watches it again (a log-file follower)
    // gets a new watch. It got the dying descriptor back, and changes to the new file were never reported.
    touch(path("log"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    int again = -1;
    std::optional<int> watchedDuring = 0;
    int old = n->watch(path("log"), IN_DELETE_SELF | IN_MODIFY, false, {[&](const Event& e) {
                           if (!(e.mask & IN_DELETE_SELF)) return;
                           watchedDuring = n->isWatched(path("log"));
                           touch(path("log"));
                           again = n->watch(path("log"), IN_MODIFY, false, {Recorder::callback(rec)});
                       }});
    ::unlink(path("log").c_str());
    ASSERT_TRUE(spinUntil([&] { return again != -1; }));
    EXPECT_EQ(watchedDuring, std::optional<int>(old));
    EXPECT_NE(again, old);
    EXPECT_EQ(n->isWatched(path("log")), std::optional<int>(again));
    {
        std::ofstream f(path("log"), std::ios::app);
        f << "line\n";
    }
    ASSERT_TRUE(waitFor(*rec, path("log"), IN_MODIFY));
    close(n);
}

TEST_P(INotifyTest, INO_22_ignoredIsDeliveredWhenTheKernelEndsAWatchAndTheBookkeepingGoes) {
    // INO-22 (Better than Twisted): deletion and IN_ONESHOT end the kernel watch; IN_IGNORED reaches the
    // callbacks and the bookkeeping goes with it, so watching the path again makes a new watch.
    touch(path("del"));
    touch(path("once"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(path("del"), IN_ATTRIB, false, {Recorder::callback(rec)});
    int once = n->watch(path("once"), IN_ATTRIB | IN_ONESHOT, false, {Recorder::callback(rec)});
    ::unlink(path("del").c_str());
    ::chmod(path("once").c_str(), 0600);
    ASSERT_TRUE(waitFor(*rec, path("del"), IN_IGNORED));
    ASSERT_TRUE(waitFor(*rec, path("once"), IN_IGNORED));
    auto order = rec->events;
    std::erase_if(order, [&](const Seen& s) { return s.path != path("del"); });
    ASSERT_EQ(order.size(), 3u);  // ATTRIB (the link count), DELETE_SELF, IGNORED
    EXPECT_EQ(order[1].mask, IN_DELETE_SELF);
    EXPECT_EQ(order[2].mask, IN_IGNORED);
    EXPECT_FALSE(n->isWatched(path("once")));
    int again = n->watch(path("once"), IN_ATTRIB, false, {Recorder::callback(rec)});
    EXPECT_NE(again, once);
    ::chmod(path("once").c_str(), 0644);
    ASSERT_TRUE(spinUntil([&] { return rec->count(path("once"), IN_ATTRIB) == 2; }));
    close(n);
}

TEST_P(INotifyTest, INO_22_ignoreNeverDeliversIgnoredAndToleratesAnEndedKernelWatch) {
    // INO-22: after ignore() IN_IGNORED is not delivered; ignore() of a watch the kernel has ended already
    // (its IN_IGNORED still queued) ignores inotify_rm_watch's EINVAL.
    touch(path("f"));
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(path("f"), IN_ATTRIB, false, {Recorder::callback(rec)});
    n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
    ::unlink(path("f").c_str());  // the kernel ends the watch now; we have not read a thing
    ScopedFaults faults;
    faults.onlyFd(n->fileno());
    n->ignore(path("f"));
    ASSERT_EQ(faults.history().size(), 1u);
    EXPECT_EQ(faults.history()[0].call, Call::inotify_rm_watch);
    EXPECT_EQ(faults.history()[0].err, EINVAL);
    touch(path("marker"));
    ASSERT_TRUE(waitFor(*rec, path("marker"), IN_CREATE));
    settle();
    EXPECT_EQ(rec->paths(), (std::set<std::string>{path("marker")}));
    close(n);
}

TEST_P(INotifyTest, INO_22_unmountIsDeliveredAndEndsTheWatch) {
    // INO-22: unmounting the filesystem of a watched path delivers IN_UNMOUNT, then IN_IGNORED, and the
    // bookkeeping goes (tmpfs mounted in the test's directory; needs root).
    std::string mnt = path("mnt");
    ::mkdir(mnt.c_str(), 0755);
    if (::mount("none", mnt.c_str(), "tmpfs", 0, "size=1m") != 0)
        GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(errno) << "): needs root";
    ::mkdir((mnt + "/inside").c_str(), 0755);
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(mnt + "/inside", IN_CREATE, false, {Recorder::callback(rec)});
    ASSERT_EQ(::umount2(mnt.c_str(), 0), 0) << std::strerror(errno);
    ASSERT_TRUE(waitFor(*rec, mnt + "/inside", IN_IGNORED));
    ASSERT_EQ(rec->events.size(), 2u);
    EXPECT_TRUE(rec->events[0].mask & IN_UNMOUNT);
    EXPECT_FALSE(n->isWatched(mnt + "/inside"));
    close(n);
}

namespace {
// The kernel's queue limit for new instances (/proc/sys/fs/inotify/max_queued_events).
std::optional<long> queueLimit() {
    std::ifstream in("/proc/sys/fs/inotify/max_queued_events");
    long v = 0;
    if (!(in >> v)) return std::nullopt;
    return v;
}

// `count` IN_ATTRIB events in `dir`, alternating between two files (the
// kernel merges an event only with an identical one at the queue's tail).
void flood(const std::string& dir, long count) {
    std::string a = dir + "/flood-a", b = dir + "/flood-b";
    touch(a);
    touch(b);
    for (long i = 0; i < count; ++i) ::chmod((i % 2 ? b : a).c_str(), i % 4 < 2 ? 0600 : 0644);
}
}  // namespace

TEST_P(INotifyTest, INO_23_queueOverflowReachesTheOverflowCallback) {
    // INO-23 (Better than Twisted): when the kernel queue overflows (not reading while more than
    // max_queued_events events happen), the overflow callback runs, once, after the events that fit.
    auto limit = queueLimit();
    if (!limit || *limit > 200000) GTEST_SKIP() << "max_queued_events unreadable or too large to fill quickly";
    fs::create_directories(path("w"));
    touch(path("w/flood-a"));
    touch(path("w/flood-b"));
    auto n = make(false);
    std::size_t seen = 0, seenBefore = 0;
    int overflows = 0;
    n->setOverflowCallback([&] {
        ++overflows;
        seenBefore = seen;
    });
    n->watch(path("w"), IN_ATTRIB, false, {[&](const Event&) { ++seen; }});
    flood(path("w"), *limit + 100);
    n->startReading();
    ASSERT_TRUE(spinUntil([&] { return overflows == 1; }, 20));
    settle();
    EXPECT_EQ(overflows, 1);
    EXPECT_EQ(seenBefore, static_cast<std::size_t>(*limit));
    EXPECT_EQ(seen, static_cast<std::size_t>(*limit));
    close(n);
}

TEST_P(INotifyTest, INO_23_withoutAnOverflowCallbackEveryWatchHearsOfTheOverflow) {
    // INO-23: the default overflow handling gives every watch's callbacks (its own path, IN_Q_OVERFLOW).
    auto limit = queueLimit();
    if (!limit || *limit > 200000) GTEST_SKIP() << "max_queued_events unreadable or too large to fill quickly";
    fs::create_directories(path("a"));
    fs::create_directories(path("b"));
    auto n = make(false);
    auto b = std::make_shared<Recorder>();
    bool overflowAtA = false;
    n->watch(path("a"), IN_ATTRIB, false, {[&](const Event& e) {
                 if (e.mask == IN_Q_OVERFLOW && e.path.native() == path("a")) overflowAtA = true;
             }});
    n->watch(path("b"), IN_CREATE, false, {Recorder::callback(b)});
    flood(path("a"), *limit + 100);
    n->startReading();
    ASSERT_TRUE(spinUntil([&] { return overflowAtA; }, 20));
    ASSERT_TRUE(waitFor(*b, path("b"), IN_Q_OVERFLOW));
    EXPECT_EQ(b->events.size(), 1u);
    EXPECT_EQ(b->events[0].mask, IN_Q_OVERFLOW);
    close(n);
}

TEST_P(INotifyTest, INO_23_overflowRecordThroughTheReadPath) {
    // INO-23: a record with watch descriptor -1 and IN_Q_OVERFLOW, amid others, reaches the overflow callback
    // in its place in the stream.
    auto n = make(false);
    auto rec = std::make_shared<Recorder>();
    std::vector<std::string> order;
    rec->hook = [&](const Event& e) { order.push_back(e.path.filename().native()); };
    n->setOverflowCallback([&] { order.push_back("overflow"); });
    int wd = n->watch(dir, IN_CREATE, false, {Recorder::callback(rec)});
    Pipe p;
    readFromPipe(*n, p);
    n->startReading();
    writeAll(p.writeFd,
             record(wd, IN_CREATE, 0, "before") + record(-1, IN_Q_OVERFLOW, 0) + record(wd, IN_CREATE, 0, "after"));
    ASSERT_TRUE(spinUntil([&] { return order.size() == 3; }));
    EXPECT_THAT(order, ElementsAre("before", "overflow", "after"));
    close(n);
}

TEST_P(INotifyTest, INO_24_pathsSharingOneKernelWatchAllReceiveItsEvents) {
    // INO-24 (Better than Twisted): two paths of one inode (a directory and a symbolic link to it) share the
    // kernel's descriptor; each keeps its callbacks and mask and gets events under its own path; ignoring one
    // keeps the kernel watch for the other.
    fs::create_directories(path("real"));
    ASSERT_EQ(::symlink(path("real").c_str(), path("alias").c_str()), 0);
    auto n = make();
    auto real = std::make_shared<Recorder>(), alias = std::make_shared<Recorder>();
    int wd = n->watch(path("real"), IN_CREATE, false, {Recorder::callback(real)});
    EXPECT_EQ(n->watch(path("alias"), IN_DELETE, false, {Recorder::callback(alias)}), wd);
    touch(path("real/f"));
    ::unlink(path("real/f").c_str());
    ASSERT_TRUE(waitFor(*alias, path("alias/f"), IN_DELETE));
    ASSERT_TRUE(waitFor(*real, path("real/f"), IN_CREATE));  // the union of both masks stayed in the kernel
    EXPECT_EQ(real->events.size(), 1u);
    EXPECT_EQ(alias->events.size(), 1u);
    {
        ScopedFaults faults;
        n->ignore(path("real"));
        EXPECT_EQ(faults.calls(Call::inotify_rm_watch), 0u);  // the alias still uses it
    }
    touch(path("real/g"));
    ::unlink(path("real/g").c_str());
    ASSERT_TRUE(waitFor(*alias, path("alias/g"), IN_DELETE));
    EXPECT_EQ(real->events.size(), 1u);
    {
        ScopedFaults faults;
        n->ignore(path("alias"));
        EXPECT_EQ(faults.calls(Call::inotify_rm_watch), 1u);
    }
    close(n);
}

// ---- re-entrancy and errors in callbacks -------------------------------------------------

TEST_P(INotifyTest, INO_8_ignoreFromInsideACallbackSilencesTheRestOfThatWatch) {
    // INO-8 from a callback: ignore() of the watch being dispatched stops its later callbacks and events,
    // including those already read in the same batch.
    auto n = make();
    int first = 0, second = 0;
    n->watch(dir, IN_CREATE, false,
             {[&](const Event&) {
                  ++first;
                  n->ignore(dir);
              },
              [&](const Event&) { ++second; }});
    auto marker = std::make_shared<Recorder>();
    ::mkdir(path("m").c_str(), 0755);
    n->watch(path("m"), IN_CREATE, false, {Recorder::callback(marker)});
    touch(path("a"));
    touch(path("b"));
    touch(path("m/marker"));
    ASSERT_TRUE(waitFor(*marker, path("m/marker"), IN_CREATE));
    EXPECT_EQ(first, 1);
    EXPECT_EQ(second, 0);
    close(n);
}

TEST_P(INotifyTest, INO_OWN_closingOrDroppingFromInsideEveryCallbackIsSafe) {
    // Re-entrancy: from inside each kind of callback — an event read from the kernel, a scan's synthetic
    // event, IN_IGNORED, the default overflow report, the overflow callback — loseConnection() plus dropping
    // the last reference, watch() and ignore() are safe: connectionLost runs once, later, and nothing is
    // touched after it is freed (ASan would say).
    enum class Where { read, scan, ignored, overflowDefault, overflowCallback };
    for (Where where : {Where::read, Where::scan, Where::ignored, Where::overflowDefault, Where::overflowCallback}) {
        SCOPED_TRACE(static_cast<int>(where));
        fs::remove_all(path("w"));
        fs::create_directories(path("w"));
        auto n = make(false);
        int fd = n->fileno();
        std::weak_ptr<INotify> weak = n;
        int calls = 0;
        bool lostInside = false;
        auto act = [&, raw = n.get()](const std::string& p) {
            ++calls;
            try {
                raw->watch(path("w"));              // already watched, or (after IN_IGNORED) a new one
                if (p != path("w")) raw->watch(p);  // a new one
            } catch (const INotifyError&) {         // the pipe cases: not an inotify descriptor
            }
            try {
                raw->ignore(path("w"));
            } catch (const std::out_of_range&) {}
            raw->loseConnection();
            raw->loseConnection();
            lostInside = raw->disconnected();
            n.reset();  // the last reference outside the reactor
        };
        auto cb = [&, where](const Event& e) {
            bool mine = (where == Where::read && (e.mask & IN_CREATE) && e.path.native() == path("w/f")) ||
                        (where == Where::scan && (e.mask & IN_CLOSE_WRITE) && e.path.native() == path("w/d/f")) ||
                        (where == Where::ignored && (e.mask & IN_IGNORED)) ||
                        (where == Where::overflowDefault && (e.mask & IN_Q_OVERFLOW));
            if (mine && calls == 0) act(e.path.native());
        };
        Pipe p;
        int wd = n->watch(path("w"), IN_CREATE | IN_ATTRIB, true, {cb, cb});
        if (where == Where::overflowCallback) n->setOverflowCallback([&] { act(path("w")); });
        if (where == Where::overflowDefault || where == Where::overflowCallback || where == Where::ignored) {
            readFromPipe(*n, p);
            writeAll(p.writeFd, where == Where::ignored
                                    ? record(wd, IN_IGNORED, 0) + record(wd, IN_CREATE, 0, "late")
                                    : record(-1, IN_Q_OVERFLOW, 0) + record(wd, IN_CREATE, 0, "late"));
        } else if (where == Where::read) {
            touch(path("w/f"));
            touch(path("w/g"));
        } else {
            fs::create_directories(path("w/d"));
            touch(path("w/d/f"));
            touch(path("w/d/g"));
        }
        n->startReading();
        ASSERT_TRUE(spinUntil([&] { return weak.expired(); })) << "the notifier was not freed";
        EXPECT_EQ(calls, 1);
        EXPECT_FALSE(lostInside);
        EXPECT_EQ(openFds().count(fd), 0u);
    }
}

TEST_P(INotifyTest, INO_OWN_exceptionFromACallbackIsLoggedAndDeliveryGoesOn) {
    // An exception from a callback is logged; the other callbacks of the event and the later events still run,
    // and the notifier stays open.
    auto n = make();
    auto rec = std::make_shared<Recorder>();
    n->watch(dir, IN_CREATE, false,
             {[](const Event&) { throw std::runtime_error("callback fails"); }, Recorder::callback(rec)});
    touch(path("a"));
    touch(path("b"));
    ASSERT_TRUE(waitFor(*rec, path("b"), IN_CREATE));
    EXPECT_TRUE(rec->has(path("a"), IN_CREATE));
    EXPECT_TRUE(n->connected());
    EXPECT_EQ(logs.flushLoggedErrors<std::runtime_error>().size(), 2u);
    close(n);
}

TEST_P(INotifyTest, INO_OWN_reactorShutdownEndsTheNotifier) {
    // A notifier still reading when the reactor shuts down gets connectionLost and closes its descriptor.
    auto n = make();
    n->watch(dir);
    int fd = n->fileno();
    reactor().callLater(0, [this] { reactor().stop(); });
    runReactor();
    EXPECT_TRUE(n->disconnected());
    EXPECT_EQ(openFds().count(fd), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, INotifyTest, allBackends(), backendParamName);
