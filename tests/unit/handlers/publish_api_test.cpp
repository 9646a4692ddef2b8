// SPDX-License-Identifier: Apache-2.0
#include "portico/handlers/publish_api.h"

#include <catch2/catch.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <memory>
#include <string>
#include <vector>

#include "portico/handlers/pubsub.h"
#include "portico/net/event_loop.h"
#include "portico/pubsub/local_backplane.h"

using namespace portico;

namespace {

// A listener of the hub as a bridged WebSocket is one: what the backplane delivers to it.
struct RecordingListener final : handlers::ChannelListener {
    std::vector<std::string> payloads;
    std::size_t frame_bytes = 0;
    int catch_ups = 0;
    void deliver(const pubsub::Message& message, handlers::MessageFrames& frames) override {
        payloads.push_back(message.payload);
        frame_bytes += frames.shared(false)->size();
    }
    void catchUp() override { ++catch_ups; }
};

struct Worker {
    net::EventLoop loop;
    std::shared_ptr<pubsub::PubSubRegistry> registry = std::make_shared<pubsub::PubSubRegistry>();
    handlers::PubSubHub hub{loop, std::make_unique<pubsub::LocalBackplane>(loop, registry)};
    handlers::GripChannels channels;  // no pubsub route: GRIP's own namespace
    void runOnce() { event_base_loop(loop.base(), EVLOOP_NONBLOCK); }
    handlers::PubSubAnswer publish(std::string_view method, std::string_view body) {
        handlers::PubSubAnswer out;
        bool called = false;
        handlers::servePublishApi(hub, channels, method, body, [&](const handlers::PubSubAnswer& a) {
            out = a;
            called = true;
        });
        REQUIRE(called);  // the in-process backplane answers before the call returns
        return out;
    }
    void listen(const std::string& channel, RecordingListener& listener) {
        const std::string key = channels.key(channel);
        bool ok = false;
        hub.backplane().subscribe(key, channels.settings(), [&](bool answer, const pubsub::Position&) { ok = answer; });
        REQUIRE(ok);
        hub.add(key, &listener);
    }
};

}  // namespace

TEST_CASE("publish API items reach the hub's listeners through the backplane, in order", "[handlers][pubsub]") {
    Worker w;
    RecordingListener room, other;
    w.listen("room", room);
    w.listen("other", other);
    auto answer = w.publish("POST", R"({"items": [
        {"channel": "room", "formats": {"ws-message": {"content": "one"}}},
        {"channel": "room", "formats": {"http-stream": {"content": "skipped"}}},
        {"channel": "other", "formats": {"ws-message": {"content-bin": "AAE="}}},
        {"channel": "room", "formats": {"ws-message": {"content": "two"}}}]})");
    CHECK(answer.status == 200);
    CHECK(answer.body == "Published\n");
    CHECK(answer.content_type == "text/plain");
    w.runOnce();
    CHECK(room.payloads == std::vector<std::string>{"one", "two"});
    CHECK(room.frame_bytes == 2 * (2 + 3));  // two unmasked text frames, encoded by the hub
    CHECK(other.payloads == std::vector<std::string>{std::string("\x00\x01", 2)});
    // The channels are the registry's: numbered there like POST /live/ publishes.
    bool seen = false;
    w.hub.backplane().info(w.channels.key("room"), [&](const pubsub::ChannelInfo& info, bool available) {
        seen = available;
        CHECK(info.seq == 2);
        CHECK(info.subscribers == 1);
    });
    CHECK(seen);
}

TEST_CASE("publish API refuses bodies that are not its JSON and methods but POST", "[handlers][pubsub]") {
    Worker w;
    RecordingListener room;
    w.listen("room", room);
    auto bad = w.publish("POST", R"({"items": [{"channel": "room", "formats": {"ws-message": {}}}]})");
    CHECK(bad.status == 400);
    CHECK(bad.body.find("content") != std::string::npos);
    CHECK(w.publish("POST", "{not json").status == 400);
    auto get = w.publish("GET", "");
    CHECK(get.status == 405);
    CHECK(get.body.empty());
    w.runOnce();
    CHECK(room.payloads.empty());
}

TEST_CASE("a listener removed from the hub hears nothing more", "[handlers][pubsub]") {
    Worker w;
    RecordingListener room;
    w.listen("room", room);
    CHECK(w.publish("POST", R"({"items": [{"channel": "room", "formats": {"ws-message": {"content": "a"}}}]})").status == 200);
    w.runOnce();
    w.hub.remove(w.channels.key("room"), &room);
    w.hub.backplane().unsubscribe(w.channels.key("room"));
    CHECK(w.publish("POST", R"({"items": [{"channel": "room", "formats": {"ws-message": {"content": "b"}}}]})").status == 200);
    w.runOnce();
    CHECK(room.payloads == std::vector<std::string>{"a"});
}
