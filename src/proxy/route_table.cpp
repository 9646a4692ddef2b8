// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/route_table.h"

#include <string>

#include "portico/http/head.h"

namespace portico::proxy {

RouteTable::RouteTable(const std::vector<config::Route>& routes) : routes_(routes) {}

namespace {
std::string_view withoutPort(std::string_view host) {
    if (!host.empty() && host.front() == '[') {  // [v6]:port
        auto close = host.find(']');
        return close == std::string_view::npos ? host : host.substr(0, close + 1);
    }
    auto colon = host.rfind(':');
    return colon == std::string_view::npos ? host : host.substr(0, colon);
}
}  // namespace

bool RouteTable::hostMatches(std::string_view pattern, std::string_view host) {
    if (pattern.empty()) return true;
    host = withoutPort(host);
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // FQDN with the root dot
    if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
        // "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com".
        std::string_view suffix = pattern.substr(1);
        return host.size() > suffix.size() &&
               http::equalsIgnoreCase(host.substr(host.size() - suffix.size()), suffix);
    }
    return http::equalsIgnoreCase(pattern, host);
}

bool RouteTable::pathMatches(const config::Route& route, std::string_view path) {
    if (route.exact_path) return path == route.path;
    return path.substr(0, route.path.size()) == route.path;
}

const config::Route* RouteTable::match(std::string_view host, std::string_view path) const {
    for (const auto& route : routes_)
        if (hostMatches(route.host, host) && pathMatches(route, path)) return &route;
    return nullptr;
}

std::string upstreamTarget(const config::Route& route, std::string_view target) {
    if (!route.strip_prefix || route.exact_path) return std::string(target);
    std::string_view rest = target.substr(std::min(route.path.size(), target.size()));
    // "/api" stripped from "/api?x" leaves "?x": keep the target origin-form.
    if (rest.empty() || rest.front() != '/') return "/" + std::string(rest);
    return std::string(rest);
}

}  // namespace portico::proxy
