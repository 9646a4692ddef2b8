// SPDX-License-Identifier: Apache-2.0
// The WebSocket part of a client connection's life (see client_connection.cpp for the rest):
// a built-in endpoint accepting the upgrade, an upstream's 101 handing both sockets to a tunnel
// or a frame relay, and the session's start and end.

#include <algorithm>
#include <charconv>
#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/core/log.h"
#include "portico/handlers/pubsub.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/simple_response.h"
#include "portico/net/builtin_requests.h"
#include "portico/net/client_connection.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"
#include "portico/observe/metrics.h"
#include "portico/ws/frame_relay.h"
#include "portico/ws/handshake.h"
#include "portico/ws/tunnel.h"
#include "portico/ws/uring_tunnel.h"

namespace portico::net {

bool ClientConnection::admitWebSocket() {
    ws_lease_.reset();
    WebSocketAdmission admission = net::admitWebSocket(worker_, snapshot_->config().limits, http_->client_key);
    if (!admission.admitted) {
        respondError(429, admission.reason, admission.extra);
        return false;
    }
    ws_lease_ = std::move(admission.lease);
    return true;
}

http::HeadAction ClientConnection::acceptWebSocket(const config::Route& route, const ws::UpgradeRequest& upgrade) {
    EndpointAcceptance accepted = acceptEndpoint(worker_, route, http_->parser.request(), upgrade);
    if (!accepted.app) {
        respondError(accepted.status, accepted.reason, accepted.extra);
        return http::HeadAction::Abort;
    }
    http_->pending_app = std::move(accepted.app);
    const std::optional<ws::DeflateAgreement>& deflate = accepted.deflate;
    const std::string_view subprotocol = accepted.subprotocol;
    http_->pending_deflate = deflate ? std::optional<ws::DeflateParams>(deflate->params) : std::nullopt;
    std::string response = ws::buildAcceptResponse(upgrade.key, subprotocol, deflate ? deflate->response : std::string());
    evbuffer_add(client_->output(), response.data(), response.size());
    http_->req.bytes_out += response.size();
    http_->req.status = 101;
    state_ = State::Upgraded;
    return http::HeadAction::Continue;
}

void ClientConnection::onUpgraded(std::unique_ptr<Stream> upstream, std::string extensions) {
    const config::WebSocketSettings& settings = http_->req.route->websocket;
    std::unique_ptr<ws::Session> session;
    if (settings.mode == config::WebSocketMode::Frames) {
        session = std::make_unique<ws::FrameRelay>(static_cast<ws::SessionOwner&>(*this), worker_.loop(), takeClient(),
                                                   std::move(upstream), settings, ws::allowedRsvBits(extensions),
                                                   makeTracer());
    } else if (uring::Ring* ring = plainTunnelRing(*upstream)) {
        session = std::make_unique<ws::UringTunnel>(static_cast<ws::SessionOwner&>(*this), worker_.loop(), *ring,
                                                    takeClient(), std::move(upstream), settings);
    } else {
        session = std::make_unique<ws::Tunnel>(static_cast<ws::SessionOwner&>(*this), worker_.loop(), takeClient(),
                                               std::move(upstream), settings);
    }
    retireExchange();
    startSession(std::move(session));
}

// The worker's ring when this tunnel may use it (config `io_uring`): both sides plain TCP. A TLS
// side stays on epoll (OpenSSL reads and writes its socket itself).
uring::Ring* ClientConnection::plainTunnelRing(const Stream& upstream) {
    if (client_->isTls() || upstream.isTls()) return nullptr;
    return worker_.ioRing();
}

std::unique_ptr<ws::FrameTracer> ClientConnection::makeTracer() {
    return snapshot_->makeTracer(*http_->req.route, client_ip_);
}

void ClientConnection::startSession(std::unique_ptr<ws::Session> session) {
    state_ = State::Upgraded;
    logAccess();  // the handshake's line; the session's end is logged at debug level
    session_ = std::move(session);
    // Nothing more to parse, and the handshake's head is logged: an idle WebSocket keeps no HTTP
    // phase (the parser with llhttp's state, the request, the response writer, the idle
    // exchange). A bridge copied what it forwards of the head when it was made (its CLOSE and
    // DISCONNECT requests carry that copy) and has an exchange of its own.
    ws_route_ = http_->req.route;
    worker_.httpPhases().give(std::move(http_));
    ws_stats_ = &snapshot_->routeStats(*ws_route_);
    ws_stats_->ws_open.add();
    session_->start();
    if (draining_ && state_ == State::Upgraded) session_->goAway();
}

void ClientConnection::foldSessionCounts() {
    if (session_ && ws_stats_) addSessionCounts(session_->counts());
}

// Adds what went through since the last call: the route's counters move while sessions run.
void ClientConnection::addSessionCounts(const ws::SessionCounts& counts) {
    ws_stats_->ws_messages_in.add(counts.messages_in - counted_.messages_in);
    ws_stats_->ws_messages_out.add(counts.messages_out - counted_.messages_out);
    ws_stats_->ws_bytes_in.add(counts.bytes_in - counted_.bytes_in);
    ws_stats_->ws_bytes_out.add(counts.bytes_out - counted_.bytes_out);
    counted_ = counts;
}

// `websocket: {mode: http}`: no 101 yet. The bridge asks the app with an OPEN request; its
// answer comes back as onBridgeAccepted or onBridgeRefused. Until then the client is not read
// (what it sends after its handshake waits in the input for the session).
http::HeadAction ClientConnection::startBridge(const config::Route& route, const ws::UpgradeRequest& upgrade) {
    proxy::UpstreamGroup* group = snapshot_->upstream(route);
    if (!group) {
        respondError(502, "no such upstream");
        return http::HeadAction::Abort;
    }
    http_->pending_deflate.reset();
    http_->pending_deflate_response.clear();
    if (!upgrade.extensions.empty()) {
        if (auto deflate = ws::negotiateDeflate(upgrade.extensions, route.websocket.permessage_deflate)) {
            http_->pending_deflate = deflate->params;
            http_->pending_deflate_response = std::move(deflate->response);
        }
    }
    bridge::BridgeClient client;
    client.handshake = &http_->parser.request();
    client.client_ip = client_ip_;
    client.scheme = listener_->tls ? "https" : "http";
    client.client_hash = client_hash_;
    bridge_ = std::make_unique<bridge::Bridge>(static_cast<bridge::BridgeOwner&>(*this), worker_.loop(), *group, route, client,
                                               worker_.pubsub(), handlers::gripChannels(snapshot_->config()),
                                               snapshot_->routeStats(route).bridge);
    http_->req.upstream_name = route.upstream;
    state_ = State::Proxying;
    bridge_->start();  // from the loop: the answer cannot come back inside this call
    return http::HeadAction::Continue;
}

void ClientConnection::onBridgeAccepted(std::string_view subprotocol) {
    const ws::UpgradeRequest upgrade = ws::analyzeUpgrade(http_->parser.request());
    // RFC 6455 4.1: the client fails a handshake naming a subprotocol it did not offer.
    std::string_view chosen;
    for (std::string_view offered : upgrade.subprotocols)
        if (offered == subprotocol) chosen = offered;
    std::string response = ws::buildAcceptResponse(upgrade.key, chosen, http_->pending_deflate_response);
    evbuffer_add(client_->output(), response.data(), response.size());
    http_->req.bytes_out += response.size();
    http_->req.status = 101;
    client_->writeAtOnce();  // as for the other built-ins (processInput)
    auto session = std::make_unique<handlers::EndpointSession>(static_cast<ws::SessionOwner&>(*this), worker_.loop(),
                                                               takeClient(), http_->req.route->websocket,
                                                               http_->pending_deflate, bridge_->makeApp(), makeTracer());
    startSession(std::move(session));
}

void ClientConnection::onBridgeRefused(int status, std::string_view content_type, std::string_view body) {
    if (content_type.empty() && body.empty()) {
        respondError(status, "WebSocket not accepted by the app");
        return;
    }
    // The app's own refusal (a 403 with its page): the client gets it as it was.
    ws_lease_.reset();
    state_ = State::Responding;
    http_->response.setKeepAlive(false);
    http::respond(http_->response, status, content_type.empty() ? "text/plain" : content_type, body);
    logAccess();
    closeAfterFlush();
}

void ClientConnection::onBridgeFinished() {
    if (session_end_reason_) finish(session_end_reason_);
}

void ClientConnection::onSessionEnd(const char* reason, const ws::SessionCounts& counts) {
    ws_lease_.reset();
    // The counts first: whoever reads the session as closed (open down by one) reads all of them.
    addSessionCounts(counts);
    ws_stats_->ws_open.sub();
    if (counts.limit == ws::SessionLimit::Rate) {
        ws_stats_->ws_closed_rate.add();
        LOG_WARN("client %s: WebSocket on route %s closed 1008: %s", client_ip_.c_str(),
                 observe::routeKey(ws_route_->host, ws_route_->path, ws_route_->exact_path).c_str(), reason);
    } else if (counts.limit == ws::SessionLimit::Lifetime) {
        ws_stats_->ws_closed_lifetime.add();
    } else if (counts.limit == ws::SessionLimit::Inflating) {
        ws_stats_->ws_closed_inflating.add();
    }
    const std::uint64_t from_client = counts.bytes_in, to_client = counts.bytes_out;
    LOG_DEBUG("client %s: WebSocket closed (%s), %llu bytes in, %llu bytes out", client_ip_.c_str(), reason,
              static_cast<unsigned long long>(from_client), static_cast<unsigned long long>(to_client));
    if (bridge_ && bridge_->busy()) {
        // The app still gets its CLOSE or DISCONNECT: the connection ends with that request.
        session_end_reason_ = reason;
        return;
    }
    finish(reason);
}

}  // namespace portico::net
