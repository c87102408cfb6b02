// weft/text.hpp — user-supplied bytes made safe for one-line messages.
//
// Error messages quote what the user passed (an endpoint description, a socket
// path, a host name). Those bytes may hold newlines, escape sequences or
// invalid UTF-8; printed raw they would split a log line in two or drive the
// user's terminal. These helpers escape them so every message stays one
// readable line.
#pragma once

#include <string>
#include <string_view>

#include <weft/export.hpp>

namespace weft {

/// `text` between single quotes, with C-style escapes for what is not
/// printable: \n \r \t, \\ and \' for the quote characters, \xNN for any other
/// control byte, DEL, and every byte that is not part of valid UTF-8 (valid
/// multi-byte characters are kept as they are). quote("a\nb") == "'a\\nb'".
WEFT_EXPORT std::string quote(std::string_view text);

/// `text` with control bytes and invalid UTF-8 escaped as in quote(), but
/// without surrounding quotes and without escaping backslashes or quotes:
/// for a whole message (say an exception's what()) that may already contain
/// quoted parts. The result never contains a control byte.
WEFT_EXPORT std::string printable(std::string_view text);

}  // namespace weft
