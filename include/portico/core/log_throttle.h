// SPDX-License-Identifier: Apache-2.0
#pragma once
// At most one log line per interval for an event that may recur thousands of times a second
// (accept() out of descriptors, a client hammering a limit): the occurrences in between are
// counted and reported by the next line, so the log stays small and nothing goes unnoticed.
// Not thread-safe: one per worker.

#include <chrono>
#include <cstdint>

namespace portico::core {

class LogThrottle {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    explicit LogThrottle(std::chrono::milliseconds interval) : interval_(interval) {}

    // Records one occurrence at `now`. Returns true when a line may be written: then
    // `suppressed` is the number of occurrences not logged since the last line.
    bool allow(TimePoint now, std::uint64_t& suppressed) {
        if (logged_once_ && now - last_ < interval_) {
            ++suppressed_;
            return false;
        }
        suppressed = suppressed_;
        suppressed_ = 0;
        last_ = now;
        logged_once_ = true;
        return true;
    }

private:
    std::chrono::milliseconds interval_;
    TimePoint last_{};
    std::uint64_t suppressed_ = 0;
    bool logged_once_ = false;
};

}  // namespace portico::core
