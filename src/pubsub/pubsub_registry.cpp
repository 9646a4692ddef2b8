// SPDX-License-Identifier: Apache-2.0
#include "portico/pubsub/pubsub_registry.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "portico/observe/metrics.h"

namespace portico::pubsub {

namespace {

// RFC 6455 5.2: at most 14 header bytes in front of a server's frame (no mask).
constexpr std::size_t kFrameHeader = 14;

// Eight base-36 characters (41 bits): two processes of one deployment do not share an epoch.
std::string randomEpoch() {
    static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::random_device random;
    std::string epoch(8, '0');
    for (char& c : epoch) c = kDigits[random() % 36];
    return epoch;
}

}  // namespace

PubSubRegistry::PubSubRegistry(const config::PubSubLimits& limits, std::function<Clock::time_point()> clock)
    : clock_(clock ? std::move(clock) : [] { return Clock::now(); }), epoch_(randomEpoch()), limits_(limits) {}

void PubSubRegistry::configure(const config::PubSubLimits& limits) {
    std::lock_guard lock(mutex_);
    limits_ = limits;
    enforceBudget(nullptr);
    // Channels beyond a lowered max_channels stay until they are unused: refusing new ones is
    // enough to come back under it.
}

void PubSubRegistry::detach(Inbox* inbox) {
    std::lock_guard lock(mutex_);
    for (auto it = channels_.begin(); it != channels_.end();) {
        it->second.subscribers.erase(inbox);
        it = eraseIfUnused(it, false);
    }
}

// ---- bookkeeping under the lock ----------------------------------------------------------------

PubSubRegistry::Channel* PubSubRegistry::findOrCreate(const std::string& name, Clock::time_point now) {
    auto it = channels_.find(name);
    if (it != channels_.end()) return &it->second;
    if (channels_.size() >= limits_.max_channels) return nullptr;
    it = channels_.try_emplace(name).first;
    Channel& c = it->second;
    c.name = &it->first;
    c.last_active = now;
    return &c;
}

void PubSubRegistry::adopt(Channel& c, const config::PubSubSettings& settings, Clock::time_point now) {
    c.last_active = now;
    c.ttl = settings.history_ttl;
    c.idle = settings.channel_idle_timeout;
}

bool PubSubRegistry::takeToken(Channel& c, const config::PubSubSettings& settings, Clock::time_point now,
                               std::chrono::seconds& retry_after) {
    if (settings.publish_rate == 0) return true;
    // Built on first use (the route's rate is not known at creation), rebuilt full when a reload
    // changes the rate or the burst.
    const std::uint64_t burst = settings.publish_burst ? settings.publish_burst : core::oneSecondOf(settings.publish_rate);
    if (!c.publish_bucket || !c.publish_bucket->builtWith(settings.publish_rate, burst)) {
        c.publish_bucket.emplace(settings.publish_rate, burst, now);
    }
    if (c.publish_bucket->take(1, now)) return true;
    // RFC 6585 4 / RFC 9110 10.2.3: when the next token is there, in whole seconds.
    retry_after = std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(c.publish_bucket->wait(1)));
    return false;
}

void PubSubRegistry::dropOldest(Channel& c, Reason reason) {
    Kept& k = c.history.front();
    order_.erase(k.order);
    c.history_bytes -= k.bytes;
    history_bytes_ -= k.bytes;
    --history_messages_;
    ++evicted_[reason];
    c.history.pop_front();
}

void PubSubRegistry::trimAge(Channel& c, Clock::time_point now) {
    if (c.ttl.count() <= 0) return;
    while (!c.history.empty() && now - c.history.front().at >= c.ttl) dropOldest(c, kTtl);
}

void PubSubRegistry::enforceBudget(const Channel* keep) {
    // order_ is in publish order, so its front is the oldest kept message of the process and the
    // front of its channel's history.
    while (history_bytes_ > limits_.history_budget && !order_.empty()) {
        Channel* victim = order_.front();
        dropOldest(*victim, kBudget);
        // Emptied and unsubscribed: gone now rather than at the next sweep, so that it does not
        // count against max_channels. `keep` is the caller's channel, which it still uses.
        if (victim != keep && victim->history.empty() && victim->subscribers.empty())
            channels_.erase(channels_.find(*victim->name));
    }
}

PubSubRegistry::Map::iterator PubSubRegistry::eraseIfUnused(Map::iterator it, bool force) {
    Channel& c = it->second;
    if (!c.subscribers.empty() || (!c.history.empty() && !force)) return std::next(it);
    if (!c.history.empty()) ++channels_expired_;
    while (!c.history.empty()) dropOldest(c, kIdle);
    return channels_.erase(it);
}

// ---- the operations ------------------------------------------------------------------------------

const std::uint64_t* PubSubRegistry::findIdempotent(const std::string& key, Clock::time_point now) {
    while (!idempotent_order_.empty() && now - idempotent_order_.front().first >= kIdempotencyTtl) {
        idempotent_.erase(idempotent_order_.front().second);
        idempotent_order_.pop_front();
    }
    auto it = idempotent_.find(key);
    return it == idempotent_.end() ? nullptr : &it->second;
}

void PubSubRegistry::rememberIdempotent(std::string key, std::uint64_t seq, Clock::time_point now) {
    if (idempotent_order_.size() >= kIdempotencyKeys) {
        idempotent_.erase(idempotent_order_.front().second);
        idempotent_order_.pop_front();
    }
    idempotent_.emplace(key, seq);
    idempotent_order_.emplace_back(now, std::move(key));
}

PubSubRegistry::PublishResult PubSubRegistry::publish(const std::string& channel, std::string payload, bool text,
                                                      const config::PubSubSettings& settings, const void* sender,
                                                      const std::string& idempotency_key) {
    // Built before the lock: the only allocation of the message's size.
    auto message = std::make_shared<Message>();
    message->epoch = epoch_;
    message->text = text;
    message->payload = std::move(payload);
    message->sender = sender;
    const std::size_t bytes = message->payload.size() + kMessageOverhead;
    std::vector<Inbox*> to_wake;
    PublishResult result;
    result.epoch = epoch_;
    std::string idempotent_key;
    if (!idempotency_key.empty()) idempotent_key = channel + '\n' + idempotency_key;
    {
        std::lock_guard lock(mutex_);
        const Clock::time_point now = clock_();
        if (!idempotent_key.empty()) {
            if (const std::uint64_t* seq = findIdempotent(idempotent_key, now)) {
                result.seq = *seq;
                result.duplicate = true;
                return result;
            }
        }
        Channel* c = admitLocked(channel, settings, now, result);
        if (!c) return result;
        message->seq = result.seq = ++c->seq;
        ++published_;
        if (!idempotent_key.empty()) rememberIdempotent(std::move(idempotent_key), result.seq, now);
        trimAge(*c, now);
        if (settings.history > 0) {
            if (bytes <= settings.history_bytes && bytes <= limits_.history_budget) {
                order_.push_back(c);
                c->history.push_back(Kept{message, now, bytes, std::prev(order_.end())});
                c->history_bytes += bytes;
                history_bytes_ += bytes;
                ++history_messages_;
                while (c->history.size() > settings.history) dropOldest(*c, kCount);
                while (c->history_bytes > settings.history_bytes) dropOldest(*c, kBytes);
                enforceBudget(c);
            } else {
                ++evicted_[kBytes];  // too big to keep at all: delivered live only
            }
        }
        // Enqueued under the lock that numbered it: two workers publishing on this channel at
        // once reach every inbox in seq order (a message behind a later one reads as a gap to
        // its subscribers). The inbox's lock is only ever taken inside the registry's.
        for (auto& [inbox, count] : c->subscribers) {
            if (inbox->enqueue(channel, message)) to_wake.push_back(inbox);
            result.subscribers += count;
        }
        eraseIfUnused(channels_.find(channel), false);  // nobody listening, nothing kept
    }
    // The wakeups are write(2)s: not under the registry's lock.
    for (Inbox* inbox : to_wake) inbox->wake();
    if (sender && result.subscribers > 0) result.subscribers -= 1;  // the sender gets no copy
    return result;
}

PubSubRegistry::Channel* PubSubRegistry::admitLocked(const std::string& channel, const config::PubSubSettings& settings,
                                                     Clock::time_point now, PublishResult& result) {
    Channel* c = findOrCreate(channel, now);
    if (!c) {
        ++refused_channels_;
        result.refused = Refusal::Channels;
        result.retry_after = kSweepInterval * 5;
        return nullptr;
    }
    if (!takeToken(*c, settings, now, result.retry_after)) {
        ++refused_rate_;
        result.refused = Refusal::Rate;
        return nullptr;
    }
    adopt(*c, settings, now);
    return c;
}

PubSubRegistry::PublishResult PubSubRegistry::admitPublish(const std::string& channel,
                                                           const config::PubSubSettings& settings, const void* sender) {
    PublishResult result;
    std::lock_guard lock(mutex_);
    Channel* c = admitLocked(channel, settings, clock_(), result);
    if (!c) return result;
    for (auto& [inbox, count] : c->subscribers) result.subscribers += count;
    if (sender && result.subscribers > 0) result.subscribers -= 1;  // the sender gets no copy
    eraseIfUnused(channels_.find(channel), false);
    return result;
}

bool PubSubRegistry::subscribe(const std::string& channel, Inbox* inbox, const config::PubSubSettings& settings,
                               std::uint64_t& current_seq) {
    std::lock_guard lock(mutex_);
    const Clock::time_point now = clock_();
    Channel* c = findOrCreate(channel, now);
    if (!c) {
        ++subscribes_refused_;
        return false;
    }
    adopt(*c, settings, now);
    c->subscribers[inbox]++;
    current_seq = c->seq;
    return true;
}

void PubSubRegistry::unsubscribe(const std::string& channel, Inbox* inbox) {
    std::lock_guard lock(mutex_);
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    Channel& c = it->second;
    auto sub = c.subscribers.find(inbox);
    if (sub != c.subscribers.end() && --sub->second == 0) c.subscribers.erase(sub);
    // Idle from now on. A channel with history is kept so that a subscriber returning with
    // ?since= can catch up (until channel_idle_timeout, history_ttl or the budget).
    c.last_active = clock_();
    eraseIfUnused(it, false);
}

bool PubSubRegistry::admits(const std::string& channel) {
    std::lock_guard lock(mutex_);
    if (channels_.size() < limits_.max_channels || channels_.count(channel) != 0) return true;
    ++subscribes_refused_;
    return false;
}

PubSubRegistry::ReplaySlice PubSubRegistry::replay(const std::string& channel, std::uint64_t after,
                                                   std::size_t max_bytes, std::size_t max_messages) {
    ReplaySlice slice;
    slice.cursor = after;
    slice.epoch = epoch_;
    std::lock_guard lock(mutex_);
    auto it = channels_.find(channel);
    if (it == channels_.end()) {
        slice.done = true;
        return slice;
    }
    Channel& c = it->second;
    slice.top = c.seq;
    trimAge(c, clock_());
    if (after >= c.seq) {  // up to date, or a seq from before the channel was (re)created
        slice.done = true;
        slice.cursor = c.seq;
        return slice;
    }
    auto first = std::partition_point(c.history.begin(), c.history.end(),
                                      [&](const Kept& k) { return k.message->seq <= after; });
    const std::uint64_t first_seq = first == c.history.end() ? c.seq + 1 : first->message->seq;
    if (first_seq > after + 1) {
        // Frames carry only payloads, so the gap is not signalled in the stream; GET's "oldest"
        // and the replay_truncated counter show it.
        slice.gap = true;
        slice.cursor = first_seq - 1;
    }
    std::size_t used = 0;
    for (auto k = first; k != c.history.end(); ++k) {
        const std::size_t size = k->message->payload.size() + kFrameHeader;
        if (slice.messages.size() >= max_messages || used + size > max_bytes) {
            slice.next_bytes = size;
            return slice;
        }
        used += size;
        slice.messages.push_back(k->message);
        slice.cursor = k->message->seq;
    }
    slice.done = true;
    slice.cursor = c.seq;
    return slice;
}

ChannelInfo PubSubRegistry::info(const std::string& channel) {
    std::lock_guard lock(mutex_);
    ChannelInfo info;
    info.epoch = epoch_;
    auto it = channels_.find(channel);
    if (it == channels_.end()) return info;
    Channel& c = it->second;
    trimAge(c, clock_());
    info.seq = c.seq;
    info.history = c.history.size();
    info.oldest = c.history.empty() ? 0 : c.history.front().message->seq;
    for (auto& [hub, count] : c.subscribers) info.subscribers += count;
    return info;
}

void PubSubRegistry::expire() {
    const Clock::time_point now = clock_();
    // One sweep per interval, whichever worker's timer comes first; the others return without
    // touching the lock.
    Clock::rep due = next_sweep_.load(std::memory_order_relaxed);
    if (now.time_since_epoch().count() < due) return;
    const Clock::rep next = (now + kSweepInterval).time_since_epoch().count();
    if (!next_sweep_.compare_exchange_strong(due, next, std::memory_order_relaxed)) return;
    std::lock_guard lock(mutex_);
    // A visit of every channel: at most max_channels, each a few comparisons.
    for (auto it = channels_.begin(); it != channels_.end();) {
        Channel& c = it->second;
        trimAge(c, now);
        it = eraseIfUnused(it, c.subscribers.empty() && now - c.last_active >= c.idle);
    }
}

namespace {

// True when `a` ranks above `b` among the channels the status JSON lists.
bool busier(const observe::ChannelSample& a, const observe::ChannelSample& b) {
    if (a.subscribers != b.subscribers) return a.subscribers > b.subscribers;
    if (a.published != b.published) return a.published > b.published;
    return a.name < b.name;
}

}  // namespace

void PubSubRegistry::stats(observe::ProcessInfo& info) {
    // A heap of the busiest channels seen so far, the least busy at the front: bounded by
    // kStatusChannels whatever the number of channels, and reserved before the lock.
    auto& top = info.top_channels;
    top.clear();
    top.reserve(observe::ProcessInfo::kStatusChannels + 1);
    std::lock_guard lock(mutex_);
    info.pubsub_channels = channels_.size();
    info.pubsub_subscribers = 0;
    for (auto& [name, channel] : channels_) {
        observe::ChannelSample sample{{}, 0, channel.seq, channel.history.size()};
        for (auto& [hub, count] : channel.subscribers) sample.subscribers += count;
        info.pubsub_subscribers += sample.subscribers;
        if (top.size() == observe::ProcessInfo::kStatusChannels) {
            const auto& least = top.front();
            if (sample.subscribers < least.subscribers ||
                (sample.subscribers == least.subscribers && sample.published <= least.published))
                continue;  // not busier: skip the name copy
        }
        // The key is the route's path, '\n', the channel (channelKey): shown as the path that
        // clients subscribe and publish at.
        sample.name = name;
        std::erase(sample.name, '\n');
        top.push_back(std::move(sample));
        std::push_heap(top.begin(), top.end(), busier);
        if (top.size() > observe::ProcessInfo::kStatusChannels) {
            std::pop_heap(top.begin(), top.end(), busier);
            top.pop_back();
        }
    }
    std::sort_heap(top.begin(), top.end(), busier);
    observe::PubSubStats& s = info.pubsub;
    s.history_messages = history_messages_;
    s.history_bytes = history_bytes_;
    s.history_budget = limits_.history_budget;
    s.evicted_count = evicted_[kCount];
    s.evicted_bytes = evicted_[kBytes];
    s.evicted_ttl = evicted_[kTtl];
    s.evicted_budget = evicted_[kBudget];
    s.evicted_idle = evicted_[kIdle];
    s.channels_expired = channels_expired_;
    s.refused_rate = refused_rate_;
    s.refused_channels = refused_channels_;
    s.subscribes_refused = subscribes_refused_;
    s.refused_size = refused_size_.load(std::memory_order_relaxed);
    s.replay_truncated = replay_truncated_.load(std::memory_order_relaxed);
    s.slow_closed = slow_closed_.load(std::memory_order_relaxed);
    s.published = published_;
}

}  // namespace portico::pubsub
