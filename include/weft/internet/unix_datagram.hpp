// weft/internet/unix_datagram.hpp — UNIX datagram sockets (twisted.internet.unix
// DatagramPort, ConnectedDatagramPort). Spec: unix.md UNIX-23..UNIX-29.
//
//   DatagramPort           a UNIX datagram socket bound to a path
//                          (Reactor::listenUNIXDatagram); addressed datagrams
//                          to and from other paths.
//   ConnectedDatagramPort  a UNIX datagram socket connected to one peer path
//                          (Reactor::connectUNIXDatagram), optionally bound.
//
// Both are DatagramSocket: the receive loop, the send path, the stop life
// cycle and the ownership rules are UDP's (udp.hpp). Paths are byte strings; a
// first byte of NUL names Linux's abstract namespace (no file, no mode, nothing
// to remove). A socket file weft created is removed when the port closes
// (UNIX-26, Better than Twisted); a file weft did not create is never touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <weft/export.hpp>
#include <weft/internet/datagram.hpp>
#include <weft/internet/error.hpp>

namespace weft::unix_ {

/// A bound UNIX datagram socket (Twisted unix.DatagramPort; UNIX-23..UNIX-27).
class WEFT_EXPORT DatagramPort final : public DatagramSocket {
public:
    /// The socket is made by startListening(). Throws std::invalid_argument
    /// for a null protocol.
    DatagramPort(Reactor& reactor, std::string path, std::shared_ptr<DatagramProtocol> protocol,
                 std::size_t maxPacketSize = 8192, int mode = 0666);

    /// Binds `path`, sets its mode to exactly `mode` (filesystem paths), attaches
    /// the protocol and starts reading (UNIX-23). Throws error::CannotListenError
    /// when the path exists (whatever it is: it is left untouched), is too long
    /// for sockaddr_un (the message says so) or cannot be bound.
    void startListening() override;
    /// UNIXAddress(the bound path) (UNIX-27).
    Address getHost() const override;

    using IDatagramTransport::write;
    using IDatagramTransport::writeSequence;
    /// Sends one datagram to a UNIXAddress (UNIX-25); any other address throws
    /// error::InvalidAddressError, as does a path too long for sockaddr_un.
    std::size_t write(Bytes datagram, const Address& addr) override;
    /// write(datagram, UNIXAddress(path)).
    std::size_t write(Bytes datagram, const std::string& path);
    std::size_t writeSequence(std::span<const Bytes> chunks, const Address& addr) override;

    /// "<protocol logPrefix> (UNIX)"; datagramReceived runs in this context.
    std::string logPrefix() const override;
    /// "<QualifiedProtocolClass on '<path>'>" while open, "<QualifiedProtocolClass
    /// (not listening)>" after (UNIX-27).
    std::string repr() const;
    const std::string& path() const noexcept { return path_; }

private:
    void deliver(Bytes datagram, const sockaddr* from, socklen_t fromLength) override;
    bool connectedToPeer() const noexcept override { return false; }
    void closed() override;

    std::string path_;
    int mode_;
    bool ownsFile_ = false;                      // we bound a filesystem path: remove it at the close
    std::uint64_t ownedDev_ = 0, ownedIno_ = 0;  // that file (lstat), so another socket's is left alone
    mutable std::string prefix_;
    void forgetLastSender();   // the next unbound sender is UNIXAddress("")
    std::string lastFromRaw_;  // the last sender's sockaddr bytes, and its Address
    Address lastFromAddress_;
};

/// A UNIX datagram socket connected to one peer (Twisted
/// unix.ConnectedDatagramPort; UNIX-28, UNIX-29).
class WEFT_EXPORT ConnectedDatagramPort final : public DatagramSocket {
public:
    ConnectedDatagramPort(Reactor& reactor, std::string path, std::shared_ptr<ConnectedDatagramProtocol> protocol,
                          std::size_t maxPacketSize = 8192, int mode = 0666,
                          std::optional<std::string> bindAddress = std::nullopt);

    /// Binds to the bind address (if any; its file gets `mode`), connects to
    /// the peer, attaches the protocol and starts reading (UNIX-28). A failure
    /// is not thrown: the port stops (stopListening) and
    /// protocol->connectionFailed(reason) runs before this returns, with a
    /// ConnectError kind (ConnectBindError for the bind,
    /// ConnectionRefusedError when nobody is bound at the path). Throws only
    /// std::logic_error when the protocol is attached to another transport.
    void startListening() override;
    /// UNIXAddress(our bound path), empty when unbound.
    Address getHost() const override;
    /// UNIXAddress(the peer's path) (UNIX-29).
    Address getPeer() const;

    using IDatagramTransport::write;
    using IDatagramTransport::writeSequence;
    /// Sends to the peer (UNIX-29); `addr` must be NoAddress or the peer's
    /// UNIXAddress (error::InvalidAddressError otherwise).
    std::size_t write(Bytes datagram, const Address& addr) override;
    std::size_t writeSequence(std::span<const Bytes> chunks, const Address& addr) override;

    /// "<protocol logPrefix> (UNIX)".
    std::string logPrefix() const override;
    /// "<QualifiedProtocolClass on '<peer path>'>" / "… (not listening)>".
    std::string repr() const;

private:
    void deliver(Bytes datagram, const sockaddr* from, socklen_t fromLength) override;
    bool connectedToPeer() const noexcept override { return true; }
    void closed() override;
    void failed(const Failure& reason);
    void checkPeer(const Address& addr) const;

    std::string path_;
    int mode_;
    std::optional<std::string> bindAddress_;
    bool ownsFile_ = false;
    std::uint64_t ownedDev_ = 0, ownedIno_ = 0;
    mutable std::string prefix_;
};

}  // namespace weft::unix_
