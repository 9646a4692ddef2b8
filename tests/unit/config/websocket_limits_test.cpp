// SPDX-License-Identifier: Apache-2.0
// websocket.rate, websocket.max_lifetime and websocket.max_lifetime_grace: decoding, defaults
// and the errors `portico -t` reports (file:line:col and key path).

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
