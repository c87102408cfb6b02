// weft/internet/base.hpp — the reactor (twisted.internet.base.ReactorBase and
// posixbase.PosixReactorBase). Spec: reactor.md R-1..R-55.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <weft/export.hpp>
#include <weft/function.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/log.hpp>
#include <weft/threadpool.hpp>
#include <weft/internet/error.hpp>

namespace weft {

class Reactor;

namespace detail {
class Poller;
class TimerQueue;
class Waker;
struct Registration;
struct RegistrationTable;

/// Something the reactor must let go of when it is destroyed that is not a
/// FileDescriptor: a child process, which its pidfd watcher (registered with
/// the reactor) and its protocol hold while the child runs. Reactor::bind
/// lists it; the reactor's destructor calls reactorGone() on what is still
/// listed, after every transport has been disconnected.
class WEFT_EXPORT ReactorBound {
public:
    /// The reactor is being destroyed: release what holds this object.
    virtual void reactorGone() noexcept = 0;

protected:
    ReactorBound() = default;
    virtual ~ReactorBound() = default;
    /// Listed by a reactor now (so that reactor is still there).
    bool bound() const noexcept { return boundIndex_ != UINT32_MAX; }
    ReactorBound(const ReactorBound&) = delete;
    ReactorBound& operator=(const ReactorBound&) = delete;

private:
    friend class weft::Reactor;
    std::uint32_t boundIndex_ = UINT32_MAX;  // in the reactor's list, or none
};
}  // namespace detail

/// The readiness-wait mechanism behind a reactor.
class Factory;
class FileDescriptor;
class ClientFactory;
namespace tcp {
class Port;
class Connector;
}  // namespace tcp
// Datagram transports (udp.hpp, unix_datagram.hpp).
class DatagramProtocol;
class ConnectedDatagramProtocol;
namespace udp {
class Port;
class MulticastPort;
}  // namespace udp
namespace unix_ {
class Port;
class Connector;
class DatagramPort;
class ConnectedDatagramPort;
}  // namespace unix_
class IListeningPort;

enum class Backend { epoll, poll, select };

/// "epoll", "poll" or "select".
WEFT_EXPORT std::string_view backendName(Backend b);
/// Parses a backend name; std::nullopt if unknown.
WEFT_EXPORT std::optional<Backend> parseBackend(std::string_view name);

/// Opaque token for a system event trigger (unique per registration; R-19).
struct TriggerId {
    std::uint64_t value = 0;
    friend bool operator==(TriggerId, TriggerId) = default;
};

/// A system event trigger. Returning normally completes it; a "before" trigger
/// may instead arrange to finish later by calling the `done` continuation it is
/// given through addSystemEventTriggerAsync (Deferred-returning triggers use this).
using Trigger = Function<void()>;

/// The event loop.
///
/// Threading: every method must be called on the reactor's thread (the one that
/// calls run()), except callFromThread(), wakeUp() and callInThread(), which
/// are safe from any thread (callInThread() from another thread before the pool
/// exists has the reactor's thread make it; after shutdown the work is ignored).
///
/// Ownership: the reactor holds every registered descriptor (shared_ptr) and an
/// extra reference while dispatching to it; descriptors are released when removed.
/// Destroying a reactor that is running is undefined; destroy it after run()
/// returns. Pending DelayedCalls become inert when the reactor is destroyed.
/// A reactor destroyed with transports still open (it never ran, it was
/// crash()ed, or connections were made after run() returned) disconnects them
/// first as its shutdown would: each protocol hears
/// connectionLost(ConnectionLost), so none outlives the reactor together with
/// its transport. A child still running is left to run and is no longer
/// watched: nothing reaps it once the reactor is gone (one that has already
/// exited is reaped, and its protocol told, first).
///
/// Interfaces (interfaces.hpp): the listen*/connect*/adopt* methods below
/// return the concrete ports and connectors; through IReactorTCP&,
/// IReactorUNIX& … the same calls return IListeningPort/IConnector.
class WEFT_EXPORT Reactor : public IReactorTime,
                            public IReactorFDSet,
                            public IReactorTCP,
                            public IReactorUNIX,
                            public IReactorUNIXDatagram,
                            public IReactorUDP,
                            public IReactorMulticast,
                            public IReactorSocket,
                            public IReactorThreads,
                            public IReactorProcess {
public:
    /// Builds a reactor on the given backend, or — when none is given — on the one
    /// named by the WEFT_REACTOR environment variable, defaulting to epoll.
    /// Throws std::invalid_argument if WEFT_REACTOR names no backend.
    static std::unique_ptr<Reactor> create(std::optional<Backend> backend = std::nullopt);

    ~Reactor() override;
    Reactor(const Reactor&) = delete;
    Reactor& operator=(const Reactor&) = delete;

    Backend backend() const noexcept { return backend_; }

    // ---- lifecycle (R-1..R-12) --------------------------------------------

    /// Fires "startup", runs the loop until stop() has completed "shutdown" or
    /// crash() was called. With installSignalHandlers, SIGTERM (and SIGINT, if it
    /// has the default disposition) stop the reactor; the previous dispositions
    /// are restored when run() returns. Throws
    /// error::ReactorAlreadyRunning / error::ReactorNotRestartable.
    /// Nothing thrown by user code unwinds out of run(): it is logged.
    void run(bool installSignalHandlers = true);

    /// Requests an orderly stop; the shutdown triggers run later, in the loop.
    /// Throws error::ReactorNotRunning if not running or already stopping.
    void stop();

    /// Leaves the loop at the end of this iteration without any shutdown trigger.
    void crash();

    /// One iteration: thread calls, due timed calls, then one readiness wait of at
    /// most `delay` seconds with dispatch.
    void iterate(double delay = 0);

    /// True between the during phase of startup and the during phase of shutdown.
    bool running() const noexcept { return running_; }

    /// Calls f now if running; otherwise registers it as an after-startup trigger
    /// and returns that trigger's ID.
    std::optional<TriggerId> callWhenRunning(Trigger f);

    // ---- system events (R-13..R-19) ----------------------------------------

    /// Registers f for phase "before", "during" or "after" of eventType.
    /// Throws std::invalid_argument for any other phase. f may return nothing, or
    /// a Deferred: a "before" trigger's Deferred holds the during phase back until
    /// it fires; a failure it ends with is logged.
    template <class F>
    requires std::is_invocable_v<F&> TriggerId addSystemEventTrigger(std::string_view phase, std::string eventType,
                                                                     F f) {
        using R = std::invoke_result_t<F&>;
        if constexpr (std::is_void_v<R>) {
            return addTrigger(phase, std::move(eventType), [fn = std::move(f)](Function<void()> done) mutable {
                fn();
                done();
            });
        } else {
            static_assert(isWeftDeferred(static_cast<R*>(nullptr)), "a trigger returns void or a weft::Deferred");
            return addTrigger(phase, std::move(eventType), [fn = std::move(f)](Function<void()> done) mutable {
                R d = fn();
                d.addBoth([done = std::move(done)](Result<typename R::value_type> r) mutable {
                    if (!r.ok()) log::failure("", "A system event trigger's Deferred failed", r.failure());
                    done();
                });
            });
        }
    }

    /// Like addSystemEventTrigger, but f receives a `done` continuation and the
    /// phase waits until every async "before" trigger has called it.
    /// `done` may be called synchronously, or later from the reactor thread; calling
    /// it more than once has no further effect.
    TriggerId addSystemEventTriggerAsync(std::string_view phase, std::string eventType,
                                         Function<void(Function<void()> done)> f);

    /// Removes a pending trigger. Throws std::invalid_argument if the ID was already
    /// removed or has run (except an already-run before trigger during its own
    /// before phase, which only warns) and for an ID this reactor never issued.
    void removeSystemEventTrigger(TriggerId id);

    /// Runs the before, during and after triggers of eventType.
    void fireSystemEvent(const std::string& eventType);

    // ---- time (R-21..R-28) ---------------------------------------------------

    /// Monotonic seconds (steady_clock).
    double seconds() const override;
    using IReactorTime::callLater;
    DelayedCall callLater(double delay, Function<void()> f) override;
    std::vector<DelayedCall> getDelayedCalls() const override;

    /// Time to wait for readiness now: until the earliest call, clamped to
    /// [0, 2147483] s; nullopt when nothing is scheduled.
    std::optional<double> timeout() const;

    // ---- IReactorFDSet (R-29..R-44) ----------------------------------------

    void addReader(std::shared_ptr<IReadDescriptor> reader) override;
    void addWriter(std::shared_ptr<IWriteDescriptor> writer) override;
    using IReactorFDSet::removeReader;
    using IReactorFDSet::removeWriter;
    void removeReader(IReadDescriptor* reader) override;
    void removeWriter(IWriteDescriptor* writer) override;
    /// Like addWriter, but the first doWrite() may come before the next wait
    /// without a readiness event: the reactor tries the write at the end of the
    /// current dispatch and arms writability only for what is left. For
    /// descriptors whose doWrite copes with EAGAIN (FileDescriptor uses it), it
    /// saves two poller updates per request/response exchange.
    void addWriterSoon(std::shared_ptr<IWriteDescriptor> writer);
    /// Runs f once on the reactor's thread, soon: after the descriptor callback
    /// that is running now (before the next descriptor's turn and before the
    /// writers queued meanwhile are flushed), or, from a timed call or outside
    /// the loop, before the reactor next waits for readiness — never on the
    /// caller's stack, and without the zero-timeout pass a callLater(0) costs
    /// . What a TLS layer uses to encrypt a batch of writes (TLS-11). An
    /// exception from f is logged.
    void callBeforeWait(Function<void()> f);
    std::vector<std::shared_ptr<IFileDescriptor>> removeAll() override;
    std::vector<std::shared_ptr<IReadDescriptor>> getReaders() const override;
    std::vector<std::shared_ptr<IWriteDescriptor>> getWriters() const override;

    /// Whether the descriptor is registered for reading / writing.
    bool isReading(const IFileDescriptor* d) const;
    bool isWriting(const IFileDescriptor* d) const;

    /// Removes d from the reactor and delivers `why` as R-33 prescribes: a
    /// ConnectionDone on the read side of a half-closeable descriptor ends only its
    /// read side; anything else removes it and calls connectionLost(why).
    void disconnectSelectable(IFileDescriptor& d, const Failure& why, bool isRead);

    // ---- threads (R-45..R-51) ------------------------------------------------

    /// Queues f to run on the reactor thread, FIFO; safe from any thread and from
    /// a signal-free context. Wakes a blocked wait.
    void callFromThread(Function<void()> f) override;
    /// Wakes the readiness wait (thread-safe).
    void wakeUp() noexcept;
    /// For a caller that will block until f has run (blockingCallFromThread):
    /// queues f as callFromThread() does and returns true, or returns false,
    /// queuing nothing, once the reactor will not run it in time — from the
    /// moment shutdown begins to stop the thread pool (a worker blocked on the
    /// reactor would hold up the join, which holds up the reactor), and after
    /// run() has returned from stop(). Calls queued before that are run before the
    /// pool is joined. Throws std::logic_error on the thread running run() (it
    /// would wait for itself). Thread-safe.
    bool callFromThreadForWaiter(Function<void()> f);
    /// Runs f on the reactor's thread pool (created lazily, 0..10 threads).
    /// Safe from any thread, also while another thread is entering run().
    void callInThread(Function<void()> f) override;
    /// The reactor's pool; the same one until shutdown. On the reactor's
    /// thread (before run(), the creating thread).
    ThreadPool& getThreadPool() override;
    /// Sets the pool's maximum size.
    void suggestThreadPoolSize(std::size_t n) override;
    /// True on the thread running run() (or, before run(), the creating thread).
    bool isInIOThread() const noexcept;

    // ---- TCP (tcp.md; defined in src/internet/tcp.cpp) --------------------------

    /// Binds and listens on `port` (0: a kernel-chosen one) on `interface` ("":
    /// every IPv4 address; an IPv4 or IPv6 literal, "%scope" allowed) and starts
    /// accepting; factory->doStart() runs once listening (TCP-1..TCP-5). Throws
    /// error::CannotListenError (nothing registered, factory not started) if the
    /// socket cannot be created, bound or listened on, or `interface` is not a
    /// literal. IPv6 ports are IPv6-only.
    std::shared_ptr<tcp::Port> listenTCP(std::uint16_t port, std::shared_ptr<Factory> factory, int backlog = 50,
                                         const std::string& interface = "");
    /// Starts connecting to host:port (TCP-36..TCP-49): factory->doStart() and
    /// startedConnecting() run before this returns; everything else happens on
    /// later iterations. A host that is not an IP literal is resolved on the
    /// thread pool (both families, tried in order). `timeout` seconds (<= 0:
    /// none) bounds resolution plus connect.
    std::shared_ptr<tcp::Connector> connectTCP(const std::string& host, std::uint16_t port,
                                               std::shared_ptr<ClientFactory> factory, double timeout = 30,
                                               std::optional<BindAddress> bindAddress = std::nullopt);
    /// Like connectTCP with a service name or decimal port ("http", "8080");
    /// an unknown name throws error::ServiceNameUnknownError (TCP-37).
    std::shared_ptr<tcp::Connector> connectTCP(const std::string& host, const std::string& service,
                                               std::shared_ptr<ClientFactory> factory, double timeout = 30,
                                               std::optional<BindAddress> bindAddress = std::nullopt);
    /// Accepts on a listening socket made elsewhere (systemd, a parent process):
    /// `fd` is duplicated, the caller keeps its copy (TCP-50, UNIX-21). The
    /// port is a tcp::Port for AF_INET/AF_INET6 and a unix_::Port for AF_UNIX;
    /// any other family throws error::UnsupportedAddressFamily.
    std::shared_ptr<IListeningPort> adoptStreamPort(int fd, int addressFamily, std::shared_ptr<Factory> factory);
    /// Wraps a connected socket made elsewhere in a server transport: `fd` is
    /// duplicated; the factory builds the protocol (null: the duplicate is
    /// closed) and doStart/doStop are not called (TCP-51, UNIX-22).
    void adoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory);

    // ---- UNIX stream sockets (unix.md; defined in src/internet/unix.cpp) ----------

    /// Binds `path` (a first byte of NUL: Linux's abstract namespace), sets the
    /// socket file's mode to exactly `mode`, listens and starts accepting; the
    /// factory is started once listening (UNIX-1..UNIX-7). With `wantPID`,
    /// "<path>.lock" is taken first (a live holder: CannotListenError "Cannot
    /// acquire lock"). An existing path is replaced only if it is a socket
    /// nobody listens on; anything else throws error::CannotListenError and is
    /// left untouched, as is a path too long for sockaddr_un.
    std::shared_ptr<unix_::Port> listenUNIX(const std::string& path, std::shared_ptr<Factory> factory, int backlog = 50,
                                            int mode = 0666, bool wantPID = false);
    /// Starts connecting to the socket at `path` (UNIX-10..UNIX-13): the
    /// connector life cycle of connectTCP. With `checkPID`, the attempt fails
    /// with BadFileError unless a live process holds "<path>.lock".
    std::shared_ptr<unix_::Connector> connectUNIX(const std::string& path, std::shared_ptr<ClientFactory> factory,
                                                  double timeout = 30, bool checkPID = false);

    // ---- UDP and UNIX datagram sockets (udp.md, unix.md UNIX-23..UNIX-29; ----------
    // ---- defined in src/internet/udp.cpp and src/internet/unix_datagram.cpp) --------

    /// Binds a UDP socket to `port` (0: kernel-chosen) on `interface` ("": every
    /// IPv4 address; an IPv4 literal; an IPv6 literal selects IPv6), attaches
    /// `protocol` (makeConnection → startProtocol) and starts reading, all before
    /// returning (UDP-1..UDP-3). Throws error::InvalidAddressError for any other
    /// interface (before a socket exists) and error::CannotListenError if the
    /// socket cannot be made or bound; the protocol is then not started.
    /// Datagrams longer than maxPacketSize are dropped and logged (UDP-7).
    std::shared_ptr<udp::Port> listenUDP(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                         const std::string& interface = "", std::size_t maxPacketSize = 8192);
    /// listenUDP for a multicast-capable port (UDP-23..UDP-29). With
    /// `listenMultiple`, SO_REUSEADDR and SO_REUSEPORT are set so several
    /// sockets may bind the same port.
    std::shared_ptr<udp::MulticastPort> listenMulticast(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                                        const std::string& interface = "",
                                                        std::size_t maxPacketSize = 8192, bool listenMultiple = false);
    /// Serves a bound datagram socket made elsewhere (UDP-22): `fd` is
    /// duplicated (the caller keeps and may close its copy). Throws
    /// error::UnsupportedAddressFamily unless family is AF_INET or AF_INET6.
    std::shared_ptr<udp::Port> adoptDatagramPort(int fd, int addressFamily, std::shared_ptr<DatagramProtocol> protocol,
                                                 std::size_t maxPacketSize = 8192);
    /// Binds a UNIX datagram socket at `path` (a first byte of NUL: the
    /// abstract namespace), sets the file's mode to exactly `mode`, attaches
    /// `protocol` and starts reading (UNIX-23). An existing path, a path too
    /// long for sockaddr_un, or any bind failure throws error::CannotListenError
    /// and leaves what is at the path untouched. The socket file is removed
    /// when the port closes (UNIX-26).
    std::shared_ptr<unix_::DatagramPort> listenUNIXDatagram(const std::string& path,
                                                            std::shared_ptr<DatagramProtocol> protocol,
                                                            std::size_t maxPacketSize = 8192, int mode = 0666);
    /// A UNIX datagram socket connected to `path` (UNIX-28): bound first to
    /// `bindAddress` if given (its file gets `mode`), then connected, attached
    /// and reading before this returns. Failures are not thrown: the port
    /// stops and protocol->connectionFailed(reason) is called before this
    /// returns (reason: error::ConnectError or a subclass).
    std::shared_ptr<unix_::ConnectedDatagramPort> connectUNIXDatagram(
        const std::string& path, std::shared_ptr<ConnectedDatagramProtocol> protocol, std::size_t maxPacketSize = 8192,
        int mode = 0666, std::optional<std::string> bindAddress = std::nullopt);

    // ---- child processes (process.md; defined in src/internet/process.cpp) --------

    /// IReactorProcess::spawnProcess: a process::Process, or a
    /// process::PTYProcess with options.usePTY (weft/internet/process.hpp).
    std::shared_ptr<IProcessTransport> spawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                    const std::string& executable, const std::vector<std::string>& args,
                                                    const ProcessOptions& options = {});

    // ---- the reactor's own machinery ----------------------------------------------

    /// Serves `reader` like addReader, but as part of the reactor: getReaders()
    /// does not list it, removeAll() and removeReader() leave it, and shutdown
    /// does not disconnect it (the waker; a child's pidfd). Remove it with
    /// removeInternalReader.
    void addInternalReader(std::shared_ptr<IReadDescriptor> reader);
    void removeInternalReader(IReadDescriptor* reader);

    /// Lists `b` for the reactor's destructor (ReactorBound); unbind() takes it
    /// off again (a no-op for one not listed). Both on the reactor thread.
    void bind(detail::ReactorBound& b);
    void unbind(detail::ReactorBound& b) noexcept;

    /// The signal that stopped the reactor, if one did.
    std::optional<int> exitSignal() const noexcept { return exitSignal_; }

protected:
    Reactor(Backend backend, std::unique_ptr<detail::Poller> poller);

private:
    // The reactor interfaces' hooks: each calls the concrete method of the same
    // name above (src/internet/reactor_interfaces.cpp).
    std::shared_ptr<IListeningPort> doListenTCP(std::uint16_t port, std::shared_ptr<Factory> factory, int backlog,
                                                const std::string& interface) override;
    std::shared_ptr<IConnector> doConnectTCP(const std::string& host, std::uint16_t port,
                                             std::shared_ptr<ClientFactory> factory, double timeout,
                                             std::optional<BindAddress> bindAddress) override;
    std::shared_ptr<IListeningPort> doListenUNIX(const std::string& address, std::shared_ptr<Factory> factory,
                                                 int backlog, int mode, bool wantPID) override;
    std::shared_ptr<IConnector> doConnectUNIX(const std::string& address, std::shared_ptr<ClientFactory> factory,
                                              double timeout, bool checkPID) override;
    std::shared_ptr<IListeningPort> doListenUNIXDatagram(const std::string& address,
                                                         std::shared_ptr<DatagramProtocol> protocol,
                                                         std::size_t maxPacketSize, int mode) override;
    std::shared_ptr<IListeningPort> doConnectUNIXDatagram(const std::string& address,
                                                          std::shared_ptr<ConnectedDatagramProtocol> protocol,
                                                          std::size_t maxPacketSize, int mode,
                                                          std::optional<std::string> bindAddress) override;
    std::shared_ptr<IListeningPort> doListenUDP(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                                const std::string& interface, std::size_t maxPacketSize) override;
    std::shared_ptr<IListeningPort> doListenMulticast(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                                      const std::string& interface, std::size_t maxPacketSize,
                                                      bool listenMultiple) override;
    std::shared_ptr<IListeningPort> doAdoptStreamPort(int fd, int addressFamily,
                                                      std::shared_ptr<Factory> factory) override;
    void doAdoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory) override;
    std::shared_ptr<IProcessTransport> doSpawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                      const std::string& executable,
                                                      const std::vector<std::string>& args,
                                                      const ProcessOptions& options) override;
    std::shared_ptr<IListeningPort> doAdoptDatagramPort(int fd, int addressFamily,
                                                        std::shared_ptr<DatagramProtocol> protocol,
                                                        std::size_t maxPacketSize) override;

    // AF_UNIX halves of adoptStream*; `fd` is already a duplicate they own.
    std::shared_ptr<IListeningPort> adoptUNIXStreamPort(int fd, std::shared_ptr<Factory> factory);
    void adoptUNIXStreamConnection(int fd, std::shared_ptr<Factory> factory);

    struct EventState;
    enum class Phase : std::uint8_t { none, before, during, after };
    struct TriggerRecord {
        std::uint64_t id;
        Phase phase;
        Function<void(Function<void()>)> fn;
    };

    friend class detail::Waker;
    friend class FileDescriptor;

    // FileDescriptor's fast paths: isWriting + addWriterSoon, and removeWriter,
    // with the registration found through the descriptor's fd.
    // `fd` is the descriptor's fileno() now: a registration under another fd
    // takes the full path.
    bool writeSoonIfRegistered(FileDescriptor* f, int fd);
    void removeLocalReader(FileDescriptor* f);
    void removeLocalWriter(FileDescriptor* f);
    bool isLocalReading(const FileDescriptor* f) const noexcept;
    // An ended descriptor leaves the reactor now, poller included (it is about
    // to close its fd: no later poller update may reach a closed descriptor).
    void forgetDescriptor(FileDescriptor* f);
    // Every FileDescriptor made on this reactor, from construction to
    // destruction: shutdown tells those still open that are in no reader or
    // writer set (paused, or closing behind a producer), so that no transport
    // and protocol outlive the reactor holding each other.
    void trackLive(FileDescriptor* d);
    void untrackLive(FileDescriptor* d) noexcept;

    // The loop
    void startRunning(bool installSignalHandlers);
    void reallyStartRunning();
    void mainLoop();
    void runUntilCurrent();
    void runThreadCalls();
    ThreadPool& poolLocked();  // getThreadPool() with poolMu_ held
    void doIteration(std::optional<double> timeout);
    // `wait` numbers the readiness wait the events come from (0: made up, not waited for).
    void dispatch(int fd, std::uint64_t token, unsigned events, std::uint64_t wait = 0);
    void beginShutdown();
    void disconnectAll();
    void stopThreadPool();

    // Registrations
    detail::Registration* findReg(const IFileDescriptor* d) const;
    /// d as a FileDescriptor made on this reactor (which keeps the fd it is
    /// registered under, regFd_), or null: any other descriptor is kept in the
    /// table's side map.
    FileDescriptor* localDescriptor(const IFileDescriptor* d) const noexcept;
    detail::Registration* findLocal(const FileDescriptor* f) const noexcept;
    void stopReadingAt(detail::Registration* r);
    void stopWritingAt(detail::Registration* r);
    static bool readingAt(const detail::Registration* r) noexcept;
    static void setReader(detail::Registration& r, IReadDescriptor* reader) noexcept;
    static void setWriter(detail::Registration& r, IWriteDescriptor* writer) noexcept;
    /// The registration a token names, if it is still the one at its fd.
    detail::Registration* regAt(std::uint64_t token) const;
    // `armedNow`: the caller gives the poller interest at once (addReader,
    // addWriter), so a poller that checks new descriptors does the closed-fd check.
    detail::Registration& regFor(std::shared_ptr<IFileDescriptor> d, int fd, bool armedNow = true);
    void updateInterest(detail::Registration& r, bool removing = false);
    void watchOnly(detail::Registration& r, bool removing);
    void tellPoller(detail::Registration& r, unsigned interest, bool removing);
    void setPollerInterest(detail::Registration& r, unsigned interest, bool removing);
    void applyPendingReductions();
    void dropReg(detail::Registration& r);
    void flushPendingWriters();
    void runBeforeWaitCalls();
    void settleBeforeWait();

    // Events
    EventState& eventState(const std::string& type);
    void runBeforeTriggers(const std::string& type);
    void continueFiring(const std::string& type);
    TriggerId addTrigger(std::string_view phase, std::string eventType, Function<void(Function<void()>)> f);

    // Signals
    void installSignals();
    void restoreSignals();
    void checkSignals();

    Backend backend_;
    std::unique_ptr<detail::Poller> poller_;
    std::unique_ptr<detail::TimerQueue> timers_;
    std::unique_ptr<detail::RegistrationTable> regs_;  // registrations in place, indexed by fd
    std::vector<std::uint64_t> pendingFlush_;          // tokens of addWriterSoon's registrations
    std::vector<Function<void()>> beforeWait_;         // callBeforeWait's calls
    std::vector<std::uint64_t> pendingReductions_;     // tokens whose poller interest is to shrink
    bool flushing_ = false;
    std::uint32_t nextGen_ = 1;
    std::uint64_t waits_ = 0;                   // readiness waits begun, numbering their events for dispatch()
    std::vector<FileDescriptor*> live_;         // trackLive's list (each knows its index)
    std::vector<detail::ReactorBound*> bound_;  // bind's list (each knows its index)

    // thread calls
    mutable std::mutex threadMu_;
    std::vector<Function<void()>> threadCalls_;
    std::atomic<bool> threadCallsQueued_{false};  // threadCalls_ is not empty (set and cleared under threadMu_)
    bool refuseWaiters_ = false;                  // under threadMu_: callFromThreadForWaiter() says no
    std::vector<Function<void()>> runningCalls_;
    std::atomic<bool> wakePending_{false};
    std::shared_ptr<detail::Waker> waker_;

    // lifecycle
    bool started_ = false;
    bool running_ = false;
    bool stopped_ = false;
    bool justStopped_ = false;
    bool inLoop_ = false;
    bool crashedInStartup_ = false;  // crash() while startup fired: its own trigger is re-added after
    std::atomic<std::thread::id> ioThread_;
    // run() is on the stack of ioThread_ (stored after ioThread_, with release): what
    // another thread may ask without racing a thread that is entering run().
    std::atomic<bool> looping_{false};
    std::optional<int> exitSignal_;

    // events
    std::unordered_map<std::string, std::unique_ptr<EventState>> events_;
    std::unordered_map<std::uint64_t, std::string> triggerEvent_;
    std::uint64_t nextTriggerId_ = 1;

    // pool
    std::unique_ptr<ThreadPool> pool_;  // written on the reactor's thread, under poolMu_
    std::mutex poolMu_;                 // callInThread() from any thread reads pool_ under it
    bool poolDropped_ = false;          // shutdown dropped the pool: later work is ignored
    bool runClaimed_ = false;  // under poolMu_: run() has begun once; the creating thread no longer owns the reactor
    std::size_t poolMax_ = 10;

    // signals
    bool signalsInstalled_ = false;
    bool wantSignals_ = false;
};

/// epoll(7), level-triggered; the default backend.
class WEFT_EXPORT EPollReactor final : public Reactor {
public:
    EPollReactor();
};

/// poll(2).
class WEFT_EXPORT PollReactor final : public Reactor {
public:
    PollReactor();
};

/// select(2); a descriptor whose fd is >= FD_SETSIZE is accepted and then
/// disconnected at the next wait, the others kept.
class WEFT_EXPORT SelectReactor final : public Reactor {
public:
    SelectReactor();
};

}  // namespace weft
