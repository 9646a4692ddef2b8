// SPDX-License-Identifier: Apache-2.0
#pragma once
// Writes the heads Portico sends: the request head to an upstream (hop-by-hop headers removed,
// X-Forwarded-* added, the body re-framed) and the response head to a client.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/http/head.h"

struct evbuffer;

namespace portico::http {

// How a body is delimited on the wire we write.
enum class BodyFraming {
    None,           // no body at all
    ContentLength,  // Content-Length: N
    Chunked,        // Transfer-Encoding: chunked (re-framed by us)
    UntilClose,     // response delimited by closing the connection (HTTP/1.0 clients)
};

// RFC 9110 7.6.1: Connection, the fields it names, and the classic hop-by-hop fields.
// `connection_tokens` are the names listed in the message's Connection header(s). A token naming
// an end-to-end field that must reach the peer (Host, Content-Length, Cache-Control, the
// Sec-WebSocket-* handshake fields) is ignored: those are never hop-by-hop.
bool isHopByHop(std::string_view name, const std::vector<std::string_view>& connection_tokens);
// A request's trailer field that goes on in the chunked request to the upstream (the same rule
// for an HTTP/1.1 client's chunked trailer section and an HTTP/2 client's trailing HEADERS, as
// HAProxy forwards them): fields an HTTP/1.1 recipient needs before the body (framing and
// routing: Content-Length, Host; RFC 9110 6.5.1), hop-by-hop ones and those we set in the head
// (X-Forwarded-*, X-Real-IP) are dropped.
bool isForwardedTrailer(std::string_view name);
// A received field the upstream request does not carry as the client sent it: named by the
// message's Connection header (`connection_tokens`, see isHopByHop), set by the route
// (`set_headers`) or replaced by the proxy (`override_headers`). The head writer leaves these
// out of the head, and a request's trailer section must not bring them back.
bool isReplacedField(std::string_view name, const std::vector<std::string_view>& connection_tokens,
                     const std::vector<std::pair<std::string, std::string>>* set_headers,
                     const HeaderList* override_headers);
// Names listed by every Connection header in `headers`.
std::vector<std::string_view> connectionTokens(const HeaderList& headers);

struct UpstreamRequestInfo {
    std::string_view target;        // request-target to send (after strip_prefix)
    std::string_view client_ip;     // for X-Forwarded-For / X-Real-IP
    std::string_view scheme = "http";  // X-Forwarded-Proto
    const std::vector<std::pair<std::string, std::string>>* set_headers = nullptr;
    BodyFraming framing = BodyFraming::None;
    std::uint64_t content_length = 0;  // with ContentLength
    bool upgrade = false;           // keep Upgrade/Connection: upgrade (WebSocket handshake)
    // Headers that replace any received header of the same name (an empty value removes it),
    // e.g. Sec-WebSocket-Protocol filtered by a route's allowed subprotocols.
    const HeaderList* override_headers = nullptr;
};

// Appends "METHOD target HTTP/1.1\r\n...\r\n\r\n" to `out`.
void appendUpstreamRequestHead(std::string& out, const RequestHead& request, const UpstreamRequestInfo& info);

struct ClientResponseInfo {
    BodyFraming framing = BodyFraming::None;
    std::uint64_t content_length = 0;  // with ContentLength (also sent for HEAD/304 as received)
    bool keep_alive = true;            // false: "Connection: close"
    int client_version_minor = 1;      // HTTP/1.0 clients get an explicit keep-alive
    bool upgrade = false;              // a 101: keep Upgrade and Connection: upgrade
};

// Appends the status line and headers for the client to `out`.
void appendClientResponseHead(std::string& out, const ResponseHead& response, const ClientResponseInfo& info);
// The same, written straight into `out`'s free space; returns the bytes added (0 when the buffer
// could not grow).
std::size_t appendClientResponseHead(evbuffer* out, const ResponseHead& response, const ClientResponseInfo& info);

// The same, written into `out` (`capacity` bytes): the head's length, or 0 when it might not
// fit (nothing written then).
std::size_t formatClientResponseHead(char* out, std::size_t capacity, const ResponseHead& response,
                                     const ClientResponseInfo& info);

// Standard reason phrase for a status code ("Not Found"); "Unknown" for codes we never send.
std::string_view reasonPhrase(int status);

}  // namespace portico::http
