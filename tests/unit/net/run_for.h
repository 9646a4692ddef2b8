// SPDX-License-Identifier: Apache-2.0
#pragma once
// Runs an EventLoop for a while in a unit test: a plain timer breaks the loop.

#include <chrono>
#include <event2/event.h>

#include "portico/net/event_loop.h"

namespace portico::net::test {

inline void runFor(EventLoop& loop, std::chrono::milliseconds duration) {
    event* stop = evtimer_new(
        loop.base(), [](int, short, void* base) { event_base_loopbreak(static_cast<event_base*>(base)); }, loop.base());
    addTimerOnce(stop, duration);
    loop.run();
    event_free(stop);
}

}  // namespace portico::net::test
