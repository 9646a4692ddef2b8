// SPDX-License-Identifier: Apache-2.0
#pragma once
// `websocket: {mode: http}`: the WebSocket-over-HTTP bridge (Pushpin's protocol). Portico
// terminates the client's WebSocket itself (handlers::EndpointSession: the full codec) and the
// Bridge exchanges its events with the route's upstream as HTTP/1.1 POSTs of
// application/websocket-events (bridge/event_stream.h) over the pooled upstream connections
// (proxy::HttpExchange reading the response itself).
//
//   client handshake -> Bridge::start(): POST OPEN ---- 200 + OPEN --> owner writes the 101 and
//                                                                     starts the session
//                                                  \--- anything else -> owner relays the status
//   client messages -> queued events (<= max_batch_bytes, then reading pauses) -> next POST;
//   one request in flight at a time; its answer's events go to the client in order.
//   Keep-Alive-Interval: an empty POST after that much silence (so the app can push).
//   Client gone: one last POST with CLOSE (it sent a Close) or DISCONNECT (it vanished).
//   App down, late, 5xx, or a malformed answer: Close 1011 to the client and a log line.
//
// One Bridge per WebSocket, owned by the client connection; it outlives the session when its
// last request is still in flight, and tells its owner when it is done.
//
// Its code, by concern: src/bridge/bridge.cpp (life, client side, ends), bridge_exchange.cpp
// (the event-request cycle), bridge_grip.cpp (GRIP control and subscriptions),
// bridge_timers.cpp (deferred send, keep-alives); bounds in src/bridge/bridge_limits.h.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/bridge/event_stream.h"
#include "portico/bridge/grip.h"
#include "portico/config/config.h"
#include "portico/core/guarded.h"
#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/handlers/pubsub.h"
#include "portico/http/head.h"
#include "portico/proxy/exchange_owner.h"
#include "portico/proxy/exchange_pool.h"

namespace portico::net {
class EventLoop;
}
namespace portico::proxy {
class HttpExchange;
class UpstreamGroup;
}
namespace portico::handlers {
class EndpointApp;
class EndpointSession;
}
namespace portico::observe {
struct BridgeStats;
}

namespace portico::bridge {

// What the client connection does for its bridge.
class BridgeOwner {
public:
    // The app accepted the WebSocket: write the 101 (with `subprotocol` when not empty) and
    // start the session with Bridge::makeApp().
    virtual void onBridgeAccepted(std::string_view subprotocol) = 0;
    // The app refused the WebSocket (`body` and `content_type` are its answer's) or could not be
    // reached (a 502/504 of ours): answer the handshake with `status` and close.
    virtual void onBridgeRefused(int status, std::string_view content_type, std::string_view body) = 0;
    // After the session ended: the last request is done; the connection may finish.
    virtual void onBridgeFinished() = 0;

protected:
    ~BridgeOwner() = default;
};

// The parts of the client's handshake the bridge forwards.
struct BridgeClient {
    const http::RequestHead* handshake = nullptr;  // read in the constructor only
    std::string_view client_ip;
    std::string_view scheme = "http";
    std::uint32_t client_hash = 0;
};

class Bridge final : private proxy::ExchangeOwner, private handlers::ChannelListener {
public:
    enum class State : std::uint8_t {
        Opening,  // the OPEN request is in flight; no 101 yet
        Open,     // the session runs
        Closing,  // the session ended; its last request (CLOSE or DISCONNECT) is in flight
        Done,     // nothing more will happen
    };
    static const char* toString(State state);

    // GRIP subscriptions go to `hub` under the names of `channels` (handlers/pubsub.h). `stats`
    // (the route's, this worker's) must outlive the Bridge.
    Bridge(BridgeOwner& owner, net::EventLoop& loop, proxy::UpstreamGroup& group, const config::Route& route,
           const BridgeClient& client, handlers::PubSubHub& hub, handlers::GripChannels channels,
           observe::BridgeStats& stats);
    ~Bridge();
    Bridge(const Bridge&) = delete;
    Bridge& operator=(const Bridge&) = delete;

    // Sends the OPEN request. The answer comes through the owner.
    void start();
    // The EndpointApp to run the session with, after onBridgeAccepted. It refers to this Bridge,
    // which must outlive it.
    std::unique_ptr<handlers::EndpointApp> makeApp();
    // A request is in flight (after the session ended: the last one).
    bool busy() const;
    // The connection is going away: drop any request in flight; no callback follows.
    void abort();
    State state() const { return state_; }
    const std::string& connectionId() const { return connection_id_; }

private:
    class App;
    friend class App;
    struct Pending {
        EventType type;
        std::string content;
    };

    // From the session (through App).
    void onSessionOpen(handlers::EndpointSession& session);
    void onClientMessage(bool is_text, std::string_view payload);
    void onClientPong(std::string_view payload);
    void onSessionClosed(handlers::EndpointSession& session);

    // Every state change goes through here: it keeps the open gauge.
    void setState(State next);
    void queueEvent(EventType type, std::string_view content);
    void dropUnsent();
    void scheduleSend();
    static void onSendEvent(int, short, void* arg);
    static void onKeepAlive(int, short, void* arg);
    void sendRequest();
    void buildRequestHead();
    void finishRequest();
    void handleOpenAnswer();
    bool handleAnswer();
    bool applyAnswerHeaders();
    // Sets Meta-`name` for the next requests (an empty value removes it). False, changing
    // nothing, when the kept values would exceed kMaxMetaBytes (bridge_limits.h).
    bool setMeta(std::string name, std::string_view value);
    bool deliverEvents(std::size_t& offset);
    void fail(const char* what, const std::string& detail = {});
    void failAnswer(const char* what, const std::string& detail = {});
    // GRIP (grip.h): an app's TEXT or BINARY event with GRIP on; a control message; publishes.
    void deliverGrip(bool text, std::string_view content);
    void applyControl(std::string_view json);
    void subscribe(const std::string& channel);
    void onSubscriptionRefused(const std::string& channel);
    void unsubscribe(const std::string& channel);
    void unsubscribeAll();
    // handlers::ChannelListener
    void deliver(const pubsub::Message& message, handlers::MessageFrames& frames) override;
    void catchUp() override;
    void sentToClient();
    void armClientKeepAlive();
    static void onClientKeepAlive(int, short, void* arg);
    // GRIP send-delayed / flush-delayed: one message held for the client at a time.
    void sendDelayed(const ControlMessage& message);
    void flushDelayed();
    static void onDelayed(int, short, void* arg);
    // Sends a keep-alive's or a delayed message's content as its message-type says.
    void sendControlContent(const ControlMessage& message);
    void updateReading();
    bool hasUnoffered() const { return queue_.size() > offered_events_; }
    void done();

    // proxy::ExchangeOwner: the exchange hands us its response instead of relaying it.
    http::ResponseSink& downstream() override;
    void onExchangeComplete(bool reusable) override;
    void onExchangeFailed(int status, const char* reason) override;
    void onUpgraded(std::unique_ptr<net::Stream>, std::string) override {}
    void onUpstreamDrained() override {}
    bool consumesResponse() const override { return true; }
    bool onResponseHead(const http::ResponseHead& head) override;
    bool onResponseBody(const char* data, std::size_t length) override;

    BridgeOwner& owner_;
    observe::BridgeStats& stats_;
    net::EventLoop& loop_;
    proxy::UpstreamGroup& group_;
    const config::Route& route_;
    const config::WebSocketHttpSettings& settings_;
    std::string client_ip_;
    std::string scheme_;
    std::uint32_t client_hash_;
    std::string target_;               // the client's path and query
    http::HeaderList forwarded_;       // the client's handshake headers the app sees
    std::string connection_id_;
    std::vector<std::pair<std::string, std::string>> meta_;  // Set-Meta-* kept, sent as Meta-*
    http::RequestHead request_head_;   // of the request in flight (the exchange reads it)
    std::string request_body_;         // its events (the exchange reads and may resend it)
    proxy::ExchangePool exchanges_;    // one exchange, reused by request after request
    std::unique_ptr<proxy::HttpExchange> exchange_;  // the request in flight's, from exchanges_
    http::ResponseHead response_;      // of the answer being read
    std::string response_body_;
    std::size_t max_response_bytes_;  // an answer's body: max_batch_bytes + max_message_bytes
    std::deque<Pending> queue_;        // events waiting for the next request
    std::size_t queued_bytes_ = 0;     // their encoded size
    std::size_t in_flight_events_ = 0;   // queue_'s first events, sent in the request in flight
    std::size_t in_flight_content_ = 0;  // their content bytes
    std::size_t in_flight_bytes_ = 0;    // their encoded size
    std::size_t replayed_content_ = 0;   // content the app did not accept last time, sent again
    handlers::EndpointSession* session_ = nullptr;  // while the session runs
    core::InlineEvent send_event_;       // sends the queue once the current callback returns
    core::InlineEvent keepalive_timer_;
    std::chrono::seconds keepalive_interval_{0};  // 0 = none
    handlers::PubSubHub& hub_;
    handlers::GripChannels channels_;
    std::optional<GripExtension> grip_;          // the app turned GRIP on in its OPEN answer
    std::vector<std::string> subscriptions_;     // channel names (at most kMaxSubscriptions)
    core::AliveToken alive_ = core::makeAliveToken();  // weakly held by the backplane's callbacks
    std::optional<ControlMessage> client_keepalive_;  // GRIP keep-alive: what to send on silence
    core::InlineEvent client_keepalive_timer_;
    std::optional<ControlMessage> delayed_;      // GRIP send-delayed: sent when delayed_timer_ fires
    core::InlineEvent delayed_timer_;
    bool detached_ = false;                      // GRIP detach: the app hears nothing more
    State state_ = State::Opening;
    bool holding_reading_ = false;   // the queue is full: the client is not read
    std::size_t offered_events_ = 0;  // queue_'s first events, sent at least once: what the
                                      // app did not accept waits for news or a keep-alive
    bool last_request_ = false;      // the request in flight carries CLOSE or DISCONNECT
    bool answer_refused_ = false;    // onResponseBody refused an oversize answer (a bad answer)
};

}  // namespace portico::bridge
