// SPDX-License-Identifier: Apache-2.0
#pragma once
// One request proxied to an upstream and its response relayed back: server choice, pooled or
// fresh connection, one retry on a failed connect, the request body streamed up and the
// response streamed down with backpressure both ways.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/http/header_rewrite.h"
#include "portico/http/message_parser.h"
#include "portico/net/deadline.h"
#include "portico/net/send_stall.h"
#include "portico/net/stream.h"

namespace portico::net {
class EventLoop;
}

namespace portico::proxy {

class ExchangeOwner;
class UpstreamGroup;

// Output above this stops reading the other side; below half of it reading resumes.
inline constexpr std::size_t kHighWatermark = 128 * 1024;
inline constexpr std::size_t kLowWatermark = kHighWatermark / 2;

class HttpExchange final : private net::StreamHandler, private http::MessageParser::Handler {
public:
    struct Request {
        const http::RequestHead* head = nullptr;    // owned by the client's parser; valid throughout
        std::string_view client_ip;
        std::string_view scheme = "http";           // X-Forwarded-Proto
        std::uint32_t client_hash = 0;              // ip_hash
        http::BodyFraming body_framing = http::BodyFraming::None;
        std::uint64_t content_length = 0;
        // A WebSocket handshake: Upgrade/Connection are kept, a 101 is checked against the
        // client's key and handed to the owner (onUpgraded); anything else ends the connection.
        bool websocket = false;
        std::string_view websocket_key;  // the owner's (in `head`, or its own): valid throughout
        http::HeaderList override_headers;       // e.g. a filtered Sec-WebSocket-Protocol
        config::Duration read_timeout{0};         // the response's; 0 = the upstream's read_timeout
        // The whole body, when the owner has it at once (the bridge's event batches): written
        // by start() (no sendBody/endBody) and kept, so a request that never reached a server
        // (its connect failed or timed out) goes to another one whatever its method. Owned by
        // the owner until the exchange ends.
        const std::string* body = nullptr;
    };

    // The response parser and the timer are made here, once: an exchange serves request after
    // request (begin() ... the end reported to the owner, or abort(), then begin() again), so that
    // a keep-alive connection or an HTTP/2 connection's streams do not allocate them per request
    // (see ExchangePool).
    explicit HttpExchange(net::EventLoop& loop);
    ~HttpExchange();
    HttpExchange(const HttpExchange&) = delete;
    HttpExchange& operator=(const HttpExchange&) = delete;

    // Starts a request for `owner`: every per-request field is reset here (the only place) and
    // the upstream head is written. Only on an exchange that has not begun or has ended (its end
    // reported, or abort()), and never from inside one of its own callbacks to its owner. `route`
    // and `request` (and what it points to) must outlive the request.
    void begin(ExchangeOwner& owner, UpstreamGroup& group, const config::Route& route, const Request& request);
    // Picks a server and sends the head. Failures are reported through the owner.
    void start();
    // Request body bytes from the client (already de-chunked); re-framed for the upstream.
    void sendBody(const char* data, std::size_t length);
    // The client's request is complete. A chunked request (Request::body_framing) ends with
    // `trailers` as its trailer section (RFC 9112 7.1.2; fields the caller checked); other
    // framings have no place for them.
    void endBody(const http::HeaderList* trailers = nullptr);
    // The upstream's queued request bytes are above the high watermark: stop reading the client.
    bool upstreamBacklogged() const;
    // Request bytes (head, body, framing) queued for the upstream and not yet written: what an
    // HTTP/2 connection counts against limits.http2_connection_buffer.
    std::size_t upstreamQueued() const;
    // The client's output fell below the low watermark: resume reading the upstream.
    void onClientDrained();
    // The client went away: drop the upstream connection (it may be mid-response).
    void abort();

    const std::string& upstreamName() const;
    // True while one of the exchange's callbacks (or start()) is on the stack: it must not
    // begin() another request then (ExchangePool checks).
    bool inCallback() const { return callback_depth_ > 0; }

private:
    // Marks the exchange busy for the scope of a callback (inCallback()).
    class CallbackScope {
    public:
        explicit CallbackScope(HttpExchange& exchange) : exchange_(exchange) { ++exchange_.callback_depth_; }
        ~CallbackScope() { --exchange_.callback_depth_; }
        CallbackScope(const CallbackScope&) = delete;
        CallbackScope& operator=(const CallbackScope&) = delete;

    private:
        HttpExchange& exchange_;
    };

    enum class Phase { Connecting, Waiting, Streaming, Done };
    // What the one timer is waiting for. Connect: connect_timeout. Send: request bytes are
    // queued and the upstream must take some within each send_timeout (checked when it fires).
    // Response: the request went out whole (or the answer began) and the upstream must send
    // within read_timeout. Nothing: the rest of the body is the client's to send (its
    // client_body_timeout runs).
    // Client: the response waits for the client to read (upstream reading paused): the
    // client's limits.client_send_timeout runs (its owner's), not read_timeout.
    enum class Wait { Nothing, Connect, Send, Response, Client };

    void tryServer(int server, bool allow_pool);
    void dropUpstream();
    void retryOrFail(int status, const char* reason);
    // After a pooled connection died before any response byte: true when the request may go
    // again, whole, on a fresh connection (no body byte went out; no side effect possible).
    bool mayResendOnFreshConnection() const;
    void fail(int status, const char* reason);
    void complete();
    Wait currentWait() const;
    // Re-arms the timer when what it waits for changed, or on `progress` (a byte came in, or
    // a new attempt began).
    void updateTimer(bool progress);
    void stopTimer();
    static void onTimer(int, short, void* arg);
    // Flushes queued request bytes to the upstream and updates the timer accordingly.
    void flushRequest();

    // net::StreamHandler (the upstream connection)
    void onConnected(net::Stream& stream) override;
    void onReadable(net::ByteStream& stream) override;
    void onBytes(net::ByteStream& stream, const char* data, std::size_t n) override;
    void onEof(net::ByteStream& stream) override;
    void onError(net::ByteStream& stream, int error) override;
    void onDrained(net::ByteStream& stream) override;
    void onConnectionLost(int error);
    // The response's bytes: input()'s, after `n` bytes read straight into `data` (direct read).
    void relayResponse(net::ByteStream& stream, const char* data, std::size_t n);
    static void keepRest(net::ByteStream& stream, const char* data, std::size_t n);

    // http::MessageParser::Handler (the upstream's response)
    http::HeadAction onHead() override;
    bool onBody(const char* data, std::size_t length) override;
    void onMessageComplete() override;

    ExchangeOwner* owner_ = nullptr;   // of the request in flight (begin())
    net::EventLoop& loop_;
    UpstreamGroup* group_ = nullptr;
    Request request_;
    // The route's set_headers (begin()): a trailer must not bring back a field the head left out.
    const std::vector<std::pair<std::string, std::string>>* set_headers_ = nullptr;
    std::string head_;                      // the serialized request head, kept for a retry (its
                                            // capacity kept from request to request)
    // A chunked request's end as sent when it carried trailers ("0\r\n", the fields, "\r\n"),
    // kept for a resend as head_ is: bounded by max_header_bytes, as the client's trailer section.
    // Empty otherwise (a resend then ends with the bare last chunk).
    std::string last_chunk_;
    std::unique_ptr<net::Stream> upstream_;
    http::MessageParser response_parser_;
    net::Deadline timer_;
    Phase phase_ = Phase::Connecting;
    Wait wait_ = Wait::Nothing;
    // What the upstream had taken of the request, and since when (send_timeout, net/send_stall.h).
    net::SendStall<net::Stream::SendProgress> send_stall_;
    std::chrono::steady_clock::time_point started_{};
    int server_ = -1;
    int first_server_ = -1;
    int attempts_ = 0;
    bool reused_ = false;                   // upstream_ came from the keep-alive pool
    bool response_started_ = false;         // a response byte arrived
    bool head_sent_ = false;                // a response head went to the client
    bool request_done_ = false;
    std::uint64_t body_sent_ = 0;           // request body bytes handed to the upstream (read
                                            // from the client: once > 0, never resent)
    bool response_complete_ = false;
    bool upgrade_accepted_ = false;         // a valid 101 went to the client
    // Interim (1xx) responses to this request so far. A 100 Continue and a few 103 Early Hints
    // are what servers send (102 Processing is obsolete, RFC 4918 dropped it); more than
    // kMaxInterimResponses is an upstream gone wrong, answered 502 (nginx relays none at all).
    int interim_responses_ = 0;
    static constexpr int kMaxInterimResponses = 16;
    int callback_depth_ = 0;                // CallbackScope
};

}  // namespace portico::proxy
