// libFuzzer target: terminal sizes as `weft exec --window` takes them
// (weft::parseWindowSize, "ROWSxCOLS").
//
// Checked properties, each a __builtin_trap() when violated:
//   1. a result has both fields in 1..65535 (never 0);
//   2. it round-trips: formatting it as "<rows>x<cols>" parses to the same size;
//   3. it agrees with a reference written from the header's wording: exactly one
//      'x' or 'X' splits two runs of 1 to 5 decimal digits.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <weft/internet/process.hpp>

namespace {
bool referenceAccepts(std::string_view s) {
    auto x = s.find_first_of("xX");
    if (x == std::string_view::npos) return false;
    auto ok = [](std::string_view d) {
        if (d.empty() || d.size() > 5) return false;
        unsigned long n = 0;
        for (char c : d) {
            if (c < '0' || c > '9') return false;
            n = n * 10 + static_cast<unsigned long>(c - '0');
        }
        return n >= 1 && n <= 65535;
    };
    return ok(s.substr(0, x)) && ok(s.substr(x + 1));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    auto parsed = weft::parseWindowSize(input);
    if (parsed.has_value() != referenceAccepts(input)) __builtin_trap();
    if (!parsed) return 0;
    if (parsed->rows == 0 || parsed->cols == 0) __builtin_trap();
    auto again = weft::parseWindowSize(std::to_string(parsed->rows) + "x" + std::to_string(parsed->cols));
    if (!again || !(*again == *parsed)) __builtin_trap();
    return 0;
}
