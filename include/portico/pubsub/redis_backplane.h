// SPDX-License-Identifier: Apache-2.0
#pragma once
// The Redis backplane: channels across every node that shares one Redis (`pubsub.backplane`).
//
// Per worker and per Redis master: one command connection (publishes, replays, channel info,
// probes) and one subscribe connection (SUBSCRIBE to the channels this worker's clients use), all
// hiredis asynchronous contexts on the worker's event loop, so a slow Redis never blocks it.
//
// Standalone or cluster is found at connect: the configured node is asked CLUSTER SLOTS. An
// error (cluster support disabled) means one Redis: PUBLISH/SUBSCRIBE on its two connections. A
// slot map means a Redis Cluster (7+): a connection pair per master, sharded pub/sub
// (SPUBLISH in the script, SSUBSCRIBE on the channel's master), MOVED followed and the map read
// again, ASK followed once; a shard channel that Redis unsubscribed (its slot moved) is
// subscribed again on its new master, then caught up; a master set that changed reconnects
// everything as after an outage (resubscribe, then catch up).
//
// Keys of a channel share the Redis Cluster hash tag {<channel key>}:
//   <prefix>:{<key>}:meta      hash: epoch (random, made with the channel's state), seq, bytes
//                              (the stream's payloads + PubSubRegistry::kMessageOverhead each)
//   <prefix>:{<key>}:stream    the history: entry id 0-<seq>, at most `history` entries and
//                              `history_bytes` bytes (the oldest are trimmed by the script)
//   <prefix>:{<key>}:idem:<k>  an Idempotency-Key's answer, kept kIdempotencyTtl
//   <prefix>:{<key>}           the pub/sub channel (PUBLISH, or SPUBLISH on a cluster)
// Every key expires (EXPIRE max(history_ttl, channel_idle_timeout)), renewed by each publish
// and, while this worker has subscribers on the channel, at most a third of that TTL apart
// (refreshTtls, on a tick of at most a second that follows the smallest TTL in use), so an
// abandoned channel never stays in Redis and a quiet one with subscribers never goes.
// One Lua script per publish: HINCRBY seq, XADD, trim, EXPIRE, PUBLISH
// "<seq> <epoch> <t|b> <sender>\n<payload>".
//
// Faults, per shard (a master, or the one Redis): a connection of a shard lost or not up within
// connect_timeout makes that shard down (publishes to its channels 503 at once, others within
// publish_timeout); channels on the other shards keep working. The shard reconnects alone with
// exponential backoff and jitter (the slot map is read again through a shard that is up, in
// case a failover moved its slots), subscribes its channels again and tells their subscribers to
// catch up from history (onBackplaneResync). With no shard up (or no slot map) the worker starts
// over from the seeds. A probe published every kProbeInterval on a channel of its own must come
// back on the subscribe connection within the next interval, or that shard's connections are
// dropped and made again (a silent subscription after a failover). The backoff starts again
// from its first step only once a probe came back: a Redis that takes connections but refuses
// what follows (a SUBSCRIBE renamed away or denied by an ACL) is retried at the backoff's pace,
// not at once after every login.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string_view>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/core/log_throttle.h"
#include "portico/pubsub/backplane.h"
#include "portico/pubsub/pubsub_registry.h"

struct redisReply;

namespace portico::pubsub {

class RedisConnection;

// What every worker's RedisBackplane of one process shares: the state shown by health, status
// and metrics, its counters, and the once-per-outage log lines. Thread-safe.
//
// State is per shard (a Redis Cluster master, or the one Redis): "up" when every worker has
// every shard up, "down" when some worker has no shard up (or no slot map yet), "partial"
// otherwise (some shard down: its channels answer 503, the others work).
class RedisBackplaneState {
public:
    struct ShardHealth {
        std::string address;  // "host:port" (or the unix socket's path)
        bool up = false;
    };
    explicit RedisBackplaneState(std::string target) : target_(std::move(target)) {}
    // `worker`'s shards now (none before its first slot map: it counts as down). A report with
    // a `why` (a failure) logs an outage that starts, once per process: of the backplane (a
    // worker with no shard up) or of one shard (the others up); any report logs its end once.
    void report(const void* worker, std::vector<ShardHealth> shards, const std::string& why = {});
    void forget(const void* worker);  // a worker that goes
    const char* health() const;       // "up", "partial" or "down"
    std::string downShards() const;   // when "partial": the shards down, space-separated
    void countReconnect() { reconnects_.fetch_add(1, std::memory_order_relaxed); }
    void countPublishFailure() { publish_failures_.fetch_add(1, std::memory_order_relaxed); }
    void countSilent() { silent_.fetch_add(1, std::memory_order_relaxed); }
    // A worker's subscribe connections now hold `delta` more (or fewer) hiredis callbacks.
    void addSubscribeCallbacks(std::int64_t delta) { subscribe_callbacks_.fetch_add(delta, std::memory_order_relaxed); }
    void stats(observe::ProcessInfo& info) const;

private:
    void update(const std::string& why);  // level_ and the log lines, under mutex_

    const std::string target_;  // the URL without its password
    std::atomic<std::uint64_t> reconnects_{0}, publish_failures_{0}, silent_{0};
    std::atomic<std::int64_t> subscribe_callbacks_{0};
    mutable std::mutex mutex_;
    std::map<const void*, std::vector<ShardHealth>> workers_;
    std::set<std::string> logged_;  // outages logged: "" (the backplane) or a shard's address
    bool announced_ = false;        // "connected" logged
    std::atomic<int> level_{2};     // 0 up, 1 partial, 2 down
};

class RedisBackplane final : public Backplane, private Inbox {
public:
    static constexpr std::chrono::seconds kProbeInterval{5};
    static constexpr std::chrono::milliseconds kBackoffFirst{100};
    static constexpr std::chrono::milliseconds kBackoffMax{5000};
    static constexpr std::chrono::minutes kIdempotencyTtl{5};
    static constexpr int kMaxRedirects = 3;  // MOVED/ASK hops of one command

    // `registry` keeps this process's local bookkeeping (subscriber counts, max_channels,
    // publish rate); `state` is shared by every worker of the process.
    RedisBackplane(net::EventLoop& loop, const config::BackplaneSettings& settings, std::string password,
                   std::shared_ptr<PubSubRegistry> registry, std::shared_ptr<RedisBackplaneState> state);
    ~RedisBackplane() override;
    RedisBackplane(const RedisBackplane&) = delete;
    RedisBackplane& operator=(const RedisBackplane&) = delete;

    void start(BackplaneSink& sink) override;
    void publish(PublishRequest request, PublishDone done) override;
    void subscribe(const std::string& channel, const config::PubSubSettings& settings, SubscribeDone done) override;
    void unsubscribe(const std::string& channel) override;
    bool admits(const std::string& channel) override;
    void replay(const ReplayRequest& request, ReplayDone done) override;
    void info(const std::string& channel, InfoDone done) override;
    PubSubRegistry& registry() override { return *registry_; }
    void stats(observe::ProcessInfo& info) override;
    const char* health() const override { return state_->health(); }
    std::string downShards() const override { return state_->downShards(); }
    bool reaches(const std::string& channel) override;

private:
    class Connections;  // the RedisConnection::Handler of every connection
    friend class Connections;
    struct Shard;       // one master: its command and subscribe connections (redis_backplane.cpp)
    struct Call;        // a command that may be sent again (NOSCRIPT, MOVED, ASK)
    struct Channel {
        std::size_t subscribers = 0;        // on this worker
        bool confirmed = false;             // Redis confirmed the SUBSCRIBE on this connection
        std::vector<SubscribeDone> waiting; // subscribers waiting for the channel's position
        std::chrono::seconds ttl{1};        // its keys' TTL (max(history_ttl, channel_idle_timeout))
        std::chrono::steady_clock::time_point refreshed{};  // the keys' TTL last renewed from here
    };
    using ReplyFn = std::function<void(const redisReply*)>;

    // The registry posts nothing here.
    bool enqueue(const std::string&, MessagePtr) override { return false; }
    void wake() override {}
    std::unique_ptr<RedisConnection> newConnection(const config::RedisAddress& address);
    RedisConnection& addConnection(const config::RedisAddress& address);  // owned by connections_
    std::unique_ptr<Shard> newShard();
    void connectSeed();
    void discover();
    void onSlots(const redisReply* reply);
    void refreshSlots();
    void onConnectionUp(RedisConnection& connection);
    void onConnectionDown(RedisConnection& connection, const std::string& why);
    void onShardUp(Shard& shard);
    void onShardDown(Shard& shard, const std::string& why);
    // No shard up, or no slot map: every connection goes, and a new round starts from the seeds.
    void onDown(const std::string& why);
    void finishResync(Shard& shard);
    void report(const std::string& why = {});  // the shards' states to state_
    Shard* shardOf(const std::string& channel);
    Shard* shardWith(const RedisConnection& connection);  // nullptr: the seed's, kept for discovery
    Shard* shardAt(const config::RedisAddress& address);  // nullptr: not a master we know
    std::uint16_t shardIndex(const Shard* shard) const;   // its index in shards_ (slots_' values)
    // Sends `argv` to the shard of `channel`. A script goes as {"EVALSHA", <its text>, ...}: by
    // its SHA-1, and with its text after NOSCRIPT. MOVED (the slot map is then refreshed) and
    // ASK are followed up to kMaxRedirects times. False (`done` not called) when down, or over
    // max_pending_bytes unless `control` (a TTL renewal: RedisConnection::Budget::Exempt).
    bool command(const std::string& channel, const std::vector<std::string_view>& argv, ReplyFn done,
                 std::chrono::milliseconds timeout, bool control = false);
    bool send(RedisConnection& to, const std::shared_ptr<Call>& call, bool asking);
    void onCallReply(const std::shared_ptr<Call>& call, const redisReply* reply);
    void onPush(RedisConnection& connection, const redisReply& push);
    void onMessage(std::string_view redis_channel, std::string_view payload);
    void onConfirmed(RedisConnection& connection, std::string_view redis_channel);
    void onServerUnsubscribed(RedisConnection& connection, std::string_view redis_channel);
    void answerWaiting(const std::string& channel);
    // SUBSCRIBE on the channel's shard when it is up; `catch_up`: its subscribers catch up from
    // history once confirmed. False when not sent.
    bool subscribeInRedis(const std::string& channel, bool catch_up);
    void refreshTtls();
    void countSubscribeCallbacks();  // into state_, from the subscribe connections (each tick)
    void scheduleReconnect();
    std::chrono::milliseconds backoff(unsigned& attempts);
    static void onReconnect(int, short, void* arg);
    static void onShardReconnect(int, short, void* arg);
    static void onProbe(int, short, void* arg);
    static void onRefresh(int, short, void* arg);
    std::string key(const std::string& channel, std::string_view suffix) const;
    std::string redisChannel(const std::string& channel) const;
    std::string channelOf(std::string_view redis_channel) const;  // "" when not one of ours
    // The (S)PUBLISH, (S)SUBSCRIBE, (S)UNSUBSCRIBE verbs: sharded ones against a cluster.
    const char* verb(const char* plain, const char* sharded) const { return cluster_ ? sharded : plain; }

    net::EventLoop& loop_;
    const config::BackplaneSettings settings_;
    const std::string password_;
    std::shared_ptr<PubSubRegistry> registry_;
    std::shared_ptr<RedisBackplaneState> state_;
    BackplaneSink* sink_ = nullptr;
    std::unique_ptr<Connections> handler_;
    // Every connection; the first is the seed's (discovery: CLUSTER SLOTS). Made again at each
    // reconnect, never while a callback of theirs runs.
    std::vector<std::unique_ptr<RedisConnection>> connections_;
    std::vector<std::unique_ptr<Shard>> shards_;  // one (the configured Redis) unless a cluster
    std::vector<std::uint16_t> slots_;            // cluster: the shard of each hash slot
    std::vector<config::RedisAddress> seeds_;     // the configured address, then known masters
    std::size_t next_seed_ = 0;
    std::unordered_map<std::string, Channel> channels_;  // with subscribers on this worker
    std::unordered_map<std::string, unsigned> unsubscribing_;  // (S)UNSUBSCRIBEs not confirmed
    std::vector<std::string> moved_;  // channels whose slot moved: subscribed again after refreshSlots
    core::InlineEvent reconnect_timer_;
    core::InlineEvent probe_timer_;
    core::InlineEvent refresh_timer_;
    // The renewal tick: a second, or a third of the smallest TTL subscribed to here when that is
    // shorter (a 1 s TTL renewed once a second expired between renewals, for good).
    std::chrono::milliseconds refresh_tick_{1000};
    std::mt19937 random_;
    std::string node_;           // this worker's id in the sender field and the probe channels
    unsigned attempts_ = 0;      // rounds from the seeds since a probe last came back
    // Publishes Redis refused (OOM at maxmemory, a script error), and publishes refused here
    // over max_pending_bytes: one warning of each per interval, with the number not logged,
    // however fast publishes fail (each its own count: one does not hide the other).
    core::LogThrottle publish_error_log_{std::chrono::seconds(5)};
    core::LogThrottle pending_bytes_log_{std::chrono::seconds(5)};
    bool cluster_ = false;       // the seed answered CLUSTER SLOTS: sharded pub/sub
    bool discovered_ = false;    // shards_ known for this round of connections
    bool refreshing_ = false;    // a CLUSTER SLOTS after a MOVED is on its way
    bool dropping_ = false;      // onDown/onShardDown are dropping connections
    bool was_up_ = false;        // a shard was up before: the next rounds' shards catch up
    std::int64_t subscribe_callbacks_ = 0;  // this worker's share of state_'s count
};

}  // namespace portico::pubsub
