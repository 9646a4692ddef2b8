// SPDX-License-Identifier: Apache-2.0
#include "portico/net/snapshot.h"

#include "portico/tls/key_log.h"

namespace portico::net {

namespace {

// What the status JSON calls the WebSocket sessions of `route` (a string literal).
const char* websocketMode(const config::Route& route) {
    if (!route.upstream.empty()) return config::toString(route.websocket.mode);
    if (route.handler == config::HandlerKind::Echo || route.handler == config::HandlerKind::PubSub)
        return config::toString(route.handler);
    return "none";
}

}  // namespace

WorkerSnapshot::WorkerSnapshot(EventLoop& loop, std::shared_ptr<const Snapshot> snapshot, observe::WorkerStats& stats)
    : snapshot_(std::move(snapshot)), stats_(stats) {
    for (const auto& [name, upstream] : snapshot_->config->upstreams) {
        std::vector<std::string> servers;
        for (const auto& s : upstream.servers) servers.push_back(s.toString());
        auto tls = snapshot_->tls.upstreams.find(name);
        upstreams_.emplace(name, std::make_unique<proxy::UpstreamGroup>(
                                     loop, upstream, stats.upstream(name, servers),
                                     tls == snapshot_->tls.upstreams.end() ? nullptr : tls->second.get(),
                                     snapshot_->config->io_uring != config::IoUring::Off));
    }
    std::vector<std::string> route_keys, upstream_names;
    for (const auto& route : snapshot_->config->routes) {
        std::string key = observe::routeKey(route.host, route.path, route.exact_path);
        std::shared_ptr<observe::RouteStats> route_stats = stats.route(key);
        route_stats->websocket_mode.store(websocketMode(route), std::memory_order_relaxed);
        route_stats_.push_back(std::move(route_stats));
        route_upstreams_.push_back(route.upstream.empty() ? nullptr : upstream(route.upstream));
        route_keys.push_back(key);
        trace_limiters_.push_back(route.websocket.trace
                                      ? std::make_unique<ws::TraceLimiter>(route.websocket.trace_rate, std::move(key))
                                      : nullptr);
    }
    // After a reload, routes and upstreams it removed leave /metrics and the status JSON.
    for (const auto& [name, upstream] : snapshot_->config->upstreams) upstream_names.push_back(name);
    stats.keepOnly(route_keys, upstream_names);
}

bool buildTlsContexts(const config::Config& config, const TlsContexts* previous, TlsContexts& out,
                      std::vector<std::string>& errors, std::vector<std::string>& warnings) {
    std::size_t errors_before = errors.size();
    tls::KeyLogs keylogs;  // one writer per file, shared by the listeners and upstreams naming it
    auto keylogFor = [&](const std::string& path, const std::string& key) -> std::shared_ptr<const tls::KeyLog> {
        if (path.empty()) return nullptr;
        std::string error;
        std::shared_ptr<const tls::KeyLog> log = keylogs.get(path, error);
        if (!log) errors.push_back(key + ": " + error);
        return log;
    };
    for (std::size_t i = 0; i < config.listeners.size(); ++i) {
        const auto& listener = config.listeners[i];
        if (!listener.tls) {
            out.listeners.push_back(nullptr);
            continue;
        }
        const tls::ServerContext* before = nullptr;
        if (previous && i < previous->listeners.size()) before = previous->listeners[i].get();
        auto keylog = keylogFor(listener.tls->keylog_file, "listeners[" + std::to_string(i) + "].tls.keylog_file");
        out.listeners.push_back(tls::ServerContext::build(*listener.tls, errors, warnings, before, std::move(keylog)));
    }
    for (const auto& [name, upstream] : config.upstreams) {
        if (!upstream.tls) continue;
        auto keylog = keylogFor(upstream.tls->keylog_file, "upstreams." + name + ".tls.keylog_file");
        if (auto ctx = tls::ClientContext::build(*upstream.tls, errors, warnings, std::move(keylog)))
            out.upstreams.emplace(name, std::move(ctx));
    }
    return errors.size() == errors_before;
}

proxy::UpstreamGroup* WorkerSnapshot::upstream(const std::string& name) {
    auto it = upstreams_.find(name);
    return it == upstreams_.end() ? nullptr : it->second.get();
}

}  // namespace portico::net
