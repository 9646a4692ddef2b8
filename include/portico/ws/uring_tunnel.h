// SPDX-License-Identifier: Apache-2.0
#pragma once
// `mode: tunnel` on the worker's io_uring (config `io_uring: auto|on`), for a tunnel whose two
// sides are plain TCP sockets (no TLS, no HTTP/2 stream): ws::Tunnel's behaviour, the bytes
// moved by net::uring::Relay instead of epoll and evbuffers. This class is the session's policy
// (the clocks of ws::TunnelSession, the counts, the report to the client connection); the relay
// owns the sockets and frees itself after its last completion.

#include <memory>

#include "portico/config/config.h"
#include "portico/net/stream.h"
#include "portico/net/uring/relay.h"
#include "portico/ws/tunnel_session.h"

namespace portico::net {
class EventLoop;
}

namespace portico::ws {

class UringTunnel final : public TunnelSession, private net::uring::RelayObserver {
public:
    UringTunnel(SessionOwner& owner, net::EventLoop& loop, net::uring::Ring& ring, std::unique_ptr<net::Stream> client,
                std::unique_ptr<net::Stream> upstream, const config::WebSocketSettings& settings);
    ~UringTunnel() override;

    void start() override;
    void goAway() override { end("shutdown"); }
    SessionCounts counts() const override;

private:
    void expire(const char* reason) override { end(reason); }
    void onRelayActivity() override { idle_.touch(); }
    void onRelayEnd(const char* reason) override;
    void end(const char* reason);

    net::uring::Relay& relay_;  // holds the sockets and owns itself; detached in the destructor
};

}  // namespace portico::ws
