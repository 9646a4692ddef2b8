// SPDX-License-Identifier: Apache-2.0
// websocket.mode: http and websocket.http (the WebSocket-over-HTTP bridge): decoding and defaults.

#include <catch2/catch.hpp>

#include <string>

#include "portico/config/loader.h"

using namespace portico::config;

namespace {
const std::string L = "listeners: [{address: 127.0.0.1:0}]\nupstreams: {app: {servers: [h:1]}}\n";
}  // namespace

TEST_CASE("websocket mode http takes the issue's keys with their defaults", "[config][websocket][bridge]") {
    LoadResult defaults = loadConfigString(L + "routes: [{upstream: app, websocket: {mode: http}}]\n", "portico.yaml");
    REQUIRE(defaults.ok());
    const WebSocketSettings& d = defaults.config->routes[0].websocket;
    CHECK(d.mode == WebSocketMode::Http);
    CHECK(d.http.max_batch_bytes == 64 * 1024);
    CHECK(d.http.request_timeout == std::chrono::seconds(30));
    CHECK(d.http.sig_key.empty());

    LoadResult set = loadConfigString(L +
                                          "routes:\n  - path: /chat/\n    upstream: app\n    websocket:\n"
                                          "      mode: http\n      max_message_bytes: 1MiB\n      idle_timeout: 10m\n"
                                          "      http:\n        max_batch_bytes: 16KiB\n        request_timeout: 5s\n"
                                          "        sig_key: changeme\n",
                                      "portico.yaml");
    INFO((set.errors.empty() ? std::string() : set.errors[0].toString()));
    REQUIRE(set.ok());
    const WebSocketSettings& s = set.config->routes[0].websocket;
    CHECK(s.http.max_batch_bytes == 16 * 1024);
    CHECK(s.http.request_timeout == std::chrono::seconds(5));
    CHECK(s.http.sig_key == "changeme");
    CHECK(std::string(toString(s.mode)) == "http");
}
