// SPDX-License-Identifier: Apache-2.0
// `portico --schema` against the loader: the schema is made from the loader's tables, and these
// tests hold the two to each other from the outside. Every key the schema names is one the
// loader knows at that place, every key the schema lacks there is one the loader rejects as
// unknown, and every default the schema states is a value the loader accepts and the default
// of the struct it fills.

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/decoder.h"
#include "config/key_doc.h"
#include "config/passes.h"
#include "portico/config/loader.h"
#include "portico/config/schema.h"

using namespace portico::config;

namespace {

// How a mapping of the schema is reached from the document's root.
struct Step {
    enum class Kind { Key, ListItem, Named };
    std::string key;
    Kind kind;
};

// A mapping that rejects unknown keys (additionalProperties: false), with where it is.
struct Section {
    std::vector<Step> steps;
    YAML::Node schema;
};

bool hasType(const YAML::Node& schema, const std::string& name) {
    const YAML::Node type = schema["type"];
    if (!type) return false;
    if (type.IsScalar()) return type.Scalar() == name;
    for (const auto& t : type) {
        if (t.Scalar() == name) return true;
    }
    return false;
}

bool isClosedMapping(const YAML::Node& schema) {
    const YAML::Node extra = schema["additionalProperties"];
    return hasType(schema, "object") && schema["properties"] && extra && extra.IsScalar() &&
           extra.Scalar() == "false";
}

void collectSections(const YAML::Node& schema, std::vector<Step> steps, std::vector<Section>& out) {
    if (isClosedMapping(schema)) out.push_back(Section{steps, schema});
    if (!schema["properties"]) return;
    for (const auto& property : schema["properties"]) {
        const std::string key = property.first.Scalar();
        const YAML::Node value = property.second;
        std::vector<Step> next = steps;
        if (hasType(value, "object") && value["properties"]) {
            next.push_back({key, Step::Kind::Key});
            collectSections(value, next, out);
        } else if (hasType(value, "array") && value["items"] && value["items"]["properties"]) {
            next.push_back({key, Step::Kind::ListItem});
            collectSections(value["items"], next, out);
        } else if (hasType(value, "object") && value["additionalProperties"] &&
                   value["additionalProperties"].IsMap()) {
            next.push_back({key, Step::Kind::Named});
            collectSections(value["additionalProperties"], next, out);
        }
    }
}

std::vector<Section> schemaSections() {
    YAML::Node schema = YAML::Load(configSchemaJson());
    std::vector<Section> sections;
    collectSections(schema, {}, sections);
    return sections;
}

// Every key of the loader's tables, nested ones included: what the schema is made from.
void collectTableKeys(const detail::SectionDocs& docs, std::set<std::string>& out) {
    for (const detail::KeyDoc& doc : docs) {
        out.insert(std::string(doc.key));
        if (doc.type.section) collectTableKeys(doc.type.section(), out);
    }
}

// `yaml` (a flow mapping) placed as the mapping at `steps`: the whole document.
std::string nested(const std::vector<Step>& steps, std::string yaml) {
    for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
        switch (it->kind) {
            case Step::Kind::Key: yaml = "{" + it->key + ": " + yaml + "}"; break;
            case Step::Kind::ListItem: yaml = "{" + it->key + ": [" + yaml + "]}"; break;
            case Step::Kind::Named: yaml = "{" + it->key + ": {u: " + yaml + "}}"; break;
        }
    }
    return yaml;
}

// A document whose mapping at `steps` holds `key: value`, and that key's path as the loader
// names it in errors ("routes[0].websocket.mode", "upstreams.u.balance").
std::pair<std::string, std::string> documentWith(const std::vector<Step>& steps,
                                                 const std::string& key, const std::string& value) {
    std::string path;
    for (const Step& step : steps) {
        if (!path.empty()) path += '.';
        path += step.key;
        if (step.kind == Step::Kind::ListItem) path += "[0]";
        if (step.kind == Step::Kind::Named) path += ".u";
    }
    return {nested(steps, "{" + key + ": " + value + "}"), path.empty() ? key : path + "." + key};
}

// A value of the schema (a default) written back as YAML: JSON is YAML's flow style.
std::string yamlOf(const YAML::Node& value) {
    YAML::Emitter emitter;
    emitter << YAML::Flow << value;
    return emitter.c_str();
}

// The loader's errors about `path` or anything inside it.
std::vector<ConfigError> errorsAt(const std::string& yaml, const std::string& path) {
    std::vector<ConfigError> found;
    for (const ConfigError& error : loadConfigString(yaml, "schema_test.yaml").errors) {
        const std::string& key = error.key;
        if (key == path || key.starts_with(path + ".") || key.starts_with(path + "[")) {
            found.push_back(error);
        }
    }
    return found;
}

bool unknownKey(const std::string& yaml, const std::string& path) {
    for (const ConfigError& error : errorsAt(yaml, path)) {
        if (error.key == path && error.message.rfind("unknown key", 0) == 0) return true;
    }
    return false;
}

// Pass 1 only (decoding): the structs as the tables fill them, before the cross-checks that a
// document of one key could not pass.
Config decoded(const std::string& yaml) {
    detail::Decoder decoder("schema_test.yaml");
    YAML::Node root = YAML::Load(yaml);
    Config config = detail::decodeConfig(decoder, detail::Item{root, "", root.Mark()});
    INFO(yaml);
    CHECK(decoder.errors().empty());
    return config;
}

}  // namespace

TEST_CASE("the schema is JSON Schema draft-07 with the root keys", "[config][schema]") {
    YAML::Node schema = YAML::Load(configSchemaJson());
    CHECK(schema["$schema"].Scalar() == "http://json-schema.org/draft-07/schema#");
    CHECK(isClosedMapping(schema));
    for (const char* key : {"workers", "log", "limits", "listeners", "upstreams", "routes"}) {
        INFO(key);
        CHECK(schema["properties"][key]["description"]);
    }
    CHECK(schema["properties"]["routes"]["items"]["properties"]["websocket"]["properties"]["mode"]
                ["enum"].size() == 3);
}

TEST_CASE("the schema and the loader know the same keys in every section", "[config][schema]") {
    const std::vector<Section> sections = schemaSections();
    // Enough sections to be sure the walk reached the nested ones (root, log, limits, listeners,
    // their tls and certificates, upstreams and their tls, routes, websocket, rate, burst, ...).
    REQUIRE(sections.size() >= 14);

    // Candidates: every key of the loader's tables, every key named anywhere in the schema, and
    // names no section has. A key the schema lost, or put in another section, shows up here.
    std::set<std::string> candidates = {"no_such_key", "Workers", "route"};
    collectTableKeys(detail::rootKeyDocs(), candidates);
    for (const Section& section : sections) {
        for (const auto& property : section.schema["properties"])
            candidates.insert(property.first.Scalar());
    }
    for (const Section& section : sections) {
        for (const std::string& key : candidates) {
            auto [yaml, path] = documentWith(section.steps, key, "~");
            const bool in_schema = static_cast<bool>(section.schema["properties"][key]);
            INFO(yaml);
            CHECK(unknownKey(yaml, path) == !in_schema);
        }
    }
}

TEST_CASE("every default in the schema is a value the loader accepts", "[config][schema]") {
    std::size_t defaults = 0;
    for (const Section& section : schemaSections()) {
        for (const auto& property : section.schema["properties"]) {
            const YAML::Node value = property.second;
            CHECK(value["description"]);
            if (!value["default"]) continue;
            ++defaults;
            auto [yaml, path] =
                documentWith(section.steps, property.first.Scalar(), yamlOf(value["default"]));
            INFO(yaml);
            CHECK(errorsAt(yaml, path).empty());
        }
    }
    CHECK(defaults >= 40);
}

TEST_CASE("every default in the schema is the struct's own default", "[config][schema]") {
    // The tables state defaults as text for the schema; the structs' member initialisers are
    // what the server uses. Writing a key at its stated default must change nothing.
    std::size_t defaults = 0;
    for (const Section& section : schemaSections()) {
        const std::string without = nested(section.steps, "{}");
        for (const auto& property : section.schema["properties"]) {
            if (!property.second["default"]) continue;
            ++defaults;
            auto [with, path] = documentWith(section.steps, property.first.Scalar(),
                                             yamlOf(property.second["default"]));
            INFO(with);
            CHECK(decoded(with) == decoded(without));
        }
    }
    CHECK(defaults >= 40);
}

namespace {

// A key of the loader's tables with the way to its section.
struct TableKey {
    std::vector<Step> steps;
    detail::KeyDoc doc;
};

void collectTableKeyDocs(const detail::SectionDocs& docs, const std::vector<Step>& steps,
                         std::vector<TableKey>& out) {
    for (const detail::KeyDoc& doc : docs) {
        out.push_back({steps, doc});
        if (!doc.type.section) continue;
        std::vector<Step> next = steps;
        const std::string key(doc.key);
        switch (doc.type.kind) {
            case detail::ValueKind::MappingList: next.push_back({key, Step::Kind::ListItem}); break;
            case detail::ValueKind::NamedMappings: next.push_back({key, Step::Kind::Named}); break;
            default: next.push_back({key, Step::Kind::Key}); break;
        }
        collectTableKeyDocs(doc.type.section(), next, out);
    }
}

// The schema of the key `key` of the mapping at `steps`. (yaml-cpp: `node = other` would write
// into the tree; reset() moves the handle.)
YAML::Node propertySchema(const YAML::Node& root, const std::vector<Step>& steps,
                          const std::string& key) {
    YAML::Node node(root);
    for (const Step& step : steps) {
        node.reset(node["properties"][step.key]);
        if (step.kind == Step::Kind::ListItem) node.reset(node["items"]);
        if (step.kind == Step::Kind::Named) node.reset(node["additionalProperties"]);
    }
    return node["properties"][key];
}

// What an editor says about `key: n` (YAML reads n as an integer).
bool schemaAcceptsInteger(const YAML::Node& property, long n) {
    if (!hasType(property, "integer")) return false;
    if (property["minimum"] && n < property["minimum"].as<long>()) return false;
    if (property["maximum"] && n > property["maximum"].as<long>()) return false;
    return true;
}

bool isNumberKind(detail::ValueKind kind) {
    using detail::ValueKind;
    return kind == ValueKind::Count || kind == ValueKind::Size || kind == ValueKind::Duration ||
           kind == ValueKind::Rate || kind == ValueKind::ByteRate || kind == ValueKind::Port;
}

}  // namespace

TEST_CASE("the schema and the loader agree on 0 and on the largest value of every number",
          "[config][schema]") {
    const YAML::Node schema = YAML::Load(configSchemaJson());
    std::vector<TableKey> keys;
    collectTableKeyDocs(detail::rootKeyDocs(), {}, keys);
    std::size_t numbers = 0;
    for (const TableKey& entry : keys) {
        if (!isNumberKind(entry.doc.type.kind)) continue;
        ++numbers;
        const std::string key(entry.doc.key);
        const YAML::Node property = propertySchema(schema, entry.steps, key);
        REQUIRE(property);
        {
            auto [yaml, path] = documentWith(entry.steps, key, "0");
            INFO(yaml);
            CHECK(errorsAt(yaml, path).empty() == schemaAcceptsInteger(property, 0));
        }
        if (property["maximum"] && property["maximum"].as<long>() > 0) {
            const long max = property["maximum"].as<long>();
            auto [at_max, path] = documentWith(entry.steps, key, std::to_string(max));
            INFO(at_max);
            CHECK(errorsAt(at_max, path).empty());
            auto [beyond, path_beyond] = documentWith(entry.steps, key, std::to_string(max + 1));
            INFO(beyond);
            CHECK_FALSE(errorsAt(beyond, path_beyond).empty());
        }
    }
    CHECK(numbers >= 35);
}
