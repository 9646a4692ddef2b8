// SPDX-License-Identifier: Apache-2.0
#pragma once
// Route matching: first match wins, in configuration order.

#include <string_view>
#include <vector>

#include "portico/config/config.h"

namespace portico::proxy {

class RouteTable {
public:
    explicit RouteTable(const std::vector<config::Route>& routes);
    // `host` is the Host header value (a port suffix is ignored); `path` excludes the query.
    // Returns the first route that matches, or nullptr (404).
    const config::Route* match(std::string_view host, std::string_view path) const;

    static bool hostMatches(std::string_view pattern, std::string_view host);
    static bool pathMatches(const config::Route& route, std::string_view path);

private:
    const std::vector<config::Route>& routes_;
};

// The request-target to send upstream: with strip_prefix the route's path is removed
// ("/api/users?x" under "/api/" becomes "/users?x"); the result always starts with '/'.
std::string upstreamTarget(const config::Route& route, std::string_view target);

}  // namespace portico::proxy
