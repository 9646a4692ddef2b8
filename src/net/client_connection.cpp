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
#include "portico/http/simple_response.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"
#include "portico/proxy/http_exchange.h"
#include "portico/tls/server_context.h"
#include "portico/ws/frame_relay.h"
#include "portico/ws/handshake.h"
#include "portico/ws/tunnel.h"

namespace portico::net {

namespace {

// After an error response we half-close and read what the client still sends for this long,
// so that our response is not destroyed by a TCP reset (nginx's lingering close).
constexpr std::chrono::milliseconds kLingerTimeout{2000};
// Pipelined requests buffered beyond this while a response is in flight stop the reading.
constexpr std::size_t kPipelineBytes = 64 * 1024;

std::string peerAddress(const sockaddr* peer, std::uint32_t& hash) {
    char text[INET6_ADDRSTRLEN] = "-";
    hash = 0;
    if (peer->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(peer);
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        hash = ntohl(in->sin_addr.s_addr) * 2654435761u;
    } else if (peer->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(peer);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        for (unsigned char b : in6->sin6_addr.s6_addr) hash = hash * 31 + b;
    }
    return text;
}

// RFC 9112 3.2.2: a request in absolute-form ("GET http://host/path") is routed by its
// authority, which replaces Host; we forward it in origin-form. Returns false when the target is
// neither origin-form nor a valid absolute-form.
bool normalizeTarget(http::RequestHead& request) {
    std::string& target = request.target;
    if (!target.empty() && target.front() == '/') return true;
    if (request.method == "OPTIONS" && target == "*") return true;
    auto scheme_end = target.find("://");
    if (scheme_end == std::string::npos) return false;
    std::string_view scheme = std::string_view(target).substr(0, scheme_end);
    if (!http::equalsIgnoreCase(scheme, "http") && !http::equalsIgnoreCase(scheme, "https")) return false;
    auto authority_start = scheme_end + 3;
    auto path_start = target.find_first_of("/?", authority_start);
    std::string authority = target.substr(authority_start, path_start - authority_start);
    if (authority.empty() || authority.find('@') != std::string::npos) return false;
    std::string path = path_start == std::string::npos ? "/" : target.substr(path_start);
    if (path.front() == '?') path.insert(0, "/");
    target = std::move(path);
    bool replaced = false;
    for (auto& h : request.headers) {
        if (!http::equalsIgnoreCase(h.name, "Host")) continue;
        if (!replaced) h.value = authority;
        replaced = true;
    }
    if (!replaced) request.headers.push_back({"Host", authority});
    return true;
}

}  // namespace

const char* ClientConnection::toString(State state) {
    switch (state) {
        case State::ReadingHead: return "reading-head";
        case State::Proxying: return "proxying";
        case State::Responding: return "responding";
        case State::Upgraded: return "upgraded";
        case State::Closing: return "closing";
        case State::Closed: return "closed";
    }
    return "?";
}

ClientConnection::ClientConnection(Worker& worker, core::UniqueFd fd, const sockaddr* peer,
                                   std::shared_ptr<WorkerSnapshot> snapshot, std::size_t listener_index,
                                   observe::ListenerStats& listener_stats)
    : worker_(worker),
      snapshot_(std::move(snapshot)),
      listener_(&snapshot_->config().listeners.at(listener_index)),
      listener_stats_(listener_stats),
      client_(std::make_unique<Stream>(worker.loop().base(), std::move(fd), static_cast<StreamHandler*>(this))),
      parser_(http::MessageParser::Kind::Request, this, snapshot_->config().limits.max_header_bytes),
      timer_(event_new(worker.loop().base(), -1, 0, &ClientConnection::onTimer, this)) {
    client_ip_ = peerAddress(peer, client_hash_);
    listener_stats_.open.add();
    client_->setLowWatermark(proxy::kLowWatermark);
}

ClientConnection::~ClientConnection() = default;

void ClientConnection::start() {
    const std::size_t index = static_cast<std::size_t>(listener_ - snapshot_->config().listeners.data());
    if (const auto& tls = snapshot_->snapshot().tls.listeners[index]) {
        tls::SslPtr ssl = tls->newSession();
        if (!ssl) {
            finish("TLS session allocation failed");
            return;
        }
        client_->startTls(std::move(ssl), /*server=*/true);
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
        parser_.setMaxHeadBytes(snapshot_->config().limits.max_header_bytes);
        return;
    }
}

void ClientConnection::beginRequest() {
    state_ = State::ReadingHead;
    request_complete_ = response_done_ = logged_ = false;
    response_keep_alive_ = true;
    bytes_in_ = bytes_out_ = body_bytes_ = 0;
    status_ = 0;
    request_start_ = {};
    upstream_name_ = "-";
}

void ClientConnection::onReadable(Stream& stream) {
    if (state_ == State::Closing) {
        evbuffer_drain(stream.input(), evbuffer_get_length(stream.input()));  // lingering: discard
        return;
    }
    processInput();
}

void ClientConnection::processInput() {
    evbuffer* in = client_->input();
    for (;;) {
        bool reading_request = state_ == State::ReadingHead ||
                               ((state_ == State::Proxying || state_ == State::Responding) && !request_complete_);
        if (!reading_request) {
            // A pipelined request waits until this response is done; stop reading only when
            // enough is queued (pausing on every request would cost two epoll_ctl calls).
            if (evbuffer_get_length(in) > kPipelineBytes) client_->pauseReading();
            return;
        }
        if (state_ == State::ReadingHead && !parser_.inMessage() && evbuffer_get_length(in) > 0 &&
            request_start_ == std::chrono::steady_clock::time_point{}) {
            request_start_ = std::chrono::steady_clock::now();
            if (requests_ > 0) armTimer(snapshot_->config().limits.client_header_timeout);
        }
        std::size_t before = evbuffer_get_length(in);
        http::ParseStatus status = parser_.parse(in);
        bytes_in_ += before - evbuffer_get_length(in);
        switch (status) {
            case http::ParseStatus::NeedMore:
                if (exchange_ && exchange_->upstreamBacklogged()) client_->pauseReading();
                return;
            case http::ParseStatus::Error: {
                const http::ParseError error = parser_.error();
                int code = error == http::ParseError::HeadTooLarge                  ? 431
                           : error == http::ParseError::UnsupportedTransferEncoding ? 501
                                                                                    : 400;
                if (error == http::ParseError::Aborted) return;  // already answered
                LOG_INFO("client %s: bad request: %s", client_ip_.c_str(), parser_.errorReason());
                respondError(code, parser_.errorReason());
                return;
            }
            case http::ParseStatus::Upgrade:
                if (pending_app_) {
                    // A built-in endpoint accepted the WebSocket: it takes the socket now.
                    auto session = std::make_unique<handlers::EndpointSession>(
                        static_cast<ws::SessionOwner&>(*this), worker_.loop(), std::move(client_), route_->websocket,
                        pending_deflate_, std::move(pending_app_));
                    startSession(std::move(session));
                    return;
                }
                // An upgrade to an upstream waits for its 101 (onUpgraded). A declined upgrade
                // (h2c, or a route that serves plain HTTP) goes on as HTTP.
                [[fallthrough]];
            case http::ParseStatus::MessageComplete:
                if (!response_done_) {
                    // The response comes from the exchange; pipelined bytes wait in the input.
                    if (evbuffer_get_length(in) > kPipelineBytes) client_->pauseReading();
                    return;
                }
                responseDone(response_keep_alive_);
                if (state_ != State::ReadingHead) return;
                continue;
        }
    }
}

http::HeadAction ClientConnection::onHead() {
    event_del(timer_.get());
    if (requests_ > 0) adoptCurrentSnapshot();  // a reload since the last request applies now
    const http::RequestHead& request = parser_.request();
    const auto& config = snapshot_->config();
    if (request_start_ == std::chrono::steady_clock::time_point{}) request_start_ = std::chrono::steady_clock::now();
    if (!normalizeTarget(parser_.request())) {
        respondError(400, "invalid request target");
        return http::HeadAction::Abort;
    }
    int host_count = 0;
    for (const auto& h : request.headers) host_count += http::equalsIgnoreCase(h.name, "Host");
    const http::Header* host = http::findHeader(request.headers, "Host");
    // RFC 9112 3.2: a server MUST respond 400 to an HTTP/1.1 request without Host, and to any
    // request with more than one.
    if ((!host && request.version_minor >= 1) || host_count > 1) {
        respondError(400, host_count > 1 ? "several Host headers" : "missing Host");
        return http::HeadAction::Abort;
    }
    if (request.method == "CONNECT") {
        respondError(405, "CONNECT is not supported");
        return http::HeadAction::Abort;
    }
    if (listener_->redirect_https) {
        // `redirect_https: PORT`: every request on this listener goes to HTTPS (308 keeps the
        // method and body, RFC 9110 15.4.9).
        std::string_view authority = host ? std::string_view(host->value) : std::string_view("localhost");
        std::string_view name = authority.front() == '[' ? authority.substr(0, authority.find(']') + 1)
                                                          : authority.substr(0, authority.find(':'));
        std::string location = "https://" + std::string(name);
        if (*listener_->redirect_https != 443) location += ":" + std::to_string(*listener_->redirect_https);
        location += request.target;
        state_ = State::Responding;
        response_keep_alive_ = clientKeepAlive();
        status_ = 308;
        bytes_out_ += http::writeSimpleResponse(client_->output(), 308, "text/plain", "308 Permanent Redirect\n",
                                                response_keep_alive_, {{"Location", location}});
        response_done_ = true;
        return http::HeadAction::Continue;
    }
    if (config.limits.max_body_bytes && parser_.hasContentLength() &&
        parser_.contentLength() > config.limits.max_body_bytes) {
        respondError(413, "body too large");
        return http::HeadAction::Abort;
    }
    const config::Route* route = snapshot_->snapshot().routes.match(host ? std::string_view(host->value) : "", request.path());
    if (!route) {
        state_ = State::Responding;
        response_keep_alive_ = clientKeepAlive();
        status_ = 404;
        bytes_out_ += http::writeErrorResponse(client_->output(), 404, response_keep_alive_);
        response_done_ = true;
        return http::HeadAction::Continue;  // the body, if any, is read and discarded
    }
    route_ = route;
    const ws::UpgradeRequest upgrade = ws::analyzeUpgrade(request);
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
        const auto& origins = route->websocket.origins;
        if (!origins.empty() && std::none_of(origins.begin(), origins.end(), [&](const std::string& o) {
                return http::equalsIgnoreCase(o, upgrade.origin);
            })) {
            LOG_INFO("client %s: WebSocket origin \"%.*s\" not allowed", client_ip_.c_str(),
                     static_cast<int>(upgrade.origin.size()), upgrade.origin.data());
            respondError(403, "origin not allowed");
            return http::HeadAction::Abort;
        }
        if (!admitWebSocket()) return http::HeadAction::Abort;
        if (route->handler != config::HandlerKind::None) return acceptWebSocket(*route, upgrade);
    }
    if (route->handler != config::HandlerKind::None) {
        respondInternal(*route);
        return http::HeadAction::Continue;
    }
    proxy::UpstreamGroup* group = snapshot_->upstream(route->upstream);
    if (!group) {
        respondError(502, "no such upstream");
        return http::HeadAction::Abort;
    }
    proxy::HttpExchange::Request forward;
    forward.head = &parser_.request();
    forward.client_ip = client_ip_;
    forward.scheme = listener_->tls ? "https" : "http";
    forward.client_hash = client_hash_;
    if (parser_.chunked()) {
        forward.body_framing = http::BodyFraming::Chunked;
    } else if (parser_.hasContentLength() && parser_.contentLength() > 0) {
        forward.body_framing = http::BodyFraming::ContentLength;
        forward.content_length = parser_.contentLength();
    } else if (request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
        // RFC 9110 8.6: a request that usually carries content says it has none.
        forward.body_framing = http::BodyFraming::ContentLength;
    }
    if (upgrade.kind == ws::UpgradeKind::WebSocket) {
        forward.websocket = true;
        forward.websocket_key = std::string(upgrade.key);
        forward.body_framing = http::BodyFraming::None;
        if (!route->websocket.subprotocols.empty() && !upgrade.subprotocols.empty())
            forward.override_headers.push_back(
                {"Sec-WebSocket-Protocol", ws::filterSubprotocols(upgrade.subprotocols, route->websocket.subprotocols)});
    }
    state_ = State::Proxying;
    exchange_ = std::make_unique<proxy::HttpExchange>(static_cast<proxy::ExchangeOwner&>(*this), worker_.loop(), *group, *route, forward);
    exchange_->start();
    return http::HeadAction::Continue;
}

bool ClientConnection::onBody(const char* data, std::size_t length) {
    body_bytes_ += length;
    const std::size_t limit = snapshot_->config().limits.max_body_bytes;
    if (state_ == State::Responding && !response_done_) {
        // A built-in handler reads this body (a pubsub publish): bounded by max_body_bytes, or
        // by the subscriber queue bound when that is unlimited.
        const std::size_t cap = limit ? limit : route_->pubsub.queue_bytes;
        if (body_.size() + length > cap) {
            respondError(413, "body too large");
            return false;
        }
        body_.append(data, length);
        return true;
    }
    if (limit && body_bytes_ > limit) {
        // Only a chunked body gets here (a declared length is checked in onHead).
        retireExchange();
        respondError(413, "body too large");
        return false;
    }
    if (exchange_) exchange_->sendBody(data, length);
    return true;
}

void ClientConnection::onMessageComplete() {
    request_complete_ = true;
    if (exchange_) exchange_->endBody();
    if (state_ == State::Responding && !response_done_) {
        handlers::Reply reply = servePubSub();
        status_ = reply.status;
        bytes_out_ += reply.bytes;
        response_done_ = true;
        client_->flush();
    }
}

handlers::Reply ClientConnection::servePubSub() {
    const http::RequestHead& request = parser_.request();
    const http::Header* authorization = http::findHeader(request.headers, "Authorization");
    auto reply = handlers::servePubSubHttp(client_->output(), worker_.pubsub(), *route_, request.method, request.path(),
                                           authorization ? std::string_view(authorization->value) : std::string_view{},
                                           std::move(body_), response_keep_alive_);
    body_.clear();
    return handlers::Reply{reply.status, reply.bytes};
}

void ClientConnection::respondInternal(const config::Route& route) {
    state_ = State::Responding;
    response_keep_alive_ = clientKeepAlive();
    const http::RequestHead& request = parser_.request();
    handlers::Reply reply;
    switch (route.handler) {
        case config::HandlerKind::Health:
            reply = handlers::serveHealth(client_->output(), request, response_keep_alive_);
            break;
        case config::HandlerKind::Static:
            reply = handlers::serveStatic(client_->output(), route, request, response_keep_alive_);
            break;
        case config::HandlerKind::Metrics:
        case config::HandlerKind::Status: {
            observe::ProcessInfo info = worker_.metrics().processInfo();
            worker_.pubsub().registry().totals(info.pubsub_channels, info.pubsub_subscribers);
            const bool prometheus = route.handler == config::HandlerKind::Metrics;
            std::string body = prometheus ? worker_.metrics().renderPrometheus(info) : worker_.metrics().renderJson(info);
            reply.status = 200;
            reply.bytes = http::writeSimpleResponse(client_->output(), 200,
                                                    prometheus ? "text/plain; version=0.0.4" : "application/json", body,
                                                    response_keep_alive_, {}, request.method == "HEAD");
            break;
        }
        case config::HandlerKind::PubSub:
            if (request.method == "POST") {
                // The body is the message: answer once it is complete (onMessageComplete).
                body_.clear();
                return;
            }
            reply = servePubSub();
            break;
        default:
            // WebSocket-only handlers (echo, pubsub) and those of later issues answer 404 to
            // plain HTTP until they are wired here.
            reply.status = 404;
            reply.bytes = http::writeErrorResponse(client_->output(), 404, response_keep_alive_);
            break;
    }
    status_ = reply.status;
    bytes_out_ += reply.bytes;
    response_done_ = true;
    client_->flush();
}

// ---- the exchange with the upstream ---------------------------------------------------------

bool ClientConnection::clientKeepAlive() const {
    return parser_.keepAlive() && !draining_ && !worker_.stopping() && !client_eof_;
}

void ClientConnection::onExchangeComplete(bool keep_alive) {
    // The body may still be arriving (the upstream answered early): then the connection cannot
    // be reused, since we would have to read and discard an unbounded rest.
    responseDone(keep_alive && request_complete_);
}

void ClientConnection::onExchangeFailed(int status, const char* reason) {
    if (status == 0) {
        // Part of the response went out already: the client sees the connection close.
        LOG_INFO("client %s: %s after the response started", client_ip_.c_str(), reason);
        status_ = status_ ? status_ : 502;
        logAccess();
        finish(reason);
        return;
    }
    respondError(status, reason);
}

void ClientConnection::onUpstreamDrained() {
    if (state_ == State::Proxying && !request_complete_ && !client_->isReading()) {
        client_->resumeReading();
        processInput();
    }
}

// ---- ending a response ----------------------------------------------------------------------

void ClientConnection::responseDone(bool keep_alive) {
    ws_lease_.reset();  // a response, not a 101: an upgrade that did not happen frees its slot
    logAccess();
    ++requests_;
    retireExchange();
    client_->flush();
    if (!keep_alive || draining_ || worker_.stopping()) {
        closeAfterFlush();
        return;
    }
    parser_.resume();
    beginRequest();
    if (evbuffer_get_length(client_->input()) > 0) {
        // A pipelined request is waiting; continue from the loop, not from inside the callback
        // that completed this response.
        if (!resume_event_) resume_event_.reset(event_new(worker_.loop().base(), -1, 0, &ClientConnection::onResume, this));
        event_active(resume_event_.get(), EV_TIMEOUT, 0);
    } else {
        client_->resumeReading();
        armTimer(snapshot_->config().limits.keepalive_timeout);
    }
}

void ClientConnection::onResume(int, short, void* arg) {
    auto* self = static_cast<ClientConnection*>(arg);
    if (self->state_ != State::ReadingHead) return;
    // Backpressure on pipelining: do not start the next response while the client is not
    // reading this one.
    if (self->client_->outputLength() > proxy::kHighWatermark) return;  // onDrained resumes
    self->client_->resumeReading();
    self->armTimer(self->snapshot_->config().limits.client_header_timeout);
    self->processInput();
}

void ClientConnection::respondError(int status, const char* reason, const http::HeaderList& extra) {
    ws_lease_.reset();
    retireExchange();
    if (bytes_out_ > 0 && status_ != 0 && state_ != State::ReadingHead) {
        finish(reason);
        return;
    }
    status_ = status;
    bytes_out_ += http::writeErrorResponse(client_->output(), status, false, extra);
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
    armTimer(kLingerTimeout);
}

void ClientConnection::onDrained(Stream& stream) {
    if (exchange_) exchange_->onClientDrained();
    if (state_ == State::Closing && (client_eof_ || worker_.stopping()) && stream.outputLength() == 0) {
        finish("closed");
    } else if (state_ == State::ReadingHead && !client_->isReading()) {
        onResume(0, 0, this);
    }
}

void ClientConnection::onEof(Stream&) {
    client_eof_ = true;
    switch (state_) {
        case State::ReadingHead:
            if (parser_.inMessage()) LOG_DEBUG("client %s: closed mid-request", client_ip_.c_str());
            finish("client closed");
            return;
        case State::Proxying:
        case State::Responding:
            // A client may half-close after its request and still read the response.
            if (!request_complete_) {
                if (exchange_) exchange_->abort();
                status_ = status_ ? status_ : 499;
                logAccess();
                finish("client closed mid-request");
            }
            return;
        case State::Closing:
            if (client_->outputLength() == 0) finish("closed");
            return;
        case State::Upgraded:
        case State::Closed:
            return;
    }
}

void ClientConnection::onTlsHandshake(Stream&) { listener_stats_.tls_handshakes.add(); }

void ClientConnection::onError(Stream& stream, int error) {
    if (stream.isTls() && !stream.tlsEstablished()) {
        // A failed handshake: logged at info with the reason, counted, nothing else disturbed.
        listener_stats_.tls_failures.add();
        LOG_INFO("client %s: TLS handshake failed: %s", client_ip_.c_str(), stream.tlsError().c_str());
        finish("TLS handshake failed");
        return;
    }
    LOG_DEBUG("client %s: %s", client_ip_.c_str(), strerror(error));
    if (exchange_) exchange_->abort();
    if (state_ == State::Proxying || state_ == State::Responding) {
        status_ = status_ ? status_ : 499;
        logAccess();
    }
    finish("client error");
}

void ClientConnection::retireExchange() {
    if (!exchange_) return;
    upstream_name_ = exchange_->upstreamName();  // still wanted by the access log
    exchange_->abort();
    worker_.loop().deferDelete(std::shared_ptr<proxy::HttpExchange>(std::move(exchange_)));
}

void ClientConnection::armTimer(std::chrono::milliseconds timeout) { addTimer(worker_.loop(), timer_.get(), timeout); }

void ClientConnection::onTimer(int, short, void* arg) {
    auto* self = static_cast<ClientConnection*>(arg);
    switch (self->state_) {
        case State::ReadingHead:
            if (self->parser_.inMessage() || evbuffer_get_length(self->client_->input()) > 0 ||
                (self->requests_ == 0 && self->request_start_ != std::chrono::steady_clock::time_point{})) {
                self->respondError(408, "client header timeout");  // slowloris
            } else {
                self->finish("keep-alive timeout");
            }
            return;
        case State::Closing:
            self->finish("linger timeout");
            return;
        default:
            return;
    }
}

void ClientConnection::drain() {
    draining_ = true;
    if (state_ == State::Upgraded && session_) {
        session_->goAway();
        return;
    }
    if (state_ == State::ReadingHead && !parser_.inMessage() && evbuffer_get_length(client_->input()) == 0)
        finish("shutting down");
}

void ClientConnection::logAccess() {
    if (logged_ || status_ == 0) return;
    logged_ = true;
    if (route_) snapshot_->routeStats(*route_).requests[status_ >= 100 && status_ < 600 ? status_ / 100 : 0].add();
    observe::AccessLog& log = worker_.accessLog();
    if (!log.enabled()) return;
    const http::RequestHead& request = parser_.request();
    observe::AccessRecord record;
    record.time = std::chrono::system_clock::now();
    record.client = client_ip_;
    record.method = request.method.empty() ? std::string_view("-") : std::string_view(request.method);
    record.path = request.target.empty() ? std::string_view("-") : std::string_view(request.target);
    record.status = status_;
    record.bytes_in = bytes_in_;
    record.bytes_out = bytes_out_;
    record.upstream = exchange_ ? std::string_view(exchange_->upstreamName()) : std::string_view(upstream_name_);
    auto start = request_start_ == std::chrono::steady_clock::time_point{} ? std::chrono::steady_clock::now() : request_start_;
    record.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (const http::Header* h = http::findHeader(request.headers, "Referer")) record.referer = h->value;
    if (const http::Header* h = http::findHeader(request.headers, "User-Agent")) record.user_agent = h->value;
    log.write(record);
}

void ClientConnection::finish(const char* reason) {
    if (state_ == State::Closed) return;
    LOG_DEBUG("client %s: closed (%s) in state %s", client_ip_.c_str(), reason, toString(state_));
    state_ = State::Closed;
    listener_stats_.open.sub();
    event_del(timer_.get());
    if (resume_event_) event_del(resume_event_.get());
    retireExchange();
    if (client_) client_->pauseReading();  // after an upgrade the session has the socket
    worker_.onConnectionFinished(this);
}

}  // namespace portico::net
