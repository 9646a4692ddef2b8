// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/lifetime_timer.h"

#include <event2/event.h>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"

namespace portico::ws {

LifetimeTimer::LifetimeTimer(net::EventLoop& loop, const config::WebSocketSettings& settings,
                             std::function<void()> on_lifetime, std::function<void()> on_grace_over) {
    if (settings.max_lifetime.count() <= 0) return;
    armed_.reset(new Armed{loop, settings.max_lifetime, settings.max_lifetime_grace, std::move(on_lifetime),
                           std::move(on_grace_over), nullptr, false});
    armed_->event.reset(event_new(loop.base(), -1, 0, &LifetimeTimer::onTimer, this));
    if (!armed_->event) {  // no memory: the session goes on without the limit rather than crash
        LOG_ERROR("websocket.max_lifetime not applied to a session: out of memory for its timer");
        armed_.reset();
    }
}

void LifetimeTimer::start() {
    if (armed_) net::addTimer(armed_->loop, armed_->event.get(), armed_->lifetime);
}

void LifetimeTimer::startGrace() {
    if (armed_) net::addTimer(armed_->loop, armed_->event.get(), armed_->grace);
}

void LifetimeTimer::stop() {
    if (armed_) event_del(armed_->event.get());
}

void LifetimeTimer::onTimer(int, short, void* arg) {
    auto* self = static_cast<LifetimeTimer*>(arg);
    if (!self->armed_->reached) {
        self->armed_->reached = true;
        self->armed_->on_lifetime();  // may destroy nothing: sessions defer their deletion to the loop
        return;
    }
    self->armed_->on_grace_over();
}

}  // namespace portico::ws
