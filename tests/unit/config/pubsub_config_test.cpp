// SPDX-License-Identifier: Apache-2.0
// The pub/sub bounds in portico.yaml: the route's `pubsub:` keys and the top-level `pubsub:`
// block, their defaults and their errors.

#include <catch2/catch.hpp>

#include <string>

#include "portico/config/loader.h"

using namespace portico::config;
using namespace std::chrono_literals;

namespace {

const std::string kHead = "listeners: [{address: 127.0.0.1:0}]\n";

std::string firstError(const std::string& yaml) {
    LoadResult result = loadConfigString(yaml, "portico.yaml");
    return result.errors.empty() ? std::string() : result.errors.front().toString();
}

}  // namespace

TEST_CASE("pubsub bounds have safe defaults", "[config][pubsub]") {
    LoadResult result = loadConfigString(kHead + "routes: [{path: /live/, handler: pubsub}]\n", "portico.yaml");
    REQUIRE(result.ok());
    const Config& c = *result.config;
    CHECK(c.pubsub.history_budget == 32u << 20);
    CHECK(c.pubsub.max_channels == 10000);
    const PubSubSettings& ps = c.routes[0].pubsub;
    CHECK(ps.history == 100);
    CHECK(ps.history_bytes == 1u << 20);
    CHECK(ps.history_ttl == 10min);
    CHECK(ps.channel_idle_timeout == 10min);
    CHECK(ps.max_message_bytes == 256u << 10);
    CHECK(ps.publish_rate == 100);
    CHECK(ps.publish_burst == 0);
}

TEST_CASE("pubsub bounds are read from the route and the top level", "[config][pubsub]") {
    LoadResult result = loadConfigString(kHead +
                                             "pubsub: {history_budget: 8MiB, max_channels: 50}\n"
                                             "routes:\n"
                                             "  - path: /live/\n"
                                             "    handler: pubsub\n"
                                             "    pubsub:\n"
                                             "      history_bytes: 64KiB\n"
                                             "      history_ttl: 30s\n"
                                             "      channel_idle_timeout: 2m\n"
                                             "      max_message_bytes: 4KiB\n"
                                             "      publish_rate: 20/s\n"
                                             "      publish_burst: 40\n"
                                             "  - path: /free/\n"
                                             "    handler: pubsub\n"
                                             "    pubsub: {publish_rate: off, history_ttl: 0}\n",
                                         "portico.yaml");
    REQUIRE(result.ok());
    const Config& c = *result.config;
    CHECK(c.pubsub.history_budget == 8u << 20);
    CHECK(c.pubsub.max_channels == 50);
    const PubSubSettings& ps = c.routes[0].pubsub;
    CHECK(ps.history_bytes == 64u << 10);
    CHECK(ps.history_ttl == 30s);
    CHECK(ps.channel_idle_timeout == 2min);
    CHECK(ps.max_message_bytes == 4096);
    CHECK(ps.publish_rate == 20);
    CHECK(ps.publish_burst == 40);
    CHECK(c.routes[1].pubsub.publish_rate == 0);
    CHECK(c.routes[1].pubsub.history_ttl == 0ms);
}

TEST_CASE("pubsub bounds name the key at fault", "[config][pubsub]") {
    const std::string route = "routes:\n  - handler: pubsub\n    pubsub: ";
    CHECK(firstError(kHead + route + "{publish_rate: 100}\n") ==
          "portico.yaml:4:28: routes[0].pubsub.publish_rate: expected a rate like 100/s, 600/m or 0.5/s, or off");
    CHECK(firstError(kHead + route + "{publish_rate: -5/s}\n") ==
          "portico.yaml:4:28: routes[0].pubsub.publish_rate: expected a rate like 100/s, 600/m or 0.5/s, or off");
    CHECK(firstError(kHead + route + "{publish_burst: 0}\n") ==
          "portico.yaml:4:29: routes[0].pubsub.publish_burst: must be greater than 0");
    CHECK(firstError(kHead + route + "{channel_idle_timeout: 0}\n") ==
          "portico.yaml:4:36: routes[0].pubsub.channel_idle_timeout: must be greater than 0");
    CHECK(firstError(kHead + route + "{max_message_bytes: 0}\n") ==
          "portico.yaml:4:33: routes[0].pubsub.max_message_bytes: must be greater than 0");
    CHECK(firstError(kHead + "pubsub: {max_channels: 0}\nroutes: [{handler: health}]\n") ==
          "portico.yaml:2:24: pubsub.max_channels: must be greater than 0");
    CHECK(firstError(kHead + "pubsub: {history: 5}\nroutes: [{handler: health}]\n") ==
          "portico.yaml:2:10: pubsub.history: unknown key");
}

TEST_CASE("pubsub backplane is read with its exact keys", "[config][pubsub][backplane]") {
    LoadResult none = loadConfigString(kHead + "routes: [{path: /live/, handler: pubsub}]\n", "/etc/p/portico.yaml");
    REQUIRE(none.ok());
    CHECK_FALSE(none.config->pubsub.backplane.enabled);
    LoadResult result = loadConfigString(kHead +
                                             "pubsub:\n"
                                             "  backplane:\n"
                                             "    redis: redis://:pw@127.0.0.1:6390/1\n"
                                             "    key_prefix: edge\n"
                                             "    connect_timeout: 500ms\n"
                                             "    publish_timeout: 1s\n"
                                             "    max_pending_bytes: 4MiB\n"
                                             "    password_file: secrets/redis\n"
                                             "routes: [{path: /live/, handler: pubsub}]\n",
                                         "/etc/p/portico.yaml");
    REQUIRE(result.ok());
    const BackplaneSettings& b = result.config->pubsub.backplane;
    CHECK(b.enabled);
    CHECK(b.address.port == 6390);
    CHECK(b.address.db == 1);
    CHECK(b.address.password == "pw");
    CHECK(b.key_prefix == "edge");
    CHECK(b.connect_timeout == 500ms);
    CHECK(b.publish_timeout == 1s);
    CHECK(b.max_pending_bytes == 4u * 1024 * 1024);
    CHECK(b.password_file == "/etc/p/secrets/redis");
}

TEST_CASE("pubsub backplane errors name the key", "[config][pubsub][backplane]") {
    CHECK_THAT(firstError(kHead + "pubsub: {backplane: {redis: 'http://x'}}\nroutes: []\n"),
               Catch::Contains("pubsub.backplane.redis") && Catch::Contains("redis://"));
    CHECK_THAT(firstError(kHead + "pubsub: {backplane: {key_prefix: x}}\nroutes: []\n"),
               Catch::Contains("pubsub.backplane.redis") && Catch::Contains("missing"));
    CHECK_THAT(firstError(kHead + "pubsub: {backplane: {redis: 'redis://h', publish_timeout: 0s}}\nroutes: []\n"),
               Catch::Contains("pubsub.backplane.publish_timeout"));
    CHECK_THAT(firstError(kHead + "pubsub: {backplane: {redis: 'redis://h', max_pending_bytes: 0}}\nroutes: []\n"),
               Catch::Contains("pubsub.backplane.max_pending_bytes"));
    CHECK_THAT(firstError(kHead + "pubsub: {backplane: {redis: 'redis://h', sentinel: x}}\nroutes: []\n"),
               Catch::Contains("pubsub.backplane.sentinel") && Catch::Contains("unknown key"));
}
