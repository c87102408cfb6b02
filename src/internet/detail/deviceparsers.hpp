// The endpoint parsers of the device transports, defined in their own files
// (serialport.cpp: "serial") and named by endpoints.cpp's table of built-in
// types, like the TLS parsers of sslparsers.hpp. Naming them there (rather
// than registering from a static initialiser) also links their objects into
// every program that parses endpoint strings from a static libweft. Internal.
#pragma once

#include <memory>

#include <weft/internet/endpoints.hpp>

namespace weft::endpoints::detail {

/// "serial:DEVICE[:baudrate=…:bytesize=…:parity=…:stopbits=…:xonxoff=…:rtscts=…:exclusive=…]"
/// (weft/internet/serialport.hpp).
std::shared_ptr<IStreamClientEndpoint> parseSerialClient(const ReactorRef& reactor, const EndpointDescription& d);

}  // namespace weft::endpoints::detail
