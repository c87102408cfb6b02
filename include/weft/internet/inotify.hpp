// weft/internet/inotify.hpp — Linux filesystem notification
// (twisted.internet.inotify). Spec: inotify.md INO-1..INO-24.
//
//     auto notifier = std::make_shared<weft::inotify::INotify>(reactor);
//     notifier->startReading();
//     notifier->watch("/some/dir", weft::inotify::IN_WATCH_MASK, /*autoAdd=*/true,
//                     {[](const weft::inotify::Event& e) {
//                         fmt::print("{} {} (cookie {})\n", e.path.native(),
//                                    fmt::join(weft::inotify::humanReadableMask(e.mask), ","), e.cookie);
//                     }},
//                     /*recursive=*/true);
//
// One INotify is one kernel inotify instance read by the reactor. watch()
// adds a kernel watch and the callbacks for it; every event read from the
// descriptor is decoded (EventDecoder) and handed to the callbacks of the
// watch it belongs to. `recursive` (at watch time) and `autoAdd` (for
// directories created or moved in later) emulate watching a whole tree; the
// emulation is racy by nature (INO-20), so a new directory is scanned once
// its watch exists and what was already in it is reported (INO-18).
//
// Better than Twisted (each in inotify.md): the move cookie reaches the
// callbacks and pairs MOVED_FROM with MOVED_TO, and a directory moved within
// the watched tree keeps its watches under its new path, while one moved out
// of it (a MOVED_FROM whose MOVED_TO never comes) ends its watches and those
// below it, silently as ignore() would, so its old path is free for a new
// directory and nothing from outside is reported under it (INO-15); a record
// split across reads is decoded whole (INO-13); deleting a watched path ends
// only that watch (INO-21); a watch's bookkeeping goes exactly when the
// kernel says it ended (IN_IGNORED), and that is reported (INO-22); a kernel
// queue overflow is reported (INO-23); paths sharing one kernel watch all
// receive its events (INO-24); a directory moved into an autoAdd tree is
// watched like a created one (INO-19).
//
// The kernel's flag names (IN_ACCESS … IN_ONESHOT, IN_CLOSE) are the macros of
// <sys/inotify.h>, which this header includes: write them unqualified. Their
// values are the kernel's ABI and Twisted's (INO-3; checked below). Twisted's
// combinations that the kernel header lacks are constants of this namespace:
// weft::inotify::IN_MOVED, IN_CHANGED and IN_WATCH_MASK.
#pragma once

#include <sys/inotify.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/abstract.hpp>
#include <weft/internet/delayedcall.hpp>

namespace weft::inotify {

static_assert(IN_ACCESS == 0x1 && IN_MODIFY == 0x2 && IN_ATTRIB == 0x4 && IN_CLOSE_WRITE == 0x8 &&
                  IN_CLOSE_NOWRITE == 0x10 && IN_OPEN == 0x20 && IN_MOVED_FROM == 0x40 && IN_MOVED_TO == 0x80 &&
                  IN_CREATE == 0x100 && IN_DELETE == 0x200 && IN_DELETE_SELF == 0x400 && IN_MOVE_SELF == 0x800 &&
                  IN_UNMOUNT == 0x2000 && IN_Q_OVERFLOW == 0x4000 && IN_IGNORED == 0x8000 && IN_ONLYDIR == 0x01000000 &&
                  IN_DONT_FOLLOW == 0x02000000 && IN_MASK_ADD == 0x20000000 && IN_ISDIR == 0x40000000 &&
                  IN_ONESHOT == 0x80000000 && IN_CLOSE == (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE),
              "the kernel's inotify flags are Twisted's (INO-3)");

/// Both move halves (Twisted IN_MOVED; the kernel header calls it IN_MOVE).
inline constexpr std::uint32_t IN_MOVED = IN_MOVED_FROM | IN_MOVED_TO;
/// Content or metadata changed (Twisted IN_CHANGED).
inline constexpr std::uint32_t IN_CHANGED = IN_MODIFY | IN_ATTRIB;
/// watch()'s default mask (Twisted IN_WATCH_MASK, 0x2fc6).
inline constexpr std::uint32_t IN_WATCH_MASK = IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_DELETE_SELF |
                                               IN_MOVE_SELF | IN_UNMOUNT | IN_MOVED_FROM | IN_MOVED_TO;

/// A path as Twisted's FilePath in bytes mode: Linux paths are byte strings.
using FilePath = std::filesystem::path;

/// The names of the known bits set in `mask`, always in this order: access,
/// modify, attrib, close_write, close_nowrite, open, moved_from, moved_to,
/// create, delete, delete_self, move_self, unmount, queue_overflow, ignored,
/// only_dir, dont_follow, mask_add, is_dir, one_shot; unknown bits are
/// skipped (INO-4, Twisted humanReadableMask).
WEFT_EXPORT std::vector<std::string> humanReadableMask(std::uint32_t mask);

/// The bit humanReadableMask() names `name` ("close_write" → IN_CLOSE_WRITE);
/// nullopt for any other string. Not in Twisted (the `weft watch` tool parses
/// --events with it).
WEFT_EXPORT std::optional<std::uint32_t> maskFromName(std::string_view name);

/// A failed inotify system call: the instance could not be created, or a path
/// could not be watched. code() is the errno; what() names the path and says
/// what the errno means here (a missing path, a permission, the watch or
/// instance limit and where it is set). Twisted: twisted.python._inotify.INotifyError.
class WEFT_EXPORT INotifyError : public std::system_error {
public:
    INotifyError(int err, const std::string& what) : std::system_error(err, std::generic_category(), what) {}
};

/// One record as the inotify descriptor delivers it (struct inotify_event):
/// `name` has its NUL padding removed and is empty when the record has none;
/// it points into the decoder's input or buffer, valid during the sink call.
struct RawEvent {
    std::int32_t wd;
    std::uint32_t mask;
    std::uint32_t cookie;
    std::string_view name;
};

/// The pure record decoder (INO-12, INO-13): bytes in, whole records out,
/// whatever way the bytes were split. A record is a 16-byte header — watch
/// descriptor (signed), mask, cookie, name length, each a native-endian
/// 32-bit word — then `length` bytes of name padded with NULs; trailing NULs
/// are removed. A record whose bytes have not all arrived is kept until they
/// have (Better than Twisted: Twisted cuts the name at the end of the read and
/// loses step with every later record).
///
/// A name longer than kMaxNameLength cannot come from the kernel (NAME_MAX is
/// 255): the stream is corrupt, and the decoder refuses it and everything
/// after it (Status::corrupt) rather than buffer up to 4 GiB.
class EventDecoder {
public:
    static constexpr std::size_t kHeaderSize = 16;
    static constexpr std::size_t kMaxNameLength = 4096;

    enum class Status : std::uint8_t {
        ok,       ///< every complete record was delivered; any partial one is kept
        stopped,  ///< the sink asked to stop; the records not delivered are kept for the next feed
        corrupt,  ///< a record had an impossible length; nothing more will be decoded
    };

    /// Decodes what was kept from earlier calls followed by `data`, calling
    /// `sink(const RawEvent&)` for each complete record in order. The sink
    /// returns false to stop; the rest is then kept, and the next feed (even
    /// with no data) delivers it first.
    template <class Sink>
    Status feed(std::span<const std::byte> data, Sink&& sink) {
        if (corrupt_) return Status::corrupt;
        if (pending_.empty()) {
            // The common case (the kernel returns whole records): decode in place.
            Status s = decodeInPlace(data, sink);
            if (s != Status::corrupt && !data.empty()) pending_.assign(data.begin(), data.end());
            return s;
        }
        pending_.insert(pending_.end(), data.begin(), data.end());
        std::vector<std::byte> held;
        held.swap(pending_);
        std::span<const std::byte> rest(held);
        Status s = decodeInPlace(rest, sink);
        if (s != Status::corrupt && !rest.empty()) pending_.assign(rest.begin(), rest.end());
        return s;
    }

    /// Bytes kept for the next feed (a partial record, or records a stop left).
    std::size_t buffered() const noexcept { return pending_.size(); }
    bool corrupt() const noexcept { return corrupt_; }
    /// Forgets everything buffered and any corruption.
    void reset() noexcept {
        pending_.clear();
        pending_.shrink_to_fit();
        corrupt_ = false;
    }

private:
    static std::uint32_t wordAt(const std::byte* p, std::size_t index) noexcept {
        std::uint32_t v;
        std::memcpy(&v, p + 4 * index, sizeof v);
        return v;
    }
    static std::size_t lengthAt(const std::byte* p) noexcept { return wordAt(p, 3); }

    Status markCorrupt() noexcept {
        corrupt_ = true;
        pending_.clear();
        return Status::corrupt;
    }

    // Delivers the complete records at the front of `data` and advances it past them.
    template <class Sink>
    Status decodeInPlace(std::span<const std::byte>& data, Sink& sink) {
        while (data.size() >= kHeaderSize) {
            const std::byte* p = data.data();
            std::size_t len = lengthAt(p);
            if (len > kMaxNameLength) return markCorrupt();
            if (data.size() - kHeaderSize < len) break;
            std::size_t end = len;
            while (end > 0 && p[kHeaderSize + end - 1] == std::byte{0}) --end;
            RawEvent e{static_cast<std::int32_t>(wordAt(p, 0)), wordAt(p, 1), wordAt(p, 2),
                       std::string_view(reinterpret_cast<const char*>(p + kHeaderSize), end)};
            data = data.subspan(kHeaderSize + len);
            if (!sink(static_cast<const RawEvent&>(e))) return Status::stopped;
        }
        return Status::ok;
    }

    std::vector<std::byte> pending_;
    bool corrupt_ = false;
};

class INotify;
class Callback;

/// The handle a callback gets for the watch an event belongs to (Twisted's
/// _Watch, which its docs call opaque). Valid during the callback; watch()
/// and ignore() work on paths, not on handles.
class WEFT_EXPORT Watch {
public:
    /// The watched path, as given to watch() (lexically normalised); after a
    /// directory move seen whole inside the watched tree, its new path (INO-15).
    const FilePath& path() const noexcept { return path_; }
    /// The mask given to the kernel (the caller's, plus IN_DELETE_SELF).
    std::uint32_t mask() const noexcept { return mask_; }
    bool autoAdd() const noexcept { return autoAdd_; }
    /// The kernel's watch descriptor (shared by every path of one inode, INO-24).
    int descriptor() const noexcept { return wd_; }

    struct Token {};
    Watch(Token, int wd, FilePath path, std::uint32_t mask, bool autoAdd,
          std::shared_ptr<const std::vector<Callback>> callbacks)
        : path_(std::move(path)), callbacks_(std::move(callbacks)), wd_(wd), mask_(mask), autoAdd_(autoAdd) {}

private:
    friend class INotify;
    enum class Life : std::uint8_t {
        live,     ///< in the path table and the descriptor table
        deleted,  ///< DELETE_SELF seen: leaves the path table after its callbacks, waits for IN_IGNORED
        moving,   ///< moved away from its path: waits for the move's other half (silent meanwhile)
        ignored,  ///< ignore() was called: silent from now on
        ended,    ///< IN_IGNORED handled, or the instance closed
    };
    bool delivering() const noexcept { return life_ == Life::live || life_ == Life::deleted; }

    FilePath path_;
    std::shared_ptr<const std::vector<Callback>> callbacks_;  // shared with the watches autoAdd made from it
    int wd_;
    std::uint32_t mask_;
    bool autoAdd_;
    Life life_ = Life::live;
};

/// What a callback receives. `path` is the watched path for an event about
/// the watch itself, or that path + "/" + name for an entry of a watched
/// directory (INO-10); `cookie` is the kernel's, the same on the two halves of
/// one move (MOVED_FROM, MOVED_TO) and 0 otherwise (INO-15, Better than
/// Twisted). The references are valid during the call.
struct Event {
    Watch& watch;
    const FilePath& path;
    std::uint32_t mask;
    std::uint32_t cookie;
};

/// A callback: anything callable as f(const Event&), or with Twisted's shape
/// f(Watch&, const FilePath&, std::uint32_t mask).
class Callback {
public:
    template <class F>
    requires std::is_invocable_v<F&, const Event&> Callback(F f)
        : fn_(std::move(f)) {}  // NOLINT: implicit, like std::function

    template <class F>
    requires(!std::is_invocable_v<F&, const Event&> && std::is_invocable_v<F&, Watch&, const FilePath&, std::uint32_t>)
        Callback(F f)  // NOLINT
        : fn_([f = std::move(f)](const Event& e) mutable { f(e.watch, e.path, e.mask); }) {}

    void operator()(const Event& e) const { fn_(e); }

private:
    std::function<void(const Event&)> fn_;
};

/// A reader on one inotify instance (Twisted INotify).
///
/// Ownership: create it with std::make_shared. While reading, the reactor
/// holds it; a catch-up scan (INO-18) holds it only while it runs. Callbacks
/// may call watch(), ignore(), loseConnection(), or drop the last reference to
/// the INotify: each takes effect at once and nothing touches freed state
/// (after ignore() that watch's remaining callbacks do not run; after
/// loseConnection() no callback runs). An exception from a callback is logged
/// and the other callbacks and events go on.
///
/// Closing (INO-1, INO-2): the instance counts as connected from construction,
/// so loseConnection() ends it even before startReading(); connectionLost
/// follows from the reactor, never on the caller's stack, closes the
/// descriptor (a failing close is logged), ends every watch and cancels the
/// scans still to run.
class WEFT_EXPORT INotify final : public FileDescriptor {
public:
    /// Opens a non-blocking, close-on-exec inotify instance (INO-1). Throws
    /// INotifyError (EMFILE: the process's descriptors or the per-user
    /// instance limit, /proc/sys/fs/inotify/max_user_instances).
    explicit INotify(Reactor& reactor);
    ~INotify() override;

    /// Watches `path` for the events in `mask` (INO-5..INO-9, INO-16):
    /// returns the kernel's watch descriptor (> 0). IN_DELETE_SELF is always
    /// added; other flags (IN_ONLYDIR, IN_DONT_FOLLOW, IN_MASK_ADD, IN_ONESHOT)
    /// go to the kernel unchanged. A path already watched returns its
    /// descriptor and changes nothing. With `recursive`, every directory below
    /// `path` is watched too with the same mask, callbacks and autoAdd
    /// (symbolic links are not followed), and the descriptor of `path` is
    /// returned. With `autoAdd`, directories created in (or moved into) a
    /// watched directory are watched as well, and what they already hold is
    /// reported on the next loop iteration (INO-18); one that cannot be listed
    /// then (gone: skipped; anything else, such as EMFILE: logged) reports nothing.
    ///
    /// Throws INotifyError naming the path and the errno (ENOENT, EACCES,
    /// ENOTDIR with IN_ONLYDIR, ENOSPC: the watch limit,
    /// /proc/sys/fs/inotify/max_user_watches; EBADF once closed; EMFILE when a
    /// directory of a recursive walk cannot be opened). A recursive watch that
    /// fails below `path` removes the watches it had added before throwing; a
    /// directory that vanishes during the walk is skipped.
    int watch(const FilePath& path, std::uint32_t mask = IN_WATCH_MASK, bool autoAdd = false,
              std::vector<Callback> callbacks = {}, bool recursive = false);

    /// Stops watching `path` (INO-8): no event for it is delivered any more.
    /// Throws std::out_of_range if it is not watched. The kernel watch is
    /// removed when no other path shares it (INO-24).
    void ignore(const FilePath& path);

    /// The watch descriptor of `path`, if it is watched (Twisted _isWatched).
    std::optional<int> isWatched(const FilePath& path) const;
    /// Every watched path, sorted.
    std::vector<FilePath> watchedPaths() const;

    /// Called when the kernel's event queue overflowed and events were lost
    /// (IN_Q_OVERFLOW, INO-23): rescan what matters. Without one (or with an
    /// empty one), every watch's callbacks get an event with the watch's own
    /// path and mask IN_Q_OVERFLOW.
    void setOverflowCallback(std::function<void()> callback) { overflow_ = std::move(callback); }

    int fileno() const override { return fd_; }
    std::string logPrefix() const override { return "INotify"; }
    Address getPeer() const override;
    Address getHost() const override;
    /// Reads one batch of records and dispatches them (INO-10..INO-23).
    Reason doRead() override;
    /// Closes the descriptor (a failure is logged), ends every watch and
    /// cancels pending scans (INO-2).
    void connectionLost(const Failure& reason) override;

protected:
    WriteResult writeSomeData(std::span<const iovec>) override { return std::size_t{0}; }

private:
    // Keys order a directory's descendants right after it ('/' sorts first).
    struct PathLess {
        bool operator()(const std::string& a, const std::string& b) const noexcept;
    };
    using WatchPtr = std::shared_ptr<Watch>;

    bool open() const noexcept { return state() == State::connected; }
    // Adds one kernel watch for a normalised path, or finds it (INO-6);
    // `created` says whether a new Watch was made.
    WatchPtr addOne(const std::string& key, std::uint32_t mask, bool autoAdd,
                    const std::shared_ptr<const std::vector<Callback>>& callbacks, bool* created);
    void forget(const WatchPtr& w);
    void dispatch(const RawEvent& e, FilePath& scratch);
    void deliver(const WatchPtr& w, const FilePath& path, std::uint32_t mask, std::uint32_t cookie);
    void ended(int wd);
    void overflowed();
    void movedFrom(std::uint32_t cookie, std::string from);
    void movedTo(std::uint32_t cookie, const std::string& to);
    WatchPtr adoptMoving(const std::vector<WatchPtr>& sharers, const std::string& key);
    void finishMoves();
    void autoAddDirectory(const WatchPtr& parent, const std::string& path);
    void scheduleScan(const WatchPtr& w);
    void scan(const WatchPtr& w);

    int fd_ = -1;
    EventDecoder decoder_;
    std::map<std::string, WatchPtr, PathLess> byPath_;
    std::unordered_map<int, std::vector<WatchPtr>> byWd_;
    std::function<void()> overflow_;
    struct PendingMove {
        std::uint32_t cookie;
        std::string from;
        std::vector<WatchPtr> watches;  // at or below `from`, out of the path table meanwhile
    };
    std::vector<PendingMove> movesFrom_;  // MOVED_FROMs waiting for their MOVED_TO (bounded)
    std::vector<DelayedCall> scans_;      // pending catch-up scans, cancelled at connectionLost
    std::size_t scanPruneAt_ = 64;
    bool dispatching_ = false;
};

}  // namespace weft::inotify
