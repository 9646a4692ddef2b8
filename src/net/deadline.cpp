// SPDX-License-Identifier: Apache-2.0
#include "portico/net/deadline.h"

#include <algorithm>
#include <event2/event.h>

#include "portico/net/event_loop.h"

namespace portico::net {

void Deadline::set(std::chrono::milliseconds timeout) {
    const Clock::time_point now = Clock::now();
    due_ = now + timeout;
    // Armed for no later than the new deadline: it fires then, and re-arms for the rest.
    if (armed_ != Clock::time_point{} && armed_ <= due_) return;
    armed_ = due_;
    addTimerOnce(event_.get(), timeout);
}

bool Deadline::fired() {
    armed_ = {};
    if (due_ == Clock::time_point{}) return false;
    const Clock::time_point now = Clock::now();
    if (now >= due_) {
        due_ = {};
        return true;
    }
    // Moved later since the event was armed: wait for the rest. libevent's coarse clock may wake
    // us a little before our precise one says: at least 1 ms more.
    const auto rest = std::max(std::chrono::ceil<std::chrono::milliseconds>(due_ - now), std::chrono::milliseconds(1));
    armed_ = now + rest;
    addTimerOnce(event_.get(), rest);
    return false;
}

}  // namespace portico::net
