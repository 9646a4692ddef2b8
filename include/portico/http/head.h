// SPDX-License-Identifier: Apache-2.0
#pragma once
// HTTP/1.1 message heads as plain data, and the case-insensitive header helpers everyone uses.

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace portico::http {

// The field names Portico's own code looks for (the checks, the head writers, the WebSocket
// handshake, the access log), each found from the name once: the message parser sets it on every
// field it reads, so that the consumers of a head compare a byte, not the name, per field.
enum class FieldName : std::uint8_t {
    Unknown,  // not classified yet: fieldName() finds it from the name when asked
    Other,    // none of those below
    ProxyPrefixed,  // "Proxy-*" (hop-by-hop by convention: Proxy-Connection, ...): a class, not one name
    TE,
    Host,
    Expect,
    Origin,
    Referer,
    Trailer,
    Upgrade,
    XRealIp,
    Connection,
    KeepAlive,
    UserAgent,
    CacheControl,
    ContentLength,
    XForwardedFor,
    XForwardedHost,
    TransferEncoding,
    XForwardedProto,
    SecWebSocketKey,
    SecWebSocketAccept,
    SecWebSocketVersion,
    SecWebSocketProtocol,
    SecWebSocketExtensions,
};
// The FieldName of `name` (ASCII case-insensitive, RFC 9110 5.1); Other for any name not listed,
// never Unknown.
FieldName classifyFieldName(std::string_view name);

struct Header {
    std::string name;
    std::string value;
    // What `name` is, when known: the parser sets it with the name. A header built elsewhere may
    // leave it Unknown (read it with fieldName()); whoever changes `name` afterwards must reset it.
    FieldName known = FieldName::Unknown;
};
using HeaderList = std::vector<Header>;

// The FieldName of `header`'s name: the one the parser noted, else found from the name. The
// sanitizer build checks that a noted class still matches the name (a renamed field whose class
// was not reset would be judged by its old name: framing, Host, hop-by-hop).
inline FieldName fieldName(const Header& header) {
    assert(header.known == FieldName::Unknown || header.known == classifyFieldName(header.name));
    return header.known != FieldName::Unknown ? header.known : classifyFieldName(header.name);
}

namespace detail {
constexpr char asciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
// N (4 or 8) bytes from `p` as one word, in whatever byte order: the bytes are folded and
// compared each on its own.
template <typename Word>
constexpr Word loadWord(const char* p) {
    Word v = 0;
    if (std::is_constant_evaluated()) {
        for (std::size_t k = 0; k < sizeof v; ++k) v |= static_cast<Word>(static_cast<unsigned char>(p[k])) << (8 * k);
    } else {
        std::memcpy(&v, p, sizeof v);  // one load
    }
    return v;
}
constexpr std::uint64_t load8(const char* p) { return loadWord<std::uint64_t>(p); }
// Bytes 0-3 and the last 4 of 4 to 8 bytes (overlapping when fewer than 8), as one word.
constexpr std::uint64_t loadEnds(const char* p, std::size_t n) {
    return loadWord<std::uint32_t>(p) | static_cast<std::uint64_t>(loadWord<std::uint32_t>(p + n - 4)) << 32;
}
// asciiLower() of 8 bytes at once: 0x20 added to each byte in 'A'..'Z', the others unchanged
// (the byte's low 7 bits plus a bias reach bit 7 without carrying into the next byte).
constexpr std::uint64_t lower8(std::uint64_t x) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ull;
    const std::uint64_t low7 = x & (0x7f * kOnes);
    const std::uint64_t at_least_a = low7 + (0x80 - 'A') * kOnes;  // bit 7 where low7 >= 'A'
    const std::uint64_t above_z = low7 + (0x7f - 'Z') * kOnes;     // bit 7 where low7 > 'Z'
    const std::uint64_t upper = at_least_a & ~above_z & ~x & (0x80 * kOnes);  // and bit 7 of x clear
    return x | (upper >> 2);
}
}  // namespace detail

// ASCII case-insensitive comparison (RFC 9110 5.1: field names are case-insensitive). Inline:
// header rewriting compares every field name with a dozen others, most of another length; the
// ones of the same length are compared a word at a time (the last word may overlap the previous).
constexpr bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    const std::size_t n = a.size();
    if (n < 4) {
        for (std::size_t i = 0; i < n; ++i)
            if (detail::asciiLower(a[i]) != detail::asciiLower(b[i])) return false;
        return true;
    }
    if (n < 8) return detail::lower8(detail::loadEnds(a.data(), n)) == detail::lower8(detail::loadEnds(b.data(), n));
    for (std::size_t i = 0; i + 8 < n; i += 8)
        if (detail::lower8(detail::load8(a.data() + i)) != detail::lower8(detail::load8(b.data() + i))) return false;
    return detail::lower8(detail::load8(a.data() + n - 8)) == detail::lower8(detail::load8(b.data() + n - 8));
}
namespace detail {
// A byte table of the letters, the digits and `punctuation`: for character classes asked per byte.
constexpr std::array<bool, 256> alnumTable(std::string_view punctuation) {
    std::array<bool, 256> table{};
    for (int c = 0; c < 256; ++c)
        table[static_cast<std::size_t>(c)] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                             punctuation.find(static_cast<char>(c)) != std::string_view::npos;
    return table;
}
inline constexpr std::array<bool, 256> kTokenChars = alnumTable("!#$%&'*+-.^_`|~");
}  // namespace detail
// RFC 9110 5.6.2: tchar, a character of a token. A table: the head parser asks per byte.
constexpr bool isTokenChar(char c) { return detail::kTokenChars[static_cast<unsigned char>(c)]; }
// RFC 9110 5.6.2: a non-empty token (field names, extension and parameter names, subprotocols).
bool isToken(std::string_view text);
// First header with this name, or nullptr. A name classifyFieldName() knows is looked for by
// its FieldName (one byte per field for a parsed head), any other one by comparing names.
const Header* findHeader(const HeaderList& headers, std::string_view name);
// First header whose fieldName() is `field` (not Other, ProxyPrefixed or Unknown: those are not
// one name), or nullptr.
const Header* findHeader(const HeaderList& headers, FieldName field);
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
