// The reactor interfaces' hooks on weft::Reactor (interfaces.hpp): each calls
// the concrete method of the same name, whose smart pointer converts to the
// interface's. Kept apart from tcp.cpp, unix.cpp and udp.cpp, which define
// those methods.
#include <weft/internet/base.hpp>

#include <stdexcept>
#include <string>

#include <weft/internet/protocol.hpp>
#include <weft/internet/tcp.hpp>
#include <weft/internet/udp.hpp>
#include <weft/internet/unix.hpp>
#include <weft/internet/unix_datagram.hpp>

namespace weft {

void ReactorRef::missing(const std::type_info& interface) {
    throw std::invalid_argument("the reactor does not provide " + className(interface));
}

std::shared_ptr<IListeningPort> Reactor::doListenTCP(std::uint16_t port, std::shared_ptr<Factory> factory, int backlog,
                                                     const std::string& interface) {
    return listenTCP(port, std::move(factory), backlog, interface);
}

std::shared_ptr<IConnector> Reactor::doConnectTCP(const std::string& host, std::uint16_t port,
                                                  std::shared_ptr<ClientFactory> factory, double timeout,
                                                  std::optional<BindAddress> bindAddress) {
    return connectTCP(host, port, std::move(factory), timeout, std::move(bindAddress));
}

std::shared_ptr<IListeningPort> Reactor::doListenUNIX(const std::string& address, std::shared_ptr<Factory> factory,
                                                      int backlog, int mode, bool wantPID) {
    return listenUNIX(address, std::move(factory), backlog, mode, wantPID);
}

std::shared_ptr<IConnector> Reactor::doConnectUNIX(const std::string& address, std::shared_ptr<ClientFactory> factory,
                                                   double timeout, bool checkPID) {
    return connectUNIX(address, std::move(factory), timeout, checkPID);
}

std::shared_ptr<IListeningPort> Reactor::doListenUNIXDatagram(const std::string& address,
                                                              std::shared_ptr<DatagramProtocol> protocol,
                                                              std::size_t maxPacketSize, int mode) {
    return listenUNIXDatagram(address, std::move(protocol), maxPacketSize, mode);
}

std::shared_ptr<IListeningPort> Reactor::doConnectUNIXDatagram(const std::string& address,
                                                               std::shared_ptr<ConnectedDatagramProtocol> protocol,
                                                               std::size_t maxPacketSize, int mode,
                                                               std::optional<std::string> bindAddress) {
    return connectUNIXDatagram(address, std::move(protocol), maxPacketSize, mode, std::move(bindAddress));
}

std::shared_ptr<IListeningPort> Reactor::doListenUDP(std::uint16_t port, std::shared_ptr<DatagramProtocol> protocol,
                                                     const std::string& interface, std::size_t maxPacketSize) {
    return listenUDP(port, std::move(protocol), interface, maxPacketSize);
}

std::shared_ptr<IListeningPort> Reactor::doListenMulticast(std::uint16_t port,
                                                           std::shared_ptr<DatagramProtocol> protocol,
                                                           const std::string& interface, std::size_t maxPacketSize,
                                                           bool listenMultiple) {
    return listenMulticast(port, std::move(protocol), interface, maxPacketSize, listenMultiple);
}

std::shared_ptr<IListeningPort> Reactor::doAdoptStreamPort(int fd, int addressFamily,
                                                           std::shared_ptr<Factory> factory) {
    return adoptStreamPort(fd, addressFamily, std::move(factory));
}

void Reactor::doAdoptStreamConnection(int fd, int addressFamily, std::shared_ptr<Factory> factory) {
    adoptStreamConnection(fd, addressFamily, std::move(factory));
}

std::shared_ptr<IListeningPort> Reactor::doAdoptDatagramPort(int fd, int addressFamily,
                                                             std::shared_ptr<DatagramProtocol> protocol,
                                                             std::size_t maxPacketSize) {
    return adoptDatagramPort(fd, addressFamily, std::move(protocol), maxPacketSize);
}

}  // namespace weft
