// weft/text.hpp: escaping user-supplied bytes for messages.
#include <weft/text.hpp>

#include <cstdint>

namespace weft {

namespace {

/// Length of the valid UTF-8 sequence starting at s[i] (1 for ASCII), or 0
/// when the bytes there are not valid UTF-8 (overlong forms, surrogates and
/// code points above U+10FFFF are invalid).
std::size_t utf8Length(std::string_view s, std::size_t i) noexcept {
    const auto b0 = static_cast<std::uint8_t>(s[i]);
    if (b0 < 0x80) return 1;
    std::size_t n;
    std::uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
        cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        cp = b0 & 0x0Fu;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        cp = b0 & 0x07u;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto b = static_cast<std::uint8_t>(s[i + k]);
        if ((b & 0xC0u) != 0x80u) return 0;
        cp = (cp << 6) | (b & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    // C1 control characters (U+0080..U+009F) can act on terminals too.
    if (cp >= 0x80 && cp <= 0x9F) return 0;
    return n;
}

void appendHex(std::string& out, std::uint8_t b) {
    static constexpr char digits[] = "0123456789abcdef";
    out += "\\x";
    out += digits[b >> 4];
    out += digits[b & 0x0F];
}

std::string escape(std::string_view text, bool quoting) {
    std::string out;
    out.reserve(text.size() + (quoting ? 2 : 0));
    if (quoting) out += '\'';
    for (std::size_t i = 0; i < text.size();) {
        const char c = text[i];
        const auto b = static_cast<std::uint8_t>(c);
        if (b >= 0x80) {
            std::size_t n = utf8Length(text, i);
            if (n == 0) {
                appendHex(out, b);
                ++i;
            } else {
                out.append(text.substr(i, n));
                i += n;
            }
            continue;
        }
        ++i;
        switch (c) {
            case '\n': out += "\\n"; continue;
            case '\r': out += "\\r"; continue;
            case '\t': out += "\\t"; continue;
            case '\\': out += quoting ? "\\\\" : "\\"; continue;
            case '\'': out += quoting ? "\\'" : "'"; continue;
            default: break;
        }
        if (b < 0x20 || b == 0x7F) appendHex(out, b);
        else out += c;
    }
    if (quoting) out += '\'';
    return out;
}

}  // namespace

std::string quote(std::string_view text) { return escape(text, true); }

std::string printable(std::string_view text) { return escape(text, false); }

}  // namespace weft
