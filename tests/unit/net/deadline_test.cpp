// SPDX-License-Identifier: Apache-2.0
// Deadline: the owner's callback runs at the last deadline set, whether it was moved later (the
// event fires early and re-arms) or earlier (the event is re-armed), and never once cleared.

#include <catch2/catch.hpp>

#include <chrono>
#include <event2/event.h>

#include "portico/net/deadline.h"
#include "portico/net/event_loop.h"
#include "run_for.h"

using namespace portico::net;
using portico::net::test::runFor;
using namespace std::chrono_literals;

namespace {

// An owner as the connections are: its callback asks the deadline first.
struct Owner {
    explicit Owner(EventLoop& loop) : deadline(loop.base(), &Owner::onTimer, this) {}
    static void onTimer(int, short, void* arg) {
        auto* self = static_cast<Owner*>(arg);
        if (!self->deadline.fired()) return;
        ++self->calls;
        self->at = Deadline::Clock::now();
    }
    Deadline deadline;
    int calls = 0;
    Deadline::Clock::time_point at{};
};

}  // namespace

TEST_CASE("a deadline moved later runs the callback at the later time only", "[net][deadline]") {
    EventLoop loop;
    Owner owner(loop);
    owner.deadline.set(40ms);
    runFor(loop, 20ms);
    const auto moved = Deadline::Clock::now();
    owner.deadline.set(80ms);  // the event stays armed for the first deadline
    runFor(loop, 50ms);        // past the first deadline: it fired early and re-armed
    CHECK(owner.calls == 0);
    runFor(loop, 60ms);
    CHECK(owner.calls == 1);
    CHECK(owner.at - moved >= 80ms);
}

TEST_CASE("a deadline moved earlier runs the callback at the earlier time", "[net][deadline]") {
    EventLoop loop;
    Owner owner(loop);
    owner.deadline.set(10s);
    const auto moved = Deadline::Clock::now();
    owner.deadline.set(30ms);
    runFor(loop, 100ms);
    CHECK(owner.calls == 1);
    CHECK(owner.at - moved >= 30ms);
    CHECK(owner.at - moved < 5s);
}

// stop() also takes the event off the loop (a pooled owner put aside: net::HttpPhasePool).
TEST_CASE("a cleared or stopped deadline never runs the callback; set again, it does once", "[net][deadline]") {
    const bool stop = GENERATE(false, true);
    EventLoop loop;
    Owner owner(loop);
    owner.deadline.set(20ms);
    if (stop) {
        owner.deadline.stop();
    } else {
        owner.deadline.clear();
    }
    runFor(loop, 60ms);
    CHECK(owner.calls == 0);
    owner.deadline.set(20ms);
    runFor(loop, 60ms);
    CHECK(owner.calls == 1);
    runFor(loop, 60ms);
    CHECK(owner.calls == 1);  // a deadline runs the callback once
}

// A stopped deadline does not fire, and may be set again (a pooled HTTP phase is stopped when
// given back and set anew by its next connection).
TEST_CASE("a stopped deadline stays quiet until it is set again", "[net][deadline]") {
    EventLoop loop;
    Owner owner(loop);
    owner.deadline.stop();  // never set: nothing to take off the loop
    owner.deadline.set(20ms);
    owner.deadline.stop();
    runFor(loop, 50ms);
    CHECK(owner.calls == 0);
    owner.deadline.set(20ms);
    runFor(loop, 50ms);
    CHECK(owner.calls == 1);
}
