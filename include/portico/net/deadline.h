// SPDX-License-Identifier: Apache-2.0
#pragma once
// A timeout that is cheap to move, for the timeouts a keep-alive connection moves two or three
// times per request (the head's, the keep-alive wait, an upstream's read_timeout): set() and
// clear() store the deadline and touch the event only when the new deadline comes before the
// time the event is armed for. An event that fires before the deadline (it was moved later
// meanwhile) re-arms itself for the rest, and one that fires with no deadline set does nothing:
// nginx's lazy timers. Each event_add/event_del cost about 300 instructions. Not an IdleTimer:
// those share one fixed timeout per queue, while a connection's timeout changes from phase to
// phase (head, body, upstream read, keep-alive).

#include <chrono>

#include "portico/core/inline_event.h"

namespace portico::net {

class Deadline {
public:
    using Clock = std::chrono::steady_clock;

    // The owner's timer: `callback` with `arg` on `base`'s loop.
    Deadline(event_base* base, event_callback_fn callback, void* arg) : event_(base, -1, 0, callback, arg) {}
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    // The owner's callback runs once `timeout` from now has passed (replacing any deadline set).
    void set(std::chrono::milliseconds timeout);
    // No deadline: the callback does not run (the event may still fire, to no effect).
    void clear() { due_ = {}; }
    // First thing in the owner's callback: true when the deadline has come (it is then cleared);
    // false when the event fired early (re-armed for the rest) or no deadline is set.
    bool fired();

private:
    core::InlineEvent event_;  // inside: a connection's timeout cannot be lost to an allocation
    Clock::time_point due_{};    // when the owner's callback runs; zero: never
    Clock::time_point armed_{};  // when the event fires; zero: it is not pending
};

}  // namespace portico::net
