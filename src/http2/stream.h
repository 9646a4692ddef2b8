// SPDX-License-Identifier: Apache-2.0
#pragma once
// One HTTP/2 stream: one request and its response (RFC 9113 8.1). The request's fields become an
// HTTP/1.1 RequestHead (RequestFields), which is routed as any request is: a built-in handler
// answers it, or an HttpExchange proxies it over the upstream's pooled HTTP/1.1 connections.
// Either writes the response to this stream as its ResponseSink: the head becomes a HEADERS
// frame, the body DATA frames pulled by nghttp2 as the client's window allows.
//
// Flow control per stream, both ways: request body bytes are consumed (WINDOW_UPDATE) only once
// the upstream took them, so a slow upstream stops this stream's client only; response bytes
// wait in `pending_` for the client's window, and above the high watermark the exchange stops
// reading its upstream until they drain (the other streams go on).
//
// RFC 8441: an extended CONNECT with :protocol websocket is the HTTP/1.1 upgrade it stands for
// (asWebSocketUpgrade): a built-in endpoint, or an upstream's 101 (to a key we made), becomes
// the stream's 200, and the WebSocket session (ws::Tunnel, ws::FrameRelay,
// handlers::EndpointSession) runs on its DATA frames: its client side is a StreamBytes
// (stream_bytes.h), the net::ByteStream whose input is the stream's DATA and whose output is
// `pending_`, with the stream's flow control as its backpressure.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "portico/bridge/bridge.h"
#include "portico/config/config.h"
#include "portico/observe/metrics.h"
#include "portico/core/handles.h"
#include "portico/http/head.h"
#include "portico/http/response_sink.h"
#include "portico/http2/request_fields.h"
#include "portico/http2/tick.h"
#include "portico/net/ip_limits.h"
#include "portico/net/send_stall.h"
#include "portico/net/stream.h"
#include "portico/proxy/exchange_owner.h"
#include "portico/proxy/http_exchange.h"
#include "portico/ws/handshake.h"
#include "portico/ws/permessage_deflate.h"
#include "portico/ws/session.h"

namespace portico::net {
class WorkerSnapshot;
}
namespace portico::handlers {
struct PubSubAnswer;
}

namespace portico::http2 {

class Connection;

class StreamBytes;

class Stream final : public http::ResponseSink,
                     private proxy::ExchangeOwner,
                     private ws::SessionOwner,
                     private bridge::BridgeOwner {
public:
    // RFC 8441: a WebSocket rides a stream (SETTINGS_ENABLE_CONNECT_PROTOCOL is advertised).
    static constexpr bool kServesExtendedConnect = true;

    Stream(Connection& connection, std::int32_t id, std::shared_ptr<net::WorkerSnapshot> snapshot);
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    std::int32_t id() const { return id_; }

    // The request, from the connection's nghttp2 callbacks.
    void onField(std::string_view name, std::string_view value);
    void onHeadersComplete(bool end_stream);
    // A field of the request's trailers (the HEADERS that ends it after its DATA).
    void onTrailer(std::string_view name, std::string_view value) { fields_.addTrailer(name, value); }
    void onData(const std::uint8_t* data, std::size_t length);
    void onEndStream();
    // nghttp2 closed the stream (complete, reset by either side, or the connection ended):
    // the exchange is dropped and the request logged. The stream does nothing after this.
    void onClosed(std::uint32_t error_code);

    // nghttp2 pulls response body bytes (the data provider): copies at most `length` into
    // `buffer`; NGHTTP2_ERR_DEFERRED while none is there yet.
    ssize_t readBody(std::uint8_t* buffer, std::size_t length, std::uint32_t* flags);
    // After the connection sent frames: an upstream paused for this stream resumes when its
    // pending bytes fell below the low watermark.
    void afterSend();
    // Graceful stop or reload: a WebSocket session on the stream starts its close (1001).
    void goAway() {
        if (session_) session_->goAway();
    }
    // Once a second: a request body the client stopped sending (client_body_timeout), a
    // response it takes nothing of (client_send_timeout).
    void tick(std::chrono::steady_clock::time_point now);
    bool headersComplete() const { return headers_complete_; }
    // Tells the connection what the stream holds now, each way (limits.http2_connection_buffer):
    // request bytes queued for its upstream, a publish's message, a WebSocket's DATA its session
    // has not read; response bytes the client's window has not taken. Nothing once closed.
    void noteBuffers();

    // For the session's StreamBytes: `n` bytes of DATA went to the session (WINDOW_UPDATE);
    // output bytes wait to go; the session's side ended (END_STREAM after the output, or after
    // the bridge's app had its CLOSE; `upstream_failed`: RST_STREAM CONNECT_ERROR after the
    // output instead, RFC 9113 8.5).
    void consumeWindow(std::size_t n);
    void sendPending() { resumeData(); }
    void onBytesClosed(bool upstream_failed = false);
    std::chrono::steady_clock::time_point started() const { return start_; }

    // http::ResponseSink
    void sendHead(const http::ResponseHead& head, const http::ResponseBody& body) override;
    void sendBody(const char* data, std::size_t length) override;
    void sendFile(core::UniqueFd fd, std::uint64_t length) override;
    void endResponse() override;
    bool backlogged() const override;
    void flush() override;

private:
    // proxy::ExchangeOwner
    http::ResponseSink& downstream() override { return *this; }
    void onExchangeComplete(bool reusable) override;
    void onExchangeFailed(int status, const char* reason) override;
    void onUpgraded(std::unique_ptr<net::Stream> upstream, std::string extensions) override;  // stream_websocket.cpp
    void onUpstreamDrained() override;

    void routeRequest();
    // HEADERS for `head` (interim or final; a final one with a data provider when a body follows).
    void submitHead(const http::ResponseHead& head, const http::ResponseBody& body);
    // RFC 8441 (stream_websocket.cpp).
    void startWebSocket(const config::Route& route);
    void acceptWebSocket(const http::ResponseHead& upstream_head, std::string_view subprotocol,
                         std::string_view extensions);
    // The session's client side (bytes_), with what came before it.
    std::unique_ptr<net::ByteStream> openBytes();
    // `websocket: {mode: http}`: the bridge asks the app with an OPEN request; its answer comes
    // back as onBridgeAccepted (the 200 and the session) or onBridgeRefused.
    void startBridge(const config::Route& route, const ws::UpgradeRequest& upgrade);
    void onBridgeAccepted(std::string_view subprotocol) override;
    void onBridgeRefused(int status, std::string_view content_type, std::string_view body) override;
    void onBridgeFinished() override;
    // After the session's upstream failed: RST_STREAM CONNECT_ERROR once pending_ went out.
    void resetIfOutputSent();
    void startSession(std::unique_ptr<ws::Session> session);
    void onSessionEnd(const char* reason, const ws::SessionCounts& counts) override;

    // An upstream exchange: the request's body framing decided here (the first), or a WebSocket
    // upgrade's fields filled by the caller (the second, which does the rest).
    void startExchange(const config::Route& route);
    void startExchange(const config::Route& route, proxy::HttpExchange::Request forward);
    void startPublish(const config::Route& route);
    void servePubSub();
    void respondError(int status, const char* reason, const http::HeaderList& extra = {});
    // Ends the stream with RST_STREAM `error_code` (an HTTP/2 error code).
    void reset(std::uint32_t error_code);
    void retireExchange();
    void logAccess();
    bool headOnly() const { return head_.method == "HEAD"; }
    void resumeData();
    void noteResponseBytes();  // noteBuffers' response half (from nghttp2's read callback too)
    // Response bytes in memory in pending_ (a static file's segments are pages of the file,
    // not ours: they count for neither the watermark nor limits.http2_connection_buffer).
    std::size_t memoryQueued() const;
    // Bytes of its own that wait for the client (its window or the socket): only such a stream
    // pauses its upstream for the connection's budget. A stream whose bytes go straight out
    // holds nothing, and pausing it would stall a client that reads one stream at a time.
    bool holdsResponseBytes() const;
    void dropPending();
    // Request window: `n` bytes went on (WINDOW_UPDATE; a stream whose whole window went on is
    // widened, Connection::widenWindow). releaseHeld gives back the window of held bytes the
    // exchange no longer queues; narrowWindow gives the widening back once no more comes.
    void giveWindow(std::size_t n);
    void releaseHeld();
    void narrowWindow();

    Connection& connection_;
    const std::int32_t id_;
    std::shared_ptr<net::WorkerSnapshot> snapshot_;  // the configuration this request is routed by
    RequestFields fields_;
    http::RequestHead head_;
    const config::Route* route_ = nullptr;
    std::unique_ptr<proxy::HttpExchange> exchange_;
    core::EvbufferPtr pending_;  // response body bytes the client's window has not taken yet
    std::size_t file_left_ = 0;           // of which in a file segment (sendFile)
    std::size_t memory_before_file_ = 0;  // and in memory ahead of that segment
    std::string body_;           // a publish's message
    std::string upstream_name_ = "-";
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_data_;
    std::uint64_t sent_ = 0;  // response body bytes nghttp2 took into DATA frames
    // sent_ when a tick found response bytes waiting, and since when (client_send_timeout).
    net::SendStall<std::uint64_t> send_stall_;
    std::uint64_t connection_taken_seen_ = 0;  // Connection::socketTaken() at the last tick
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
    std::uint64_t body_bytes_ = 0;
    std::size_t held_ = 0;  // request body bytes the upstream has not taken: window not given back
    std::size_t given_ = 0;    // request window given back in all
    std::size_t widened_ = 0;  // window granted beyond the initial one (Connection::widenWindow)
    std::size_t request_noted_ = 0;   // noteBuffers' last word to the connection, each way
    std::size_t response_noted_ = 0;
    int status_ = 0;
    bool headers_complete_ = false;
    bool request_complete_ = false;
    bool head_sent_ = false;
    bool has_body_ = false;       // the head was submitted with a data provider
    bool response_ended_ = false;
    bool deferred_ = false;       // readBody said NGHTTP2_ERR_DEFERRED
    mutable bool upstream_paused_ = false;  // backlogged() said so: afterSend resumes it
    bool publishing_ = false;     // the body is a publish's message
    bool closed_ = false;
    bool logged_ = false;
    // RFC 8441
    bool websocket_ = false;       // an extended CONNECT, until refused
    bool refused_ = false;         // a non-101 answer became 502: the exchange's bytes are dropped
    std::string websocket_key_;    // ours, for the upstream
    core::EvbufferPtr early_;      // DATA that came before the session started (made for it)
    // mode: http. Declared before session_: the session's app (Bridge::makeApp) goes first.
    std::unique_ptr<bridge::Bridge> bridge_;
    std::optional<ws::DeflateParams> bridge_deflate_;
    std::string bridge_deflate_response_;
    bool end_after_bridge_ = false;  // the session ended: END_STREAM once the app had its CLOSE
    bool reset_after_output_ = false;  // the session's upstream failed: CONNECT_ERROR once pending_ went
    StreamBytes* bytes_ = nullptr;          // the session's client side, owned by the session
    std::unique_ptr<ws::Session> session_;  // after the 200
    observe::RouteStats* ws_stats_ = nullptr;  // set while the session counts as open
    bool session_ended_ = false;
    std::chrono::steady_clock::time_point session_ended_at_{};
    // After its session ended, a WebSocket stream the client does not end is reset after this
    // (the HTTP/1.1 side's lingering close waits as long).
    static constexpr std::chrono::seconds kWebSocketLinger{2};
    net::IpLimits::Lease ws_lease_;  // limits.per_ip_websockets: from admission to the session's end
    std::shared_ptr<char> alive_;  // weakly held by a backplane's answer (made by servePubSub)
};

}  // namespace portico::http2
