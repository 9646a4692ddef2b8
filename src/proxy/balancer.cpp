// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/balancer.h"

#include <algorithm>

namespace portico::proxy {

Balancer::Balancer(config::Balance policy, std::size_t server_count)
    : policy_(policy), servers_(server_count) {}

bool Balancer::isUp(int server, Clock::time_point now) const {
    return servers_[static_cast<std::size_t>(server)].retry_at <= now;
}

bool Balancer::usable(std::size_t i, int exclude, Clock::time_point now) const {
    return static_cast<int>(i) != exclude && servers_[i].retry_at <= now;
}

int Balancer::pick(std::uint32_t client_hash, int exclude, Clock::time_point now) {
    int chosen = choose(client_hash, exclude, now);
    if (chosen >= 0) {
        ServerState& s = servers_[static_cast<std::size_t>(chosen)];
        // A server that failed is probed by this one request: the others keep away from it
        // until the probe succeeds (markSucceeded) or the probe window passes.
        // (Not when every server is down and this one was only the least bad choice.)
        if (s.failures > 0 && s.retry_at <= now) s.retry_at = now + kFirstBackoff;
    }
    return chosen;
}

int Balancer::choose(std::uint32_t client_hash, int exclude, Clock::time_point now) {
    const std::size_t n = servers_.size();
    if (n == 0 || (n == 1 && exclude == 0)) return -1;
    switch (policy_) {
        case config::Balance::RoundRobin:
            for (std::size_t k = 0; k < n; ++k) {
                std::size_t i = (next_ + k) % n;
                if (usable(i, exclude, now)) {
                    next_ = (i + 1) % n;
                    return static_cast<int>(i);
                }
            }
            break;
        case config::Balance::LeastConn: {
            int best = -1;
            // Start after the last choice so that ties rotate instead of piling on server 0.
            for (std::size_t k = 0; k < n; ++k) {
                std::size_t i = (next_ + k) % n;
                if (!usable(i, exclude, now)) continue;
                if (best < 0 || servers_[i].active < servers_[static_cast<std::size_t>(best)].active)
                    best = static_cast<int>(i);
            }
            if (best >= 0) {
                next_ = (static_cast<std::size_t>(best) + 1) % n;
                return best;
            }
            break;
        }
        case config::Balance::IpHash:
            // The same client goes to the same server; when it is down, to the next one up.
            for (std::size_t k = 0; k < n; ++k) {
                std::size_t i = (client_hash + k) % n;
                if (usable(i, exclude, now)) return static_cast<int>(i);
            }
            break;
    }
    // Every server is down: try the one that comes back first.
    int best = -1;
    for (std::size_t i = 0; i < n; ++i) {
        if (static_cast<int>(i) == exclude) continue;
        if (best < 0 || servers_[i].retry_at < servers_[static_cast<std::size_t>(best)].retry_at)
            best = static_cast<int>(i);
    }
    return best;
}

void Balancer::markFailed(int server, Clock::time_point now) {
    auto& s = servers_[static_cast<std::size_t>(server)];
    auto backoff = kFirstBackoff * (1u << std::min<std::uint32_t>(s.failures, 5));
    s.failures++;
    s.retry_at = now + std::min<std::chrono::milliseconds>(backoff, kMaxBackoff);
}

void Balancer::markSucceeded(int server) {
    auto& s = servers_[static_cast<std::size_t>(server)];
    s.failures = 0;
    s.retry_at = {};
}

}  // namespace portico::proxy
