// SPDX-License-Identifier: Apache-2.0
#include "portico/pubsub/redis_backplane.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <cstring>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"
#include "portico/observe/metrics.h"
#include "pubsub/redis_backplane_parts.h"
#include "pubsub/redis_cluster.h"

namespace portico::pubsub {

namespace {

constexpr std::string_view kNoSender = "-";

std::string_view text(const redisReply* r) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? std::string_view(r->str, r->len)
                                                                                 : std::string_view{};
}

// An integer reply, or a string holding one (HMGET's values).
std::uint64_t number(const redisReply* r) {
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer > 0 ? static_cast<std::uint64_t>(r->integer) : 0;
    std::uint64_t value = 0;
    std::string_view t = text(r);
    std::from_chars(t.data(), t.data() + t.size(), value);
    return value;
}

bool isArray(const redisReply* r, std::size_t at_least) {
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= at_least;
}

std::string randomId(std::mt19937& random, std::size_t length) {
    static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::string id(length, '0');
    for (char& c : id) c = kDigits[random() % 36];
    return id;
}

// Whole seconds, rounded up, at least 1 (EXPIRE's unit).
std::chrono::seconds wholeSeconds(config::Duration d) {
    return std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(d));
}

std::string seconds(config::Duration d) { return std::to_string(wholeSeconds(d).count()); }

}  // namespace

// ---- the process-wide state ---------------------------------------------------------------------

void RedisBackplaneState::report(const void* worker, std::vector<ShardHealth> shards, const std::string& why) {
    std::lock_guard lock(mutex_);
    workers_[worker] = std::move(shards);
    update(why);
}

void RedisBackplaneState::forget(const void* worker) {
    std::lock_guard lock(mutex_);
    workers_.erase(worker);
    update({});
}

void RedisBackplaneState::update(const std::string& why) {
    std::set<std::string> down;  // "" when a worker has no shard up
    for (const auto& [worker, shards] : workers_) {
        if (std::none_of(shards.begin(), shards.end(), [](const ShardHealth& s) { return s.up; })) {
            down.insert("");
            continue;
        }
        for (const ShardHealth& s : shards)
            if (!s.up) down.insert(s.address);
    }
    level_.store(down.empty() ? 0 : down.count("") ? 2 : 1);
    for (const std::string& outage : down) {
        if (why.empty() || !logged_.insert(outage).second) continue;
        if (outage.empty())
            LOG_ERROR("pubsub backplane: redis %s is down (%s); publishes answer 503 and subscribers wait until it is back",
                      target_.c_str(), why.c_str());
        else
            LOG_ERROR("pubsub backplane: redis shard %s is down (%s); publishes to its channels answer 503 and their "
                      "subscribers wait until it is back",
                      outage.c_str(), why.c_str());
    }
    for (auto it = logged_.begin(); it != logged_.end();) {
        if (down.count(*it)) {
            ++it;
            continue;
        }
        if (it->empty())
            LOG_WARN("pubsub backplane: redis %s is back; subscribers catch up from history", target_.c_str());
        else
            LOG_WARN("pubsub backplane: redis shard %s is back; its subscribers catch up from history", it->c_str());
        announced_ = true;
        it = logged_.erase(it);
    }
    if (down.empty() && !announced_) {
        announced_ = true;
        LOG_INFO("pubsub backplane: connected to redis %s", target_.c_str());
    }
}

const char* RedisBackplaneState::health() const {
    static constexpr const char* kNames[] = {"up", "partial", "down"};
    return kNames[level_.load()];
}

// Every shard some worker knows, down when some worker has it down.
static std::map<std::string, bool> shardStates(const std::map<const void*, std::vector<RedisBackplaneState::ShardHealth>>& workers) {
    std::map<std::string, bool> up;
    for (const auto& [worker, shards] : workers)
        for (const auto& s : shards) {
            auto [it, fresh] = up.emplace(s.address, s.up);
            if (!fresh) it->second = it->second && s.up;
        }
    return up;
}

std::string RedisBackplaneState::downShards() const {
    std::lock_guard lock(mutex_);
    std::string list;
    if (level_.load() != 1) return list;
    for (const auto& [address, up] : shardStates(workers_))
        if (!up) list.append(list.empty() ? "" : " ").append(address);
    return list;
}

void RedisBackplaneState::stats(observe::ProcessInfo& info) const {
    observe::PubSubStats& s = info.pubsub;
    s.backplane = health();
    s.backplane_reconnects = reconnects_.load(std::memory_order_relaxed);
    s.backplane_publish_failures = publish_failures_.load(std::memory_order_relaxed);
    s.backplane_silent = silent_.load(std::memory_order_relaxed);
    s.backplane_subscribe_callbacks =
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, subscribe_callbacks_.load(std::memory_order_relaxed)));
    std::lock_guard lock(mutex_);
    for (const auto& [address, up] : shardStates(workers_)) s.backplane_shards.emplace_back(address, up);
}

// ---- setup and connection state -----------------------------------------------------------------

RedisBackplane::RedisBackplane(net::EventLoop& loop, const config::BackplaneSettings& settings, std::string password,
                               std::shared_ptr<PubSubRegistry> registry, std::shared_ptr<RedisBackplaneState> state)
    : loop_(loop),
      settings_(settings),
      password_(std::move(password)),
      registry_(std::move(registry)),
      state_(std::move(state)),
      handler_(std::make_unique<Connections>(*this)),
      reconnect_timer_(loop.base(), -1, 0, &RedisBackplane::onReconnect, this),
      probe_timer_(loop.base(), -1, EV_PERSIST, &RedisBackplane::onProbe, this),
      refresh_timer_(loop.base(), -1, EV_PERSIST, &RedisBackplane::onRefresh, this),
      random_(std::random_device{}()) {
    seeds_.push_back(settings_.address);
    node_ = randomId(random_, 12);
    state_->report(this, {});  // down until a shard is up
}

RedisBackplane::~RedisBackplane() {
    // The connections first: they call nobody back while they go.
    shards_.clear();
    connections_.clear();
    registry_->detach(this);
    state_->addSubscribeCallbacks(-subscribe_callbacks_);
    state_->forget(this);
}

void RedisBackplane::start(BackplaneSink& sink) {
    sink_ = &sink;
    net::addTimer(loop_, probe_timer_.get(), kProbeInterval);
    net::addTimer(loop_, refresh_timer_.get(), refresh_tick_);
    connectSeed();
}

std::string RedisBackplane::key(const std::string& channel, std::string_view suffix) const {
    std::string k = settings_.key_prefix + ":{" + channel + "}";
    k.append(suffix);
    return k;
}

std::string RedisBackplane::redisChannel(const std::string& channel) const { return key(channel, {}); }

std::string RedisBackplane::channelOf(std::string_view redis_channel) const {
    const std::string_view prefix = settings_.key_prefix;
    if (redis_channel.size() < prefix.size() + 3 || redis_channel.substr(0, prefix.size()) != prefix ||
        redis_channel.substr(prefix.size(), 2) != ":{" || redis_channel.back() != '}')
        return {};
    return std::string(redis_channel.substr(prefix.size() + 2, redis_channel.size() - prefix.size() - 3));
}

// ---- what arrives on the subscribe connections --------------------------------------------------

void RedisBackplane::onPush(RedisConnection& connection, const redisReply& push) {
    if (push.type == REDIS_REPLY_ERROR) {
        // A refused SSUBSCRIBE: MOVED after a resharding, or CLUSTERDOWN.
        LOG_WARN("pubsub backplane: redis refused a subscription: %s", push.str);
        refreshSlots();  // a MOVED: the shard reconnects once the map is read again
        if (Shard* shard = shardWith(connection)) onShardDown(*shard, "subscription refused");
        return;
    }
    if (!isArray(&push, 3)) return;
    const std::string_view type = text(push.element[0]);
    const std::string_view channel = text(push.element[1]);
    // Against a cluster only the sharded replies count (the classic SUBSCRIBE of the same name is
    // hiredis's routing, see RedisConnection::subscribe).
    if (type == verb("message", "smessage")) {
        for (auto& shard : shards_)
            if (channel == shard->probe_channel) {
                // A round trip through Redis: this shard works, its next outage backs off anew.
                shard->probe_outstanding = false;
                shard->attempts = 0;
                attempts_ = 0;
                return;
            }
        onMessage(channel, text(push.element[2]));
    } else if (type == verb("subscribe", "ssubscribe")) {
        onConfirmed(connection, channel);
    } else if (type == "sunsubscribe") {
        onServerUnsubscribed(connection, channel);
    }
}

// Redis unsubscribes a shard channel itself when its slot moves to another master (Redis 7: the
// master that loses a slot sends SUNSUBSCRIBE for its shard channels). A channel still wanted
// here (no SUNSUBSCRIBE of ours pending) is subscribed again on its new master once the slot
// map is read again, and the subscribers catch up from history (messages published meanwhile
// came to neither subscription).
void RedisBackplane::onServerUnsubscribed(RedisConnection& connection, std::string_view redis_channel) {
    const std::string channel = channelOf(redis_channel);
    auto pending = unsubscribing_.find(channel);
    if (pending != unsubscribing_.end()) {
        if (--pending->second == 0) unsubscribing_.erase(pending);
        return;
    }
    if (channel.empty()) {  // its probe is elsewhere now: the shard starts over
        if (Shard* shard = shardWith(connection)) onShardDown(*shard, "a probe channel's slot moved");
        return;
    }
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    connection.unsubscribe(redis_channel, false);  // hiredis's routing name there (see subscribe)
    it->second.confirmed = false;
    moved_.push_back(channel);
    refreshSlots();
}

void RedisBackplane::onConfirmed(RedisConnection& connection, std::string_view redis_channel) {
    const std::string channel = channelOf(redis_channel);
    if (channel.empty()) return;  // a probe channel
    auto it = channels_.find(channel);
    if (it != channels_.end() && !it->second.confirmed) {
        it->second.confirmed = true;
        answerWaiting(channel);
    }
    Shard* shard = shardWith(connection);
    if (shard && shard->unconfirmed > 0 && --shard->unconfirmed == 0) finishResync(*shard);
}

void RedisBackplane::onMessage(std::string_view redis_channel, std::string_view payload) {
    // "<seq> <epoch> <t|b> <sender>\n<data>": parsed without trusting it (a stranger may PUBLISH
    // on our channels).
    const std::string channel = channelOf(redis_channel);
    if (channel.empty()) return;
    const std::size_t newline = payload.find('\n');
    if (newline == std::string_view::npos) return;
    std::string_view head = payload.substr(0, newline);
    std::string_view fields[4];
    for (std::size_t i = 0; i < 4; ++i) {
        const std::size_t space = head.find(' ');
        fields[i] = head.substr(0, space);
        head = space == std::string_view::npos ? std::string_view{} : head.substr(space + 1);
    }
    auto message = std::make_shared<Message>();
    auto [end, ec] = std::from_chars(fields[0].data(), fields[0].data() + fields[0].size(), message->seq);
    if (ec != std::errc() || message->seq == 0 || fields[1].empty() || fields[2].empty()) return;
    message->epoch = std::string(fields[1]);
    message->text = fields[2] == "t";
    // Our own subscriber's message: "<node>:<address>" of this worker.
    if (fields[3].size() > node_.size() + 1 && fields[3].substr(0, node_.size()) == node_ && fields[3][node_.size()] == ':') {
        std::uintptr_t address = 0;
        std::string_view hex = fields[3].substr(node_.size() + 1);
        if (std::from_chars(hex.data(), hex.data() + hex.size(), address, 16).ec == std::errc())
            message->sender = reinterpret_cast<const void*>(address);
    }
    message->payload = std::string(payload.substr(newline + 1));
    if (sink_) sink_->onBackplaneMessage(channel, message);
}

// ---- the operations -----------------------------------------------------------------------------

void RedisBackplane::publish(PublishRequest request, PublishDone done) {
    PublishResult result = registry_->admitPublish(request.channel, *request.settings, request.sender);
    if (result.refused != Refusal::None) return done(result);
    const config::PubSubSettings& s = *request.settings;
    char sender[64];
    if (request.sender)
        std::snprintf(sender, sizeof sender, "%s:%" PRIxPTR, node_.c_str(), reinterpret_cast<std::uintptr_t>(request.sender));
    else
        std::snprintf(sender, sizeof sender, "%.*s", static_cast<int>(kNoSender.size()), kNoSender.data());
    const std::string meta = key(request.channel, ":meta"), stream = key(request.channel, ":stream");
    const std::string idem = request.idempotency_key.empty() ? std::string() : key(request.channel, ":idem:" + request.idempotency_key);
    const std::string epoch = randomId(random_, 8), maxlen = std::to_string(s.history),
                      ttl = seconds(std::max(s.history_ttl, s.channel_idle_timeout)), channel = redisChannel(request.channel),
                      idem_ttl = seconds(kIdempotencyTtl), max_bytes = std::to_string(s.history_bytes),
                      overhead = std::to_string(PubSubRegistry::kMessageOverhead);
    std::vector<std::string_view> argv{"EVALSHA", scripts::kPublish, idem.empty() ? "2" : "3", meta, stream, idem,
                                      epoch, request.payload, request.text ? "t" : "b", sender, maxlen, ttl, channel,
                                      idem_ttl, verb("PUBLISH", "SPUBLISH"), max_bytes, overhead};
    if (idem.empty()) argv.erase(argv.begin() + 5);  // no third key
    auto fail = [this](PublishResult& r) {
        state_->countPublishFailure();
        r.refused = Refusal::Unavailable;
        r.retry_after = std::chrono::seconds(1);
    };
    if (!command(request.channel, argv,
                                    [this, result, done, fail](const redisReply* reply) mutable {
                                        if (!isArray(reply, 3)) {
                                            std::uint64_t suppressed = 0;
                                            if (reply && reply->type == REDIS_REPLY_ERROR &&
                                                publish_error_log_.allow(std::chrono::steady_clock::now(), suppressed))
                                                LOG_WARN("pubsub backplane: redis refused a publish, answered 503: %s (%llu "
                                                         "more refusals not logged)",
                                                         reply->str, static_cast<unsigned long long>(suppressed));
                                            fail(result);
                                            return done(result);
                                        }
                                        result.seq = number(reply->element[0]);
                                        result.epoch = std::string(text(reply->element[1]));
                                        result.duplicate = number(reply->element[2]) != 0;
                                        done(result);
                                    },
                                    settings_.publish_timeout)) {
        std::uint64_t suppressed = 0;
        if (reaches(request.channel) && pending_bytes_log_.allow(std::chrono::steady_clock::now(), suppressed))
            LOG_WARN("pubsub backplane: redis has not answered max_pending_bytes of commands yet; a publish answered "
                     "503 at once (%llu more refusals not logged)",
                     static_cast<unsigned long long>(suppressed));
        fail(result);
        done(result);
    }
}

void RedisBackplane::subscribe(const std::string& channel, const config::PubSubSettings& settings, SubscribeDone done) {
    std::uint64_t local_seq = 0;
    if (!registry_->subscribe(channel, this, settings, local_seq)) return done(false, Position{});
    Channel& c = channels_[channel];
    c.waiting.push_back(std::move(done));
    if (++c.subscribers == 1) {
        // The position is read once Redis confirms the subscription (onConfirmed): then every
        // later message reaches us. While down, the subscriber waits for the reconnect.
        c.ttl = wholeSeconds(std::max(settings.history_ttl, settings.channel_idle_timeout));
        const auto third = std::chrono::duration_cast<std::chrono::milliseconds>(c.ttl) / 3;
        if (third < refresh_tick_) {
            refresh_tick_ = third;
            if (sink_) net::addTimer(loop_, refresh_timer_.get(), refresh_tick_);  // else start() adds it
        }
        subscribeInRedis(channel, false);  // or when its shard is up
        return;
    }
    if (c.confirmed) answerWaiting(channel);
}

void RedisBackplane::answerWaiting(const std::string& channel) {
    command(channel, {"HMGET", key(channel, ":meta"), "epoch", "seq"}, [this, channel](const redisReply* reply) {
        // Without an answer the subscribers wait: the reconnect confirms and asks again.
        if (!isArray(reply, 2)) return;
        auto it = channels_.find(channel);
        if (it == channels_.end()) return;
        Position top;
        top.epoch = std::string(text(reply->element[0]));
        top.seq = number(reply->element[1]);
        std::vector<SubscribeDone> waiting = std::move(it->second.waiting);
        it->second.waiting.clear();
        for (auto& done : waiting) done(true, top);
    }, {});
}

void RedisBackplane::unsubscribe(const std::string& channel) {
    registry_->unsubscribe(channel, this);
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    if (--it->second.subscribers > 0) return;
    channels_.erase(it);
    Shard* shard = shardOf(channel);
    if (shard && shard->state == Shard::State::Up && shard->subscriptions->unsubscribe(redisChannel(channel), cluster_) &&
        cluster_)
        ++unsubscribing_[channel];
}

bool RedisBackplane::admits(const std::string& channel) { return registry_->admits(channel); }

bool RedisBackplane::reaches(const std::string& channel) {
    const Shard* shard = shardOf(channel);
    return shard && shard->state == Shard::State::Up;
}

void RedisBackplane::replay(const ReplayRequest& request, ReplayDone done) {
    const std::string meta = key(request.channel, ":meta"), stream = key(request.channel, ":stream"),
                      after = std::to_string(request.after), count = std::to_string(request.max_messages);
    auto unavailable = [done]() mutable {
        ReplaySlice slice;
        slice.unavailable = true;
        done(slice);
    };
    const config::Duration ttl = request.history_ttl;  // on Redis's clock, see below
    const bool sent =
        command(request.channel,
                   {"EVALSHA", scripts::kReplay, "2", meta, stream, after, count},
                   [request, done, unavailable, ttl](const redisReply* reply) mutable {
                       if (!isArray(reply, 4) || !isArray(reply->element[3], 0)) return unavailable();
                       ReplaySlice slice;
                       slice.epoch = std::string(text(reply->element[0]));
                       slice.top = number(reply->element[1]);
                       const std::uint64_t now_ms = number(reply->element[2]);
                       slice.cursor = request.after;
                       if (!request.epoch.empty() && slice.epoch != request.epoch) {
                           slice.lost = slice.done = true;  // flushed, evicted or expired
                           slice.cursor = slice.top;
                           return done(slice);
                       }
                       std::size_t used = 0;
                       std::uint64_t expected = request.after + 1;
                       const redisReply* entries = reply->element[3];
                       for (std::size_t i = 0; i < entries->elements; ++i) {
                           const redisReply* e = entries->element[i];
                           if (!isArray(e, 2) || !isArray(e->element[1], 0)) continue;
                           std::string_view id = text(e->element[0]);
                           std::uint64_t seq = 0;
                           if (id.substr(0, 2) != "0-" ||
                               std::from_chars(id.data() + 2, id.data() + id.size(), seq).ec != std::errc())
                               continue;
                           auto m = std::make_shared<Message>();
                           m->seq = seq;
                           m->epoch = slice.epoch;
                           std::uint64_t at_ms = 0;
                           const redisReply* f = e->element[1];
                           for (std::size_t j = 0; j + 1 < f->elements; j += 2) {
                               std::string_view name = text(f->element[j]);
                               if (name == "d") m->payload = std::string(text(f->element[j + 1]));
                               else if (name == "t") m->text = text(f->element[j + 1]) == "t";
                               else if (name == "ms") at_ms = number(f->element[j + 1]);
                           }
                           // history_ttl, on Redis's clock: an older message counts as not kept
                           // (they come first: the stream is in publish order).
                           if (ttl.count() > 0 && now_ms > at_ms &&
                               now_ms - at_ms >= static_cast<std::uint64_t>(ttl.count())) {
                               slice.gap = true;
                               slice.cursor = seq;
                               expected = seq + 1;
                               continue;
                           }
                           const std::size_t size = m->payload.size() + 14;  // RFC 6455 5.2: header
                           if (slice.messages.size() >= request.max_messages || used + size > request.max_bytes) {
                               slice.next_bytes = size;
                               break;
                           }
                           if (seq != expected) slice.gap = true;  // not kept (MAXLEN, TTL, expiry)
                           used += size;
                           expected = seq + 1;
                           slice.cursor = seq;
                           slice.messages.push_back(std::move(m));
                       }
                       if (slice.next_bytes == 0 && slice.cursor < slice.top &&
                           entries->elements < request.max_messages) {
                           // Everything left after the cursor is gone from the stream.
                           slice.gap = true;
                           slice.cursor = slice.top;
                       }
                       slice.done = slice.cursor >= slice.top;
                       done(slice);
                   },
                   settings_.publish_timeout);
    if (!sent) unavailable();
}

void RedisBackplane::info(const std::string& channel, InfoDone done) {
    ChannelInfo local = registry_->info(channel);
    const std::string meta = key(channel, ":meta"), stream = key(channel, ":stream");
    const bool sent = command(channel, {"EVALSHA", scripts::kInfo, "2", meta, stream},
                                                [local, done](const redisReply* reply) mutable {
                                                    if (!isArray(reply, 4)) return done(local, false);
                                                    ChannelInfo info;
                                                    info.subscribers = local.subscribers;  // this node's
                                                    info.epoch = std::string(text(reply->element[0]));
                                                    info.seq = number(reply->element[1]);
                                                    info.history = number(reply->element[2]);
                                                    info.oldest = number(reply->element[3]);
                                                    done(info, true);
                                                },
                                                settings_.publish_timeout);
    if (!sent) done(local, false);
}

void RedisBackplane::stats(observe::ProcessInfo& info) {
    registry_->stats(info);
    state_->stats(info);
}

}  // namespace portico::pubsub
