// SPDX-License-Identifier: Apache-2.0
#include "portico/http/header_rewrite.h"

#include <charconv>
#include <cstring>

namespace portico::http {

namespace {

void appendNumber(std::string& out, std::uint64_t value) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    (void)ec;
    out.append(digits, end);
}

void appendHeader(std::string& out, std::string_view name, std::string_view value) {
    // One growth of `out`, then plain copies: called for every field of every head.
    const std::size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    if (!name.empty()) std::memcpy(p, name.data(), name.size());  // (a null data() is not for memcpy)
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    if (!value.empty()) std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

bool isSetBy(const std::vector<std::pair<std::string, std::string>>* set_headers, std::string_view name) {
    if (!set_headers) return false;
    for (const auto& [key, value] : *set_headers)
        if (equalsIgnoreCase(key, name)) return true;
    return false;
}

void appendFraming(std::string& out, BodyFraming framing, std::uint64_t content_length) {
    if (framing == BodyFraming::ContentLength) {
        out.append("Content-Length: ");
        appendNumber(out, content_length);
        out.append("\r\n");
    } else if (framing == BodyFraming::Chunked) {
        out.append("Transfer-Encoding: chunked\r\n");
    }
}

}  // namespace

namespace {

// RFC 9110 7.6.1: the fields that are hop-by-hop whatever Connection says.
bool isAlwaysHopByHop(std::string_view name) {
    // By length first: asked for every field of every head, and most names have none of these
    // lengths.
    bool named = false;
    switch (name.size()) {
        case 2: named = equalsIgnoreCase(name, "TE"); break;
        case 7: named = equalsIgnoreCase(name, "Trailer") || equalsIgnoreCase(name, "Upgrade"); break;
        case 10: named = equalsIgnoreCase(name, "Connection") || equalsIgnoreCase(name, "Keep-Alive"); break;
        case 17: named = equalsIgnoreCase(name, "Transfer-Encoding"); break;
        default: break;
    }
    return named || startsWithIgnoreCase(name, "Proxy-");
}

}  // namespace

std::vector<std::string_view> connectionTokens(const HeaderList& headers) {
    std::vector<std::string_view> tokens;
    for (const auto& h : headers)
        if (equalsIgnoreCase(h.name, "Connection"))
            forEachToken(h.value, [&](std::string_view t) {
                // "keep-alive", "upgrade": removed anyway, so not kept (the common Connection
                // header then costs no allocation).
                if (!isAlwaysHopByHop(t)) tokens.push_back(t);
            });
    return tokens;
}

bool isHopByHop(std::string_view name, const std::vector<std::string_view>& connection_tokens) {
    if (isAlwaysHopByHop(name)) return true;
    if (connection_tokens.empty()) return false;
    // RFC 9110 7.6.1: a connection option must never name a field meant for every recipient.
    // A peer that lists one anyway ("Connection: close, Host") does not get it removed: Host is
    // required on every HTTP/1.1 request (RFC 9112 3.2), the framing fields are rewritten by us,
    // and a WebSocket handshake is meaningless without its Sec-WebSocket-* fields (RFC 6455 4.1).
    static constexpr std::string_view kEndToEnd[] = {
        "Host", "Content-Length", "Cache-Control", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
        "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"};
    for (auto e : kEndToEnd)
        if (equalsIgnoreCase(name, e)) return false;
    for (auto t : connection_tokens)
        if (equalsIgnoreCase(name, t)) return true;
    return false;
}

void appendUpstreamRequestHead(std::string& out, const RequestHead& request, const UpstreamRequestInfo& info) {
    out.append(request.method);
    out.push_back(' ');
    out.append(info.target);
    out.append(" HTTP/1.1\r\n");

    const auto tokens = connectionTokens(request.headers);
    const Header* forwarded_for = nullptr;
    for (const auto& h : request.headers) {
        std::string_view name = h.name;
        if (info.upgrade && (equalsIgnoreCase(name, "Upgrade"))) {
            appendHeader(out, name, h.value);
            continue;
        }
        if (isHopByHop(name, tokens) || equalsIgnoreCase(name, "Content-Length")) continue;
        // We set these ourselves: a client must not be able to forge them.
        if (equalsIgnoreCase(name, "X-Forwarded-For")) {
            forwarded_for = forwarded_for ? forwarded_for : &h;
            continue;
        }
        if (equalsIgnoreCase(name, "X-Forwarded-Proto") || equalsIgnoreCase(name, "X-Forwarded-Host") ||
            equalsIgnoreCase(name, "X-Real-IP") || isSetBy(info.set_headers, name) ||
            (info.override_headers && findHeader(*info.override_headers, name)))
            continue;
        appendHeader(out, name, h.value);
    }
    if (info.upgrade) out.append("Connection: upgrade\r\n");
    appendFraming(out, info.framing, info.content_length);

    // X-Forwarded-For: append the client to every list received (several headers are one list).
    out.append("X-Forwarded-For: ");
    bool first = true;
    for (const auto& h : request.headers) {
        if (!equalsIgnoreCase(h.name, "X-Forwarded-For")) continue;
        if (!first) out.append(", ");
        out.append(h.value);
        first = false;
    }
    if (!first) out.append(", ");
    out.append(info.client_ip);
    out.append("\r\n");
    appendHeader(out, "X-Forwarded-Proto", info.scheme);
    if (const Header* host = findHeader(request.headers, "Host")) appendHeader(out, "X-Forwarded-Host", host->value);
    appendHeader(out, "X-Real-IP", info.client_ip);
    if (info.set_headers)
        for (const auto& [key, value] : *info.set_headers) appendHeader(out, key, value);
    if (info.override_headers)
        for (const auto& h : *info.override_headers)
            if (!h.value.empty()) appendHeader(out, h.name, h.value);
    out.append("\r\n");
}

void appendClientResponseHead(std::string& out, const ResponseHead& response, const ClientResponseInfo& info) {
    out.append("HTTP/1.1 ");
    appendNumber(out, static_cast<std::uint64_t>(response.status));
    out.push_back(' ');
    out.append(response.reason.empty() ? reasonPhrase(response.status) : std::string_view(response.reason));
    out.append("\r\n");
    const auto tokens = connectionTokens(response.headers);
    for (const auto& h : response.headers) {
        if (info.upgrade && equalsIgnoreCase(h.name, "Upgrade")) {
            appendHeader(out, h.name, h.value);
            continue;
        }
        if (isHopByHop(h.name, tokens) || equalsIgnoreCase(h.name, "Content-Length")) continue;
        appendHeader(out, h.name, h.value);
    }
    appendFraming(out, info.framing, info.content_length);
    if (info.upgrade) {
        out.append("Connection: upgrade\r\n");
    } else if (!info.keep_alive) {
        out.append("Connection: close\r\n");
    } else if (info.client_version_minor == 0) {
        out.append("Connection: keep-alive\r\n");
    }
    out.append("\r\n");
}

std::string_view reasonPhrase(int status) {
    switch (status) {
        case 100: return "Continue";
        case 101: return "Switching Protocols";
        case 200: return "OK";
        case 201: return "Created";
        case 204: return "No Content";
        case 206: return "Partial Content";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 304: return "Not Modified";
        case 307: return "Temporary Redirect";
        case 308: return "Permanent Redirect";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 416: return "Range Not Satisfiable";
        case 426: return "Upgrade Required";
        case 429: return "Too Many Requests";  // RFC 6585 4
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

}  // namespace portico::http
