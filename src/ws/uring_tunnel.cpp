// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/uring_tunnel.h"

#include "portico/net/event_loop.h"
#include "portico/ws/stalled_delivery.h"

namespace portico::ws {

static_assert(net::uring::Relay::kStall == StalledDelivery::kStall, "a gone peer's last bytes wait as long on both");

UringTunnel::UringTunnel(SessionOwner& owner, net::EventLoop& loop, net::uring::Ring& ring,
                         std::unique_ptr<net::Stream> client, std::unique_ptr<net::Stream> upstream,
                         const config::WebSocketSettings& settings)
    : owner_(owner),
      loop_(loop),
      ring_(ring),
      client_(std::move(client)),
      upstream_(std::move(upstream)),
      idle_(loop, settings.idle_timeout, [](void* self) { static_cast<UringTunnel*>(self)->end("idle timeout"); }, this),
      lifetime_(loop, settings,
                [this] {
                    // As ws::Tunnel: no frame boundaries known, so both connections are closed.
                    limit_ = SessionLimit::Lifetime;
                    end("max lifetime");
                },
                [] {}) {}

UringTunnel::~UringTunnel() {
    if (relay_) relay_->detach();
    if (client_) loop_.deferDelete(std::move(client_));
    if (upstream_) loop_.deferDelete(std::move(upstream_));
}

void UringTunnel::start() {
    idle_.start();
    lifetime_.start();
    relay_ = &net::uring::Relay::start(ring_, std::move(client_), std::move(upstream_), *this);
}

SessionCounts UringTunnel::counts() const {
    if (!relay_) return SessionCounts{0, 0, 0, 0, limit_};
    return SessionCounts{0, 0, relay_->fromClient(), relay_->toClient(), limit_};
}

void UringTunnel::onRelayEnd(const char* reason) {
    if (ended_) return;
    ended_ = true;
    idle_.stop();
    lifetime_.stop();
    owner_.onSessionEnd(reason, counts());
}

void UringTunnel::end(const char* reason) {
    if (ended_) return;
    ended_ = true;
    idle_.stop();
    lifetime_.stop();
    if (relay_) relay_->stop();  // flushes, then closes both gracefully, as Tunnel's end() does
    owner_.onSessionEnd(reason, counts());
}

}  // namespace portico::ws
