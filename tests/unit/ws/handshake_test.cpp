// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/handshake.h"

#include <catch2/catch.hpp>

#include <string>
#include <thread>

using namespace portico::ws;
using portico::http::HeaderList;
using portico::http::RequestHead;
using portico::http::ResponseHead;

namespace {

RequestHead wsRequest() {
    RequestHead h;
    h.method = "GET";
    h.target = "/chat";
    h.version_minor = 1;
    h.headers = {
        {"Host", "server.example.com"},
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Origin", "http://example.com"},
        {"Sec-WebSocket-Protocol", "chat, superchat"},
        {"Sec-WebSocket-Version", "13"},
    };
    return h;
}

void removeHeader(RequestHead& h, std::string_view name) {
    std::erase_if(h.headers, [&](const auto& x) { return portico::http::equalsIgnoreCase(x.name, name); });
}

void setHeader(RequestHead& h, std::string_view name, std::string value) {
    removeHeader(h, name);
    h.headers.push_back({std::string(name), std::move(value)});
}

}  // namespace

TEST_CASE("accept key matches the RFC 6455 example", "[ws][handshake]") {
    CHECK(computeAccept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    // The digest context is kept per thread and reused: a second key, then the first again, and
    // another thread, all give the same answers.
    CHECK(computeAccept("AAAAAAAAAAAAAAAAAAAAAA==") != computeAccept("dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK(computeAccept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    std::string from_thread;
    std::thread([&] { from_thread = computeAccept("dGhlIHNhbXBsZSBub25jZQ=="); }).join();
    CHECK(from_thread == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    // A key longer than the stack buffer takes the heap path to the same hash.
    const std::string long_key(200, 'k');
    CHECK(computeAccept(long_key).size() == 28);
    CHECK(computeAccept(long_key) == computeAccept(long_key));
}

TEST_CASE("keys must be base64 of 16 bytes", "[ws][handshake]") {
    CHECK(isValidKey("dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK(isValidKey("AAAAAAAAAAAAAAAAAAAAAA=="));
    CHECK(isValidKey("+/+/+/+/+/+/+/+/+/+/+w=="));
    CHECK_FALSE(isValidKey(""));
    CHECK_FALSE(isValidKey("dGhlIHNhbXBsZSBub25jZQ="));     // 23 characters
    CHECK_FALSE(isValidKey("dGhlIHNhbXBsZSBub25jZQ==="));   // 25
    CHECK_FALSE(isValidKey("dGhlIHNhbXBsZSBub25jZQAA"));    // no padding: 18 bytes
    CHECK_FALSE(isValidKey("dGhlIHNhbXBsZSBub25jZ!=="));    // not base64
    CHECK_FALSE(isValidKey("dGhlIHNhbXBsZSBub25j===="));    // 15 bytes
    CHECK_FALSE(isValidKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="));  // base64 of 28 bytes
    const std::string generated = generateKey();
    CHECK(isValidKey(generated));
    CHECK(generated != generateKey());
}

TEST_CASE("a proper opening handshake is a WebSocket upgrade", "[ws][handshake]") {
    const RequestHead h = wsRequest();
    const UpgradeRequest u = analyzeUpgrade(h);
    CHECK(u.kind == UpgradeKind::WebSocket);
    CHECK(u.status == 0);
    CHECK(u.key == "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(u.origin == "http://example.com");
    REQUIRE(u.subprotocols.size() == 2);
    CHECK(u.subprotocols[0] == "chat");
    CHECK(u.subprotocols[1] == "superchat");
    CHECK(u.extensions.empty());
}

TEST_CASE("upgrade tokens are case-insensitive and found in lists", "[ws][handshake]") {
    RequestHead h = wsRequest();
    setHeader(h, "upgrade", "WebSocket");
    setHeader(h, "CONNECTION", "keep-alive, UPGRADE");
    setHeader(h, "sec-websocket-extensions", "permessage-deflate; client_max_window_bits");
    h.headers.push_back({"Sec-WebSocket-Extensions", "x-foo"});
    h.headers.push_back({"Sec-WebSocket-Protocol", "v3"});
    const UpgradeRequest u = analyzeUpgrade(h);
    CHECK(u.kind == UpgradeKind::WebSocket);
    CHECK(u.extensions == "permessage-deflate; client_max_window_bits, x-foo");
    CHECK(u.subprotocols.size() == 3);
}

TEST_CASE("a missing or bad key is a 400", "[ws][handshake]") {
    SECTION("missing") {
        RequestHead h = wsRequest();
        removeHeader(h, "Sec-WebSocket-Key");
        const auto u = analyzeUpgrade(h);
        CHECK(u.kind == UpgradeKind::Invalid);
        CHECK(u.status == 400);
    }
    SECTION("bad") {
        RequestHead h = wsRequest();
        setHeader(h, "Sec-WebSocket-Key", "not-a-key");
        CHECK(analyzeUpgrade(h).status == 400);
    }
    SECTION("repeated") {
        RequestHead h = wsRequest();
        h.headers.push_back({"Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="});
        CHECK(analyzeUpgrade(h).status == 400);
    }
}

TEST_CASE("another version is a 426", "[ws][handshake]") {
    for (const char* v : {"8", "12", "14", "13, 8", ""}) {
        RequestHead h = wsRequest();
        setHeader(h, "Sec-WebSocket-Version", v);
        const auto u = analyzeUpgrade(h);
        CHECK(u.kind == UpgradeKind::Invalid);
        CHECK(u.status == 426);
    }
    RequestHead missing = wsRequest();
    removeHeader(missing, "Sec-WebSocket-Version");
    CHECK(analyzeUpgrade(missing).status == 426);
}

TEST_CASE("websocket asked without GET or without Connection: upgrade is a 400", "[ws][handshake]") {
    RequestHead post = wsRequest();
    post.method = "POST";
    CHECK(analyzeUpgrade(post).status == 400);
    RequestHead no_connection = wsRequest();
    setHeader(no_connection, "Connection", "keep-alive");
    CHECK(analyzeUpgrade(no_connection).status == 400);
    // The tokens may sit in any of repeated headers, in any case.
    RequestHead split = wsRequest();
    setHeader(split, "Connection", "keep-alive");
    split.headers.push_back({"connection", "UPGRADE"});
    setHeader(split, "Upgrade", "h2c");
    split.headers.push_back({"upgrade", "WebSocket"});
    CHECK(analyzeUpgrade(split).kind == UpgradeKind::WebSocket);
}

TEST_CASE("h2c, no Upgrade, and HTTP/1.0 are not WebSocket upgrades", "[ws][handshake]") {
    RequestHead h2c = wsRequest();
    setHeader(h2c, "Upgrade", "h2c");
    setHeader(h2c, "Connection", "Upgrade, HTTP2-Settings");
    CHECK(analyzeUpgrade(h2c).kind == UpgradeKind::None);
    RequestHead plain = wsRequest();
    removeHeader(plain, "Upgrade");
    CHECK(analyzeUpgrade(plain).kind == UpgradeKind::None);
    RequestHead http10 = wsRequest();
    http10.version_minor = 0;
    CHECK(analyzeUpgrade(http10).kind == UpgradeKind::None);
    RequestHead both = wsRequest();
    setHeader(both, "Upgrade", "h2c, websocket");
    CHECK(analyzeUpgrade(both).kind == UpgradeKind::WebSocket);
}

TEST_CASE("an upstream 101 must carry the matching accept", "[ws][handshake]") {
    const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
    ResponseHead r;
    r.status = 101;
    r.headers = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}};
    CHECK(checkUpstreamAccept(r.headers, key));
    CHECK(isValidUpgradeResponse(r, key));
    CHECK_FALSE(checkUpstreamAccept(r.headers, "AAAAAAAAAAAAAAAAAAAAAA=="));
    ResponseHead wrong = r;
    wrong.headers[2].value = "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=";
    CHECK_FALSE(isValidUpgradeResponse(wrong, key));
    ResponseHead twice = r;
    twice.headers.push_back({"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="});
    CHECK_FALSE(checkUpstreamAccept(twice.headers, key));
    ResponseHead missing = r;
    missing.headers.pop_back();
    CHECK_FALSE(checkUpstreamAccept(missing.headers, key));
    ResponseHead not101 = r;
    not101.status = 200;
    CHECK_FALSE(isValidUpgradeResponse(not101, key));
    ResponseHead no_upgrade = r;
    no_upgrade.headers.erase(no_upgrade.headers.begin());
    CHECK_FALSE(isValidUpgradeResponse(no_upgrade, key));
    ResponseHead no_connection = r;
    no_connection.headers[1].value = "keep-alive";
    CHECK_FALSE(isValidUpgradeResponse(no_connection, key));
    ResponseHead other_protocol = r;
    other_protocol.headers[0].value = "h2c";
    CHECK_FALSE(isValidUpgradeResponse(other_protocol, key));
    ResponseHead spelled = r;
    spelled.headers[0] = {"UPGRADE", " WebSocket "};
    spelled.headers[1] = {"connection", "keep-alive, upgrade"};
    CHECK(isValidUpgradeResponse(spelled, key));
    // RFC 6455 4.1, the client's check 2: the 101's Upgrade is "websocket" itself, once; a list
    // that holds it (accepted before) or a second Upgrade field fails the connection.
    ResponseHead listed = r;
    listed.headers[0].value = "h2c, websocket";
    CHECK_FALSE(isValidUpgradeResponse(listed, key));
    ResponseHead two_upgrades = r;
    two_upgrades.headers.push_back({"Upgrade", "websocket"});
    CHECK_FALSE(isValidUpgradeResponse(two_upgrades, key));
}

TEST_CASE("subprotocol selection follows the client's order within the allow-list", "[ws][handshake]") {
    const std::vector<std::string_view> requested = {"v1.chat", "chat.v2", "chat.v1"};
    CHECK(selectSubprotocol(requested, {"chat.v1", "chat.v2"}) == "chat.v2");
    CHECK(selectSubprotocol(requested, {"CHAT.V1"}).empty());
    CHECK(selectSubprotocol({}, {"chat.v1"}).empty());
    CHECK(filterSubprotocols(requested, {"chat.v1", "v1.chat"}) == "v1.chat, chat.v1");
    CHECK(filterSubprotocols(requested, {"x"}).empty());
}

TEST_CASE("the 101 response of a built-in endpoint", "[ws][handshake]") {
    const std::string r = buildAcceptResponse("dGhlIHNhbXBsZSBub25jZQ==", "chat", "permessage-deflate");
    CHECK(r ==
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
          "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
    const std::string bare = buildAcceptResponse("dGhlIHNhbXBsZSBub25jZQ==", "", "");
    CHECK(bare.find("Sec-WebSocket-Protocol") == std::string::npos);
    CHECK(bare.find("Sec-WebSocket-Extensions") == std::string::npos);
}
