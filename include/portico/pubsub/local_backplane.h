// SPDX-License-Identifier: Apache-2.0
#pragma once
// The in-process backplane: channels live in this process's PubSubRegistry, shared by every
// worker. A publish on any worker numbers and keeps the message and appends it to the inbox of
// each worker with subscribers, all under the registry's lock (so in seq order), then wakes
// those workers; each one's loop hands it to its sink. Every callback runs before the call
// returns.

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/net/wakeup.h"
#include "portico/pubsub/backplane.h"
#include "portico/pubsub/pubsub_registry.h"

namespace portico::pubsub {

class LocalBackplane final : public Backplane, private Inbox {
public:
    LocalBackplane(net::EventLoop& loop, std::shared_ptr<PubSubRegistry> registry);
    // Only once no other worker's thread runs: a publisher may hold this inbox between the
    // registry's lock and wake() (docs/threading.md, "Who may hold a pointer to a queue").
    ~LocalBackplane() override;
    LocalBackplane(const LocalBackplane&) = delete;
    LocalBackplane& operator=(const LocalBackplane&) = delete;

    void start(BackplaneSink& sink) override;
    void publish(PublishRequest request, PublishDone done) override;
    void subscribe(const std::string& channel, const config::PubSubSettings& settings, SubscribeDone done) override;
    void unsubscribe(const std::string& channel) override;
    bool admits(const std::string& channel) override;
    void replay(const ReplayRequest& request, ReplayDone done) override;
    void info(const std::string& channel, InfoDone done) override;
    PubSubRegistry& registry() override { return *registry_; }
    void stats(observe::ProcessInfo& info) override;
    void deliverWaiting() override { onInbox(); }

private:
    // Inbox: thread-safe, from whichever worker published.
    bool enqueue(const std::string& channel, MessagePtr message) override;
    void wake() override;
    // On this loop's thread: hands what the inbox holds to the sink.
    void onInbox();
    static void onSweep(int, short, void* arg);

    net::EventLoop& loop_;
    std::shared_ptr<PubSubRegistry> registry_;
    BackplaneSink* sink_ = nullptr;
    core::InlineEvent sweep_event_;  // history_ttl and channel_idle_timeout (registry's expire())
    std::mutex inbox_mutex_;
    std::vector<std::pair<std::string, MessagePtr>> inbox_;
    net::Wakeup inbox_wakeup_;  // wake() from another worker's thread wakes this loop through it
};

}  // namespace portico::pubsub
