// SPDX-License-Identifier: Apache-2.0
#pragma once
// The client side of one request: where a response goes, whatever carries it. An HTTP/1.1
// connection (http::Http1ResponseWriter, serialized onto the socket) and an HTTP/2 stream
// (http2::Stream, frames of a shared connection) implement it, so that the upstream exchange
// (proxy::HttpExchange) and the built-in handlers are written once (h2o's h2o_ostream_t,
// Envoy's StreamEncoder).

#include <cstdint>
#include <optional>

#include "portico/core/handles.h"
#include "portico/http/head.h"

namespace portico::http {

// What follows a response head, as its producer knows it.
struct ResponseBody {
    bool present = true;  // false: the head alone (HEAD, 204, 304, an interim 1xx, a 101)
    // The content's length when known: sent as Content-Length. With `present` false it describes
    // the body a GET would have had (HEAD, 304: RFC 9110 8.6). Unknown and present: the sink
    // delimits it (HTTP/1.1: chunked; HTTP/1.0: by closing; HTTP/2: END_STREAM).
    std::optional<std::uint64_t> length;
};

class ResponseSink {
public:
    // A response head. 1xx (but 101) is interim and a final head follows; 101 accepts a
    // WebSocket upgrade. The headers are the producer's: Connection and the fields it names,
    // the other hop-by-hop fields, Content-Length and Transfer-Encoding are the sink's to write
    // (or, for HTTP/2, to leave out).
    virtual void sendHead(const ResponseHead& head, const ResponseBody& body) = 0;
    // Body bytes, copied.
    virtual void sendBody(const char* data, std::size_t length) = 0;
    // `length` bytes of an open regular file from its start (static files): takes the
    // descriptor; HTTP/1.1 sends it with sendfile(2).
    virtual void sendFile(core::UniqueFd fd, std::uint64_t length) = 0;
    // The response is complete (HTTP/1.1 chunked: the last chunk; HTTP/2: END_STREAM).
    virtual void endResponse() = 0;
    // More than the high watermark waits to reach the client: a producer stops reading its
    // source until its owner says the client drained (HttpExchange::onClientDrained).
    virtual bool backlogged() const = 0;
    // Sends what is queued as far as the client takes it now.
    virtual void flush() = 0;

protected:
    ~ResponseSink() = default;
};

}  // namespace portico::http
