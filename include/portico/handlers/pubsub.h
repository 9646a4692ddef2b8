#pragma once
// `handler: pubsub`: publish/subscribe channels served by Portico itself.
//
// The PubSubRegistry is process-wide (one mutex, taken per publish and per (un)subscribe, never
// per delivery): it numbers each channel's messages, keeps their history and knows how many
// subscribers each worker has per channel. Each worker has a PubSubHub with its local
// subscribers and an inbox; a publish posts the message to the inbox of every worker with
// subscribers on the channel, and that worker encodes the frame once and hands it to each of its
// subscribers by reference.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/http/head.h"

namespace portico::net {
class EventLoop;
}

namespace portico::handlers {

class EndpointApp;
class PubSubHub;
class PubSubSubscriber;

struct PubSubMessage {
    std::uint64_t seq = 0;
    bool text = true;
    std::string payload;
    const void* sender = nullptr;  // the subscriber that published it (not sent back to it)
};
using MessagePtr = std::shared_ptr<const PubSubMessage>;

struct ChannelInfo {
    std::uint64_t seq = 0;           // the last sequence number given out
    std::size_t subscribers = 0;     // on every worker
    std::size_t history = 0;         // messages kept
};

class PubSubRegistry {
public:
    struct PublishResult {
        std::uint64_t seq = 0;
        std::size_t subscribers = 0;
    };

    void attach(PubSubHub* hub);
    void detach(PubSubHub* hub);

    // Numbers the message, keeps it in the history (at most `history` per channel) and posts it
    // to every worker with subscribers on `channel`. Thread-safe.
    PublishResult publish(const std::string& channel, std::string payload, bool text, std::size_t history,
                          const void* sender);
    // Counts a subscriber of `hub` on `channel` and returns the kept messages with seq > since
    // (none when since is absent), and the channel's current seq. Thread-safe.
    std::vector<MessagePtr> subscribe(const std::string& channel, PubSubHub* hub, std::optional<std::uint64_t> since,
                                      std::uint64_t& current_seq);
    void unsubscribe(const std::string& channel, PubSubHub* hub);
    ChannelInfo info(const std::string& channel);
    // Channels known and subscribers on every channel, for metrics.
    void totals(std::size_t& channels, std::size_t& subscribers);

private:
    struct Channel {
        std::uint64_t seq = 0;
        std::deque<MessagePtr> history;
        std::map<PubSubHub*, std::size_t> subscribers;  // per worker
    };
    std::mutex mutex_;
    std::unordered_map<std::string, Channel> channels_;
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

    void add(const std::string& channel, PubSubSubscriber* subscriber);
    void remove(const std::string& channel, PubSubSubscriber* subscriber);

private:
    static void onInbox(int, short, void* arg);
    void deliver(const std::string& channel, const MessagePtr& message);

    net::EventLoop& loop_;
    std::shared_ptr<PubSubRegistry> registry_;
    core::EventPtr inbox_event_;
    std::mutex inbox_mutex_;
    std::vector<std::pair<std::string, MessagePtr>> inbox_;
    std::unordered_map<std::string, std::vector<PubSubSubscriber*>> local_;
};

// The key of a channel in the registry: the route's path and the channel name, so that two
// pubsub routes have separate namespaces.
std::string channelKey(const config::Route& route, std::string_view channel);
// The channel name: the request path after the route's prefix ("/live/room1" -> "room1").
// Empty when there is none or it is not a plain name (no '/', at most 200 bytes).
std::string_view channelName(const config::Route& route, std::string_view path);

// A WebSocket subscriber's app (EndpointApp) for `channel`, replaying history after `since`.
std::unique_ptr<EndpointApp> makeSubscriberApp(PubSubHub& hub, const config::Route& route, std::string channel,
                                               std::optional<std::uint64_t> since);

// HTTP side. POST publishes `body` and answers {"channel":..,"subscribers":N,"seq":S};
// GET answers the channel info. Returns the status and appends a complete response to `out`.
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
