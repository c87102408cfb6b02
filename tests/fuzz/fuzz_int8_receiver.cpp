// libFuzzer target: Int8StringReceiver, fed a stream in any chunking, delivers what a
// reference parser makes of the whole stream, and drops the connection exactly
// when the reference says so (tests/fuzz/receivers.hpp).
#include <cstddef>
#include <cstdint>

#include "receivers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return fuzz::fuzzIntN<weft::basic::Int8StringReceiver>(data, size);
}
