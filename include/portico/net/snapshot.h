#pragma once
// The running configuration. A Snapshot is immutable and shared by every worker; a
// WorkerSnapshot adds one worker's mutable state that belongs to that configuration (upstream
// pools and balancer state). Each connection holds a reference to the WorkerSnapshot it started
// with, so a reload can swap in a new one under live traffic.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "portico/config/config.h"
#include "portico/observe/metrics.h"
#include "portico/proxy/route_table.h"
#include "portico/proxy/upstream_group.h"

namespace portico::net {

class EventLoop;

struct Snapshot {
    explicit Snapshot(std::shared_ptr<const config::Config> c)
        : config(std::move(c)), routes(config->routes), loaded_at(std::chrono::system_clock::now()) {}
    std::shared_ptr<const config::Config> config;
    proxy::RouteTable routes;
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
    // This worker's counters for `route` (a route of this snapshot's configuration).
    observe::RouteStats& routeStats(const config::Route& route) {
        return *route_stats_[static_cast<std::size_t>(&route - snapshot_->config->routes.data())];
    }
    observe::WorkerStats& stats() { return stats_; }

private:
    std::shared_ptr<const Snapshot> snapshot_;
    std::map<std::string, std::unique_ptr<proxy::UpstreamGroup>, std::less<>> upstreams_;
    observe::WorkerStats& stats_;
    std::vector<observe::RouteStats*> route_stats_;  // by route index
};

}  // namespace portico::net
