// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/handlers: the dashboard's files, embedded at build time by
// cmake/embed_files.cmake from src/handlers/dashboard/ (the generated source defines
// dashboardAssets()).

#include <span>
#include <string_view>

namespace portico::handlers {

struct EmbeddedFile {
    std::string_view name;   // file name, e.g. "dashboard.js"
    std::string_view bytes;  // its content; static storage
};

std::span<const EmbeddedFile> dashboardAssets();

}  // namespace portico::handlers
