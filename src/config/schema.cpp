// SPDX-License-Identifier: Apache-2.0
#include "portico/config/schema.h"

#include <initializer_list>
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/key_doc.h"
#include "portico/config/units.h"
#include "portico/core/json.h"

namespace portico::config {
namespace {

using detail::KeyDoc;
using detail::SectionDocs;
using detail::ValueKind;
using detail::ValueType;

// A JSON value small enough to build in memory and print indented: a literal (already JSON
// text), an object (members in insertion order) or an array.
struct Json {
    enum class Kind { Literal, Object, Array };

    // A new object; text(), raw() and array() make the other kinds. Constructors, not aggregate
    // initialisation: with libstdc++ clang asks whether a member vector of the (then incomplete)
    // Json is default-constructible inside the class.
    Json() = default;
    Json(Kind k, std::string text) : kind(k), literal(std::move(text)) {}

    static Json text(std::string_view s);
    static Json raw(std::string_view s) { return Json(Kind::Literal, std::string(s)); }
    static Json array(std::vector<Json> items);
    Json& set(std::string key, Json value);

    Kind kind = Kind::Object;
    std::string literal;
    std::vector<std::pair<std::string, Json>> members;
    std::vector<Json> items;
};

Json Json::text(std::string_view s) {
    Json j(Kind::Literal, {});
    core::appendJsonString(j.literal, s);
    return j;
}

Json Json::array(std::vector<Json> items) {
    Json j(Kind::Array, {});
    j.items = std::move(items);
    return j;
}

Json& Json::set(std::string key, Json value) {
    members.emplace_back(std::move(key), std::move(value));
    return *this;
}

void print(const Json& json, std::string& out, int depth) {
    auto newline = [&](int d) {
        out += '\n';
        out.append(static_cast<std::size_t>(d) * 2, ' ');
    };
    switch (json.kind) {
        case Json::Kind::Literal:
            out += json.literal;
            return;
        case Json::Kind::Array: {
            // Arrays here are short lists of words or types: one line reads best.
            out += '[';
            for (std::size_t i = 0; i < json.items.size(); ++i) {
                if (i > 0) out += ", ";
                print(json.items[i], out, depth + 1);
            }
            out += ']';
            return;
        }
        case Json::Kind::Object: {
            if (json.members.empty()) {
                out += "{}";
                return;
            }
            out += '{';
            for (std::size_t i = 0; i < json.members.size(); ++i) {
                if (i > 0) out += ',';
                newline(depth + 1);
                core::appendJsonString(out, json.members[i].first);
                out += ": ";
                print(json.members[i].second, out, depth + 1);
            }
            newline(depth);
            out += '}';
            return;
        }
    }
}

bool isDigits(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

// "1.2" is a number to a YAML reader (and so to an editor), a string to the loader, which
// reads the scalar's text: a choice like that is offered both ways.
bool isDecimal(std::string_view text) {
    std::size_t point = text.find('.');
    return point != std::string_view::npos && isDigits(text.substr(0, point)) &&
           isDigits(text.substr(point + 1));
}

Json types(std::initializer_list<std::string_view> names) {
    std::vector<Json> items;
    for (std::string_view name : names) items.push_back(Json::text(name));
    return items.size() == 1 ? std::move(items.front()) : Json::array(std::move(items));
}

std::string anchored(std::string_view keyword, std::string_view pattern) {
    std::string text = "^(?:";
    if (!keyword.empty()) {
        text += keyword;
        text += '|';
    }
    text += pattern;
    text += ")$";
    return text;
}

// A notation the loader reads from the scalar's text, which YAML may also type as an integer
// (`max_connections: 10000`): integers in [min, max] (max < 0: no maximum) and strings
// matching the pattern.
Json notation(std::string_view keyword, std::string_view pattern, long min, long max) {
    Json j;
    j.set("type", types({"integer", "string"}));
    j.set("minimum", Json::raw(std::to_string(min)));
    if (max >= 0) j.set("maximum", Json::raw(std::to_string(max)));
    j.set("pattern", Json::text(anchored(keyword, pattern)));
    return j;
}

Json stringMatching(std::string_view keyword, std::string_view pattern) {
    Json j;
    j.set("type", Json::text("string"));
    if (!pattern.empty()) j.set("pattern", Json::text(anchored(keyword, pattern)));
    return j;
}

Json wordsSchema(const ValueType& type) {
    std::vector<Json> words;
    for (std::string_view word : type.words()) {
        words.push_back(Json::text(word));
        if (isDecimal(word)) words.push_back(Json::raw(word));
    }
    Json j;
    j.set("enum", Json::array(std::move(words)));
    return j;
}

Json sectionSchema(const SectionDocs& docs);

Json valueSchema(const ValueType& type) {
    switch (type.kind) {
        case ValueKind::String:
            return stringMatching({}, type.pattern);
        case ValueKind::Path: {
            Json j;
            j.set("type", Json::text("string")).set("minLength", Json::raw("1"));
            return j;
        }
        case ValueKind::Bool: {
            Json j;
            j.set("type", Json::text("boolean"));
            return j;
        }
        case ValueKind::Count: {
            const long max = type.max > 0 ? static_cast<long>(type.max) : -1;
            const long min = std::max(type.above_zero ? 1L : 0L, static_cast<long>(type.min));
            return min > 0 ? notation(type.keyword, kPositiveCountPattern, min, max)
                           : notation(type.keyword, kCountPattern, 0, max);
        }
        case ValueKind::Size:
            return type.above_zero ? notation(type.keyword, kPositiveSizePattern, 1, -1)
                                   : notation(type.keyword, kSizePattern, 0, -1);
        // A bare number is a duration or a rate only when it is "0" (parseDuration, parseRate):
        // above zero, only the text notations remain.
        case ValueKind::Duration:
            return type.above_zero ? stringMatching(type.keyword, kPositiveDurationPattern)
                                   : notation(type.keyword, kDurationPattern, 0, 0);
        case ValueKind::Rate:
            return type.above_zero ? stringMatching(type.keyword, kPositiveRatePattern)
                                   : notation(type.keyword, kRatePattern, 0, 0);
        case ValueKind::ByteRate:
            return type.above_zero ? stringMatching(type.keyword, kPositiveByteRatePattern)
                                   : notation(type.keyword, kByteRatePattern, 0, 0);
        case ValueKind::Port:
            return notation(type.keyword, "[0-9]{1,5}", 1, 65535);
        case ValueKind::HostPort:
            return stringMatching(type.keyword, kHostPortPattern);
        case ValueKind::Choice:
            return wordsSchema(type);
        case ValueKind::StringList:
        case ValueKind::HostPortList: {
            Json item = type.kind == ValueKind::HostPortList ? stringMatching({}, kHostPortPattern)
                        : type.words                         ? wordsSchema(type)
                                                             : stringMatching({}, type.pattern);
            Json j;
            j.set("type", types({"array", "null"})).set("items", std::move(item));
            return j;
        }
        case ValueKind::Mapping: {
            Json j = sectionSchema(type.section());
            j.members.front().second = types({"object", "null"});  // `tls:` alone: the defaults
            return j;
        }
        case ValueKind::MappingList: {
            Json j;
            j.set("type", types({"array", "null"})).set("items", sectionSchema(type.section()));
            return j;
        }
        case ValueKind::NamedMappings:
        case ValueKind::StringMap: {
            Json names;
            names.set("pattern", Json::text(anchored({}, type.pattern)));
            Json value;
            if (type.kind == ValueKind::NamedMappings) {
                value = sectionSchema(type.section());
            } else {
                value.set("type", types({"string", "number", "boolean"}));  // any scalar
            }
            Json j;
            j.set("type", types({"object", "null"}))
                .set("propertyNames", std::move(names))
                .set("additionalProperties", std::move(value));
            return j;
        }
    }
    return Json{};
}

// A default written as YAML ("10s", "100", "true", "[http/1.1]") as the JSON an editor shows.
Json defaultValue(std::string_view text) {
    if (isDigits(text)) return Json::raw(text);
    if (text == "true" || text == "false") return Json::raw(text);
    if (text.starts_with('[') && text.ends_with(']')) {
        std::vector<Json> items;
        std::string_view rest = text.substr(1, text.size() - 2);
        while (!rest.empty()) {
            std::size_t comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            while (item.starts_with(' ')) item.remove_prefix(1);
            items.push_back(Json::text(item));
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
        return Json::array(std::move(items));
    }
    return Json::text(text);
}

Json keySchema(const KeyDoc& doc) {
    Json out;
    out.set("description", Json::text(doc.description));
    if (!doc.default_value.empty()) out.set("default", defaultValue(doc.default_value));
    for (auto& member : valueSchema(doc.type).members) out.members.push_back(std::move(member));
    return out;
}

Json sectionSchema(const SectionDocs& docs) {
    Json properties;
    for (const KeyDoc& doc : docs) properties.set(std::string(doc.key), keySchema(doc));
    Json j;
    j.set("type", Json::text("object"))
        .set("additionalProperties", Json::raw("false"))  // decodeMapping: unknown keys are errors
        .set("properties", std::move(properties));
    return j;
}

}  // namespace

std::string configSchemaJson() {
    Json root;
    root.set("$schema", Json::text("http://json-schema.org/draft-07/schema#"))
        .set("title", Json::text("portico.yaml"))
        .set("description",
             Json::text("Configuration of Portico " PORTICO_VERSION
                        ", the HTTP/WebSocket gateway (portico.yaml(5)). Generated by "
                        "`portico --schema` from the loader's tables of keys; `portico -t` "
                        "checks what a schema cannot (references between keys, files)."));
    for (auto& member : sectionSchema(detail::rootKeyDocs()).members)
        root.members.push_back(std::move(member));
    std::string out;
    print(root, out, 0);
    out += '\n';
    return out;
}

}  // namespace portico::config
