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
}

namespace portico::proxy {

class ExchangeOwner {
public:
    virtual net::Stream& clientStream() = 0;
    // The client asked for keep-alive and the gateway is not stopping.
    virtual bool clientKeepAlive() const = 0;
    // The response head went to the client (for the access log).
    virtual void onResponseStatus(int status) = 0;
    // Bytes written to the client (for the access log).
    virtual void onBytesToClient(std::size_t bytes) = 0;
    // The response is complete; `keep_alive` says whether the client connection can be reused.
    // The exchange does nothing after this call.
    virtual void onExchangeComplete(bool keep_alive) = 0;
    // The exchange failed. `status` (502/504) is to be sent when no response byte was sent yet;
    // otherwise the client connection is closed. The exchange does nothing after this call.
    virtual void onExchangeFailed(int status, const char* reason) = 0;
    // The upstream accepted a WebSocket upgrade: its 101 went to the client, and the upstream
    // connection (with any bytes that followed the 101 in its input) is the owner's now.
    // `extensions` is the upstream's Sec-WebSocket-Extensions. The exchange does nothing after.
    virtual void onUpgraded(std::unique_ptr<net::Stream> upstream, std::string extensions) = 0;
    // The upstream took the request body bytes it had queued: reading the client may resume.
    virtual void onUpstreamDrained() = 0;

    // An owner that reads the response itself instead of relaying it to a client (the
    // WebSocket-over-HTTP bridge) returns true: the exchange then hands it the final response's
    // head and body through the two calls below, never touches clientStream(), and reports the
    // end through onExchangeComplete/onExchangeFailed as usual. Returning false from either call
    // fails the exchange (onExchangeFailed with 502).
    virtual bool consumesResponse() const { return false; }
    virtual bool onResponseHead(const http::ResponseHead& /*head*/) { return true; }
    virtual bool onResponseBody(const char* /*data*/, std::size_t /*length*/) { return true; }

protected:
    ~ExchangeOwner() = default;
};

}  // namespace portico::proxy
