// SPDX-License-Identifier: Apache-2.0
#pragma once
// The process-wide table of pub/sub channels that every pubsub route and every worker shares.
//
// It is the local bookkeeping of every backplane (subscribers per worker, max_channels, the
// publish rate, the counters) and, for the in-process backplane (LocalBackplane), also the
// message store: it numbers each channel's messages, keeps their history and knows how many subscribers each
// worker (its Inbox) has per channel. One mutex, taken per publish, (un)subscribe, replay slice
// and once a second for expiry; never per delivery. Everything it holds is bounded:
// - history per channel by count (`history`), bytes (`history_bytes`) and age (`history_ttl`);
// - history of all channels together by `pubsub.history_budget`: beyond it the oldest messages
//   process-wide go first, whatever their channel (a list in publish order makes that O(1));
// - channels by `pubsub.max_channels`; a channel with no subscribers goes with its last kept
//   message, or after `channel_idle_timeout` without a publish;
// - publishes per channel by a token bucket (`publish_rate`, `publish_burst`);
// - Idempotency-Key entries by kIdempotencyKeys (the oldest goes first) and kIdempotencyTtl.
// Sequence numbers restart with the process: the epoch, random per registry, tells a
// subscriber's ?since=SEQ&epoch=E from an earlier process apart.
// Under the lock nothing of unbounded size is allocated: a message is built before, a replay
// slice is at most `max_messages` pointers; a publish appends (channel name, pointer) to each
// subscribed worker's inbox, a vector that its loop empties.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/token_bucket.h"
#include "portico/pubsub/backplane.h"
#include "portico/pubsub/message.h"

namespace portico::observe {
struct ProcessInfo;
}

namespace portico::pubsub {

class PubSubRegistry {
public:
    using Clock = std::chrono::steady_clock;

    // What a kept message costs besides its payload (message, control block, list and deque
    // entries): counted so that many tiny messages are bounded by the byte limits too.
    static constexpr std::size_t kMessageOverhead = 192;
    // How often expire() does its work, whichever worker calls it.
    static constexpr std::chrono::seconds kSweepInterval{1};
    // A publish with an Idempotency-Key seen within this time answers the first one's seq and
    // is not delivered again; at most this many keys are remembered (the oldest go first).
    static constexpr std::chrono::minutes kIdempotencyTtl{5};
    static constexpr std::size_t kIdempotencyKeys = 10000;

    // `clock` is for tests; by default the steady clock.
    explicit PubSubRegistry(const config::PubSubLimits& limits = {}, std::function<Clock::time_point()> clock = {});

    // The epoch of every channel of this registry: random, fixed for its life.
    const std::string& epoch() const { return epoch_; }

    // New process-wide bounds (a reload); a smaller budget is enforced at once. Thread-safe.
    void configure(const config::PubSubLimits& limits);

    // A worker's inbox leaves: its subscriber counts go with it.
    void detach(Inbox* inbox);

    using Refusal = pubsub::Refusal;
    using PublishResult = pubsub::PublishResult;
    using ReplaySlice = pubsub::ReplaySlice;
    // Numbers the message, keeps it in the history within the bounds of `settings` and the
    // budget, and posts it to every worker with subscribers on `channel`. Refused (nothing
    // numbered, kept or posted) for a new channel beyond max_channels or beyond the channel's
    // publish rate. A non-empty `idempotency_key` seen on this channel within kIdempotencyTtl
    // answers the first publish's seq (duplicate) and posts nothing. Thread-safe.
    PublishResult publish(const std::string& channel, std::string payload, bool text,
                          const config::PubSubSettings& settings, const void* sender,
                          const std::string& idempotency_key = {});

    // The local half of a publish that another backplane numbers and carries: the channel cap
    // and publish_rate (refused as publish() would be) and this process's subscriber count
    // (minus `sender`). Nothing is numbered, kept or posted. Thread-safe.
    PublishResult admitPublish(const std::string& channel, const config::PubSubSettings& settings, const void* sender);

    // Counts a subscriber of `inbox` on `channel` and stores the channel's current seq in
    // `current_seq`. False (nothing counted) for a new channel beyond max_channels. Thread-safe.
    bool subscribe(const std::string& channel, Inbox* inbox, const config::PubSubSettings& settings,
                   std::uint64_t& current_seq);
    void unsubscribe(const std::string& channel, Inbox* inbox);
    // True when `channel` exists or there is room for one more (a hint before a WebSocket
    // upgrade; subscribe() decides). False is counted as a refused subscription.
    bool admits(const std::string& channel);

    // The next part of a history replay after `after`: kept messages with seq > after whose payloads (plus a frame header each) add up to at
    // most `max_bytes`, at most `max_messages` of them. Thread-safe.
    ReplaySlice replay(const std::string& channel, std::uint64_t after, std::size_t max_bytes,
                       std::size_t max_messages);

    ChannelInfo info(const std::string& channel);

    // Drops messages older than their channel's history_ttl and removes channels without
    // subscribers idle for their channel_idle_timeout. Does the work at most once per
    // kSweepInterval whoever calls (each worker calls it from a timer). Thread-safe.
    void expire();

    // Counted by the callers (the HTTP side and the subscribers).
    void countRefusedSize() { refused_size_.fetch_add(1, std::memory_order_relaxed); }
    void countReplayTruncated() { replay_truncated_.fetch_add(1, std::memory_order_relaxed); }
    void countSlowClosed() { slow_closed_.fetch_add(1, std::memory_order_relaxed); }

    // Fills the pubsub figures of `info` for metrics and status, with the busiest
    // ProcessInfo::kStatusChannels channels. Thread-safe.
    void stats(observe::ProcessInfo& info);

private:
    enum Reason { kCount, kBytes, kTtl, kBudget, kIdle, kReasons };
    struct Channel;
    struct Kept {
        MessagePtr message;
        Clock::time_point at;
        std::size_t bytes = 0;                   // accounted: payload + kMessageOverhead
        std::list<Channel*>::iterator order;     // its place in order_
    };
    struct Channel {
        const std::string* name = nullptr;       // the map's key
        std::uint64_t seq = 0;
        std::deque<Kept> history;
        std::size_t history_bytes = 0;
        std::map<Inbox*, std::size_t> subscribers;  // per worker; no zero counts
        Clock::time_point last_active;           // last publish, (un)subscribe
        config::Duration ttl{0};                 // from the route, at the last publish/subscribe
        config::Duration idle{0};
        std::optional<core::TokenBucket> publish_bucket;  // publish_rate; from the first publish
    };
    using Map = std::unordered_map<std::string, Channel>;

    // Finds or creates `name` (nullptr when it is new and max_channels are known).
    Channel* findOrCreate(const std::string& name, Clock::time_point now);
    void adopt(Channel& c, const config::PubSubSettings& settings, Clock::time_point now);
    bool takeToken(Channel& c, const config::PubSubSettings& settings, Clock::time_point now,
                   std::chrono::seconds& retry_after);
    void dropOldest(Channel& c, Reason reason);
    void trimAge(Channel& c, Clock::time_point now);
    void enforceBudget(const Channel* keep);
    // Removes the channel at `it` if it has no subscribers and (no history or `force`).
    Map::iterator eraseIfUnused(Map::iterator it, bool force);

    // The channel cap and publish rate for a publish on `channel` (under the lock): the channel,
    // or nullptr with the refusal in `result`.
    Channel* admitLocked(const std::string& channel, const config::PubSubSettings& settings, Clock::time_point now,
                         PublishResult& result);
    // Finds `key` among the remembered idempotency keys, dropping expired ones first.
    const std::uint64_t* findIdempotent(const std::string& key, Clock::time_point now);
    void rememberIdempotent(std::string key, std::uint64_t seq, Clock::time_point now);

    std::function<Clock::time_point()> clock_;
    const std::string epoch_;
    std::atomic<Clock::rep> next_sweep_{0};
    std::mutex mutex_;
    config::PubSubLimits limits_;
    Map channels_;
    std::list<Channel*> order_;  // the channel of every kept message, oldest message first
    std::unordered_map<std::string, std::uint64_t> idempotent_;  // channel\nkey -> seq
    std::deque<std::pair<Clock::time_point, std::string>> idempotent_order_;  // oldest first
    std::size_t history_bytes_ = 0;
    std::size_t history_messages_ = 0;
    std::uint64_t evicted_[kReasons] = {};
    std::uint64_t channels_expired_ = 0;
    std::uint64_t refused_rate_ = 0;
    std::uint64_t refused_channels_ = 0;
    std::uint64_t subscribes_refused_ = 0;
    std::uint64_t published_ = 0;  // every channel's publishes, for the publish rate
    std::atomic<std::uint64_t> refused_size_{0};
    std::atomic<std::uint64_t> replay_truncated_{0};
    std::atomic<std::uint64_t> slow_closed_{0};
};

}  // namespace portico::pubsub
