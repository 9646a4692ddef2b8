#pragma once
// Parsing of the size and duration notations used in portico.yaml.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "portico/config/config.h"

namespace portico::config {

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
