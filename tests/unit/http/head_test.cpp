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

TEST_CASE("classifyFieldName knows each listed name in any case, and nothing else", "[http][head]") {
    struct Case {
        std::string_view name;
        FieldName field;
    };
    static constexpr Case kNames[] = {
        {"TE", FieldName::TE},
        {"Host", FieldName::Host},
        {"Expect", FieldName::Expect},
        {"Origin", FieldName::Origin},
        {"Referer", FieldName::Referer},
        {"Trailer", FieldName::Trailer},
        {"Upgrade", FieldName::Upgrade},
        {"X-Real-IP", FieldName::XRealIp},
        {"Connection", FieldName::Connection},
        {"Keep-Alive", FieldName::KeepAlive},
        {"User-Agent", FieldName::UserAgent},
        {"Cache-Control", FieldName::CacheControl},
        {"Content-Length", FieldName::ContentLength},
        {"X-Forwarded-For", FieldName::XForwardedFor},
        {"X-Forwarded-Host", FieldName::XForwardedHost},
        {"Transfer-Encoding", FieldName::TransferEncoding},
        {"X-Forwarded-Proto", FieldName::XForwardedProto},
        {"Sec-WebSocket-Key", FieldName::SecWebSocketKey},
        {"Sec-WebSocket-Accept", FieldName::SecWebSocketAccept},
        {"Sec-WebSocket-Version", FieldName::SecWebSocketVersion},
        {"Sec-WebSocket-Protocol", FieldName::SecWebSocketProtocol},
        {"Sec-WebSocket-Extensions", FieldName::SecWebSocketExtensions},
    };
    for (const Case& c : kNames) {
        INFO(c.name);
        std::string lower(c.name), upper(c.name);
        for (char& ch : lower) ch = lowerByte(ch);
        for (char& ch : upper) ch = ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 32) : ch;
        CHECK(classifyFieldName(c.name) == c.field);
        CHECK(classifyFieldName(lower) == c.field);
        CHECK(classifyFieldName(upper) == c.field);
        // One byte changed at each place, one byte more or less: another name.
        for (std::size_t at = 0; at < c.name.size(); ++at) {
            std::string other(c.name);
            other[at] = other[at] == '~' ? '!' : '~';
            CHECK(classifyFieldName(other) != c.field);
        }
        CHECK(classifyFieldName(std::string(c.name) + "x") != c.field);
        CHECK(classifyFieldName(c.name.substr(1)) != c.field);
    }
    CHECK(classifyFieldName("Proxy-Connection") == FieldName::ProxyPrefixed);
    CHECK(classifyFieldName("proxy-authorization") == FieldName::ProxyPrefixed);
    CHECK(classifyFieldName("Proxy") == FieldName::Other);
    CHECK(classifyFieldName("Accept") == FieldName::Other);
    CHECK(classifyFieldName("") == FieldName::Other);
}

TEST_CASE("findHeader finds a field by its name whether or not it was classified", "[http][head]") {
    HeaderList headers = {{"X-Custom", "1"}, {"host", "a.example"}, {"Proxy-Foo", "p"}};
    // Built by hand: `known` left Unknown, so fieldName() classifies from the name.
    REQUIRE(findHeader(headers, "Host") != nullptr);
    CHECK(findHeader(headers, "HOST")->value == "a.example");
    CHECK(findHeader(headers, FieldName::Host)->value == "a.example");
    CHECK(findHeader(headers, "x-custom")->value == "1");
    CHECK(findHeader(headers, "proxy-foo")->value == "p");
    CHECK(findHeader(headers, "Proxy-Bar") == nullptr);
    CHECK(findHeader(headers, "Upgrade") == nullptr);
    CHECK(headerHasToken(headers, "HOST", "a.example"));
    CHECK_FALSE(headerHasToken(headers, "Upgrade", "a.example"));
    // As the parser leaves them: `known` set with the name.
    for (Header& h : headers) h.known = classifyFieldName(h.name);
    CHECK(findHeader(headers, "Host")->value == "a.example");
    CHECK(findHeader(headers, "X-CUSTOM")->value == "1");
    CHECK(headerHasToken(headers, "X-Custom", "1"));
}
