// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/config: what each entry of a section's table of known keys (sections_*.cpp) says
// about its value besides how to decode it: the value's type, its default and a one-line
// description. schema.cpp turns the tables into the JSON Schema that `portico --schema` prints,
// so the loader and the schema cannot disagree on which keys exist.

#include <cstdint>
#include <string_view>
#include <vector>

namespace portico::config::detail {

struct KeyDoc;
using SectionDocs = std::vector<KeyDoc>;

enum class ValueKind {
    String,         // any scalar; `pattern` (if set) is what the loader accepts
    Path,           // a non-empty file path
    Bool,           // true | false (YAML 1.2: yes/no/on/off are errors)
    Count,          // a non-negative integer (units.h parseCount)
    Size,           // 16KiB (units.h parseSize)
    Duration,       // 10s (units.h parseDuration)
    Rate,           // 10/s, 600/m, 0.5/s or 0 (units.h parseRate, events)
    ByteRate,       // 1MiB/s, 64KiB/m or 0 (units.h parseRate, bytes)
    Port,           // 1..65535
    HostPort,       // host:port, [v6]:port, *:port (units.h parseHostPort)
    Choice,         // one of `words()`
    StringList,     // [a, b]; items match `pattern`, or are one of `words()` when that is set
    HostPortList,   // [host:port, ...]
    Mapping,        // the keys of `section()`
    MappingList,    // a list of mappings with the keys of `section()`
    NamedMappings,  // name: {keys of `section()`}; names match `pattern`
    StringMap,      // name: value; names match `pattern`
};

// The type of a key's value. `keyword` is a word accepted besides the kind's own notation
// (`workers: auto`, `publish_rate: off`).
struct ValueType {
    ValueKind kind = ValueKind::String;
    std::string_view pattern = {};                       // ECMA-262, anchored by the writer
    std::string_view keyword = {};
    std::vector<std::string_view> (*words)() = nullptr;  // Choice, StringList
    SectionDocs (*section)() = nullptr;                  // Mapping, MappingList, NamedMappings
    bool above_zero = false;  // Count, Size, Duration, Rate, ByteRate: 0 is an error
    std::uint64_t max = 0;    // Count: the largest value accepted; 0 = no bound
    std::uint64_t min = 0;    // Count: the smallest value accepted (above_zero: at least 1)

    // `type::size().aboveZero()`: the decoder rejects 0 (requirePositive).
    constexpr ValueType aboveZero() const {
        ValueType t = *this;
        t.above_zero = true;
        return t;
    }
    // `type::count().atLeast(8).atMost(15)`: the decoder rejects less than `n`.
    constexpr ValueType atLeast(std::uint64_t n) const {
        ValueType t = *this;
        t.min = n;
        return t;
    }
    // `type::count().aboveZero().atMost(128)`: the decoder rejects more than `n`.
    constexpr ValueType atMost(std::uint64_t n) const {
        ValueType t = *this;
        t.max = n;
        return t;
    }
};

// One key of a section, as the schema and the documentation describe it.
struct KeyDoc {
    std::string_view key;
    ValueType type;
    std::string_view default_value;  // as written in YAML; "" = none (absent means unset)
    std::string_view description;    // one line
};

// Shorthands for table entries: `type::size()`, `type::choice<kBalances>()`,
// `type::mapping<kLimitsKeys>()`.
namespace type {

constexpr ValueType string(std::string_view pattern = {}) { return {ValueKind::String, pattern}; }
constexpr ValueType path() { return {ValueKind::Path}; }
constexpr ValueType boolean() { return {ValueKind::Bool}; }
constexpr ValueType count(std::string_view keyword = {}) { return {ValueKind::Count, {}, keyword}; }
constexpr ValueType size() { return {ValueKind::Size}; }
constexpr ValueType duration(std::string_view keyword = {}) {
    return {ValueKind::Duration, {}, keyword};
}
constexpr ValueType rate(std::string_view keyword = {}) { return {ValueKind::Rate, {}, keyword}; }
constexpr ValueType byteRate() { return {ValueKind::ByteRate}; }
constexpr ValueType port() { return {ValueKind::Port}; }
constexpr ValueType hostPort() { return {ValueKind::HostPort}; }
constexpr ValueType hostPortList() { return {ValueKind::HostPortList}; }
constexpr ValueType stringList(std::string_view pattern = {}) {
    return {ValueKind::StringList, pattern};
}
constexpr ValueType stringMap(std::string_view name_pattern) {
    return {ValueKind::StringMap, name_pattern};
}

// The words of a choice table: an array of {word, value} pairs (Decoder::readChoice's input).
template <const auto& kChoices>
std::vector<std::string_view> wordsOf() {
    std::vector<std::string_view> words;
    for (const auto& choice : kChoices) words.push_back(choice.first);
    return words;
}
template <const auto& kChoices>
constexpr ValueType choice() {
    return {ValueKind::Choice, {}, {}, &wordsOf<kChoices>};
}

// The documentation of a table of KeyRules (decoder.h).
template <const auto& kRules>
SectionDocs docsOf() {
    SectionDocs docs;
    for (const auto& rule : kRules) docs.push_back(rule.doc());
    return docs;
}
template <const auto& kRules>
constexpr ValueType mapping() {
    return {ValueKind::Mapping, {}, {}, nullptr, &docsOf<kRules>};
}
template <const auto& kRules>
constexpr ValueType mappingList() {
    return {ValueKind::MappingList, {}, {}, nullptr, &docsOf<kRules>};
}
template <const auto& kRules>
constexpr ValueType namedMappings(std::string_view name_pattern) {
    return {ValueKind::NamedMappings, name_pattern, {}, nullptr, &docsOf<kRules>};
}

}  // namespace type

// The documentation of the document's root section (sections.cpp), nested sections included.
SectionDocs rootKeyDocs();

}  // namespace portico::config::detail
