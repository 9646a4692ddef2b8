#include "portico/core/token_bucket.h"

namespace portico::core {

TokenBucket::TokenBucket(std::uint64_t rate, std::uint64_t capacity, Clock::time_point now)
    : rate_(rate), capacity_(capacity), level_(static_cast<Level>(capacity) * kNano), last_(now) {}

void TokenBucket::refill(Clock::time_point now) {
    if (now <= last_) return;  // the same batch, or a clock that went back: no new tokens
    const Level full = static_cast<Level>(capacity_) * kNano;
    const auto elapsed = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count());
    last_ = now;
    const Level room = full - level_;
    // elapsed * rate fits in 128 bits (both are below 2^64).
    const Level added = static_cast<Level>(elapsed) * rate_;
    level_ = added >= room ? full : level_ + added;
}

bool TokenBucket::has(std::uint64_t n, Clock::time_point now) {
    refill(now);
    return static_cast<Level>(n) * kNano <= level_;
}

bool TokenBucket::take(std::uint64_t n, Clock::time_point now) {
    if (!has(n, now)) return false;
    takeChecked(n);
    return true;
}

std::uint64_t TokenBucket::available(Clock::time_point now) {
    refill(now);
    return static_cast<std::uint64_t>(level_ / kNano);
}

}  // namespace portico::core
