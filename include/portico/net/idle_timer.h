// SPDX-License-Identifier: Apache-2.0
#pragma once
// "Close after this long without traffic", cheap on the data path: touch() only stores a time
// stamp; the timer wakes once per period and re-arms itself for the rest of the idle time.

#include <chrono>
#include <functional>

#include "portico/core/handles.h"

namespace portico::net {

class EventLoop;

class IdleTimer {
public:
    // `on_idle` runs (from the loop) once `timeout` has passed without touch(). A zero timeout
    // never fires.
    IdleTimer(EventLoop& loop, std::chrono::milliseconds timeout, std::function<void()> on_idle);
    void start();
    void stop();
    void touch() { last_activity_ = std::chrono::steady_clock::now(); }

private:
    static void onTimer(int, short, void* arg);

    EventLoop& loop_;
    std::chrono::milliseconds timeout_;
    std::function<void()> on_idle_;
    core::EventPtr event_;
    std::chrono::steady_clock::time_point last_activity_;
};

}  // namespace portico::net
