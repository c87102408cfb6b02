// The endpoint description grammar (protocols.md EP-1..EP-4).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <weft/internet/endpoints.hpp>

using weft::EndpointDescription;
using weft::InvalidEndpointDescription;
using weft::parseEndpointDescription;
using weft::quoteStringArgument;
using Args = std::vector<std::string>;

TEST(EndpointGrammar, EP_1_fieldsSplitAtUnescapedColons) {
    // EP-1: fields split at unescaped ':'; positional fields keep their order.
    auto d = parseEndpointDescription("tcp:8000:127.0.0.1");
    EXPECT_EQ(d.args, (Args{"tcp", "8000", "127.0.0.1"}));
    EXPECT_TRUE(d.kwargs.empty());
}

TEST(EndpointGrammar, EP_1_firstEqualsSeparatesKeyLaterOnesAreLiteral) {
    // EP-1: within a field the first unescaped '=' separates key and value; later '=' are literal.
    auto d = parseEndpointDescription("tcp:port=80:query=a=b=c");
    EXPECT_EQ(d.args, (Args{"tcp"}));
    EXPECT_EQ(d.kwargs.at("port"), "80");
    EXPECT_EQ(d.kwargs.at("query"), "a=b=c");
}

TEST(EndpointGrammar, EP_1_backslashMakesNextCharacterLiteral) {
    // EP-1: '\:' → ':', '\=' → '=', '\\' → '\', '\x' → 'x'.
    auto d = parseEndpointDescription(R"(tcp6:80:interface=\:\:1:a\=b:c\\d:\x)");
    EXPECT_EQ(d.args, (Args{"tcp6", "80", "a=b", R"(c\d)", "x"}));
    EXPECT_EQ(d.kwargs.at("interface"), "::1");
}

TEST(EndpointGrammar, EP_1_repeatedKeyKeepsLastValueAndEmptyFieldsAreKept) {
    // EP-1: a repeated key keeps its last value; empty fields are kept; "=x" is key "" = "x".
    auto d = parseEndpointDescription("a::b:k=1:k=2:=x:e=");
    EXPECT_EQ(d.args, (Args{"a", "", "b"}));
    EXPECT_EQ(d.kwargs.at("k"), "2");
    EXPECT_EQ(d.kwargs.at(""), "x");
    EXPECT_EQ(d.kwargs.at("e"), "");
    EXPECT_EQ(d.kwargs.size(), 3u);
}

TEST(EndpointGrammar, EP_2_firstPositionalFieldIsTheTypeEmptyDescriptionIsTypeEmpty) {
    // EP-2: the first positional field names the type; an empty description is the unknown type "".
    EXPECT_EQ(parseEndpointDescription("unix:/tmp/sock:mode=600").type(), "unix");
    EXPECT_EQ(parseEndpointDescription("port=80:tcp").type(), "tcp");
    auto empty = parseEndpointDescription("");
    EXPECT_EQ(empty.type(), "");
    EXPECT_EQ(empty.args, (Args{""}));
}

TEST(EndpointGrammar, EP_3_trailingLoneBackslashIsInvalid) {
    // EP-3: a description ending in a lone backslash is invalid, and the error names the description.
    try {
        parseEndpointDescription(R"(tcp:80\)");
        FAIL() << "no exception";
    } catch (const InvalidEndpointDescription& e) {
        EXPECT_NE(std::string(e.what()).find(R"(tcp:80\)"), std::string::npos);
    }
    EXPECT_THROW(parseEndpointDescription("\\"), std::invalid_argument);
    EXPECT_NO_THROW(parseEndpointDescription(R"(tcp:80\\)"));  // an escaped backslash is fine
}

TEST(EndpointGrammar, EP_4_quotedValuesSurviveParsing) {
    // EP-4: quoteStringArgument escapes '\' and ':' so an interpolated value survives parsing as one field.
    EXPECT_EQ(quoteStringArgument(R"(C:\dir)"), R"(C\:\\dir)");
    EXPECT_EQ(quoteStringArgument("plain"), "plain");
    for (std::string value : {std::string("::1"), std::string(R"(a\b:c)"), std::string(R"(\)"), std::string("x=y"),
                              std::string("")}) {
        auto d = parseEndpointDescription("unix:path=" + quoteStringArgument(value) + ":" + quoteStringArgument(value));
        EXPECT_EQ(d.kwargs.at("path"), value);  // a keyword value may hold '=' unescaped
        if (value.find('=') != std::string::npos) continue;  // as Twisted: '=' in a positional field makes a keyword
        ASSERT_EQ(d.args.size(), 2u);
        EXPECT_EQ(d.args[1], value);
    }
    // '=' is not escaped (only '\' and ':' are), so a positional "x=y" reads as a keyword, as in Twisted.
    EXPECT_EQ(parseEndpointDescription("unix:" + quoteStringArgument("x=y")).kwargs.at("x"), "y");
}
