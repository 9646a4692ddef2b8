// SPDX-License-Identifier: Apache-2.0
#include "portico/config/redis_url.h"

#include <catch2/catch.hpp>

using namespace portico;

TEST_CASE("redis URL: host, port, db and credentials", "[config][backplane]") {
    config::RedisAddress a;
    std::string error;
    REQUIRE(config::parseRedisUrl("redis://127.0.0.1:6380/2", a, error));
    CHECK(a.host == "127.0.0.1");
    CHECK(a.port == 6380);
    CHECK(a.db == 2);
    CHECK(a.password.empty());
    REQUIRE(config::parseRedisUrl("redis://user:p%40ss:w@redis.local", a, error));
    CHECK(a.username == "user");
    CHECK(a.password == "p%40ss:w");
    CHECK(a.host == "redis.local");
    CHECK(a.port == 6379);
    CHECK(a.db == 0);
    REQUIRE(config::parseRedisUrl("redis://:secret@[::1]:7000/", a, error));
    CHECK(a.host == "::1");
    CHECK(a.port == 7000);
    CHECK(a.username.empty());
    CHECK(a.password == "secret");
    REQUIRE(config::parseRedisUrl("unix:///run/redis/redis.sock?db=3", a, error));
    CHECK(a.unix_path == "/run/redis/redis.sock");
    CHECK(a.db == 3);
    CHECK(a.host.empty());
}

TEST_CASE("redis URL: what is refused", "[config][backplane]") {
    config::RedisAddress a;
    std::string error;
    for (const char* bad : {"http://x", "redis://", "redis://host:0", "redis://host:70000", "redis://host/x",
                            "unix://relative.sock", "unix:///s?timeout=1", "redis://[::1"}) {
        INFO(bad);
        CHECK_FALSE(config::parseRedisUrl(bad, a, error));
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("redis URL: the password is redacted for logs", "[config][backplane]") {
    CHECK(config::redactRedisUrl("redis://user:secret@h:1/0") == "redis://user:***@h:1/0");
    CHECK(config::redactRedisUrl("redis://secret@h") == "redis://***@h");
    CHECK(config::redactRedisUrl("redis://h:1") == "redis://h:1");
}
