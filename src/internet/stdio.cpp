// Standard I/O as a transport (weft/internet/stdio.hpp; spec: stdio.md).
#include <weft/internet/stdio.hpp>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <weft/internet/base.hpp>
#include <weft/internet/error.hpp>
#include <weft/log.hpp>

#include "internet/detail/readchunk.hpp"
#include "sys/syscalls.hpp"

namespace weft::stdio {

namespace {

// Original file-status flags of the descriptors a running StandardIO made
// non-blocking; put back at connectionLost, or at exit() for those still
// running (STDIO-20).
struct SavedFlags {
    std::mutex mu;
    std::vector<std::pair<int, int>> entries;  // fd, flags
    bool armed = false;
};
SavedFlags& savedFlags() {
    static SavedFlags* s = new SavedFlags;  // never destroyed: the atexit handler may run late
    return *s;
}
void restoreAllAtExit() {
    auto& s = savedFlags();
    std::lock_guard lk(s.mu);
    for (auto& [fd, flags] : s.entries) sys::ops.fcntl(fd, F_SETFL, flags);
    s.entries.clear();
}

// Makes fd non-blocking and remembers how it was.
void makeNonBlocking(int fd) {
    int flags = sys::ops.fcntl(fd, F_GETFL, 0);
    if (flags < 0)
        throw std::system_error(errno, std::generic_category(), fmt::format("StandardIO: descriptor {}", fd));
    if (flags & O_NONBLOCK) return;  // nothing to restore
    if (sys::ops.fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        throw std::system_error(errno, std::generic_category(), fmt::format("StandardIO: O_NONBLOCK on {}", fd));
    auto& s = savedFlags();
    std::lock_guard lk(s.mu);
    if (!s.armed) {
        std::atexit(restoreAllAtExit);
        s.armed = true;
    }
    s.entries.emplace_back(fd, flags);
}

void restoreFlags(int fd) {
    auto& s = savedFlags();
    std::lock_guard lk(s.mu);
    auto it = std::find_if(s.entries.begin(), s.entries.end(), [fd](const auto& e) { return e.first == fd; });
    if (it == s.entries.end()) return;
    sys::ops.fcntl(fd, F_SETFL, it->second);
    s.entries.erase(it);
}

bool isKind(int fd, mode_t kind) {
    struct stat st {};
    std::string path = fmt::format("/proc/self/fd/{}", fd);
    return sys::ops.stat(path.c_str(), &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

bool isTerminal(int fd) {
    termios t{};
    return sys::ops.ioctl(fd, TCGETS, &t) == 0;
}

Failure brokenPipe() { return Failure(error::ConnectionLost(std::error_code(EPIPE, std::generic_category()))); }

}  // namespace

namespace detail {

// stdin: read until its end; never closed here.
class StdinReader final : public FileDescriptor {
public:
    StdinReader(Reactor& reactor, std::shared_ptr<StandardIO> owner, int fd)
        : FileDescriptor(reactor), owner_(std::move(owner)), fd_(fd) {
        setConnected();
        discardOutput();  // nothing is written to stdin
    }
    int fileno() const override { return fd_; }
    std::string logPrefix() const override { return "StandardIO"; }
    Address getPeer() const override { return PipeAddress{}; }
    Address getHost() const override { return PipeAddress{}; }

    Reason doRead() override {
        return weft::detail::readChunk(fd_, bufferSize, weft::detail::EioMeans::error, [this](Bytes data) {
            if (owner_) owner_->dataReceived(data);
        });
    }

    void connectionLost(const Failure& reason) override {
        if (disconnected()) return;
        FileDescriptor::connectionLost(reason);
        int fd = std::exchange(fd_, -1);
        if (auto owner = std::move(owner_)) {
            owner->descriptorEnded(true, fd);  // puts the flags back, unless stdout still uses them
            owner->readLost(reason);
        } else {
            restoreFlags(fd);
        }
    }

protected:
    WriteResult writeSomeData(std::span<const iovec>) override { return std::size_t{0}; }

private:
    std::shared_ptr<StandardIO> owner_;  // until connectionLost
    int fd_;
};

// stdout: written to; for a pipe also watched for its reader going away (a
// pipe's write end polls readable only then; STDIO-11).
class StdoutWriter final : public FileDescriptor {
public:
    StdoutWriter(Reactor& reactor, std::shared_ptr<StandardIO> owner, int fd, bool ownFd)
        : FileDescriptor(reactor), owner_(std::move(owner)), fd_(fd), ownFd_(ownFd) {
        setConnected();
    }
    ~StdoutWriter() override {
        if (ownFd_ && fd_ >= 0) sys::ops.close(fd_);
    }
    int fileno() const override { return fd_; }
    std::string logPrefix() const override { return "StandardIO"; }
    Address getPeer() const override { return PipeAddress{}; }
    Address getHost() const override { return PipeAddress{}; }
    Failure errorReason() const override { return brokenPipe(); }

    Reason doRead() override { return brokenPipe(); }
    void readConnectionLost(const Failure&) override { connectionLost(brokenPipe()); }

    void connectionLost(const Failure& reason) override {
        if (disconnected()) return;
        FileDescriptor::connectionLost(reason);
        int fd = std::exchange(fd_, -1);
        // One socket for stdin and stdout (inetd's way): its reader sees EOF now
        // (STDIO-7), though the socket stays open through stdin. Only then: a
        // socket stdout shares with others (stderr, under systemd) keeps its
        // write side, and /dev/null takes stdout's number below.
        if (owner_ && owner_->sharesDescription() && isKind(fd, S_IFSOCK)) sys::ops.shutdown(fd, SHUT_WR);
        if (owner_) owner_->descriptorEnded(false, fd);  // flags shared with stdin: back once both ended
        if (ownFd_) sys::ops.close(fd);
        else restoreFlags(fd);
        if (!ownFd_ && reason.check<error::ConnectionDone>()) {
            // An orderly close (loseConnection, loseWriteConnection): /dev/null
            // takes stdout's place, so its reader sees EOF now and the number
            // stays taken (STDIO-7, Better than Twisted). Not when the reactor
            // ends or the write failed: the program still has its stdout after
            // run() returns, as under Twisted.
            int null = sys::ops.open("/dev/null", O_WRONLY | O_CLOEXEC, 0);
            if (null >= 0) {
                sys::ops.dup3(null, fd, 0);
                sys::ops.close(null);
            }
        }
        if (auto owner = std::move(owner_)) owner->writeLost(reason);
    }

protected:
    WriteResult writeSomeData(std::span<const iovec> data) override { return writeToFD(fd_, data); }

private:
    std::shared_ptr<StandardIO> owner_;  // until connectionLost
    int fd_;
    bool ownFd_;
};

}  // namespace detail

StandardIO::StandardIO(Token, Reactor& reactor, std::shared_ptr<Protocol> protocol)
    : reactor_(reactor), protocol_(std::move(protocol)) {}

StandardIO::~StandardIO() = default;

std::shared_ptr<StandardIO> StandardIO::create(Reactor& reactor, std::shared_ptr<Protocol> protocol, int stdinFd,
                                               int stdoutFd) {
    if (!protocol) throw std::invalid_argument("StandardIO: null protocol");
    auto io = std::make_shared<StandardIO>(Token{}, reactor, std::move(protocol));
    // One descriptor for both directions (a socket, a terminal): the writer
    // gets a copy, since the reactor serves one descriptor per number.
    bool sameFd = stdinFd == stdoutFd;
    int outFd = stdoutFd;
    if (sameFd) {
        outFd = sys::ops.fcntl(stdoutFd, F_DUPFD_CLOEXEC, 0);
        if (outFd < 0) throw std::system_error(errno, std::generic_category(), "StandardIO: dup");
    }
    bool shared = sameFd;
    try {
        const int outBefore = sameFd ? -1 : sys::ops.fcntl(outFd, F_GETFL, 0);
        makeNonBlocking(stdinFd);
        // One file description behind two numbers (fds 0 and 1 copies of one
        // socket or terminal): stdin's change shows on stdout.
        if (!sameFd && outBefore >= 0 && !(outBefore & O_NONBLOCK) && (sys::ops.fcntl(outFd, F_GETFL, 0) & O_NONBLOCK))
            shared = true;
        if (!sameFd) makeNonBlocking(outFd);
    } catch (...) {
        restoreFlags(stdinFd);
        if (sameFd) sys::ops.close(outFd);
        throw;
    }
    if (shared) io->sharedFd_ = stdinFd;
    io->reader_ = std::make_shared<detail::StdinReader>(reactor, io, stdinFd);
    io->writer_ = std::make_shared<detail::StdoutWriter>(reactor, io, outFd, sameFd);
    io->reader_->startReading();
    if (!sameFd && isKind(outFd, S_IFIFO)) {
        io->writer_->startReading();  // STDIO-11, STDIO-16
    } else if (!sameFd && isTerminal(outFd)) {
        // STDIO-19: a terminal polls readable whenever input waits, so it is
        // not watched for reading; registered and paused at once, the reactor
        // keeps watching it for a hang-up (R-38; epoll and poll report one
        // without interest, select cannot).
        reactor.addReader(io->writer_);
        reactor.removeReader(io->writer_.get());
    }
    // As a TCP server's (TCP-16): an error from connectionMade is logged and
    // the connection stays as the protocol left it, registered and closable;
    // it does not leave create() with descriptors registered behind a
    // StandardIO nobody holds.
    try {
        io->protocol_->makeConnection(io);
    } catch (...) {
        log::failure("StandardIO", "Unhandled error in connectionMade", Failure::current());
    }
    return io;
}

void StandardIO::write(Bytes data) {
    if (writer_ && !writeDone_) writer_->write(data);
}

void StandardIO::writeSequence(std::span<const Bytes> chunks) {
    if (writer_ && !writeDone_) writer_->writeSequence(chunks);
}

void StandardIO::loseConnection() { close(false); }

void StandardIO::loseConnectionDespiteProducer() {
    if (state_ == State::disconnecting && writer_ && !writeDone_) writer_->loseConnectionDespiteProducer();
    else close(true);
}

void StandardIO::close(bool despiteProducer) {
    if (state_ != State::connected) return;
    state_ = State::disconnecting;
    if (reader_ && !readDone_) reader_->stopReading();  // stdin stays open (STDIO-7)
    if (writer_ && !writeDone_) {
        // writeLost(ConnectionDone) once flushed
        if (despiteProducer) writer_->loseConnectionDespiteProducer();
        else writer_->loseConnection();
        return;
    }
    reactor_.callLater(0, [self = shared_from_this()] { self->connectionLost(error::connectionDone()); });
}

void StandardIO::loseWriteConnection() {
    if (state_ == State::connected && writer_ && !writeDone_) writer_->loseConnection();
}

void StandardIO::registerProducer(std::shared_ptr<IProducer> producer, bool streaming) {
    if (!writer_ || writeDone_) {
        if (producer) producer->stopProducing();  // STDIO-6
        return;
    }
    writer_->registerProducer(std::move(producer), streaming);
}

void StandardIO::unregisterProducer() {
    if (writer_) writer_->unregisterProducer();
}

void StandardIO::pauseProducing() {
    if (reader_ && !readDone_) reader_->pauseProducing();
}

void StandardIO::resumeProducing() {
    if (reader_ && !readDone_ && state_ == State::connected) reader_->resumeProducing();
}

void StandardIO::dataReceived(Bytes data) {
    if (state_ != State::connected) return;
    if (auto p = protocol_) p->dataReceived(data);
}

void StandardIO::readLost(const Failure& reason) {
    readDone_ = true;
    if (state_ == State::disconnected) return;
    if (!reason.check<error::ConnectionDone>()) {
        connectionLost(reason);  // a read error (STDIO-9)
        return;
    }
    if (state_ == State::disconnecting) return;  // loseConnection stopped reading; the writer finishes
    halfClosed(true);
}

void StandardIO::writeLost(const Failure& reason) {
    writeDone_ = true;
    if (!reason.check<error::ConnectionDone>()) writeFailure_ = reason;
    if (state_ == State::disconnected) return;
    if (state_ == State::disconnecting) {
        // Flushed: ConnectionDone (STDIO-7). A flush that failed (the reader of stdout
        // left with bytes unsent) says so, as Twisted's _writeConnectionLost passes it on.
        connectionLost(reason.check<error::ConnectionDone>() ? error::connectionDone() : reason);
        return;
    }
    if (!reason.check<error::ConnectionDone>()) {
        // The reader of stdout went away (a failed write, an error on the pipe:
        // the reason carries its errno). A half-closeable protocol hears of its
        // write side alone and keeps reading (STDIO-11); any other ends, like a
        // failed send on TCP (STDIO-12, Better than Twisted). A loss without an
        // errno is not the pipe's: the reactor's shutdown ended the writer,
        // and the whole connection ends with that reason, as a TCP one does.
        const auto* lost = reason.get<error::ConnectionLost>();
        bool pipeFailed = !lost || lost->code();
        if (!pipeFailed || !dynamic_cast<IHalfCloseableProtocol*>(protocol_.get())) {
            connectionLost(reason);
            return;
        }
    }
    halfClosed(false);
}

void StandardIO::descriptorEnded(bool reader, int fd) {
    if (sharedFd_ < 0) {
        if (reader) restoreFlags(fd);  // the writer puts its own back (before /dev/null takes its place)
        return;
    }
    // Each calls this from its connectionLost, once it counts as disconnected.
    if (reader_->disconnected() && writer_->disconnected()) restoreFlags(std::exchange(sharedFd_, -1));
}

void StandardIO::halfClosed(bool readSide) {
    auto keep = shared_from_this();
    auto* hc = dynamic_cast<IHalfCloseableProtocol*>(protocol_.get());
    if (!hc) {
        if (readSide) {
            // End of stdin with a plain protocol: flush what is queued, then
            // ConnectionDone (STDIO-9, Better than Twisted), whatever producer is registered.
            loseConnectionDespiteProducer();
        } else if (readDone_) {
            connectionLost(error::connectionDone());
        }
        return;
    }
    try {
        if (readSide) hc->readConnectionLost();  // STDIO-10
        else hc->writeConnectionLost();          // STDIO-11, STDIO-14
    } catch (...) {
        Failure f = Failure::current();
        log::failure("StandardIO",
                     readSide ? "Unhandled error in readConnectionLost" : "Unhandled error in writeConnectionLost", f);
        connectionLost(f);
        return;
    }
    if (readDone_ && writeDone_) connectionLost(error::connectionDone());  // STDIO-13
}

void StandardIO::connectionLost(const Failure& reason) {
    if (state_ == State::disconnected) return;
    state_ = State::disconnected;
    auto keep = shared_from_this();
    if (reader_ && !reader_->disconnected()) reader_->connectionLost(reason);
    if (writer_ && !writer_->disconnected()) writer_->connectionLost(reason);
    auto p = std::move(protocol_);  // STDIO-15: nothing reaches it afterwards
    if (!p) return;
    try {
        p->connectionLost(reason);
    } catch (...) {
        log::failure("StandardIO", "Unhandled error in connectionLost", Failure::current());
    }
}

Deferred<void> StandardIOPort::stopListening() {
    io_->loseConnection();
    return succeed();
}

Deferred<std::shared_ptr<IListeningPort>> StandardIOEndpoint::listen(std::shared_ptr<Factory> factory) {
    try {
        auto protocol = factory->buildProtocol(PipeAddress{});
        if (!protocol) throw std::runtime_error("stdio: the factory built no protocol");
        auto io = StandardIO::create(reactor_, std::move(protocol), stdinFd_, stdoutFd_);
        return succeed(std::static_pointer_cast<IListeningPort>(std::make_shared<StandardIOPort>(std::move(io))));
    } catch (...) {
        return fail<std::shared_ptr<IListeningPort>>(Failure::current());
    }
}

}  // namespace weft::stdio
