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

TEST_CASE("a cleared deadline never runs the callback; set again, it does once", "[net][deadline]") {
    EventLoop loop;
    Owner owner(loop);
    owner.deadline.set(20ms);
    owner.deadline.clear();
    runFor(loop, 60ms);
    CHECK(owner.calls == 0);
    owner.deadline.set(20ms);
    runFor(loop, 60ms);
    CHECK(owner.calls == 1);
    runFor(loop, 60ms);
    CHECK(owner.calls == 1);  // a deadline runs the callback once
}

// A pooled HTTP phase's deadline is cleared when the phase is given back, its event left armed:
// the early firing does nothing, and the next connection's deadline, set while the event is
// still armed for the old one, fires at its own time, once.
TEST_CASE("a cleared deadline's armed event fires to no effect, and a new deadline still fires on time", "[net][deadline]") {
    EventLoop loop;
    Owner owner(loop);
    owner.deadline.set(20ms);
    owner.deadline.clear();
    runFor(loop, 40ms);  // the event fired: nothing due
    CHECK(owner.calls == 0);
    owner.deadline.set(30ms);  // not armed any more: armed anew
    owner.deadline.clear();
    const auto start = Deadline::Clock::now();
    owner.deadline.set(60ms);  // armed for 30 ms: fires early, re-arms for the rest
    runFor(loop, 45ms);
    CHECK(owner.calls == 0);
    runFor(loop, 60ms);
    REQUIRE(owner.calls == 1);
    CHECK(owner.at - start >= 60ms);
}
