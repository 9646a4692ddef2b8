#pragma once
// Base64 (RFC 4648 4, with padding): the WebSocket handshake's keys and pubsub's binary data.

#include <string>
#include <string_view>

namespace portico::core {

// The base64 encoding of `data`.
std::string base64Encode(std::string_view data);

}  // namespace portico::core
