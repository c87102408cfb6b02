// weft/text.hpp: user-supplied bytes quoted for one-line messages (issue #10:
// raw bytes of the command line were echoed in error messages).
#include <gtest/gtest.h>

#include <string>

#include <weft/internet/endpoints.hpp>
#include <weft/text.hpp>

using namespace std::string_literals;

TEST(Text, quoteEscapesControlBytesQuotesAndBackslashes) {
    EXPECT_EQ(weft::quote("tcp:80"), "'tcp:80'");
    EXPECT_EQ(weft::quote("a\nb\rc\td"), "'a\\nb\\rc\\td'");
    EXPECT_EQ(weft::quote("\x1b[31m"), "'\\x1b[31m'");
    EXPECT_EQ(weft::quote("\x7f\x01"s), "'\\x7f\\x01'");
    EXPECT_EQ(weft::quote("it's a \\"), "'it\\'s a \\\\'");
    EXPECT_EQ(weft::quote("nul\0here"s), "'nul\\x00here'");
}

TEST(Text, quoteKeepsValidUtf8AndEscapesInvalidBytes) {
    EXPECT_EQ(weft::quote("caf\xc3\xa9"), "'caf\xc3\xa9'");            // é
    EXPECT_EQ(weft::quote("\xe2\x82\xac"), "'\xe2\x82\xac'");          // €
    EXPECT_EQ(weft::quote("\xf0\x9f\x98\x80"), "'\xf0\x9f\x98\x80'");  // an emoji
    EXPECT_EQ(weft::quote("\xff\xfe"), "'\\xff\\xfe'");
    EXPECT_EQ(weft::quote("\xc0\xaf"), "'\\xc0\\xaf'");           // overlong '/'
    EXPECT_EQ(weft::quote("\xed\xa0\x80"), "'\\xed\\xa0\\x80'");  // a surrogate
    EXPECT_EQ(weft::quote("\xc3"), "'\\xc3'");                    // truncated
    EXPECT_EQ(weft::quote("\xc2\x9b"), "'\\xc2\\x9b'");           // C1 CSI: a terminal control
}

TEST(Text, printableLeavesQuotesAndBackslashesButNoControlByte) {
    EXPECT_EQ(weft::printable("bad endpoint 'x': \\ ok"), "bad endpoint 'x': \\ ok");
    EXPECT_EQ(weft::printable("two\nlines"), "two\\nlines");
    std::string all;
    for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
    for (char c : weft::printable(all)) {
        auto b = static_cast<unsigned char>(c);
        EXPECT_FALSE(b < 0x20 || b == 0x7f) << "control byte " << int(b) << " left raw";
    }
}

TEST(Text, EP_1_endpointErrorsQuoteWhatTheUserTyped) {
    // EP-1/EP-5: a description with a newline or an escape sequence is named
    // in the error on one line, escaped.
    try {
        weft::parseEndpointDescription("tcp:80\\");
        ADD_FAILURE();
    } catch (const weft::InvalidEndpointDescription& e) {
        EXPECT_STREQ(e.what(), "endpoint description 'tcp:80\\\\' ends with a lone backslash");
    }
}
