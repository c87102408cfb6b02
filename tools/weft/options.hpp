// Option checks shared by the subcommands.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace tool {

/// A number of seconds from 0 to `max`, NaN refused: CLI::Range and
/// CLI::NonNegativeNumber compare with < and >, which NaN passes (a NaN grace
/// or kill grace stopped the shutdown timers).
inline CLI::Validator seconds(double max) {
    return CLI::Validator(
        [max](std::string& text) -> std::string {
            double value = 0;
            if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || value < 0 || value > max)
                return fmt::format("{} is not a number of seconds from 0 to {}", text, max);
            return {};
        },
        fmt::format("SECONDS in [0, {}]", max));
}

/// A whole number from `min` to `max`: CLI::Range would call "abc" or "1e3"
/// a value out of range, which sends the user looking for the wrong mistake.
inline CLI::Validator wholeNumber(std::uint64_t min, std::uint64_t max) {
    return CLI::Validator(
        [min, max](std::string& text) -> std::string {
            std::uint64_t value = 0;
            bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
            if (!digits || !CLI::detail::lexical_cast(text, value))
                return fmt::format("{} is not a whole number (from {} to {})", text, min, max);
            if (value < min || value > max) return fmt::format("{} is not from {} to {}", text, min, max);
            return {};
        },
        fmt::format("INT in [{} - {}]", min, max));
}

}  // namespace tool
