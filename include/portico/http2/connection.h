// SPDX-License-Identifier: Apache-2.0
#pragma once
// One HTTP/2 client connection (RFC 9113), driven from our event loop: nghttp2 does no I/O,
// this object feeds it what the socket read (nghttp2_session_mem_recv) and writes what it
// produces (nghttp2_session_mem_send) once per loop iteration. Each request is an
// http2::Stream, the client side of that request for the exchange and the handlers.
//
// Limits (config::Limits, documented in portico.yaml(5)): SETTINGS_MAX_CONCURRENT_STREAMS
// (http2_max_concurrent_streams), SETTINGS_MAX_HEADER_LIST_SIZE (max_header_bytes, 431 beyond),
// per-stream receive windows (http2_stream_window: a stream whose upstream is slow stops its
// client only), RST_STREAM rate (http2_reset_burst/_rate, CVE-2023-44487) and CONTINUATION
// frames per header block (CVE-2024-27316) by nghttp2, SETTINGS and PING rate
// (http2_control_frame_rate), frames that carry no request progress (http2_overhead_frame_rate,
// CVE-2019-9518 and kin), a header block unfinished past client_header_timeout, a request
// body stalled past client_body_timeout, no stream for keepalive_timeout.
//
// Memory per connection (limits.http2_connection_buffer, each way). Requests: the connection's
// flow-control window is the budget, and the window of every request byte Portico holds (queued
// for an upstream or a WebSocket session's upstream, DATA a session has not read yet) stays
// unreturned until that byte went on; the rest comes back at once (returnConnectionWindow). So
// Portico holds at most the budget of request bytes whatever the client does with SETTINGS: the
// bound never rests on per-stream windows. Those separate the streams: a stream starts on
// SETTINGS_INITIAL_WINDOW_SIZE (the budget's share per stream, 16KiB to 64KiB: one DATA frame
// of the least SETTINGS_MAX_FRAME_SIZE always fits), and a stream's window of bytes its
// upstream has not taken is not given back, so a stream whose upstream reads nothing holds its
// window, not the connection's. A stream whose bytes go on is widened towards
// http2_stream_window by WINDOW_UPDATE increments (never a shrink) from a pool of a quarter of
// the budget, and only once the client ACKed our SETTINGS: before that, it may use 65535 per
// stream, and nghttp2 holds it to that. So streams whose upstreams take nothing hold
// (their count x the initial window + the pool) together, and the others go on beside them while
// that is under the budget (32 of them on the defaults). Responses: bytes waiting in memory
// for the client's windows are counted (not a static file's segments); beyond the budget each
// stream that holds bytes its window or the socket does not take pauses its upstream as its own
// high watermark would (Stream::backlogged). A stream whose bytes go straight out goes on:
// pausing it would stall a client reading one stream at a time.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/core/token_bucket.h"
#include "portico/http2/tick.h"
#include "portico/net/send_stall.h"
#include "portico/net/stream.h"
#include "portico/observe/metrics.h"
#include "portico/proxy/exchange_pool.h"

struct nghttp2_session;

namespace portico::net {
class Worker;
class WorkerSnapshot;
}

namespace portico::http2 {

class SessionMemory;
class Stream;

// What a connection on `limits` advertises (SETTINGS): each stream's initial window, the budget's
// share (16KiB to 64KiB), and how many streams may be open at once: http2_max_concurrent_streams,
// or fewer when three quarters of http2_connection_buffer do not cover that many initial windows
// and two more (connection.cpp says why).
std::size_t settingsInitialWindow(const config::Limits& limits);
std::size_t settingsMaxStreams(const config::Limits& limits);

// Who owns the connection (net::ClientConnection): told once when it is over.
class ConnectionOwner {
public:
    virtual void onHttp2Closed(const char* reason) = 0;

protected:
    ~ConnectionOwner() = default;
};

struct ClientInfo {
    std::string ip;
    std::uint32_t hash = 0;  // ip_hash balancing
    bool tls = false;        // X-Forwarded-Proto
};

class Connection final : private net::StreamHandler {
public:
    Connection(ConnectionOwner& owner, net::Worker& worker, std::shared_ptr<net::WorkerSnapshot> snapshot,
               const config::Listener& listener, observe::ListenerStats& listener_stats,
               std::unique_ptr<net::Stream> socket, ClientInfo client);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Sends our SETTINGS and reads what has arrived. False: the session could not be made.
    bool start();
    // Graceful stop or reload: GOAWAY with the last stream id; the streams in flight finish,
    // then the connection closes. A connection that has not read its first requests yet while
    // the client's bytes wait in the socket (accepted from the listen queue by the stop) reads
    // them first: GOAWAY follows that read, and those streams are served.
    void goAway();
    // The end, whatever the state: every stream's exchange is dropped, its request logged.
    void abort();

    // For the streams.
    net::Worker& worker() { return worker_; }
    const ClientInfo& client() const { return client_; }
    const config::Listener& listener() const { return *listener_; }
    observe::ListenerStats& listenerStats() { return listener_stats_; }
    // The streams' upstream exchanges, reused from stream to stream while the connection is busy.
    proxy::ExchangePool& exchanges() { return exchanges_; }
    nghttp2_session* session() { return session_.get(); }
    // Frames were queued: they go out once the callbacks of this loop iteration are done.
    void scheduleSend();
    // `bytes` of a stream's request body went on (to its upstream or a handler): the client
    // may send that much more on the stream (WINDOW_UPDATE).
    void consume(std::int32_t stream_id, std::size_t bytes);
    // A stream whose bytes went on asks for more window than it started with (up to
    // http2_stream_window): granted as a WINDOW_UPDATE increment while the widening pool has
    // room, once our SETTINGS are ACKed. Takes and returns what the stream has been granted in
    // all; narrowWindow gives that back to the pool once the stream sends no more.
    std::size_t widenWindow(std::int32_t stream_id, std::size_t granted);
    void narrowWindow(std::size_t granted) { widened_ -= granted; }
    // The window a stream starts with (SETTINGS_INITIAL_WINDOW_SIZE once ACKed).
    std::size_t initialStreamWindow() const { return initial_window_; }
    // A stream's share of the connection's buffers is now `now` (was `recorded`, updated here):
    // request bytes queued for its upstream (or its session), response bytes waiting for the
    // client. The connection window of request bytes no longer held goes back.
    void noteRequestBytes(std::size_t& recorded, std::size_t now);
    void noteResponseBytes(std::size_t& recorded, std::size_t now) {
        response_bytes_ += now - recorded;  // modulo arithmetic: a fall unwraps
        recorded = now;
    }
    // The streams' response bytes are over limits.http2_connection_buffer: upstreams pause
    // (and resume once it is not).
    bool responsesOverBudget() const { return response_bytes_ > buffer_budget_; }
    // Connection window is held for bytes Portico holds and what the client has left of it
    // would not carry a DATA frame: a stream that may send more waits on us, not on its client.
    bool windowExhausted() const;
    // When the client last had less than a DATA frame of the connection's window left.
    std::chrono::steady_clock::time_point windowShortAt() const { return window_short_at_; }
    // Response bytes of stream `id` cannot go now: its window or the connection's is shut, or
    // the socket takes no more.
    bool sendBlocked(std::int32_t id) const;
    // The socket holds a high watermark of our output: nghttp2 is asked for no DATA until the
    // client reads some, so no stream's bytes go on, whatever their windows.
    bool socketBacklogged() const;
    // Bytes the client's socket has taken from us so far (streams' client_send_timeout).
    std::uint64_t socketTaken() const;

    // nghttp2's callbacks (connection.cpp registers them); public for the C trampolines.
    // onBeginFrame: RFC 9113 checks nghttp2 leaves out (it returns NGHTTP2_ERR_CALLBACK_FAILURE
    // for a connection error).
    int onBeginFrame(std::uint8_t type, std::int32_t stream_id);
    void onDataFrameSent();
    // One frame that carried no request progress: false (and GOAWAY ENHANCE_YOUR_CALM queued)
    // when the client is over http2_overhead_frame_rate.
    bool takeOverheadFrame(const char* what);
    int onBeginHeaders(std::int32_t stream_id);
    int onHeader(std::int32_t stream_id, std::string_view name, std::string_view value, bool trailer);
    int onFrameReceived(std::uint8_t type, std::uint8_t flags, std::int32_t stream_id);
    int onDataChunk(std::int32_t stream_id, const std::uint8_t* data, std::size_t length);
    int onStreamClosed(std::int32_t stream_id, std::uint32_t error_code);

private:
    struct SessionDeleter {
        void operator()(nghttp2_session* session) const;
    };

    void onReadable(net::ByteStream& stream) override;
    void onEof(net::ByteStream& stream) override;
    void onError(net::ByteStream& stream, int error) override;
    void onDrained(net::ByteStream& stream) override;

    Stream* find(std::int32_t stream_id);
    // Connection window of DATA no longer held goes back (WINDOW_UPDATE on stream 0): all but
    // request_bytes_ of what was received.
    void returnConnectionWindow();
    // Runs nghttp2_session_mem_send while the socket takes it; closes when the session is over.
    void sendNow();
    void close(const char* reason);
    static void onSendEvent(int, short, void* arg);
    static void onTick(int, short, void* arg);
    void tick();

    ConnectionOwner& owner_;
    net::Worker& worker_;
    std::shared_ptr<net::WorkerSnapshot> snapshot_;  // keeps listener_ alive
    const config::Listener* listener_;
    observe::ListenerStats& listener_stats_;
    std::unique_ptr<net::Stream> socket_;
    ClientInfo client_;
    std::unique_ptr<SessionMemory> memory_;  // nghttp2's, recycled; declared first: freed last
    std::unique_ptr<nghttp2_session, SessionDeleter> session_;
    // Declared before streams_: a stream retiring its exchange when destroyed gives it back here.
    proxy::ExchangePool exchanges_;  // up to http2_max_concurrent_streams; at a tick, freed when
                                     // idle, or those unused since the last tick when busy
    std::map<std::int32_t, std::unique_ptr<Stream>> streams_;
    core::InlineEvent send_event_;
    core::InlineEvent tick_event_;  // once a second: the timeouts
    core::TokenBucket control_frames_;
    // Stream resets by the client (CVE-2023-44487, http2_reset_burst / http2_reset_rate). Ours,
    // not only nghttp2's: nghttp2's limit queues a GOAWAY but accepts the streams that follow in
    // the same read, and each went upstream (its GOAWAY says they were not processed: RFC 9113
    // 6.8, a client may retry them). Ours ends the session at once, so that nghttp2 ignores them.
    core::TokenBucket resets_;
    bool reset_flooded_ = false;  // GOAWAY queued: said once
    // Frames that cost a parse and move no request on (empty DATA, PRIORITY, WINDOW_UPDATE, unknown
    // types): a flood of them costs CPU only (CVE-2019-9518). A client reading a download sends
    // WINDOW_UPDATEs in step with our DATA: each DATA frame sent earns two (its stream's and the
    // connection's; Envoy counts so too), banked up to kEarnedWindowUpdates; the rest take from
    // the bucket.
    core::TokenBucket overhead_frames_;
    std::uint32_t earned_window_updates_ = 0;
    bool overhead_flooded_ = false;  // GOAWAY queued: said once
    static constexpr std::uint32_t kEarnedWindowUpdates = 1024;
    std::chrono::steady_clock::time_point idle_since_;
    // limits.http2_connection_buffer: what the streams hold, each way (their notes' sums). The
    // connection window is the budget: of the DATA received whose window has not gone back
    // (nghttp2 counts it), request_bytes_ stays; the rest goes back with the next WINDOW_UPDATE
    // (batched, but never left while the client has less than a frame's window).
    const std::size_t buffer_budget_;
    const std::size_t initial_window_;  // SETTINGS_INITIAL_WINDOW_SIZE: 16KiB to 64KiB
    const std::size_t stream_window_;   // limits.http2_stream_window: the most a stream is widened to
    std::size_t request_bytes_ = 0;
    std::size_t response_bytes_ = 0;
    bool in_data_chunk_ = false;  // inside onDataChunk: its bytes are not noted yet
    std::size_t widened_ = 0;  // increments granted to streams (widenWindow), at most a quarter of the budget
    std::chrono::steady_clock::time_point window_short_at_{};
    bool settings_acked_ = false;  // the client ACKed our SETTINGS: its streams start on initial_window_
    // What the client had taken of the socket's output when a tick found some queued, and
    // since when (limits.client_send_timeout).
    net::SendStall<net::Stream::SendProgress> send_stall_;
    // RFC 9113 5.1.1: the stream ids a client skipped (first, last), which it may never open
    // later. nghttp2 forgets closed streams and so ignores any HEADERS at or below the highest
    // id; a HEADERS on a skipped id is the one it can tell apart. The newest few gaps only:
    // a client that skips more is not held to the oldest.
    std::int32_t highest_stream_id_ = 0;
    std::vector<std::pair<std::int32_t, std::int32_t>> skipped_ids_;
    static constexpr std::size_t kSkippedRanges = 8;
    bool send_scheduled_ = false;
    bool closed_ = false;
    bool going_away_ = false;
    bool goaway_after_read_ = false;  // goAway() waits for the requests in the socket
    bool client_gone_ = false;  // EOF or error on the socket: nothing to linger for
};

}  // namespace portico::http2
