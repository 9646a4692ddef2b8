// SPDX-License-Identifier: Apache-2.0
#include "portico/handlers/dashboard.h"

#include <string>
#include <string_view>

#include "handlers/dashboard_assets.h"
#include "portico/http/simple_response.h"

namespace portico::handlers {

namespace {

// In index.html, replaced by route.status_url. The loader admits no character there that is
// special in an HTML attribute (", ', <, >, &), so it goes in as it is.
constexpr std::string_view kStatusUrlMark = "@STATUS_URL@";

const EmbeddedFile* findAsset(std::string_view name) {
    for (const EmbeddedFile& file : dashboardAssets())
        if (file.name == name) return &file;
    return nullptr;
}

}  // namespace

void serveDashboard(http::ResponseSink& out, const config::Route& route, const http::RequestHead& request) {
    if (refuseUnlessGetOrHead(out, request)) return;
    const bool head_only = request.method == "HEAD";
    const std::string_view path = request.path();
    std::string_view name = pathBelowRoute(route, path);
    if (name.empty() && !path.ends_with('/')) return redirectToSlash(out, path, head_only);
    while (name.starts_with('/')) name.remove_prefix(1);
    if (name.empty()) name = "index.html";

    const EmbeddedFile* file = findAsset(name);
    if (!file) return http::respondError(out, 404, {}, head_only);
    std::string body(file->bytes);
    if (name == "index.html") {
        for (auto at = body.find(kStatusUrlMark); at != std::string::npos;
             at = body.find(kStatusUrlMark, at + route.status_url.size()))
            body.replace(at, kStatusUrlMark.size(), route.status_url);
    }
    // The files change with the binary: a browser revalidates rather than keeping an old page.
    // The page loads nothing but its own files and the status JSON from this origin.
    const http::HeaderList headers{{"Cache-Control", "no-cache"},
                                   {"X-Content-Type-Options", "nosniff"},
                                   {"Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"}};
    http::respond(out, 200, mediaTypeFor(name), body, headers, head_only);
}

}  // namespace portico::handlers
