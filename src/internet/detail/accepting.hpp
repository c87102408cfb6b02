// Internal: the hand-over of an accepted (or adopted) socket to a factory,
// shared by the stream ports and the Reactor's adoptStreamConnection.
#pragma once

#include <memory>

#include <weft/internet/address.hpp>
#include <weft/internet/protocol.hpp>

#include "sys/syscalls.hpp"

namespace weft::detail {

/// factory.buildProtocol(peer) for a socket `fd` that nothing owns yet: when
/// it throws, or returns no protocol (TCP-12, TCP-51), `fd` is closed first.
inline std::shared_ptr<Protocol> buildProtocolOrClose(Factory& factory, const Address& peer, int fd) {
    std::shared_ptr<Protocol> protocol;
    try {
        protocol = factory.buildProtocol(peer);
    } catch (...) {
        sys::ops.close(fd);
        throw;
    }
    if (!protocol) sys::ops.close(fd);
    return protocol;
}

}  // namespace weft::detail
