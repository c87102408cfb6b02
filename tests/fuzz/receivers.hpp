// The libFuzzer targets of weft/protocols/basic.hpp's receivers share this:
// each input is a few bytes of set-up (the limit, the delimiter, how to cut
// the rest into chunks) and then the stream. The receiver is fed the stream
// in those chunks and what it delivered — and whether it dropped the
// connection — must equal what a plain reference parser makes of the whole
// stream at once. Any difference is a __builtin_trap().
//
//   byte 0     configuration (target-specific: MAX_LENGTH, delimiter)
//   bytes 1-3  chunk sizes, used in turn: b % 24 (0: an empty dataReceived);
//              all zero means the whole stream in one call
//   the rest   the stream
//
// The line targets also act on some lines, so that re-entrant calls are
// fuzzed too: "R<d>" switches to raw mode for the next d bytes (then back,
// with setLineMode(rest)), "P" pauses (the fuzzer resumes after every
// chunk), "Q" calls loseConnection() (and the fuzzer stops feeding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <weft/internet/interfaces.hpp>
#include <weft/internet/testing.hpp>
#include <weft/protocols/basic.hpp>

namespace fuzz {

#define WEFT_FUZZ_CHECK(cond)          \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

// What a receiver produced: lines/strings ("L…"), raw stretches ("R…",
// adjacent raw deliveries merged: their split depends on the chunking).
using Events = std::vector<std::string>;

inline void addRaw(Events& out, std::string_view data) {
    if (!out.empty() && out.back()[0] == 'R') out.back().append(data);
    else out.push_back("R" + std::string(data));
}

class Transport : public weft::testing::StringTransport {
public:
    bool isDisconnecting() const noexcept override { return disconnecting; }
};

struct Input {
    std::uint8_t config = 0;
    std::vector<std::size_t> sizes;
    std::string_view stream;
};

inline bool parse(const std::uint8_t* data, std::size_t size, Input& in) {
    if (size < 4) return false;
    in.config = data[0];
    for (int i = 1; i <= 3; ++i) in.sizes.push_back(data[i] % 24);
    if (in.sizes[0] + in.sizes[1] + in.sizes[2] == 0) in.sizes.clear();
    in.stream = std::string_view(reinterpret_cast<const char*>(data) + 4, size - 4);
    return true;
}

// Feeds `in.stream` to `feedOne` in the chunks `in.sizes` says; `after` runs
// after each chunk and returns false to stop feeding.
template <class Feed, class After>
void feedChunks(const Input& in, Feed&& feedOne, After&& after) {
    std::string_view rest = in.stream;
    if (in.sizes.empty()) {
        feedOne(rest);
        after();
        return;
    }
    for (std::size_t i = 0;; ++i) {
        std::size_t n = std::min(in.sizes[i % in.sizes.size()], rest.size());
        feedOne(rest.substr(0, n));
        rest.remove_prefix(n);
        if (!after() || rest.empty()) return;
    }
}

// ---- the line receivers --------------------------------------------------------------

inline std::string delimiterFor(std::uint8_t config) {
    static const char* const kDelimiters[] = {"\r\n", "\n", "aba", "||"};
    return kDelimiters[config & 3];
}
inline std::size_t lineLimitFor(std::uint8_t config) { return (config & 0x80) ? 16384 : (config >> 2 & 31); }

// The reference for both line receivers: lines in order, with LineReceiver's
// raw stretches when `raw`; stops at "Q" or at the first overlong line.
struct LineModel {
    Events events;
    bool exceeded = false;
    bool quit = false;
};

inline LineModel referenceLines(std::string_view s, const std::string& delimiter, std::size_t limit, bool raw) {
    LineModel m;
    std::size_t pos = 0;
    while (pos < s.size()) {
        std::size_t at = s.find(delimiter, pos);
        if (at == std::string_view::npos) {
            if (s.size() - pos >= limit + delimiter.size()) m.exceeded = true;
            return m;
        }
        std::string_view line = s.substr(pos, at - pos);
        if (line.size() > limit) {
            m.exceeded = true;
            return m;
        }
        m.events.push_back("L" + std::string(line));
        pos = at + delimiter.size();
        if (line == "Q") {
            m.quit = true;
            return m;
        }
        if (raw && line.size() == 2 && line[0] == 'R' && line[1] >= '0' && line[1] <= '9') {
            std::size_t n = std::min<std::size_t>(line[1] - '0', s.size() - pos);
            if (n) addRaw(m.events, s.substr(pos, n));
            pos += n;
        }
    }
    return m;
}

struct FuzzLineReceiver : weft::basic::LineReceiver {
    Events events;
    std::size_t rawLeft = 0;
    bool exceeded = false;
    void lineReceived(std::string_view line) override {
        events.push_back("L" + std::string(line));
        if (line == "Q") transport->loseConnection();
        else if (line == "P") pauseProducing();
        else if (line.size() == 2 && line[0] == 'R' && line[1] >= '0' && line[1] <= '9') {
            rawLeft = static_cast<std::size_t>(line[1] - '0');
            if (rawLeft) setRawMode();
        }
    }
    void rawDataReceived(weft::Bytes bytes) override {
        std::string_view data = weft::asText(bytes);
        std::size_t n = std::min(rawLeft, data.size());
        addRaw(events, data.substr(0, n));
        rawLeft -= n;
        if (rawLeft == 0) setLineMode(data.substr(n));
    }
    void lineLengthExceeded(std::string_view line) override {
        exceeded = true;
        LineReceiver::lineLengthExceeded(line);
    }
};

struct FuzzLineOnlyReceiver : weft::basic::LineOnlyReceiver {
    Events events;
    bool exceeded = false;
    void lineReceived(std::string_view line) override {
        events.push_back("L" + std::string(line));
        if (line == "Q") transport->loseConnection();
    }
    void lineLengthExceeded(std::string_view line) override {
        exceeded = true;
        LineOnlyReceiver::lineLengthExceeded(line);
    }
};

template <class R>
int fuzzLines(const std::uint8_t* data, std::size_t size, bool raw) {
    Input in;
    if (!parse(data, size, in)) return 0;
    auto p = std::make_shared<R>();
    p->delimiter = delimiterFor(in.config);
    p->MAX_LENGTH = lineLimitFor(in.config);
    auto t = std::make_shared<Transport>();
    p->makeConnection(t);
    feedChunks(
        in, [&](std::string_view chunk) { p->dataReceived(weft::asBytes(chunk)); },
        [&] {
            if constexpr (requires { p->resumeProducing(); }) {
                while (p->paused() && !p->stopReason() && !t->disconnecting) p->resumeProducing();
            }
            return !t->disconnecting;
        });
    LineModel m = referenceLines(in.stream, p->delimiter, p->MAX_LENGTH, raw);
    WEFT_FUZZ_CHECK(p->events == m.events);
    WEFT_FUZZ_CHECK(p->exceeded == m.exceeded);
    WEFT_FUZZ_CHECK(t->disconnecting == (m.exceeded || m.quit));
    WEFT_FUZZ_CHECK(p->stopReason().has_value() == m.exceeded);
    return 0;
}

// ---- netstrings ----------------------------------------------------------------------

struct NetstringModel {
    Events events;
    bool broken = false;
};

inline NetstringModel referenceNetstrings(std::string_view s, std::size_t limit) {
    NetstringModel m;
    std::size_t pos = 0;
    while (pos < s.size()) {
        std::size_t i = pos;
        unsigned long long length = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            if (i > pos && s[pos] == '0') {  // a leading zero
                m.broken = true;
                return m;
            }
            length = length * 10 + static_cast<unsigned long long>(s[i] - '0');
            if (length > limit) {
                m.broken = true;
                return m;
            }
            ++i;
        }
        if (i == s.size()) return m;  // the length may go on
        if (i == pos || s[i] != ':') {
            m.broken = true;
            return m;
        }
        std::size_t start = i + 1;
        if (s.size() - start < length + 1) return m;  // not all here
        if (s[start + length] != ',') {
            m.broken = true;
            return m;
        }
        m.events.push_back("L" + std::string(s.substr(start, length)));
        pos = start + length + 1;
    }
    return m;
}

struct FuzzNetstringReceiver : weft::basic::NetstringReceiver {
    Events events;
    void stringReceived(std::string_view s) override { events.push_back("L" + std::string(s)); }
};

inline int fuzzNetstrings(const std::uint8_t* data, std::size_t size) {
    Input in;
    if (!parse(data, size, in)) return 0;
    auto p = std::make_shared<FuzzNetstringReceiver>();
    // Small limits reach the length checks; 99999 is the default.
    p->MAX_LENGTH = (in.config & 0x80) ? 99999 : in.config;
    auto t = std::make_shared<Transport>();
    p->makeConnection(t);
    feedChunks(
        in, [&](std::string_view chunk) { p->dataReceived(weft::asBytes(chunk)); }, [] { return true; });
    NetstringModel m = referenceNetstrings(in.stream, p->MAX_LENGTH);
    WEFT_FUZZ_CHECK(p->events == m.events);
    WEFT_FUZZ_CHECK(p->brokenPeer == m.broken);
    WEFT_FUZZ_CHECK(t->disconnecting == m.broken);
    WEFT_FUZZ_CHECK(p->stopReason().has_value() == m.broken);
    return 0;
}

// ---- int-prefixed strings ------------------------------------------------------------

struct IntNModel {
    Events events;
    bool exceeded = false;
};

inline IntNModel referenceIntN(std::string_view s, std::size_t prefix, std::size_t limit) {
    IntNModel m;
    std::size_t pos = 0;
    while (s.size() - pos >= prefix) {
        std::size_t length = 0;
        for (std::size_t i = 0; i < prefix; ++i) length = length * 256 + static_cast<unsigned char>(s[pos + i]);
        if (length > limit) {
            m.exceeded = true;
            return m;
        }
        if (s.size() - pos - prefix < length) return m;
        m.events.push_back("L" + std::string(s.substr(pos + prefix, length)));
        pos += prefix + length;
    }
    return m;
}

template <class Base>
struct FuzzIntNReceiver : Base {
    Events events;
    bool exceeded = false;
    void stringReceived(std::string_view s) override {
        events.push_back("L" + std::string(s));
        // A string starting with "P" pauses; the fuzzer resumes after each chunk.
        if (!s.empty() && s[0] == 'P') this->pauseProducing();
    }
    void lengthLimitExceeded(std::size_t length) override {
        exceeded = true;
        Base::lengthLimitExceeded(length);
    }
};

template <class R>
int fuzzIntN(const std::uint8_t* data, std::size_t size) {
    Input in;
    if (!parse(data, size, in)) return 0;
    auto p = std::make_shared<FuzzIntNReceiver<R>>();
    p->MAX_LENGTH = (in.config & 0x80) ? 99999 : in.config;
    auto t = std::make_shared<Transport>();
    p->makeConnection(t);
    feedChunks(
        in, [&](std::string_view chunk) { p->dataReceived(weft::asBytes(chunk)); },
        [&] {
            while (p->paused() && !p->stopReason()) p->resumeProducing();
            return true;
        });
    IntNModel m = referenceIntN(in.stream, p->prefixLength, p->MAX_LENGTH);
    WEFT_FUZZ_CHECK(p->events == m.events);
    WEFT_FUZZ_CHECK(p->exceeded == m.exceeded);
    WEFT_FUZZ_CHECK(t->disconnecting == m.exceeded);
    WEFT_FUZZ_CHECK(p->stopReason().has_value() == m.exceeded);
    return 0;
}

}  // namespace fuzz
