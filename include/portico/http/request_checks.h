// SPDX-License-Identifier: Apache-2.0
#pragma once
// Checks on a request's head that decide whether it may be routed at all: the Host value and the
// path of the request-target. Pure functions (no I/O, no allocation beyond the output string),
// shared by the client connection, the unit tests and the HTTP fuzz target.

#include <string>
#include <string_view>

#include "portico/http/head.h"

namespace portico::http {

// RFC 9110 7.2 / RFC 3986 3.2.2-3.2.3: `value` is `host [ ":" port ]` where host is an
// IP-literal ("[v6]"; IPvFuture is refused), an IPv4 address or a reg-name of unreserved
// characters, sub-delims and valid %XX escapes, and port is at most 5 digits (<= 65535; an empty
// port after ':' is allowed, RFC 3986 3.2.3). Also refused, as nginx does: an empty host, "..",
// a leading '.'. True when the value is acceptable. An empty `value` is false.
bool isValidHost(std::string_view value);

// Whether `method` is one an HTTP/1.1 request line may carry to us: llhttp's list (GET, POST,
// the WebDAV ones, PATCH, ...), case-sensitive as RFC 9110 9.1 says. HTTP/2's :method is held
// to the same list, so that both front ends accept the same requests.
bool isKnownMethod(std::string_view method);

enum class PathVerdict {
    Ok,
    NotAbsolute,        // does not start with '/'
    BadEscape,          // '%' not followed by two hex digits
    EncodedNul,         // %00: never a valid byte in a path we route
    AboveRoot,          // ".." would climb above "/"
    EncodedSeparator,   // %2F or %5C (or '\') inside a segment that would become a dot segment
    Fragment,           // '#': not part of a request-target (RFC 9112 3.2)
};
const char* toString(PathVerdict verdict);

// Normalizes the path of an origin-form request-target (no query) so that the route we match is
// the route the upstream sees, and writes it to `out`:
//  - dot segments are removed as RFC 3986 5.2.4 says, where a segment counts as "." or ".." also
//    when its dots are percent-encoded (%2e / %2E), since many servers decode before resolving;
//  - runs of '/' are merged into one (nginx's merge_slashes);
//  - every other byte, including other %XX escapes, is kept as received.
// Refused (out is unspecified): see PathVerdict. An encoded slash (%2F) or backslash ('\', %5C)
// is kept as data, except in a segment that, once those are read as separators, would hold a
// "." or ".." segment ("..%2Fadmin"): a server that decodes them would route it elsewhere.
PathVerdict normalizePath(std::string_view path, std::string& out);

// What checkRequestHead decided: status 0 when the request may be routed, else the status to
// answer (and close) with and a static reason for the log.
struct RequestVerdict {
    int status = 0;
    const char* reason = "";
    bool ok() const { return status == 0; }
};

// Validates `request` and rewrites it into the form Portico routes and forwards:
//  - HTTP/1.x only: 505 for another major version (RFC 9110 15.6.6); CONNECT is 405;
//  - the request-target is origin-form, "*" for OPTIONS, or absolute-form, whose authority
//    replaces Host and which becomes origin-form (RFC 9112 3.2.2); anything else is 400, as is a
//    fragment ('#');
//  - exactly one Host, valid by isValidHost (400 otherwise, RFC 9112 3.2). An HTTP/1.0 request
//    without Host gets `fallback_host` (the address the client connected to), so that every
//    request sent upstream carries one; "" there means 400;
//  - the path is normalized by normalizePath (400 when it refuses); the query is kept verbatim.
RequestVerdict checkRequestHead(RequestHead& request, std::string_view fallback_host);

}  // namespace portico::http
