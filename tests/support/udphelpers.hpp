// Test support for datagram transports: a protocol that records every callback
// and runs optional hooks inside each, plain kernel sockets to talk to weft
// ports from outside, and small loop helpers.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <weft/internet/base.hpp>
#include <weft/internet/protocol.hpp>

namespace weft::test {

/// A DatagramProtocol that records what happened; each hook may act on the port.
class RecordingDatagram : public DatagramProtocol {
public:
    void startProtocol() override;
    void stopProtocol() override;
    void datagramReceived(Bytes datagram, const Address& addr) override;
    void connectionRefused() override;

    struct Datagram {
        std::string data;
        Address from;
    };
    std::vector<Datagram> received;
    int started = 0, stopped = 0, refused = 0;
    std::function<void(RecordingDatagram&)> onStart, onStop, onRefused;
    std::function<void(RecordingDatagram&, const Datagram&)> onDatagram;
};

/// A ConnectedDatagramProtocol that records what happened.
class RecordingConnectedDatagram : public ConnectedDatagramProtocol {
public:
    void startProtocol() override { ++started; }
    void stopProtocol() override { ++stopped; }
    void datagramReceived(Bytes datagram) override;
    void connectionRefused() override { ++refused; }
    void connectionFailed(const Failure& reason) override;

    std::vector<std::string> received;
    int started = 0, stopped = 0, refused = 0, failed = 0;
    std::optional<Failure> failReason;
    std::function<void(RecordingConnectedDatagram&, const std::string&)> onDatagram;
};

/// A blocking kernel datagram socket (closed on destruction).
struct PlainSocket {
    explicit PlainSocket(int family, int type = SOCK_DGRAM);
    ~PlainSocket();
    PlainSocket(const PlainSocket&) = delete;
    PlainSocket& operator=(const PlainSocket&) = delete;
    /// Binds to host:port (an IP literal), or a UNIX path for AF_UNIX.
    void bind(const std::string& host, std::uint16_t port = 0);
    /// The bound port.
    std::uint16_t port() const;
    /// sendto(); returns the result (-1 with errno on failure).
    long sendTo(const std::string& data, const std::string& host, std::uint16_t port);
    long sendToPath(const std::string& data, const std::string& path);
    /// Waits up to `seconds` for one datagram; nullopt on timeout.
    std::optional<std::string> receive(double seconds = 5);
    int fd = -1;
    int family;
};

/// Iterates `r` until pred() holds; false after `seconds`.
bool spinUntil(Reactor& r, const std::function<bool()>& pred, double seconds = 5);
/// Asks the port to stop and iterates until its Deferred fired.
bool stopAndWait(Reactor& r, IListeningPort& port, double seconds = 5);
/// A UDP port number on 127.0.0.1 that nothing is bound to (just released).
std::uint16_t unusedUDPPort();
/// A fresh directory under /tmp, removed (with its contents) on destruction.
struct TempDir {
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string path;
    std::string file(const std::string& name) const { return path + "/" + name; }
};

}  // namespace weft::test
