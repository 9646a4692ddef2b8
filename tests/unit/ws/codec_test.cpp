// SPDX-License-Identifier: Apache-2.0
// The codec of built-in endpoints, driven with evbuffers only, over the ground of the Autobahn
// TestSuite's cases 1-7 and 9 (and 12-13 for permessage-deflate at the end).

#include "portico/ws/codec.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <event2/buffer.h>

#include "portico/ws/close_code.h"
#include "portico/ws/frame_header.h"
#include "portico/ws/permessage_deflate.h"
#include "zlib_deflate_failure.h"

using namespace portico::ws;

namespace {

struct EvbufferFree {
    void operator()(evbuffer* b) const { evbuffer_free(b); }
};
using Evbuffer = std::unique_ptr<evbuffer, EvbufferFree>;
Evbuffer newEvbuffer() { return Evbuffer(evbuffer_new()); }

std::string takeAll(evbuffer* b) {
    std::string s(evbuffer_get_length(b), '\0');
    if (!s.empty()) evbuffer_remove(b, s.data(), s.size());
    return s;
}

constexpr std::uint8_t kTestMask[4] = {0x37, 0xFA, 0x21, 0x3D};

// One frame as a client would send it (masked unless `masked` is false).
std::string frame(Opcode op, std::string_view payload, bool fin = true, std::uint8_t rsv = 0, bool masked = true) {
    auto b = newEvbuffer();
    appendFrame(b.get(), op, fin, rsv, payload.data(), payload.size(), masked ? kTestMask : nullptr);
    return takeAll(b.get());
}

std::string closePayload(std::uint16_t code, std::string_view reason = {}) {
    std::string p;
    p.push_back(static_cast<char>(code >> 8));
    p.push_back(static_cast<char>(code & 0xFF));
    p.append(reason);
    return p;
}

struct Frame {
    FrameHeader header;
    std::string payload;
    std::uint16_t closeCode() const {
        if (payload.size() < 2) return 0;
        return static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) | static_cast<std::uint8_t>(payload[1]));
    }
};

// Parses every complete frame in `bytes`, unmasking masked ones.
std::vector<Frame> parseFrames(std::string_view bytes) {
    std::vector<Frame> frames;
    while (!bytes.empty()) {
        Frame f;
        const int n = parseFrameHeader(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), f.header);
        REQUIRE(n > 0);
        REQUIRE(bytes.size() >= n + f.header.payload_length);
        f.payload.assign(bytes.substr(static_cast<std::size_t>(n), static_cast<std::size_t>(f.header.payload_length)));
        if (f.header.masked)
            applyMask(reinterpret_cast<std::uint8_t*>(f.payload.data()), f.payload.size(), f.header.mask);
        bytes.remove_prefix(static_cast<std::size_t>(n + f.header.payload_length));
        frames.push_back(std::move(f));
    }
    return frames;
}

struct Recorder : CodecHandler {
    std::vector<std::pair<bool, std::string>> messages;
    std::vector<std::pair<std::uint16_t, std::string>> closes;
    std::vector<std::string> pongs;
    Codec* echo_to = nullptr;

    void onMessage(bool is_text, std::string_view payload) override {
        messages.emplace_back(is_text, std::string(payload));
        if (echo_to != nullptr) is_text ? echo_to->sendText(payload) : echo_to->sendBinary(payload);
    }
    void onClose(std::uint16_t code, std::string_view reason) override { closes.emplace_back(code, std::string(reason)); }
    void onPong(std::string_view payload) override { pongs.emplace_back(payload); }
};

// An echo endpoint: a server-role Codec whose handler sends every message back.
struct Endpoint {
    Evbuffer in = newEvbuffer();
    Evbuffer out = newEvbuffer();
    Recorder rec;
    Codec codec;

    explicit Endpoint(CodecOptions options = {}, bool echo = true) : codec(options, rec, out.get()) {
        if (echo) rec.echo_to = &codec;
    }
    CodecState feed(std::string_view bytes) {
        evbuffer_add(in.get(), bytes.data(), bytes.size());
        return codec.feed(in.get());
    }
    // Feeds one byte at a time (Autobahn 1.x "chopped" writes).
    CodecState feedChopped(std::string_view bytes, std::size_t piece = 1) {
        for (std::size_t i = 0; i < bytes.size(); i += piece) feed(bytes.substr(i, piece));
        return codec.state();
    }
    std::vector<Frame> output() { return parseFrames(takeAll(out.get())); }
    // The close code of the single Close frame expected at the end of the output.
    std::uint16_t failedWith() {
        auto frames = output();
        REQUIRE(!frames.empty());
        REQUIRE(frames.back().header.opcode == Opcode::Close);
        return frames.back().closeCode();
    }
};

std::string pattern(std::size_t n, unsigned seed = 1) {
    std::string s(n, '\0');
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>('a' + (x >> 16) % 26);
    }
    return s;
}

}  // namespace

// ---- 1: framing -------------------------------------------------------------------------------

TEST_CASE("codec echoes text and binary messages of every length class", "[ws][codec]") {
    const std::size_t lengths[] = {0, 1, 125, 126, 127, 128, 65535, 65536, 65537, 1 << 20};
    for (std::size_t len : lengths) {
        for (Opcode op : {Opcode::Text, Opcode::Binary}) {
            INFO("length " << len << " opcode " << toString(op));
            CodecOptions o;
            o.max_message_bytes = 2 << 20;
            Endpoint ep(o);
            const std::string payload = pattern(len);
            REQUIRE(ep.feed(frame(op, payload)) == CodecState::Open);
            REQUIRE(ep.rec.messages.size() == 1);
            CHECK(ep.rec.messages[0].first == (op == Opcode::Text));
            CHECK(ep.rec.messages[0].second == payload);
            auto out = ep.output();
            REQUIRE(out.size() == 1);
            CHECK(out[0].header.opcode == op);
            CHECK(out[0].header.fin);
            CHECK_FALSE(out[0].header.masked);  // RFC 6455 5.1: servers never mask
            CHECK(out[0].header.header_length == (len < 126 ? 2 : len <= 65535 ? 4 : 10));
            CHECK(out[0].payload == payload);
            CHECK(evbuffer_get_length(ep.in.get()) == 0);
        }
    }
}

TEST_CASE("codec reassembles frames fed one byte at a time", "[ws][codec]") {
    for (std::size_t len : {std::size_t{0}, std::size_t{125}, std::size_t{126}, std::size_t{65536}}) {
        Endpoint ep;
        const std::string payload = pattern(len, 7);
        const std::string bytes = frame(Opcode::Text, payload) + frame(Opcode::Ping, "hi") +
                                  frame(Opcode::Binary, payload.substr(0, len / 2));
        if (len <= 126) {
            ep.feedChopped(bytes, 1);
        } else {
            ep.feedChopped(bytes, 997);  // odd-sized writes across header/payload boundaries
        }
        REQUIRE(ep.codec.state() == CodecState::Open);
        REQUIRE(ep.rec.messages.size() == 2);
        CHECK(ep.rec.messages[0].second == payload);
        CHECK(ep.rec.messages[1].second == payload.substr(0, len / 2));
        auto out = ep.output();
        REQUIRE(out.size() == 3);
        CHECK(out[1].header.opcode == Opcode::Pong);
        CHECK(out[1].payload == "hi");
    }
}

TEST_CASE("codec waits for the 2 extra length bytes after 126 and the 8 after 127", "[ws][codec]") {
    Endpoint ep;
    const std::string bytes = frame(Opcode::Binary, pattern(70000));
    ep.feed(bytes.substr(0, 9));  // 2 + 8 length bytes, mask missing
    CHECK(evbuffer_get_length(ep.in.get()) == 9);
    CHECK(ep.rec.messages.empty());
    ep.feed(bytes.substr(9));
    REQUIRE(ep.rec.messages.size() == 1);
    CHECK(ep.rec.messages[0].second.size() == 70000);
}

TEST_CASE("codec fails a 64-bit length with the most significant bit set with 1002", "[ws][codec]") {
    Endpoint ep;
    std::string bytes = "\x82\xFF";
    bytes += std::string("\x80\x00\x00\x00\x00\x00\x00\x01", 8);
    bytes += std::string(reinterpret_cast<const char*>(kTestMask), 4);
    CHECK(ep.feed(bytes) == CodecState::Closed);
    CHECK(ep.codec.failed());
    CHECK(ep.failedWith() == close_code::kProtocolError);
}

// ---- 2: ping/pong -----------------------------------------------------------------------------

TEST_CASE("codec answers pings with payloads of 0 to 125 bytes with an identical pong", "[ws][codec]") {
    for (std::size_t len = 0; len <= 125; ++len) {
        Endpoint ep;
        std::string payload(len, '\0');
        for (std::size_t i = 0; i < len; ++i) payload[i] = static_cast<char>(i * 7);  // binary payload
        REQUIRE(ep.feed(frame(Opcode::Ping, payload)) == CodecState::Open);
        auto out = ep.output();
        REQUIRE(out.size() == 1);
        CHECK(out[0].header.opcode == Opcode::Pong);
        CHECK(out[0].payload == payload);
    }
}

TEST_CASE("codec fails a ping of 126 bytes with 1002", "[ws][codec]") {
    Endpoint ep;
    CHECK(ep.feed(frame(Opcode::Ping, std::string(126, 'x'))) == CodecState::Closed);
    CHECK(ep.failedWith() == close_code::kProtocolError);
}

TEST_CASE("codec ignores an unsolicited pong apart from reporting it", "[ws][codec]") {
    Endpoint ep;
    ep.feed(frame(Opcode::Pong, "unsolicited") + frame(Opcode::Text, "after"));
    CHECK(ep.codec.state() == CodecState::Open);
    REQUIRE(ep.rec.pongs.size() == 1);
    CHECK(ep.rec.pongs[0] == "unsolicited");
    auto out = ep.output();
    REQUIRE(out.size() == 1);
    CHECK(out[0].payload == "after");
}

TEST_CASE("codec answers each of ten pings sent in one burst", "[ws][codec]") {
    Endpoint ep;
    std::string bytes;
    for (int i = 0; i < 10; ++i) bytes += frame(Opcode::Ping, "p" + std::to_string(i));
    ep.feed(bytes);
    auto out = ep.output();
    REQUIRE(out.size() == 10);
    for (int i = 0; i < 10; ++i) CHECK(out[static_cast<std::size_t>(i)].payload == "p" + std::to_string(i));
}

TEST_CASE("codec sends pings and reports the pong", "[ws][codec]") {
    Endpoint ep;
    REQUIRE(ep.codec.sendPing("alive?"));
    CHECK_FALSE(ep.codec.sendPing(std::string(126, 'x')));
    auto out = ep.output();
    REQUIRE(out.size() == 1);
    CHECK(out[0].header.opcode == Opcode::Ping);
    CHECK(out[0].payload == "alive?");
    ep.feed(frame(Opcode::Pong, "alive?"));
    REQUIRE(ep.rec.pongs.size() == 1);
}

TEST_CASE("codec sends an unsolicited pong of at most 125 bytes, none after its Close", "[ws][codec]") {
    Endpoint ep;
    REQUIRE(ep.codec.sendPong("heartbeat"));
    CHECK(ep.codec.sendPong(std::string(125, 'x')));
    CHECK_FALSE(ep.codec.sendPong(std::string(126, 'x')));
    REQUIRE(ep.codec.sendClose(1000));
    CHECK_FALSE(ep.codec.sendPong("late"));
    auto out = ep.output();
    REQUIRE(out.size() == 3);
    CHECK(out[0].header.opcode == Opcode::Pong);
    CHECK(out[0].payload == "heartbeat");
    CHECK(out[1].payload.size() == 125);
    CHECK(out[2].header.opcode == Opcode::Close);
}

// ---- 3: reserved bits -------------------------------------------------------------------------

TEST_CASE("codec fails any RSV bit without a negotiated extension with 1002", "[ws][codec]") {
    for (std::uint8_t rsv = 1; rsv <= 7; ++rsv) {
        for (Opcode op : {Opcode::Text, Opcode::Binary, Opcode::Ping, Opcode::Close}) {
            INFO("rsv " << int(rsv) << " opcode " << toString(op));
            Endpoint ep;
            // A valid message first: the failure must not eat what came before.
            ep.feed(frame(Opcode::Text, "ok") + frame(op, op == Opcode::Close ? closePayload(1000) : "x", true, rsv));
            CHECK(ep.codec.state() == CodecState::Closed);
            auto out = ep.output();
            REQUIRE(out.size() == 2);
            CHECK(out[0].payload == "ok");
            CHECK(out[1].closeCode() == close_code::kProtocolError);
        }
    }
}

// ---- 4: opcodes -------------------------------------------------------------------------------

TEST_CASE("codec fails every reserved opcode with 1002", "[ws][codec]") {
    for (int op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
        INFO("opcode " << op);
        Endpoint ep;
        ep.feed(frame(static_cast<Opcode>(op), "reserved"));
        CHECK(ep.codec.state() == CodecState::Closed);
        CHECK(ep.codec.closeCodeSent() == close_code::kProtocolError);
        CHECK(ep.failedWith() == close_code::kProtocolError);
        CHECK(ep.rec.messages.empty());
    }
}

// ---- 5: fragmentation -------------------------------------------------------------------------

TEST_CASE("codec reassembles a fragmented message with control frames between fragments", "[ws][codec]") {
    Endpoint ep;
    ep.feed(frame(Opcode::Text, "frag", false) + frame(Opcode::Ping, "mid") + frame(Opcode::Continuation, "men", false) +
            frame(Opcode::Pong, "x") + frame(Opcode::Continuation, "ted", true));
    REQUIRE(ep.codec.state() == CodecState::Open);
    REQUIRE(ep.rec.messages.size() == 1);
    CHECK(ep.rec.messages[0] == std::make_pair(true, std::string("fragmented")));
    auto out = ep.output();
    REQUIRE(out.size() == 2);
    CHECK(out[0].header.opcode == Opcode::Pong);  // the pong goes out before the message ends
    CHECK(out[1].payload == "fragmented");
    CHECK(ep.codec.messagesIn() == 1);
}

TEST_CASE("codec accepts empty fragments, including an empty final one", "[ws][codec]") {
    Endpoint ep;
    ep.feed(frame(Opcode::Binary, "", false) + frame(Opcode::Continuation, "", false) + frame(Opcode::Continuation, "ab", false) +
            frame(Opcode::Continuation, "", true));
    REQUIRE(ep.rec.messages.size() == 1);
    CHECK(ep.rec.messages[0] == std::make_pair(false, std::string("ab")));
}

TEST_CASE("codec fails a continuation without a started message with 1002", "[ws][codec]") {
    for (bool fin : {true, false}) {
        Endpoint ep;
        ep.feed(frame(Opcode::Continuation, "orphan", fin));
        CHECK(ep.failedWith() == close_code::kProtocolError);
    }
}

TEST_CASE("codec fails a new message started inside another with 1002", "[ws][codec]") {
    for (Opcode second : {Opcode::Text, Opcode::Binary}) {
        Endpoint ep;
        ep.feed(frame(Opcode::Text, "one", false) + frame(second, "two", true));
        CHECK(ep.failedWith() == close_code::kProtocolError);
        CHECK(ep.rec.messages.empty());
    }
}

TEST_CASE("codec fails a fragmented control frame with 1002", "[ws][codec]") {
    for (Opcode op : {Opcode::Ping, Opcode::Pong, Opcode::Close}) {
        Endpoint ep;
        ep.feed(frame(op, "", false));
        CHECK(ep.failedWith() == close_code::kProtocolError);
    }
}

// ---- 6: UTF-8 ---------------------------------------------------------------------------------

namespace {
// Autobahn 6.x style payloads; Python's bytes.decode("utf-8") agrees with each verdict.
const std::vector<std::string> kInvalidUtf8 = {
    "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64",  // surrogate
    "\xF4\x90\x80\x80",              // above U+10FFFF
    "\xC0\xAF", "\xE0\x80\xAF", "\xF0\x80\x80\xAF",  // overlong '/'
    "\xC1\xBF", "\xE0\x9F\xBF", "\xF0\x8F\xBF\xBF",  // overlong maximums
    "\x80", "\xBF", "\x80\xBF\x80",  // lone continuation bytes
    "\xC0 ", "\xE0\x80 ", "\xF8\x88\x80\x80\x80", "\xFC\x84\x80\x80\x80\x80",  // bad leads
    "\xFE", "\xFF", "\xFE\xFE\xFF\xFF",
    "\xED\xA0\x80", "\xED\xAD\xBF", "\xED\xBF\xBF", "\xED\xA0\x80\xED\xB0\x80",  // surrogates
    "\xCE\xBA\xE1\xBD",              // truncated at the end of the message
    "\xE2\x82",                      // truncated 3-byte sequence
    "\xF0\x9F\x98",                  // truncated 4-byte sequence
};
const std::vector<std::string> kValidUtf8 = {
    "", "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!",
    "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",
    "\x00", "\x7F", "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF",
    "\xED\x9F\xBF", "\xEE\x80\x80", "\xEF\xBF\xBE", "\xF0\x9F\x98\x80",
};
}  // namespace

TEST_CASE("codec fails text messages with invalid UTF-8 with 1007", "[ws][codec][utf8]") {
    for (const std::string& bad : kInvalidUtf8) {
        INFO("payload size " << bad.size());
        Endpoint ep;
        ep.feed(frame(Opcode::Text, bad));
        CHECK(ep.codec.state() == CodecState::Closed);
        CHECK(ep.failedWith() == close_code::kInvalidPayload);
        CHECK(ep.rec.messages.empty());
    }
}

TEST_CASE("codec delivers text messages with valid UTF-8, whole and split in every place", "[ws][codec][utf8]") {
    for (const std::string& good : kValidUtf8) {
        for (std::size_t cut = 0; cut <= good.size(); ++cut) {
            Endpoint ep;
            ep.feed(frame(Opcode::Text, good.substr(0, cut), false) + frame(Opcode::Continuation, good.substr(cut), true));
            REQUIRE(ep.codec.state() == CodecState::Open);
            REQUIRE(ep.rec.messages.size() == 1);
            CHECK(ep.rec.messages[0].second == good);
        }
    }
}

TEST_CASE("codec fails invalid UTF-8 split across fragments with 1007", "[ws][codec][utf8]") {
    for (const std::string& bad : kInvalidUtf8) {
        for (std::size_t cut = 0; cut <= bad.size(); ++cut) {
            Endpoint ep;
            ep.feed(frame(Opcode::Text, bad.substr(0, cut), false) + frame(Opcode::Continuation, bad.substr(cut), true));
            CHECK(ep.failedWith() == close_code::kInvalidPayload);
        }
    }
}

TEST_CASE("codec fails invalid UTF-8 fast: in the first fragment, and mid-frame", "[ws][codec][utf8]") {
    SECTION("first fragment") {
        Endpoint ep;
        // Autobahn 6.4.x: the invalid part arrives before the rest of the message exists.
        ep.feed(frame(Opcode::Text, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90\x80\x80", false));
        CHECK(ep.codec.state() == CodecState::Closed);
        CHECK(ep.failedWith() == close_code::kInvalidPayload);
    }
    SECTION("mid-frame") {
        Endpoint ep;
        const std::string bytes = frame(Opcode::Text, std::string("valid \xF4\x90\x80\x80") + std::string(1000, 'x'));
        ep.feed(bytes.substr(0, 20));  // header (8 bytes) and the invalid sequence, not the rest
        CHECK(ep.codec.state() == CodecState::Closed);
        CHECK(ep.failedWith() == close_code::kInvalidPayload);
        ep.feed(bytes.substr(20));  // the rest is discarded
        CHECK(ep.output().empty());
    }
    SECTION("binary messages are not checked") {
        Endpoint ep;
        ep.feed(frame(Opcode::Binary, "\xFF\xFE"));
        CHECK(ep.codec.state() == CodecState::Open);
        CHECK(ep.rec.messages.size() == 1);
    }
}

// ---- 7: close handling ------------------------------------------------------------------------

TEST_CASE("codec echoes valid close codes and completes the handshake", "[ws][codec][close]") {
    for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
        INFO("code " << code);
        Endpoint ep;
        CHECK(ep.feed(frame(Opcode::Close, closePayload(code, "bye"))) == CodecState::Closed);
        CHECK_FALSE(ep.codec.failed());
        REQUIRE(ep.rec.closes.size() == 1);
        CHECK(ep.rec.closes[0] == std::make_pair(code, std::string("bye")));
        CHECK(ep.codec.closeCodeReceived() == code);
        auto out = ep.output();
        REQUIRE(out.size() == 1);
        CHECK(out[0].closeCode() == code);
    }
}

TEST_CASE("codec fails invalid close codes with 1002", "[ws][codec][close]") {
    for (std::uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        INFO("code " << code);
        Endpoint ep;
        ep.feed(frame(Opcode::Close, closePayload(code)));
        CHECK(ep.codec.failed());
        CHECK(ep.failedWith() == close_code::kProtocolError);
        CHECK(ep.rec.closes.empty());
    }
}

TEST_CASE("codec answers an empty close with an empty close and reports 1005", "[ws][codec][close]") {
    Endpoint ep;
    ep.feed(frame(Opcode::Close, ""));
    CHECK(ep.codec.state() == CodecState::Closed);
    REQUIRE(ep.rec.closes.size() == 1);
    CHECK(ep.rec.closes[0].first == close_code::kNoStatus);
    auto out = ep.output();
    REQUIRE(out.size() == 1);
    CHECK(out[0].header.opcode == Opcode::Close);
    CHECK(out[0].payload.empty());
}

TEST_CASE("codec fails a close payload of 1 byte with 1002", "[ws][codec][close]") {
    Endpoint ep;
    ep.feed(frame(Opcode::Close, "\x03"));
    CHECK(ep.failedWith() == close_code::kProtocolError);
}

TEST_CASE("codec fails a close reason that is not UTF-8 with 1007", "[ws][codec][close]") {
    Endpoint ep;
    ep.feed(frame(Opcode::Close, closePayload(1000, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64")));
    CHECK(ep.failedWith() == close_code::kInvalidPayload);
}

TEST_CASE("codec accepts a close with a 123-byte reason and fails one of 124", "[ws][codec][close]") {
    Endpoint ok;
    ok.feed(frame(Opcode::Close, closePayload(1000, std::string(123, '*'))));
    CHECK_FALSE(ok.codec.failed());
    Endpoint bad;
    bad.feed(frame(Opcode::Close, closePayload(1000, std::string(124, '*'))));  // 126-byte control frame
    CHECK(bad.failedWith() == close_code::kProtocolError);
}

TEST_CASE("codec ignores everything after the close", "[ws][codec][close]") {
    Endpoint ep;
    ep.feed(frame(Opcode::Close, closePayload(1000)) + frame(Opcode::Text, "late") + frame(Opcode::Ping, ""));
    CHECK(ep.rec.messages.empty());
    CHECK(ep.output().size() == 1);
    CHECK(evbuffer_get_length(ep.in.get()) == 0);
    CHECK_FALSE(ep.codec.sendText("no"));
    CHECK(ep.output().empty());
}

TEST_CASE("codec closing first waits for the peer's close and then is closed", "[ws][codec][close]") {
    Endpoint ep;
    REQUIRE(ep.codec.sendClose(close_code::kGoingAway, "shutting down"));
    CHECK(ep.codec.state() == CodecState::CloseSent);
    CHECK_FALSE(ep.codec.sendText("after close"));
    auto out = ep.output();
    REQUIRE(out.size() == 1);
    CHECK(out[0].closeCode() == close_code::kGoingAway);
    CHECK(out[0].payload.substr(2) == "shutting down");
    // Data and pings still arriving are read but neither delivered nor answered.
    ep.feed(frame(Opcode::Text, "in flight") + frame(Opcode::Ping, "p"));
    CHECK(ep.codec.state() == CodecState::CloseSent);
    CHECK(ep.rec.messages.empty());
    ep.feed(frame(Opcode::Close, closePayload(close_code::kGoingAway)));
    CHECK(ep.codec.state() == CodecState::Closed);
    CHECK_FALSE(ep.codec.failed());
    CHECK(ep.output().empty());  // no second Close
}

TEST_CASE("codec cuts a long close reason at a character boundary", "[ws][codec][close]") {
    Endpoint ep;
    std::string reason;
    for (int i = 0; i < 50; ++i) reason += "\xE2\x82\xAC";  // 150 bytes of euro signs
    ep.codec.sendClose(1000, reason);
    auto out = ep.output();
    REQUIRE(out.size() == 1);
    CHECK(out[0].payload.size() == 2 + 123);
    ClosePayload parsed;
    CHECK(parseClosePayload(reinterpret_cast<const std::uint8_t*>(out[0].payload.data()), out[0].payload.size(), parsed) == 0);
}

// ---- masking and limits -----------------------------------------------------------------------

TEST_CASE("codec fails an unmasked client frame with 1002", "[ws][codec]") {
    for (Opcode op : {Opcode::Text, Opcode::Binary, Opcode::Ping, Opcode::Close}) {
        Endpoint ep;
        ep.feed(frame(op, "", true, 0, false));
        CHECK(ep.failedWith() == close_code::kProtocolError);
    }
}

TEST_CASE("codec fails a message over max_message_bytes with 1009", "[ws][codec][limits]") {
    CodecOptions o;
    o.max_message_bytes = 1000;
    SECTION("exactly the limit passes") {
        Endpoint ep(o);
        ep.feed(frame(Opcode::Binary, std::string(1000, 'x')));
        CHECK(ep.rec.messages.size() == 1);
    }
    SECTION("one frame one byte over, failed on its header alone") {
        Endpoint ep(o);
        const std::string bytes = frame(Opcode::Binary, std::string(1001, 'x'));
        ep.feed(bytes.substr(0, 8));
        CHECK(ep.failedWith() == close_code::kMessageTooBig);
    }
    SECTION("fragments adding up to more") {
        Endpoint ep(o);
        ep.feed(frame(Opcode::Text, std::string(600, 'x'), false) + frame(Opcode::Continuation, std::string(401, 'x'), true));
        CHECK(ep.failedWith() == close_code::kMessageTooBig);
    }
    SECTION("the limit is per message") {
        Endpoint ep(o);
        for (int i = 0; i < 5; ++i) ep.feed(frame(Opcode::Text, std::string(900, 'x')));
        CHECK(ep.rec.messages.size() == 5);
    }
}

TEST_CASE("codec carries 16 MiB messages in one frame and in 1024 fragments", "[ws][codec][limits]") {
    CodecOptions o;
    o.max_message_bytes = 16 << 20;
    const std::string big = pattern(16 << 20, 3);
    SECTION("one frame, fed in 64 KiB reads") {
        Endpoint ep(o, false);
        ep.feedChopped(frame(Opcode::Binary, big), 65536);
        REQUIRE(ep.rec.messages.size() == 1);
        CHECK(ep.rec.messages[0].second == big);
    }
    SECTION("fragments") {
        Endpoint ep(o, false);
        const std::size_t piece = big.size() / 1024;
        std::string bytes;
        for (std::size_t i = 0; i < 1024; ++i)
            bytes += frame(i == 0 ? Opcode::Text : Opcode::Continuation, std::string_view(big).substr(i * piece, piece), i == 1023);
        ep.feed(bytes);
        REQUIRE(ep.rec.messages.size() == 1);
        CHECK(ep.rec.messages[0].second == big);
    }
}

TEST_CASE("codec handles many small messages in one read", "[ws][codec][limits]") {
    Endpoint ep;
    std::string bytes;
    for (int i = 0; i < 10000; ++i) bytes += frame(Opcode::Text, std::to_string(i));
    ep.feed(bytes);
    REQUIRE(ep.rec.messages.size() == 10000);
    CHECK(ep.rec.messages[9999].second == "9999");
    CHECK(ep.output().size() == 10000);
    CHECK(ep.codec.messagesIn() == 10000);
    CHECK(ep.codec.messagesOut() == 10000);
}

// ---- client role ------------------------------------------------------------------------------

TEST_CASE("codec keeps no message memory between bursts and still takes big messages", "[ws][codec][limits]") {
    Endpoint e;
    // A small message in one piece is delivered where it lies: nothing to keep.
    e.feed(frame(Opcode::Text, "hello"));
    CHECK(e.codec.heldBytes() == 0);
    // A big one arriving in two bursts is reassembled: memory while it is half-way, none after.
    const std::string big = pattern(300 * 1024);
    const std::string bytes = frame(Opcode::Binary, big);
    e.feed(std::string_view(bytes).substr(0, bytes.size() / 2));
    CHECK(e.codec.heldBytes() > 0);
    e.feed(std::string_view(bytes).substr(bytes.size() / 2));
    CHECK(e.codec.heldBytes() == 0);
    // A fragmented message keeps its first part until the final fragment.
    e.feed(frame(Opcode::Text, "frag", false));
    CHECK(e.codec.heldBytes() > 0);
    e.feed(frame(Opcode::Continuation, "ment"));
    CHECK(e.codec.heldBytes() == 0);
    e.feed(frame(Opcode::Binary, "after"));
    CHECK(e.codec.heldBytes() == 0);
    REQUIRE(e.rec.messages.size() == 4);
    CHECK(e.rec.messages[0] == std::make_pair(true, std::string("hello")));
    CHECK(e.rec.messages[1] == std::make_pair(false, big));
    CHECK(e.rec.messages[2] == std::make_pair(true, std::string("fragment")));
    CHECK(e.rec.messages[3] == std::make_pair(false, std::string("after")));
    const auto out = e.output();
    REQUIRE(out.size() == 4);
    CHECK(out[1].payload == big);
    CHECK(e.codec.state() == CodecState::Open);
}

TEST_CASE("codec in the client role masks what it sends and rejects masked input", "[ws][codec]") {
    CodecOptions o;
    o.role = Role::Client;
    Endpoint client(o, false);
    REQUIRE(client.codec.sendText(pattern(300)));
    auto out = client.output();
    REQUIRE(out.size() == 1);
    CHECK(out[0].header.masked);
    CHECK(out[0].payload == pattern(300));

    client.feed(frame(Opcode::Text, "from server", true, 0, false));
    REQUIRE(client.rec.messages.size() == 1);
    client.feed(frame(Opcode::Text, "masked", true, 0, true));
    CHECK(client.failedWith() == close_code::kProtocolError);
}

// ---- 12-13: permessage-deflate ----------------------------------------------------------------

namespace {

// A client and a server codec wired back to back with agreed deflate parameters.
struct DeflatePair {
    Evbuffer c2s = newEvbuffer();
    Evbuffer s2c = newEvbuffer();
    Recorder server_rec;
    Recorder client_rec;
    Codec server;
    Codec client;

    static CodecOptions options(Role role, const DeflateParams& p, std::size_t max = 1 << 20) {
        CodecOptions o;
        o.role = role;
        o.deflate = p;
        o.deflate_min_bytes = 0;
        o.max_message_bytes = max;
        return o;
    }
    DeflatePair(const DeflateParams& server_params, const DeflateParams& client_params)
        : server(options(Role::Server, server_params), server_rec, s2c.get()),
          client(options(Role::Client, client_params), client_rec, c2s.get()) {
        server_rec.echo_to = &server;
    }
    // Client sends, server echoes, client receives.
    void roundTrip() {
        server.feed(c2s.get());
        client.feed(s2c.get());
    }
};

}  // namespace

TEST_CASE("codec inflates and deflates messages under every negotiated window and takeover combination",
          "[ws][codec][deflate]") {
    const std::vector<std::string> messages = {
        pattern(1000, 1) + pattern(1000, 1),  // repeats inside a message
        pattern(1000, 1),                     // repeats the previous message: context takeover
        "",                                   // empty message
        "short",
        std::string(100000, 'a') + pattern(5000, 9),  // larger than the 64 KiB output chunk
        pattern(2000, 5),
    };
    for (int smwb = 8; smwb <= 15; ++smwb) {
        for (int cmwb = 8; cmwb <= 15; ++cmwb) {
            for (int takeover = 0; takeover < 4; ++takeover) {
                DeflateParams p;
                p.server_max_window_bits = static_cast<std::uint8_t>(smwb);
                p.client_max_window_bits = static_cast<std::uint8_t>(cmwb);
                p.server_no_context_takeover = (takeover & 1) != 0;
                p.client_no_context_takeover = (takeover & 2) != 0;
                INFO("smwb " << smwb << " cmwb " << cmwb << " no_context_takeover mask " << takeover);
                DeflatePair pair(p, p);
                for (const auto& m : messages) {
                    INFO("message of " << m.size() << " client " << toString(pair.client.state()) << " sent "
                                       << pair.client.closeCodeSent() << " server " << toString(pair.server.state())
                                       << " sent " << pair.server.closeCodeSent());
                    REQUIRE(pair.client.sendText(m));
                    pair.roundTrip();
                }
                REQUIRE(pair.server.state() == CodecState::Open);
                REQUIRE(pair.client.state() == CodecState::Open);
                REQUIRE(pair.server_rec.messages.size() == messages.size());
                REQUIRE(pair.client_rec.messages.size() == messages.size());
                for (std::size_t i = 0; i < messages.size(); ++i) {
                    CHECK(pair.server_rec.messages[i].second == messages[i]);
                    CHECK(pair.client_rec.messages[i].second == messages[i]);
                }
            }
        }
    }
}

TEST_CASE("codec compresses with RSV1 and shrinks a repeated message under context takeover", "[ws][codec][deflate]") {
    DeflateParams p;
    CodecOptions o;
    o.deflate = p;
    o.deflate_min_bytes = 0;
    Endpoint ep(o, false);
    const std::string m = pattern(4000, 11);
    REQUIRE(ep.codec.sendText(m));
    REQUIRE(ep.codec.sendText(m));
    auto out = ep.output();
    REQUIRE(out.size() == 2);
    CHECK(out[0].header.rsv == kRsv1);
    CHECK(out[1].header.rsv == kRsv1);
    CHECK(out[0].payload.size() < m.size());
    CHECK(out[1].payload.size() < out[0].payload.size() / 10);  // refers back to message 1
}

TEST_CASE("codec sends a message uncompressed when zlib fails without context takeover", "[ws][codec][deflate]") {
    CodecOptions o;
    o.deflate = DeflateParams{};
    o.deflate->server_no_context_takeover = true;
    o.deflate_min_bytes = 0;
    Endpoint ep(o, false);
    const std::string m = pattern(4000, 12);
    {
        portico::test::ZlibDeflateFailure failing;
        REQUIRE(ep.codec.sendText(m));
        CHECK(portico::test::ZlibDeflateFailure::refused() > 0);
    }
    REQUIRE(ep.codec.sendText(m));  // and after it, whatever state zlib was left in
    CHECK(ep.codec.state() == CodecState::Open);
    auto out = ep.output();
    REQUIRE(out.size() == 2);
    CHECK(out[0].header.opcode == Opcode::Text);
    CHECK(out[0].header.rsv == 0);
    CHECK(out[0].payload == m);
    // Only the failed message went uncompressed: the next is compressed from a fresh stream.
    CHECK(out[1].header.rsv == kRsv1);
    CHECK(out[1].payload.size() < m.size());
}

TEST_CASE("codec fails the connection with 1011 when zlib fails under context takeover", "[ws][codec][deflate]") {
    CodecOptions o;
    o.deflate = DeflateParams{};
    o.deflate_min_bytes = 0;
    Endpoint ep(o, false);
    portico::test::ZlibDeflateFailure failing;
    CHECK_FALSE(ep.codec.sendText(pattern(4000, 13)));
    CHECK(ep.failedWith() == close_code::kInternalError);
}

TEST_CASE("codec sends short messages uncompressed under permessage-deflate", "[ws][codec][deflate]") {
    CodecOptions o;
    o.deflate = DeflateParams{};
    o.deflate_min_bytes = 64;
    Endpoint ep(o, false);
    ep.codec.sendText("tiny");
    auto out = ep.output();
    REQUIRE(out.size() == 1);
    CHECK(out[0].header.rsv == 0);
    CHECK(out[0].payload == "tiny");
}

TEST_CASE("codec accepts a compressed message split into fragments", "[ws][codec][deflate]") {
    DeflateParams p;
    Deflater d(15, false);
    ByteBuffer z;
    const std::string m = pattern(3000, 2) + pattern(3000, 2);
    REQUIRE(d.compress(reinterpret_cast<const std::uint8_t*>(m.data()), m.size(), z));
    const std::string_view zs = z.view();
    CodecOptions o;
    o.deflate = p;
    Endpoint ep(o, false);
    // RSV1 on the first frame only (RFC 7692 6.1).
    ep.feed(frame(Opcode::Text, zs.substr(0, 10), false, kRsv1) + frame(Opcode::Ping, "") +
            frame(Opcode::Continuation, zs.substr(10, 1), false) + frame(Opcode::Continuation, zs.substr(11), true));
    REQUIRE(ep.codec.state() == CodecState::Open);
    REQUIRE(ep.rec.messages.size() == 1);
    CHECK(ep.rec.messages[0].second == m);
}

TEST_CASE("codec fails RSV1 on a continuation or control frame under permessage-deflate with 1002", "[ws][codec][deflate]") {
    CodecOptions o;
    o.deflate = DeflateParams{};
    SECTION("continuation") {
        Endpoint ep(o);
        ep.feed(frame(Opcode::Text, "a", false) + frame(Opcode::Continuation, "b", true, kRsv1));
        CHECK(ep.failedWith() == close_code::kProtocolError);
    }
    SECTION("ping") {
        Endpoint ep(o);
        ep.feed(frame(Opcode::Ping, "", true, kRsv1));
        CHECK(ep.failedWith() == close_code::kProtocolError);
    }
    SECTION("rsv2") {
        Endpoint ep(o);
        ep.feed(frame(Opcode::Text, "a", true, kRsv2));
        CHECK(ep.failedWith() == close_code::kProtocolError);
    }
}

TEST_CASE("codec fails a compressed message that inflates beyond the limit with 1009", "[ws][codec][deflate]") {
    Deflater d(15, false, 9);
    ByteBuffer z;
    const std::string zeros(10 << 20, '\0');  // 10 MiB of zeros deflate to about 10 KiB
    REQUIRE(d.compress(reinterpret_cast<const std::uint8_t*>(zeros.data()), zeros.size(), z));
    REQUIRE(z.size() < 20000);
    CodecOptions o;
    o.deflate = DeflateParams{};
    o.max_message_bytes = 1 << 20;
    Endpoint ep(o);
    ep.feed(frame(Opcode::Binary, z.view(), true, kRsv1));
    CHECK(ep.failedWith() == close_code::kMessageTooBig);
}

TEST_CASE("codec fails compressed data that does not inflate with 1007", "[ws][codec][deflate]") {
    CodecOptions o;
    o.deflate = DeflateParams{};
    Endpoint ep(o);
    ep.feed(frame(Opcode::Binary, "\xFF\xFF\xFF\xFF\xFF", true, kRsv1));
    CHECK(ep.failedWith() == close_code::kInvalidPayload);
}

TEST_CASE("codec fails compressed text that inflates to invalid UTF-8 with 1007", "[ws][codec][deflate]") {
    Deflater d(15, false);
    ByteBuffer z;
    const std::string bad = std::string(500, 'a') + "\xED\xA0\x80";
    REQUIRE(d.compress(reinterpret_cast<const std::uint8_t*>(bad.data()), bad.size(), z));
    CodecOptions o;
    o.deflate = DeflateParams{};
    Endpoint ep(o);
    ep.feed(frame(Opcode::Text, z.view(), true, kRsv1));
    CHECK(ep.failedWith() == close_code::kInvalidPayload);
}

TEST_CASE("codec encodes a message once for fan-out", "[ws][codec][deflate]") {
    auto shared = newEvbuffer();
    REQUIRE(Codec::encodeMessage(shared.get(), true, "broadcast", 9, nullptr));
    Deflater stateless(15, true);
    const std::string big = pattern(500, 4) + pattern(500, 4);
    REQUIRE(Codec::encodeMessage(shared.get(), false, big.data(), big.size(), &stateless, 64));
    auto frames = parseFrames(takeAll(shared.get()));
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].payload == "broadcast");
    CHECK(frames[0].header.rsv == 0);
    CHECK(frames[1].header.rsv == kRsv1);
    CHECK(frames[1].header.opcode == Opcode::Binary);
    // Any subscriber that agreed permessage-deflate inflates the same bytes.
    for (int subscriber = 0; subscriber < 3; ++subscriber) {
        Inflater inf(15, false);
        ByteBuffer plain;
        const auto* zp = reinterpret_cast<const std::uint8_t*>(frames[1].payload.data());
        REQUIRE(inf.inflate(zp, frames[1].payload.size(), plain, 1 << 20) == Inflater::Status::Ok);
        REQUIRE(inf.finish(plain, 1 << 20) == Inflater::Status::Ok);
        CHECK(plain.view() == big);
    }
}

TEST_CASE("codec takes a compressed message with an empty payload as an empty message", "[ws][codec][deflate]") {
    CodecOptions o;
    o.deflate = DeflateParams{};
    Endpoint ep(o, false);
    Deflater d(15, false);
    ByteBuffer z;
    const std::string m = pattern(300, 8);
    REQUIRE(d.compress(reinterpret_cast<const std::uint8_t*>(m.data()), m.size(), z));
    ep.feed(frame(Opcode::Text, "", true, kRsv1) + frame(Opcode::Text, z.view(), true, kRsv1));
    REQUIRE(ep.codec.state() == CodecState::Open);
    REQUIRE(ep.rec.messages.size() == 2);
    CHECK(ep.rec.messages[0].second.empty());
    CHECK(ep.rec.messages[1].second == m);
}

TEST_CASE("codec under permessage-deflate still takes uncompressed messages", "[ws][codec][deflate]") {
    CodecOptions o;
    o.deflate = DeflateParams{};
    Endpoint ep(o, false);
    ep.feed(frame(Opcode::Text, "plain", false) + frame(Opcode::Continuation, " text", true));
    REQUIRE(ep.rec.messages.size() == 1);
    CHECK(ep.rec.messages[0].second == "plain text");
}

namespace {
std::string drain(evbuffer* b) {
    std::string s(evbuffer_get_length(b), '\0');
    evbuffer_remove(b, s.data(), s.size());
    return s;
}
}  // namespace

TEST_CASE("appendShared keeps every byte of frames spread over many chains, copied or referenced", "[ws][codec]") {
    // Shared frames built by several encodeMessage calls (a history slice) span several chains;
    // the copy path once took only the first two (evbuffer_peek with -1 stops at the vector).
    for (std::size_t size : {std::size_t{20}, std::size_t{1500}, std::size_t{3000}}) {
        std::unique_ptr<evbuffer, decltype(&evbuffer_free)> shared(evbuffer_new(), evbuffer_free);
        std::string expected;
        for (int i = 0; i < 5; ++i) {
            const std::string m(size / 5 + static_cast<std::size_t>(i), static_cast<char>('a' + i));
            std::unique_ptr<evbuffer, decltype(&evbuffer_free)> one(evbuffer_new(), evbuffer_free);
            REQUIRE(Codec::encodeMessage(one.get(), true, m.data(), m.size(), nullptr));
            evbuffer_add_buffer(shared.get(), one.get());  // moves the chain: one chain per message
        }
        {
            std::unique_ptr<evbuffer, decltype(&evbuffer_free)> copy(evbuffer_new(), evbuffer_free);
            evbuffer_add_buffer_reference(copy.get(), shared.get());
            expected = drain(copy.get());
        }
        REQUIRE(evbuffer_peek(shared.get(), -1, nullptr, nullptr, 0) >= 3);
        std::unique_ptr<evbuffer, decltype(&evbuffer_free)> out(evbuffer_new(), evbuffer_free);
        evbuffer_add(out.get(), "x", 1);
        Codec::appendShared(out.get(), shared.get());
        Codec::appendShared(out.get(), shared.get());
        CHECK(drain(out.get()) == "x" + expected + expected);
        CHECK(evbuffer_get_length(shared.get()) == expected.size());  // not consumed
    }
}
