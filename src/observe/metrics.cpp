// SPDX-License-Identifier: Apache-2.0
#include "portico/observe/metrics.h"

#include <algorithm>
#include <cstdio>
#include <string_view>
#include <utility>

#include "observe/pubsub_metrics.h"
#include "portico/core/json.h"

namespace portico::observe {

void UpstreamStats::observe(double seconds) {
    std::size_t i = 0;
    while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
    if (i < kBuckets.size()) buckets[i].add();
    count.add();
    sum_us.add(static_cast<std::uint64_t>(seconds * 1e6));
}

ListenerStats& WorkerStats::listener(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto& slot = listeners_[key];
    if (!slot) slot = std::make_unique<ListenerStats>();
    return *slot;
}

std::shared_ptr<RouteStats> WorkerStats::route(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto& slot = routes_[key];
    if (!slot) slot = std::make_shared<RouteStats>();
    return slot;
}

void WorkerStats::keepOnly(const std::vector<std::string>& route_keys, const std::vector<std::string>& upstream_names) {
    auto named = [](const std::vector<std::string>& names, const std::string& key) {
        return std::find(names.begin(), names.end(), key) != names.end();
    };
    std::lock_guard lock(mutex_);
    std::erase_if(routes_, [&](const auto& entry) { return !named(route_keys, entry.first); });
    std::erase_if(upstreams_, [&](const auto& entry) { return !named(upstream_names, entry.first); });
}

std::shared_ptr<UpstreamStats> WorkerStats::upstream(const std::string& name, const std::vector<std::string>& servers) {
    std::lock_guard lock(mutex_);
    auto& slot = upstreams_[name];
    if (!slot || slot->server_names != servers) {
        // New, or its servers changed in a reload: fresh per-server state (the histogram goes on).
        auto fresh = std::make_shared<UpstreamStats>();
        if (slot) {
            for (std::size_t i = 0; i < fresh->buckets.size(); ++i) fresh->buckets[i].add(slot->buckets[i].get());
            fresh->count.add(slot->count.get());
            fresh->sum_us.add(slot->sum_us.get());
        }
        fresh->server_names = servers;
        for (std::size_t i = 0; i < servers.size(); ++i)
            fresh->server_state.push_back(std::make_unique<std::atomic<UpstreamStats::ServerState>>(UpstreamStats::ServerState::Up));
        slot = std::move(fresh);  // the old stats live on with the old snapshot's group
    }
    return slot;
}

WorkerStats& Metrics::addWorker() {
    std::lock_guard lock(mutex_);
    workers_.push_back(std::make_unique<WorkerStats>());
    return *workers_.back();
}

void Metrics::setReloads(std::uint64_t ok, std::uint64_t failed) {
    std::lock_guard lock(mutex_);
    info_.reloads_ok = ok;
    info_.reloads_failed = failed;
}

void Metrics::setConfig(std::string file, double loaded_at, std::uint64_t generation) {
    std::lock_guard lock(mutex_);
    info_.config_file = std::move(file);
    info_.config_loaded_at = loaded_at;
    info_.generation = generation;
}

ProcessInfo Metrics::processInfo() const {
    std::lock_guard lock(mutex_);
    ProcessInfo info = info_;
    if (ip_table_size_) info.ip_table_entries = ip_table_size_();
    return info;
}

void Metrics::setIpTableSize(std::function<std::size_t()> size) {
    std::lock_guard lock(mutex_);
    ip_table_size_ = std::move(size);
}

std::string routeKey(const std::string& host, const std::string& path, bool exact) {
    return (host.empty() ? std::string("*") : host) + (exact ? "=" : "") + path;
}

namespace {

// Sums of every worker's series, by key.
struct Totals {
    struct Listener {
        std::uint64_t accepted = 0, open = 0, requests = 0, tls_ok = 0, tls_failed = 0;
    };
    struct Route {
        std::array<std::uint64_t, 6> requests{};
        const char* mode = "none";
        std::uint64_t ws_open = 0, msg_in = 0, msg_out = 0, bytes_in = 0, bytes_out = 0;
        std::uint64_t closed_rate = 0, closed_lifetime = 0, closed_inflating = 0;
        std::uint64_t bridge_requests = 0, bridge_to_app = 0, bridge_from_app = 0, bridge_failed_error = 0,
                      bridge_failed_timeout = 0, bridge_failed_answer = 0, bridge_open = 0, bridge_paused = 0;
        bool bridged() const { return std::string_view(mode) == "http"; }
    };
    struct Upstream {
        std::array<std::uint64_t, UpstreamStats::kBuckets.size()> buckets{};
        std::uint64_t count = 0, sum_us = 0;
        std::vector<std::string> servers;
        std::vector<std::uint64_t> down;     // workers that have the server down (or probing)
        std::vector<std::uint64_t> probing;  // workers probing it
        // "up" when no worker has it down, "probing" while one tries it, else "down".
        const char* state(std::size_t i) const { return !down[i] ? "up" : probing[i] ? "probing" : "down"; }
    };
    std::map<std::string, Listener> listeners;
    std::map<std::string, Route> routes;
    std::map<std::string, Upstream> upstreams;
    std::uint64_t rejected_connections = 0, rejected_websockets = 0, rejected_rate = 0, untracked = 0,
                  accept_errors = 0;
};

std::string escapeLabel(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out.push_back('\\');
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out.push_back(c);
    }
    return out;
}

}  // namespace

struct StatsReader {
    static Totals collect(const std::vector<std::unique_ptr<WorkerStats>>& workers);
};

std::string Metrics::renderPrometheus(const ProcessInfo& info) {
    Totals t;
    {
        std::lock_guard lock(mutex_);
        t = StatsReader::collect(workers_);
    }
    std::string out;
    char line[512];
    auto metric = [&](const char* name, const char* type, const char* help) {
        snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
        out += line;
    };
    metric("portico_connections_accepted_total", "counter", "Client connections accepted per listener.");
    for (auto& [k, v] : t.listeners)
        out += "portico_connections_accepted_total{listener=\"" + escapeLabel(k) + "\"} " + std::to_string(v.accepted) + "\n";
    metric("portico_connections_open", "gauge", "Client connections open per listener.");
    for (auto& [k, v] : t.listeners)
        out += "portico_connections_open{listener=\"" + escapeLabel(k) + "\"} " + std::to_string(v.open) + "\n";
    metric("portico_listener_requests_total", "counter", "Requests answered per listener.");
    for (auto& [k, v] : t.listeners)
        out += "portico_listener_requests_total{listener=\"" + escapeLabel(k) + "\"} " + std::to_string(v.requests) + "\n";
    metric("portico_tls_handshakes_total", "counter", "TLS handshakes completed per listener.");
    for (auto& [k, v] : t.listeners)
        out += "portico_tls_handshakes_total{listener=\"" + escapeLabel(k) + "\"} " + std::to_string(v.tls_ok) + "\n";
    metric("portico_tls_handshake_failures_total", "counter", "TLS handshakes failed per listener.");
    for (auto& [k, v] : t.listeners)
        out += "portico_tls_handshake_failures_total{listener=\"" + escapeLabel(k) + "\"} " + std::to_string(v.tls_failed) + "\n";
    metric("portico_requests_total", "counter", "Requests per route and status class.");
    static const char* kClasses[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (auto& [k, v] : t.routes)
        for (std::size_t c = 0; c < v.requests.size(); ++c)
            if (v.requests[c])
                out += "portico_requests_total{route=\"" + escapeLabel(k) + "\",status=\"" + kClasses[c] + "\"} " +
                       std::to_string(v.requests[c]) + "\n";
    metric("portico_websocket_connections_open", "gauge", "Upgraded connections open per route.");
    for (auto& [k, v] : t.routes)
        out += "portico_websocket_connections_open{route=\"" + escapeLabel(k) + "\"} " + std::to_string(v.ws_open) + "\n";
    metric("portico_websocket_messages_total", "counter", "WebSocket messages per route and direction.");
    for (auto& [k, v] : t.routes) {
        out += "portico_websocket_messages_total{route=\"" + escapeLabel(k) + "\",direction=\"in\"} " + std::to_string(v.msg_in) + "\n";
        out += "portico_websocket_messages_total{route=\"" + escapeLabel(k) + "\",direction=\"out\"} " + std::to_string(v.msg_out) + "\n";
    }
    metric("portico_websocket_bytes_total", "counter", "WebSocket bytes per route and direction.");
    for (auto& [k, v] : t.routes) {
        out += "portico_websocket_bytes_total{route=\"" + escapeLabel(k) + "\",direction=\"in\"} " + std::to_string(v.bytes_in) + "\n";
        out += "portico_websocket_bytes_total{route=\"" + escapeLabel(k) + "\",direction=\"out\"} " + std::to_string(v.bytes_out) + "\n";
    }
    metric("portico_websocket_limit_closes_total", "counter", "WebSocket sessions closed by a route limit.");
    for (auto& [k, v] : t.routes) {
        out += "portico_websocket_limit_closes_total{route=\"" + escapeLabel(k) + "\",limit=\"rate\"} " + std::to_string(v.closed_rate) + "\n";
        out += "portico_websocket_limit_closes_total{route=\"" + escapeLabel(k) + "\",limit=\"lifetime\"} " + std::to_string(v.closed_lifetime) + "\n";
        out += "portico_websocket_limit_closes_total{route=\"" + escapeLabel(k) + "\",limit=\"inflating\"} " + std::to_string(v.closed_inflating) + "\n";
    }
    // The bridge's families list the routes in mode http only.
    metric("portico_bridge_requests_total", "counter", "Event requests the WebSocket-over-HTTP bridge sent to the app.");
    for (auto& [k, v] : t.routes)
        if (v.bridged()) out += "portico_bridge_requests_total{route=\"" + escapeLabel(k) + "\"} " + std::to_string(v.bridge_requests) + "\n";
    metric("portico_bridge_events_total", "counter", "Bridge events per route and direction (to or from the app).");
    for (auto& [k, v] : t.routes) {
        if (!v.bridged()) continue;
        out += "portico_bridge_events_total{route=\"" + escapeLabel(k) + "\",direction=\"to_app\"} " + std::to_string(v.bridge_to_app) + "\n";
        out += "portico_bridge_events_total{route=\"" + escapeLabel(k) + "\",direction=\"from_app\"} " + std::to_string(v.bridge_from_app) + "\n";
    }
    metric("portico_bridge_request_failures_total", "counter", "Bridge requests that failed, by reason (error, timeout, answer).");
    for (auto& [k, v] : t.routes) {
        if (!v.bridged()) continue;
        const std::pair<const char*, std::uint64_t> reasons[] = {
            {"error", v.bridge_failed_error}, {"timeout", v.bridge_failed_timeout}, {"answer", v.bridge_failed_answer}};
        for (const auto& [reason, n] : reasons)
            out += "portico_bridge_request_failures_total{route=\"" + escapeLabel(k) + "\",reason=\"" + reason + "\"} " + std::to_string(n) + "\n";
    }
    metric("portico_bridge_websockets_open", "gauge", "Bridged WebSockets the app accepted whose client is connected.");
    for (auto& [k, v] : t.routes)
        if (v.bridged()) out += "portico_bridge_websockets_open{route=\"" + escapeLabel(k) + "\"} " + std::to_string(v.bridge_open) + "\n";
    metric("portico_bridge_reading_paused_total", "counter", "Times max_batch_bytes of queued events paused reading a client.");
    for (auto& [k, v] : t.routes)
        if (v.bridged()) out += "portico_bridge_reading_paused_total{route=\"" + escapeLabel(k) + "\"} " + std::to_string(v.bridge_paused) + "\n";
    metric("portico_upstream_response_seconds", "histogram", "Upstream response time.");
    for (auto& [k, v] : t.upstreams) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < v.buckets.size(); ++i) {
            cumulative += v.buckets[i];
            snprintf(line, sizeof line, "portico_upstream_response_seconds_bucket{upstream=\"%s\",le=\"%g\"} %llu\n",
                     escapeLabel(k).c_str(), UpstreamStats::kBuckets[i], static_cast<unsigned long long>(cumulative));
            out += line;
        }
        snprintf(line, sizeof line,
                 "portico_upstream_response_seconds_bucket{upstream=\"%s\",le=\"+Inf\"} %llu\n"
                 "portico_upstream_response_seconds_sum{upstream=\"%s\"} %.6f\n"
                 "portico_upstream_response_seconds_count{upstream=\"%s\"} %llu\n",
                 escapeLabel(k).c_str(), static_cast<unsigned long long>(v.count), escapeLabel(k).c_str(),
                 static_cast<double>(v.sum_us) / 1e6, escapeLabel(k).c_str(), static_cast<unsigned long long>(v.count));
        out += line;
    }
    metric("portico_upstream_server_up", "gauge", "1 when no worker has the server marked down.");
    for (auto& [k, v] : t.upstreams)
        for (std::size_t i = 0; i < v.servers.size(); ++i)
            out += "portico_upstream_server_up{upstream=\"" + escapeLabel(k) + "\",server=\"" + escapeLabel(v.servers[i]) +
                   "\"} " + (v.down[i] ? "0" : "1") + "\n";
    metric("portico_pubsub_channels", "gauge", "Pub/sub channels known.");
    out += "portico_pubsub_channels " + std::to_string(info.pubsub_channels) + "\n";
    metric("portico_pubsub_subscribers", "gauge", "Pub/sub subscribers on every worker.");
    out += "portico_pubsub_subscribers " + std::to_string(info.pubsub_subscribers) + "\n";
    renderPubSubPrometheus(out, info.pubsub);
    metric("portico_limit_rejections_total", "counter", "Connections and upgrades refused by a per-client-address limit.");
    out += "portico_limit_rejections_total{limit=\"per_ip_connections\"} " + std::to_string(t.rejected_connections) + "\n";
    out += "portico_limit_rejections_total{limit=\"per_ip_websockets\"} " + std::to_string(t.rejected_websockets) + "\n";
    out += "portico_limit_rejections_total{limit=\"per_ip_upgrade_rate\"} " + std::to_string(t.rejected_rate) + "\n";
    metric("portico_ip_table_entries", "gauge", "Client addresses tracked by the per-IP limits.");
    out += "portico_ip_table_entries " + std::to_string(info.ip_table_entries) + "\n";
    metric("portico_ip_table_untracked_total", "counter", "Admissions not counted because the per-IP table was full.");
    out += "portico_ip_table_untracked_total " + std::to_string(t.untracked) + "\n";
    metric("portico_accept_errors_total", "counter", "accept() failures (e.g. out of file descriptors).");
    out += "portico_accept_errors_total " + std::to_string(t.accept_errors) + "\n";
    metric("portico_reloads_total", "counter", "Configuration reloads by outcome.");
    out += "portico_reloads_total{outcome=\"ok\"} " + std::to_string(info.reloads_ok) + "\n";
    out += "portico_reloads_total{outcome=\"failed\"} " + std::to_string(info.reloads_failed) + "\n";
    return out;
}

std::string Metrics::renderJson(const ProcessInfo& info) {
    Totals t;
    {
        std::lock_guard lock(mutex_);
        t = StatsReader::collect(workers_);
    }
    auto quote = [](const std::string& s) {
        std::string out;
        core::appendJsonString(out, s);
        return out;
    };
    std::string out = "{\"config\":{\"file\":" + quote(info.config_file) + ",\"loaded_at\":" +
                      std::to_string(static_cast<long long>(info.config_loaded_at)) +
                      ",\"generation\":" + std::to_string(info.generation) + "},";
    out += "\"reloads\":{\"ok\":" + std::to_string(info.reloads_ok) + ",\"failed\":" + std::to_string(info.reloads_failed) + "},";
    out += "\"listeners\":{";
    bool first = true;
    for (auto& [k, v] : t.listeners) {
        out += (first ? "" : ",") + quote(k) + ":{\"accepted\":" + std::to_string(v.accepted) + ",\"open\":" +
               std::to_string(v.open) + ",\"requests\":" + std::to_string(v.requests) + ",\"tls_handshakes\":" + std::to_string(v.tls_ok) +
               ",\"tls_failures\":" + std::to_string(v.tls_failed) + "}";
        first = false;
    }
    out += "},\"routes\":{";
    first = true;
    for (auto& [k, v] : t.routes) {
        out += (first ? "" : ",") + quote(k) + ":{\"requests\":{\"1xx\":" + std::to_string(v.requests[1]) +
               ",\"2xx\":" + std::to_string(v.requests[2]) + ",\"3xx\":" + std::to_string(v.requests[3]) +
               ",\"4xx\":" + std::to_string(v.requests[4]) + ",\"5xx\":" + std::to_string(v.requests[5]) +
               "},\"websocket\":{\"mode\":" + quote(v.mode) + ",\"open\":" + std::to_string(v.ws_open) + ",\"messages_in\":" + std::to_string(v.msg_in) +
               ",\"messages_out\":" + std::to_string(v.msg_out) + ",\"bytes_in\":" + std::to_string(v.bytes_in) +
               ",\"bytes_out\":" + std::to_string(v.bytes_out) + ",\"closed_by_rate\":" + std::to_string(v.closed_rate) +
               ",\"closed_by_lifetime\":" + std::to_string(v.closed_lifetime) +
               ",\"closed_by_inflating\":" + std::to_string(v.closed_inflating) + "}";
        if (v.bridged()) {
            out += ",\"bridge\":{\"requests\":" + std::to_string(v.bridge_requests) + ",\"events_to_app\":" +
                   std::to_string(v.bridge_to_app) + ",\"events_from_app\":" + std::to_string(v.bridge_from_app) +
                   ",\"failures\":{\"error\":" + std::to_string(v.bridge_failed_error) + ",\"timeout\":" +
                   std::to_string(v.bridge_failed_timeout) + ",\"answer\":" + std::to_string(v.bridge_failed_answer) +
                   "},\"open\":" + std::to_string(v.bridge_open) + ",\"reading_paused\":" + std::to_string(v.bridge_paused) + "}";
        }
        out += "}";
        first = false;
    }
    out += "},\"upstreams\":{";
    first = true;
    for (auto& [k, v] : t.upstreams) {
        out += (first ? "" : ",") + quote(k) + ":{\"responses\":" + std::to_string(v.count) + ",\"response_seconds_sum\":" +
               std::to_string(static_cast<double>(v.sum_us) / 1e6) + ",\"servers\":{";
        for (std::size_t i = 0; i < v.servers.size(); ++i)
            out += (i ? "," : "") + quote(v.servers[i]) + ":" + quote(v.state(i));
        out += "}}";
        first = false;
    }
    out += "},\"limits\":{\"rejected\":{\"per_ip_connections\":" + std::to_string(t.rejected_connections) +
           ",\"per_ip_websockets\":" + std::to_string(t.rejected_websockets) +
           ",\"per_ip_upgrade_rate\":" + std::to_string(t.rejected_rate) +
           "},\"ip_table_entries\":" + std::to_string(info.ip_table_entries) +
           ",\"ip_table_untracked\":" + std::to_string(t.untracked) +
           ",\"accept_errors\":" + std::to_string(t.accept_errors);
    out += "},\"pubsub\":{\"channels\":" + std::to_string(info.pubsub_channels) +
           ",\"subscribers\":" + std::to_string(info.pubsub_subscribers) + renderPubSubJson(info.pubsub) +
           ",\"top_channels\":[";
    first = true;
    for (const ChannelSample& c : info.top_channels) {
        out += (first ? "{\"name\":" : ",{\"name\":") + quote(c.name) + ",\"subscribers\":" + std::to_string(c.subscribers) +
               ",\"published\":" + std::to_string(c.published) + ",\"history\":" + std::to_string(c.history) + "}";
        first = false;
    }
    out += "]}}\n";
    return out;
}

Totals StatsReader::collect(const std::vector<std::unique_ptr<WorkerStats>>& workers) {
    Totals t;
    for (const auto& w : workers) {
        std::lock_guard lock(w->mutex_);
        t.rejected_connections += w->limits.rejected_connections.get();
        t.rejected_websockets += w->limits.rejected_websockets.get();
        t.rejected_rate += w->limits.rejected_rate.get();
        t.untracked += w->limits.untracked.get();
        t.accept_errors += w->limits.accept_errors.get();
        for (auto& [k, s] : w->listeners_) {
            auto& o = t.listeners[k];
            o.accepted += s->accepted.get();
            o.open += s->open.get();
            o.requests += s->requests.get();
            o.tls_ok += s->tls_handshakes.get();
            o.tls_failed += s->tls_failures.get();
        }
        for (auto& [k, s] : w->routes_) {
            auto& o = t.routes[k];
            for (std::size_t i = 0; i < o.requests.size(); ++i) o.requests[i] += s->requests[i].get();
            o.mode = s->websocket_mode.load(std::memory_order_relaxed);
            o.ws_open += s->ws_open.get();
            o.msg_in += s->ws_messages_in.get();
            o.msg_out += s->ws_messages_out.get();
            o.bytes_in += s->ws_bytes_in.get();
            o.bytes_out += s->ws_bytes_out.get();
            o.closed_rate += s->ws_closed_rate.get();
            o.closed_lifetime += s->ws_closed_lifetime.get();
            o.closed_inflating += s->ws_closed_inflating.get();
            o.bridge_requests += s->bridge.requests.get();
            o.bridge_to_app += s->bridge.events_to_app.get();
            o.bridge_from_app += s->bridge.events_from_app.get();
            o.bridge_failed_error += s->bridge.failed_error.get();
            o.bridge_failed_timeout += s->bridge.failed_timeout.get();
            o.bridge_failed_answer += s->bridge.failed_answer.get();
            o.bridge_open += s->bridge.open.get();
            o.bridge_paused += s->bridge.reading_paused.get();
        }
        for (auto& [k, s] : w->upstreams_) {
            auto& o = t.upstreams[k];
            for (std::size_t i = 0; i < o.buckets.size(); ++i) o.buckets[i] += s->buckets[i].get();
            o.count += s->count.get();
            o.sum_us += s->sum_us.get();
            if (o.servers.empty()) {
                o.servers = s->server_names;
                o.down.assign(o.servers.size(), 0);
                o.probing.assign(o.servers.size(), 0);
            }
            for (std::size_t i = 0; i < s->server_state.size() && i < o.down.size(); ++i) {
                const auto state = s->server_state[i]->load(std::memory_order_relaxed);
                o.down[i] += state != UpstreamStats::ServerState::Up;
                o.probing[i] += state == UpstreamStats::ServerState::Probing;
            }
        }
    }
    return t;
}

}  // namespace portico::observe
