// What the decoder tests of tests/pair share.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

namespace weft::test {

/// f() throws std::invalid_argument whose what() is exactly `message`
/// (addProto's checks, ETH-2, IP-3, RUDP-2).
inline void expectInvalid(const std::function<void()>& f, const std::string& message) {
    try {
        f();
        ADD_FAILURE() << "expected std::invalid_argument: " << message;
    } catch (const std::invalid_argument& e) {
        EXPECT_EQ(std::string(e.what()), message);
    }
}

}  // namespace weft::test
