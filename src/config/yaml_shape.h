// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/config: bounds on the YAML of a configuration, checked on yaml-cpp's parse
// events before a node tree is built. yaml-cpp 0.7 has no bounds of its own: LoadAll() never
// returns on some inputs (a document that is only ",": it produces empty documents forever,
// found by fuzz_config), an alias inside its own anchor makes a cyclic tree, and aliases repeat
// what they name without copying it, so a small file can stand for an exponential one ("billion
// laughs") that walking the tree would pay for.

#include <cstddef>
#include <optional>
#include <string>

#include <yaml-cpp/mark.h>

namespace portico::config::detail {

// A configuration is a few kilobytes; these leave room for thousands of routes.
inline constexpr std::size_t kMaxConfigBytes = 1024 * 1024;  // the text, in bytes
inline constexpr std::size_t kMaxYamlNodes = 100000;         // nodes, each alias counted as the
                                                             // nodes it repeats
inline constexpr std::size_t kMaxYamlDepth = 64;             // nesting of maps and sequences

struct YamlShapeError {
    YAML::Mark mark;  // where the text crosses the bound (0-based, as yaml-cpp)
    std::string message;
};

// Reads the first document of `text` and whether another follows, event by event. Returns the
// first bound crossed: more than kMaxYamlNodes nodes, nesting deeper than kMaxYamlDepth, an alias
// inside its own anchor, or a second document. nullopt when none; then YAML::Load(text) builds
// the document within those bounds. A syntax error propagates as yaml-cpp's ParserException.
// `text` must be at most kMaxConfigBytes (the caller checks).
std::optional<YamlShapeError> checkYamlShape(const std::string& text);

}  // namespace portico::config::detail
