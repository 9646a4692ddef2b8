// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/upstream_group.h"

#include <catch2/catch.hpp>

#include <memory>

#include "portico/net/event_loop.h"
#include "portico/net/stream.h"
#include "portico/observe/metrics.h"

using namespace portico;
using State = observe::UpstreamStats::ServerState;

namespace {

struct IgnoreStream final : net::StreamHandler {
    void onReadable(net::ByteStream&) override {}
    void onEof(net::ByteStream&) override {}
    void onError(net::ByteStream&, int) override {}
};

}  // namespace

TEST_CASE("a server is down after a failed connect, probing while it is tried again, up after a success", "[upstream]") {
    net::EventLoop loop;
    config::Upstream upstream;
    upstream.name = "app";
    // Nothing is asked of the server: the loop never runs, so the connects only start.
    upstream.servers = {config::HostPort{"127.0.0.1", 9}};
    observe::Metrics metrics;
    observe::UpstreamStats& stats = metrics.addWorker().upstream("app", {"127.0.0.1:9"});
    proxy::UpstreamGroup group(loop, upstream, stats, nullptr);
    auto state = [&] { return stats.server_state[0]->load(); };
    IgnoreStream handler;
    int error = 0;

    REQUIRE(state() == State::Up);
    auto first = group.connect(0, &handler, error);
    CHECK(state() == State::Up);  // a connect to a server that is up is no probe
    group.markFailed(0);
    CHECK(state() == State::Down);
    auto probe = group.connect(0, &handler, error);
    CHECK(state() == State::Probing);
    group.markFailed(0);
    CHECK(state() == State::Down);
    probe = group.connect(0, &handler, error);
    group.markSucceeded(0);
    CHECK(state() == State::Up);
}
