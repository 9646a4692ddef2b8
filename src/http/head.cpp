// SPDX-License-Identifier: Apache-2.0
#include "portico/http/head.h"

namespace portico::http {

bool isToken(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text)
        if (!isTokenChar(c)) return false;
    return true;
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
