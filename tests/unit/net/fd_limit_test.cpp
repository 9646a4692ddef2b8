// SPDX-License-Identifier: Apache-2.0
// The start-up check of the open-file limit against limits.max_connections.

#include <catch2/catch.hpp>

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
