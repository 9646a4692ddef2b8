// SPDX-License-Identifier: Apache-2.0
#pragma once
// Parsing of the size and duration notations used in portico.yaml.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "portico/config/config.h"

namespace portico::config {

// The same notations as regular expressions (ECMA-262, unanchored: the caller anchors them),
// for the JSON Schema of portico.yaml (`portico --schema`). units_test checks that each matches
// exactly what its parser accepts.
inline constexpr std::string_view kCountPattern = "[0-9]+";
inline constexpr std::string_view kSizePattern = "[0-9]+(B|KiB|MiB|GiB)?";
inline constexpr std::string_view kDurationPattern = "0|[0-9]+(ms|s|m|h)";
inline constexpr std::string_view kRatePattern = R"(0|[0-9]+(\.[0-9]+)?/[smh])";
inline constexpr std::string_view kByteRatePattern = "0|[0-9]+(B|KiB|MiB|GiB)?/[smh]";
// The same, for values greater than 0.
inline constexpr std::string_view kPositiveCountPattern = "0*[1-9][0-9]*";
inline constexpr std::string_view kPositiveSizePattern = "0*[1-9][0-9]*(B|KiB|MiB|GiB)?";
inline constexpr std::string_view kPositiveDurationPattern = "0*[1-9][0-9]*(ms|s|m|h)";
inline constexpr std::string_view kPositiveRatePattern =
    R"((0*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)/[smh])";
inline constexpr std::string_view kPositiveByteRatePattern = "0*[1-9][0-9]*(B|KiB|MiB|GiB)?/[smh]";
// Loose about the host (parseHostPort checks names and addresses), exact about the shape.
inline constexpr std::string_view kHostPortPattern =
    R"((\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5})";

// "16KiB", "10MiB", "1GiB", "512B", "4096" -> bytes; nullopt on anything else or overflow.
std::optional<std::size_t> parseSize(std::string_view text);
// "250ms", "10s", "5m", "1h" -> milliseconds; a bare "0" is zero; nullopt otherwise.
std::optional<Duration> parseDuration(std::string_view text);
// What a rate counts: events ("10/s", "600/m", "0.5/s", "3600/h": a plain decimal) or bytes
// ("1MiB/s", "64KiB/m": a parseSize amount).
enum class RateOf { Events, Bytes };
// A rate -> amount per second; a bare "0" is zero (off); nullopt otherwise.
std::optional<double> parseRate(std::string_view text, RateOf of = RateOf::Events);
// "0", "42", "10000" -> the number; nullopt on a sign, a space, another base ("0x10"), a
// fraction or overflow.
std::optional<std::uint64_t> parseCount(std::string_view text);
// "127.0.0.1:8080", "[::1]:8080", "*:8080", "localhost:80" -> HostPort; nullopt if malformed.
std::optional<HostPort> parseHostPort(std::string_view text);

}  // namespace portico::config
