// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/keepalive_ping.h"

#include <algorithm>
#include <cstring>

#include "portico/ws/frame_header.h"

namespace portico::ws {

KeepAlivePing::Payload KeepAlivePing::start() {
    // Unpredictable rather than a counter: two Porticos in a chain start their sessions (and
    // their counters) together, and would draw the same numbers.
    std::uint8_t random[4];
    makeMask(random);
    std::memcpy(&token_, random, sizeof token_);
    outstanding_ = true;
    return payloadOf(token_);
}

bool KeepAlivePing::answers(std::string_view pong) const {
    if (!outstanding_ || pong.size() != kPayloadBytes) return false;
    const Payload ours = payloadOf(token_);
    return std::equal(ours.begin(), ours.end(), pong.begin());
}

bool KeepAlivePing::takeAnswer(std::string_view pong) {
    if (!answers(pong)) return false;
    outstanding_ = false;
    return true;
}

KeepAlivePing::Payload KeepAlivePing::payloadOf(std::uint32_t token) {
    static constexpr char kHex[] = "0123456789abcdef";
    Payload out{};
    std::copy(kPrefix.begin(), kPrefix.end(), out.begin());
    for (std::size_t i = 0; i < 8; ++i) out[kPrefix.size() + i] = kHex[(token >> (28 - 4 * i)) & 0xF];
    return out;
}

}  // namespace portico::ws
