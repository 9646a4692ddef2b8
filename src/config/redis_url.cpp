// SPDX-License-Identifier: Apache-2.0
#include "portico/config/redis_url.h"

#include <charconv>

namespace portico::config {

namespace {

template <typename T>
bool parseNumber(std::string_view text, T& out) {
    if (text.empty()) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
}

// "user:password@" or ":password@" in front of the rest; the rest is returned.
std::string_view takeCredentials(std::string_view rest, RedisAddress& out) {
    const std::size_t at = rest.find('@');
    if (at == std::string_view::npos) return rest;
    std::string_view credentials = rest.substr(0, at);
    const std::size_t colon = credentials.find(':');
    if (colon == std::string_view::npos) {
        out.password = std::string(credentials);  // redis://password@host, as redis-cli takes it
    } else {
        out.username = std::string(credentials.substr(0, colon));
        out.password = std::string(credentials.substr(colon + 1));
    }
    return rest.substr(at + 1);
}

}  // namespace

bool parseRedisUrl(std::string_view url, RedisAddress& out, std::string& error) {
    out = RedisAddress{};
    constexpr std::string_view kTcp = "redis://", kUnix = "unix://";
    if (url.substr(0, kUnix.size()) == kUnix) {
        std::string_view rest = takeCredentials(url.substr(kUnix.size()), out);
        const std::size_t query = rest.find('?');
        if (query != std::string_view::npos) {
            std::string_view q = rest.substr(query + 1);
            if (q.substr(0, 3) != "db=" || !parseNumber(q.substr(3), out.db)) {
                error = "a unix:// URL takes ?db=N only";
                return false;
            }
            rest = rest.substr(0, query);
        }
        if (rest.empty() || rest.front() != '/') {
            error = "a unix:// URL needs an absolute socket path (unix:///run/redis/redis.sock)";
            return false;
        }
        out.unix_path = std::string(rest);
        return true;
    }
    if (url.substr(0, kTcp.size()) != kTcp) {
        error = "expected redis://host:port/db or unix:///path";
        return false;
    }
    std::string_view rest = takeCredentials(url.substr(kTcp.size()), out);
    const std::size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
        std::string_view db = rest.substr(slash + 1);
        if (!db.empty() && !parseNumber(db, out.db)) {
            error = "the database after '/' must be a number";
            return false;
        }
        rest = rest.substr(0, slash);
    }
    std::string_view host = rest;
    if (!rest.empty() && rest.front() == '[') {  // [::1]:6379
        const std::size_t close = rest.find(']');
        if (close == std::string_view::npos) {
            error = "unclosed '[' in the host";
            return false;
        }
        host = rest.substr(1, close - 1);
        rest = rest.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') {
            error = "expected ':' after ']'";
            return false;
        }
    } else {
        const std::size_t colon = rest.rfind(':');
        host = rest.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon);
    }
    if (host.empty()) {
        error = "no host";
        return false;
    }
    out.host = std::string(host);
    if (!rest.empty()) {
        unsigned port = 0;
        if (!parseNumber(rest.substr(1), port) || port == 0 || port > 65535) {
            error = "the port must be 1-65535";
            return false;
        }
        out.port = static_cast<std::uint16_t>(port);
    }
    return true;
}

std::string redactRedisUrl(std::string_view url) {
    const std::size_t scheme = url.find("://");
    const std::size_t at = url.find('@');
    if (scheme == std::string_view::npos || at == std::string_view::npos || at < scheme) return std::string(url);
    std::string_view credentials = url.substr(scheme + 3, at - scheme - 3);
    const std::size_t colon = credentials.find(':');
    std::string out(url.substr(0, scheme + 3));
    if (colon != std::string_view::npos) out.append(credentials.substr(0, colon + 1));
    out += "***";
    out.append(url.substr(at));
    return out;
}

}  // namespace portico::config
