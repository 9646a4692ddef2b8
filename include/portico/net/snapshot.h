// SPDX-License-Identifier: Apache-2.0
#pragma once
// The running configuration. A Snapshot is immutable and shared by every worker; a
// WorkerSnapshot adds one worker's mutable state that belongs to that configuration (upstream
// pools and balancer state). Each connection holds a reference to the WorkerSnapshot it started
// with, so a reload can swap in a new one under live traffic.

#include <cassert>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "portico/config/config.h"
#include "portico/observe/metrics.h"
#include "portico/proxy/route_table.h"
#include "portico/proxy/upstream_group.h"
#include "portico/tls/client_context.h"
#include "portico/tls/server_context.h"
#include "portico/ws/frame_tracer.h"

namespace portico::net {

class EventLoop;

// The TLS contexts of one configuration, built (and checked) before it goes live.
struct TlsContexts {
    std::vector<std::shared_ptr<tls::ServerContext>> listeners;  // by listener index; null: plain
    std::map<std::string, std::shared_ptr<tls::ClientContext>> upstreams;  // by upstream name
};
// Builds every context of `config`; `previous` (may be null) lends its ticket keys to listeners
// that stay, so that resumption survives a reload. Returns false with `errors` on failure.
bool buildTlsContexts(const config::Config& config, const TlsContexts* previous, TlsContexts& out,
                      std::vector<std::string>& errors, std::vector<std::string>& warnings);

struct Snapshot {
    Snapshot(std::shared_ptr<const config::Config> c, TlsContexts t)
        : config(std::move(c)), routes(config->routes), tls(std::move(t)), loaded_at(std::chrono::system_clock::now()) {}
    std::shared_ptr<const config::Config> config;
    proxy::RouteTable routes;
    TlsContexts tls;
    std::chrono::system_clock::time_point loaded_at;
    std::uint64_t generation = 0;
};

class WorkerSnapshot {
public:
    WorkerSnapshot(EventLoop& loop, std::shared_ptr<const Snapshot> snapshot, observe::WorkerStats& stats);
    const Snapshot& snapshot() const { return *snapshot_; }
    const config::Config& config() const { return *snapshot_->config; }
    // The worker-local state of upstream `name`, or nullptr.
    proxy::UpstreamGroup* upstream(const std::string& name);
    // The same for `route`'s upstream (a route of this snapshot's configuration): looked up once,
    // when the snapshot was made, not by name for every request.
    proxy::UpstreamGroup* upstream(const config::Route& route) {
        return route_upstreams_[routeIndex(route)];
    }
    // This worker's counters for `route` (a route of this snapshot's configuration).
    observe::RouteStats& routeStats(const config::Route& route) {
        return *route_stats_[routeIndex(route)];
    }
    observe::WorkerStats& stats() { return stats_; }
    // This worker's trace budget for `route` (websocket.trace_rate), or nullptr when the route
    // does not trace.
    ws::TraceLimiter* traceLimiter(const config::Route& route) {
        return trace_limiters_[routeIndex(route)].get();
    }
    // A WebSocket session's tracer on `route` for a client at `client_ip`, or nullptr when the
    // route does not trace (HTTP/1.1 connections and HTTP/2 streams alike).
    std::unique_ptr<ws::FrameTracer> makeTracer(const config::Route& route, std::string_view client_ip) {
        ws::TraceLimiter* limiter = traceLimiter(route);
        if (limiter == nullptr) return nullptr;
        return std::make_unique<ws::FrameTracer>(client_ip, *limiter, route.websocket.trace_payload_bytes);
    }

private:
    // `route`'s place in this snapshot's configuration: the per-route tables are indexed alike.
    // A route of another configuration (an older snapshot's) would index past them.
    std::size_t routeIndex(const config::Route& route) const {
        const auto& routes = snapshot_->config->routes;
        assert(&route >= routes.data() && &route < routes.data() + routes.size());
        return static_cast<std::size_t>(&route - routes.data());
    }

    std::shared_ptr<const Snapshot> snapshot_;
    std::map<std::string, std::unique_ptr<proxy::UpstreamGroup>, std::less<>> upstreams_;
    observe::WorkerStats& stats_;
    std::vector<std::shared_ptr<observe::RouteStats>> route_stats_;  // by route index
    std::vector<proxy::UpstreamGroup*> route_upstreams_;  // by route index; null: none
    std::vector<std::unique_ptr<ws::TraceLimiter>> trace_limiters_;  // by route index; null: no trace
};

}  // namespace portico::net
