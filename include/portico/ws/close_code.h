// SPDX-License-Identifier: Apache-2.0
#pragma once
// WebSocket close status codes (RFC 6455 7.4) and Close frame payloads (RFC 6455 5.5.1).

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace portico::ws {

namespace close_code {
inline constexpr std::uint16_t kNormal = 1000;
inline constexpr std::uint16_t kGoingAway = 1001;
inline constexpr std::uint16_t kProtocolError = 1002;
inline constexpr std::uint16_t kUnsupportedData = 1003;
inline constexpr std::uint16_t kNoStatus = 1005;  // reported locally for a Close without a code; never sent
inline constexpr std::uint16_t kAbnormal = 1006;  // reported locally for a connection lost without Close; never sent
inline constexpr std::uint16_t kInvalidPayload = 1007;  // e.g. a text message that is not UTF-8
inline constexpr std::uint16_t kPolicyViolation = 1008;
inline constexpr std::uint16_t kMessageTooBig = 1009;
inline constexpr std::uint16_t kMandatoryExtension = 1010;
inline constexpr std::uint16_t kInternalError = 1011;
inline constexpr std::uint16_t kServiceRestart = 1012;  // IANA registry, after RFC 6455
inline constexpr std::uint16_t kTryAgainLater = 1013;   // IANA registry
inline constexpr std::uint16_t kBadGateway = 1014;      // IANA registry
// RFC 6455 7.4.2: 4000-4999 are for applications. Portico's pubsub: the history a subscriber
// asked to resume from (?since=) is gone; 410 Gone in the last three digits.
inline constexpr std::uint16_t kHistoryLost = 4410;
}  // namespace close_code

// True when `code` may appear in a Close frame on the wire: 1000-1003, 1007-1014, 3000-4999.
// 1012-1014 were registered with IANA after RFC 6455 and the current Autobahn TestSuite treats
// them as valid; 0-999, 1004-1006, 1015, 1016-2999 and 5000+ are a protocol error (1002).
bool isValidCloseCodeOnWire(std::uint16_t code);

// A Close frame payload, unmasked: 0 bytes, or a 2-byte big-endian code and a UTF-8 reason.
struct ClosePayload {
    std::uint16_t code = close_code::kNoStatus;  // kNoStatus when the payload was empty
    std::string_view reason;                     // points into the parsed bytes
};

// Parses and validates an unmasked Close payload of `len` (<= 125) bytes.
// Returns 0 and fills `out`, or the close code to fail the connection with: 1002 for a 1-byte
// payload or a code that is not valid on the wire, 1007 for a reason that is not UTF-8.
std::uint16_t parseClosePayload(const std::uint8_t* data, std::size_t len, ClosePayload& out);

}  // namespace portico::ws
