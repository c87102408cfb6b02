#include <weft/log.hpp>
#include <weft/text.hpp>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <vector>

namespace weft::log {
namespace {

struct Registry {
    std::mutex mu;
    std::vector<std::pair<std::size_t, Observer>> observers;
    std::size_t next = 1;
};

Registry& registry() {
    static Registry* r = new Registry;  // never destroyed: logging may happen during static destruction
    return *r;
}

std::atomic<Level> gLevel{Level::info};
thread_local const ILoggingContext* tContext = nullptr;

}  // namespace

const ILoggingContext* currentContext() noexcept { return tContext; }

ScopedContext::ScopedContext(const ILoggingContext* ctx) noexcept : previous_(tContext) { tContext = ctx; }
ScopedContext::~ScopedContext() { tContext = previous_; }

std::size_t addObserver(Observer o) {
    auto& r = registry();
    std::lock_guard lk(r.mu);
    r.observers.emplace_back(r.next, std::move(o));
    return r.next++;
}

void removeObserver(std::size_t token) {
    auto& r = registry();
    std::lock_guard lk(r.mu);
    std::erase_if(r.observers, [&](auto& p) { return p.first == token; });
}

void setLevel(Level l) { gLevel.store(l, std::memory_order_relaxed); }
Level level() { return gLevel.load(std::memory_order_relaxed); }

std::string_view levelName(Level l) {
    switch (l) {
        case Level::debug: return "debug";
        case Level::info: return "info";
        case Level::warn: return "warn";
        case Level::error: return "error";
        case Level::critical: return "critical";
    }
    return "?";
}

std::optional<Level> parseLevel(std::string_view name) {
    for (Level l : {Level::debug, Level::info, Level::warn, Level::error, Level::critical})
        if (levelName(l) == name) return l;
    if (name == "warning") return Level::warn;
    return std::nullopt;
}

void emit(Level l, std::string_view prefix, std::string_view message, const Failure* f) noexcept {
    if (l < level() && l < Level::error) return;
    try {
        std::string contextPrefix;
        if (prefix.empty() && tContext) {
            contextPrefix = tContext->logPrefix();
            prefix = contextPrefix;
        }
        Event ev{l, prefix, message, f};
        auto& r = registry();
        std::vector<Observer> copy;
        {
            std::lock_guard lk(r.mu);
            copy.reserve(r.observers.size());
            for (auto& [_, o] : r.observers) copy.push_back(o);
        }
        if (copy.empty()) {
            // One record, one line: bytes that came from outside (a path, a
            // peer's data in an error) cannot break the line or reach the
            // terminal raw. A traceback keeps its own lines, each escaped.
            std::string line = fmt::format("[{}] {}{}{}\n", levelName(l), printable(prefix), prefix.empty() ? "" : ": ",
                                           printable(message));
            if (f) {
                const std::string traceback = f->getTraceback();
                std::string_view tb = traceback;
                while (!tb.empty()) {
                    auto nl = tb.find('\n');
                    line += printable(tb.substr(0, nl));
                    line += '\n';
                    tb.remove_prefix(nl == std::string_view::npos ? tb.size() : nl + 1);
                }
            }
            std::fwrite(line.data(), 1, line.size(), stderr);
            return;
        }
        for (auto& o : copy) o(ev);
    } catch (...) {
        // Logging must never throw into the loop.
    }
}

void failure(std::string_view prefix, std::string_view message, const Failure& f) noexcept {
    emit(Level::error, prefix, message, &f);
}

}  // namespace weft::log
