// SPDX-License-Identifier: Apache-2.0
// Two reloads that reach a worker before its loop runs: the second must not drop what the first
// brought (the sockets of a listener it added, its access log), since the server opens those once.

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "portico/config/config.h"
#include "portico/net/ip_limits.h"
#include "portico/net/listen_socket.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"
#include "portico/observe/access_log.h"
#include "portico/observe/metrics.h"
#include "portico/pubsub/local_backplane.h"
#include "portico/pubsub/pubsub_registry.h"

using namespace portico;

namespace {
core::UniqueFd someFd() { return core::UniqueFd(::eventfd(0, EFD_CLOEXEC)); }

std::shared_ptr<observe::AccessSink> offSink() {
    config::LogSettings settings;
    settings.access = "off";
    std::string error;
    return observe::AccessSink::open(settings, error);
}
}  // namespace

TEST_CASE("a reload folded into the next keeps the listeners and access log it brought", "[net][reload]") {
    net::Worker::Reload first;
    first.sink = offSink();
    first.new_fds.emplace("127.0.0.1:9001", someFd());
    first.new_fds.emplace("127.0.0.1:9002", someFd());
    const int added = first.new_fds.at("127.0.0.1:9001").get();
    const auto first_sink = first.sink;

    net::Worker::Reload second;  // same listeners and log as the first: nothing new of its own
    second.new_fds.emplace("127.0.0.1:9002", someFd());
    const int own = second.new_fds.at("127.0.0.1:9002").get();
    second.foldIn(std::move(first));

    CHECK(second.sink == first_sink);
    REQUIRE(second.new_fds.count("127.0.0.1:9001") == 1);
    CHECK(second.new_fds.at("127.0.0.1:9001").get() == added);
    CHECK(second.new_fds.at("127.0.0.1:9002").get() == own);  // the newer socket wins
}

// Each reload's reload_drain_timeout holds: the older one's deadline was lost when folded.
TEST_CASE("a folded reload keeps the older one's drain deadline", "[net][reload]") {
    const auto now = std::chrono::steady_clock::now();
    net::Worker::Reload first;
    first.drains.push_back({1, now + std::chrono::seconds(10)});
    net::Worker::Reload second;  // reload_drain_timeout off in the newer configuration
    second.foldIn(std::move(first));
    REQUIRE(second.drains.size() == 1);
    CHECK(second.drains[0].generation == 1);
    CHECK(second.drains[0].deadline == now + std::chrono::seconds(10));
}

TEST_CASE("a folded reload's own access log wins over the older one's", "[net][reload]") {
    net::Worker::Reload first;
    first.sink = offSink();
    net::Worker::Reload second;
    second.sink = offSink();
    const auto newer = second.sink;
    second.foldIn(std::move(first));
    CHECK(second.sink == newer);
}

// A stop that comes while a reload is still pending drops it: the listening sockets of the
// listeners it added close with it, instead of completing handshakes nobody accepts until the
// worker is destroyed (the clients hung until shutdown_timeout, then were reset).
TEST_CASE("a stop drops a reload still pending, closing its new listeners' sockets", "[net][reload]") {
    auto config = std::make_shared<config::Config>();
    auto snapshot = std::make_shared<net::Snapshot>(config, net::TlsContexts{});
    auto registry = std::make_shared<pubsub::PubSubRegistry>();
    pubsub::BackplaneFactory backplane = [registry](net::EventLoop& loop) {
        return std::make_unique<pubsub::LocalBackplane>(loop, registry);
    };
    net::Worker worker(0, snapshot, offSink(), backplane, std::make_shared<observe::Metrics>(), {},
                       std::make_shared<net::ConnectionBudget>(10), std::make_shared<net::IpLimits>());

    auto next_config = std::make_shared<config::Config>();
    next_config->listeners.emplace_back();
    next_config->listeners.back().address = config::HostPort{"127.0.0.1", 0};
    std::string error;
    std::uint16_t port = 0;
    core::UniqueFd fd = net::openListenSocket(next_config->listeners.back().address, 0, port, error);
    REQUIRE(fd);
    net::Worker::Reload reload;
    reload.snapshot = std::make_shared<net::Snapshot>(next_config, net::TlsContexts{});
    reload.new_fds.emplace(next_config->listeners.back().address.toString(), std::move(fd));
    worker.requestReload(std::move(reload));
    worker.requestStop();  // before the worker's loop ran: both are pending
    std::string why;
    CHECK(worker.start(why));
    worker.join();

    CHECK_FALSE(net::listensHere(port));
}
