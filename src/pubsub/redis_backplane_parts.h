// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/pubsub: what the two files of RedisBackplane share (redis_backplane.cpp: state,
// pushes and the operations; redis_links.cpp: connections, the slot map, commands and their
// redirections, up/down, probes, TTL renewal): its nested types and the scripts' SHA-1s.

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "portico/core/inline_event.h"
#include "portico/core/sha1.h"
#include "portico/pubsub/redis_backplane.h"
#include "pubsub/redis_connection.h"
#include "pubsub/redis_scripts.h"

namespace portico::pubsub {

// ---- the connections' handler -------------------------------------------------------------------

class RedisBackplane::Connections final : public RedisConnection::Handler {
public:
    explicit Connections(RedisBackplane& owner) : owner_(owner) {}
    void onRedisUp(RedisConnection& connection) override { owner_.onConnectionUp(connection); }
    void onRedisDown(RedisConnection& connection, const std::string& why) override {
        owner_.onConnectionDown(connection, why);
    }
    void onRedisPush(RedisConnection& connection, const redisReply& push) override { owner_.onPush(connection, push); }

private:
    RedisBackplane& owner_;
};

// One master (or the one Redis), up or down on its own.
struct RedisBackplane::Shard {
    enum class State { Connecting, Up, Down };
    config::RedisAddress address;
    RedisConnection* commands = nullptr;       // owned by connections_
    RedisConnection* subscriptions = nullptr;  // owned by connections_
    std::string probe_channel;                 // in this shard's slots (cluster)
    bool probe_outstanding = false;
    State state = State::Connecting;
    bool was_up = false;              // up before: its channels catch up when it is up again
    unsigned attempts = 0;            // reconnects since a probe last came back (the backoff)
    std::size_t unconfirmed = 0;      // SUBSCRIBEs sent while `resync` waits, not yet confirmed
    std::vector<std::string> resync;  // channels to catch up once those are confirmed
    core::InlineEvent reconnect_timer;   // its arg is this Shard (owner below)
    RedisBackplane* owner = nullptr;

    // "host:port" (or the unix socket's path): its name in health, status, metrics and logs.
    std::string name() const {
        return address.unix_path.empty() ? address.host + ":" + std::to_string(address.port) : address.unix_path;
    }
};

struct RedisBackplane::Call {
    std::vector<std::string> argv;  // a script's text at [1] when `script`
    const char* script = nullptr;   // one of scripts::k*, or nullptr for a plain command
    bool with_text = false;         // NOSCRIPT came back: EVAL with the text
    bool control = false;           // not refused by max_pending_bytes (RedisConnection::Budget)
    int hops = 0;
    RedisConnection* last = nullptr;  // where it went last (NOSCRIPT goes there again)
    ReplyFn done;
    std::chrono::milliseconds timeout{0};
};

// The SHA-1 that EVALSHA names a script by (hex, as SCRIPT LOAD answers).
inline std::string scriptSha(const char* script) {
    const core::Sha1Digest digest = core::sha1(script);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned char b : digest) {
        hex.push_back(kHex[b >> 4]);
        hex.push_back(kHex[b & 15]);
    }
    return hex;
}

// Computed once per script (thread-safe function-local statics). Scripts are told apart by
// their text, not their address: each translation unit folds scripts::kPublish to its own copy
// of the literal, and only a linker that merges equal strings makes those copies one (ASan's
// instrumented literals are not merged: every publish ran the info script).
inline const std::string& shaOf(std::string_view script) {
    static const std::string publish = scriptSha(scripts::kPublish), replay = scriptSha(scripts::kReplay),
                             info = scriptSha(scripts::kInfo);
    if (script == scripts::kPublish) return publish;
    if (script == scripts::kReplay) return replay;
    return info;
}

}  // namespace portico::pubsub
