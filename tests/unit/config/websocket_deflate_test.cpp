// SPDX-License-Identifier: Apache-2.0
// websocket.permessage_deflate: decoding, the memory-safe defaults and the errors `portico -t`
// reports (file:line:col and key path).

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "portico/config/loader.h"

using namespace portico::config;

namespace {

using Lines = std::vector<std::string>;

Lines errorsOf(const std::string& yaml) {
    LoadResult result = loadConfigString(yaml, "portico.yaml");
    Lines lines;
    for (const ConfigError& error : result.errors) lines.push_back(error.toString());
    return lines;
}

const std::string L = "listeners: [{address: 127.0.0.1:0}]\nupstreams: {app: {servers: [h:1]}}\n";

}  // namespace

TEST_CASE("permessage_deflate defaults keep no context in either direction", "[config][websocket][deflate]") {
    LoadResult result = loadConfigString(L + "routes: [{path: /echo, handler: echo}]\n", "portico.yaml");
    REQUIRE(result.ok());
    const PermessageDeflateSettings& p = result.config->routes[0].websocket.permessage_deflate;
    CHECK(p.enabled);
    CHECK(p.server_no_context_takeover);
    CHECK(p.client_no_context_takeover);
    CHECK(p.server_max_window_bits == 15);
    CHECK(p.client_max_window_bits == 15);
    CHECK(p.level == 1);
    CHECK(p.mem_level == 8);
    CHECK(p.min_message_bytes == 64);
}

TEST_CASE("permessage_deflate decodes on built-ins and mode http", "[config][websocket][deflate]") {
    LoadResult result = loadConfigString(
        L + "routes:\n"
            "  - path: /echo\n    handler: echo\n    websocket:\n      permessage_deflate:\n"
            "        server_no_context_takeover: false\n        client_no_context_takeover: false\n"
            "        server_max_window_bits: 10\n        client_max_window_bits: 9\n"
            "        level: 6\n        mem_level: 4\n        min_message_bytes: 1KiB\n"
            "  - path: /live/\n    handler: pubsub\n    websocket: {permessage_deflate: {enabled: false}}\n"
            "  - path: /app\n    upstream: app\n    websocket: {mode: http, permessage_deflate: {level: 9}}\n",
        "portico.yaml");
    INFO(Catch::Detail::stringify(result.errors.empty() ? std::string() : result.errors[0].toString()));
    REQUIRE(result.ok());
    const PermessageDeflateSettings& echo = result.config->routes[0].websocket.permessage_deflate;
    CHECK_FALSE(echo.server_no_context_takeover);
    CHECK_FALSE(echo.client_no_context_takeover);
    CHECK(echo.server_max_window_bits == 10);
    CHECK(echo.client_max_window_bits == 9);
    CHECK(echo.level == 6);
    CHECK(echo.mem_level == 4);
    CHECK(echo.min_message_bytes == 1024);
    CHECK_FALSE(result.config->routes[1].websocket.permessage_deflate.enabled);
    CHECK(result.config->routes[2].websocket.permessage_deflate.level == 9);
    CHECK(result.config->routes[2].websocket.permessage_deflate.server_no_context_takeover);
}

TEST_CASE("permessage_deflate errors name the file, line, column and key path", "[config][websocket][deflate]") {
    const std::string R = "routes:\n  - path: /echo\n    handler: echo\n    websocket:\n      permessage_deflate:\n";
    struct Case {
        std::string yaml;
        std::string error;
    };
    const std::vector<Case> cases = {
        {L + R + "        server_max_window_bits: 16\n",
         "portico.yaml:8:33: routes[0].websocket.permessage_deflate.server_max_window_bits: expected a whole "
         "number from 8 to 15"},
        {L + R + "        client_max_window_bits: 7\n",
         "portico.yaml:8:33: routes[0].websocket.permessage_deflate.client_max_window_bits: expected a whole "
         "number from 8 to 15"},
        {L + R + "        level: 0\n",
         "portico.yaml:8:16: routes[0].websocket.permessage_deflate.level: expected a whole number from 1 to 9"},
        {L + R + "        mem_level: 10\n",
         "portico.yaml:8:20: routes[0].websocket.permessage_deflate.mem_level: expected a whole number from 1 to 9"},
        {L + R + "        server_no_context_takeover: maybe\n",
         "portico.yaml:8:37: routes[0].websocket.permessage_deflate.server_no_context_takeover: expected true or "
         "false"},
        {L + R + "        min_message_bytes: -1\n",
         "portico.yaml:8:28: routes[0].websocket.permessage_deflate.min_message_bytes: expected a size like 10MiB"},
        {L + R + "        window_bits: 10\n",
         "portico.yaml:8:9: routes[0].websocket.permessage_deflate.window_bits: unknown key"},
        {L + "routes:\n  - upstream: app\n    websocket: {mode: frames, permessage_deflate: {level: 2}}\n",
         "portico.yaml:5:51: routes[0].websocket.permessage_deflate: only for handlers echo and pubsub and mode: "
         "http (tunnel and frames pass the upstream's answer through)"},
        {L + "routes:\n  - upstream: app\n    websocket: {permessage_deflate: {enabled: false}}\n",
         "portico.yaml:5:37: routes[0].websocket.permessage_deflate: only for handlers echo and pubsub and mode: "
         "http (tunnel and frames pass the upstream's answer through)"},
    };
    for (const Case& c : cases) {
        INFO(c.yaml);
        CHECK(errorsOf(c.yaml) == Lines{c.error});
    }
}
