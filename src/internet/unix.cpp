// UNIX stream transports: Port, Connection/Server/Client, Connector, PID lock
// files, and the Reactor's listenUNIX/connectUNIX. Spec: unix.md.
#include <weft/internet/unix.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>

#include "internet/detail/acceptloop.hpp"
#include "internet/detail/accepting.hpp"
#include "internet/detail/connecting.hpp"
#include "internet/detail/unixpath.hpp"
#include "sys/syscalls.hpp"

namespace weft {
namespace unix_ {

using namespace weft::error;
using weft::detail::UnixSockAddr;

namespace {

std::error_code errnoCode(int e) { return {e, std::generic_category()}; }

std::string localPath(int fd) {
    UnixSockAddr a;
    a.length = UnixSockAddr::capacity;
    if (fd < 0 || sys::ops.getsockname(fd, a.get(), &a.length) != 0) return {};
    return a.path();
}

using weft::detail::hexId;

using weft::detail::displayPath;

bool isSocketFile(const std::string& path) {
    struct stat st {};
    return sys::ops.lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

/// Whether a socket bound to `path` is listening, from /proc/net/unix (whose
/// last column is the bound name and whose flags carry __SO_ACCEPTCON,
/// 0x10000, for a listener). nullopt when the table cannot tell: no /proc, or
/// a relative path (the table shows names as they were bound).
std::optional<bool> listenerInTable(const std::string& path) {
    if (path.empty() || path.front() != '/') return std::nullopt;
    // Read whole through the seam (open + read), so fault tests reach it.
    int table = sys::ops.open("/proc/net/unix", O_RDONLY | O_CLOEXEC, 0);
    if (table < 0) return std::nullopt;
    std::string contents;
    char chunk[16384];
    for (;;) {
        ssize_t n = sys::ops.read(table, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            sys::ops.close(table);
            return std::nullopt;  // a table read in part proves nothing
        }
        if (n == 0) break;
        contents.append(chunk, static_cast<std::size_t>(n));
    }
    sys::ops.close(table);
    std::string_view rest(contents);
    while (!rest.empty()) {
        std::size_t eol = rest.find('\n');
        std::string_view text = rest.substr(0, eol);
        rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
        while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
        if (text.size() < path.size() || text.substr(text.size() - path.size()) != path) continue;
        if (text.size() > path.size() && text[text.size() - path.size() - 1] != ' ') continue;
        const std::string line(text);  // NUL-terminated, for sscanf
        unsigned long flags = 0;
        if (std::sscanf(line.c_str(), "%*s %*s %*s %lx", &flags) == 1 && (flags & 0x10000UL)) return true;
    }
    return false;
}

/// True when `path` is a socket file that nobody listens on. Asks the kernel's
/// table first, so that a live listener found there never sees a probing
/// connection. The table can prove a listener alive but never dead: it shows
/// names as they were bound, so a listener that bound "app.sock" from its own
/// directory is not found under "/dir/app.sock". Only a refused connection
/// proves the socket dead.
bool isDeadSocket(const std::string& path, const UnixSockAddr& addr) {
    if (!isSocketFile(path)) return false;
    if (auto live = listenerInTable(path); live && *live) return false;
    int probe = sys::ops.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0) return false;
    int rc = sys::ops.connect(probe, addr.get(), addr.length);
    int e = errno;
    sys::ops.close(probe);
    return rc != 0 && e == ECONNREFUSED;
}

// ---- PID lock files (Twisted python.lockfile.FilesystemLock) ---------------------
// The lock is a symlink whose target is the owner's PID: creating a symlink is
// atomic, and a dead owner can be detected with kill(pid, 0).

std::optional<pid_t> lockOwner(const std::string& lockPath) {
    char buffer[32];
    ssize_t n = sys::ops.readlink(lockPath.c_str(), buffer, sizeof buffer);
    if (n <= 0 || n >= static_cast<ssize_t>(sizeof buffer)) return std::nullopt;
    long pid = 0;
    auto [end, ec] = std::from_chars(buffer, buffer + n, pid);
    if (ec != std::errc() || end != buffer + n || pid <= 0) return std::nullopt;
    return static_cast<pid_t>(pid);
}

bool processAlive(pid_t pid) { return sys::ops.kill(pid, 0) == 0 || errno == EPERM; }

/// Takes the lock: 0 when taken, EBUSY when a live process holds it, or the
/// errno that kept the lock file from being made (ENOENT for a missing
/// directory, EACCES, ...). A lock left by a dead process (or one that is not
/// a PID symlink) is taken over.
int takeLock(const std::string& lockPath) {
    const std::string me = std::to_string(sys::ops.getpid());
    for (int attempt = 0; attempt < 8; ++attempt) {
        if (sys::ops.symlink(me.c_str(), lockPath.c_str()) == 0) return 0;
        if (errno != EEXIST) return errno;
        auto owner = lockOwner(lockPath);
        if (owner && processAlive(*owner)) return EBUSY;
        // Dead (or unreadable) owner: remove the stale lock and try again. Two
        // processes racing here both unlink and both retry; symlink() picks one.
        if (sys::ops.unlink(lockPath.c_str()) != 0 && errno != ENOENT) return errno;
    }
    return EBUSY;
}

void dropLock(const std::string& lockPath) noexcept {
    auto owner = lockOwner(lockPath);
    if (owner && *owner == sys::ops.getpid()) sys::ops.unlink(lockPath.c_str());
}

}  // namespace

bool isLocked(const std::string& lockPath) {
    auto owner = lockOwner(lockPath);
    return owner && processAlive(*owner);
}

// ---- Connection ---------------------------------------------------------------------

Connection::Connection(Reactor& reactor, int fd, std::string peerPath)
    : SocketTransport(reactor, fd), peerPath_(std::move(peerPath)) {}

Connection::~Connection() { closePendingDescriptors(); }

void Connection::closePendingDescriptors() noexcept {
    for (int fd : sendFds_) sys::ops.close(fd);
    sendFds_.clear();
}

Address Connection::getHost() const {
    if (!hostPath_ && fd_ >= 0) hostPath_ = localPath(fd_);
    return UNIXAddress(hostPath_.value_or(std::string()));
}

Address Connection::getPeer() const { return UNIXAddress(peerPath_); }

PeerCredentials Connection::getPeerCredentials() const {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (fd_ < 0 || sys::ops.getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        throw std::system_error(errnoCode(fd_ < 0 ? EBADF : errno), "SO_PEERCRED");
    return {cred.pid, cred.uid, cred.gid};
}

void Connection::sendFileDescriptor(int fd) {
    if (!connected() || writeHalf() == WriteHalf::closed) return;
    int copy = sys::ops.fcntl(fd, F_DUPFD_CLOEXEC, 0);  // Better than Twisted (UNIX-20): the caller may close its own
    if (copy < 0)
        throw std::system_error(errnoCode(errno), fmt::format("sendFileDescriptor: descriptor {} cannot be sent", fd));
    sendFds_.push_back(copy);
    maybePauseProducer();  // UNIX-16
    startWriting();
}

bool Connection::isSendBufferFull() const noexcept {
    return sendFds_.size() > fileDescriptorBufferSize || SocketTransport::isSendBufferFull();
}

Reason Connection::doWrite() {
    // UNIX-15: every descriptor needs a byte to ride on.
    if (!sendFds_.empty() && pendingBytes() < sendFds_.size() && !aborting()) {
        return Failure(FileDescriptorOverrun());
    }
    return SocketTransport::doWrite();
}

WriteResult Connection::writeSomeData(std::span<const iovec> data) {
    if (sendFds_.empty()) return SocketTransport::writeSomeData(data);
    // UNIX-14: one sendmsg per descriptor, each with the next byte of the stream.
    std::size_t sent = 0;
    std::size_t index = 0, offset = 0;  // position of the next unsent byte in `data`
    std::size_t done = 0;               // descriptors sent
    auto advance = [&] {
        ++offset;
        while (index < data.size() && offset >= data[index].iov_len) {
            ++index;
            offset = 0;
        }
    };
    while (index < data.size() && offset >= data[index].iov_len) ++index;  // skip empty chunks
    Reason failure;
    while (done < sendFds_.size() && index < data.size()) {
        iovec one{static_cast<char*>(data[index].iov_base) + offset, 1};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
        msghdr m{};
        m.msg_iov = &one;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &sendFds_[done], sizeof(int));
        ssize_t n;
        do n = sys::ops.sendmsg(fd_, &m, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
                failure = Failure(ConnectionLost(errnoCode(errno)));
            break;
        }
        sys::ops.close(sendFds_[done]);  // it has left: our copy goes
        ++done;
        ++sent;
        advance();
    }
    sendFds_.erase(sendFds_.begin(), sendFds_.begin() + static_cast<std::ptrdiff_t>(done));
    if (failure) {
        if (sent == 0) return *failure;
        return sent;  // the error shows again on the next write
    }
    if (!sendFds_.empty() || index >= data.size()) return sent;
    // The descriptors are out: the rest of this flush goes in one gather write.
    iovec rest[64];
    std::size_t count = 0;
    for (std::size_t i = index; i < data.size() && count < std::size(rest); ++i, ++count) {
        rest[count] = data[i];
        if (i == index) {
            rest[count].iov_base = static_cast<char*>(rest[count].iov_base) + offset;
            rest[count].iov_len -= offset;
        }
    }
    WriteResult r = SocketTransport::writeSomeData({rest, count});
    if (auto* n = std::get_if<std::size_t>(&r)) return sent + *n;
    if (sent > 0) return sent;
    return r;
}

ssize_t Connection::readSome(std::byte* into, std::size_t room, Reason& failure) {
    // Room for the most descriptors one message can carry (SCM_MAX_FD, 253).
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
    iovec iov{into, room};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n = sys::ops.recvmsg(fd_, &m, MSG_CMSG_CLOEXEC);
    if (n < 0 || m.msg_controllen == 0) return n;
    std::vector<int> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                fds.push_back(fd);
            }
        } else {
            log::info(logPrefix(), "Ignoring ancillary data of level {} and type {}", c->cmsg_level,
                      c->cmsg_type);  // UNIX-18
        }
    }
    if (m.msg_flags & MSG_CTRUNC) {
        // Better than Twisted (UNIX-20): descriptors were lost in transit.
        for (int fd : fds) sys::ops.close(fd);
        failure = Failure(ConnectionLost("ancillary data was truncated: descriptors sent by the peer were lost"));
        return -1;
    }
    deliverDescriptors(fds);  // UNIX-18: before the bytes they came with
    return n;
}

void Connection::deliverDescriptors(std::vector<int>& fds) {
    auto keep = protocol_;
    auto* receiver = dynamic_cast<IFileDescriptorReceiver*>(keep.get());
    if (!receiver) {
        // UNIX-19: nobody to own them, so they are closed, never leaked; one
        // line per message, as Twisted logs (not one per descriptor).
        for (int fd : fds) sys::ops.close(fd);
        if (!fds.empty())
            log::warn(logPrefix(),
                      "{} received {} file descriptor(s) but is not an IFileDescriptorReceiver; closed them "
                      "(host {}, peer {})",
                      keep ? weft::className(*keep) : std::string("(no protocol)"), fds.size(), addressStr(getHost()),
                      addressStr(getPeer()));
        return;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
        try {
            receiver->fileDescriptorReceived(fds[i]);
        } catch (...) {
            log::failure(logPrefix(), "Unhandled error in fileDescriptorReceived", Failure::current());
        }
    }
}

void Connection::connectionLost(const Failure& reason) {
    if (disconnected()) return;
    // getHost() answers after the close: a server knows its name from the
    // start; a client socket weft connected was never bound.
    if (!hostPath_) hostPath_ = std::string();
    closePendingDescriptors();
    SocketTransport::connectionLost(reason);
}

// ---- Server -------------------------------------------------------------------------

Server::Server(Reactor& reactor, int fd, std::string peerPath, int sessionno,
               std::shared_ptr<const std::string> localPath, bool namedByLocal)
    : AcceptedTransport(sessionno, reactor, fd, std::move(peerPath)), localPath_(std::move(localPath)),
      namedByLocal_(namedByLocal) {}

// An accepted socket has its listener's name (UNIX-8): no getsockname.
Address Server::getHost() const { return UNIXAddress(*localPath_); }

// ---- Client -------------------------------------------------------------------------

}  // namespace unix_

template class ConnectingTransport<unix_::Connection>;

namespace unix_ {

Client::Client(Reactor& reactor, std::shared_ptr<Connector> connector)
    : ConnectingTransport(connector, reactor, -1, connector->path()) {}

const Connector& Client::connector() const noexcept { return static_cast<const Connector&>(*connector_); }

void Client::attempt() {
    const std::string& path = peerPath_;
    if (connector().checkPID() && !isLocked(path + ".lock")) {  // UNIX-12: no connection is attempted
        failIfNotConnected(Failure(BadFileError(0, displayPath(path) + ": no live process holds " + path + ".lock")));
        return;
    }
    UnixSockAddr target;
    if (!UnixSockAddr::fromPath(path, target)) {  // UNIX-11, Better than Twisted
        failIfNotConnected(Failure(ConnectError(weft::detail::unusablePathError(path),
                                                weft::detail::unusablePathMessage(path) + ": " + displayPath(path))));
        return;
    }
    if (fd_ < 0) {
        int s = sys::ops.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0) {
            int e = errno;
            failIfNotConnected(Failure(ConnectBindError(e, std::strerror(e))));
            return;
        }
        fd_ = s;
    }
    connectTo(target.get(), target.length);
}

void Client::attemptFailed(int error) {
    if (error == EAGAIN && phase_ == Phase::connecting) {
        // The listener's backlog is full: a UNIX socket does not queue the
        // attempt, so try again shortly (the connector's timeout still applies).
        phase_ = Phase::waiting;
        scheduleAttempt(0.01);
        return;
    }
    std::string why = std::strerror(error);
    if (error == ECONNREFUSED) why += weft::detail::refusedDetail(peerPath_);
    failIfNotConnected(Failure(getConnectError(error, fmt::format("{}: {}", displayPath(peerPath_), why))));
}

// ---- Port -----------------------------------------------------------------------------

Port::Port(Reactor& reactor, std::string path, std::shared_ptr<Factory> factory, int backlog, int mode, bool wantPID)
    : StreamPort(reactor, std::move(factory), backlog, "listenUNIX"), path_(std::move(path)), mode_(mode),
      wantPID_(wantPID) {
    if (wantPID_ && UnixSockAddr::isAbstract(path_))  // UNIX-6, Better than Twisted
        throw std::invalid_argument("listenUNIX: wantPID needs a filesystem path, not an abstract name");
}

Port::~Port() { releaseLock(); }

std::string Port::repr() const {
    if (listening()) return fmt::format("<{} on '{}'>", logPrefix(), displayPath(path_));
    return fmt::format("<{} (not listening)>", logPrefix());
}

void Port::releaseLock() noexcept {
    if (!lockHeld_) return;
    dropLock(path_ + ".lock");
    lockHeld_ = false;
}

socklen_t Port::peerCapacity() const noexcept { return UnixSockAddr::capacity; }

int Port::bindSocket() {
    UnixSockAddr addr;
    if (!UnixSockAddr::fromPath(path_, addr))
        throw listenFailure(weft::detail::unusablePathError(path_));  // UNIX-2: too long
    const bool abstract = UnixSockAddr::isAbstract(path_);
    int s = sys::ops.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) throw CannotListenError("", displayPath(path_), errnoCode(errno));
    int rc = sys::ops.bind(s, addr.get(), addr.length);
    int bindError = rc != 0 ? errno : 0;  // before isDeadSocket's own calls overwrite errno
    if (bindError == EADDRINUSE && !abstract && isDeadSocket(path_, addr)) {
        // Better than Twisted (UNIX-2, UNIX-4): a dead listener's socket file
        // is replaced; a live listener or any other file is left alone, with
        // or without a lock of our own (a fresh lock proves nothing about
        // a listener that takes no locks, socat's say).
        sys::ops.unlink(path_.c_str());
        rc = sys::ops.bind(s, addr.get(), addr.length);
        bindError = rc != 0 ? errno : 0;
    }
    if (rc != 0) {
        sys::ops.close(s);
        throw listenFailure(bindError);
    }
    // UNIX-1: exactly `mode`, whatever the umask. fchmod on a socket does not
    // reach the file, so the path is changed (it is ours: we just bound it).
    if (!abstract && sys::ops.chmod(path_.c_str(), static_cast<mode_t>(mode_)) != 0) {
        int e = errno;
        sys::ops.close(s);
        sys::ops.unlink(path_.c_str());
        throw CannotListenError("", displayPath(path_), errnoCode(e));
    }
    if (sys::ops.listen(s, backlog_) != 0) {
        int e = errno;
        sys::ops.close(s);
        if (!abstract) sys::ops.unlink(path_.c_str());
        throw CannotListenError("", displayPath(path_), errnoCode(e));
    }
    return s;
}

CannotListenError Port::listenFailure(int e) const {
    return CannotListenError("", displayPath(path_), errnoCode(e), weft::detail::pathFailure(path_, e));
}

void Port::startListening() {
    if (listening()) return;
    checkReactor();
    if (wantPID_) {  // UNIX-4
        UnixSockAddr addr;
        if (!UnixSockAddr::fromPath(path_, addr))
            throw listenFailure(weft::detail::unusablePathError(path_));  // before any lock is made
        const std::string lockPath = path_ + ".lock";
        if (int e = takeLock(lockPath); e == EBUSY) {
            throw CannotListenError("", displayPath(path_), std::make_error_code(std::errc::device_or_resource_busy),
                                    "Cannot acquire lock");
        } else if (e != 0) {
            throw CannotListenError("", displayPath(path_), errnoCode(e),
                                    "Cannot create the lock file: " + weft::detail::pathFailure(lockPath, e));
        }
        lockHeld_ = true;
        // A socket file left at the path is replaced by bindSocket only once a
        // refused connection proves it dead (UNIX-2): holding the lock does
        // not, since the listener there may be a program that takes no lock.
    }
    int s;
    try {
        s = bindSocket();
    } catch (...) {
        releaseLock();  // UNIX-3, Better than Twisted: nothing kept on failure
        throw;
    }
    adopted_ = false;
    if (!UnixSockAddr::isAbstract(path_)) {
        auto bound = weft::detail::boundFileAt(path_);
        boundDev_ = bound.dev;
        boundIno_ = bound.ino;
        boundKnown_ = bound.known;
    }
    try {
        beginListening(s, "'" + displayPath(path_) + "'");  // UNIX-3, Better than Twisted: doStart only once listening
    } catch (...) {
        // beginListening closed the socket; the file is ours (just bound) and goes too.
        if (!UnixSockAddr::isAbstract(path_)) sys::ops.unlink(path_.c_str());
        releaseLock();
        throw;
    }
}

void Port::adopt(int fd) {
    adopted_ = true;
    path_ = localPath(fd);
    beginListening(fd, "'" + displayPath(path_) + "'");
}

Address Port::getHost() const { return UNIXAddress(path_); }

void Port::accepted(int s, const sockaddr* peerAddress, socklen_t length) {
    UnixSockAddr peer;
    std::memcpy(&peer.u, peerAddress, std::min<std::size_t>(length, sizeof peer.u));
    peer.length = length;
    std::string peerPath = peer.path();
    auto protocol = weft::detail::buildProtocolOrClose(*factory_, UNIXAddress(peerPath), s);  // UNIX-8
    if (!protocol) return;
    if (!sharedPath_ || *sharedPath_ != path_) sharedPath_ = std::make_shared<const std::string>(path_);
    auto server = std::make_shared<Server>(reactor_, s, std::move(peerPath), sessionno_++, sharedPath_, false);
    server->start(std::move(protocol));
}

void Port::closed() {
    // UNIX-5: the file goes once the socket is closed (ENOENT ignored: Better
    // than Twisted), if it is still the one this port bound: another socket
    // bound at the path since (after someone unlinked ours) keeps its file.
    // An adopted socket's file belongs to whoever made it.
    if (!adopted_ && !UnixSockAddr::isAbstract(path_))
        weft::detail::unlinkBoundFile(path_, {boundDev_, boundIno_, boundKnown_});
    releaseLock();
    log::info(logPrefix(), "(UNIX Port {} Closed)", displayPath(path_));  // UNIX-7
}

// ---- Connector --------------------------------------------------------------------------

Connector::Connector(Reactor& reactor, std::string path, std::shared_ptr<ClientFactory> factory, double timeout,
                     bool checkPID)
    : BaseConnector(reactor, std::move(factory), timeout, "connectUNIX"), path_(std::move(path)), checkPID_(checkPID) {
    if (checkPID_ && UnixSockAddr::isAbstract(path_))  // UNIX-6, Better than Twisted
        throw std::invalid_argument("connectUNIX: checkPID needs a filesystem path, not an abstract name");
}

std::shared_ptr<IConnectingTransport> Connector::makeTransport() {
    return std::make_shared<Client>(reactor(), std::static_pointer_cast<Connector>(shared_from_this()));
}

Address Connector::getDestination() const { return UNIXAddress(path_); }

}  // namespace unix_

// ---- Reactor methods -------------------------------------------------------------------------

std::shared_ptr<unix_::Port> Reactor::listenUNIX(const std::string& path, std::shared_ptr<Factory> factory, int backlog,
                                                 int mode, bool wantPID) {
    auto p = std::make_shared<unix_::Port>(*this, path, std::move(factory), backlog, mode, wantPID);
    p->startListening();
    return p;
}

std::shared_ptr<unix_::Connector> Reactor::connectUNIX(const std::string& path, std::shared_ptr<ClientFactory> factory,
                                                       double timeout, bool checkPID) {
    auto c = std::make_shared<unix_::Connector>(*this, path, std::move(factory), timeout, checkPID);
    c->connect();
    return c;
}

std::shared_ptr<IListeningPort> Reactor::adoptUNIXStreamPort(int fd, std::shared_ptr<Factory> factory) {
    auto p = std::make_shared<unix_::Port>(*this, std::string(), std::move(factory), 50, 0666, false);
    p->adopt(fd);
    return p;
}

void Reactor::adoptUNIXStreamConnection(int fd, std::shared_ptr<Factory> factory) {
    weft::detail::UnixSockAddr peer;
    peer.length = weft::detail::UnixSockAddr::capacity;
    if (sys::ops.getpeername(fd, peer.get(), &peer.length) != 0) peer.length = 0;
    std::string peerPath = peer.path();
    auto protocol = weft::detail::buildProtocolOrClose(*factory, UNIXAddress(peerPath),
                                                       fd);  // UNIX-22, Better than Twisted: the peer
    if (!protocol) return;
    auto local = std::make_shared<const std::string>(unix_::localPath(fd));
    auto server = std::make_shared<unix_::Server>(*this, fd, std::move(peerPath), 0, std::move(local), true);
    server->start(std::move(protocol));
}

}  // namespace weft
