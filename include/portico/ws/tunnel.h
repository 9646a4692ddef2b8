// SPDX-License-Identifier: Apache-2.0
#pragma once
// `mode: tunnel`: after the 101, bytes move between client and upstream unexamined, evbuffer
// chains handed from one side's input to the other side's output (no copy), with le-proxy
// backpressure: a side's reading stops while the other side's output is above the high
// watermark and resumes when it drains. A FIN or an error on either side ends the session: the
// other side gets what was queued for it, then a FIN.
//
// A peer that closes while its side's reading is paused (the other side takes nothing) is
// noticed at once (onPeerShut): the bytes it sent before its FIN are still delivered while the
// other side takes them, and the session ends at that peer's EOF, or when the other side took
// no byte for StalledDelivery::kStall, not at idle_timeout.
//
// Its clocks (idle_timeout, max_lifetime: both TCP connections closed, flushed first) are
// ws::TunnelSession's, shared with the io_uring tunnel.

#include <chrono>
#include <memory>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/net/stream.h"
#include "portico/ws/stalled_delivery.h"
#include "portico/ws/tunnel_session.h"

namespace portico::net {
class EventLoop;
}

namespace portico::ws {

class Tunnel final : public TunnelSession, private net::StreamHandler {
public:
    // Takes both streams (the client's a socket or an HTTP/2 stream); bytes already buffered in
    // their inputs are relayed at start().
    Tunnel(SessionOwner& owner, net::EventLoop& loop, std::unique_ptr<net::ByteStream> client,
           std::unique_ptr<net::Stream> upstream, const config::WebSocketSettings& settings);
    ~Tunnel() override;

    void start() override;
    void goAway() override;
    SessionCounts counts() const override { return SessionCounts{0, 0, from_client_, to_client_, limit()}; }
    std::size_t queuedForUpstream() const override { return upstream_ ? upstream_->outputLength() : 0; }

private:
    void expire(const char* reason) override { end(reason); }
    void onReadable(net::ByteStream& stream) override;
    void onBytes(net::ByteStream& stream, const char* data, std::size_t n) override;
    void onEof(net::ByteStream& stream) override;
    void onError(net::ByteStream& stream, int error) override;
    void onDrained(net::ByteStream& stream) override;
    void onPeerShut(net::ByteStream& stream) override;
    net::ByteStream& other(const net::ByteStream& stream) {
        return &stream == client_.get() ? static_cast<net::ByteStream&>(*upstream_) : *client_;
    }
    void relay(net::ByteStream& from);
    // `finished`: a peer closed its connection (or failed): both sockets are closed at once
    // when nothing is left to send (net::closeFinished); otherwise they linger.
    void end(const char* reason, bool finished = false);

    std::unique_ptr<net::ByteStream> client_;
    std::unique_ptr<net::Stream> upstream_;
    std::uint64_t from_client_ = 0;
    std::uint64_t to_client_ = 0;
    std::unique_ptr<StalledDelivery> stalled_;  // a peer closed behind backpressure (onPeerShut)
};

}  // namespace portico::ws
