// SPDX-License-Identifier: Apache-2.0
// The process-wide per-client-address table: keys (IPv6 grouped by prefix), the caps, the
// upgrade token bucket on a test clock, entries going away, and the bound on entries.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <netinet/in.h>
#include <string>
#include <thread>
#include <vector>

#include "portico/net/ip_limits.h"

using namespace portico::net;
using namespace std::chrono_literals;
using portico::config::Limits;
using Verdict = IpLimits::Verdict;

namespace {

IpKey key(const std::string& text, unsigned prefix = 64) {
    auto k = ipKeyOf(text, prefix);
    REQUIRE(k.has_value());
    return *k;
}

// A clock the test moves by hand.
struct TestClock {
    std::chrono::steady_clock::time_point now{std::chrono::seconds(1000)};
    IpLimits::Clock fn() {
        return [this] { return now; };
    }
};

Limits only(std::size_t connections, std::size_t websockets, double rate = 0, std::size_t burst = 20) {
    Limits l;
    l.per_ip_connections = connections;
    l.per_ip_websockets = websockets;
    l.per_ip_upgrade_rate = rate;
    l.per_ip_upgrade_burst = burst;
    return l;
}

}  // namespace

TEST_CASE("IPv6 addresses in one prefix share a key; IPv4 addresses do not", "[net][ip_limits]") {
    CHECK(key("2001:db8:1:2:aaaa::1") == key("2001:db8:1:2:bbbb::2"));
    CHECK_FALSE(key("2001:db8:1:2::1") == key("2001:db8:1:3::1"));
    CHECK(key("2001:db8:1:2::1", 48) == key("2001:db8:1:3::1", 48));
    CHECK_FALSE(key("2001:db8:1:2::1", 128) == key("2001:db8:1:2::2", 128));
    // A prefix that is not a multiple of 8 masks inside a byte.
    CHECK(key("2001:db8:1:ff::", 57) == key("2001:db8:1:80::", 57));
    CHECK_FALSE(key("2001:db8:1:ff::", 57) == key("2001:db8:1:7f::", 57));
    CHECK_FALSE(key("127.0.0.2") == key("127.0.0.3"));
    CHECK(key("2001:db8::1", 64).toString(64) == "2001:db8::/64");
    CHECK(key("192.0.2.7").toString(64) == "192.0.2.7");
}

TEST_CASE("an IPv4-mapped IPv6 peer counts as its IPv4 address, whatever the prefix", "[net][ip_limits]") {
    CHECK(key("::ffff:192.0.2.7", 64) == key("192.0.2.7"));
    CHECK_FALSE(key("::ffff:192.0.2.7", 64) == key("::ffff:192.0.2.8", 64));
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr);
    auto from_peer = ipKeyOf(reinterpret_cast<const sockaddr*>(&in6), 32);
    REQUIRE(from_peer);
    CHECK(*from_peer == key("10.1.2.3"));
    sockaddr_in in{};
    in.sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
    CHECK(ipKeyOf(reinterpret_cast<const sockaddr*>(&in), 64) == from_peer);
    sockaddr unix_peer{};
    unix_peer.sa_family = AF_UNIX;
    CHECK_FALSE(ipKeyOf(&unix_peer, 64).has_value());
    CHECK_FALSE(ipKeyOf(std::string("not an address"), 64).has_value());
}

TEST_CASE("per_ip_connections admits up to the cap per address and frees a slot on release", "[net][ip_limits]") {
    IpLimits table;
    const Limits limits = only(2, 0);
    auto a1 = table.admitConnection(key("127.0.0.2"), limits);
    auto a2 = table.admitConnection(key("127.0.0.2"), limits);
    CHECK(a1.verdict == Verdict::Admitted);
    CHECK(a2.verdict == Verdict::Admitted);
    CHECK(table.admitConnection(key("127.0.0.2"), limits).verdict == Verdict::OverConnections);
    // another address has its own count
    auto b1 = table.admitConnection(key("127.0.0.3"), limits);
    CHECK(b1.verdict == Verdict::Admitted);
    a1.lease.reset();
    auto a3 = table.admitConnection(key("127.0.0.2"), limits);
    CHECK(a3.verdict == Verdict::Admitted);
    CHECK(a3.admitted());
}

TEST_CASE("a limit of 0 is off and tracks nothing", "[net][ip_limits]") {
    IpLimits table;
    const Limits limits = only(0, 0, 0);
    for (int i = 0; i < 100; ++i) {
        auto c = table.admitConnection(key("127.0.0.2"), limits);
        CHECK(c.verdict == Verdict::Admitted);
        CHECK_FALSE(c.lease);
        auto u = table.admitUpgrade(key("127.0.0.2"), limits);
        CHECK(u.verdict == Verdict::Admitted);
        CHECK_FALSE(u.lease);
    }
    CHECK(table.size() == 0);
}

TEST_CASE("per_ip_websockets caps concurrent upgrades, apart from connections", "[net][ip_limits]") {
    IpLimits table;
    const Limits limits = only(10, 1);
    auto conn = table.admitConnection(key("127.0.0.2"), limits);
    auto ws1 = table.admitUpgrade(key("127.0.0.2"), limits);
    CHECK(ws1.verdict == Verdict::Admitted);
    CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::OverWebSockets);
    CHECK(table.admitUpgrade(key("127.0.0.3"), limits).verdict == Verdict::Admitted);
    ws1.lease.reset();
    CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::Admitted);
    CHECK(conn.verdict == Verdict::Admitted);
}

TEST_CASE("the upgrade bucket allows a burst, then one per 1/rate, with the wait until the next token",
          "[net][ip_limits]") {
    TestClock clock;
    IpLimits table(clock.fn());
    const Limits limits = only(0, 0, /*rate=*/2, /*burst=*/3);
    for (int i = 0; i < 3; ++i) CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::Admitted);
    auto refused = table.admitUpgrade(key("127.0.0.2"), limits);
    CHECK(refused.verdict == Verdict::OverRate);
    CHECK(refused.retry_after == 500ms);
    // another address has a bucket of its own
    CHECK(table.admitUpgrade(key("127.0.0.3"), limits).verdict == Verdict::Admitted);
    clock.now += 200ms;
    auto still = table.admitUpgrade(key("127.0.0.2"), limits);
    CHECK(still.verdict == Verdict::OverRate);
    CHECK(still.retry_after == 300ms);
    clock.now += 300ms;
    CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::Admitted);
    CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::OverRate);
    // a long pause refills up to the burst, not beyond
    clock.now += 1h;
    for (int i = 0; i < 3; ++i) CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::Admitted);
    CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::OverRate);
}

TEST_CASE("an upgrade over per_ip_websockets spends no token", "[net][ip_limits]") {
    TestClock clock;
    IpLimits table(clock.fn());
    const Limits limits = only(0, 1, /*rate=*/1, /*burst=*/2);
    auto ws = table.admitUpgrade(key("127.0.0.2"), limits);  // token 1 of 2
    REQUIRE(ws.verdict == Verdict::Admitted);
    for (int i = 0; i < 5; ++i) CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::OverWebSockets);
    ws.lease.reset();
    CHECK(table.admitUpgrade(key("127.0.0.2"), limits).verdict == Verdict::Admitted);  // token 2 of 2
}

TEST_CASE("an entry goes when it counts nothing and its bucket is full again", "[net][ip_limits]") {
    TestClock clock;
    IpLimits table(clock.fn());
    {
        auto c = table.admitConnection(key("127.0.0.2"), only(5, 0));
        auto d = table.admitConnection(key("127.0.0.2"), only(5, 0));
        CHECK(table.size() == 1);
        c.lease.reset();
        CHECK(table.size() == 1);
    }
    CHECK(table.size() == 0);

    // A bucket that is not full keeps the entry (forgetting it would hand out a fresh burst)
    // until it has refilled; a sweep then removes it.
    const Limits rate = only(0, 1, /*rate=*/10, /*burst=*/5);
    {
        auto ws = table.admitUpgrade(key("127.0.0.4"), rate);
        REQUIRE(ws.verdict == Verdict::Admitted);
    }
    CHECK(table.size() == 1);
    CHECK(table.sweep() == 0);
    clock.now += 50ms;  // 0.5 token back: still short of the burst
    CHECK(table.sweep() == 0);
    clock.now += 50ms;
    CHECK(table.sweep() == 1);
    CHECK(table.size() == 0);
}

TEST_CASE("a lease moved from keeps one count; leases release into the entry they counted", "[net][ip_limits]") {
    IpLimits table;
    auto a = table.admitConnection(key("2001:db8::1"), only(1, 0));
    IpLimits::Lease moved = std::move(a.lease);
    CHECK(moved);
    CHECK_FALSE(a.lease);
    // a reload to another prefix: the lease still releases the entry it counted
    Limits other = only(1, 0);
    other.per_ip_ipv6_prefix = 128;
    CHECK(table.admitConnection(key("2001:db8::1", 128), other).verdict == Verdict::Admitted);
    CHECK(table.size() == 1);  // the admission above released at once (its lease was dropped)
    moved = IpLimits::Lease();
    CHECK(table.size() == 0);
}

TEST_CASE("the table holds at most per_ip_table_size addresses and then fails open", "[net][ip_limits]") {
    TestClock clock;
    IpLimits table(clock.fn());
    Limits limits = only(1, 0);
    limits.per_ip_table_size = 3;
    std::vector<IpLimits::Admission> held;
    for (const char* ip : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
        held.push_back(table.admitConnection(key(ip), limits));
        CHECK(held.back().verdict == Verdict::Admitted);
    }
    CHECK(table.size() == 3);
    auto untracked = table.admitConnection(key("10.0.0.4"), limits);
    CHECK(untracked.verdict == Verdict::Untracked);
    CHECK(untracked.admitted());
    CHECK_FALSE(untracked.lease);
    CHECK(table.size() == 3);
    // an address already tracked is still limited
    CHECK(table.admitConnection(key("10.0.0.1"), limits).verdict == Verdict::OverConnections);
    held.pop_back();  // 10.0.0.3 closes: its entry goes, a new address fits again
    CHECK(table.size() == 2);
    CHECK(table.admitConnection(key("10.0.0.4"), limits).verdict == Verdict::Admitted);
}

TEST_CASE("a full table sweeps entries whose bucket has refilled, at most once per interval", "[net][ip_limits]") {
    TestClock clock;
    IpLimits table(clock.fn());
    Limits limits = only(0, 0, /*rate=*/1, /*burst=*/1);
    limits.per_ip_table_size = 2;
    CHECK(table.admitUpgrade(key("10.0.0.1"), limits).verdict == Verdict::Admitted);
    CHECK(table.admitUpgrade(key("10.0.0.2"), limits).verdict == Verdict::Admitted);
    CHECK(table.size() == 2);  // both buckets empty: kept
    CHECK(table.admitUpgrade(key("10.0.0.3"), limits).verdict == Verdict::Untracked);
    clock.now += 2s;  // both refilled: idle; a sweep may run again
    CHECK(table.admitUpgrade(key("10.0.0.3"), limits).verdict == Verdict::Admitted);
    CHECK(table.size() == 1);
    CHECK(table.admitUpgrade(key("10.0.0.4"), limits).verdict == Verdict::Admitted);
    CHECK(table.admitUpgrade(key("10.0.0.5"), limits).verdict == Verdict::Untracked);
    clock.now += 2s;
    CHECK(table.admitUpgrade(key("10.0.0.5"), limits).verdict == Verdict::Admitted);
}

TEST_CASE("concurrent admissions from many threads never exceed the cap and leave nothing behind",
          "[net][ip_limits]") {
    IpLimits table;
    const Limits limits = only(8, 0);
    std::atomic<int> inside{0}, most{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 2000; ++i) {
                const std::string ip = "10.0." + std::to_string(i % 4) + "." + std::to_string(t % 2);
                auto a = table.admitConnection(key(ip), limits);
                if (ip == "10.0.0.0" && a.verdict == Verdict::Admitted) {
                    int now = ++inside;
                    int seen = most.load();
                    while (now > seen && !most.compare_exchange_weak(seen, now)) {
                    }
                    --inside;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(most.load() <= 8);
    CHECK(table.size() == 0);
}
