// SPDX-License-Identifier: Apache-2.0
#include "portico/config/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>

#include <yaml-cpp/yaml.h>

#include "config/decoder.h"
#include "config/passes.h"
#include "config/yaml_shape.h"
#include "portico/core/escape.h"

namespace portico::config {
namespace {

LoadResult failure(const std::string& file, int line, int column, std::string message) {
    LoadResult result;
    result.errors.push_back(ConfigError{file, line, column, "", std::move(message)});
    return result;
}

std::string syntaxMessage(const YAML::ParserException& e) {
    std::string message = "invalid YAML: " + e.msg;
    // `address: *:8080` reads as an alias named ":8080"; the fix is not obvious from yaml-cpp's
    // words, so say it.
    if (e.msg.find("anchor") != std::string::npos) {
        message += " (a value starting with * must be quoted, e.g. \"*:8080\")";
    }
    return message;
}

LoadResult syntaxError(const std::string& file, const YAML::Mark& mark, std::string message) {
    detail::Decoder decoder(file);
    decoder.error(mark, "", std::move(message));
    LoadResult result;
    result.errors = std::move(decoder.errors());
    return result;
}

LoadResult load(const std::string& text, const std::string& file) {
    if (text.size() > detail::kMaxConfigBytes) return failure(file, 0, 0, "larger than 1 MiB: not a configuration");
    YAML::Node root;
    try {
        // Bounds first (yaml_shape.h): yaml-cpp alone can loop for ever or build a cycle.
        if (auto shape = detail::checkYamlShape(text)) return syntaxError(file, shape->mark, shape->message);
        root = YAML::Load(text);  // the one document checkYamlShape saw
    } catch (const YAML::ParserException& e) {
        return syntaxError(file, e.mark, syntaxMessage(e));
    }
    if (root.IsNull()) return failure(file, 0, 0, "the configuration is empty");
    detail::Decoder decoder(file);
    Config config = detail::decodeConfig(decoder, detail::Item{root, "", root.Mark()});
    detail::validateConfig(decoder, config);
    detail::resolveConfig(config, file);
    config.file = file;

    LoadResult result;
    // Top to bottom reads best in `portico -t`; stable so one line's errors keep their order.
    auto by_position = [](const ConfigError& a, const ConfigError& b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
    };
    std::stable_sort(decoder.errors().begin(), decoder.errors().end(), by_position);
    std::stable_sort(decoder.warnings().begin(), decoder.warnings().end(), by_position);
    result.errors = std::move(decoder.errors());
    for (const ConfigError& warning : decoder.warnings())
        result.warnings.push_back(warning.toString());
    if (result.errors.empty()) result.config = std::make_shared<const Config>(std::move(config));
    return result;
}

}  // namespace

std::string ConfigError::toString() const {
    // Keys and messages quote the file's bytes (a key may hold a NUL or an escape sequence,
    // yaml-cpp quotes the offending character): escaped, they reach the operator's terminal
    // whole and inert.
    std::string text;
    core::appendEscaped(text, file);
    if (line > 0) text += ":" + std::to_string(line) + ":" + std::to_string(column);
    text += ": ";
    if (!key.empty()) {
        core::appendEscaped(text, key);
        text += ": ";
    }
    core::appendEscaped(text, message);
    return text;
}

LoadResult loadConfigString(const std::string& yaml_text, const std::string& file_name) {
    // The contract is "never throws": yaml-cpp reports through exceptions, and allocation can
    // fail; both become an error in the result.
    try {
        return load(yaml_text, file_name);
    } catch (const std::bad_alloc&) {
        return failure(file_name, 0, 0, "out of memory while loading the configuration");
    } catch (const std::exception& e) {
        return failure(file_name, 0, 0, std::string("cannot load the configuration: ") + e.what());
    } catch (...) {
        return failure(file_name, 0, 0, "cannot load the configuration");
    }
}

LoadResult loadConfigFile(const std::string& path) {
    try {
        std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
        if (!file) return failure(path, 0, 0, std::string("cannot open: ") + std::strerror(errno));
        std::string text;
        char buffer[64 * 1024];
        while (true) {
            std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
            text.append(buffer, n);
            // A file this large is a mistake (a log, a binary): stop reading it.
            if (text.size() > detail::kMaxConfigBytes) {
                return failure(path, 0, 0, "larger than 1 MiB: not a configuration");
            }
            if (n < sizeof buffer) break;
        }
        if (std::ferror(file.get())) {
            return failure(path, 0, 0, std::string("cannot read: ") + std::strerror(errno));
        }
        return loadConfigString(text, path);
    } catch (...) {
        return failure(path, 0, 0, "out of memory while reading the configuration");
    }
}

}  // namespace portico::config
