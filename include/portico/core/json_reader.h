// SPDX-License-Identifier: Apache-2.0
#pragma once
// A small strict JSON reader (RFC 8259) for the JSON Portico reads: GRIP control messages, the
// publish API's items and JWT claims. Bounded: input size is the caller's, nesting depth is
// kMaxDepth; no exceptions (a parse returns nullopt and the offset of the fault).

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portico::core {

struct JsonValue {
    enum class Kind { Null, Bool, Number, String, Array, Object };
    Kind kind = Kind::Null;
    bool boolean = false;
    double number = 0;
    std::string string;                       // String (unescaped, UTF-8)
    std::vector<JsonValue> array;             // Array
    std::map<std::string, JsonValue> object;  // Object; a repeated key keeps the last value

    bool isString() const { return kind == Kind::String; }
    bool isObject() const { return kind == Kind::Object; }
    bool isArray() const { return kind == Kind::Array; }
    bool isNumber() const { return kind == Kind::Number; }
    // The member `key` of an object, or nullptr (also when this is no object).
    const JsonValue* find(std::string_view key) const;
    // The string member `key`, or nullptr when absent or not a string.
    const std::string* findString(std::string_view key) const;
};

inline constexpr int kMaxJsonDepth = 32;

// Parses one JSON text (surrounding white space allowed). On failure returns nullopt and sets
// `error_offset` (when given) to where the fault is.
std::optional<JsonValue> parseJson(std::string_view text, std::size_t* error_offset = nullptr);

}  // namespace portico::core
