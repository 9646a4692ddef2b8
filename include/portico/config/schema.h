// SPDX-License-Identifier: Apache-2.0
#pragma once
// The JSON Schema of portico.yaml, made from the loader's own tables of known keys (their types,
// defaults and descriptions), so that an editor checks and completes exactly what the loader
// accepts. `portico --schema` prints it; the Debian package installs it as
// /usr/share/portico/portico.schema.json.

#include <string>

namespace portico::config {

// JSON Schema draft-07 (what Debian 12's python3-jsonschema and yaml-language-server validate),
// indented, ending with a newline. Mappings the loader checks key by key have
// `additionalProperties: false`; sizes, durations and rates are strings with the pattern of
// their notation (units.h) or plain integers where YAML would read them as numbers.
std::string configSchemaJson();

}  // namespace portico::config
