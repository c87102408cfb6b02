// weft/internet/interfaces.hpp — the written contracts of weft's reactor layer.
// Mirrors twisted.internet.interfaces. Each interface is an abstract class;
// implementations document which contract IDs (spec/*.md) they meet.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <cstdint>
#include <span>
#include <string_view>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include <weft/export.hpp>
#include <weft/failure.hpp>
#include <weft/function.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/log.hpp>
#include <weft/internet/error.hpp>

namespace weft {

/// Scheduling of calls in time (Twisted IReactorTime). Implemented by every
/// reactor and by task::Clock, so code written against it is testable with a
/// deterministic clock.
class WEFT_EXPORT IReactorTime {
public:
    virtual ~IReactorTime() = default;

    /// The scheduler's current time in seconds. For reactors this is a monotonic
    /// clock (std::chrono::steady_clock), not wall time (Better than Twisted, R-22).
    virtual double seconds() const = 0;

    /// Schedules f to run once, `delay` seconds from now. Throws
    /// std::invalid_argument for a negative or NaN delay; f is then never called.
    /// f runs on the scheduler's thread; an exception it throws is logged (reactor)
    /// or propagates out of advance() (task::Clock).
    virtual DelayedCall callLater(double delay, Function<void()> f) = 0;

    /// Every call not yet run or cancelled, in no particular order.
    virtual std::vector<DelayedCall> getDelayedCalls() const = 0;

    template <class Rep, class Period>
    DelayedCall callLater(std::chrono::duration<Rep, Period> delay, Function<void()> f) {
        return callLater(std::chrono::duration<double>(delay).count(), std::move(f));
    }
};

/// The outcome of doRead()/doWrite(): empty to keep going, or the reason the
/// descriptor is finished.
using Reason = std::optional<Failure>;

/// A descriptor the reactor can watch (Twisted IFileDescriptor).
///
/// Ownership: the reactor holds a shared_ptr to every registered descriptor and
/// keeps an extra reference for the duration of each callback, so a descriptor
/// may drop every other reference to itself inside doRead/doWrite.
class IHalfCloseableDescriptor;
class FileDescriptor;

class WEFT_EXPORT IFileDescriptor : public virtual ILoggingContext {
public:
    /// The OS descriptor, or -1 if it has none (any more). A descriptor that
    /// reports -1 while registered is disconnected with ConnectionFdescWentAway.
    virtual int fileno() const = 0;

    /// Called exactly once by the reactor (or the transport itself) when the
    /// descriptor is finished, after it has been removed from the reactor.
    virtual void connectionLost(const Failure& reason) = 0;

    std::string logPrefix() const override { return "-"; }

    /// This descriptor as an IHalfCloseableDescriptor, or null. The default
    /// looks (a cross-cast); FileDescriptor answers directly, so the reactor
    /// does not walk a transport's class hierarchy at every end of input.
    virtual IHalfCloseableDescriptor* asHalfCloseable() noexcept;

    /// This descriptor as a FileDescriptor, or null. A FileDescriptor keeps
    /// where its own reactor registered it, so the reactor finds the
    /// registration without a table keyed by descriptor (one less allocation
    /// and hash lookup per connection).
    virtual FileDescriptor* asFileDescriptor() noexcept { return nullptr; }

    /// Why the descriptor failed when the reactor reports an error condition
    /// for it (EPOLLERR, POLLERR). The default reads a socket's pending error
    /// (SO_ERROR) and falls back to a ConnectionLost without an errno for
    /// other descriptors; a transport that is not a socket (a pipe, a PTY, a
    /// serial line) answers for its own kind.
    virtual Failure errorReason() const;

    /// Whether the reactor keeps watching this descriptor for errors and
    /// resets while it is in neither set (paused: R-38), ending it with
    /// connectionLost(errorReason()) when one comes. True for byte streams,
    /// where an error is the end; a datagram socket answers false: an ICMP
    /// error is no end for it, and it learns of it when it reads again.
    virtual bool watchedWhilePaused() const noexcept { return true; }
};

/// A descriptor with data to read (Twisted IReadDescriptor).
class WEFT_EXPORT IReadDescriptor : public virtual IFileDescriptor {
public:
    /// Called when fileno() is readable. Return a reason to end the descriptor.
    virtual Reason doRead() = 0;
};

/// A descriptor that wants to be told when it can write (Twisted IWriteDescriptor).
class WEFT_EXPORT IWriteDescriptor : public virtual IFileDescriptor {
public:
    /// Called when fileno() is writable. Return a reason to end the descriptor.
    virtual Reason doWrite() = 0;
};

/// Both (Twisted IReadWriteDescriptor).
class WEFT_EXPORT IReadWriteDescriptor : public IReadDescriptor, public IWriteDescriptor {};

/// A descriptor whose read side can end on its own (Twisted IHalfCloseableDescriptor).
/// A ConnectionDone returned by doRead() ends only the read side.
class WEFT_EXPORT IHalfCloseableDescriptor {
public:
    virtual ~IHalfCloseableDescriptor() = default;
    /// The read side ended; the write side may still be in use.
    virtual void readConnectionLost(const Failure& reason) = 0;
    /// The write side ended (after loseWriteConnection()).
    virtual void writeConnectionLost(const Failure& reason) = 0;
};

inline IHalfCloseableDescriptor* IFileDescriptor::asHalfCloseable() noexcept {
    return dynamic_cast<IHalfCloseableDescriptor*>(this);
}

/// Registration of descriptors with the reactor (Twisted IReactorFDSet).
/// All methods must be called on the reactor thread.
class WEFT_EXPORT IReactorFDSet {
public:
    virtual ~IReactorFDSet() = default;
    /// Calls reader->doRead() whenever its fileno() is readable, until
    /// removeReader(). Adding twice equals adding once. Throws
    /// std::system_error (EBADF) if fileno() is not an open descriptor.
    virtual void addReader(std::shared_ptr<IReadDescriptor> reader) = 0;
    /// Calls writer->doWrite() whenever its fileno() is writable, until removeWriter().
    virtual void addWriter(std::shared_ptr<IWriteDescriptor> writer) = 0;
    /// Stops read notifications; a no-op if not registered. No further doRead()
    /// call is made for it, even if readiness is already pending.
    virtual void removeReader(IReadDescriptor* reader) = 0;
    virtual void removeWriter(IWriteDescriptor* writer) = 0;
    /// Removes every reader and writer except the reactor's internal ones and
    /// returns them, each once.
    virtual std::vector<std::shared_ptr<IFileDescriptor>> removeAll() = 0;
    virtual std::vector<std::shared_ptr<IReadDescriptor>> getReaders() const = 0;
    virtual std::vector<std::shared_ptr<IWriteDescriptor>> getWriters() const = 0;

    void removeReader(const std::shared_ptr<IReadDescriptor>& r) { removeReader(r.get()); }
    void removeWriter(const std::shared_ptr<IWriteDescriptor>& w) { removeWriter(w.get()); }
};

// ---- what a reactor offers (Twisted IReactorTCP, IReactorUNIX, …) --------------
//
// Each interface below has Twisted's method names as public non-virtual
// members, with the default arguments, that forward to protected pure virtual
// do* hooks. A concrete reactor keeps public methods of the same names that
// return its concrete port and connector types: they hide the interface's, so
// `reactor.listenTCP(…)` on a weft::Reactor still gives a
// std::shared_ptr<tcp::Port>, while code written against IReactorTCP& gets an
// IListeningPort (C++ has no covariant smart pointers). Implementations
// override the do* hooks only. When a call fails synchronously (it throws),
// none of the protocol's or factory's callbacks runs for it.

class Factory;
class ClientFactory;
class DatagramProtocol;
class ConnectedDatagramProtocol;
class IListeningPort;
class IConnector;
class ThreadPool;

/// TCP (Twisted IReactorTCP). weft::Reactor and testing::MemoryReactor
/// implement it; tcp.md TCP-1 … TCP-49 is the contract of the real one.
class WEFT_EXPORT IReactorTCP {
public:
    virtual ~IReactorTCP() = default;

    /// Listens on `port` (0: a kernel-chosen one) on `interface` ("": every
    /// IPv4 address; an IPv4 or IPv6 literal selects the family) with
    /// `backlog`; factory->doStart() runs once listening. Throws
    /// error::CannotListenError when the port cannot be bound or listened on.
    std::shared_ptr<IListeningPort> listenTCP(std::uint16_t port, std::shared_ptr<Factory> factory, int backlog = 50,
                                              const std::string& interface = "") {
        return doListenTCP(port, std::move(factory), backlog, interface);
    }
    /// Starts connecting to host:port: factory->startedConnecting(connector)
    /// runs before this returns, everything else later (buildProtocol, or
    /// clientConnectionFailed). `timeout` seconds (<= 0: none) bounds the
    /// attempt; `bindAddress` is bound first when given.
    std::shared_ptr<IConnector> connectTCP(const std::string& host, std::uint16_t port,
                                           std::shared_ptr<ClientFactory> factory, double timeout = 30,
                                           std::optional<BindAddress> bindAddress = std::nullopt) {
        return doConnectTCP(host, port, std::move(factory), timeout, std::move(bindAddress));
    }

protected:
    virtual std::shared_ptr<IListeningPort> doListenTCP(std::uint16_t port, std::shared_ptr<Factory> factory,
                                                        int backlog, const std::string& interface) = 0;
    virtual std::shared_ptr<IConnector> doConnectTCP(const std::string& host, std::uint16_t port,
                                                     std::shared_ptr<ClientFactory> factory, double timeout,
                                                     std::optional<BindAddress> bindAddress) = 0;
};

/// UNIX stream sockets (Twisted IReactorUNIX); unix.md UNIX-1 … UNIX-13.
class WEFT_EXPORT IReactorUNIX {
public:
    virtual ~IReactorUNIX() = default;

    /// Listens on the socket at `address` (a first byte of NUL: Linux's
    /// abstract namespace), whose file gets exactly `mode`; with `wantPID`
    /// "<address>.lock" is taken first. Throws error::CannotListenError.
    std::shared_ptr<IListeningPort> listenUNIX(const std::string& address, std::shared_ptr<Factory> factory,
                                               int backlog = 50, int mode = 0666, bool wantPID = false) {
        return doListenUNIX(address, std::move(factory), backlog, mode, wantPID);
    }
    /// Starts connecting to the socket at `address`, with connectTCP's
    /// connector life cycle; with `checkPID` the attempt fails unless a live
    /// process holds "<address>.lock".
    std::shared_ptr<IConnector> connectUNIX(const std::string& address, std::shared_ptr<ClientFactory> factory,
                                            double timeout = 30, bool checkPID = false) {
        return doConnectUNIX(address, std::move(factory), timeout, checkPID);
    }

protected:
    virtual std::shared_ptr<IListeningPort> doListenUNIX(const std::string& address, std::shared_ptr<Factory> factory,
                                                         int backlog, int mode, bool wantPID) = 0;
    virtual std::shared_ptr<IConnector> doConnectUNIX(const std::string& address,
                                                      std::shared_ptr<ClientFactory> factory, double timeout,
                                                      bool checkPID) = 0;
};

/// UNIX datagram sockets (Twisted IReactorUNIXDatagram); unix.md UNIX-23 … UNIX-29.
class WEFT_EXPORT IReactorUNIXDatagram {
public:
    virtual ~IReactorUNIXDatagram() = default;

    /// Binds a datagram socket at `address` (file mode exactly `mode`) and
    /// attaches `protocol`, which is started before this returns. Throws
    /// error::CannotListenError; the protocol is then not started.
    std::shared_ptr<IListeningPort> listenUNIXDatagram(const std::string& address,
                                                       std::shared_ptr<DatagramProtocol> protocol,
                                                       std::size_t maxPacketSize = 8192, int mode = 0666) {
        return doListenUNIXDatagram(address, std::move(protocol), maxPacketSize, mode);
    }
    /// A datagram socket connected to `address`, bound first to `bindAddress`
    /// when given. A failure is not thrown: protocol->connectionFailed(reason)
    /// runs before this returns.
    std::shared_ptr<IListeningPort> connectUNIXDatagram(const std::string& address,
                                                        std::shared_ptr<ConnectedDatagramProtocol> protocol,
                                                        std::size_t maxPacketSize = 8192, int mode = 0666,
                                                        std::optional<std::string> bindAddress = std::nullopt) {
        return doConnectUNIXDatagram(address, std::move(protocol), maxPacketSize, mode, std::move(bindAddress));
    }

protected:
    virtual std::shared_ptr<IListeningPort> doListenUNIXDatagram(const std::string& address,
                                                                 std::shared_ptr<DatagramProtocol> protocol,
                                                                 std::size_t maxPacketSize, int mode) = 0;
    virtual std::shared_ptr<IListeningPort> doConnectUNIXDatagram(const std::string& address,
                                                                  std::shared_ptr<ConnectedDatagramProtocol> protocol,
                                                                  std::size_t maxPacketSize, int mode,
                                                                  std::optional<std::string> bindAddress) = 0;
};

/// UDP (Twisted IReactorUDP); udp.md UDP-1 … UDP-22.
class WEFT_EXPORT IReactorUDP {
public:
    virtual ~IReactorUDP() = default;

    /// Binds a UDP socket to `port` (0: kernel-chosen) on `interface` ("":
    /// every IPv4 address; an IPv6 literal selects IPv6) and starts
    /// `protocol` before returning. Throws error::InvalidAddressError for an
    /// interface that is no literal and error::CannotListenError when the
    /// socket cannot be bound; the protocol is then not started.
    std::shared_ptr<IListeningPort> listenUDP(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                              const std::string& interface = "", std::size_t maxPacketSize = 8192) {
        return doListenUDP(port, std::move(protocol), interface, maxPacketSize);
    }

protected:
    virtual std::shared_ptr<IListeningPort> doListenUDP(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                                        const std::string& interface, std::size_t maxPacketSize) = 0;
};

/// UDP multicast (Twisted IReactorMulticast); udp.md UDP-23 … UDP-29.
class WEFT_EXPORT IReactorMulticast {
public:
    virtual ~IReactorMulticast() = default;

    /// listenUDP for a port that can join multicast groups; with
    /// `listenMultiple` several sockets may bind the same port.
    std::shared_ptr<IListeningPort> listenMulticast(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                                    const std::string& interface = "", std::size_t maxPacketSize = 8192,
                                                    bool listenMultiple = false) {
        return doListenMulticast(port, std::move(protocol), interface, maxPacketSize, listenMultiple);
    }

protected:
    virtual std::shared_ptr<IListeningPort> doListenMulticast(std::uint16_t port,
                                                              std::shared_ptr<DatagramProtocol> protocol,
                                                              const std::string& interface, std::size_t maxPacketSize,
                                                              bool listenMultiple) = 0;
};

/// Sockets made elsewhere (Twisted IReactorSocket): systemd, a parent process.
/// tcp.md TCP-50, TCP-51, udp.md UDP-22, unix.md UNIX-21, UNIX-22.
class WEFT_EXPORT IReactorSocket {
public:
    virtual ~IReactorSocket() = default;

    /// Accepts on the listening socket `fd` of `addressFamily` with
    /// `factory`; `fd` is duplicated, the caller keeps (and closes) its own.
    /// An unsupported family throws error::UnsupportedAddressFamily.
    std::shared_ptr<IListeningPort> adoptStreamPort(int fd, int addressFamily, std::shared_ptr<Factory> factory) {
        return doAdoptStreamPort(fd, addressFamily, std::move(factory));
    }
    /// Serves the connected socket `fd` (duplicated) with a protocol from
    /// `factory`; the factory is neither started nor stopped.
    void adoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory) {
        doAdoptStreamConnection(fd, addressFamily, std::move(factory));
    }
    /// Serves the bound datagram socket `fd` (duplicated) with `protocol`.
    std::shared_ptr<IListeningPort> adoptDatagramPort(int fd, int addressFamily,
                                                      std::shared_ptr<DatagramProtocol> protocol,
                                                      std::size_t maxPacketSize = 8192) {
        return doAdoptDatagramPort(fd, addressFamily, std::move(protocol), maxPacketSize);
    }

protected:
    virtual std::shared_ptr<IListeningPort> doAdoptStreamPort(int fd, int addressFamily,
                                                              std::shared_ptr<Factory> factory) = 0;
    virtual void doAdoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory) = 0;
    virtual std::shared_ptr<IListeningPort> doAdoptDatagramPort(int fd, int addressFamily,
                                                                std::shared_ptr<DatagramProtocol> protocol,
                                                                std::size_t maxPacketSize) = 0;
};

/// Handing work between threads (Twisted IReactorThreads, which joins
/// IReactorFromThreads and IReactorInThreads). reactor.md R-45 … R-51.
/// weft::Reactor implements it; testing::MemoryReactor does not (it has no
/// threads). No covariance is involved, so these are plain virtuals.
class WEFT_EXPORT IReactorThreads {
public:
    virtual ~IReactorThreads() = default;
    /// Queues f to run on the reactor thread, FIFO; safe from any thread.
    virtual void callFromThread(Function<void()> f) = 0;
    /// Runs f on the reactor's thread pool.
    virtual void callInThread(Function<void()> f) = 0;
    /// The reactor's pool (created on first use, on the reactor thread).
    virtual ThreadPool& getThreadPool() = 0;
    /// Sets the pool's maximum size.
    virtual void suggestThreadPoolSize(std::size_t n) = 0;
};

// ---- child processes (process.md; weft/internet/process.hpp) ------------------------

class ProcessProtocol;
class IProcessTransport;

/// What one descriptor of a child is (a value of Twisted's `childFDs`):
/// "r" — a pipe the child writes on that fd and the parent reads
/// (childDataReceived); "w" — a pipe the child reads and the parent feeds
/// (writeToChild); an integer — a duplicate of that parent descriptor, which
/// the parent neither watches nor closes (FDMAP-2).
class WEFT_EXPORT ChildFD {
public:
    enum class Kind : std::uint8_t { parentReads, parentWrites, inherit };
    /// "r" or "w"; anything else throws std::invalid_argument.
    ChildFD(const char* mode);  // NOLINT(google-explicit-constructor): {1, "r"} as in Twisted
    /// A parent descriptor for the child to inherit (>= 0, else std::invalid_argument).
    ChildFD(int parentFd);  // NOLINT(google-explicit-constructor): {2, 2} as in Twisted
    static ChildFD parentReads() { return ChildFD("r"); }
    static ChildFD parentWrites() { return ChildFD("w"); }
    static ChildFD inherit(int parentFd) { return ChildFD(parentFd); }

    Kind kind() const noexcept { return kind_; }
    /// The parent descriptor for Kind::inherit, -1 otherwise.
    int parentFd() const noexcept { return parentFd_; }
    friend bool operator==(const ChildFD&, const ChildFD&) = default;

private:
    Kind kind_;
    int parentFd_ = -1;
};

/// Child fd number → what it is. The default (no map given) is
/// {0: "w", 1: "r", 2: "r"} (FDMAP-1).
using ChildFDs = std::map<int, ChildFD>;
/// A child's environment, name → value.
using Environment = std::map<std::string, std::string>;

/// A terminal's size in character cells.
struct WindowSize {
    std::uint16_t rows = 24;
    std::uint16_t cols = 80;
    friend bool operator==(const WindowSize&, const WindowSize&) = default;
};

/// A pseudo-terminal made by the caller (Twisted's usePTY triple, PTY-2):
/// the master and slave descriptors and the slave's name. spawnProcess
/// duplicates what it keeps and never closes these.
struct PTYDescriptors {
    int master = -1;
    int slave = -1;
    std::string ttyName;
};

/// How spawnProcess starts a child; every field has Twisted's default.
struct ProcessOptions {
    /// The child's environment: exactly these variables (the default: none,
    /// PROC-3); std::nullopt: a copy of the parent's, taken at spawn time.
    std::optional<Environment> env = Environment{};
    /// The child's working directory; the parent's when absent (PROC-4).
    std::optional<std::string> path;
    /// Run the child as this user / group; the one not given defaults to the
    /// parent's effective id, and the user's supplementary groups are set (PROC-8).
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    /// Run the child on a new pseudo-terminal (PTY-1): its session leader, with
    /// the terminal as controlling terminal and fds 0, 1 and 2.
    bool usePTY = false;
    /// With usePTY: use this terminal instead of opening a new one (PTY-2).
    std::optional<PTYDescriptors> pty;
    /// The terminal's initial size (usePTY only; Better than Twisted).
    WindowSize window;
    /// The child's descriptors (FDMAP-1..FDMAP-4); not with usePTY (PTY-3).
    std::optional<ChildFDs> childFDs;
    /// The channels the child writes ("r" entries) are UNIX socket pairs
    /// instead of pipes (libuv's and Node's choice): a socket buffers about
    /// 200 KiB against a pipe's 64 KiB, so a large output costs the parent
    /// about a quarter of the wake-ups (bench/README.md, "Child processes").
    /// The price: the child cannot reopen such an fd by name
    /// (open("/dev/stdout") fails with ENXIO), which some shell scripts do;
    /// hence pipes by default, as Twisted and Python have them.
    bool socketOutputs = false;
    /// Start the child in a process group of its own (its pid), so that
    /// IProcessTransport::signalProcessGroup reaches it and everything it
    /// starts (Python's start_new_session, tokio's process_group). A PTY child
    /// always leads its own session and group.
    bool newProcessGroup = false;
};

/// Starting child processes (Twisted IReactorProcess). weft::Reactor and
/// testing::MemoryReactor implement it. process.md PROC-*, FDMAP-*, PTY-*.
class WEFT_EXPORT IReactorProcess {
public:
    virtual ~IReactorProcess() = default;

    /// Starts `executable` with argv `args` (argv[0] included, PROC-2) and
    /// connects `protocol` to it: makeConnection() has run when this returns
    /// (PROC-1). A name without "/" is looked up on the PATH of the child's
    /// environment (PROC-5). Anything that keeps the program from starting
    /// throws std::system_error with the child's errno, after every pipe was
    /// closed and the child reaped, and no protocol method has run (PROC-6).
    std::shared_ptr<IProcessTransport> spawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                    const std::string& executable, const std::vector<std::string>& args,
                                                    const ProcessOptions& options = {}) {
        return doSpawnProcess(std::move(protocol), executable, args, options);
    }

protected:
    virtual std::shared_ptr<IProcessTransport> doSpawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                              const std::string& executable,
                                                              const std::vector<std::string>& args,
                                                              const ProcessOptions& options) = 0;
};

/// A reactor seen through the interfaces it provides, without owning it: what
/// code takes that asks a reactor for whichever interface it turns out to need
/// (Twisted passes `reactor` and asks `IReactorUNIX.providedBy(reactor)`).
/// Endpoint string parsers take one (weft/internet/endpoints.hpp).
///
/// Any reactor converts to it implicitly: each interface its static type
/// derives from is found at compile time, any other one by a cross-cast of
/// its dynamic type. The reactor must outlive the ReactorRef.
class WEFT_EXPORT ReactorRef {
public:
    template <class R>
    requires(std::is_polymorphic_v<R> && !std::is_const_v<R> && !std::is_base_of_v<ReactorRef, R>)
        ReactorRef(R& reactor)
    noexcept  // NOLINT(google-explicit-constructor): a reactor is a ReactorRef
        : interfaces_(pick<IReactorTime>(reactor), pick<IReactorFDSet>(reactor), pick<IReactorTCP>(reactor),
                      pick<IReactorUNIX>(reactor), pick<IReactorUNIXDatagram>(reactor), pick<IReactorUDP>(reactor),
                      pick<IReactorMulticast>(reactor), pick<IReactorSocket>(reactor), pick<IReactorThreads>(reactor),
                      pick<IReactorProcess>(reactor)) {}

    /// The reactor as interface I, or null if it does not provide it.
    template <class I>
    I* find() const noexcept {
        return std::get<I*>(interfaces_);
    }
    /// The reactor as interface I; throws std::invalid_argument ("the reactor
    /// does not provide IReactorUNIX") if it does not provide it.
    template <class I>
    I& get() const {
        if (I* i = find<I>()) return *i;
        missing(typeid(I));
    }

private:
    template <class I, class R>
    static I* pick(R& reactor) noexcept {
        if constexpr (std::is_convertible_v<R*, I*>) return &reactor;
        else if constexpr (std::is_base_of_v<I, R>) return nullptr;  // ambiguous or inaccessible
        else return dynamic_cast<I*>(&reactor);
    }
    [[noreturn]] static void missing(const std::type_info& interface);

    std::tuple<IReactorTime*, IReactorFDSet*, IReactorTCP*, IReactorUNIX*, IReactorUNIXDatagram*, IReactorUDP*,
               IReactorMulticast*, IReactorSocket*, IReactorThreads*, IReactorProcess*>
        interfaces_;
};

// ---- producers and consumers (filedescriptor.md FD-42, FD-43) ------------------

/// Something that produces data for a consumer (Twisted IProducer).
class IPushProducer;
class IPullProducer;

class WEFT_EXPORT IProducer {
public:
    virtual ~IProducer() = default;
    /// The consumer is gone for good: stop producing and release what you hold.
    virtual void stopProducing() = 0;
    /// This producer as a push or pull producer, or null: the two interfaces
    /// below answer for themselves, so a consumer tells them apart with one
    /// virtual call instead of a cross-cast through the hierarchy.
    virtual IPushProducer* asPushProducer() noexcept { return nullptr; }
    virtual IPullProducer* asPullProducer() noexcept { return nullptr; }
};

/// A producer that writes whenever it likes until paused (Twisted IPushProducer).
class WEFT_EXPORT IPushProducer : public virtual IProducer {
public:
    /// The consumer's buffer is full: stop writing until resumeProducing().
    virtual void pauseProducing() = 0;
    /// Undoes a pauseProducing().
    virtual void resumeProducing() = 0;
    IPushProducer* asPushProducer() noexcept override { return this; }
};

/// A producer that writes once each time it is asked (Twisted IPullProducer).
class WEFT_EXPORT IPullProducer : public virtual IProducer {
public:
    /// Produce some data now, by writing to the consumer before returning.
    virtual void resumeProducing() = 0;
    IPullProducer* asPullProducer() noexcept override { return this; }
};

/// What every IConsumer::registerProducer() checks first: a streaming
/// producer must be an IPushProducer and a pull producer an IPullProducer.
/// Throws std::invalid_argument naming the mismatch (a producer of the wrong
/// kind would never be resumed, or never paused).
WEFT_EXPORT void checkProducerKind(IProducer& producer, bool streaming);

/// Bytes as weft passes them at its edges.
using Bytes = std::span<const std::byte>;

/// Views text as bytes (no copy).
inline Bytes asBytes(std::string_view s) noexcept { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

/// Views bytes as text (no copy): what a text protocol reads dataReceived()'s
/// bytes as. The view is valid as long as the bytes are (for dataReceived(),
/// during the call).
inline std::string_view asText(Bytes b) noexcept { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

/// A sink for bytes with flow control (Twisted IConsumer).
class WEFT_EXPORT IConsumer {
public:
    virtual ~IConsumer() = default;
    /// Registers the producer feeding this consumer. `streaming` true: a push
    /// producer (IPushProducer), paused when the buffer fills; false: a pull
    /// producer (IPullProducer), asked for more each time the buffer drains.
    /// Throws std::invalid_argument for a producer of the other kind
    /// (checkProducerKind) and std::runtime_error if a producer is already
    /// registered. The consumer
    /// holds the producer until unregisterProducer() or the end of the connection.
    virtual void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) = 0;
    /// Forgets the producer (without stopping it); a no-op if none is registered.
    virtual void unregisterProducer() = 0;
    /// Buffers data for sending; never blocks, never calls back synchronously.
    virtual void write(Bytes data) = 0;
};

/// A byte stream to a peer (Twisted ITransport).
class WEFT_EXPORT ITransport {
public:
    virtual ~ITransport() = default;
    /// Queues data; it leaves in order, with nothing lost, before any close.
    virtual void write(Bytes data) = 0;
    /// Queues several chunks as if written one after the other (one gather write, no copy).
    virtual void writeSequence(std::span<const Bytes> chunks) = 0;
    /// Closes after everything queued is sent (and, with a producer registered,
    /// after it is unregistered). connectionLost follows later, from the reactor.
    virtual void loseConnection() = 0;
    /// Closes after everything queued is sent, without waiting for a registered
    /// producer to be unregistered: what code that ends a connection on its own
    /// account does (a timeout, an over-long line, a failed TLS handshake), where
    /// loseConnection() could wait for ever on a producer that its owner never
    /// unregisters (FD-13, Better than Twisted). The producer is stopped when the
    /// connection is lost (FD-2). This default is loseConnection(), for a
    /// transport whose close no producer holds (as Twisted's test doubles);
    /// every weft transport whose close waits for its producer overrides it.
    virtual void loseConnectionDespiteProducer();
    /// The remote and local addresses; still answered after the connection is lost.
    virtual Address getPeer() const = 0;
    virtual Address getHost() const = 0;
    /// True from the moment the transport carries bytes until it is aborted
    /// or connectionLost runs; still true while a loseConnection() is pending
    /// (Twisted's `connected` attribute). The default: always connected.
    virtual bool isConnected() const noexcept { return true; }
    /// True once loseConnection() was asked for, until connectionLost
    /// (Twisted's `disconnecting` attribute). The default: never.
    virtual bool isDisconnecting() const noexcept { return false; }
    /// Bytes written and not yet handed to the kernel (the write buffer), or 0
    /// where the transport cannot tell: what a close that waits for a slow
    /// reader looks at (TLS-22). Wrappers (a TLS layer, a policy) add what
    /// they hold to what the transport below them holds.
    virtual std::size_t pendingBytes() const noexcept { return 0; }
    /// The transport as the consumer of what is written to it (to register a
    /// producer), or null. A virtual call instead of a cross-cast, which walks
    /// a transport's class hierarchy (measured: ≈ 1 200 instructions each).
    virtual IConsumer* asConsumer() noexcept { return nullptr; }
    /// The transport as the push producer of what it reads (to pause and
    /// resume reading, or to register as another consumer's producer), or null.
    virtual IPushProducer* asInputProducer() noexcept { return nullptr; }
    /// The transport this one carries its bytes over (a policy wrapper's real
    /// transport), or null: what abortTransport() aborts when this one has no
    /// abort of its own, as Twisted's wrappers pass abortConnection() down.
    virtual ITransport* transportBelow() noexcept { return nullptr; }

    void write(std::string_view s) { write(asBytes(s)); }
};

// ---- what a stream transport offers besides ITransport ---------------------------
//
// These are mixins, not ITransports: a transport already is an ITransport
// (FileDescriptor derives from it once), so code holding a
// std::shared_ptr<ITransport> asks for them with a cross-cast
// (dynamic_cast<IHalfCloseableTransport*>(transport.get())).

/// A transport whose write half can be shut on its own (Twisted
/// ITCPTransport.loseWriteConnection; the transport side of
/// IHalfCloseableDescriptor). FileDescriptor implements it.
class WEFT_EXPORT IHalfCloseableTransport {
public:
    virtual ~IHalfCloseableTransport() = default;
    /// Shuts the write half once everything queued is sent; reading goes on,
    /// and an IHalfCloseableProtocol then hears writeConnectionLost() (FD-31).
    virtual void loseWriteConnection() = 0;
};

/// A TCP connection (Twisted ITCPTransport, less what ITransport has):
/// half-close, abort and the socket options. tcp::Connection implements it.
class WEFT_EXPORT ITCPTransport {
public:
    virtual ~ITCPTransport() = default;
    /// As IHalfCloseableTransport's (declared again, not inherited: a transport
    /// implements both, and one more base costs every connection a pointer).
    virtual void loseWriteConnection() = 0;
    /// Drops what is queued, stops all I/O and reports
    /// connectionLost(ConnectionAborted) later, from the reactor; the peer
    /// sees a reset. A no-op once disconnected or aborting (TCP-32, TCP-33).
    virtual void abortConnection() = 0;
    /// TCP_NODELAY (Nagle's algorithm off when true). Throws std::system_error
    /// once the socket is closed.
    virtual bool getTcpNoDelay() const = 0;
    virtual void setTcpNoDelay(bool enabled) = 0;
    /// SO_KEEPALIVE. Throws std::system_error once the socket is closed.
    virtual bool getTcpKeepAlive() const = 0;
    virtual void setTcpKeepAlive(bool enabled) = 0;
};

/// A transport that can pass descriptors (Twisted IUNIXTransport).
class WEFT_EXPORT IUNIXTransport {
public:
    virtual ~IUNIXTransport() = default;
    /// Queues a copy of `fd` to travel with the next byte written (UNIX-14).
    virtual void sendFileDescriptor(int fd) = 0;
};

/// A child process as its transport sees it (Twisted IProcessTransport, less
/// what ITransport has): a mixin, like ITCPTransport, on process::Process
/// (pipes) and process::PTYProcess (a terminal). asTransport() is the
/// ITransport side: write() goes to the child's fd 0 (or the terminal).
class WEFT_EXPORT IProcessTransport {
public:
    virtual ~IProcessTransport() = default;
    /// The child's pid until it has been reaped; std::nullopt afterwards (CB-4).
    virtual std::optional<pid_t> pid() const noexcept = 0;
    /// The raw wait status once reaped; -1 before (PROC-1, CB-7).
    virtual int status() const noexcept = 0;
    /// Flushes what was written, then closes the child's stdin (PROC-13).
    virtual void closeStdin() = 0;
    /// Stops reading the child's stdout / stderr and closes them (PROC-14).
    virtual void closeStdout() = 0;
    virtual void closeStderr() = 0;
    /// closeStdin / closeStdout for whichever kind of pipe is at child fd `fd`;
    /// nothing for an fd that is not (or no longer) a pipe (PROC-15).
    virtual void closeChildFD(int fd) = 0;
    /// Queues data for the parent-written pipe at child fd `fd`; throws
    /// std::out_of_range if there is none (PROC-11).
    virtual void writeToChild(int fd, Bytes data) = 0;
    /// Sends signal `sig` to the child (through its pidfd where the kernel has
    /// them, so it can never reach a recycled pid). Throws
    /// error::ProcessExitedAlready once it has been reaped or is gone, and
    /// std::system_error for any other failure (SIG-2).
    virtual void signalProcess(int sig) = 0;
    /// signalProcess by name: "TERM", "SIGTERM", "KILL", … (any standard name,
    /// with or without "SIG"); an unknown name throws std::invalid_argument (SIG-1).
    void signalProcess(std::string_view name);
    /// Sends `sig` to the child's whole process group (ProcessOptions::
    /// newProcessGroup, or a PTY child). Throws std::logic_error for a child
    /// that shares its parent's group (that would signal the parent too),
    /// error::ProcessExitedAlready once the group is empty.
    virtual void signalProcessGroup(int sig) = 0;
    /// The transport side: write, writeSequence, loseConnection (PROC-16), …
    virtual ITransport& asTransport() noexcept = 0;
};

/// A protocol that wants to hear about each half of a connection closing on its
/// own (Twisted IHalfCloseableProtocol).
///
/// readConnectionLost(): the peer finished sending (EOF); the protocol may keep
/// writing and must eventually call loseConnection(). writeConnectionLost(): our
/// write half is shut, after loseWriteConnection() flushed — weft calls it for
/// every stream transport that supports half-close, TCP included.
class WEFT_EXPORT IHalfCloseableProtocol {
public:
    virtual ~IHalfCloseableProtocol() = default;
    virtual void readConnectionLost() = 0;
    virtual void writeConnectionLost() = 0;
};

}  // namespace weft
