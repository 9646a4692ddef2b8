// SPDX-License-Identifier: Apache-2.0
// The case-insensitive helpers every header check uses: equalsIgnoreCase (8 bytes at a time)
// against the one-byte definition, for every pair of bytes at every place; tokens in lists.

#include <catch2/catch.hpp>

#include <string>

#include "portico/http/head.h"

using namespace portico::http;

namespace {

char lowerByte(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

}  // namespace

TEST_CASE("equalsIgnoreCase folds A-Z only, at every place of any length", "[http][head]") {
    static_assert(equalsIgnoreCase("Sec-WebSocket-Key", "sec-websocket-KEY"));
    static_assert(!equalsIgnoreCase("Sec-WebSocket-Key", "Sec-WebSocket-Kez"));
    bool all_agree = true;
    for (std::size_t length : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 24u}) {
        for (std::size_t at = 0; at < length; ++at) {
            std::string a(length, 'x'), b(length, 'X');
            for (int c1 = 0; c1 < 256; ++c1) {
                for (int c2 = 0; c2 < 256; ++c2) {
                    a[at] = static_cast<char>(c1);
                    b[at] = static_cast<char>(c2);
                    const bool expected = lowerByte(a[at]) == lowerByte(b[at]);
                    if (equalsIgnoreCase(a, b) != expected) all_agree = false;
                }
            }
        }
    }
    CHECK(all_agree);
    CHECK_FALSE(equalsIgnoreCase("Upgrade", "Upgrades"));
    CHECK(equalsIgnoreCase("", ""));
    // 0xC1 and 0xE1 differ by 0x20 like 'A' and 'a' but are not ASCII letters.
    CHECK_FALSE(equalsIgnoreCase("\xC1\xC1\xC1\xC1\xC1\xC1\xC1\xC1\xC1", "\xE1\xE1\xE1\xE1\xE1\xE1\xE1\xE1\xE1"));
    CHECK_FALSE(equalsIgnoreCase("@@@@@@@@[", "````````{"));
}

TEST_CASE("a token in a header's comma-separated list", "[http][head]") {
    CHECK(valueHasToken("websocket", "websocket"));
    CHECK(valueHasToken("keep-alive, Upgrade", "upgrade"));
    CHECK(valueHasToken(" h2c ,\tWebSocket ", "websocket"));
    CHECK_FALSE(valueHasToken("websockets", "websocket"));
    CHECK_FALSE(valueHasToken("", "upgrade"));
    CHECK_FALSE(valueHasToken(",,", "upgrade"));
    const HeaderList headers = {{"Connection", "keep-alive"}, {"connection", "UPGRADE"}};
    CHECK(headerHasToken(headers, "Connection", "upgrade"));
    CHECK_FALSE(headerHasToken(headers, "Upgrade", "upgrade"));
}
