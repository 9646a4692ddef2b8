// SPDX-License-Identifier: Apache-2.0
#include "observe/pubsub_metrics.h"

#include <cstdint>
#include <string_view>
#include <utility>

namespace portico::observe {

namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name);
    out.append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value) {
    out.append(name).append(labels).append(" ").append(std::to_string(value)).append("\n");
}

}  // namespace

void renderPubSubPrometheus(std::string& out, const PubSubStats& s) {
    family(out, "portico_pubsub_history_messages", "gauge", "Pub/sub messages kept for ?since= replays.");
    sample(out, "portico_pubsub_history_messages", "", s.history_messages);
    family(out, "portico_pubsub_history_bytes", "gauge", "Bytes of pub/sub history (payloads plus bookkeeping).");
    sample(out, "portico_pubsub_history_bytes", "", s.history_bytes);
    family(out, "portico_pubsub_history_budget_bytes", "gauge", "pubsub.history_budget: the bound of history_bytes.");
    sample(out, "portico_pubsub_history_budget_bytes", "", s.history_budget);
    family(out, "portico_pubsub_history_evicted_total", "counter", "Messages dropped from pub/sub history by reason.");
    const std::pair<const char*, std::uint64_t> evicted[] = {{"count", s.evicted_count},
                                                             {"bytes", s.evicted_bytes},
                                                             {"ttl", s.evicted_ttl},
                                                             {"budget", s.evicted_budget},
                                                             {"idle", s.evicted_idle}};
    for (const auto& [reason, n] : evicted)
        sample(out, "portico_pubsub_history_evicted_total", std::string("{reason=\"") + reason + "\"}", n);
    family(out, "portico_pubsub_published_total", "counter", "Messages published on every channel.");
    sample(out, "portico_pubsub_published_total", "", s.published);
    family(out, "portico_pubsub_channels_expired_total", "counter", "Idle pub/sub channels removed with their history.");
    sample(out, "portico_pubsub_channels_expired_total", "", s.channels_expired);
    family(out, "portico_pubsub_publishes_refused_total", "counter", "Publishes refused by reason.");
    const std::pair<const char*, std::uint64_t> refused[] = {
        {"size", s.refused_size}, {"rate", s.refused_rate}, {"channels", s.refused_channels}};
    for (const auto& [reason, n] : refused)
        sample(out, "portico_pubsub_publishes_refused_total", std::string("{reason=\"") + reason + "\"}", n);
    family(out, "portico_pubsub_subscribes_refused_total", "counter", "Subscriptions to a new channel beyond max_channels.");
    sample(out, "portico_pubsub_subscribes_refused_total", "", s.subscribes_refused);
    family(out, "portico_pubsub_replay_truncated_total", "counter", "?since= replays that missed evicted messages.");
    sample(out, "portico_pubsub_replay_truncated_total", "", s.replay_truncated);
    family(out, "portico_pubsub_slow_subscribers_closed_total", "counter", "Subscribers closed 1008 beyond queue_bytes.");
    sample(out, "portico_pubsub_slow_subscribers_closed_total", "", s.slow_closed);
    family(out, "portico_pubsub_backplane_up", "gauge",
           "1 when every worker's Redis backplane connections are up (1 without a backplane).");
    const std::string_view state = s.backplane;
    sample(out, "portico_pubsub_backplane_up", "", state == "up" || state == "local" ? 1 : 0);
    if (!s.backplane_shards.empty()) {
        family(out, "portico_pubsub_backplane_shard_up", "gauge",
               "1 when every worker's connections to this Redis master (or the one Redis) are up.");
        for (const auto& [address, up] : s.backplane_shards)
            sample(out, "portico_pubsub_backplane_shard_up", "{shard=\"" + address + "\"}", up ? 1 : 0);
    }
    family(out, "portico_pubsub_backplane_reconnects_total", "counter", "Redis backplane connections made again.");
    sample(out, "portico_pubsub_backplane_reconnects_total", "", s.backplane_reconnects);
    family(out, "portico_pubsub_backplane_publish_failures_total", "counter",
           "Publishes answered 503: the Redis backplane was down or did not answer in publish_timeout.");
    sample(out, "portico_pubsub_backplane_publish_failures_total", "", s.backplane_publish_failures);
    family(out, "portico_pubsub_backplane_silent_total", "counter",
           "Redis subscriptions that missed a probe publish and were reconnected.");
    sample(out, "portico_pubsub_backplane_silent_total", "", s.backplane_silent);
    family(out, "portico_pubsub_backplane_subscribe_callbacks", "gauge",
           "Callbacks hiredis holds on the Redis Cluster subscribe connections (SSUBSCRIBE/SUNSUBSCRIBE in flight).");
    sample(out, "portico_pubsub_backplane_subscribe_callbacks", "", s.backplane_subscribe_callbacks);
}

std::string renderPubSubJson(const PubSubStats& s) {
    auto n = [](std::uint64_t v) { return std::to_string(v); };
    std::string shards;
    for (const auto& [address, up] : s.backplane_shards)
        shards += std::string(shards.empty() ? "" : ",") + "{\"address\":\"" + address + "\",\"state\":\"" +
                  (up ? "up" : "down") + "\"}";
    return ",\"history_messages\":" + n(s.history_messages) + ",\"history_bytes\":" + n(s.history_bytes) +
           ",\"history_budget_bytes\":" + n(s.history_budget) + ",\"evicted\":{\"count\":" + n(s.evicted_count) +
           ",\"bytes\":" + n(s.evicted_bytes) + ",\"ttl\":" + n(s.evicted_ttl) + ",\"budget\":" + n(s.evicted_budget) +
           ",\"idle\":" + n(s.evicted_idle) + "},\"channels_expired\":" + n(s.channels_expired) +
           ",\"refused\":{\"size\":" + n(s.refused_size) + ",\"rate\":" + n(s.refused_rate) +
           ",\"channels\":" + n(s.refused_channels) + "},\"subscribes_refused\":" + n(s.subscribes_refused) +
           ",\"replay_truncated\":" + n(s.replay_truncated) + ",\"slow_closed\":" + n(s.slow_closed) +
           ",\"published\":" + n(s.published) +
           ",\"backplane\":{\"state\":\"" + s.backplane + "\",\"reconnects\":" + n(s.backplane_reconnects) +
           ",\"publish_failures\":" + n(s.backplane_publish_failures) + ",\"silent\":" + n(s.backplane_silent) +
           ",\"subscribe_callbacks\":" + n(s.backplane_subscribe_callbacks) + ",\"shards\":[" + shards + "]}";
}

}  // namespace portico::observe
