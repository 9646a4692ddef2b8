// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <chrono>

#include "portico/core/log_throttle.h"

using portico::core::LogThrottle;
using namespace std::chrono_literals;

TEST_CASE("a log throttle lets one line per interval through and counts the rest", "[core][log]") {
    LogThrottle throttle(1000ms);
    const LogThrottle::TimePoint t0{100s};
    std::uint64_t suppressed = 99;
    CHECK(throttle.allow(t0, suppressed));
    CHECK(suppressed == 0);
    for (int i = 0; i < 5; ++i) CHECK_FALSE(throttle.allow(t0 + 999ms, suppressed));
    CHECK(throttle.allow(t0 + 1000ms, suppressed));
    CHECK(suppressed == 5);
    CHECK_FALSE(throttle.allow(t0 + 1500ms, suppressed));
    CHECK(throttle.allow(t0 + 2000ms, suppressed));
    CHECK(suppressed == 1);
}
