// weft/internet/abort.hpp — end a transport at once, whatever its kind.
//
// ITransport has no abortConnection() (Twisted's has none either): TCP and TLS
// transports offer it through ITCPTransport, every other stream transport (a
// UNIX connection, a pipe end) through StreamTransport. Code that holds only
// an ITransport and must drop the connection (a tool whose output is gone, an
// endpoint's attempt given up) calls this rather than finding the right cast.
#pragma once

#include <weft/export.hpp>

namespace weft {

class ITransport;

/// Aborts `transport` where it can be aborted (ITCPTransport first, which a
/// TLS layer is too, then StreamTransport): queued output is dropped and
/// connectionLost(ConnectionAborted) follows from the reactor (TCP-32). A
/// transport with no abort is asked to loseConnectionDespiteProducer() instead:
/// its close must not wait for a producer either.
WEFT_EXPORT void abortTransport(ITransport& transport);

}  // namespace weft
