// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a `mode: tunnel` session is however its bytes move (ws::Tunnel on epoll, ws::UringTunnel
// on the worker's io_uring): a Session with its owner, its two clocks and its one end. The
// clocks are websocket.idle_timeout and websocket.max_lifetime; a tunnel knows no frame
// boundaries, so it cannot insert a Close 1001 and either clock closes both TCP connections
// (flushed first) through the tunnel's expire().

#include "portico/config/config.h"
#include "portico/net/idle_timer.h"
#include "portico/ws/lifetime_timer.h"
#include "portico/ws/session.h"

namespace portico::net {
class EventLoop;
}

namespace portico::ws {

class TunnelSession : public Session {
protected:
    TunnelSession(SessionOwner& owner, net::EventLoop& loop, const config::WebSocketSettings& settings);

    // A clock ran out (`reason`: "idle timeout", "max lifetime"): the tunnel ends, both
    // connections closed gracefully.
    virtual void expire(const char* reason) = 0;
    // Arms both clocks (the session's start()).
    void startClocks();
    // The session's end, once: false when it had ended already, else the clocks are stopped.
    bool markEnded();
    bool ended() const { return ended_; }
    // Tells the owner (once, after markEnded()) with the counts so far.
    void reportEnd(const char* reason) { owner_.onSessionEnd(reason, counts()); }
    // SessionLimit::Lifetime once max_lifetime ended the session.
    SessionLimit limit() const { return limit_; }

    net::EventLoop& loop_;
    net::IdleTimer idle_;

private:
    SessionOwner& owner_;
    LifetimeTimer lifetime_;
    bool ended_ = false;
    SessionLimit limit_ = SessionLimit::None;
};

}  // namespace portico::ws
