// SPDX-License-Identifier: Apache-2.0
#pragma once
// What an HTTP exchange needs from the client connection that owns it.

#include <cstddef>
#include <memory>
#include <string>

namespace portico::net {
class Stream;
}
namespace portico::http {
struct ResponseHead;
class ResponseSink;
}

namespace portico::proxy {

class ExchangeOwner {
public:
    // Where the response goes: the client side of the request (an HTTP/1.1 connection or an
    // HTTP/2 stream). Its sendHead sees the status (101 for an accepted upgrade), its byte
    // counts are the access log's. Never called when consumesResponse() is true.
    virtual http::ResponseSink& downstream() = 0;
    // The response is complete. `reusable` is false when the client side must not carry another
    // request whatever it would like (a declined WebSocket handshake: the client may send frames
    // anyway). The exchange does nothing after this call.
    virtual void onExchangeComplete(bool reusable) = 0;
    // The exchange failed. `status` (502/504) is to be sent when no response byte was sent yet;
    // otherwise the client side is reset. The exchange does nothing after this call.
    virtual void onExchangeFailed(int status, const char* reason) = 0;
    // The upstream accepted a WebSocket upgrade: its 101 went to the client, and the upstream
    // connection (with any bytes that followed the 101 in its input) is the owner's now.
    // `extensions` is the upstream's Sec-WebSocket-Extensions. The exchange does nothing after.
    virtual void onUpgraded(std::unique_ptr<net::Stream> upstream, std::string extensions) = 0;
    // The upstream took the request body bytes it had queued: reading the client may resume.
    virtual void onUpstreamDrained() = 0;

    // An owner that reads the response itself instead of relaying it to a client (the
    // WebSocket-over-HTTP bridge) returns true: the exchange then hands it the final response's
    // head and body through the two calls below, never touches downstream(), and reports the
    // end through onExchangeComplete/onExchangeFailed as usual. Returning false from either call
    // fails the exchange (onExchangeFailed with 502).
    virtual bool consumesResponse() const { return false; }
    virtual bool onResponseHead(const http::ResponseHead& /*head*/) { return true; }
    virtual bool onResponseBody(const char* /*data*/, std::size_t /*length*/) { return true; }

protected:
    ~ExchangeOwner() = default;
};

}  // namespace portico::proxy
