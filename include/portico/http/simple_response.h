// SPDX-License-Identifier: Apache-2.0
#pragma once
// Responses Portico writes itself: errors, built-in handlers, redirects.

#include <cstddef>
#include <string_view>

#include "portico/http/head.h"

struct evbuffer;

namespace portico::http {

// Appends a complete response with `body`; returns the bytes appended. `head_only` (the answer
// to a HEAD request) writes the head alone, with the Content-Length of `body`: RFC 9110 9.3.2,
// a HEAD response has no content, and a body after it would be read as the next response.
std::size_t writeSimpleResponse(evbuffer* out, int status, std::string_view content_type, std::string_view body,
                                KeepAlive keep_alive, const HeaderList& extra = {}, bool head_only = false);
// Appends "<status> <reason>\n" as text/plain; returns the bytes appended.
std::size_t writeErrorResponse(evbuffer* out, int status, KeepAlive keep_alive, const HeaderList& extra = {},
                               bool head_only = false);

}  // namespace portico::http
