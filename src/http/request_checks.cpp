// SPDX-License-Identifier: Apache-2.0
#include "portico/http/request_checks.h"

#include <algorithm>
#include <array>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <llhttp.h>
#include <string_view>

namespace portico::http {

namespace {

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 3986 2.3 unreserved and 2.2 sub-delims: what a reg-name holds besides %XX. A table: every
// request's Host is checked byte by byte.
constexpr std::array<bool, 256> kRegNameChars = detail::alnumTable("-._~!$&'()*+,;=");

bool isRegNameChar(char c) { return kRegNameChars[static_cast<unsigned char>(c)]; }

bool isValidPort(std::string_view port) {
    if (port.size() > 5) return false;
    unsigned value = 0;
    for (char c : port) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value <= 65535;
}

// The byte a %XX escape at `at` stands for, or -1 when it is not a valid escape.
int escapedByte(std::string_view s, std::size_t at) {
    if (at + 2 >= s.size()) return -1;
    int hi = hexValue(s[at + 1]), lo = hexValue(s[at + 2]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

enum class SegmentKind { Normal, Dot, DotDot };

SegmentKind dotKind(std::string_view decoded) {
    if (decoded == ".") return SegmentKind::Dot;
    if (decoded == "..") return SegmentKind::DotDot;
    return SegmentKind::Normal;
}

// Checks one raw segment (between two '/') and says whether it is a dot segment once %2e is
// read as '.'. Separators that a server may decode (%2F, %5C, '\') must not hide a dot segment.
PathVerdict classifySegment(std::string_view segment, SegmentKind& kind) {
    // A dot segment is at most 6 bytes ("%2e%2e"); longer segments are Normal unless they hide
    // one behind an encoded separator, which the second pass looks for.
    std::string dots;       // the segment with %2e decoded (only kept while it could be dots)
    std::string separated;  // with %2e, %2f, %5c and '\' decoded; '/' splits it
    bool has_separator = false;
    for (std::size_t i = 0; i < segment.size(); ++i) {
        char c = segment[i];
        if (c == '#') return PathVerdict::Fragment;
        if (c == '%') {
            int byte = escapedByte(segment, i);
            if (byte < 0) return PathVerdict::BadEscape;
            if (byte == 0) return PathVerdict::EncodedNul;
            i += 2;
            c = static_cast<char>(byte);
            if (c == '/' || c == '\\') {
                has_separator = true;
                separated.push_back('/');
                dots.push_back('/');  // not a dot: the segment is Normal
                continue;
            }
        } else if (c == '\\') {
            has_separator = true;
            separated.push_back('/');
            dots.push_back('/');
            continue;
        }
        separated.push_back(c);
        if (dots.size() < 3) dots.push_back(c);
    }
    kind = dots.size() <= 2 ? dotKind(dots) : SegmentKind::Normal;
    if (has_separator) {
        std::string_view rest = separated;
        for (;;) {
            auto slash = rest.find('/');
            if (dotKind(rest.substr(0, slash)) != SegmentKind::Normal) return PathVerdict::EncodedSeparator;
            if (slash == std::string_view::npos) break;
            rest.remove_prefix(slash + 1);
        }
    }
    return PathVerdict::Ok;
}

}  // namespace

bool isKnownMethod(std::string_view method) {
#define PORTICO_METHOD_NAME(number, name, string) #string,
    static constexpr std::string_view kMethods[] = {HTTP_METHOD_MAP(PORTICO_METHOD_NAME)};
#undef PORTICO_METHOD_NAME
    return std::find(std::begin(kMethods), std::end(kMethods), method) != std::end(kMethods);
}

bool isValidHost(std::string_view value) {
    if (value.empty()) return false;
    std::string_view port;
    if (value.front() == '[') {
        // RFC 3986 3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]"; we take IPv6 only.
        auto close = value.find(']');
        if (close == std::string_view::npos || close < 3 || close > 64) return false;
        std::string_view rest = value.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return false;
            port = rest.substr(1);
        }
        char text[65];
        std::string_view address = value.substr(1, close - 1);
        address.copy(text, address.size());
        text[address.size()] = '\0';
        in6_addr parsed;
        if (inet_pton(AF_INET6, text, &parsed) != 1) return false;
        return isValidPort(port);
    }
    std::string_view host = value;
    auto colon = value.find(':');
    if (colon != std::string_view::npos) {
        host = value.substr(0, colon);
        port = value.substr(colon + 1);  // a second ':' fails the digit check
    }
    if (host.empty() || host.front() == '.') return false;
    char previous = '\0';
    for (std::size_t i = 0; i < host.size(); ++i) {
        const char c = host[i];
        if (c == '.' && previous == '.') return false;  // an empty label ("a..b")
        previous = c;
        if (isRegNameChar(c)) continue;
        if (c == '%') {
            int byte = escapedByte(host, i);
            if (byte <= 0) return false;
            i += 2;
            previous = host[i];  // a hex digit
            continue;
        }
        return false;
    }
    return isValidPort(port);
}

const char* toString(PathVerdict verdict) {
    switch (verdict) {
        case PathVerdict::Ok: return "ok";
        case PathVerdict::NotAbsolute: return "path does not start with /";
        case PathVerdict::BadEscape: return "invalid percent-encoding in the path";
        case PathVerdict::EncodedNul: return "%00 in the path";
        case PathVerdict::AboveRoot: return "path climbs above the root";
        case PathVerdict::EncodedSeparator: return "encoded slash hides a dot segment";
        case PathVerdict::Fragment: return "fragment in the request-target";
    }
    return "?";
}

PathVerdict normalizePath(std::string_view path, std::string& out) {
    out.clear();
    if (path.empty() || path.front() != '/') return PathVerdict::NotAbsolute;
    // `out` always ends with '/' while segments are added; the last one's is removed at the end
    // when the path did not end in a slash or a dot segment (RFC 3986 5.2.4: "/a/b/.." is "/a/").
    out.push_back('/');
    bool keep_trailing_slash = true;
    std::string_view rest = path.substr(1);
    for (;;) {
        auto slash = rest.find('/');
        std::string_view segment = rest.substr(0, slash);
        SegmentKind kind = SegmentKind::Normal;
        PathVerdict verdict = classifySegment(segment, kind);
        if (verdict != PathVerdict::Ok) return verdict;
        if (segment.empty() || kind == SegmentKind::Dot) {
            keep_trailing_slash = true;  // merged slash, or "." removed
        } else if (kind == SegmentKind::DotDot) {
            if (out.size() == 1) return PathVerdict::AboveRoot;
            out.pop_back();
            out.resize(out.rfind('/') + 1);
            keep_trailing_slash = true;
        } else {
            out.append(segment);
            out.push_back('/');
            keep_trailing_slash = false;
        }
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    if (!keep_trailing_slash) out.pop_back();
    return PathVerdict::Ok;
}

namespace {

// RFC 9112 3.2.2: a request in absolute-form ("GET http://host/path") is routed by its
// authority, which replaces Host; we forward it in origin-form. Returns false when the target is
// not a valid absolute-form.
bool absoluteToOriginForm(RequestHead& request) {
    std::string& target = request.target;
    auto scheme_end = target.find("://");
    if (scheme_end == std::string::npos) return false;
    std::string_view scheme = std::string_view(target).substr(0, scheme_end);
    if (!equalsIgnoreCase(scheme, "http") && !equalsIgnoreCase(scheme, "https")) return false;
    auto authority_start = scheme_end + 3;
    auto path_start = target.find_first_of("/?", authority_start);
    std::string authority = target.substr(authority_start, path_start - authority_start);
    if (authority.empty() || authority.find('@') != std::string::npos) return false;
    std::string path = path_start == std::string::npos ? "/" : target.substr(path_start);
    if (path.front() == '?') path.insert(0, "/");
    target = std::move(path);
    bool replaced = false;
    for (auto& h : request.headers) {
        if (fieldName(h) != FieldName::Host) continue;
        if (!replaced) h.value = authority;
        replaced = true;
    }
    if (!replaced) request.headers.push_back({"Host", authority});
    return true;
}

}  // namespace

RequestVerdict checkRequestHead(RequestHead& request, std::string_view fallback_host) {
    if (request.version_major != 1) return {505, "HTTP major version other than 1"};
    if (request.method == "CONNECT") return {405, "CONNECT is not supported"};
    std::string& target = request.target;
    if (target.find('#') != std::string::npos) return {400, "fragment in the request-target"};
    const bool asterisk = target == "*";
    if (asterisk) {
        if (request.method != "OPTIONS") return {400, "invalid request target"};  // RFC 9112 3.2.4
    } else if ((target.empty() || target.front() != '/') && !absoluteToOriginForm(request)) {
        return {400, "invalid request target"};
    }

    // RFC 9112 3.2: 400 to an HTTP/1.1 request without Host, and to any request with several.
    Header* host = nullptr;
    for (auto& h : request.headers) {
        if (fieldName(h) != FieldName::Host) continue;
        if (host) return {400, "several Host headers"};
        host = &h;
    }
    if (!host) {
        if (request.version_minor >= 1 || fallback_host.empty()) return {400, "missing Host"};
        request.headers.push_back({"Host", std::string(fallback_host)});
    } else if (!isValidHost(host->value)) {
        return {400, host->value.empty() ? "empty Host" : "invalid Host"};
    }

    if (asterisk) return {};
    std::string path;
    const std::string_view received = target;
    const auto query = received.find('?');
    const PathVerdict verdict = normalizePath(received.substr(0, query), path);
    if (verdict != PathVerdict::Ok) return {400, toString(verdict)};
    if (query != std::string_view::npos) path.append(received.substr(query));
    target = std::move(path);
    return {};
}

}  // namespace portico::http
