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

const Header* findHeader(const HeaderList& headers, std::string_view name) {
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
    for (const auto& h : headers)
        if (equalsIgnoreCase(h.name, name) && valueHasToken(h.value, token)) return true;
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
