// SPDX-License-Identifier: Apache-2.0
#include "portico/core/token_bucket.h"

#include <catch2/catch.hpp>

using portico::core::oneSecondOf;
using portico::core::TokenBucket;
using namespace std::chrono_literals;

namespace {
// An injected clock: any fixed origin, moved by hand.
const TokenBucket::Clock::time_point t0 = TokenBucket::Clock::time_point() + 1000s;
}  // namespace

TEST_CASE("token bucket starts full and gives out its capacity at once", "[core][token_bucket]") {
    TokenBucket b(10, 5, t0);
    CHECK(b.available(t0) == 5);
    for (int i = 0; i < 5; ++i) CHECK(b.take(1, t0));
    CHECK_FALSE(b.take(1, t0));
    CHECK(b.available(t0) == 0);
}

TEST_CASE("token bucket refills at its rate, up to its capacity", "[core][token_bucket]") {
    TokenBucket b(10, 5, t0);
    REQUIRE(b.take(5, t0));
    CHECK_FALSE(b.take(1, t0 + 99ms));  // 0.99 tokens
    CHECK(b.take(1, t0 + 100ms));        // 1 token after 1/10 s
    CHECK(b.available(t0 + 300ms) == 2);
    CHECK(b.available(t0 + 10s) == 5);  // never more than the capacity
}

TEST_CASE("token bucket refuses a larger take whole and keeps its tokens", "[core][token_bucket]") {
    TokenBucket b(1000, 1000, t0);
    CHECK_FALSE(b.take(1001, t0));
    CHECK(b.available(t0) == 1000);
    CHECK(b.take(600, t0));
    CHECK_FALSE(b.take(600, t0));
    CHECK(b.take(600, t0 + 200ms));
}

TEST_CASE("token bucket treats a clock going back as no time passing", "[core][token_bucket]") {
    TokenBucket b(10, 10, t0);
    REQUIRE(b.take(10, t0 + 1s));
    CHECK(b.available(t0) == 0);
    CHECK(b.available(t0 + 1s) == 0);
    CHECK(b.available(t0 + 1500ms) == 5);
}

TEST_CASE("token bucket sustains exactly its rate over a long run", "[core][token_bucket]") {
    TokenBucket b(100, 1, t0);
    int taken = 0;
    for (int ms = 0; ms < 10000; ++ms) taken += b.take(1, t0 + std::chrono::milliseconds(ms)) ? 1 : 0;
    CHECK(taken >= 999);  // 1 at start + 100/s for 9.999 s
    CHECK(taken <= 1001);
}

TEST_CASE("token bucket takes fractional rates exactly: 6 per minute", "[core][token_bucket]") {
    TokenBucket b(6.0 / 60, 1, t0);
    REQUIRE(b.take(1, t0));
    CHECK_FALSE(b.take(1, t0 + 9999ms));
    CHECK(b.wait(1) == 1ms);
    CHECK(b.take(1, t0 + 10s));
    CHECK(b.wait(1) == 10s);
}

TEST_CASE("token bucket says when it is full again and what it was built with", "[core][token_bucket]") {
    TokenBucket b(2, 4, t0);
    CHECK(b.full(t0));
    REQUIRE(b.take(3, t0));
    CHECK_FALSE(b.full(t0 + 1s));
    CHECK(b.full(t0 + 1500ms));
    CHECK(b.builtWith(2, 4));
    CHECK_FALSE(b.builtWith(2, 5));
    CHECK_FALSE(b.builtWith(2.5, 4));
}

TEST_CASE("the bucket size of an unconfigured burst is one second's worth, at least 1", "[core][token_bucket]") {
    CHECK(oneSecondOf(100) == 100);
    CHECK(oneSecondOf(0.1) == 1);
    CHECK(oneSecondOf(2.5) == 3);
}
