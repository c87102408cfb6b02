// weft watch: inotifywait -m on weft::inotify::INotify.
//
//   kernel ──inotify──▶ INotify ──Event──▶ one line on stdout, flushed
//
// Plain lines are "create,is_dir /full/path"; --json lines are
// {"path": "/full/path", "events": ["create", "is_dir"]}, with "cookie" on the
// two halves of a move, and {"overflow": true} when the kernel's queue
// overflowed and events were lost.
#include "watch.hpp"
#include "signals.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <filesystem>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>
#include <weft/internet/error.hpp>
#include <weft/internet/inotify.hpp>
#include <weft/log.hpp>
#include <weft/text.hpp>

namespace tool {

namespace ino = weft::inotify;

namespace {

constexpr std::uint32_t kDefaultMask = ino::IN_WATCH_MASK | IN_CLOSE_WRITE;
// What --events accepts: the events, and unmount (which the kernel reports
// whatever the mask, and the default mask names).
constexpr std::uint32_t kEventBits = IN_ALL_EVENTS | IN_UNMOUNT;
static_assert((kDefaultMask & ~kEventBits) == 0, "the default --events must be accepted by --events");

std::string allNames() {
    std::string out;
    for (std::uint32_t bit = 1; bit <= IN_UNMOUNT; bit <<= 1) {
        if (!(bit & kEventBits)) continue;
        auto names = ino::humanReadableMask(bit);
        if (names.empty()) continue;
        if (!out.empty()) out += ", ";
        out += names[0];
    }
    return out;
}

// The mask --events names, or the default; nullopt (after a message) for a bad list.
// Only events: the flags inotify also has names for (one_shot, only_dir,
// mask_add, …) change how a watch behaves, and would break it silently.
std::optional<std::uint32_t> parseEvents(const std::string& list, bool given) {
    if (!given) return kDefaultMask;
    if (list.empty()) {
        std::fprintf(stderr, "weft watch: --events is empty (known: %s)\n", allNames().c_str());
        return std::nullopt;
    }
    std::uint32_t mask = 0;
    std::string_view rest = list;
    while (true) {
        auto comma = rest.find(',');
        std::string_view name = rest.substr(0, comma);
        auto bit = ino::maskFromName(name);
        if (!bit || (*bit & ~kEventBits) != 0) {
            std::fprintf(stderr, "weft watch: unknown event %s in --events %s (known: %s)\n", weft::quote(name).c_str(),
                         weft::quote(list).c_str(), allNames().c_str());
            return std::nullopt;
        }
        mask |= *bit;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return mask;
}

// A path on a plain line: a control byte (a newline, an escape sequence: a name
// may hold any byte but '/' and NUL) is written as \n, \r, \t or \xNN, so each
// event stays one line and nothing reaches a terminal raw. Everything else is
// written as it is (--json carries every name exactly).
void appendPlainPath(std::string& out, std::string_view s) {
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c != 0x7f) out += ch;
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else fmt::format_to(std::back_inserter(out), "\\x{:02x}", c);
    }
}

// A JSON string. Bytes that are not UTF-8 (a Linux name is any bytes) become
// \udcXX, Python's surrogateescape: os.fsencode() gives the name back.
void appendJsonString(std::string& out, std::string_view s) {
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else if (c < 0x20 || c == 0x7f) {
            fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
            ++i;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
        } else {
            // One well-formed UTF-8 sequence is copied; any other byte escaped.
            std::size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
            bool ok = len != 0 && i + len <= s.size();
            for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
            if (ok && len == 3) {
                auto c1 = static_cast<unsigned char>(s[i + 1]);
                ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogates
            } else if (ok && len == 4) {
                auto c1 = static_cast<unsigned char>(s[i + 1]);
                ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);  // overlong, beyond U+10FFFF
            }
            if (ok) {
                out.append(s.substr(i, len));
                i += len;
            } else {
                fmt::format_to(std::back_inserter(out), "\\udc{:02x}", c);
                ++i;
            }
        }
    }
    out += '"';
}

struct Printer {
    weft::Reactor& reactor;
    bool json;
    std::uint32_t mask;
    int status = 0;
    bool done = false;
    std::string line;
    // The names of each mask seen (a handful), formatted once: "create,is_dir"
    // for plain lines, "\"create\", \"is_dir\"" for JSON.
    std::unordered_map<std::uint32_t, std::string> formatted = {};

    const std::string& names(std::uint32_t m) {
        auto [it, fresh] = formatted.try_emplace(m);
        if (fresh) {
            for (auto& n : ino::humanReadableMask(m)) {
                if (!it->second.empty()) it->second += json ? ", " : ",";
                it->second += json ? '"' + n + '"' : n;
            }
        }
        return it->second;
    }

    // Writes the line and flushes it at once (a script reads through a pipe).
    void emit() {
        if (done) return;
        line += '\n';
        if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0) {
            int err = errno;
            done = true;
            // A reader that went away (`| head`) ends the watch quietly, as
            // SIGPIPE ends inotifywait; any other failure is reported.
            if (err != EPIPE) {
                std::fprintf(stderr, "weft watch: cannot write standard output: %s\n", std::strerror(err));
                status = 1;
            }
            if (reactor.running()) reactor.stop();
        }
    }

    void event(const ino::Event& e) {
        // Only what was asked for: not the IN_DELETE_SELF every watch gets, nor
        // IN_IGNORED, unless named in --events.
        if (!(e.mask & mask & ~static_cast<std::uint32_t>(IN_ISDIR))) return;
        line.clear();
        if (json) {
            line += "{\"path\": ";
            appendJsonString(line, e.path.native());
            line += ", \"events\": [";
            line += names(e.mask);
            line += ']';
            if (e.cookie != 0) fmt::format_to(std::back_inserter(line), ", \"cookie\": {}", e.cookie);
            line += '}';
        } else {
            line += names(e.mask);
            line += ' ';
            appendPlainPath(line, e.path.native());
        }
        emit();
    }

    void overflow() {
        line = json ? "{\"overflow\": true}" : "queue_overflow";
        emit();
    }
};

}  // namespace

CLI::App* addWatchCommand(CLI::App& app, WatchOptions& options) {
    auto* cmd = app.add_subcommand("watch", "Print one line per filesystem event, as inotifywait -m does");
    cmd->add_option("path", options.paths, "Files or directories to watch")->required();
    cmd->add_flag("--recursive", options.recursive,
                  "Watch every directory below each PATH too, and directories created or moved in later "
                  "(what they already hold when their watch starts is reported as created)");
    cmd->add_option(
           "--events", options.events,
           "Comma-separated event names to report (default: " +
               [] {
                   std::string s;
                   for (auto& n : ino::humanReadableMask(kDefaultMask)) s += (s.empty() ? "" : ",") + n;
                   return s;
               }() +
               ")")
        ->each([&options](const std::string&) { options.eventsGiven = true; });
    cmd->add_flag("--json", options.json, "One JSON object per line instead of plain lines");
    cmd->footer(
        "Plain lines are the event's names (comma-separated), a space, then the full path:\n"
        "  create,is_dir /tmp/d/sub\n"
        "A control character in a path (a newline, an escape sequence) is written as \\n, \\r, \\t or \\xNN,\n"
        "so that each event is one line; --json carries every name exactly.\n"
        "With --json, one object per line: {\"path\": \"/tmp/d/f\", \"events\": [\"moved_from\"], \"cookie\": 7};\n"
        "\"cookie\" (the same on the two halves of a move) only on moves; bytes of a path that are not\n"
        "UTF-8 are written as \\udcXX (Python's surrogateescape). A kernel queue overflow, where events\n"
        "were lost, prints {\"overflow\": true} (plain: queue_overflow). Each line is flushed at once.\n"
        "Event names: " +
        allNames() +
        ".\n"
        "Runs until SIGINT or SIGTERM, then exits 0; an unknown event name exits 2, a path that cannot be\n"
        "watched (missing, not permitted, the watch limit of /proc/sys/fs/inotify/max_user_watches) 1.\n"
        "Examples: weft watch /etc\n"
        "          weft watch --recursive --json --events create,delete,moved_from,moved_to ~/src");
    return cmd;
}

int runWatch(weft::Backend backend, const WatchOptions& options) {
    auto mask = parseEvents(options.events, options.eventsGiven);
    if (!mask) return 2;
    auto reactor = weft::Reactor::create(backend);
    auto printer = std::make_shared<Printer>(Printer{*reactor, options.json, *mask, 0, false, {}, {}});
    std::shared_ptr<ino::INotify> notifier;
    try {
        notifier = std::make_shared<ino::INotify>(*reactor);
        notifier->setOverflowCallback([printer] { printer->overflow(); });
        // Each PATH as an absolute path: events carry the full path (as the
        // issue and --help say), and two spellings of one path are one watch.
        for (auto& path : options.paths) {
            std::error_code ec;  // no working directory: the path as given
            std::filesystem::path full = std::filesystem::absolute(path, ec);
            notifier->watch(ec ? std::filesystem::path(path) : full.lexically_normal(), *mask, options.recursive,
                            {[printer](const ino::Event& e) { printer->event(e); }}, options.recursive);
        }
    } catch (const ino::INotifyError& e) {
        std::fprintf(stderr, "weft watch: %s\n", weft::printable(e.what()).c_str());
        if (notifier) notifier->connectionLost(weft::error::connectionDone());
        return 1;
    }
    notifier->startReading();
    weft::log::info("weft", "watching {} path(s) ({} reactor); stop with Ctrl-C or SIGTERM",
                    notifier->watchedPaths().size(), weft::backendName(backend));
    reactor->run();
    tool::logStopSignal(*reactor);
    if (!notifier->disconnected()) notifier->connectionLost(weft::error::connectionDone());
    return printer->status;
}

}  // namespace tool
