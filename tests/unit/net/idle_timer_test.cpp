// SPDX-License-Identifier: Apache-2.0
// IdleTimer: many timers share one queue (and one libevent timer) per timeout; each fires
// `timeout` after its own last touch, whatever the others do.

#include <catch2/catch.hpp>

#include <chrono>
#include <event2/event.h>
#include <vector>

#include "portico/net/event_loop.h"
#include "portico/net/idle_timer.h"

using namespace portico::net;
using namespace std::chrono_literals;

namespace {

// Runs the loop until `until` (a plain timer stops it).
void runFor(EventLoop& loop, std::chrono::milliseconds duration) {
    event* stop = evtimer_new(
        loop.base(), [](int, short, void* base) { event_base_loopbreak(static_cast<event_base*>(base)); }, loop.base());
    addTimerOnce(stop, duration);
    loop.run();
    event_free(stop);
}

}  // namespace

TEST_CASE("idle timers fire in order of their last activity, a touch postpones only its own", "[net][idle_timer]") {
    EventLoop loop;
    std::vector<int> fired;
    IdleTimer a(loop, 100ms, [&] { fired.push_back(1); });
    IdleTimer b(loop, 100ms, [&] { fired.push_back(2); });
    IdleTimer c(loop, 100ms, [&] { fired.push_back(3); });
    a.start();
    b.start();
    c.start();
    runFor(loop, 60ms);
    a.touch();  // a is now the newest: b and c go first
    runFor(loop, 60ms);
    CHECK(fired == std::vector<int>{2, 3});
    runFor(loop, 80ms);
    CHECK(fired == std::vector<int>{2, 3, 1});
}

TEST_CASE("a stopped idle timer never fires and the others still do", "[net][idle_timer]") {
    EventLoop loop;
    int a_fired = 0, b_fired = 0;
    IdleTimer a(loop, 50ms, [&] { ++a_fired; });
    {
        IdleTimer b(loop, 50ms, [&] { ++b_fired; });
        a.start();
        b.start();
        a.stop();
    }  // b leaves the queue with its owner
    IdleTimer c(loop, 50ms, [&] { ++b_fired; });
    c.start();
    runFor(loop, 120ms);
    CHECK(a_fired == 0);
    CHECK(b_fired == 1);
}

TEST_CASE("a zero idle timeout never fires", "[net][idle_timer]") {
    EventLoop loop;
    int fired = 0;
    IdleTimer never(loop, 0ms, [&] { ++fired; });
    never.start();
    never.touch();
    runFor(loop, 30ms);
    CHECK(fired == 0);
}
