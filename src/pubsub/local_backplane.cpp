// SPDX-License-Identifier: Apache-2.0
#include "portico/pubsub/local_backplane.h"

#include <event2/event.h>

#include "portico/net/event_loop.h"

namespace portico::pubsub {

LocalBackplane::LocalBackplane(net::EventLoop& loop, std::shared_ptr<PubSubRegistry> registry)
    : loop_(loop),
      registry_(std::move(registry)),
      sweep_event_(loop.base(), -1, EV_PERSIST, &LocalBackplane::onSweep, this),
      inbox_wakeup_(loop, [this] { onInbox(); }) {}

LocalBackplane::~LocalBackplane() { registry_->detach(this); }

void LocalBackplane::start(BackplaneSink& sink) {
    sink_ = &sink;
    net::addTimer(loop_, sweep_event_.get(), PubSubRegistry::kSweepInterval);
}

void LocalBackplane::onSweep(int, short, void* arg) { static_cast<LocalBackplane*>(arg)->registry_->expire(); }

void LocalBackplane::publish(PublishRequest request, PublishDone done) {
    PublishResult result = registry_->publish(request.channel, std::move(request.payload), request.text,
                                              *request.settings, request.sender, request.idempotency_key);
    done(result);
}

void LocalBackplane::subscribe(const std::string& channel, const config::PubSubSettings& settings, SubscribeDone done) {
    Position top;
    top.epoch = registry_->epoch();
    const bool ok = registry_->subscribe(channel, this, settings, top.seq);
    done(ok, top);
}

void LocalBackplane::unsubscribe(const std::string& channel) { registry_->unsubscribe(channel, this); }

bool LocalBackplane::admits(const std::string& channel) { return registry_->admits(channel); }

void LocalBackplane::replay(const ReplayRequest& request, ReplayDone done) {
    if (!request.epoch.empty() && request.epoch != registry_->epoch()) {
        // A seq of another process's channels (before a restart): nothing of it is here.
        ReplaySlice lost;
        lost.lost = lost.done = true;
        lost.epoch = registry_->epoch();
        lost.top = lost.cursor = registry_->info(request.channel).seq;
        done(lost);
        return;
    }
    ReplaySlice slice = registry_->replay(request.channel, request.after, request.max_bytes, request.max_messages);
    done(slice);
}

void LocalBackplane::info(const std::string& channel, InfoDone done) { done(registry_->info(channel), true); }

void LocalBackplane::stats(observe::ProcessInfo& info) { registry_->stats(info); }

bool LocalBackplane::enqueue(const std::string& channel, MessagePtr message) {
    std::lock_guard lock(inbox_mutex_);
    // Whoever found the inbox empty wakes the loop; the others' messages ride along. Every
    // taker of the inbox (onInbox after the eventfd read, deliverWaiting from a flush) swaps
    // it out whole, so a message enqueued after a swap finds it empty and brings a wakeup of
    // its own (at worst one wakeup that finds the inbox already taken).
    const bool wake = inbox_.empty();
    inbox_.emplace_back(channel, std::move(message));
    return wake;
}

void LocalBackplane::wake() { inbox_wakeup_.notify(); }

void LocalBackplane::onInbox() {
    std::vector<std::pair<std::string, MessagePtr>> batch;
    {
        std::lock_guard lock(inbox_mutex_);
        batch.swap(inbox_);
    }
    if (!sink_) return;
    for (const auto& [channel, message] : batch) sink_->onBackplaneMessage(channel, message);
}

}  // namespace portico::pubsub
