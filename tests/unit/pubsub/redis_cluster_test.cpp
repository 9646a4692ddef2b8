// SPDX-License-Identifier: Apache-2.0
#include "pubsub/redis_cluster.h"

#include <catch2/catch.hpp>

using namespace portico::pubsub::cluster;

TEST_CASE("key slots follow the Redis Cluster specification, hash tags included") {
    // The specification's CRC16 check value: "123456789" -> 0x31C3 (12739 % 16384).
    CHECK(keySlot("123456789") == 0x31C3);
    CHECK(keySlot("foo") == 12182);  // CLUSTER KEYSLOT foo
    CHECK(keySlot("{user1000}.following") == keySlot("{user1000}.followers"));
    CHECK(keySlot("{user1000}.following") == keySlot("user1000"));
    // The first '{' and the next '}' only; an empty tag hashes the whole key.
    CHECK(keySlot("foo{}{bar}") == keySlot("foo{}{bar}"));
    CHECK(keySlot("foo{}{bar}") != keySlot("bar"));
    CHECK(keySlot("foo{{bar}}zap") == keySlot("{bar"));
    CHECK(keySlot("foo{bar}{zap}") == keySlot("bar"));
}

TEST_CASE("a channel's keys and its shard channel share one slot") {
    const std::string base = "portico:{/live/\nroom}";
    CHECK(keySlot(base) == keySlot(base + ":meta"));
    CHECK(keySlot(base) == keySlot(base + ":stream"));
    CHECK(keySlot(base) == keySlot(base + ":idem:abc"));
}

TEST_CASE("MOVED and ASK redirections are read, anything else is not one") {
    Redirect r;
    REQUIRE(parseRedirect("MOVED 3999 127.0.0.1:6381", r));
    CHECK((!r.ask && r.slot == 3999 && r.node.host == "127.0.0.1" && r.node.port == 6381));
    REQUIRE(parseRedirect("ASK 16383 ::1:7000", r));
    CHECK((r.ask && r.slot == 16383 && r.node.host == "::1" && r.node.port == 7000));
    REQUIRE(parseRedirect("MOVED 1 :7001", r));  // a node that announces no address
    CHECK((r.node.host.empty() && r.node.port == 7001));
    for (const char* bad : {"MOVED 16384 127.0.0.1:1", "MOVED 12 127.0.0.1", "MOVED x 127.0.0.1:1", "ASK 1 h:0",
                            "NOSCRIPT No matching script", "MOVED", "CLUSTERDOWN The cluster is down"})
        CHECK_FALSE(parseRedirect(bad, r));
}
