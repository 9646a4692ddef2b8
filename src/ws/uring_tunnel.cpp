// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/uring_tunnel.h"

#include "portico/net/event_loop.h"
#include "portico/ws/stalled_delivery.h"

namespace portico::ws {

static_assert(net::uring::Relay::kStall == StalledDelivery::kStall, "a gone peer's last bytes wait as long on both");

UringTunnel::UringTunnel(SessionOwner& owner, net::EventLoop& loop, net::uring::Ring& ring,
                         std::unique_ptr<net::Stream> client, std::unique_ptr<net::Stream> upstream,
                         const config::WebSocketSettings& settings)
    : TunnelSession(owner, loop, settings), ring_(ring), client_(std::move(client)), upstream_(std::move(upstream)) {}

UringTunnel::~UringTunnel() {
    if (relay_) relay_->detach();
    if (client_) loop_.deferDelete(std::move(client_));
    if (upstream_) loop_.deferDelete(std::move(upstream_));
}

void UringTunnel::start() {
    startClocks();
    relay_ = &net::uring::Relay::start(ring_, std::move(client_), std::move(upstream_), *this);
}

SessionCounts UringTunnel::counts() const {
    if (!relay_) return SessionCounts{0, 0, 0, 0, limit()};
    return SessionCounts{0, 0, relay_->fromClient(), relay_->toClient(), limit()};
}

void UringTunnel::onRelayEnd(const char* reason) {
    if (markEnded()) reportEnd(reason);
}

void UringTunnel::end(const char* reason) {
    if (!markEnded()) return;
    if (relay_) relay_->stop();  // flushes, then closes both gracefully, as Tunnel's end() does
    reportEnd(reason);
}

}  // namespace portico::ws
