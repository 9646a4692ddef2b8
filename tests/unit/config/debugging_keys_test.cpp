// SPDX-License-Identifier: Apache-2.0
// Issue 13's debugging keys: websocket.trace, trace_payload_bytes and trace_rate on a route, and
// tls.keylog_file on a listener and an upstream (paths, and the warning it always gets).

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "portico/config/loader.h"

using namespace portico::config;

namespace {

using Lines = std::vector<std::string>;

Lines errorsOf(const LoadResult& result) {
    Lines lines;
    for (const ConfigError& error : result.errors) lines.push_back(error.toString());
    return lines;
}

const std::string L = "listeners: [{address: 127.0.0.1:0}]\nupstreams: {app: {servers: [h:1]}}\n";

}  // namespace

TEST_CASE("websocket trace is off by default with 100 lines/s and no payload", "[config][trace]") {
    LoadResult result = loadConfigString(L + "routes: [{upstream: app}]\n", "portico.yaml");
    REQUIRE(result.ok());
    const WebSocketSettings& ws = result.config->routes[0].websocket;
    CHECK_FALSE(ws.trace);
    CHECK(ws.trace_payload_bytes == 0);
    CHECK(ws.trace_rate == 100);
}

TEST_CASE("websocket trace keys decode on frames routes and built-ins", "[config][trace]") {
    LoadResult result = loadConfigString(
        L + "routes:\n  - path: /echo\n    handler: echo\n    websocket: {trace: true}\n  - upstream: app\n"
            "    websocket: {mode: frames, trace: true, trace_payload_bytes: 64, trace_rate: 20/s}\n",
        "portico.yaml");
    INFO(Catch::Detail::stringify(errorsOf(result)));
    REQUIRE(result.ok());
    CHECK(result.warnings.empty());
    const WebSocketSettings& ws = result.config->routes[1].websocket;
    CHECK(ws.trace);
    CHECK(ws.trace_payload_bytes == 64);
    CHECK(ws.trace_rate == 20);
    CHECK(result.config->routes[0].websocket.trace);
}

TEST_CASE("websocket trace errors and the tunnel warning", "[config][trace]") {
    const std::string R = "routes:\n  - upstream: app\n    websocket:\n      mode: frames\n";
    struct Case {
        std::string yaml;
        std::string error;
    };
    const std::vector<Case> cases = {
        {L + R + "      trace: yes please\n", "portico.yaml:7:14: routes[0].websocket.trace: expected true or false"},
        {L + R + "      trace_payload_bytes: 257\n",
         "portico.yaml:7:28: routes[0].websocket.trace_payload_bytes: at most 256 bytes"},
        {L + R + "      trace_rate: 0/s\n",
         "portico.yaml:7:19: routes[0].websocket.trace_rate: expected a rate like 100/s, 600/m or 0.5/s (greater "
         "than 0)"},
    };
    for (const Case& c : cases) {
        INFO(c.yaml);
        CHECK(errorsOf(loadConfigString(c.yaml, "portico.yaml")) == Lines{c.error});
    }
    LoadResult tunnel = loadConfigString(L + "routes:\n  - upstream: app\n    websocket: {trace: true}\n",
                                         "portico.yaml");
    REQUIRE(tunnel.ok());
    CHECK(tunnel.warnings ==
          Lines{"portico.yaml:5:24: routes[0].websocket.trace: has no effect in tunnel mode (set mode: frames)"});
}

TEST_CASE("tls.keylog_file resolves next to the configuration and is always warned about", "[config][tls]") {
    const std::string yaml =
        "listeners:\n  - address: 127.0.0.1:0\n    tls:\n      certificates: [{cert: a.crt, key: a.key}]\n"
        "      keylog_file: keys.log\n"
        "upstreams:\n  app:\n    servers: [h:1]\n    tls: {keylog_file: /var/tmp/up.keys}\n"
        "routes: [{upstream: app}]\n";
    LoadResult result = loadConfigString(yaml, "/etc/portico/portico.yaml");
    INFO(Catch::Detail::stringify(errorsOf(result)));
    REQUIRE(result.ok());
    CHECK(result.config->listeners[0].tls->keylog_file == "/etc/portico/keys.log");
    CHECK(result.config->upstreams.at("app").tls->keylog_file == "/var/tmp/up.keys");
    CHECK(result.warnings ==
          Lines{"/etc/portico/portico.yaml:5:20: listeners[0].tls.keylog_file: TLS secrets are written to "
                "this file: whoever reads it can decrypt the traffic; for debugging only",
                "/etc/portico/portico.yaml:9:24: upstreams.app.tls.keylog_file: TLS secrets are written to "
                "this file: whoever reads it can decrypt the traffic; for debugging only"});
    LoadResult off = loadConfigString(
        "listeners:\n  - address: 127.0.0.1:0\n    tls:\n      certificates: [{cert: a.crt, key: a.key}]\n"
        "routes: [{handler: health}]\n",
        "portico.yaml");
    REQUIRE(off.ok());
    CHECK(off.config->listeners[0].tls->keylog_file.empty());
    CHECK(off.warnings.empty());
}
