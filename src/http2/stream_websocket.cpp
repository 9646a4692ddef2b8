// SPDX-License-Identifier: Apache-2.0
// RFC 8441 on an HTTP/2 stream (see stream.h): an extended CONNECT routed to a built-in
// endpoint or to an upstream over an HTTP/1.1 upgrade, then the WebSocket session on the
// stream's DATA frames (its client side a StreamBytes).

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <vector>

#include "http2/stream.h"
#include "http2/stream_bytes.h"
#include "portico/core/log.h"
#include "portico/handlers/pubsub.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/simple_response.h"
#include "portico/http2/connection.h"
#include "portico/net/builtin_requests.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"
#include "portico/proxy/http_exchange.h"
#include "portico/ws/frame_relay.h"
#include "portico/ws/handshake.h"
#include "portico/ws/permessage_deflate.h"
#include "portico/ws/tunnel.h"

namespace portico::http2 {

void Stream::startWebSocket(const config::Route& route) {
    const ws::UpgradeRequest upgrade = ws::analyzeUpgrade(head_);
    if (upgrade.kind != ws::UpgradeKind::WebSocket) {
        // RFC 6455 4.4: a version we do not speak gets 426 and the versions we do.
        respondError(upgrade.status ? upgrade.status : 400, "invalid WebSocket handshake",
                     upgrade.status == 426 ? http::HeaderList{{"Sec-WebSocket-Version", "13"}} : http::HeaderList{});
        return;
    }
    const bool builtin = route.handler == config::HandlerKind::Echo || route.handler == config::HandlerKind::PubSub;
    if (!builtin && route.upstream.empty()) {
        // A route that takes no WebSockets (static, health, ...): an HTTP/1.1 client's upgrade
        // there is plain HTTP, but an extended CONNECT is nothing else.
        respondError(405, "this route takes no WebSockets", {{"Allow", "GET, HEAD"}});
        return;
    }
    if (!net::originAllowed(route, upgrade.origin)) {
        respondError(403, "origin not allowed");
        return;
    }
    net::WebSocketAdmission admission =
        net::admitWebSocket(connection_.worker(), snapshot_->config().limits, connection_.client().ip);
    if (!admission.admitted) {
        respondError(429, admission.reason, admission.extra);
        return;
    }
    ws_lease_ = std::move(admission.lease);
    if (builtin) {
        net::EndpointAcceptance accepted = net::acceptEndpoint(connection_.worker(), route, head_, upgrade);
        if (!accepted.app) {
            respondError(accepted.status, accepted.reason, accepted.extra);
            return;
        }
        acceptWebSocket(http::ResponseHead{}, accepted.subprotocol,
                        accepted.deflate ? std::string_view(accepted.deflate->response) : std::string_view{});
        std::optional<ws::DeflateParams> deflate;
        if (accepted.deflate) deflate = accepted.deflate->params;
        startSession(std::make_unique<handlers::EndpointSession>(
            static_cast<ws::SessionOwner&>(*this), connection_.worker().loop(), openBytes(), route.websocket, deflate,
            std::move(accepted.app), snapshot_->makeTracer(route, connection_.client().ip)));
        return;
    }
    if (route.websocket.mode == config::WebSocketMode::Http) {
        startBridge(route, upgrade);
        return;
    }
    proxy::HttpExchange::Request forward;
    forward.websocket = true;
    forward.websocket_key = websocket_key_;
    if (!route.websocket.subprotocols.empty() && !upgrade.subprotocols.empty())
        forward.override_headers.push_back(
            {"Sec-WebSocket-Protocol", ws::filterSubprotocols(upgrade.subprotocols, route.websocket.subprotocols)});
    startExchange(route, std::move(forward));
}

// RFC 8441 5: 200 opens the WebSocket; Sec-WebSocket-Protocol and -Extensions say what was
// agreed, as a 101 would (no Accept: HTTP/2 has no key).
void Stream::acceptWebSocket(const http::ResponseHead&, std::string_view subprotocol, std::string_view extensions) {
    http::ResponseHead ok;
    ok.status = 200;
    if (!subprotocol.empty()) ok.headers.push_back({"sec-websocket-protocol", std::string(subprotocol)});
    if (!extensions.empty()) ok.headers.push_back({"sec-websocket-extensions", std::string(extensions)});
    submitHead(ok, http::ResponseBody{true, std::nullopt});  // the body: the frames, until END_STREAM
}

std::unique_ptr<net::ByteStream> Stream::openBytes() {
    auto bytes = std::make_unique<StreamBytes>(*this, connection_.worker().loop(), pending_.get());
    bytes_ = bytes.get();
    // What came on the stream before the session started goes first: the session reads it at
    // its start, so its window comes back now. (The upstream modes gave it back when their
    // exchange retired; the bridge has no exchange on this path.)
    if (early_) bytes->addEarly(early_.get());
    if (held_ > 0) giveWindow(std::exchange(held_, 0));
    if (request_complete_) bytes->onEndStream();
    return bytes;
}

void Stream::consumeWindow(std::size_t n) {
    giveWindow(n);
    noteBuffers();
}

// The session's side ended (closeSide, or its StreamBytes went with it): END_STREAM once the
// client has what the session sent. As on HTTP/1.1, the bridge's app still gets its CLOSE or
// DISCONNECT first (a client that resets the stream before that cancels the request).
void Stream::onBytesClosed(bool upstream_failed) {
    bytes_ = nullptr;
    if (closed_) return;
    if (upstream_failed) {
        // RFC 9113 8.5: the tunnel's TCP connection failed (a reset, an error; a frames relay's
        // upstream broke the protocol or ended without a Close): a stream error of type
        // CONNECT_ERROR, once the client has what came before (afterSend), where a clean end is
        // END_STREAM. A client whose window stays shut is reset at the linger's end (tick).
        reset_after_output_ = true;
        resetIfOutputSent();
        return;
    }
    if (bridge_ && bridge_->busy()) {
        end_after_bridge_ = true;
        return;
    }
    endResponse();
}

void Stream::startBridge(const config::Route& route, const ws::UpgradeRequest& upgrade) {
    proxy::UpstreamGroup* group = snapshot_->upstream(route);
    if (!group) {
        respondError(502, "no such upstream");
        return;
    }
    if (auto deflate = ws::negotiateDeflate(upgrade.extensions, route.websocket.permessage_deflate)) {
        bridge_deflate_ = deflate->params;
        bridge_deflate_response_ = std::move(deflate->response);
    }
    // The app sees the handshake an HTTP/1.1 client would have sent (asWebSocketUpgrade).
    bridge::BridgeClient client;
    client.handshake = &head_;
    client.client_ip = connection_.client().ip;
    client.scheme = connection_.client().tls ? "https" : "http";
    client.client_hash = connection_.client().hash;
    net::Worker& worker = connection_.worker();
    bridge_ = std::make_unique<bridge::Bridge>(static_cast<bridge::BridgeOwner&>(*this), worker.loop(), *group, route,
                                               client, worker.pubsub(), handlers::gripChannels(snapshot_->config()),
                                               snapshot_->routeStats(route).bridge);
    upstream_name_ = route.upstream;
    bridge_->start();  // from the loop: the answer cannot come back inside this call
}

void Stream::onBridgeAccepted(std::string_view subprotocol) {
    if (closed_) return;
    const ws::UpgradeRequest upgrade = ws::analyzeUpgrade(head_);
    // RFC 6455 4.1: the client fails a handshake naming a subprotocol it did not offer.
    const std::string chosen(ws::selectSubprotocol(upgrade.subprotocols, {std::string(subprotocol)}));
    acceptWebSocket(http::ResponseHead{}, chosen, bridge_deflate_response_);
    startSession(std::make_unique<handlers::EndpointSession>(
        static_cast<ws::SessionOwner&>(*this), connection_.worker().loop(), openBytes(), route_->websocket,
        bridge_deflate_, bridge_->makeApp(), snapshot_->makeTracer(*route_, connection_.client().ip)));
}

void Stream::onBridgeRefused(int status, std::string_view content_type, std::string_view body) {
    if (closed_) return;
    // sendHead frees the per-IP slot, and turns any answer but a 4xx/5xx into 502 (RFC 8441: a
    // 2xx would read as an open WebSocket).
    if (content_type.empty() && body.empty()) {
        respondError(status, "WebSocket not accepted by the app");
        return;
    }
    // The app's own refusal (a 403 with its page): the client gets it as it was.
    http::respond(*this, status, content_type.empty() ? "text/plain" : content_type, body);
}

void Stream::resetIfOutputSent() {
    if (!reset_after_output_ || evbuffer_get_length(pending_.get()) > 0) return;
    reset_after_output_ = false;
    reset(NGHTTP2_CONNECT_ERROR);
}

// The app had the session's last request (CLOSE or DISCONNECT): the stream may end now.
void Stream::onBridgeFinished() {
    if (end_after_bridge_ && !closed_) endResponse();
}

void Stream::onUpgraded(std::unique_ptr<net::Stream> upstream, std::string extensions) {
    const config::WebSocketSettings& settings = route_->websocket;
    retireExchange();
    net::EventLoop& loop = connection_.worker().loop();
    if (settings.mode == config::WebSocketMode::Frames) {
        startSession(std::make_unique<ws::FrameRelay>(static_cast<ws::SessionOwner&>(*this), loop, openBytes(),
                                                      std::move(upstream), settings, ws::allowedRsvBits(extensions),
                                                      snapshot_->makeTracer(*route_, connection_.client().ip)));
    } else {
        startSession(std::make_unique<ws::Tunnel>(static_cast<ws::SessionOwner&>(*this), loop, openBytes(),
                                                  std::move(upstream), settings));
    }
}

void Stream::startSession(std::unique_ptr<ws::Session> session) {
    ws_stats_ = &snapshot_->routeStats(*route_);
    ws_stats_->ws_open.add();
    session_ = std::move(session);
    session_->start();
}

void Stream::onSessionEnd(const char* reason, const ws::SessionCounts& counts) {
    LOG_DEBUG("client %s: WebSocket on HTTP/2 stream %d closed (%s)", connection_.client().ip.c_str(), id_, reason);
    if (ws_stats_) {
        ws_stats_->ws_messages_in.add(counts.messages_in);
        ws_stats_->ws_messages_out.add(counts.messages_out);
        ws_stats_->ws_bytes_in.add(counts.bytes_in);
        ws_stats_->ws_bytes_out.add(counts.bytes_out);
        ws_stats_->ws_open.sub();
        ws_stats_ = nullptr;
    }
    ws_lease_.reset();
    session_ended_ = true;
    session_ended_at_ = std::chrono::steady_clock::now();
    // The session closed its side before this call (closeSide: onBytesClosed): END_STREAM
    // follows its last bytes.
}

}  // namespace portico::http2
