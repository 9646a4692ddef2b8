// SPDX-License-Identifier: Apache-2.0
#include "portico/http/header_rewrite.h"

#include <charconv>
#include <cstring>
#include <event2/buffer.h>

namespace portico::http {

namespace {

// A head written into memory sized for it beforehand (a bound summed from what may be written):
// every piece is then a plain copy, with no growth check per field.
class HeadWriter {
public:
    explicit HeadWriter(char* at) : p_(at) {}
    void put(std::string_view s) {
        if (!s.empty()) std::memcpy(p_, s.data(), s.size());  // (a null data() is not for memcpy)
        p_ += s.size();
    }
    void field(std::string_view name, std::string_view value) {
        put(name);
        put(": ");
        put(value);
        put("\r\n");
    }
    void number(std::uint64_t value) { p_ = std::to_chars(p_, p_ + kNumberBytes, value).ptr; }
    void framing(BodyFraming framing, std::uint64_t content_length) {
        if (framing == BodyFraming::ContentLength) {
            put("Content-Length: ");
            number(content_length);
            put("\r\n");
        } else if (framing == BodyFraming::Chunked) {
            put("Transfer-Encoding: chunked\r\n");
        }
    }
    char* end() const { return p_; }

    static constexpr std::size_t kNumberBytes = 20;  // 2^64 in decimal
    // The framing line and "Connection: upgrade" or the like, the start line's fixed parts and
    // the blank line: what a bound adds to the fields' own bytes.
    static constexpr std::size_t kFixedBytes = 160 + kNumberBytes;
    static std::size_t fieldBytes(std::string_view name, std::string_view value) { return name.size() + value.size() + 4; }

private:
    char* p_;
};

bool isSetBy(const std::vector<std::pair<std::string, std::string>>* set_headers, std::string_view name) {
    if (!set_headers) return false;
    for (const auto& [key, value] : *set_headers)
        if (equalsIgnoreCase(key, name)) return true;
    return false;
}

// What the head writers do with a field, from its FieldName (classified once, by the parser for
// the heads it reads).
enum class Field { Other, HopByHop, Connection, Upgrade, ContentLength, Host, XForwardedFor, XForwardedOther };

Field rewriteClass(FieldName name) {
    switch (name) {
        // RFC 9110 7.6.1: the fields that are hop-by-hop whatever Connection says.
        case FieldName::TE:
        case FieldName::Trailer:
        case FieldName::KeepAlive:
        case FieldName::TransferEncoding:
        case FieldName::ProxyPrefixed: return Field::HopByHop;
        case FieldName::Host: return Field::Host;
        case FieldName::Upgrade: return Field::Upgrade;
        case FieldName::Connection: return Field::Connection;
        case FieldName::ContentLength: return Field::ContentLength;
        case FieldName::XForwardedFor: return Field::XForwardedFor;
        case FieldName::XRealIp:
        case FieldName::XForwardedHost:
        case FieldName::XForwardedProto: return Field::XForwardedOther;
        default: return Field::Other;
    }
}
Field classify(const Header& h) { return rewriteClass(fieldName(h)); }
Field classify(std::string_view name) { return rewriteClass(classifyFieldName(name)); }

bool isAlwaysHopByHop(std::string_view name) {
    const Field field = classify(name);
    return field == Field::HopByHop || field == Field::Connection || field == Field::Upgrade;
}

// The bytes of every field of `headers` as written ("name: value\r\n").
std::size_t fieldsBytes(const HeaderList& headers) {
    std::size_t bytes = 0;
    for (const auto& h : headers) bytes += HeadWriter::fieldBytes(h.name, h.value);
    return bytes;
}

// The most bytes writeClientResponseHead writes.
std::size_t clientResponseHeadBound(const ResponseHead& response) {
    return HeadWriter::kFixedBytes + response.reason.size() + fieldsBytes(response.headers);
}

char* writeClientResponseHead(char* at, const ResponseHead& response, const ClientResponseInfo& info) {
    HeadWriter out(at);
    out.put("HTTP/1.1 ");
    out.number(static_cast<std::uint64_t>(response.status < 0 ? 0 : response.status));
    out.put(" ");
    out.put(response.reason.empty() ? reasonPhrase(response.status) : std::string_view(response.reason));
    out.put("\r\n");
    const auto tokens = connectionTokens(response.headers);
    for (const auto& h : response.headers) {
        switch (classify(h)) {
            case Field::Upgrade:
                if (info.upgrade) out.field(h.name, h.value);
                continue;
            case Field::HopByHop:
            case Field::Connection:
            case Field::ContentLength: continue;
            default: break;
        }
        if (!tokens.empty() && isHopByHop(h.name, tokens)) continue;
        out.field(h.name, h.value);
    }
    out.framing(info.framing, info.content_length);
    if (info.upgrade) {
        out.put("Connection: upgrade\r\n");
    } else if (!info.keep_alive) {
        out.put("Connection: close\r\n");
    } else if (info.client_version_minor == 0) {
        out.put("Connection: keep-alive\r\n");
    }
    out.put("\r\n");
    return out.end();
}

}  // namespace

std::vector<std::string_view> connectionTokens(const HeaderList& headers) {
    std::vector<std::string_view> tokens;
    for (const auto& h : headers)
        if (fieldName(h) == FieldName::Connection)
            forEachToken(h.value, [&](std::string_view t) {
                // "keep-alive", "upgrade": removed anyway, so not kept (the common Connection
                // header then costs no allocation).
                if (!isAlwaysHopByHop(t)) tokens.push_back(t);
            });
    return tokens;
}

bool isForwardedTrailer(std::string_view name) {
    // X-Forwarded-* and X-Real-IP go too: we write them in the head, and a backend that merges
    // trailers into the head must not be handed a client address the client chose.
    return classify(name) == Field::Other;
}

bool isReplacedField(std::string_view name, const std::vector<std::string_view>& connection_tokens,
                     const std::vector<std::pair<std::string, std::string>>* set_headers,
                     const HeaderList* override_headers) {
    if (!connection_tokens.empty() && isHopByHop(name, connection_tokens)) return true;
    return isSetBy(set_headers, name) || (override_headers && findHeader(*override_headers, name));
}

bool isHopByHop(std::string_view name, const std::vector<std::string_view>& connection_tokens) {
    const FieldName field = classifyFieldName(name);
    switch (rewriteClass(field)) {
        case Field::HopByHop:
        case Field::Connection:
        case Field::Upgrade: return true;
        default: break;
    }
    if (connection_tokens.empty()) return false;
    // RFC 9110 7.6.1: a connection option must never name a field meant for every recipient.
    // A peer that lists one anyway ("Connection: close, Host") does not get it removed: Host is
    // required on every HTTP/1.1 request (RFC 9112 3.2), the framing fields are rewritten by us,
    // and a WebSocket handshake is meaningless without its Sec-WebSocket-* fields (RFC 6455 4.1).
    switch (field) {
        case FieldName::Host:
        case FieldName::ContentLength:
        case FieldName::CacheControl:
        case FieldName::SecWebSocketKey:
        case FieldName::SecWebSocketVersion:
        case FieldName::SecWebSocketAccept:
        case FieldName::SecWebSocketProtocol:
        case FieldName::SecWebSocketExtensions: return false;
        default: break;
    }
    for (auto t : connection_tokens)
        if (equalsIgnoreCase(name, t)) return true;
    return false;
}

void appendUpstreamRequestHead(std::string& head, const RequestHead& request, const UpstreamRequestInfo& info) {
    // One pass for the bound (every received field may be copied, and X-Forwarded-For's values
    // once more), one that classifies each field once and copies it or not.
    std::size_t bound = HeadWriter::kFixedBytes + request.method.size() + info.target.size() +
                        2 * fieldsBytes(request.headers) + 2 * info.client_ip.size() + info.scheme.size() +
                        3 * sizeof "X-Forwarded-Proto: \r\n";
    if (info.set_headers)
        for (const auto& [key, value] : *info.set_headers) bound += HeadWriter::fieldBytes(key, value);
    if (info.override_headers) bound += fieldsBytes(*info.override_headers);
    const std::size_t at = head.size();
    head.resize(at + bound);
    HeadWriter out(head.data() + at);

    out.put(request.method);
    out.put(" ");
    out.put(info.target);
    out.put(" HTTP/1.1\r\n");
    const auto tokens = connectionTokens(request.headers);
    const Header* host = nullptr;
    bool forwarded_for = false;
    for (const auto& h : request.headers) {
        switch (classify(h)) {
            case Field::Upgrade:
                if (info.upgrade) out.field(h.name, h.value);
                continue;
            case Field::HopByHop:
            case Field::Connection:
            case Field::ContentLength: continue;
            // We set these ourselves: a client must not be able to forge them.
            case Field::XForwardedFor: forwarded_for = true; continue;
            case Field::XForwardedOther: continue;
            case Field::Host: host = host ? host : &h; break;
            case Field::Other: break;
        }
        if (isReplacedField(h.name, tokens, info.set_headers, info.override_headers)) continue;
        out.field(h.name, h.value);
    }
    if (info.upgrade) out.put("Connection: upgrade\r\n");
    out.framing(info.framing, info.content_length);

    // Ours unless the route's set_headers (or the proxy's overrides) name them: the configured
    // value replaces ours, as proxy_set_header does in nginx, instead of going as a second field.
    const auto ours = [&](std::string_view name) { return !isReplacedField(name, {}, info.set_headers, info.override_headers); };
    // X-Forwarded-For: append the client to every list received (several headers are one list).
    if (ours("X-Forwarded-For")) {
        out.put("X-Forwarded-For: ");
        if (forwarded_for)
            for (const auto& h : request.headers)
                if (classify(h) == Field::XForwardedFor) {
                    out.put(h.value);
                    out.put(", ");
                }
        out.put(info.client_ip);
        out.put("\r\n");
    }
    if (ours("X-Forwarded-Proto")) out.field("X-Forwarded-Proto", info.scheme);
    if (host && ours("X-Forwarded-Host")) out.field("X-Forwarded-Host", host->value);
    if (ours("X-Real-IP")) out.field("X-Real-IP", info.client_ip);
    if (info.set_headers)
        for (const auto& [key, value] : *info.set_headers) out.field(key, value);
    if (info.override_headers)
        for (const auto& h : *info.override_headers)
            if (!h.value.empty()) out.field(h.name, h.value);
    out.put("\r\n");
    head.resize(static_cast<std::size_t>(out.end() - head.data()));
}

void appendClientResponseHead(std::string& head, const ResponseHead& response, const ClientResponseInfo& info) {
    const std::size_t at = head.size();
    head.resize(at + clientResponseHeadBound(response));
    head.resize(static_cast<std::size_t>(writeClientResponseHead(head.data() + at, response, info) - head.data()));
}

std::size_t appendClientResponseHead(evbuffer* out, const ResponseHead& response, const ClientResponseInfo& info) {
    // Written in place into the buffer's free space: no string made and copied per response.
    evbuffer_iovec space;
    if (evbuffer_reserve_space(out, static_cast<ev_ssize_t>(clientResponseHeadBound(response)), &space, 1) < 1) return 0;
    char* const start = static_cast<char*>(space.iov_base);
    space.iov_len = static_cast<std::size_t>(writeClientResponseHead(start, response, info) - start);
    if (evbuffer_commit_space(out, &space, 1) != 0) return 0;
    return space.iov_len;
}

std::size_t formatClientResponseHead(char* out, std::size_t capacity, const ResponseHead& response,
                                     const ClientResponseInfo& info) {
    if (clientResponseHeadBound(response) > capacity) return 0;
    return static_cast<std::size_t>(writeClientResponseHead(out, response, info) - out);
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
