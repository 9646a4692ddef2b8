// SPDX-License-Identifier: Apache-2.0
// websocket.rate, websocket.max_lifetime, websocket.max_lifetime_grace and
// websocket.permessage_deflate: decoding, defaults and the errors `portico -t` reports
// (file:line:col and key path).

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

TEST_CASE("websocket limits are off by default", "[config][websocket]") {
    LoadResult result = loadConfigString(L + "routes: [{upstream: app}]\n", "portico.yaml");
    REQUIRE(result.ok());
    const WebSocketSettings& ws = result.config->routes[0].websocket;
    CHECK_FALSE(ws.rate.enabled());
    CHECK(ws.max_lifetime.count() == 0);
    CHECK(ws.max_lifetime_grace == std::chrono::seconds(30));
    CHECK(ws.close_timeout == std::chrono::seconds(5));
}

TEST_CASE("websocket.rate, max_lifetime and max_lifetime_grace decode", "[config][websocket]") {
    LoadResult result = loadConfigString(L +
                                             "routes:\n  - upstream: app\n    websocket:\n      mode: frames\n"
                                             "      rate: {messages: 100/s, bytes: 1MiB/s, burst: {messages: 20, bytes: 64KiB}}\n"
                                             "      max_lifetime: 1h\n      max_lifetime_grace: 5s\n      close_timeout: 250ms\n"
                                             "  - path: /echo\n    handler: echo\n    websocket: {rate: {messages: 7/s}}\n",
                                         "portico.yaml");
    INFO(Catch::Detail::stringify(errorsOf(L)));
    REQUIRE(result.ok());
    const WebSocketSettings& ws = result.config->routes[0].websocket;
    CHECK(ws.rate.messages == 100);
    CHECK(ws.rate.bytes == 1024 * 1024);
    CHECK(ws.rate.burst_messages == 20);
    CHECK(ws.rate.burst_bytes == 64 * 1024);
    CHECK(ws.max_lifetime == std::chrono::hours(1));
    CHECK(ws.max_lifetime_grace == std::chrono::seconds(5));
    CHECK(ws.close_timeout == std::chrono::milliseconds(250));
    const WebSocketRate& echo = result.config->routes[1].websocket.rate;
    CHECK(echo.messages == 7);
    CHECK(echo.bytes == 0);
    CHECK(echo.burst_messages == 0);
}

TEST_CASE("websocket limit errors name the file, line, column and key path", "[config][websocket]") {
    const std::string R = "routes:\n  - upstream: app\n    websocket:\n      mode: frames\n";
    struct Case {
        std::string yaml;
        std::string error;
    };
    const std::vector<Case> cases = {
        {L + R + "      rate: {messages: 100}\n",
         "portico.yaml:7:24: routes[0].websocket.rate.messages: expected a rate like 100/s, 600/m or 0.5/s "
         "(greater than 0)"},
        {L + R + "      rate: {messages: 0/s}\n",
         "portico.yaml:7:24: routes[0].websocket.rate.messages: expected a rate like 100/s, 600/m or 0.5/s "
         "(greater than 0)"},
        {L + R + "      rate: {bytes: 1MB/s}\n",
         "portico.yaml:7:21: routes[0].websocket.rate.bytes: expected a byte rate like 1MiB/s or "
         "64KiB/m (greater than 0)"},
        {L + R + "      rate: {messages: 1/s, per: 2}\n",
         "portico.yaml:7:29: routes[0].websocket.rate.per: unknown key"},
        {L + R + "      rate: {messages: 1/s, burst: {messages: 0}}\n",
         "portico.yaml:7:47: routes[0].websocket.rate.burst.messages: must be greater than 0"},
        {L + R + "      rate: {messages: 1/s, burst: {bytes: 1KiB}}\n",
         "portico.yaml:7:44: routes[0].websocket.rate.burst.bytes: needs routes[0].websocket.rate.bytes"},
        {L + R + "      max_lifetime_grace: 0\n",
         "portico.yaml:7:27: routes[0].websocket.max_lifetime_grace: must be greater than 0"},
        {L + R + "      close_timeout: 0\n",
         "portico.yaml:7:22: routes[0].websocket.close_timeout: must be greater than 0"},
        {L + "routes:\n  - upstream: app\n    websocket: {rate: {messages: 10/s}}\n",
         "portico.yaml:5:23: routes[0].websocket.rate: needs mode: frames (a tunnel does not parse frames "
         "and cannot count them)"},
        {L + "routes:\n  - upstream: app\n    websocket: {mode: tunnel, max_lifetime: 2x}\n",
         "portico.yaml:5:45: routes[0].websocket.max_lifetime: expected a duration like 10s"},
    };
    for (const Case& c : cases) {
        INFO(c.yaml);
        CHECK(errorsOf(c.yaml) == Lines{c.error});
    }
}

TEST_CASE("max_lifetime is accepted in tunnel mode, its grace is not used there", "[config][websocket]") {
    LoadResult result = loadConfigString(L + "routes:\n  - upstream: app\n    websocket: {max_lifetime: 1h, "
                                             "max_lifetime_grace: 1s, close_timeout: 1s}\n",
                                         "portico.yaml");
    REQUIRE(result.ok());
    CHECK(result.config->routes[0].websocket.max_lifetime == std::chrono::hours(1));
    CHECK(result.warnings == Lines{"portico.yaml:5:55: routes[0].websocket.max_lifetime_grace: has no effect in "
                                   "tunnel mode (set mode: frames)",
                                   "portico.yaml:5:74: routes[0].websocket.close_timeout: has no effect in "
                                   "tunnel mode (set mode: frames)"});
}

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
    CHECK(p.max_inflating_per_worker == 256);
}

TEST_CASE("permessage_deflate decodes on built-ins and mode http", "[config][websocket][deflate]") {
    LoadResult result = loadConfigString(
        L + "routes:\n"
            "  - path: /echo\n    handler: echo\n    websocket:\n      permessage_deflate:\n"
            "        server_no_context_takeover: false\n        client_no_context_takeover: false\n"
            "        server_max_window_bits: 10\n        client_max_window_bits: 9\n"
            "        level: 6\n        mem_level: 4\n        min_message_bytes: 1KiB\n"
            "        max_inflating_per_worker: 0\n"
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
    CHECK(echo.max_inflating_per_worker == 0);
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
        {L + R + "        max_inflating_per_worker: lots\n",
         "portico.yaml:8:35: routes[0].websocket.permessage_deflate.max_inflating_per_worker: expected a non-negative integer"},
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
