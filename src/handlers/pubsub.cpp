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

// ---- the subscriber ---------------------------------------------------------------------------

namespace {

// A replay slice: at most this many messages per trip to the registry, so that what is
// allocated under its lock stays small.
constexpr std::size_t kReplaySliceMessages = 64;

}  // namespace

class PubSubSubscriber final : public EndpointApp, public ChannelListener {
public:
    PubSubSubscriber(PubSubHub& hub, const config::Route& route, std::string key, std::optional<std::uint64_t> since)
        : hub_(hub), route_(route), settings_(route.pubsub), key_(std::move(key)), since_(since) {}

    void onOpen(EndpointSession& session) override {
        session_ = &session;
        std::uint64_t current = 0;
        if (!hub_.registry().subscribe(key_, &hub_, settings_, current)) {
            // 1013 Try Again Later (the IANA close code registry, RFC 6455 11.7): a capacity
            // limit, not a fault of the client. The 503 before the upgrade is the usual answer; this is
            // the race where the last channel was taken meanwhile.
            session.close(ws::close_code::kTryAgainLater, "too many channels");
            session_ = nullptr;
            return;
        }
        hub_.add(key_, this);
        subscribed_ = true;
        last_seq_ = current;
        if (since_ && *since_ < current) {
            last_seq_ = *since_;
            replaying_ = true;
            pump();
        }
    }

    void onMessage(EndpointSession& session, bool is_text, std::string_view payload) override {
        if (!settings_.client_publish) {
            // RFC 6455 7.4.1: 1008 for a message that violates the endpoint's policy.
            session.close(ws::close_code::kPolicyViolation, "publishing is not allowed here");
            return;
        }
        if (payload.size() > publishLimit(route_, 0)) {
            hub_.registry().countRefusedSize();
            // RFC 6455 7.4.1: 1009 for a message too big to process.
            session.close(ws::close_code::kMessageTooBig, "message too big to publish");
            return;
        }
        // Beyond the channel's publish_rate the message is dropped (and counted), not the
        // connection: the rate is the channel's, and the sender may not be the one flooding it.
        hub_.registry().publish(key_, std::string(payload), is_text, settings_, this);
    }

    void onDrained(EndpointSession&) override { pump(); }

    void onClose(EndpointSession&) override {
        session_ = nullptr;
        if (!subscribed_) return;
        subscribed_ = false;
        hub_.remove(key_, this);
        hub_.registry().unsubscribe(key_, &hub_);
    }

    void deliver(const PubSubMessage& message, evbuffer* frames) override {
        if (!session_ || !session_->isOpen()) return;
        // While replaying, history brings this message in order (or it was not kept: a gap).
        if (replaying_ || message.seq <= last_seq_ || message.sender == this) return;
        last_seq_ = message.seq;
        if (session_->queuedBytes() + evbuffer_get_length(frames) > settings_.queue_bytes) {
            closeSlow();
            return;
        }
        session_->sendEncoded(frames);
    }

private:
    // Sends history after last_seq_ in slices, each no bigger than the room left under
    // queue_bytes; continues from onDrained. Flow control by construction, as a live
    // subscriber: the queue never holds more than queue_bytes.
    void pump() {
        while (replaying_ && session_ && session_->isOpen()) {
            const std::size_t queued = session_->queuedBytes();
            const std::size_t room = settings_.queue_bytes > queued ? settings_.queue_bytes - queued : 0;
            PubSubRegistry::ReplaySlice slice = hub_.registry().replay(key_, last_seq_, room, kReplaySliceMessages);
            if (slice.gap && !truncated_) {
                truncated_ = true;
                hub_.registry().countReplayTruncated();
            }
            last_seq_ = slice.cursor;
            if (slice.done) replaying_ = false;
            if (!slice.messages.empty()) {
                core::EvbufferPtr frames(evbuffer_new());
                for (const auto& m : slice.messages) {
                    if (m->sender == this) continue;
                    ws::Codec::encodeMessage(frames.get(), m->text, m->payload.data(), m->payload.size(), nullptr);
                }
                session_->sendEncoded(frames.get());
                continue;
            }
            if (!replaying_) return;
            if (queued == 0) {
                // The next message alone is beyond queue_bytes: what a live one would get.
                closeSlow();
                return;
            }
            // Whatever the socket takes now; onDrained follows once a blocked write drains.
            session_->flush();
            if (session_->queuedBytes() > 0) return;
        }
    }

    void closeSlow() {
        LOG_INFO("pubsub: closing a slow subscriber of %s (%zu bytes queued)", key_.c_str(), session_->queuedBytes());
        hub_.registry().countSlowClosed();
        session_->close(ws::close_code::kPolicyViolation, "subscriber too slow");
    }

    PubSubHub& hub_;
    const config::Route& route_;
    const config::PubSubSettings& settings_;
    std::string key_;
    std::optional<std::uint64_t> since_;
    EndpointSession* session_ = nullptr;
    std::uint64_t last_seq_ = 0;  // delivered (or skipped as a gap) up to here
    bool subscribed_ = false;
    bool replaying_ = false;      // history after ?since= is still being sent
    bool truncated_ = false;      // this replay missed messages that were not kept
};

std::unique_ptr<EndpointApp> makeSubscriberApp(PubSubHub& hub, const config::Route& route, std::string channel,
                                               std::optional<std::uint64_t> since) {
    std::string key = channelKey(route, channel);
    if (!hub.registry().admits(key)) return nullptr;
    return std::make_unique<PubSubSubscriber>(hub, route, std::move(key), since);
}

// ---- the worker's hub ---------------------------------------------------------------------------

PubSubHub::PubSubHub(net::EventLoop& loop, std::shared_ptr<PubSubRegistry> registry)
    : loop_(loop),
      registry_(std::move(registry)),
      inbox_event_(event_new(loop.base(), -1, 0, &PubSubHub::onInbox, this)),
      sweep_event_(event_new(loop.base(), -1, EV_PERSIST, &PubSubHub::onSweep, this)) {
    registry_->attach(this);
    net::addTimer(loop_, sweep_event_.get(), PubSubRegistry::kSweepInterval);
}

void PubSubHub::onSweep(int, short, void* arg) { static_cast<PubSubHub*>(arg)->registry_->expire(); }

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
    std::vector<ChannelListener*> listeners = it->second;
    for (ChannelListener* l : listeners) l->deliver(*message, frames.get());
}

void PubSubHub::add(const std::string& channel, ChannelListener* listener) { local_[channel].push_back(listener); }

void PubSubHub::remove(const std::string& channel, ChannelListener* listener) {
    auto it = local_.find(channel);
    if (it == local_.end()) return;
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), listener), list.end());
    if (list.empty()) local_.erase(it);
}

// ---- names and HTTP -----------------------------------------------------------------------------

std::string channelKey(const config::Route& route, std::string_view channel) {
    std::string key = route.path;
    key.push_back('\n');  // cannot appear in a path
    key.append(channel);
    return key;
}

std::string GripChannels::key(std::string_view channel) const {
    if (route) return channelKey(*route, channel);
    std::string key = "\ngrip\n";  // no route path starts with a newline
    key.append(channel);
    return key;
}

const config::PubSubSettings& GripChannels::settings() const {
    static const config::PubSubSettings kDefaults;
    return route ? route->pubsub : kDefaults;
}

GripChannels gripChannels(const config::Config& config) {
    for (const config::Route& route : config.routes)
        if (route.handler == config::HandlerKind::PubSub && !route.exact_path) return GripChannels{&route};
    return GripChannels{};
}

std::string_view channelName(const config::Route& route, std::string_view path) {
    std::string_view name = route.exact_path ? std::string_view{} : path.substr(std::min(route.path.size(), path.size()));
    if (name.empty() || name.size() > 200 || name.find('/') != std::string_view::npos) return {};
    return name;
}

std::size_t publishLimit(const config::Route& route, std::size_t max_body_bytes) {
    std::size_t limit = std::min(route.pubsub.max_message_bytes, route.pubsub.queue_bytes);
    return max_body_bytes ? std::min(limit, max_body_bytes) : limit;
}

bool publishBodyFits(PubSubHub& hub, const config::Route& route, std::size_t max_body_bytes, std::size_t total) {
    if (total <= publishLimit(route, max_body_bytes)) return true;
    hub.registry().countRefusedSize();
    return false;
}

namespace {

// RFC 9110 10.2.3: Retry-After in seconds, with 429 (RFC 6585 4) and 503 (RFC 9110 15.6.4).
http::HeaderList retryAfter(std::chrono::seconds delay) { return {{"Retry-After", std::to_string(delay.count())}}; }

}  // namespace

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
        auto result = hub.registry().publish(key, std::move(body), text, route.pubsub, nullptr);
        if (result.refused == PubSubRegistry::Refusal::Channels)
            return {503, http::writeErrorResponse(out, 503, keep_alive, retryAfter(result.retry_after))};
        if (result.refused == PubSubRegistry::Refusal::Rate)
            return {429, http::writeErrorResponse(out, 429, keep_alive, retryAfter(result.retry_after))};
        json += ",\"subscribers\":" + std::to_string(result.subscribers) + ",\"seq\":" + std::to_string(result.seq) + "}\n";
        return {200, http::writeSimpleResponse(out, 200, "application/json", json, keep_alive)};
    }
    if (method == "GET" || method == "HEAD") {
        ChannelInfo info = hub.registry().info(key);
        json += ",\"subscribers\":" + std::to_string(info.subscribers) + ",\"seq\":" + std::to_string(info.seq) +
                ",\"history\":" + std::to_string(info.history) + ",\"oldest\":" + std::to_string(info.oldest) + "}\n";
        return {200, http::writeSimpleResponse(out, 200, "application/json", json, keep_alive, {}, method == "HEAD")};
    }
    http::HeaderList allow{{"Allow", "GET, HEAD, POST"}};
    return {405, http::writeErrorResponse(out, 405, keep_alive, allow)};
}

}  // namespace portico::handlers
