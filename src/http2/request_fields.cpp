// SPDX-License-Identifier: Apache-2.0
#include "portico/http2/request_fields.h"

#include <algorithm>

#include "portico/http/header_rewrite.h"
#include "portico/http/request_checks.h"

namespace portico::http2 {

const char* RequestFields::toString(Verdict verdict) {
    switch (verdict) {
        case Verdict::Ok: return "ok";
        case Verdict::Malformed: return "malformed";
        case Verdict::TooLarge: return "too-large";
    }
    return "?";
}

RequestFields::Verdict RequestFields::refuse(Verdict verdict, const char* why) {
    verdict_ = verdict;
    error_ = why;
    return verdict;
}

RequestFields::Verdict RequestFields::add(std::string_view name, std::string_view value) {
    if (verdict_ != Verdict::Ok) return verdict_;
    // RFC 9113 6.5.2: the size of a field is its name and value plus 32 octets of overhead.
    bytes_ += name.size() + value.size() + 32;
    if (bytes_ > max_bytes_) return refuse(Verdict::TooLarge, "request header fields too large");
    if (!name.empty() && name.front() == ':') {
        // RFC 9113 8.3: pseudo-fields precede the regular ones; each appears once.
        if (regular_seen_) return refuse(Verdict::Malformed, "pseudo-header after a regular field");
        auto once = [&](bool& seen, std::string& into) {
            if (seen) return false;
            seen = true;
            into.assign(value);
            return true;
        };
        bool ok = false;
        if (name == ":method") {
            ok = once(has_method_, head_.method);
        } else if (name == ":path") {
            ok = once(has_path_, head_.target);
        } else if (name == ":authority") {
            ok = once(has_authority_, authority_);
        } else if (name == ":scheme") {
            ok = once(has_scheme_, scheme_);
        } else if (name == ":protocol") {
            ok = once(has_protocol_, protocol_);
        } else {
            return refuse(Verdict::Malformed, "unknown pseudo-header");
        }
        if (!ok || value.empty()) return refuse(Verdict::Malformed, "repeated or empty pseudo-header");
        return Verdict::Ok;
    }
    regular_seen_ = true;
    // RFC 9113 8.2.2: connection-specific fields do not exist in HTTP/2; TE may only say
    // "trailers".
    for (std::string_view forbidden : {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
        if (http::equalsIgnoreCase(name, forbidden)) return refuse(Verdict::Malformed, "connection-specific header field");
    if (http::equalsIgnoreCase(name, "te") && !http::equalsIgnoreCase(value, "trailers"))
        return refuse(Verdict::Malformed, "TE other than trailers");
    if (http::equalsIgnoreCase(name, "cookie")) {
        // RFC 9113 8.2.3: cookie crumbs are joined with "; " before going to HTTP/1.1.
        if (has_cookie_) cookie_.append("; ");
        cookie_.append(value);
        has_cookie_ = true;
        return Verdict::Ok;
    }
    // :authority wins over Host (RFC 9113 8.3.1); a Host alone stands for it.
    if (http::equalsIgnoreCase(name, "host")) {
        if (!has_authority_ && authority_.empty()) authority_.assign(value);
        return Verdict::Ok;
    }
    if (head_.headers.empty()) {
        // Room for a browser's fields at once, and a place for Host first (finish() fills it):
        // one allocation for the list, not one per growth and another for the final order.
        head_.headers.reserve(16);
        head_.headers.push_back({"Host", std::string()});
    }
    head_.headers.push_back({std::string(name), std::string(value)});
    return Verdict::Ok;
}

RequestFields::Verdict RequestFields::finish(http::RequestHead& head) {
    if (verdict_ != Verdict::Ok) return verdict_;
    if (!has_method_) return refuse(Verdict::Malformed, "no :method");
    // What an HTTP/1.1 client of ours could not send ("get", an unknown name) is no request here
    // either: it would go upstream in an HTTP/1.1 request line.
    if (!http::isKnownMethod(head_.method)) return refuse(Verdict::Malformed, "unknown :method");
    // RFC 9113 8.3.1: the scheme of the target URI; we serve http and https ones (https over
    // h2c too: behind a TLS-terminating balancer), nothing else.
    if (has_scheme_ && scheme_ != "http" && scheme_ != "https") return refuse(Verdict::Malformed, "unsupported :scheme");
    const bool connect = head_.method == "CONNECT";
    if (!protocol_.empty() && !connect) return refuse(Verdict::Malformed, ":protocol without CONNECT");
    if (connect && protocol_.empty()) {
        // RFC 9113 8.5: a plain CONNECT has :authority only.
        if (has_scheme_ || has_path_ || !has_authority_) return refuse(Verdict::Malformed, "malformed CONNECT");
        head_.target = authority_;
    } else {
        // RFC 9113 8.3.1 (and RFC 8441 4 for an extended CONNECT): :scheme and a non-empty :path.
        if (!has_scheme_ || !has_path_ || head_.target.empty()) return refuse(Verdict::Malformed, "no :scheme or :path");
        // RFC 3986: a target is visible ASCII. nghttp2 lets DEL and bytes above 0x7f through,
        // which the upstream's HTTP/1.1 request line would carry, and which an HTTP/1.1 client
        // of ours gets 400 for.
        if (!std::all_of(head_.target.begin(), head_.target.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
            return refuse(Verdict::Malformed, "invalid :path");
    }
    if (authority_.empty()) return refuse(Verdict::Malformed, "no :authority or Host");
    // Host first, as an HTTP/1.1 client writes it (add() made its place before the first
    // regular field).
    if (head_.headers.empty()) {
        head_.headers.push_back({"Host", authority_});
    } else {
        head_.headers.front().value = authority_;
    }
    if (has_cookie_) head_.headers.push_back({"cookie", cookie_});
    head_.version_major = 1;
    head_.version_minor = 1;  // what the upstream is spoken to with
    head = std::move(head_);
    return Verdict::Ok;
}

RequestFields::Verdict RequestFields::addTrailer(std::string_view name, std::string_view value) {
    if (verdict_ != Verdict::Ok) return verdict_;
    trailer_bytes_ += name.size() + value.size() + 32;  // as in add()
    if (trailer_bytes_ > max_bytes_) return refuse(Verdict::TooLarge, "request trailer fields too large");
    if (!http::isForwardedTrailer(name)) return Verdict::Ok;
    trailers_.push_back({std::string(name), std::string(value)});
    return Verdict::Ok;
}

void asWebSocketUpgrade(http::RequestHead& head, std::string_view key) {
    head.method = "GET";
    std::erase_if(head.headers, [](const http::Header& h) {
        return http::equalsIgnoreCase(h.name, "sec-websocket-key") || http::equalsIgnoreCase(h.name, "upgrade") ||
               http::equalsIgnoreCase(h.name, "connection");
    });
    head.headers.push_back({"Upgrade", "websocket"});
    head.headers.push_back({"Connection", "Upgrade"});
    head.headers.push_back({"Sec-WebSocket-Key", std::string(key)});
}

}  // namespace portico::http2
