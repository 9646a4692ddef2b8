// SPDX-License-Identifier: Apache-2.0
#include "portico/net/client_connection.h"

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>

#include "portico/core/log.h"
#include "portico/handlers/http_handlers.h"
#include "portico/handlers/pubsub.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/header_rewrite.h"
#include "portico/http/request_checks.h"
#include "portico/http/simple_response.h"
#include "portico/net/builtin_requests.h"
#include "portico/net/lingering_close.h"
#include "portico/net/peer_address.h"
#include "portico/net/request_log.h"
#include "portico/net/snapshot.h"
#include "portico/net/uring/stream_io.h"  // uring::RingSettled (Stream::receiveEnded)
#include "portico/net/worker.h"
#include "portico/proxy/http_exchange.h"
#include "portico/tls/server_context.h"
#include "portico/ws/frame_relay.h"
#include "portico/ws/handshake.h"
#include "portico/ws/tunnel.h"

namespace portico::net {

namespace {

// Pipelined requests buffered beyond this while a response is in flight stop the reading.
constexpr std::size_t kPipelineBytes = 64 * 1024;

}  // namespace

const char* ClientConnection::toString(State state) {
    switch (state) {
        case State::ReadingHead: return "reading-head";
        case State::Proxying: return "proxying";
        case State::Responding: return "responding";
        case State::Upgraded: return "upgraded";
        case State::Http2: return "http2";
        case State::Closing: return "closing";
        case State::Closed: return "closed";
    }
    return "?";
}

namespace {

// A plain listener's connections do their I/O through the worker's ring when it has one (config
// `io_uring`); a TLS listener's stay on epoll (OpenSSL reads and writes the socket itself).
uring::Ring* plainRing(Worker& worker, const WorkerSnapshot& snapshot, std::size_t listener_index) {
    if (snapshot.snapshot().tls.listeners.at(listener_index)) return nullptr;
    return worker.ioRing();
}

}  // namespace

ClientConnection::ClientConnection(Worker& worker, core::UniqueFd fd, const sockaddr* peer,
                                   std::shared_ptr<WorkerSnapshot> snapshot, std::size_t listener_index,
                                   observe::ListenerStats& listener_stats)
    : worker_(worker),
      snapshot_(std::move(snapshot)),
      listener_(&snapshot_->config().listeners.at(listener_index)),
      listener_stats_(listener_stats),
      client_(std::make_unique<Stream>(worker.loop().base(), std::move(fd), static_cast<StreamHandler*>(this),
                                       plainRing(worker, *snapshot_, listener_index))),
      http_(worker.httpPhases().take(*this, snapshot_->config().limits.max_header_bytes)) {
    client_ip_ = peerAddress(peer, client_hash_);
    http_->client_key = ipKeyOf(peer, snapshot_->config().limits.per_ip_ipv6_prefix);
    listener_stats_.open.add();
    client_->setLowWatermark(proxy::kLowWatermark);
    client_->setDirectRead(true);  // requests are parsed where they are read (onBytes)
    http_->response.setOutput(client_->output());
}

std::unique_ptr<Stream> ClientConnection::takeClient() {
    client_->setDirectRead(false);  // the new owner decides how it reads
    client_->receiveEnded({});      // a drain() wait names this connection, which the Stream outlives
    return std::move(client_);
}

ClientConnection::~ClientConnection() { worker_.httpPhases().give(std::move(http_)); }

void ClientConnection::start() {
    const std::size_t index = static_cast<std::size_t>(listener_ - snapshot_->config().listeners.data());
    if (const auto& tls = snapshot_->snapshot().tls.listeners[index]) {
        tls::SslPtr ssl = tls->newSession();
        if (!ssl) {
            finish("TLS session allocation failed");
            return;
        }
        client_->startTls(std::move(ssl), /*server=*/true, worker_.ioRing());
    } else if (listener_->http2) {
        // `http2: true`: HTTP/2 with prior knowledge (RFC 9113 3.3), the preface comes first.
        startHttp2();
        return;
    }
    beginRequest();
    armTimer(snapshot_->config().limits.client_header_timeout);
}

// ---- reading requests ---------------------------------------------------------------------

std::uint64_t ClientConnection::generation() const { return snapshot_->snapshot().generation; }

// A keep-alive connection moves to the configuration loaded since its last request (a reload),
// provided its listener is still configured; otherwise it stays on its own.
void ClientConnection::adoptCurrentSnapshot() {
    const std::shared_ptr<WorkerSnapshot>& current = worker_.current();
    if (current == snapshot_) return;
    const std::string key = listener_->address.toString();
    for (const auto& listener : current->config().listeners) {
        if (listener.address.toString() != key) continue;
        // We may be inside a callback of a socket the old snapshot owns (the upstream connection
        // just parked in its pool): let the old snapshot go from the loop, not from here.
        worker_.loop().deferDelete(std::move(snapshot_));
        snapshot_ = current;
        listener_ = &listener;
        http_->parser.setMaxHeadBytes(snapshot_->config().limits.max_header_bytes);
        // The reload may have changed the IPv6 prefix that per-address limits count by.
        http_->client_key = ipKeyOf(client_ip_, snapshot_->config().limits.per_ip_ipv6_prefix);
        return;
    }
}

// The one place a request's state is reset (see Request in the header).
void ClientConnection::beginRequest() {
    state_ = State::ReadingHead;
    http_->req = Request{};
    http_->response.reset(true, 1);
}

void ClientConnection::onReadable(ByteStream& stream) {
    if (state_ == State::Closing) {
        evbuffer_drain(stream.input(), evbuffer_get_length(stream.input()));  // lingering: discard
        return;
    }
    processInput();
}

void ClientConnection::onBytes(ByteStream&, const char* data, std::size_t n) {
    if (state_ == State::Closing) return;  // lingering: discarded (onReadable)
    processInput(data, n);
}

void ClientConnection::processInput(const char* data, std::size_t n) {
    evbuffer* in = client_->input();
    for (;;) {
        bool reading_request = state_ == State::ReadingHead ||
                               ((state_ == State::Proxying || state_ == State::Responding) && !http_->req.complete);
        if (!reading_request) {
            if (n > 0) evbuffer_add(in, data, n);
            // A pipelined request waits until this response is done; stop reading only when
            // enough is queued (pausing on every request would cost two epoll_ctl calls).
            if (evbuffer_get_length(in) > kPipelineBytes) client_->pauseReading();
            return;
        }
        if (state_ == State::ReadingHead && !http_->parser.inMessage() && (n > 0 || evbuffer_get_length(in) > 0) &&
            http_->req.start == std::chrono::steady_clock::time_point{}) {
            http_->req.start = std::chrono::steady_clock::now();
            if (http_->requests > 0) armTimer(snapshot_->config().limits.client_header_timeout);
        }
        http::ParseStatus status;
        if (n > 0) {
            // Parsed where it was read; what the parser leaves (a pipelined request, the first
            // bytes after an upgrade, what follows an error) waits in input() as it would have.
            std::size_t parsed = 0;
            status = http_->parser.parse(data, n, parsed);
            http_->req.bytes_in += parsed;
            if (parsed < n) evbuffer_add(in, data + parsed, n - parsed);
            n = 0;
        } else {
            std::size_t before = evbuffer_get_length(in);
            status = http_->parser.parse(in);
            http_->req.bytes_in += before - evbuffer_get_length(in);
        }
        switch (status) {
            case http::ParseStatus::NeedMore:
                if (http_->exchange && http_->exchange->upstreamBacklogged()) {
                    // The upstream is slow, not the client: the body timeout waits too.
                    client_->pauseReading();
                    http_->timer.clear();
                } else if (state_ != State::ReadingHead && !http_->req.complete) {
                    armBodyTimer();
                }
                return;
            case http::ParseStatus::Error: {
                const http::ParseError error = http_->parser.error();
                int code = error == http::ParseError::HeadTooLarge                  ? 431
                           : error == http::ParseError::UnsupportedTransferEncoding ? 501
                                                                                    : 400;
                if (error == http::ParseError::Aborted) return;  // already answered
                LOG_INFO("client %s: bad request: %s", client_ip_.c_str(), http_->parser.errorReason());
                respondError(code, http_->parser.errorReason());
                return;
            }
            case http::ParseStatus::Upgrade:
                if (http_->pending_app) {
                    // A built-in endpoint accepted the WebSocket: it takes the socket now, its
                    // writes at once (queue_bytes judges what the socket refuses: writeAtOnce).
                    client_->writeAtOnce();
                    auto session = std::make_unique<handlers::EndpointSession>(
                        static_cast<ws::SessionOwner&>(*this), worker_.loop(), takeClient(),
                        http_->req.route->websocket, http_->pending_deflate, std::move(http_->pending_app), makeTracer());
                    startSession(std::move(session));
                    return;
                }
                // An upgrade to an upstream waits for its 101 (onUpgraded). A declined upgrade
                // (h2c, or a route that serves plain HTTP) goes on as HTTP.
                [[fallthrough]];
            case http::ParseStatus::MessageComplete:
                if (!http_->req.response_done) {
                    // The response comes from the exchange; pipelined bytes wait in the input.
                    if (evbuffer_get_length(in) > kPipelineBytes) client_->pauseReading();
                    return;
                }
                responseDone(http_->req.keep_alive);
                if (state_ != State::ReadingHead) return;
                continue;
        }
    }
}

// `limits.client_body_timeout` (nginx's client_body_timeout): the longest wait between two reads
// of a request body, re-armed by each read; while the upstream is backlogged and we do not read,
// it does not run.
void ClientConnection::armBodyTimer() { armTimer(snapshot_->config().limits.client_body_timeout); }

const std::string& ClientConnection::localAuthority() {
    if (!http_->local_authority.empty()) return http_->local_authority;
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (getsockname(client_->fd(), reinterpret_cast<sockaddr*>(&local), &length) == 0) {
        std::uint32_t unused = 0;
        const std::string address = peerAddress(reinterpret_cast<const sockaddr*>(&local), unused);
        const bool v6 = local.ss_family == AF_INET6;
        const auto port = ntohs(v6 ? reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port
                                   : reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
        http_->local_authority = (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
    }
    return http_->local_authority;
}

bool ClientConnection::hasBody() const {
    return http_->parser.chunked() || (http_->parser.hasContentLength() && http_->parser.contentLength() > 0);
}

// RFC 9110 10.1.1: a client that sent "Expect: 100-continue" may wait for our interim response
// before it sends the body; when we answer with a final status at the head instead, it may never
// send it, so that connection cannot be reused.
bool ClientConnection::bodyAwaitsContinue() const {
    const http::RequestHead& request = http_->parser.request();
    return request.version_minor >= 1 && hasBody() && http::headerHasToken(request.headers, "Expect", "100-continue");
}

// RFC 9110 9.3.2: what we answer to HEAD ourselves has a head only (false while the head of the
// request is not parsed yet: its method is not known).
bool ClientConnection::headOnly() const {
    return http_ && http_->parser.headComplete() && http_->parser.request().method == "HEAD";
}

http::HeadAction ClientConnection::onHead() {
    http_->timer.clear();
    if (http_->requests > 0) adoptCurrentSnapshot();  // a reload since the last request applies now
    http::RequestHead& request = http_->parser.request();
    const auto& config = snapshot_->config();
    http_->response.reset(true, request.version_minor);
    if (http_->req.start == std::chrono::steady_clock::time_point{}) http_->req.start = std::chrono::steady_clock::now();
    // Target, Host and path: normalized here, so that what we route is what goes upstream.
    const http::RequestVerdict verdict =
        http::checkRequestHead(request, request.version_minor == 0 ? std::string_view(localAuthority()) : "");
    if (!verdict.ok()) {
        LOG_INFO("client %s: refused: %s", client_ip_.c_str(), verdict.reason);
        respondError(verdict.status, verdict.reason);
        return http::HeadAction::Abort;
    }
    // Only a head with an Upgrade field can ask for a WebSocket (or be an invalid handshake).
    const ws::UpgradeRequest upgrade = http_->parser.hasUpgradeField() ? ws::analyzeUpgrade(request) : ws::UpgradeRequest{};
    if (upgrade.kind == ws::UpgradeKind::WebSocket && hasBody()) {
        // RFC 6455 4.1: the opening handshake is a GET without content. A body would reach the
        // upstream, after a head that declares no length, as the first bytes of the tunnel: a
        // request smuggled past our routing. Refused for every route.
        respondError(400, "WebSocket upgrade with a body");
        return http::HeadAction::Abort;
    }
    const std::string_view host = http::findHeader(request.headers, http::FieldName::Host)->value;  // checkRequestHead made one
    if (listener_->redirect_https) {
        // `redirect_https: PORT`: every request on this listener goes to HTTPS (308 keeps the
        // method and body, RFC 9110 15.4.9).
        respondAtHead(308, "text/plain", "308 Permanent Redirect\n",
                      {{"Location", httpsRedirectLocation(host, *listener_->redirect_https, request.target)}});
        return answeredAtHead();
    }
    if (config.limits.max_body_bytes && http_->parser.hasContentLength() &&
        http_->parser.contentLength() > config.limits.max_body_bytes) {
        respondError(413, "body too large");
        return http::HeadAction::Abort;
    }
    const config::Route* route = snapshot_->snapshot().routes.match(host, request.path());
    if (!route) {
        respondAtHead(404, "text/plain", "404 Not Found\n");
        return answeredAtHead();
    }
    http_->req.route = route;
    if (upgrade.kind == ws::UpgradeKind::Invalid) {
        LOG_INFO("client %s: invalid WebSocket handshake: %.*s", client_ip_.c_str(),
                 static_cast<int>(upgrade.error.size()), upgrade.error.data());
        // RFC 6455 4.4: a version we do not speak gets 426 and the versions we do.
        respondError(upgrade.status, "invalid WebSocket handshake",
                     upgrade.status == 426 ? http::HeaderList{{"Sec-WebSocket-Version", "13"}} : http::HeaderList{});
        return http::HeadAction::Abort;
    }
    const bool serves_websocket = !route->upstream.empty() || route->handler == config::HandlerKind::Echo ||
                                  route->handler == config::HandlerKind::PubSub;
    if (upgrade.kind == ws::UpgradeKind::WebSocket && serves_websocket) {
        if (!originAllowed(*route, upgrade.origin)) {
            LOG_INFO("client %s: WebSocket origin \"%.*s\" not allowed", client_ip_.c_str(),
                     static_cast<int>(upgrade.origin.size()), upgrade.origin.data());
            respondError(403, "origin not allowed");
            return http::HeadAction::Abort;
        }
        if (!admitWebSocket()) return http::HeadAction::Abort;
        if (route->handler != config::HandlerKind::None) return acceptWebSocket(*route, upgrade);
        if (route->websocket.mode == config::WebSocketMode::Http) return startBridge(*route, upgrade);
    }
    if ((route->handler == config::HandlerKind::PubSub || route->handler == config::HandlerKind::Publish) &&
        request.method == "POST")
        return startPublish(*route);
    if (route->handler != config::HandlerKind::None) {
        respondInternal(*route);
        return answeredAtHead();
    }
    proxy::UpstreamGroup* group = snapshot_->upstream(*route);
    if (!group) {
        respondError(502, "no such upstream");
        return http::HeadAction::Abort;
    }
    proxy::HttpExchange::Request forward;
    forward.head = &http_->parser.request();
    forward.client_ip = client_ip_;
    forward.scheme = listener_->tls ? "https" : "http";
    forward.client_hash = client_hash_;
    if (http_->parser.chunked()) {
        forward.body_framing = http::BodyFraming::Chunked;
    } else if (http_->parser.hasContentLength() && http_->parser.contentLength() > 0) {
        forward.body_framing = http::BodyFraming::ContentLength;
        forward.content_length = http_->parser.contentLength();
    } else if (request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
        // RFC 9110 8.6: a request that usually carries content says it has none.
        forward.body_framing = http::BodyFraming::ContentLength;
    }
    if (upgrade.kind == ws::UpgradeKind::WebSocket) {
        forward.websocket = true;
        forward.websocket_key = upgrade.key;  // a view into the request head, like forward.head
        forward.body_framing = http::BodyFraming::None;  // no body: refused above
        if (!route->websocket.subprotocols.empty() && !upgrade.subprotocols.empty())
            forward.override_headers.push_back(
                {"Sec-WebSocket-Protocol", ws::filterSubprotocols(upgrade.subprotocols, route->websocket.subprotocols)});
    }
    state_ = State::Proxying;
    http_->req.keep_alive = upgrade.kind != ws::UpgradeKind::WebSocket;  // a declined upgrade closes
    http_->response.setKeepAlive(http_->req.keep_alive);
    http_->exchange = http_->exchanges.take();
    http_->exchange->begin(static_cast<proxy::ExchangeOwner&>(*this), *group, *route, forward);
    http_->exchange->start();
    return http::HeadAction::Continue;
}

bool ClientConnection::onBody(const char* data, std::size_t length) {
    http_->req.body_bytes += length;
    const std::size_t limit = snapshot_->config().limits.max_body_bytes;
    if (state_ == State::Responding && !http_->req.response_done && !http_->req.answer_pending) {
        // A built-in handler reads this body (a pubsub publish): bounded by the route's
        // max_message_bytes, queue_bytes and max_body_bytes.
        if (!handlers::publishBodyFits(worker_.pubsub(), *http_->req.route, limit, http_->req.body.size() + length)) {
            respondError(413, "body too large");
            return false;
        }
        http_->req.body.append(data, length);
        return true;
    }
    if (limit && http_->req.body_bytes > limit) {
        // Only a chunked body gets here (a declared length is checked in onHead).
        retireExchange();
        respondError(413, "body too large");
        return false;
    }
    if (http_->exchange) http_->exchange->sendBody(data, length);
    return true;
}

void ClientConnection::onMessageComplete() {
    http_->req.complete = true;
    http_->timer.clear();  // the body timer
    // A chunked body's trailer section goes on in the upstream's chunked request (as an HTTP/2
    // client's trailers do).
    if (http_->exchange) http_->exchange->endBody(&http_->parser.trailers());
    if (state_ == State::Responding && !http_->req.response_done && !http_->req.answer_pending) servePubSub();
}

// ---- the exchange with the upstream ---------------------------------------------------------

bool ClientConnection::clientKeepAlive() const {
    return http_ && http_->parser.keepAlive() && !draining_ && !worker_.stopping() && !client_eof_;
}

void ClientConnection::onExchangeComplete(bool reusable) {
    // The body may still be arriving (the upstream answered early): then the connection cannot
    // be reused, since we would have to read and discard an unbounded rest.
    responseDone(reusable && http_->response.keptAlive() && http_->req.complete);
}

void ClientConnection::onExchangeFailed(int status, const char* reason) {
    if (status == 0) {
        // Part of the response went out already: the client sees the connection close.
        LOG_INFO("client %s: %s after the response started", client_ip_.c_str(), reason);
        http_->req.status = http_->req.status ? http_->req.status : 502;
        logAccess();
        finish(reason);
        return;
    }
    respondError(status, reason);
}

void ClientConnection::onUpstreamDrained() {
    if (state_ == State::Proxying && !http_->req.complete && !client_->isReading()) {
        client_->resumeReading();
        processInput();
    }
}

void ClientConnection::onResponseStatus(int status) {
    http_->req.status = status;
    // An upgrade the upstream declined frees its WebSocket slot at the status, before any of
    // the answer reaches the client: a client that has read the answer must find the slot free
    // (another worker may admit its next upgrade at once).
    if (status != 101) ws_lease_.reset();
}

// ---- ending a response ----------------------------------------------------------------------

void ClientConnection::responseDone(bool keep_alive) {
    ws_lease_.reset();  // a response, not a 101: an upgrade that did not happen frees its slot
    logAccess();
    ++http_->requests;
    retireExchange();
    client_->flush();
    if (!keep_alive || draining_ || worker_.stopping()) {
        closeAfterFlush();
        return;
    }
    http_->parser.resume();
    beginRequest();
    if (evbuffer_get_length(client_->input()) > 0) {
        // A pipelined request is waiting; continue from the loop, not from inside the callback
        // that completed this response.
        event_active(http_->resume_event.get(), EV_TIMEOUT, 0);
    } else {
        client_->resumeReading();
        // A response still going out: keep-alive starts once it is out (onDrained).
        if (client_->outputLength() > 0) {
            watchClientReading();
        } else {
            armTimer(snapshot_->config().limits.keepalive_timeout);
        }
    }
}

void ClientConnection::onResume(int, short, void* arg) {
    auto* self = static_cast<ClientConnection*>(arg);
    if (self->state_ != State::ReadingHead) return;
    // Backpressure on pipelining: do not start the next response while the client is not
    // reading this one.
    if (self->client_->outputLength() > proxy::kHighWatermark) {
        self->watchClientReading();  // onDrained resumes; a client that does not read is closed
        return;
    }
    self->client_->resumeReading();
    self->armTimer(self->snapshot_->config().limits.client_header_timeout);
    self->processInput();
}

void ClientConnection::respondError(int status, const char* reason, const http::HeaderList& extra) {
    ws_lease_.reset();
    retireExchange();
    if (http_->req.bytes_out + http_->response.bytes() > 0 && http_->req.status != 0 && state_ != State::ReadingHead) {
        finish(reason);
        return;
    }
    http_->response.setKeepAlive(false);
    http::respondError(http_->response, status, extra, headOnly());
    logAccess();
    closeAfterFlush();
}

void ClientConnection::closeAfterFlush() {
    state_ = State::Closing;
    client_->shutdownAfterFlush();
    // When stopping there is no time to linger: the response is out, the connection goes.
    if ((client_eof_ || worker_.stopping()) && client_->outputLength() == 0) {
        finish("closed");
        return;
    }
    client_->resumeReading();
    // A response still going out: the linger starts once it is out (onDrained).
    if (client_->outputLength() > 0) {
        watchClientReading();
    } else {
        armTimer(kLingerTimeout);
    }
}

void ClientConnection::onDrained(ByteStream& stream) {
    if (stream.outputLength() == 0) http_->req.send_stall.clear();  // client_send_timeout's watch ends
    if (http_->exchange) http_->exchange->onClientDrained();
    if (state_ == State::Closing && (client_eof_ || worker_.stopping()) && stream.outputLength() == 0) {
        finish("closed");
    } else if (state_ == State::Closing && stream.outputLength() == 0) {
        armTimer(kLingerTimeout);  // the response is out (a large one took long): linger from here
    } else if (state_ == State::ReadingHead && !client_->isReading()) {
        onResume(0, 0, this);
    } else if (state_ == State::ReadingHead && stream.outputLength() == 0 && !http_->parser.inMessage() &&
               evbuffer_get_length(client_->input()) == 0) {
        armTimer(snapshot_->config().limits.keepalive_timeout);  // idle from the response's last byte
    }
}

void ClientConnection::onEof(ByteStream&) {
    client_eof_ = true;
    switch (state_) {
        case State::ReadingHead:
            if (http_->parser.inMessage()) LOG_DEBUG("client %s: closed mid-request", client_ip_.c_str());
            finish("client closed");
            return;
        case State::Proxying:
        case State::Responding:
            if (bridge_) {
                // Gone before the app answered its OPEN: no WebSocket to bridge.
                bridge_->abort();
                http_->req.status = http_->req.status ? http_->req.status : 499;
                logAccess();
                finish("client closed before the WebSocket was accepted");
                return;
            }
            // A client may half-close after its request and still read the response.
            if (!http_->req.complete) {
                if (http_->exchange) http_->exchange->abort();
                http_->req.status = http_->req.status ? http_->req.status : 499;
                logAccess();
                finish("client closed mid-request");
            }
            return;
        case State::Closing:
            if (client_->outputLength() == 0) finish("closed");
            return;
        case State::Upgraded:
        case State::Http2:
        case State::Closed:
            return;
    }
}

void ClientConnection::onTlsHandshake(Stream& stream) {
    listener_stats_.tls_handshakes.add();
    // RFC 9113 3.2: h2 agreed by ALPN; the client's preface follows.
    if (stream.alpnProtocol() == "h2") startHttp2();
}

void ClientConnection::startHttp2() {
    state_ = State::Http2;
    http_->timer.clear();
    worker_.httpPhases().give(std::move(http_));  // the HTTP/2 connection parses and answers on its own
    http2::ClientInfo client{client_ip_, client_hash_, listener_->tls.has_value()};
    http2_ = std::make_unique<http2::Connection>(static_cast<http2::ConnectionOwner&>(*this), worker_, snapshot_, *listener_,
                                                 listener_stats_, takeClient(), std::move(client));
    if (!http2_->start() && state_ == State::Http2) {
        finish("HTTP/2 session failed");
        return;
    }
    // Drained during the TLS handshake (a graceful stop): GOAWAY after the requests that came
    // with the preface.
    if (draining_ && http2_) http2_->goAway();
}

void ClientConnection::onHttp2Closed(const char* reason) { finish(reason); }

void ClientConnection::onPlainTextOnTls(Stream&) {
    // The Stream dropped TLS without reading: answer in plain text, then close with a linger
    // that reads and discards the request (nginx's 400 "plain HTTP request was sent to HTTPS
    // port"). Counted as a failed handshake.
    listener_stats_.tls_failures.add();
    LOG_INFO("client %s: TLS handshake failed: plain http request on a TLS port, answered 400", client_ip_.c_str());
    http_->response.setKeepAlive(false);
    http::respond(http_->response, 400, "text/plain", "400 The plain HTTP request was sent to HTTPS port\n");
    logAccess();
    closeAfterFlush();
}

void ClientConnection::onError(ByteStream& side, int error) {
    const Stream& stream = static_cast<const Stream&>(side);  // we handle our client socket only
    if (stream.isTls() && !stream.tlsEstablished()) {
        // A failed handshake: logged at info with the reason, counted, nothing else disturbed.
        listener_stats_.tls_failures.add();
        LOG_INFO("client %s: TLS handshake failed: %s", client_ip_.c_str(), stream.tlsError().c_str());
        finish("TLS handshake failed");
        return;
    }
    LOG_DEBUG("client %s: %s", client_ip_.c_str(), strerror(error));
    if (http_->exchange) http_->exchange->abort();
    if (bridge_ && state_ == State::Proxying) bridge_->abort();
    if (state_ == State::Proxying || state_ == State::Responding) {
        http_->req.status = http_->req.status ? http_->req.status : 499;
        logAccess();
    }
    finish("client error");
}

void ClientConnection::Downstream::sendHead(const http::ResponseHead& head, const http::ResponseBody& body) {
    Http1ResponseWriter::sendHead(head, body);
    if (head.status >= 200 || head.status == 101) connection_->onResponseStatus(head.status);
}

std::size_t ClientConnection::Downstream::writeUpgradeHead(const http::ResponseHead& head,
                                                          const http::ClientResponseInfo& info) {
    // The 101 goes from the stack to the socket with one send when nothing is queued before it
    // (Stream::write keeps the order otherwise, and a TLS or io_uring client its own way), not
    // through an evbuffer chain allocated, reserved, committed, peeked and drained for the one
    // head: about 500 instructions and an allocation per upgrade (session 13, callgrind).
    char text[1024];
    const std::size_t n = http::formatClientResponseHead(text, sizeof text, head, info);
    if (n == 0 || !connection_->client_) return Http1ResponseWriter::writeUpgradeHead(head, info);
    connection_->client_->write(text, n);
    return n;
}

void ClientConnection::Downstream::sendFile(core::UniqueFd fd, std::uint64_t length) {
    if (connection_->client_) connection_->client_->outputMayHoldFiles();
    Http1ResponseWriter::sendFile(std::move(fd), length);
}

bool ClientConnection::Downstream::backlogged() const {
    const bool over = connection_->client_ && connection_->client_->outputLength() > proxy::kHighWatermark;
    // The exchange stops reading its upstream (and its read_timeout) for us: ours watches.
    if (over && connection_->state_ == State::Proxying && connection_->http_->req.complete)
        connection_->watchClientReading();
    return over;
}

void ClientConnection::Downstream::flush() {
    if (connection_->client_) connection_->client_->flush();
}

void ClientConnection::retireExchange() {
    if (!http_ || !http_->exchange) return;
    http_->req.upstream_name = http_->exchange->upstreamName();  // still wanted by the access log
    http_->exchanges.give(std::move(http_->exchange));
}

void ClientConnection::logAccess() {
    if (http_->req.logged || http_->req.status == 0) return;
    http_->req.logged = true;
    RequestSummary summary;
    summary.route = http_->req.route;
    summary.request = &http_->parser.request();
    summary.client_ip = client_ip_;
    summary.protocol = http_->parser.request().version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    summary.upstream = http_->exchange ? std::string_view(http_->exchange->upstreamName()) : http_->req.upstream_name;
    summary.status = http_->req.status;
    summary.bytes_in = http_->req.bytes_in;
    summary.bytes_out = http_->req.bytes_out + http_->response.bytes();
    summary.start = http_->req.start;
    logRequest(worker_, *snapshot_, listener_stats_, summary);
}

void ClientConnection::finish(const char* reason) {
    if (state_ == State::Closed) return;
    LOG_DEBUG("client %s: closed (%s) in state %s", client_ip_.c_str(), reason, toString(state_));
    state_ = State::Closed;
    alive_.reset();  // a backplane's late answer finds nobody
    listener_stats_.open.sub();
    if (http_) http_->timer.clear();
    if (http_) event_del(http_->resume_event.get());
    retireExchange();
    if (bridge_) bridge_->abort();
    if (http2_) http2_->abort();
    if (client_) {  // after an upgrade the session has the socket
        client_->pauseReading();
        client_->receiveEnded({});  // drain() waits no more
    }
    worker_.onConnectionFinished(this);
}

}  // namespace portico::net
