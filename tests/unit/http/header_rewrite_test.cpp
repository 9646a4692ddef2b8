// SPDX-License-Identifier: Apache-2.0
#include "portico/http/header_rewrite.h"

#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <event2/buffer.h>

#include "portico/core/handles.h"
#include "portico/http/simple_response.h"

using namespace portico::http;

namespace {

// A head as written on the wire, split into its start line and its header lines.
struct WrittenHead {
    std::string start_line;
    HeaderList headers;
    bool well_formed = false;  // every line ends in CRLF and the head ends with an empty line

    // Every value of `name`, in order.
    std::vector<std::string> all(std::string_view name) const {
        std::vector<std::string> values;
        for (const auto& h : headers)
            if (equalsIgnoreCase(h.name, name)) values.push_back(h.value);
        return values;
    }
    bool has(std::string_view name) const { return findHeader(headers, name) != nullptr; }
    // The only value of `name`; "<absent>" or "<repeated>" otherwise.
    std::string one(std::string_view name) const {
        auto values = all(name);
        if (values.empty()) return "<absent>";
        if (values.size() > 1) return "<repeated>";
        return values[0];
    }
};

WrittenHead splitHead(std::string_view text) {
    WrittenHead head;
    auto end = text.find("\r\n\r\n");
    if (end == std::string_view::npos || end + 4 != text.size()) return head;
    std::string_view lines = text.substr(0, end + 2);
    bool first = true;
    while (!lines.empty()) {
        auto eol = lines.find("\r\n");
        std::string_view line = lines.substr(0, eol);
        lines.remove_prefix(eol + 2);
        if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos) return head;
        if (first) {
            head.start_line = std::string(line);
            first = false;
            continue;
        }
        auto colon = line.find(": ");
        if (colon == std::string_view::npos || colon == 0) return head;
        head.headers.push_back({std::string(line.substr(0, colon)), std::string(line.substr(colon + 2))});
    }
    head.well_formed = true;
    return head;
}

RequestHead request(std::string method, std::string target, HeaderList headers, int version_minor = 1) {
    RequestHead r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.headers = std::move(headers);
    r.version_minor = version_minor;
    return r;
}

// "Host: h" followed by `headers`.
HeaderList withHost(const HeaderList& headers) {
    HeaderList all;
    all.reserve(headers.size() + 1);
    all.push_back({"Host", "h"});
    for (const auto& h : headers) all.push_back(h);
    return all;
}

UpstreamRequestInfo infoFor(const RequestHead& r, std::string_view client_ip = "10.0.0.9") {
    UpstreamRequestInfo info;
    info.target = r.target;
    info.client_ip = client_ip;
    return info;
}

WrittenHead upstreamHead(const RequestHead& r, const UpstreamRequestInfo& info) {
    std::string out;
    appendUpstreamRequestHead(out, r, info);
    WrittenHead head = splitHead(out);
    INFO(out);
    REQUIRE(head.well_formed);
    return head;
}

ResponseHead response(int status, std::string reason, HeaderList headers, int version_minor = 1) {
    ResponseHead r;
    r.status = status;
    r.reason = std::move(reason);
    r.headers = std::move(headers);
    r.version_minor = version_minor;
    return r;
}

WrittenHead clientHead(const ResponseHead& r, const ClientResponseInfo& info) {
    std::string out;
    appendClientResponseHead(out, r, info);
    WrittenHead head = splitHead(out);
    INFO(out);
    REQUIRE(head.well_formed);
    return head;
}

}  // namespace

TEST_CASE("isHopByHop knows the RFC 9110 7.6.1 fields and those Connection names", "[http][rewrite]") {
    const std::vector<std::string_view> tokens = {"X-Hop", "keep-alive"};
    struct Case {
        std::string_view name;
        bool hop_by_hop;
    };
    const Case kCases[] = {
        {"Connection", true},          {"connection", true},        {"Keep-Alive", true},
        {"TE", true},                  {"te", true},                {"Trailer", true},
        {"Transfer-Encoding", true},   {"Upgrade", true},           {"Proxy-Authorization", true},
        {"Proxy-Connection", true},    {"proxy-authenticate", true}, {"X-Hop", true},
        {"x-hop", true},               {"Host", false},             {"Content-Length", false},
        {"Content-Type", false},       {"Trailers", false},         {"X-Hop-Not", false},
        {"Cookie", false},             {"Proxy", false},            {"Authorization", false},
        {"Proxy-X", true},             {"Proxy-Xyzw", true},        {"Proxy-Xyzwvutsrqp", true},
        {"Upgrades", false},           {"Trailex", false},          {"Connectio", false},
    };
    for (const auto& c : kCases) {
        INFO(c.name);
        CHECK(isHopByHop(c.name, tokens) == c.hop_by_hop);
    }
}

TEST_CASE("isForwardedTrailer keeps what cannot change framing, routing or the client address", "[http][rewrite]") {
    for (std::string_view kept : {"X-Checksum", "grpc-status", "Server-Timing", "Digest", "x-forwarded"}) {
        INFO(kept);
        CHECK(isForwardedTrailer(kept));
    }
    for (std::string_view dropped : {"Host", "content-length", "Transfer-Encoding", "TE", "Trailer", "Connection",
                                     "Keep-Alive", "Upgrade", "Proxy-Authorization", "X-Forwarded-For",
                                     "x-forwarded-proto", "X-Forwarded-Host", "X-Real-IP"}) {
        INFO(dropped);
        CHECK_FALSE(isForwardedTrailer(dropped));
    }
}

TEST_CASE("a Connection token never makes Host or another end-to-end field hop-by-hop", "[http][rewrite]") {
    const std::vector<std::string_view> tokens = {"close", "Host", "content-length", "Cache-Control",
                                                  "Sec-WebSocket-Key", "Sec-WebSocket-Version", "X-Private"};
    for (std::string_view name : {"Host", "host", "Content-Length", "Cache-Control", "Sec-WebSocket-Key",
                                  "Sec-WebSocket-Version"}) {
        INFO(name);
        CHECK_FALSE(isHopByHop(name, tokens));
    }
    CHECK(isHopByHop("X-Private", tokens));
}

TEST_CASE("upstream request keeps Host when the client names it in Connection", "[http][rewrite]") {
    const RequestHead r = request("GET", "/p", {{"Connection", "close, Host"}, {"Host", "example.com"}});
    const WrittenHead head = upstreamHead(r, infoFor(r));
    CHECK(head.one("Host") == "example.com");
    CHECK(head.one("X-Forwarded-Host") == "example.com");
}

TEST_CASE("connectionTokens lists the names of every Connection header", "[http][rewrite]") {
    // keep-alive and Upgrade are hop-by-hop anyway: not listed (no allocation for the usual
    // "Connection: keep-alive"), and still removed.
    const HeaderList headers = {{"Connection", "keep-alive, X-A"},
                                {"Host", "h"},
                                {"connection", " x-b ,,close, Upgrade,proxy-x "}};
    const auto tokens = connectionTokens(headers);
    CHECK(tokens == std::vector<std::string_view>{"X-A", "x-b", "close"});
    CHECK(connectionTokens({{"Connection", "keep-alive"}}).capacity() == 0);
    for (std::string_view name : {"Keep-Alive", "Upgrade", "Proxy-X", "X-A", "close"}) {
        INFO(name);
        CHECK(isHopByHop(name, tokens));
    }
}

TEST_CASE("upstream request drops hop-by-hop headers and those Connection names", "[http][rewrite]") {
    const RequestHead r = request("GET", "/p?q=1",
                                  {{"Host", "example.com"},
                                   {"Connection", "keep-alive, X-Private"},
                                   {"connection", "x-other"},
                                   {"X-Private", "secret"},
                                   {"X-Other", "secret too"},
                                   {"Keep-Alive", "timeout=5"},
                                   {"TE", "trailers"},
                                   {"Trailer", "X-Checksum"},
                                   {"Proxy-Authorization", "Basic Zm9vOmJhcg=="},
                                   {"Proxy-Connection", "keep-alive"},
                                   {"Upgrade", "websocket"},
                                   {"Transfer-Encoding", "chunked"},
                                   {"Content-Length", "5"},
                                   {"Accept", "*/*"},
                                   {"Cookie", "a=b"}});
    const WrittenHead head = upstreamHead(r, infoFor(r));
    CHECK(head.start_line == "GET /p?q=1 HTTP/1.1");
    for (const char* dropped : {"Connection", "X-Private", "X-Other", "Keep-Alive", "TE", "Trailer",
                                "Proxy-Authorization", "Proxy-Connection", "Upgrade", "Transfer-Encoding",
                                "Content-Length"}) {
        INFO(dropped);
        CHECK_FALSE(head.has(dropped));
    }
    CHECK(head.one("Host") == "example.com");
    CHECK(head.one("Accept") == "*/*");
    CHECK(head.one("Cookie") == "a=b");
}

TEST_CASE("upstream request passes Host and end-to-end headers unchanged and in order", "[http][rewrite]") {
    const RequestHead r = request("POST", "/submit",
                                  {{"Host", "Example.COM:8080"},
                                   {"Content-Type", "application/json"},
                                   {"Set-Cookie-Like", "a"},
                                   {"Accept-Encoding", "gzip"},
                                   {"Accept-Encoding", "br"}});
    const WrittenHead head = upstreamHead(r, infoFor(r));
    CHECK(head.start_line == "POST /submit HTTP/1.1");
    CHECK(head.one("Host") == "Example.COM:8080");
    CHECK(head.all("Accept-Encoding") == std::vector<std::string>{"gzip", "br"});
    REQUIRE(head.headers.size() >= 5);
    CHECK(head.headers[0].name == "Host");
    CHECK(head.headers[1].name == "Content-Type");
}

TEST_CASE("upstream request line is HTTP/1.1 with the target given, even for an HTTP/1.0 client",
          "[http][rewrite]") {
    const RequestHead r = request("GET", "/api/users?id=7", {}, 0);
    UpstreamRequestInfo info = infoFor(r);
    info.target = "/users?id=7";  // after strip_prefix
    const WrittenHead head = upstreamHead(r, info);
    CHECK(head.start_line == "GET /users?id=7 HTTP/1.1");
}

TEST_CASE("X-Forwarded-For appends the client to the list received", "[http][rewrite]") {
    struct Case {
        const char* what;
        HeaderList received;
        const char* expected;
    };
    const Case kCases[] = {
        {"no list yet", {}, "10.0.0.9"},
        {"one address", {{"X-Forwarded-For", "192.0.2.1"}}, "192.0.2.1, 10.0.0.9"},
        {"a list", {{"X-Forwarded-For", "192.0.2.1, 198.51.100.2"}}, "192.0.2.1, 198.51.100.2, 10.0.0.9"},
        {"several headers are one list (RFC 9110 5.3)",
         {{"X-Forwarded-For", "192.0.2.1"}, {"Accept", "*/*"}, {"x-forwarded-for", "198.51.100.2, 203.0.113.3"}},
         "192.0.2.1, 198.51.100.2, 203.0.113.3, 10.0.0.9"},
    };
    for (const auto& c : kCases) {
        INFO(c.what);
        const RequestHead r = request("GET", "/", withHost(c.received));
        const WrittenHead head = upstreamHead(r, infoFor(r));
        CHECK(head.one("X-Forwarded-For") == c.expected);
    }
}

TEST_CASE("X-Forwarded-For carries an IPv6 client as is", "[http][rewrite]") {
    const RequestHead r = request("GET", "/", {{"Host", "h"}});
    const WrittenHead head = upstreamHead(r, infoFor(r, "2001:db8::1"));
    CHECK(head.one("X-Forwarded-For") == "2001:db8::1");
    CHECK(head.one("X-Real-IP") == "2001:db8::1");
}

TEST_CASE("X-Forwarded-Proto, X-Forwarded-Host and X-Real-IP are set and client ones replaced",
          "[http][rewrite]") {
    const RequestHead r = request("GET", "/",
                                  {{"X-Forwarded-Proto", "https"},
                                   {"Host", "shop.example.com"},
                                   {"X-Forwarded-Host", "evil.example"},
                                   {"x-real-ip", "127.0.0.1"},
                                   {"X-Real-IP", "1.2.3.4"},
                                   {"x-forwarded-proto", "ftp"}});
    SECTION("plain HTTP listener") {
        const WrittenHead head = upstreamHead(r, infoFor(r));
        CHECK(head.one("X-Forwarded-Proto") == "http");
        CHECK(head.one("X-Forwarded-Host") == "shop.example.com");
        CHECK(head.one("X-Real-IP") == "10.0.0.9");
    }
    SECTION("TLS listener") {
        UpstreamRequestInfo info = infoFor(r);
        info.scheme = "https";
        const WrittenHead head = upstreamHead(r, info);
        CHECK(head.one("X-Forwarded-Proto") == "https");
    }
}

TEST_CASE("a client X-Forwarded-Host is dropped even when the request has no Host", "[http][rewrite]") {
    const RequestHead r = request("GET", "/", {{"X-Forwarded-Host", "evil.example"}}, 0);
    const WrittenHead head = upstreamHead(r, infoFor(r));
    CHECK_FALSE(head.has("X-Forwarded-Host"));
    CHECK_FALSE(head.has("Host"));
    CHECK(head.one("X-Forwarded-For") == "10.0.0.9");
}

TEST_CASE("set_headers override the headers the client sent", "[http][rewrite]") {
    const std::vector<std::pair<std::string, std::string>> set = {{"X-Env", "prod"}, {"X-Added", "1"}};
    const RequestHead r = request("GET", "/", {{"Host", "h"}, {"x-env", "dev"}, {"X-ENV", "test"}});
    UpstreamRequestInfo info = infoFor(r);
    info.set_headers = &set;
    const WrittenHead head = upstreamHead(r, info);
    CHECK(head.all("X-Env") == std::vector<std::string>{"prod"});
    CHECK(head.one("X-Added") == "1");
}

// A route that sets X-Real-IP or an X-Forwarded-* field (a gateway behind another terminator
// saying "https") replaces ours, as nginx's proxy_set_header does; it used to go as a second field.
TEST_CASE("set_headers naming X-Real-IP or X-Forwarded-* replace Portico's own", "[http][rewrite]") {
    const std::vector<std::pair<std::string, std::string>> set = {
        {"x-real-ip", "192.0.2.7"}, {"X-Forwarded-Proto", "https"}, {"X-Forwarded-For", "192.0.2.7"},
        {"X-Forwarded-Host", "public.example"}};
    const RequestHead r = request("GET", "/", {{"Host", "h"}, {"X-Forwarded-For", "10.9.9.9"}, {"X-Real-IP", "1.2.3.4"}});
    UpstreamRequestInfo info = infoFor(r);
    info.set_headers = &set;
    const WrittenHead head = upstreamHead(r, info);
    CHECK(head.all("X-Real-IP") == std::vector<std::string>{"192.0.2.7"});
    CHECK(head.all("X-Forwarded-Proto") == std::vector<std::string>{"https"});
    CHECK(head.all("X-Forwarded-For") == std::vector<std::string>{"192.0.2.7"});
    CHECK(head.all("X-Forwarded-Host") == std::vector<std::string>{"public.example"});
    UpstreamRequestInfo plain = infoFor(r);  // without them: ours, the client's replaced
    const WrittenHead ours = upstreamHead(r, plain);
    const std::string client(plain.client_ip);
    CHECK(ours.all("X-Real-IP") == std::vector<std::string>{client});
    CHECK(ours.all("X-Forwarded-For") == std::vector<std::string>{"10.9.9.9, " + client});
}

TEST_CASE("set_headers may replace Host; X-Forwarded-Host keeps the client's", "[http][rewrite]") {
    const std::vector<std::pair<std::string, std::string>> set = {{"Host", "internal.svc"}};
    const RequestHead r = request("GET", "/", {{"Host", "www.example.com"}});
    UpstreamRequestInfo info = infoFor(r);
    info.set_headers = &set;
    const WrittenHead head = upstreamHead(r, info);
    CHECK(head.one("Host") == "internal.svc");
    CHECK(head.one("X-Forwarded-Host") == "www.example.com");
}

TEST_CASE("override_headers replace a received header or remove it with an empty value", "[http][rewrite]") {
    const HeaderList overrides = {{"Sec-WebSocket-Protocol", "chat"}, {"Sec-WebSocket-Extensions", ""}};
    const RequestHead r = request("GET", "/ws",
                                  {{"Host", "h"},
                                   {"sec-websocket-protocol", "superchat, chat"},
                                   {"Sec-WebSocket-Extensions", "permessage-deflate"},
                                   {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}});
    UpstreamRequestInfo info = infoFor(r);
    info.override_headers = &overrides;
    const WrittenHead head = upstreamHead(r, info);
    CHECK(head.all("Sec-WebSocket-Protocol") == std::vector<std::string>{"chat"});
    CHECK_FALSE(head.has("Sec-WebSocket-Extensions"));
    CHECK(head.one("Sec-WebSocket-Key") == "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST_CASE("upstream request body is re-framed by the framing given", "[http][rewrite]") {
    struct Case {
        const char* what;
        HeaderList received;
        BodyFraming framing;
        std::uint64_t length;
        const char* content_length;      // expected value, or "<absent>"
        const char* transfer_encoding;   // expected value, or "<absent>"
    };
    const Case kCases[] = {
        {"Content-Length kept as declared", {{"Content-Length", "42"}}, BodyFraming::ContentLength, 42, "42", "<absent>"},
        {"lower-case content-length not repeated", {{"content-length", "7"}}, BodyFraming::ContentLength, 7, "7",
         "<absent>"},
        {"chunked re-chunked", {{"Transfer-Encoding", "chunked"}}, BodyFraming::Chunked, 0, "<absent>", "chunked"},
        {"no body: no framing headers", {{"Content-Length", "0"}}, BodyFraming::None, 0, "<absent>", "<absent>"},
        {"a large length", {}, BodyFraming::ContentLength, 1ull << 40, "1099511627776", "<absent>"},
    };
    for (const auto& c : kCases) {
        INFO(c.what);
        const RequestHead r = request("POST", "/", withHost(c.received));
        UpstreamRequestInfo info = infoFor(r);
        info.framing = c.framing;
        info.content_length = c.length;
        const WrittenHead head = upstreamHead(r, info);
        CHECK(head.one("Content-Length") == c.content_length);
        CHECK(head.one("Transfer-Encoding") == c.transfer_encoding);
    }
}

TEST_CASE("an upgrade keeps Upgrade and sends Connection: upgrade once", "[http][rewrite]") {
    const RequestHead r = request("GET", "/chat",
                                  {{"Host", "h"},
                                   {"Connection", "keep-alive, Upgrade"},
                                   {"Upgrade", "websocket"},
                                   {"Keep-Alive", "timeout=5"},
                                   {"Sec-WebSocket-Version", "13"},
                                   {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}});
    SECTION("upgrade requested") {
        UpstreamRequestInfo info = infoFor(r);
        info.upgrade = true;
        const WrittenHead head = upstreamHead(r, info);
        CHECK(head.one("Upgrade") == "websocket");
        REQUIRE(head.all("Connection").size() == 1);
        CHECK(equalsIgnoreCase(head.one("Connection"), "upgrade"));
        CHECK_FALSE(head.has("Keep-Alive"));
        CHECK(head.one("Sec-WebSocket-Version") == "13");
        CHECK(head.one("Sec-WebSocket-Key") == "dGhlIHNhbXBsZSBub25jZQ==");
    }
    SECTION("plain request: Upgrade is dropped") {
        const WrittenHead head = upstreamHead(r, infoFor(r));
        CHECK_FALSE(head.has("Upgrade"));
        CHECK_FALSE(head.has("Connection"));
    }
}

TEST_CASE("client response head: Connection follows keep-alive and the client's version", "[http][rewrite]") {
    struct Case {
        const char* what;
        bool keep_alive;
        int client_minor;
        const char* connection;  // expected, or "<absent>"
    };
    // RFC 9112 9.3: HTTP/1.1 persists by default; an HTTP/1.0 client needs "keep-alive".
    const Case kCases[] = {
        {"HTTP/1.1 kept alive", true, 1, "<absent>"},
        {"HTTP/1.1 closing", false, 1, "close"},
        {"HTTP/1.0 kept alive", true, 0, "keep-alive"},
        {"HTTP/1.0 closing", false, 0, "close"},
    };
    // Whatever the upstream said about its own connection does not reach the client.
    const ResponseHead upstream = response(200, "OK",
                                           {{"Content-Type", "text/plain"},
                                            {"Connection", "close, X-Up"},
                                            {"X-Up", "1"},
                                            {"Keep-Alive", "timeout=5, max=100"},
                                            {"Content-Length", "5"}});
    for (const auto& c : kCases) {
        INFO(c.what);
        ClientResponseInfo info;
        info.framing = BodyFraming::ContentLength;
        info.content_length = 5;
        info.keep_alive = c.keep_alive;
        info.client_version_minor = c.client_minor;
        const WrittenHead head = clientHead(upstream, info);
        CHECK(head.start_line == "HTTP/1.1 200 OK");
        CHECK(head.one("Connection") == c.connection);
        CHECK_FALSE(head.has("Keep-Alive"));
        CHECK_FALSE(head.has("X-Up"));
        CHECK(head.one("Content-Type") == "text/plain");
        CHECK(head.one("Content-Length") == "5");
    }
}

TEST_CASE("client response head is re-framed by the framing given", "[http][rewrite]") {
    const ResponseHead upstream =
        response(200, "OK", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "10"}, {"ETag", "\"v1\""}});
    SECTION("re-chunked") {
        ClientResponseInfo info;
        info.framing = BodyFraming::Chunked;
        const WrittenHead head = clientHead(upstream, info);
        CHECK(head.one("Transfer-Encoding") == "chunked");
        CHECK_FALSE(head.has("Content-Length"));
        CHECK(head.one("ETag") == "\"v1\"");
    }
    SECTION("Content-Length") {
        ClientResponseInfo info;
        info.framing = BodyFraming::ContentLength;
        info.content_length = 10;
        const WrittenHead head = clientHead(upstream, info);
        CHECK(head.one("Content-Length") == "10");
        CHECK_FALSE(head.has("Transfer-Encoding"));
    }
    SECTION("delimited by close for an HTTP/1.0 client") {
        ClientResponseInfo info;
        info.framing = BodyFraming::UntilClose;
        info.keep_alive = false;
        info.client_version_minor = 0;
        const WrittenHead head = clientHead(upstream, info);
        CHECK_FALSE(head.has("Content-Length"));
        CHECK_FALSE(head.has("Transfer-Encoding"));
        CHECK(head.one("Connection") == "close");
    }
}

TEST_CASE("client response status line is HTTP/1.1 with the upstream reason or the standard one",
          "[http][rewrite]") {
    ClientResponseInfo info;
    CHECK(clientHead(response(404, "Nope", {}, 0), info).start_line == "HTTP/1.1 404 Nope");
    CHECK(clientHead(response(503, "", {}), info).start_line == "HTTP/1.1 503 Service Unavailable");
}

TEST_CASE("a 101 keeps Upgrade and Connection: upgrade for the client", "[http][rewrite]") {
    const ResponseHead upstream = response(101, "Switching Protocols",
                                           {{"Upgrade", "websocket"},
                                            {"Connection", "Upgrade"},
                                            {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}});
    ClientResponseInfo info;
    info.upgrade = true;
    const WrittenHead head = clientHead(upstream, info);
    CHECK(head.start_line == "HTTP/1.1 101 Switching Protocols");
    CHECK(head.one("Upgrade") == "websocket");
    REQUIRE(head.all("Connection").size() == 1);
    CHECK(equalsIgnoreCase(head.one("Connection"), "upgrade"));
    CHECK(head.one("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK_FALSE(head.has("Content-Length"));
    CHECK_FALSE(head.has("Transfer-Encoding"));
}

TEST_CASE("simple responses carry Content-Length and close when asked", "[http][rewrite]") {
    portico::core::EvbufferPtr out(evbuffer_new());
    const std::size_t written = writeErrorResponse(out.get(), 404, false);
    std::string text(evbuffer_get_length(out.get()), '\0');
    evbuffer_remove(out.get(), text.data(), text.size());
    CHECK(written == text.size());
    const std::string body = "404 Not Found\n";
    REQUIRE(text.size() > body.size());
    CHECK(text.substr(text.size() - body.size()) == body);
    const WrittenHead head = splitHead(text.substr(0, text.size() - body.size()));
    REQUIRE(head.well_formed);
    CHECK(head.start_line == "HTTP/1.1 404 Not Found");
    CHECK(head.one("Content-Length") == std::to_string(body.size()));
    CHECK(head.one("Connection") == "close");
    CHECK(head.one("Content-Type") == "text/plain");

    SECTION("HEAD: the head only, with the length of the body it would have") {
        portico::core::EvbufferPtr head_out(evbuffer_new());
        const std::size_t n = writeSimpleResponse(head_out.get(), 200, "text/plain", "ok\n", true, {}, true);
        std::string head_text(evbuffer_get_length(head_out.get()), '\0');
        evbuffer_remove(head_out.get(), head_text.data(), head_text.size());
        CHECK(n == head_text.size());
        const WrittenHead h = splitHead(head_text);
        REQUIRE(h.well_formed);
        CHECK(h.one("Content-Length") == "3");
        CHECK_FALSE(h.has("Connection"));
    }

    SECTION("an HTTP/1.0 client kept alive is told so (RFC 9112 9.3)") {
        portico::core::EvbufferPtr out10(evbuffer_new());
        writeSimpleResponse(out10.get(), 200, "text/plain", "", KeepAlive(true, 0));
        std::string text10(evbuffer_get_length(out10.get()), '\0');
        evbuffer_remove(out10.get(), text10.data(), text10.size());
        const WrittenHead h = splitHead(text10);
        REQUIRE(h.well_formed);
        CHECK(h.one("Connection") == "keep-alive");
        auto headFor = [](KeepAlive keep_alive) {
            portico::core::EvbufferPtr buffer(evbuffer_new());
            writeSimpleResponse(buffer.get(), 200, "", "", keep_alive);
            std::string bytes(evbuffer_get_length(buffer.get()), '\0');
            evbuffer_remove(buffer.get(), bytes.data(), bytes.size());
            return bytes;
        };
        CHECK(splitHead(headFor(KeepAlive(false, 0))).one("Connection") == "close");
        CHECK_FALSE(splitHead(headFor(KeepAlive(true, 1))).has("Connection"));
    }
}

TEST_CASE("reasonPhrase names every status Portico sends", "[http][rewrite]") {
    struct Case {
        int status;
        std::string_view reason;
    };
    const Case kCases[] = {
        {101, "Switching Protocols"}, {200, "OK"}, {301, "Moved Permanently"}, {308, "Permanent Redirect"},
        {400, "Bad Request"}, {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
        {408, "Request Timeout"}, {413, "Content Too Large"}, {426, "Upgrade Required"},
        {431, "Request Header Fields Too Large"}, {501, "Not Implemented"}, {502, "Bad Gateway"},
        {503, "Service Unavailable"}, {504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"},
        {299, "Unknown"},
    };
    for (const auto& c : kCases) {
        INFO(c.status);
        CHECK(reasonPhrase(c.status) == c.reason);
    }
}

TEST_CASE("formatClientResponseHead writes what appendClientResponseHead does, or nothing when it might not fit",
          "[http][rewrite]") {
    const ResponseHead r = response(101, "Switching Protocols",
                                    {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                                     {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, {"Keep-Alive", "x"}});
    ClientResponseInfo info;
    info.upgrade = true;
    std::string expected;
    appendClientResponseHead(expected, r, info);
    char text[1024];
    const std::size_t n = formatClientResponseHead(text, sizeof text, r, info);
    CHECK(std::string_view(text, n) == expected);
    CHECK(splitHead(expected).well_formed);
    // The bound counts every field and the fixed parts: a buffer only as long as the head written
    // may still be refused, never overrun.
    CHECK(formatClientResponseHead(text, expected.size() - 1, r, info) == 0);
    CHECK(formatClientResponseHead(text, 0, r, info) == 0);
}
