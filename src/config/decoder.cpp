// SPDX-License-Identifier: Apache-2.0
#include "config/decoder.h"

#include <algorithm>

#include "portico/config/units.h"

namespace portico::config::detail {

std::string childPath(const std::string& parent, std::string_view key) {
    if (parent.empty()) return std::string(key);
    std::string path = parent;
    path += '.';
    path += key;
    return path;
}

std::string indexPath(const std::string& parent, std::size_t index) {
    return parent + "[" + std::to_string(index) + "]";
}

SourceMark toSourceMark(const YAML::Mark& mark) {
    if (mark.is_null() || mark.line < 0 || mark.column < 0) return {};
    return SourceMark{mark.line + 1, mark.column + 1};
}

namespace {

// Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`, counted up to
// `limit + 1`.
std::size_t editDistance(std::string_view a, std::string_view b, std::size_t limit) {
    if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
    std::vector<std::size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        current[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t replace = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            current[j] = std::min({previous[j] + 1, current[j - 1] + 1, replace});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                current[j] = std::min(current[j], before[j - 2] + 1);
        }
        before.swap(previous);
        previous.swap(current);
    }
    return std::min(previous[b.size()], limit + 1);
}

}  // namespace

std::string unknownKeyMessage(std::string_view key, const std::vector<std::string_view>& known) {
    // A typo, not another word: at most one edit in a short key, two in a longer one.
    const std::size_t limit = key.size() < 6 ? 1 : 2;
    std::string_view best;
    std::size_t best_distance = limit + 1;
    for (std::string_view candidate : known) {
        const std::size_t distance = editDistance(key, candidate, limit);
        if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    if (best.empty()) return "unknown key";
    return "unknown key (did you mean " + std::string(best) + "?)";
}

std::string listChoices(const std::vector<std::string_view>& words) {
    std::string text;
    for (std::size_t i = 0; i < words.size(); ++i) {
        if (i > 0) text += i + 1 == words.size() ? " or " : ", ";
        text += words[i];
    }
    return text;
}

namespace {

// Keys and messages keep the file's bytes as they are; ConfigError::toString escapes them.
ConfigError makeError(const std::string& file, const YAML::Mark& mark, const std::string& path,
                      std::string message) {
    SourceMark where = toSourceMark(mark);
    return ConfigError{file, where.line, where.column, path, std::move(message)};
}

}  // namespace

void Decoder::error(const YAML::Mark& mark, const std::string& path, std::string message) {
    errors_.push_back(makeError(file_, mark, path, std::move(message)));
    failed_.insert(path);
}

void Decoder::warning(const YAML::Mark& mark, const std::string& path, std::string message) {
    warnings_.push_back(makeError(file_, mark, path, std::move(message)));
}

YAML::Mark Decoder::markOf(const std::string& path) const {
    std::string current = path;
    while (true) {
        auto it = marks_.find(current);
        if (it != marks_.end()) return it->second;
        if (current.empty()) return YAML::Mark::null_mark();
        // Drop the last ".key" or "[i]".
        std::size_t cut = current.find_last_of(".[");
        current = cut == std::string::npos ? std::string() : current.substr(0, cut);
    }
}

bool Decoder::failedUnder(const std::string& path) const {
    for (auto it = failed_.lower_bound(path); it != failed_.end(); ++it) {
        const std::string& failed_path = *it;
        if (failed_path.compare(0, path.size(), path) != 0)
            break;  // past the paths with this prefix
        if (failed_path.size() == path.size() || path.empty()) return true;
        char next = failed_path[path.size()];
        if (next == '.' || next == '[') return true;
    }
    return false;
}

bool Decoder::readString(const Item& item, std::string& out) {
    if (!item.node.IsScalar()) {
        error(item, "expected a string");
        return false;
    }
    out = item.node.Scalar();
    return true;
}

bool Decoder::readPath(const Item& item, std::string& out) {
    if (!item.node.IsScalar() || item.node.Scalar().empty()) {
        error(item, "expected a file path");
        return false;
    }
    out = item.node.Scalar();
    return true;
}

bool Decoder::readBool(const Item& item, bool& out) {
    // Only YAML 1.2's true/false: yes/no/on/off are YAML 1.1 and surprise people ("NO" the
    // country code), so they are errors rather than guesses.
    if (item.node.IsScalar()) {
        const std::string& text = item.node.Scalar();
        if (text == "true") {
            out = true;
            return true;
        }
        if (text == "false") {
            out = false;
            return true;
        }
    }
    error(item, "expected true or false");
    return false;
}

bool Decoder::readCount(const Item& item, std::size_t& out) {
    std::optional<std::uint64_t> value;
    if (item.node.IsScalar()) value = parseCount(item.node.Scalar());
    if (!value) {
        error(item, "expected a non-negative integer");
        return false;
    }
    out = static_cast<std::size_t>(*value);
    return true;
}

bool Decoder::readSize(const Item& item, std::size_t& out) {
    std::optional<std::size_t> value;
    if (item.node.IsScalar()) value = parseSize(item.node.Scalar());
    if (!value) {
        error(item, "expected a size like 10MiB");
        return false;
    }
    out = *value;
    return true;
}

bool Decoder::readRate(const Item& item, RateOf of, bool off_allowed, double& out) {
    const std::string text = item.node.IsScalar() ? item.node.Scalar() : std::string();
    std::optional<double> value = off_allowed && text == "off" ? 0.0 : parseRate(text, of);
    if (!value || (!off_allowed && *value <= 0)) {
        const char* example = of == RateOf::Bytes ? "expected a byte rate like 1MiB/s or 64KiB/m" : "expected a rate like 100/s, 600/m or 0.5/s";
        error(item, std::string(example) + (off_allowed ? ", or off" : " (greater than 0)"));
        return false;
    }
    out = *value;
    return true;
}

bool Decoder::readDuration(const Item& item, Duration& out) {
    std::optional<Duration> value;
    if (item.node.IsScalar()) value = parseDuration(item.node.Scalar());
    if (!value) {
        error(item, "expected a duration like 10s");
        return false;
    }
    out = *value;
    return true;
}

bool Decoder::readPort(const Item& item, std::uint16_t& out) {
    std::optional<std::uint64_t> value;
    if (item.node.IsScalar()) value = parseCount(item.node.Scalar());
    if (!value || *value == 0 || *value > 65535) {
        error(item, "expected a port number from 1 to 65535");
        return false;
    }
    out = static_cast<std::uint16_t>(*value);
    return true;
}

bool Decoder::readStringList(const Item& item, std::vector<std::string>& out) {
    if (!item.node.IsNull() && !item.node.IsSequence()) {
        error(item, "expected a list of strings");
        return false;
    }
    std::vector<std::string> values;
    bool ok = true;
    forEachElement(item, [&](const Item& element) {
        std::string value;
        if (readString(element, value)) {
            values.push_back(std::move(value));
        } else {
            ok = false;
        }
    });
    if (ok) out = std::move(values);
    return ok;
}

bool Decoder::forEachElement(const Item& item, const std::function<void(const Item&)>& visit) {
    if (item.node.IsNull()) return true;
    if (!item.node.IsSequence()) {
        error(item, "expected a list");
        return false;
    }
    std::size_t index = 0;
    for (auto it = item.node.begin(); it != item.node.end(); ++it) {
        YAML::Node element = *it;
        Item child{element, indexPath(item.path, index++), element.Mark()};
        if (element.IsNull() || child.mark.is_null()) child.mark = item.mark;
        remember(child.path, child.mark);
        visit(child);
    }
    return true;
}

bool Decoder::forEachEntry(
    const Item& item,
    const std::function<void(const std::string&, const YAML::Mark&, const Item&)>& visit) {
    if (item.node.IsNull()) return true;
    if (!item.node.IsMap()) {
        error(item, "expected a mapping");
        return false;
    }
    // yaml-cpp 0.7 keeps both entries of a duplicated key and lookups see the first: the second
    // would be silently ignored, so it is an error.
    std::set<std::string> seen;
    for (auto it = item.node.begin(); it != item.node.end(); ++it) {
        // Copies: yaml-cpp's iterator hands out a temporary proxy, references into it dangle.
        YAML::Node key = it->first;
        YAML::Node value = it->second;
        if (!key.IsScalar()) {
            error(key.Mark(), item.path, "expected a key name");
            continue;
        }
        const std::string& name = key.Scalar();
        std::string path = childPath(item.path, name);
        if (!seen.insert(name).second) {
            error(key.Mark(), path, "duplicate key");
            continue;
        }
        Item child{value, path, value.IsNull() ? key.Mark() : value.Mark()};
        remember(path, child.mark);
        visit(name, key.Mark(), child);
    }
    return true;
}

}  // namespace portico::config::detail
