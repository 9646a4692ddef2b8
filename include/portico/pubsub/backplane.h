// SPDX-License-Identifier: Apache-2.0
#pragma once
// The seam between the pubsub handler and whatever carries its channels: one Backplane per worker.
//
// A backplane numbers messages (seq within an epoch), keeps their history, and delivers every
// message of the channels this worker subscribed to the worker's BackplaneSink. Two
// implementations: LocalBackplane (the in-process registry, channels within this process) and
// RedisBackplane (channels across every node that shares a Redis).
//
// Every `done` callback runs on the worker's thread, exactly once: before the call returns (the
// in-process backplane) or later (Redis). A backplane being destroyed drops the callbacks it
// still holds without calling them, so a caller whose object may die first guards its callback
// with a weak token (see PubSubSubscriber) rather than relying on a late call.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "portico/config/config.h"
#include "portico/pubsub/message.h"

namespace portico::observe {
struct ProcessInfo;
}
namespace portico::net {
class EventLoop;
}

namespace portico::pubsub {

class PubSubRegistry;

// The worker's side, told about what comes from the backplane.
class BackplaneSink {
public:
    virtual ~BackplaneSink() = default;
    // A message of a channel this worker subscribed to, in seq order per channel (a message
    // may be missing: the subscriber sees the gap by its seq and catches up from history).
    virtual void onBackplaneMessage(const std::string& channel, const MessagePtr& message) = 0;
    // Messages of `channel` may have been missed (its Redis shard reconnected, or its slot
    // moved): its subscribers catch up from history, or learn that it was lost.
    virtual void onBackplaneResync(const std::string& channel) = 0;
};

enum class Refusal {
    None,
    Channels,     // a new channel beyond pubsub.max_channels (503)
    Rate,         // beyond the channel's publish_rate (429)
    Unavailable,  // the backplane cannot take it now (503: not known to be published)
};

struct PublishRequest {
    std::string channel;  // the channel key (channelKey())
    std::string payload;
    bool text = true;
    const config::PubSubSettings* settings = nullptr;  // the route's; outlives the call
    const void* sender = nullptr;  // a publishing subscriber, or nullptr for HTTP
    std::string idempotency_key;  // "" = none
};

struct PublishResult {
    Refusal refused = Refusal::None;
    std::uint64_t seq = 0;
    std::string epoch;
    std::size_t subscribers = 0;          // this node's subscribers that get it
    bool duplicate = false;               // the idempotency key was seen: not delivered again
    std::chrono::seconds retry_after{0};  // when refused: when to try again (at least 1 s)
};

struct ReplayRequest {
    std::string channel;
    std::uint64_t after = 0;    // replay messages with seq > after
    std::string epoch;          // of `after`; "" = the current one
    std::size_t max_bytes = 0;  // payloads plus a frame header each
    std::size_t max_messages = 0;
    config::Duration history_ttl{0};  // the route's: older messages count as not kept (Redis)
};

struct ReplaySlice {
    std::vector<MessagePtr> messages;  // kept messages with seq > after, in order
    std::uint64_t cursor = 0;          // replay from here next time (the last seq covered)
    std::string epoch;                 // the channel's current epoch
    std::uint64_t top = 0;             // the channel's last seq in that epoch
    bool gap = false;                  // messages after `after` were published but not kept
    bool lost = false;                 // `epoch` is not the one asked for: the history is gone
    bool done = false;                 // nothing after `cursor` (the subscriber is live)
    bool unavailable = false;          // the backplane could not answer (try again later)
    std::size_t next_bytes = 0;        // when not done: the size of the next message
};

struct Position {
    std::uint64_t seq = 0;
    std::string epoch;
};

class Backplane {
public:
    using PublishDone = std::function<void(const PublishResult&)>;
    // ok false: a new channel beyond max_channels (nothing counted). Otherwise every message
    // after `top` will reach the sink.
    using SubscribeDone = std::function<void(bool ok, const Position& top)>;
    using ReplayDone = std::function<void(ReplaySlice&)>;
    using InfoDone = std::function<void(const ChannelInfo&, bool available)>;

    virtual ~Backplane() = default;

    // Where this worker's messages go; called once by the worker's hub before anything else.
    virtual void start(BackplaneSink& sink) = 0;
    // Numbers `request`'s message, keeps it and sends it to every subscriber of the channel.
    virtual void publish(PublishRequest request, PublishDone done) = 0;
    // One more subscriber of `channel` on this worker.
    virtual void subscribe(const std::string& channel, const config::PubSubSettings& settings, SubscribeDone done) = 0;
    // One subscriber fewer (each successful subscribe is matched by one unsubscribe).
    virtual void unsubscribe(const std::string& channel) = 0;
    // True when `channel` exists or there is room for one more (a hint before an upgrade).
    virtual bool admits(const std::string& channel) = 0;
    // The next part of a history replay.
    virtual void replay(const ReplayRequest& request, ReplayDone done) = 0;
    virtual void info(const std::string& channel, InfoDone done) = 0;

    // The local bookkeeping both implementations share: subscriber counts, caps, rate buckets
    // and the pub/sub counters.
    virtual PubSubRegistry& registry() = 0;
    // Fills the backplane's part of metrics and status. Thread-safe.
    virtual void stats(observe::ProcessInfo& info) = 0;
    // For `handler: health`: "up", "partial" (some Redis shards down) or "down" for a remote
    // backplane; nullptr in-process.
    virtual const char* health() const { return nullptr; }
    // When "partial": the shards down ("host:port", space-separated).
    virtual std::string downShards() const { return {}; }
    // False while `channel`'s Redis shard is down (its resync will follow); true in-process.
    virtual bool reaches(const std::string& /*channel*/) { return true; }
    // Hands the sink, now, the messages that already wait for this worker (the in-process
    // inbox, otherwise read at its wakeup): the hub calls it just before it writes its
    // deliveries, so that a message published since goes out in the same writes.
    virtual void deliverWaiting() {}
};

// Makes each worker's backplane on that worker's loop (Server picks the implementation).
using BackplaneFactory = std::function<std::unique_ptr<Backplane>(net::EventLoop& loop)>;

}  // namespace portico::pubsub
