// Test support: FdTransport, the smallest concrete weft::FileDescriptor — one
// end of a socketpair (or any stream fd), read and written through the syscall
// seam so tests/support/faults.hpp can script its system calls.
//
//  * doRead: one read() of at most bufferSize bytes (FD-21); data is appended to
//    `received` and handed to onData; EOF → ConnectionDone, a read error →
//    ConnectionLost(errno); EAGAIN → nothing.
//  * writeSomeData = FileDescriptor::writeToFD (one writev, EINTR retried).
//  * closeWriteConnection = shutdown(SHUT_WR), then onWriteLost (the protocol's
//    IHalfCloseableProtocol::writeConnectionLost).
//  * readConnectionLost: with `halfCloseable` set, counts and calls onReadLost
//    (the protocol's readConnectionLost); otherwise connectionLost(reason).
//  * connectionLost: once; runs the base behaviour, closes the fd, records the
//    reason, then lets go of every hook (as a transport drops its protocol,
//    FD-40) and calls onLost from a local copy — so a hook may drop the last
//    reference to the transport, or capture it, without a leak or a dangling call.
//  * abortConnection: like TCP's — stop I/O now, connectionLost(ConnectionAborted)
//    from the reactor on the next iteration; doRead/doWrite become no-ops.
//  * getHost/getPeer are cached at construction and answer after the close (FD-41).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <weft/internet/abstract.hpp>
#include <weft/internet/error.hpp>

namespace weft::test {

class FdTransport : public FileDescriptor {
public:
    /// Takes ownership of fd (closed in connectionLost, or in the destructor if
    /// the transport never lost its connection). The transport starts connected
    /// but not reading; call startReading().
    static std::shared_ptr<FdTransport> create(Reactor& reactor, int fd, bool connected = true);

    FdTransport(Reactor& reactor, int fd);
    ~FdTransport() override;

    int fileno() const override { return fd_; }
    std::string logPrefix() const override { return prefix; }
    Reason doRead() override;
    Reason doWrite() override;
    void connectionLost(const Failure& reason) override;
    void readConnectionLost(const Failure& reason) override;
    Address getPeer() const override { return peer_; }
    Address getHost() const override { return host_; }

    /// TCP-style abort (see the file comment). Twice is fine.
    void abortConnection();
    /// Marks the transport connected (FileDescriptor::setConnected).
    void connect() { setConnected(); }
    bool aborting() const noexcept { return aborting_; }

    // What happened.
    std::string received;
    int reads = 0;  ///< doRead calls that delivered data
    int lost = 0, readLost = 0, writeLost = 0;
    std::optional<Failure> lostReason;
    bool halfCloseable = false;
    std::string prefix = "FdTransport";

    // Hooks (the "protocol"). Each may call anything on the transport.
    std::function<void(std::string_view)> onData;
    std::function<void(const Failure&)> onLost;
    std::function<void()> onReadLost, onWriteLost;

protected:
    WriteResult writeSomeData(std::span<const iovec> data) override;
    Reason closeWriteConnection() override;

private:
    int fd_;
    bool aborting_ = false;
    Address host_, peer_;
    std::string buffer_;
};

}  // namespace weft::test
