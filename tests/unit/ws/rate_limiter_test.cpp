// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/rate_limiter.h"

#include <catch2/catch.hpp>

using portico::config::WebSocketRate;
using portico::ws::RateLimiter;
using Verdict = RateLimiter::Verdict;
using namespace std::chrono_literals;

namespace {
const RateLimiter::Clock::time_point t0 = RateLimiter::Clock::time_point() + 1000s;
}

TEST_CASE("rate limiter without limits is disabled and admits everything", "[ws][rate]") {
    RateLimiter r(WebSocketRate{}, t0);
    CHECK_FALSE(r.enabled());
    CHECK(r.admit(1000000, 1ull << 40, t0) == Verdict::Ok);
}

TEST_CASE("rate limiter burst defaults to one second of the rate", "[ws][rate]") {
    WebSocketRate rate;
    rate.messages = 3;
    RateLimiter r(rate, t0);
    CHECK(r.enabled());
    for (int i = 0; i < 3; ++i) CHECK(r.admit(1, 100, t0) == Verdict::Ok);
    CHECK(r.admit(1, 0, t0) == Verdict::OverMessages);
    CHECK(r.admit(0, 1ull << 30, t0) == Verdict::Ok);  // no byte limit
    CHECK(r.admit(1, 0, t0 + 334ms) == Verdict::Ok);
}

TEST_CASE("rate limiter uses the configured burst for each bucket", "[ws][rate]") {
    WebSocketRate rate;
    rate.messages = 1;
    rate.burst_messages = 10;
    rate.bytes = 100;
    rate.burst_bytes = 1000;
    RateLimiter r(rate, t0);
    CHECK(r.admit(10, 1000, t0) == Verdict::Ok);
    CHECK(r.admit(0, 1, t0) == Verdict::OverBytes);
    CHECK(r.admit(1, 0, t0) == Verdict::OverMessages);
    CHECK(r.admit(1, 100, t0 + 1s) == Verdict::Ok);
}

TEST_CASE("rate limiter takes nothing from either bucket when one refuses", "[ws][rate]") {
    WebSocketRate rate;
    rate.messages = 5;
    rate.bytes = 10;
    RateLimiter r(rate, t0);
    CHECK(r.admit(1, 11, t0) == Verdict::OverBytes);
    CHECK(r.admit(5, 10, t0) == Verdict::Ok);  // both buckets were still full
    CHECK(r.admit(1, 1, t0) == Verdict::OverMessages);
}
