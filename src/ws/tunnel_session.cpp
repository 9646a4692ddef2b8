// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/tunnel_session.h"

namespace portico::ws {

TunnelSession::TunnelSession(SessionOwner& owner, net::EventLoop& loop, const config::WebSocketSettings& settings)
    : loop_(loop),
      idle_(loop, settings.idle_timeout, [](void* self) { static_cast<TunnelSession*>(self)->expire("idle timeout"); },
            this),
      owner_(owner),
      lifetime_(loop, settings,
                [this] {
                    limit_ = SessionLimit::Lifetime;
                    expire("max lifetime");
                },
                [] {}) {}

void TunnelSession::startClocks() {
    idle_.start();
    lifetime_.start();
}

bool TunnelSession::markEnded() {
    if (ended_) return false;
    ended_ = true;
    idle_.stop();
    lifetime_.stop();
    return true;
}

}  // namespace portico::ws
