// SPDX-License-Identifier: Apache-2.0
#pragma once
// Built-in HTTP handlers that answer from inside Portico: health and static files.

#include <cstdint>
#include <string>

#include "portico/config/config.h"
#include "portico/http/head.h"
#include "portico/http/response_sink.h"

namespace portico::handlers {

// Each handler writes one complete response to `out` (the client side of the request, HTTP/1.1
// or HTTP/2 alike) and ends it.

// `handler: health`: 200 "ok", and "backplane: up|partial|down" on a second line when a pub/sub
// backplane is configured (`backplane` non-null), then "backplane_down: <host:port> ..." when
// `down_shards` is not empty (partial: those Redis Cluster masters are down). Down is still 200:
// the node serves its local traffic, and a load balancer must not drop every node at once when
// Redis goes.
void serveHealth(http::ResponseSink& out, const http::RequestHead& request, const char* backplane = nullptr,
                 const std::string& down_shards = {});

// `handler: static`: a file under route.root (index.html for a directory), with the route's
// prefix removed from the path. GET and HEAD only (405 otherwise); percent-decoding is applied
// and any ".." segment or NUL is refused (404), so nothing outside root is ever served.
// The file goes to ResponseSink::sendFile (sendfile on HTTP/1.1), never read whole into memory.
void serveStatic(http::ResponseSink& out, const config::Route& route, const http::RequestHead& request);

// Media type for a file name, by extension ("application/octet-stream" when unknown).
const char* mediaTypeFor(std::string_view path);

// Shared by the handlers that serve files (static, dashboard):
// The part of `path` below the route's prefix (an exact route: the last segment).
std::string_view pathBelowRoute(const config::Route& route, std::string_view path);
// GET and HEAD are served; anything else is answered 405 with Allow here (true: answered).
bool refuseUnlessGetOrHead(http::ResponseSink& out, const http::RequestHead& request);
// A directory asked for without its trailing slash: 301 to it, so that relative links resolve
// (`head_only`: the request is HEAD, the 301 has no body).
void redirectToSlash(http::ResponseSink& out, std::string_view path, bool head_only);

}  // namespace portico::handlers
