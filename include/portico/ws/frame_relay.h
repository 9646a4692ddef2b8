#pragma once
// `mode: frames`: after the 101, each direction runs an incremental frame parser that checks
// every frame header (FrameChecker) and forwards header and payload unchanged: payloads are
// never unmasked or copied, only control frames (at most 125 bytes) are copied out to be
// judged. A violation closes the side at fault with the right code (1002, 1009, 1007 for a bad
// close reason) and the other side with 1001. Portico also pings the client every
// ping_interval and closes both sides with 1001 after idle_timeout without traffic.

#include <chrono>
#include <memory>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/net/idle_timer.h"
#include "portico/net/stream.h"
#include "portico/ws/frame_checker.h"
#include "portico/ws/session.h"

namespace portico::net {
class EventLoop;
}

namespace portico::ws {

class FrameRelay final : public Session, private net::StreamHandler {
public:
    // `allowed_rsv`: RSV bits the extensions in the upstream's 101 allow (allowedRsvBits()).
    FrameRelay(SessionOwner& owner, net::EventLoop& loop, std::unique_ptr<net::Stream> client,
               std::unique_ptr<net::Stream> upstream, const config::WebSocketSettings& settings,
               std::uint8_t allowed_rsv);
    ~FrameRelay() override;

    void start() override;
    void goAway() override;

    std::uint64_t messagesFromClient() const { return up_.checker.messages(); }
    std::uint64_t messagesToClient() const { return down_.checker.messages(); }

private:
    // One direction: frames read from `from`, checked, and written to `to`.
    struct Direction {
        Direction(Role sender, std::uint8_t rsv, std::uint64_t max) : checker(sender, rsv, max) {}
        net::Stream* from = nullptr;
        net::Stream* to = nullptr;
        FrameChecker checker;
        std::uint64_t remaining = 0;   // payload bytes of the current frame still to forward
        std::uint64_t bytes = 0;       // bytes forwarded
        bool close_seen = false;       // `from` sent a Close frame
        bool eof = false;              // `from` closed its side
    };

    void onReadable(net::Stream& stream) override;
    void onEof(net::Stream& stream) override;
    void onError(net::Stream& stream, int error) override;
    void onDrained(net::Stream& stream) override;

    Direction& directionFrom(const net::Stream& s) { return &s == client_.get() ? up_ : down_; }
    Direction& directionTo(const net::Stream& s) { return &s == client_.get() ? down_ : up_; }
    // Returns false when the session failed and ended.
    bool pump(Direction& d);
    // `at_fault` broke the protocol with `code`: it gets `code`, the other side 1001.
    void fail(net::Stream& at_fault, std::uint16_t code, const char* reason);
    // Appends a Close frame to `to` unless a frame to it is half-forwarded (then TCP close only).
    void sendClose(net::Stream& to, std::uint16_t code);
    void end(const char* reason);
    void goAwayBoth(const char* reason);  // 1001 to both sides, then end
    static void onPingTimer(int, short, void* arg);

    SessionOwner& owner_;
    net::EventLoop& loop_;
    std::unique_ptr<net::Stream> client_;
    std::unique_ptr<net::Stream> upstream_;
    Direction up_;    // client -> upstream
    Direction down_;  // upstream -> client
    net::IdleTimer idle_;
    core::EventPtr ping_timer_;
    std::chrono::milliseconds ping_interval_;
    bool ping_outstanding_ = false;
    bool ended_ = false;
};

}  // namespace portico::ws
