// SPDX-License-Identifier: Apache-2.0
#pragma once
// Base64 (RFC 4648): standard and padded (section 4) for the WebSocket handshake's keys,
// pubsub's binary data and GRIP's content-bin; base64url without padding (section 5) for JWTs.
// Decoding is strict: foreign characters, impossible lengths, misplaced padding and non-zero
// leftover bits are refused (one spelling per byte string).

#include <optional>
#include <string>
#include <string_view>

namespace portico::core {

// The standard, padded encoding of `data`.
std::string base64Encode(std::string_view data);
std::string base64UrlEncode(std::string_view data);
std::optional<std::string> base64UrlDecode(std::string_view text);
// Standard alphabet; the padding is required ("YQ==" not "YQ").
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace portico::core
