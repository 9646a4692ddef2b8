// SPDX-License-Identifier: Apache-2.0
#include "portico/pubsub/redis_backplane.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <cstring>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"
#include "portico/observe/metrics.h"
#include "pubsub/redis_connection.h"
#include "pubsub/redis_scripts.h"

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

// The SHA-1 that EVALSHA names a script by (hex, as SCRIPT LOAD answers).
std::string scriptSha(const char* script) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(script), std::strlen(script), digest);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned char b : digest) {
        hex.push_back(kHex[b >> 4]);
        hex.push_back(kHex[b & 15]);
    }
    return hex;
}

// Computed once per script (thread-safe function-local statics).
const std::string& shaOf(std::string_view script) {
    static const std::string publish = scriptSha(scripts::kPublish), replay = scriptSha(scripts::kReplay),
                             info = scriptSha(scripts::kInfo);
    if (script.data() == scripts::kPublish) return publish;
    if (script.data() == scripts::kReplay) return replay;
    return info;
}

std::string seconds(config::Duration d) {
    const long long s = std::chrono::duration_cast<std::chrono::seconds>(d + std::chrono::milliseconds(999)).count();
    return std::to_string(std::max<long long>(1, s));
}

}  // namespace

// ---- the process-wide state ---------------------------------------------------------------------

void RedisBackplaneState::workerDown(const std::string& why) {
    down_.fetch_add(1);
    noteFailure(why);
}

void RedisBackplaneState::noteFailure(const std::string& why) {
    std::lock_guard lock(log_mutex_);
    if (logged_down_) return;
    logged_down_ = true;
    LOG_ERROR("pubsub backplane: redis %s is down (%s); publishes answer 503 and subscribers wait until it is back",
              target_.c_str(), why.c_str());
}

void RedisBackplaneState::workerUp() {
    if (down_.fetch_sub(1) != 1) return;
    std::lock_guard lock(log_mutex_);
    if (!logged_down_) {
        LOG_INFO("pubsub backplane: connected to redis %s", target_.c_str());
        return;
    }
    logged_down_ = false;
    LOG_WARN("pubsub backplane: redis %s is back; subscribers catch up from history", target_.c_str());
}

void RedisBackplaneState::stats(observe::ProcessInfo& info) const {
    observe::PubSubStats& s = info.pubsub;
    s.backplane = up() ? "up" : "down";
    s.backplane_reconnects = reconnects_.load(std::memory_order_relaxed);
    s.backplane_publish_failures = publish_failures_.load(std::memory_order_relaxed);
    s.backplane_silent = silent_.load(std::memory_order_relaxed);
}

// ---- the connections' handler -------------------------------------------------------------------

class RedisBackplane::Connections final : public RedisConnection::Handler {
public:
    explicit Connections(RedisBackplane& owner) : owner_(owner) {}
    void onRedisUp(RedisConnection&) override {
        if (owner_.commands_->up() && owner_.subscriptions_->up()) owner_.onUp();
    }
    void onRedisDown(RedisConnection&, const std::string& why) override { owner_.onDown(why); }
    void onRedisPush(RedisConnection&, const redisReply& push) override { owner_.onPush(push); }

private:
    RedisBackplane& owner_;
};

// ---- setup and connection state -----------------------------------------------------------------

RedisBackplane::RedisBackplane(net::EventLoop& loop, const config::BackplaneSettings& settings, std::string password,
                               std::shared_ptr<PubSubRegistry> registry, std::shared_ptr<RedisBackplaneState> state)
    : loop_(loop),
      settings_(settings),
      registry_(std::move(registry)),
      state_(std::move(state)),
      handler_(std::make_unique<Connections>(*this)),
      reconnect_timer_(evtimer_new(loop.base(), &RedisBackplane::onReconnect, this)),
      probe_timer_(event_new(loop.base(), -1, EV_PERSIST, &RedisBackplane::onProbe, this)),
      random_(std::random_device{}()) {
    commands_ = std::make_unique<RedisConnection>(loop, settings_, password, *handler_);
    subscriptions_ = std::make_unique<RedisConnection>(loop, settings_, password, *handler_);
    node_ = randomId(random_, 12);
    probe_channel_ = settings_.key_prefix + ":probe:" + node_;
    state_->countWorker();
}

RedisBackplane::~RedisBackplane() {
    // The connections first: they call nobody back while they go.
    subscriptions_.reset();
    commands_.reset();
    registry_->detach(this);
    if (!up_) state_->forgetWorker();  // a worker that goes leaves the count as it found it
}

void RedisBackplane::start(BackplaneSink& sink) {
    sink_ = &sink;
    net::addTimer(loop_, probe_timer_.get(), kProbeInterval);
    commands_->connect();
    subscriptions_->connect();
}

std::string RedisBackplane::key(const std::string& channel, std::string_view suffix) const {
    std::string k = settings_.key_prefix + ":{" + channel + "}";
    k.append(suffix);
    return k;
}

std::string RedisBackplane::redisChannel(const std::string& channel) const { return key(channel, {}); }

// argv is {"EVALSHA", <script text>, numkeys, ...}: sent by its SHA-1 (Redis keeps the
// scripts loaded at onUp), and once more with the text itself if Redis forgot it (SCRIPT FLUSH).
bool RedisBackplane::evalScript(std::vector<std::string_view> argv, RedisConnection::ReplyFn done,
                                std::chrono::milliseconds timeout) {
    const std::string_view script = argv[1];
    const std::string& sha = shaOf(script);
    std::vector<std::string> copy(argv.begin(), argv.end());  // for the retry
    argv[1] = sha;
    return commands_->command(
        argv,
        [this, copy = std::move(copy), done, timeout](const redisReply* reply) mutable {
            if (!reply || reply->type != REDIS_REPLY_ERROR || std::string_view(reply->str, reply->len).substr(0, 8) != "NOSCRIPT")
                return done(reply);
            std::vector<std::string_view> again(copy.begin(), copy.end());
            again[0] = "EVAL";
            if (!commands_->command(again, done, timeout)) done(nullptr);
        },
        timeout);
}

void RedisBackplane::onUp() {
    if (up_) return;
    up_ = true;
    for (const char* script : {scripts::kPublish, scripts::kReplay, scripts::kInfo})
        commands_->command({"SCRIPT", "LOAD", script}, [](const redisReply*) {});
    attempts_ = 0;
    state_->workerUp();
    if (was_up_) state_->countReconnect();
    resync_pending_ = was_up_;
    was_up_ = true;
    probe_outstanding_ = false;
    subscriptions_->subscribeCommand({"SUBSCRIBE", probe_channel_});
    unconfirmed_ = 0;
    for (auto& [channel, c] : channels_) {
        c.confirmed = false;
        const std::string name = redisChannel(channel);
        if (subscriptions_->subscribeCommand({"SUBSCRIBE", name})) ++unconfirmed_;
    }
    if (unconfirmed_ == 0) finishResync();
}

void RedisBackplane::finishResync() {
    if (!resync_pending_) return;
    resync_pending_ = false;
    // Whatever was published while we were away comes from history (or is reported lost).
    if (sink_) sink_->onBackplaneResync();
}

void RedisBackplane::onDown(const std::string& why) {
    if (up_) {
        up_ = false;
        state_->workerDown(why);
    } else {
        state_->noteFailure(why);
    }
    // Both connections go together: a publish without its subscriptions (or the reverse) would
    // leave this worker half in the cluster.
    for (auto& [channel, c] : channels_) c.confirmed = false;
    unconfirmed_ = 0;
    probe_outstanding_ = false;
    commands_->drop(why);
    subscriptions_->drop(why);
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

void RedisBackplane::onReconnect(int, short, void* arg) {
    auto* self = static_cast<RedisBackplane*>(arg);
    self->commands_->connect();
    self->subscriptions_->connect();
}

void RedisBackplane::onProbe(int, short, void* arg) {
    auto* self = static_cast<RedisBackplane*>(arg);
    if (!self->up_) return;
    if (self->probe_outstanding_) {
        // The last probe, published a whole interval ago, never came back: the subscription is
        // silent (a failover that kept the socket but not the subscription).
        self->state_->countSilent();
        LOG_WARN("pubsub backplane: the redis subscription is silent (a probe did not come back); reconnecting");
        self->onDown("silent subscription");
        return;
    }
    self->probe_outstanding_ = true;
    self->commands_->command({"PUBLISH", self->probe_channel_, "probe"}, [](const redisReply*) {});
}

// ---- what arrives on the subscribe connection ---------------------------------------------------

void RedisBackplane::onPush(const redisReply& push) {
    if (!isArray(&push, 3)) return;
    const std::string_view type = text(push.element[0]);
    const std::string_view channel = text(push.element[1]);
    if (type == "message") {
        if (channel == probe_channel_) {
            probe_outstanding_ = false;
            return;
        }
        onMessage(channel, text(push.element[2]));
    } else if (type == "subscribe") {
        onConfirmed(channel);
    }
}

void RedisBackplane::onConfirmed(std::string_view redis_channel) {
    if (redis_channel == probe_channel_) return;
    const std::string prefix = settings_.key_prefix + ":{";
    if (redis_channel.size() < prefix.size() + 1 || redis_channel.substr(0, prefix.size()) != prefix) return;
    const std::string channel(redis_channel.substr(prefix.size(), redis_channel.size() - prefix.size() - 1));
    auto it = channels_.find(channel);
    if (it != channels_.end() && !it->second.confirmed) {
        it->second.confirmed = true;
        answerWaiting(channel);
    }
    if (unconfirmed_ > 0 && --unconfirmed_ == 0) finishResync();
}

void RedisBackplane::onMessage(std::string_view redis_channel, std::string_view payload) {
    // "<seq> <epoch> <t|b> <sender>\n<data>": parsed without trusting it (a stranger may PUBLISH
    // on our channels).
    const std::string prefix = settings_.key_prefix + ":{";
    if (redis_channel.size() < prefix.size() + 1 || redis_channel.substr(0, prefix.size()) != prefix) return;
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
    const std::string channel(redis_channel.substr(prefix.size(), redis_channel.size() - prefix.size() - 1));
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
                      idem_ttl = seconds(kIdempotencyTtl);
    std::vector<std::string_view> argv{"EVALSHA", scripts::kPublish, idem.empty() ? "2" : "3", meta, stream};
    if (!idem.empty()) argv.push_back(idem);
    argv.insert(argv.end(), {epoch, request.payload, request.text ? "t" : "b", sender, maxlen, ttl, channel, idem_ttl});
    auto fail = [this](PublishResult& r) {
        state_->countPublishFailure();
        r.refused = Refusal::Unavailable;
        r.retry_after = std::chrono::seconds(1);
    };
    if (!up_ || !evalScript(argv,
                                    [result, done, fail](const redisReply* reply) mutable {
                                        if (!isArray(reply, 3)) {
                                            if (reply && reply->type == REDIS_REPLY_ERROR)
                                                LOG_WARN("pubsub backplane: publish failed: %s", reply->str);
                                            fail(result);
                                            return done(result);
                                        }
                                        result.seq = number(reply->element[0]);
                                        result.epoch = std::string(text(reply->element[1]));
                                        result.duplicate = number(reply->element[2]) != 0;
                                        done(result);
                                    },
                                    settings_.publish_timeout)) {
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
        if (up_) subscriptions_->subscribeCommand({"SUBSCRIBE", redisChannel(channel)});
        return;
    }
    if (c.confirmed) answerWaiting(channel);
}

void RedisBackplane::answerWaiting(const std::string& channel) {
    commands_->command({"HMGET", key(channel, ":meta"), "epoch", "seq"}, [this, channel](const redisReply* reply) {
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
    });
}

void RedisBackplane::unsubscribe(const std::string& channel) {
    registry_->unsubscribe(channel, this);
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    if (--it->second.subscribers > 0) return;
    channels_.erase(it);
    if (up_) subscriptions_->subscribeCommand({"UNSUBSCRIBE", redisChannel(channel)});
}

bool RedisBackplane::admits(const std::string& channel) { return registry_->admits(channel); }

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
        up_ && evalScript(
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
    const bool sent = up_ && evalScript({"EVALSHA", scripts::kInfo, "2", meta, stream},
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
