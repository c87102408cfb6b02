#include <weft/internet/base.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <system_error>

#include <weft/internet/abstract.hpp>
#include <weft/internet/error.hpp>
#include <weft/log.hpp>

#include "internet/detail/flagscope.hpp"
#include "internet/detail/poller.hpp"
#include "internet/detail/timerqueue.hpp"
#include "sys/syscalls.hpp"

namespace weft {

// ---- backends ----------------------------------------------------------------

std::string_view backendName(Backend b) {
    switch (b) {
        case Backend::epoll: return "epoll";
        case Backend::poll: return "poll";
        case Backend::select: return "select";
    }
    return "?";
}

std::optional<Backend> parseBackend(std::string_view name) {
    for (Backend b : {Backend::epoll, Backend::poll, Backend::select})
        if (backendName(b) == name) return b;
    return std::nullopt;
}

std::unique_ptr<Reactor> Reactor::create(std::optional<Backend> backend) {
    if (!backend) {
        const char* env = std::getenv("WEFT_REACTOR");
        if (env && *env) {
            backend = parseBackend(env);
            if (!backend)
                throw std::invalid_argument(std::string("WEFT_REACTOR names no backend: '") + env +
                                            "' (expected epoll, poll or select)");
        }
    }
    switch (backend.value_or(Backend::epoll)) {
        case Backend::poll: return std::make_unique<PollReactor>();
        case Backend::select: return std::make_unique<SelectReactor>();
        case Backend::epoll: break;
    }
    return std::make_unique<EPollReactor>();
}

EPollReactor::EPollReactor() : Reactor(Backend::epoll, detail::makeEpollPoller()) {}
PollReactor::PollReactor() : Reactor(Backend::poll, detail::makePollPoller()) {}
SelectReactor::SelectReactor() : Reactor(Backend::select, detail::makeSelectPoller()) {}

// ---- private structures ------------------------------------------------------

namespace detail {

/// A registered descriptor that is not a FileDescriptor made on this reactor (a
/// listening port, the waker, a user's own IReadDescriptor), as the table's side
/// map keeps it; map nodes do not move, so a slot points at its record.
struct OtherDescriptor {
    const IFileDescriptor* key = nullptr;
    IReadDescriptor* reader = nullptr;       // as addReader was given it
    IWriteDescriptor* writer = nullptr;      // as addWriter was given it
    std::weak_ptr<IFileDescriptor> watched;  // set while only watched for errors
    int fd = -1;
};

/// One registration, in place at its fd (32 bytes: two to a cache line). What
/// can be found from the descriptor is not stored: a FileDescriptor made on this
/// reactor is its own reader and writer and keeps the fd it is registered under
/// (regFd_), and while it is only watched for errors its own weak_from_this()
/// is the weak reference (its destructor frees the slot). Any other descriptor
/// keeps those in its OtherDescriptor.
struct Registration {
    std::shared_ptr<IFileDescriptor> owner;  // null while only watched for errors
    void* target = nullptr;                  // FileDescriptor* (local) or OtherDescriptor*; null: free
    std::uint32_t gen = 0;                   // the token's high half; never 0 while in use
    std::uint16_t readArmedAt = 0;           // low bits of Reactor::waits_ when read interest was last given
    std::uint16_t reading : 1 = 0;
    std::uint16_t writing : 1 = 0;
    std::uint16_t local : 1 = 0;  // target is a FileDescriptor made on this reactor
    std::uint16_t inPoller : 1 = 0;
    std::uint16_t internal : 1 = 0;
    std::uint16_t flushPending : 1 = 0;      // added by addWriterSoon, not yet armed in the poller
    std::uint16_t reductionPending : 1 = 0;  // the poller has more interest than this; fixed before the next wait
    std::uint16_t polled : 2 = 0;            // the interest the poller has (valid while inPoller)

    FileDescriptor* fdesc() const noexcept { return static_cast<FileDescriptor*>(target); }
    OtherDescriptor* other() const noexcept { return static_cast<OtherDescriptor*>(target); }
    const IFileDescriptor* key() const noexcept {
        return local ? static_cast<const IFileDescriptor*>(fdesc()) : other()->key;
    }
    int fd() const noexcept { return local ? fdesc()->regFd_ : other()->fd; }
    std::uint64_t token() const noexcept {
        return (static_cast<std::uint64_t>(gen) << 32) | static_cast<std::uint32_t>(fd());
    }
    IReadDescriptor* reader() const noexcept {
        if (!reading) return nullptr;
        return local ? static_cast<IReadDescriptor*>(fdesc()) : other()->reader;
    }
    IWriteDescriptor* writer() const noexcept {
        if (!writing) return nullptr;
        return local ? static_cast<IWriteDescriptor*>(fdesc()) : other()->writer;
    }
    unsigned interest() const noexcept { return (reading ? kReadable : 0u) | (writing ? kWritable : 0u); }
    /// The descriptor, held, whether owned or only watched; null once it is gone.
    std::shared_ptr<IFileDescriptor> hold() const {
        if (owner) return owner;
        if (local) {
            std::shared_ptr<FileDescriptor> f = fdesc()->weak_from_this().lock();
            return std::shared_ptr<IFileDescriptor>(std::move(f));
        }
        return other()->watched.lock();
    }
};
static_assert(sizeof(Registration) == 32, "two registrations to a cache line");

// Registrations live in place, indexed by fd, in pages of kPage slots made on
// first use and kept while the reactor lives (addresses are stable). Compared
// with a hash table keyed by descriptor: no allocation, no hash lookup and no
// node (≈ 110 bytes) per connection (bench/README.md, issue #10).
struct RegistrationTable {
    static constexpr std::size_t kPageShift = 8;
    static constexpr std::size_t kPage = std::size_t{1} << kPageShift;

    std::vector<std::unique_ptr<Registration[]>> pages;
    std::unordered_map<const IFileDescriptor*, OtherDescriptor> others;

    /// The slot for fd, free (target null, gen 0) or not; null if its page was never made.
    [[gnu::always_inline]] Registration* slotAt(std::size_t fd) const noexcept {
        std::size_t page = fd >> kPageShift;
        if (page >= pages.size()) return nullptr;
        Registration* p = pages[page].get();
        return p ? p + (fd & (kPage - 1)) : nullptr;
    }
    /// The registration in use at fd, or null.
    [[gnu::always_inline]] Registration* at(std::size_t fd) const noexcept {
        Registration* r = slotAt(fd);
        return r && r->target ? r : nullptr;
    }
    /// The slot for fd, free or not; makes its page.
    Registration& slot(std::size_t fd) {
        std::size_t page = fd >> kPageShift;
        if (page >= pages.size()) pages.resize(page + 1);
        if (!pages[page]) pages[page] = std::make_unique<Registration[]>(kPage);
        return pages[page][fd & (kPage - 1)];
    }
    /// Every registration in use, by fd.
    template <class F>
    void forEach(F&& f) const {
        for (const auto& page : pages)
            if (page)
                for (std::size_t i = 0; i < kPage; ++i)
                    if (page[i].target) f(page[i]);
    }
};

namespace {
// The signal handlers write here: the eventfd of the reactor that installed them.
std::atomic<int> gSignalFd{-1};
std::atomic<int> gPendingSignal{0};  // lock-free: safe in a handler
static_assert(std::atomic<int>::is_always_lock_free);

// The handlers are the process's, the reactors that asked for them may be
// several (one per thread): the handlers stay installed while any of them runs,
// the newest of them hears the signals, and the dispositions found by the
// first are put back when the last stops.
struct SignalOwners {
    std::mutex mu;
    std::vector<int> wakers;  // the waker fd of each reactor that installed them, oldest first
    struct sigaction term {};
    struct sigaction intr {};
    bool haveTerm = false;
    bool haveInt = false;
};
SignalOwners& signalOwners() {
    static SignalOwners owners;
    return owners;
}

extern "C" void weftSignalHandler(int signo) {
    int saved = errno;
    gPendingSignal.store(signo, std::memory_order_relaxed);
    int fd = gSignalFd.load(std::memory_order_relaxed);
    if (fd >= 0) {
        // Not through sys::ops: a handler may interrupt a fault-injector hook that
        // holds its mutex (src/sys/syscalls.hpp). write(2) is async-signal-safe.
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);  // syscall-seam: exempt (async-signal handler)
    }
    errno = saved;
}
}  // namespace

/// The reactor's internal reader: an eventfd written by callFromThread, wakeUp
/// and the signal handlers (R-47: one fd, non-blocking, close-on-exec).
class Waker final : public IReadDescriptor {
public:
    explicit Waker(Reactor& r) : reactor_(r), fd_(sys::ops.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
        if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd (the reactor's waker)");
    }
    ~Waker() override { sys::ops.close(fd_); }
    int fileno() const override { return fd_; }
    std::string logPrefix() const override { return "Waker"; }
    void connectionLost(const Failure&) override {}
    void wake() noexcept {
        std::uint64_t one = 1;
        // EAGAIN means the counter is saturated: a wake-up is already pending.
        [[maybe_unused]] auto n = sys::ops.write(fd_, &one, sizeof one);
    }
    Reason doRead() override {
        // Drain first, then clear the flag. Clearing first loses wake-ups: a
        // wakeUp() between the two writes a token that the read then eats while
        // the flag stays set, so every later wakeUp() skips its write and the
        // reactor sleeps on queued calls. In this order a wakeUp() that sees the
        // flag still set queued its call before the exchange below, and the
        // iteration that follows runs it. The RMW (not a plain store) makes that
        // push visible to this thread.
        std::uint64_t v;
        [[maybe_unused]] auto n = sys::ops.read(fd_, &v, sizeof v);
        reactor_.wakePending_.exchange(false, std::memory_order_acq_rel);
        reactor_.checkSignals();
        return std::nullopt;
    }

private:
    Reactor& reactor_;
    int fd_;
};

}  // namespace detail

using detail::Registration;

struct Reactor::EventState {
    std::vector<TriggerRecord> before, during, after;
    Phase phase = Phase::none;             // phase being fired, none when idle
    std::size_t pendingBefore = 0;         // async before triggers not yet done
    std::vector<std::uint64_t> ranBefore;  // before triggers run in the current firing
    bool runningBefore = false;            // inside runBeforeTriggers' loop
};

namespace {
void ignoreSigpipeOnce() {
    // A C++ program dies of SIGPIPE by default; Python (and so Twisted) ignores it
    // at start-up. Only the default disposition is changed, never a user's handler.
    static const bool done = [] {
        struct sigaction old {};
        if (sys::ops.sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
            struct sigaction ign {};
            ign.sa_handler = SIG_IGN;
            sigemptyset(&ign.sa_mask);
            sys::ops.sigaction(SIGPIPE, &ign, nullptr);
        }
        return true;
    }();
    (void)done;
}
}  // namespace

// ---- construction ---------------------------------------------------------------

Reactor::Reactor(Backend backend, std::unique_ptr<detail::Poller> poller)
    : backend_(backend), poller_(std::move(poller)),
      timers_(std::make_unique<detail::TimerQueue>(
          [](const void* self) { return static_cast<const Reactor*>(self)->seconds(); }, this)),
      regs_(std::make_unique<detail::RegistrationTable>()), ioThread_(std::this_thread::get_id()) {
    ignoreSigpipeOnce();
    waker_ = std::make_shared<detail::Waker>(*this);
    if (backend_ == Backend::select && waker_->fileno() >= FD_SETSIZE)  // select() could never watch it
        throw std::system_error(EMFILE, std::generic_category(),
                                "select reactor: its waker got descriptor " + std::to_string(waker_->fileno()) +
                                    ", which select() cannot watch (FD_SETSIZE is " + std::to_string(FD_SETSIZE) +
                                    "); use the epoll or poll reactor");
    addInternalReader(waker_);
    // The reactor's own shutdown work precedes user during-shutdown triggers.
    addSystemEventTrigger("during", "startup", [this] { reallyStartRunning(); });
    addSystemEventTrigger("during", "shutdown", [this] { crash(); });
    addSystemEventTrigger("during", "shutdown", [this] { disconnectAll(); });
}

Reactor::~Reactor() {
    restoreSignals();
    // Calls never to run are dropped now, before the pool is joined: a worker
    // waiting for one (blockingCallFromThread) is released with an error instead
    // of holding up the join for ever.
    std::vector<Function<void()>> unrun;
    {
        std::lock_guard lk(threadMu_);
        refuseWaiters_ = true;
        unrun.swap(threadCalls_);
        threadCallsQueued_.store(false, std::memory_order_relaxed);
    }
    unrun.clear();
    if (pool_) pool_->stop();
    // Whatever is still open is told, as at shutdown: a transport and its
    // protocol hold each other, and a reactor that never shut down (never run,
    // crash()ed, or given connections after run() returned) would otherwise
    // leave both behind. Then what is bound to the reactor without being a
    // descriptor (a running child and its watcher) lets go.
    disconnectAll();
    while (!bound_.empty()) {
        detail::ReactorBound* b = bound_.back();
        unbind(*b);
        b->reactorGone();
    }
    // Drop registrations before the poller; descriptors are released, not notified.
    // The table is emptied first, so a descriptor whose destructor asks finds nothing.
    auto pages = std::move(regs_->pages);
    regs_->pages.clear();
    regs_->others.clear();
    pages.clear();
    for (FileDescriptor* d : live_) {
        d->liveIndex_ = FileDescriptor::kNotLive;  // those that outlive us must not reach back
        d->regFd_ = -1;
    }
    live_.clear();
}

// ---- registrations ----------------------------------------------------------------

FileDescriptor* Reactor::localDescriptor(const IFileDescriptor* d) const noexcept {
    // Registering takes a shared_ptr to a non-const descriptor; a lookup by a
    // const pointer names the same object.
    FileDescriptor* f = const_cast<IFileDescriptor*>(d)->asFileDescriptor();
    return f && &f->reactor_ == this ? f : nullptr;
}

[[gnu::always_inline]] inline Registration* Reactor::findLocal(const FileDescriptor* f) const noexcept {
    int fd = f->regFd_;
    if (fd < 0) return nullptr;
    Registration* r = regs_->slotAt(static_cast<std::size_t>(fd));
    return r && r->target == f ? r : nullptr;
}

Registration* Reactor::findReg(const IFileDescriptor* d) const {
    if (const FileDescriptor* f = localDescriptor(d)) return findLocal(f);
    auto it = regs_->others.find(d);
    if (it == regs_->others.end()) return nullptr;
    Registration* r = regs_->slotAt(static_cast<std::size_t>(it->second.fd));
    return r && r->target == &it->second ? r : nullptr;
}

[[gnu::always_inline]] inline Registration* Reactor::regAt(std::uint64_t token) const {
    // Generations start at 1, so a free slot (gen 0) never matches.
    Registration* r = regs_->slotAt(static_cast<std::uint32_t>(token));
    return r && r->gen == static_cast<std::uint32_t>(token >> 32) ? r : nullptr;
}

Registration& Reactor::regFor(std::shared_ptr<IFileDescriptor> d, int fd, bool armedNow) {
    const IFileDescriptor* key = d.get();
    FileDescriptor* local = localDescriptor(key);
    if (auto* r = local ? findLocal(local) : findReg(key)) {
        if (r->owner && r->fd() == fd) return *r;
        if (r->owner && fd >= 0) {
            // Held under another fd: its fileno() changed while registered (the old
            // fd closed and a new one taken without removeReader). The old fd's
            // registration is stale (epoll forgot the closed file); it moves to the
            // new fd with what it was watched for, on every backend alike.
            IReadDescriptor* reader = r->reader();
            IWriteDescriptor* writer = r->writer();
            dropReg(*r);
            Registration& moved = regFor(std::move(d), fd, armedNow);
            if (reader) setReader(moved, reader);
            if (writer) setWriter(moved, writer);
            if (reader || writer) updateInterest(moved);
            return moved;
        }
        // Only watched for errors: hold it again, if it is the one that was watched
        // (a local descriptor always is: its destructor frees its slot) and its fd
        // did not change.
        if (r->fd() == fd && (r->local || !r->other()->watched.expired())) {
            r->owner = std::move(d);
            if (!r->local) r->other()->watched.reset();
            return *r;
        }
        // A stale watch: the paused descriptor it belonged to was freed (and this one was
        // allocated at its address) or its fd changed. Register afresh.
        dropReg(*r);
    }
    if (fd < 0) throw std::invalid_argument(d->logPrefix() + ": fileno() is -1; cannot register a closed descriptor");
    // A closed descriptor is refused here, before anything is registered. On epoll
    // the EPOLL_CTL_ADD that follows at once (addReader, addWriter) refuses it by
    // itself, so the check would be one more system call per connection.
    if (!(armedNow && poller_->checksNewDescriptors()) && sys::ops.fcntl(fd, F_GETFD, 0) < 0)
        throw std::system_error(errno, std::generic_category(),
                                d->logPrefix() + ": cannot register descriptor " + std::to_string(fd));
    if (Registration* stale = regs_->at(static_cast<std::size_t>(fd))) {
        // Another descriptor still claims this fd number, so its fd was closed behind
        // the reactor's back and reused. Forget it; if it is still held,
        // tell it later, never on this caller's stack.
        auto held = stale->hold();
        bool wasActive = stale->reading || stale->writing;
        dropReg(*stale);
        if (held && wasActive)
            callLater(0, [this, held] { disconnectSelectable(*held, Failure(ConnectionFdescWentAway()), false); });
    }
    Registration& slot = regs_->slot(static_cast<std::size_t>(fd));
    if (local) {
        local->regFd_ = fd;
        slot.target = local;
        slot.local = 1;
    } else {
        // May allocate: before the slot is taken.
        detail::OtherDescriptor& other = regs_->others[key];
        other = detail::OtherDescriptor{};
        other.key = key;
        other.fd = fd;
        slot.target = &other;
    }
    slot.owner = std::move(d);
    slot.gen = nextGen_;
    if (++nextGen_ == 0) nextGen_ = 1;  // generation 0 is never used: a free slot's is 0
    return slot;
}

[[gnu::always_inline]] inline void Reactor::tellPoller(Registration& r, unsigned interest, bool removing) {
    if (r.inPoller && r.polled == interest) return;  // nothing changes: no system call
    if (r.local && r.inPoller && (interest & ~static_cast<unsigned>(r.polled)) == 0) {
        // Less interest than the poller has: it is told just before the next wait,
        // so a descriptor that closes, or asks again, meanwhile costs no system call
        // (an echo's end of input then close; a producer paused and resumed in one
        // pass). Until then dispatch() delivers only what is registered.
        // Only for a FileDescriptor of this reactor, which forgets its registration
        // when it closes its fd: any other descriptor may close its fd after
        // removeReader and register a new one under the same number before the
        // next wait (a port stopped and started again), and the kernel has dropped
        // the old one from the poller meanwhile, so the poller is told at once.
        if (!r.reductionPending) {
            r.reductionPending = 1;
            pendingReductions_.push_back(r.token());
        }
        return;
    }
    setPollerInterest(r, interest, removing);
}

void Reactor::updateInterest(Registration& r, bool removing) {
    unsigned interest = r.interest();
    if (interest == 0) {
        watchOnly(r, removing);
        return;
    }
    if (r.flushPending) return;  // armed before the next wait
    tellPoller(r, interest, removing);
}

void Reactor::watchOnly(Registration& r, bool removing) {
    if (r.internal || !poller_->reportsHangup() || (r.owner && !r.owner->watchedWhilePaused())) {
        dropReg(r);
        return;
    }
    // Keep watching a paused descriptor for errors and resets (R-38, Better than
    // Twisted) without holding it alive. If that releases it, it goes when this
    // function is done with its registration (its destructor frees the slot).
    std::shared_ptr<IFileDescriptor> released;
    if (r.owner) {
        if (r.local) {
            // Its own weak reference watches it; a FileDescriptor not owned by a
            // shared_ptr has none (it could not have registered itself either).
            if (r.fdesc()->weak_from_this().expired()) {
                dropReg(r);
                return;
            }
        } else {
            r.other()->watched = r.owner;
        }
        released = std::move(r.owner);
    }
    tellPoller(r, 0, removing);
}

void Reactor::setPollerInterest(Registration& r, unsigned interest, bool removing) {
    const int fd = r.fd();
    try {
        bool gainsRead = (interest & detail::kReadable) && !(r.inPoller && (r.polled & detail::kReadable));
        poller_->set(fd, r.token(), interest, r.inPoller);
        if (gainsRead) r.readArmedAt = static_cast<std::uint16_t>(waits_);
        r.inPoller = 1;
        r.polled = interest & 3u;
    } catch (...) {
        // Removing interest never fails: if the backend refuses (the fd was closed
        // behind the reactor's back, R-43), the registration is dead, so forget it. A
        // descriptor refused at its first registration is named as regFor's check names it.
        const bool fresh = !r.inPoller;
        std::string what = fresh && r.owner
                               ? r.owner->logPrefix() + ": cannot register descriptor " + std::to_string(fd)
                               : std::string();
        if (removing || interest == 0 || fresh) dropReg(r);
        if (removing) return;
        if (what.empty()) throw;
        try {
            throw;
        } catch (const std::system_error& e) {
            throw std::system_error(e.code(), what);
        }
    }
}

void Reactor::applyPendingReductions() {
    if (pendingReductions_.empty()) return;
    std::vector<std::uint64_t> batch;
    batch.swap(pendingReductions_);
    for (std::uint64_t token : batch) {
        Registration* r = regAt(token);  // gone (closed, dropped) since: nothing to tell
        if (!r || !r->reductionPending) continue;
        r->reductionPending = 0;
        unsigned interest = r->interest();
        if (r->flushPending && interest != 0) continue;      // the flush arms it
        if (r->inPoller && r->polled == interest) continue;  // asked again meanwhile
        setPollerInterest(*r, interest, true);
    }
    if (pendingReductions_.empty()) {  // keep the buffer for the next pass
        batch.clear();
        batch.swap(pendingReductions_);
    }
}

void Reactor::dropReg(Registration& r) {
    const int fd = r.fd();
    if (r.inPoller) poller_->remove(fd);
    // The descriptor may be released at the end of this function: free the slot
    // first, so its destructor sees a consistent table.
    auto doomed = std::move(r.owner);
    if (r.local) {
        r.fdesc()->regFd_ = -1;
    } else {
        // Not asked what it is: it may be gone (its own destructor may be what called us).
        const IFileDescriptor* key = r.other()->key;
        regs_->others.erase(key);
    }
    r = Registration{};
}

void Reactor::addInternalReader(std::shared_ptr<IReadDescriptor> reader) {
    IReadDescriptor* raw = reader.get();
    auto& r = regFor(std::shared_ptr<IFileDescriptor>(reader, raw), raw->fileno());
    r.internal = 1;
    setReader(r, raw);
    updateInterest(r);
}

void Reactor::removeInternalReader(IReadDescriptor* reader) {
    if (!reader) return;
    auto* r = findReg(reader);
    if (!r || !r->internal) return;
    r->reading = 0;
    updateInterest(*r, true);  // no interest left: the registration goes
}

void Reactor::setReader(Registration& r, IReadDescriptor* reader) noexcept {
    if (!r.local) r.other()->reader = reader;
    r.reading = 1;
}

void Reactor::setWriter(Registration& r, IWriteDescriptor* writer) noexcept {
    if (!r.local) r.other()->writer = writer;
    r.writing = 1;
}

void Reactor::addReader(std::shared_ptr<IReadDescriptor> reader) {
    if (!reader) throw std::invalid_argument("addReader: null descriptor");
    IReadDescriptor* raw = reader.get();
    auto& r = regFor(std::shared_ptr<IFileDescriptor>(reader, raw), raw->fileno());
    if (r.reading) return;
    setReader(r, raw);
    updateInterest(r);
}

void Reactor::addWriter(std::shared_ptr<IWriteDescriptor> writer) {
    if (!writer) throw std::invalid_argument("addWriter: null descriptor");
    IWriteDescriptor* raw = writer.get();
    auto& r = regFor(std::shared_ptr<IFileDescriptor>(writer, raw), raw->fileno());
    if (r.writing) return;
    setWriter(r, raw);
    updateInterest(r);
}

void Reactor::addWriterSoon(std::shared_ptr<IWriteDescriptor> writer) {
    if (!writer) throw std::invalid_argument("addWriterSoon: null descriptor");
    IWriteDescriptor* raw = writer.get();
    auto& r = regFor(std::shared_ptr<IFileDescriptor>(writer, raw), raw->fileno(), false);
    if (r.writing) return;
    setWriter(r, raw);
    if (!r.flushPending) {
        r.flushPending = 1;
        pendingFlush_.push_back(r.token());
    }
}

bool Reactor::writeSoonIfRegistered(FileDescriptor* f, int fd) {
    Registration* r = findLocal(f);
    if (!r || !r->owner || f->regFd_ != fd) return false;  // not held (or a stale fd): the full path
    if (r->writing) return true;
    r->writing = 1;
    if (!r->flushPending) {
        r->flushPending = 1;
        pendingFlush_.push_back(r->token());
    }
    return true;
}

// What removeReader, removeWriter and isReading do once the registration is found
// (through the descriptor's own fd for a FileDescriptor of this reactor).
void Reactor::stopReadingAt(Registration* r) {
    if (!r || !r->reading || r->internal) return;  // the waker leaves only with the reactor
    r->reading = 0;
    updateInterest(*r, true);
}

void Reactor::stopWritingAt(Registration* r) {
    if (!r || !r->writing) return;
    r->writing = 0;
    updateInterest(*r, true);
}

bool Reactor::readingAt(const Registration* r) noexcept { return r && r->reading && !r->internal; }

void Reactor::removeLocalReader(FileDescriptor* f) { stopReadingAt(findLocal(f)); }

void Reactor::removeLocalWriter(FileDescriptor* f) { stopWritingAt(findLocal(f)); }

bool Reactor::isLocalReading(const FileDescriptor* f) const noexcept { return readingAt(findLocal(f)); }

void Reactor::forgetDescriptor(FileDescriptor* f) {
    if (Registration* r = findLocal(f)) dropReg(*r);  // pending flushes and reductions find nothing now
}

void Reactor::callBeforeWait(Function<void()> f) { beforeWait_.push_back(std::move(f)); }

void Reactor::runBeforeWaitCalls() {
    // Calls added by these calls run in the same pass (a TLS layer over a TLS layer).
    for (int pass = 0; pass < 16 && !beforeWait_.empty(); ++pass) {
        std::vector<Function<void()>> batch;
        batch.swap(beforeWait_);
        for (auto& f : batch) {
            try {
                f();
            } catch (...) {
                log::failure("", "Unhandled error in a callBeforeWait call", Failure::current());
            }
        }
    }
}

void Reactor::settleBeforeWait() {
    // callBeforeWait's calls write; the writes they queue leave in the flush; a
    // flush may resume a producer that writes again. A few rounds settle it; what
    // is still queued after them makes the next wait a poll (timeout()).
    for (int round = 0; round < 4; ++round) {
        if (!beforeWait_.empty()) runBeforeWaitCalls();
        if (!pendingFlush_.empty()) flushPendingWriters();
        if (beforeWait_.empty()) return;
    }
}

void Reactor::flushPendingWriters() {
    if (pendingFlush_.empty() || flushing_) return;
    detail::FlagScope flushing(flushing_);
    std::vector<std::uint64_t> batch;
    batch.swap(pendingFlush_);
    for (std::uint64_t token : batch) {
        Registration* r = regAt(token);  // gone, or its fd reused, since it was queued: skip
        if (!r || !r->flushPending) continue;
        r->flushPending = 0;
        if (r->writing && r->owner) {
            // Write now, as if the descriptor were writable: a socket with room
            // takes the bytes without an EPOLLOUT round trip. What is left waits
            // for real writability below.
            dispatch(static_cast<int>(static_cast<std::uint32_t>(token)), token, detail::kWritable);
            r = regAt(token);
            if (!r || r->flushPending) continue;
        }
        updateInterest(*r);
    }
    // Writers added while flushing wait for readiness: one pass per iteration.
    batch.clear();
    batch.swap(pendingFlush_);
    for (std::uint64_t token : batch) {
        Registration* r = regAt(token);
        if (!r || !r->flushPending) continue;
        r->flushPending = 0;
        updateInterest(*r);
    }
    // Keep the larger buffer for the next flush (no allocation per iteration).
    if (pendingFlush_.empty() && batch.capacity() > pendingFlush_.capacity()) {
        batch.clear();
        batch.swap(pendingFlush_);
    }
}

void Reactor::removeReader(IReadDescriptor* reader) {
    if (reader) stopReadingAt(findReg(reader));
}

void Reactor::removeWriter(IWriteDescriptor* writer) {
    if (writer) stopWritingAt(findReg(writer));
}

bool Reactor::isReading(const IFileDescriptor* d) const { return readingAt(findReg(d)); }

bool Reactor::isWriting(const IFileDescriptor* d) const {
    auto* r = findReg(d);
    return r && r->writing;
}

std::vector<std::shared_ptr<IFileDescriptor>> Reactor::removeAll() {
    std::vector<std::shared_ptr<IFileDescriptor>> out;
    std::vector<std::uint64_t> doomed;
    regs_->forEach([&](const Registration& r) {
        if (r.internal) return;
        if (r.owner) out.push_back(r.owner);
        doomed.push_back(r.token());
    });
    for (std::uint64_t token : doomed)
        if (Registration* r = regAt(token)) dropReg(*r);
    return out;
}

std::vector<std::shared_ptr<IReadDescriptor>> Reactor::getReaders() const {
    std::vector<std::shared_ptr<IReadDescriptor>> out;
    regs_->forEach([&](const Registration& r) {
        if (r.reading && !r.internal) out.emplace_back(r.owner, r.reader());
    });
    return out;
}

std::vector<std::shared_ptr<IWriteDescriptor>> Reactor::getWriters() const {
    std::vector<std::shared_ptr<IWriteDescriptor>> out;
    regs_->forEach([&](const Registration& r) {
        if (r.writing && !r.internal) out.emplace_back(r.owner, r.writer());
    });
    return out;
}

void Reactor::disconnectSelectable(IFileDescriptor& d, const Failure& why, bool isRead) {
    auto* r = findReg(&d);
    auto hold = r ? r->hold() : nullptr;  // lives until we return
    if (isRead && why.check<ConnectionDone>()) {
        if (auto* hc = d.asHalfCloseable()) {
            if (r && r->reading) {
                r->reading = 0;
                updateInterest(*r, true);
            }
            hc->readConnectionLost(why);
            return;
        }
    }
    if (r) dropReg(*r);
    d.connectionLost(why);
}

// ---- dispatch -----------------------------------------------------------------------

Failure IFileDescriptor::errorReason() const {
    int err = 0;
    socklen_t len = sizeof err;
    int fd = fileno();
    if (fd >= 0 && sys::ops.getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
        return Failure(ConnectionLost(std::error_code(err, std::generic_category())));
    return Failure(ConnectionLost());
}

void Reactor::dispatch(int fd, std::uint64_t token, unsigned ev, std::uint64_t wait) {
    if (fd < 0) return;
    Registration* r = regAt(token);
    if (!r) return;  // changed since the wait began

    if (!r->owner) {  // paused: only errors are reported
        auto held = r->hold();
        // kInvalid first: a descriptor that closed its fd after removing itself must not
        // have fileno() called (R-30, Twisted's test_removedFromReactor).
        if (!held || (ev & detail::kInvalid) || held->fileno() != fd) {
            dropReg(*r);
            return;
        }
        if (ev & detail::kError) {
            Failure why = held->errorReason();
            dropReg(*r);
            try {
                held->connectionLost(why);
            } catch (...) {
                log::failure(FileDescriptor::getLogPrefix(*held), "Unhandled error in connectionLost",
                             Failure::current());
            }
        } else if (ev & detail::kHangup) {
            // A clean hang-up reaches a paused descriptor only once it reads again:
            // stop watching so level-triggered readiness does not spin.
            poller_->remove(fd);
            r->inPoller = 0;
            r->polled = 0;
            dropReg(*r);
        }
        return;
    }

    std::shared_ptr<IFileDescriptor> hold = r->owner;  // the dispatch guard
    IFileDescriptor& d = *hold;
    log::ScopedContext logContext(&d);  // FD-38: log lines from callbacks carry d's prefix
    std::optional<Failure> why;
    bool inRead = false;
    try {
        int current = d.fileno();
        if (current != fd || (ev & detail::kInvalid)) {
            // fileno() is -1 (or changed): neither doRead nor doWrite.
            if (current == -1 || current != fd) why = Failure(ConnectionFdescWentAway());
            else {
                // Closed behind our back (EBADF), or open but unwatchable: select's fd >= FD_SETSIZE.
                int err = sys::ops.fcntl(fd, F_GETFD, 0) < 0 ? EBADF : EINVAL;
                why = Failure(ConnectionLost(std::error_code(err, std::generic_category())));
            }
        } else if ((ev & (detail::kHangup | detail::kError)) && !(ev & detail::kReadable)) {
            if (r->reading && !(ev & detail::kError) && wait != 0 &&
                r->readArmedAt == static_cast<std::uint16_t>(wait)) {
                // Reading was asked for after this wait began (an earlier event of the
                // same batch resumed it), so the wait could not say whether data is
                // waiting. The next wait can: R-37's "data first" holds.
                return;
            }
            // hang-up/error without data ends the descriptor without a callback.
            if (r->reading) {
                why = error::connectionDone();
                inRead = true;
            } else {
                why = d.errorReason();
            }
        } else {
            if ((ev & detail::kReadable) && r->reading) {
                inRead = true;
                why = r->reader()->doRead();
            }
            if (!why) {
                // doRead may have removed or re-registered anything.
                Registration* again = regAt(token);
                // What doRead wrote to this descriptor (addWriterSoon) leaves now, in
                // this guard: no second dispatch. Others' writes wait for the flush below.
                bool soon = again && again->flushPending && again->writing && again->owner;
                if (soon) {
                    again->flushPending = 0;
                    if (!pendingFlush_.empty() && pendingFlush_.back() == token) pendingFlush_.pop_back();
                }
                if (again && again->writing && again->owner && (soon || (ev & detail::kWritable))) {
                    inRead = false;
                    why = again->writer()->doWrite();
                    if (soon && !why) {
                        // Arm writability for what the socket did not take.
                        // (Everything sent: stopWriting() has told the registration already.)
                        Registration* after = regAt(token);
                        if (after && after->writing && !after->flushPending) updateInterest(*after);
                    }
                }
            }
        }
    } catch (...) {
        why = Failure::current();
        inRead = false;
        log::failure(FileDescriptor::getLogPrefix(d), "Unhandled error in doRead/doWrite", *why);
    }
    if (why) {
        try {
            disconnectSelectable(d, *why, inRead);
        } catch (...) {
            log::failure(FileDescriptor::getLogPrefix(d), "Unhandled error in connectionLost", Failure::current());
        }
    }
    // What the callback wrote leaves now, before the next descriptor's turn: a
    // reply goes out while the loop is still reading the others (latency), and
    // never on the stack of the write() that queued it.
    if (!beforeWait_.empty()) runBeforeWaitCalls();
    if (!pendingFlush_.empty()) flushPendingWriters();
}

// ---- time -----------------------------------------------------------------------------

double Reactor::seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

DelayedCall Reactor::callLater(double delay, Function<void()> f) { return timers_->schedule(delay, std::move(f)); }

std::vector<DelayedCall> Reactor::getDelayedCalls() const { return timers_->pending(); }

std::optional<double> Reactor::timeout() const {
    if (threadCallsQueued_.load(std::memory_order_acquire)) return 0.0;
    if (justStopped_) return 0.0;
    if (!beforeWait_.empty()) return 0.0;  // settleBeforeWait left work: poll, then run it
    if (timers_->empty()) return std::nullopt;
    double t = timers_->nextTime() - seconds();
    return std::clamp(t, 0.0, 2147483.0);
}

// ---- threads ---------------------------------------------------------------------------

void Reactor::wakeUp() noexcept {
    if (!wakePending_.exchange(true, std::memory_order_acq_rel)) waker_->wake();
}

void Reactor::callFromThread(Function<void()> f) {
    if (!f) throw std::invalid_argument("callFromThread: empty callable");
    {
        std::lock_guard lk(threadMu_);
        threadCalls_.push_back(std::move(f));
        threadCallsQueued_.store(true, std::memory_order_release);
    }
    wakeUp();
}

bool Reactor::callFromThreadForWaiter(Function<void()> f) {
    if (!f) throw std::invalid_argument("callFromThreadForWaiter: empty callable");
    if (looping_.load(std::memory_order_acquire) && isInIOThread())
        throw std::logic_error("blockingCallFromThread called from the reactor thread");
    {
        std::lock_guard lk(threadMu_);
        if (refuseWaiters_) return false;
        threadCalls_.push_back(std::move(f));
        threadCallsQueued_.store(true, std::memory_order_release);
    }
    wakeUp();
    return true;
}

void Reactor::runThreadCalls() {
    // The batch is local: a thread call may re-enter iterate(), whose own pass must
    // not swap out or clear the vector this loop walks. runningCalls_ only keeps a
    // spare buffer so the queue does not reallocate every pass.
    // No lock while nothing is queued (every iteration asks). A call queued just
    // after this look is not lost: callFromThread() wakes the loop after queuing,
    // and the waker's exchange of wakePending_ (acq_rel, as wakeUp's) makes the
    // flag visible to the next iteration.
    if (!threadCallsQueued_.load(std::memory_order_acquire)) return;
    std::vector<Function<void()>> batch = std::move(runningCalls_);
    batch.clear();
    {
        std::lock_guard lk(threadMu_);
        std::swap(batch, threadCalls_);
        threadCallsQueued_.store(false, std::memory_order_relaxed);
    }
    // Only the calls queued when this pass began; later ones wait for the next.
    for (auto& f : batch) {
        try {
            f();
        } catch (...) {
            log::failure("", "Unhandled error in a thread call", Failure::current());
        }
        f.reset();
    }
    batch.clear();
    if (batch.capacity() > runningCalls_.capacity()) runningCalls_ = std::move(batch);
}

bool Reactor::isInIOThread() const noexcept { return ioThread_.load() == std::this_thread::get_id(); }

ThreadPool& Reactor::getThreadPool() {
    std::lock_guard lock(poolMu_);
    return poolLocked();
}

ThreadPool& Reactor::poolLocked() {
    if (!pool_) {
        // Under poolMu_, which run() takes before it touches the triggers: the
        // creating thread may do this before run() while another thread enters it.
        pool_ = std::make_unique<ThreadPool>(0, poolMax_, "weft-reactor-pool");
        if (running_) pool_->start();
        else
            callWhenRunning([this] {
                if (pool_) pool_->start();
            });
        addSystemEventTrigger("during", "shutdown", [this] { stopThreadPool(); });
    }
    return *pool_;
}

void Reactor::stopThreadPool() {
    if (!pool_) return;
    // A worker blocked in blockingCallFromThread waits for this thread, which is
    // about to wait for the worker: refuse such calls from now on (the caller
    // gets BlockingCallAbandoned) and run, in order, what is queued already.
    {
        std::lock_guard lk(threadMu_);
        refuseWaiters_ = true;
    }
    if (looping_.load(std::memory_order_relaxed)) runThreadCalls();  // (before run(), no worker has started)
    // Stop (join) before dropping: running work may still call callInThread(),
    // which reads pool_ from the worker; it must find the stopping pool (which
    // ignores the work, R-48), not a pool_ being moved out or a null one that
    // would build a new pool from a worker thread.
    pool_->stop();  // joins: shutdown waits for running work
    std::unique_ptr<ThreadPool> dropped;
    {
        // Under poolMu_: callInThread() from another thread reads pool_ (and
        // finds the stopped pool, or none and the flag: the work is ignored).
        std::lock_guard lock(poolMu_);
        dropped = std::move(pool_);
        poolDropped_ = true;
    }
}

void Reactor::callInThread(Function<void()> f) {
    {
        std::lock_guard lock(poolMu_);
        if (pool_) {
            pool_->callInThread(std::move(f));
            return;
        }
        if (poolDropped_) return;  // after shutdown: ignored
        // No pool yet: made on the reactor's thread, which owns the triggers it
        // adds — the thread inside run(), or, before any run(), the creating thread
        // (another thread entering run() meanwhile waits for poolMu_ first).
        if (isInIOThread() && (!runClaimed_ || looping_.load(std::memory_order_acquire))) {
            poolLocked().callInThread(std::move(f));
            return;
        }
    }
    callFromThread([this, f = std::move(f)]() mutable { callInThread(std::move(f)); });
}

void Reactor::suggestThreadPoolSize(std::size_t n) {
    poolMax_ = n;
    if (pool_) pool_->adjustPoolsize(std::min(pool_->min(), n), n);
}

// ---- system events ------------------------------------------------------------------------

Reactor::EventState& Reactor::eventState(const std::string& type) {
    auto& slot = events_[type];
    if (!slot) slot = std::make_unique<EventState>();
    return *slot;
}

TriggerId Reactor::addTrigger(std::string_view phase, std::string eventType, Function<void(Function<void()>)> f) {
    Phase p;
    if (phase == "before") p = Phase::before;
    else if (phase == "during") p = Phase::during;
    else if (phase == "after") p = Phase::after;
    else
        throw std::invalid_argument("addSystemEventTrigger: unknown phase '" + std::string(phase) +
                                    "' (expected before, during or after)");
    if (!f) throw std::invalid_argument("addSystemEventTrigger: empty callable");
    auto& ev = eventState(eventType);
    std::uint64_t id = nextTriggerId_++;
    auto& list = p == Phase::before ? ev.before : p == Phase::during ? ev.during : ev.after;
    list.push_back({id, p, std::move(f)});
    triggerEvent_[id] = std::move(eventType);
    return TriggerId{id};
}

TriggerId Reactor::addSystemEventTriggerAsync(std::string_view phase, std::string eventType,
                                              Function<void(Function<void()>)> f) {
    return addTrigger(phase, std::move(eventType), std::move(f));
}

void Reactor::removeSystemEventTrigger(TriggerId id) {
    auto it = triggerEvent_.find(id.value);
    if (it == triggerEvent_.end()) {
        if (id.value == 0 || id.value >= nextTriggerId_)
            throw std::invalid_argument("removeSystemEventTrigger: not a trigger ID of this reactor");
        // Already removed, or already run. An already-run before trigger during its
        // own before phase only warns.
        for (auto& [type, ev] : events_)
            if (ev->phase == Phase::before &&
                std::find(ev->ranBefore.begin(), ev->ranBefore.end(), id.value) != ev->ranBefore.end()) {
                log::warn("", "removeSystemEventTrigger: trigger {} of '{}' has already run", id.value, type);
                return;
            }
        throw std::invalid_argument("removeSystemEventTrigger: trigger was already removed or has run");
    }
    auto& ev = eventState(it->second);
    triggerEvent_.erase(it);
    for (auto* list : {&ev.before, &ev.during, &ev.after}) {
        auto pos = std::find_if(list->begin(), list->end(), [&](auto& t) { return t.id == id.value; });
        if (pos != list->end()) {
            list->erase(pos);
            return;
        }
    }
}

void Reactor::fireSystemEvent(const std::string& eventType) {
    auto& ev = eventState(eventType);
    if (ev.phase != Phase::none) return;  // already firing
    ev.phase = Phase::before;
    ev.pendingBefore = 0;
    ev.ranBefore.clear();
    runBeforeTriggers(eventType);
}

void Reactor::runBeforeTriggers(const std::string& eventType) {
    auto& ev = eventState(eventType);
    ev.runningBefore = true;
    // Triggers are consumed as they run; triggers removed meanwhile never run.
    while (!ev.before.empty()) {
        auto t = std::move(ev.before.front());
        ev.before.erase(ev.before.begin());
        triggerEvent_.erase(t.id);
        ev.ranBefore.push_back(t.id);
        ++ev.pendingBefore;
        auto called = std::make_shared<bool>(false);
        Function<void()> done = [this, eventType, called] {
            if (*called) return;
            *called = true;
            auto& e = eventState(eventType);
            if (--e.pendingBefore != 0 || e.phase != Phase::before || e.runningBefore) return;
            // Better than Twisted: a before trigger added while this firing waited
            // for a Deferred runs now, in this firing, instead of being left for a
            // firing that may never come (shutdown's), and the firing goes on.
            if (e.before.empty()) continueFiring(eventType);
            else runBeforeTriggers(eventType);
        };
        try {
            t.fn(std::move(done));
        } catch (...) {
            log::failure("", "Unhandled error in a 'before' system event trigger", Failure::current());
            if (!*called) {
                *called = true;
                --ev.pendingBefore;
            }
        }
    }
    ev.runningBefore = false;
    if (ev.pendingBefore == 0 && ev.phase == Phase::before) continueFiring(eventType);
}

void Reactor::continueFiring(const std::string& eventType) {
    auto& ev = eventState(eventType);
    ev.phase = Phase::during;
    ev.ranBefore.clear();
    for (Phase p : {Phase::during, Phase::after}) {
        ev.phase = p;
        auto& list = p == Phase::during ? ev.during : ev.after;
        while (!list.empty()) {
            auto t = std::move(list.front());
            list.erase(list.begin());
            triggerEvent_.erase(t.id);
            try {
                t.fn([] {});
            } catch (...) {
                log::failure("", "Unhandled error in a system event trigger", Failure::current());
            }
        }
    }
    ev.phase = Phase::none;
    if (crashedInStartup_ && eventType == "startup") {
        crashedInStartup_ = false;  // the next run() marks the reactor running again
        addSystemEventTrigger("during", "startup", [this] { reallyStartRunning(); });
    }
}

// ---- lifecycle ------------------------------------------------------------------------------

std::optional<TriggerId> Reactor::callWhenRunning(Trigger f) {
    if (running_) {
        f();
        return std::nullopt;
    }
    return addSystemEventTrigger("after", "startup", std::move(f));
}

void Reactor::startRunning(bool installSignalHandlers) {
    if (inLoop_ || running_) throw error::ReactorAlreadyRunning();
    if (stopped_) throw error::ReactorNotRestartable();
    {
        // Waits for a pool being made by the creating thread (callInThread()).
        std::lock_guard lock(poolMu_);
        runClaimed_ = true;
    }
    started_ = true;
    inLoop_ = true;
    wantSignals_ = installSignalHandlers;
    ioThread_.store(std::this_thread::get_id());
    looping_.store(true, std::memory_order_release);
    fireSystemEvent("startup");
}

void Reactor::reallyStartRunning() {
    if (crashedInStartup_) return;  // crash() in a before-startup trigger: this run is over
    running_ = true;
    if (wantSignals_) installSignals();
}

void Reactor::run(bool installSignalHandlers) {
    startRunning(installSignalHandlers);
    struct Restore {
        Reactor& r;
        ~Restore() {
            r.looping_.store(false, std::memory_order_release);
            r.restoreSignals();
        }
    } restore{*this};
    mainLoop();
    if (stopped_) {
        // Over for good (no restart after stop()): a waiter would wait forever.
        std::lock_guard lk(threadMu_);
        refuseWaiters_ = true;
    }
}

void Reactor::stop() {
    if (!started_ || stopped_) throw error::ReactorNotRunning();
    stopped_ = true;
    justStopped_ = true;
    wakeUp();
}

void Reactor::crash() {
    running_ = false;
    inLoop_ = false;
    started_ = false;
    const Phase startup = eventState("startup").phase;
    if (startup == Phase::before || startup == Phase::during) {
        // Startup is firing: a trigger added now would run in this firing and
        // mark the crashed reactor running. It is added once the firing is over.
        crashedInStartup_ = true;
        return;
    }
    addSystemEventTrigger("during", "startup", [this] { reallyStartRunning(); });
}

void Reactor::beginShutdown() { fireSystemEvent("shutdown"); }

void Reactor::disconnectAll() {
    // every removed descriptor hears ConnectionLost; one that throws does not
    // keep the others from being told.
    auto removed = removeAll();
    auto tell = [](IFileDescriptor& d) {
        try {
            d.connectionLost(Failure(ConnectionLost()));
        } catch (...) {
            log::failure(FileDescriptor::getLogPrefix(d), "Unhandled error in connectionLost during shutdown",
                         Failure::current());
        }
    };
    for (auto& d : removed) tell(*d);
    // Better than Twisted: a transport in no set (paused by its consumer, or
    // closing while a producer is still registered) is told too. Otherwise it
    // and its protocol, which hold each other, would outlive the reactor.
    std::vector<std::shared_ptr<FileDescriptor>> open;
    for (FileDescriptor* d : live_)
        if (!d->disconnected())
            if (auto held = d->weak_from_this().lock()) open.push_back(std::move(held));
    for (auto& d : open) tell(*d);
}

void Reactor::trackLive(FileDescriptor* d) {
    d->liveIndex_ = static_cast<std::uint32_t>(live_.size());
    live_.push_back(d);
}

void Reactor::untrackLive(FileDescriptor* d) noexcept {
    std::uint32_t i = d->liveIndex_;
    if (i >= live_.size() || live_[i] != d) return;
    FileDescriptor* last = live_.back();
    live_[i] = last;
    last->liveIndex_ = i;
    live_.pop_back();
    d->liveIndex_ = FileDescriptor::kNotLive;
}

void Reactor::bind(detail::ReactorBound& b) {
    if (b.boundIndex_ != UINT32_MAX) return;
    b.boundIndex_ = static_cast<std::uint32_t>(bound_.size());
    bound_.push_back(&b);
}

void Reactor::unbind(detail::ReactorBound& b) noexcept {
    std::uint32_t i = b.boundIndex_;
    if (i == UINT32_MAX) return;  // not listed: the reactor may be gone
    if (i >= bound_.size() || bound_[i] != &b) return;
    detail::ReactorBound* last = bound_.back();
    bound_[i] = last;
    last->boundIndex_ = i;
    bound_.pop_back();
    b.boundIndex_ = UINT32_MAX;
}

void Reactor::runUntilCurrent() {
    runThreadCalls();
    if (!timers_->empty()) timers_->runDueOnce(seconds());  // no clock read while nothing is timed
    if (justStopped_) {
        justStopped_ = false;
        beginShutdown();
    }
}

void Reactor::doIteration(std::optional<double> t) {
    // Reuse one event array per thread (a nested iterate() gets a fresh one).
    thread_local std::vector<detail::ReadyEvent> cache;
    std::vector<detail::ReadyEvent> ready = std::move(cache);
    ready.clear();
    if (!pendingReductions_.empty()) applyPendingReductions();  // the poller waits for exactly what is registered
    std::uint64_t wait = ++waits_;
    poller_->wait(t, ready);
    for (auto& e : ready) dispatch(e.fd, e.token, e.events, wait);
    cache = std::move(ready);
}

void Reactor::iterate(double delay) {
    if (std::isnan(delay) || delay < 0) throw std::invalid_argument("iterate: delay must be >= 0");
    runUntilCurrent();
    settleBeforeWait();  // before the timeout: a flush may schedule calls
    // An infinite delay waits as long as the timers allow; any wait is clamped
    // as timeout() clamps it: select() refuses a time_t it cannot hold.
    std::optional<double> wait = timeout();
    if (std::isfinite(delay)) wait = wait ? std::min(*wait, delay) : delay;
    if (wait) wait = std::min(*wait, 2147483.0);
    doIteration(wait);
}

void Reactor::mainLoop() {
    while (inLoop_) {
        try {
            runUntilCurrent();
            if (!inLoop_) break;
            // Before the timeout: a flush may schedule calls.
            if (!beforeWait_.empty() || !pendingFlush_.empty()) settleBeforeWait();
            if (!inLoop_) break;
            doIteration(timeout());
        } catch (...) {
            // nothing unwinds out of run().
            log::failure("", "Unexpected error in the main loop", Failure::current());
        }
    }
}

// ---- signals ---------------------------------------------------------------------------------

void Reactor::installSignals() {
    if (signalsInstalled_) return;
    auto& owners = detail::signalOwners();
    std::lock_guard lock(owners.mu);
    if (owners.wakers.empty()) {
        struct sigaction sa {};
        sa.sa_handler = detail::weftSignalHandler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        detail::gPendingSignal.store(0);
        owners.haveTerm = sys::ops.sigaction(SIGTERM, &sa, &owners.term) == 0;
        struct sigaction cur {};
        owners.haveInt = sys::ops.sigaction(SIGINT, nullptr, &cur) == 0 && cur.sa_handler == SIG_DFL &&
                         sys::ops.sigaction(SIGINT, &sa, &owners.intr) == 0;
    }
    owners.wakers.push_back(waker_->fileno());
    detail::gSignalFd.store(waker_->fileno());  // the newest hears them
    signalsInstalled_ = true;
}

void Reactor::restoreSignals() {
    if (!signalsInstalled_) return;
    auto& owners = detail::signalOwners();
    std::lock_guard lock(owners.mu);
    std::erase(owners.wakers, waker_->fileno());
    if (owners.wakers.empty()) {
        if (owners.haveTerm) sys::ops.sigaction(SIGTERM, &owners.term, nullptr);
        if (owners.haveInt) sys::ops.sigaction(SIGINT, &owners.intr, nullptr);
        owners.haveTerm = owners.haveInt = false;
        detail::gSignalFd.store(-1);
    } else {
        int next = owners.wakers.back();  // another reactor still running hears them now
        detail::gSignalFd.store(next);
        if (detail::gPendingSignal.load() != 0) {  // one that arrived for us and was not taken
            std::uint64_t one = 1;
            [[maybe_unused]] auto n = sys::ops.write(next, &one, sizeof one);
        }
    }
    signalsInstalled_ = false;
}

void Reactor::checkSignals() {
    // Only the reactor the handler wakes takes a signal: another one running on
    // another thread must not consume it (it would stop the wrong loop).
    if (!signalsInstalled_ || detail::gSignalFd.load(std::memory_order_relaxed) != waker_->fileno()) return;
    int sig = detail::gPendingSignal.exchange(0);
    if (sig == 0) return;
    exitSignal_ = sig;
    // Through the thread-call queue, so shutdown runs normally in the loop.
    callFromThread([this] {
        if (started_ && !stopped_) stop();
    });
}

}  // namespace weft
