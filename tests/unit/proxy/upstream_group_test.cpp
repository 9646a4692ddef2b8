// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/upstream_group.h"

#include <catch2/catch.hpp>

#include <memory>

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

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

namespace {

// A connection for the pool on one end of a socketpair; the test keeps the other end to see
// whether the pool closed it.
struct Parked {
    core::UniqueFd peer;
    std::unique_ptr<net::Stream> stream;
    net::Stream* raw = nullptr;
    Parked(net::EventLoop& loop, net::StreamHandler& handler) {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        peer = core::UniqueFd(fds[1]);
        stream = std::make_unique<net::Stream>(loop.base(), core::UniqueFd(fds[0]), &handler);
        raw = stream.get();
    }
    bool closedByPool() const {
        char byte;
        return ::read(peer.get(), &byte, 1) == 0;
    }
};

}  // namespace

// One epoll wakeup carries finished responses (connections coming back) and new requests
// (connections wanted): a connection over the limit closed at once would be opened again by a
// request later in the same pass (bench/RESULTS.md, "HTTPS keep-alive: upstream churn").
TEST_CASE("idle connections over keepalive close when the loop pass ends, the oldest first", "[upstream]") {
    net::EventLoop loop;
    config::Upstream upstream;
    upstream.name = "app";
    upstream.servers = {config::HostPort{"127.0.0.1", 9}};
    upstream.keepalive = 1;
    observe::Metrics metrics;
    proxy::UpstreamGroup group(loop, upstream, metrics.addWorker().upstream("app", {"127.0.0.1:9"}), nullptr);
    IgnoreStream handler;
    auto pass = [&] { event_base_loop(loop.base(), EVLOOP_NONBLOCK); };

    SECTION("a request in the same pass reuses the surplus") {
        Parked a(loop, handler), b(loop, handler);
        group.putIdle(0, std::move(a.stream));
        group.putIdle(0, std::move(b.stream));
        CHECK(group.idleCount() == 2);
        CHECK(group.takeIdle(0).get() == b.raw);  // the freshest first
        auto again = group.takeIdle(0);
        CHECK(again.get() == a.raw);  // still open: closed at once, this would be a new connect
        pass();
        CHECK_FALSE(a.closedByPool());
    }
    SECTION("the pass ends with keepalive idle connections, the freshest kept") {
        Parked a(loop, handler), b(loop, handler), c(loop, handler);
        group.putIdle(0, std::move(a.stream));
        group.putIdle(0, std::move(b.stream));
        group.putIdle(0, std::move(c.stream));
        pass();
        pass();
        CHECK(group.idleCount() == 1);
        CHECK(a.closedByPool());
        CHECK(b.closedByPool());
        CHECK_FALSE(c.closedByPool());
        CHECK(group.takeIdle(0).get() == c.raw);
    }
}
