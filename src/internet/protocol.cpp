#include <weft/internet/protocol.hpp>

#include <fmt/format.h>

#include <stdexcept>

#include <weft/log.hpp>

namespace weft {

std::string className(const std::type_info& type) {
    std::string name = demangle(type.name());
    // Cut the namespace qualifiers outside any template argument list, so
    // "a::B<c::D>" becomes "B<c::D>".
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        if (c == '<' || c == '(') ++depth;
        else if (c == '>' || c == ')') --depth;
        else if (depth == 0 && c == ':' && i + 1 < name.size() && name[i + 1] == ':') {
            start = i + 2;
            ++i;
        }
    }
    return name.substr(start);
}

void BaseProtocol::makeConnection(std::shared_ptr<ITransport> t) {
    connected = true;
    transport = std::move(t);
    connectionMade();
}

void Protocol::dataReceived(Bytes) {}

void Protocol::connectionLost(const Failure&) {}

std::string BaseProtocol::logPrefix() const { return className(typeid(*this)); }
std::string Protocol::logPrefix() const { return BaseProtocol::logPrefix(); }

std::shared_ptr<Protocol> Factory::buildProtocol(const Address&) {
    if (!protocol) throw std::logic_error(fmt::format("{}.protocol is not set", logPrefix()));
    auto self = weak_from_this().lock();
    if (!self)
        throw std::logic_error(
            fmt::format("{} must be owned by a std::shared_ptr (use std::make_shared or forProtocol)", logPrefix()));
    auto p = protocol();
    if (p) p->factory = std::move(self);
    return p;
}

void Factory::doStart() {
    if (numPorts == 0) {
        if (noisy) log::info(logPrefix(), "Starting factory {}", repr());
        startFactory();
    }
    ++numPorts;
}

void Factory::doStop() {
    if (numPorts == 0) return;  // Twisted: "this shouldn't happen, but does sometimes"
    --numPorts;
    if (numPorts == 0) {
        if (noisy) log::info(logPrefix(), "Stopping factory {}", repr());
        stopFactory();
    }
}

std::string Factory::logPrefix() const { return className(typeid(*this)); }

std::string Factory::repr() const {
    return fmt::format("<{} object at {}>", demangle(typeid(*this).name()), static_cast<const void*>(this));
}

void AbstractDatagramProtocol::makeConnection(std::shared_ptr<IDatagramTransport> t) {
    if (!t) throw std::logic_error(fmt::format("{}.makeConnection: null transport", logPrefix()));
    if (transport)  // DGRAM-1: Twisted asserts; one port at a time
        throw std::logic_error(fmt::format("{} is already attached to a transport", logPrefix()));
    transport = std::move(t);
    doStart();
}

void AbstractDatagramProtocol::doStart() {
    if (numPorts == 0) {
        if (noisy) log::info(logPrefix(), "Starting protocol {}", repr());
        startProtocol();
    }
    ++numPorts;
}

void AbstractDatagramProtocol::doStop() {
    if (numPorts <= 0) throw std::logic_error(fmt::format("{}.doStop() without a matching doStart()", logPrefix()));
    --numPorts;
    transport.reset();
    if (numPorts == 0) {
        if (noisy) log::info(logPrefix(), "Stopping protocol {}", repr());
        stopProtocol();
    }
}

std::string AbstractDatagramProtocol::logPrefix() const { return className(typeid(*this)); }

std::string AbstractDatagramProtocol::repr() const {
    return fmt::format("<{} object at {}>", demangle(typeid(*this).name()), static_cast<const void*>(this));
}

void DatagramProtocol::datagramReceived(Bytes, const Address&) {}

void ConnectedDatagramProtocol::datagramReceived(Bytes) {}
void ConnectedDatagramProtocol::connectionFailed(const Failure&) {}

void ClientFactory::startedConnecting(const std::shared_ptr<IConnector>&) {}
void ClientFactory::clientConnectionFailed(const std::shared_ptr<IConnector>&, const Failure&) {}
void ClientFactory::clientConnectionLost(const std::shared_ptr<IConnector>&, const Failure&) {}

}  // namespace weft
