// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/utf8_validator.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

using portico::ws::Utf8Validator;

namespace {

// A plain decoder written straight from RFC 3629 to compare the DFA with.
bool referenceValid(const std::uint8_t* s, std::size_t n) {
    std::size_t i = 0;
    while (i < n) {
        const std::uint8_t c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (std::size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

bool dfaValid(const std::uint8_t* s, std::size_t n) {
    Utf8Validator v;
    return v.feed(s, n) && v.complete();
}

}  // namespace

TEST_CASE("utf8 validator agrees with a reference decoder on every sequence of 1 to 3 bytes", "[ws][utf8]") {
    std::uint8_t b[3];
    std::size_t mismatches = 0;
    for (int x = 0; x < 256; ++x) {
        b[0] = static_cast<std::uint8_t>(x);
        mismatches += dfaValid(b, 1) != referenceValid(b, 1);
        for (int y = 0; y < 256; ++y) {
            b[1] = static_cast<std::uint8_t>(y);
            mismatches += dfaValid(b, 2) != referenceValid(b, 2);
            for (int z = 0; z < 256; ++z) {
                b[2] = static_cast<std::uint8_t>(z);
                mismatches += dfaValid(b, 3) != referenceValid(b, 3);
            }
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("utf8 validator agrees with a reference decoder on 4-byte sequences", "[ws][utf8]") {
    // Every lead byte F0-F7 with every second byte, and continuation bytes at the edges.
    std::size_t mismatches = 0;
    const int edges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    std::uint8_t b[4];
    for (int lead = 0xE0; lead <= 0xFF; ++lead)
        for (int second = 0; second < 256; ++second)
            for (int third : edges)
                for (int fourth : edges) {
                    b[0] = static_cast<std::uint8_t>(lead);
                    b[1] = static_cast<std::uint8_t>(second);
                    b[2] = static_cast<std::uint8_t>(third);
                    b[3] = static_cast<std::uint8_t>(fourth);
                    mismatches += dfaValid(b, 4) != referenceValid(b, 4);
                }
    CHECK(mismatches == 0);
}

TEST_CASE("utf8 validator fails at the first byte that cannot lead anywhere", "[ws][utf8]") {
    struct Case {
        std::string bytes;
        std::size_t fails_after;  // bytes fed when failed() first becomes true
    };
    const std::vector<Case> cases = {
        {"\xC0", 1}, {"\xC1", 1}, {"\xF5", 1}, {"\xFF", 1}, {"\x80", 1},
        {"a\xED\xA0", 3},          // surrogate range known at the second byte of ED
        {"\xF4\x90", 2},           // above U+10FFFF known at the second byte
        {"\xE0\x9F", 2},           // overlong known at the second byte
        {"\xF0\x8F", 2},
        {"\xE2\x82\x41", 3},       // truncated, then ASCII
        {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90\x80\x80\x65", 13},
    };
    for (const auto& c : cases) {
        INFO("case of " << c.bytes.size() << " bytes");
        Utf8Validator v;
        for (std::size_t i = 0; i < c.bytes.size(); ++i) {
            v.feed(std::string_view(c.bytes).substr(i, 1));
            CHECK(v.failed() == (i + 1 >= c.fails_after));
        }
    }
}

TEST_CASE("utf8 validator carries state across pieces and reports an incomplete end", "[ws][utf8]") {
    const std::string text = "\xF0\x9F\x98\x80 smile \xE2\x82\xAC euro \xC3\xA9";
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        Utf8Validator v;
        CHECK(v.feed(std::string_view(text).substr(0, cut)));
        CHECK(v.feed(std::string_view(text).substr(cut)));
        CHECK(v.complete());
    }
    Utf8Validator v;
    CHECK(v.feed("abc\xE2\x82"));
    CHECK_FALSE(v.failed());
    CHECK_FALSE(v.complete());
    CHECK(v.feed("\xAC"));
    CHECK(v.complete());
    CHECK_FALSE(v.feed("\xAC"));
    CHECK(v.failed());
    CHECK_FALSE(v.feed("still failed"));
    v.reset();
    CHECK(v.complete());
}

TEST_CASE("utf8 validator's ASCII fast path still finds a bad byte after long ASCII runs", "[ws][utf8]") {
    for (std::size_t prefix = 0; prefix < 40; ++prefix) {
        std::string s(prefix, 'x');
        s += "\xFF";
        s += std::string(20, 'y');
        CHECK_FALSE(Utf8Validator::isValid(s));
        std::string ok(prefix, 'x');
        ok += "\xC3\xA9";
        ok += std::string(20, 'y');
        CHECK(Utf8Validator::isValid(ok));
    }
}
