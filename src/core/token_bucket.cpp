// SPDX-License-Identifier: Apache-2.0
#include "portico/core/token_bucket.h"

#include <cmath>
#include <limits>

namespace portico::core {
namespace {

std::uint64_t nanotokensPerSecond(double rate) {
    constexpr double kMax = static_cast<double>(std::numeric_limits<std::uint64_t>::max());
    const double scaled = std::ceil(rate * 1e9);
    if (!(scaled > 0)) return 1;  // a rate of 0 is "off" and never builds a bucket; NaN too
    return scaled >= kMax ? std::numeric_limits<std::uint64_t>::max() : static_cast<std::uint64_t>(scaled);
}

}  // namespace

std::uint64_t oneSecondOf(double rate) {
    const double tokens = std::ceil(rate);
    if (!(tokens >= 1)) return 1;
    return tokens >= 1.8e19 ? std::numeric_limits<std::uint64_t>::max() : static_cast<std::uint64_t>(tokens);
}

TokenBucket::TokenBucket(double rate, std::uint64_t capacity, Clock::time_point now)
    : rate_(nanotokensPerSecond(rate)), capacity_(capacity), level_(static_cast<Level>(capacity) * kUnit), last_(now) {}

void TokenBucket::refill(Clock::time_point now) {
    if (now <= last_) return;  // the same batch, or a clock that went back: no new tokens
    const Level full = static_cast<Level>(capacity_) * kUnit;
    const auto elapsed = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count());
    last_ = now;
    const Level room = full - level_;
    // elapsed * rate fits in 128 bits (both are below 2^64); ns * nanotokens/s = 1e-18 tokens.
    const Level added = static_cast<Level>(elapsed) * rate_;
    level_ = added >= room ? full : level_ + added;
}

bool TokenBucket::builtWith(double rate, std::uint64_t capacity) const {
    return rate_ == nanotokensPerSecond(rate) && capacity_ == capacity;
}

bool TokenBucket::has(std::uint64_t n, Clock::time_point now) {
    refill(now);
    return static_cast<Level>(n) * kUnit <= level_;
}

bool TokenBucket::take(std::uint64_t n, Clock::time_point now) {
    if (!has(n, now)) return false;
    takeChecked(n);
    return true;
}

std::uint64_t TokenBucket::available(Clock::time_point now) {
    refill(now);
    return static_cast<std::uint64_t>(level_ / kUnit);
}

bool TokenBucket::full(Clock::time_point now) {
    refill(now);
    return level_ >= static_cast<Level>(capacity_) * kUnit;
}

std::chrono::nanoseconds TokenBucket::wait(std::uint64_t n) const {
    const Level need = static_cast<Level>(n) * kUnit;
    if (need <= level_) return std::chrono::nanoseconds::zero();
    const Level ns = (need - level_ + rate_ - 1) / rate_;
    constexpr auto kMax = static_cast<Level>(std::numeric_limits<std::chrono::nanoseconds::rep>::max());
    return std::chrono::nanoseconds(static_cast<std::chrono::nanoseconds::rep>(ns > kMax ? kMax : ns));
}

}  // namespace portico::core
