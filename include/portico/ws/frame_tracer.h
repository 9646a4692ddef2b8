// SPDX-License-Identifier: Apache-2.0
#pragma once
// `websocket.trace: true` on a route: one log line per frame a session sees (frame_trace.h for
// the line), for frames mode and the built-in endpoints. A tunnel never parses frames, so it
// has none to trace (the loader warns; mode: frames shows the same frames).
//
// Lines are bounded by the route's `trace_rate` on each worker (TraceLimiter): beyond it they
// are counted, not written, and the next line written is preceded by "N trace lines
// suppressed". A session without trace holds no FrameTracer: the relay's only cost is a null
// pointer test per frame.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "portico/core/token_bucket.h"
#include "portico/ws/frame_header.h"
#include "portico/ws/frame_trace.h"

struct evbuffer;

namespace portico::ws {

// The trace budget of one route on one worker: `rate` lines per second, up to one second's
// worth at once. Not thread-safe (one per worker and route).
class TraceLimiter {
public:
    // `rate` > 0 lines per second (fractions allowed); `route` names the route in the summary
    // line ("*/ws/").
    TraceLimiter(double rate, std::string route);

    // True when a line may be written at `now`; `suppressed` is then the number of lines held
    // back since the last one written (and that count starts again from 0).
    bool admit(core::TokenBucket::Clock::time_point now, std::uint64_t& suppressed);

    const std::string& route() const { return route_; }
    double rate() const { return bucket_.rate(); }

private:
    core::TokenBucket bucket_;
    std::uint64_t suppressed_ = 0;
    std::string route_;
};

// One session's tracer. Not thread-safe (a session lives on one worker).
class FrameTracer {
public:
    // `client`: the client's address, for the line's label; `limiter` (the route's on this
    // worker) must outlive the tracer; `payload_bytes`: websocket.trace_payload_bytes.
    FrameTracer(std::string_view client, TraceLimiter& limiter, std::size_t payload_bytes);

    // Traces a frame whose header `h` was parsed from `buf`, its payload starting at offset
    // `payload_at` of `buf`. Data frame: any part of the payload may be there yet (the first
    // payload_bytes of a text frame are shown, unless RSV1 says it is compressed). Control
    // frame: the whole payload must be there (a Close's code and reason are shown).
    void frame(TraceDirection direction, const FrameHeader& h, evbuffer* buf, std::size_t payload_at);
    // Traces the whole frames in `buf` from offset `from` to its end: frames Portico has just
    // written there itself.
    void written(TraceDirection direction, evbuffer* buf, std::size_t from);

private:
    std::string label_;  // "ws#7 client 127.0.0.1 route /ws/"
    TraceLimiter& limiter_;
    std::size_t payload_bytes_;
};

}  // namespace portico::ws
