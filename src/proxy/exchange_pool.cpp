// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/exchange_pool.h"

#include "portico/net/event_loop.h"

namespace portico::proxy {

std::unique_ptr<HttpExchange> ExchangePool::take() {
    // The newest first (its memory is the likeliest in cache), but none that is still inside
    // one of its callbacks: it would begin anew under the code that is ending its last request.
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
        if ((*it)->inCallback()) continue;
        std::unique_ptr<HttpExchange> exchange = std::move(*it);
        idle_.erase(std::next(it).base());
        if (idle_.size() < unused_) unused_ = static_cast<std::uint32_t>(idle_.size());
        return exchange;
    }
    return std::make_unique<HttpExchange>(loop_);
}

void ExchangePool::give(std::unique_ptr<HttpExchange> exchange) {
    if (!exchange) return;
    exchange->abort();  // a no-op when it has ended
    if (idle_.size() < max_idle_) {
        idle_.push_back(std::move(exchange));
        return;
    }
    // Perhaps inside one of its callbacks: deleted once that has returned.
    loop_.deferDelete(std::move(exchange));
}

ExchangePool::~ExchangePool() { clear(); }

void ExchangePool::clear() {
    unused_ = static_cast<std::uint32_t>(idle_.size());
    trimUnused();
}

void ExchangePool::trimUnused() {
    const auto unused = idle_.begin() + unused_;
    // Now, but one still inside one of its callbacks after that callback.
    for (auto it = idle_.begin(); it != unused; ++it)
        if ((*it)->inCallback()) loop_.deferDelete(std::move(*it));
    idle_.erase(idle_.begin(), unused);
    // A connection that cleared its pool for good (an upgrade) keeps no array.
    if (idle_.empty()) idle_.shrink_to_fit();
    unused_ = static_cast<std::uint32_t>(idle_.size());
}

}  // namespace portico::proxy
