// SPDX-License-Identifier: Apache-2.0
#pragma once
// Portico's own keep-alive pings (websocket.ping_interval) and the recognition of their answers.
// Each ping carries "portico-" and 8 hex digits drawn afresh for it, so that only the Pong that
// answers this ping is taken as ours: a Pong answering someone else's ping goes to them (in frames
// mode an upstream that pings the client too, another Portico behind this one among them; on a
// bridged WebSocket the app's pings), where a fixed payload could take theirs and leave them
// waiting for an answer that never comes.

#include <array>
#include <cstdint>
#include <string_view>

namespace portico::ws {

class KeepAlivePing {
public:
    static constexpr std::string_view kPrefix = "portico-";
    static constexpr std::size_t kPayloadBytes = kPrefix.size() + 8;
    using Payload = std::array<char, kPayloadBytes>;

    // A new ping: its payload (to be sent as is), outstanding from now on; any earlier one is
    // forgotten.
    Payload start();
    // The ping start() made could not be sent (out of memory): nothing is outstanding, so the
    // next interval sends one instead of closing for "no pong".
    void forget() { outstanding_ = false; }
    // A ping is outstanding: sent, not answered yet.
    bool outstanding() const { return outstanding_; }
    // `pong` is the payload of a Pong answering the outstanding ping.
    bool answers(std::string_view pong) const;
    // As answers(), and the ping is answered (no longer outstanding) when it does.
    bool takeAnswer(std::string_view pong);

private:
    static Payload payloadOf(std::uint32_t token);

    std::uint32_t token_ = 0;  // the outstanding ping's random part
    bool outstanding_ = false;
};

}  // namespace portico::ws
