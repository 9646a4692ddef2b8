// SPDX-License-Identifier: Apache-2.0
#pragma once
// Chooses an upstream server per `balance`, and remembers which servers refuse connections.
// One Balancer per worker thread and upstream: no locks.

#include <chrono>
#include <cstdint>
#include <vector>

#include "portico/config/config.h"

namespace portico::proxy {

class Balancer {
public:
    using Clock = std::chrono::steady_clock;

    Balancer(config::Balance policy, std::size_t server_count);

    // Picks a server for a request; `client_hash` feeds ip_hash; `exclude` (or -1) is a server
    // that just failed for this request. Servers marked down are skipped until their back-off
    // expires, when one request probes them. When every server is down, the one whose back-off
    // ends first is tried rather than failing without trying. Returns -1 only when there is no
    // server other than `exclude`.
    int pick(std::uint32_t client_hash, int exclude, Clock::time_point now);

    // A connect to `server` failed: mark it down; back-off doubles from 1 s up to 30 s.
    void markFailed(int server, Clock::time_point now);
    // A connect succeeded: the server is up again.
    void markSucceeded(int server);
    bool isUp(int server, Clock::time_point now) const;
    // True from a failed connect until one succeeds (whether or not the back-off has passed).
    bool markedDown(int server) const { return servers_[static_cast<std::size_t>(server)].failures > 0; }

    // least_conn bookkeeping: active requests per server.
    void onRequestStart(int server) { ++servers_[static_cast<std::size_t>(server)].active; }
    void onRequestEnd(int server) { --servers_[static_cast<std::size_t>(server)].active; }
    std::size_t serverCount() const { return servers_.size(); }

    static constexpr std::chrono::milliseconds kFirstBackoff{1000};
    static constexpr std::chrono::milliseconds kMaxBackoff{30000};

private:
    struct ServerState {
        std::uint32_t active = 0;
        std::uint32_t failures = 0;             // consecutive failed connects
        Clock::time_point retry_at{};           // down until then
    };
    bool usable(std::size_t i, int exclude, Clock::time_point now) const;
    int choose(std::uint32_t client_hash, int exclude, Clock::time_point now);

    config::Balance policy_;
    std::vector<ServerState> servers_;
    std::size_t next_ = 0;  // round robin cursor
};

}  // namespace portico::proxy
