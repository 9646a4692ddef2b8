// SPDX-License-Identifier: Apache-2.0
#include "portico/pubsub/local_backplane.h"

#include <catch2/catch.hpp>

#include <event2/event.h>
#include <string>
#include <vector>

#include "portico/net/event_loop.h"

using namespace portico;

namespace {

struct RecordingSink : pubsub::BackplaneSink {
    std::vector<std::pair<std::string, pubsub::MessagePtr>> messages;
    int resyncs = 0;
    void onBackplaneMessage(const std::string& channel, const pubsub::MessagePtr& message) override {
        messages.emplace_back(channel, message);
    }
    void onBackplaneResync(const std::string&) override { ++resyncs; }
};

// Two workers' backplanes on one loop, sharing the process's registry.
struct TwoWorkers {
    net::EventLoop loop;
    std::shared_ptr<pubsub::PubSubRegistry> registry = std::make_shared<pubsub::PubSubRegistry>();
    pubsub::LocalBackplane a{loop, registry};
    pubsub::LocalBackplane b{loop, registry};
    RecordingSink sink_a, sink_b;
    config::PubSubSettings settings;
    TwoWorkers() {
        settings.publish_rate = 0;
        a.start(sink_a);
        b.start(sink_b);
    }
    void runOnce() { event_base_loop(loop.base(), EVLOOP_NONBLOCK); }
    pubsub::PublishResult publish(pubsub::Backplane& on, const std::string& channel, const std::string& payload) {
        pubsub::PublishResult out;
        bool called = false;
        pubsub::PublishRequest request;
        request.channel = channel;
        request.payload = payload;
        request.settings = &settings;
        on.publish(std::move(request), [&](const pubsub::PublishResult& r) {
            out = r;
            called = true;
        });
        REQUIRE(called);  // the in-process backplane answers before publish() returns
        return out;
    }
};

}  // namespace

TEST_CASE("local backplane delivers a publish on one worker to another worker's subscribers", "[pubsub]") {
    TwoWorkers w;
    bool subscribed = false;
    w.b.subscribe("room", w.settings, [&](bool ok, const pubsub::Position& top) {
        subscribed = ok;
        CHECK(top.seq == 0);
    });
    REQUIRE(subscribed);
    auto result = w.publish(w.a, "room", "hello");
    CHECK(result.refused == pubsub::Refusal::None);
    CHECK(result.seq == 1);
    CHECK(result.subscribers == 1);
    w.runOnce();
    REQUIRE(w.sink_b.messages.size() == 1);
    CHECK(w.sink_b.messages[0].first == "room");
    CHECK(w.sink_b.messages[0].second->payload == "hello");
    CHECK(w.sink_b.messages[0].second->seq == 1);
    CHECK(w.sink_a.messages.empty());  // no subscriber on worker a
}

TEST_CASE("local backplane replays kept history and reports channel info", "[pubsub]") {
    TwoWorkers w;
    for (const char* m : {"1", "2", "3"}) w.publish(w.a, "room", m);
    pubsub::ReplayRequest request;
    request.channel = "room";
    request.after = 1;
    request.max_bytes = 1 << 20;
    request.max_messages = 64;
    bool called = false;
    w.b.replay(request, [&](pubsub::ReplaySlice& slice) {
        called = true;
        REQUIRE(slice.messages.size() == 2);
        CHECK(slice.messages[0]->payload == "2");
        CHECK(slice.done);
        CHECK(slice.cursor == 3);
    });
    CHECK(called);
    w.b.info("room", [&](const pubsub::ChannelInfo& info, bool available) {
        CHECK(available);
        CHECK(info.seq == 3);
        CHECK(info.history == 3);
    });
}

TEST_CASE("local backplane answers a replay in another epoch as lost, with the current top", "[pubsub]") {
    TwoWorkers w;
    w.publish(w.a, "room", "1");
    w.publish(w.a, "room", "2");
    pubsub::ReplayRequest request;
    request.channel = "room";
    request.after = 1;
    request.epoch = "another";
    request.max_bytes = 1 << 20;
    request.max_messages = 64;
    bool called = false;
    w.b.replay(request, [&](pubsub::ReplaySlice& slice) {
        called = true;
        CHECK(slice.lost);
        CHECK(slice.messages.empty());
        CHECK(slice.top == 2);
        CHECK(slice.epoch == w.registry->epoch());
    });
    CHECK(called);
}
