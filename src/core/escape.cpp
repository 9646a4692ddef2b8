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

std::string escaped(std::string_view s, std::string_view also) {
    std::string out;
    out.reserve(s.size());
    appendEscaped(out, s, also);
    return out;
}

}  // namespace portico::core
