// SPDX-License-Identifier: Apache-2.0
#pragma once
// The Redis backplane: channels across every node that shares one Redis (`pubsub.backplane`).
//
// Per worker: one command connection (publishes, replays, channel info, probes) and one
// subscribe connection (SUBSCRIBE to the channels this worker's clients use), both hiredis
// asynchronous contexts on the worker's event loop, so a slow Redis never blocks it.
//
// Keys of a channel share the Redis Cluster hash tag {<channel key>}:
//   <prefix>:{<key>}:meta      hash: epoch (random, made with the channel's state), seq
//   <prefix>:{<key>}:stream    the history: XADD with MAXLEN `history`, entry id 0-<seq>
//   <prefix>:{<key>}:idem:<k>  an Idempotency-Key's answer, kept kIdempotencyTtl
//   <prefix>:{<key>}           the pub/sub channel (PUBLISH)
// Every key expires (EXPIRE max(history_ttl, channel_idle_timeout), renewed by each publish),
// so an abandoned channel never stays in Redis. One Lua script per publish: HINCRBY seq, XADD,
// EXPIRE, PUBLISH "<seq> <epoch> <t|b> <sender>\n<payload>".
//
// Faults: a connection lost or not up within connect_timeout makes the worker's backplane
// down (publishes 503 at once, others within publish_timeout); it reconnects with exponential
// backoff and jitter, subscribes again and tells its subscribers to catch up from history
// (onBackplaneResync). A probe published every kProbeInterval on a channel of its own must come
// back on the subscribe connection within the next interval, or that connection is dropped and
// made again (a silent subscription after a failover).

#include <atomic>
#include <chrono>
#include <functional>
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
#include "portico/pubsub/backplane.h"
#include "portico/pubsub/pubsub_registry.h"

struct redisReply;

namespace portico::pubsub {

class RedisConnection;

// What every worker's RedisBackplane of one process shares: the state shown by health, status
// and metrics, its counters, and the once-per-outage log line. Thread-safe.
class RedisBackplaneState {
public:
    explicit RedisBackplaneState(std::string target) : target_(std::move(target)) {}
    // A worker's connections went down / came up. The error log says "down" once per outage
    // of the process, whatever the number of workers and attempts, and "back" once.
    void workerDown(const std::string& why);
    void workerUp();
    // A connect attempt failed (the worker is counted down already): logged once per outage.
    void noteFailure(const std::string& why);
    void countWorker() { down_.fetch_add(1); }  // each worker starts down until connected
    void forgetWorker() { down_.fetch_sub(1); }  // a worker that goes while down
    bool up() const { return down_.load() == 0; }
    void countReconnect() { reconnects_.fetch_add(1, std::memory_order_relaxed); }
    void countPublishFailure() { publish_failures_.fetch_add(1, std::memory_order_relaxed); }
    void countSilent() { silent_.fetch_add(1, std::memory_order_relaxed); }
    void stats(observe::ProcessInfo& info) const;

private:
    const std::string target_;  // the URL without its password
    std::atomic<int> down_{0};  // workers whose connections are not both up
    std::atomic<std::uint64_t> reconnects_{0}, publish_failures_{0}, silent_{0};
    std::mutex log_mutex_;
    bool logged_down_ = false;
};

class RedisBackplane final : public Backplane, private Inbox {
public:
    static constexpr std::chrono::seconds kProbeInterval{5};
    static constexpr std::chrono::milliseconds kBackoffFirst{100};
    static constexpr std::chrono::milliseconds kBackoffMax{5000};
    static constexpr std::chrono::minutes kIdempotencyTtl{5};

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
    const char* health() const override { return state_->up() ? "up" : "down"; }

private:
    class Connections;  // the RedisConnection::Handler of both connections
    friend class Connections;
    struct Channel {
        std::size_t subscribers = 0;        // on this worker
        bool confirmed = false;             // Redis confirmed the SUBSCRIBE on this connection
        std::vector<SubscribeDone> waiting; // subscribers waiting for the channel's position
        config::Duration ttl{0};            // key TTL from the route's settings
    };

    void post(const std::string&, MessagePtr) override {}  // the registry posts nothing here
    void onUp();
    void onDown(const std::string& why);
    void finishResync();
    bool evalScript(std::vector<std::string_view> argv, std::function<void(const redisReply*)> done,
                    std::chrono::milliseconds timeout);
    void onPush(const redisReply& push);
    void onMessage(std::string_view redis_channel, std::string_view payload);
    void onConfirmed(std::string_view redis_channel);
    void answerWaiting(const std::string& channel);
    void scheduleReconnect();
    static void onReconnect(int, short, void* arg);
    static void onProbe(int, short, void* arg);
    std::string key(const std::string& channel, std::string_view suffix) const;
    std::string redisChannel(const std::string& channel) const;

    net::EventLoop& loop_;
    const config::BackplaneSettings settings_;
    std::shared_ptr<PubSubRegistry> registry_;
    std::shared_ptr<RedisBackplaneState> state_;
    BackplaneSink* sink_ = nullptr;
    std::unique_ptr<Connections> handler_;
    std::unique_ptr<RedisConnection> commands_;
    std::unique_ptr<RedisConnection> subscriptions_;
    std::unordered_map<std::string, Channel> channels_;  // with subscribers on this worker
    core::EventPtr reconnect_timer_;
    core::EventPtr probe_timer_;
    std::mt19937 random_;
    std::string node_;           // this worker's id in the sender field and the probe channel
    std::string probe_channel_;
    unsigned attempts_ = 0;      // failed connects since the last up
    bool up_ = false;            // both connections up and the scripts loaded
    bool was_up_ = false;        // up before: subscribers catch up when it is up again
    bool resync_pending_ = false;  // up again: resync once every channel is subscribed
    bool probe_outstanding_ = false;
    std::size_t unconfirmed_ = 0;  // SUBSCRIBEs sent after coming up, not yet confirmed
};

}  // namespace portico::pubsub
