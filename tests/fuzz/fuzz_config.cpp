// SPDX-License-Identifier: Apache-2.0
// Fuzz target: YAML text through the real configuration loader (loadConfigString: yaml-cpp,
// decode, validate, resolve), as `portico -t` and a reload read portico.yaml. Whatever the text:
//  - the loader returns (no exception, no hang, bounded memory: libFuzzer's -timeout and
//    -rss_limit_mb report those);
//  - it either gives a configuration or errors that each say where and what;
//  - an accepted configuration is consistent: a listener, every route's upstream exists and has
//    servers, and the route table built from it answers and rewrites targets.
//
// Input: the YAML text (no control bytes in front).

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "portico/config/loader.h"
#include "portico/proxy/route_table.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const auto result = portico::config::loadConfigString(text, "/fuzz/portico.yaml");
    FUZZ_CHECK(result.ok() == result.errors.empty());
    FUZZ_CHECK(result.ok() == (result.config != nullptr));
    for (const auto& error : result.errors) {
        FUZZ_CHECK(!error.message.empty());
        FUZZ_CHECK(error.line >= 0 && error.column >= 0);
        FUZZ_CHECK(error.toString().starts_with("/fuzz/portico.yaml"));
    }
    if (!result.ok()) return 0;

    const auto& config = *result.config;
    FUZZ_CHECK(!config.listeners.empty());
    for (const auto& route : config.routes) {
        FUZZ_CHECK(route.upstream.empty() != (route.handler == portico::config::HandlerKind::None));
        if (!route.upstream.empty()) {
            const auto* upstream = config.findUpstream(route.upstream);
            FUZZ_CHECK(upstream != nullptr);
            FUZZ_CHECK(!upstream->servers.empty());
        }
        const std::string target = portico::proxy::upstreamTarget(route, route.path + "x?q");
        FUZZ_CHECK(!target.empty() && target.front() == '/');
    }
    const portico::proxy::RouteTable table(config.routes);
    for (const auto& route : config.routes) {
        // A route's own path finds a route (itself or an earlier one that also matches).
        const std::string host = route.host.empty() ? "example.test" : route.host.front() == '*'
                                                                            ? "a" + route.host.substr(1)
                                                                            : route.host;
        (void)table.match(host, route.path);
    }
    return 0;
}
