// SPDX-License-Identifier: Apache-2.0
// RedisBackplane's links to Redis (redis_backplane.h): the seed and what CLUSTER SLOTS says of it,
// one shard (a command and a subscribe connection) per master, the commands sent to a channel's
// shard with their NOSCRIPT/MOVED/ASK follow-ups, up and down with reconnects, the probes, and
// the TTL renewal of channels with subscribers. The operations and pushes are in
// redis_backplane.cpp.

#include <algorithm>
#include <cstring>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"
#include "pubsub/redis_backplane_parts.h"
#include "pubsub/redis_cluster.h"

namespace portico::pubsub {

RedisConnection& RedisBackplane::addConnection(const config::RedisAddress& address) {
    config::BackplaneSettings settings = settings_;
    settings.address.host = address.host;
    settings.address.port = address.port;
    settings.address.unix_path = address.unix_path;
    connections_.push_back(std::make_unique<RedisConnection>(loop_, settings, password_, *handler_));
    return *connections_.back();
}

// A new round: every connection of the last one is gone (onDown dropped them and failed what
// they held), so they are destroyed here, outside their callbacks.
void RedisBackplane::connectSeed() {
    shards_.clear();
    connections_.clear();
    discovered_ = refreshing_ = false;
    // Seeds in turn: the configured node first, then the masters the cluster last named.
    const config::RedisAddress seed = seeds_[next_seed_++ % seeds_.size()];
    addConnection(seed).connect();
}

void RedisBackplane::onConnectionUp(RedisConnection& connection) {
    if (!discovered_) {
        if (!connections_.empty() && &connection == connections_.front().get()) discover();
        return;
    }
    for (const auto& c : connections_)
        if (!c->up()) return;
    onUp();
}

void RedisBackplane::discover() {
    connections_.front()->command({"CLUSTER", "SLOTS"}, [this](const redisReply* reply) { onSlots(reply); },
                                  std::chrono::duration_cast<std::chrono::milliseconds>(settings_.connect_timeout));
}

void RedisBackplane::onSlots(const redisReply* reply) {
    if (discovered_) return;
    if (!reply) {
        // Lost: onDown follows (or ran). Timed out on a live connection: nobody else will retry.
        if (connections_.front()->up()) onDown("CLUSTER SLOTS: no answer within connect_timeout");
        return;
    }
    RedisConnection& seed = *connections_.front();
    const config::RedisAddress seed_address = seeds_[(next_seed_ - 1) % seeds_.size()];  // a copy: seeds_ changes below
    cluster::SlotMap map;
    if (reply->type == REDIS_REPLY_ERROR) {
        // One Redis ("ERR This instance has cluster support disabled"): the seed's connection
        // carries the commands, one more the subscriptions.
        if (!std::strstr(reply->str, "cluster support disabled"))
            LOG_WARN("pubsub backplane: CLUSTER SLOTS answered %s; using redis as one node", reply->str);
        cluster_ = false;
        auto shard = std::make_unique<Shard>();
        shard->address = seed_address;
        shard->commands = &seed;
        shard->subscriptions = &addConnection(seed_address);
        shard->probe_channel = settings_.key_prefix + ":probe:" + node_;
        shards_.push_back(std::move(shard));
        slots_.clear();
    } else if (!cluster::parseSlots(reply, settings_.address.host, map) || map.masters.empty()) {
        return onDown("CLUSTER SLOTS: no slot map in the answer");
    } else {
        cluster_ = true;
        seeds_.resize(1);  // the configured one, then every master named now
        for (const cluster::Node& m : map.masters) {
            auto shard = std::make_unique<Shard>();
            shard->address.host = m.host;
            shard->address.port = m.port;
            seeds_.push_back(shard->address);
            const bool is_seed = seed_address.unix_path.empty() && m.host == seed_address.host && m.port == seed_address.port;
            shard->commands = is_seed ? &seed : &addConnection(shard->address);
            shard->subscriptions = &addConnection(shard->address);
            shards_.push_back(std::move(shard));
        }
        slots_ = std::move(map.owner);
        // Each shard's probe goes on a shard channel of its own slots.
        for (std::size_t i = 0; i < shards_.size(); ++i)
            for (unsigned n = 0; n < (1u << 20) && shards_[i]->probe_channel.empty(); ++n) {
                std::string candidate = settings_.key_prefix + ":probe:{" + node_ + "." + std::to_string(n) + "}";
                if (slots_[cluster::keySlot(candidate)] == i) shards_[i]->probe_channel = std::move(candidate);
            }
    }
    discovered_ = true;
    // connect() may fail at once (onDown then clears discovered_): stop there.
    for (std::size_t i = 1; i < connections_.size() && discovered_; ++i) connections_[i]->connect();
}

// After a MOVED: read the map again. The same masters: only slots moved between them; other
// masters (a failover, a node added): everything reconnects and resubscribes.
void RedisBackplane::refreshSlots() {
    if (!cluster_ || refreshing_) return;
    if (connections_.empty() || !connections_.front()->up()) return onDown("no connection to read the slot map");
    refreshing_ = true;
    connections_.front()->command(
        {"CLUSTER", "SLOTS"},
        [this](const redisReply* reply) {
            refreshing_ = false;
            cluster::SlotMap map;
            if (!up_) return;
            if (!cluster::parseSlots(reply, settings_.address.host, map)) return onDown("CLUSTER SLOTS: no slot map");
            std::vector<std::uint16_t> slots(cluster::kSlots, cluster::kNoOwner);
            for (std::size_t slot = 0; slot < cluster::kSlots; ++slot) {
                const cluster::Node* node = map.at(static_cast<std::uint16_t>(slot));
                if (!node) continue;
                config::RedisAddress a;
                a.host = node->host;
                a.port = node->port;
                Shard* shard = shardAt(a);
                if (!shard) return onDown("the cluster's masters changed");
                slots[slot] = shardIndex(shard);
            }
            slots_ = std::move(slots);
            // Channels whose slot moved: on their new master now, then a catch-up.
            std::vector<std::string> moved = std::move(moved_);
            moved_.clear();
            for (const std::string& channel : moved) {
                if (!channels_.count(channel)) continue;
                resync_pending_ = true;
                subscribeInRedis(channel);
            }
        },
        std::chrono::duration_cast<std::chrono::milliseconds>(settings_.connect_timeout));
}

RedisBackplane::Shard* RedisBackplane::shardOf(const std::string& channel) {
    if (shards_.empty()) return nullptr;
    if (!cluster_) return shards_.front().get();
    const std::uint16_t owner = slots_[cluster::keySlot(redisChannel(channel))];
    return owner == cluster::kNoOwner ? nullptr : shards_[owner].get();
}

std::uint16_t RedisBackplane::shardIndex(const Shard* shard) const {
    const auto it = std::find_if(shards_.begin(), shards_.end(), [&](const auto& s) { return s.get() == shard; });
    return static_cast<std::uint16_t>(it - shards_.begin());
}

RedisBackplane::Shard* RedisBackplane::shardAt(const config::RedisAddress& address) {
    for (auto& s : shards_)
        if (s->address.host == address.host && s->address.port == address.port) return s.get();
    return nullptr;
}

bool RedisBackplane::command(const std::string& channel, const std::vector<std::string_view>& argv, ReplyFn done,
                             std::chrono::milliseconds timeout) {
    Shard* shard = up_ ? shardOf(channel) : nullptr;
    if (!shard) return false;
    auto call = std::make_shared<Call>();
    call->argv = std::vector<std::string>(argv.begin(), argv.end());
    if (argv[0] == "EVALSHA") call->script = argv[1].data();
    call->done = std::move(done);
    call->timeout = timeout;
    return send(*shard->commands, call, false);
}

bool RedisBackplane::send(RedisConnection& to, const std::shared_ptr<Call>& call, bool asking) {
    std::vector<std::string_view> argv(call->argv.begin(), call->argv.end());
    if (call->script) {
        // By its SHA-1 (Redis keeps the scripts loaded at onUp), or its text if Redis forgot it
        // (SCRIPT FLUSH, a restarted node).
        argv[0] = call->with_text ? "EVAL" : "EVALSHA";
        if (!call->with_text) argv[1] = shaOf(call->script);
    }
    call->last = &to;
    if (asking && !to.command({"ASKING"}, [](const redisReply*) {})) return false;
    return to.command(argv, [this, call](const redisReply* reply) { onCallReply(call, reply); }, call->timeout);
}

void RedisBackplane::onCallReply(const std::shared_ptr<Call>& call, const redisReply* reply) {
    if (reply && reply->type == REDIS_REPLY_ERROR && call->hops < kMaxRedirects) {
        const std::string_view error(reply->str, reply->len);
        RedisConnection* next = nullptr;
        bool asking = false;
        cluster::Redirect redirect;
        if (error.substr(0, 8) == "NOSCRIPT" && call->script && !call->with_text) {
            call->with_text = true;
            next = call->last;
        } else if (cluster_ && cluster::parseRedirect(error, redirect)) {
            // Redis Cluster specification, "Redirection and resharding": MOVED is for good
            // (the map is stale), ASK for this command only, preceded by ASKING.
            config::RedisAddress a;
            a.host = redirect.node.host.empty() ? settings_.address.host : redirect.node.host;
            a.port = redirect.node.port;
            Shard* target = shardAt(a);
            if (!redirect.ask) {
                if (target) slots_[redirect.slot] = shardIndex(target);
                refreshSlots();
            }
            if (target && target->commands->up()) {
                next = target->commands;
                asking = redirect.ask;
            }
        }
        if (next) {
            ++call->hops;
            if (send(*next, call, asking)) return;
        }
    }
    call->done(reply);
}

void RedisBackplane::onUp() {
    if (up_) return;
    up_ = true;
    for (auto& shard : shards_) {
        for (const char* script : {scripts::kPublish, scripts::kReplay, scripts::kInfo})
            shard->commands->command({"SCRIPT", "LOAD", script}, [](const redisReply*) {});
        shard->probe_outstanding = false;
        if (!shard->probe_channel.empty())
            shard->subscriptions->subscribe(shard->probe_channel, cluster_);  // first: see subscribe()
    }
    attempts_ = 0;
    state_->workerUp();
    if (was_up_) state_->countReconnect();
    resync_pending_ = was_up_;
    was_up_ = true;
    unconfirmed_ = 0;
    unsubscribing_.clear();
    for (auto& [channel, c] : channels_) {
        c.confirmed = false;
        c.refreshed = {};
        subscribeInRedis(channel);
    }
    if (unconfirmed_ == 0) finishResync();
}

void RedisBackplane::subscribeInRedis(const std::string& channel) {
    Shard* shard = shardOf(channel);
    if (shard && shard->subscriptions->subscribe(redisChannel(channel), cluster_) && resync_pending_)
        ++unconfirmed_;
}

void RedisBackplane::finishResync() {
    if (!resync_pending_) return;
    resync_pending_ = false;
    // Whatever was published while we were away comes from history (or is reported lost).
    if (sink_) sink_->onBackplaneResync();
}

void RedisBackplane::onDown(const std::string& why) {
    if (dropping_) return;  // a connection dropped below reports back
    if (up_) {
        up_ = false;
        state_->workerDown(why);
    } else {
        state_->noteFailure(why);
    }
    // Every connection goes together: a publish without its subscriptions (or one shard without
    // the others) would leave this worker half in the cluster.
    for (auto& [channel, c] : channels_) c.confirmed = false;
    unconfirmed_ = 0;
    discovered_ = false;
    dropping_ = true;
    for (auto& c : connections_) c->drop(why);
    dropping_ = false;
    scheduleReconnect();
}

void RedisBackplane::scheduleReconnect() {
    if (evtimer_pending(reconnect_timer_.get(), nullptr)) return;
    // Exponential backoff, capped, with jitter (half to all of it) so that the nodes of a
    // cluster do not come back in step after Redis restarts.
    const unsigned shift = std::min(attempts_, 10u);
    const auto full = std::min<std::chrono::milliseconds>(kBackoffMax, kBackoffFirst * (1u << shift));
    std::uniform_int_distribution<long long> jitter(full.count() / 2, full.count());
    ++attempts_;
    net::addTimerOnce(reconnect_timer_.get(), std::chrono::milliseconds(jitter(random_)));
}

void RedisBackplane::onReconnect(int, short, void* arg) { static_cast<RedisBackplane*>(arg)->connectSeed(); }

void RedisBackplane::onProbe(int, short, void* arg) {
    auto* self = static_cast<RedisBackplane*>(arg);
    if (!self->up_) return;
    for (auto& shard : self->shards_) {
        if (shard->probe_channel.empty()) continue;
        if (shard->probe_outstanding) {
            // The last probe, published a whole interval ago, never came back: the subscription
            // is silent (a failover that kept the socket but not the subscription).
            self->state_->countSilent();
            LOG_WARN("pubsub backplane: the redis subscription is silent (a probe did not come back); reconnecting");
            return self->onDown("silent subscription");
        }
        shard->probe_outstanding = true;
        shard->commands->command({self->verb("PUBLISH", "SPUBLISH"), shard->probe_channel, "probe"},
                                 [](const redisReply*) {});
    }
}

// Keys of channels with subscribers here must not expire between publishes: renew their TTL
// every third of it (EXPIRE on a key that is gone does nothing: the next publish makes a new
// epoch, which the subscribers see as history_lost).
void RedisBackplane::onRefresh(int, short, void* arg) {
    auto* self = static_cast<RedisBackplane*>(arg);
    self->refreshTtls();
    self->countSubscribeCallbacks();
}

void RedisBackplane::countSubscribeCallbacks() {
    std::int64_t held = 0;
    for (const auto& shard : shards_) held += static_cast<std::int64_t>(shard->subscriptions->heldCallbacks());
    state_->addSubscribeCallbacks(held - subscribe_callbacks_);
    subscribe_callbacks_ = held;
}

void RedisBackplane::refreshTtls() {
    if (!up_) return;
    const auto now = std::chrono::steady_clock::now();
    for (auto& [channel, c] : channels_) {
        if (now - c.refreshed < c.ttl / 3) continue;
        c.refreshed = now;
        const std::string ttl = std::to_string(c.ttl.count());
        for (const char* suffix : {":meta", ":stream"})
            command(channel, {"EXPIRE", key(channel, suffix), ttl}, [](const redisReply*) {}, {});
    }
}

}  // namespace portico::pubsub
