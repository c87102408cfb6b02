// UNIX datagram sockets: DatagramPort, ConnectedDatagramPort and the Reactor's
// listenUNIXDatagram/connectUNIXDatagram. Spec: unix.md UNIX-23..UNIX-29.
#include <weft/internet/unix_datagram.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include <weft/internet/error.hpp>
#include <weft/log.hpp>

#include "internet/detail/unixpath.hpp"
#include "sys/syscalls.hpp"

namespace weft::unix_ {

using namespace weft::error;
using weft::detail::UnixSockAddr;

namespace {

std::error_code errnoCode(int e) { return {e, std::generic_category()}; }

// A path fit for log lines: an abstract name's leading NUL shown as '@'.
using weft::detail::displayPath;
// Why UnixSockAddr::fromPath refused a path (too long, or a NUL inside), and its errno.
std::string unusable(const std::string& path) { return weft::detail::unusablePathMessage(path); }
int unusableError(const std::string& path) { return weft::detail::unusablePathError(path); }

int datagramSocket() { return sys::ops.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

// The bound name of a socket ("" if unbound or closed).
std::string boundName(int fd) {
    if (fd < 0) return {};
    UnixSockAddr a;
    a.length = UnixSockAddr::capacity;
    if (sys::ops.getsockname(fd, a.get(), &a.length) != 0) return {};
    return a.path();
}

// Removes a socket file weft created (UNIX-26) if the path still names it:
// someone may have removed it, and another socket may have bound there since.
void unlinkOwned(const std::string& path, std::uint64_t dev, std::uint64_t ino) {
    weft::detail::unlinkBoundFile(path, {dev, ino, dev != 0 || ino != 0});
}

}  // namespace

// ---- DatagramPort ---------------------------------------------------------------------

DatagramPort::DatagramPort(Reactor& reactor, std::string path, std::shared_ptr<DatagramProtocol> protocol,
                           std::size_t maxPacketSize, int mode)
    : DatagramSocket(reactor, std::move(protocol), maxPacketSize), path_(std::move(path)), mode_(mode) {
    ignoreUnconnectedRefusal_ = false;  // UNIX-25: a dead peer's path is an error the caller sees
}

std::string DatagramPort::logPrefix() const {
    if (prefix_.empty()) prefix_ = protocolPrefix() + " (UNIX)";
    return prefix_;
}

std::string DatagramPort::repr() const {
    std::string name = protocolClassName();
    if (fd_ >= 0) return fmt::format("<{} on '{}'>", name, displayPath(path_));
    return fmt::format("<{} (not listening)>", name);
}

void DatagramPort::startListening() {
    checkNotStopping();
    if (fd_ >= 0) return;
    checkProtocolFree();
    UnixSockAddr addr;
    if (!UnixSockAddr::fromPath(path_, addr))
        throw CannotListenError("", displayPath(path_), errnoCode(unusableError(path_)), unusable(path_));
    int s = datagramSocket();
    if (s < 0) throw CannotListenError("", displayPath(path_), errnoCode(errno));
    // UNIX-23: an existing path — a socket or any other file — makes bind()
    // fail with EADDRINUSE and is left as it was.
    if (sys::ops.bind(s, addr.get(), addr.length) != 0) {
        int e = errno;
        sys::ops.close(s);
        throw CannotListenError("", displayPath(path_), errnoCode(e), weft::detail::pathFailure(path_, e));
    }
    const bool filesystem = !UnixSockAddr::isAbstract(path_);
    if (filesystem && sys::ops.chmod(path_.c_str(), static_cast<mode_t>(mode_)) != 0) {  // exactly `mode`, not umask'd
        int e = errno;
        sys::ops.close(s);
        unlinkOwned(path_, 0, 0);  // just bound: ours
        throw CannotListenError("", displayPath(path_), errnoCode(e));
    }
    ownsFile_ = filesystem;
    if (filesystem) {
        auto bound = weft::detail::boundFileAt(path_);
        ownedDev_ = bound.dev;
        ownedIno_ = bound.ino;
    }
    forgetLastSender();
    try {
        attach(s, displayPath(path_));
    } catch (...) {
        if (ownsFile_) unlinkOwned(path_, ownedDev_, ownedIno_);
        ownsFile_ = false;
        throw;
    }
}

Address DatagramPort::getHost() const {
    if (fd_ >= 0) return UNIXAddress(boundName(fd_));
    return UNIXAddress(path_);
}

void DatagramPort::forgetLastSender() {
    // What an empty raw name stands for: an unbound sender (UNIX-24). Leaving the
    // address of an earlier sender here gave the next unbound one that name.
    lastFromRaw_.clear();
    lastFromAddress_ = UNIXAddress("");
}

void DatagramPort::deliver(Bytes datagram, const sockaddr* from, socklen_t fromLength) {
    // UNIX-24: the sender's path ("" when it is unbound); kept for a steady sender.
    std::string_view raw(reinterpret_cast<const char*>(from), fromLength);
    if (raw != lastFromRaw_) {
        lastFromRaw_.assign(raw);
        UnixSockAddr a;
        a.length = std::min<socklen_t>(fromLength, UnixSockAddr::capacity);
        std::memcpy(&a.u, from, a.length);
        lastFromAddress_ = UNIXAddress(a.path());
    }
    static_cast<DatagramProtocol&>(*protocol_).datagramReceived(datagram, lastFromAddress_);
}

std::size_t DatagramPort::write(Bytes datagram, const Address& addr) {
    return writeSequence(std::span(&datagram, 1), addr);
}

std::size_t DatagramPort::write(Bytes datagram, const std::string& path) { return write(datagram, UNIXAddress(path)); }

std::size_t DatagramPort::writeSequence(std::span<const Bytes> chunks, const Address& addr) {
    auto* to = std::get_if<UNIXAddress>(&addr);
    if (!to) throw InvalidAddressError(addressStr(addr), "a UNIX datagram port writes to UNIXAddress paths only");
    UnixSockAddr a;
    if (!UnixSockAddr::fromPath(to->name, a)) throw InvalidAddressError(displayPath(to->name), unusable(to->name));
    try {
        return sendChunks(a.get(), a.length, chunks, [&] { return displayPath(to->name); });
    } catch (const std::system_error& e) {
        // A path with no listener, or no socket at all, is refused alike: say which.
        if (e.code() != std::errc::connection_refused) throw;
        std::string detail = weft::detail::refusedDetail(to->name);
        if (detail.empty()) throw;
        throw std::system_error(e.code(), fmt::format("sending a datagram to {}{}", displayPath(to->name), detail));
    }
}

void DatagramPort::closed() {
    // Better than Twisted (UNIX-26): the file this port created goes with it.
    if (ownsFile_) unlinkOwned(path_, ownedDev_, ownedIno_);
    ownsFile_ = false;
    forgetLastSender();
    log::info(logPrefix(), "(UNIX datagram port {} closed)", displayPath(path_));
}

// ---- ConnectedDatagramPort --------------------------------------------------------------

ConnectedDatagramPort::ConnectedDatagramPort(Reactor& reactor, std::string path,
                                             std::shared_ptr<ConnectedDatagramProtocol> protocol,
                                             std::size_t maxPacketSize, int mode,
                                             std::optional<std::string> bindAddress)
    : DatagramSocket(reactor, std::move(protocol), maxPacketSize), path_(std::move(path)), mode_(mode),
      bindAddress_(std::move(bindAddress)) {}

std::string ConnectedDatagramPort::logPrefix() const {
    if (prefix_.empty()) prefix_ = protocolPrefix() + " (UNIX)";
    return prefix_;
}

std::string ConnectedDatagramPort::repr() const {
    std::string name = protocolClassName();
    if (fd_ >= 0) return fmt::format("<{} on '{}'>", name, displayPath(path_));
    return fmt::format("<{} (not listening)>", name);
}

void ConnectedDatagramPort::startListening() {
    checkNotStopping();
    if (fd_ >= 0) return;
    checkProtocolFree();
    UnixSockAddr peer;
    if (!UnixSockAddr::fromPath(path_, peer))
        return failed(Failure(ConnectError(unusableError(path_), displayPath(path_) + ": " + unusable(path_))));
    int s = datagramSocket();
    if (s < 0) {
        int e = errno;
        return failed(Failure(ConnectError(e, std::strerror(e))));
    }
    fd_ = s;  // from here a failure closes it through stopListening()
    if (bindAddress_) {
        const std::string& local = *bindAddress_;
        UnixSockAddr a;
        if (!UnixSockAddr::fromPath(local, a))
            return failed(Failure(ConnectBindError(unusableError(local), displayPath(local) + ": " + unusable(local))));
        if (sys::ops.bind(s, a.get(), a.length) != 0) {
            int e = errno;
            return failed(Failure(ConnectBindError(e, fmt::format("{}: {}", displayPath(local), std::strerror(e)))));
        }
        if (!UnixSockAddr::isAbstract(local)) {
            ownsFile_ = true;
            auto bound = weft::detail::boundFileAt(local);
            ownedDev_ = bound.dev;
            ownedIno_ = bound.ino;
            if (sys::ops.chmod(local.c_str(), static_cast<mode_t>(mode_)) != 0) {
                int e = errno;
                return failed(Failure(ConnectBindError(e, fmt::format("chmod {}: {}", local, std::strerror(e)))));
            }
        }
    }
    if (sys::ops.connect(s, peer.get(), peer.length) != 0) {
        int e = errno;
        std::string why = std::strerror(e);
        if (e == ECONNREFUSED) why += weft::detail::refusedDetail(path_);
        return failed(Failure(getConnectError(e, fmt::format("{}: {}", displayPath(path_), why))));
    }
    try {
        attach(s, displayPath(path_));
    } catch (...) {
        failed(Failure::current());
    }
}

void ConnectedDatagramPort::failed(const Failure& reason) {
    // UNIX-28: stop through stopListening() (the close happens on a later
    // iteration, like any other), then tell the protocol, before returning.
    if (fd_ >= 0) stopListening();
    else if (ownsFile_) {
        unlinkOwned(*bindAddress_, ownedDev_, ownedIno_);
        ownsFile_ = false;
    }
    auto protocol = std::static_pointer_cast<ConnectedDatagramProtocol>(protocol_);
    protocol->connectionFailed(reason);
}

Address ConnectedDatagramPort::getHost() const {
    if (fd_ >= 0) return UNIXAddress(boundName(fd_));
    return UNIXAddress(bindAddress_.value_or(std::string()));
}

Address ConnectedDatagramPort::getPeer() const { return UNIXAddress(path_); }

void ConnectedDatagramPort::deliver(Bytes datagram, const sockaddr*, socklen_t) {
    static_cast<ConnectedDatagramProtocol&>(*protocol_).datagramReceived(datagram);  // UNIX-29: no address
}

void ConnectedDatagramPort::checkPeer(const Address& addr) const {
    if (std::holds_alternative<NoAddress>(addr)) return;
    auto* to = std::get_if<UNIXAddress>(&addr);
    if (!to || to->name != path_)
        throw InvalidAddressError(addressStr(addr), "a connected UNIX datagram port only writes to its peer");
}

std::size_t ConnectedDatagramPort::write(Bytes datagram, const Address& addr) {
    checkPeer(addr);
    return sendChunks(nullptr, 0, std::span(&datagram, 1), [this] { return displayPath(path_); });
}

std::size_t ConnectedDatagramPort::writeSequence(std::span<const Bytes> chunks, const Address& addr) {
    checkPeer(addr);
    return sendChunks(nullptr, 0, chunks, [this] { return displayPath(path_); });
}

void ConnectedDatagramPort::closed() {
    if (ownsFile_ && bindAddress_) unlinkOwned(*bindAddress_, ownedDev_, ownedIno_);
    ownsFile_ = false;
    log::info(logPrefix(), "(UNIX datagram port to {} closed)", displayPath(path_));
}

}  // namespace weft::unix_

// ---- Reactor methods ------------------------------------------------------------------------

namespace weft {

std::shared_ptr<unix_::DatagramPort> Reactor::listenUNIXDatagram(const std::string& path,
                                                                 std::shared_ptr<DatagramProtocol> protocol,
                                                                 std::size_t maxPacketSize, int mode) {
    auto p = std::make_shared<unix_::DatagramPort>(*this, path, std::move(protocol), maxPacketSize, mode);
    p->startListening();
    return p;
}

std::shared_ptr<unix_::ConnectedDatagramPort> Reactor::connectUNIXDatagram(
    const std::string& path, std::shared_ptr<ConnectedDatagramProtocol> protocol, std::size_t maxPacketSize, int mode,
    std::optional<std::string> bindAddress) {
    auto p = std::make_shared<unix_::ConnectedDatagramPort>(*this, path, std::move(protocol), maxPacketSize, mode,
                                                            std::move(bindAddress));
    p->startListening();
    return p;
}

}  // namespace weft
