// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/tunnel.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/net/event_loop.h"
#include "portico/net/lingering_close.h"
#include "portico/proxy/http_exchange.h"

namespace portico::ws {

Tunnel::Tunnel(SessionOwner& owner, net::EventLoop& loop, std::unique_ptr<net::ByteStream> client,
               std::unique_ptr<net::Stream> upstream, const config::WebSocketSettings& settings)
    : TunnelSession(owner, loop, settings), client_(std::move(client)), upstream_(std::move(upstream)) {
    for (net::ByteStream* s : {client_.get(), static_cast<net::ByteStream*>(upstream_.get())}) {
        s->setHandler(this);
        s->setLowWatermark(proxy::kLowWatermark);
        s->setDirectRead(true);
        s->resumeReading();
    }
}

Tunnel::~Tunnel() {
    if (client_) loop_.deferDelete(std::move(client_));
    if (upstream_) loop_.deferDelete(std::move(upstream_));
}

void Tunnel::start() {
    startClocks();
    // Bytes that arrived with the handshake (a first frame right behind the 101).
    if (upstream_->inputLength() > 0) relay(*upstream_);
    if (client_->inputLength() > 0) relay(*client_);
    // From now on reads go straight through: the handshake's buffers are not needed while idle.
    client_->releaseIdle();
    upstream_->releaseIdle();
}

void Tunnel::relay(net::ByteStream& from) {
    net::ByteStream& to = other(from);
    std::size_t n = evbuffer_get_length(from.input());
    (&from == client_.get() ? from_client_ : to_client_) += n;
    evbuffer_add_buffer(to.output(), from.input());  // moves the chains, no copy
    to.flush();
    if (to.outputLength() > proxy::kHighWatermark) from.pauseReading();
}

void Tunnel::onReadable(net::ByteStream& stream) {
    if (ended()) return;
    idle_.touch();
    relay(stream);
    stream.releaseIdle();
}

// The common case: a read arrives while nothing is queued and goes on with one send, straight
// from the read's scratch area (no evbuffer chain, no allocation).
void Tunnel::onBytes(net::ByteStream& from, const char* data, std::size_t n) {
    if (ended()) return;
    idle_.touch();
    net::ByteStream& to = other(from);
    (&from == client_.get() ? from_client_ : to_client_) += n;
    to.write(data, n);
    if (to.outputLength() > proxy::kHighWatermark) from.pauseReading();
}

void Tunnel::onDrained(net::ByteStream& stream) {
    if (ended()) return;
    if (stalled_ && &stalled_->to() == &stream) stalled_->progress();
    net::ByteStream& from = other(stream);
    if (!from.isReading()) from.resumeReading();
    stream.releaseIdle();  // the backlog is gone: so is its buffer, once empty
}

void Tunnel::onEof(net::ByteStream& stream) {
    if (ended()) return;
    // WebSocket has no half-open state: one side closing ends the session. What the other side
    // still has queued is flushed, then it gets the FIN too (closeFinished in end(); with TLS,
    // close_notify first).
    end(&stream == client_.get() ? "client closed" : "upstream closed", true);
}

// The peer of a paused side closed: its last bytes are still relayed as the other side takes
// them (reading resumes at its low watermark, and the EOF after them ends the session), unless
// the other side takes none for StalledDelivery::kStall: then the session ends as at that EOF.
void Tunnel::onPeerShut(net::ByteStream& stream) {
    if (ended() || stalled_) return;  // both peers gone: the first one's wait bounds the session
    stalled_ = std::make_unique<StalledDelivery>(
        loop_, stream, other(stream), [](void* self, net::ByteStream& from) { static_cast<Tunnel*>(self)->onEof(from); },
        this);
}

// Failed, not closed (a reset, an error, an HTTP/2 client's RST_STREAM): the other side is told
// so, with an RST or RST_STREAM CONNECT_ERROR instead of a FIN or END_STREAM (RFC 9113 8.5).
void Tunnel::onError(net::ByteStream& stream, int) {
    if (ended()) return;
    other(stream).markOtherSideFailed(/*last_words=*/false);
    end(&stream == client_.get() ? "client connection error" : "upstream connection error", true);
}

void Tunnel::goAway() { end("shutdown"); }

void Tunnel::end(const char* reason, bool finished) {
    if (!markEnded()) return;
    if (stalled_) stalled_->stop();  // its streams are closed below
    // What one side still has queued (the other side's last bytes) is flushed before closing,
    // unless that side is reset (onError: the other side failed, markOtherSideFailed): its RST
    // drops the queue, as the failed side's own reset did its bytes (and a TLS side gets no
    // close_notify, which would say the stream ended whole).
    net::closeBoth(loop_, std::move(client_), std::move(upstream_), finished ? net::Ending::Finished : net::Ending::Linger);
    reportEnd(reason);
}

}  // namespace portico::ws
