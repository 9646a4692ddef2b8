#pragma once
// `handler: pubsub`: publish/subscribe channels served by Portico itself.
//
// The PubSubRegistry (pubsub_registry.h) is process-wide: it numbers each channel's messages,
// keeps their history within its bounds and knows how many subscribers each worker has per
// channel. Each worker has a PubSubHub with its local subscribers and an inbox; a publish posts the message to the inbox of every worker with
// subscribers on the channel, and that worker encodes the frame once and hands it to each of its
// subscribers by reference.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/http/head.h"
#include "portico/handlers/pubsub_registry.h"

struct evbuffer;

namespace portico::net {
class EventLoop;
}

namespace portico::handlers {

class EndpointApp;

// Anything on a worker that receives a channel's messages: a WebSocket subscriber of the pubsub
// handler, or a bridged WebSocket its app subscribed through GRIP.
class ChannelListener {
public:
    // `frames` holds `message` encoded once (an unmasked frame) for every listener of the worker.
    virtual void deliver(const PubSubMessage& message, evbuffer* frames) = 0;

protected:
    ~ChannelListener() = default;
};

// One worker's side: its subscribers by channel, and the inbox other workers post to.
class PubSubHub {
public:
    PubSubHub(net::EventLoop& loop, std::shared_ptr<PubSubRegistry> registry);
    ~PubSubHub();
    PubSubHub(const PubSubHub&) = delete;
    PubSubHub& operator=(const PubSubHub&) = delete;

    PubSubRegistry& registry() { return *registry_; }
    // Thread-safe: queue `message` for this worker's subscribers of `channel`.
    void post(const std::string& channel, MessagePtr message);

    void add(const std::string& channel, ChannelListener* listener);
    void remove(const std::string& channel, ChannelListener* listener);

private:
    static void onInbox(int, short, void* arg);
    static void onSweep(int, short, void* arg);
    void deliver(const std::string& channel, const MessagePtr& message);

    net::EventLoop& loop_;
    std::shared_ptr<PubSubRegistry> registry_;
    core::EventPtr inbox_event_;
    core::EventPtr sweep_event_;  // history_ttl and channel_idle_timeout (registry's expire())
    std::mutex inbox_mutex_;
    std::vector<std::pair<std::string, MessagePtr>> inbox_;
    std::unordered_map<std::string, std::vector<ChannelListener*>> local_;
};

// The key of a channel in the registry: the route's path and the channel name, so that two
// pubsub routes have separate namespaces.
std::string channelKey(const config::Route& route, std::string_view channel);
// GRIP channels (subscribed by bridged WebSockets, published through `handler: publish`) are the
// channels of the configuration's first `handler: pubsub` route, so that its POST /live/<name>
// reaches them too, with that route's settings (history, rate, queue_bytes); without such a
// route they are a namespace of their own with the default settings.
struct GripChannels {
    const config::Route* route = nullptr;  // the pubsub route, or none
    std::string key(std::string_view channel) const;
    const config::PubSubSettings& settings() const;
};
GripChannels gripChannels(const config::Config& config);

// The channel name: the request path after the route's prefix ("/live/room1" -> "room1").
// Empty when there is none or it is not a plain name (no '/', at most 200 bytes).
std::string_view channelName(const config::Route& route, std::string_view path);

// A WebSocket subscriber's app (EndpointApp) for `channel`, replaying history after `since`
// no faster than its socket drains (queue_bytes). nullptr when `channel` is new and
// pubsub.max_channels are known (answer 503): the hint before the upgrade; the subscription
// itself, when the session opens, can still be refused (close 1013).
std::unique_ptr<EndpointApp> makeSubscriberApp(PubSubHub& hub, const config::Route& route, std::string channel,
                                               std::optional<std::uint64_t> since);

// The largest publish `route` takes: max_message_bytes, never more than queue_bytes (a bigger
// message could reach no subscriber) nor than `max_body_bytes` (limits; 0 = no limit).
std::size_t publishLimit(const config::Route& route, std::size_t max_body_bytes);
// For a POST body being read: true while `total` bytes fit publishLimit(); false (counted as a
// refused publish: answer 413) beyond.
bool publishBodyFits(PubSubHub& hub, const config::Route& route, std::size_t max_body_bytes, std::size_t total);

// HTTP side. POST publishes `body` and answers {"channel":..,"subscribers":N,"seq":S}, or 503
// (new channel beyond max_channels) or 429 (publish_rate) with Retry-After;
// GET answers the channel info {"channel","subscribers","seq","history","oldest"}. Returns the
// status and appends a complete response to `out`.
struct PubSubReply {
    int status = 200;
    std::uint64_t bytes = 0;
};
PubSubReply servePubSubHttp(evbuffer* out, PubSubHub& hub, const config::Route& route, std::string_view method,
                            std::string_view path, std::string_view authorization, std::string body,
                            http::KeepAlive keep_alive);
// True when `authorization` (the request's Authorization value, "" when absent) carries the
// route's publish_token as "Bearer TOKEN", or the route has no token. Checked at the head of a
// publish, before its body is read.
bool publishAuthorized(const config::Route& route, std::string_view authorization);

}  // namespace portico::handlers
