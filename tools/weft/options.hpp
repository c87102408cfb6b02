// Option checks shared by the subcommands.
#pragma once

#include <cmath>
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

}  // namespace tool
