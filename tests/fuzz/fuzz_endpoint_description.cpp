// libFuzzer target: the endpoint description grammar (EP-1 … EP-4).
//
// Feeds arbitrary bytes to weft::parseEndpointDescription(). The header
// documents one failure: a trailing lone backslash throws
// InvalidEndpointDescription. Any other exception escapes and aborts (a bug),
// as does a crash or undefined behaviour (ASan + UBSan). Checked properties,
// each a __builtin_trap() when violated:
//   1. it throws exactly when the input ends with an unescaped backslash;
//   2. it agrees with a reference parser written from the header's wording;
//   3. every parsed value v (and every key) survives quoteStringArgument:
//      parseEndpointDescription("x:" + quoteStringArgument(v)) has exactly the
//      positional fields {"x", v} and no keyword;
//   4. re-serialising the parsed description with quoteStringArgument and
//      parsing it again gives the same description.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <weft/internet/endpoints.hpp>

namespace {

// The grammar as endpoints.hpp words it: split at every unescaped ':'; in a
// field the first unescaped '=' separates key from value (later ones are
// literal); a backslash makes the next character literal; empty fields are
// kept; a repeated key keeps its last value. `ok` is false for a trailing
// lone backslash.
struct Reference {
    bool ok = true;
    std::vector<std::string> args;
    std::map<std::string, std::string> kwargs;
};

Reference referenceParse(std::string_view text) {
    Reference out;
    std::string field, key;
    bool isKeyword = false;
    std::size_t i = 0;
    for (;;) {
        bool endOfField = i == text.size() || text[i] == ':';
        if (endOfField) {
            if (isKeyword) out.kwargs[key] = field;
            else out.args.push_back(field);
            field.clear();
            key.clear();
            isKeyword = false;
            if (i == text.size()) break;
            ++i;
            continue;
        }
        char c = text[i];
        if (c == '\\') {
            if (i + 1 == text.size()) {
                out.ok = false;
                return out;
            }
            field.push_back(text[i + 1]);
            i += 2;
        } else if (c == '=' && !isKeyword) {
            key = field;
            field.clear();
            isKeyword = true;
            ++i;
        } else {
            field.push_back(c);
            ++i;
        }
    }
    return out;
}

bool endsWithLoneBackslash(std::string_view text) {
    std::size_t run = 0;
    while (run < text.size() && text[text.size() - 1 - run] == '\\') ++run;
    return run % 2 == 1;
}

void checkQuotedRoundTrip(const std::string& value) {
    weft::EndpointDescription again = weft::parseEndpointDescription("x:" + weft::quoteStringArgument(value));
    if (again.args.size() != 2 || again.args[0] != "x" || again.args[1] != value || !again.kwargs.empty())
        __builtin_trap();
}

std::string serialise(const weft::EndpointDescription& d) {
    std::vector<std::string> fields;
    for (const auto& a : d.args) fields.push_back(weft::quoteStringArgument(a));
    for (const auto& [k, v] : d.kwargs)
        fields.push_back(weft::quoteStringArgument(k) + "=" + weft::quoteStringArgument(v));
    std::string out;
    for (std::size_t i = 0; i < fields.size(); ++i) out += (i ? ":" : "") + fields[i];
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const Reference expected = referenceParse(text);

    weft::EndpointDescription parsed;
    try {
        parsed = weft::parseEndpointDescription(text);
    } catch (const weft::InvalidEndpointDescription&) {
        if (expected.ok || !endsWithLoneBackslash(text)) __builtin_trap();  // thrown for a valid description
        return 0;
    }
    if (!expected.ok || endsWithLoneBackslash(text)) __builtin_trap();  // accepted a lone trailing backslash
    if (parsed.args != expected.args || parsed.kwargs != expected.kwargs) __builtin_trap();
    if (parsed.type() != (parsed.args.empty() ? std::string() : parsed.args.front())) __builtin_trap();

    // From here on nothing may throw: an exception is a bug and aborts.
    for (const auto& a : parsed.args) checkQuotedRoundTrip(a);
    for (const auto& [k, v] : parsed.kwargs) {
        checkQuotedRoundTrip(k);
        checkQuotedRoundTrip(v);
    }
    weft::EndpointDescription reparsed = weft::parseEndpointDescription(serialise(parsed));
    if (reparsed.args != parsed.args || reparsed.kwargs != parsed.kwargs) __builtin_trap();
    return 0;
}
