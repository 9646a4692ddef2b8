// SPDX-License-Identifier: Apache-2.0
#pragma once
// `websocket.max_lifetime` for one session: once the connection is that old `on_lifetime` runs
// (the session sends Close 1001, or closes a tunnel); the session may then call startGrace(),
// and if it is still alive `max_lifetime_grace` later, `on_grace_over` runs (close TCP now).
// One libevent timer on the loop's shared queue for the configured duration, made only when
// max_lifetime is set: without it a session carries one pointer for this.

#include <chrono>
#include <functional>
#include <memory>

#include "portico/config/config.h"
#include "portico/core/handles.h"

namespace portico::net {
class EventLoop;
}

namespace portico::ws {

class LifetimeTimer {
public:
    LifetimeTimer(net::EventLoop& loop, const config::WebSocketSettings& settings, std::function<void()> on_lifetime,
                  std::function<void()> on_grace_over);
    // Arms max_lifetime (nothing when it is 0).
    void start();
    // Arms max_lifetime_grace (after on_lifetime).
    void startGrace();
    void stop();
    // True once on_lifetime has run.
    bool reached() const { return armed_ && armed_->reached; }

private:
    static void onTimer(int, short, void* arg);

    struct Armed {
        net::EventLoop& loop;
        std::chrono::milliseconds lifetime;
        std::chrono::milliseconds grace;
        std::function<void()> on_lifetime;
        std::function<void()> on_grace_over;
        core::EventPtr event;
        bool reached = false;
    };
    // null: no max_lifetime. All of the state is behind it, so that a session without one
    // (the default) carries one pointer.
    std::unique_ptr<Armed> armed_;
};

}  // namespace portico::ws
