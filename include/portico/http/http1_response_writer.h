// SPDX-License-Identifier: Apache-2.0
#pragma once
// A ResponseSink that serializes responses as HTTP/1.1 into an evbuffer: the status line, the
// headers without hop-by-hop fields, and the body framed for the client (Content-Length,
// re-chunked, or delimited by close for an HTTP/1.0 client). The client connection derives
// from it to flush onto its socket; tests and fuzz targets use it as is.

#include <cstdint>

#include "portico/http/header_rewrite.h"
#include "portico/http/response_sink.h"

struct evbuffer;

namespace portico::http {

class Http1ResponseWriter : public ResponseSink {
public:
    explicit Http1ResponseWriter(evbuffer* out = nullptr) : out_(out) {}
    virtual ~Http1ResponseWriter() = default;

    void setOutput(evbuffer* out) { out_ = out; }
    // A new request: counts and framing start over. `keep_alive`: the client connection may
    // carry another request after this response; `client_version_minor`: the request's HTTP/1.x.
    void reset(bool keep_alive, int client_version_minor);
    // The connection will not carry another request (a response refused at the head, an error).
    void setKeepAlive(bool keep_alive) { keep_alive_ = keep_alive; }

    void sendHead(const ResponseHead& head, const ResponseBody& body) override;
    void sendBody(const char* data, std::size_t length) override;
    void sendFile(core::UniqueFd fd, std::uint64_t length) override;
    void endResponse() override;
    bool backlogged() const override { return false; }
    void flush() override {}

    // The last final status sent (0: none yet; 1xx interim heads are not counted).
    int status() const { return status_; }
    // Bytes appended to the output since reset().
    std::uint64_t bytes() const { return bytes_; }
    // The head sent says the connection stays open (false before a final head).
    bool keptAlive() const { return kept_alive_; }

protected:
    // Writes a 101's head (`info` says upgrade): no body follows it, and the caller flushes
    // right after. By default into the output buffer, as every other head; a writer on a
    // socket may send it at once instead. Returns the bytes written.
    virtual std::size_t writeUpgradeHead(const ResponseHead& head, const ClientResponseInfo& info);

    // Asked when a final head is written: may the connection still be kept (the gateway is not
    // stopping, the client did not half-close)? The client connection answers; by default yes.
    virtual bool connectionMayStayOpen() const { return true; }

private:
    void append(const char* data, std::size_t length);

    evbuffer* out_;
    BodyFraming framing_ = BodyFraming::None;
    std::uint64_t bytes_ = 0;
    int status_ = 0;
    int version_minor_ = 1;
    bool keep_alive_ = true;
    bool kept_alive_ = false;
};

}  // namespace portico::http
