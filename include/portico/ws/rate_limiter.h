// SPDX-License-Identifier: Apache-2.0
#pragma once
// `websocket.rate` for one direction of a WebSocket session: a message bucket and a byte bucket
// (core::TokenBucket). A session asks admit() before it passes data on; a refusal means the
// sender is over the rate and is closed 1008 (RFC 6455 7.4.1: policy violation). Transport
// neutral: the frame relay charges frames as it forwards them, the built-in endpoints charge
// bytes as they arrive and messages as the codec completes them, and a WebSocket-over-HTTP
// bridge can charge the messages it carries in requests and responses the same way.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "portico/config/config.h"
#include "portico/core/token_bucket.h"

namespace portico::ws {

class RateLimiter {
public:
    using Clock = core::TokenBucket::Clock;
    enum class Verdict : std::uint8_t { Ok, OverMessages, OverBytes };

    // A limit that is 0 in `rate` is off; burst 0 means one second's worth of the rate. The
    // buckets start full at `now` (only read when a limit is on).
    explicit RateLimiter(const config::WebSocketRate& rate, Clock::time_point now = Clock::time_point());

    // False when neither limit is on: callers skip reading the clock then.
    bool enabled() const { return buckets_ != nullptr; }

    // Charges `messages` and `bytes` at `now`. When either bucket lacks them nothing is taken
    // and the verdict names the limit that was crossed (the message limit when both were).
    Verdict admit(std::uint64_t messages, std::uint64_t bytes, Clock::time_point now);

private:
    struct Buckets {
        std::optional<core::TokenBucket> messages;
        std::optional<core::TokenBucket> bytes;
    };
    // Made only when a limit is on: a session without websocket.rate (the default) carries one
    // null pointer per direction instead of two buckets (240 bytes per idle frames session).
    std::unique_ptr<Buckets> buckets_;
};

}  // namespace portico::ws
