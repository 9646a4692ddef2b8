// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/pubsub: one asynchronous hiredis connection on a worker's libevent loop (the
// adapters/libevent.h glue), with its owner for the redisAsyncContext, a connect timeout and
// per-command timeouts.
//
// Ownership: the context is ours from connect() until hiredis frees it itself (after a failed
// connect or a disconnect: then ctx_ is cleared in the callback) or we free it (drop(), the
// destructor). A reply callback runs once: with the reply, or with nullptr when the connection
// went down or the command timed out first. The destructor frees the context without running
// the callbacks it still holds (their owner is going too).

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/core/inline_event.h"

struct redisAsyncContext;
struct redisReply;

namespace portico::net {
class EventLoop;
}

namespace portico::pubsub {

class RedisConnection {
public:
    class Handler {
    public:
        virtual ~Handler() = default;
        // Connected, authenticated and on the configured database.
        virtual void onRedisUp(RedisConnection& connection) = 0;
        // A connect that failed or timed out, or a connection that ended. Called once per
        // connect(); nothing is pending any more.
        virtual void onRedisDown(RedisConnection& connection, const std::string& why) = 0;
        // Subscribe mode: a push (["message", channel, payload], ["subscribe", channel, n], ...).
        virtual void onRedisPush(RedisConnection& /*connection*/, const redisReply& /*push*/) {}
    };
    using ReplyFn = std::function<void(const redisReply* reply)>;

    RedisConnection(net::EventLoop& loop, const config::BackplaneSettings& settings, std::string password,
                    Handler& handler);
    ~RedisConnection();
    RedisConnection(const RedisConnection&) = delete;
    RedisConnection& operator=(const RedisConnection&) = delete;

    // Starts connecting (when not connected or connecting); onRedisUp or onRedisDown follows.
    void connect();
    bool up() const { return up_; }
    // Whether a command answers to max_pending_bytes (see command()).
    enum class Budget {
        Counted,  // publishes and the other commands clients cause
        Exempt,   // control commands (probe, CLUSTER SLOTS, SCRIPT LOAD, TTL renewal, ASKING):
                  // tiny and bounded in number; refusing them under load would make a healthy
                  // Redis look silent. Their bytes still count against the others.
    };
    // Sends `argv`. `done` gets the reply, or nullptr on a connection lost or after `timeout`
    // (0 = none). False (and `done` is not called) when the connection is not up, or, Counted,
    // when the commands sent and not answered yet (timed out or not) hold max_pending_bytes
    // already: a stalled Redis does not take them, and hiredis would keep every one in its
    // output buffer until the probe finds the connection silent. One command always goes.
    bool command(const std::vector<std::string_view>& argv, ReplyFn done,
                 std::chrono::milliseconds timeout = std::chrono::milliseconds(0), Budget budget = Budget::Counted);
    // Whether command(argv) Counted would be taken now (an ASKING and its command go as a pair).
    bool fits(const std::vector<std::string_view>& argv) const;
    // SUBSCRIBE (or, `sharded`, SSUBSCRIBE) to `channel`; its confirmation and messages go to the
    // handler's onRedisPush. hiredis 0.14 knows only the classic family: it routes a push by the
    // channel's name in its table of SUBSCRIBEd channels, and asserts when a push finds nothing
    // at all once the connection has no classic subscription left. So a shard channel is
    // SUBSCRIBEd too (it gets nothing classic: we only SPUBLISH), and the first sharded
    // subscription of a connection must be one it keeps (the probe channel), so that the
    // classic count never falls to 0 while shard channels remain.
    bool subscribe(std::string_view channel, bool sharded);
    // The reverse: (S)UNSUBSCRIBE, then UNSUBSCRIBE for a shard channel.
    bool unsubscribe(std::string_view channel, bool sharded);
    // The callbacks hiredis holds in its list of commands it does not know as subscribe
    // commands (counted by walking it; see noteAnswer). Stays at the number of SSUBSCRIBE and
    // SUNSUBSCRIBE not yet answered.
    std::size_t heldCallbacks() const;
    // What one pending command counts beside its arguments (its entries here and in hiredis).
    static constexpr std::size_t kPendingOverhead = 256;
    // Bytes of the commands sent and not answered yet (see command()).
    std::size_t pendingBytes() const { return pending_bytes_; }
    // Ends the connection now (a silent subscription): onRedisDown(why) follows at once.
    void drop(const std::string& why);

private:
    struct Pending {
        RedisConnection* self = nullptr;
        std::uint64_t id = 0;
        ReplyFn done;  // empty once timed out: the command stays in flight until its answer
        core::InlineEvent timer;
        std::size_t bytes = 0;  // counted in pending_bytes_ until the answer or the connection's end
    };

    static void onConnect(const redisAsyncContext* ctx, int status);
    static void onDisconnect(const redisAsyncContext* ctx, int status);
    static void onReply(redisAsyncContext* ctx, void* reply, void* privdata);
    static void onPush(redisAsyncContext* ctx, void* reply, void* privdata);
    static void onConnectTimeout(int, short, void* arg);
    static void onCommandTimeout(int, short, void* arg);
    // The connection is gone (hiredis freed it, or we did): clears up_ and fails what waits.
    void lost(const std::string& why);
    void finish(std::uint64_t id, const redisReply* reply);
    // command() without the check that the connection is up (the login commands of connect()).
    bool enqueue(const std::vector<std::string_view>& argv, ReplyFn done, std::chrono::milliseconds timeout);
    bool send(const std::vector<std::string_view>& argv, void (*fn)(redisAsyncContext*, void*, void*), void* privdata);
    // One command of the subscribe family for one channel, sent with onPush as its callback.
    bool sendSubscription(std::string_view verb, std::string_view channel);
    // A push or reply of the subscribe connection, before the handler sees it: pairs it with
    // the command it answers, and frees what hiredis 0.14 would keep of an answered
    // SSUBSCRIBE/SUNSUBSCRIBE (redis_connection.cpp says why).
    void noteAnswer(const redisReply& reply);
    void releaseAnswered();

    net::EventLoop& loop_;
    const config::BackplaneSettings settings_;
    const std::string password_;
    Handler& handler_;
    redisAsyncContext* ctx_ = nullptr;  // owned (see above)
    core::InlineEvent connect_timer_;
    std::unordered_map<std::uint64_t, std::unique_ptr<Pending>> pending_;
    std::size_t pending_bytes_ = 0;  // of pending_, arguments plus kPendingOverhead each
    std::uint64_t next_id_ = 1;
    // Subscribe-family commands sent and not answered yet, oldest first (bounded by what is in
    // flight: each gets one reply, in order).
    struct Awaited {
        std::string reply;    // the reply's first element: "subscribe", "sunsubscribe", ...
        std::string channel;
        bool holds_entry;     // hiredis put its callback in sub.invalid
    };
    std::deque<Awaited> awaited_;
    std::size_t held_ = 0;        // entries in hiredis's sub.invalid list
    std::size_t unanswered_ = 0;  // of awaited_, those with holds_entry
    bool up_ = false;
    bool destroying_ = false;
};

}  // namespace portico::pubsub
