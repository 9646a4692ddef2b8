// SPDX-License-Identifier: Apache-2.0
#pragma once
// `handler: pubsub`: publish/subscribe channels served by Portico itself.
//
// Each worker has a PubSubHub: its local subscribers by channel, in front of the worker's
// pubsub::Backplane (backplane.h), which numbers, keeps and carries the messages: in this
// process (LocalBackplane, the default) or across nodes (RedisBackplane). A message reaches a
// worker once; the hub encodes the frame once and hands it to each of its subscribers by
// reference.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/core/shared_bytes.h"
#include "portico/http/head.h"
#include "portico/http/response_sink.h"
#include "portico/pubsub/backplane.h"
#include "portico/pubsub/pubsub_registry.h"
#include "portico/ws/permessage_deflate.h"

struct evbuffer;

namespace portico::net {
class EventLoop;
}

namespace portico::handlers {

class EndpointApp;

// One message's frames for a worker's listeners: each form (the bare message, or the
// portico.pubsub.v1 JSON) encoded at most once uncompressed (allowed under permessage-deflate,
// RFC 7692 6: the same bytes suit every subscriber, whatever its compression context) and at
// most once compressed per compressor among the listeners that can take it
// (ws::SharedDeflate: permessage-deflate without server context takeover), and shared by
// reference.
class MessageFrames {
public:
    MessageFrames(std::string_view channel, const pubsub::Message& message) : channel_(channel), message_(message) {}
    // The frame in shared memory (subscribers write it from there: EndpointSession::queueShared),
    // compressed for `deflate` when non-null and it pays. Null when out of memory.
    core::SharedBytesRef shared(bool json, const ws::SharedDeflate* deflate = nullptr);

private:
    std::string_view payload(bool json);  // what the form's frame carries

    struct Compressed {
        bool json;
        ws::SharedDeflate deflate;
        core::SharedBytesRef frame;
    };

    std::string_view channel_;
    const pubsub::Message& message_;
    std::string json_text_;  // the JSON form's payload, once made
    core::SharedBytesRef bare_, json_;
    std::vector<Compressed> compressed_;  // one per form and compressor asked for (usually one)
};

// Anything on a worker that receives a channel's messages: a WebSocket subscriber of the pubsub
// handler, or a bridged WebSocket its app subscribed through GRIP.
class ChannelListener {
public:
    // A message of a channel the listener was added for, in seq order (one may be missing).
    virtual void deliver(const pubsub::Message& message, MessageFrames& frames) = 0;
    // The backplane reconnected: messages may have been missed.
    virtual void catchUp() = 0;
    // Writes what deliver() queued. A listener that queues without writing asks for it with
    // PubSubHub::flushLater; the hub calls it once per loop iteration, after every message of
    // the iteration: one write per listener however many messages came.
    virtual void flushDeliveries() {}

protected:
    ~ChannelListener() = default;
};

// One worker's side: its subscribers by channel, fed by the worker's backplane.
class PubSubHub final : private pubsub::BackplaneSink {
public:
    PubSubHub(net::EventLoop& loop, std::unique_ptr<pubsub::Backplane> backplane);
    ~PubSubHub() override;
    PubSubHub(const PubSubHub&) = delete;
    PubSubHub& operator=(const PubSubHub&) = delete;

    pubsub::Backplane& backplane() { return *backplane_; }
    pubsub::PubSubRegistry& registry() { return backplane_->registry(); }
    net::EventLoop& loop() { return loop_; }

    void add(const std::string& channel, ChannelListener* listener);
    // Also forgets a flushLater() not yet run.
    void remove(const std::string& channel, ChannelListener* listener);
    // Calls listener->flushDeliveries() once, in the next loop iteration after the input that
    // iteration finds ready (a poll that does not wait: a zero timeout) and after the messages
    // that wait in the backplane then (Backplane::deliverWaiting): what is published while a
    // publish's deliveries are queued (the next POST of a publisher that had its answer, the
    // other messages of a Redis read) goes out in the same write per subscriber. No timer
    // delays it: the wait is one pass of the loop. The listener asks at most once until then
    // (it keeps a flag); remove() cancels.
    void flushLater(ChannelListener* listener);

private:
    void onBackplaneMessage(const std::string& channel, const pubsub::MessagePtr& message) override;
    void onBackplaneResync(const std::string& channel) override;
    static void onFlush(int, short, void* arg);

    net::EventLoop& loop_;
    std::unique_ptr<pubsub::Backplane> backplane_;
    std::unordered_map<std::string, std::vector<ChannelListener*>> local_;
    std::vector<ChannelListener*> unflushed_;  // flushLater() since the last onFlush
    std::vector<ChannelListener*>* flushing_ = nullptr;  // onFlush's list while it runs
    core::InlineEvent flush_event_;               // added with a zero timeout when unflushed_ fills
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

// The channel name: the request path after the route's prefix, percent-decoded ("/live/room1"
// and "/live/r%6Fom1" -> "room1", "/live/room%201" -> "room 1": the name a publish API item or a
// GRIP subscription gives as is). Empty when there is none or it is not a plain name once
// decoded (a bad escape; a '/', a control byte or not UTF-8; over 200 bytes).
std::string channelName(const config::Route& route, std::string_view path);
// Why channelName() is empty: 404 (no name after the prefix) or 400 (a bad escape, a '/' or too
// long). The same answer on every node.
int channelRefusal(const config::Route& route, std::string_view path);

// The WebSocket subprotocol in which every message goes out as one JSON text frame
// {"channel","seq","epoch","data"|"data_b64"} and a lost history is a message, not a close.
inline constexpr std::string_view kPubSubSubprotocol = "portico.pubsub.v1";

struct SubscribeOptions {
    std::optional<std::uint64_t> since;  // ?since=SEQ: replay history after SEQ
    std::string epoch;                   // ?epoch=E: SEQ's epoch ("" = the current one)
    bool json = false;                   // portico.pubsub.v1 was negotiated
};
// Reads ?since= and ?epoch= from a query string (malformed values are ignored).
SubscribeOptions parseSubscribeQuery(std::string_view query);

// A WebSocket subscriber's app (EndpointApp) for `channel`, replaying history after
// `options.since` no faster than its socket drains (queue_bytes). Its position is lost (message
// history_lost with the subprotocol, else close 4410) when `options.epoch` is not the
// channel's, or SEQ > 0 is older than the history kept (since=0 asks for whatever is kept).
// nullptr when `channel` is new and pubsub.max_channels are known (answer 503): the hint before
// the upgrade; the subscription itself, when the session opens, can still be refused (close
// 1013).
std::unique_ptr<EndpointApp> makeSubscriberApp(PubSubHub& hub, const config::Route& route, std::string channel,
                                               SubscribeOptions options);

// The largest publish `route` takes: max_message_bytes, never more than queue_bytes (a bigger
// message could reach no subscriber) nor than `max_body_bytes` (limits; 0 = no limit).
std::size_t publishLimit(const config::Route& route, std::size_t max_body_bytes);
// For a POST body being read: true while `total` bytes fit publishLimit(); false (counted as a
// refused publish: answer 413) beyond.
bool publishBodyFits(PubSubHub& hub, const config::Route& route, std::size_t max_body_bytes, std::size_t total);

// HTTP side. POST publishes `body` and answers {"channel","subscribers","seq","epoch"}, or 503
// (new channel beyond max_channels, or the backplane cannot take it: not known to be
// published) or 429 (publish_rate) with Retry-After; with an Idempotency-Key seen within
// PubSubRegistry::kIdempotencyTtl it answers the first publish's seq without delivering again.
// GET answers the channel info {"channel","subscribers","seq","epoch","history","oldest"}.
struct PubSubHttpRequest {
    std::string_view method;
    std::string_view path;
    std::string_view authorization;  // the Authorization value, "" when absent
    std::string body;                // a publish's message
    std::string_view idempotency_key;  // the Idempotency-Key value, "" when absent
};
// The longest Idempotency-Key taken (beyond: 400).
inline constexpr std::size_t kMaxIdempotencyKey = 200;
struct PubSubAnswer {
    int status = 200;
    std::string body;          // the body of a 200 (and of a 400 that says why); empty: the standard page
    http::HeaderList headers;  // Retry-After, WWW-Authenticate, Allow
    std::string_view content_type = "application/json";
};
using PubSubAnswerDone = std::function<void(const PubSubAnswer&)>;
// Calls `done` once on this worker's thread, before it returns or later (a backplane that
// answers asynchronously); the caller guards `done` against its own end.
void servePubSubHttp(PubSubHub& hub, const config::Route& route, PubSubHttpRequest request, PubSubAnswerDone done);
// Sends the complete response for `answer` (the head alone for HEAD: `head_only`).
void sendPubSubAnswer(http::ResponseSink& out, const PubSubAnswer& answer, bool head_only);
// True when `authorization` (the request's Authorization value, "" when absent) carries the
// route's publish_token as "Bearer TOKEN", or the route has no token. Checked at the head of a
// publish, before its body is read.
bool publishAuthorized(const config::Route& route, std::string_view authorization);

}  // namespace portico::handlers
