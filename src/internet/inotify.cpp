// Linux filesystem notification (weft/internet/inotify.hpp; spec: inotify.md).
#include <weft/internet/inotify.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>
#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>
#include <weft/log.hpp>
#include <weft/text.hpp>

#include "internet/detail/flagscope.hpp"
#include "internet/detail/readchunk.hpp"
#include "sys/syscalls.hpp"

namespace weft::inotify {

namespace {

constexpr std::pair<std::uint32_t, std::string_view> kNames[] = {
    {IN_ACCESS, "access"},
    {IN_MODIFY, "modify"},
    {IN_ATTRIB, "attrib"},
    {IN_CLOSE_WRITE, "close_write"},
    {IN_CLOSE_NOWRITE, "close_nowrite"},
    {IN_OPEN, "open"},
    {IN_MOVED_FROM, "moved_from"},
    {IN_MOVED_TO, "moved_to"},
    {IN_CREATE, "create"},
    {IN_DELETE, "delete"},
    {IN_DELETE_SELF, "delete_self"},
    {IN_MOVE_SELF, "move_self"},
    {IN_UNMOUNT, "unmount"},
    {IN_Q_OVERFLOW, "queue_overflow"},
    {IN_IGNORED, "ignored"},
    {IN_ONLYDIR, "only_dir"},
    {IN_DONT_FOLLOW, "dont_follow"},
    {IN_MASK_ADD, "mask_add"},
    {IN_ISDIR, "is_dir"},
    {IN_ONESHOT, "one_shot"},
};

// The kernel fails a read whose buffer cannot hold the next record (EINVAL),
// so a read always has room for the longest one, whatever bufferSize says.
constexpr std::size_t kMinRead = sizeof(inotify_event) + NAME_MAX + 1;
// MOVED_FROM halves waiting for their MOVED_TO. The kernel queues the two
// halves of a rename back to back, so only a few can be in flight; an entry
// whose other half never comes (moved out of the tree) is pushed out.
constexpr std::size_t kMaxPendingMoves = 64;
// Events every watch receives, whatever its mask.
constexpr std::uint32_t kAlwaysDelivered = IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED;

// Lexically normalised, without a trailing separator: "d", "./d" and "d/" are
// one watch (Twisted's FilePath normalises the same way).
std::string normalKey(const FilePath& path) {
    if (path.empty()) return {};
    std::string s = path.lexically_normal().native();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
}

std::string join(std::string_view dir, std::string_view name) {
    if (dir == ".") return std::string(name);  // as normalKey spells it: "a", not "./a"
    std::string s;
    s.reserve(dir.size() + 1 + name.size());
    s.append(dir);
    if (s.empty() || s.back() != '/') s += '/';
    s.append(name);
    return s;
}

bool atOrBelow(std::string_view path, std::string_view dir) {
    if (!path.starts_with(dir)) return false;
    return path.size() == dir.size() || dir.back() == '/' || path[dir.size()] == '/';
}

// Errors a directory that vanished (or changed into something else) between
// being seen and being watched produces: the races of INO-20, not failures.
bool vanished(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP; }

INotifyError watchError(int err, std::string_view path) {
    std::string what = fmt::format("inotify: cannot watch {}", quote(path));
    switch (err) {
        case ENOSPC:
            what += ": the limit of inotify watches was reached (/proc/sys/fs/inotify/max_user_watches)";
            break;
        case EBADF: what += ": the INotify is closed"; break;
        case EEXIST: what += ": it is watched already (IN_MASK_CREATE)"; break;
        default: break;
    }
    return INotifyError(err, what);
}

struct DirEntry {
    std::string name;
    unsigned char type;
};

// Lists `dir` (without "." and ".."): 0, or the errno if it cannot be opened
// or read. vanished(errno): it is gone, or no directory; anything else (no
// descriptor free, EMFILE) is a failure to say. With followLink false a
// symbolic link is not opened.
int listDirectory(const std::string& dir, bool followLink, std::vector<DirEntry>& out) {
    int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followLink ? 0 : O_NOFOLLOW);
    int fd = sys::ops.open(dir.c_str(), flags, 0);
    if (fd < 0) return errno;
    alignas(dirent64) std::byte buffer[16384];
    int error = 0;
    while (true) {
        ssize_t n = sys::ops.getdents64(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = n == 0 ? 0 : errno;
            break;
        }
        for (ssize_t at = 0; at < n;) {
            auto* d = reinterpret_cast<const dirent64*>(buffer + at);
            at += d->d_reclen;
            std::string_view name(d->d_name);
            if (name == "." || name == "..") continue;
            out.push_back({std::string(name), d->d_type});
        }
    }
    sys::ops.close(fd);
    return error;
}

// The entry's DT_* type; where the filesystem does not say (DT_UNKNOWN), lstat
// does. DT_UNKNOWN: it is gone.
unsigned char entryType(const std::string& path, unsigned char type) {
    if (type != DT_UNKNOWN) return type;
    struct stat st {};
    if (sys::ops.lstat(path.c_str(), &st) != 0) return DT_UNKNOWN;
    return static_cast<unsigned char>(IFTODT(st.st_mode));
}

}  // namespace

std::vector<std::string> humanReadableMask(std::uint32_t mask) {
    std::vector<std::string> out;
    for (auto& [bit, name] : kNames)
        if (mask & bit) out.emplace_back(name);
    return out;
}

std::optional<std::uint32_t> maskFromName(std::string_view name) {
    for (auto& [bit, n] : kNames)
        if (n == name) return bit;
    return std::nullopt;
}

bool INotify::PathLess::operator()(const std::string& a, const std::string& b) const noexcept {
    // Byte order with '/' lowest, so that a directory's descendants follow it
    // directly ("a/b", "a/b/c", "a/b-c"); a path holds no NUL for '/' to meet.
    std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if (x == y) continue;
        if (x == '/') return true;
        if (y == '/') return false;
        return x < y;
    }
    return a.size() < b.size();
}

INotify::INotify(Reactor& reactor) : FileDescriptor(reactor) {
    fd_ = sys::ops.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) {
        int err = errno;
        if (err == EMFILE)
            throw INotifyError(err,
                               "inotify_init1: the limit of inotify instances (/proc/sys/fs/inotify/"
                               "max_user_instances) or of the process's open descriptors was reached");
        throw INotifyError(err, "inotify_init1");
    }
    setConnected();   // INO-1: loseConnection() works before startReading()
    discardOutput();  // nothing is ever written
}

INotify::~INotify() {
    for (auto& call : scans_) {
        try {
            if (call.active()) call.cancel();
        } catch (...) {  // cannot happen for an active call; a destructor must not throw anyway
        }
    }
    if (fd_ >= 0) sys::ops.close(fd_);
}

Address INotify::getPeer() const { return NoAddress{}; }
Address INotify::getHost() const { return NoAddress{}; }

// ---- watching ----------------------------------------------------------------------

INotify::WatchPtr INotify::addOne(const std::string& key, std::uint32_t mask, bool autoAdd,
                                  const std::shared_ptr<const std::vector<Callback>>& callbacks, bool* created) {
    *created = false;
    if (auto it = byPath_.find(key); it != byPath_.end()) {
        if (it->second->life_ != Watch::Life::deleted) return it->second;  // INO-6
        byPath_.erase(it);                                                 // deleted: the path names something new now
    }
    if (fd_ < 0) throw watchError(EBADF, key);
    const std::uint32_t kernelMask = mask | IN_DELETE_SELF;  // INO-5
    int wd = sys::ops.inotify_add_watch(fd_, key.c_str(), kernelMask);
    if (wd < 0) throw watchError(errno, key);
    auto& sharers = byWd_[wd];
    // A directory moved out of the tree and back in (under this path) before
    // the move was settled: its watch comes back, with those below it.
    if (WatchPtr back = adoptMoving(sharers, key)) return back;
    if (!sharers.empty()) {
        // Another path names the same inode (a hard link, a symbolic link, a
        // bind mount): the kernel has one watch for both and just replaced its
        // mask with ours. Give it back the union; each path still gets only
        // the events of its own mask (INO-24).
        std::uint32_t all = kernelMask;
        for (auto& s : sharers) all |= s->mask_;
        if (all != kernelMask && sys::ops.inotify_add_watch(fd_, key.c_str(), all | IN_MASK_ADD) < 0)
            log::warn(logPrefix(), "cannot widen the shared watch of {}: {}", quote(key),
                      std::error_code(errno, std::generic_category()).message());
    }
    auto w = std::make_shared<Watch>(Watch::Token{}, wd, FilePath(key), kernelMask, autoAdd, callbacks);
    sharers.push_back(w);
    byPath_.emplace(key, w);
    *created = true;
    return w;
}

int INotify::watch(const FilePath& path, std::uint32_t mask, bool autoAdd, std::vector<Callback> callbacks,
                   bool recursive) {
    auto shared = std::make_shared<const std::vector<Callback>>(std::move(callbacks));
    const std::string key = normalKey(path);
    bool created = false;
    if (!recursive) return addOne(key, mask, autoAdd, shared, &created)->wd_;

    // INO-9: the tree as it is now, breadth first; symbolic links are not
    // followed below `path` (no cycles, no escaping the tree).
    std::vector<WatchPtr> added;
    try {
        WatchPtr root = addOne(key, mask, autoAdd, shared, &created);
        if (created) added.push_back(root);
        std::deque<std::string> dirs{key};
        std::vector<DirEntry> entries;
        bool top = true;
        while (!dirs.empty()) {
            std::string dir = std::move(dirs.front());
            dirs.pop_front();
            entries.clear();
            int error = listDirectory(dir, top, entries);
            top = false;
            if (error != 0) {
                if (vanished(error)) continue;  // a file, or gone
                // Not a directory that went: the tree would be watched in part,
                // silently (EMFILE skipped every directory below the root).
                throw watchError(error, dir);
            }
            for (auto& e : entries) {
                std::string child = join(dir, e.name);
                if (entryType(child, e.type) != DT_DIR) continue;
                WatchPtr w;
                try {
                    w = addOne(child, mask, autoAdd, shared, &created);
                } catch (const INotifyError& err) {
                    if (vanished(err.code().value())) continue;
                    throw;
                }
                if (created) added.push_back(w);
                dirs.push_back(std::move(child));
            }
        }
        return root->wd_;
    } catch (...) {
        // Leave nothing behind: undo what this call added.
        for (auto& w : added) {
            if (w->life_ != Watch::Life::live) continue;
            if (auto it = byPath_.find(w->path_.native()); it != byPath_.end() && it->second == w) byPath_.erase(it);
            w->life_ = Watch::Life::ignored;
            forget(w);
        }
        throw;
    }
}

void INotify::forget(const WatchPtr& w) {
    auto it = byWd_.find(w->wd_);
    if (it == byWd_.end()) return;
    std::erase(it->second, w);
    if (!it->second.empty()) return;  // another path still shares the kernel watch (INO-24)
    byWd_.erase(it);
    // EINVAL: the kernel ended the watch already (deleted, unmounted, one-shot)
    // and its IN_IGNORED is still queued (INO-22). Anything else cannot leave
    // a watch behind that matters to us: the bookkeeping is gone either way.
    if (fd_ >= 0 && sys::ops.inotify_rm_watch(fd_, w->wd_) != 0 && errno != EINVAL)
        log::warn(logPrefix(), "inotify_rm_watch of {}: {}", quote(w->path_.native()),
                  std::error_code(errno, std::generic_category()).message());
}

void INotify::ignore(const FilePath& path) {
    const std::string key = normalKey(path);
    auto it = byPath_.find(key);
    if (it == byPath_.end()) throw std::out_of_range(fmt::format("inotify: {} is not watched", quote(key)));
    WatchPtr w = it->second;
    byPath_.erase(it);
    w->life_ = Watch::Life::ignored;  // INO-8: silent from now on, even for events already read
    forget(w);
}

std::optional<int> INotify::isWatched(const FilePath& path) const {
    auto it = byPath_.find(normalKey(path));
    if (it == byPath_.end()) return std::nullopt;
    return it->second->wd_;
}

std::vector<FilePath> INotify::watchedPaths() const {
    std::vector<FilePath> out;
    out.reserve(byPath_.size());
    for (auto& [key, w] : byPath_) out.emplace_back(key);
    std::sort(out.begin(), out.end());
    return out;
}

// ---- reading and dispatch ----------------------------------------------------------

Reason INotify::doRead() {
    // A callback that runs the reactor re-entrantly must not read the next
    // batch before this one is delivered: that would reorder events.
    if (fd_ < 0 || dispatching_) return std::nullopt;
    EventDecoder::Status status = EventDecoder::Status::ok;
    Reason why =
        weft::detail::readChunk(fd_, std::max(bufferSize, kMinRead), weft::detail::EioMeans::error, [&](Bytes data) {
            weft::detail::FlagScope inDispatch(dispatching_);
            FilePath scratch;
            status = decoder_.feed(data, [&](const RawEvent& e) {
                dispatch(e, scratch);
                return open();
            });
            // Room left for the longest record: the kernel had no more, so a
            // move whose other half did not come went out of the watched tree.
            if (open() && !movesFrom_.empty() && data.size() + kMinRead <= std::max(bufferSize, kMinRead))
                finishMoves();
        });
    if (why) return why;
    if (status == EventDecoder::Status::corrupt)
        return Failure(
            error::ConnectionLost("inotify: a record with an impossible name length; the stream is corrupt"));
    return std::nullopt;
}

void INotify::dispatch(const RawEvent& e, FilePath& scratch) {
    if (e.wd == -1) {
        if (e.mask & IN_Q_OVERFLOW) overflowed();  // INO-23
        return;
    }
    auto it = byWd_.find(e.wd);
    if (it == byWd_.end()) return;  // INO-12: not (or no longer) ours
    if (e.mask & IN_IGNORED) {
        ended(e.wd);
        return;
    }
    // A snapshot: callbacks may add and remove watches. One sharer is the rule.
    WatchPtr one;
    std::vector<WatchPtr> many;
    std::span<const WatchPtr> sharers;
    if (it->second.size() == 1) {
        one = it->second.front();
        sharers = {&one, 1};
    } else {
        many = it->second;
        sharers = many;
    }

    // INO-15: the two halves of a move share a cookie. A directory (or a
    // watched file) moved within the tree takes its watches along; do it
    // before MOVED_TO's callbacks, so they see the new layout.
    if (e.cookie != 0 && !e.name.empty()) {
        if (e.mask & IN_MOVED_FROM) movedFrom(e.cookie, join(sharers.front()->path_.native(), e.name));
        else if (e.mask & IN_MOVED_TO) movedTo(e.cookie, join(sharers.front()->path_.native(), e.name));
    }

    const bool deletedSelf = (e.mask & IN_DELETE_SELF) != 0;
    if (deletedSelf) {
        // INO-21: the callbacks get the event with the watch still in the table
        // (isWatched() answers, ignore() works); it leaves the table after them.
        // Marked now, so a callback that watches the path again gets a new
        // watch, not the dying one. The descriptor's bookkeeping stays until
        // IN_IGNORED (INO-22).
        for (const WatchPtr& w : sharers)
            if (w->life_ == Watch::Life::live) w->life_ = Watch::Life::deleted;
    }
    struct DropDeleted {
        INotify& self;
        std::span<const WatchPtr> sharers;
        bool active;
        ~DropDeleted() {
            if (!active) return;
            for (const WatchPtr& w : sharers) {
                if (w->life_ != Watch::Life::deleted) continue;
                auto p = self.byPath_.find(w->path_.native());
                if (p != self.byPath_.end() && p->second == w) self.byPath_.erase(p);
            }
        }
    } dropDeleted{*this, sharers, deletedSelf};

    for (const WatchPtr& w : sharers) {
        if (!open()) return;
        if (!w->delivering()) continue;
        if (!(e.mask & kAlwaysDelivered) && !(e.mask & w->mask_ & IN_ALL_EVENTS)) continue;  // a sharer's mask
        if (e.name.empty()) {
            deliver(w, w->path_, e.mask, e.cookie);
            continue;
        }
        scratch = join(w->path_.native(), e.name);
        deliver(w, scratch, e.mask, e.cookie);
        // INO-16, INO-19: after the event's callbacks, a new directory is watched.
        if (w->autoAdd_ && (e.mask & IN_ISDIR) && (e.mask & (IN_CREATE | IN_MOVED_TO)) && w->delivering() && open())
            autoAddDirectory(w, scratch.native());
    }
}

void INotify::deliver(const WatchPtr& w, const FilePath& path, std::uint32_t mask, std::uint32_t cookie) {
    auto callbacks = w->callbacks_;
    Event event{*w, path, mask, cookie};
    for (const Callback& callback : *callbacks) {
        if (!w->delivering() || !open()) return;  // ignore() or loseConnection() from a callback
        try {
            callback(event);
        } catch (...) {
            log::failure(logPrefix(), "Unhandled error in an inotify callback", Failure::current());
        }
    }
}

void INotify::ended(int wd) {
    // INO-22: the kernel ended the watch (ignore() of the last sharer, deletion,
    // unmount, IN_ONESHOT). The bookkeeping goes first, so a callback that
    // watches the path again gets a new watch.
    auto it = byWd_.find(wd);
    std::vector<WatchPtr> sharers = std::move(it->second);
    byWd_.erase(it);
    for (auto& w : sharers)
        if (auto p = byPath_.find(w->path_.native()); p != byPath_.end() && p->second == w) byPath_.erase(p);
    for (auto& w : sharers) {
        if (w->delivering() && open()) deliver(w, w->path_, IN_IGNORED, 0);
        w->life_ = Watch::Life::ended;
    }
}

void INotify::overflowed() {
    if (overflow_) {
        auto callback = overflow_;  // it may replace itself
        try {
            callback();
        } catch (...) {
            log::failure(logPrefix(), "Unhandled error in the inotify overflow callback", Failure::current());
        }
        return;
    }
    std::vector<WatchPtr> all;
    all.reserve(byPath_.size());
    for (auto& [key, w] : byPath_) all.push_back(w);
    for (auto& w : all) {
        if (!open()) return;
        if (w->delivering()) deliver(w, w->path_, IN_Q_OVERFLOW, 0);
    }
}

// ---- moves -------------------------------------------------------------------------

void INotify::movedFrom(std::uint32_t cookie, std::string from) {
    // Worth remembering only if something at or below `from` is watched. Those
    // watches leave the path table now (the path names none of them any more)
    // and stay silent until the move's other half says where they went.
    std::vector<WatchPtr> moving;
    for (auto it = byPath_.lower_bound(from); it != byPath_.end() && atOrBelow(it->first, from);) {
        it->second->life_ = Watch::Life::moving;
        moving.push_back(std::move(it->second));
        it = byPath_.erase(it);
    }
    if (moving.empty()) return;
    if (movesFrom_.size() >= kMaxPendingMoves) {
        PendingMove oldest = std::move(movesFrom_.front());  // settled as gone from the tree
        movesFrom_.erase(movesFrom_.begin());
        for (auto& w : oldest.watches)
            if (w->life_ == Watch::Life::moving) {
                w->life_ = Watch::Life::ignored;
                forget(w);
            }
    }
    movesFrom_.push_back(PendingMove{cookie, std::move(from), std::move(moving)});
}

void INotify::movedTo(std::uint32_t cookie, const std::string& to) {
    auto m = std::find_if(movesFrom_.begin(), movesFrom_.end(), [&](const auto& p) { return p.cookie == cookie; });
    if (m == movesFrom_.end()) return;  // moved in from outside, or nothing watched there
    PendingMove move = std::move(*m);
    movesFrom_.erase(m);
    for (auto& w : move.watches) {
        if (w->life_ != Watch::Life::moving) continue;  // ended meanwhile
        std::string now = to + w->path_.native().substr(move.from.size());
        w->path_ = now;
        w->life_ = Watch::Life::live;
        // A watch already at the new path (of the inode the move replaced) is
        // displaced; it leaves the descriptor table with its IN_IGNORED.
        byPath_.insert_or_assign(std::move(now), w);
    }
}

INotify::WatchPtr INotify::adoptMoving(const std::vector<WatchPtr>& sharers, const std::string& key) {
    for (const WatchPtr& w : sharers) {
        if (w->life_ != Watch::Life::moving) continue;
        for (auto& move : movesFrom_) {
            if (std::find(move.watches.begin(), move.watches.end(), w) == move.watches.end()) continue;
            // The group's new place: `key` less what lies below the move's root.
            std::string_view below = std::string_view(w->path_.native()).substr(move.from.size());
            if (!std::string_view(key).ends_with(below)) break;
            std::string to = key.substr(0, key.size() - below.size());
            movedTo(move.cookie, to);
            return w;
        }
    }
    return nullptr;
}

void INotify::finishMoves() {
    // Each pending move's watches left the tree: they end, silently, as after ignore().
    auto moves = std::move(movesFrom_);
    movesFrom_.clear();
    for (auto& move : moves)
        for (auto& w : move.watches)
            if (w->life_ == Watch::Life::moving) {
                w->life_ = Watch::Life::ignored;
                forget(w);
            }
}

// ---- automatic watching and catch-up scans (INO-16..INO-20) -------------------------

void INotify::autoAddDirectory(const WatchPtr& parent, const std::string& path) {
    bool created = false;
    WatchPtr w;
    try {
        w = addOne(path, parent->mask_, true, parent->callbacks_, &created);
    } catch (const INotifyError& e) {
        if (!vanished(e.code().value())) log::error(logPrefix(), "{}", e.what());
        return;
    }
    if (created) scheduleScan(w);  // not for a directory moved within the tree: its watch came along
}

void INotify::scheduleScan(const WatchPtr& w) {
    if (scans_.size() >= scanPruneAt_) {
        std::erase_if(scans_, [](const DelayedCall& c) { return !c.active(); });
        scanPruneAt_ = std::max<std::size_t>(64, 2 * scans_.size());
    }
    // Weak references: a pending scan keeps neither the notifier nor the watch alive.
    scans_.push_back(reactor().callLater(0, [self = weak_from_this(), watch = std::weak_ptr<Watch>(w)] {
        auto me = std::static_pointer_cast<INotify>(self.lock());
        auto target = watch.lock();
        if (me && target) me->scan(target);  // `me` keeps the notifier alive until the scan's callbacks return
    }));
}

void INotify::scan(const WatchPtr& w) {
    if (!open() || !w->delivering()) return;
    const std::string dir = w->path_.native();
    std::vector<DirEntry> entries;
    if (int error = listDirectory(dir, false, entries); error != 0) {
        // It vanished before its scan: skipped (INO-18). Any other failure
        // (EMFILE) loses what it holds: said, as autoAdd's own failures are.
        if (!vanished(error)) log::error(logPrefix(), "{}", watchError(error, dir).what());
        return;
    }
    FilePath child;
    for (auto& e : entries) {
        if (!open() || !w->delivering()) return;
        std::string key = join(dir, e.name);
        unsigned char type = entryType(key, e.type);
        if (type == DT_UNKNOWN) continue;  // gone already
        if (type == DT_DIR) {
            bool created = false;
            WatchPtr sub;
            try {
                sub = addOne(key, w->mask_, true, w->callbacks_, &created);
            } catch (const INotifyError& err) {
                if (vanished(err.code().value())) continue;
                log::error(logPrefix(), "{}", err.what());
            }
            child = key;
            deliver(w, child, IN_CREATE | IN_ISDIR, 0);
            if (created && sub->delivering() && open()) scheduleScan(sub);  // one level per iteration
        } else {
            // A regular file as if created and written (Twisted's choice); any
            // other entry (a symbolic link, a FIFO, a socket, a device) as the
            // kernel reports its creation.
            child = key;
            deliver(w, child, type == DT_REG ? IN_CREATE | IN_CLOSE_WRITE : IN_CREATE, 0);
        }
    }
}

// ---- closing -----------------------------------------------------------------------

void INotify::connectionLost(const Failure& reason) {
    if (disconnected()) return;
    FileDescriptor::connectionLost(reason);  // leaves the reactor while fileno() is still valid
    auto scans = std::move(scans_);
    for (auto& call : scans)
        if (call.active()) call.cancel();
    for (auto& [wd, sharers] : byWd_)
        for (auto& w : sharers) w->life_ = Watch::Life::ended;
    for (auto& [key, w] : byPath_) w->life_ = Watch::Life::ended;
    byWd_.clear();
    byPath_.clear();
    movesFrom_.clear();
    int fd = std::exchange(fd_, -1);
    if (fd >= 0 && sys::ops.close(fd) != 0)
        log::failure(logPrefix(), "Couldn't close INotify file descriptor",
                     Failure(std::system_error(errno, std::generic_category(), "close")));
}

}  // namespace weft::inotify
