#include "portico/ws/frame_relay.h"

#include <algorithm>
#include <cstring>
#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"
#include "portico/net/lingering_close.h"
#include "portico/proxy/http_exchange.h"
#include "portico/ws/close_code.h"
#include "portico/ws/frame_header.h"

namespace portico::ws {

namespace {
// The payload of Portico's own pings; the client's matching pong is not forwarded upstream.
constexpr std::string_view kPingPayload = "portico";
}  // namespace

FrameRelay::FrameRelay(SessionOwner& owner, net::EventLoop& loop, std::unique_ptr<net::Stream> client,
                       std::unique_ptr<net::Stream> upstream, const config::WebSocketSettings& settings,
                       std::uint8_t allowed_rsv)
    : owner_(owner),
      loop_(loop),
      client_(std::move(client)),
      upstream_(std::move(upstream)),
      up_(Role::Client, allowed_rsv, settings.max_message_bytes),
      down_(Role::Server, allowed_rsv, settings.max_message_bytes),
      idle_(loop, settings.idle_timeout, [this] { goAwayBoth("idle timeout"); }),
      ping_timer_(event_new(loop.base(), -1, 0, &FrameRelay::onPingTimer, this)),
      ping_interval_(settings.ping_interval) {
    up_.from = down_.to = client_.get();
    up_.to = down_.from = upstream_.get();
    for (net::Stream* s : {client_.get(), upstream_.get()}) {
        s->setHandler(this);
        s->setLowWatermark(proxy::kLowWatermark);
        s->resumeReading();
    }
}

FrameRelay::~FrameRelay() {
    if (client_) loop_.deferDelete(std::move(client_));
    if (upstream_) loop_.deferDelete(std::move(upstream_));
}

void FrameRelay::start() {
    idle_.start();
    if (ping_interval_.count() > 0) net::addTimer(loop_, ping_timer_.get(), ping_interval_);
    if (evbuffer_get_length(upstream_->input()) > 0 && !pump(down_)) return;
    if (evbuffer_get_length(client_->input()) > 0) pump(up_);
}

bool FrameRelay::pump(Direction& d) {
    evbuffer* in = d.from->input();
    evbuffer* out = d.to->output();
    for (;;) {
        std::size_t available = evbuffer_get_length(in);
        if (d.remaining > 0) {
            // The rest of a data frame's payload: move it on as it is, still masked.
            if (available == 0) break;
            std::size_t n = d.remaining < available ? static_cast<std::size_t>(d.remaining) : available;
            evbuffer_remove_buffer(in, out, n);
            d.remaining -= n;
            d.bytes += n;
            if (d.remaining > 0) break;
            continue;
        }
        if (available == 0) break;
        FrameHeader h;
        int header = peekFrameHeader(in, h);
        if (header == 0) break;
        if (header < 0) {
            fail(*d.from, close_code::kProtocolError, "malformed frame header");
            return false;
        }
        if (std::uint16_t code = d.checker.check(h)) {
            fail(*d.from, code, code == close_code::kMessageTooBig ? "message too big" : "protocol violation");
            return false;
        }
        const std::size_t frame_size = static_cast<std::size_t>(header) + (isControl(h.opcode) ? h.payload_length : 0);
        if (!isControl(h.opcode)) {
            // Header and as much payload as is here, in one move (the common small message is
            // entirely here).
            std::uint64_t move = std::min<std::uint64_t>(available, header + h.payload_length);
            evbuffer_remove_buffer(in, out, static_cast<std::size_t>(move));
            d.bytes += move;
            d.remaining = header + h.payload_length - move;
            continue;
        }
        // A control frame (<= 125 bytes): wait for all of it, then judge its payload.
        if (available < frame_size) break;
        std::uint8_t payload[kMaxControlPayload];
        int length = copyControlPayload(in, h, payload);
        std::string_view body(reinterpret_cast<const char*>(payload), length > 0 ? static_cast<std::size_t>(length) : 0);
        if (h.opcode == Opcode::Close) {
            ClosePayload close;
            if (std::uint16_t code = parseClosePayload(payload, body.size(), close)) {
                fail(*d.from, code, "invalid close frame");
                return false;
            }
            d.close_seen = true;
        } else if (h.opcode == Opcode::Pong && &d == &up_ && body == kPingPayload) {
            ping_outstanding_ = false;  // the answer to our own ping: not the upstream's business
            evbuffer_drain(in, frame_size);
            continue;
        }
        evbuffer_remove_buffer(in, out, frame_size);
        d.bytes += frame_size;
    }
    d.to->flush();
    if (d.to->outputLength() > proxy::kHighWatermark) d.from->pauseReading();
    return true;
}

void FrameRelay::onReadable(net::Stream& stream) {
    if (ended_) return;
    idle_.touch();
    pump(directionFrom(stream));
}

void FrameRelay::onDrained(net::Stream& stream) {
    if (ended_) return;
    Direction& d = directionTo(stream);
    if (!d.eof && !d.from->isReading()) d.from->resumeReading();
}

void FrameRelay::onEof(net::Stream& stream) {
    if (ended_) return;
    Direction& d = directionFrom(stream);
    d.eof = true;
    // After a Close the TCP close is the normal end; without one the peer vanished: tell the
    // other side it is going away (RFC 6455 7.1.1 asks the server to close TCP first).
    if (!d.close_seen) sendClose(*d.to, close_code::kGoingAway);
    end(&stream == client_.get() ? "client closed" : "upstream closed");
}

void FrameRelay::onError(net::Stream& stream, int) {
    if (ended_) return;
    Direction& d = directionFrom(stream);
    if (!d.close_seen) sendClose(*d.to, close_code::kGoingAway);
    end(&stream == client_.get() ? "client connection error" : "upstream connection error");
}

void FrameRelay::sendClose(net::Stream& to, std::uint16_t code) {
    Direction& d = directionTo(to);
    if (d.remaining > 0) return;  // a frame to this side is half sent: a Close cannot follow it
    std::uint8_t payload[2] = {static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code & 0xff)};
    std::uint8_t mask[4];
    const bool to_upstream = &to == upstream_.get();
    if (to_upstream) makeMask(mask);  // we are the client towards the upstream: frames are masked
    appendFrame(to.output(), Opcode::Close, true, 0, payload, sizeof payload, to_upstream ? mask : nullptr);
    to.flush();
}

void FrameRelay::fail(net::Stream& at_fault, std::uint16_t code, const char* reason) {
    const bool client_at_fault = &at_fault == client_.get();
    LOG_INFO("websocket %s violation (%s): closing with %u", client_at_fault ? "client" : "upstream", reason, code);
    sendClose(at_fault, code);
    sendClose(client_at_fault ? *upstream_ : *client_, close_code::kGoingAway);
    end(reason);
}

void FrameRelay::goAway() { goAwayBoth("shutdown"); }

void FrameRelay::goAwayBoth(const char* reason) {
    if (ended_) return;
    sendClose(*client_, close_code::kGoingAway);
    sendClose(*upstream_, close_code::kGoingAway);
    end(reason);
}

void FrameRelay::onPingTimer(int, short, void* arg) {
    auto* self = static_cast<FrameRelay*>(arg);
    if (self->ping_outstanding_) {
        self->goAwayBoth("no pong from client");  // a whole interval: the client is gone or stuck
        return;
    }
    if (self->down_.remaining == 0) {  // only between frames towards the client
        appendFrame(self->client_->output(), Opcode::Ping, true, 0, kPingPayload.data(), kPingPayload.size(), nullptr);
        self->client_->flush();
        self->ping_outstanding_ = true;
    }
    net::addTimer(self->loop_, self->ping_timer_.get(), self->ping_interval_);
}

void FrameRelay::end(const char* reason) {
    if (ended_) return;
    ended_ = true;
    idle_.stop();
    event_del(ping_timer_.get());
    const SessionCounts counts{up_.checker.messages(), down_.checker.messages(), up_.bytes, down_.bytes};
    net::closeGracefully(loop_, std::move(client_));
    net::closeGracefully(loop_, std::move(upstream_));
    owner_.onSessionEnd(reason, counts);
}

}  // namespace portico::ws
