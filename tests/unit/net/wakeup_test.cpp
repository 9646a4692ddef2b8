// SPDX-License-Identifier: Apache-2.0
// Wakeup: another thread's notify() makes the loop's own thread run the callback; notifies
// that pile up before the loop runs wake it once.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include <event2/event.h>

#include "portico/net/event_loop.h"
#include "portico/net/wakeup.h"

using namespace portico::net;

TEST_CASE("a notify from another thread runs the callback on the loop's thread", "[net][wakeup]") {
    EventLoop loop;
    std::thread::id ran_on;
    int runs = 0;
    Wakeup wakeup(loop, [&] {
        ran_on = std::this_thread::get_id();
        ++runs;
        loop.stop();
    });
    std::thread other([&] { wakeup.notify(); });
    loop.run();  // returns only once the callback stopped it
    other.join();
    CHECK(runs == 1);
    CHECK(ran_on == std::this_thread::get_id());
}

TEST_CASE("notifies made before the loop runs wake it once", "[net][wakeup]") {
    EventLoop loop;
    int runs = 0;
    Wakeup wakeup(loop, [&] { ++runs; });
    for (int i = 0; i < 5; ++i) wakeup.notify();
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    CHECK(runs == 1);
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);  // nothing more is due: the eventfd was read to zero
    CHECK(runs == 1);
}
