// SPDX-License-Identifier: Apache-2.0
// Two reloads that reach a worker before its loop runs: the second must not drop what the first
// brought (the sockets of a listener it added, its access log), since the server opens those once.

#include <catch2/catch.hpp>

#include <sys/eventfd.h>

#include "portico/config/config.h"
#include "portico/net/worker.h"
#include "portico/observe/access_log.h"

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
    first.max_connections = 10;
    const int added = first.new_fds.at("127.0.0.1:9001").get();
    const auto first_sink = first.sink;

    net::Worker::Reload second;  // same listeners and log as the first: nothing new of its own
    second.max_connections = 20;
    second.new_fds.emplace("127.0.0.1:9002", someFd());
    const int own = second.new_fds.at("127.0.0.1:9002").get();
    second.foldIn(std::move(first));

    CHECK(second.sink == first_sink);
    REQUIRE(second.new_fds.count("127.0.0.1:9001") == 1);
    CHECK(second.new_fds.at("127.0.0.1:9001").get() == added);
    CHECK(second.new_fds.at("127.0.0.1:9002").get() == own);  // the newer socket wins
    CHECK(second.max_connections == 20);
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
