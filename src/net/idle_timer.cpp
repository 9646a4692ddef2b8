// SPDX-License-Identifier: Apache-2.0
#include "portico/net/idle_timer.h"

#include <event2/event.h>

#include "portico/net/event_loop.h"

namespace portico::net {

IdleTimer::IdleTimer(EventLoop& loop, std::chrono::milliseconds timeout, std::function<void()> on_idle)
    : loop_(loop), timeout_(timeout), on_idle_(std::move(on_idle)), event_(event_new(loop.base(), -1, 0, &IdleTimer::onTimer, this)) {}

void IdleTimer::start() {
    touch();
    if (timeout_.count() > 0) addTimer(loop_, event_.get(), timeout_);
}

void IdleTimer::stop() { event_del(event_.get()); }

void IdleTimer::onTimer(int, short, void* arg) {
    auto* self = static_cast<IdleTimer*>(arg);
    auto idle = std::chrono::steady_clock::now() - self->last_activity_;
    if (idle < self->timeout_) {
        addTimerOnce(self->event_.get(), self->timeout_ - std::chrono::duration_cast<std::chrono::milliseconds>(idle));
        return;
    }
    self->on_idle_();
}

}  // namespace portico::net
