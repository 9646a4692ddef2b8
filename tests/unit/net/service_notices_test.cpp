// SPDX-License-Identifier: Apache-2.0
// What systemd hears about reloads and the stop (Type=notify-reload): every RELOADING=1 answered
// by one READY=1 in turn, and none of it after STOPPING=1.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "portico/config/config.h"
#include "portico/net/service_notices.h"
#include "portico/net/snapshot.h"

using namespace portico;

namespace {
struct Heard {
    std::vector<std::string> messages;
    net::ServiceNotices notices{[this](const std::string& m) { messages.push_back(m.substr(0, m.find('\n'))); }};
    std::vector<std::uint64_t> announced;
    void applied(std::uint64_t generation) {
        notices.applied(generation, [this](const net::Snapshot& s) { announced.push_back(s.generation); });
    }
};

std::shared_ptr<const net::Snapshot> generation(std::uint64_t n) {
    auto s = std::make_shared<net::Snapshot>(std::make_shared<config::Config>(), net::TlsContexts{});
    s->generation = n;
    return s;
}

using Lines = std::vector<std::string>;
}  // namespace

TEST_CASE("a reload is answered once every worker applied it", "[net][notify]") {
    Heard h;
    h.notices.reloading(1);
    h.notices.handedOut(generation(1));
    h.applied(0);
    CHECK(h.messages == Lines{"RELOADING=1"});
    h.applied(1);
    CHECK(h.messages == Lines{"RELOADING=1", "READY=1"});
    CHECK(h.announced == std::vector<std::uint64_t>{1});
}

TEST_CASE("a refused reload waits for the reload handed out before it", "[net][notify]") {
    Heard h;
    h.notices.reloading(1);
    h.notices.handedOut(generation(1));
    h.notices.reloading(2);
    h.notices.refused();
    // Its READY=1 now would end systemd's reloading state while the first is still applied.
    CHECK(h.messages == Lines{"RELOADING=1", "RELOADING=1"});
    h.applied(1);
    CHECK(h.messages == Lines{"RELOADING=1", "RELOADING=1", "READY=1", "READY=1"});
    CHECK(h.announced == std::vector<std::uint64_t>{1});
}

TEST_CASE("a refused reload with none before it is answered at once", "[net][notify]") {
    Heard h;
    h.notices.reloading(1);
    h.notices.refused();
    CHECK(h.messages == Lines{"RELOADING=1", "READY=1"});
}

TEST_CASE("a stop answers the reloads still pending before STOPPING=1 and announces nothing after",
          "[net][notify]") {
    Heard h;
    h.notices.reloading(1);
    h.notices.handedOut(generation(1));
    h.notices.reloading(2);
    h.notices.refused();
    CHECK(h.notices.stopping() == 1);
    CHECK(h.messages == Lines{"RELOADING=1", "RELOADING=1", "READY=1", "READY=1", "STOPPING=1"});
    h.applied(1);
    CHECK(h.messages.size() == 5);
    CHECK(h.announced.empty());
}
