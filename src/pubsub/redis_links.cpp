// SPDX-License-Identifier: Apache-2.0
// RedisBackplane's links to Redis (redis_backplane.h): the seed and what CLUSTER SLOTS says of it,
// one shard (a command and a subscribe connection) per master, the commands sent to a channel's
// shard with their NOSCRIPT/MOVED/ASK follow-ups, each shard up and down with its reconnects (and
// the whole round from the seeds when none is up), the probes, and the TTL renewal of channels
// with subscribers. The operations and pushes are in
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

std::unique_ptr<RedisConnection> RedisBackplane::newConnection(const config::RedisAddress& address) {
    config::BackplaneSettings settings = settings_;
    settings.address.host = address.host;
    settings.address.port = address.port;
    settings.address.unix_path = address.unix_path;
    return std::make_unique<RedisConnection>(loop_, settings, password_, *handler_);
}

RedisConnection& RedisBackplane::addConnection(const config::RedisAddress& address) {
    connections_.push_back(newConnection(address));
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
    Shard* shard = shardWith(connection);
    if (shard && shard->commands->up() && shard->subscriptions->up()) onShardUp(*shard);
}

void RedisBackplane::onConnectionDown(RedisConnection& connection, const std::string& why) {
    if (dropping_) return;  // a connection dropped by onDown or onShardDown reports back
    if (!discovered_) return onDown(why);  // the seed, during discovery
    if (Shard* shard = shardWith(connection)) onShardDown(*shard, why);
    // Else the seed, kept after discovery though no master had its address: unused.
}

void RedisBackplane::discover() {
    // The first command of a connection that is up: only a context hiredis is freeing refuses
    // it, and then onConnectionDown follows.
    connections_.front()->command({"CLUSTER", "SLOTS"}, [this](const redisReply* reply) { onSlots(reply); },
                                  std::chrono::duration_cast<std::chrono::milliseconds>(settings_.connect_timeout),
                                  RedisConnection::Budget::Exempt);
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
        auto shard = newShard();
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
            auto shard = newShard();
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
    report();
    // connect() may fail at once (onShardDown, or onDown that clears discovered_): the rest of
    // that shard waits for its reconnect.
    for (auto& shard : shards_)
        for (RedisConnection* c : {shard->commands, shard->subscriptions})
            if (discovered_ && shard->state == Shard::State::Connecting) c->connect();
}

std::unique_ptr<RedisBackplane::Shard> RedisBackplane::newShard() {
    auto shard = std::make_unique<Shard>();
    shard->owner = this;
    shard->was_up = was_up_;
    shard->reconnect_timer.assign(loop_.base(), -1, 0, &RedisBackplane::onShardReconnect, shard.get());
    return shard;
}

// After a MOVED: read the map again. The same masters: only slots moved between them; other
// masters (a failover, a node added): everything reconnects and resubscribes.
void RedisBackplane::refreshSlots() {
    if (!cluster_ || refreshing_ || !discovered_) return;
    // Through any shard that is up (none: each shard's reconnect comes back here).
    const auto up = std::find_if(shards_.begin(), shards_.end(),
                                 [](const auto& s) { return s->state == Shard::State::Up; });
    if (up == shards_.end()) return;
    refreshing_ = (*up)->commands->command(
        {"CLUSTER", "SLOTS"},
        [this](const redisReply* reply) {
            refreshing_ = false;
            cluster::SlotMap map;
            if (!reply || !discovered_) return;  // that shard is down: its reconnect asks again
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
            for (const std::string& channel : moved)
                if (channels_.count(channel)) subscribeInRedis(channel, true);
        },
        std::chrono::duration_cast<std::chrono::milliseconds>(settings_.connect_timeout),
        RedisConnection::Budget::Exempt);
    // Not sent (a connection going down): the next MOVED or that shard's reconnect asks again.
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

RedisBackplane::Shard* RedisBackplane::shardWith(const RedisConnection& connection) {
    for (auto& s : shards_)
        if (s->commands == &connection || s->subscriptions == &connection) return s.get();
    return nullptr;
}

RedisBackplane::Shard* RedisBackplane::shardAt(const config::RedisAddress& address) {
    for (auto& s : shards_)
        if (s->address.host == address.host && s->address.port == address.port) return s.get();
    return nullptr;
}

bool RedisBackplane::command(const std::string& channel, const std::vector<std::string_view>& argv, ReplyFn done,
                             std::chrono::milliseconds timeout, bool control) {
    Shard* shard = shardOf(channel);
    if (!shard || shard->state != Shard::State::Up) return false;
    auto call = std::make_shared<Call>();
    call->argv = std::vector<std::string>(argv.begin(), argv.end());
    if (argv[0] == "EVALSHA") call->script = argv[1].data();
    call->done = std::move(done);
    call->timeout = timeout;
    call->control = control;
    return send(*shard->commands, call, false);
}

bool RedisBackplane::send(RedisConnection& to, const std::shared_ptr<Call>& call, bool asking) {
    std::vector<std::string_view> argv(call->argv.begin(), call->argv.end());
    if (call->script) {
        // By its SHA-1 (Redis keeps the scripts loaded at onShardUp), or its text if Redis forgot it
        // (SCRIPT FLUSH, a restarted node).
        argv[0] = call->with_text ? "EVAL" : "EVALSHA";
        if (!call->with_text) argv[1] = shaOf(call->script);
    }
    call->last = &to;
    using Budget = RedisConnection::Budget;
    Budget budget = call->control ? Budget::Exempt : Budget::Counted;
    if (asking) {
        // ASKING applies to the next command of the connection: the pair goes whole or not at
        // all (the command weighed before the ASKING goes, then not weighed again).
        if (budget == Budget::Counted && !to.fits(argv)) return false;
        if (!to.command({"ASKING"}, [](const redisReply*) {}, {}, Budget::Exempt)) return false;
        budget = Budget::Exempt;
    }
    return to.command(argv, [this, call](const redisReply* reply) { onCallReply(call, reply); }, call->timeout, budget);
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

void RedisBackplane::onShardUp(Shard& shard) {
    if (shard.state == Shard::State::Up) return;
    shard.state = Shard::State::Up;
    for (const char* script : {scripts::kPublish, scripts::kReplay, scripts::kInfo})
        shard.commands->command({"SCRIPT", "LOAD", script}, [](const redisReply*) {}, {},
                                RedisConnection::Budget::Exempt);
    shard.probe_outstanding = false;
    if (!shard.probe_channel.empty())
        shard.subscriptions->subscribe(shard.probe_channel, cluster_);  // first: see subscribe()
    if (shard.was_up) state_->countReconnect();
    const bool catch_up = shard.was_up;
    shard.was_up = was_up_ = true;
    shard.unconfirmed = 0;
    shard.resync.clear();
    for (auto it = unsubscribing_.begin(); it != unsubscribing_.end();)
        it = shardOf(it->first) == &shard ? unsubscribing_.erase(it) : std::next(it);
    report();
    for (auto& [channel, c] : channels_) {
        if (shardOf(channel) != &shard) continue;
        c.confirmed = false;
        c.refreshed = {};
        subscribeInRedis(channel, catch_up);
    }
}

bool RedisBackplane::subscribeInRedis(const std::string& channel, bool catch_up) {
    Shard* shard = shardOf(channel);
    if (!shard || shard->state != Shard::State::Up || !shard->subscriptions->subscribe(redisChannel(channel), cluster_))
        return false;
    if (catch_up) shard->resync.push_back(channel);
    if (!shard->resync.empty()) ++shard->unconfirmed;
    return true;
}

void RedisBackplane::finishResync(Shard& shard) {
    // Whatever was published while the channel was away comes from history (or is reported
    // lost). Channels that went since are skipped by the sink.
    std::vector<std::string> channels = std::move(shard.resync);
    shard.resync.clear();
    if (sink_)
        for (const std::string& channel : channels) sink_->onBackplaneResync(channel);
}

void RedisBackplane::report(const std::string& why) {
    std::vector<RedisBackplaneState::ShardHealth> shards;
    for (const auto& s : shards_) shards.push_back({s->name(), s->state == Shard::State::Up});
    state_->report(this, std::move(shards), why);
}

void RedisBackplane::onShardDown(Shard& shard, const std::string& why) {
    if (dropping_ || shard.state == Shard::State::Down) return;
    shard.state = Shard::State::Down;
    for (auto& [channel, c] : channels_)
        if (shardOf(channel) == &shard) c.confirmed = false;
    shard.unconfirmed = 0;
    shard.resync.clear();  // the next up catches every channel of the shard up
    dropping_ = true;
    shard.commands->drop(why);
    shard.subscriptions->drop(why);
    dropping_ = false;
    const bool none_left = std::all_of(shards_.begin(), shards_.end(),
                                       [](const auto& s) { return s->state == Shard::State::Down; });
    if (none_left) return onDown(why);
    report(why);
    net::addTimerOnce(shard.reconnect_timer.get(), backoff(shard.attempts));
}

void RedisBackplane::onShardReconnect(int, short, void* arg) {
    Shard& shard = *static_cast<Shard*>(arg);
    RedisBackplane& self = *shard.owner;
    if (!self.discovered_ || shard.state != Shard::State::Down) return;
    // Made again outside their callbacks; the seed's connection keeps its place in connections_.
    for (RedisConnection** c : {&shard.commands, &shard.subscriptions})
        for (auto& owned : self.connections_)
            if (owned.get() == *c) {
                owned = self.newConnection(shard.address);
                *c = owned.get();
                break;
            }
    shard.state = Shard::State::Connecting;
    shard.commands->connect();
    if (shard.state == Shard::State::Connecting) shard.subscriptions->connect();
    self.refreshSlots();  // a failover may have given its slots to another master
}

void RedisBackplane::onDown(const std::string& why) {
    if (dropping_) return;  // a connection dropped below reports back
    // Every connection goes: the next round starts from the seeds.
    for (auto& [channel, c] : channels_) c.confirmed = false;
    for (auto& shard : shards_) {
        shard->state = Shard::State::Down;
        event_del(shard->reconnect_timer.get());
    }
    discovered_ = false;
    report(why);
    dropping_ = true;
    for (auto& c : connections_) c->drop(why);
    dropping_ = false;
    scheduleReconnect();
}

std::chrono::milliseconds RedisBackplane::backoff(unsigned& attempts) {
    // Exponential backoff, capped, with jitter (half to all of it) so that the nodes of a
    // cluster do not come back in step after Redis restarts.
    const unsigned shift = std::min(attempts, 10u);
    const auto full = std::min<std::chrono::milliseconds>(kBackoffMax, kBackoffFirst * (1u << shift));
    std::uniform_int_distribution<long long> jitter(full.count() / 2, full.count());
    ++attempts;
    return std::chrono::milliseconds(jitter(random_));
}

void RedisBackplane::scheduleReconnect() {
    if (evtimer_pending(reconnect_timer_.get(), nullptr)) return;
    net::addTimerOnce(reconnect_timer_.get(), backoff(attempts_));
}

void RedisBackplane::onReconnect(int, short, void* arg) { static_cast<RedisBackplane*>(arg)->connectSeed(); }

void RedisBackplane::onProbe(int, short, void* arg) {
    auto* self = static_cast<RedisBackplane*>(arg);
    for (auto& shard : self->shards_) {
        if (shard->probe_channel.empty() || shard->state != Shard::State::Up) continue;
        if (shard->probe_outstanding) {
            // The last probe, published a whole interval ago, never came back: the subscription
            // is silent (a failover that kept the socket but not the subscription).
            self->state_->countSilent();
            LOG_WARN("pubsub backplane: the redis subscription to %s is silent (a probe did not come back); "
                     "reconnecting",
                     shard->name().c_str());
            self->onShardDown(*shard, "silent subscription");
            continue;
        }
        // Not weighed against max_pending_bytes: a Redis kept busy by publishes is not silent.
        // Outstanding only once sent (else the connection is going down: onShardDown follows).
        shard->probe_outstanding =
            shard->commands->command({self->verb("PUBLISH", "SPUBLISH"), shard->probe_channel, "probe"},
                                     [](const redisReply*) {}, {}, RedisConnection::Budget::Exempt);
    }
}

// Keys of channels with subscribers here must not expire between publishes: renew their TTL
// at most a third of it apart (EXPIRE on a key that is gone does nothing: the next publish makes
// a new epoch, which the subscribers see as history_lost, so one renewal missed loses them).
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
    if (!discovered_) return;
    const auto now = std::chrono::steady_clock::now();
    for (auto& [channel, c] : channels_) {
        // Renewed now unless it can wait for the next tick and still be within a third of its TTL.
        if (now - c.refreshed + refresh_tick_ <= c.ttl / 3) continue;
        const std::string ttl = std::to_string(c.ttl.count());
        // Control commands (not refused by max_pending_bytes); renewed only once both went
        // (not sent: the shard is down, and its up renews every channel).
        bool sent = true;
        for (const char* suffix : {":meta", ":stream"})
            sent = command(channel, {"EXPIRE", key(channel, suffix), ttl}, [](const redisReply*) {}, {}, true) && sent;
        if (sent) c.refreshed = now;
    }
}

}  // namespace portico::pubsub
