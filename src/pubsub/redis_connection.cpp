// SPDX-License-Identifier: Apache-2.0
#include "pubsub/redis_connection.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "portico/net/event_loop.h"

// noteAnswer frees entries of hiredis's own list, which only a 0.14 allocates with malloc and
// fills as described there. hiredis 1.2 knows the sharded commands: then this goes.
static_assert(HIREDIS_MAJOR == 0 && HIREDIS_MINOR == 14, "RedisConnection::noteAnswer is written for hiredis 0.14");

namespace portico::pubsub {

namespace {

std::string_view text(const redisReply* r) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? std::string_view(r->str, r->len)
                                                                                 : std::string_view{};
}

}  // namespace

RedisConnection::RedisConnection(net::EventLoop& loop, const config::BackplaneSettings& settings, std::string password,
                                 Handler& handler)
    : loop_(loop),
      settings_(settings),
      password_(std::move(password)),
      handler_(handler),
      connect_timer_(loop.base(), -1, 0, &RedisConnection::onConnectTimeout, this) {}

RedisConnection::~RedisConnection() {
    destroying_ = true;  // the callbacks hiredis runs while freeing call nobody back
    pending_.clear();
    if (ctx_) {
        redisAsyncContext* ctx = ctx_;
        ctx_ = nullptr;
        redisAsyncFree(ctx);
    }
}

void RedisConnection::connect() {
    if (ctx_) return;
    const config::RedisAddress& a = settings_.address;
    redisAsyncContext* ctx =
        a.unix_path.empty() ? redisAsyncConnect(a.host.c_str(), a.port) : redisAsyncConnectUnix(a.unix_path.c_str());
    if (!ctx || ctx->err) {
        const std::string why = ctx ? ctx->errstr : "out of memory";
        if (ctx) redisAsyncFree(ctx);
        handler_.onRedisDown(*this, why);
        return;
    }
    ctx->data = this;
    if (redisLibeventAttach(ctx, loop_.base()) != REDIS_OK) {
        redisAsyncFree(ctx);
        handler_.onRedisDown(*this, "cannot attach to the event loop");
        return;
    }
    ctx_ = ctx;
    redisAsyncSetConnectCallback(ctx, &RedisConnection::onConnect);
    redisAsyncSetDisconnectCallback(ctx, &RedisConnection::onDisconnect);
    net::addTimerOnce(connect_timer_.get(), settings_.connect_timeout);
    // Queued now, written once connected, answered in order: a refused login drops the
    // connection; the connection is up when the PING after them is answered.
    auto login = [this](const redisReply* reply) {
        if (reply && reply->type == REDIS_REPLY_ERROR) drop(std::string("login refused: ") + reply->str);
    };
    if (!password_.empty()) {
        if (a.username.empty())
            enqueue({"AUTH", password_}, login, {});
        else
            enqueue({"AUTH", a.username, password_}, login, {});
    }
    if (a.db != 0) enqueue({"SELECT", std::to_string(a.db)}, login, {});
    enqueue({"PING"},
            [this](const redisReply* reply) {
                if (!reply) return;  // lost() reports it
                // Refused without a refused login (a password Redis wants and we did not send:
                // NOAUTH; LOADING after a restart): say so now, not "no connection within
                // connect_timeout" later. After a refused login drop() did it already.
                if (reply->type == REDIS_REPLY_ERROR) return drop(std::string("PING refused: ") + reply->str);
                event_del(connect_timer_.get());
                up_ = true;
                handler_.onRedisUp(*this);
            },
            {});
}

bool RedisConnection::send(const std::vector<std::string_view>& argv, void (*fn)(redisAsyncContext*, void*, void*),
                           void* privdata) {
    if (!ctx_) return false;
    std::vector<const char*> args;
    std::vector<std::size_t> lengths;
    args.reserve(argv.size());
    lengths.reserve(argv.size());
    for (std::string_view arg : argv) {
        args.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    return redisAsyncCommandArgv(ctx_, fn, privdata, static_cast<int>(args.size()), args.data(), lengths.data()) ==
           REDIS_OK;
}

namespace {

std::size_t commandBytes(const std::vector<std::string_view>& argv) {
    std::size_t bytes = RedisConnection::kPendingOverhead;
    for (std::string_view arg : argv) bytes += arg.size();
    return bytes;
}

}  // namespace

bool RedisConnection::fits(const std::vector<std::string_view>& argv) const {
    return pending_bytes_ == 0 || pending_bytes_ + commandBytes(argv) <= settings_.max_pending_bytes;
}

bool RedisConnection::command(const std::vector<std::string_view>& argv, ReplyFn done, std::chrono::milliseconds timeout,
                              Budget budget) {
    if (!up_) return false;
    if (budget == Budget::Counted && !fits(argv)) return false;
    return enqueue(argv, std::move(done), timeout);
}

bool RedisConnection::enqueue(const std::vector<std::string_view>& argv, ReplyFn done, std::chrono::milliseconds timeout) {
    if (!ctx_) return false;
    const std::uint64_t id = next_id_++;
    auto pending = std::make_unique<Pending>();
    pending->self = this;
    pending->id = id;
    pending->done = std::move(done);
    pending->bytes = commandBytes(argv);
    if (timeout.count() > 0) {
        pending->timer.assign(loop_.base(), -1, 0, &RedisConnection::onCommandTimeout, pending.get());
        net::addTimerOnce(pending->timer.get(), timeout);
    }
    // privdata is the id, not the Pending: a timed-out command's late reply finds nothing.
    if (!send(argv, &RedisConnection::onReply, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)))) return false;
    pending_bytes_ += pending->bytes;
    pending_.emplace(id, std::move(pending));
    return true;
}

bool RedisConnection::subscribe(std::string_view channel, bool sharded) {
    if (!up_) return false;
    // The classic SUBSCRIBE first: hiredis then has the name in its table when the SSUBSCRIBE's
    // replies and messages come (a reply it cannot place while a command waits goes to that
    // command's callback, which is onPush too).
    if (!sendSubscription("SUBSCRIBE", channel)) return false;
    return !sharded || sendSubscription("SSUBSCRIBE", channel);
}

bool RedisConnection::unsubscribe(std::string_view channel, bool sharded) {
    if (!up_) return false;
    if (sharded && !sendSubscription("SUNSUBSCRIBE", channel)) return false;
    return sendSubscription("UNSUBSCRIBE", channel);
}

bool RedisConnection::sendSubscription(std::string_view verb, std::string_view channel) {
    if (!send({verb, channel}, &RedisConnection::onPush, nullptr)) return false;
    Awaited awaited;
    awaited.reply.resize(verb.size());
    std::transform(verb.begin(), verb.end(), awaited.reply.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
    awaited.channel = std::string(channel);
    // hiredis 0.14 (async.c, __redisAsyncCommand) knows only (P)SUBSCRIBE and (P)UNSUBSCRIBE;
    // any other command sent on a subscribed context leaves its callback in sub.invalid.
    awaited.holds_entry = verb[0] == 'S' && verb != "SUBSCRIBE" && (ctx_->c.flags & REDIS_SUBSCRIBED) != 0;
    if (awaited.holds_entry) {
        ++held_;
        ++unanswered_;
    }
    awaited_.push_back(std::move(awaited));
    return true;
}

// hiredis 0.14 takes an entry off sub.invalid only for a reply that is not an array (an error:
// __redisGetSubscribeCallback shifts the list), and routes array replies by channel name. The
// array answers of SSUBSCRIBE and SUNSUBSCRIBE therefore leave their entries there until the
// connection closes: subscription churn on one long-lived connection grew without bound. Every
// entry here is alike (onPush, no privdata), and an error can only answer a command not answered
// yet, so entries beyond the unanswered SSUBSCRIBE/SUNSUBSCRIBEs are freed as answers come.
void RedisConnection::noteAnswer(const redisReply& reply) {
    auto answered = [this](std::deque<Awaited>::iterator last) {
        for (auto it = awaited_.begin(); it != last + 1; ++it)
            if (it->holds_entry) --unanswered_;
        awaited_.erase(awaited_.begin(), last + 1);
    };
    if (reply.type == REDIS_REPLY_ERROR) {
        if (held_ > 0) --held_;  // hiredis handed this error the oldest entry
        if (!awaited_.empty()) answered(awaited_.begin());
    } else if (reply.type == REDIS_REPLY_ARRAY && reply.elements >= 2 && !awaited_.empty()) {
        const std::string_view type = text(reply.element[0]), channel = text(reply.element[1]);
        // Answers come in order. A "sunsubscribe" may also be Redis's own (a slot that moved):
        // only the oldest command can claim it. The other types are always answers, so one
        // further on also settles the older ones (answers hiredis routed elsewhere).
        const auto limit = type == "sunsubscribe" ? awaited_.begin() + 1 : awaited_.end();
        const auto match = std::find_if(awaited_.begin(), limit,
                                        [&](const Awaited& a) { return a.reply == type && a.channel == channel; });
        if (match != limit) answered(match);
    }
    releaseAnswered();
}

void RedisConnection::releaseAnswered() {
    while (ctx_ && held_ > unanswered_) {
        redisCallback* head = ctx_->sub.invalid.head;
        if (!head || head->fn != &RedisConnection::onPush) return;  // not one of ours: leave it
        ctx_->sub.invalid.head = head->next;
        if (ctx_->sub.invalid.tail == head) ctx_->sub.invalid.tail = nullptr;
        std::free(head);  // async.c's __redisPushCallback: malloc
        --held_;
    }
}

std::size_t RedisConnection::heldCallbacks() const {
    std::size_t n = 0;
    if (ctx_)
        for (const redisCallback* cb = ctx_->sub.invalid.head; cb; cb = cb->next) ++n;
    return n;
}

void RedisConnection::drop(const std::string& why) {
    if (!ctx_) return;
    redisAsyncContext* ctx = ctx_;
    ctx_ = nullptr;  // onDisconnect, run by the free below, sees it is no longer ours
    redisAsyncFree(ctx);  // deferred by hiredis when called from one of ctx's callbacks
    lost(why);
}

void RedisConnection::lost(const std::string& why) {
    event_del(connect_timer_.get());
    up_ = false;
    awaited_.clear();  // hiredis frees its lists with the context
    held_ = unanswered_ = 0;
    // Everything still waiting fails now (its owner answers 503 or retries after reconnecting).
    auto pending = std::move(pending_);
    pending_.clear();
    pending_bytes_ = 0;
    for (auto& [id, p] : pending)
        if (p->done) p->done(nullptr);
    handler_.onRedisDown(*this, why);
}

void RedisConnection::finish(std::uint64_t id, const redisReply* reply) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // failed with the connection
    std::unique_ptr<Pending> p = std::move(it->second);
    pending_.erase(it);
    pending_bytes_ -= p->bytes;
    if (p->done) p->done(reply);  // none when it timed out
}

void RedisConnection::onConnect(const redisAsyncContext* ctx, int status) {
    auto* self = static_cast<RedisConnection*>(ctx->data);
    if (!self || self->destroying_ || self->ctx_ != ctx || status == REDIS_OK) return;  // up: the PING says
    self->ctx_ = nullptr;  // hiredis frees the context after this callback
    self->lost(ctx->errstr[0] ? ctx->errstr : "connect failed");
}

void RedisConnection::onDisconnect(const redisAsyncContext* ctx, int) {
    auto* self = static_cast<RedisConnection*>(ctx->data);
    if (!self || self->destroying_ || self->ctx_ != ctx) return;
    self->ctx_ = nullptr;  // hiredis frees the context after this callback
    self->lost(ctx->err && ctx->errstr[0] ? ctx->errstr : "connection closed");
}

void RedisConnection::onReply(redisAsyncContext* ctx, void* reply, void* privdata) {
    auto* self = static_cast<RedisConnection*>(ctx->data);
    if (!self || self->destroying_) return;
    self->finish(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(privdata)), static_cast<redisReply*>(reply));
}

void RedisConnection::onPush(redisAsyncContext* ctx, void* reply, void*) {
    auto* self = static_cast<RedisConnection*>(ctx->data);
    if (!self || self->destroying_ || !reply || self->ctx_ != ctx) return;
    self->noteAnswer(*static_cast<redisReply*>(reply));
    self->handler_.onRedisPush(*self, *static_cast<redisReply*>(reply));
}

void RedisConnection::onConnectTimeout(int, short, void* arg) {
    auto* self = static_cast<RedisConnection*>(arg);
    if (!self->up_) self->drop("no connection within connect_timeout");
}

void RedisConnection::onCommandTimeout(int, short, void* arg) {
    // Its owner hears now; the command itself stays in flight (hiredis still holds it, and its
    // answer may come): it counts in pending_bytes_ until then, or until the connection ends.
    auto* p = static_cast<Pending*>(arg);
    ReplyFn done = std::move(p->done);
    p->done = nullptr;
    if (done) done(nullptr);
}

}  // namespace portico::pubsub
