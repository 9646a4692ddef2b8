#pragma once
// A token bucket (RFC 2697's single-rate meter, without colours): `rate` tokens per second flow
// into a bucket of `capacity`, starting full; a taker asks for n tokens and gets all or none.
// The clock is injected: every call passes `now`, so the data path reads the time once per batch
// and tests drive it with made-up time points. No allocation, no system calls.

#include <chrono>
#include <cstdint>

namespace portico::core {

class TokenBucket {
public:
    using Clock = std::chrono::steady_clock;

    // `rate` tokens per second (> 0), `capacity` tokens at most (> 0). Full at `now`.
    TokenBucket(std::uint64_t rate, std::uint64_t capacity, Clock::time_point now);

    // Refills for the time since the last call, then takes `n` tokens if the bucket holds them:
    // true. Otherwise takes nothing: false. A `now` earlier than a previous one counts as no time.
    bool take(std::uint64_t n, Clock::time_point now);
    // Whether `n` tokens are there at `now` (refills, takes nothing).
    bool has(std::uint64_t n, Clock::time_point now);
    // Takes `n` tokens that has() just found (no refill, no check): for callers that judge
    // several buckets before taking from any.
    void takeChecked(std::uint64_t n) { level_ -= static_cast<Level>(n) * kNano; }
    // Whole tokens in the bucket at `now` (refills, takes nothing).
    std::uint64_t available(Clock::time_point now);

    std::uint64_t rate() const { return rate_; }
    std::uint64_t capacity() const { return capacity_; }

private:
    void refill(Clock::time_point now);

    // Exact integer arithmetic: the level is kept in nanotokens (tokens * 1e9), and a refill
    // adds elapsed nanoseconds * rate, so no rounding drifts the rate however small the steps
    // (a floating-point level lost a tenth of a 100/s rate to rounding at 1 ms steps).
    // 128 bits: a capacity of 2^64 tokens times 1e9 still fits.
    __extension__ using Level = unsigned __int128;
    static constexpr std::uint64_t kNano = 1000000000;  // nanotokens per token

    std::uint64_t rate_;
    std::uint64_t capacity_;
    Level level_;  // nanotokens
    Clock::time_point last_;
};

}  // namespace portico::core
