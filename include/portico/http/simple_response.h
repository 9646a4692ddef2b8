// SPDX-License-Identifier: Apache-2.0
#pragma once
// Responses Portico writes itself: errors, built-in handlers, redirects.

#include <cstddef>
#include <string_view>

#include "portico/http/head.h"

struct evbuffer;

namespace portico::http {

class ResponseSink;

// The head of a response Portico makes itself: "Server: portico", the Content-Type when not
// empty, then `extra` (Location, Allow, Retry-After, ...). The sink adds the framing.
ResponseHead simpleResponseHead(int status, std::string_view content_type, const HeaderList& extra = {});
// A complete response with `body`, ended. `head_only` (the answer to a HEAD request) sends the
// head alone, with the Content-Length of `body`: RFC 9110 9.3.2, a HEAD response has no content,
// and a body after it would be read as the next response.
void respond(ResponseSink& sink, int status, std::string_view content_type, std::string_view body,
             const HeaderList& extra = {}, bool head_only = false);
// "<status> <reason>\n" as text/plain.
void respondError(ResponseSink& sink, int status, const HeaderList& extra = {}, bool head_only = false);

// The same as HTTP/1.1 bytes appended to `out` (answers written before or without a request:
// the accept path's 429, tests); return the bytes appended.
std::size_t writeSimpleResponse(evbuffer* out, int status, std::string_view content_type, std::string_view body,
                                KeepAlive keep_alive, const HeaderList& extra = {}, bool head_only = false);
std::size_t writeErrorResponse(evbuffer* out, int status, KeepAlive keep_alive, const HeaderList& extra = {},
                               bool head_only = false);

}  // namespace portico::http
