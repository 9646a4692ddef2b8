// SPDX-License-Identifier: Apache-2.0
#include "portico/handlers/http_handlers.h"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "portico/core/handles.h"
#include "portico/http/header_rewrite.h"
#include "portico/http/simple_response.h"

namespace portico::handlers {

void serveHealth(http::ResponseSink& out, const http::RequestHead& request, const char* backplane,
                 const std::string& down_shards) {
    std::string body = "ok\n";
    if (backplane) body.append("backplane: ").append(backplane).append("\n");
    if (!down_shards.empty()) body.append("backplane_down: ").append(down_shards).append("\n");
    http::respond(out, 200, "text/plain", body, {}, request.method == "HEAD");
}

const char* mediaTypeFor(std::string_view path) {
    struct Entry {
        std::string_view extension;
        const char* type;
    };
    static constexpr Entry kTypes[] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"}, {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"}, {".svg", "image/svg+xml"},
        {".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
        {".gif", "image/gif"}, {".ico", "image/x-icon"}, {".wasm", "application/wasm"},
        {".webp", "image/webp"}, {".woff2", "font/woff2"}, {".xml", "application/xml"},
    };
    auto dot = path.rfind('.');
    if (dot != std::string_view::npos) {
        std::string_view ext = path.substr(dot);
        for (const auto& e : kTypes)
            if (http::equalsIgnoreCase(ext, e.extension)) return e.type;
    }
    return "application/octet-stream";
}

namespace {

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decodes `path` and checks every segment; false for "..", NUL or a bad escape.
bool decodeSafePath(std::string_view path, std::string& decoded) {
    decoded.clear();
    for (std::size_t i = 0; i < path.size(); ++i) {
        char c = path[i];
        if (c == '%') {
            if (i + 2 >= path.size()) return false;
            int hi = hexValue(path[i + 1]), lo = hexValue(path[i + 2]);
            if (hi < 0 || lo < 0) return false;
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || c == '\\') return false;
        decoded.push_back(c);
    }
    std::string_view rest = decoded;
    while (!rest.empty()) {
        auto slash = rest.find('/');
        std::string_view segment = rest.substr(0, slash);
        if (segment == "..") return false;
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    return true;
}

}  // namespace

std::string_view pathBelowRoute(const config::Route& route, std::string_view path) {
    return route.exact_path ? path.substr(path.rfind('/') + 1) : path.substr(std::min(route.path.size(), path.size()));
}

bool refuseUnlessGetOrHead(http::ResponseSink& out, const http::RequestHead& request) {
    if (request.method == "GET" || request.method == "HEAD") return false;
    http::respondError(out, 405, {{"Allow", "GET, HEAD"}});
    return true;
}

void redirectToSlash(http::ResponseSink& out, std::string_view path, bool head_only) {
    http::respond(out, 301, "text/plain", "301 Moved Permanently\n", {{"Location", std::string(path) + "/"}}, head_only);
}

void serveStatic(http::ResponseSink& out, const config::Route& route, const http::RequestHead& request) {
    if (refuseUnlessGetOrHead(out, request)) return;
    const bool head_only = request.method == "HEAD";
    std::string_view path = request.path();
    // The part below the route's prefix, as a path relative to root.
    std::string_view below = pathBelowRoute(route, path);
    std::string relative;
    if (!decodeSafePath(below, relative)) return http::respondError(out, 404, {}, head_only);
    std::string file = route.root;
    if (file.empty() || file.back() != '/') file.push_back('/');
    while (!relative.empty() && relative.front() == '/') relative.erase(0, 1);
    file += relative;

    core::UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st{};
    if (fd && fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) {
        if (!path.empty() && path.back() != '/') return redirectToSlash(out, path, head_only);
        if (file.back() != '/') file.push_back('/');
        file += "index.html";
        fd = core::UniqueFd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (fd && fstat(fd.get(), &st) != 0) fd = core::UniqueFd();
    }
    if (!fd || !S_ISREG(st.st_mode)) {
        int status = (errno == EACCES) ? 403 : 404;
        return http::respondError(out, status, {}, head_only);
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    out.sendHead(http::simpleResponseHead(200, mediaTypeFor(file)), http::ResponseBody{!head_only, size});
    if (!head_only && size > 0) out.sendFile(std::move(fd), size);
    out.endResponse();
}

}  // namespace portico::handlers
