// libFuzzer target: weft::inotify::EventDecoder, fed arbitrary bytes as the
// reads of an inotify descriptor would bring them, cut at fuzzer-chosen points,
// with a sink that sometimes stops (the rest must come out on the next feed).
// What it delivers, in order, whether it calls the stream corrupt, and how
// many bytes it keeps must match a plain reference decoder run on the whole
// stream at once (INO-12, INO-13).
//
// Input: byte 0 — low nibble: the number of cuts (0..15); high nibble: stop
// after every Nth record (0: never). Then two bytes per cut (little-endian,
// taken modulo the stream's length + 1). The rest is the stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <weft/internet/inotify.hpp>

namespace {

struct Record {
    std::int32_t wd;
    std::uint32_t mask, cookie;
    std::string name;
    bool operator==(const Record&) const = default;
};

std::uint32_t word(const std::uint8_t* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// The reference: records while whole ones remain; a name longer than 4096
// bytes makes the stream corrupt. Returns the bytes consumed.
std::size_t reference(const std::uint8_t* data, std::size_t size, std::vector<Record>& out, bool& corrupt) {
    std::size_t at = 0;
    corrupt = false;
    while (size - at >= 16) {
        std::uint32_t len = word(data + at + 12);
        if (len > 4096) {
            corrupt = true;
            return at;
        }
        if (size - at - 16 < len) break;
        std::string name(reinterpret_cast<const char*>(data + at + 16), len);
        while (!name.empty() && name.back() == '\0') name.pop_back();
        out.push_back({static_cast<std::int32_t>(word(data + at)), word(data + at + 4), word(data + at + 8), name});
        at += 16 + len;
    }
    return at;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const unsigned cuts = data[0] & 0x0f;
    const unsigned stopEvery = data[0] >> 4;
    std::size_t header = 1 + 2 * std::size_t{cuts};
    if (size < header) return 0;
    const std::uint8_t* stream = data + header;
    const std::size_t length = size - header;

    std::vector<std::size_t> points{0, length};
    for (unsigned i = 0; i < cuts; ++i) {
        std::size_t v = data[1 + 2 * i] | std::size_t{data[2 + 2 * i]} << 8;
        points.push_back(v % (length + 1));
    }
    std::sort(points.begin(), points.end());

    std::vector<Record> want;
    bool wantCorrupt = false;
    const std::size_t consumed = reference(stream, length, want, wantCorrupt);

    weft::inotify::EventDecoder decoder;
    std::vector<Record> got;
    std::size_t sinceStop = 0;
    auto sink = [&](const weft::inotify::RawEvent& e) {
        got.push_back({e.wd, e.mask, e.cookie, std::string(e.name)});
        if (stopEvery != 0 && ++sinceStop == stopEvery) {
            sinceStop = 0;
            return false;
        }
        return true;
    };
    using Status = weft::inotify::EventDecoder::Status;
    Status status = Status::ok;
    for (std::size_t i = 0; i + 1 < points.size(); ++i) {
        auto chunk = std::as_bytes(std::span(stream + points[i], points[i + 1] - points[i]));
        status = decoder.feed(chunk, sink);
        if (status == Status::corrupt) break;
    }
    // What a stop left behind comes out of empty feeds; each stop delivered a record, so this ends.
    while (status == Status::stopped) status = decoder.feed({}, sink);

    if (got != want) __builtin_trap();
    if ((status == Status::corrupt) != wantCorrupt || decoder.corrupt() != wantCorrupt) __builtin_trap();
    if (!wantCorrupt && decoder.buffered() != length - consumed) __builtin_trap();
    if (wantCorrupt && decoder.buffered() != 0) __builtin_trap();
    if (wantCorrupt && decoder.feed(std::as_bytes(std::span(stream, length)), sink) != Status::corrupt)
        __builtin_trap();
    return 0;
}
