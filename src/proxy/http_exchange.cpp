// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/http_exchange.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"
#include "portico/http/header_rewrite.h"
#include "portico/http/response_sink.h"
#include "portico/proxy/exchange_owner.h"
#include "portico/proxy/route_table.h"
#include "portico/proxy/upstream_group.h"
#include "portico/ws/handshake.h"

namespace portico::proxy {

namespace {

constexpr std::size_t kMaxResponseHeadBytes = 64 * 1024;
constexpr std::string_view kLastChunk = "0\r\n\r\n";  // a chunked body's end, without trailers

// RFC 9110 9.2.2: these may be repeated without harm, so a failed connect may be retried.
bool isIdempotent(std::string_view method) {
    return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
           method == "DELETE" || method == "TRACE";
}

// Appends "<hex length>\r\n" (a chunk of the request body, re-chunked for the upstream).
void appendChunkHeader(evbuffer* out, std::size_t length) {
    char line[24];
    int n = snprintf(line, sizeof line, "%zx\r\n", length);
    evbuffer_add(out, line, static_cast<std::size_t>(n));
}

}  // namespace

HttpExchange::HttpExchange(net::EventLoop& loop)
    : loop_(loop),
      response_parser_(http::MessageParser::Kind::Response, static_cast<http::MessageParser::Handler*>(this), kMaxResponseHeadBytes),
      timer_(loop.base(), &HttpExchange::onTimer, this) {}

// The socket goes at the loop's next turn, and none of its events, not even those already due,
// reach this exchange, which a pool may hand to another request before then.
void HttpExchange::dropUpstream() {
    if (!upstream_) return;
    upstream_->detach();
    loop_.deferDelete(std::move(upstream_));
}

void HttpExchange::begin(ExchangeOwner& owner, UpstreamGroup& group, const config::Route& route, const Request& request) {
    dropUpstream();  // ended without complete(): not reused
    stopTimer();
    owner_ = &owner;
    group_ = &group;
    request_ = request;
    phase_ = Phase::Connecting;
    send_stall_.clear();
    started_ = {};
    server_ = first_server_ = -1;
    attempts_ = interim_responses_ = 0;
    reused_ = response_started_ = head_sent_ = request_done_ = response_complete_ = upgrade_accepted_ =
        false;
    body_sent_ = 0;  // (the response parser is reset by tryServer, before each attempt)
    if (!last_chunk_.empty()) last_chunk_ = std::string();  // rare: its memory goes with the request

    http::UpstreamRequestInfo info;
    const std::string target = upstreamTarget(route, request.head->target);
    info.target = target;
    info.client_ip = request.client_ip;
    info.scheme = request.scheme;
    info.set_headers = set_headers_ = &route.set_headers;
    info.framing = request.body_framing;
    info.content_length = request.content_length;
    info.upgrade = request.websocket;
    if (!request.override_headers.empty()) info.override_headers = &request_.override_headers;
    head_.clear();
    head_.reserve(512 + request.head->headers.size() * 48);
    http::appendUpstreamRequestHead(head_, *request.head, info);
}

HttpExchange::~HttpExchange() {
    dropUpstream();
}

const std::string& HttpExchange::upstreamName() const {
    static const std::string kNone = "-";
    return server_ >= 0 ? group_->serverName(server_) : kNone;
}

void HttpExchange::start() {
    const CallbackScope scope(*this);
    started_ = Balancer::Clock::now();  // one clock read for both
    int server = group_->balancer().pick(request_.client_hash, -1, started_);
    if (server < 0) {
        fail(502, "no upstream server");
        return;
    }
    first_server_ = server;
    if (request_.body) {
        body_sent_ = request_.body->size();
        request_done_ = true;
    }
    tryServer(server, /*allow_pool=*/true);
}

void HttpExchange::tryServer(int server, bool allow_pool) {
    ++attempts_;
    if (server_ >= 0) group_->balancer().onRequestEnd(server_);
    server_ = server;
    group_->balancer().onRequestStart(server);
    dropUpstream();
    response_parser_.reset();
    upstream_ = allow_pool ? group_->takeIdle(server) : nullptr;
    reused_ = upstream_ != nullptr;
    if (reused_) {
        upstream_->setHandler(this);
        upstream_->setDirectRead(true);  // the response is parsed where it is read (onBytes)
        phase_ = Phase::Waiting;
    } else {
        int error = 0;
        upstream_ = group_->connect(server, this, error);
        if (!upstream_) {
            LOG_WARN("upstream %s: connect failed: %s", group_->serverName(server).c_str(), strerror(error));
            group_->markFailed(server);
            retryOrFail(502, "upstream unreachable");
            return;
        }
        upstream_->setDirectRead(true);
        phase_ = Phase::Connecting;
    }
    upstream_->setLowWatermark(kLowWatermark);
    if (request_.body) {
        evbuffer_add(upstream_->output(), head_.data(), head_.size());
        evbuffer_add(upstream_->output(), request_.body->data(), request_.body->size());
        upstream_->flush();
    } else if (request_done_ && request_.body_framing == http::BodyFraming::Chunked) {
        // A repeat of a chunked request that ended with no body byte sent (resends never carry
        // body bytes): its last chunk, and its trailers, went to the dead connection and must go
        // again, or the upstream waits for the body's end.
        const std::string_view end = last_chunk_.empty() ? kLastChunk : std::string_view(last_chunk_);
        evbuffer_add(upstream_->output(), head_.data(), head_.size());
        evbuffer_add(upstream_->output(), end.data(), end.size());
        upstream_->flush();
    } else {
        // Straight from head_ with one send() on a pooled connection (queued while connecting).
        upstream_->write(head_.data(), head_.size());
    }
    updateTimer(/*progress=*/true);  // a new attempt: a fresh deadline
}

void HttpExchange::retryOrFail(int status, const char* reason) {
    // Called when a connect failed: nothing reached the server. One retry on another server
    // when repeating the request cannot do harm: its method is idempotent and nothing of its
    // body has gone to the dead connection (those bytes are not kept; its trailers are), or its
    // whole body is kept (request_.body: never sent, so any method may go elsewhere).
    const bool resendable = request_.body || (body_sent_ == 0 && isIdempotent(request_.head->method));
    bool retryable = attempts_ < 2 && !response_started_ && resendable;
    if (retryable) {
        int next = group_->balancer().pick(request_.client_hash, server_, Balancer::Clock::now());
        if (next >= 0) {
            tryServer(next, /*allow_pool=*/true);
            return;
        }
    }
    fail(status, reason);
}

bool HttpExchange::mayResendOnFreshConnection() const {
    // Body bytes that went to the dead connection are not kept: a repeat would carry the head
    // and the rest of the body only, and the upstream would take a truncated body as complete
    // (chunked) or wait for bytes that never come (Content-Length). Such a request is answered
    // 502 instead, never repeated. (Its trailers are kept: last_chunk_.)
    if (body_sent_ > 0) return false;
    // RFC 9112 9.3.1.1: a non-idempotent request may be repeated only when the first attempt
    // cannot have been acted on: its body, not one byte of which went out, is still due.
    return isIdempotent(request_.head->method) || !request_done_;
}

void HttpExchange::fail(int status, const char* reason) {
    phase_ = Phase::Done;
    stopTimer();
    if (server_ >= 0) group_->balancer().onRequestEnd(server_);
    dropUpstream();
    owner_->onExchangeFailed(head_sent_ ? 0 : status, reason);
}

void HttpExchange::complete() {
    group_->stats().observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    phase_ = Phase::Done;
    stopTimer();
    group_->balancer().onRequestEnd(server_);
    bool upstream_reusable = response_parser_.keepAlive() && request_done_ && upstream_;
    if (upstream_reusable) {
        upstream_->setDirectRead(false);  // as the pool found it
        group_->putIdle(server_, std::move(upstream_));
    } else {
        dropUpstream();
    }
    if (!owner_->consumesResponse()) owner_->downstream().flush();
    // After a declined WebSocket handshake the client may send frames anyway: do not read on.
    owner_->onExchangeComplete(!request_.websocket);
}

HttpExchange::Wait HttpExchange::currentWait() const {
    if (phase_ == Phase::Done || !upstream_) return Wait::Nothing;
    if (phase_ == Phase::Connecting) return Wait::Connect;
    // Request bytes the upstream has not taken yet: it has to keep taking them.
    if (upstream_->outputLength() > 0) return Wait::Send;
    // The upstream's reading is paused for a client that does not take the response: the wait
    // is the client's (an upstream that answered fast is not the one timing out).
    if (phase_ == Phase::Streaming && !upstream_->isReading()) return Wait::Client;
    // The whole request went out (or the answer began): the upstream has to keep answering.
    if (request_done_ || response_started_) return Wait::Response;
    // Everything so far went out and the rest of the body is the client's to send: its
    // client_body_timeout runs, not ours (an upload slower than read_timeout is no failure).
    return Wait::Nothing;
}

void HttpExchange::updateTimer(bool progress) {
    const Wait wait = currentWait();
    if (wait == wait_ && !progress) return;  // still waiting for the same thing: the deadline stands
    wait_ = wait;
    const config::Upstream& config = group_->config();
    switch (wait) {
        case Wait::Nothing:
        case Wait::Client: timer_.clear(); return;
        case Wait::Connect: timer_.set(config.connect_timeout); return;
        case Wait::Send:
            // The timer looks every sendCheckInterval: the timeout runs from the check that first
            // saw the upstream's last take, not from the one after it.
            send_stall_.clear();
            send_stall_.watch(upstream_->sendProgress(), std::chrono::steady_clock::now());
            timer_.set(net::sendCheckInterval(config.send_timeout));
            return;
        case Wait::Response:
            // The owner's own deadline for this request (the bridge's request_timeout) or the upstream's.
            timer_.set(request_.read_timeout.count() > 0 ? request_.read_timeout : config.read_timeout);
            return;
    }
}

void HttpExchange::stopTimer() {
    wait_ = Wait::Nothing;
    timer_.clear();
}

void HttpExchange::onTimer(int, short, void* arg) {
    auto* self = static_cast<HttpExchange*>(arg);
    if (!self->timer_.fired()) return;  // moved later, or cleared, since armed
    const CallbackScope scope(*self);
    const char* upstream = self->upstreamName().c_str();
    switch (self->wait_) {
        case Wait::Connect:
            LOG_WARN("upstream %s: connect timed out", upstream);
            self->group_->markFailed(self->server_);
            self->retryOrFail(504, "upstream connect timed out");
            return;
        case Wait::Send: {
            // Asked, not waited for: the kernel wakes us for writing only after a third of a
            // large send buffer drained.
            const std::chrono::milliseconds send_timeout = self->group_->config().send_timeout;
            const std::chrono::milliseconds left =
                self->send_stall_.left(self->upstream_->sendProgress(), std::chrono::steady_clock::now(), send_timeout);
            if (left > std::chrono::milliseconds::zero()) {
                self->timer_.set(std::min(left, net::sendCheckInterval(send_timeout)));
                return;
            }
            LOG_WARN("upstream %s: send timed out (the request is not being read)", upstream);
            self->fail(504, "upstream send timed out");
            return;
        }
        case Wait::Response:
            LOG_WARN("upstream %s: read timed out", upstream);
            self->fail(504, "upstream timed out");
            return;
        case Wait::Nothing:
        case Wait::Client:
            return;
    }
}

void HttpExchange::sendBody(const char* data, std::size_t length) {
    if (!upstream_ || phase_ == Phase::Done || length == 0) return;
    evbuffer* out = upstream_->output();
    if (request_.body_framing == http::BodyFraming::Chunked) {
        appendChunkHeader(out, length);
        evbuffer_add(out, data, length);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add(out, data, length);
    }
    body_sent_ += length;
    flushRequest();
}

void HttpExchange::endBody(const http::HeaderList* trailers) {
    request_done_ = true;
    if (!upstream_ || phase_ == Phase::Done) return;
    if (request_.body_framing == http::BodyFraming::Chunked) {
        evbuffer* out = upstream_->output();
        if (!trailers || trailers->empty()) {
            evbuffer_add(out, kLastChunk.data(), kLastChunk.size());
        } else {
            // The parser dropped what no trailer may carry; what this request's head left out
            // (the route's set_headers, fields named by Connection) is known only here.
            const auto tokens = http::connectionTokens(request_.head->headers);
            const http::HeaderList* overridden = request_.override_headers.empty() ? nullptr : &request_.override_headers;
            last_chunk_ = "0\r\n";
            for (const http::Header& h : *trailers) {
                if (http::isReplacedField(h.name, tokens, set_headers_, overridden)) continue;
                last_chunk_.append(h.name).append(": ").append(h.value).append("\r\n");
            }
            last_chunk_.append("\r\n");
            evbuffer_add(out, last_chunk_.data(), last_chunk_.size());
        }
    }
    flushRequest();
}

void HttpExchange::flushRequest() {
    upstream_->flush();
    // A running send_timeout stands: the timer itself asks whether the upstream took bytes.
    updateTimer(/*progress=*/false);
}

bool HttpExchange::upstreamBacklogged() const {
    return upstream_ && upstream_->outputLength() > kHighWatermark;
}

std::size_t HttpExchange::upstreamQueued() const { return upstream_ ? upstream_->outputLength() : 0; }

void HttpExchange::onClientDrained() {
    if (upstream_ && phase_ == Phase::Streaming && !upstream_->isReading()) {
        upstream_->resumeReading();
        updateTimer(/*progress=*/true);  // read_timeout again, from now
    }
}

void HttpExchange::abort() {
    if (phase_ == Phase::Done) return;  // completed or failed already
    phase_ = Phase::Done;
    stopTimer();
    if (server_ >= 0) group_->balancer().onRequestEnd(server_);
    dropUpstream();
}

void HttpExchange::onConnected(net::Stream& stream) {
    const CallbackScope scope(*this);
    group_->markSucceeded(server_);
    phase_ = Phase::Waiting;
    stream.flush();
    updateTimer(/*progress=*/true);
    // What was queued while connecting may be out now, and a write that did not block reports
    // no onDrained: an HTTP/2 stream gives the window of those bytes back (Stream::releaseHeld).
    if (stream.outputLength() <= kLowWatermark) owner_->onUpstreamDrained();
}

void HttpExchange::onDrained(net::ByteStream&) {
    const CallbackScope scope(*this);
    updateTimer(/*progress=*/false);  // all of the request may be out now: read_timeout's turn
    owner_->onUpstreamDrained();
}

void HttpExchange::onEof(net::ByteStream&) { onConnectionLost(0); }
void HttpExchange::onError(net::ByteStream&, int error) { onConnectionLost(error); }

void HttpExchange::onConnectionLost(int error) {
    const CallbackScope scope(*this);
    if (phase_ == Phase::Done) return;
    if (phase_ == Phase::Connecting) {
        const bool tls_failed = upstream_ && upstream_->isTls() && !upstream_->tlsError().empty();
        LOG_WARN("upstream %s: connect failed: %s", upstreamName().c_str(),
                 tls_failed ? upstream_->tlsError().c_str() : strerror(error));
        group_->markFailed(server_);
        retryOrFail(502, "upstream unreachable");
        return;
    }
    if (!response_started_ && reused_ && mayResendOnFreshConnection() && attempts_ < 3) {
        // The server closed a pooled connection just as we reused it (RFC 9112 9.3.1): the
        // request most likely never reached it, so try again on a fresh connection.
        LOG_DEBUG("upstream %s: pooled connection closed, retrying", upstreamName().c_str());
        tryServer(server_, /*allow_pool=*/false);
        return;
    }
    // A response delimited by close ends here; anything else was cut short.
    if (response_started_ && response_parser_.finish() == http::ParseStatus::MessageComplete) {
        complete();  // onMessageComplete wrote the last chunk
        return;
    }
    fail(502, error ? "upstream connection error" : "upstream closed the connection prematurely");
}

void HttpExchange::onReadable(net::ByteStream& stream) { relayResponse(stream, nullptr, 0); }

// A read that found input() empty (direct read, set in tryServer): parsed where it was read.
void HttpExchange::onBytes(net::ByteStream& stream, const char* data, std::size_t n) { relayResponse(stream, data, n); }

// Bytes the parser did not take wait in input(), where every read's would otherwise be.
void HttpExchange::keepRest(net::ByteStream& stream, const char* data, std::size_t n) {
    if (n > 0) evbuffer_add(stream.input(), data, n);
}

void HttpExchange::relayResponse(net::ByteStream& stream, const char* data, std::size_t n) {
    const CallbackScope scope(*this);
    if (phase_ == Phase::Done) {
        keepRest(stream, data, n);
        return;
    }
    response_started_ = true;
    const bool consumed = owner_->consumesResponse();
    for (;;) {
        http::ParseStatus status;
        if (n > 0) {
            std::size_t parsed = 0;
            status = response_parser_.parse(data, n, parsed);
            keepRest(stream, data + parsed, n - parsed);
            n = 0;
        } else {
            status = response_parser_.parse(stream.input());
        }
        if (status == http::ParseStatus::NeedMore) break;
        if (status == http::ParseStatus::Error) {
            LOG_WARN("upstream %s: invalid response: %s", upstreamName().c_str(), response_parser_.errorReason());
            fail(502, "invalid upstream response");
            return;
        }
        if (status == http::ParseStatus::Upgrade) {
            if (!upgrade_accepted_) {
                fail(502, "unexpected upgrade from upstream");
                return;
            }
            // The connection now speaks WebSocket: it leaves the exchange (and the pool) for good.
            phase_ = Phase::Done;
            stopTimer();
            group_->balancer().onRequestEnd(server_);
            owner_->downstream().flush();
            upstream_->setDirectRead(false);  // the session decides how it reads
            const http::Header* ext = http::findHeader(response_parser_.response().headers, http::FieldName::SecWebSocketExtensions);
            owner_->onUpgraded(std::move(upstream_), ext ? ext->value : std::string());
            return;
        }
        // MessageComplete: an interim 1xx goes on to the final response.
        if (!response_complete_) {
            response_parser_.resume();
            continue;
        }
        if (evbuffer_get_length(stream.input()) > 0) {
            // Bytes after the response: the upstream cannot be trusted with another request.
            dropUpstream();
        }
        complete();
        return;
    }
    // Bytes came and the response goes on: a fresh read_timeout (re-armed here, after the
    // parse, so that a response complete in this read costs no timer change but its removal).
    updateTimer(/*progress=*/true);
    if (consumed) return;  // the owner bounds what it buffers (onResponseBody)
    http::ResponseSink& client = owner_->downstream();
    client.flush();
    if (client.backlogged()) {
        stream.pauseReading();
        updateTimer(/*progress=*/false);  // Wait::Client: the client's send timeout, not ours
    }
}

http::HeadAction HttpExchange::onHead() {
    const http::ResponseHead& response = response_parser_.response();
    int status = response.status;
    if (status >= 100 && status < 200 && status != 101 && ++interim_responses_ > kMaxInterimResponses) {
        // Without end, they would reach the client without end, each restarting read_timeout:
        // the upstream is broken (502, or the end of the connection if a final head went out).
        LOG_WARN("upstream %s: more than %d interim (1xx) responses to one request", upstreamName().c_str(),
                 kMaxInterimResponses);
        return http::HeadAction::Abort;
    }
    if (owner_->consumesResponse()) {
        if (status >= 100 && status < 200 && status != 101) return http::HeadAction::Continue;  // interim
        if (status == 101 || !owner_->onResponseHead(response)) return http::HeadAction::Abort;
        phase_ = Phase::Streaming;
        return request_.head->method == "HEAD" ? http::HeadAction::SkipBody : http::HeadAction::Continue;
    }
    http::ResponseSink& client = owner_->downstream();
    if (status >= 100 && status < 200 && status != 101) {
        // Interim response (100 Continue, 103 Early Hints): relayed as is.
        client.sendHead(response, http::ResponseBody{false, std::nullopt});
        return http::HeadAction::Continue;
    }
    if (status == 101) {
        // RFC 6455 4.1: the upstream must prove it read our key; anything else is not a
        // WebSocket server talking to us.
        if (!request_.websocket || !ws::isValidUpgradeResponse(response, request_.websocket_key)) {
            LOG_WARN("upstream %s: invalid 101 response to a WebSocket handshake", upstreamName().c_str());
            return http::HeadAction::Abort;
        }
        client.sendHead(response, http::ResponseBody{false, std::nullopt});
        head_sent_ = upgrade_accepted_ = true;
        return http::HeadAction::Continue;
    }
    const bool head_request = request_.head->method == "HEAD";
    http::ResponseBody body;
    body.present = !(head_request || status == 204 || status == 304);
    // A HEAD or 304 response describes the body it would have: its length goes on (not a 204's).
    if (response_parser_.hasContentLength() && status != 204) body.length = response_parser_.contentLength();
    client.sendHead(response, body);
    head_sent_ = true;
    phase_ = Phase::Streaming;
    return head_request ? http::HeadAction::SkipBody : http::HeadAction::Continue;
}

bool HttpExchange::onBody(const char* data, std::size_t length) {
    if (owner_->consumesResponse()) return owner_->onResponseBody(data, length);
    owner_->downstream().sendBody(data, length);
    return true;
}

void HttpExchange::onMessageComplete() {
    int status = response_parser_.response().status;
    if (status >= 100 && status < 200 && status != 101) return;  // interim: the real one follows
    response_complete_ = true;
    if (!owner_->consumesResponse() && status != 101) owner_->downstream().endResponse();
}

}  // namespace portico::proxy
