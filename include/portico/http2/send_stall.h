// SPDX-License-Identifier: Apache-2.0
#pragma once
// limits.client_send_timeout at the HTTP/2 connection's tick (kTick): how many ticks in a row
// found the same send progress, the connection's (what the socket took) or a stream's (what its
// window took). Counted in ticks, not by comparing steady_clock readings: the tick is a libevent
// timer, run by the loop's coarse monotonic clock, so two readings taken two ticks apart measure
// a few milliseconds more or less than 2 s, and a 2 s timeout came at the second tick after the
// mark about as often as at the third (a client that read nothing was held up to twice as long).

#include <chrono>
#include <optional>

namespace portico::http2 {

inline constexpr std::chrono::seconds kTick{1};  // the connection's timer (timeouts, trims)

template <typename Progress>
class SendStall {
public:
    // At a tick that found bytes waiting to go: true once `progress` has stayed the same for
    // `timeout` (the first tick at least that long after the tick that saw it first).
    bool stalled(const Progress& progress, std::chrono::milliseconds timeout) {
        if (!mark_ || !(*mark_ == progress)) {
            mark_ = progress;
            ticks_ = 0;
            return false;
        }
        ++ticks_;
        return std::chrono::milliseconds(kTick) * ticks_ >= timeout;
    }
    // At a tick that found nothing waiting.
    void clear() { mark_.reset(); }

private:
    std::optional<Progress> mark_;
    unsigned ticks_ = 0;  // ticks since the mark that saw it unchanged
};

}  // namespace portico::http2
