// SPDX-License-Identifier: Apache-2.0
// ExchangePool: an ended exchange is kept for the next request, up to the bound.

#include "portico/proxy/exchange_pool.h"

#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "portico/net/event_loop.h"

using namespace portico;

TEST_CASE("an exchange given back is the one taken next, up to the bound", "[proxy][exchange_pool]") {
    net::EventLoop loop;
    proxy::ExchangePool pool(loop, 1);
    std::unique_ptr<proxy::HttpExchange> first = pool.take();
    REQUIRE(first);
    CHECK_FALSE(first->inCallback());
    proxy::HttpExchange* kept = first.get();
    std::unique_ptr<proxy::HttpExchange> second = pool.take();  // none idle: a new one
    CHECK(second.get() != kept);
    pool.give(std::move(first));
    pool.give(std::move(second));  // beyond the bound of 1: deleted (after the callback)
    pool.give(nullptr);            // nothing to keep
    std::unique_ptr<proxy::HttpExchange> again = pool.take();
    CHECK(again.get() == kept);
    CHECK(again->upstreamName() == "-");  // no request in flight
    std::unique_ptr<proxy::HttpExchange> fresh = pool.take();
    CHECK(fresh.get() != kept);
    pool.give(std::move(again));
    pool.clear();
    CHECK(pool.take().get() != nullptr);
}

TEST_CASE("trimUnused frees the exchanges that stayed idle since its last call", "[proxy][exchange_pool]") {
    // An HTTP/2 connection calls it once a second while it has streams: a burst's exchanges
    // must not stay for the life of one long stream.
    net::EventLoop loop;
    proxy::ExchangePool pool(loop, 8);
    std::vector<std::unique_ptr<proxy::HttpExchange>> burst;
    for (int i = 0; i < 3; ++i) burst.push_back(pool.take());
    for (auto& exchange : burst) pool.give(std::move(exchange));
    CHECK(pool.idleCount() == 3);
    pool.trimUnused();  // given back since the last call: kept this time
    CHECK(pool.idleCount() == 3);
    std::unique_ptr<proxy::HttpExchange> used = pool.take();
    proxy::HttpExchange* kept = used.get();
    pool.give(std::move(used));
    pool.trimUnused();  // two stayed idle the whole period: freed; the one used is kept
    CHECK(pool.idleCount() == 1);
    used = pool.take();
    CHECK(used.get() == kept);
    pool.give(std::move(used));
    pool.trimUnused();  // used since the last call
    CHECK(pool.idleCount() == 1);
    pool.trimUnused();  // not used since
    CHECK(pool.idleCount() == 0);
    CHECK(pool.take().get() != nullptr);  // a new one, as from an empty pool
}
