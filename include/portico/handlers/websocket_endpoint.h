// SPDX-License-Identifier: Apache-2.0
#pragma once
// A WebSocket connection that Portico serves itself (`handler: echo`, `handler: pubsub`):
// the client socket, the codec, ping and idle timers, and an EndpointApp that decides what
// messages mean.
//
// Limits: websocket.rate applies to what the client sends (bytes as they arrive, messages as the
// codec completes them; over it: Close 1008, then TCP close). What Portico itself sends is not
// rate-limited here: echo mirrors the client's own rate, and a pubsub subscriber is bounded by
// pubsub.queue_bytes instead, since closing it for traffic it did not cause would be wrong.
// websocket.max_lifetime sends Close 1001 and waits max_lifetime_grace for the client's Close.

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/core/shared_bytes.h"
#include "portico/net/idle_timer.h"
#include "portico/net/stream.h"
#include "portico/ws/codec.h"
#include "portico/ws/frame_tracer.h"
#include "portico/ws/keepalive_ping.h"
#include "portico/ws/lifetime_timer.h"
#include "portico/ws/rate_limiter.h"
#include "portico/ws/session.h"

namespace portico::net {
class EventLoop;
}

namespace portico::handlers {

class EndpointSession;

// The application behind a built-in endpoint.
class EndpointApp {
public:
    virtual ~EndpointApp() = default;
    virtual void onOpen(EndpointSession& /*session*/) {}
    virtual void onMessage(EndpointSession& session, bool is_text, std::string_view payload) = 0;
    virtual void onClose(EndpointSession& /*session*/) {}
    // A Pong from the client that does not answer the session's own keep-alive ping (an answer
    // to the app's ping, or the client's unsolicited heartbeat). The session answers pings itself.
    virtual void onPong(EndpointSession& /*session*/, std::string_view /*payload*/) {}
    // The client's queue fell to the low watermark after a blocked write (pubsub: the next
    // slice of a history replay).
    virtual void onDrained(EndpointSession& /*session*/) {}
};

class EndpointSession final : public ws::Session, private net::StreamHandler, private ws::CodecHandler {
public:
    // Takes the client stream (a socket, whose output already holds the 101 response, or an
    // HTTP/2 stream). `tracer`: null unless the route has websocket.trace.
    EndpointSession(ws::SessionOwner& owner, net::EventLoop& loop, std::unique_ptr<net::ByteStream> client,
                    const config::WebSocketSettings& settings, std::optional<ws::DeflateParams> deflate,
                    std::unique_ptr<EndpointApp> app, std::unique_ptr<ws::FrameTracer> tracer = nullptr);
    ~EndpointSession() override;

    void start() override;
    void goAway() override;
    ws::SessionCounts counts() const override {
        return ws::SessionCounts{codec_.messagesIn(), codec_.messagesOut(), bytes_in_, codec_.bytesOut(), limit_};
    }

    // For the app.
    void sendText(std::string_view text);
    void sendBinary(std::string_view data);
    // Appends frames encoded once for many receivers (Codec::encodeMessage) and writes.
    void sendEncoded(evbuffer* frames);
    // The same without writing (ws::Codec::appendShared): the caller flush()es later (a pub/sub
    // hub once per loop iteration, so that a burst of messages is one write).
    void queueEncoded(evbuffer* frames);
    // A frame shared by every receiver (Codec::encodeShared), written at the next flush() from
    // its shared memory: the frames queued so since the last flush go in one sendmsg when
    // nothing else is queued (ByteStream::writeShared), and only what the socket does not take
    // is copied (or referenced). Whatever else is written meanwhile (a Close, a ping, a pong,
    // another message, a replay slice) goes after them: they join the output first.
    void queueShared(const core::SharedBytesRef& frame);
    // Whether shared frames may come compressed, and with which compressor (ws::Codec::sharedDeflate).
    const ws::SharedDeflate* sharedDeflate() const { return codec_.sharedDeflate(); }
    // What waits to be sent: the output and the shared frames queued (pubsub.queue_bytes).
    std::size_t queuedBytes() const;
    // Writes what the socket takes now; if bytes remain, onDrained follows once they drain.
    // What the app sends (flush with bytes queued since, sendEncoded, sendPing, sendPong) is traffic
    // for websocket.idle_timeout, as what the client sends is; the session's own pings are not.
    void flush();
    // Starts the close handshake with `code`; the connection closes once it is flushed.
    void close(std::uint16_t code, std::string_view reason = {});
    // Ends the session without a Close frame (what is queued is still flushed).
    void disconnect(const char* reason);
    // A Ping with at most 125 bytes of payload (false if longer or not open).
    bool sendPing(std::string_view payload);
    // An unsolicited Pong with at most 125 bytes of payload (false if longer or not open).
    bool sendPong(std::string_view payload);
    // While held, the client is not read (the app's own backpressure, on top of the socket's).
    void holdReading(bool hold);
    // The code of the client's Close frame: 1005 when it had none, 0 when none came.
    std::uint16_t closeCodeReceived() const { return codec_.closeCodeReceived(); }
    bool isOpen() const { return !ended_ && codec_.state() == ws::CodecState::Open; }

private:
    void onReadable(net::ByteStream& stream) override;
    void onEof(net::ByteStream& stream) override;
    void onError(net::ByteStream& stream, int error) override;
    void onDrained(net::ByteStream& stream) override;
    void onMessage(bool is_text, std::string_view payload) override;
    void onPong(std::string_view payload) override;
    // Whatever the codec writes goes after the shared frames queued before it: they join the
    // output then, and only then (a readable event that writes nothing leaves them batched).
    void beforeWrite() override { joinShared(); }
    void afterCodec();
    // Which of websocket.rate's limits the client went over.
    enum class RateBreach : std::uint8_t { None, Bytes, Messages };
    void overRate(RateBreach breach);
    void onLifetime();
    void end(const char* reason);
    void onPing();
    // Moves the shared frames queued (queueShared) into the output, ahead of what comes next.
    void joinShared();

    ws::SessionOwner& owner_;
    net::EventLoop& loop_;
    std::unique_ptr<net::ByteStream> client_;
    std::unique_ptr<ws::FrameTracer> tracer_;  // before codec_, which gets a pointer to it
    ws::Codec codec_;
    std::unique_ptr<EndpointApp> app_;
    net::IdleTimer idle_;
    ws::LifetimeTimer lifetime_;
    ws::RateLimiter rate_;
    ws::RateLimiter::Clock::time_point now_;  // read once per onReadable when a rate is set
    // Every websocket.ping_interval (0: never), on the loop's shared queue for that interval.
    net::IdleTimer ping_;
    std::uint64_t bytes_in_ = 0;
    std::size_t output_after_flush_ = 0;  // what flush() left queued: did anything change since
    // queueShared() since the last flush: written from the shared memory, behind the output.
    // A few per flush (the messages of a loop pass); beyond kSharedFrames they join the output.
    static constexpr std::size_t kSharedFrames = 8;
    core::SharedBytesRef shared_[kSharedFrames];
    std::size_t shared_bytes_ = 0;
    std::uint8_t shared_count_ = 0;
    // Input bytes the codec left for later (already charged): at most an incomplete frame
    // header or control frame (125 bytes), so 16 bits, beside the flags.
    std::uint16_t unread_ = 0;
    RateBreach rate_breach_ = RateBreach::None;  // the session ends over it after the codec's turn
    ws::KeepAlivePing keepalive_;  // our keep-alive ping in flight, if any (its payload tells its pong)
    bool held_ = false;  // holdReading(true)
    bool ended_ = false;
    ws::SessionLimit limit_ = ws::SessionLimit::None;
};

// `handler: echo`: every message comes back as it came (text as text, binary as binary).
std::unique_ptr<EndpointApp> makeEchoApp();

}  // namespace portico::handlers
