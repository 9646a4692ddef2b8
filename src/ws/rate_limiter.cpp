// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/rate_limiter.h"

namespace portico::ws {

RateLimiter::RateLimiter(const config::WebSocketRate& rate, Clock::time_point now) {
    if (rate.messages == 0 && rate.bytes == 0) return;
    buckets_ = std::make_unique<Buckets>();
    if (rate.messages > 0)
        buckets_->messages.emplace(rate.messages, rate.burst_messages > 0 ? rate.burst_messages : core::oneSecondOf(rate.messages), now);
    if (rate.bytes > 0)
        buckets_->bytes.emplace(rate.bytes, rate.burst_bytes > 0 ? rate.burst_bytes : core::oneSecondOf(rate.bytes), now);
}

RateLimiter::Verdict RateLimiter::admit(std::uint64_t messages, std::uint64_t bytes, Clock::time_point now) {
    if (!buckets_) return Verdict::Ok;
    auto& [messages_bucket, bytes_bucket] = *buckets_;
    // Judge both before taking from either, so a refusal leaves both buckets as they were.
    if (messages > 0 && messages_bucket && !messages_bucket->has(messages, now)) return Verdict::OverMessages;
    if (bytes > 0 && bytes_bucket && !bytes_bucket->has(bytes, now)) return Verdict::OverBytes;
    if (messages > 0 && messages_bucket) messages_bucket->takeChecked(messages);
    if (bytes > 0 && bytes_bucket) bytes_bucket->takeChecked(bytes);
    return Verdict::Ok;
}

}  // namespace portico::ws
