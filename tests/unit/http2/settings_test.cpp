// SPDX-License-Identifier: Apache-2.0
// What a connection advertises (http2/connection.h): initial windows and concurrent streams that
// three quarters of http2_connection_buffer cover, two windows to spare.
#include <catch2/catch.hpp>

#include "portico/config/config.h"
#include "portico/http2/connection.h"
#include "portico/http2/tick.h"

using portico::config::Limits;
using portico::http2::settingsInitialWindow;
using portico::http2::settingsMaxStreams;

namespace {
// The streams' windows plus the widening pool (a quarter), with two windows free, fit the budget.
bool covered(const Limits& limits) {
    const std::size_t window = settingsInitialWindow(limits);
    const std::size_t budget = limits.http2_connection_buffer;
    return (settingsMaxStreams(limits) + 2) * window + budget / 4 <= budget;
}
}  // namespace

TEST_CASE("the defaults advertise 100 streams whose windows the budget covers") {
    const Limits limits;
    CHECK(settingsMaxStreams(limits) == 100);
    CHECK(settingsInitialWindow(limits) >= 16384);
    CHECK(covered(limits));
}

TEST_CASE("a budget that does not cover 16KiB windows for every stream advertises fewer streams") {
    Limits limits;
    limits.http2_connection_buffer = 1 << 20;  // the default before: 100 streams held it all
    CHECK(settingsInitialWindow(limits) == 16384);
    CHECK(settingsMaxStreams(limits) == 46);
    CHECK(covered(limits));
    limits.http2_connection_buffer = 64 * 1024;  // the least allowed
    CHECK(settingsMaxStreams(limits) == 1);
}

TEST_CASE("a large budget gives windows of at most 64KiB and the streams configured") {
    Limits limits;
    limits.http2_connection_buffer = 64 << 20;
    limits.http2_max_concurrent_streams = 128;
    CHECK(settingsInitialWindow(limits) == 65536);
    CHECK(settingsMaxStreams(limits) == 128);
    CHECK(covered(limits));
}

// A client_send_timeout of 50 ms or less was found over at the tick that took a fresh mark (the
// slack was the whole timeout): a client reading 4-5 MiB/s was closed at 40 and 50 ms.
TEST_CASE("the tick's slack is at most half of a timeout", "[http2]") {
    using namespace std::chrono_literals;
    CHECK(portico::http2::tickSlack(2s) == portico::http2::kTickSlack);
    CHECK(portico::http2::tickSlack(100ms) == portico::http2::kTickSlack);
    CHECK(portico::http2::tickSlack(50ms) == 25ms);
    CHECK(portico::http2::tickSlack(40ms) == 20ms);
}
