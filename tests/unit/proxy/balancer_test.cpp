// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/balancer.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

using namespace portico;
using portico::proxy::Balancer;
using namespace std::chrono_literals;

namespace {

const Balancer::Clock::time_point kT0 = Balancer::Clock::time_point{} + 24h;

std::vector<int> picks(Balancer& b, int count, Balancer::Clock::time_point now, std::uint32_t hash = 0) {
    std::vector<int> chosen;
    for (int i = 0; i < count; ++i) chosen.push_back(b.pick(hash, -1, now));
    return chosen;
}

const char* name(config::Balance policy) { return config::toString(policy); }

}  // namespace

TEST_CASE("round robin takes the servers in order", "[proxy][balancer]") {
    Balancer b(config::Balance::RoundRobin, 3);
    CHECK(picks(b, 7, kT0) == std::vector<int>{0, 1, 2, 0, 1, 2, 0});
}

TEST_CASE("round robin ignores the client hash", "[proxy][balancer]") {
    Balancer b(config::Balance::RoundRobin, 3);
    std::vector<int> chosen;
    for (std::uint32_t hash : {7u, 7u, 7u, 7u}) chosen.push_back(b.pick(hash, -1, kT0));
    CHECK(chosen == std::vector<int>{0, 1, 2, 0});
}

TEST_CASE("least_conn picks the server with the fewest active requests", "[proxy][balancer]") {
    Balancer b(config::Balance::LeastConn, 3);
    b.onRequestStart(0);
    b.onRequestStart(0);
    b.onRequestStart(1);
    CHECK(b.pick(0, -1, kT0) == 2);
    b.onRequestStart(2);
    b.onRequestStart(2);
    b.onRequestStart(2);
    CHECK(b.pick(0, -1, kT0) == 1);  // 2, 1, 3 active
    b.onRequestEnd(0);
    b.onRequestEnd(0);
    CHECK(b.pick(0, -1, kT0) == 0);  // 0, 1, 3 active
}

TEST_CASE("least_conn spreads ties instead of piling on one server", "[proxy][balancer]") {
    Balancer b(config::Balance::LeastConn, 3);
    std::set<int> chosen;
    for (int i = 0; i < 3; ++i) chosen.insert(b.pick(0, -1, kT0));  // nobody active: all tied
    CHECK(chosen == std::set<int>{0, 1, 2});
    // As requests start on what was picked, every pick goes to an idle server.
    Balancer busy(config::Balance::LeastConn, 3);
    std::set<int> started;
    for (int i = 0; i < 3; ++i) {
        int s = busy.pick(0, -1, kT0);
        busy.onRequestStart(s);
        started.insert(s);
    }
    CHECK(started == std::set<int>{0, 1, 2});
}

TEST_CASE("ip_hash sends a client to the same server every time", "[proxy][balancer]") {
    Balancer b(config::Balance::IpHash, 4);
    std::map<std::uint32_t, int> first;
    for (std::uint32_t hash = 0; hash < 16; ++hash) first[hash] = b.pick(hash, -1, kT0);
    // Interleaved with other clients, each client keeps its server.
    for (int round = 0; round < 3; ++round)
        for (std::uint32_t hash = 0; hash < 16; ++hash) {
            INFO("client hash " << hash);
            CHECK(b.pick(hash, -1, kT0) == first[hash]);
        }
    std::set<int> used;
    for (const auto& [hash, server] : first) used.insert(server);
    CHECK(used.size() == 4);  // different clients spread over the servers
}

TEST_CASE("ip_hash moves a client off a down server and back when it recovers", "[proxy][balancer]") {
    Balancer b(config::Balance::IpHash, 3);
    const std::uint32_t client = 12345;
    const int home = b.pick(client, -1, kT0);
    b.markFailed(home, kT0);
    const int elsewhere = b.pick(client, -1, kT0 + 1ms);
    CHECK(elsewhere != home);
    CHECK(b.pick(client, -1, kT0 + 2ms) == elsewhere);  // stable while its server is down
    CHECK(b.pick(client, -1, kT0 + Balancer::kFirstBackoff) == home);  // probed again
    b.markSucceeded(home);
    CHECK(b.pick(client, -1, kT0 + 5s) == home);
}

TEST_CASE("a failed server is skipped until its back-off expires, then probed", "[proxy][balancer]") {
    const config::Balance policy =
        GENERATE(config::Balance::RoundRobin, config::Balance::LeastConn, config::Balance::IpHash);
    INFO(name(policy));
    Balancer b(policy, 3);
    b.markFailed(1, kT0);
    CHECK_FALSE(b.isUp(1, kT0));
    CHECK(b.isUp(0, kT0));
    for (std::uint32_t hash = 0; hash < 30; ++hash) {
        INFO("pick " << hash);
        CHECK(b.pick(hash, -1, kT0 + std::chrono::milliseconds(hash * 30)) != 1);  // up to 870 ms
    }
    CHECK(b.pick(1, -1, kT0 + 999ms) != 1);
    CHECK_FALSE(b.isUp(1, kT0 + 999ms));
    // The back-off is over: the server is tried again.
    const auto later = kT0 + Balancer::kFirstBackoff;
    CHECK(b.isUp(1, later));
    bool probed = false;
    for (std::uint32_t hash = 0; hash < 6 && !probed; ++hash) probed = b.pick(hash, -1, later) == 1;
    CHECK(probed);
}

TEST_CASE("back-off doubles from 1 s with each failure, capped at 30 s", "[proxy][balancer]") {
    Balancer b(config::Balance::RoundRobin, 2);
    const std::chrono::milliseconds kExpected[] = {1s, 2s, 4s, 8s, 16s, 30s, 30s, 30s};
    auto now = kT0;
    for (auto expected : kExpected) {
        INFO("back-off " << expected.count() << " ms");
        b.markFailed(0, now);
        CHECK_FALSE(b.isUp(0, now + expected - 1ms));
        CHECK(b.isUp(0, now + expected));
        now += expected;  // the probe at the end of the back-off fails again
    }
    SECTION("a success starts the back-off over") {
        b.markSucceeded(0);
        CHECK(b.isUp(0, now));
        b.markFailed(0, now);
        CHECK_FALSE(b.isUp(0, now + 999ms));
        CHECK(b.isUp(0, now + 1s));
    }
}

TEST_CASE("when every server is down the one that comes back first is tried", "[proxy][balancer]") {
    const config::Balance policy =
        GENERATE(config::Balance::RoundRobin, config::Balance::LeastConn, config::Balance::IpHash);
    INFO(name(policy));
    Balancer b(policy, 3);
    b.markFailed(0, kT0);             // back at +1 s
    b.markFailed(1, kT0 - 2s);
    b.markFailed(1, kT0);             // second failure: back at +2 s
    b.markFailed(2, kT0 - 600ms);     // back at +400 ms
    for (std::uint32_t hash = 0; hash < 5; ++hash) CHECK(b.pick(hash, -1, kT0) == 2);
    // The one that comes back first also wins when the request just failed elsewhere.
    CHECK(b.pick(0, 2, kT0) == 0);
}

TEST_CASE("exclude avoids the server that just failed for this request", "[proxy][balancer]") {
    const config::Balance policy =
        GENERATE(config::Balance::RoundRobin, config::Balance::LeastConn, config::Balance::IpHash);
    INFO(name(policy));
    SECTION("another server is up") {
        Balancer b(policy, 2);
        for (std::uint32_t hash = 0; hash < 6; ++hash) CHECK(b.pick(hash, 0, kT0) == 1);
    }
    SECTION("the only other server is down: it is still tried") {
        Balancer b(policy, 2);
        b.markFailed(1, kT0);
        CHECK(b.pick(0, 0, kT0) == 1);
    }
    SECTION("no server other than the excluded one") {
        Balancer b(policy, 1);
        CHECK(b.pick(0, 0, kT0) == -1);
        CHECK(b.pick(0, -1, kT0) == 0);
    }
}

TEST_CASE("a balancer without servers picks none", "[proxy][balancer]") {
    Balancer b(config::Balance::RoundRobin, 0);
    CHECK(b.pick(0, -1, kT0) == -1);
    CHECK(b.serverCount() == 0);
}
