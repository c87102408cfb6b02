#include <weft/internet/endpoints.hpp>

namespace weft {

EndpointDescription parseEndpointDescription(std::string_view description) {
    EndpointDescription out;
    std::string current, key;
    bool keyword = false;
    auto finishField = [&] {
        if (keyword) out.kwargs[std::move(key)] = std::move(current);
        else out.args.push_back(std::move(current));
        current.clear();
        key.clear();
        keyword = false;
    };
    for (std::size_t i = 0; i < description.size(); ++i) {
        char c = description[i];
        if (c == '\\') {
            if (i + 1 == description.size())
                throw InvalidEndpointDescription("endpoint description '" + std::string(description) +
                                                 "' ends with a lone backslash");
            current += description[++i];
        } else if (c == ':') {
            finishField();
        } else if (c == '=' && !keyword) {
            key = std::move(current);
            current.clear();
            keyword = true;
        } else {
            current += c;
        }
    }
    finishField();
    return out;
}

std::string quoteStringArgument(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\\' || c == ':') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace weft
