// The argument helpers of the endpoint string parsers (endpoints.cpp) and the
// TLS parsers built on them (sslendpoints.cpp), which endpoints.cpp registers
// for "ssl" (server) and "ssl"/"tls" (client). Internal.
#pragma once

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>

#include <fmt/format.h>

#include <weft/internet/endpoints.hpp>
#include <weft/text.hpp>

namespace weft::endpoints::detail {

/// ASCII lower case.
std::string lower(std::string_view s);

/// Base-10 integer: an optional sign, then one or more digits. nullopt if the
/// text is not that; `overflow` is set when it is but does not fit.
std::optional<long long> parseInteger(std::string_view text, bool& overflow);

/// An integer argument within [lo, hi]; InvalidEndpointDescription naming the
/// endpoint type, the argument and the text otherwise.
long long integerArgument(std::string_view type, std::string_view name, const std::string& text, long long lo,
                          long long hi);
std::uint16_t portArgument(std::string_view type, const std::string& text);
int intArgument(std::string_view type, std::string_view name, const std::string& text);

/// Arguments by name, as a Python call binds them.
using Bound = std::map<std::string, std::string>;

/// Adds the keywords of `d` to `bound`: an unknown keyword or one bound
/// already throws EndpointArgumentError.
void bindKeywords(std::string_view type, const EndpointDescription& d, std::initializer_list<std::string_view> params,
                  Bound& bound);
/// EndpointArgumentError naming the first of `required` not in `bound`.
void requireArguments(std::string_view type, const Bound& bound, std::initializer_list<std::string_view> required);
/// Positional fields fill `params` in order, keywords by name (see bindKeywords).
Bound bindArguments(std::string_view type, const EndpointDescription& d, std::initializer_list<std::string_view> params,
                    std::initializer_list<std::string_view> required);
/// The client "tcp" rule for host and port (EP-13): two positional fields are
/// host and port; one is the host, or the port when host= is given.
/// EndpointArgumentError for more than two.
void bindHostAndPort(std::string_view type, const EndpointDescription& d, Bound& bound);

std::string valueOr(const Bound& bound, const std::string& key, std::string fallback);

/// The interface I of the reactor, for an endpoint of `type`; a reactor
/// without it makes the description unusable (UnsupportedEndpointType).
template <class I>
I& need(const ReactorRef& reactor, std::string_view type) {
    if (I* i = reactor.find<I>()) return *i;
    throw UnsupportedEndpointType(
        fmt::format("Endpoint type {} needs a reactor that provides {}", quote(lower(type)), className(typeid(I))));
}

// ---- the TLS parsers (sslendpoints.cpp) ---------------------------------------------

/// "ssl:PORT:…" → SSL4ServerEndpoint (SSLEP-1 … SSLEP-5, EP-8).
std::shared_ptr<IStreamServerEndpoint> parseSSLServer(const ReactorRef& reactor, const EndpointDescription& d,
                                                      const ServerParseContext& context);
/// "ssl:HOST:PORT:…" → SSL4ClientEndpoint (SSLEP-6, SSLEP-7, SSLEP-9, EP-15).
std::shared_ptr<IStreamClientEndpoint> parseSSLClient(const ReactorRef& reactor, const EndpointDescription& d);
/// "tls:HOST:PORT:…" → TLSWrapperClientEndpoint (SSLEP-7 … SSLEP-11, EP-16).
std::shared_ptr<IStreamClientEndpoint> parseTLSClient(const ReactorRef& reactor, const EndpointDescription& d);

}  // namespace weft::endpoints::detail
