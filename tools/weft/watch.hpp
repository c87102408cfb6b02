// weft watch [--recursive] [--events LIST] [--json] PATH...: one line per
// filesystem event, as `inotifywait -m` prints them (tools/weft/watch.cpp).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <weft/internet/base.hpp>

namespace tool {

struct WatchOptions {
    std::vector<std::string> paths;
    bool recursive = false;
    std::string events;        ///< comma-separated event names; not given: the default mask
    bool eventsGiven = false;  ///< --events was on the command line (an empty list is an error)
    bool json = false;
};

/// Adds the `watch` subcommand to `app`, filling `options` when parsed.
CLI::App* addWatchCommand(CLI::App& app, WatchOptions& options);

/// Runs it until SIGINT/SIGTERM (or until standard output is closed): 0 then;
/// 2 for an unknown event name; 1 when a path cannot be watched or standard
/// output cannot be written.
int runWatch(weft::Backend backend, const WatchOptions& options);

}  // namespace tool
