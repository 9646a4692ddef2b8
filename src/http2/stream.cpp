// SPDX-License-Identifier: Apache-2.0
#include "http2/stream.h"

#include <algorithm>
#include <charconv>
#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <utility>
#include <vector>

#include "http2/stream_bytes.h"
#include "portico/core/log.h"
#include "portico/handlers/pubsub.h"
#include "portico/http/header_rewrite.h"
#include "portico/http/request_checks.h"
#include "portico/http/simple_response.h"
#include "portico/http2/connection.h"
#include "portico/net/builtin_requests.h"
#include "portico/net/request_log.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"
#include "portico/proxy/http_exchange.h"
#include "portico/ws/handshake.h"

namespace portico::http2 {

namespace {

ssize_t readBodyCallback(nghttp2_session*, std::int32_t, std::uint8_t* buffer, std::size_t length, std::uint32_t* flags,
                         nghttp2_data_source* source, void*) {
    return static_cast<Stream*>(source->ptr)->readBody(buffer, length, flags);
}

}  // namespace

Stream::Stream(Connection& connection, std::int32_t id, std::shared_ptr<net::WorkerSnapshot> snapshot)
    : connection_(connection),
      id_(id),
      snapshot_(std::move(snapshot)),
      fields_(snapshot_->config().limits.max_header_bytes),
      pending_(evbuffer_new()),
      start_(std::chrono::steady_clock::now()),
      last_data_(start_) {}

Stream::~Stream() {
    // onClosed did this, unless the connection never closed the stream.
    if (StreamBytes* bytes = std::exchange(bytes_, nullptr)) bytes->onStreamClosed();
    if (exchange_) exchange_->abort();
    if (ws_stats_) ws_stats_->ws_open.sub();
}

// ---- the request ------------------------------------------------------------------------------

void Stream::onField(std::string_view name, std::string_view value) {
    // The verdict waits for the end of the block (onHeadersComplete): 431, or RST_STREAM.
    fields_.add(name, value);
}

void Stream::onHeadersComplete(bool end_stream) {
    headers_complete_ = true;
    request_complete_ = end_stream;
    bytes_in_ += fields_.bytes();
    const RequestFields::Verdict verdict = fields_.finish(head_);
    if (verdict == RequestFields::Verdict::TooLarge) {
        respondError(431, fields_.error());
        return;
    }
    if (verdict != RequestFields::Verdict::Ok) {
        // RFC 9113 8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR.
        LOG_INFO("client %s: HTTP/2 stream %d: %s", connection_.client().ip.c_str(), id_, fields_.error());
        reset(NGHTTP2_PROTOCOL_ERROR);
        return;
    }
    routeRequest();
}

void Stream::routeRequest() {
    const config::Config& config = snapshot_->config();
    if (!fields_.protocol().empty()) {
        // RFC 8441 4: an extended CONNECT. A protocol we do not speak is not an error of the
        // stream's framing: it is answered.
        if (!http::equalsIgnoreCase(fields_.protocol(), "websocket")) {
            respondError(501, "extended CONNECT for an unknown protocol");
            return;
        }
        websocket_ = true;
        websocket_key_ = ws::generateKey();
        asWebSocketUpgrade(head_, websocket_key_);
    }
    // Target, Host and path: normalized here, so that what we route is what goes upstream.
    const http::RequestVerdict checked = http::checkRequestHead(head_, "");
    if (!checked.ok()) {
        LOG_INFO("client %s: refused: %s", connection_.client().ip.c_str(), checked.reason);
        respondError(checked.status, checked.reason);
        return;
    }
    std::uint64_t declared = 0;
    const http::Header* length = http::findHeader(head_.headers, "content-length");
    if (length) std::from_chars(length->value.data(), length->value.data() + length->value.size(), declared);
    if (config.limits.max_body_bytes && declared > config.limits.max_body_bytes) {
        respondError(413, "body too large");
        return;
    }
    const std::string_view host = http::findHeader(head_.headers, "Host")->value;  // checkRequestHead made one
    if (const auto& redirect = connection_.listener().redirect_https) {
        // `redirect_https` with `http2: true`: each stream is answered as an HTTP/1.1 request
        // on that listener would be (308 keeps the method and body, RFC 9110 15.4.9); an
        // extended CONNECT too (a 3xx never opens a WebSocket; browsers do not follow it).
        websocket_ = false;
        http::respond(*this, 308, "text/plain", "308 Permanent Redirect\n",
                      {{"Location", net::httpsRedirectLocation(host, *redirect, head_.target)}}, headOnly());
        return;
    }
    const config::Route* route = snapshot_->snapshot().routes.match(host, head_.path());
    if (!route) {
        http::respond(*this, 404, "text/plain", "404 Not Found\n", {}, headOnly());
        return;
    }
    route_ = route;
    if (websocket_) {
        startWebSocket(*route);
        return;
    }
    if ((route->handler == config::HandlerKind::PubSub || route->handler == config::HandlerKind::Publish) &&
        head_.method == "POST") {
        startPublish(*route);
        return;
    }
    if (route->handler != config::HandlerKind::None) {
        if (!net::serveBuiltin(connection_.worker(), *route, head_, *this)) servePubSub();
        return;
    }
    startExchange(*route);
}

void Stream::startExchange(const config::Route& route) {
    proxy::HttpExchange::Request forward;
    if (const http::Header* length = http::findHeader(head_.headers, "content-length")) {
        // nghttp2 holds the DATA frames to it (RFC 9113 8.1.1: a mismatch is malformed).
        std::uint64_t declared = 0;
        std::from_chars(length->value.data(), length->value.data() + length->value.size(), declared);
        forward.body_framing = declared > 0 ? http::BodyFraming::ContentLength : http::BodyFraming::None;
        forward.content_length = declared;
        if (declared == 0 && (head_.method == "POST" || head_.method == "PUT" || head_.method == "PATCH"))
            forward.body_framing = http::BodyFraming::ContentLength;
    } else if (!request_complete_) {
        // The length is not known: the body goes up chunked as its DATA frames come.
        forward.body_framing = http::BodyFraming::Chunked;
    } else if (head_.method == "POST" || head_.method == "PUT" || head_.method == "PATCH") {
        // RFC 9110 8.6: a request that usually carries content says it has none.
        forward.body_framing = http::BodyFraming::ContentLength;
    }
    startExchange(route, std::move(forward));
}

void Stream::startExchange(const config::Route& route, proxy::HttpExchange::Request forward) {
    proxy::UpstreamGroup* group = snapshot_->upstream(route);
    if (!group) {
        respondError(502, "no such upstream");
        return;
    }
    forward.head = &head_;
    forward.client_ip = connection_.client().ip;
    forward.scheme = connection_.client().tls ? "https" : "http";
    forward.client_hash = connection_.client().hash;
    exchange_ = connection_.exchanges().take();
    exchange_->begin(static_cast<proxy::ExchangeOwner&>(*this), *group, route, forward);
    exchange_->start();
    // A WebSocket handshake has no body: what DATA brings is the WebSocket's.
    if (exchange_ && (request_complete_ || forward.websocket)) exchange_->endBody();
}

void Stream::startPublish(const config::Route& route) {
    if (!net::publishAuthorized(route, head_)) {
        respondError(401, "publish without a valid token", {{"WWW-Authenticate", "Bearer"}});
        return;
    }
    publishing_ = true;
    if (request_complete_) servePubSub();
}

void Stream::servePubSub() {
    publishing_ = false;
    const bool head_only = headOnly();
    if (!alive_ && !closed_) alive_ = std::make_shared<char>();  // made for a backplane's answer only
    auto done = [this, alive = std::weak_ptr<char>(alive_), head_only](const handlers::PubSubAnswer& answer) {
        if (alive.expired() || head_sent_) return;
        handlers::sendPubSubAnswer(*this, answer, head_only);
    };
    std::string body = std::move(body_);
    body_.clear();
    noteBuffers();
    net::servePubSubRequest(connection_.worker(), snapshot_->config(), *route_, head_, std::move(body), std::move(done));
}

void Stream::onData(const std::uint8_t* data, std::size_t length) {
    bytes_in_ += length;
    body_bytes_ += length;
    last_data_ = std::chrono::steady_clock::now();
    if (websocket_) {
        // WebSocket bytes for the session (its StreamBytes gives the window back as it reads
        // them); before it started they wait, and so does their window; after it ended they
        // are dropped.
        if (bytes_) {
            bytes_->onData(reinterpret_cast<const char*>(data), length);
        } else if (session_) {
            connection_.consume(id_, length);
        } else {
            if (!early_) early_.reset(evbuffer_new());  // made for a WebSocket only
            evbuffer_add(early_.get(), data, length);
            held_ += length;
        }
        return;
    }
    const std::size_t limit = snapshot_->config().limits.max_body_bytes;
    const char* bytes = reinterpret_cast<const char*>(data);
    if (publishing_) {
        // A publish's message: bounded by the route's max_message_bytes, queue_bytes and max_body_bytes.
        if (!handlers::publishBodyFits(connection_.worker().pubsub(), *route_, limit, body_.size() + length)) {
            publishing_ = false;
            respondError(413, "body too large");
        } else {
            body_.append(bytes, length);
        }
        connection_.consume(id_, length);
        return;
    }
    if (exchange_ && limit && body_bytes_ > limit) {
        respondError(413, "body too large");
        connection_.consume(id_, length);
        return;
    }
    if (!exchange_) {
        connection_.consume(id_, length);  // answered already: the rest is read and dropped
        return;
    }
    exchange_->sendBody(bytes, length);
    // RFC 9113 5.2: the window comes back when the upstream has taken the bytes, so that a slow
    // upstream stops this stream's client, not the connection (releaseHeld, from noteBuffers).
    held_ += length;
}

void Stream::onEndStream() {
    request_complete_ = true;
    // The client sends no more: the widening goes back to the pool once the body went on (bytes
    // still queued for the upstream hold it: other streams widened meanwhile would hold more).
    if (held_ == 0) narrowWindow();
    if (websocket_) {
        // RFC 8441 5: END_STREAM is the TCP FIN of the tunnel.
        if (bytes_) bytes_->onEndStream();
        return;
    }
    if (exchange_ && fields_.verdict() == RequestFields::Verdict::TooLarge) {  // the trailers'
        respondError(431, fields_.error());
        return;
    }
    // Trailers go on in a chunked upstream request; a body sent with its Content-Length has no
    // place for them (HTTP/1.1), and they are dropped, as nginx does.
    if (exchange_) exchange_->endBody(&fields_.trailers());
    if (publishing_) servePubSub();
}

void Stream::onUpstreamDrained() { noteBuffers(); }

void Stream::giveWindow(std::size_t n) {
    if (n == 0) return;
    connection_.consume(id_, n);
    given_ += n;
    // A whole window went on: the stream is widened (doubled) while the budget's pool has room.
    if (!request_complete_ && !closed_ && given_ >= connection_.initialStreamWindow() + widened_)
        widened_ = connection_.widenWindow(id_, widened_);
}

void Stream::releaseHeld() {
    if (held_ == 0) return;
    // Body bytes the exchange still queues keep their window (its queue's head and chunk framing
    // make it a little more). A WebSocket's early DATA waits in early_ for its session, not in
    // the exchange's queue (the upgrade's): held until the exchange retires (openBytes).
    std::size_t queued = 0;
    if (exchange_) queued = websocket_ ? held_ : exchange_->upstreamQueued();
    if (held_ <= queued) return;
    giveWindow(held_ - queued);
    held_ = queued;
    if (request_complete_ && held_ == 0) narrowWindow();  // the last of the body went on
}

void Stream::narrowWindow() {
    connection_.narrowWindow(std::exchange(widened_, 0));
}

void Stream::noteBuffers() {
    releaseHeld();
    std::size_t request = 0;
    if (!closed_) {
        // Not a publish's message (body_): bounded by the route's limits and client_body_timeout,
        // and its window comes back at once, so it holds no connection window back.
        request = early_ ? evbuffer_get_length(early_.get()) : 0;
        if (exchange_) request += exchange_->upstreamQueued();
        if (bytes_) request += bytes_->withheld();
        // A WebSocket's bytes its session read and queued for its upstream.
        if (session_) request += session_->queuedForUpstream();
    }
    connection_.noteRequestBytes(request_noted_, request);
    noteResponseBytes();
}

void Stream::noteResponseBytes() {
    connection_.noteResponseBytes(response_noted_, closed_ ? 0 : memoryQueued());
}

std::size_t Stream::memoryQueued() const { return evbuffer_get_length(pending_.get()) - file_left_; }

bool Stream::holdsResponseBytes() const { return memoryQueued() > 0 && connection_.sendBlocked(id_); }

void Stream::dropPending() {
    evbuffer_drain(pending_.get(), evbuffer_get_length(pending_.get()));
    file_left_ = memory_before_file_ = 0;
}

void Stream::tick(std::chrono::steady_clock::time_point now) {
    if (websocket_ && session_ended_ && !closed_ && now - session_ended_at_ >= kWebSocketLinger) {
        // The WebSocket is over and our END_STREAM went out long ago; a client that does not end
        // its side would hold the stream (and its place under max_concurrent_streams) forever.
        reset(reset_after_output_ ? NGHTTP2_CONNECT_ERROR : NGHTTP2_NO_ERROR);
        return;
    }
    // client_send_timeout: response bytes the client's window takes none of that long (a
    // WebSocket's session has timeouts of its own). They are dropped with the stream. A stream
    // whose own window is open waits on the connection, not on its client, while the connection
    // moves: the socket backlogged (a client reading slower than we could send) or its bytes
    // taken since the last tick (nghttp2 sends streams of one priority one after another, so a
    // paced connection window moves one stream at a time). A socket that takes nothing is the
    // connection's own client_send_timeout; a stream whose window the client keeps shut is its
    // own, whatever the others do.
    const std::uint64_t connection_taken = connection_.socketTaken();
    const bool connection_moved = std::exchange(connection_taken_seen_, connection_taken) != connection_taken;
    const bool waits_on_connection =
        (connection_.socketBacklogged() || connection_moved) &&
        nghttp2_session_get_stream_remote_window_size(connection_.session(), id_) > 0;
    if (evbuffer_get_length(pending_.get()) == 0 || closed_ || session_ || waits_on_connection) {
        send_stall_.clear();
    } else if (send_stall_.left(sent_, now, snapshot_->config().limits.client_send_timeout) <=
               tickSlack(snapshot_->config().limits.client_send_timeout)) {
        LOG_INFO("client %s: HTTP/2 stream %d: took no byte for client_send_timeout", connection_.client().ip.c_str(), id_);
        dropPending();
        reset(NGHTTP2_CANCEL);
        return;
    }
    // client_body_timeout: the longest wait between two DATA frames of a body, while we read
    // (a stream held for its upstream, or for the connection's budget, is not the client's fault:
    // one that may send on its own window while the connection's is held back and spent waits on
    // us. A publish's message is the client's alone to end: never exempt).
    if (!headers_complete_ || request_complete_ || closed_ || websocket_) return;
    if (held_ > 0) {
        last_data_ = now;  // its window waits for its upstream: the wait starts when it is back
        return;
    }
    if (!publishing_ && exchange_ && nghttp2_session_get_stream_local_window_size(connection_.session(), id_) > 0) {
        if (connection_.windowExhausted()) {
            last_data_ = now;  // the wait starts again when the window is back
            return;
        }
        // Since the connection's window last ran short of a frame (the client's other streams
        // took it), this stream could not send either: its wait counts from then.
        last_data_ = std::max(last_data_, connection_.windowShortAt());
    }
    if (!exchange_ && !publishing_) return;
    if (now - last_data_ < snapshot_->config().limits.client_body_timeout) return;
    respondError(408, "client body timeout");
}

// ---- the response -----------------------------------------------------------------------------

void Stream::sendHead(const http::ResponseHead& head, const http::ResponseBody& body) {
    if (closed_ || head_sent_ || refused_) return;
    const bool interim = head.status >= 100 && head.status < 200 && head.status != 101;
    if (websocket_ && interim) return;  // nothing for an extended CONNECT before its answer
    if (head.status == 101) {
        // The upstream accepted the WebSocket (the exchange checked its Accept against our
        // key): the stream's 200 (RFC 8441 5), with what it agreed to.
        if (!websocket_) {
            reset(NGHTTP2_INTERNAL_ERROR);
            return;
        }
        const http::Header* protocol = http::findHeader(head.headers, "Sec-WebSocket-Protocol");
        const http::Header* extensions = http::findHeader(head.headers, "Sec-WebSocket-Extensions");
        acceptWebSocket(head, protocol ? std::string_view(protocol->value) : std::string_view{},
                        extensions ? std::string_view(extensions->value) : std::string_view{});
        return;
    }
    if (websocket_ && !(head.status >= 400 && head.status < 600)) {
        // A client reads a 2xx to an extended CONNECT as an open WebSocket: anything but a 101
        // that is not an error of its own becomes 502, and the rest of the answer is dropped.
        LOG_INFO("client %s: upstream answered %d to a WebSocket over HTTP/2: 502", connection_.client().ip.c_str(),
                 head.status);
        websocket_ = false;
        ws_lease_.reset();
        http::respondError(*this, 502, {}, false);
        refused_ = true;
        return;
    }
    if (websocket_) {
        websocket_ = false;  // an error answer: the stream is an ordinary response now
        ws_lease_.reset();   // no WebSocket: its per-IP slot is free again
    }
    submitHead(head, body);
}

void Stream::submitHead(const http::ResponseHead& head, const http::ResponseBody& body) {
    if (closed_ || head_sent_) return;
    const bool interim = head.status >= 100 && head.status < 200;
    // The fields as HTTP/2 has them: lowercase, none of the connection-specific ones (RFC 9113
    // 8.2.2), the length only when known. The names are lowercased into one buffer and the
    // values point into `head`: nghttp2 copies the fields when they are submitted, so the
    // buffers are this thread's, reused from response to response (no allocation per field).
    thread_local std::string names;
    thread_local std::vector<nghttp2_nv> fields;
    names.clear();
    fields.clear();
    char status[12];
    const auto status_end = std::to_chars(status, status + sizeof status, head.status).ptr;
    char length[24];
    char* length_end = length;
    if (!interim && body.length && head.status != 204 && head.status != 304)
        length_end = std::to_chars(length, length + sizeof length, *body.length).ptr;
    const auto tokens = http::connectionTokens(head.headers);
    // Offsets into `names` first (it may grow), pointers once it is complete.
    struct Field {
        std::size_t name_at;
        std::size_t name_size;
        std::string_view value;
    };
    thread_local std::vector<Field> kept;
    kept.clear();
    for (const http::Header& h : head.headers) {
        if (http::isHopByHop(h.name, tokens) || http::equalsIgnoreCase(h.name, "Content-Length") ||
            http::equalsIgnoreCase(h.name, "Proxy-Connection"))
            continue;
        const std::size_t at = names.size();
        kept.push_back({at, h.name.size(), h.value});
        names.resize(at + h.name.size());
        std::transform(h.name.begin(), h.name.end(), names.begin() + static_cast<std::ptrdiff_t>(at),
                       [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    }
    auto nv = [](std::string_view name, std::string_view value) {
        return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                          NGHTTP2_NV_FLAG_NONE};
    };
    fields.push_back(nv(":status", std::string_view(status, static_cast<std::size_t>(status_end - status))));
    for (const Field& f : kept) fields.push_back(nv(std::string_view(names).substr(f.name_at, f.name_size), f.value));
    if (length_end != length)
        fields.push_back(nv("content-length", std::string_view(length, static_cast<std::size_t>(length_end - length))));
    nghttp2_session* session = connection_.session();
    if (interim) {
        nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id_, nullptr, fields.data(), fields.size(), nullptr);
        connection_.scheduleSend();
        return;
    }
    head_sent_ = true;
    status_ = head.status;
    has_body_ = body.present;
    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = readBodyCallback;
    nghttp2_submit_response(session, id_, fields.data(), fields.size(), has_body_ ? &provider : nullptr);
    if (!has_body_) response_ended_ = true;
    connection_.scheduleSend();
}

void Stream::resumeData() {
    if (deferred_ && !closed_) {
        deferred_ = false;
        nghttp2_session_resume_data(connection_.session(), id_);
    }
    connection_.scheduleSend();
}

void Stream::sendBody(const char* data, std::size_t length) {
    if (closed_ || !has_body_ || refused_ || length == 0) return;
    evbuffer_add(pending_.get(), data, length);
    bytes_out_ += length;
    noteResponseBytes();  // before the exchange asks backlogged()
    resumeData();
}

void Stream::sendFile(core::UniqueFd fd, std::uint64_t length) {
    if (closed_ || !has_body_ || length == 0) return;
    // Read through a mapping, not sendfile: the bytes go into DATA frames. Still never read
    // whole into memory by us; pages come as the frames are made.
    evbuffer_file_segment* segment = evbuffer_file_segment_new(
        fd.get(), 0, static_cast<ev_off_t>(length), EVBUF_FS_CLOSE_ON_FREE | EVBUF_FS_DISABLE_SENDFILE);
    if (!segment) {
        reset(NGHTTP2_INTERNAL_ERROR);
        return;
    }
    fd.release();
    memory_before_file_ = evbuffer_get_length(pending_.get()) - file_left_;
    file_left_ += static_cast<std::size_t>(length);
    evbuffer_add_file_segment(pending_.get(), segment, 0, static_cast<ev_off_t>(length));
    evbuffer_file_segment_free(segment);  // the buffer holds its own reference
    bytes_out_ += length;
    noteResponseBytes();
    resumeData();
}

void Stream::endResponse() {
    if (closed_ || response_ended_ || refused_) return;
    response_ended_ = true;
    resumeData();
}

bool Stream::backlogged() const {
    // Its own bytes over the watermark, or the connection's over limits.http2_connection_buffer
    // (a hundred streams each under its watermark are still a lot for one client) while it holds
    // bytes of its own.
    const bool over = memoryQueued() > proxy::kHighWatermark ||
                      (connection_.responsesOverBudget() && holdsResponseBytes());
    if (over) upstream_paused_ = true;
    return over;
}

void Stream::flush() { connection_.scheduleSend(); }

ssize_t Stream::readBody(std::uint8_t* buffer, std::size_t length, std::uint32_t* flags) {
    const int copied = evbuffer_remove(pending_.get(), buffer, length);
    if (copied < 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    sent_ += static_cast<std::uint64_t>(copied);
    if (file_left_ > 0) {  // the memory ahead of the file goes first, then the file's pages
        const std::size_t from_memory = std::min(memory_before_file_, static_cast<std::size_t>(copied));
        memory_before_file_ -= from_memory;
        file_left_ -= std::min(file_left_, static_cast<std::size_t>(copied) - from_memory);
    }
    noteResponseBytes();
    if (session_) bytes_out_ += static_cast<std::uint64_t>(copied);  // a WebSocket's, as it goes
    if (evbuffer_get_length(pending_.get()) == 0 && response_ended_) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (copied == 0) {
        deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return copied;
}

void Stream::afterSend() {
    if (bytes_) bytes_->afterSend();
    resetIfOutputSent();
    noteBuffers();
    if (upstream_paused_ && exchange_ && memoryQueued() <= proxy::kLowWatermark &&
        !(connection_.responsesOverBudget() && holdsResponseBytes())) {
        upstream_paused_ = false;
        exchange_->onClientDrained();
    }
}

// ---- the exchange's end -----------------------------------------------------------------------

void Stream::onExchangeComplete(bool) {
    retireExchange();
    connection_.scheduleSend();
}

void Stream::onExchangeFailed(int status, const char* reason) {
    retireExchange();
    if (status != 0 && !head_sent_) {
        respondError(status, reason);
        return;
    }
    // Part of the response went out: the client sees the stream reset.
    LOG_INFO("client %s: %s after the response started", connection_.client().ip.c_str(), reason);
    if (status_ == 0) status_ = 502;
    reset(NGHTTP2_INTERNAL_ERROR);
}

void Stream::respondError(int status, const char* reason, const http::HeaderList& extra) {
    retireExchange();
    publishing_ = false;
    if (head_sent_) {
        reset(NGHTTP2_INTERNAL_ERROR);
        return;
    }
    LOG_DEBUG("client %s: HTTP/2 stream %d: %d %s", connection_.client().ip.c_str(), id_, status, reason);
    http::respondError(*this, status, extra, headOnly());
}

void Stream::reset(std::uint32_t error_code) {
    if (closed_) return;
    retireExchange();
    nghttp2_submit_rst_stream(connection_.session(), NGHTTP2_FLAG_NONE, id_, error_code);
    connection_.scheduleSend();
}

void Stream::retireExchange() {
    if (!exchange_) return;
    upstream_name_ = exchange_->upstreamName();  // still wanted by the access log
    connection_.exchanges().give(std::move(exchange_));
    noteBuffers();  // nobody takes the held bytes now: their window goes back
}

void Stream::onClosed(std::uint32_t error_code) {
    if (closed_) return;
    closed_ = true;
    alive_.reset();
    retireExchange();
    narrowWindow();
    // A session still running ends now (an error on its client side: its upstream is closed),
    // before the stream and the session with it are deleted.
    if (StreamBytes* bytes = std::exchange(bytes_, nullptr)) bytes->onStreamClosed();
    // A stream the client reset, or that ended with the connection, before its answer: 499.
    noteBuffers();  // nothing held now
    if (status_ == 0 && headers_complete_) status_ = 499;
    if (error_code != NGHTTP2_NO_ERROR && !response_ended_ && status_ != 0 && status_ != 499)
        LOG_DEBUG("client %s: HTTP/2 stream %d reset (%u) mid-response", connection_.client().ip.c_str(), id_, error_code);
    logAccess();
}

void Stream::logAccess() {
    if (logged_ || status_ == 0) return;
    logged_ = true;
    net::RequestSummary summary;
    summary.route = route_;
    summary.request = &head_;
    summary.client_ip = connection_.client().ip;
    summary.protocol = "HTTP/2.0";
    summary.upstream = upstream_name_;
    summary.status = status_;
    summary.bytes_in = bytes_in_;
    summary.bytes_out = bytes_out_;
    summary.start = start_;
    net::logRequest(connection_.worker(), *snapshot_, connection_.listenerStats(), summary);
}

}  // namespace portico::http2
