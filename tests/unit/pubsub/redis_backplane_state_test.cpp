// SPDX-License-Identifier: Apache-2.0
#include "portico/pubsub/redis_backplane.h"

#include <string>

#include <catch2/catch.hpp>

#include "portico/observe/metrics.h"

using namespace portico;
using Shard = pubsub::RedisBackplaneState::ShardHealth;

TEST_CASE("backplane state is per shard: up, partial with the shards down, down without a shard up") {
    pubsub::RedisBackplaneState state("redis://127.0.0.1:7000/0");
    int w1 = 0, w2 = 0;  // two workers, told apart by address
    state.report(&w1, {});
    CHECK(std::string(state.health()) == "down");  // no slot map yet
    state.report(&w1, {{"127.0.0.1:7000", true}, {"127.0.0.1:7001", true}});
    state.report(&w2, {{"127.0.0.1:7000", true}, {"127.0.0.1:7001", true}});
    CHECK(std::string(state.health()) == "up");
    CHECK(state.downShards().empty());

    state.report(&w2, {{"127.0.0.1:7000", true}, {"127.0.0.1:7001", false}}, "connection refused");
    CHECK(std::string(state.health()) == "partial");
    CHECK(state.downShards() == "127.0.0.1:7001");
    observe::ProcessInfo info;
    state.stats(info);
    REQUIRE(info.pubsub.backplane_shards.size() == 2);
    CHECK(info.pubsub.backplane_shards[0] == std::pair<std::string, bool>("127.0.0.1:7000", true));
    CHECK(info.pubsub.backplane_shards[1] == std::pair<std::string, bool>("127.0.0.1:7001", false));

    state.report(&w1, {{"127.0.0.1:7000", false}, {"127.0.0.1:7001", false}}, "connection refused");
    CHECK(std::string(state.health()) == "down");  // one worker has nothing left
    CHECK(state.downShards().empty());             // "down" says it all
    state.forget(&w1);
    CHECK(std::string(state.health()) == "partial");
    state.report(&w2, {{"127.0.0.1:7000", true}, {"127.0.0.1:7001", true}});
    CHECK(std::string(state.health()) == "up");
}
