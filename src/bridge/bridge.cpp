// SPDX-License-Identifier: Apache-2.0
#include "portico/bridge/bridge.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "portico/core/guarded.h"
#include "portico/core/jwt.h"
#include "portico/core/log.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/header_rewrite.h"
#include "portico/net/event_loop.h"
#include "portico/proxy/http_exchange.h"
#include "portico/ws/close_code.h"

namespace portico::bridge {

namespace {

constexpr std::string_view kEventsType = "application/websocket-events";
// Set-Meta-* values kept per WebSocket: a bound on what an app can make us store and resend.
constexpr std::size_t kMaxMetaBytes = 8 * 1024;
// Pushpin's PING events are control frames: RFC 6455 5.5 bounds them to 125 bytes.
constexpr std::size_t kMaxPingBytes = 125;
// GRIP channels one WebSocket may be subscribed to at once; beyond, a subscribe is ignored.
constexpr std::size_t kMaxSubscriptions = 64;
// Seconds a Grip-Sig token is valid (its "exp").
constexpr long long kGripSigLifetime = 3600;

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

// "application/websocket-events", any parameters and case aside.
bool isEventStream(const http::HeaderList& headers) {
    const http::Header* type = http::findHeader(headers, "Content-Type");
    if (!type) return false;
    std::string_view value = type->value;
    value = value.substr(0, value.find(';'));
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    return http::equalsIgnoreCase(value, kEventsType);
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

template <typename T>
bool parseNumber(std::string_view text, T& out) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
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
               const BridgeClient& client, handlers::PubSubHub& hub, handlers::GripChannels channels)
    : owner_(owner),
      loop_(loop),
      group_(group),
      route_(route),
      settings_(route.websocket.http),
      client_ip_(client.client_ip),
      scheme_(client.scheme),
      client_hash_(client.client_hash),
      target_(client.handshake->target),
      connection_id_(newConnectionId()),
      max_response_bytes_(route.websocket.http.max_batch_bytes + route.websocket.max_message_bytes),
      send_event_(event_new(loop.base(), -1, 0, &Bridge::onSendEvent, this)),
      keepalive_timer_(event_new(loop.base(), -1, 0, &Bridge::onKeepAlive, this)),
      hub_(hub),
      channels_(channels),
      client_keepalive_timer_(event_new(loop.base(), -1, 0, &Bridge::onClientKeepAlive, this)) {
    for (const http::Header& h : client.handshake->headers)
        if (!isPrivateHeader(h.name)) forwarded_.push_back(h);
}

Bridge::~Bridge() {
    unsubscribeAll();
    if (exchange_) {
        exchange_->abort();
        loop_.deferDelete(std::shared_ptr<proxy::HttpExchange>(std::move(exchange_)));
    }
}

std::unique_ptr<handlers::EndpointApp> Bridge::makeApp() { return std::make_unique<App>(*this); }

bool Bridge::busy() const { return exchange_ != nullptr; }

void Bridge::start() { event_active(send_event_.get(), EV_TIMEOUT, 0); }

void Bridge::abort() {
    state_ = State::Done;
    session_ = nullptr;
    unsubscribeAll();
    event_del(send_event_.get());
    event_del(keepalive_timer_.get());
    event_del(client_keepalive_timer_.get());
    if (exchange_) {
        exchange_->abort();
        loop_.deferDelete(std::shared_ptr<proxy::HttpExchange>(std::move(exchange_)));
    }
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

void Bridge::onSessionClosed(handlers::EndpointSession& session) {
    session_ = nullptr;
    unsubscribeAll();
    event_del(keepalive_timer_.get());
    event_del(client_keepalive_timer_.get());
    if (state_ != State::Open) return;  // the bridge closed it (the app's CLOSE, or a failure)
    if (detached_) {
        state_ = State::Done;  // GRIP detach: the app asked to hear nothing more
        return;
    }
    // The client is gone: the app hears it once, in one last request, after what was queued.
    // A Close from the client is a CLOSE (with its code); a vanished client a DISCONNECT.
    state_ = State::Closing;
    const std::uint16_t code = session.closeCodeReceived();
    if (code == 0) {
        while (queue_.size() > in_flight_events_) {
            queued_bytes_ -= encodedSize(queue_.back().type, queue_.back().content.size());
            queue_.pop_back();
        }
        offered_events_ = std::min(offered_events_, queue_.size());
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

void Bridge::scheduleSend() {
    // Sent once the current callback returns, so that the messages of one read go together.
    if (!exchange_) event_active(send_event_.get(), EV_TIMEOUT, 0);
}

void Bridge::onSendEvent(int, short, void* arg) {
    auto* self = static_cast<Bridge*>(arg);
    if (self->exchange_) return;
    if (self->state_ == State::Opening || (self->state_ == State::Open && self->hasUnoffered())) self->sendRequest();
}

void Bridge::onKeepAlive(int, short, void* arg) {
    auto* self = static_cast<Bridge*>(arg);
    // Keep-Alive-Interval: a request after that much silence (empty when nothing is queued), so
    // that an app can answer with what it has for the client.
    if (self->state_ == State::Open && !self->exchange_ && !self->detached_) self->sendRequest();
}

// While more than max_batch_bytes wait for a request (besides the one in flight), the client is
// not read: backpressure on the client instead of memory. One message always gets in.
void Bridge::updateReading() {
    if (!session_) return;
    const std::size_t waiting = queued_bytes_ - in_flight_bytes_;
    const bool hold = waiting >= settings_.max_batch_bytes;
    if (hold != holding_reading_) {
        holding_reading_ = hold;
        session_->holdReading(hold);
    }
}

// ---- requests to the app ------------------------------------------------------------------

void Bridge::sendRequest() {
    if (exchange_ || state_ == State::Done) return;
    event_del(keepalive_timer_.get());
    std::string body;
    in_flight_events_ = 0;
    in_flight_content_ = 0;
    in_flight_bytes_ = 0;
    last_request_ = false;
    if (state_ == State::Opening) {
        appendEvent(body, EventType::Open);
    } else {
        // A batch is at most max_batch_bytes, but holds at least one event whatever its size.
        for (const Pending& event : queue_) {
            const std::size_t size = encodedSize(event.type, event.content.size());
            if (in_flight_events_ > 0 && body.size() + size > settings_.max_batch_bytes) break;
            if (event.type == EventType::Disconnect || (event.type == EventType::Close && event.content.empty())) {
                appendEvent(body, event.type);
            } else {
                appendEvent(body, event.type, event.content);
            }
            ++in_flight_events_;
            in_flight_bytes_ += size;
            if (event.type == EventType::Text || event.type == EventType::Binary) in_flight_content_ += event.content.size();
            if (event.type == EventType::Close || event.type == EventType::Disconnect) last_request_ = true;
        }
    }
    offered_events_ = std::max(offered_events_, in_flight_events_);
    buildRequestHead();
    proxy::HttpExchange::Request request;
    request.head = &request_head_;
    request.client_ip = client_ip_;
    request.scheme = scheme_;
    request.client_hash = client_hash_;
    request.body_framing = http::BodyFraming::ContentLength;
    request.content_length = body.size();
    request.read_timeout = settings_.request_timeout;
    response_ = http::ResponseHead{};
    response_body_.clear();
    exchange_ = std::make_unique<proxy::HttpExchange>(static_cast<proxy::ExchangeOwner&>(*this), loop_, group_, route_, request);
    exchange_->start();
    // start() may have failed at once (no server, connect refused): then exchange_ is gone.
    if (exchange_) {
        exchange_->sendBody(body.data(), body.size());
        exchange_->endBody();
    }
    updateReading();
}

// The head of the next request (the exchange adds Content-Length, X-Forwarded-* and the route's
// set_headers, and drops hop-by-hop fields).
void Bridge::buildRequestHead() {
    request_head_.method = "POST";
    request_head_.target = target_;
    request_head_.version_major = 1;
    request_head_.version_minor = 1;
    request_head_.headers = forwarded_;
    http::HeaderList& h = request_head_.headers;
    h.push_back({"Content-Type", std::string(kEventsType)});
    h.push_back({"Accept", std::string(kEventsType)});
    h.push_back({"Connection-Id", connection_id_});
    if (replayed_content_ > 0) h.push_back({"Content-Bytes-Replayed", std::to_string(replayed_content_)});
    for (const auto& [name, value] : meta_) h.push_back({"Meta-" + name, value});
    // As Pushpin: the gateway speaks GRIP; the app may turn it on in its OPEN answer.
    h.push_back({"Sec-WebSocket-Extensions", "grip"});
    if (!settings_.sig_key.empty()) {
        // A short-lived token an app checks to know the request came through the gateway
        // (serve-grip's isSigned, django-grip): HS256 over {"iss","exp"}.
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
        const std::string claims = R"({"iss":"portico","exp":)" + std::to_string(now.count() + kGripSigLifetime) + "}";
        h.push_back({"Grip-Sig", core::signHs256(claims, settings_.sig_key)});
    }
}

void Bridge::finishRequest() {
    if (exchange_) loop_.deferDelete(std::shared_ptr<proxy::HttpExchange>(std::move(exchange_)));
}

bool Bridge::onResponseHead(const http::ResponseHead& head) {
    response_ = head;
    return true;
}

bool Bridge::onResponseBody(const char* data, std::size_t length) {
    if (response_body_.size() + length > max_response_bytes_) {
        // A huge batch: refused before it is buffered (the exchange fails, onExchangeFailed).
        LOG_WARN("bridge %s: connection %s: the app's answer is over %zu bytes (max_batch_bytes + max_message_bytes)",
                 route_.path.c_str(), connection_id_.c_str(), max_response_bytes_);
        return false;
    }
    response_body_.append(data, length);
    return true;
}

void Bridge::onExchangeFailed(int status, const char* reason) {
    finishRequest();
    switch (state_) {
        case State::Opening:
            LOG_WARN("bridge %s: connection %s: OPEN request failed: %s", route_.path.c_str(), connection_id_.c_str(), reason);
            state_ = State::Done;
            owner_.onBridgeRefused(status ? status : 502, {}, {});
            return;
        case State::Open:
            fail("request to the app failed: ", reason);
            return;
        case State::Closing:
            LOG_DEBUG("bridge %s: connection %s: last request failed: %s", route_.path.c_str(), connection_id_.c_str(), reason);
            done();
            return;
        case State::Done:
            return;
    }
}

void Bridge::onExchangeComplete(bool) {
    finishRequest();
    switch (state_) {
        case State::Opening:
            handleOpenAnswer();
            return;
        case State::Open:
            if (!handleAnswer()) return;
            if (state_ != State::Open) return;
            if (hasUnoffered()) {
                sendRequest();
            } else if (keepalive_interval_.count() > 0) {
                net::addTimer(loop_, keepalive_timer_.get(), keepalive_interval_);
            }
            return;
        case State::Closing:
            if (last_request_) {
                done();
                return;
            }
            // The answer to a request sent before the client left: its events have nobody to go
            // to. The last request follows.
            static_cast<void>(handleAnswer());
            if (state_ == State::Closing) sendRequest();
            return;
        case State::Done:
            return;
    }
}

void Bridge::handleOpenAnswer() {
    const int status = response_.status;
    if (status != 200) {
        // The app refused the WebSocket (a 403, a redirect...): the client gets its answer.
        state_ = State::Done;
        const http::Header* type = http::findHeader(response_.headers, "Content-Type");
        owner_.onBridgeRefused(status, type ? std::string_view(type->value) : std::string_view{}, response_body_);
        return;
    }
    const char* problem = nullptr;
    std::size_t offset = 0;
    if (!isEventStream(response_.headers)) {
        problem = "200 without Content-Type application/websocket-events";
    } else if (!applyAnswerHeaders()) {
        problem = "bad response headers";
    } else {
        Event first;
        ParseResult r = parseEvent(response_body_, max_response_bytes_, first);
        if (r.error != ParseError::None || (r.consumed == 0 && !response_body_.empty())) {
            problem = r.error != ParseError::None ? bridge::toString(r.error) : "truncated event stream";
        } else if (r.consumed == 0 && keepalive_interval_.count() == 0) {
            problem = "no OPEN event";  // Pushpin: an empty answer needs a Keep-Alive-Interval
        } else if (r.consumed > 0 && first.type != EventType::Open) {
            problem = "first event is not OPEN";
        }
        offset = r.consumed;
    }
    if (problem) {
        LOG_WARN("bridge %s: connection %s: bad answer to OPEN: %s", route_.path.c_str(), connection_id_.c_str(), problem);
        state_ = State::Done;
        owner_.onBridgeRefused(502, {}, {});
        return;
    }
    response_body_.erase(0, offset);
    state_ = State::Open;
    if (const http::Header* ext = http::findHeader(response_.headers, "Sec-WebSocket-Extensions"))
        grip_ = findGripExtension(ext->value);
    std::string_view subprotocol;
    if (const http::Header* p = http::findHeader(response_.headers, "Sec-WebSocket-Protocol")) subprotocol = p->value;
    owner_.onBridgeAccepted(subprotocol);  // starts the session: onSessionOpen delivers the rest
}

// Response headers every answer may carry. False when one is malformed.
bool Bridge::applyAnswerHeaders() {
    for (const http::Header& h : response_.headers) {
        if (h.name.size() > 9 && http::equalsIgnoreCase(std::string_view(h.name).substr(0, 9), "Set-Meta-")) {
            std::string name = h.name.substr(9);
            std::erase_if(meta_, [&](const auto& m) { return http::equalsIgnoreCase(m.first, name); });
            if (!h.value.empty()) meta_.emplace_back(std::move(name), h.value);
        } else if (http::equalsIgnoreCase(h.name, "Keep-Alive-Interval")) {
            long seconds = 0;
            if (!parseNumber(h.value, seconds)) return false;
            // Pushpin raises intervals under 20 s to 20 s; we take down to 1 s (a test or a
            // demo wants a short one); 0 or less turns it off.
            keepalive_interval_ = std::chrono::seconds(seconds <= 0 ? 0 : std::max(1L, seconds));
        }
    }
    std::size_t meta_bytes = 0;
    for (const auto& [name, value] : meta_) meta_bytes += name.size() + value.size();
    if (meta_bytes > kMaxMetaBytes) return false;
    return true;
}

// An answer during the session. False when it failed the WebSocket.
bool Bridge::handleAnswer() {
    if (response_.status != 200) {
        fail("the app answered ", std::to_string(response_.status));
        return false;
    }
    if (!isEventStream(response_.headers)) {
        fail("answer without Content-Type application/websocket-events");
        return false;
    }
    if (!applyAnswerHeaders()) {
        fail("bad response headers (Keep-Alive-Interval, or Set-Meta-* over 8 KiB)");
        return false;
    }
    // Content-Bytes-Accepted: the app took only this much of the TEXT/BINARY content offered;
    // the rest stays queued and is offered again (Content-Bytes-Replayed).
    std::size_t accepted = in_flight_content_;
    if (const http::Header* h = http::findHeader(response_.headers, "Content-Bytes-Accepted")) {
        if (!parseNumber(h->value, accepted) || accepted > in_flight_content_) {
            fail("Content-Bytes-Accepted over what was offered: ", h->value);
            return false;
        }
    }
    std::size_t left = accepted;
    std::size_t events = in_flight_events_;
    while (events > 0 && !queue_.empty()) {
        Pending& front = queue_.front();
        const bool data = front.type == EventType::Text || front.type == EventType::Binary;
        if (data && front.content.size() > left) {
            queued_bytes_ -= encodedSize(front.type, front.content.size());
            front.content.erase(0, left);
            queued_bytes_ += encodedSize(front.type, front.content.size());
            left = 0;
            break;
        }
        if (data) left -= front.content.size();
        queued_bytes_ -= encodedSize(front.type, front.content.size());
        queue_.pop_front();
        --events;
        --offered_events_;
    }
    replayed_content_ = in_flight_content_ - accepted;
    in_flight_events_ = 0;
    in_flight_content_ = 0;
    in_flight_bytes_ = 0;
    updateReading();
    std::size_t offset = 0;
    return deliverEvents(offset);
}

// Acts on the events of response_body_ from `offset`, in order. False when the WebSocket ended.
bool Bridge::deliverEvents(std::size_t& offset) {
    bool ended = false;
    const char* problem = nullptr;
    const ParseResult r = parseEvents(std::string_view(response_body_).substr(offset), max_response_bytes_, [&](const Event& e) {
        if (state_ != State::Open || !session_) return false;  // nobody to deliver to
        switch (e.type) {
            case EventType::Text:
            case EventType::Binary:
                if (grip_) {
                    deliverGrip(e.type == EventType::Text, e.content);
                } else if (e.type == EventType::Text) {
                    session_->sendText(e.content);
                    sentToClient();
                } else {
                    session_->sendBinary(e.content);
                    sentToClient();
                }
                return true;
            case EventType::Ping:
                if (e.content.size() <= kMaxPingBytes) session_->sendPing(e.content);
                return true;
            case EventType::Pong:
                return true;  // the codec answers the client's pings itself
            case EventType::Close: {
                const CloseContent close = closeContent(e);
                state_ = State::Done;
                ended = true;
                session_->close(close.code, close.reason);
                return false;
            }
            case EventType::Disconnect:
                state_ = State::Done;
                ended = true;
                session_->disconnect("the app disconnected");
                return false;
            case EventType::Open:
                problem = "OPEN during the session";
                return false;
        }
        return true;
    });
    offset += r.consumed;
    if (ended) return false;
    if (r.error != ParseError::None || problem) {
        fail("bad event stream: ", problem ? problem : std::string(bridge::toString(r.error)) + " at byte " + std::to_string(r.offset));
        return false;
    }
    if (session_) session_->flush();
    return state_ == State::Open || state_ == State::Closing;
}

// ---- GRIP -----------------------------------------------------------------------------------

void Bridge::deliverGrip(bool text, std::string_view content) {
    if (text && content.substr(0, kControlPrefix.size()) == kControlPrefix) {
        applyControl(content.substr(kControlPrefix.size()));
        return;
    }
    const std::string& prefix = grip_->message_prefix;
    if (content.substr(0, prefix.size()) != prefix) {
        LOG_DEBUG("bridge %s: connection %s: dropping a message without the prefix", route_.path.c_str(), connection_id_.c_str());
        return;
    }
    content.remove_prefix(prefix.size());
    if (text) {
        session_->sendText(content);
    } else {
        session_->sendBinary(content);
    }
    sentToClient();
}

// A control message takes effect before the next event of the same answer is acted on.
void Bridge::applyControl(std::string_view json) {
    std::string error;
    const std::optional<ControlMessage> control = parseControlMessage(json, error);
    if (!control) {
        LOG_INFO("bridge %s: connection %s: ignoring a control message: %s", route_.path.c_str(), connection_id_.c_str(),
                 error.c_str());
        return;
    }
    switch (control->type) {
        case ControlMessage::Type::Subscribe:
            subscribe(control->channel);
            return;
        case ControlMessage::Type::Unsubscribe:
            unsubscribe(control->channel);
            return;
        case ControlMessage::Type::Detach:
            detached_ = true;
            event_del(keepalive_timer_.get());
            while (queue_.size() > in_flight_events_) {
                queued_bytes_ -= encodedSize(queue_.back().type, queue_.back().content.size());
                queue_.pop_back();
            }
            offered_events_ = std::min(offered_events_, queue_.size());
            if (holding_reading_ && session_) {
                holding_reading_ = false;
                session_->holdReading(false);
            }
            return;
        case ControlMessage::Type::KeepAlive:
            event_del(client_keepalive_timer_.get());
            client_keepalive_.reset();
            if (!control->content.empty() || control->message_type == ControlMessage::MessageType::Ping ||
                control->message_type == ControlMessage::MessageType::Pong) {
                client_keepalive_ = *control;
                sentToClient();  // arms the timer
            }
            return;
        case ControlMessage::Type::Close:
            if (!session_) return;
            state_ = State::Done;
            session_->close(control->code, control->reason);
            return;
        case ControlMessage::Type::SetMeta:
            std::erase_if(meta_, [&](const auto& m) { return http::equalsIgnoreCase(m.first, control->name); });
            if (!control->value.empty()) meta_.emplace_back(control->name, control->value);
            return;
    }
}

// Through the worker's backplane, as a pubsub subscriber: with a Redis backplane the app's
// channels span every node. Both backplanes refuse (max_channels) before subscribe() returns;
// the position they answer later is of no use here (GRIP replays nothing).
void Bridge::subscribe(const std::string& channel) {
    if (std::find(subscriptions_.begin(), subscriptions_.end(), channel) != subscriptions_.end()) return;
    if (subscriptions_.size() >= kMaxSubscriptions) {
        LOG_WARN("bridge %s: connection %s: over %zu subscriptions, \"%s\" refused", route_.path.c_str(),
                 connection_id_.c_str(), kMaxSubscriptions, channel.c_str());
        return;
    }
    const std::string key = channels_.key(channel);
    // In the hub first, as a pubsub subscriber: what the backplane carries from now on is ours.
    hub_.add(key, this);
    subscriptions_.push_back(channel);
    hub_.backplane().subscribe(key, channels_.settings(),
                               core::guardedBy(alive_, [this, channel](bool ok, const pubsub::Position&) {
                                   if (!ok) onSubscriptionRefused(channel);
                               }));
}

void Bridge::onSubscriptionRefused(const std::string& channel) {
    LOG_WARN("bridge %s: connection %s: subscription to \"%s\" refused: pubsub.max_channels reached", route_.path.c_str(),
             connection_id_.c_str(), channel.c_str());
    auto it = std::find(subscriptions_.begin(), subscriptions_.end(), channel);
    if (it == subscriptions_.end()) return;
    hub_.remove(channels_.key(channel), this);
    subscriptions_.erase(it);  // nothing counted: no unsubscribe()
}

void Bridge::unsubscribe(const std::string& channel) {
    auto it = std::find(subscriptions_.begin(), subscriptions_.end(), channel);
    if (it == subscriptions_.end()) return;
    const std::string key = channels_.key(channel);
    hub_.remove(key, this);
    hub_.backplane().unsubscribe(key);
    subscriptions_.erase(it);
}

void Bridge::unsubscribeAll() {
    while (!subscriptions_.empty()) unsubscribe(subscriptions_.back());
}

// A message published to a channel the app subscribed this WebSocket to.
void Bridge::deliver(const pubsub::Message&, handlers::MessageFrames& message_frames) {
    if (!session_ || !session_->isOpen()) return;
    evbuffer* frames = message_frames.get(false);
    // As a pubsub subscriber: a client that does not read is closed rather than buffered for.
    const std::size_t limit = channels_.settings().queue_bytes;
    if (session_->queuedBytes() + evbuffer_get_length(frames) > limit) {
        LOG_INFO("bridge %s: connection %s: closing a slow subscriber (%zu bytes queued)", route_.path.c_str(),
                 connection_id_.c_str(), session_->queuedBytes());
        hub_.registry().countSlowClosed();
        handlers::EndpointSession* session = session_;
        session->close(ws::close_code::kPolicyViolation, "subscriber too slow");
        return;
    }
    session_->sendEncoded(frames);
    sentToClient();
}

// GRIP channels carry no position (Pushpin's neither): a bridged WebSocket gets what is
// published while it is subscribed, and what a reconnecting backplane missed is not replayed.
void Bridge::catchUp() {}

// GRIP keep-alive: after `timeout` seconds without a message to the client, send it one.
void Bridge::sentToClient() {
    if (client_keepalive_) net::addTimer(loop_, client_keepalive_timer_.get(), std::chrono::seconds(client_keepalive_->timeout));
}

void Bridge::onClientKeepAlive(int, short, void* arg) {
    auto* self = static_cast<Bridge*>(arg);
    if (!self->session_ || !self->client_keepalive_) return;
    const ControlMessage& k = *self->client_keepalive_;
    switch (k.message_type) {
        case ControlMessage::MessageType::Text: self->session_->sendText(k.content); break;
        case ControlMessage::MessageType::Binary: self->session_->sendBinary(k.content); break;
        case ControlMessage::MessageType::Ping:
        case ControlMessage::MessageType::Pong:
            // The codec sends pings only; an unsolicited pong is a ping the client answers.
            self->session_->sendPing(std::string_view(k.content).substr(0, kMaxPingBytes));
            break;
    }
    self->session_->flush();
    self->sentToClient();
}

void Bridge::fail(const char* what, const std::string& detail) {
    LOG_WARN("bridge %s: connection %s: %s%s; closing the WebSocket 1011", route_.path.c_str(), connection_id_.c_str(),
             what, detail.c_str());
    const bool had_session = session_ != nullptr;
    const bool closing = state_ == State::Closing;  // the session is over; the owner waits for us
    state_ = State::Done;
    event_del(keepalive_timer_.get());
    if (had_session) {
        handlers::EndpointSession* session = session_;
        session_ = nullptr;
        // RFC 6455 7.4.1: 1011, the server met a condition that kept it from fulfilling the request.
        session->close(ws::close_code::kInternalError);
    }
    if (closing) owner_.onBridgeFinished();
}

void Bridge::done() {
    state_ = State::Done;
    owner_.onBridgeFinished();
}

net::Stream& Bridge::clientStream() {
    // Unreachable: consumesResponse() is true, so the exchange relays nothing to a client.
    std::abort();
}

}  // namespace portico::bridge
