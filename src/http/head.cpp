// SPDX-License-Identifier: Apache-2.0
#include "portico/http/head.h"

namespace portico::http {

bool isToken(std::string_view text) {
    if (text.empty()) return false;
    // Asked for every field name of every head: the bytes' answers are and-ed four at a time,
    // with no branch per byte (almost every name is a token).
    auto bit = [&](std::size_t i) { return static_cast<unsigned>(isTokenChar(text[i])); };
    const std::size_t n = text.size();
    unsigned token = 1;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) token &= bit(i) & bit(i + 1) & bit(i + 2) & bit(i + 3);
    for (; i < n; ++i) token &= bit(i);
    return token != 0;
}

FieldName classifyFieldName(std::string_view name) {
    // By length first: most names have none of these lengths, and one or two comparisons settle
    // the others (against literals: the compiler folds the known name's case).
    auto is = [&](std::string_view known) { return equalsIgnoreCase(name, known); };
    switch (name.size()) {
        case 2:
            if (is("TE")) return FieldName::TE;
            break;
        case 4:
            if (is("Host")) return FieldName::Host;
            break;
        case 6:
            if (is("Origin")) return FieldName::Origin;
            if (is("Expect")) return FieldName::Expect;
            break;
        case 7:
            if (is("Upgrade")) return FieldName::Upgrade;
            if (is("Referer")) return FieldName::Referer;
            if (is("Trailer")) return FieldName::Trailer;
            break;
        case 9:
            if (is("X-Real-IP")) return FieldName::XRealIp;
            break;
        case 10:
            if (is("Connection")) return FieldName::Connection;
            if (is("User-Agent")) return FieldName::UserAgent;
            if (is("Keep-Alive")) return FieldName::KeepAlive;
            break;
        case 13:
            if (is("Cache-Control")) return FieldName::CacheControl;
            break;
        case 14:
            if (is("Content-Length")) return FieldName::ContentLength;
            break;
        case 15:
            if (is("X-Forwarded-For")) return FieldName::XForwardedFor;
            break;
        case 16:
            if (is("X-Forwarded-Host")) return FieldName::XForwardedHost;
            break;
        case 17:
            if (is("Sec-WebSocket-Key")) return FieldName::SecWebSocketKey;
            if (is("Transfer-Encoding")) return FieldName::TransferEncoding;
            if (is("X-Forwarded-Proto")) return FieldName::XForwardedProto;
            break;
        case 20:
            if (is("Sec-WebSocket-Accept")) return FieldName::SecWebSocketAccept;
            break;
        case 21:
            if (is("Sec-WebSocket-Version")) return FieldName::SecWebSocketVersion;
            break;
        case 22:
            if (is("Sec-WebSocket-Protocol")) return FieldName::SecWebSocketProtocol;
            break;
        case 24:
            if (is("Sec-WebSocket-Extensions")) return FieldName::SecWebSocketExtensions;
            break;
        default: break;
    }
    if (name.size() >= 6 && (name[0] == 'P' || name[0] == 'p') && equalsIgnoreCase(name.substr(0, 6), "Proxy-"))
        return FieldName::ProxyPrefixed;
    return FieldName::Other;
}

const Header* findHeader(const HeaderList& headers, FieldName field) {
    assert(field > FieldName::ProxyPrefixed);  // one name each: the others are looked up by name
    for (const auto& h : headers)
        if (fieldName(h) == field) return &h;
    return nullptr;
}

const Header* findHeader(const HeaderList& headers, std::string_view name) {
    const FieldName field = classifyFieldName(name);
    if (field != FieldName::Other && field != FieldName::ProxyPrefixed) return findHeader(headers, field);
    for (const auto& h : headers)
        if (equalsIgnoreCase(h.name, name)) return &h;
    return nullptr;
}

bool valueHasToken(std::string_view value, std::string_view token) {
    if (equalsIgnoreCase(value, token)) return true;  // the usual "Upgrade: websocket": no list to split
    bool found = false;
    forEachToken(value, [&](std::string_view t) { found = found || equalsIgnoreCase(t, token); });
    return found;
}

bool headerHasToken(const HeaderList& headers, std::string_view name, std::string_view token) {
    const FieldName field = classifyFieldName(name);
    const bool by_field = field != FieldName::Other && field != FieldName::ProxyPrefixed;
    for (const auto& h : headers)
        if ((by_field ? fieldName(h) == field : equalsIgnoreCase(h.name, name)) && valueHasToken(h.value, token))
            return true;
    return false;
}

std::string_view RequestHead::path() const {
    std::string_view t = target;
    return t.substr(0, t.find('?'));
}

std::string_view RequestHead::query() const {
    std::string_view t = target;
    auto q = t.find('?');
    return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

}  // namespace portico::http
