// SPDX-License-Identifier: Apache-2.0
#pragma once
// limits.max_connections for the whole process, exact, as HAProxy's global maxconn: the workers
// (threads, each accepting on its own SO_REUSEPORT sockets) count their open client connections
// in one atomic counter. A worker takes a place before accept4 and gives it back when the
// connection ends (or the accept failed, or a per-address limit refused it): one atomic add and
// one subtract per connection, no syscall. At the limit a worker stops accepting; a place given
// back at the limit wakes the workers (their Wakeup: one eventfd write each, only then) so that
// those that stopped accept again.

#include <atomic>
#include <cstddef>
#include <vector>

#include "portico/net/wakeup.h"

namespace portico::net {

class ConnectionBudget {
public:
    explicit ConnectionBudget(std::size_t limit) : limit_(limit) {}
    ConnectionBudget(const ConnectionBudget&) = delete;
    ConnectionBudget& operator=(const ConnectionBudget&) = delete;

    // Before the workers start (their threads would read the list): `wakeup` is notified when a
    // place comes free at the limit.
    void watch(Wakeup* wakeup) { watchers_.push_back(wakeup); }
    // A reload: from the next take() on. Workers look again when they apply the reload.
    void setLimit(std::size_t limit) { limit_.store(limit, std::memory_order_relaxed); }
    std::size_t limit() const { return limit_.load(std::memory_order_relaxed); }

    // A place for a connection about to be accepted; false (nothing taken) at the limit.
    bool take() {
        const std::size_t before = open_.fetch_add(1, std::memory_order_relaxed);
        if (before < limit()) return true;
        // Undone without a wakeup: waking the others for it would only make them try again
        // (a give() that makes room while this one counted still wakes them).
        open_.fetch_sub(1, std::memory_order_relaxed);
        return false;
    }
    // The connection ended (or was never accepted): its place is free again.
    void give() {
        const std::size_t before = open_.fetch_sub(1, std::memory_order_relaxed);
        if (before >= limit()) {
            for (Wakeup* w : watchers_) w->notify();
        }
    }
    bool full() const { return open_.load(std::memory_order_relaxed) >= limit(); }
    std::size_t open() const { return open_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::size_t> open_{0};
    std::atomic<std::size_t> limit_;
    std::vector<Wakeup*> watchers_;
};

}  // namespace portico::net
