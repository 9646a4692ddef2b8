// SPDX-License-Identifier: Apache-2.0
#pragma once
// `mode: frames`: after the 101, each direction runs an incremental frame parser that checks
// every frame header (FrameChecker) and forwards header and payload unchanged: payloads are
// never unmasked or copied, only control frames (at most 125 bytes) are copied out to be
// judged. A violation closes the side at fault with the right code (1002, 1009, 1007 for a bad
// close reason) and the other side with 1001. Portico also pings the client every
// ping_interval and closes both sides with 1001 after idle_timeout without traffic.
//
// Close handling (RFC 6455 5.5.1): a side's Close is forwarded once; what that side sends after
// it is discarded unparsed (a server that writes an HTTP response after its Close gives its
// client a clean 1000, not a second Close). No side ever gets a second Close, and once a side was
// sent a Close nothing more is forwarded to it. When both sides have sent their Close the
// session ends (both TCP connections are closed once flushed). Once one side's Close went
// through, the other has websocket.close_timeout to answer it (RFC 6455 7.1.1/7.1.7: a closing
// handshake completes or the connection is failed): the idle timer is moved to that timeout and
// no longer touched by traffic; when it fires, the side that did not answer has its connection
// closed and the other, if it had no Close yet, gets 1001 first.
//
// A peer that closes while its side's reading is paused (the other side takes nothing):
// noticed at once (onPeerShut); its frames before the FIN still go on while the other side
// takes them, and the session ends at that peer's EOF, or as at it when the other side took no
// byte for StalledDelivery::kStall (not at idle_timeout).
//
// Limits: websocket.rate charges each direction's frames to its own RateLimiter (over it: 1008
// to the sender, 1001 to the other side); websocket.max_lifetime sends 1001 to both sides and
// waits max_lifetime_grace for their Close.
//
// websocket.trace: with a FrameTracer every frame is logged as it is parsed (data frames at
// their header, control frames once whole), and so are the frames Portico writes itself.

#include <chrono>
#include <cstdint>
#include <memory>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/net/idle_timer.h"
#include "portico/net/stream.h"
#include "portico/ws/frame_checker.h"
#include "portico/ws/frame_tracer.h"
#include "portico/ws/keepalive_ping.h"
#include "portico/ws/lifetime_timer.h"
#include "portico/ws/rate_limiter.h"
#include "portico/ws/session.h"
#include "portico/ws/stalled_delivery.h"

namespace portico::net {
class EventLoop;
}

namespace portico::ws {

class SpanSource;

class FrameRelay final : public Session, private net::StreamHandler {
public:
    // `allowed_rsv`: RSV bits the extensions in the upstream's 101 allow (allowedRsvBits()).
    // `tracer`: null unless the route has websocket.trace.
    FrameRelay(SessionOwner& owner, net::EventLoop& loop, std::unique_ptr<net::ByteStream> client,
               std::unique_ptr<net::Stream> upstream, const config::WebSocketSettings& settings,
               std::uint8_t allowed_rsv, std::unique_ptr<FrameTracer> tracer = nullptr);
    ~FrameRelay() override;

    void start() override;
    void goAway() override;
    SessionCounts counts() const override {
        return SessionCounts{up_.checker.messages(), down_.checker.messages(), up_.bytes, down_.bytes, limit_};
    }
    std::size_t queuedForUpstream() const override { return upstream_ ? upstream_->outputLength() : 0; }

    std::uint64_t messagesFromClient() const { return up_.checker.messages(); }
    std::uint64_t messagesToClient() const { return down_.checker.messages(); }

private:
    friend class SpanSource;  // frame_relay.cpp: forwards into a Direction's pending run

    // One direction: frames read from `from`, checked, and written to `to`.
    struct Direction {
        Direction(Role sender, std::uint8_t rsv, const config::WebSocketSettings& settings)
            : checker(sender, rsv, settings.max_message_bytes), rate(settings.rate, RateLimiter::Clock::now()) {}
        net::ByteStream* from = nullptr;
        net::ByteStream* to = nullptr;
        FrameChecker checker;
        RateLimiter rate;
        std::uint64_t remaining = 0;   // payload bytes of the current frame still to forward
        std::uint64_t bytes = 0;       // bytes forwarded
        std::uint16_t close_pending = 0;  // a Close for `to` waiting for the current frame's end
        bool close_seen = false;       // `from` sent a Close frame: the rest from it is discarded
        bool close_sent = false;       // `to` was sent a Close (forwarded or ours): nothing more
                                       // goes to it; the current frame from `from` is discarded
        bool discarding = false;       // the frame in progress is being discarded, not forwarded
        bool eof = false;              // `from` closed its side
        // Forwarded bytes of the read being pumped (onBytes) not written yet: one contiguous
        // run in the stream's scratch area, written to `to` at once when the pump ends or
        // before anything else is appended to `to` (a Close of ours).
        const char* run = nullptr;
        std::size_t run_len = 0;
    };

    void onReadable(net::ByteStream& stream) override;
    void onBytes(net::ByteStream& stream, const char* data, std::size_t n) override;
    void onEof(net::ByteStream& stream) override;
    void onError(net::ByteStream& stream, int error) override;
    void onDrained(net::ByteStream& stream) override;
    void onPeerShut(net::ByteStream& stream) override;

    Direction& directionFrom(const net::ByteStream& s) { return &s == client_.get() ? up_ : down_; }
    Direction& directionTo(const net::ByteStream& s) { return &s == client_.get() ? down_ : up_; }
    TraceDirection traceDirection(const Direction& d) const {
        return &d == &up_ ? TraceDirection::ClientToUpstream : TraceDirection::UpstreamToClient;
    }
    // Returns false when the session ended. pump() takes frames from d.from's input();
    // pumpFrom() from a Source (frame_relay.cpp: that input, or the bytes of one read).
    bool pump(Direction& d);
    template <class Source>
    bool pumpFrom(Direction& d, Source& src);
    // onBytes' fast path: the whole small messages at the start of a read (frame_relay.cpp).
    std::size_t takeSmallMessages(Direction& d, const char* data, std::size_t n);
    // Writes d's pending run (see Direction::run) to d.to.
    static void commitRun(Direction& d);
    // Charges `bytes` (and `messages`) to d's rate; over it, fails d's sender (returns false).
    // No rate configured: no cost per frame beyond this inline test.
    bool charge(Direction& d, std::uint64_t messages, std::uint64_t bytes, RateLimiter::Clock::time_point now) {
        return !d.rate.enabled() || chargeRated(d, messages, bytes, now);
    }
    bool chargeRated(Direction& d, std::uint64_t messages, std::uint64_t bytes, RateLimiter::Clock::time_point now);
    // `at_fault` broke the protocol (or the rate, `limit`) with `code`: it gets `code`, the other
    // side 1001.
    void fail(net::ByteStream& at_fault, std::uint16_t code, const char* reason, SessionLimit limit = SessionLimit::None);
    // Appends a Close frame to `to` unless it already got one. When a frame to it is
    // half-forwarded the Close waits for the frame's end (close_pending); if the session ends
    // first, `to` gets a TCP close only.
    void sendClose(net::ByteStream& to, std::uint16_t code);
    void writeClose(Direction& d, std::uint16_t code);
    void onLifetime();
    // `finished`: both Closes went through, or a peer closed its connection: both sockets are
    // closed at once when nothing is left to send (net::closeFinished); otherwise they linger.
    // `upstream_broken`: the upstream failed (a connection error, a protocol violation, an end
    // without a Close): the client's side is told (ByteStream::markOtherSideFailed), after our
    // Close 1001 (an HTTP/2 stream's RST_STREAM; a socket keeps its FIN). A client that failed
    // is onError's: its upstream is reset.
    void end(const char* reason, bool finished = false, bool upstream_broken = false);
    void goAwayBoth(const char* reason);  // 1001 to both sides, then end
    // A Close went through one way, the answer has not come: idle_ bounds the wait from now on.
    void awaitCloseAnswer();
    void onIdle();  // idle_timeout, or close_timeout once awaitCloseAnswer() ran
    void onPing();

    SessionOwner& owner_;
    net::EventLoop& loop_;
    std::unique_ptr<net::ByteStream> client_;  // a socket or an HTTP/2 stream
    std::unique_ptr<net::Stream> upstream_;
    Direction up_;    // client -> upstream
    Direction down_;  // upstream -> client
    // websocket.idle_timeout; once a Close went one way, websocket.close_timeout (closing_).
    net::IdleTimer idle_;
    LifetimeTimer lifetime_;
    // Every websocket.ping_interval (0: never): our ping, or the end when the last went unanswered.
    // On the loop's shared queue for that interval: no libevent timer of its own per session.
    net::IdleTimer ping_;
    std::unique_ptr<FrameTracer> tracer_;  // null: websocket.trace is off
    std::unique_ptr<StalledDelivery> stalled_;  // a peer closed behind backpressure (onPeerShut)
    KeepAlivePing keepalive_;  // our ping in flight, if any (its payload tells its pong)
    bool ended_ = false;
    SessionLimit limit_ = SessionLimit::None;
    // The closing handshake: not begun, waiting for the answer to a Close, or given up on.
    enum class Closing : std::uint8_t { No, Waiting, TimedOut } closing_ = Closing::No;
    std::uint32_t close_timeout_ms_;  // websocket.close_timeout (fits the padding after the flags)
};

}  // namespace portico::ws
