// SPDX-License-Identifier: Apache-2.0
#include "portico/config/units.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <system_error>

#include <arpa/inet.h>

namespace portico::config {
namespace {

// Digits only: no sign, no spaces, no base prefix. A YAML "0x10" or "+5" is a typo, not a number.
std::optional<std::uint64_t> parseDigits(std::string_view text) {
    if (text.empty()) return std::nullopt;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
    }
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;  // overflow
    return value;
}

struct Unit {
    std::string_view suffix;
    std::uint64_t factor;
};

// Splits "10MiB" into 10 and the factor of its unit, checking the product for overflow.
// Longer suffixes come first so "ms" is not read as "m" + junk.
template <std::size_t N>
std::optional<std::uint64_t> parseWithUnit(std::string_view text, const std::array<Unit, N>& units,
                                           std::uint64_t max) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    auto number = parseDigits(text.substr(0, digits));
    if (!number) return std::nullopt;
    std::string_view suffix = text.substr(digits);
    for (const Unit& unit : units) {
        if (suffix != unit.suffix) continue;
        if (*number > max / unit.factor) return std::nullopt;
        return *number * unit.factor;
    }
    return std::nullopt;
}

bool isHostNameChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

// A DNS name or a dotted IPv4 address. A host made only of digits and dots must be a valid IPv4
// address: "1.2.3.4.5" or "300.1.1.1" are typos, not names (RFC 1123 2.1: a top-level label is
// never all-numeric).
bool isValidHost(const std::string& host) {
    if (host.empty() || host.size() > 253) return false;
    bool numeric = true;
    std::size_t label = 0;
    for (char c : host) {
        if (!isHostNameChar(c)) return false;
        if (c == '.') {
            if (label == 0) return false;  // empty label: "a..b", ".a"
            label = 0;
            continue;
        }
        if (++label > 63) return false;
        if (c < '0' || c > '9') numeric = false;
    }
    if (label == 0) return false;  // trailing dot
    if (numeric) {
        in_addr addr{};
        return inet_pton(AF_INET, host.c_str(), &addr) == 1;
    }
    return true;
}

}  // namespace

std::optional<std::uint64_t> parseCount(std::string_view text) {
    return parseDigits(text);
}

std::optional<std::size_t> parseSize(std::string_view text) {
    static constexpr std::array<Unit, 5> kUnits{{
        {"", 1},
        {"B", 1},
        {"KiB", std::uint64_t{1} << 10},
        {"MiB", std::uint64_t{1} << 20},
        {"GiB", std::uint64_t{1} << 30},
    }};
    auto bytes = parseWithUnit(text, kUnits, std::numeric_limits<std::size_t>::max());
    if (!bytes) return std::nullopt;
    return static_cast<std::size_t>(*bytes);
}

std::optional<double> parseRate(std::string_view text, RateOf of) {
    if (text == "0") return 0.0;
    const std::size_t slash = text.rfind('/');
    if (slash == std::string_view::npos) return std::nullopt;
    std::string_view amount = text.substr(0, slash);
    double value = 0;
    if (of == RateOf::Bytes) {
        auto bytes = parseSize(amount);
        if (!bytes) return std::nullopt;
        value = static_cast<double>(*bytes);
    } else {
        // A plain decimal: digits, optionally a point and more digits (no sign, no exponent).
        const std::size_t point = amount.find('.');
        if (!parseDigits(amount.substr(0, point))) return std::nullopt;
        if (point != std::string_view::npos && !parseDigits(amount.substr(point + 1))) return std::nullopt;
        auto [end, ec] = std::from_chars(amount.data(), amount.data() + amount.size(), value);
        if (ec != std::errc() || end != amount.data() + amount.size()) return std::nullopt;
    }
    std::string_view per = text.substr(slash + 1);
    if (per == "s") return value;
    if (per == "m") return value / 60;
    if (per == "h") return value / 3600;
    return std::nullopt;
}

std::optional<Duration> parseDuration(std::string_view text) {
    if (text == "0") return Duration::zero();
    static constexpr std::array<Unit, 4> kUnits{{
        {"ms", 1},
        {"s", 1000},
        {"m", 60 * 1000},
        {"h", 60 * 60 * 1000},
    }};
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max());
    auto millis = parseWithUnit(text, kUnits, kMax);
    if (!millis) return std::nullopt;
    return Duration(static_cast<Duration::rep>(*millis));
}

std::optional<HostPort> parseHostPort(std::string_view text) {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view host = text.substr(0, colon);
    std::string_view port_text = text.substr(colon + 1);
    if (port_text.size() > 5) return std::nullopt;
    auto port = parseDigits(port_text);
    if (!port || *port > 65535) return std::nullopt;

    HostPort result;
    result.port = static_cast<std::uint16_t>(*port);
    if (host == "*") return result;  // every address
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        std::string v6(host.substr(1, host.size() - 2));
        in6_addr addr{};
        if (inet_pton(AF_INET6, v6.c_str(), &addr) != 1) return std::nullopt;
        result.host = std::move(v6);
        return result;
    }
    // An IPv6 address needs its brackets: "::1:80" is ambiguous (RFC 3986 3.2.2).
    result.host = std::string(host);
    if (!isValidHost(result.host)) return std::nullopt;
    return result;
}

std::string HostPort::toString() const {
    std::string port_text = std::to_string(port);
    if (host.empty()) return "*:" + port_text;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
    return host + ":" + port_text;
}

}  // namespace portico::config
