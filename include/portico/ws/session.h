// SPDX-License-Identifier: Apache-2.0
#pragma once
// What happens on a connection after "101 Switching Protocols": a Session owns the sockets
// from then on (the tunnel, the frame relay, or a built-in endpoint's codec session) and reports
// its end to the client connection that started it.

#include <cstddef>
#include <cstdint>

namespace portico::ws {

// Which of the route's limits ended a session (for metrics and the log), if one did.
enum class SessionLimit : std::uint8_t {
    None,
    Rate,      // websocket.rate: a sender went over it and was closed 1008
    Lifetime,  // websocket.max_lifetime: closed 1001 (a tunnel: TCP close)
    // permessage_deflate.max_inflating_per_worker: one compressed message half-received too
    // many on the worker, closed 1013 (built-in endpoints)
    Inflating,
};

// What went through a session, for logs and metrics. A tunnel counts bytes only.
struct SessionCounts {
    std::uint64_t messages_in = 0;   // from the client
    std::uint64_t messages_out = 0;  // to the client
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    SessionLimit limit = SessionLimit::None;
};

class SessionOwner {
public:
    // The session is over; its sockets are closed or being closed. Called once. The session is
    // deleted later by the owner (never inside this call).
    virtual void onSessionEnd(const char* reason, const SessionCounts& counts) = 0;

protected:
    ~SessionOwner() = default;
};

class Session {
public:
    virtual ~Session() = default;
    // Relays what arrived with the handshake and arms the timers. May end the session at once.
    virtual void start() = 0;
    // Graceful stop or reload drain: frames mode and built-in endpoints send Close 1001 (Going
    // Away) to both sides and wait briefly for the handshake; tunnels just close.
    virtual void goAway() = 0;
    // What went through so far (the owner folds it into the metrics while the session runs).
    virtual SessionCounts counts() const = 0;
    // Bytes from the client that wait for the upstream (its socket's output): an HTTP/2 stream
    // counts them against limits.http2_connection_buffer. None for a built-in endpoint.
    virtual std::size_t queuedForUpstream() const { return 0; }
};

}  // namespace portico::ws
