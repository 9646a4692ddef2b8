// SPDX-License-Identifier: Apache-2.0
#include "pubsub/redis_backplane_parts.h"

#include <string>

#include <catch2/catch.hpp>

using namespace portico::pubsub;

TEST_CASE("a script's SHA-1 is found by its text, wherever the text lives") {
    // Another translation unit's copy of the literal has another address unless the linker
    // merges equal strings (ASan's builds do not): the lookup must not depend on it.
    const std::string publish(scripts::kPublish), replay(scripts::kReplay), info(scripts::kInfo);
    CHECK(shaOf(publish) == scriptSha(scripts::kPublish));
    CHECK(shaOf(replay) == scriptSha(scripts::kReplay));
    CHECK(shaOf(info) == scriptSha(scripts::kInfo));
    CHECK(shaOf(publish) != shaOf(info));
    CHECK(shaOf(publish).size() == 40);
}
