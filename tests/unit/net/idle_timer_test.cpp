// SPDX-License-Identifier: Apache-2.0
// IdleTimer: many timers share one queue (and one libevent timer) per timeout; each fires
// `timeout` after its own last touch, whatever the others do.

#include <catch2/catch.hpp>

#include <chrono>
#include <event2/event.h>
#include <memory>
#include <vector>

#include "portico/net/event_loop.h"
#include "portico/net/idle_timer.h"
#include "run_for.h"

using namespace portico::net;
using portico::net::test::runFor;
using namespace std::chrono_literals;

namespace {

// Callbacks: a function and a context, as the sessions pass them.
struct Mark {
    std::vector<int>* fired;
    int id;
};
void pushMark(void* mark) { static_cast<Mark*>(mark)->fired->push_back(static_cast<Mark*>(mark)->id); }
void bump(void* counter) { ++*static_cast<int*>(counter); }

// A timer that counts its firings: the shape of most tests below.
struct Counted {
    Counted(EventLoop& loop, std::chrono::milliseconds timeout) : timer(loop, timeout, bump, &fired) {}
    int fired = 0;
    IdleTimer timer;
};

}  // namespace

TEST_CASE("idle timers fire in order of their last activity, a touch postpones only its own", "[net][idle_timer]") {
    EventLoop loop;
    std::vector<int> fired;
    Mark ma{&fired, 1}, mb{&fired, 2}, mc{&fired, 3};
    IdleTimer a(loop, 100ms, pushMark, &ma);
    IdleTimer b(loop, 100ms, pushMark, &mb);
    IdleTimer c(loop, 100ms, pushMark, &mc);
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
    Counted a(loop, 50ms), c(loop, 50ms);
    {
        Counted b(loop, 50ms);
        a.timer.start();
        b.timer.start();
        a.timer.stop();
    }  // b leaves the queue with its owner (firing after, it would count into freed memory)
    c.timer.start();
    runFor(loop, 120ms);
    CHECK(a.fired == 0);
    CHECK(c.fired == 1);
}

TEST_CASE("a zero idle timeout never fires", "[net][idle_timer]") {
    EventLoop loop;
    Counted never(loop, 0ms);
    never.timer.start();
    never.timer.touch();
    runFor(loop, 30ms);
    CHECK(never.fired == 0);
}

namespace {
struct Repeater {
    IdleTimer* timer = nullptr;
    int fired = 0;
};
void restart(void* r) {
    auto* repeater = static_cast<Repeater*>(r);
    ++repeater->fired;
    repeater->timer->start();  // as a session re-arms its ping
}
}  // namespace

TEST_CASE("an idle timer started again from its own callback fires once per period", "[net][idle_timer]") {
    EventLoop loop;
    Repeater repeater;
    IdleTimer ping(loop, 40ms, restart, &repeater);
    repeater.timer = &ping;
    ping.start();
    runFor(loop, 150ms);
    CHECK(repeater.fired >= 2);
    CHECK(repeater.fired <= 4);
    ping.stop();
    const int fired = repeater.fired;
    runFor(loop, 100ms);
    CHECK(repeater.fired == fired);
}

// The queue keeps its libevent timer armed when its last timer stops (a connection closing at
// low concurrency): the next timer in must still fire a full timeout after its own start, not
// at the deadline the event was armed for.
TEST_CASE("a timer started after the queue emptied fires a full timeout after its start", "[net][idle_timer]") {
    EventLoop loop;
    Counted a(loop, 80ms), b(loop, 80ms);
    a.timer.start();
    runFor(loop, 50ms);
    a.timer.stop();  // the queue is empty; its event stays armed for 30 ms from now
    b.timer.start();
    runFor(loop, 50ms);  // past a's old deadline, 50 ms into b's 80
    CHECK(b.fired == 0);
    runFor(loop, 60ms);
    CHECK(b.fired == 1);
    CHECK(a.fired == 0);
    // Emptied for good: the armed event fires once to no effect, and the loop stays usable.
    b.timer.start();
    b.timer.stop();
    runFor(loop, 120ms);
    CHECK(b.fired == 1);
    a.timer.start();
    runFor(loop, 120ms);
    CHECK(a.fired == 1);
}

// Activity is stamped with the coarse clock (a tick behind the precise one at most): a timer
// must still never fire before `timeout` has passed since its last touch, by the precise clock.
TEST_CASE("an idle timer never fires before its timeout has passed since its last touch", "[net][idle_timer]") {
    EventLoop loop;
    constexpr auto kTimeout = 20ms;
    struct Probe {
        std::chrono::steady_clock::time_point touched;
        std::chrono::steady_clock::duration waited{};
        int fired = 0;
    };
    std::vector<Probe> probes(12);
    std::vector<std::unique_ptr<IdleTimer>> timers;
    for (Probe& p : probes)
        timers.push_back(std::make_unique<IdleTimer>(
            loop, kTimeout,
            [](void* arg) {
                auto* probe = static_cast<Probe*>(arg);
                probe->waited = std::chrono::steady_clock::now() - probe->touched;
                ++probe->fired;
            },
            &p));
    // Touched at staggered moments, so that some stamps fall just after a tick and some just
    // before the next one.
    for (std::size_t i = 0; i < timers.size(); ++i) {
        timers[i]->start();
        probes[i].touched = std::chrono::steady_clock::now();
        timers[i]->touch();
        runFor(loop, 1ms);
    }
    runFor(loop, 100ms);
    for (const Probe& p : probes) {
        CHECK(p.fired == 1);
        CHECK(p.waited >= kTimeout);
    }
}
