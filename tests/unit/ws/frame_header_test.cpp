// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_header.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <event2/buffer.h>

using namespace portico::ws;

namespace {

struct EvbufferFree {
    void operator()(evbuffer* b) const { evbuffer_free(b); }
};
using Evbuffer = std::unique_ptr<evbuffer, EvbufferFree>;

std::vector<std::uint8_t> bytes(std::initializer_list<int> list) {
    std::vector<std::uint8_t> v;
    for (int b : list) v.push_back(static_cast<std::uint8_t>(b));
    return v;
}

}  // namespace

TEST_CASE("frame parser reads the RFC 6455 5.7 examples", "[ws][frame]") {
    FrameHeader h;
    SECTION("unmasked 'Hello'") {
        auto b = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
        REQUIRE(parseFrameHeader(b.data(), b.size(), h) == 2);
        CHECK(h.fin);
        CHECK(h.opcode == Opcode::Text);
        CHECK_FALSE(h.masked);
        CHECK(h.payload_length == 5);
    }
    SECTION("masked 'Hello'") {
        auto b = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
        REQUIRE(parseFrameHeader(b.data(), b.size(), h) == 6);
        CHECK(h.masked);
        CHECK(h.mask[0] == 0x37);
        CHECK(h.mask[3] == 0x3d);
        applyMask(b.data() + 6, 5, h.mask);
        CHECK(std::string(reinterpret_cast<char*>(b.data() + 6), 5) == "Hello");
    }
    SECTION("fragmented: first and last") {
        auto first = bytes({0x01, 0x03, 0x48, 0x65, 0x6c});
        REQUIRE(parseFrameHeader(first.data(), first.size(), h) == 2);
        CHECK_FALSE(h.fin);
        CHECK(h.opcode == Opcode::Text);
        auto last = bytes({0x80, 0x02, 0x6c, 0x6f});
        REQUIRE(parseFrameHeader(last.data(), last.size(), h) == 2);
        CHECK(h.fin);
        CHECK(h.opcode == Opcode::Continuation);
    }
    SECTION("256 bytes binary in one unmasked message") {
        auto b = bytes({0x82, 0x7E, 0x01, 0x00});
        REQUIRE(parseFrameHeader(b.data(), b.size(), h) == 4);
        CHECK(h.opcode == Opcode::Binary);
        CHECK(h.payload_length == 256);
    }
    SECTION("64 KiB binary in one unmasked message") {
        auto b = bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00});
        REQUIRE(parseFrameHeader(b.data(), b.size(), h) == 10);
        CHECK(h.payload_length == 65536);
    }
}

TEST_CASE("frame parser waits for the 2 extra length bytes after 126", "[ws][frame]") {
    FrameHeader h;
    auto b = bytes({0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4});
    for (std::size_t n = 0; n < b.size(); ++n) CHECK(parseFrameHeader(b.data(), n, h) == 0);
    CHECK(parseFrameHeader(b.data(), b.size(), h) == 8);
}

TEST_CASE("frame parser waits for the 8 extra length bytes after 127", "[ws][frame]") {
    FrameHeader h;
    auto b = bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4});
    for (std::size_t n = 0; n < b.size(); ++n) CHECK(parseFrameHeader(b.data(), n, h) == 0);
    CHECK(parseFrameHeader(b.data(), b.size(), h) == 14);
    CHECK(h.payload_length == 65536);
}

TEST_CASE("frame parser rejects a 64-bit length with the most significant bit set", "[ws][frame]") {
    FrameHeader h;
    auto b = bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0});
    CHECK(parseFrameHeader(b.data(), b.size(), h) < 0);
    auto max = bytes({0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
    CHECK(parseFrameHeader(max.data(), max.size(), h) == 10);
    CHECK(h.payload_length == 0x7FFFFFFFFFFFFFFFULL);
}

TEST_CASE("frame parser accepts non-minimal length encodings", "[ws][frame]") {
    FrameHeader h;
    auto b16 = bytes({0x82, 0x7E, 0x00, 0x05});
    REQUIRE(parseFrameHeader(b16.data(), b16.size(), h) == 4);
    CHECK(h.payload_length == 5);
    auto b64 = bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x7D});
    REQUIRE(parseFrameHeader(b64.data(), b64.size(), h) == 10);
    CHECK(h.payload_length == 125);
}

TEST_CASE("frame parser reports RSV bits and reserved opcodes without judging them", "[ws][frame]") {
    FrameHeader h;
    for (int rsv = 0; rsv < 8; ++rsv) {
        for (int op = 0; op < 16; ++op) {
            const std::uint8_t b[2] = {static_cast<std::uint8_t>(0x80 | (rsv << 4) | op), 0x00};
            REQUIRE(parseFrameHeader(b, 2, h) == 2);
            CHECK(h.rsv == rsv);
            CHECK(static_cast<int>(h.opcode) == op);
            CHECK(isControl(h.opcode) == (op >= 8));
            CHECK(isKnownOpcode(h.opcode) == (op <= 2 || (op >= 8 && op <= 10)));
        }
    }
}

TEST_CASE("frame writer uses the minimal encoding and round-trips through the parser", "[ws][frame]") {
    const std::uint64_t lengths[] = {0, 1, 125, 126, 127, 65535, 65536, 1ULL << 32, 0x7FFFFFFFFFFFFFFFULL};
    const std::uint8_t mask[4] = {1, 2, 3, 4};
    for (std::uint64_t len : lengths) {
        for (bool masked : {false, true}) {
            std::uint8_t out[kMaxFrameHeaderBytes];
            const std::size_t n = writeFrameHeader(out, false, kRsv1 | kRsv3, Opcode::Binary, len, masked ? mask : nullptr);
            const std::size_t expected = (len < 126 ? 2 : len <= 65535 ? 4 : 10) + (masked ? 4 : 0);
            CHECK(n == expected);
            FrameHeader h;
            REQUIRE(parseFrameHeader(out, n, h) == static_cast<int>(n));
            CHECK_FALSE(h.fin);
            CHECK(h.rsv == (kRsv1 | kRsv3));
            CHECK(h.opcode == Opcode::Binary);
            CHECK(h.payload_length == len);
            CHECK(h.masked == masked);
            if (masked) CHECK(std::memcmp(h.mask, mask, 4) == 0);
        }
    }
}

TEST_CASE("frame header peek copies out of an evbuffer without draining", "[ws][frame]") {
    Evbuffer buf(evbuffer_new());
    FrameHeader h;
    CHECK(peekFrameHeader(buf.get(), h) == 0);
    // Spread the header over several chains.
    static const std::uint8_t part1[] = {0x82, 0xFE};
    static const std::uint8_t part2[] = {0x01};
    static const std::uint8_t part3[] = {0x00, 9, 9, 9, 9, 0xAA};
    evbuffer_add_reference(buf.get(), part1, sizeof part1, nullptr, nullptr);
    CHECK(peekFrameHeader(buf.get(), h) == 0);
    evbuffer_add_reference(buf.get(), part2, sizeof part2, nullptr, nullptr);
    evbuffer_add_reference(buf.get(), part3, sizeof part3, nullptr, nullptr);
    REQUIRE(peekFrameHeader(buf.get(), h) == 8);
    CHECK(h.payload_length == 256);
    CHECK(evbuffer_get_length(buf.get()) == 9);
}

TEST_CASE("masking in pieces at any offset equals masking at once", "[ws][frame]") {
    const std::uint8_t mask[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    std::vector<std::uint8_t> data(1000);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 31);
    auto whole = data;
    applyMask(whole.data(), whole.size(), mask);
    for (std::size_t i = 0; i < whole.size(); ++i) REQUIRE(whole[i] == (data[i] ^ mask[i % 4]));
    for (std::size_t cut : {1, 3, 5, 7, 8, 13, 17, 500, 999}) {
        auto pieces = data;
        applyMask(pieces.data(), cut, mask, 0);
        applyMask(pieces.data() + cut, pieces.size() - cut, mask, cut);
        CHECK(pieces == whole);
    }
}

TEST_CASE("removeUnmasked unmasks across evbuffer chains while draining", "[ws][frame]") {
    const std::uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    std::vector<std::uint8_t> plain(3000);
    for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<std::uint8_t>(i);
    auto masked = plain;
    applyMask(masked.data(), masked.size(), mask);
    Evbuffer buf(evbuffer_new());
    // 20 chains of varied sizes.
    std::size_t pos = 0;
    for (std::size_t size = 1; pos < masked.size(); size = size * 2 + 1) {
        const std::size_t n = std::min(size, masked.size() - pos);
        evbuffer_add_reference(buf.get(), masked.data() + pos, n, nullptr, nullptr);
        pos += n;
    }
    std::vector<std::uint8_t> out(plain.size());
    REQUIRE(removeUnmasked(buf.get(), out.data(), 1001, mask, 0));
    REQUIRE(removeUnmasked(buf.get(), out.data() + 1001, 1999, mask, 1001));
    CHECK(out == plain);
    CHECK(evbuffer_get_length(buf.get()) == 0);
    CHECK_FALSE(removeUnmasked(buf.get(), out.data(), 1, mask, 0));
}

TEST_CASE("appendCloseFrame writes the code and an optional reason", "[ws][frame]") {
    Evbuffer buf(evbuffer_new());
    REQUIRE(appendCloseFrame(buf.get(), 1001, "bye", nullptr));
    REQUIRE(appendCloseFrame(buf.get(), 0, "ignored without a code", nullptr));
    std::uint8_t b[32];
    const auto n = evbuffer_copyout(buf.get(), b, sizeof b);
    REQUIRE(n == 2 + 5 + 2);
    CHECK(b[0] == 0x88);
    CHECK(b[1] == 5);
    CHECK(b[2] == 0x03);
    CHECK(b[3] == 0xE9);
    CHECK(std::string(reinterpret_cast<char*>(b + 4), 3) == "bye");
    CHECK(b[7] == 0x88);
    CHECK(b[8] == 0);
}

TEST_CASE("makeMask produces varying keys", "[ws][frame]") {
    std::uint8_t a[4], b[4];
    makeMask(a);
    int same = 0;
    for (int i = 0; i < 8; ++i) {
        makeMask(b);
        same += std::memcmp(a, b, 4) == 0;
    }
    CHECK(same < 2);
}
