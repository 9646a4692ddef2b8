// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/config: the three passes of loading, in order (loader.cpp runs them).

#include <string>

#include "config/decoder.h"
#include "portico/config/config.h"

namespace portico::config::detail {

// Pass 1 (sections.cpp, each section's table in its sections_*.cpp): the document's root mapping
// -> Config, through one table of known keys per section. Type errors and unknown keys go to
// `decoder`; every list element still yields a struct (with defaults) so that indices match the
// key paths in pass 2.
Config decodeConfig(Decoder& decoder, const Item& root);

// Pass 2 (validate.cpp): required keys, cross references and combinations that one key alone
// cannot check (undefined upstream, duplicate listener, upstream and handler on one route...).
// Errors and warnings go to `decoder`.
void validateConfig(Decoder& decoder, const Config& config);

// Pass 3 (resolve.cpp): relative paths (static roots, access log file, TLS files) become absolute
// against the folder of `file` (the configuration's path as given).
void resolveConfig(Config& config, const std::string& file);

}  // namespace portico::config::detail
