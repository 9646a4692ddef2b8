// SPDX-License-Identifier: Apache-2.0
#pragma once
// GRIP over WebSocket-over-HTTP, as Pushpin 1.36 reads it (pure parts: no I/O).
//
// An app turns GRIP on with `Sec-WebSocket-Extensions: grip` on its answer to OPEN. From then
// on its TEXT events are read so:
//   "c:{json}"      a control message for the gateway, never sent to the client;
//   PREFIX + rest   a message for the client, sent without PREFIX (`message-prefix`, default
//                   "m:"; `grip; message-prefix=""` sends everything not "c:" as is);
//   anything else   dropped (a BINARY event follows the same PREFIX rule).
// Control messages: subscribe/unsubscribe {channel}, detach, keep-alive {content | content-bin,
// message-type, timeout, mode}, send-delayed {content | content-bin, message-type, timeout},
// flush-delayed, close {code, reason}, set-meta {name, value}. Pushpin's `session` (an id for
// its per-session last-message-id store, which Portico's publish API does not have) is refused
// as unsupported.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portico::bridge {

struct GripExtension {
    std::string message_prefix = "m:";
};
// The grip extension in a Sec-WebSocket-Extensions value ("grip", "grip; message-prefix=\"\"",
// "permessage-deflate, grip; message-prefix=x"), or nullopt when it names none.
std::optional<GripExtension> findGripExtension(std::string_view extensions);

inline constexpr std::string_view kControlPrefix = "c:";
// Channel names as Pushpin takes them: 1..200 bytes, no control characters.
inline constexpr std::size_t kMaxChannelBytes = 200;

struct ControlMessage {
    enum class Type { Subscribe, Unsubscribe, Detach, KeepAlive, SendDelayed, FlushDelayed, Close, SetMeta };
    enum class MessageType { Text, Binary, Ping, Pong };
    Type type = Type::Subscribe;
    std::string channel;                        // subscribe, unsubscribe
    std::string name;                           // set-meta
    std::string value;                          // set-meta ("" removes)
    std::string content;                        // keep-alive, send-delayed (content-bin decoded);
                                                // keep-alive: "" = off
    MessageType message_type = MessageType::Text;  // keep-alive, send-delayed
    unsigned timeout = 0;                       // keep-alive: seconds of silence towards the
                                                // client; send-delayed: seconds until it is sent
    bool interval = false;                      // keep-alive "mode": "interval" (not "idle")
    std::uint16_t code = 0;                     // close; 0 = none
    std::string reason;                         // close
};

// Pushpin 1.36's default timeouts (seconds) when a control message gives none (or 0).
inline constexpr unsigned kKeepAliveDefaultSeconds = 55;
inline constexpr unsigned kSendDelayedDefaultSeconds = 1;

// Parses the JSON after "c:". nullopt with `error` set when it is malformed or of an unknown
// type (Pushpin's session is reported as unsupported).
std::optional<ControlMessage> parseControlMessage(std::string_view json, std::string& error);

}  // namespace portico::bridge
