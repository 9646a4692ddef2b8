// SPDX-License-Identifier: Apache-2.0
#include "portico/handlers/websocket_endpoint.h"

#include <cerrno>

#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"
#include "portico/net/lingering_close.h"
#include "portico/proxy/http_exchange.h"
#include "portico/ws/close_code.h"

namespace portico::handlers {

namespace {

ws::CodecOptions codecOptions(const config::WebSocketSettings& settings, const std::optional<ws::DeflateParams>& deflate,
                              ws::FrameTracer* tracer) {
    ws::CodecOptions options;
    options.tracer = tracer;
    options.role = ws::Role::Server;
    options.max_message_bytes = settings.max_message_bytes;
    options.deflate = deflate;
    options.deflate_level = settings.permessage_deflate.level;
    options.deflate_mem_level = settings.permessage_deflate.mem_level;
    options.deflate_min_bytes = settings.permessage_deflate.min_message_bytes;
    options.max_inflating = settings.permessage_deflate.max_inflating_per_worker;
    return options;
}

class EchoApp final : public EndpointApp {
public:
    void onMessage(EndpointSession& session, bool is_text, std::string_view payload) override {
        if (is_text) {
            session.sendText(payload);
        } else {
            session.sendBinary(payload);
        }
    }
};

}  // namespace

std::unique_ptr<EndpointApp> makeEchoApp() { return std::make_unique<EchoApp>(); }

EndpointSession::EndpointSession(ws::SessionOwner& owner, net::EventLoop& loop, std::unique_ptr<net::ByteStream> client,
                                 const config::WebSocketSettings& settings, std::optional<ws::DeflateParams> deflate,
                                 std::unique_ptr<EndpointApp> app, std::unique_ptr<ws::FrameTracer> tracer)
    : owner_(owner),
      loop_(loop),
      client_(std::move(client)),
      tracer_(std::move(tracer)),
      codec_(codecOptions(settings, deflate, tracer_.get()), static_cast<ws::CodecHandler&>(*this), client_->output()),
      app_(std::move(app)),
      idle_(loop, settings.idle_timeout,
            [](void* self) { static_cast<EndpointSession*>(self)->close(ws::close_code::kGoingAway, "idle timeout"); },
            this),
      lifetime_(loop, settings, [this] { onLifetime(); }, [this] { end("max lifetime grace over"); }),
      rate_(settings.rate, ws::RateLimiter::Clock::now()),
      ping_(loop, settings.ping_interval, [](void* self) { static_cast<EndpointSession*>(self)->onPing(); }, this) {
    client_->setHandler(this);
    client_->setLowWatermark(proxy::kLowWatermark);
    client_->resumeReading();
}

EndpointSession::~EndpointSession() {
    if (client_) loop_.deferDelete(std::move(client_));
}

void EndpointSession::start() {
    idle_.start();
    lifetime_.start();
    ping_.start();
    app_->onOpen(*this);
    // The app may close at once (pubsub: 1013 too many channels, 4410 history lost): end()
    // has handed the socket to the graceful close already.
    if (ended_) return;
    client_->flush();
    if (evbuffer_get_length(client_->input()) > 0) onReadable(*client_);
}

void EndpointSession::onReadable(net::ByteStream& stream) {
    if (ended_) return;
    // The shared frames queued stay out of the output unless the codec writes (beforeWrite):
    // a client's message or Pong costs their one sendmsg at the next flush nothing.
    idle_.touch();
    std::size_t before = evbuffer_get_length(stream.input());
    if (rate_.enabled() && codec_.state() == ws::CodecState::Open) {
        now_ = ws::RateLimiter::Clock::now();
        // Bytes are charged as they arrive, before the codec acts on any of them.
        if (before > unread_ && rate_.admit(0, before - unread_, now_) != ws::RateLimiter::Verdict::Ok) {
            overRate(RateBreach::Bytes);
            afterCodec();
            return;
        }
    }
    codec_.feed(stream.input());
    const std::size_t left = evbuffer_get_length(stream.input());
    unread_ = static_cast<std::uint16_t>(left);
    bytes_in_ += before - left;
    afterCodec();
}

void EndpointSession::overRate(RateBreach breach) {
    // RFC 6455 7.4.1: 1008, the client violated the route's policy. The codec delivers nothing
    // more once its Close is queued; afterCodec() then closes TCP without waiting.
    limit_ = ws::SessionLimit::Rate;
    rate_breach_ = breach;
    codec_.sendClose(ws::close_code::kPolicyViolation);
}

void EndpointSession::onLifetime() {
    if (ended_) return;
    // RFC 6455 7.4.1: 1001, going away; the client's answering Close ends the session
    // (afterCodec), or the grace period does.
    limit_ = ws::SessionLimit::Lifetime;
    ping_.stop();
    codec_.sendClose(ws::close_code::kGoingAway);
    client_->flush();
    lifetime_.startGrace();
}

void EndpointSession::afterCodec() {
    if (ended_) return;
    client_->flush();
    if (rate_breach_ != RateBreach::None) {
        end(rate_breach_ == RateBreach::Bytes ? "client over the byte rate" : "client over the message rate");
        return;
    }
    if (codec_.state() == ws::CodecState::Closed) {
        // The codec fails with 1013 for the worker's bound on half-received compressed messages
        // only (Codec::feed); its other failures are the client's protocol errors.
        if (codec_.failed() && codec_.closeCodeSent() == ws::close_code::kTryAgainLater) {
            limit_ = ws::SessionLimit::Inflating;
            end("over permessage_deflate.max_inflating_per_worker");
            return;
        }
        end(codec_.failed() ? "protocol error" : "closed");
        return;
    }
    // A client that does not read what it is sent (its echoes) stops being read.
    if (client_->outputLength() > proxy::kHighWatermark) client_->pauseReading();
}

void EndpointSession::onDrained(net::ByteStream& stream) {
    if (ended_) return;
    if (!stream.isReading() && !held_) stream.resumeReading();
    app_->onDrained(*this);
}

void EndpointSession::onEof(net::ByteStream&) { end("client closed"); }
void EndpointSession::onError(net::ByteStream&, int) { end("client connection error"); }

void EndpointSession::onMessage(bool is_text, std::string_view payload) {
    if (rate_.enabled() && rate_.admit(1, 0, now_) != ws::RateLimiter::Verdict::Ok) {
        overRate(RateBreach::Messages);  // this message is not delivered
        return;
    }
    app_->onMessage(*this, is_text, payload);
}

void EndpointSession::onPong(std::string_view payload) {
    if (keepalive_.takeAnswer(payload)) return;  // the answer to our keep-alive ping: ours alone
    app_->onPong(*this, payload);
}

void EndpointSession::sendText(std::string_view text) {
    if (ended_) return;
    codec_.sendText(text);
}

void EndpointSession::sendBinary(std::string_view data) {
    if (ended_) return;
    codec_.sendBinary(data);
}

void EndpointSession::sendEncoded(evbuffer* frames) {
    if (!isOpen()) return;
    queueEncoded(frames);
    idle_.touch();  // what the app sends is traffic too (websocket.idle_timeout: either way)
    client_->flush();
}

void EndpointSession::queueEncoded(evbuffer* frames) {
    if (!isOpen()) return;
    joinShared();
    evbuffer* out = client_->output();
    const std::size_t mark = tracer_ ? evbuffer_get_length(out) : 0;
    ws::Codec::appendShared(out, frames);
    if (tracer_) tracer_->written(ws::TraceDirection::PorticoToClient, out, mark);
}

void EndpointSession::queueShared(const core::SharedBytesRef& frame) {
    if (!isOpen() || !frame) return;
    // Behind bytes the socket has not taken (a blocked write), traced, or beyond the list: into
    // the output now, as queueEncoded() does (copied when small, referenced when large).
    if (tracer_ || shared_count_ == kSharedFrames || (shared_count_ == 0 && client_->outputLength() > 0)) {
        joinShared();
        evbuffer* out = client_->output();
        const std::size_t mark = tracer_ ? evbuffer_get_length(out) : 0;
        if (!frame->appendTo(out)) client_->failWrite(ENOMEM);
        if (tracer_) tracer_->written(ws::TraceDirection::PorticoToClient, out, mark);
        return;
    }
    shared_[shared_count_++] = frame;
    shared_bytes_ += frame->size();
}

void EndpointSession::joinShared() {
    if (shared_count_ == 0) return;
    evbuffer* out = client_->output();
    bool queued = true;
    for (std::size_t i = 0; i < shared_count_; ++i) {
        queued = queued && shared_[i]->appendTo(out);
        shared_[i].reset();
    }
    // Out of memory: the connection fails (onError from the loop) rather than skip a frame.
    if (!queued) client_->failWrite(ENOMEM);
    shared_count_ = 0;
    shared_bytes_ = 0;
}

std::size_t EndpointSession::queuedBytes() const { return client_ ? client_->outputLength() + shared_bytes_ : 0; }

void EndpointSession::flush() {
    if (ended_) return;
    // websocket.idle_timeout counts traffic either way: a subscriber that only receives is not
    // idle. Once per flush, not per message (a pub/sub hub flushes once per loop iteration).
    // Only when the output changed since the last flush (bytes queued, or written meanwhile): a
    // flush with nothing new to a client that reads nothing (an app's empty keep-alive answer
    // to a bridge) is no traffic, though output is still queued.
    if (shared_count_ > 0 || client_->outputLength() != output_after_flush_) idle_.touch();
    if (shared_count_ > 0) {
        // From the shared frames' memory: one sendmsg when nothing else is queued.
        client_->writeShared(shared_, shared_count_);
        for (std::size_t i = 0; i < shared_count_; ++i) shared_[i].reset();
        shared_count_ = 0;
        shared_bytes_ = 0;
    } else {
        client_->flush();
    }
    output_after_flush_ = client_->outputLength();
}

void EndpointSession::close(std::uint16_t code, std::string_view reason) {
    if (ended_) return;
    codec_.sendClose(code, reason);
    end("closed by the endpoint");
}

void EndpointSession::disconnect(const char* reason) {
    if (!ended_) end(reason);
}

bool EndpointSession::sendPing(std::string_view payload) {
    if (ended_) return false;
    if (!codec_.sendPing(payload)) return false;
    idle_.touch();
    client_->flush();
    return true;
}

bool EndpointSession::sendPong(std::string_view payload) {
    if (ended_) return false;
    if (!codec_.sendPong(payload)) return false;
    idle_.touch();
    client_->flush();
    return true;
}

void EndpointSession::holdReading(bool hold) {
    if (ended_ || held_ == hold) return;
    held_ = hold;
    if (hold) {
        client_->pauseReading();
        return;
    }
    if (client_->outputLength() > proxy::kHighWatermark) return;  // onDrained resumes
    client_->resumeReading();
    // What was read before the hold and not yet decoded goes on now.
    if (evbuffer_get_length(client_->input()) > unread_) onReadable(*client_);
}

void EndpointSession::goAway() { close(ws::close_code::kGoingAway, "server going away"); }

void EndpointSession::onPing() {
    if (keepalive_.outstanding()) {
        close(ws::close_code::kGoingAway, "no pong");
        return;
    }
    if (codec_.state() == ws::CodecState::Open) {
        const ws::KeepAlivePing::Payload payload = keepalive_.start();
        if (codec_.sendPing({payload.data(), payload.size()}))
            client_->flush();
        else
            keepalive_.forget();
    }
    ping_.start();  // the next one an interval from now
}

void EndpointSession::end(const char* reason) {
    if (ended_) return;
    ended_ = true;
    idle_.stop();
    lifetime_.stop();
    ping_.stop();
    app_->onClose(*this);
    const ws::SessionCounts final_counts = counts();
    joinShared();  // what was queued is still delivered (closeSide), then the FIN
    net::closeSide(loop_, std::move(client_), net::Ending::Linger);
    owner_.onSessionEnd(reason, final_counts);
}

}  // namespace portico::handlers
