// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/route_table.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using namespace portico;
using portico::proxy::RouteTable;

namespace {

// A route as the loader leaves it: "=/x" becomes path "/x" with exact_path set.
config::Route route(std::string upstream, std::string path, std::string host = "", bool strip_prefix = false) {
    config::Route r;
    r.upstream = std::move(upstream);
    if (!path.empty() && path.front() == '=') {
        r.exact_path = true;
        path.erase(0, 1);
    }
    r.path = std::move(path);
    r.host = std::move(host);
    r.strip_prefix = strip_prefix;
    return r;
}

// The upstream name of the route chosen, or "404".
std::string matched(const RouteTable& table, std::string_view host, std::string_view path) {
    const config::Route* r = table.match(host, path);
    return r ? r->upstream : "404";
}

}  // namespace

TEST_CASE("route table: the first matching route wins, in configuration order", "[proxy][routes]") {
    const std::vector<config::Route> routes = {
        route("api", "/api/"),
        route("api-v2", "/api/v2/"),  // never reached: /api/ comes first
        route("health", "=/healthz"),
        route("root", "/"),
    };
    const RouteTable table(routes);
    CHECK(matched(table, "h", "/api/v2/users") == "api");
    CHECK(matched(table, "h", "/api/") == "api");
    CHECK(matched(table, "h", "/healthz") == "health");
    CHECK(matched(table, "h", "/index.html") == "root");
    CHECK(matched(table, "h", "/") == "root");
}

TEST_CASE("route table: no matching route is nullptr (404)", "[proxy][routes]") {
    const std::vector<config::Route> routes = {route("api", "/api/"), route("admin", "/", "admin.example.com")};
    const RouteTable table(routes);
    CHECK(table.match("www.example.com", "/") == nullptr);
    CHECK(table.match("h", "/ap") == nullptr);
    const std::vector<config::Route> none;
    CHECK(RouteTable(none).match("h", "/") == nullptr);
}

TEST_CASE("route table: an exact path \"=/x\" matches that path only", "[proxy][routes]") {
    const std::vector<config::Route> routes = {route("exact", "=/x"), route("rest", "/")};
    const RouteTable table(routes);
    struct Case {
        std::string_view path;
        const char* expected;
    };
    const Case kCases[] = {
        {"/x", "exact"}, {"/x/", "rest"}, {"/xy", "rest"}, {"/x/y", "rest"}, {"/X", "rest"}, {"/", "rest"},
    };
    for (const auto& c : kCases) {
        INFO(c.path);
        CHECK(matched(table, "h", c.path) == c.expected);
    }
}

TEST_CASE("route table: a path prefix matches every path below it", "[proxy][routes]") {
    const std::vector<config::Route> routes = {route("api", "/api/"), route("static", "/static"),
                                               route("rest", "/")};
    const RouteTable table(routes);
    struct Case {
        std::string_view path;
        const char* expected;
    };
    const Case kCases[] = {
        {"/api/", "api"},     {"/api/users", "api"},      {"/api/a/b/c", "api"}, {"/api", "rest"},
        {"/API/users", "rest"},  // paths are case-sensitive (RFC 3986 6.2.2.1)
        {"/static", "static"}, {"/static/app.js", "static"}, {"/", "rest"},       {"/other", "rest"},
    };
    for (const auto& c : kCases) {
        INFO(c.path);
        CHECK(matched(table, "h", c.path) == c.expected);
    }
}

TEST_CASE("route table: host patterns, exact and wildcard", "[proxy][routes]") {
    struct Case {
        std::string_view pattern;
        std::string_view host;
        bool matches;
    };
    const Case kCases[] = {
        {"", "anything.example", true},
        {"", "", true},
        {"example.com", "example.com", true},
        {"example.com", "EXAMPLE.Com", true},        // RFC 9110 4.2.3: host is case-insensitive
        {"example.com", "example.com:8080", true},   // the port is ignored
        {"example.com", "example.com.", true},       // fully qualified, with the root dot
        {"example.com", "www.example.com", false},
        {"example.com", "example.org", false},
        {"example.com", "example.com.evil", false},
        {"example.com", "notexample.com", false},
        {"example.com", "", false},                  // no Host: only host-less routes
        {"*.example.com", "a.example.com", true},
        {"*.example.com", "a.b.example.com", true},
        {"*.example.com", "A.Example.COM:443", true},
        {"*.example.com", "example.com", false},
        {"*.example.com", ".example.com", false},
        {"*.example.com", "badexample.com", false},
        {"*.example.com", "a.example.com.evil", false},
        {"127.0.0.1", "127.0.0.1:8080", true},
        {"[::1]", "[::1]:8080", true},
        {"[::1]", "[::1]", true},
    };
    for (const auto& c : kCases) {
        INFO("pattern \"" << c.pattern << "\" host \"" << c.host << "\"");
        CHECK(RouteTable::hostMatches(c.pattern, c.host) == c.matches);
    }
}

TEST_CASE("route table: host routes come before and fall back to host-less ones", "[proxy][routes]") {
    const std::vector<config::Route> routes = {
        route("shop-api", "/api/", "shop.example.com"),
        route("tenant", "/", "*.tenants.example.com"),
        route("api", "/api/"),
        route("root", "/"),
    };
    const RouteTable table(routes);
    CHECK(matched(table, "shop.example.com", "/api/cart") == "shop-api");
    CHECK(matched(table, "Shop.Example.com:8443", "/api/cart") == "shop-api");
    CHECK(matched(table, "blog.example.com", "/api/cart") == "api");
    CHECK(matched(table, "shop.example.com", "/about") == "root");
    CHECK(matched(table, "acme.tenants.example.com", "/api/cart") == "tenant");
    CHECK(matched(table, "tenants.example.com", "/x") == "root");
    CHECK(matched(table, "", "/api/x") == "api");
}

TEST_CASE("upstreamTarget removes the route prefix with strip_prefix, keeping the query", "[proxy][routes]") {
    struct Case {
        const char* route_path;
        bool strip;
        std::string_view target;
        const char* expected;
    };
    const Case kCases[] = {
        {"/api/", true, "/api/users", "/users"},
        {"/api/", true, "/api/users?id=7&x=y", "/users?id=7&x=y"},
        {"/api/", true, "/api/", "/"},
        {"/api/", true, "/api/?q=1", "/?q=1"},
        {"/api/", true, "/api/a/b/", "/a/b/"},
        {"/api", true, "/api/users", "/users"},
        {"/api", true, "/api", "/"},
        {"/api", true, "/api?x=1", "/?x=1"},
        {"/", true, "/index.html?v=2", "/index.html?v=2"},
        {"/api/", false, "/api/users?id=7", "/api/users?id=7"},
        {"=/exact", true, "/exact?x=1", "/exact?x=1"},  // an exact route has nothing below it
    };
    for (const auto& c : kCases) {
        INFO(c.route_path << (c.strip ? " stripped: " : ": ") << c.target);
        const config::Route r = route("u", c.route_path, "", c.strip);
        CHECK(proxy::upstreamTarget(r, c.target) == c.expected);
    }
}
