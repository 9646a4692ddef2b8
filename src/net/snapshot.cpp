#include "portico/net/snapshot.h"

namespace portico::net {

WorkerSnapshot::WorkerSnapshot(EventLoop& loop, std::shared_ptr<const Snapshot> snapshot)
    : snapshot_(std::move(snapshot)) {
    for (const auto& [name, upstream] : snapshot_->config->upstreams)
        upstreams_.emplace(name, std::make_unique<proxy::UpstreamGroup>(loop, upstream));
}

proxy::UpstreamGroup* WorkerSnapshot::upstream(const std::string& name) {
    auto it = upstreams_.find(name);
    return it == upstreams_.end() ? nullptr : it->second.get();
}

}  // namespace portico::net
