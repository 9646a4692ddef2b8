// SPDX-License-Identifier: Apache-2.0
#include "portico/core/escape.h"

namespace portico::core {

void appendEscaped(std::string& out, std::string_view s, std::string_view also) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == '\\' || also.find(c) != std::string_view::npos) {
            const char escape[4] = {'\\', 'x', kHex[u >> 4], kHex[u & 0xf]};
            out.append(escape, sizeof escape);
        } else {
            out.push_back(c);
        }
    }
}

bool appendPercentDecoded(std::string& out, std::string_view s) {
    auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        const int hi = i + 2 < s.size() ? hex(s[i + 1]) : -1;
        const int lo = hi >= 0 ? hex(s[i + 2]) : -1;
        if (lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return true;
}

std::string escaped(std::string_view s, std::string_view also) {
    std::string out;
    out.reserve(s.size());
    appendEscaped(out, s, also);
    return out;
}

}  // namespace portico::core
