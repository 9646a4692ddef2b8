#include "portico/net/snapshot.h"

namespace portico::net {

WorkerSnapshot::WorkerSnapshot(EventLoop& loop, std::shared_ptr<const Snapshot> snapshot, observe::WorkerStats& stats)
    : snapshot_(std::move(snapshot)), stats_(stats) {
    for (const auto& [name, upstream] : snapshot_->config->upstreams) {
        std::vector<std::string> servers;
        for (const auto& s : upstream.servers) servers.push_back(s.toString());
        upstreams_.emplace(name, std::make_unique<proxy::UpstreamGroup>(loop, upstream, stats.upstream(name, servers)));
    }
    for (const auto& route : snapshot_->config->routes)
        route_stats_.push_back(&stats.route(observe::routeKey(route.host, route.path, route.exact_path)));
}

proxy::UpstreamGroup* WorkerSnapshot::upstream(const std::string& name) {
    auto it = upstreams_.find(name);
    return it == upstreams_.end() ? nullptr : it->second.get();
}

}  // namespace portico::net
