// SPDX-License-Identifier: Apache-2.0
#pragma once
// A client connection from accept to close, in client_connection.cpp (HTTP),
// client_connection_builtin.cpp (answers Portico writes itself) and
// client_connection_upgrade.cpp (after a WebSocket upgrade):
//
//   ReadingHead -> (route) -> Proxying   (an HttpExchange with an upstream)
//                          -> Responding (a built-in handler answered; any body is discarded)
//   -> back to ReadingHead for the next request on a keep-alive connection, or
//   -> Closing (flush, half-close, linger) -> Closed.
//   An accepted WebSocket upgrade moves to Tunnel, Frames or WsSession (ws/).
//   HTTP/2 (ALPN h2, or a listener with http2: true) moves to Http2 at once: an
//   http2::Connection takes the socket and carries every request as a stream.
//
// finish() is the one exit: it logs, releases the handles and defers deletion to the loop.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <sys/socket.h>

#include "portico/bridge/bridge.h"
#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/handlers/http_handlers.h"
#include "portico/http/http1_response_writer.h"
#include "portico/http/message_parser.h"
#include "portico/http2/connection.h"
#include "portico/net/deadline.h"
#include "portico/net/ip_limits.h"
#include "portico/net/send_stall.h"
#include "portico/observe/metrics.h"
#include "portico/net/stream.h"
#include "portico/proxy/exchange_owner.h"
#include "portico/proxy/exchange_pool.h"
#include "portico/ws/permessage_deflate.h"
#include "portico/ws/session.h"

namespace portico::config {
struct Route;
struct Listener;
}
namespace portico::proxy {
class HttpExchange;
}
namespace portico::ws {
struct UpgradeRequest;
class FrameTracer;
}
namespace portico::handlers {
class EndpointApp;
struct PubSubAnswer;
}

namespace portico::net {
namespace uring {
class Ring;
}

class Worker;
class WorkerSnapshot;
class HttpPhasePool;

class ClientConnection final : private StreamHandler,
                               private http::MessageParser::Handler,
                               private proxy::ExchangeOwner,
                               private ws::SessionOwner,
                               private bridge::BridgeOwner,
                               private http2::ConnectionOwner {
    friend class HttpPhasePool;

public:
    enum class State : std::uint8_t { ReadingHead, Proxying, Responding, Upgraded, Http2, Closing, Closed };
    static const char* toString(State state);

    // `listener_index` is the accepting listener's position in the configuration.
    ClientConnection(Worker& worker, core::UniqueFd fd, const sockaddr* peer, std::shared_ptr<WorkerSnapshot> snapshot,
                     std::size_t listener_index, observe::ListenerStats& listener_stats);
    ~ClientConnection();
    ClientConnection(const ClientConnection&) = delete;
    ClientConnection& operator=(const ClientConnection&) = delete;

    void start();
    // Graceful stop: close now when idle, else after the response in flight.
    void drain();
    // The one exit. Idempotent.
    void finish(const char* reason);
    State state() const { return state_; }
    // The configuration generation this connection runs under.
    std::uint64_t generation() const;
    // A WebSocket session's messages and bytes since the last call go into its route's metrics
    // (the worker calls this every Worker::kSessionCountInterval; the rest at the session's end).
    void foldSessionCounts();
    // Its place in the worker's list of connections (Worker::connections_), kept by the worker.
    std::uint32_t workerSlot() const { return worker_slot_; }
    void setWorkerSlot(std::uint32_t slot) { worker_slot_ = slot; }

private:
    // The client socket.
    void onReadable(ByteStream& stream) override;
    // A read that found input() empty (direct read): the request is parsed where it was read.
    void onBytes(ByteStream& stream, const char* data, std::size_t n) override;
    // The socket, for the session or HTTP/2 connection that takes it over.
    std::unique_ptr<Stream> takeClient();
    void onEof(ByteStream& stream) override;
    void onError(ByteStream& stream, int error) override;
    void onDrained(ByteStream& stream) override;
    void onTlsHandshake(Stream& stream) override;
    void onPlainTextOnTls(Stream& stream) override;

    // The request parser.
    http::HeadAction onHead() override;
    bool onBody(const char* data, std::size_t length) override;
    void onMessageComplete() override;

    // The HTTP exchange with an upstream.
    http::ResponseSink& downstream() override { return http_->response; }
    void onExchangeComplete(bool reusable) override;
    void onExchangeFailed(int status, const char* reason) override;
    void onUpstreamDrained() override;
    void onUpgraded(std::unique_ptr<Stream> upstream, std::string extensions) override;

    // HTTP/2: the connection takes the socket; its end is ours.
    void startHttp2();
    void onHttp2Closed(const char* reason) override;

    // After a 101: the WebSocket session.
    void onSessionEnd(const char* reason, const ws::SessionCounts& counts) override;

    // websocket mode http: the bridge's OPEN answered (client_connection_upgrade.cpp).
    http::HeadAction startBridge(const config::Route& route, const ws::UpgradeRequest& upgrade);
    void onBridgeAccepted(std::string_view subprotocol) override;
    void onBridgeRefused(int status, std::string_view content_type, std::string_view body) override;
    void onBridgeFinished() override;
    http::HeadAction acceptWebSocket(const config::Route& route, const ws::UpgradeRequest& upgrade);
    // The per-client-address limits on upgrades; false after answering 429.
    bool admitWebSocket();
    void startSession(std::unique_ptr<ws::Session> session);
    // A tracer for the session about to start when its route has websocket.trace, else null.
    std::unique_ptr<ws::FrameTracer> makeTracer();
    uring::Ring* plainTunnelRing(const Stream& upstream);
    void addSessionCounts(const ws::SessionCounts& counts);

    // Parses what input() holds, after `n` bytes read straight into `data` (direct read); the
    // bytes not parsed yet go to input().
    void processInput(const char* data = nullptr, std::size_t n = 0);
    void beginRequest();
    void adoptCurrentSnapshot();
    const std::string& localAuthority();
    bool hasBody() const;
    bool bodyAwaitsContinue() const;
    // The client asked for keep-alive, has not half-closed, and the gateway is not stopping.
    bool clientKeepAlive() const;
    // A final response head went out (from response_): for the access log and the upgrade slot.
    void onResponseStatus(int status);
    bool headOnly() const;  // the request being answered is HEAD
    void respondAtHead(int status, std::string_view content_type, std::string_view body, const http::HeaderList& extra = {});
    http::HeadAction answeredAtHead();
    http::HeadAction startPublish(const config::Route& route);
    void respondInternal(const config::Route& route);
    void armBodyTimer();
    void respondError(int status, const char* reason, const http::HeaderList& extra = {});
    void servePubSub();
    void onPubSubAnswer(const handlers::PubSubAnswer& answer, bool head_only);
    void responseDone(bool keep_alive);
    void closeAfterFlush();
    void retireExchange();
    void logAccess();
    // After an error response we half-close and read what the client still sends for this
    // long, so that our response is not destroyed by a TCP reset (nginx's lingering close).
    static constexpr std::chrono::milliseconds kLingerTimeout{2000};
    // The connection's one timer and what bounds it in time (client_connection_timers.cpp).
    void armTimer(std::chrono::milliseconds timeout);
    // The timer, for a look at what the client took of a response (awaitClientReading).
    void armSendCheck(std::chrono::milliseconds timeout);
    void watchClientReading();
    bool awaitClientReading();
    static void onTimer(int, short, void* arg);
    static void onResume(int, short, void* arg);
    // drain() on an idle connection, once what the client sent is known (Stream::receiveEnded):
    // nothing: closed; a request: read on (`resume`: drain() paused reading) and answered.
    void drainIdle(bool resume);
    static void onDrainReceiveEnded(void* arg);

    Worker& worker_;
    std::shared_ptr<WorkerSnapshot> snapshot_;
    const config::Listener* listener_;  // in snapshot_'s configuration
    observe::ListenerStats& listener_stats_;
    observe::RouteStats* ws_stats_ = nullptr;  // the route of an upgraded connection
    ws::SessionCounts counted_;  // what of the session's counts is in ws_stats_ already
    std::unique_ptr<Stream> client_;

    // The client side of the request in flight: responses serialized as HTTP/1.1 onto client_
    // (what the exchange and the built-in handlers write to).
    class Downstream final : public http::Http1ResponseWriter {
    public:
        explicit Downstream(ClientConnection& connection) : connection_(&connection) {}
        void bind(ClientConnection& connection) { connection_ = &connection; }
        void sendHead(const http::ResponseHead& head, const http::ResponseBody& body) override;
        void sendFile(core::UniqueFd fd, std::uint64_t length) override;
        bool backlogged() const override;
        void flush() override;

    private:
        std::size_t writeUpgradeHead(const http::ResponseHead& head, const http::ClientResponseInfo& info) override;
        // An upstream's answer that comes before the whole request body (a 401, a 413) ends the
        // connection (onExchangeComplete): its head says so.
        bool connectionMayStayOpen() const override {
            return connection_->clientKeepAlive() && (connection_->http_->req.complete || !connection_->http_->exchange);
        }
        ClientConnection* connection_;
    };

    // Everything that belongs to the request in flight. beginRequest() replaces it with a fresh
    // one, the only place it is reset: nothing of a request (its route, in the configuration it
    // was routed by; its status; its counts) can leak into the next one.
    struct Request {
        const config::Route* route = nullptr;  // in snapshot_'s configuration; null until routed
        std::chrono::steady_clock::time_point start{};
        std::uint64_t bytes_in = 0;
        std::uint64_t bytes_out = 0;  // written around response (a 101 of our own); + response.bytes()
        std::uint64_t body_bytes = 0;
        int status = 0;
        bool complete = false;       // head and body were read
        bool response_done = false;  // a built-in response is written
        bool answer_pending = false; // a built-in handler answers later (a pubsub backplane)
        bool keep_alive = true;      // the response may leave the connection open
        bool logged = false;
        // What the client had taken of a response still going out, and since when: set when
        // the wait begins (watchClientReading), moved by the checks (awaitClientReading).
        SendStall<Stream::SendProgress> send_stall;
        // Of the last exchange, for the access log: a name in snapshot_'s configuration or upstream
        // groups, which outlive the request (a view: no string made per request).
        std::string_view upstream_name = "-";
        std::string body;                 // a request body a built-in handler reads
    };

    // What only the HTTP/1.1 phase needs: the parser, the exchange, the response writer, the
    // request in flight, the timer. Taken from the worker's HttpPhasePool at accept and given
    // back when a WebSocket session starts (an idle WebSocket keeps none of it: the connection
    // is 280 bytes, not 600), when HTTP/2 takes the socket, or at the connection's end; kept
    // with the bridge, which reads the handshake's head for its later requests. Given back, its
    // parser (llhttp's state, the header list's capacity), timer event and idle exchange serve
    // the next connection: none of them is made again per connection.
    struct HttpPhase {
        HttpPhase(ClientConnection& connection, EventLoop& loop, std::size_t max_head_bytes);
        ~HttpPhase();
        // Serves `connection` from now on, as if new (what the last connection left is cleared).
        void bind(ClientConnection& connection, std::size_t max_head_bytes);
        // The events' callbacks: their argument is the phase, which passes them on to `owner`
        // (none while the phase is spare), so a phase serving anew touches no event.
        static void onTimerEvent(int fd, short what, void* arg);
        static void onResumeEvent(int fd, short what, void* arg);
        ClientConnection* owner;
        Downstream response;
        http::MessageParser parser;      // this connection's requests
        proxy::ExchangePool exchanges;   // one exchange, reused by request after request
        std::unique_ptr<proxy::HttpExchange> exchange;  // the request in flight's, from exchanges
        // A built-in endpoint accepted the upgrade; its session starts once parsing has returned.
        std::unique_ptr<handlers::EndpointApp> pending_app;
        std::optional<ws::DeflateParams> pending_deflate;
        std::string pending_deflate_response;  // its Sec-WebSocket-Extensions answer (the bridge)
        core::InlineEvent resume_event;  // continue with pipelined input, from the loop
        std::string local_authority;  // "address:port" the client connected to; made on first use
        Deadline timer;  // head, body, keep-alive or linger timeout: one at a time
        bool timer_checks_send = false;  // armed by armSendCheck (client_send_timeout's look)
        unsigned requests = 0;  // completed on this connection
        // The client's address as limits.per_ip_* count it, made from the accepted socket's
        // address (an upgrade's admission does not parse client_ip_ back).
        std::optional<IpKey> client_key;
        Request req;
    };
    std::unique_ptr<HttpPhase> http_;  // null once a WebSocket session runs (the bridge's too)
    // websocket mode http: the WebSocket's events to and from the app. Declared before session_,
    // whose app refers to it, so that it is destroyed after it.
    std::unique_ptr<bridge::Bridge> bridge_;
    std::unique_ptr<ws::Session> session_;
    std::unique_ptr<http2::Connection> http2_;  // state Http2: it has the socket
    const config::Route* ws_route_ = nullptr;   // the session's (in snapshot_'s configuration)
    const char* session_end_reason_ = nullptr;  // the session ended; the bridge still finishes
    IpLimits::Lease ws_lease_;  // counted under limits.per_ip_websockets: admission to session end
    std::string client_ip_;
    std::uint32_t client_hash_ = 0;
    std::uint32_t worker_slot_ = 0;
    State state_ = State::ReadingHead;
    bool client_eof_ = false;
    bool draining_ = false;
    bool answering_ = false;  // inside servePubSub(): an answer now is ended by the caller
    std::shared_ptr<char> alive_;  // weakly held by late callbacks; made for the first (servePubSub)
};

// The HTTP phases the worker's connections gave back, for its next connections (one per worker:
// a phase's exchange and events belong to its loop). At most kSpare are kept: each holds what
// its last connection grew (header list and strings within limits.max_header_bytes, the
// exchange's buffers), a few KB.
class HttpPhasePool {
public:
    static constexpr std::size_t kSpare = 16;
    explicit HttpPhasePool(EventLoop& loop) : loop_(loop) {}
    ~HttpPhasePool();
    HttpPhasePool(const HttpPhasePool&) = delete;
    HttpPhasePool& operator=(const HttpPhasePool&) = delete;

    std::unique_ptr<ClientConnection::HttpPhase> take(ClientConnection& connection, std::size_t max_head_bytes);
    // Safe from inside the phase's own callbacks (its parser's, its exchange's): only take()
    // touches a spare phase, and take() runs for a new connection, from the listener's callback.
    void give(std::unique_ptr<ClientConnection::HttpPhase> phase);
    // Frees the spares while the loop is alive; phases given back later are freed at once (the
    // loop deletes some connections late, as it stops).
    void close();

private:
    EventLoop& loop_;
    std::vector<std::unique_ptr<ClientConnection::HttpPhase>> spare_;
    bool closed_ = false;
};

}  // namespace portico::net
