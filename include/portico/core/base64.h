#pragma once
// Base64 (RFC 4648) for what Portico reads and writes besides the WebSocket handshake: JWTs
// (base64url without padding, section 5) and GRIP's content-bin (standard, padded, section 4).
// Decoding is strict: foreign characters, impossible lengths, misplaced padding and non-zero
// leftover bits are refused (one spelling per byte string).

#include <optional>
#include <string>
#include <string_view>

namespace portico::core {

std::string base64UrlEncode(std::string_view data);
std::optional<std::string> base64UrlDecode(std::string_view text);
// Standard alphabet; the padding is required ("YQ==" not "YQ").
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace portico::core
