// SPDX-License-Identifier: Apache-2.0
#include "portico/http/request_checks.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using portico::http::isValidHost;
using portico::http::normalizePath;
using portico::http::PathVerdict;

TEST_CASE("path normalizer resolves dot segments and merges slashes (RFC 3986 5.2.4)", "[http][path]") {
    struct Case {
        std::string_view in;
        std::string_view out;
    };
    static constexpr Case kCases[] = {
        {"/", "/"},
        {"/a", "/a"},
        {"/a/", "/a/"},
        {"/a/b/c", "/a/b/c"},
        {"/a/./b", "/a/b"},
        {"/a/.", "/a/"},
        {"/a/b/..", "/a/"},
        {"/a/b/../", "/a/"},
        {"/a/b/../c", "/a/c"},
        {"/api/../admin/users", "/admin/users"},
        {"/./", "/"},
        {"/.", "/"},
        {"/a/..", "/"},
        {"//a//b", "/a/b"},
        {"/a//", "/a/"},
        {"/a///../b", "/b"},
        {"/api/%2e%2e/admin", "/admin"},
        {"/api/%2E%2E/admin", "/admin"},
        {"/api/.%2e/admin", "/admin"},
        {"/api/%2e/x", "/api/x"},
        {"/a/...", "/a/..."},
        {"/a/..b", "/a/..b"},
        {"/a/b..", "/a/b.."},
        {"/a/%2e%2e%2e", "/a/%2e%2e%2e"},
        {"/a%20b/%7Ec", "/a%20b/%7Ec"},   // other escapes are kept as received
        {"/files/a%2Fb", "/files/a%2Fb"},  // an encoded slash that hides no dot segment is data
        {"/x;p=1/y", "/x;p=1/y"},
    };
    for (const auto& c : kCases) {
        INFO(c.in);
        std::string out;
        REQUIRE(normalizePath(c.in, out) == PathVerdict::Ok);
        CHECK(out == c.out);
    }
}

TEST_CASE("path normalizer refuses what would route differently or climbs above the root", "[http][path]") {
    struct Case {
        std::string_view in;
        PathVerdict verdict;
    };
    static constexpr Case kCases[] = {
        {"", PathVerdict::NotAbsolute},
        {"a/b", PathVerdict::NotAbsolute},
        {"*", PathVerdict::NotAbsolute},
        {"/..", PathVerdict::AboveRoot},
        {"/../a", PathVerdict::AboveRoot},
        {"/a/../..", PathVerdict::AboveRoot},
        {"/a/../../b", PathVerdict::AboveRoot},
        {"/%2e%2e/etc/passwd", PathVerdict::AboveRoot},
        {"//..", PathVerdict::AboveRoot},
        {"/a%00b", PathVerdict::EncodedNul},
        {"/a/%00", PathVerdict::EncodedNul},
        {"/a%", PathVerdict::BadEscape},
        {"/a%2", PathVerdict::BadEscape},
        {"/a%zz", PathVerdict::BadEscape},
        {"/api/..%2Fadmin", PathVerdict::EncodedSeparator},
        {"/api/..%2fadmin", PathVerdict::EncodedSeparator},
        {"/api/%2e%2e%2fadmin", PathVerdict::EncodedSeparator},
        {"/api/x%2F..%2Fadmin", PathVerdict::EncodedSeparator},
        {"/api/..%5Cadmin", PathVerdict::EncodedSeparator},
        {"/api/..\\admin", PathVerdict::EncodedSeparator},
        {"/api/a%2F.", PathVerdict::EncodedSeparator},
        {"/a#frag", PathVerdict::Fragment},
    };
    for (const auto& c : kCases) {
        INFO(c.in);
        std::string out;
        CHECK(normalizePath(c.in, out) == c.verdict);
    }
}

TEST_CASE("known methods are llhttp's, case-sensitive", "[http][method]") {
    for (const char* method : {"GET", "POST", "PATCH", "PROPFIND", "M-SEARCH", "OPTIONS", "CONNECT"})
        CHECK(portico::http::isKnownMethod(method));
    for (const char* method : {"get", "Get", "BREW", "", "GET ", "PRI"}) CHECK_FALSE(portico::http::isKnownMethod(method));
}

TEST_CASE("Host values follow RFC 3986 reg-name, IPv4, IP-literal and port syntax", "[http][host]") {
    struct Case {
        std::string_view value;
        bool valid;
    };
    static constexpr Case kCases[] = {
        {"example.com", true},
        {"example.com:8080", true},
        {"EXAMPLE.com.", true},
        {"localhost", true},
        {"127.0.0.1", true},
        {"127.0.0.1:80", true},
        {"[::1]", true},
        {"[::1]:8443", true},
        {"[2001:db8::1]:443", true},
        {"a-b_c~d.example", true},
        {"xn--bcher-kva.example", true},
        {"host:", true},  // RFC 3986 3.2.3: port = *DIGIT
        {"host:65535", true},
        {"", false},
        {"x/../y", false},
        {"evil.example/x?", false},
        {"evil.example/x?:18443", false},
        {"a b", false},
        {"a\tb", false},
        {"host:65536", false},
        {"host:123456", false},
        {"host:8x", false},
        {"host:80:80", false},
        {":80", false},
        {".example.com", false},
        {"a..b", false},
        {"..", false},
        {"user@host", false},
        {"host#frag", false},
        {"host\\x", false},
        {"[::1", false},
        {"[::1]x", false},
        {"[::1]:", true},
        {"[not-v6]", false},
        {"[v1.fe80::a]", false},  // IPvFuture: not taken
        {"::1", false},
        {"a%2", false},
        {"a%00b", false},
        {"a%41b", true},
        {"a%41..b", false},
        {"a.%2e.b", true},  // no empty label in the bytes received
        {"\"quoted\"", false},
        {"<x>", false},
    };
    for (const auto& c : kCases) {
        INFO(c.value);
        CHECK(isValidHost(c.value) == c.valid);
    }
}

namespace {

using portico::http::checkRequestHead;
using portico::http::RequestHead;

RequestHead head(std::string method, std::string target, portico::http::HeaderList headers, int minor = 1,
                 int major = 1) {
    RequestHead r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.headers = std::move(headers);
    r.version_major = major;
    r.version_minor = minor;
    return r;
}

}  // namespace

TEST_CASE("request head check answers what cannot be routed", "[http][request]") {
    struct Case {
        RequestHead request;
        int status;
    };
    const Case kCases[] = {
        {head("GET", "/", {{"Host", "h"}}, 0, 2), 505},
        {head("GET", "/", {{"Host", "h"}}, 1, 0), 505},
        {head("CONNECT", "h:443", {{"Host", "h:443"}}), 405},
        {head("GET", "*", {{"Host", "h"}}), 400},
        {head("GET", "x/y", {{"Host", "h"}}), 400},
        {head("GET", "ftp://h/x", {{"Host", "h"}}), 400},
        {head("GET", "http://u@h/x", {{"Host", "h"}}), 400},
        {head("GET", "http://bad/host?/x", {{"Host", "h"}}), 0},
        {head("GET", "http://a..b/x", {{"Host", "h"}}), 400},
        {head("GET", "/x#f", {{"Host", "h"}}), 400},
        {head("GET", "/", {}), 400},
        {head("GET", "/", {{"Host", "h"}, {"host", "h"}}), 400},
        {head("GET", "/", {{"Host", ""}}), 400},
        {head("GET", "/", {{"Host", "x/../y"}}), 400},
        {head("GET", "/../x", {{"Host", "h"}}), 400},
        {head("OPTIONS", "*", {{"Host", "h"}}), 0},
        {head("GET", "/a/./b?x=/../y", {{"Host", "h"}}), 0},
    };
    for (const auto& c : kCases) {
        RequestHead r = c.request;
        INFO(r.method << " " << r.target);
        CHECK(checkRequestHead(r, "").status == c.status);
    }
}

TEST_CASE("request head check normalizes the path and keeps the query", "[http][request]") {
    RequestHead r = head("GET", "/api//v1/../x?next=/../y", {{"Host", "h"}});
    REQUIRE(checkRequestHead(r, "").ok());
    CHECK(r.target == "/api/x?next=/../y");
    RequestHead absolute = head("GET", "http://Example.com:8080?q", {{"Host", "other"}});
    REQUIRE(checkRequestHead(absolute, "").ok());
    CHECK(absolute.target == "/?q");
    CHECK(portico::http::findHeader(absolute.headers, "Host")->value == "Example.com:8080");
}

TEST_CASE("an HTTP/1.0 request without Host gets the fallback host", "[http][request]") {
    RequestHead r = head("GET", "/", {}, 0);
    REQUIRE(checkRequestHead(r, "127.0.0.1:8080").ok());
    CHECK(portico::http::findHeader(r.headers, "Host")->value == "127.0.0.1:8080");
    RequestHead none = head("GET", "/", {}, 0);
    CHECK(checkRequestHead(none, "").status == 400);
    RequestHead v11 = head("GET", "/", {}, 1);
    CHECK(checkRequestHead(v11, "127.0.0.1:8080").status == 400);
}

TEST_CASE("path normalizer output is a fixed point with no dot segment and no empty segment", "[http][path]") {
    // Every string of up to 7 bytes from an alphabet rich in the troublesome pieces.
    static constexpr std::string_view kAlphabet = "/.%2eEfF5cA0";
    std::size_t checked = 0;
    std::string in, out, again;
    for (std::size_t length = 1; length <= 7; ++length) {
        std::vector<std::size_t> digits(length, 0);
        for (;;) {
            in.assign(length, ' ');
            for (std::size_t i = 0; i < length; ++i) in[i] = kAlphabet[digits[i]];
            in[0] = '/';
            if (normalizePath(in, out) == PathVerdict::Ok) {
                ++checked;
                INFO(in << " -> " << out);
                REQUIRE(!out.empty());
                REQUIRE(out.front() == '/');
                REQUIRE(out.find("//") == std::string::npos);
                REQUIRE(normalizePath(out, again) == PathVerdict::Ok);
                REQUIRE(again == out);
            }
            std::size_t i = 1;  // digit 0 stays '/'
            while (i < length && ++digits[i] == kAlphabet.size()) digits[i++] = 0;
            if (i >= length) break;
        }
    }
    CHECK(checked > 1000);
}
