// SPDX-License-Identifier: Apache-2.0
// core::InlineEvent::cancel: an event waiting on the loop, or already due in this pass, does not
// run once cancelled (cancel skips libevent only for an event that is neither).

#include <catch2/catch.hpp>

#include <chrono>
#include <event2/event.h>

#include "portico/core/inline_event.h"
#include "portico/net/event_loop.h"
#include "../net/run_for.h"

using portico::core::InlineEvent;
using portico::net::EventLoop;
using portico::net::test::runFor;
using namespace std::chrono_literals;

namespace {

struct Counted {
    explicit Counted(EventLoop& loop) : event(loop.base(), -1, 0, &Counted::onEvent, this) {}
    static void onEvent(int, short, void* arg) { ++static_cast<Counted*>(arg)->runs; }
    InlineEvent event;
    int runs = 0;
};

}  // namespace

TEST_CASE("a cancelled inline event does not run", "[core][inline_event]") {
    EventLoop loop;
    Counted c(loop);

    SECTION("never added: nothing to do, and it can be added afterwards") {
        c.event.cancel();
        portico::net::addTimerOnce(c.event.get(), 10ms);
        runFor(loop, 40ms);
        CHECK(c.runs == 1);
    }
    SECTION("a pending timeout") {
        portico::net::addTimerOnce(c.event.get(), 10ms);
        c.event.cancel();
        runFor(loop, 40ms);
        CHECK(c.runs == 0);
    }
    SECTION("due in this pass (event_active)") {
        event_active(c.event.get(), EV_TIMEOUT, 0);
        c.event.cancel();
        runFor(loop, 20ms);
        CHECK(c.runs == 0);
    }
    SECTION("not cancelled, each runs") {
        event_active(c.event.get(), EV_TIMEOUT, 0);
        runFor(loop, 20ms);
        CHECK(c.runs == 1);
    }
}
