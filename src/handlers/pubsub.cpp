#include "portico/handlers/pubsub.h"

#include <algorithm>
#include <charconv>
#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/core/json.h"
#include "portico/core/log.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/head.h"
#include "portico/http/simple_response.h"
#include "portico/net/event_loop.h"
#include "portico/ws/close_code.h"
#include "portico/ws/codec.h"
#include "portico/ws/utf8_validator.h"

namespace portico::handlers {

// ---- the registry -----------------------------------------------------------------------------

void PubSubRegistry::attach(PubSubHub*) {}

void PubSubRegistry::detach(PubSubHub* hub) {
    std::lock_guard lock(mutex_);
    for (auto& [name, channel] : channels_) channel.subscribers.erase(hub);
}

PubSubRegistry::PublishResult PubSubRegistry::publish(const std::string& channel, std::string payload, bool text,
                                                      std::size_t history, const void* sender) {
    auto message = std::make_shared<PubSubMessage>();
    message->text = text;
    message->payload = std::move(payload);
    message->sender = sender;
    std::vector<PubSubHub*> targets;
    PublishResult result;
    {
        std::lock_guard lock(mutex_);
        Channel& c = channels_[channel];
        message->seq = result.seq = ++c.seq;
        if (history > 0) {
            c.history.push_back(message);
            while (c.history.size() > history) c.history.pop_front();
        }
        for (auto& [hub, count] : c.subscribers) {
            if (count == 0) continue;
            targets.push_back(hub);
            result.subscribers += count;
        }
    }
    // Posting takes each hub's own lock: never while holding the registry's.
    for (PubSubHub* hub : targets) hub->post(channel, message);
    if (sender && result.subscribers > 0) result.subscribers -= 1;  // the sender gets no copy
    return result;
}

std::vector<MessagePtr> PubSubRegistry::subscribe(const std::string& channel, PubSubHub* hub,
                                                  std::optional<std::uint64_t> since, std::uint64_t& current_seq) {
    std::vector<MessagePtr> replay;
    std::lock_guard lock(mutex_);
    Channel& c = channels_[channel];
    c.subscribers[hub]++;
    current_seq = c.seq;
    if (since)
        for (const auto& m : c.history)
            if (m->seq > *since) replay.push_back(m);
    return replay;
}

void PubSubRegistry::unsubscribe(const std::string& channel, PubSubHub* hub) {
    std::lock_guard lock(mutex_);
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    auto sub = it->second.subscribers.find(hub);
    if (sub != it->second.subscribers.end() && --sub->second == 0) it->second.subscribers.erase(sub);
    // A channel with no subscribers and no history is forgotten; one with history is kept so that
    // a subscriber returning with ?since= can catch up.
    if (it->second.subscribers.empty() && it->second.history.empty()) channels_.erase(it);
}

ChannelInfo PubSubRegistry::info(const std::string& channel) {
    std::lock_guard lock(mutex_);
    ChannelInfo info;
    auto it = channels_.find(channel);
    if (it == channels_.end()) return info;
    info.seq = it->second.seq;
    info.history = it->second.history.size();
    for (auto& [hub, count] : it->second.subscribers) info.subscribers += count;
    return info;
}

void PubSubRegistry::totals(std::size_t& channels, std::size_t& subscribers) {
    std::lock_guard lock(mutex_);
    channels = channels_.size();
    subscribers = 0;
    for (auto& [name, channel] : channels_)
        for (auto& [hub, count] : channel.subscribers) subscribers += count;
}

// ---- the subscriber ---------------------------------------------------------------------------

class PubSubSubscriber final : public EndpointApp {
public:
    PubSubSubscriber(PubSubHub& hub, const config::Route& route, std::string key, std::optional<std::uint64_t> since)
        : hub_(hub), settings_(route.pubsub), key_(std::move(key)), since_(since) {}

    void onOpen(EndpointSession& session) override {
        session_ = &session;
        std::vector<MessagePtr> replay = hub_.registry().subscribe(key_, &hub_, since_, last_seq_);
        hub_.add(key_, this);
        subscribed_ = true;
        for (const auto& m : replay) {
            if (m->text) {
                session.sendText(m->payload);
            } else {
                session.sendBinary(m->payload);
            }
        }
    }

    void onMessage(EndpointSession& session, bool is_text, std::string_view payload) override {
        if (!settings_.client_publish) {
            // RFC 6455 7.4.1: 1008 for a message that violates the endpoint's policy.
            session.close(ws::close_code::kPolicyViolation, "publishing is not allowed here");
            return;
        }
        hub_.registry().publish(key_, std::string(payload), is_text, settings_.history, this);
    }

    void onClose(EndpointSession&) override {
        if (!subscribed_) return;
        subscribed_ = false;
        hub_.remove(key_, this);
        hub_.registry().unsubscribe(key_, &hub_);
        session_ = nullptr;
    }

    // `frames` holds the message encoded once for every subscriber of this worker.
    void deliver(const PubSubMessage& message, evbuffer* frames) {
        if (!session_ || !session_->isOpen()) return;
        if (message.seq <= last_seq_ || message.sender == this) return;  // replayed already / own
        last_seq_ = message.seq;
        if (session_->queuedBytes() + evbuffer_get_length(frames) > settings_.queue_bytes) {
            LOG_INFO("pubsub: closing a slow subscriber of %s (%zu bytes queued)", key_.c_str(), session_->queuedBytes());
            session_->close(ws::close_code::kPolicyViolation, "subscriber too slow");
            return;
        }
        session_->sendEncoded(frames);
    }

private:
    PubSubHub& hub_;
    const config::PubSubSettings& settings_;
    std::string key_;
    std::optional<std::uint64_t> since_;
    EndpointSession* session_ = nullptr;
    std::uint64_t last_seq_ = 0;
    bool subscribed_ = false;
};

std::unique_ptr<EndpointApp> makeSubscriberApp(PubSubHub& hub, const config::Route& route, std::string channel,
                                               std::optional<std::uint64_t> since) {
    return std::make_unique<PubSubSubscriber>(hub, route, channelKey(route, channel), since);
}

// ---- the worker's hub ---------------------------------------------------------------------------

PubSubHub::PubSubHub(net::EventLoop& loop, std::shared_ptr<PubSubRegistry> registry)
    : loop_(loop), registry_(std::move(registry)), inbox_event_(event_new(loop.base(), -1, 0, &PubSubHub::onInbox, this)) {
    registry_->attach(this);
}

PubSubHub::~PubSubHub() { registry_->detach(this); }

void PubSubHub::post(const std::string& channel, MessagePtr message) {
    bool wake = false;
    {
        std::lock_guard lock(inbox_mutex_);
        wake = inbox_.empty();
        inbox_.emplace_back(channel, std::move(message));
    }
    if (wake) event_active(inbox_event_.get(), EV_TIMEOUT, 0);  // thread-safe (evthread_use_pthreads)
}

void PubSubHub::onInbox(int, short, void* arg) {
    auto* self = static_cast<PubSubHub*>(arg);
    std::vector<std::pair<std::string, MessagePtr>> batch;
    {
        std::lock_guard lock(self->inbox_mutex_);
        batch.swap(self->inbox_);
    }
    for (const auto& [channel, message] : batch) self->deliver(channel, message);
}

void PubSubHub::deliver(const std::string& channel, const MessagePtr& message) {
    auto it = local_.find(channel);
    if (it == local_.end() || it->second.empty()) return;
    core::EvbufferPtr frames(evbuffer_new());
    // Encoded once, uncompressed (allowed under permessage-deflate), shared by reference.
    if (!ws::Codec::encodeMessage(frames.get(), message->text, message->payload.data(), message->payload.size(), nullptr))
        return;
    // A subscriber may close (and leave the list) while we deliver: iterate over a copy.
    std::vector<PubSubSubscriber*> subscribers = it->second;
    for (PubSubSubscriber* s : subscribers) s->deliver(*message, frames.get());
}

void PubSubHub::add(const std::string& channel, PubSubSubscriber* subscriber) { local_[channel].push_back(subscriber); }

void PubSubHub::remove(const std::string& channel, PubSubSubscriber* subscriber) {
    auto it = local_.find(channel);
    if (it == local_.end()) return;
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), subscriber), list.end());
    if (list.empty()) local_.erase(it);
}

// ---- names and HTTP -----------------------------------------------------------------------------

std::string channelKey(const config::Route& route, std::string_view channel) {
    std::string key = route.path;
    key.push_back('\n');  // cannot appear in a path
    key.append(channel);
    return key;
}

std::string_view channelName(const config::Route& route, std::string_view path) {
    std::string_view name = route.exact_path ? std::string_view{} : path.substr(std::min(route.path.size(), path.size()));
    if (name.empty() || name.size() > 200 || name.find('/') != std::string_view::npos) return {};
    return name;
}

bool publishAuthorized(const config::Route& route, std::string_view authorization) {
    const std::string& token = route.pubsub.publish_token;
    if (token.empty()) return true;
    constexpr std::string_view kBearer = "Bearer ";
    if (authorization.size() != kBearer.size() + token.size()) return false;
    if (!http::equalsIgnoreCase(authorization.substr(0, kBearer.size()), kBearer)) return false;
    // Constant-time comparison: the token is a secret.
    unsigned char diff = 0;
    for (std::size_t i = 0; i < token.size(); ++i)
        diff |= static_cast<unsigned char>(authorization[kBearer.size() + i] ^ token[i]);
    return diff == 0;
}

PubSubReply servePubSubHttp(evbuffer* out, PubSubHub& hub, const config::Route& route, std::string_view method,
                            std::string_view path, std::string_view authorization, std::string body,
                            http::KeepAlive keep_alive) {
    std::string_view channel = channelName(route, path);
    if (channel.empty()) return {404, http::writeErrorResponse(out, 404, keep_alive)};
    const std::string key = channelKey(route, channel);
    std::string json = "{\"channel\":";
    core::appendJsonString(json, channel);
    if (method == "POST") {
        if (!publishAuthorized(route, authorization)) {
            http::HeaderList challenge{{"WWW-Authenticate", "Bearer"}};
            return {401, http::writeErrorResponse(out, 401, keep_alive, challenge)};
        }
        // A body that is not UTF-8 goes out as a binary message: a text frame must be UTF-8.
        const bool text = ws::Utf8Validator::isValid(body);
        auto result = hub.registry().publish(key, std::move(body), text, route.pubsub.history, nullptr);
        json += ",\"subscribers\":" + std::to_string(result.subscribers) + ",\"seq\":" + std::to_string(result.seq) + "}\n";
        return {200, http::writeSimpleResponse(out, 200, "application/json", json, keep_alive)};
    }
    if (method == "GET" || method == "HEAD") {
        ChannelInfo info = hub.registry().info(key);
        json += ",\"subscribers\":" + std::to_string(info.subscribers) + ",\"seq\":" + std::to_string(info.seq) +
                ",\"history\":" + std::to_string(info.history) + "}\n";
        return {200, http::writeSimpleResponse(out, 200, "application/json", json, keep_alive, {}, method == "HEAD")};
    }
    http::HeaderList allow{{"Allow", "GET, HEAD, POST"}};
    return {405, http::writeErrorResponse(out, 405, keep_alive, allow)};
}

}  // namespace portico::handlers
