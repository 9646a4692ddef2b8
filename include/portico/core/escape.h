// SPDX-License-Identifier: Apache-2.0
#pragma once
// Text from a file or the network on its way to a terminal or a log: every byte that is not
// printable ASCII written as \xHH, nginx's escaping. The result is one line, whole: a NUL neither
// ends it (printf's %s would) nor hides what follows, and no control sequence reaches a terminal.

#include <string>
#include <string_view>

namespace portico::core {

// Appends `s` to `out` with control bytes (below 0x20, 0x7f), bytes from 0x80, the backslash
// (so that "\x00" in the output always means an escaped byte) and each byte of `also` written
// as \xHH in upper-case hex; other bytes are copied as they are.
void appendEscaped(std::string& out, std::string_view s, std::string_view also = {});

// `s` escaped as by appendEscaped.
std::string escaped(std::string_view s, std::string_view also = {});

// RFC 3986 2.1: `s` with every %XX (either case) replaced by the byte XX, appended to `out`.
// False (out unspecified) when a '%' is not followed by two hex digits.
bool appendPercentDecoded(std::string& out, std::string_view s);

}  // namespace portico::core
