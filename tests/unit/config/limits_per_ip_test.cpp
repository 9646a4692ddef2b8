// SPDX-License-Identifier: Apache-2.0
// The per-client-address limit keys (and HTTP/2's connection buffer): defaults, values, and their errors at file:line:col.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "portico/config/loader.h"
#include "portico/config/units.h"

using namespace portico::config;

namespace {

const std::string kBase = "listeners: [{address: 127.0.0.1:0}]\nroutes: [{handler: health}]\n";

std::vector<std::string> errorsOf(const std::string& yaml) {
    std::vector<std::string> lines;
    for (const ConfigError& error : loadConfigString(yaml, "portico.yaml").errors) lines.push_back(error.toString());
    return lines;
}

}  // namespace

TEST_CASE("parseRate reads byte rates with a size unit", "[config][units]") {
    CHECK(parseRate("1MiB/s", RateOf::Bytes) == 1048576.0);
    CHECK(parseRate("60KiB/m", RateOf::Bytes) == 1024.0);
    CHECK(parseRate("512/s", RateOf::Bytes) == 512.0);
    CHECK_FALSE(parseRate("1MB/s", RateOf::Bytes).has_value());
    CHECK_FALSE(parseRate("0.5KiB/s", RateOf::Bytes).has_value());
    CHECK_FALSE(parseRate("1MiB/s", RateOf::Events).has_value());
}

TEST_CASE("parseRate reads N/s, N/m, N/h and a bare 0", "[config][units]") {
    CHECK(parseRate("10/s") == 10.0);
    CHECK(parseRate("0.5/s") == 0.5);
    CHECK(parseRate("600/m") == 10.0);
    CHECK(parseRate("3600/h") == 1.0);
    CHECK(parseRate("0") == 0.0);
    CHECK(parseRate("0/s") == 0.0);
    for (const char* bad : {"", "10", "10/", "/s", "10/d", "-1/s", "1e3/s", "1./s", ".5/s", "10 /s", "ten/s"}) {
        INFO(bad);
        CHECK_FALSE(parseRate(bad).has_value());
    }
}

TEST_CASE("per-IP limits have finite connection caps and no rate by default", "[config][loader]") {
    LoadResult result = loadConfigString(kBase, "portico.yaml");
    REQUIRE(result.ok());
    const Limits& l = result.config->limits;
    CHECK(l.per_ip_connections == 1000);
    CHECK(l.per_ip_websockets == 500);
    CHECK(l.per_ip_ipv6_prefix == 64);
    CHECK(l.per_ip_upgrade_rate == 0);
    CHECK(l.per_ip_upgrade_burst == 20);
    CHECK(l.per_ip_table_size == 65536);
}

TEST_CASE("per-IP limit keys decode", "[config][loader]") {
    LoadResult result = loadConfigString(kBase + R"(limits:
  per_ip_connections: 0
  per_ip_websockets: 7
  per_ip_ipv6_prefix: 48
  per_ip_upgrade_rate: 120/m
  per_ip_upgrade_burst: 4
  per_ip_table_size: 100
)",
                                         "portico.yaml");
    REQUIRE(result.ok());
    const Limits& l = result.config->limits;
    CHECK(l.per_ip_connections == 0);
    CHECK(l.per_ip_websockets == 7);
    CHECK(l.per_ip_ipv6_prefix == 48);
    CHECK(l.per_ip_upgrade_rate == 2.0);
    CHECK(l.per_ip_upgrade_burst == 4);
    CHECK(l.per_ip_table_size == 100);
}

TEST_CASE("per-IP limit errors name the key and its position", "[config][errors]") {
    struct Case {
        std::string yaml;
        std::string error;
    };
    const std::vector<Case> cases = {
        {"limits: {per_ip_connections: -1}\n",
         "portico.yaml:3:30: limits.per_ip_connections: expected a non-negative integer"},
        {"limits: {per_ip_ipv6_prefix: 0}\n",
         "portico.yaml:3:30: limits.per_ip_ipv6_prefix: expected a prefix length from 1 to 128"},
        {"limits: {per_ip_ipv6_prefix: 129}\n",
         "portico.yaml:3:30: limits.per_ip_ipv6_prefix: expected a prefix length from 1 to 128"},
        {"limits: {per_ip_upgrade_rate: 10}\n",
         "portico.yaml:3:31: limits.per_ip_upgrade_rate: expected a rate like 100/s, 600/m or 0.5/s, or off"},
        {"limits: {per_ip_upgrade_burst: 0}\n",
         "portico.yaml:3:32: limits.per_ip_upgrade_burst: must be greater than 0"},
        {"limits: {per_ip_table_size: 0}\n",
         "portico.yaml:3:29: limits.per_ip_table_size: must be greater than 0"},
    };
    for (const Case& c : cases) {
        INFO(c.yaml);
        CHECK(errorsOf(kBase + c.yaml) == std::vector<std::string>{c.error});
    }
}

TEST_CASE("http2_connection_buffer has a default, decodes, and names its errors", "[config][loader]") {
    LoadResult defaults = loadConfigString(kBase, "portico.yaml");
    REQUIRE(defaults.ok());
    CHECK(defaults.config->limits.http2_connection_buffer == 3 * 1024 * 1024);
    LoadResult set = loadConfigString(kBase + "limits: {http2_connection_buffer: 4MiB}\n", "portico.yaml");
    REQUIRE(set.ok());
    CHECK(set.config->limits.http2_connection_buffer == 4 * 1024 * 1024);
    CHECK(errorsOf(kBase + "limits: {http2_connection_buffer: 32KiB}\n") ==
          std::vector<std::string>{"portico.yaml:3:35: limits.http2_connection_buffer: expected at least 64KiB"});
}
