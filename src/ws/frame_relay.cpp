// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/frame_relay.h"

#include <algorithm>
#include <cstring>
#include <limits>
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

// Where pumpFrom() takes frames from: the sender's input() evbuffer (bytes that waited there:
// an incomplete frame, bytes that came with the handshake, websocket.trace) ...
class BufferSource {
public:
    static constexpr bool kContiguous = false;
    BufferSource(evbuffer* in, evbuffer* out) : in_(in), out_(out) {}
    std::size_t available() const { return evbuffer_get_length(in_); }
    int peekHeader(FrameHeader& h) const { return peekFrameHeader(in_, h); }
    int copyControl(const FrameHeader& h, std::uint8_t* payload) const { return copyControlPayload(in_, h, payload); }
    void forward(std::size_t n) { evbuffer_remove_buffer(in_, out_, n); }
    void drop(std::size_t n) { evbuffer_drain(in_, n); }
    evbuffer* buffer() const { return in_; }

private:
    evbuffer* in_;
    evbuffer* out_;
};

}  // namespace

// ... or the bytes of one read, still in the stream's scratch area (onBytes): forwarded frames
// join the direction's pending run, which goes out with one write; nothing is allocated or
// copied unless a frame is incomplete (its bytes are kept in input()).
class SpanSource {
public:
    static constexpr bool kContiguous = true;  // bytes() may be read directly
    // `from`: bytes before it were taken already (FrameRelay::takeSmallMessages).
    SpanSource(FrameRelay::Direction& d, const char* data, std::size_t len, std::size_t from = 0)
        : d_(d), data_(data), len_(len), pos_(from) {}
    std::size_t available() const { return len_ - pos_; }
    int peekHeader(FrameHeader& h) const { return parseFrameHeader(bytes(), available(), h); }
    int copyControl(const FrameHeader& h, std::uint8_t* payload) const {
        const auto len = static_cast<std::size_t>(h.payload_length);
        if (len > kMaxControlPayload || available() < h.header_length + len) return -1;
        if (h.masked) {
            copyMasked(payload, bytes() + h.header_length, len, h.mask, 0);
        } else {
            std::memcpy(payload, bytes() + h.header_length, len);
        }
        return static_cast<int>(len);
    }
    void forward(std::size_t n) {
        const char* at = data_ + pos_;
        if (d_.run_len > 0 && d_.run + d_.run_len != at) FrameRelay::commitRun(d_);  // a gap: a dropped frame
        if (d_.run_len == 0) d_.run = at;
        d_.run_len += n;
        pos_ += n;
    }
    void drop(std::size_t n) { pos_ += n; }
    evbuffer* buffer() const { return nullptr; }  // no tracer with direct reads
    const char* rest() const { return data_ + pos_; }
    const std::uint8_t* bytes() const { return reinterpret_cast<const std::uint8_t*>(data_) + pos_; }

private:
    FrameRelay::Direction& d_;
    const char* data_;
    std::size_t len_;
    std::size_t pos_;
};

FrameRelay::FrameRelay(SessionOwner& owner, net::EventLoop& loop, std::unique_ptr<net::ByteStream> client,
                       std::unique_ptr<net::Stream> upstream, const config::WebSocketSettings& settings,
                       std::uint8_t allowed_rsv, std::unique_ptr<FrameTracer> tracer)
    : owner_(owner),
      loop_(loop),
      client_(std::move(client)),
      upstream_(std::move(upstream)),
      up_(Role::Client, allowed_rsv, settings),
      down_(Role::Server, allowed_rsv, settings),
      idle_(loop, settings.idle_timeout, [](void* self) { static_cast<FrameRelay*>(self)->onIdle(); }, this),
      lifetime_(loop, settings, [this] { onLifetime(); }, [this] { end("max lifetime grace over"); }),
      ping_(loop, settings.ping_interval, [](void* self) { static_cast<FrameRelay*>(self)->onPing(); }, this),
      tracer_(std::move(tracer)),
      close_timeout_ms_(static_cast<std::uint32_t>(std::min<std::chrono::milliseconds::rep>(
          std::chrono::duration_cast<std::chrono::milliseconds>(settings.close_timeout).count(), std::numeric_limits<std::uint32_t>::max()))) {
    up_.from = down_.to = client_.get();
    up_.to = down_.from = upstream_.get();
    for (net::ByteStream* s : {client_.get(), static_cast<net::ByteStream*>(upstream_.get())}) {
        s->setHandler(this);
        s->setLowWatermark(proxy::kLowWatermark);
        s->setDirectRead(tracer_ == nullptr);  // the tracer reads frames from input()
        s->resumeReading();
    }
}

FrameRelay::~FrameRelay() {
    if (client_) loop_.deferDelete(std::move(client_));
    if (upstream_) loop_.deferDelete(std::move(upstream_));
}

void FrameRelay::start() {
    idle_.start();
    lifetime_.start();
    ping_.start();
    if (upstream_->inputLength() > 0 && !pump(down_)) return;
    if (client_->inputLength() > 0 && !pump(up_)) return;
    // From now on reads go straight through: the handshake's buffers are not needed while idle.
    client_->releaseIdle();
    upstream_->releaseIdle();
}

bool FrameRelay::chargeRated(Direction& d, std::uint64_t messages, std::uint64_t bytes, RateLimiter::Clock::time_point now) {
    const RateLimiter::Verdict verdict = d.rate.admit(messages, bytes, now);
    if (verdict == RateLimiter::Verdict::Ok) return true;
    const bool client = &d == &up_;
    const bool over_messages = verdict == RateLimiter::Verdict::OverMessages;
    // Static strings: the reason outlives this call (it reaches the owner's log line).
    const char* reason = client ? (over_messages ? "client over the message rate" : "client over the byte rate")
                                : (over_messages ? "upstream over the message rate" : "upstream over the byte rate");
    // RFC 6455 7.4.1: 1008, the sender violated the route's policy.
    fail(*d.from, close_code::kPolicyViolation, reason, SessionLimit::Rate);
    return false;
}

bool FrameRelay::pump(Direction& d) {
    BufferSource src(d.from->input(), d.to->output());
    return pumpFrom(d, src);
}

void FrameRelay::commitRun(Direction& d) {
    if (d.run_len == 0) return;
    const std::size_t n = d.run_len;
    d.run_len = 0;
    d.to->write(d.run, n);
}

template <class Source>
bool FrameRelay::pumpFrom(Direction& d, Source& src) {
    // RFC 6455 5.5.1: a side that sent its Close sends nothing more; whatever follows (an HTTP
    // response some servers write after it) is not WebSocket and is discarded unread.
    if (d.close_seen) {
        src.drop(src.available());
        return true;
    }
    // The clock is read once per batch of frames, and only when a rate is configured.
    const RateLimiter::Clock::time_point now = d.rate.enabled() ? RateLimiter::Clock::now() : RateLimiter::Clock::time_point();
    for (;;) {
        std::size_t available = src.available();
        if (d.remaining > 0) {
            // The rest of a data frame's payload: move it on as it is, still masked.
            if (available == 0) break;
            std::size_t n = d.remaining < available ? static_cast<std::size_t>(d.remaining) : available;
            if (d.discarding) {
                src.drop(n);
            } else {
                if (!charge(d, 0, n, now)) return false;
                src.forward(n);
                d.bytes += n;
            }
            d.remaining -= n;
            if (d.remaining > 0) break;
            if (d.close_pending != 0) writeClose(d, d.close_pending);
            continue;
        }
        if (available == 0) break;
        if constexpr (Source::kContiguous) {
            // The common small message, whole in this read: judged from its first two bytes
            // (FrameChecker::acceptSmallMessage, the same verdict as check()) and forwarded as
            // the general path below would. Anything else goes that way.
            if (!d.close_sent && !tracer_) {
                if (const std::size_t size = d.checker.acceptSmallMessage(src.bytes(), available)) {
                    d.discarding = false;
                    if (!charge(d, 1, size, now)) return false;
                    src.forward(size);
                    d.bytes += size;
                    continue;
                }
            }
        }
        FrameHeader h;
        int header = src.peekHeader(h);
        if (header == 0) break;
        if (header < 0) {
            fail(*d.from, close_code::kProtocolError, "malformed frame header");
            return false;
        }
        if (std::uint16_t code = d.checker.check(h)) {
            if (tracer_) [[unlikely]] tracer_->frame(traceDirection(d), h, src.buffer(), static_cast<std::size_t>(header));
            fail(*d.from, code, code == close_code::kMessageTooBig ? "message too big" : "protocol violation");
            return false;
        }
        const std::size_t frame_size = static_cast<std::size_t>(header) + (isControl(h.opcode) ? h.payload_length : 0);
        if (!isControl(h.opcode)) {
            if (tracer_) [[unlikely]] tracer_->frame(traceDirection(d), h, src.buffer(), static_cast<std::size_t>(header));
            // Header and as much payload as is here, in one move (the common small message is
            // entirely here). After `to` got a Close, data frames for it are dropped (RFC 6455
            // 5.5.1: no data after a Close).
            std::uint64_t move = std::min<std::uint64_t>(available, header + h.payload_length);
            d.discarding = d.close_sent;
            if (d.discarding) {
                src.drop(static_cast<std::size_t>(move));
            } else {
                const bool starts_message = h.opcode != Opcode::Continuation;
                if (!charge(d, starts_message ? 1 : 0, move, now)) return false;
                src.forward(static_cast<std::size_t>(move));
                d.bytes += move;
            }
            d.remaining = header + h.payload_length - move;
            continue;
        }
        // A control frame (<= 125 bytes): wait for all of it, then judge its payload.
        if (available < frame_size) break;
        std::uint8_t payload[kMaxControlPayload];
        int length = src.copyControl(h, payload);
        std::string_view body(reinterpret_cast<const char*>(payload), length > 0 ? static_cast<std::size_t>(length) : 0);
        if (tracer_) [[unlikely]] {
            // The answer to Portico's own ping stays with Portico (below).
            const bool ours = h.opcode == Opcode::Pong && &d == &up_ && keepalive_.answers(body);
            tracer_->frame(ours ? TraceDirection::ClientToPortico : traceDirection(d), h, src.buffer(),
                           static_cast<std::size_t>(header));
        }
        if (h.opcode == Opcode::Close) {
            ClosePayload close;
            if (std::uint16_t code = parseClosePayload(payload, body.size(), close)) {
                fail(*d.from, code, "invalid close frame");
                return false;
            }
            d.close_seen = true;
            // Forwarded: `to` now owes an answer. Not forwarded: it had ours (max_lifetime, whose
            // own grace bounds the wait for the answers).
            const bool forwarded = !d.close_sent;
            if (d.close_sent) {
                src.drop(frame_size);  // `to` already has a Close: never a second one
            } else {
                src.forward(frame_size);
                d.bytes += frame_size;
                d.close_sent = true;
            }
            src.drop(src.available());  // RFC 6455 5.5.1: nothing after it
            if (up_.close_seen && down_.close_seen) {
                // Both Closes went through: the closing handshake is complete (RFC 6455 7.1.1:
                // the server, here Portico towards the client, closes TCP first).
                end("closed", true);
                return false;
            }
            if (forwarded) awaitCloseAnswer();
            break;
        }
        // The answer to our own ping, and only that (a payload of its own per ping): an upstream
        // that pings the client too (another Portico behind this one) gets its pongs, or it
        // would close the WebSocket for "no pong".
        if (h.opcode == Opcode::Pong && &d == &up_ && keepalive_.takeAnswer(body)) {
            src.drop(frame_size);  // not the upstream's business
            continue;
        }
        if (d.close_sent) {
            src.drop(frame_size);
            continue;
        }
        // Control frames count as bytes, not messages (a ping flood still meets the byte rate).
        if (!charge(d, 0, frame_size, now)) return false;
        src.forward(frame_size);
        d.bytes += frame_size;
    }
    commitRun(d);  // one write per direction per read (Stream::write queues what the socket refuses)
    // Bytes moved into output() (BufferSource, a Close of ours) go now; usually there are none.
    if (d.to->outputLength() > 0) {
        d.to->flush();
        if (d.to->outputLength() > proxy::kHighWatermark) d.from->pauseReading();
    }
    return true;
}

void FrameRelay::onReadable(net::ByteStream& stream) {
    if (ended_) return;
    if (closing_ == Closing::No) idle_.touch();  // while closing, traffic does not put off close_timeout
    if (pump(directionFrom(stream))) stream.releaseIdle();
}

// The common read in full: whole small messages back to back (FrameChecker::acceptSmallMessage,
// the same verdicts as the general path), between frames, nothing to discard, no rate to charge.
// Returns how many bytes at the start of the read are such messages; they are counted as
// forwarded, and the caller writes them (one run). Whatever follows (another kind of frame, an
// incomplete one) is left to pumpFrom.
std::size_t FrameRelay::takeSmallMessages(Direction& d, const char* data, std::size_t n) {
    if (d.remaining != 0 || d.close_seen || d.close_sent || d.rate.enabled()) return 0;
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
    std::size_t taken = 0;
    while (const std::size_t size = d.checker.acceptSmallMessage(bytes + taken, n - taken)) taken += size;
    d.bytes += taken;
    return taken;
}

void FrameRelay::onBytes(net::ByteStream& stream, const char* data, std::size_t n) {
    if (ended_) return;
    if (closing_ == Closing::No) idle_.touch();
    Direction& d = directionFrom(stream);
    // Direct reads only come without a tracer (the constructor), which the general path checks.
    const std::size_t taken = takeSmallMessages(d, data, n);
    if (taken == n && n > 0) {
        // As the tunnel's onBytes: the whole read goes on with one write.
        d.to->write(data, n);
        if (d.to->outputLength() > proxy::kHighWatermark) d.from->pauseReading();
        return;
    }
    if (taken > 0) {
        commitRun(d);  // empty between reads; kept for the invariant that a run is one span
        d.run = data;  // the messages taken lead the run the general path goes on with
        d.run_len = taken;
    }
    SpanSource src(d, data, n, taken);
    // What is left is the start of a frame not complete yet: it waits in input() for the rest.
    if (pumpFrom(d, src) && src.available() > 0) evbuffer_add(stream.input(), src.rest(), src.available());
}

void FrameRelay::onDrained(net::ByteStream& stream) {
    if (ended_) return;
    if (stalled_ && &stalled_->to() == &stream) stalled_->progress();
    Direction& d = directionTo(stream);
    if (!d.eof && !d.from->isReading()) d.from->resumeReading();
    stream.releaseIdle();  // the backlog is gone: so is its buffer, once empty
}

void FrameRelay::onEof(net::ByteStream& stream) {
    if (ended_) return;
    Direction& d = directionFrom(stream);
    d.eof = true;
    // After a Close the TCP close is the normal end; without one the peer vanished: tell the
    // other side it is going away (RFC 6455 7.1.1 asks the server to close TCP first).
    if (!d.close_seen) sendClose(*d.to, close_code::kGoingAway);
    const bool upstream = &stream == upstream_.get();
    // An upstream that ends without a Close, unasked, broke off the WebSocket (RFC 6455 7.1.5:
    // 1006); one we had sent a Close may close TCP at once.
    const Direction& to_upstream = directionTo(stream);
    const bool broken = upstream && !d.close_seen && !to_upstream.close_sent && to_upstream.close_pending == 0;
    end(upstream ? "upstream closed" : "client closed", true, broken);
}

// As the tunnel's (tunnel.cpp): the frames before the FIN go on while the other side takes
// them; if it takes none for StalledDelivery::kStall, the session ends as at that peer's EOF.
void FrameRelay::onPeerShut(net::ByteStream& stream) {
    if (ended_ || stalled_) return;
    stalled_ = std::make_unique<StalledDelivery>(
        loop_, stream, *directionFrom(stream).to,
        [](void* self, net::ByteStream& from) { static_cast<FrameRelay*>(self)->onEof(from); }, this);
}

void FrameRelay::onError(net::ByteStream& stream, int) {
    if (ended_) return;
    Direction& d = directionFrom(stream);
    // Frames mode speaks WebSocket to both sides: the other side gets our Close 1001 and a FIN
    // (issue 3's contract: "a dropped TCP connection on one side ends the other, frames: close
    // 1001/1011 first"), never an RST, which could destroy that Close in flight. An HTTP/2
    // client's stream is still reset after it when the upstream failed (RFC 9113 8.5).
    if (!d.close_seen) sendClose(*d.to, close_code::kGoingAway);
    const bool upstream = &stream == upstream_.get();
    end(upstream ? "upstream connection error" : "client connection error", true, upstream);
}

void FrameRelay::sendClose(net::ByteStream& to, std::uint16_t code) {
    Direction& d = directionTo(to);
    if (d.close_sent || d.close_pending != 0) return;  // RFC 6455 5.5.1: one Close per side
    if (d.remaining > 0 && !d.discarding) {
        d.close_pending = code;  // a frame to this side is half sent: the Close follows it
        return;
    }
    writeClose(d, code);
}

void FrameRelay::writeClose(Direction& d, std::uint16_t code) {
    commitRun(d);  // the frames forwarded before it go first
    d.close_pending = 0;
    d.close_sent = true;
    std::uint8_t payload[2] = {static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code & 0xff)};
    std::uint8_t mask[4];
    const bool to_upstream = d.to == upstream_.get();
    if (to_upstream) makeMask(mask);  // we are the client towards the upstream: frames are masked
    const std::size_t mark = evbuffer_get_length(d.to->output());
    appendFrame(d.to->output(), Opcode::Close, true, 0, payload, sizeof payload, to_upstream ? mask : nullptr);
    if (tracer_) {
        tracer_->written(to_upstream ? TraceDirection::PorticoToUpstream : TraceDirection::PorticoToClient,
                         d.to->output(), mark);
    }
    d.to->flush();
}

void FrameRelay::fail(net::ByteStream& at_fault, std::uint16_t code, const char* reason, SessionLimit limit) {
    const bool client_at_fault = &at_fault == client_.get();
    if (limit == SessionLimit::None) {
        LOG_INFO("websocket %s violation (%s): closing with %u", client_at_fault ? "client" : "upstream", reason, code);
    }
    limit_ = limit;
    sendClose(at_fault, code);
    sendClose(client_at_fault ? *upstream_ : *client_, close_code::kGoingAway);
    // An upstream that broke the protocol failed (an HTTP/2 client's stream is reset after our
    // Close); one that tripped the route's own limits (rates: 1008, max_message: 1009) did not.
    const bool upstream_broken = !client_at_fault && limit == SessionLimit::None && code != close_code::kMessageTooBig;
    end(reason, false, upstream_broken);
}

void FrameRelay::onLifetime() {
    if (ended_) return;
    // RFC 6455 7.4.1: 1001, the server is going away (here: this connection is old enough to be
    // rebalanced). Both sides are asked to close; their Closes end the session (pump), or the
    // grace period does.
    limit_ = SessionLimit::Lifetime;
    ping_.stop();
    sendClose(*client_, close_code::kGoingAway);
    sendClose(*upstream_, close_code::kGoingAway);
    lifetime_.startGrace();
}

void FrameRelay::goAway() { goAwayBoth("shutdown"); }

void FrameRelay::goAwayBoth(const char* reason) {
    if (ended_) return;
    sendClose(*client_, close_code::kGoingAway);
    sendClose(*upstream_, close_code::kGoingAway);
    end(reason);
}

void FrameRelay::awaitCloseAnswer() {
    if (closing_ != Closing::No) return;
    closing_ = Closing::Waiting;
    // No more pings: a client that sent its Close answers none (what it sends is discarded), and
    // close_timeout bounds what is left.
    ping_.stop();
    idle_.retime(loop_, std::chrono::milliseconds(close_timeout_ms_));
}

void FrameRelay::onIdle() {
    if (closing_ == Closing::No) {
        goAwayBoth("idle timeout");
        return;
    }
    // close_timeout: RFC 6455 7.1.7, fail the connection that did not answer. Its TCP connection
    // is closed (an HTTP/2 client's stream ends, END_STREAM after the Close it had); the side that
    // sent the Close gets 1001 as its answer, if it had no Close yet (sendClose: one per side).
    closing_ = Closing::TimedOut;
    const bool upstream_silent = up_.close_seen;
    sendClose(upstream_silent ? *client_ : *upstream_, close_code::kGoingAway);
    end(upstream_silent ? "upstream did not answer the Close" : "client did not answer the Close", true);
}

void FrameRelay::onPing() {
    if (keepalive_.outstanding()) {
        goAwayBoth("no pong from client");  // a whole interval: the client is gone or stuck
        return;
    }
    if (down_.remaining == 0 && !down_.close_sent) {  // between frames, before a Close
        const std::size_t mark = evbuffer_get_length(client_->output());
        const KeepAlivePing::Payload payload = keepalive_.start();
        appendFrame(client_->output(), Opcode::Ping, true, 0, payload.data(), payload.size(), nullptr);
        if (tracer_) tracer_->written(TraceDirection::PorticoToClient, client_->output(), mark);
        client_->flush();
    }
    ping_.start();  // the next one an interval from now
}

void FrameRelay::end(const char* reason, bool finished, bool upstream_broken) {
    if (ended_) return;
    ended_ = true;
    idle_.stop();
    lifetime_.stop();
    ping_.stop();
    if (stalled_) stalled_->stop();  // its streams are closed below
    commitRun(up_);  // what was forwarded from the last read goes before the close
    commitRun(down_);
    const SessionCounts final_counts = counts();
    // A client that was sent a Close and has not answered yet will answer it: a closed socket would
    // meet that Close with a reset, which browsers report as an unclean close. Linger for it (one
    // that had close_timeout to answer already is the side that did not answer, below).
    const bool client_answered = up_.close_seen || up_.eof || !down_.close_sent || closing_ == Closing::TimedOut;
    net::Ending ending = net::Ending::Linger;
    if (finished && client_answered)
        ending = up_.close_seen && down_.close_seen ? net::Ending::AfterCloses : net::Ending::Finished;
    // close_timeout ran out: the side that did not answer may still be sending (its traffic does not
    // put the timeout off), and closing a socket while its bytes arrive meets them with a reset.
    // That side gets the lingering close: FIN, what it still sends is discarded, freed at its FIN
    // or after a bound (lingering_close.h).
    net::Ending client_ending = ending;
    net::Ending upstream_ending = ending;
    if (closing_ == Closing::TimedOut) (up_.close_seen ? upstream_ending : client_ending) = net::Ending::Linger;
    // The client was sent our Close 1001 (or is in a frame the end cuts): a socket keeps its FIN.
    if (upstream_broken) client_->markOtherSideFailed(/*last_words=*/true);
    net::closeSide(loop_, std::move(client_), client_ending);
    net::closeSide(loop_, std::move(upstream_), upstream_ending);
    owner_.onSessionEnd(reason, final_counts);
}

}  // namespace portico::ws
