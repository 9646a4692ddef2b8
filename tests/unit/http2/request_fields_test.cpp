// SPDX-License-Identifier: Apache-2.0
#include "portico/http2/request_fields.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "portico/ws/handshake.h"

using namespace portico;
using http2::RequestFields;
using Fields = std::vector<std::pair<std::string, std::string>>;

namespace {

const Fields kGet = {{":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/a?b=1"}};

RequestFields::Verdict map(const Fields& fields, http::RequestHead& head, std::size_t limit = 16 * 1024) {
    RequestFields mapper(limit);
    for (const auto& [name, value] : fields) mapper.add(name, value);
    return mapper.finish(head);
}

Fields with(Fields fields, std::vector<std::pair<std::string, std::string>> more) {
    fields.insert(fields.end(), more.begin(), more.end());
    return fields;
}

}  // namespace

TEST_CASE("HTTP/2 pseudo-headers become an HTTP/1.1 request line and Host", "[http2][fields]") {
    http::RequestHead head;
    REQUIRE(map(with(kGet, {{"accept", "*/*"}}), head) == RequestFields::Verdict::Ok);
    CHECK(head.method == "GET");
    CHECK(head.target == "/a?b=1");
    CHECK(head.version_major == 1);
    CHECK(head.version_minor == 1);
    REQUIRE(head.headers.size() == 2);
    CHECK(head.headers[0].name == "Host");  // first, as an HTTP/1.1 client writes it
    CHECK(head.headers[0].value == "example.com");
    CHECK(head.headers[1].name == "accept");
}

TEST_CASE("HTTP/2 :authority wins over a Host field, and a Host alone stands in for it", "[http2][fields]") {
    http::RequestHead head;
    REQUIRE(map(with(kGet, {{"host", "other.example"}}), head) == RequestFields::Verdict::Ok);
    REQUIRE(http::findHeader(head.headers, "Host"));
    CHECK(http::findHeader(head.headers, "Host")->value == "example.com");
    CHECK(head.headers.size() == 1);  // one Host, never two

    http::RequestHead without;
    const Fields no_authority = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h.example"}};
    REQUIRE(map(no_authority, without) == RequestFields::Verdict::Ok);
    CHECK(http::findHeader(without.headers, "Host")->value == "h.example");
}

TEST_CASE("HTTP/2 fields keep their order after Host, however many and wherever host came", "[http2][fields]") {
    Fields more;
    for (int i = 0; i < 40; ++i) {
        more.emplace_back("x-f" + std::to_string(i), std::to_string(i));
        if (i == 20) more.emplace_back("host", "ignored.example");
    }
    http::RequestHead head;
    REQUIRE(map(with(kGet, more), head) == RequestFields::Verdict::Ok);
    REQUIRE(head.headers.size() == 41);
    CHECK(head.headers[0].name == "Host");
    CHECK(head.headers[0].value == "example.com");
    for (int i = 0; i < 40; ++i) {
        CHECK(head.headers[static_cast<std::size_t>(i) + 1].name == "x-f" + std::to_string(i));
        CHECK(head.headers[static_cast<std::size_t>(i) + 1].value == std::to_string(i));
    }
}

TEST_CASE("HTTP/2 cookie crumbs are joined with \"; \" (RFC 9113 8.2.3)", "[http2][fields]") {
    http::RequestHead head;
    REQUIRE(map(with(kGet, {{"cookie", "a=1"}, {"x-other", "y"}, {"cookie", "b=2"}, {"cookie", "c=3"}}), head) ==
            RequestFields::Verdict::Ok);
    int cookies = 0;
    for (const auto& h : head.headers)
        if (h.name == "cookie") {
            ++cookies;
            CHECK(h.value == "a=1; b=2; c=3");
        }
    CHECK(cookies == 1);
}

TEST_CASE("HTTP/2 connection-specific fields make a request malformed (RFC 9113 8.2.2)", "[http2][fields]") {
    const Fields kForbidden = {{"connection", "keep-alive"}, {"keep-alive", "timeout=5"}, {"proxy-connection", "x"},
                               {"transfer-encoding", "chunked"}, {"upgrade", "websocket"}, {"te", "gzip"},
                               {"Connection", "close"}};
    for (const auto& field : kForbidden) {
        INFO(field.first << ": " << field.second);
        http::RequestHead head;
        CHECK(map(with(kGet, {field}), head) == RequestFields::Verdict::Malformed);
    }
    http::RequestHead head;
    CHECK(map(with(kGet, {{"te", "trailers"}}), head) == RequestFields::Verdict::Ok);
}

TEST_CASE("HTTP/2 pseudo-headers: order, repetition, unknown names and required ones (RFC 9113 8.3)", "[http2][fields]") {
    struct Case {
        const char* what;
        Fields fields;
    };
    const Case kCases[] = {
        {"pseudo after regular", {{":method", "GET"}, {":scheme", "http"}, {"accept", "*/*"}, {":path", "/"}, {":authority", "a"}}},
        {"repeated :path", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":path", "/x"}, {":authority", "a"}}},
        {"unknown pseudo", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a"}, {":status", "200"}}},
        {"no :method", {{":scheme", "http"}, {":path", "/"}, {":authority", "a"}}},
        {"no :path", {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}}},
        {"empty :path", {{":method", "GET"}, {":scheme", "http"}, {":path", ""}, {":authority", "a"}}},
        {"no :scheme", {{":method", "GET"}, {":path", "/"}, {":authority", "a"}}},
        {"no authority nor Host", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}},
        {":protocol without CONNECT", {{":method", "GET"}, {":protocol", "websocket"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a"}}},
        {"CONNECT with a path", {{":method", "CONNECT"}, {":authority", "a:443"}, {":path", "/"}}},
        {"non-ASCII :path", {{":method", "GET"}, {":scheme", "http"}, {":path", "/caf\xc3\xa9"}, {":authority", "a"}}},
        {"DEL in :path", {{":method", "GET"}, {":scheme", "http"}, {":path", "/a\x7f"}, {":authority", "a"}}},
        {"lower-case :method", {{":method", "get"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a"}}},
        {"unknown :method", {{":method", "FOO"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a"}}},
        {"ftp :scheme", {{":method", "GET"}, {":scheme", "ftp"}, {":path", "/"}, {":authority", "a"}}},
        {"upper-case :scheme", {{":method", "GET"}, {":scheme", "HTTP"}, {":path", "/"}, {":authority", "a"}}},
    };
    for (const auto& c : kCases) {
        INFO(c.what);
        http::RequestHead head;
        CHECK(map(c.fields, head) == RequestFields::Verdict::Malformed);
    }
}

TEST_CASE("HTTP/2 extended CONNECT keeps :protocol and its path (RFC 8441 4)", "[http2][fields]") {
    RequestFields mapper(16 * 1024);
    for (const auto& [name, value] : Fields{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
                                            {":path", "/chat"}, {":authority", "example.com"},
                                            {"sec-websocket-version", "13"}})
        REQUIRE(mapper.add(name, value) == RequestFields::Verdict::Ok);
    http::RequestHead head;
    REQUIRE(mapper.finish(head) == RequestFields::Verdict::Ok);
    CHECK(mapper.protocol() == "websocket");
    CHECK(head.method == "CONNECT");
    CHECK(head.target == "/chat");
}

TEST_CASE("HTTP/2 header list over the limit is TooLarge, counted as SETTINGS_MAX_HEADER_LIST_SIZE is", "[http2][fields]") {
    // RFC 9113 6.5.2: name + value + 32 per field. kGet is 4 fields.
    std::size_t base = 0;
    for (const auto& [name, value] : kGet) base += name.size() + value.size() + 32;
    http::RequestHead fits;
    CHECK(map(kGet, fits, base) == RequestFields::Verdict::Ok);
    http::RequestHead over;
    CHECK(map(kGet, over, base - 1) == RequestFields::Verdict::TooLarge);
    // An HPACK bomb: one small indexed field repeated decodes to far more than it weighs on the wire.
    RequestFields mapper(16 * 1024);
    for (const auto& [name, value] : kGet) mapper.add(name, value);
    const std::string big(4000, 'x');
    RequestFields::Verdict verdict = RequestFields::Verdict::Ok;
    int added = 0;
    while (verdict == RequestFields::Verdict::Ok && added < 1000) {
        verdict = mapper.add("x-bomb", big);
        ++added;
    }
    CHECK(verdict == RequestFields::Verdict::TooLarge);
    CHECK(added <= 5);
    http::RequestHead head;
    CHECK(mapper.finish(head) == RequestFields::Verdict::TooLarge);
}

TEST_CASE("An extended CONNECT becomes the HTTP/1.1 upgrade ws::analyzeUpgrade accepts (RFC 8441 5)", "[http2][fields]") {
    RequestFields mapper(16 * 1024);
    for (const auto& [name, value] : Fields{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
                                            {":path", "/chat?room=1"}, {":authority", "example.com"},
                                            {"sec-websocket-version", "13"}, {"sec-websocket-protocol", "chat, v2"},
                                            {"origin", "https://example.com"}})
        REQUIRE(mapper.add(name, value) == RequestFields::Verdict::Ok);
    http::RequestHead head;
    REQUIRE(mapper.finish(head) == RequestFields::Verdict::Ok);
    const std::string key = ws::generateKey();
    http2::asWebSocketUpgrade(head, key);
    CHECK(head.method == "GET");
    CHECK(head.target == "/chat?room=1");
    const ws::UpgradeRequest upgrade = ws::analyzeUpgrade(head);
    REQUIRE(upgrade.kind == ws::UpgradeKind::WebSocket);
    CHECK(upgrade.key == key);
    CHECK(upgrade.origin == "https://example.com");
    CHECK(upgrade.subprotocols == std::vector<std::string_view>{"chat", "v2"});
}

TEST_CASE("An extended CONNECT's own Sec-WebSocket-Key is replaced by ours", "[http2][fields]") {
    http::RequestHead head;
    head.method = "CONNECT";
    head.target = "/ws";
    head.headers = {{"Host", "h"}, {"sec-websocket-version", "13"}, {"sec-websocket-key", "Zm9yZ2VkIGtleSAxMjM0NQ=="}};
    http2::asWebSocketUpgrade(head, "dGhlIHNhbXBsZSBub25jZQ==");
    int keys = 0;
    for (const auto& h : head.headers)
        if (http::equalsIgnoreCase(h.name, "sec-websocket-key")) {
            ++keys;
            CHECK(h.value == "dGhlIHNhbXBsZSBub25jZQ==");
        }
    CHECK(keys == 1);
}

TEST_CASE("HTTP/2 request trailers: framing, routing and hop-by-hop fields dropped, the section bounded", "[http2][fields]") {
    RequestFields mapper(16 * 1024);
    for (const auto& [name, value] : kGet) mapper.add(name, value);
    http::RequestHead head;
    REQUIRE(mapper.finish(head) == RequestFields::Verdict::Ok);
    // The trailer section is counted apart from the head: a large head leaves it its own room.
    for (const auto& [name, value] : Fields{{"x-checksum", "abc"}, {"content-length", "9"}, {"host", "evil"},
                                            {"te", "trailers"}, {"trailer", "x"}, {"proxy-status", "y"}, {"x-b", "2"}})
        CHECK(mapper.addTrailer(name, value) == RequestFields::Verdict::Ok);
    REQUIRE(mapper.trailers().size() == 2);
    CHECK(mapper.trailers()[0].name == "x-checksum");
    CHECK(mapper.trailers()[1].name == "x-b");
    RequestFields small(100);
    CHECK(small.addTrailer("x-a", std::string(40, 'v')) == RequestFields::Verdict::Ok);  // 3 + 40 + 32
    CHECK(small.addTrailer("x-b", "v") == RequestFields::Verdict::TooLarge);
    CHECK(small.verdict() == RequestFields::Verdict::TooLarge);
}
