// SPDX-License-Identifier: Apache-2.0
// The event-request cycle: one POST of queued events in flight at a time, its answer read by
// the exchange into response_body_, then acted on: the OPEN answer accepts or refuses the
// WebSocket, later answers acknowledge what the app took and carry events for the client.
#include "portico/bridge/bridge.h"

#include <algorithm>
#include <charconv>
#include <event2/event.h>

#include "bridge/bridge_limits.h"
#include "portico/core/jwt.h"
#include "portico/core/log.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/header_rewrite.h"
#include "portico/net/event_loop.h"
#include "portico/observe/metrics.h"
#include "portico/proxy/http_exchange.h"

namespace portico::bridge {

namespace {

constexpr std::string_view kEventsType = "application/websocket-events";

// "application/websocket-events", any parameters and case aside.
bool isEventStream(const http::HeaderList& headers) {
    const http::Header* type = http::findHeader(headers, "Content-Type");
    if (!type) return false;
    std::string_view value = type->value;
    value = value.substr(0, value.find(';'));
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    return http::equalsIgnoreCase(value, kEventsType);
}

template <typename T>
bool parseNumber(std::string_view text, T& out) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

// ---- requests to the app ------------------------------------------------------------------

void Bridge::sendRequest() {
    if (exchange_ || state_ == State::Done) return;
    event_del(keepalive_timer_.get());
    std::string& body = request_body_;
    body.clear();
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
            // As Pushpin: no content is written for an empty PING or PONG, nor for a bare CLOSE.
            if (event.content.empty() && event.type != EventType::Text && event.type != EventType::Binary) {
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
    stats_.requests.add();
    stats_.events_to_app.add(state_ == State::Opening ? 1 : in_flight_events_);
    buildRequestHead();
    proxy::HttpExchange::Request request;
    request.head = &request_head_;
    request.client_ip = client_ip_;
    request.scheme = scheme_;
    request.client_hash = client_hash_;
    request.body_framing = http::BodyFraming::ContentLength;
    request.content_length = body.size();
    request.read_timeout = settings_.request_timeout;
    // Kept by the exchange: a request whose connect failed goes to another server (it never
    // reached the app); one that was written is never repeated.
    request.body = &request_body_;
    response_ = http::ResponseHead{};
    response_body_.clear();
    exchange_ = exchanges_.take();
    exchange_->begin(static_cast<proxy::ExchangeOwner&>(*this), group_, route_, request);
    exchange_->start();  // may fail at once (no server, every connect refused): then exchange_ is gone
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
    exchanges_.give(std::move(exchange_));
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
        answer_refused_ = true;
        return false;
    }
    response_body_.append(data, length);
    return true;
}

void Bridge::onExchangeFailed(int status, const char* reason) {
    finishRequest();
    // The exchange answers 504 for request_timeout (send or read), 502 for the rest.
    (answer_refused_ ? stats_.failed_answer : status == 504 ? stats_.failed_timeout : stats_.failed_error).add();
    answer_refused_ = false;
    switch (state_) {
        case State::Opening:
            LOG_WARN("bridge %s: connection %s: OPEN request failed: %s", route_.path.c_str(), connection_id_.c_str(), reason);
            setState(State::Done);
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
        setState(State::Done);
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
        stats_.failed_answer.add();
        setState(State::Done);
        owner_.onBridgeRefused(502, {}, {});
        return;
    }
    response_body_.erase(0, offset);
    if (offset > 0) stats_.events_from_app.add();  // the OPEN
    setState(State::Open);
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
            if (!setMeta(h.name.substr(9), h.value)) return false;
        } else if (http::equalsIgnoreCase(h.name, "Keep-Alive-Interval")) {
            long seconds = 0;
            if (!parseNumber(h.value, seconds)) return false;
            // Pushpin raises intervals under 20 s to 20 s; we take down to 1 s (a test or a
            // demo wants a short one) and up to a day; 0 or less turns it off.
            keepalive_interval_ = std::chrono::seconds(seconds <= 0 ? 0 : std::clamp(seconds, 1L, kMaxKeepAliveSeconds));
        }
    }
    return true;
}

bool Bridge::setMeta(std::string name, std::string_view value) {
    std::size_t bytes = name.size() + value.size();
    for (const auto& [kept_name, kept_value] : meta_)
        if (!http::equalsIgnoreCase(kept_name, name)) bytes += kept_name.size() + kept_value.size();
    if (!value.empty() && bytes > kMaxMetaBytes) return false;
    std::erase_if(meta_, [&](const auto& m) { return http::equalsIgnoreCase(m.first, name); });
    if (!value.empty()) meta_.emplace_back(std::move(name), value);
    return true;
}

// An answer during the session. False when it failed the WebSocket.
bool Bridge::handleAnswer() {
    if (response_.status != 200) {
        failAnswer("the app answered ", std::to_string(response_.status));
        return false;
    }
    if (!isEventStream(response_.headers)) {
        failAnswer("answer without Content-Type application/websocket-events");
        return false;
    }
    if (!applyAnswerHeaders()) {
        failAnswer("bad response headers (Keep-Alive-Interval, or Set-Meta-* over 8 KiB)");
        return false;
    }
    // Content-Bytes-Accepted: the app took only this much of the TEXT/BINARY content offered;
    // the rest stays queued and is offered again (Content-Bytes-Replayed).
    std::size_t accepted = in_flight_content_;
    if (const http::Header* h = http::findHeader(response_.headers, "Content-Bytes-Accepted")) {
        if (!parseNumber(h->value, accepted) || accepted > in_flight_content_) {
            failAnswer("Content-Bytes-Accepted over what was offered: ", h->value);
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
        stats_.events_from_app.add();
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
            case EventType::Pong:
                // As Pushpin: control frames are relayed with or without GRIP (no prefix) and
                // count as traffic for the GRIP keep-alive. One over 125 bytes cannot be a
                // control frame (RFC 6455 5.5): dropped.
                if (e.content.size() > kMaxControlBytes) {
                    LOG_INFO("bridge %s: connection %s: dropping a %s event of %zu bytes (over 125)", route_.path.c_str(),
                             connection_id_.c_str(), bridge::toString(e.type).data(), e.content.size());
                    return true;
                }
                if (e.type == EventType::Ping) {
                    session_->sendPing(e.content);
                } else {
                    session_->sendPong(e.content);
                }
                sentToClient();
                return true;
            case EventType::Close: {
                const CloseContent close = closeContent(e);
                setState(State::Done);
                ended = true;
                session_->close(close.code, close.reason);
                return false;
            }
            case EventType::Disconnect:
                setState(State::Done);
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
        failAnswer("bad event stream: ", problem ? problem : std::string(bridge::toString(r.error)) + " at byte " + std::to_string(r.offset));
        return false;
    }
    if (session_) session_->flush();
    return state_ == State::Open || state_ == State::Closing;
}


}  // namespace portico::bridge
