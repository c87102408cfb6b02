// Internal: the member functions of ConnectingTransport<Connection>
// (weft/internet/stream.hpp). A transport's source includes this and
// instantiates the template for its connection class:
//   template class weft::ConnectingTransport<weft::tcp::Connection>;
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <typeinfo>

#include <weft/internet/error.hpp>
#include <weft/internet/stream.hpp>
#include <weft/log.hpp>

#include "internet/detail/sysutil.hpp"
#include "sys/syscalls.hpp"

namespace weft {

template <class Connection>
std::string ConnectingTransport<Connection>::logPrefix() const {
    const Protocol* protocol = this->protocolForLog();
    if (phase_ != Phase::done || !protocol) return prefix_.empty() ? std::string("Uninitialized") : prefix_;
    if (prefix_.empty()) prefix_ = FileDescriptor::getLogPrefix(*protocol) + ",client";
    return prefix_;
}

template <class Connection>
std::string ConnectingTransport<Connection>::repr() const {
    Address destination = connector_ ? connector_->getDestination() : connectedPeer();
    const auto& self = *this;
    return "<" + demangle(typeid(self).name()) + " to " + addressStr(destination) + " at " + weft::detail::hexId(this) +
           ">";
}

template <class Connection>
void ConnectingTransport<Connection>::scheduleAttempt(double delay) {
    auto self = std::static_pointer_cast<ConnectingTransport>(this->shared_from_this());
    this->reactor().callLater(delay, [self] {
        if (self->phase_ == Phase::waiting && self->connector_) self->attempt();
    });
}

template <class Connection>
void ConnectingTransport<Connection>::connectTo(const sockaddr* address, socklen_t length) {
    phase_ = Phase::connecting;
    int rc = sys::ops.connect(this->fd_, address, length);
    if (rc == 0 || errno == EISCONN) {
        connectDone();
        return;
    }
    int e = errno;
    if (e == EINPROGRESS || e == EINTR || e == EALREADY) {
        // TCP-40: wait for real writability (not addWriterSoon), then read SO_ERROR.
        this->reactor().addWriter(this->shared_from_this());
        return;
    }
    attemptFailed(e);
}

template <class Connection>
Reason ConnectingTransport<Connection>::finishConnect() {
    int err = 0;
    socklen_t len = sizeof err;
    if (sys::ops.getsockopt(this->fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) {
        // No error yet is not success: the handshake may still be running.
        sockaddr_storage peer;
        socklen_t peerLength = sizeof peer;
        if (sys::ops.getpeername(this->fd_, reinterpret_cast<sockaddr*>(&peer), &peerLength) != 0) return std::nullopt;
    }
    if (err == 0 || err == EISCONN) {
        this->stopWriting();
        connectDone();
        return std::nullopt;
    }
    if (err == EINPROGRESS || err == EALREADY || err == EINTR) return std::nullopt;
    this->stopWriting();
    attemptFailed(err);
    return std::nullopt;
}

template <class Connection>
Reason ConnectingTransport<Connection>::doRead() {
    if (phase_ == Phase::connecting) return finishConnect();
    return Connection::doRead();
}

template <class Connection>
Reason ConnectingTransport<Connection>::doWrite() {
    if (phase_ == Phase::connecting) return finishConnect();
    return Connection::doWrite();
}

template <class Connection>
void ConnectingTransport<Connection>::connectDone() {
    phase_ = Phase::done;
    auto connector = connector_;
    connector->cancelTimeout();
    connector->state_ = BaseConnector::State::connected;
    std::shared_ptr<Protocol> protocol;
    try {
        protocol = connector->factory_->buildProtocol(connectedPeer());  // TCP-41
    } catch (...) {
        Failure f = Failure::current();
        log::failure(logPrefix(), "Unhandled error in buildProtocol", f);
        phase_ = Phase::connecting;
        connector->state_ = BaseConnector::State::connecting;
        failIfNotConnected(f);
        return;
    }
    bool placeholder = !protocol;
    if (placeholder) protocol = std::make_shared<Protocol>();  // TCP-42 absorbs the callbacks
    this->startProtocol(std::move(protocol));
    if (placeholder) this->loseConnection();
}

template <class Connection>
void ConnectingTransport<Connection>::failIfNotConnected(const Failure& reason) {
    if (phase_ == Phase::done || this->disconnected()) return;
    phase_ = Phase::done;
    this->stopReading();
    this->stopWriting();
    this->dropDescriptor();
    FileDescriptor::connectionLost(reason);
    if (auto c = std::move(connector_)) c->connectionFailed(reason);
}

template <class Connection>
void ConnectingTransport<Connection>::connectionLost(const Failure& reason) {
    if (phase_ != Phase::done) {
        if (phase_ == Phase::connecting && this->fd_ >= 0) {
            // The kernel failed this attempt (an error or hang-up event).
            auto* lost = reason.get<error::ConnectionLost>();
            if (lost && lost->code().value() != 0) {
                this->stopWriting();
                attemptFailed(lost->code().value());
                return;
            }
        }
        // Lost before it connected (reactor shutdown, say): a failed attempt (TCP-49).
        failIfNotConnected(Failure(error::ConnectError(0, reason.getErrorMessage())));
        return;
    }
    if (this->disconnected()) return;
    auto connector = std::move(connector_);
    try {
        Connection::connectionLost(reason);
    } catch (...) {
        // Both may throw: the protocol's error is logged here, before the
        // factory's can take its place on the way out.
        log::failure(FileDescriptor::getLogPrefix(*this), "Unhandled error in connectionLost", Failure::current());
        if (connector) connector->connectionLost(reason);
        return;
    }
    if (connector) connector->connectionLost(reason);  // TCP-45: after the protocol's
}

}  // namespace weft
