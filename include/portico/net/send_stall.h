// SPDX-License-Identifier: Apache-2.0
#pragma once
// A send timeout (an upstream's send_timeout, limits.client_send_timeout): the peer took no byte
// of what we send for that long. What the peer took is asked for at checks (a timer's, the
// HTTP/2 connection's tick), not reported: the kernel wakes a writer only after a third of a large
// send buffer drained, so write events do not tell (Stream::sendProgress asks SIOCOUTQ).
//
// The stall is measured from the first check that saw the current progress, and a check that
// sees it move starts no whole new timeout: the peer's last take was at most one check interval
// before that check, so the timeout comes between T and T + one interval after it (nginx's
// send_timeout runs from the last successful write). Restarting the whole timeout at the check
// that saw progress held a peer that stopped reading just after a check for up to twice T.
// Time is compared, not checks counted: a check that runs late (a loaded loop, a stopped
// process; libevent schedules a late repeating timer's next run from when it was due) makes
// the next two close together, and counting them fired a 2 s timeout 1.6 s after the last take.

#include <algorithm>
#include <chrono>
#include <optional>

namespace portico::net {

// How often a timer that watches a send timeout asks: a quarter of it, at most a second, so that
// the timeout comes at most that late (a 60 s default is checked 60 times: a timer per second
// per backlogged connection, no syscall but SIOCOUTQ).
inline std::chrono::milliseconds sendCheckInterval(std::chrono::milliseconds timeout) {
    return std::clamp(timeout / 4, std::chrono::milliseconds(1), std::chrono::milliseconds(1000));
}

template <typename Progress>
class SendStall {
public:
    using Clock = std::chrono::steady_clock;

    // A check at `now` that found bytes waiting to go and the peer at `progress`: how much of
    // `timeout` is left since the first check that saw `progress` (a new mark when it moved or
    // none is set). Zero or less: the peer took nothing for the whole timeout.
    std::chrono::milliseconds left(const Progress& progress, Clock::time_point now, std::chrono::milliseconds timeout) {
        if (!mark_ || !(*mark_ == progress)) {
            mark_ = progress;
            since_ = now;
        }
        return timeout - std::chrono::duration_cast<std::chrono::milliseconds>(now - since_);
    }
    // A wait begins at `now` with the peer at `progress`, unless one is being watched already.
    void watch(const Progress& progress, Clock::time_point now) {
        if (!mark_) left(progress, now, {});
    }
    bool watching() const { return mark_.has_value(); }
    // Nothing waits to go (or a new wait begins): the next check sets a new mark.
    void clear() { mark_.reset(); }

private:
    std::optional<Progress> mark_;  // the peer's progress as the first check that saw it found it
    Clock::time_point since_{};     // when that check ran
};

}  // namespace portico::net
