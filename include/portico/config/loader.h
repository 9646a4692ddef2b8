// SPDX-License-Identifier: Apache-2.0
#pragma once
// Reads portico.yaml into a Config: decode (types, known keys), validate (cross references),
// then resolve (relative paths against the file's folder, defaults). Every error is collected.

#include <string>
#include <vector>

#include "portico/config/config.h"

namespace portico::config {

struct ConfigError {
    std::string file;
    int line = 0;
    int column = 0;
    std::string key;      // key path, e.g. "routes[1].upstream"; the file's bytes as they are
    std::string message;  // e.g. "no upstream named \"ap\""; may quote the file's bytes
    // "portico.yaml:14:15: routes[1].upstream: no upstream named \"ap\"", with control bytes,
    // bytes from 0x80 and backslashes escaped as \xHH (a NUL in a key shows as \x00).
    std::string toString() const;
};

struct LoadResult {
    std::shared_ptr<const Config> config;  // set only when errors is empty
    std::vector<ConfigError> errors;
    std::vector<std::string> warnings;     // e.g. verify: false on an upstream
    bool ok() const { return errors.empty() && config != nullptr; }
};

// Reads and validates the file at `path`. Never throws.
LoadResult loadConfigFile(const std::string& path);
// Same from text; `file_name` is used in messages and to resolve relative paths.
LoadResult loadConfigString(const std::string& yaml_text, const std::string& file_name);

}  // namespace portico::config
