// SPDX-License-Identifier: Apache-2.0
// ExchangePool: an ended exchange is kept for the next request, up to the bound.

#include "portico/proxy/exchange_pool.h"

#include <catch2/catch.hpp>

#include <memory>

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
