// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/lifetime_timer.h"

#include <event2/event.h>

#include "portico/net/event_loop.h"

namespace portico::ws {

LifetimeTimer::LifetimeTimer(net::EventLoop& loop, const config::WebSocketSettings& settings,
                             std::function<void()> on_lifetime, std::function<void()> on_grace_over)
    : loop_(loop),
      lifetime_(settings.max_lifetime),
      grace_(settings.max_lifetime_grace),
      on_lifetime_(std::move(on_lifetime)),
      on_grace_over_(std::move(on_grace_over)),
      event_(lifetime_.count() > 0 ? event_new(loop.base(), -1, 0, &LifetimeTimer::onTimer, this) : nullptr) {}

void LifetimeTimer::start() {
    if (event_) net::addTimer(loop_, event_.get(), lifetime_);
}

void LifetimeTimer::startGrace() {
    if (event_) net::addTimer(loop_, event_.get(), grace_);
}

void LifetimeTimer::stop() {
    if (event_) event_del(event_.get());
}

void LifetimeTimer::onTimer(int, short, void* arg) {
    auto* self = static_cast<LifetimeTimer*>(arg);
    if (!self->reached_) {
        self->reached_ = true;
        self->on_lifetime_();  // may destroy nothing: sessions defer their deletion to the loop
        return;
    }
    self->on_grace_over_();
}

}  // namespace portico::ws
