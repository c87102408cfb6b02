// weft/internet/unix.hpp — UNIX-domain stream sockets (twisted.internet.unix).
// Spec: unix.md UNIX-1..UNIX-22, UNIX-30.
//
//   Port        a listening UNIX socket (Reactor::listenUNIX, adoptStreamPort
//               with AF_UNIX): socket-file mode, optional PID lock file, stale
//               socket files replaced, a live listener never stolen.
//   Connection  a SocketTransport (stream.hpp) on a UNIX socket, plus descriptor passing
//               (IUNIXTransport::sendFileDescriptor → fileDescriptorReceived).
//   Server      an accepted (or adopted) connection.
//   Client      an outgoing connection, driven by a Connector (connectUNIX).
//
// Everything a TCP connection does (half-close, abortConnection, producers,
// the accept loop, the connector life cycle) is done the same way here;
// ownership is TCP's (tcp.hpp, docs/ownership.md).
//
// Paths are byte strings. A name whose first byte is NUL lives in Linux's
// abstract namespace: no file, no mode, no unlink, no lock file.
//
// The namespace is `weft::unix_`, not `weft::unix`: GCC and Clang predefine a
// macro `unix` (as `1`) under -std=gnu++20, so no identifier in weft is named
// `unix` or `linux`, and including weft never changes a user's macros.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/export.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/address.hpp>
#include <weft/internet/stream.hpp>

namespace weft {

/// A protocol that accepts descriptors sent over a UNIX socket (Twisted
/// IFileDescriptorReceiver). The protocol owns every descriptor it is given
/// and must close it (UNIX-20).
class WEFT_EXPORT IFileDescriptorReceiver {
public:
    virtual ~IFileDescriptorReceiver() = default;
    /// A descriptor arrived; called before dataReceived() gets the bytes that
    /// came with it (UNIX-18).
    virtual void fileDescriptorReceived(int fd) = 0;
};

}  // namespace weft

namespace weft::unix_ {

class Port;
class Connector;

/// The credentials of the process at the other end (SO_PEERCRED), as they
/// were when the connection was made.
struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    friend bool operator==(const PeerCredentials&, const PeerCredentials&) = default;
};

/// One UNIX stream connection: a SocketTransport (stream.hpp) whose reads are
/// recvmsg() (so descriptors can arrive) and whose writes carry queued descriptors.
///
/// Descriptor passing (UNIX-14..UNIX-20, Better than Twisted): sendFileDescriptor()
/// duplicates the descriptor at once, so the caller may close its own; each
/// queued copy leaves in its own sendmsg() with SCM_RIGHTS and exactly one byte
/// of the stream, in order, before the rest of that flush, and is closed once
/// sent (or when the connection is lost). More descriptors than bytes to carry
/// them loses the connection with FileDescriptorOverrun. Reads use
/// MSG_CMSG_CLOEXEC and a control buffer sized for the kernel's maximum;
/// received descriptors go to the protocol's fileDescriptorReceived() before the
/// bytes of the same read, or are closed (and logged) when the protocol is not
/// an IFileDescriptorReceiver.
class WEFT_EXPORT Connection : public SocketTransport, public IUNIXTransport {
public:
    /// More queued descriptors than this count as a full send buffer (UNIX-16).
    static constexpr std::size_t fileDescriptorBufferSize = 64;

    ~Connection() override;

    Reason doWrite() override;
    void connectionLost(const Failure& reason) override;

    /// UNIXAddress of the local socket (null name when unbound) (UNIX-13).
    Address getHost() const override;
    /// UNIXAddress of the peer (null name when the peer is unbound) (UNIX-8).
    Address getPeer() const override;

    /// Throws std::system_error (EBADF…) if `fd` cannot be duplicated, e.g. it
    /// is closed; nothing is queued then. Ignored once disconnected.
    void sendFileDescriptor(int fd) override;
    /// Descriptors queued and not sent yet.
    std::size_t pendingDescriptors() const noexcept { return sendFds_.size(); }
    /// The peer's pid, uid and gid (SO_PEERCRED). Throws std::system_error once closed.
    PeerCredentials getPeerCredentials() const;

protected:
    Connection(Reactor& reactor, int fd, std::string peerPath);
    /// recvmsg() with room for descriptors; delivers them before the bytes.
    ssize_t readSome(std::byte* into, std::size_t room, Reason& failure) override;
    WriteResult writeSomeData(std::span<const iovec> data) override;
    bool isSendBufferFull() const noexcept override;

    std::string peerPath_;
    mutable std::optional<std::string> hostPath_;  // asked for, or kept at the close

private:
    void deliverDescriptors(std::vector<int>& fds);
    void closePendingDescriptors() noexcept;
    std::vector<int> sendFds_;
};

/// An accepted or adopted UNIX connection (Twisted unix.Server).
class WEFT_EXPORT Server final : public AcceptedTransport<Connection> {
public:
    /// `localPath` is the listening path, shared by every connection of a port
    /// (getHost(), UNIX-8, and repr()). The connection is named in logPrefix()
    /// by the peer's path, or by the local path for an adopted one
    /// (`namedByLocal`; UNIX-9, UNIX-22).
    Server(Reactor& reactor, int fd, std::string peerPath, int sessionno, std::shared_ptr<const std::string> localPath,
           bool namedByLocal);

    /// UNIXAddress(the listener's path), also after the close (UNIX-8).
    Address getHost() const override;

private:
    friend class Port;
    friend class ::weft::Reactor;
    std::string peerName() const override { return namedByLocal_ ? *localPath_ : peerPath_; }
    std::string where() const override { return *localPath_; }
    std::shared_ptr<const std::string> localPath_;
    bool namedByLocal_;
};

/// An outgoing UNIX connection (Twisted unix.Client), created by a Connector.
class WEFT_EXPORT Client final : public ConnectingTransport<Connection> {
public:
    Client(Reactor& reactor, std::shared_ptr<Connector> connector);

private:
    void attempt() override;
    Address connectedPeer() const override { return UNIXAddress(peerPath_); }
    void attemptFailed(int error) override;
    const Connector& connector() const noexcept;
};

/// A listening UNIX stream socket (Twisted unix.Port).
class WEFT_EXPORT Port final : public StreamPort {
public:
    /// See Reactor::listenUNIX. Throws std::invalid_argument for a null factory
    /// or wantPID with an abstract-namespace path (UNIX-6).
    Port(Reactor& reactor, std::string path, std::shared_ptr<Factory> factory, int backlog, int mode, bool wantPID);
    ~Port() override;

    /// Takes the lock (wantPID), binds (replacing a dead listener's socket
    /// file), sets the mode, listens, starts accepting, then factory->doStart()
    /// (UNIX-1..UNIX-4). Throws error::CannotListenError with nothing left
    /// behind. A no-op while listening.
    void startListening() override;
    /// UNIXAddress(path) (UNIX-7).
    Address getHost() const override;

    /// "<FactoryClassName on '<path>'>", or "<FactoryClassName (not listening)>" (UNIX-7).
    std::string repr() const;
    const std::string& path() const noexcept { return path_; }

private:
    friend class ::weft::Reactor;
    void adopt(int fd);
    int bindSocket();
    error::CannotListenError listenFailure(int e) const;
    void releaseLock() noexcept;
    /// Removes the socket file (filesystem paths weft bound; ENOENT ignored),
    /// releases the lock, logs the close (UNIX-5, UNIX-7).
    void closed() override;
    void accepted(int fd, const sockaddr* peer, socklen_t length) override;
    socklen_t peerCapacity() const noexcept override;

    std::string path_;
    std::shared_ptr<const std::string> sharedPath_;  // path_ for the connections' getHost() (no copy each)
    int mode_;
    bool wantPID_;
    bool adopted_ = false;  // the socket file belongs to whoever made it
    // The file bound at the path (device, inode): closed() removes only it.
    std::uint64_t boundDev_ = 0, boundIno_ = 0;
    bool boundKnown_ = false;
    bool lockHeld_ = false;
};

/// Drives outgoing UNIX connection attempts (Twisted unix.Connector); the life
/// cycle is TCP's (TCP-36, TCP-41..TCP-49).
class WEFT_EXPORT Connector final : public BaseConnector {
public:
    Connector(Reactor& reactor, std::string path, std::shared_ptr<ClientFactory> factory, double timeout,
              bool checkPID);

    /// UNIXAddress(path) (UNIX-10).
    Address getDestination() const override;
    /// The current (or last) transport; null before the first attempt.
    std::shared_ptr<Client> transport() const noexcept { return std::static_pointer_cast<Client>(currentTransport()); }
    const std::string& path() const noexcept { return path_; }
    bool checkPID() const noexcept { return checkPID_; }

private:
    std::shared_ptr<IConnectingTransport> makeTransport() override;

    std::string path_;
    bool checkPID_;
};

/// True if "<path>" is held as a PID lock (a symlink naming a live process),
/// as listenUNIX(wantPID) takes it and connectUNIX(checkPID) checks it.
WEFT_EXPORT bool isLocked(const std::string& lockPath);

}  // namespace weft::unix_
