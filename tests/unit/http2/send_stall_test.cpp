// SPDX-License-Identifier: Apache-2.0
// client_send_timeout at the HTTP/2 connection's tick (http2/send_stall.h): counted in ticks from
// the tick that first saw the progress, so a timeout of whole ticks comes at exactly that many
// ticks (a steady_clock comparison at the timer's coarse ticks came one tick late as often).
#include <catch2/catch.hpp>

#include <cstdint>

#include "portico/http2/send_stall.h"

using portico::http2::SendStall;
using namespace std::chrono_literals;

TEST_CASE("a send stall is due at the tick that completes the timeout, not later") {
    SendStall<std::uint64_t> stall;
    CHECK_FALSE(stall.stalled(100, 2s));  // the mark
    CHECK_FALSE(stall.stalled(100, 2s));  // one tick
    CHECK(stall.stalled(100, 2s));        // two ticks: 2 s
}

TEST_CASE("a send stall starts again when progress moves or nothing waits") {
    SendStall<std::uint64_t> stall;
    CHECK_FALSE(stall.stalled(1, 2s));
    CHECK_FALSE(stall.stalled(1, 2s));
    CHECK_FALSE(stall.stalled(2, 2s));  // moved: a new mark
    CHECK_FALSE(stall.stalled(2, 2s));
    stall.clear();                      // a tick with nothing queued
    CHECK_FALSE(stall.stalled(2, 2s));  // the same progress, but a new mark
    CHECK_FALSE(stall.stalled(2, 2s));
    CHECK(stall.stalled(2, 2s));
}

TEST_CASE("a send stall of a timeout between ticks is due at the next tick after it") {
    SendStall<std::uint64_t> stall;
    CHECK_FALSE(stall.stalled(7, 1500ms));
    CHECK_FALSE(stall.stalled(7, 1500ms));  // 1 s
    CHECK(stall.stalled(7, 1500ms));        // 2 s
}
