// SPDX-License-Identifier: Apache-2.0
#pragma once
// Built-in HTTP handlers that answer from inside Portico: health and static files.

#include <cstdint>

#include "portico/config/config.h"
#include "portico/http/head.h"

struct evbuffer;

namespace portico::handlers {

struct Reply {
    int status = 200;
    std::uint64_t bytes = 0;  // bytes appended to the output
};

// `handler: health`: 200 "ok", and "backplane: up|down" on a second line when a pub/sub
// backplane is configured (`backplane` non-null). Down is still 200: the node serves its local
// traffic, and a load balancer must not drop every node at once when Redis goes.
Reply serveHealth(evbuffer* out, const http::RequestHead& request, http::KeepAlive keep_alive,
                  const char* backplane = nullptr);

// `handler: static`: a file under route.root (index.html for a directory), with the route's
// prefix removed from the path. GET and HEAD only (405 otherwise); percent-decoding is applied
// and any ".." segment or NUL is refused (404), so nothing outside root is ever served.
// The file is sent with evbuffer_add_file (sendfile), never read into memory.
Reply serveStatic(evbuffer* out, const config::Route& route, const http::RequestHead& request,
                  http::KeepAlive keep_alive);

// Media type for a file name, by extension ("application/octet-stream" when unknown).
const char* mediaTypeFor(std::string_view path);

// Shared by the handlers that serve files (static, dashboard):
// The part of `path` below the route's prefix (an exact route: the last segment).
std::string_view pathBelowRoute(const config::Route& route, std::string_view path);
// GET and HEAD are served; anything else is answered 405 with Allow here (true: answered).
bool refuseUnlessGetOrHead(evbuffer* out, const http::RequestHead& request, http::KeepAlive keep_alive, Reply& reply);
// A directory asked for without its trailing slash: 301 to it, so that relative links resolve
// (`head_only`: the request is HEAD, the 301 has no body).
Reply redirectToSlash(evbuffer* out, std::string_view path, http::KeepAlive keep_alive, bool head_only);

}  // namespace portico::handlers
