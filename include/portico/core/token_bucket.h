// SPDX-License-Identifier: Apache-2.0
#pragma once
// A token bucket (RFC 2697's single-rate meter, without colours): `rate` tokens per second flow
// into a bucket of `capacity`, starting full; a taker asks for n tokens and gets all or none.
// The one bucket behind every rate in portico.yaml: WebSocket message and byte rates, the per-IP
// upgrade rate, a channel's publish rate.
// The clock is injected: every call passes `now`, so the data path reads the time once per batch
// and tests drive it with made-up time points. No allocation, no system calls.

#include <chrono>
#include <cstdint>

namespace portico::core {

// The bucket size a rate gets when none is configured: one second's worth, at least one token.
std::uint64_t oneSecondOf(double rate);

class TokenBucket {
public:
    using Clock = std::chrono::steady_clock;

    // `rate` tokens per second (> 0; fractions allowed: 10/m is 1/6), `capacity` whole tokens at
    // most (> 0). Full at `now`. Rates beyond 1.8e10 per second count as that much.
    TokenBucket(double rate, std::uint64_t capacity, Clock::time_point now);

    // Refills for the time since the last call, then takes `n` tokens if the bucket holds them:
    // true. Otherwise takes nothing: false. A `now` earlier than a previous one counts as no time.
    bool take(std::uint64_t n, Clock::time_point now);
    // Whether `n` tokens are there at `now` (refills, takes nothing).
    bool has(std::uint64_t n, Clock::time_point now);
    // Takes `n` tokens that has() just found (no refill, no check): for callers that judge
    // several buckets before taking from any.
    void takeChecked(std::uint64_t n) { level_ -= static_cast<Level>(n) * kUnit; }
    // Whole tokens in the bucket at `now` (refills, takes nothing).
    std::uint64_t available(Clock::time_point now);
    // Whether the bucket is full at `now`, as a new one would be (refills, takes nothing).
    bool full(Clock::time_point now);
    // How long until `n` tokens (n <= capacity) are there, counted from the last refill; zero when
    // they are. Call after has() or take() said no.
    std::chrono::nanoseconds wait(std::uint64_t n) const;

    // Whether this bucket was built with `rate` and `capacity` (a reload may have changed them).
    bool builtWith(double rate, std::uint64_t capacity) const;

    double rate() const { return static_cast<double>(rate_) / 1e9; }
    std::uint64_t capacity() const { return capacity_; }

private:
    void refill(Clock::time_point now);

    // Exact integer arithmetic: the rate is kept in nanotokens per second and the level in
    // 1e-18 tokens, so a refill adds elapsed nanoseconds * rate with no rounding at all: nothing
    // drifts however small the steps (a floating-point level lost a tenth of a 100/s rate to
    // rounding at 1 ms steps). 128 bits: 2^64 tokens * 1e18 and 2^64 ns * 2^64 both fit.
    __extension__ using Level = unsigned __int128;
    static constexpr Level kUnit = Level{1000000000} * 1000000000;  // level units per token

    std::uint64_t rate_;  // nanotokens per second
    std::uint64_t capacity_;
    Level level_;
    Clock::time_point last_;
};

}  // namespace portico::core
