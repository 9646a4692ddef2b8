// SPDX-License-Identifier: Apache-2.0
// PubSubHub::flushLater: a listener's deliveries are written once per loop pass, in the pass
// after they were queued, after the input that pass found and the messages published by it.

#include <catch2/catch.hpp>

#include <event2/event.h>
#include <memory>
#include <string>
#include <vector>

#include "portico/handlers/pubsub.h"
#include "portico/net/event_loop.h"
#include "portico/pubsub/local_backplane.h"

using namespace portico;

namespace {

// Records deliveries and flushes in order: "d:<payload>" and "flush".
struct QueueingListener final : handlers::ChannelListener {
    handlers::PubSubHub& hub;
    std::vector<std::string> log;
    bool flush_asked = false;
    explicit QueueingListener(handlers::PubSubHub& h) : hub(h) {}
    void deliver(const pubsub::Message& message, handlers::MessageFrames&) override {
        log.push_back("d:" + message.payload);
        if (!flush_asked) {
            flush_asked = true;
            hub.flushLater(this);
        }
    }
    void catchUp() override {}
    void flushDeliveries() override {
        flush_asked = false;
        log.emplace_back("flush");
    }
};

struct Worker {
    net::EventLoop loop;
    std::shared_ptr<pubsub::PubSubRegistry> registry = std::make_shared<pubsub::PubSubRegistry>();
    handlers::PubSubHub hub{loop, std::make_unique<pubsub::LocalBackplane>(loop, registry)};
    config::PubSubSettings settings;
    Worker() { settings.publish_rate = 0; }
    // One pass of the loop: a poll that does not wait, then the callbacks it made due.
    void runOnce() { event_base_loop(loop.base(), EVLOOP_ONCE | EVLOOP_NONBLOCK); }
    void listen(QueueingListener& listener) {
        bool ok = false;
        hub.backplane().subscribe("room", settings, [&](bool answer, const pubsub::Position&) { ok = answer; });
        REQUIRE(ok);
        hub.add("room", &listener);
    }
    void publish(const std::string& payload) {
        pubsub::PublishRequest request;
        request.channel = "room";
        request.payload = payload;
        request.settings = &settings;
        hub.backplane().publish(std::move(request), [](const pubsub::PublishResult&) {});
    }
};

// An input callback of the next pass that publishes, as a publisher's next POST would.
struct PublishOnInput {
    Worker& w;
    std::string payload;
    static void run(int, short, void* arg) {
        auto* self = static_cast<PublishOnInput*>(arg);
        self->w.publish(self->payload);
    }
};

}  // namespace

TEST_CASE("a message published in the pass after another's delivery leaves in the same flush", "[handlers][pubsub]") {
    Worker w;
    QueueingListener listener(w.hub);
    w.listen(listener);

    w.publish("one");
    w.runOnce();  // the inbox's wakeup: "one" is queued, its flush waits for the next pass
    REQUIRE(listener.log == std::vector<std::string>{"d:one"});

    // The next pass: its input (made active here, as a socket's read event would be) publishes
    // "two" on this worker; the flush that runs after it takes "two" from the inbox first.
    PublishOnInput input{w, "two"};
    core::EventPtr event(event_new(w.loop.base(), -1, 0, &PublishOnInput::run, &input));
    event_active(event.get(), EV_READ, 1);
    w.runOnce();
    CHECK(listener.log == std::vector<std::string>{"d:one", "d:two", "flush"});

    // Nothing new: no further flush, and the inbox's own wakeup finds it empty.
    w.runOnce();
    w.runOnce();
    CHECK(listener.log == std::vector<std::string>{"d:one", "d:two", "flush"});
    w.hub.remove("room", &listener);
    w.hub.backplane().unsubscribe("room");
}

TEST_CASE("a lone delivery is flushed in the next pass without waiting for input", "[handlers][pubsub]") {
    Worker w;
    QueueingListener listener(w.hub);
    w.listen(listener);
    w.publish("solo");
    w.runOnce();
    w.runOnce();  // a pass with no input: the zero timeout is due, nothing waits for a timer
    CHECK(listener.log == std::vector<std::string>{"d:solo", "flush"});
    w.hub.remove("room", &listener);
    w.hub.backplane().unsubscribe("room");
}
