#include <weft/internet/error.hpp>

#include <cerrno>
#include <string>

namespace weft::error {

detail::Text detail::describe(std::string_view message, std::initializer_list<std::string_view> args) {
    std::string s(message);
    if (args.size() != 0) {
        s += ": ";
        bool first = true;
        for (auto a : args) {
            if (!first) s += ' ';
            s += a;
            first = false;
        }
    }
    if (!s.ends_with('.')) s += '.';  // an argument that is a sentence of its own already ends with one
    return {std::move(s)};
}

Failure connectionDone() {
    static const Failure done{ConnectionDone()};
    return done;
}

ConnectionLost::ConnectionLost(std::error_code ec)
    : ConnectionClosed(detail::describe(MESSAGE, {ec.message()})), code_(ec) {}

ProcessDone::ProcessDone(int status_)
    : ConnectionDone(detail::describe(MESSAGE, {"process finished with exit code 0"})), status(status_) {}

namespace {
std::string processText(std::optional<int> exitCode, std::optional<int> signal) {
    std::string s = "process ended";
    if (exitCode) s += " with exit code " + std::to_string(*exitCode);
    if (signal) s += " by signal " + std::to_string(*signal);
    return s;
}
}  // namespace

ProcessTerminated::ProcessTerminated(std::optional<int> exitCode_, std::optional<int> signal_,
                                     std::optional<int> status_)
    : ConnectionLost(detail::describe(MESSAGE, {processText(exitCode_, signal_)})), exitCode(exitCode_),
      signal(signal_), status(status_) {}

ConnectError::ConnectError(std::string_view message, int osError, std::string string)
    : std::system_error(std::error_code(osError, std::generic_category())), string_(std::move(string)) {
    text_ = std::string(message);
    if (osError != 0) text_ += ": " + std::to_string(osError);
    if (!string_.empty()) text_ += ": " + string_;
    if (!text_.ends_with('.')) text_ += '.';  // a reason's own sentence already ends with one
}

std::exception_ptr getConnectError(int osError, std::string text, bool resolverError) {
    if (resolverError) return std::make_exception_ptr(UnknownHostError(osError, std::move(text)));
    switch (osError) {
        case ECONNREFUSED: return std::make_exception_ptr(ConnectionRefusedError(osError, std::move(text)));
        case ENETUNREACH: return std::make_exception_ptr(NoRouteError(osError, std::move(text)));
        case ETIMEDOUT: return std::make_exception_ptr(TCPTimedOutError(osError, std::move(text)));
        default: return std::make_exception_ptr(ConnectError(osError, std::move(text)));
    }
}

BindError::BindError(std::error_code ec, std::string text) : std::system_error(ec) {
    text_ = std::string(MESSAGE);
    if (!text.empty()) text_ += ": " + text;
    text_ += '.';
}

CannotListenError::CannotListenError(std::string interface_, std::string port_, std::error_code socketError)
    : BindError(socketError), interface(std::move(interface_)), port(std::move(port_)) {
    text_ = "Couldn't listen on " + (interface.empty() ? std::string("any") : interface) + ":" + port + ": " +
            socketError.message() + ".";
}

CannotListenError::CannotListenError(std::string interface_, std::string port_, std::error_code socketError,
                                     std::string detail)
    : CannotListenError(std::move(interface_), std::move(port_), socketError) {
    text_ =
        "Couldn't listen on " + (interface.empty() ? std::string("any") : interface) + ":" + port + ": " + detail + ".";
}

InvalidAddressError::InvalidAddressError(std::string address_, std::string message_)
    : std::invalid_argument("Invalid address " + address_ + ": " + message_), address(std::move(address_)),
      message(std::move(message_)) {}

ConnectingCancelledError::ConnectingCancelledError(std::string address_)
    : std::runtime_error("Connecting to " + address_ + " was cancelled"), address(std::move(address_)) {}

}  // namespace weft::error
