// SPDX-License-Identifier: Apache-2.0
#pragma once
// HTTP/1.1 message heads as plain data, and the case-insensitive header helpers everyone uses.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace portico::http {

struct Header {
    std::string name;
    std::string value;
};
using HeaderList = std::vector<Header>;

// ASCII case-insensitive comparison (RFC 9110 5.1: field names are case-insensitive). Inline:
// header rewriting compares every field name with a dozen others, most of another length.
constexpr bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
        const char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] + 32) : b[i];
        if (x != y) return false;
    }
    return true;
}
namespace detail {
inline constexpr std::array<bool, 256> kTokenChars = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 256; ++c)
        table[static_cast<std::size_t>(c)] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                             std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                                 std::string_view::npos;
    return table;
}();
}  // namespace detail
// RFC 9110 5.6.2: tchar, a character of a token. A table: the head parser asks per byte.
constexpr bool isTokenChar(char c) { return detail::kTokenChars[static_cast<unsigned char>(c)]; }
// RFC 9110 5.6.2: a non-empty token (field names, extension and parameter names, subprotocols).
bool isToken(std::string_view text);
// First header with this name, or nullptr.
const Header* findHeader(const HeaderList& headers, std::string_view name);
// True when any header `name` holds `token` in its comma-separated list (case-insensitive),
// e.g. headerHasToken(h, "Connection", "upgrade") for "Connection: keep-alive, Upgrade".
bool headerHasToken(const HeaderList& headers, std::string_view name, std::string_view token);
// Calls `fn(token)` for each comma-separated, whitespace-trimmed, non-empty token of `value`.
template <typename Fn>
void forEachToken(std::string_view value, Fn&& fn) {
    while (!value.empty()) {
        auto comma = value.find(',');
        std::string_view token = value.substr(0, comma);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
        if (!token.empty()) fn(token);
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
}
// True when the comma-separated list `value` (one header's value) holds `token`, case-insensitive:
// headerHasToken() for one header, for callers that walk the headers themselves.
bool valueHasToken(std::string_view value, std::string_view token);

struct RequestHead {
    std::string method;             // "GET"
    std::string target;             // request-target as received, e.g. "/a/b?x=1"
    int version_major = 1;          // anything but 1 is answered 505
    int version_minor = 1;          // HTTP/1.<minor>
    HeaderList headers;
    std::string_view path() const;  // target without the query
    std::string_view query() const; // after '?', without it; "" when absent
};

// How a response Portico writes itself treats the connection: "Connection: close" when it is not
// kept, and for an HTTP/1.0 client an explicit "Connection: keep-alive" when it is (RFC 9112 9.3:
// a 1.0 connection persists only when the response says so). Converts from a bool for callers
// that need no announcement.
struct KeepAlive {
    bool keep = true;
    bool announce = false;  // write "Connection: keep-alive"
    KeepAlive(bool keep_alive) : keep(keep_alive) {}  // NOLINT(google-explicit-constructor)
    KeepAlive(bool keep_alive, int client_version_minor)
        : keep(keep_alive), announce(keep_alive && client_version_minor == 0) {}
};

struct ResponseHead {
    int status = 200;
    std::string reason;
    int version_minor = 1;
    HeaderList headers;
};

}  // namespace portico::http
