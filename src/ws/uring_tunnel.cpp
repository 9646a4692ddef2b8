// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/uring_tunnel.h"

#include "portico/net/event_loop.h"
#include "portico/ws/stalled_delivery.h"

namespace portico::ws {

static_assert(net::uring::Relay::kStall == StalledDelivery::kStall, "a gone peer's last bytes wait as long on both");

UringTunnel::UringTunnel(SessionOwner& owner, net::EventLoop& loop, net::uring::Ring& ring,
                         std::unique_ptr<net::Stream> client, std::unique_ptr<net::Stream> upstream,
                         const config::WebSocketSettings& settings)
    : TunnelSession(owner, loop, settings),
      relay_(net::uring::Relay::make(ring, std::move(client), std::move(upstream), *this)) {}

UringTunnel::~UringTunnel() { relay_.detach(); }

void UringTunnel::start() {
    startClocks();
    relay_.begin();
}

SessionCounts UringTunnel::counts() const {
    return SessionCounts{0, 0, relay_.fromClient(), relay_.toClient(), limit()};
}

void UringTunnel::onRelayEnd(const char* reason) {
    if (markEnded()) reportEnd(reason);
}

void UringTunnel::end(const char* reason) {
    if (!markEnded()) return;
    relay_.stop();  // flushes, then closes both gracefully, as Tunnel's end() does
    reportEnd(reason);
}

}  // namespace portico::ws
