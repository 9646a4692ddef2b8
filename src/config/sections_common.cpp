// SPDX-License-Identifier: Apache-2.0
// The small checks that several sections share (declared in sections.h).

#include "config/sections.h"

#include <cctype>
#include <string>
#include <string_view>

namespace portico::config::detail {

void requirePositive(Decoder& d, const Item& v, bool positive) {
    if (!positive) d.error(v, "must be greater than 0");
}

std::string toLower(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

bool isHostName(std::string_view host) {
    if (host.empty() || host.size() > 253) return false;
    std::size_t label = 0;
    for (char c : host) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
        if (++label > 63) return false;
    }
    return label != 0;
}

}  // namespace portico::config::detail
