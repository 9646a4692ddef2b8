// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/config: the decoding context that the section decoders (sections*.cpp) and the
// cross-checks (validate.cpp) share. It collects every error instead of stopping at the first,
// and remembers where each key path was written so that validate() can point at it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/key_doc.h"
#include "portico/config/config.h"
#include "portico/config/units.h"
#include "portico/config/loader.h"

namespace portico::config::detail {

// One value of the YAML tree, its key path and where it was written.
struct Item {
    YAML::Node node;
    std::string path;  // "routes[1].upstream"; "" for the document's root
    YAML::Mark mark;   // the value's mark (0-based); the key's when the value is empty, because
                       // yaml-cpp marks an empty value at the token after it
};

// "a" + "b" -> "a.b"; "" + "b" -> "b".
std::string childPath(const std::string& parent, std::string_view key);
// "routes" + 1 -> "routes[1]".
std::string indexPath(const std::string& parent, std::size_t index);
// yaml-cpp's 0-based mark -> our 1-based SourceMark; a null mark gives {0, 0}.
SourceMark toSourceMark(const YAML::Mark& mark);

class Decoder {
public:
    explicit Decoder(std::string file) : file_(std::move(file)) {}

    // Records an error (or warning) about `path` at `mark` (yaml-cpp's 0-based mark).
    void error(const YAML::Mark& mark, const std::string& path, std::string message);
    void error(const Item& item, std::string message) {
        error(item.mark, item.path, std::move(message));
    }
    void warning(const YAML::Mark& mark, const std::string& path, std::string message);

    // Where the value of `path` was written; remembered for every key and element decoded.
    void remember(const std::string& path, const YAML::Mark& mark) { marks_[path] = mark; }
    bool has(const std::string& path) const { return marks_.count(path) != 0; }
    // The mark of `path`, else of its closest remembered parent, else the null mark.
    YAML::Mark markOf(const std::string& path) const;
    // True when an error was reported at exactly `path`.
    bool failed(const std::string& path) const { return failed_.count(path) != 0; }
    // True when an error was reported at `path` or at any path inside it.
    bool failedUnder(const std::string& path) const;

    // Typed readers. Each stores into `out` and returns true, or reports an error at the item
    // and returns false leaving `out` unchanged.
    bool readString(const Item& item, std::string& out);                   // any scalar
    bool readPath(const Item& item, std::string& out);                     // a non-empty scalar
    bool readBool(const Item& item, bool& out);                            // true | false
    bool readCount(const Item& item, std::size_t& out);                    // a non-negative integer
    bool readSize(const Item& item, std::size_t& out);                     // units.h parseSize
    bool readDuration(const Item& item, Duration& out);                    // units.h parseDuration
    // units.h parseRate, per second. `off_allowed`: "0" and "off" give 0 (no limit); otherwise
    // the rate must be greater than 0.
    bool readRate(const Item& item, RateOf of, bool off_allowed, double& out);
    bool readPort(const Item& item, std::uint16_t& out);                   // 1..65535
    bool readStringList(const Item& item, std::vector<std::string>& out);  // [a, b]; null = []

    // One of a fixed set of words; the error names the last key of the path and the choices:
    // `unknown balance "x" (expected round_robin, least_conn or ip_hash)`.
    // `choices` is a named table (a std::array of {word, value} pairs) that the key's ValueType
    // (type::choice) names too, so the schema offers the same words.
    template <typename Choices, typename E>
    bool readChoice(const Item& item, const Choices& choices, E& out);

    // Calls `visit` for each element of a sequence (a null node is an empty sequence) with its
    // path "x[i]", after remembering it. Returns false (after an error) if it is no sequence.
    bool forEachElement(const Item& item, const std::function<void(const Item&)>& visit);
    // Calls `visit` for each entry of a mapping (null = empty) with the key's text and mark and
    // the value's item "x.key", after remembering it. Duplicate and non-scalar keys are errors
    // and are skipped. Returns false (after an error) if it is no mapping.
    bool forEachEntry(const Item& item,
                      const std::function<void(const std::string& key, const YAML::Mark& key_mark,
                                               const Item& value)>& visit);

    const std::string& file() const { return file_; }
    std::vector<ConfigError>& errors() { return errors_; }
    std::vector<ConfigError>& warnings() { return warnings_; }

private:
    std::string file_;
    std::vector<ConfigError> errors_;
    std::vector<ConfigError> warnings_;
    std::map<std::string, YAML::Mark> marks_;
    std::set<std::string> failed_;
};

// One entry of a section's table of known keys: the key, what its value is (type, default and
// a one-line description: the JSON Schema of `portico --schema` is made from these, key_doc.h)
// and the function decoding its value. Adding a key is adding one entry.
template <typename T>
struct KeyRule {
    std::string_view key;
    ValueType type;
    std::string_view default_value;  // as written in YAML, matching T's member initialiser
    std::string_view description;
    void (*decode)(Decoder& decoder, const Item& value, T& out);

    KeyDoc doc() const { return {key, type, default_value, description}; }
};

// "unknown key", with the known key it is a typo of if there is one: `unknown key (did you mean
// path?)`.
std::string unknownKeyMessage(std::string_view key, const std::vector<std::string_view>& known);

// Decodes a mapping through its table of known keys; a key not in the table is an error at the
// key's mark: `routes[0].pathh: unknown key (did you mean path?)`. Returns false if the node is
// not a mapping.
template <typename T, std::size_t N>
bool decodeMapping(Decoder& decoder, const Item& item, const std::array<KeyRule<T>, N>& rules,
                   T& out) {
    return decoder.forEachEntry(
        item, [&](const std::string& key, const YAML::Mark& key_mark, const Item& value) {
            for (const KeyRule<T>& rule : rules) {
                if (rule.key == key) {
                    rule.decode(decoder, value, out);
                    return;
                }
            }
            std::vector<std::string_view> known;
            for (const KeyRule<T>& rule : rules) known.push_back(rule.key);
            decoder.error(key_mark, value.path, unknownKeyMessage(key, known));
        });
}

// Decodes a list of mappings (a null node is an empty list) through one table, appending one T
// per element, with its mark, in order (so that indices match the key paths, even after errors).
template <typename T, std::size_t N>
void decodeMappingList(Decoder& decoder, const Item& item,
                       const std::array<KeyRule<T>, N>& rules, std::vector<T>& out) {
    decoder.forEachElement(item, [&](const Item& element) {
        T value;
        value.mark = toSourceMark(element.mark);
        decodeMapping(decoder, element, rules, value);
        out.push_back(std::move(value));
    });
}

// "a", "a or b", "a, b or c".
std::string listChoices(const std::vector<std::string_view>& words);

template <typename Choices, typename E>
bool Decoder::readChoice(const Item& item, const Choices& choices, E& out) {
    std::vector<std::string_view> words;
    for (const auto& choice : choices) words.push_back(choice.first);
    if (!item.node.IsScalar()) {
        error(item, "expected " + listChoices(words));
        return false;
    }
    const std::string& text = item.node.Scalar();
    for (const auto& choice : choices) {
        if (choice.first == text) {
            out = choice.second;
            return true;
        }
    }
    std::size_t dot = item.path.rfind('.');
    std::string what = dot == std::string::npos ? item.path : item.path.substr(dot + 1);
    error(item, "unknown " + what + " \"" + text + "\" (expected " + listChoices(words) + ")");
    return false;
}

}  // namespace portico::config::detail
