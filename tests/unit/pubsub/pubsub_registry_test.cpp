// SPDX-License-Identifier: Apache-2.0
#include "portico/pubsub/pubsub_registry.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "portico/observe/metrics.h"

using namespace portico;
using pubsub::PubSubRegistry;
using namespace std::chrono_literals;

namespace {

// A worker's inbox that drops what it is posted.
struct NullInbox : pubsub::Inbox {
    bool enqueue(const std::string&, pubsub::MessagePtr) override { return false; }
    void wake() override {}
};

constexpr std::size_t kPayload = 100;
constexpr std::size_t kKept = kPayload + PubSubRegistry::kMessageOverhead;  // accounted per message

// A registry on a clock the test moves.
struct Fixture {
    PubSubRegistry::Clock::time_point now = PubSubRegistry::Clock::time_point{} + 1h;
    config::PubSubLimits limits;
    config::PubSubSettings settings;
    std::unique_ptr<PubSubRegistry> registry;

    explicit Fixture(std::size_t budget = 32 << 20, std::size_t max_channels = 10000) {
        limits.history_budget = budget;
        limits.max_channels = max_channels;
        settings.publish_rate = 0;
        registry = std::make_unique<PubSubRegistry>(limits, [this] { return now; });
    }
    PubSubRegistry::PublishResult publish(const std::string& channel, std::size_t size = kPayload) {
        return registry->publish(channel, std::string(size, 'x'), true, settings, nullptr);
    }
    observe::PubSubStats stats(std::size_t* channels = nullptr) {
        observe::ProcessInfo info;
        registry->stats(info);
        if (channels) *channels = info.pubsub_channels;
        return info.pubsub;
    }
};

}  // namespace

TEST_CASE("pubsub history budget drops the oldest message of any channel first", "[pubsub]") {
    Fixture f(3 * kKept);
    for (const char* channel : {"a", "b", "c", "b"}) REQUIRE(f.publish(channel).refused == PubSubRegistry::Refusal::None);
    std::size_t channels = 0;
    auto s = f.stats(&channels);
    CHECK(s.history_bytes == 3 * kKept);
    CHECK(s.history_messages == 3);
    CHECK(s.evicted_budget == 1);
    // "a" lost its only message and had no subscribers: gone, not counting against max_channels.
    CHECK(channels == 2);
    CHECK(f.registry->info("a").seq == 0);
    CHECK(f.registry->info("b").history == 2);
    CHECK(f.registry->info("c").oldest == 1);
}

TEST_CASE("pubsub a lowered budget is enforced at once", "[pubsub]") {
    Fixture f;
    for (int i = 0; i < 10; ++i) f.publish("a");
    f.limits.history_budget = 4 * kKept;
    f.registry->configure(f.limits);
    CHECK(f.stats().history_bytes == 4 * kKept);
    CHECK(f.registry->info("a").oldest == 7);
}

TEST_CASE("pubsub history is bounded per channel by count and by bytes", "[pubsub]") {
    Fixture f;
    f.settings.history = 3;
    for (int i = 0; i < 5; ++i) f.publish("count");
    CHECK(f.registry->info("count").history == 3);
    CHECK(f.registry->info("count").oldest == 3);
    CHECK(f.stats().evicted_count == 2);

    f.settings.history = 100;
    f.settings.history_bytes = 2 * kKept;
    for (int i = 0; i < 5; ++i) f.publish("bytes");
    CHECK(f.registry->info("bytes").history == 2);
    CHECK(f.stats().evicted_bytes == 3);
}

TEST_CASE("pubsub a message bigger than history_bytes is numbered but not kept", "[pubsub]") {
    Fixture f;
    f.settings.history_bytes = 1000;
    f.publish("a", 10);
    auto r = f.publish("a", 2000);
    CHECK(r.refused == PubSubRegistry::Refusal::None);
    CHECK(r.seq == 2);
    auto info = f.registry->info("a");
    CHECK(info.seq == 2);
    CHECK(info.history == 1);
    CHECK(info.oldest == 1);
}

TEST_CASE("pubsub history_ttl drops messages by age", "[pubsub]") {
    Fixture f;
    f.settings.history_ttl = 10s;
    f.settings.channel_idle_timeout = 1h;
    f.publish("a");
    f.now += 6s;
    f.publish("a");
    f.now += 5s;  // the first is 11 s old, the second 5 s
    auto slice = f.registry->replay("a", 0, 1 << 20, 64);
    REQUIRE(slice.messages.size() == 1);
    CHECK(slice.messages[0]->seq == 2);
    CHECK(slice.gap);
    CHECK(slice.done);
    CHECK(f.stats().evicted_ttl == 1);
    f.now += 10s;
    f.registry->expire();  // the sweep: no message left, no subscriber: the channel goes
    std::size_t channels = 1;
    CHECK(f.stats(&channels).evicted_ttl == 2);
    CHECK(channels == 0);
}

TEST_CASE("pubsub max_channels refuses new channels only", "[pubsub]") {
    Fixture f(32 << 20, 2);
    f.settings.history_ttl = 10s;
    CHECK(f.publish("a").refused == PubSubRegistry::Refusal::None);
    CHECK(f.publish("b").refused == PubSubRegistry::Refusal::None);
    auto r = f.publish("c");
    CHECK(r.refused == PubSubRegistry::Refusal::Channels);
    CHECK(r.retry_after >= 1s);
    CHECK(r.seq == 0);
    CHECK_FALSE(f.registry->admits("c"));
    CHECK(f.registry->admits("a"));
    std::uint64_t seq = 0;
    NullInbox hub;
    CHECK_FALSE(f.registry->subscribe("c", &hub, f.settings, seq));
    CHECK(f.publish("a").seq == 2);  // an existing channel still takes publishes
    auto s = f.stats();
    CHECK(s.refused_channels == 1);
    CHECK(s.subscribes_refused == 2);  // the hint before an upgrade and the subscription
    // Once "b" has expired there is room again.
    f.now += 11s;
    f.registry->expire();
    CHECK(f.registry->admits("c"));
    CHECK(f.registry->subscribe("c", &hub, f.settings, seq));
    f.registry->unsubscribe("c", &hub);
}

TEST_CASE("pubsub idle channels go with their history, subscribed ones stay", "[pubsub]") {
    Fixture f;
    f.settings.history_ttl = 0ms;  // no age limit: only idleness removes
    f.settings.channel_idle_timeout = 60s;
    NullInbox hub;
    std::uint64_t seq = 0;
    f.publish("idle");
    REQUIRE(f.registry->subscribe("watched", &hub, f.settings, seq));
    f.publish("watched");
    f.now += 30s;
    f.publish("busy");
    f.now += 31s;  // idle and watched: 61 s without a publish; busy: 31 s
    f.registry->expire();
    CHECK(f.registry->info("idle").seq == 0);
    CHECK(f.registry->info("watched").history == 1);
    CHECK(f.registry->info("busy").history == 1);
    auto s = f.stats();
    CHECK(s.channels_expired == 1);
    CHECK(s.evicted_idle == 1);
    // Idle counts from the last subscriber leaving.
    f.registry->unsubscribe("watched", &hub);
    f.now += 59s;
    f.registry->expire();
    CHECK(f.registry->info("watched").history == 1);
    f.now += 2s;
    f.registry->expire();
    CHECK(f.registry->info("watched").seq == 0);
}

TEST_CASE("pubsub a channel with nothing kept and nobody subscribed is not remembered", "[pubsub]") {
    Fixture f;
    f.settings.history = 0;
    f.publish("nobody");
    std::size_t channels = 1;
    f.stats(&channels);
    CHECK(channels == 0);
}

TEST_CASE("pubsub publish_rate is a token bucket per channel", "[pubsub]") {
    Fixture f;
    f.settings.publish_rate = 5;
    f.settings.publish_burst = 5;
    for (int i = 0; i < 5; ++i) REQUIRE(f.publish("a").refused == PubSubRegistry::Refusal::None);
    auto r = f.publish("a");
    CHECK(r.refused == PubSubRegistry::Refusal::Rate);
    CHECK(r.retry_after == 1s);
    CHECK(f.registry->info("a").seq == 5);                              // refused: not numbered
    CHECK(f.publish("b").refused == PubSubRegistry::Refusal::None);    // another channel
    f.now += 250ms;                                                     // one token back (and a quarter)
    CHECK(f.publish("a").refused == PubSubRegistry::Refusal::None);
    CHECK(f.publish("a").refused == PubSubRegistry::Refusal::Rate);
    f.now += 10s;  // refills to the burst, not beyond
    for (int i = 0; i < 5; ++i) REQUIRE(f.publish("a").refused == PubSubRegistry::Refusal::None);
    CHECK(f.publish("a").refused == PubSubRegistry::Refusal::Rate);
    CHECK(f.stats().refused_rate == 3);

    f.settings.publish_rate = 0;  // off
    for (int i = 0; i < 1000; ++i) REQUIRE(f.publish("c").refused == PubSubRegistry::Refusal::None);
}

TEST_CASE("pubsub publish_burst defaults to one second's worth", "[pubsub]") {
    Fixture f;
    f.settings.publish_rate = 3;
    f.settings.publish_burst = 0;
    for (int i = 0; i < 3; ++i) REQUIRE(f.publish("a").refused == PubSubRegistry::Refusal::None);
    CHECK(f.publish("a").refused == PubSubRegistry::Refusal::Rate);
}

TEST_CASE("pubsub replay comes in slices bounded by bytes and count", "[pubsub]") {
    Fixture f;
    for (int i = 0; i < 10; ++i) f.publish("a");
    constexpr std::size_t kFrame = kPayload + 14;  // payload plus the longest frame header
    auto s1 = f.registry->replay("a", 0, 3 * kFrame, 64);
    REQUIRE(s1.messages.size() == 3);
    CHECK(s1.messages.front()->seq == 1);
    CHECK(s1.cursor == 3);
    CHECK_FALSE(s1.done);
    CHECK_FALSE(s1.gap);
    CHECK(s1.next_bytes == kFrame);
    auto s2 = f.registry->replay("a", s1.cursor, 1 << 20, 4);
    CHECK(s2.messages.size() == 4);
    CHECK(s2.cursor == 7);
    auto s3 = f.registry->replay("a", s2.cursor, 1 << 20, 64);
    CHECK(s3.messages.size() == 3);
    CHECK(s3.done);
    CHECK(s3.cursor == 10);
    // Nothing fits: an empty slice that says how big the next message is.
    auto none = f.registry->replay("a", 0, kFrame - 1, 64);
    CHECK(none.messages.empty());
    CHECK_FALSE(none.done);
    CHECK(none.next_bytes == kFrame);
    // Up to date, or a seq the channel never reached: done at once.
    CHECK(f.registry->replay("a", 10, 0, 64).done);
    CHECK(f.registry->replay("a", 99, 0, 64).cursor == 10);
    CHECK(f.registry->replay("missing", 5, 0, 64).done);
}

TEST_CASE("pubsub replay after evicted messages starts at the oldest kept and says so", "[pubsub]") {
    Fixture f(4 * kKept);
    for (int i = 0; i < 10; ++i) f.publish("a");
    auto slice = f.registry->replay("a", 2, 1 << 20, 64);
    CHECK(slice.gap);
    REQUIRE(slice.messages.size() == 4);
    CHECK(slice.messages.front()->seq == 7);
    CHECK(slice.done);
    // Not even the first kept one fits: the cursor still skips the gap.
    auto tight = f.registry->replay("a", 2, 10, 64);
    CHECK(tight.gap);
    CHECK(tight.messages.empty());
    CHECK(tight.cursor == 6);
    CHECK_FALSE(f.registry->replay("a", 6, 1 << 20, 64).gap);
}

TEST_CASE("pubsub stats list the busiest channels, at most kStatusChannels, by subscribers then publishes", "[pubsub]") {
    Fixture f;
    NullInbox hub;
    const std::size_t kChannels = observe::ProcessInfo::kStatusChannels + 10;
    // Channel i gets i publishes; "watched" (created last) has the only subscribers.
    for (std::size_t i = 1; i <= kChannels; ++i)
        for (std::size_t n = 0; n < i; ++n) REQUIRE(f.publish("c" + std::to_string(i)).refused == PubSubRegistry::Refusal::None);
    std::uint64_t seq = 0;
    REQUIRE(f.registry->subscribe("/live/\nwatched", &hub, f.settings, seq));
    REQUIRE(f.registry->subscribe("/live/\nwatched", &hub, f.settings, seq));

    observe::ProcessInfo info;
    f.registry->stats(info);
    REQUIRE(info.top_channels.size() == observe::ProcessInfo::kStatusChannels);
    CHECK(info.top_channels[0].name == "/live/watched");  // shown as the path, without the '\n'
    CHECK(info.top_channels[0].subscribers == 2);
    CHECK(info.top_channels[0].published == 0);
    CHECK(info.top_channels[1].name == "c" + std::to_string(kChannels));
    CHECK(info.top_channels[1].published == kChannels);
    CHECK(info.top_channels[1].history == std::min<std::size_t>(kChannels, f.settings.history));
    // The least busy channels are the ones left out.
    CHECK(info.top_channels.back().published == kChannels - observe::ProcessInfo::kStatusChannels + 2);
    CHECK(info.pubsub.published == kChannels * (kChannels + 1) / 2);
    f.registry->unsubscribe("/live/\nwatched", &hub);
    f.registry->unsubscribe("/live/\nwatched", &hub);
}

TEST_CASE("pubsub an Idempotency-Key answers the first seq within its TTL and posts nothing", "[pubsub]") {
    Fixture f;
    auto publishWithKey = [&](const std::string& channel, const std::string& key) {
        return f.registry->publish(channel, "m", true, f.settings, nullptr, key);
    };
    auto first = publishWithKey("a", "k1");
    auto retry = publishWithKey("a", "k1");
    CHECK(first.seq == 1);
    CHECK_FALSE(first.duplicate);
    CHECK(retry.seq == 1);
    CHECK(retry.duplicate);
    CHECK(f.registry->info("a").seq == 1);  // not numbered, not kept again
    CHECK(publishWithKey("b", "k1").seq == 1);  // keys are per channel
    f.now += PubSubRegistry::kIdempotencyTtl;
    auto late = publishWithKey("a", "k1");
    CHECK_FALSE(late.duplicate);
    CHECK(late.seq == 2);
}

TEST_CASE("pubsub the Idempotency-Key table forgets the oldest key beyond its bound", "[pubsub]") {
    Fixture f;
    f.settings.history = 0;
    for (std::size_t i = 0; i <= PubSubRegistry::kIdempotencyKeys; ++i)
        f.registry->publish("a", "m", true, f.settings, nullptr, "k" + std::to_string(i));
    CHECK_FALSE(f.registry->publish("a", "m", true, f.settings, nullptr, "k0").duplicate);  // forgotten
    CHECK(f.registry->publish("a", "m", true, f.settings, nullptr, "k2").duplicate);
}

TEST_CASE("pubsub every registry has its own epoch, carried by messages, info and replays", "[pubsub]") {
    Fixture f, other;
    CHECK(f.registry->epoch().size() == 8);
    CHECK(f.registry->epoch() != other.registry->epoch());
    auto r = f.publish("a");
    CHECK(r.epoch == f.registry->epoch());
    CHECK(f.registry->info("a").epoch == f.registry->epoch());
    auto slice = f.registry->replay("a", 0, 1 << 20, 64);
    CHECK(slice.epoch == f.registry->epoch());
    CHECK(slice.top == 1);
    REQUIRE(slice.messages.size() == 1);
    CHECK(slice.messages[0]->epoch == f.registry->epoch());
}
