// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_tracer.h"

#include <algorithm>
#include <atomic>
#include <event2/buffer.h>

#include "portico/config/config.h"
#include "portico/core/log.h"

namespace portico::ws {

namespace {

// Numbers the traced sessions of the process, so that the lines of one session can be told
// from those of another client behind the same address.
std::atomic<std::uint64_t> g_next_session{1};

// Copies `n` bytes at `offset` of `buf` into `out`; returns how many were there.
std::size_t copyAt(evbuffer* buf, std::size_t offset, std::uint8_t* out, std::size_t n) {
    evbuffer_ptr pos;
    if (n == 0 || evbuffer_ptr_set(buf, &pos, offset, EVBUFFER_PTR_SET) != 0) return 0;
    const ev_ssize_t got = evbuffer_copyout_from(buf, &pos, out, n);
    return got > 0 ? static_cast<std::size_t>(got) : 0;
}

}  // namespace

TraceLimiter::TraceLimiter(double rate, std::string route)
    : bucket_(rate, core::oneSecondOf(rate), core::TokenBucket::Clock::now()), route_(std::move(route)) {}

bool TraceLimiter::admit(core::TokenBucket::Clock::time_point now, std::uint64_t& suppressed) {
    if (!bucket_.take(1, now)) {
        ++suppressed_;
        return false;
    }
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
}

FrameTracer::FrameTracer(std::string_view client, TraceLimiter& limiter, std::size_t payload_bytes)
    : label_("ws#" + std::to_string(g_next_session.fetch_add(1, std::memory_order_relaxed)) + " client " +
             std::string(client) + " route " + limiter.route()),
      limiter_(limiter),
      payload_bytes_(std::min(payload_bytes, config::kMaxTracePayloadBytes)) {}

void FrameTracer::frame(TraceDirection direction, const FrameHeader& h, evbuffer* buf, std::size_t payload_at) {
    std::uint64_t suppressed = 0;
    if (!limiter_.admit(core::TokenBucket::Clock::now(), suppressed)) return;
    // Trace lines are written whatever log.level says: the route's trace key is their switch.
    if (suppressed > 0) {
        core::logLine(core::LogLevel::Info, "ws trace: %llu trace lines suppressed on route %s (trace_rate %g/s)",
                      static_cast<unsigned long long>(suppressed), limiter_.route().c_str(), limiter_.rate());
    }
    TracedFrame traced;
    traced.direction = direction;
    traced.header = h;
    std::uint8_t bytes[std::max(config::kMaxTracePayloadBytes, kMaxControlPayload)];
    if (isControl(h.opcode)) {
        if (h.opcode == Opcode::Close) {
            const std::size_t n = copyAt(buf, payload_at, bytes, std::min<std::uint64_t>(h.payload_length, kMaxControlPayload));
            if (h.masked) applyMask(bytes, n, h.mask, 0);
            traced.close_payload = std::string_view(reinterpret_cast<const char*>(bytes), n);
        }
    } else if (h.opcode == Opcode::Text && payload_bytes_ > 0 && (h.rsv & kRsv1) == 0) {
        const std::size_t n = copyAt(buf, payload_at, bytes, std::min<std::uint64_t>(h.payload_length, payload_bytes_));
        if (h.masked) applyMask(bytes, n, h.mask, 0);
        traced.payload = std::string_view(reinterpret_cast<const char*>(bytes), n);
    }
    char line[kMaxTraceLine];
    formatFrameTrace(line, sizeof line, traced);
    core::logLine(core::LogLevel::Info, "ws trace %s: %s", label_.c_str(), line);
}

void FrameTracer::written(TraceDirection direction, evbuffer* buf, std::size_t from) {
    const std::size_t end = evbuffer_get_length(buf);
    while (from < end) {
        std::uint8_t head[kMaxFrameHeaderBytes];
        const std::size_t n = copyAt(buf, from, head, std::min(kMaxFrameHeaderBytes, end - from));
        FrameHeader h;
        const int header = parseFrameHeader(head, n, h);
        if (header <= 0) return;  // not a whole frame: our own writer never leaves one
        frame(direction, h, buf, from + static_cast<std::size_t>(header));
        from += static_cast<std::size_t>(header) + static_cast<std::size_t>(h.payload_length);
    }
}

}  // namespace portico::ws
