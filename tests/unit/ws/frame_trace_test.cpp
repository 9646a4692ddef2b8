// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_trace.h"

#include <catch2/catch.hpp>

#include <string>

#include "portico/core/token_bucket.h"
#include "portico/ws/frame_tracer.h"

using namespace portico::ws;

namespace {

FrameHeader header(Opcode opcode, std::uint64_t length, bool fin = true, std::uint8_t rsv = 0, bool masked = false) {
    FrameHeader h;
    h.opcode = opcode;
    h.payload_length = length;
    h.fin = fin;
    h.rsv = rsv;
    h.masked = masked;
    return h;
}

std::string format(const TracedFrame& frame, std::size_t capacity = kMaxTraceLine) {
    std::string out(capacity, '\0');
    const std::size_t n = formatFrameTrace(out.data(), capacity, frame);
    out.resize(n);
    return out;
}

}  // namespace

TEST_CASE("trace line shows direction, opcode, FIN, RSV, mask and length", "[ws][trace]") {
    TracedFrame f;
    f.direction = TraceDirection::ClientToUpstream;
    f.header = header(Opcode::Binary, 70000, false, kRsv1, true);
    CHECK(format(f) == "client->upstream binary fin=0 rsv=100 mask=1 len=70000");
    f.direction = TraceDirection::PorticoToClient;
    f.header = header(Opcode::Ping, 7);
    CHECK(format(f) == "portico->client ping fin=1 rsv=000 mask=0 len=7");
    f.header = header(Opcode::Continuation, 0, true, kRsv2 | kRsv3);
    CHECK(format(f) == "portico->client continuation fin=1 rsv=011 mask=0 len=0");
}

TEST_CASE("trace line names a reserved opcode by its number", "[ws][trace]") {
    TracedFrame f;
    f.direction = TraceDirection::UpstreamToClient;
    f.header = header(static_cast<Opcode>(0xB), 0);
    CHECK(format(f) == "upstream->client reserved opcode=11 fin=1 rsv=000 mask=0 len=0");
}

TEST_CASE("trace line of a Close shows its code and reason", "[ws][trace]") {
    TracedFrame f;
    f.direction = TraceDirection::UpstreamToClient;
    const char payload[] = "\x03\xe8going \"away\"";
    f.close_payload = std::string_view(payload, sizeof payload - 1);
    f.header = header(Opcode::Close, f.close_payload.size());
    CHECK(format(f) == "upstream->client close fin=1 rsv=000 mask=0 len=14 code=1000 reason=\"going \\\"away\\\"\"");
    f.close_payload = {};
    f.header.payload_length = 0;
    CHECK(format(f) == "upstream->client close fin=1 rsv=000 mask=0 len=0 code=none");
    f.close_payload = std::string_view("\x03", 1);
    f.header.payload_length = 1;
    CHECK(format(f) == "upstream->client close fin=1 rsv=000 mask=0 len=1 code=malformed");
}

TEST_CASE("trace line escapes payload bytes and marks a cut payload", "[ws][trace]") {
    TracedFrame f;
    f.direction = TraceDirection::ClientToPortico;
    f.payload = std::string_view("a\"b\\c\nd\te\r\x01\x7f\xce\xba", 14);
    f.header = header(Opcode::Text, 14, true, 0, true);
    CHECK(format(f) ==
          "client->portico text fin=1 rsv=000 mask=1 len=14 payload=\"a\\\"b\\\\c\\nd\\te\\r\\x01\\x7f\\xce\\xba\"");
    f.payload = "hello";
    f.header.payload_length = 11;
    CHECK(format(f) == "client->portico text fin=1 rsv=000 mask=1 len=11 payload=\"hello\"...");
}

TEST_CASE("trace line is cut to the buffer, never beyond", "[ws][trace]") {
    TracedFrame f;
    f.header = header(Opcode::Text, 5);
    f.payload = "hello";
    CHECK(format(f, 17) == "client->upstream");
    char one[1] = {'x'};
    CHECK(formatFrameTrace(one, 1, f) == 0);
    CHECK(one[0] == '\0');
    // The longest payload and reason fit a line whole.
    std::string worst(256, '\x01');
    f.payload = worst;
    f.header.payload_length = 1u << 20;
    const std::string line = format(f);
    CHECK(line.size() < kMaxTraceLine - 1);
    CHECK(line.substr(line.size() - 4) == "\"...");
}

TEST_CASE("trace limiter lets trace_rate lines a second through and counts the rest", "[ws][trace]") {
    using Clock = portico::core::TokenBucket::Clock;
    TraceLimiter limiter(3, "/ws/");
    const Clock::time_point t0 = Clock::now();
    std::uint64_t suppressed = 99;
    for (int i = 0; i < 3; ++i) {
        REQUIRE(limiter.admit(t0, suppressed));
        CHECK(suppressed == 0);
    }
    for (int i = 0; i < 5; ++i) CHECK_FALSE(limiter.admit(t0, suppressed));
    // A third of a second later one token is back: the line written reports the 5 held back.
    REQUIRE(limiter.admit(t0 + std::chrono::milliseconds(334), suppressed));
    CHECK(suppressed == 5);
    CHECK_FALSE(limiter.admit(t0 + std::chrono::milliseconds(334), suppressed));
    REQUIRE(limiter.admit(t0 + std::chrono::milliseconds(700), suppressed));
    CHECK(suppressed == 1);
}
