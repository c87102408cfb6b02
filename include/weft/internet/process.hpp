// weft/internet/process.hpp — child processes (twisted.internet.process,
// ProcessProtocol from twisted.internet.protocol). Spec: process.md.
//
// reactor.spawnProcess(protocol, executable, args, options) starts a child
// and returns its transport at once: a process::Process (one ProcessReader
// per pipe the child writes, one ProcessWriter per pipe it reads) or, with
// options.usePTY, a process::PTYProcess (the terminal's master side).
//
// Spawning never forks the parent: the child is made with
// clone(CLONE_VM | CLONE_VFORK) and runs only async-signal-safe system calls
// before execve (src/sys/spawn.cpp). A failure before exec (missing program,
// bad directory, setuid refused) is thrown by spawnProcess with the child's
// errno, and nothing is left behind (PROC-6, Better than Twisted).
//
// Reaping goes through a pidfd (pidfd_open, Linux >= 5.3) that the reactor
// watches like any descriptor: never a SIGCHLD handler, never waitpid(-1), so
// children that weft did not start keep their statuses and a program's own
// SIGCHLD handler keeps working (REAP-2, REAP-3). On a kernel without
// pidfds the child is polled with waitid(P_PID, pid, WNOHANG) on a timer
// (10 ms, doubling to 200 ms), still per child, still without signals.
//
// Ownership: the reactor holds the process until processEnded (through the
// pidfd watcher and the pipes it serves); the process holds its protocol
// until processEnded has returned, then lets go (CB-5). The protocol holds
// its transport strongly, like a stream protocol.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/abstract.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/protocol.hpp>

namespace weft {

/// The protocol of a child process (Twisted ProcessProtocol). Every method
/// does nothing by default; the base routes fds 0, 1 and 2 to the named
/// callbacks (CB-1).
class WEFT_EXPORT ProcessProtocol : public BaseProtocol {
public:
    /// The process side of `transport` (pid, signals, per-fd closing), set
    /// with it before connectionMade(). Held strongly until the process ends.
    std::shared_ptr<IProcessTransport> processTransport;

    /// Sets processTransport and transport, then calls connectionMade() (PROC-1).
    void makeProcessConnection(std::shared_ptr<IProcessTransport> process);

    /// Bytes the child wrote on `childFD`: 1 → outReceived, 2 → errReceived.
    virtual void childDataReceived(int childFD, Bytes data);
    virtual void outReceived(Bytes data);
    virtual void errReceived(Bytes data);
    /// The pipe at `childFD` closed: 0/1/2 → in/out/errConnectionLost (CB-3).
    virtual void childConnectionLost(int childFD);
    virtual void inConnectionLost();
    virtual void outConnectionLost();
    virtual void errConnectionLost();
    /// The child has been reaped; pipes may still be open (CB-4).
    virtual void processExited(const Failure& reason);
    /// The child has been reaped and every pipe has closed; the last call (CB-5).
    virtual void processEnded(const Failure& reason);
};

/// The exit of a child as Twisted reports it (CB-7): ProcessDone for status 0,
/// ProcessTerminated(exitCode) for another status, ProcessTerminated(signal)
/// for a death by signal.
WEFT_EXPORT Failure processExitReason(int waitStatus);

/// The number of a signal named "TERM", "SIGTERM", "term" or "15"; throws
/// std::invalid_argument for anything else (SIG-1).
WEFT_EXPORT int signalNumber(std::string_view name);

/// A terminal size written "ROWSxCOLS" ("24x80", "X" also accepted), each 1 to
/// 65535 in decimal digits; std::nullopt for anything else.
WEFT_EXPORT std::optional<WindowSize> parseWindowSize(std::string_view text);

namespace process {

class Process;

namespace detail {
/// A parent's end of one pipe (owned, closed once); shared by the reader and
/// the writer below.
class WEFT_EXPORT PipeEnd : public FileDescriptor {
public:
    PipeEnd(Reactor& reactor, std::shared_ptr<Process> process, int childFD, int fd);
    ~PipeEnd() override;
    int fileno() const override { return fd_; }
    std::string logPrefix() const override;
    Address getPeer() const override { return PipeAddress{}; }
    Address getHost() const override { return PipeAddress{}; }
    /// The child's fd number this pipe serves.
    int childFD() const noexcept { return childFD_; }
    /// True for a pipe the parent writes (the child reads it).
    virtual bool parentWrites() const noexcept = 0;
    /// Closes the descriptor and tells the process (once).
    void connectionLost(const Failure& reason) override;

protected:
    std::shared_ptr<Process> process_;  // released at connectionLost
    int fd_;
    int childFD_;
};
}  // namespace detail

/// The parent's end of a pipe the child writes (Twisted ProcessReader): reads
/// go to the protocol's childDataReceived(childFD, …), and the end of the
/// pipe to childConnectionLost(childFD). loseConnection() stops reading at once
/// and closes on the next iteration (PROC-14). Nothing is ever written to it.
class WEFT_EXPORT ProcessReader final : public detail::PipeEnd {
public:
    ProcessReader(Reactor& reactor, std::shared_ptr<Process> process, int childFD, int fd);
    Reason doRead() override;
    bool parentWrites() const noexcept override { return false; }

protected:
    WriteResult writeSomeData(std::span<const iovec>) override { return std::size_t{0}; }
};

/// The parent's end of a pipe the child reads (Twisted ProcessWriter): a
/// FileDescriptor whose writes go to the child. It also watches for
/// readability, which a pipe's write end reports only when the child closed
/// its end, so that closure is noticed even when nothing is being written
/// (PROC-17).
class WEFT_EXPORT ProcessWriter final : public detail::PipeEnd {
public:
    ProcessWriter(Reactor& reactor, std::shared_ptr<Process> process, int childFD, int fd);
    Reason doRead() override;
    bool parentWrites() const noexcept override { return true; }

protected:
    WriteResult writeSomeData(std::span<const iovec> data) override;
};

/// What Process and PTYProcess share (Twisted _BaseProcess): the pid, the
/// reaping, the signals and the order of the protocol's last two calls.
class WEFT_EXPORT BaseProcess : public IProcessTransport, private weft::detail::ReactorBound {
public:
    ~BaseProcess() override;
    BaseProcess(const BaseProcess&) = delete;
    BaseProcess& operator=(const BaseProcess&) = delete;

    std::optional<pid_t> pid() const noexcept override;
    int status() const noexcept override { return status_; }
    using IProcessTransport::signalProcess;
    void signalProcess(int sig) override;
    void signalProcessGroup(int sig) override;

    /// True once the child has been reaped / once processEnded has been called.
    bool exited() const noexcept { return phase_ == Phase::exited || phase_ == Phase::ended; }
    bool ended() const noexcept { return phase_ == Phase::ended; }

    /// Internal (the pidfd watcher): reaps the child if it has exited.
    void reapNow();

protected:
    BaseProcess(Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol);

    /// After the child exists: watch it (pidfd, or the polling fallback
    /// when pidfd is -1). `self` is this process.
    void watchChild(std::shared_ptr<BaseProcess> self, pid_t pid, int pidfd, bool ownGroup);
    /// Hands the transport to the protocol (makeProcessConnection).
    void connectProtocol(std::shared_ptr<IProcessTransport> self);
    /// Calls processEnded once the child is reaped and every stream closed.
    void maybeCallProcessEnded();
    /// True once every stream to the child has closed.
    virtual bool streamsClosed() const noexcept = 0;
    /// The protocol until processEnded has returned, null afterwards.
    const std::shared_ptr<ProcessProtocol>& protocol() const noexcept { return protocol_; }

private:
    class Watcher;
    // detached: the reactor was destroyed while the child ran; a thread of its own reaps it.
    enum class Phase : std::uint8_t { running, exited, ended, detached };

    void reaped(std::optional<int> waitStatus);  // nullopt: reaped by the kernel, status lost
    void pollLater(double delay);
    void stopWatching();
    // The reactor is being destroyed while the child runs: an exit not seen
    // yet is still reaped and reported; otherwise the watcher and the protocol
    // are let go and the child runs on, reaped when it ends by a thread that
    // waits for it alone (REAP-1: no zombie is left), and signalProcess()
    // reaches it through a pidfd of its own, never a pid that may be reused.
    void reactorGone() noexcept override;

    Reactor& reactor_;
    std::shared_ptr<ProcessProtocol> protocol_;
    std::weak_ptr<BaseProcess> self_;
    std::shared_ptr<Watcher> watcher_;       // holds this process until the child is reaped
    std::shared_ptr<BaseProcess> pollHold_;  // the same, without a pidfd
    DelayedCall pollCall_;                   // the next poll, without a pidfd
    std::optional<Failure> reason_;
    pid_t pid_ = 0;
    pid_t group_ = 0;         // the child's own process group, or 0
    int detachedPidfd_ = -1;  // detached: a pidfd to signal the child by, or -1
    int status_ = -1;
    Phase phase_ = Phase::running;
};

/// A child connected by pipes (Twisted Process). Writes go to its fd 0;
/// reading all its output pipes pauses and resumes as one producer.
class WEFT_EXPORT Process final : public BaseProcess,
                                  public ITransport,
                                  public IConsumer,
                                  public IPushProducer,
                                  public std::enable_shared_from_this<Process> {
public:
    /// Use Reactor::spawnProcess. Throws as spawnProcess documents.
    static std::shared_ptr<Process> spawn(Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol,
                                          const std::string& executable, const std::vector<std::string>& args,
                                          const ProcessOptions& options);
    ~Process() override;

    // IProcessTransport
    void closeStdin() override { closeChildFD(0); }
    void closeStdout() override { closeChildFD(1); }
    void closeStderr() override { closeChildFD(2); }
    void closeChildFD(int fd) override;
    void writeToChild(int fd, Bytes data) override;
    ITransport& asTransport() noexcept override { return *this; }

    // ITransport: to the child's fd 0 (dropped when there is none, PROC-11).
    using ITransport::write;
    void write(Bytes data) override;
    void writeSequence(std::span<const Bytes> chunks) override;
    /// closeStdin + closeStderr + closeStdout; no signal (PROC-16).
    void loseConnection() override;
    /// The same, not waiting for a producer registered on the child's stdin.
    void loseConnectionDespiteProducer() override;
    /// A process has no network address: PipeAddress (PROC-20, Better than
    /// Twisted: an answer instead of NotImplementedError).
    Address getPeer() const override { return PipeAddress{}; }
    Address getHost() const override { return PipeAddress{}; }
    bool isConnected() const noexcept override { return !ended(); }
    IConsumer* asConsumer() noexcept override { return this; }
    IPushProducer* asInputProducer() noexcept override { return this; }

    // IConsumer: the producer feeds fd 0 (PROC-19).
    void registerProducer(std::shared_ptr<IProducer> producer, bool streaming) override;
    void unregisterProducer() override;

    // IPushProducer: every pipe the parent reads (PROC-18).
    void pauseProducing() override;
    void resumeProducing() override;
    void stopProducing() override { loseConnection(); }

    /// The pipe ends still open, by child fd.
    const std::map<int, std::shared_ptr<detail::PipeEnd>>& pipes() const noexcept { return pipes_; }

    /// Internal (the pipe ends): data read from, and the end of, child fd `childFD`.
    void childDataReceived(int childFD, Bytes data);
    void childConnectionLost(int childFD);

private:
    struct Token {};

public:
    Process(Token, Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol);

private:
    bool streamsClosed() const noexcept override { return pipes_.empty(); }
    /// The parent-written pipe at child fd `fd`, or null.
    detail::PipeEnd* writerAt(int fd) const noexcept;

    std::map<int, std::shared_ptr<detail::PipeEnd>> pipes_;
};

/// A child on a pseudo-terminal (Twisted PTYProcess): the FileDescriptor of
/// the terminal's master side. Everything the child writes arrives as
/// childDataReceived(1, …) (PTY-4); write() types into the terminal;
/// loseConnection() flushes and closes the master, which hangs up the
/// child's session (PTY-6). The per-fd calls have no pipes to act on:
/// closeStdin/closeStdout/closeStderr do nothing, closeChildFD and
/// writeToChild throw std::logic_error (PTY-5).
class WEFT_EXPORT PTYProcess final : public FileDescriptor, public BaseProcess {
public:
    /// Use Reactor::spawnProcess with usePTY.
    static std::shared_ptr<PTYProcess> spawn(Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol,
                                             const std::string& executable, const std::vector<std::string>& args,
                                             const ProcessOptions& options);
    ~PTYProcess() override;

    void closeStdin() override {}
    void closeStdout() override {}
    void closeStderr() override {}
    void closeChildFD(int fd) override;
    void writeToChild(int fd, Bytes data) override;
    ITransport& asTransport() noexcept override { return *this; }

    /// The terminal's size now; setWindowSize changes it (TIOCSWINSZ), and the
    /// child's foreground process group gets SIGWINCH. Throws std::system_error
    /// once the terminal is closed.
    WindowSize windowSize() const;
    void setWindowSize(WindowSize size);
    /// The slave's device name ("/dev/pts/3").
    const std::string& ttyName() const noexcept { return ttyName_; }

    int fileno() const override { return master_; }
    std::string logPrefix() const override;
    Reason doRead() override;
    void connectionLost(const Failure& reason) override;
    Address getPeer() const override { return PipeAddress{}; }
    Address getHost() const override { return PipeAddress{}; }

private:
    struct Token {};

public:
    PTYProcess(Token, Reactor& reactor, std::shared_ptr<ProcessProtocol> protocol);

protected:
    WriteResult writeSomeData(std::span<const iovec> data) override;

private:
    bool streamsClosed() const noexcept override { return master_ < 0; }

    int master_ = -1;
    std::string ttyName_;
};

}  // namespace process
}  // namespace weft
