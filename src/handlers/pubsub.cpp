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

// Wraps `callback` so that it does nothing once `alive` has expired (its owner has gone).
template <typename F>
auto guardedBy(const std::shared_ptr<char>& alive, F callback) {
    return [alive = std::weak_ptr<char>(alive), callback = std::move(callback)](auto&&... args) mutable {
        if (!alive.expired()) callback(std::forward<decltype(args)>(args)...);
    };
}

}  // namespace

class PubSubSubscriber final : public EndpointApp {
public:
    PubSubSubscriber(PubSubHub& hub, const config::Route& route, std::string key, std::optional<std::uint64_t> since)
        : hub_(hub), route_(route), settings_(route.pubsub), key_(std::move(key)), since_(since) {}

    void onOpen(EndpointSession& session) override {
        session_ = &session;
        hub_.backplane().subscribe(key_, settings_, guardedBy(alive_, [this](bool ok, const pubsub::Position& top) {
            onSubscribed(ok, top);
        }));
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
        pubsub::PublishRequest request;
        request.channel = key_;
        request.payload = std::string(payload);
        request.text = is_text;
        request.settings = &settings_;
        request.sender = this;
        hub_.backplane().publish(std::move(request), [](const pubsub::PublishResult&) {});
    }

    void onDrained(EndpointSession&) override { pump(); }

    void onClose(EndpointSession&) override {
        session_ = nullptr;
        alive_.reset();  // callbacks still held by the backplane find nobody
        if (!subscribed_) return;
        subscribed_ = false;
        hub_.remove(key_, this);
        hub_.backplane().unsubscribe(key_);
    }

    // `frames` holds the message encoded once for every subscriber of this worker.
    void deliver(const pubsub::Message& message, evbuffer* frames) {
        if (!session_ || !session_->isOpen()) return;
        // While replaying, history brings this message in order (or it was not kept: a gap).
        if (replaying_ || message.seq <= last_seq_) return;
        if (message.seq > last_seq_ + 1) {
            // Messages in between did not come live (a backplane that lost them, or an answer
            // that crossed this one): they come from history, then this one.
            catchUp();
            return;
        }
        last_seq_ = message.seq;
        if (message.sender == this) return;
        if (session_->queuedBytes() + evbuffer_get_length(frames) > settings_.queue_bytes) {
            closeSlow();
            return;
        }
        session_->sendEncoded(frames);
    }

    // Whatever was published after last_seq_ comes from history.
    void catchUp() {
        if (!subscribed_ || replaying_) return;
        replaying_ = true;
        pump();
    }

private:
    void onSubscribed(bool ok, const pubsub::Position& top) {
        if (!session_) return;
        if (!ok) {
            // 1013 Try Again Later (the IANA close code registry, RFC 6455 11.7): a capacity
            // limit, not a fault of the client. The 503 before the upgrade is the usual answer; this
            // is the race where the last channel was taken meanwhile.
            session_->close(ws::close_code::kTryAgainLater, "too many channels");
            session_ = nullptr;
            return;
        }
        hub_.add(key_, this);
        subscribed_ = true;
        last_seq_ = top.seq;
        if (since_ && *since_ < top.seq) {
            last_seq_ = *since_;
            catchUp();
        }
    }

    // Sends history after last_seq_ in slices, each no bigger than the room left under
    // queue_bytes; continues from onDrained. Flow control by construction, as a live
    // subscriber: the queue never holds more than queue_bytes. A slice may be answered before
    // replay() returns (in-process) or later: pumping_ turns the first case into a loop.
    void pump() {
        if (pumping_) {
            pump_again_ = true;
            return;
        }
        pumping_ = true;
        do {
            pump_again_ = false;
            requestSlice();
        } while (pump_again_);
        pumping_ = false;
    }

    void requestSlice() {
        if (!replaying_ || slice_pending_ || !session_ || !session_->isOpen()) return;
        const std::size_t queued = session_->queuedBytes();
        pubsub::ReplayRequest request;
        request.channel = key_;
        request.after = last_seq_;
        request.max_bytes = settings_.queue_bytes > queued ? settings_.queue_bytes - queued : 0;
        request.max_messages = kReplaySliceMessages;
        slice_pending_ = true;
        hub_.backplane().replay(request, guardedBy(alive_, [this](pubsub::ReplaySlice& slice) { onSlice(slice); }));
    }

    void onSlice(pubsub::ReplaySlice& slice) {
        slice_pending_ = false;
        if (!session_ || !session_->isOpen()) return;
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
            pump();
            return;
        }
        if (!replaying_) return;
        if (session_->queuedBytes() == 0) {
            // The next message alone is beyond queue_bytes: what a live one would get.
            closeSlow();
            return;
        }
        // Whatever the socket takes now; onDrained follows once a blocked write drains.
        session_->flush();
        if (session_->queuedBytes() == 0) pump();
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
    std::shared_ptr<char> alive_ = std::make_shared<char>();  // weakly held by pending callbacks
    EndpointSession* session_ = nullptr;
    std::uint64_t last_seq_ = 0;  // delivered (or skipped as a gap) up to here
    bool subscribed_ = false;
    bool replaying_ = false;      // history after last_seq_ is being sent
    bool slice_pending_ = false;  // a replay() has not answered yet
    bool pumping_ = false;
    bool pump_again_ = false;
    bool truncated_ = false;      // this replay missed messages that were not kept
};

std::unique_ptr<EndpointApp> makeSubscriberApp(PubSubHub& hub, const config::Route& route, std::string channel,
                                               std::optional<std::uint64_t> since) {
    std::string key = channelKey(route, channel);
    if (!hub.backplane().admits(key)) return nullptr;
    return std::make_unique<PubSubSubscriber>(hub, route, std::move(key), since);
}

// ---- the worker's hub ---------------------------------------------------------------------------

PubSubHub::PubSubHub(net::EventLoop& loop, std::unique_ptr<pubsub::Backplane> backplane)
    : loop_(loop), backplane_(std::move(backplane)) {
    backplane_->start(*this);
}

PubSubHub::~PubSubHub() = default;

void PubSubHub::onBackplaneMessage(const std::string& channel, const pubsub::MessagePtr& message) {
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

void PubSubHub::onBackplaneResync() {
    std::vector<PubSubSubscriber*> all;
    for (auto& [channel, list] : local_) all.insert(all.end(), list.begin(), list.end());
    for (PubSubSubscriber* s : all) s->catchUp();
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

void servePubSubHttp(PubSubHub& hub, const config::Route& route, PubSubHttpRequest request, PubSubAnswerDone done) {
    std::string_view channel = channelName(route, request.path);
    if (channel.empty()) return done(PubSubAnswer{404, {}, {}});
    std::string key = channelKey(route, channel);
    std::string json = "{\"channel\":";
    core::appendJsonString(json, channel);
    if (request.method == "POST") {
        if (!publishAuthorized(route, request.authorization))
            return done(PubSubAnswer{401, {}, {{"WWW-Authenticate", "Bearer"}}});
        pubsub::PublishRequest publish;
        publish.channel = std::move(key);
        // A body that is not UTF-8 goes out as a binary message: a text frame must be UTF-8.
        publish.text = ws::Utf8Validator::isValid(request.body);
        publish.payload = std::move(request.body);
        publish.settings = &route.pubsub;
        hub.backplane().publish(std::move(publish), [json = std::move(json), done = std::move(done)](
                                                        const pubsub::PublishResult& result) mutable {
            switch (result.refused) {
                case pubsub::Refusal::Channels:
                case pubsub::Refusal::Unavailable:
                    return done(PubSubAnswer{503, {}, retryAfter(result.retry_after)});
                case pubsub::Refusal::Rate: return done(PubSubAnswer{429, {}, retryAfter(result.retry_after)});
                case pubsub::Refusal::None: break;
            }
            json += ",\"subscribers\":" + std::to_string(result.subscribers) + ",\"seq\":" + std::to_string(result.seq) +
                    "}\n";
            done(PubSubAnswer{200, std::move(json), {}});
        });
        return;
    }
    if (request.method == "GET" || request.method == "HEAD") {
        hub.backplane().info(key, [json = std::move(json), done = std::move(done)](const pubsub::ChannelInfo& info,
                                                                                  bool available) mutable {
            if (!available) return done(PubSubAnswer{503, {}, retryAfter(std::chrono::seconds(1))});
            json += ",\"subscribers\":" + std::to_string(info.subscribers) + ",\"seq\":" + std::to_string(info.seq) +
                    ",\"history\":" + std::to_string(info.history) + ",\"oldest\":" + std::to_string(info.oldest) +
                    "}\n";
            done(PubSubAnswer{200, std::move(json), {}});
        });
        return;
    }
    done(PubSubAnswer{405, {}, {{"Allow", "GET, HEAD, POST"}}});
}

std::uint64_t writePubSubAnswer(evbuffer* out, const PubSubAnswer& answer, http::KeepAlive keep_alive, bool head_only) {
    if (answer.status != 200) return http::writeErrorResponse(out, answer.status, keep_alive, answer.headers);
    return http::writeSimpleResponse(out, 200, "application/json", answer.json, keep_alive, answer.headers, head_only);
}

}  // namespace portico::handlers
