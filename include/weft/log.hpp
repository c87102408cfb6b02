// weft/log.hpp — structured logging with pluggable observers.
// Plays the part of twisted.logger's global publisher: the reactor logs errors
// from user callbacks here instead of letting them unwind out of run().
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <weft/export.hpp>
#include <weft/failure.hpp>

namespace weft {

/// Anything that can describe itself in logs (Twisted ILoggingContext).
class WEFT_EXPORT ILoggingContext {
public:
    virtual ~ILoggingContext() = default;
    /// Prefix for log lines about this object, e.g. "EchoProtocol,3,127.0.0.1".
    virtual std::string logPrefix() const = 0;
};

}  // namespace weft

namespace weft::log {

/// The logging context of the callback running on this thread, or null. The
/// reactor sets it around every call into a descriptor (FD-38), so a log line
/// emitted with an empty prefix from inside dataReceived carries the
/// transport's logPrefix(). Resolved only when something is logged.
WEFT_EXPORT const ILoggingContext* currentContext() noexcept;

/// Makes `ctx` the current logging context until destroyed (nests).
class WEFT_EXPORT ScopedContext {
public:
    explicit ScopedContext(const ILoggingContext* ctx) noexcept;
    ~ScopedContext();
    ScopedContext(const ScopedContext&) = delete;
    ScopedContext& operator=(const ScopedContext&) = delete;

private:
    const ILoggingContext* previous_;
};

enum class Level { debug = 0, info = 1, warn = 2, error = 3, critical = 4 };

/// One log event. `prefix` is the logging context (a transport's logPrefix()).
struct Event {
    Level level;
    std::string_view prefix;
    std::string_view message;
    const Failure* failure;  ///< set for events that carry an error
};

using Observer = std::function<void(const Event&)>;

/// Adds an observer; returns a token for removeObserver. Thread-safe.
/// While at least one observer is registered the default stderr writer is off.
WEFT_EXPORT std::size_t addObserver(Observer o);
WEFT_EXPORT void removeObserver(std::size_t token);

/// Events below this level are dropped before reaching observers (default: info).
/// Errors (level >= error) are never dropped.
WEFT_EXPORT void setLevel(Level l);
WEFT_EXPORT Level level();
WEFT_EXPORT std::optional<Level> parseLevel(std::string_view name);
WEFT_EXPORT std::string_view levelName(Level l);

/// Emits one event. An empty prefix is replaced by the current context's
/// logPrefix(), if there is one. Never throws.
WEFT_EXPORT void emit(Level l, std::string_view prefix, std::string_view message,
                      const Failure* failure = nullptr) noexcept;

/// Logs a failure at error level: "<message>" plus the failure's traceback.
WEFT_EXPORT void failure(std::string_view prefix, std::string_view message, const Failure& f) noexcept;

template <class... Args>
void info(std::string_view prefix, fmt::format_string<Args...> f, Args&&... args) {
    if (level() <= Level::info) emit(Level::info, prefix, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void debug(std::string_view prefix, fmt::format_string<Args...> f, Args&&... args) {
    if (level() <= Level::debug) emit(Level::debug, prefix, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warn(std::string_view prefix, fmt::format_string<Args...> f, Args&&... args) {
    if (level() <= Level::warn) emit(Level::warn, prefix, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(std::string_view prefix, fmt::format_string<Args...> f, Args&&... args) {
    emit(Level::error, prefix, fmt::format(f, std::forward<Args>(args)...));
}

/// RAII observer registration (handy in tests: capture what was logged).
class WEFT_EXPORT ScopedObserver {
public:
    explicit ScopedObserver(Observer o) : token_(addObserver(std::move(o))) {}
    ~ScopedObserver() { removeObserver(token_); }
    ScopedObserver(const ScopedObserver&) = delete;
    ScopedObserver& operator=(const ScopedObserver&) = delete;

private:
    std::size_t token_;
};

}  // namespace weft::log
