// SPDX-License-Identifier: Apache-2.0
// The start-up check of the open-file limit against limits.max_connections.

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <sys/resource.h>

#include "portico/net/fd_limit.h"

using namespace portico::net;

TEST_CASE("max_connections needs two descriptors per connection plus listeners and a reserve", "[net][fd_limit]") {
    portico::config::Config config;
    config.limits.max_connections = 1000;
    config.listeners.resize(2);
    CHECK(fdsNeeded(config, 4) == 2000 + 8 + kFdReserve);
    CHECK_FALSE(fdLimitWarning(config, 4, 2000 + 8 + kFdReserve).has_value());
    auto warning = fdLimitWarning(config, 4, 1024);
    REQUIRE(warning.has_value());
    CHECK(warning->find("limits.max_connections is 1000") != std::string::npos);
    CHECK(warning->find("2 per proxied connection") != std::string::npos);
    CHECK(warning->find("limit is 1024") != std::string::npos);
}

TEST_CASE("raiseFdLimit leaves the soft limit at the hard one", "[net][fd_limit]") {
    const std::uint64_t limit = raiseFdLimit();
    CHECK(limit > 0);
    CHECK(raiseFdLimit() == limit);
}

TEST_CASE("freeDescriptors counts what the open-file limit leaves, and leaves it free", "[net][fd_limit]") {
    // The descriptors open now: /proc/self/fd lists them and the listing's own one.
    int highest = 0;
    unsigned in_use = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        highest = std::max(highest, std::stoi(entry.path().filename().string()));
        ++in_use;
    }
    --in_use;  // the listing's own, closed again
    rlimit saved{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rlimit lowered = saved;
    lowered.rlim_cur = static_cast<rlim_t>(highest) + 5;  // every open one lies below
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    const unsigned expected = static_cast<unsigned>(lowered.rlim_cur) - in_use;
    CHECK(freeDescriptors(2) == 2);
    CHECK(freeDescriptors(1000) == expected);
    CHECK(freeDescriptors(1000) == expected);  // the probes were closed again
    setrlimit(RLIMIT_NOFILE, &saved);
}
