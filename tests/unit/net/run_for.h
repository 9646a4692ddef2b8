// SPDX-License-Identifier: Apache-2.0
#pragma once
// Runs an EventLoop for a while in a unit test: a plain timer breaks the loop. And what a test's
// own end of a socket holds, read without waiting.

#include <chrono>
#include <string>
#include <sys/socket.h>

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

inline std::string readAll(int fd) {
    std::string got;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
}

}  // namespace portico::net::test
