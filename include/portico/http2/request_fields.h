// SPDX-License-Identifier: Apache-2.0
#pragma once
// An HTTP/2 request's header fields, as the HPACK decoder hands them over one by one, turned
// into the same http::RequestHead an HTTP/1.1 request has (RFC 9113 8.3): :method and :path
// become the request line, :authority the Host field, several cookie fields one (8.2.3), and
// what HTTP/2 forbids is refused. Pure: no I/O, no nghttp2; unit-tested field by field.

#include <cstddef>
#include <string>
#include <string_view>

#include "portico/http/head.h"

namespace portico::http2 {

class RequestFields {
public:
    enum class Verdict {
        Ok,
        Malformed,  // RFC 9113 8.1.1: a malformed request, answered with a stream error
        TooLarge,   // the field section is over the limit: 431
    };
    static const char* toString(Verdict verdict);

    // `max_bytes` bounds the decoded field section, counted as SETTINGS_MAX_HEADER_LIST_SIZE is
    // (RFC 9113 6.5.2: name + value + 32 per field), so an HPACK bomb stops at the limit.
    explicit RequestFields(std::size_t max_bytes) : max_bytes_(max_bytes) {}

    // One field as received (names are lowercase on the wire; nghttp2 has checked their
    // characters). Pseudo-fields must come first, once each (8.3); connection-specific fields
    // are malformed (8.2.2), TE but "trailers" too. After a verdict other than Ok, the rest is
    // ignored and finish() repeats it.
    Verdict add(std::string_view name, std::string_view value);
    // After the last field: the request head (HTTP/1.1 for what goes upstream). A request
    // without :method, or a non-CONNECT one without :scheme and :path, is malformed; so is a
    // CONNECT without :authority. An extended CONNECT (RFC 8441 4) keeps its :protocol.
    Verdict finish(http::RequestHead& head);
    // A trailer field (RFC 9113 8.1: the HEADERS that ends a request after its DATA; nghttp2
    // has refused pseudo-fields and connection-specific fields in it). The trailer section is
    // bounded as the head is (TooLarge beyond max_bytes, counted apart from the head). The
    // fields http::isForwardedTrailer keeps are kept for trailers().
    Verdict addTrailer(std::string_view name, std::string_view value);
    // The trailer fields to forward (in a chunked upstream request's trailer section).
    const http::HeaderList& trailers() const { return trailers_; }
    Verdict verdict() const { return verdict_; }

    // The :protocol of an extended CONNECT ("websocket"); empty otherwise.
    const std::string& protocol() const { return protocol_; }
    const std::string& scheme() const { return scheme_; }
    std::size_t bytes() const { return bytes_; }
    // Why the verdict was not Ok, for the log.
    const char* error() const { return error_; }

private:
    Verdict refuse(Verdict verdict, const char* why);

    std::size_t max_bytes_;
    std::size_t bytes_ = 0;
    std::size_t trailer_bytes_ = 0;
    http::RequestHead head_;
    http::HeaderList trailers_;
    std::string authority_, scheme_, protocol_, cookie_;
    bool has_method_ = false, has_path_ = false, has_authority_ = false, has_scheme_ = false, has_protocol_ = false;
    bool regular_seen_ = false;
    bool has_cookie_ = false;
    Verdict verdict_ = Verdict::Ok;
    const char* error_ = "";
};

// RFC 8441 5: an extended CONNECT with :protocol websocket, as the HTTP/1.1 upgrade it stands
// for: GET, "Upgrade: websocket", "Connection: Upgrade" and `key` as Sec-WebSocket-Key (a key
// the client sent is dropped: HTTP/2 has none). The version, subprotocols, extensions and
// Origin stay as the client sent them, so that ws::analyzeUpgrade judges both alike.
void asWebSocketUpgrade(http::RequestHead& head, std::string_view key);

}  // namespace portico::http2
