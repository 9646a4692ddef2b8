// SPDX-License-Identifier: Apache-2.0
#pragma once
// The bounds the bridge puts on what an app can make it hold or send (src/bridge only).

#include <cstddef>

namespace portico::bridge {

// Set-Meta-* values kept per WebSocket: a bound on what an app can make us store and resend.
inline constexpr std::size_t kMaxMetaBytes = 8 * 1024;
// PING and PONG events become control frames: RFC 6455 5.5 bounds them to 125 bytes.
inline constexpr std::size_t kMaxControlBytes = 125;
// GRIP channels one WebSocket may be subscribed to at once; beyond, a subscribe is ignored.
inline constexpr std::size_t kMaxSubscriptions = 64;
// The longest Keep-Alive-Interval taken from an app (seconds; a day, as GRIP's timeouts): a
// larger value is cut to it, so that no interval overflows the timer's milliseconds.
inline constexpr long kMaxKeepAliveSeconds = 86400;
// Seconds a Grip-Sig token is valid (its "exp").
inline constexpr long long kGripSigLifetime = 3600;

}  // namespace portico::bridge
