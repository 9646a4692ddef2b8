// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "portico/config/units.h"

using namespace portico::config;
using namespace std::chrono_literals;

TEST_CASE("parseSize accepts a plain integer and B, KiB, MiB, GiB", "[config][units]") {
    struct Case {
        const char* text;
        std::size_t bytes;
    };
    const Case cases[] = {
        {"0", 0},
        {"4096", 4096},
        {"512B", 512},
        {"0B", 0},
        {"16KiB", 16 * 1024},
        {"10MiB", 10 * 1024 * 1024},
        {"1GiB", std::size_t{1} << 30},
        {"007KiB", 7 * 1024},
        {"18446744073709551615", SIZE_MAX},
        {"17179869183GiB", (std::size_t{17179869183}) << 30},
    };
    for (const Case& c : cases) {
        INFO(c.text);
        auto bytes = parseSize(c.text);
        REQUIRE(bytes.has_value());
        CHECK(*bytes == c.bytes);
    }
}

TEST_CASE("parseSize rejects other units, signs, fractions and overflow", "[config][units]") {
    const char* const cases[] = {
        "",
        "B",
        "KiB",
        "-1",
        "+1",
        "-1KiB",
        "1.5MiB",
        "10MB",
        "10KB",
        "10kib",
        "10 MiB",
        " 10",
        "10 ",
        "0x10",
        "1e3",
        "10MiBs",
        "18446744073709551616",
        "17179869184GiB",
        "99999999999999999999999",
    };
    for (const char* text : cases) {
        INFO('"' << text << '"');
        CHECK_FALSE(parseSize(text).has_value());
    }
}

TEST_CASE("parseDuration accepts ms, s, m, h and a bare 0", "[config][units]") {
    struct Case {
        const char* text;
        Duration value;
    };
    const Case cases[] = {
        {"0", 0ms},       {"0s", 0ms},        {"0ms", 0ms},
        {"250ms", 250ms}, {"10s", 10s},       {"75s", 75s},
        {"5m", 5min},     {"10m", 10min},     {"1h", 1h},
        {"36h", 36h},     {"1500ms", 1500ms}, {"9223372036854775807ms", Duration(INT64_MAX)},
    };
    for (const Case& c : cases) {
        INFO(c.text);
        auto value = parseDuration(c.text);
        REQUIRE(value.has_value());
        CHECK(value->count() == c.value.count());
    }
}

TEST_CASE("parseDuration rejects bare numbers, other units, signs and overflow",
          "[config][units]") {
    const char* const cases[] = {
        "",
        "10",
        "1",
        "00",
        "s",
        "ms",
        "-1s",
        "+1s",
        "1.5s",
        "10 s",
        "10S",
        "1d",
        "1us",
        "1ns",
        "1m30s",
        "10sec",
        "0x10s",
        "9223372036854775808ms",
        "9223372036854776s",
        "99999999999999999h",
    };
    for (const char* text : cases) {
        INFO('"' << text << '"');
        CHECK_FALSE(parseDuration(text).has_value());
    }
}

TEST_CASE("parseCount takes decimal digits only", "[config][units]") {
    CHECK(parseCount("0") == std::optional<std::uint64_t>(0));
    CHECK(parseCount("10000") == std::optional<std::uint64_t>(10000));
    CHECK(parseCount("18446744073709551615") == std::optional<std::uint64_t>(UINT64_MAX));
    for (const char* text :
         {"", "-1", "+1", "1.0", "0x10", " 1", "1 ", "18446744073709551616", "ten"}) {
        INFO('"' << text << '"');
        CHECK_FALSE(parseCount(text).has_value());
    }
}

TEST_CASE("parseHostPort reads host:port, [v6]:port and *:port", "[config][units]") {
    struct Case {
        const char* text;
        const char* host;
        std::uint16_t port;
    };
    const Case cases[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080},
        {"0.0.0.0:80", "0.0.0.0", 80},
        {"[::1]:8080", "::1", 8080},
        {"[::]:443", "::", 443},
        {"[2001:db8::1]:65535", "2001:db8::1", 65535},
        {"*:8080", "", 8080},
        {"localhost:80", "localhost", 80},
        {"api.internal:9443", "api.internal", 9443},
        {"my_host-1.example.com:1", "my_host-1.example.com", 1},
        {"127.0.0.1:0", "127.0.0.1", 0},  // port 0: the kernel picks one (tests use it)
    };
    for (const Case& c : cases) {
        INFO(c.text);
        auto address = parseHostPort(c.text);
        REQUIRE(address.has_value());
        CHECK(address->host == c.host);
        CHECK(address->port == c.port);
    }
}

TEST_CASE("parseHostPort rejects malformed addresses", "[config][units]") {
    const char* const cases[] = {
        "",
        "8080",
        ":8080",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:80a",
        "127.0.0.1:0080800",
        "::1:80",
        "[::1]",
        "[::1:80",
        "::1]:80",
        "[zz::1]:80",
        "[127.0.0.1]:80",
        "300.1.1.1:80",
        "1.2.3.4.5:80",
        "1.2.3:80",
        "a..b:80",
        ".a:80",
        "a.:80",
        "host name:80",
        "*.example.com:80",
        "**:80",
        "http://a:80",
        "a/b:80",
    };
    for (const char* text : cases) {
        INFO('"' << text << '"');
        CHECK_FALSE(parseHostPort(text).has_value());
    }
}

TEST_CASE("HostPort::toString brackets IPv6 and writes * for every address", "[config][units]") {
    CHECK(HostPort{"127.0.0.1", 80}.toString() == "127.0.0.1:80");
    CHECK(HostPort{"::1", 80}.toString() == "[::1]:80");
    CHECK(HostPort{"", 8443}.toString() == "*:8443");
    CHECK(HostPort{"example.com", 0}.toString() == "example.com:0");
    for (const char* text : {"127.0.0.1:8080", "[2001:db8::1]:443", "*:80", "localhost:1"}) {
        auto address = parseHostPort(text);
        REQUIRE(address.has_value());
        CHECK(address->toString() == text);
    }
}

// The schema's patterns (units.h) describe the parsers' notations: each pattern, anchored as
// the schema anchors it, matches exactly the texts its parser accepts (overflow aside: a pattern
// cannot count, the loader reports it).
namespace {

bool matches(std::string_view pattern, const std::string& text) {
    return std::regex_match(text, std::regex("^(?:" + std::string(pattern) + ")$"));
}

}  // namespace

TEST_CASE("the schema's unit patterns match what the parsers accept", "[config][units][schema]") {
    const std::vector<std::string> texts = {
        "0",     "10",    "4096",   "16KiB", "1MiB",  "1GiB",  "512B",  "1KB",   "1kib",
        "10 MiB", "-1",   "+5",     "0x10",  "1.5MiB", "",     "MiB",   "10s",   "250ms",
        "5m",    "1h",    "1d",     "1.5s",  "s",     "00s",   "10 s",  "10/s",  "600/m",
        "0.5/s", "3600/h", "1/d",   "0/s",   ".5/s",  "5./s",  "10/S",  "1e3/s", "0ms",
        "1MiB/s", "64KiB/m", "512B/h", "1.5MiB/s", "1MB/s", "1/2/s", "MiB/s",
        "00",     "007",    "0KiB",   "00s",    "0/m",  "0.0/s", "0.05/s", "00.10/h", "0B/s"};
    for (const std::string& text : texts) {
        INFO(text);
        CHECK(matches(kCountPattern, text) == parseCount(text).has_value());
        CHECK(matches(kSizePattern, text) == parseSize(text).has_value());
        CHECK(matches(kDurationPattern, text) == parseDuration(text).has_value());
        CHECK(matches(kRatePattern, text) == parseRate(text).has_value());
        CHECK(matches(kByteRatePattern, text) == parseRate(text, RateOf::Bytes).has_value());
        const auto count = parseCount(text);
        const auto size = parseSize(text);
        const auto duration = parseDuration(text);
        const auto rate = parseRate(text);
        const auto byte_rate = parseRate(text, RateOf::Bytes);
        CHECK(matches(kPositiveCountPattern, text) == (count && *count > 0));
        CHECK(matches(kPositiveSizePattern, text) == (size && *size > 0));
        CHECK(matches(kPositiveDurationPattern, text) == (duration && duration->count() > 0));
        CHECK(matches(kPositiveRatePattern, text) == (rate && *rate > 0));
        CHECK(matches(kPositiveByteRatePattern, text) == (byte_rate && *byte_rate > 0));
    }
}

TEST_CASE("the schema's host:port pattern accepts every address parseHostPort reads",
          "[config][units][schema]") {
    for (std::string text : {"127.0.0.1:8080", "[::1]:8080", "*:8080", "localhost:80",
                             "api.internal:0", "[2001:db8::1]:443"}) {
        INFO(text);
        CHECK(parseHostPort(text).has_value());
        CHECK(matches(kHostPortPattern, text));
    }
    for (std::string text : {"127.0.0.1", ":80", "host:", "host:port", "a b:80"}) {
        INFO(text);
        CHECK_FALSE(matches(kHostPortPattern, text));
        CHECK_FALSE(parseHostPort(text).has_value());
    }
}
