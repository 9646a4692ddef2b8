// SPDX-License-Identifier: Apache-2.0
// Two workers publishing on one channel at once: a third worker's inbox must receive the
// channel's messages in seq order, or its subscribers take the out-of-order one for a gap
// (an unneeded catch-up, and a false "history lost" when they are `history` behind).
#include "portico/pubsub/pubsub_registry.h"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace portico;
using pubsub::PubSubRegistry;

namespace {

// A worker's inbox that records the seqs it is given. A `slow` one yields the CPU when woken,
// as a wakeup's write(2) may: a publisher waking it lags behind the other.
struct RecordingInbox : pubsub::Inbox {
    bool slow = false;
    std::mutex mutex;
    std::vector<std::uint64_t> seqs;

    bool enqueue(const std::string&, pubsub::MessagePtr message) override {
        if (slow) return true;
        std::lock_guard lock(mutex);
        seqs.push_back(message->seq);
        return true;
    }
    void wake() override {
        if (slow) std::this_thread::yield();
    }
};

}  // namespace

TEST_CASE("pubsub concurrent publishers reach a third worker's inbox in seq order", "[pubsub]") {
    config::PubSubSettings settings;
    settings.publish_rate = 0;
    settings.history = 0;
    constexpr int kRounds = 50;
    constexpr int kPerPublisher = 2000;
    int out_of_order = 0;
    for (int round = 0; round < kRounds && out_of_order == 0; ++round) {
        PubSubRegistry registry;
        // One array: the registry's per-channel map (ordered by address) reaches the slow
        // inbox before the recording one.
        std::array<RecordingInbox, 2> inboxes;
        inboxes[0].slow = true;
        RecordingInbox& third = inboxes[1];
        std::uint64_t seq = 0;
        for (auto& inbox : inboxes) REQUIRE(registry.subscribe("c", &inbox, settings, seq));
        auto publisher = [&] {
            for (int i = 0; i < kPerPublisher; ++i) registry.publish("c", "m", true, settings, nullptr);
        };
        std::thread a(publisher), b(publisher);
        a.join();
        b.join();
        REQUIRE(third.seqs.size() == 2 * kPerPublisher);
        for (std::size_t i = 1; i < third.seqs.size(); ++i) out_of_order += third.seqs[i] <= third.seqs[i - 1];
    }
    CHECK(out_of_order == 0);
}
