// SPDX-License-Identifier: Apache-2.0
// The Bridge's life and its client side: construction, the session's events (messages queued
// for the app, the client leaving), reading paused while the queue is full, and the ends
// (fail, done, abort). The event-request cycle is in bridge_exchange.cpp, GRIP in
// bridge_grip.cpp, the timers in bridge_timers.cpp.
#include "portico/bridge/bridge.h"

#include <algorithm>
#include <cstdlib>
#include <event2/event.h>
#include <openssl/rand.h>

#include "portico/core/log.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/header_rewrite.h"
#include "portico/net/event_loop.h"
#include "portico/observe/metrics.h"
#include "portico/proxy/http_exchange.h"
#include "portico/ws/close_code.h"

namespace portico::bridge {

namespace {

// Headers of the client's handshake that the app does not get: ours to set (the event stream's
// framing, Connection-Id, Meta-*, Grip-*), or the WebSocket handshake Portico answered itself.
bool isPrivateHeader(std::string_view name) {
    static constexpr std::string_view kDropped[] = {
        "Sec-WebSocket-Key",   "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Accept",
        "Connection-Id",       "Content-Length",        "Content-Type",             "Transfer-Encoding",
        "Expect",              "Grip-Sig",              "Grip-Feature",             "Content-Bytes-Replayed"};
    for (std::string_view dropped : kDropped)
        if (http::equalsIgnoreCase(name, dropped)) return true;
    return name.size() >= 5 && http::equalsIgnoreCase(name.substr(0, 5), "Meta-");
}

std::string newConnectionId() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
        // Never seen in practice; uniqueness still holds within the process.
        static std::uint64_t counter = 0;
        std::uint64_t n = ++counter;
        for (unsigned char& b : bytes) b = static_cast<unsigned char>(n >>= 1);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id;
    id.reserve(32);
    for (unsigned char b : bytes) {
        id += kHex[b >> 4];
        id += kHex[b & 0xF];
    }
    return id;
}

}  // namespace

// The session's view of the bridge: EndpointSession owns this adapter, the connection owns
// the Bridge (which must outlive the session's last callback: it may have a request to finish).
class Bridge::App final : public handlers::EndpointApp {
public:
    explicit App(Bridge& bridge) : bridge_(bridge) {}
    void onOpen(handlers::EndpointSession& session) override { bridge_.onSessionOpen(session); }
    void onMessage(handlers::EndpointSession&, bool is_text, std::string_view payload) override {
        bridge_.onClientMessage(is_text, payload);
    }
    void onClose(handlers::EndpointSession& session) override { bridge_.onSessionClosed(session); }
    void onPong(handlers::EndpointSession&, std::string_view payload) override { bridge_.onClientPong(payload); }

private:
    Bridge& bridge_;
};

const char* Bridge::toString(State state) {
    switch (state) {
        case State::Opening: return "opening";
        case State::Open: return "open";
        case State::Closing: return "closing";
        case State::Done: return "done";
    }
    return "?";
}

Bridge::Bridge(BridgeOwner& owner, net::EventLoop& loop, proxy::UpstreamGroup& group, const config::Route& route,
               const BridgeClient& client, handlers::PubSubHub& hub, handlers::GripChannels channels,
               observe::BridgeStats& stats)
    : owner_(owner),
      stats_(stats),
      loop_(loop),
      group_(group),
      route_(route),
      settings_(route.websocket.http),
      client_ip_(client.client_ip),
      scheme_(client.scheme),
      client_hash_(client.client_hash),
      target_(client.handshake->target),
      connection_id_(newConnectionId()),
      exchanges_(loop, 1),
      max_response_bytes_(route.websocket.http.max_batch_bytes + route.websocket.max_message_bytes),
      send_event_(loop.base(), -1, 0, &Bridge::onSendEvent, this),
      keepalive_timer_(loop.base(), -1, 0, &Bridge::onKeepAlive, this),
      hub_(hub),
      channels_(channels),
      client_keepalive_timer_(loop.base(), -1, 0, &Bridge::onClientKeepAlive, this),
      delayed_timer_(loop.base(), -1, 0, &Bridge::onDelayed, this) {
    for (const http::Header& h : client.handshake->headers)
        if (!isPrivateHeader(h.name)) forwarded_.push_back(h);
}

Bridge::~Bridge() {
    setState(State::Done);
    unsubscribeAll();
    exchanges_.give(std::move(exchange_));
}

void Bridge::setState(State next) {
    if (state_ == State::Open && next != State::Open) stats_.open.sub();
    if (state_ != State::Open && next == State::Open) stats_.open.add();
    state_ = next;
}

std::unique_ptr<handlers::EndpointApp> Bridge::makeApp() { return std::make_unique<App>(*this); }

bool Bridge::busy() const { return exchange_ != nullptr; }

void Bridge::start() { event_active(send_event_.get(), EV_TIMEOUT, 0); }

void Bridge::abort() {
    setState(State::Done);
    session_ = nullptr;
    unsubscribeAll();
    event_del(send_event_.get());
    event_del(keepalive_timer_.get());
    event_del(client_keepalive_timer_.get());
    event_del(delayed_timer_.get());
    exchanges_.give(std::move(exchange_));
}

// ---- events from the client ---------------------------------------------------------------

void Bridge::onSessionOpen(handlers::EndpointSession& session) {
    session_ = &session;
    // The OPEN answer may carry events after its OPEN: they go to the client first.
    std::size_t offset = 0;
    if (!deliverEvents(offset)) return;
    response_body_.clear();
    if (state_ == State::Open && keepalive_interval_.count() > 0)
        net::addTimer(loop_, keepalive_timer_.get(), keepalive_interval_);
}

void Bridge::onClientMessage(bool is_text, std::string_view payload) {
    if (state_ != State::Open || detached_) return;
    queueEvent(is_text ? EventType::Text : EventType::Binary, payload);
    scheduleSend();
}

// As Pushpin: the client's pongs reach the app as PONG events (the answers to its PING events,
// or the client's own heartbeat). The client's pings do not: the codec answers them at once,
// which spares the app a request per ping (RFC 6455 5.5.2 asks for a prompt answer).
void Bridge::onClientPong(std::string_view payload) {
    if (state_ != State::Open || detached_) return;
    queueEvent(EventType::Pong, payload);
    scheduleSend();
}

void Bridge::onSessionClosed(handlers::EndpointSession& session) {
    session_ = nullptr;
    unsubscribeAll();
    event_del(keepalive_timer_.get());
    event_del(client_keepalive_timer_.get());
    event_del(delayed_timer_.get());
    if (state_ != State::Open) return;  // the bridge closed it (the app's CLOSE, or a failure)
    if (detached_) {
        setState(State::Done);  // GRIP detach: the app asked to hear nothing more
        return;
    }
    // The client is gone: the app hears it once, in one last request, after what was queued.
    // A Close from the client is a CLOSE (with its code); a vanished client a DISCONNECT.
    setState(State::Closing);
    const std::uint16_t code = session.closeCodeReceived();
    if (code == 0) {
        dropUnsent();
        queueEvent(EventType::Disconnect, {});
    } else {
        // RFC 6455 7.1.5: a Close without a code is reported as 1005; the app gets a bare CLOSE.
        std::string content;
        if (code != ws::close_code::kNoStatus) {
            content.push_back(static_cast<char>(code >> 8));
            content.push_back(static_cast<char>(code & 0xFF));
        }
        queueEvent(EventType::Close, content);
    }
    if (!exchange_) sendRequest();
}

void Bridge::queueEvent(EventType type, std::string_view content) {
    queue_.push_back(Pending{type, std::string(content)});
    queued_bytes_ += encodedSize(type, content.size());
    updateReading();
}

// What the app was never offered is forgotten; the request in flight keeps its events.
void Bridge::dropUnsent() {
    while (queue_.size() > in_flight_events_) {
        queued_bytes_ -= encodedSize(queue_.back().type, queue_.back().content.size());
        queue_.pop_back();
    }
    offered_events_ = std::min(offered_events_, queue_.size());
}

// While more than max_batch_bytes wait for a request (besides the one in flight), the client is
// not read: backpressure on the client instead of memory. One message always gets in.
void Bridge::updateReading() {
    if (!session_) return;
    const std::size_t waiting = queued_bytes_ - in_flight_bytes_;
    const bool hold = waiting >= settings_.max_batch_bytes;
    if (hold != holding_reading_) {
        holding_reading_ = hold;
        if (hold) stats_.reading_paused.add();
        session_->holdReading(hold);
    }
}

// ---- the ends ------------------------------------------------------------------------------

void Bridge::fail(const char* what, const std::string& detail) {
    LOG_WARN("bridge %s: connection %s: %s%s; closing the WebSocket 1011", route_.path.c_str(), connection_id_.c_str(),
             what, detail.c_str());
    const bool had_session = session_ != nullptr;
    const bool closing = state_ == State::Closing;  // the session is over; the owner waits for us
    setState(State::Done);
    event_del(keepalive_timer_.get());
    if (had_session) {
        handlers::EndpointSession* session = session_;
        session_ = nullptr;
        // RFC 6455 7.4.1: 1011, the server met a condition that kept it from fulfilling the request.
        session->close(ws::close_code::kInternalError);
    }
    if (closing) owner_.onBridgeFinished();
}

// An answer from the app that ends the WebSocket (a status, headers or events we cannot take).
void Bridge::failAnswer(const char* what, const std::string& detail) {
    stats_.failed_answer.add();
    fail(what, detail);
}

void Bridge::done() {
    setState(State::Done);
    owner_.onBridgeFinished();
}

http::ResponseSink& Bridge::downstream() {
    // Unreachable: consumesResponse() is true, so the exchange relays nothing to a client.
    std::abort();
}

}  // namespace portico::bridge
