// SPDX-License-Identifier: Apache-2.0
#pragma once
// The little JSON Portico writes (access log lines, pubsub answers, status): string escaping.

#include <string>
#include <string_view>

namespace portico::core {

// Appends `s` as a JSON string literal: quotes, backslashes and control bytes (as \u00XX)
// escaped; other bytes are copied as they are.
void appendJsonString(std::string& out, std::string_view s);

}  // namespace portico::core
