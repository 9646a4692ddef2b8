// SPDX-License-Identifier: Apache-2.0
#pragma once
// The HTTP/2 connection's timer: once a second it checks the timeouts (client_send_timeout with
// net::SendStall, header and body timeouts, the keep-alive) and trims what a burst left.

#include <algorithm>
#include <chrono>

namespace portico::http2 {

inline constexpr std::chrono::seconds kTick{1};
// How much earlier than its timeout a send stall may be found at a tick: the tick runs by
// libevent's coarse monotonic clock (a jiffy, 1 to 10 ms), so ticks two seconds apart may read a
// few milliseconds less than that on steady_clock; without slack a 2 s timeout would often come
// at the third tick after the mark, not the second.
inline constexpr std::chrono::milliseconds kTickSlack{50};
// The slack for a timeout of `timeout`: at most half of it, so that a check right after fresh
// progress (a mark just taken) never finds a very short timeout over.
inline std::chrono::steady_clock::duration tickSlack(std::chrono::steady_clock::duration timeout) {
    return std::min<std::chrono::steady_clock::duration>(kTickSlack, timeout / 2);
}

}  // namespace portico::http2
