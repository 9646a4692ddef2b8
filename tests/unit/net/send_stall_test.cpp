// SPDX-License-Identifier: Apache-2.0
// A send timeout measured from the first check that saw the peer's current progress (net/send_stall.h).
#include <catch2/catch.hpp>

#include <cstdint>

#include "portico/net/send_stall.h"

using portico::net::sendCheckInterval;
using portico::net::SendStall;
using namespace std::chrono_literals;

namespace {
const SendStall<std::uint64_t>::Clock::time_point t0{};
}

TEST_CASE("a send stall runs from the first check that saw the progress, not from the check that saw it move") {
    SendStall<std::uint64_t> stall;
    stall.watch(100, t0);
    CHECK(stall.left(100, t0 + 500ms, 2s) == 1500ms);
    CHECK(stall.left(200, t0 + 1000ms, 2s) == 2000ms);  // moved: the mark is this check
    CHECK(stall.left(200, t0 + 1500ms, 2s) == 1500ms);
    CHECK(stall.left(200, t0 + 2500ms, 2s) == 500ms);
    // Due 2 s after the check that first saw 200: not 2 s after a later check that saw it again.
    CHECK(stall.left(200, t0 + 3000ms, 2s) <= 0ms);
}

TEST_CASE("watching again keeps the mark; clearing starts a new one") {
    SendStall<std::uint64_t> stall;
    CHECK_FALSE(stall.watching());
    stall.watch(1, t0);
    stall.watch(1, t0 + 1500ms);  // a second call while the wait goes on: no restart
    CHECK(stall.left(1, t0 + 2s, 2s) <= 0ms);
    stall.clear();
    CHECK_FALSE(stall.watching());
    CHECK(stall.left(1, t0 + 3s, 2s) == 2s);  // the same progress, but a new wait
}

// The HTTP/2 tick case: libevent runs a repeating timer that came late (the process was stopped
// 0.98 s) and then the next one when it was due, so two ticks come 20 ms apart. Counted in ticks
// (as before), a 2 s timeout fired at the tick 1.02 s after the mark.
TEST_CASE("a late check followed by one on time does not make a send stall come early") {
    SendStall<std::uint64_t> stall;
    CHECK(stall.left(7, t0 + 1980ms, 2s) == 2s);  // the late tick: the mark
    CHECK(stall.left(7, t0 + 2000ms, 2s) > 1s);
    CHECK(stall.left(7, t0 + 3000ms, 2s) > 900ms);  // counted in ticks: due here
    CHECK(stall.left(7, t0 + 4000ms, 2s) <= 0ms);
}

TEST_CASE("a send timeout is checked four times over, at least once a second") {
    CHECK(sendCheckInterval(2s) == 500ms);
    CHECK(sendCheckInterval(60s) == 1s);
    CHECK(sendCheckInterval(2ms) == 1ms);
}
