// Basic protocols (protocols.md LR-1 … LR-11, LOR-1 … LOR-3, NS-1 … NS-4,
// INTN-1 … INTN-4, FS-1 … FS-4), against the in-memory transport doubles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <weft/failure.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/interfaces.hpp>
#include <weft/internet/task.hpp>
#include <weft/internet/testing.hpp>
#include <weft/log.hpp>
#include <weft/protocols/basic.hpp>

#include "support/reactortest.hpp"

using namespace weft;
using namespace weft::basic;
using weft::test::LeakCheckedTest;

namespace {

// A StringTransport that counts write and writeSequence calls.
class Transport : public weft::testing::StringTransport {
public:
    using StringTransport::StringTransport;
    void write(Bytes data) override {
        ++writes;
        StringTransport::write(data);
    }
    void writeSequence(std::span<const Bytes> chunks) override {
        sequences.push_back(chunks.size());
        StringTransport::writeSequence(chunks);
    }
    using StringTransport::write;
    int writes = 0;
    std::vector<std::size_t> sequences;
};

// Feeds `input` to `p` in chunks of `size` bytes.
template <class P>
void feed(P& p, std::string_view input, std::size_t size) {
    for (std::size_t i = 0; i < input.size(); i += size) p.dataReceived(asBytes(input.substr(i, size)));
}

template <class P>
std::shared_ptr<Transport> connect(P& p) {
    auto t = std::make_shared<Transport>();
    p.makeConnection(t);
    return t;
}

struct Lines : LineReceiver {
    std::vector<std::string> lines;
    std::vector<std::string> raw;
    std::vector<std::string> exceeded;
    int depth = 0;
    int maxDepth = 0;
    std::function<void(Lines&, std::string_view)> onLine;
    std::function<void(Lines&, std::string_view)> onRaw;
    bool keepDefaultOnExceeded = true;

    void lineReceived(std::string_view line) override {
        Depth d(*this);
        lines.emplace_back(line);
        if (onLine) onLine(*this, line);
    }
    void rawDataReceived(Bytes data) override {
        Depth d(*this);
        raw.emplace_back(asText(data));
        if (onRaw) onRaw(*this, asText(data));
    }
    void lineLengthExceeded(std::string_view line) override {
        exceeded.emplace_back(line);
        if (keepDefaultOnExceeded) LineReceiver::lineLengthExceeded(line);
    }
    using LineReceiver::bytesScanned;

private:
    struct Depth {
        explicit Depth(Lines& l) : l_(l) { l_.maxDepth = std::max(l_.maxDepth, ++l_.depth); }
        ~Depth() { --l_.depth; }
        Lines& l_;
    };
};

// A line receiver driven by its lines, in the manner of Twisted's LineTester:
// "" switches to raw mode for the `len N` bytes announced before it, then back
// with the rest; "pause"/"rawpause" pause until the clock runs; "stop" stops;
// an overlong line is dropped and what followed its first MAX_LENGTH + 1 bytes
// is received again.
struct Tester : LineReceiver {
    explicit Tester(task::Clock* c = nullptr) : clock(c) {
        delimiter = "\n";
        MAX_LENGTH = 64;
    }
    task::Clock* clock;
    std::vector<std::string> received;
    std::size_t length = 0;

    void lineReceived(std::string_view line) override {
        received.emplace_back(line);
        if (line.empty()) {
            setRawMode();
        } else if (line == "pause") {
            pauseProducing();
            clock->callLater(0, [this] { resumeProducing(); });
        } else if (line == "rawpause") {
            pauseProducing();
            setRawMode();
            received.emplace_back();
            clock->callLater(0, [this] { resumeProducing(); });
        } else if (line == "stop") {
            stopProducing();
        } else if (line.starts_with("len ")) {
            length = std::stoul(std::string(line.substr(4)));
        }
    }
    void rawDataReceived(Bytes bytes) override {
        std::string_view data = asText(bytes);
        std::size_t n = std::min(length, data.size());
        received.back() += data.substr(0, n);
        length -= n;
        if (length == 0) setLineMode(data.substr(n));
    }
    void lineLengthExceeded(std::string_view line) override {
        if (line.size() > MAX_LENGTH + 1) setLineMode(line.substr(MAX_LENGTH + 1));
    }
};

class LineReceiverTest : public LeakCheckedTest {};
class LineOnlyReceiverTest : public LeakCheckedTest {};
class NetstringReceiverTest : public LeakCheckedTest {};
class IntNStringReceiverTest : public LeakCheckedTest {};
class FileSenderTest : public LeakCheckedTest {};

// ---- LineReceiver ------------------------------------------------------------------

TEST_F(LineReceiverTest, LR_1_defaultsAndPerInstanceAttributes) {
    // LR-1: delimiter "\r\n", MAX_LENGTH 16384, line mode; both attributes settable per instance.
    Lines a, b;
    EXPECT_EQ(a.delimiter, "\r\n");
    EXPECT_EQ(a.MAX_LENGTH, 16384u);
    EXPECT_TRUE(a.lineMode());
    b.delimiter = "|";
    b.MAX_LENGTH = 3;
    feed(a, "x|y\r\n", 1);
    feed(b, "x|y\r\n", 1);
    EXPECT_EQ(a.lines, (std::vector<std::string>{"x|y"}));
    EXPECT_EQ(b.lines, (std::vector<std::string>{"x"}));
}

TEST_F(LineReceiverTest, LR_1_aDelimiterChangedBetweenReadsIsLookedForInAllThatIsBuffered) {
    // LR-1: the delimiter may be changed at any time. A search that failed resumes where it stopped only
    // for the same delimiter: "abc\r" was scanned for "\n", and a "\r\n" set before the next read
    // starts inside it ("abc\r\nxyz" came out as one line). A delimiter of the same length, or a
    // shorter one, may lie wholly in what was scanned for the other.
    struct Case {
        std::string before, first, after, second;
        std::vector<std::string> lines;
        std::string rest;
    };
    const std::vector<Case> cases = {
        {"\n", "abc\r", "\r\n", "\nxyz\r\n", {"abc", "xyz"}, ""},
        {"ab", "line|", "|", "next|", {"line", "next"}, ""},
        {"ab", "cdx", "cd", "y", {""}, "xy"},
    };
    for (const auto& c : cases) {
        Lines p;
        auto t = connect(p);
        p.delimiter = c.before;
        p.dataReceived(asBytes(c.first));
        p.delimiter = c.after;
        p.dataReceived(asBytes(c.second));
        EXPECT_EQ(p.lines, c.lines) << c.first << " then " << c.second;
        EXPECT_EQ(p.clearLineBuffer(), c.rest);
    }
}

TEST_F(LineReceiverTest, LR_2_everyChunkingGivesTheSameLines) {
    // LR-2: complete lines, delimiter removed, empty ones included, in order, whatever the chunking.
    std::string input = "first\r\n\r\nthird line\r\nsplit delimiter\r\n\r\r\nlast\r\npartial";
    std::vector<std::string> expected{"first", "", "third line", "split delimiter", "\r", "last"};
    for (std::size_t size = 1; size <= input.size(); ++size) {
        Lines p;
        auto t = connect(p);
        feed(p, input, size);
        EXPECT_EQ(p.lines, expected) << "chunks of " << size;
        EXPECT_EQ(p.clearLineBuffer(), "partial");
    }
}

TEST_F(LineReceiverTest, LR_2_delimiterSplitAcrossChunksAtTheMaximumLength) {
    // LR-2/LR-5: a line of MAX_LENGTH - 1 whose delimiter arrives split, followed by more, is one line.
    Tester p;
    p.MAX_LENGTH = 4;
    auto t = connect(p);
    p.dataReceived(asBytes("xxx"));
    p.dataReceived(asBytes("\n"));
    p.dataReceived(asBytes("xxx"));
    EXPECT_EQ(p.received, (std::vector<std::string>{"xxx"}));
    EXPECT_FALSE(t->disconnecting);

    Lines q;
    q.MAX_LENGTH = 4;
    auto u = connect(q);
    q.dataReceived(asBytes("xxx\r"));
    q.dataReceived(asBytes("\nxxx"));
    EXPECT_EQ(q.lines, (std::vector<std::string>{"xxx"}));
    EXPECT_FALSE(u->disconnecting);
}

TEST_F(LineReceiverTest, LR_2_commandsModesAndLongLinesUnderEveryChunking) {
    // LR-2, LR-4, LR-8: lines, raw stretches and an overlong line give the same result for chunk sizes 1-9.
    std::string input = "len 4\n\nabcdline after raw\nlen 3\n\nx\nyrest\n" + std::string(70, 'z') + "\nend\n";
    std::vector<std::string> expected{"len 4", "abcd", "line after raw", "len 3", "x\ny", "rest", "zzzzz", "end"};
    for (std::size_t size = 1; size < 10; ++size) {
        Tester p;
        auto t = connect(p);
        feed(p, input, size);
        EXPECT_EQ(p.received, expected) << "chunks of " << size;
    }
}

TEST_F(LineReceiverTest, LR_2_oneByteAtATimeScansEachByteOnce) {
    // LR-2 (issue #12: linear): a 1 MiB line fed a byte at a time is never re-scanned from its start.
    Lines p;
    p.MAX_LENGTH = 2 << 20;
    auto t = connect(p);
    constexpr std::size_t n = 1 << 20;
    std::byte x{'x'};
    for (std::size_t i = 0; i < n; ++i) p.dataReceived(Bytes(&x, 1));
    p.dataReceived(asBytes("\r"));
    p.dataReceived(asBytes("\n"));
    ASSERT_EQ(p.lines.size(), 1u);
    EXPECT_EQ(p.lines[0].size(), n);
    // Each call examines its new byte plus the one that could start "\r\n".
    EXPECT_LE(p.bytesScanned(), 2 * (n + 2));
}

TEST_F(LineReceiverTest, LR_2_manyShortLinesScanLinearly) {
    // LR-2: 100 000 lines in one chunk, then a byte at a time: every byte is examined about once.
    std::string input;
    for (int i = 0; i < 100000; ++i) input += "line " + std::to_string(i) + "\r\n";
    Lines p;
    auto t = connect(p);
    p.dataReceived(asBytes(input));
    feed(p, input, 1);
    ASSERT_EQ(p.lines.size(), 200000u);
    EXPECT_EQ(p.lines[199999], "line 99999");
    EXPECT_LE(p.bytesScanned(), 3 * input.size());
}

TEST_F(LineReceiverTest, LR_3_sendLineIsOneWrite) {
    // LR-3: sendLine writes line + delimiter with a single write.
    Lines p;
    p.delimiter = "\n";
    auto t = connect(p);
    p.sendLine("hello");
    p.sendLine("");
    EXPECT_EQ(t->value(), "hello\n\n");
    EXPECT_EQ(t->writes, 2);
}

TEST_F(LineReceiverTest, LR_4_aLineOfExactlyMaxLengthIsAccepted) {
    // LR-4: MAX_LENGTH bytes plus the delimiter make a line.
    Lines p;
    p.MAX_LENGTH = 10;
    auto t = connect(p);
    p.dataReceived(asBytes(std::string(10, 'a') + "\r\n"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{std::string(10, 'a')}));
    EXPECT_TRUE(p.exceeded.empty());
    EXPECT_FALSE(t->disconnecting);
}

TEST_F(LineReceiverTest, LR_4_aLongerLineComesWithItsDelimiterAndTheRest) {
    // LR-4: a longer line → lineLengthExceeded(line + delimiter + everything buffered), buffer emptied.
    Lines p;
    p.MAX_LENGTH = 10;
    p.keepDefaultOnExceeded = false;
    auto t = connect(p);
    p.dataReceived(asBytes("ok\r\n" + std::string(11, 'b') + "\r\nnext\r\npart"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{"ok"}));
    EXPECT_EQ(p.exceeded, (std::vector<std::string>{std::string(11, 'b') + "\r\nnext\r\npart"}));
    EXPECT_EQ(p.clearLineBuffer(), "");
    // An override that does not close gets the following lines.
    p.dataReceived(asBytes("after\r\n"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{"ok", "after"}));
}

TEST_F(LineReceiverTest, LR_5_noDelimiterWithinMaxLengthPlusItsLength) {
    // LR-5: without a delimiter, MAX_LENGTH + len(delimiter) buffered bytes → lineLengthExceeded(all), emptied.
    Lines p;
    p.MAX_LENGTH = 10;
    p.keepDefaultOnExceeded = false;
    auto t = connect(p);
    p.dataReceived(asBytes(std::string(10, 'c') + "\r"));  // may still be a line: fine
    EXPECT_TRUE(p.exceeded.empty());
    p.dataReceived(asBytes("c"));  // 12 bytes and no "\r\n"
    EXPECT_EQ(p.exceeded, (std::vector<std::string>{std::string(10, 'c') + "\rc"}));
    EXPECT_EQ(p.clearLineBuffer(), "");
    // A long unended line after a short one is caught the same way, one byte at a time.
    Lines q;
    q.MAX_LENGTH = 10;
    q.keepDefaultOnExceeded = false;
    auto u = connect(q);
    feed(q, "short\r\n" + std::string(12, 'd'), 1);
    EXPECT_EQ(q.lines, (std::vector<std::string>{"short"}));
    EXPECT_EQ(q.exceeded, (std::vector<std::string>{std::string(12, 'd')}));
}

TEST_F(LineReceiverTest, LR_6_theDefaultClosesTheConnectionWithAClearReason) {
    // LR-6: the default lineLengthExceeded closes the transport; weft logs and keeps why.
    Lines p;
    auto t = connect(p);
    p.dataReceived(asBytes(std::string(p.MAX_LENGTH + 1, 'x') + "\r\nr"));
    EXPECT_TRUE(t->disconnecting);
    ASSERT_TRUE(p.stopReason());
    const auto* why = p.stopReason()->get<LengthLimitExceededError>();
    ASSERT_NE(why, nullptr);
    EXPECT_EQ(why->limit, 16384u);
    EXPECT_EQ(why->length, 16384u + 4);
    EXPECT_STREQ(why->what(), "line of 16388 bytes exceeds MAX_LENGTH (16384 bytes)");
    auto logged = logs.flush(log::Level::warn);
    ASSERT_EQ(logged.size(), 1u);
    EXPECT_EQ(logged[0].message, "line of 16388 bytes exceeds MAX_LENGTH (16384 bytes); closing the connection");
    EXPECT_EQ(logged[0].prefix, "Lines");
    // Nothing more is delivered or buffered.
    p.dataReceived(asBytes("late\r\n"));
    EXPECT_TRUE(p.lines.empty());
    EXPECT_EQ(p.clearLineBuffer(), "");
}

TEST_F(LineReceiverTest, LR_7_aDisconnectingTransportStopsDeliveryAndKeepsTheRest) {
    // LR-7: "a\r\nquit\r\nb\r\n" with loseConnection on "quit" leaves "b\r\n" buffered.
    Lines p;
    p.onLine = [](Lines& self, std::string_view line) {
        if (line == "quit") self.transport->loseConnection();
    };
    auto t = connect(p);
    p.dataReceived(asBytes("a\r\nquit\r\nb\r\n"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{"a", "quit"}));
    EXPECT_EQ(p.clearLineBuffer(), "b\r\n");
}

TEST_F(LineReceiverTest, LR_7_stopReceivingIsTheNonNullReturnValue) {
    // LR-7: a callback's stop (Twisted: a non-null return) ends processing; the reason is kept and logged.
    Lines p;
    p.onLine = [](Lines& self, std::string_view line) {
        if (line == "bad") self.stopReceiving(Failure(std::runtime_error("bad command")));
    };
    auto t = connect(p);
    p.dataReceived(asBytes("a\r\nbad\r\nb\r\n"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{"a", "bad"}));
    ASSERT_TRUE(p.stopReason());
    EXPECT_EQ(p.stopReason()->getErrorMessage(), "bad command");
    EXPECT_TRUE(t->disconnecting);
    EXPECT_TRUE(p.paused());
    EXPECT_EQ(logs.flush(log::Level::warn).size(), 1u);
    p.dataReceived(asBytes("c\r\n"));
    EXPECT_EQ(p.lines.size(), 2u);
    // As with a disconnecting transport, the undelivered rest stays buffered; later input does not join it.
    EXPECT_EQ(p.clearLineBuffer(), "b\r\n");
}

TEST_F(LineReceiverTest, LR_7_reentrantCallsInsideLineReceived) {
    // LR-7/LR-8/LR-10: loseConnection, setRawMode, clearLineBuffer, a nested dataReceived and
    // dropping the transport, each from inside lineReceived, leave a consistent receiver.
    {
        Lines p;  // the transport goes away: delivery goes on (no transport is not a closing one)
        p.onLine = [](Lines& self, std::string_view line) {
            if (line == "drop") self.transport.reset();
        };
        auto t = connect(p);
        p.dataReceived(asBytes("drop\r\nafter\r\n"));
        EXPECT_EQ(p.lines, (std::vector<std::string>{"drop", "after"}));
    }
    {
        Lines p;  // nested input is queued behind the rest, and the view being delivered stays valid
        p.MAX_LENGTH = 200000;
        std::string seen;
        p.onLine = [&](Lines& self, std::string_view line) {
            if (line == "grow") {
                self.dataReceived(asBytes(std::string(100000, 'g') + "\r\n"));
                seen = std::string(line);  // still the same bytes (ASan checks the view)
            }
        };
        auto t = connect(p);
        p.dataReceived(asBytes("grow\r\nthen\r\n"));
        ASSERT_EQ(p.lines.size(), 3u);
        EXPECT_EQ(seen, "grow");
        EXPECT_EQ(p.lines[1], "then");
        EXPECT_EQ(p.lines[2].size(), 100000u);
        EXPECT_EQ(p.maxDepth, 1);
    }
    {
        Lines p;  // raw mode from a line: the rest of the buffer is one raw call
        p.onLine = [](Lines& self, std::string_view) { self.setRawMode(); };
        p.onRaw = [](Lines& self, std::string_view data) {
            if (data == "stop") self.transport->loseConnection();
        };
        auto t = connect(p);
        p.dataReceived(asBytes("head\r\nbody\r\nmore"));
        EXPECT_EQ(p.lines, (std::vector<std::string>{"head"}));
        EXPECT_EQ(p.raw, (std::vector<std::string>{"body\r\nmore"}));
    }
    {
        Lines p;  // loseConnection then clearLineBuffer: nothing left, nothing more delivered
        std::string cleared;
        p.onLine = [&](Lines& self, std::string_view) {
            self.transport->loseConnection();
            cleared = self.clearLineBuffer();
        };
        auto t = connect(p);
        p.dataReceived(asBytes("one\r\ntwo\r\nthr"));
        EXPECT_EQ(p.lines, (std::vector<std::string>{"one"}));
        EXPECT_EQ(cleared, "two\r\nthr");
        EXPECT_EQ(p.clearLineBuffer(), "");
    }
    {
        Lines p;  // an exception from lineReceived propagates; the receiver stays usable
        p.onLine = [](Lines&, std::string_view line) {
            if (line == "throw") throw std::runtime_error("boom");
        };
        auto t = connect(p);
        EXPECT_THROW(p.dataReceived(asBytes("throw\r\nnext\r\n")), std::runtime_error);
        p.dataReceived(asBytes("last\r\n"));
        EXPECT_EQ(p.lines, (std::vector<std::string>{"throw", "next", "last"}));
    }
}

TEST_F(LineReceiverTest, LR_8_rawModeGetsEverythingBufferedInOneCall) {
    // LR-8: setRawMode sends the buffered data and what follows to rawDataReceived; setLineMode(extra) parses extra.
    Lines p;
    p.onLine = [](Lines& self, std::string_view line) {
        if (line == "raw") self.setRawMode();
    };
    p.onRaw = [](Lines& self, std::string_view data) {
        if (data.starts_with("LINES:")) self.setLineMode(data.substr(6));
    };
    auto t = connect(p);
    p.dataReceived(asBytes("a\r\nraw\r\nxx\r\nyy"));
    EXPECT_EQ(p.raw, (std::vector<std::string>{"xx\r\nyy"}));
    p.dataReceived(asBytes("zz"));
    EXPECT_EQ(p.raw, (std::vector<std::string>{"xx\r\nyy", "zz"}));
    p.dataReceived(asBytes("LINES:b\r\nc\r\nd"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{"a", "raw", "b", "c"}));
    EXPECT_TRUE(p.lineMode());
    EXPECT_EQ(p.clearLineBuffer(), "d");
}

TEST_F(LineReceiverTest, LR_8_switchingModesNeverNests) {
    // LR-8: flipping modes on every byte (Twisted's test_stackRecursion) keeps the stack depth at one.
    struct Flipper : LineReceiver {
        std::string lines;
        int depth = 0, maxDepth = 0;
        void lineReceived(std::string_view line) override {
            maxDepth = std::max(maxDepth, ++depth);
            lines += line;
            setRawMode();
            --depth;
        }
        void rawDataReceived(Bytes data) override {
            maxDepth = std::max(maxDepth, ++depth);
            setLineMode(asText(data).substr(1));
            --depth;
        }
    } p;
    p.delimiter = "\n";
    auto t = connect(p);
    std::string input;
    for (int i = 0; i < 100000; ++i) input += "x\nx";
    p.dataReceived(asBytes(input));
    EXPECT_EQ(p.lines, std::string(100000, 'x'));
    EXPECT_EQ(p.maxDepth, 1);
}

TEST_F(LineReceiverTest, LR_9_stopReceivingFromRawDataStopsProcessing) {
    // LR-9: a stop from rawDataReceived (Twisted: a non-null return) ends processing.
    Lines p;
    p.onRaw = [](Lines& self, std::string_view) { self.stopReceiving(Failure(std::runtime_error("oops"))); };
    auto t = connect(p);
    p.setRawMode();
    p.dataReceived(asBytes("data"));
    p.dataReceived(asBytes("more"));
    EXPECT_EQ(p.raw, (std::vector<std::string>{"data"}));
    ASSERT_TRUE(p.stopReason());
    EXPECT_TRUE(p.stopReason()->check<std::runtime_error>());
    EXPECT_TRUE(t->disconnecting);
    logs.flush(log::Level::warn);
    // Raw mode without an override of rawDataReceived is a usage error, said as such.
    Lines q;
    EXPECT_THROW(q.LineReceiver::rawDataReceived(asBytes("x")), std::logic_error);
}

TEST_F(LineReceiverTest, LR_10_clearLineBufferReturnsAndDropsTheRest) {
    // LR-10: from lineReceived, clearLineBuffer returns the unprocessed bytes, which are then not delivered.
    Lines p;
    std::string rest;
    p.onLine = [&](Lines& self, std::string_view) { rest = self.clearLineBuffer(); };
    p.dataReceived(asBytes("foo\r\nbar\r\nbaz"));  // no transport: as Twisted's test
    EXPECT_EQ(p.lines, (std::vector<std::string>{"foo"}));
    EXPECT_EQ(rest, "bar\r\nbaz");
    p.dataReceived(asBytes("quux\r\n"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{"foo", "quux"}));
    EXPECT_EQ(rest, "");
}

TEST_F(LineReceiverTest, LR_11_pauseBuffersAndResumeDelivers) {
    // LR-11: a pause inside lineReceived holds the rest until resumeProducing, whatever the chunking.
    std::string input = "one\ntwo\npause\nthree\n";
    for (std::size_t size = 1; size < 10; ++size) {
        task::Clock clock;
        Tester p(&clock);
        auto t = connect(p);
        feed(p, input, size);
        EXPECT_EQ(p.received, (std::vector<std::string>{"one", "two", "pause"})) << size;
        EXPECT_EQ(t->producerState, weft::testing::StringTransport::ProducerState::paused);
        clock.advance(0);
        EXPECT_EQ(p.received, (std::vector<std::string>{"one", "two", "pause", "three"})) << size;
        EXPECT_EQ(t->producerState, weft::testing::StringTransport::ProducerState::producing);
    }
}

TEST_F(LineReceiverTest, LR_11_pauseInRawMode) {
    // LR-11: pausing and switching to raw mode at once; the raw data comes after the resume.
    std::string input = "one\nlen 3\nrawpause\nabcfour\n";
    for (std::size_t size = 1; size < 10; ++size) {
        task::Clock clock;
        Tester p(&clock);
        auto t = connect(p);
        feed(p, input, size);
        EXPECT_EQ(p.received, (std::vector<std::string>{"one", "len 3", "rawpause", ""})) << size;
        clock.advance(0);
        EXPECT_EQ(p.received, (std::vector<std::string>{"one", "len 3", "rawpause", "abc", "four"})) << size;
    }
}

TEST_F(LineReceiverTest, LR_11_stopProducingEndsDeliveryForGood) {
    // LR-11: stopProducing stops delivery for good and stops the transport.
    std::string input = "one\ntwo\nstop\nmore\nstuff\n";
    for (std::size_t size = 1; size < 10; ++size) {
        Tester p;
        auto t = connect(p);
        feed(p, input, size);
        EXPECT_EQ(p.received, (std::vector<std::string>{"one", "two", "stop"})) << size;
        EXPECT_EQ(t->producerState, weft::testing::StringTransport::ProducerState::stopped);
        EXPECT_TRUE(p.paused());
        // The rest of the chunk that held "stop\n" stays buffered, undelivered (LR-7); nothing later joins it.
        const std::size_t stopEnd = 13, chunkEnd = std::min(input.size(), (stopEnd + size - 1) / size * size);
        p.dataReceived(asBytes("late\n"));
        EXPECT_EQ(p.clearLineBuffer(), input.substr(stopEnd, chunkEnd - stopEnd)) << size;
    }
}

TEST_F(LineReceiverTest, LR_11_aConsumerThatPausesAfterEveryLine) {
    // LR-11: pausing after each line delivers one line per resumeProducing (Twisted's test_pauseResume).
    Lines p;
    p.onLine = [](Lines& self, std::string_view line) {
        self.transport->write(line);
        self.pauseProducing();
    };
    auto t = connect(p);
    using S = weft::testing::StringTransport::ProducerState;
    p.dataReceived(asBytes("hello, "));
    EXPECT_EQ(t->value(), "");
    EXPECT_FALSE(p.paused());
    p.dataReceived(asBytes("world\r\n"));
    EXPECT_EQ(t->value(), "hello, world");
    EXPECT_TRUE(p.paused());
    EXPECT_EQ(t->producerState, S::paused);
    p.resumeProducing();
    EXPECT_FALSE(p.paused());
    EXPECT_EQ(t->producerState, S::producing);
    p.dataReceived(asBytes("hello\r\nworld\r\n"));
    EXPECT_EQ(t->value(), "hello, worldhello");
    p.resumeProducing();
    EXPECT_EQ(t->value(), "hello, worldhelloworld");
    EXPECT_TRUE(p.paused());
    p.dataReceived(asBytes("goodbye\r\n"));
    EXPECT_EQ(t->value(), "hello, worldhelloworld");
    p.resumeProducing();
    EXPECT_EQ(t->value(), "hello, worldhelloworldgoodbye");
    EXPECT_TRUE(p.paused());
    p.resumeProducing();
    EXPECT_FALSE(p.paused());
    EXPECT_EQ(t->producerState, S::producing);
}

TEST_F(LineReceiverTest, receivedBytesHaveATextView) {
    // issue #12: asText views received bytes as text without a copy.
    std::string s = "text";
    Bytes b = asBytes(s);
    EXPECT_EQ(asText(b), "text");
    EXPECT_EQ(static_cast<const void*>(asText(b).data()), static_cast<const void*>(s.data()));
}

// ---- LineOnlyReceiver -------------------------------------------------------------

struct OnlyLines : LineOnlyReceiver {
    OnlyLines() {
        delimiter = "\n";
        MAX_LENGTH = 64;
    }
    std::vector<std::string> lines;
    std::vector<std::string> exceeded;
    std::function<void(OnlyLines&, std::string_view)> onLine;
    void lineReceived(std::string_view line) override {
        lines.emplace_back(line);
        if (onLine) onLine(*this, line);
    }
    void lineLengthExceeded(std::string_view line) override {
        exceeded.emplace_back(line);
        LineOnlyReceiver::lineLengthExceeded(line);
    }
    using LineOnlyReceiver::bytesScanned;
};

TEST_F(LineOnlyReceiverTest, LOR_1_splitsLinesUnderEveryChunkingAndSendsWithWriteSequence) {
    // LOR-1: lines as LR-1/LR-2; sendLine is writeSequence([line, delimiter]).
    std::string input = "foo\nbleakness\n\ndesolation\nplastic forks\n";
    for (std::size_t size = 1; size <= input.size(); ++size) {
        OnlyLines p;
        auto t = connect(p);
        feed(p, input, size);
        EXPECT_EQ(p.lines, (std::vector<std::string>{"foo", "bleakness", "", "desolation", "plastic forks"})) << size;
    }
    OnlyLines d;
    struct Defaults : LineOnlyReceiver {
        void lineReceived(std::string_view) override {}
    } defaults;
    EXPECT_EQ(defaults.delimiter, "\r\n");
    EXPECT_EQ(defaults.MAX_LENGTH, 16384u);
    auto t = connect(d);
    d.sendLine("hi");
    EXPECT_EQ(t->value(), "hi\n");
    EXPECT_EQ(t->sequences, (std::vector<std::size_t>{2}));
}

TEST_F(LineOnlyReceiverTest, LOR_1_oneByteAtATimeIsLinear) {
    // LOR-1 (issue #12: linear): a long line fed a byte at a time is scanned once.
    OnlyLines p;
    p.MAX_LENGTH = 1 << 20;
    auto t = connect(p);
    std::byte x{'x'};
    for (std::size_t i = 0; i < (1u << 20); ++i) p.dataReceived(Bytes(&x, 1));
    p.dataReceived(asBytes("\n"));
    ASSERT_EQ(p.lines.size(), 1u);
    EXPECT_EQ(p.lines[0].size(), 1u << 20);
    EXPECT_LE(p.bytesScanned(), (1u << 20) + 1);
}

TEST_F(LineOnlyReceiverTest, LOR_2_aDisconnectingTransportDropsTheCompleteLinesLeft) {
    // LOR-2: once disconnecting, the remaining complete lines are discarded and the partial one kept.
    OnlyLines p;
    p.onLine = [](OnlyLines& self, std::string_view line) {
        if (line == "quit") self.transport->loseConnection();
    };
    auto t = connect(p);
    p.dataReceived(asBytes("a\nquit\nb\nc\npart"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{"a", "quit"}));
    p.dataReceived(asBytes("ial\nd\n"));  // checked before every line, the first one too
    EXPECT_EQ(p.lines, (std::vector<std::string>{"a", "quit"}));
    p.dataReceived(asBytes(std::string(100, 'p')));  // the connection is ending: no limit check either
    EXPECT_TRUE(p.exceeded.empty());
    EXPECT_FALSE(p.stopReason());
}

TEST_F(LineOnlyReceiverTest, LOR_3_longLinesCompleteOrPartial) {
    // LOR-3: a long complete line → lineLengthExceeded(that line), rest dropped; a long partial line too.
    OnlyLines p;
    auto t = connect(p);
    p.dataReceived(asBytes("ok\n" + std::string(65, 'x') + "\nlost\n"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{"ok"}));
    EXPECT_EQ(p.exceeded, (std::vector<std::string>{std::string(65, 'x')}));
    EXPECT_TRUE(t->disconnecting);
    ASSERT_TRUE(p.stopReason());
    EXPECT_TRUE(p.stopReason()->check<LengthLimitExceededError>());
    logs.flush(log::Level::warn);

    OnlyLines q;
    auto u = connect(q);
    feed(q, std::string(66, 'y'), 1);
    EXPECT_EQ(q.exceeded, (std::vector<std::string>{std::string(65, 'y')}));
    EXPECT_TRUE(u->disconnecting);
    logs.flush(log::Level::warn);
}

TEST_F(LineOnlyReceiverTest, LOR_3_maxLengthThenTheFirstDelimiterByteIsFine) {
    // LOR-3 (Better than Twisted): MAX_LENGTH bytes and "\r", with "\n" still to come, is not rejected.
    struct Crlf : LineOnlyReceiver {
        std::vector<std::string> lines;
        void lineReceived(std::string_view line) override { lines.emplace_back(line); }
    } p;
    p.MAX_LENGTH = 8;
    auto t = connect(p);
    p.dataReceived(asBytes(std::string(8, 'z') + "\r"));
    EXPECT_FALSE(t->disconnecting);
    p.dataReceived(asBytes("\n"));
    EXPECT_EQ(p.lines, (std::vector<std::string>{std::string(8, 'z')}));
}

// ---- NetstringReceiver -------------------------------------------------------------

struct Netstrings : NetstringReceiver {
    std::vector<std::string> strings;
    void stringReceived(std::string_view s) override { strings.emplace_back(s); }
};

TEST_F(NetstringReceiverTest, NS_1_sendStringFramesTheString) {
    // NS-1: decimal length, ":", the string, ",".
    Netstrings p;
    auto t = connect(p);
    p.sendString("hello");
    p.sendString("");
    p.sendString(std::string(12, 'a'));
    EXPECT_EQ(t->value(), "5:hello,0:,12:aaaaaaaaaaaa,");
    EXPECT_EQ(t->writes, 3);
}

TEST_F(NetstringReceiverTest, NS_2_anyChunkingNestedEmptyAndSeveral) {
    // NS-2: netstrings across any chunking; payloads may hold ":" and ","; "0:," is an empty string.
    std::vector<std::string> strings{"hello", "world", "how",   "are", "you123", ":today", std::string(1000, 'a'),
                                     "",      "1:x,",  "a,b:c", "3:"};
    std::string input;
    for (auto& s : strings) input += std::to_string(s.size()) + ":" + s + ",";
    for (std::size_t size : {1, 2, 3, 4, 5, 7, 10, 100, 5000}) {
        Netstrings p;
        auto t = connect(p);
        feed(p, input, size);
        EXPECT_EQ(p.strings, strings) << "chunks of " << size;
        EXPECT_FALSE(p.brokenPeer);
        EXPECT_FALSE(t->disconnecting);
    }
}

TEST_F(NetstringReceiverTest, NS_3_malformedInputBreaksThePeer) {
    // NS-3: malformed input sets brokenPeer, closes, and delivers nothing for that netstring.
    for (std::string bad : {"9999999999999999999999", "abc", "4:abcde", "3:abcdefg", "3:abc;", "03:abc,", ":abc,",
                            "3abc,", "-3:abc,", " 3:abc,", "3 :abc,", "+3:abc,", "00:,", "3:ab"}) {
        for (std::size_t size : {1, 2, 100}) {
            Netstrings p;
            auto t = connect(p);
            feed(p, "2:ok," + bad, size);
            if (bad == "3:ab") {  // incomplete, not malformed: waits
                EXPECT_FALSE(p.brokenPeer);
                continue;
            }
            EXPECT_TRUE(p.brokenPeer) << bad << " in chunks of " << size;
            EXPECT_TRUE(t->disconnecting) << bad;
            EXPECT_EQ(p.strings, (std::vector<std::string>{"ok"})) << bad;
            ASSERT_TRUE(p.stopReason());
            EXPECT_TRUE(p.stopReason()->check<NetstringParseError>());
            // Later input is ignored.
            p.dataReceived(asBytes("1:x,"));
            EXPECT_EQ(p.strings.size(), 1u);
        }
    }
    logs.flush(log::Level::warn);
}

TEST_F(NetstringReceiverTest, NS_4_maxLengthIsInclusiveAndLongLengthsAreRefusedEarly) {
    // NS-4: MAX_LENGTH is accepted, one more refused; too many digits are refused before any colon.
    Netstrings p;
    p.MAX_LENGTH = 50;
    auto t = connect(p);
    p.dataReceived(asBytes("50:" + std::string(50, 'm') + ","));
    EXPECT_EQ(p.strings.size(), 1u);
    EXPECT_FALSE(p.brokenPeer);
    p.dataReceived(asBytes("51"));
    EXPECT_TRUE(p.brokenPeer);
    EXPECT_TRUE(t->disconnecting);

    Netstrings q;  // default 99999: six digits without a colon are already too many
    auto u = connect(q);
    q.dataReceived(asBytes("99999"));
    EXPECT_FALSE(q.brokenPeer);
    q.dataReceived(asBytes("9"));
    EXPECT_TRUE(q.brokenPeer);

    Netstrings r;  // the largest length is still accepted, byte by byte
    auto v = connect(r);
    feed(r, "99999:" + std::string(99999, 'q') + ",", 1);
    ASSERT_EQ(r.strings.size(), 1u);
    EXPECT_EQ(r.strings[0].size(), 99999u);
    logs.flush(log::Level::warn);
}

// ---- Int-prefixed strings ----------------------------------------------------------

template <class Base>
struct Prefixed : Base {
    std::vector<std::string> strings;
    std::vector<std::size_t> limits;
    std::function<void(Prefixed&, std::string_view)> onString;
    void stringReceived(std::string_view s) override {
        strings.emplace_back(s);
        if (onString) onString(*this, s);
    }
    void lengthLimitExceeded(std::size_t length) override {
        limits.push_back(length);
        Base::lengthLimitExceeded(length);
    }
};

std::string frame(std::size_t prefix, std::string_view s) {
    std::string out;
    for (std::size_t i = prefix; i-- > 0;) out += static_cast<char>(s.size() >> (8 * i) & 0xff);
    return out.append(s);
}

template <class R>
void checkIntN(std::size_t prefix) {
    // INTN-1: the prefix and the string in one write.
    Prefixed<R> p;
    auto t = connect(p);
    EXPECT_EQ(p.prefixLength, prefix);
    EXPECT_EQ(p.MAX_LENGTH, 99999u);
    p.sendString("foo");
    EXPECT_EQ(t->value(), frame(prefix, "foo"));
    EXPECT_EQ(t->value().size(), prefix + 3);
    EXPECT_EQ(t->value()[prefix - 1], '\x03');
    EXPECT_EQ(t->writes, 1);
}

TEST_F(IntNStringReceiverTest, INTN_1_sendStringWritesABigEndianPrefix) {
    // INTN-1: "foo" → \x03foo, \x00\x03foo, \x00\x00\x00\x03foo.
    checkIntN<Int8StringReceiver>(1);
    checkIntN<Int16StringReceiver>(2);
    checkIntN<Int32StringReceiver>(4);
    Prefixed<Int32StringReceiver> p;
    auto t = connect(p);
    p.sendString(std::string(0x010203, 'b'));
    EXPECT_EQ(t->value().substr(0, 4), std::string("\x00\x01\x02\x03", 4));
}

TEST_F(IntNStringReceiverTest, INTN_2_aLengthTooBigForThePrefixThrowsAndWritesNothing) {
    // INTN-2: >= 256 / >= 65536 throws StringTooLongError; MAX_LENGTH is not checked when sending.
    Prefixed<Int8StringReceiver> p8;
    auto t8 = connect(p8);
    p8.MAX_LENGTH = 10;
    EXPECT_THROW(p8.sendString(std::string(256, 'x')), StringTooLongError);
    EXPECT_EQ(t8->value(), "");
    p8.sendString(std::string(255, 'x'));
    EXPECT_EQ(t8->value().size(), 256u);
    Prefixed<Int16StringReceiver> p16;
    auto t16 = connect(p16);
    EXPECT_THROW(p16.sendString(std::string(65536, 'x')), StringTooLongError);
    EXPECT_EQ(t16->value(), "");
    p16.sendString(std::string(65535, 'x'));
    EXPECT_EQ(t16->value().size(), 65537u);
}

template <class R>
void checkReceive(std::size_t prefix) {
    std::vector<std::string> strings{"", "a", "", "hello world", std::string(300, 'z'), ""};
    if (prefix == 1) strings[4].resize(255);
    std::string input;
    for (auto& s : strings) input += frame(prefix, s);
    for (std::size_t size = 1; size < 12; ++size) {
        Prefixed<R> p;
        auto t = connect(p);
        feed(p, input + std::string(prefix, '\0').substr(1) /* an incomplete prefix */, size);
        EXPECT_EQ(p.strings, strings) << prefix << "-byte prefix, chunks of " << size;
    }
}

TEST_F(IntNStringReceiverTest, INTN_3_wholeStringsUnderEveryChunking) {
    // INTN-3: strings come whole, empty ones as empty; an incomplete one waits.
    checkReceive<Int8StringReceiver>(1);
    checkReceive<Int16StringReceiver>(2);
    checkReceive<Int32StringReceiver>(4);
    Prefixed<Int8StringReceiver> p;
    auto t = connect(p);
    p.dataReceived(
        asBytes(std::string("\x00\x00\x02"
                            "ab",
                            5)));
    EXPECT_EQ(p.strings, (std::vector<std::string>{"", "", "ab"}));
}

TEST_F(IntNStringReceiverTest, INTN_4_aLongPrefixStopsAtOnceAndIsNeverDelivered) {
    // INTN-4: a prefix over MAX_LENGTH → lengthLimitExceeded(length) at once; the string is never delivered.
    Prefixed<Int16StringReceiver> p;
    p.MAX_LENGTH = 10;
    auto t = connect(p);
    p.dataReceived(asBytes(frame(2, "ok") + std::string("\x00\x0b", 2)));
    EXPECT_EQ(p.limits, (std::vector<std::size_t>{11}));
    EXPECT_TRUE(t->disconnecting);
    ASSERT_TRUE(p.stopReason());
    EXPECT_EQ(p.stopReason()->getErrorMessage(), "string of 11 bytes exceeds MAX_LENGTH (10 bytes)");
    p.dataReceived(asBytes("abcdefghijk" + frame(2, "no")));
    EXPECT_EQ(p.strings, (std::vector<std::string>{"ok"}));
    EXPECT_EQ(p.limits.size(), 1u);

    Prefixed<Int32StringReceiver> q;  // complete but too long: not delivered either
    q.MAX_LENGTH = 3;
    auto u = connect(q);
    q.dataReceived(asBytes(frame(4, "four")));
    EXPECT_TRUE(q.strings.empty());
    EXPECT_EQ(q.limits, (std::vector<std::size_t>{4}));

    Prefixed<Int32StringReceiver> r;  // the largest prefix, without memory growing
    auto v = connect(r);
    r.dataReceived(asBytes(std::string("\xff\xff\xff\xff", 4)));
    EXPECT_EQ(r.limits, (std::vector<std::size_t>{0xffffffffu}));
    logs.flush(log::Level::warn);
}

TEST_F(IntNStringReceiverTest, LR_11_intNStringReceiverPausesLikeLineReceiver) {
    // LR-11 (the same applies to IntNStringReceiver): pause holds strings, resume delivers them.
    Prefixed<Int8StringReceiver> p;
    p.onString = [](Prefixed<Int8StringReceiver>& self, std::string_view) { self.pauseProducing(); };
    auto t = connect(p);
    p.dataReceived(asBytes(frame(1, "a") + frame(1, "b") + frame(1, "c")));
    EXPECT_EQ(p.strings, (std::vector<std::string>{"a"}));
    EXPECT_EQ(t->producerState, weft::testing::StringTransport::ProducerState::paused);
    p.resumeProducing();
    EXPECT_EQ(p.strings, (std::vector<std::string>{"a", "b"}));
    p.onString = nullptr;
    p.resumeProducing();
    EXPECT_EQ(p.strings, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_FALSE(p.paused());
    p.stopProducing();
    p.dataReceived(asBytes(frame(1, "d")));
    EXPECT_EQ(p.strings.size(), 3u);
    EXPECT_EQ(t->producerState, weft::testing::StringTransport::ProducerState::stopped);
}

// ---- FileSender --------------------------------------------------------------------

struct Outcome {
    bool fired = false;
    std::optional<std::byte> last;
    std::optional<Failure> failure;
};

void watch(Deferred<std::optional<std::byte>> d, Outcome& out) {
    d.addBoth([&out](Result<std::optional<std::byte>> r) {
        out.fired = true;
        if (r.ok()) out.last = r.value();
        else out.failure = r.failure();
    });
}

TEST_F(FileSenderTest, FS_1_registersAsAPullProducerAndReturnsADeferred) {
    // FS-1: beginFileTransfer registers the sender as a non-streaming producer.
    auto consumer = std::make_shared<weft::testing::StringTransport>();
    auto sender = std::make_shared<FileSender>();
    Outcome out;
    watch(sender->beginFileTransfer(std::make_shared<std::istringstream>("data"), consumer), out);
    EXPECT_EQ(consumer->producer.get(), static_cast<IProducer*>(sender.get()));
    EXPECT_EQ(consumer->streaming, std::optional<bool>(false));
    EXPECT_FALSE(out.fired);
    EXPECT_THROW(sender->beginFileTransfer(std::make_shared<std::istringstream>("x"), consumer), std::logic_error);
    // A consumer that already has a producer: nothing registered, no callback.
    auto other = std::make_shared<FileSender>();
    EXPECT_THROW(other->beginFileTransfer(std::make_shared<std::istringstream>("x"), consumer), std::runtime_error);
    sender->stopProducing();
    EXPECT_TRUE(out.failure);
}

TEST_F(FileSenderTest, FS_2_chunksOfAtMostChunkSizeThroughTheTransform) {
    // FS-2: each resumeProducing reads at most CHUNK_SIZE bytes, transformed, and writes them.
    auto consumer = std::make_shared<weft::testing::StringTransport>();
    auto sender = std::make_shared<FileSender>();
    EXPECT_EQ(sender->CHUNK_SIZE, 16384u);
    sender->CHUNK_SIZE = 4;
    Outcome out;
    watch(sender->beginFileTransfer(std::make_shared<std::istringstream>("abcdefghij"), consumer,
                                    [](std::string_view s) {
                                        std::string u(s);
                                        for (char& c : u) c = static_cast<char>(c - 'a' + 'A');
                                        return u;
                                    }),
          out);
    sender->resumeProducing();
    EXPECT_EQ(consumer->value(), "ABCD");
    sender->resumeProducing();
    EXPECT_EQ(consumer->value(), "ABCDEFGH");
    sender->resumeProducing();
    EXPECT_EQ(consumer->value(), "ABCDEFGHIJ");
    EXPECT_FALSE(out.fired);
    sender->resumeProducing();
    EXPECT_TRUE(out.fired);
    EXPECT_EQ(out.last, std::optional<std::byte>(std::byte{'J'}));
}

TEST_F(FileSenderTest, FS_3_theEndUnregistersAndFiresWithTheLastByte) {
    // FS-3: at the end the sender unregisters and fires with the last byte (empty when nothing was sent).
    auto consumer = std::make_shared<weft::testing::StringTransport>();
    auto sender = std::make_shared<FileSender>();
    Outcome out;
    watch(sender->beginFileTransfer(std::make_shared<std::istringstream>("Test content"), consumer), out);
    sender->resumeProducing();
    EXPECT_EQ(consumer->value(), "Test content");
    EXPECT_NE(consumer->producer, nullptr);
    sender->resumeProducing();
    EXPECT_EQ(consumer->producer, nullptr);
    EXPECT_TRUE(out.fired);
    EXPECT_FALSE(out.failure);
    EXPECT_EQ(out.last, std::optional<std::byte>(std::byte{'t'}));
    sender->resumeProducing();  // after the end: nothing
    sender->stopProducing();
    EXPECT_FALSE(out.failure);

    auto empty = std::make_shared<FileSender>();
    Outcome none;
    watch(empty->beginFileTransfer(std::make_shared<std::istringstream>(""), consumer), none);
    empty->resumeProducing();
    EXPECT_TRUE(none.fired);
    EXPECT_FALSE(none.last);
    EXPECT_EQ(consumer->producer, nullptr);
}

TEST_F(FileSenderTest, FS_4_stopProducingBeforeTheEndFails) {
    // FS-4: stopProducing before the end fails the Deferred; pauseProducing does nothing.
    auto consumer = std::make_shared<weft::testing::StringTransport>();
    auto sender = std::make_shared<FileSender>();
    sender->CHUNK_SIZE = 2;
    Outcome out;
    watch(sender->beginFileTransfer(std::make_shared<std::istringstream>("abcdef"), consumer), out);
    sender->resumeProducing();
    sender->pauseProducing();
    EXPECT_FALSE(out.fired);
    sender->stopProducing();
    ASSERT_TRUE(out.failure);
    EXPECT_EQ(out.failure->getErrorMessage(), "Consumer asked us to stop producing");
    sender->resumeProducing();  // the stream is released: nothing more is written
    EXPECT_EQ(consumer->value(), "ab");
}

TEST_F(FileSenderTest, FS_3_aStreamThatFailsFailsTheDeferred) {
    // FS-3 (Better than Twisted): a read error ends the transfer with a failure instead of an exception.
    struct Broken : std::streambuf {
        int_type underflow() override { throw std::runtime_error("disk on fire"); }
    };
    auto buf = std::make_shared<Broken>();
    auto file = std::shared_ptr<std::istream>(new std::istream(buf.get()), [buf](std::istream* s) { delete s; });
    auto consumer = std::make_shared<weft::testing::StringTransport>();
    auto sender = std::make_shared<FileSender>();
    Outcome out;
    watch(sender->beginFileTransfer(file, consumer), out);
    sender->resumeProducing();
    ASSERT_TRUE(out.failure);
    EXPECT_TRUE(out.failure->check<std::ios_base::failure>());
    EXPECT_EQ(consumer->producer, nullptr);
}

}  // namespace
