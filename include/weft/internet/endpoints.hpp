// weft/internet/endpoints.hpp — endpoint descriptions ("tcp:8000:interface=127.0.0.1").
// This part is the description grammar shared by serverFromString and
// clientFromString (protocols.md EP-1..EP-4); the endpoint types themselves
// arrive with the TCP and UNIX transports (issues #4, #5).
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <weft/export.hpp>

namespace weft {

/// A description split into its fields (EP-1).
struct WEFT_EXPORT EndpointDescription {
    /// Positional fields in order; the first names the endpoint type (EP-2).
    std::vector<std::string> args;
    /// Keyword fields; a repeated key keeps its last value.
    std::map<std::string, std::string> kwargs;

    /// The endpoint type: the first positional field, or "" when there is none.
    std::string type() const { return args.empty() ? std::string() : args.front(); }
};

/// Thrown for a description that cannot be parsed; what() names the bad part.
class WEFT_EXPORT InvalidEndpointDescription : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Splits `description` at every unescaped ':'; in each field the first
/// unescaped '=' separates key from value (later ones are literal); a backslash
/// makes the next character literal. Empty fields are kept ("a::b" → a, "", b).
/// Throws InvalidEndpointDescription for a trailing lone backslash (EP-3).
WEFT_EXPORT EndpointDescription parseEndpointDescription(std::string_view description);

/// Escapes `s` so that it survives parseEndpointDescription as one field value:
/// a backslash goes before every '\' and ':' (EP-4).
WEFT_EXPORT std::string quoteStringArgument(std::string_view s);

}  // namespace weft
