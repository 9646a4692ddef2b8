// SPDX-License-Identifier: Apache-2.0
#pragma once
// `handler: dashboard`: a live status page (HTML, CSS, JavaScript embedded in the binary) that
// polls the `handler: status` JSON at route.status_url once a second and draws it.

#include "portico/config/config.h"
#include "portico/handlers/http_handlers.h"
#include "portico/http/head.h"

namespace portico::handlers {

// Answers a request below the route's prefix: "" or "index.html" is the page (with
// route.status_url filled in), "dashboard.css" and "dashboard.js" its parts, anything else 404.
// The prefix itself without its trailing slash is redirected (301) to it. GET and HEAD only.
void serveDashboard(http::ResponseSink& out, const config::Route& route, const http::RequestHead& request);

}  // namespace portico::handlers
