// SPDX-License-Identifier: Apache-2.0
#pragma once
// The plain-HTTP requests Portico answers itself, for any client side (an HTTP/1.1 connection
// or an HTTP/2 stream): the handler is chosen by the route, the answer goes to a ResponseSink.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "portico/config/config.h"
#include "portico/handlers/pubsub.h"
#include "portico/http/head.h"
#include "portico/http/response_sink.h"
#include "portico/net/ip_limits.h"
#include "portico/ws/handshake.h"
#include "portico/ws/permessage_deflate.h"

namespace portico::handlers {
class EndpointApp;
}

namespace portico::net {

class Worker;

// Answers at once a request to a route with a built-in handler: health, static, dashboard,
// metrics, status (a WebSocket-only handler such as echo: 404). Returns false, answering
// nothing, for pubsub and publish routes: the caller reads the body and calls
// servePubSubRequest.
bool serveBuiltin(Worker& worker, const config::Route& route, const http::RequestHead& request, http::ResponseSink& out);

// A POST to a pubsub route (publish_token) or to the publish API (its JWT or token): decided at
// the head, so that an unauthenticated client cannot make us hold its body.
bool publishAuthorized(const config::Route& route, const http::RequestHead& request);

// A pubsub request (GET/HEAD: the channel's info; POST: a publish of `body`) or a publish API
// call. `done` is called once, on this worker's thread, before this returns or later (a Redis
// backplane); the caller guards it against its own end.
void servePubSubRequest(Worker& worker, const config::Config& config, const config::Route& route,
                        const http::RequestHead& request, std::string body, handlers::PubSubAnswerDone done);

// A WebSocket to a built-in endpoint (echo, pubsub), HTTP/1.1 upgrade or HTTP/2 extended
// CONNECT alike: the app, the subprotocol and the permessage-deflate agreement; or, with `app`
// null, the refusal (`status`, `reason`, `extra` fields) to answer.
struct EndpointAcceptance {
    std::unique_ptr<handlers::EndpointApp> app;
    std::string_view subprotocol;  // chosen from the client's offer ("" for none)
    std::optional<ws::DeflateAgreement> deflate;
    int status = 0;
    const char* reason = "";
    http::HeaderList extra;
};
// A WebSocket from `client_ip` under the per-IP limits (per_ip_websockets, per_ip_upgrade_rate):
// admitted with the lease to hold while it lasts, or refused with the 429's reason and fields
// (Retry-After for a rate). Refusals are counted and logged by the worker.
struct WebSocketAdmission {
    bool admitted = true;
    IpLimits::Lease lease;
    const char* reason = "";
    http::HeaderList extra;
};
WebSocketAdmission admitWebSocket(Worker& worker, const config::Limits& limits, std::string_view client_ip);
// The same for a client whose address is at hand as a key (nullopt: not counted, admitted).
WebSocketAdmission admitWebSocket(Worker& worker, const config::Limits& limits, const std::optional<IpKey>& key);

// `redirect_https: PORT` on a listener: the Location of the 308 that every request there gets,
// https://NAME[:PORT]TARGET, NAME being `host` (a validated Host or :authority) without its port.
std::string httpsRedirectLocation(std::string_view host, std::uint16_t port, std::string_view target);

// The route lists no websocket.origins, or `origin` (case-insensitive) is one of them.
bool originAllowed(const config::Route& route, std::string_view origin);

EndpointAcceptance acceptEndpoint(Worker& worker, const config::Route& route, const http::RequestHead& request,
                                  const ws::UpgradeRequest& upgrade);

}  // namespace portico::net
