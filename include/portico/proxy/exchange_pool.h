// SPDX-License-Identifier: Apache-2.0
#pragma once
// Exchanges kept for the next request: an HttpExchange's response parser (with the capacity of
// its header list), timer and head buffer are made once and serve request after request. A
// keep-alive HTTP/1.1 connection keeps one; an HTTP/2 connection keeps as many as it has
// streams in flight, up to a bound.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "portico/proxy/http_exchange.h"

namespace portico::net {
class EventLoop;
}

namespace portico::proxy {

class ExchangePool {
public:
    // At most `max_idle` ended exchanges are kept; more are deleted.
    ExchangePool(net::EventLoop& loop, std::uint32_t max_idle) : loop_(loop), max_idle_(max_idle) {}
    ~ExchangePool();  // clear()
    ExchangePool(const ExchangePool&) = delete;
    ExchangePool& operator=(const ExchangePool&) = delete;

    // An idle exchange, or a new one. Call begin() on it.
    std::unique_ptr<HttpExchange> take();
    // Takes back an exchange whose request has ended, and aborts it if it has not. Safe from
    // inside the exchange's own callbacks (its owner's onExchangeComplete): take() does not hand
    // it out again before they have returned, and one beyond the bound is deleted after the
    // current callback.
    void give(std::unique_ptr<HttpExchange> exchange);
    // Frees the idle exchanges (one still inside a callback after that callback).
    void clear();
    // Frees the exchanges that stayed idle since the last call (the oldest: take() hands out the
    // newest first), so that called at a steady period a pool bounded by a burst of requests
    // shrinks back to what is used while its owner lives on (an HTTP/2 connection holding one
    // long WebSocket stream).
    void trimUnused();
    std::size_t idleCount() const { return idle_.size(); }

private:
    net::EventLoop& loop_;
    std::uint32_t max_idle_;
    // The fewest exchanges idle since the last trimUnused(): those at the front stayed idle.
    std::uint32_t unused_ = 0;
    std::vector<std::unique_ptr<HttpExchange>> idle_;
};

}  // namespace portico::proxy
