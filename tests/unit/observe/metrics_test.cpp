// SPDX-License-Identifier: Apache-2.0
#include "portico/observe/metrics.h"

#include <catch2/catch.hpp>

#include <string>

using namespace portico;
using State = observe::UpstreamStats::ServerState;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("status JSON names a server probing while one worker probes it, down while any has it down", "[metrics]") {
    observe::Metrics metrics;
    observe::WorkerStats& a = metrics.addWorker();
    observe::WorkerStats& b = metrics.addWorker();
    const std::vector<std::string> servers = {"s1:80", "s2:80", "s3:80", "s4:80"};
    auto& ua = *a.upstream("app", servers);
    auto& ub = *b.upstream("app", servers);
    ua.server_state[1]->store(State::Down);
    ua.server_state[2]->store(State::Down);
    ub.server_state[2]->store(State::Probing);
    ub.server_state[3]->store(State::Probing);
    const std::string json = metrics.renderJson({});
    CHECK(contains(json, "\"servers\":{\"s1:80\":\"up\",\"s2:80\":\"down\",\"s3:80\":\"probing\",\"s4:80\":\"probing\"}"));
    // Prometheus keeps its two values: a server being probed is not up yet.
    const std::string text = metrics.renderPrometheus({});
    CHECK(contains(text, "portico_upstream_server_up{upstream=\"app\",server=\"s1:80\"} 1\n"));
    CHECK(contains(text, "portico_upstream_server_up{upstream=\"app\",server=\"s3:80\"} 0\n"));
}

TEST_CASE("status JSON gives each route its WebSocket mode and each listener its requests", "[metrics]") {
    observe::Metrics metrics;
    observe::WorkerStats& w = metrics.addWorker();
    w.route("*/ws/")->websocket_mode.store("frames");
    w.route("*/plain/");
    w.listener("127.0.0.1:80").requests.add(7);
    const std::string json = metrics.renderJson({});
    CHECK(contains(json, "\"*/ws/\":{\"requests\":"));
    CHECK(contains(json, "\"websocket\":{\"mode\":\"frames\",\"open\":0"));
    CHECK(contains(json, "\"websocket\":{\"mode\":\"none\",\"open\":0"));
    CHECK(contains(json, "\"127.0.0.1:80\":{\"accepted\":0,\"open\":0,\"requests\":7,"));
    CHECK(contains(metrics.renderPrometheus({}), "portico_listener_requests_total{listener=\"127.0.0.1:80\"} 7\n"));
}

TEST_CASE("status JSON lists the busiest channels with escaped names", "[metrics]") {
    observe::Metrics metrics;
    observe::ProcessInfo info;
    info.top_channels.push_back({"/live/a\"b", 3, 10, 2});
    info.pubsub.published = 10;
    const std::string json = metrics.renderJson(info);
    CHECK(contains(json, "\"published\":10,\"backplane\":{\"state\":\"local\",\"reconnects\":0,\"publish_failures\":0,\"silent\":0,\"subscribe_callbacks\":0,\"shards\":[]},\"top_channels\":[{\"name\":\"/live/a\\\"b\",\"subscribers\":3,\"published\":10,\"history\":2}]}}"));
}

TEST_CASE("metrics and status name each Redis backplane shard and its state", "[metrics]") {
    observe::Metrics metrics;
    observe::ProcessInfo info;
    info.pubsub.backplane = "partial";
    info.pubsub.backplane_shards = {{"127.0.0.1:7000", true}, {"127.0.0.1:7001", false}};
    const std::string text = metrics.renderPrometheus(info);
    CHECK(contains(text, "portico_pubsub_backplane_up 0\n"));
    CHECK(contains(text, "portico_pubsub_backplane_shard_up{shard=\"127.0.0.1:7000\"} 1\n"));
    CHECK(contains(text, "portico_pubsub_backplane_shard_up{shard=\"127.0.0.1:7001\"} 0\n"));
    CHECK(contains(metrics.renderJson(info), "\"backplane\":{\"state\":\"partial\","));
    CHECK(contains(metrics.renderJson(info), "\"shards\":[{\"address\":\"127.0.0.1:7000\",\"state\":\"up\"},"
                                             "{\"address\":\"127.0.0.1:7001\",\"state\":\"down\"}]}"));
}

TEST_CASE("an upstream's stats live while a group holds them: reloads that remove or re-serve it keep none", "[metrics]") {
    // They were kept in a list that only grew, once per worker per reload.
    observe::Metrics metrics;
    observe::WorkerStats& w = metrics.addWorker();
    std::shared_ptr<observe::UpstreamStats> old_group = w.upstream("app", {"s1:80"});
    std::weak_ptr<observe::UpstreamStats> first = old_group;
    old_group->count.add(3);
    SECTION("its servers change: fresh stats carry the histogram on; the old ones go with the old group") {
        std::shared_ptr<observe::UpstreamStats> new_group = w.upstream("app", {"s1:80", "s2:80"});
        CHECK(new_group != old_group);
        CHECK(new_group->count.get() == 3);
        old_group.reset();
        CHECK(first.expired());
    }
    SECTION("removed: out of the scrapes, and freed with the last group") {
        w.keepOnly({}, {});
        CHECK_FALSE(contains(metrics.renderPrometheus({}), "upstream=\"app\""));
        CHECK_FALSE(first.expired());  // the old snapshot's group still counts into them
        old_group.reset();
        CHECK(first.expired());
    }
}
