// SPDX-License-Identifier: Apache-2.0
#include "portico/http2/connection.h"

#include <algorithm>
#include <cstring>
#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <utility>
#include <vector>

#include "http2/stream.h"
#include "portico/http2/session_memory.h"
#include "portico/core/log.h"
#include "portico/net/event_loop.h"
#include "portico/net/lingering_close.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"
#include "portico/proxy/http_exchange.h"

namespace portico::http2 {

namespace {

Connection& self(void* user_data) { return *static_cast<Connection*>(user_data); }

int onBeginFrameCallback(nghttp2_session*, const nghttp2_frame_hd* hd, void* user_data) {
    return self(user_data).onBeginFrame(hd->type, hd->stream_id);
}

int onBeginHeadersCallback(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    return self(user_data).onBeginHeaders(frame->hd.stream_id);
}

int onHeaderCallback(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t name_length,
                     const std::uint8_t* value, std::size_t value_length, std::uint8_t, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    // A second HEADERS on the stream holds its trailers (RFC 9113 8.1).
    const bool trailer = frame->headers.cat == NGHTTP2_HCAT_HEADERS;
    if (!trailer && frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    return self(user_data).onHeader(frame->hd.stream_id,
                                    std::string_view(reinterpret_cast<const char*>(name), name_length),
                                    std::string_view(reinterpret_cast<const char*>(value), value_length), trailer);
}

int onFrameRecvCallback(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    std::uint8_t flags = frame->hd.flags;
    // A request's HEADERS, with its fields all in (after any CONTINUATION): route it.
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat != NGHTTP2_HCAT_REQUEST) flags |= 0x80;  // trailers
    // A DATA frame with no byte of payload (padding aside) and no END_STREAM moves nothing on.
    if (frame->hd.type == NGHTTP2_DATA && frame->hd.length == frame->data.padlen &&
        (flags & NGHTTP2_FLAG_END_STREAM) == 0 && !self(user_data).takeOverheadFrame("empty DATA"))
        return 0;
    return self(user_data).onFrameReceived(frame->hd.type, flags, frame->hd.stream_id);
}

int onFrameSendCallback(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type == NGHTTP2_DATA) self(user_data).onDataFrameSent();
    return 0;
}

// Extension frames: read and dropped (nghttp2 then counts them through onBeginFrame; frames of a
// type no one claims it skips without a word).
int unpackExtensionCallback(nghttp2_session*, void**, const nghttp2_frame_hd*, void*) { return NGHTTP2_ERR_CANCEL; }

int onDataChunkCallback(nghttp2_session*, std::uint8_t, std::int32_t stream_id, const std::uint8_t* data,
                        std::size_t length, void* user_data) {
    return self(user_data).onDataChunk(stream_id, data, length);
}

int onStreamCloseCallback(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code, void* user_data) {
    return self(user_data).onStreamClosed(stream_id, error_code);
}

// The options and callbacks live only while the session is made: nghttp2 copies both.
struct OptionDeleter {
    void operator()(nghttp2_option* option) const { nghttp2_option_del(option); }
};
struct CallbacksDeleter {
    void operator()(nghttp2_session_callbacks* callbacks) const { nghttp2_session_callbacks_del(callbacks); }
};

constexpr std::uint8_t kTrailersFlag = 0x80;  // onFrameRecvCallback's mark for trailers
constexpr std::size_t kMinFrame = 16384;  // SETTINGS_MAX_FRAME_SIZE's least (RFC 9113 6.5.2)

// The connection's receive window: the request budget itself (see connection.h), within the
// window's range (RFC 9113 6.9.1: the initial 65535 at least, 2^31-1 at most).
std::size_t connectionWindow(const config::Limits& limits) {
    return std::clamp<std::size_t>(limits.http2_connection_buffer, 65535, 0x7fffffff);
}

// What the streams' initial windows may promise of the connection's window: three quarters of
// the budget (the last quarter widens streams whose bytes go on: widenWindow). Every stream's
// window and the widening pool then fit in the budget with two windows to spare, so that streams
// whose upstreams read nothing, each holding its own window, never hold the whole connection
// window: a stream whose upstream reads always gets its initial window (the spare also covers
// the chunk framing queued with chunked bodies, which counts against the window too).
std::size_t windowsShare(const config::Limits& limits) {
    const std::size_t budget = connectionWindow(limits);
    return budget - budget / 4;
}

}  // namespace

// SETTINGS_INITIAL_WINDOW_SIZE: the windows' share per stream (and two spare); never under one
// DATA frame of the least SETTINGS_MAX_FRAME_SIZE (h2spec 4.2/1: a 16384-byte DATA frame on a new
// stream), and no more than 64KiB (what the client may assume before our SETTINGS anyway) or
// http2_stream_window.
std::size_t settingsInitialWindow(const config::Limits& limits) {
    const std::size_t share = windowsShare(limits) / (std::max<std::size_t>(limits.http2_max_concurrent_streams, 1) + 2);
    const std::size_t ceiling = std::max(kMinFrame, std::min<std::size_t>(65536, limits.http2_stream_window));
    return std::clamp(share, kMinFrame, ceiling);
}

// SETTINGS_MAX_CONCURRENT_STREAMS: http2_max_concurrent_streams, or fewer when the budget's
// share does not cover that many windows of 16KiB (the least a window may be): with more, the
// windows of streams whose upstreams read nothing could take the whole connection window, and
// no other stream could send a byte until they time out.
std::size_t settingsMaxStreams(const config::Limits& limits) {
    const std::size_t covered = windowsShare(limits) / settingsInitialWindow(limits);
    return std::clamp<std::size_t>(covered > 2 ? covered - 2 : 1, 1, std::max<std::size_t>(limits.http2_max_concurrent_streams, 1));
}

void Connection::SessionDeleter::operator()(nghttp2_session* session) const { nghttp2_session_del(session); }

Connection::Connection(ConnectionOwner& owner, net::Worker& worker, std::shared_ptr<net::WorkerSnapshot> snapshot,
                       const config::Listener& listener, observe::ListenerStats& listener_stats,
                       std::unique_ptr<net::Stream> socket, ClientInfo client)
    : owner_(owner),
      worker_(worker),
      snapshot_(std::move(snapshot)),
      listener_(&listener),
      listener_stats_(listener_stats),
      socket_(std::move(socket)),
      client_(std::move(client)),
      exchanges_(worker.loop(), settingsMaxStreams(snapshot_->config().limits)),
      send_event_(worker.loop().base(), -1, 0, &Connection::onSendEvent, this),
      tick_event_(worker.loop().base(), -1, EV_PERSIST, &Connection::onTick, this),
      control_frames_(snapshot_->config().limits.http2_control_frame_rate,
                      2 * std::uint64_t{snapshot_->config().limits.http2_control_frame_rate},
                      core::TokenBucket::Clock::now()),
      resets_(snapshot_->config().limits.http2_reset_rate, snapshot_->config().limits.http2_reset_burst,
              core::TokenBucket::Clock::now()),
      overhead_frames_(snapshot_->config().limits.http2_overhead_frame_rate,
                       2 * std::uint64_t{snapshot_->config().limits.http2_overhead_frame_rate},
                       core::TokenBucket::Clock::now()),
      idle_since_(std::chrono::steady_clock::now()),
      buffer_budget_(connectionWindow(snapshot_->config().limits)),
      initial_window_(settingsInitialWindow(snapshot_->config().limits)),
      stream_window_(std::max(initial_window_, snapshot_->config().limits.http2_stream_window)) {
    socket_->setHandler(this);
    socket_->setLowWatermark(proxy::kLowWatermark);
}

Connection::~Connection() {
    abort();
    // Streams first: their exchanges and data providers refer to the session.
    streams_.clear();
}

bool Connection::start() {
    const config::Limits& limits = snapshot_->config().limits;
    nghttp2_session_callbacks* raw_callbacks = nullptr;
    nghttp2_option* raw_option = nullptr;
    if (nghttp2_session_callbacks_new(&raw_callbacks) != 0 || nghttp2_option_new(&raw_option) != 0) return false;
    std::unique_ptr<nghttp2_session_callbacks, CallbacksDeleter> callbacks(raw_callbacks);
    std::unique_ptr<nghttp2_option, OptionDeleter> option(raw_option);
    nghttp2_session_callbacks_set_on_begin_frame_callback(raw_callbacks, onBeginFrameCallback);
    nghttp2_session_callbacks_set_on_begin_headers_callback(raw_callbacks, onBeginHeadersCallback);
    nghttp2_session_callbacks_set_on_header_callback(raw_callbacks, onHeaderCallback);
    nghttp2_session_callbacks_set_on_frame_recv_callback(raw_callbacks, onFrameRecvCallback);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(raw_callbacks, onDataChunkCallback);
    nghttp2_session_callbacks_set_on_stream_close_callback(raw_callbacks, onStreamCloseCallback);
    nghttp2_session_callbacks_set_on_frame_send_callback(raw_callbacks, onFrameSendCallback);
    // Every extension type is "ours", so that onBeginFrame sees (and counts) each such frame.
    nghttp2_session_callbacks_set_unpack_extension_callback(raw_callbacks, unpackExtensionCallback);
    for (unsigned type = NGHTTP2_CONTINUATION + 1; type <= 0xff; ++type)
        nghttp2_option_set_user_recv_extension_type(raw_option, static_cast<std::uint8_t>(type));
    // Request body bytes give their window back when the upstream took them (consume()).
    nghttp2_option_set_no_auto_window_update(raw_option, 1);
    // Closed streams are forgotten at once (no RFC 7540 priority tree to keep them for).
    nghttp2_option_set_no_closed_streams(raw_option, 1);
    // CVE-2023-44487: a client resetting streams faster than this gets GOAWAY (resets_, in
    // onFrameReceived, which nghttp2 calls before it counts a reset). nghttp2's own limit stays
    // behind ours as a backstop: it refills once per whole second where ours refills smoothly,
    // so its burst also holds a second of the rate (with burst 5 and rate 100 it fired first).
    nghttp2_option_set_stream_reset_rate_limit(
        raw_option, 2 * std::uint64_t{limits.http2_reset_burst} + limits.http2_reset_rate, limits.http2_reset_rate);
    // CVE-2024-27316: a header block in more CONTINUATION frames than this ends the connection
    // (the header list size bounds the bytes; this bounds the frames, empty ones included).
    nghttp2_option_set_max_continuations(raw_option, 8);
    // SETTINGS ACK and PING ACK frames queued for a client that does not read: at most this
    // many (nghttp2's default; the SETTINGS/PING rate below usually answers first).
    nghttp2_option_set_max_outbound_ack(raw_option, 1000);
    nghttp2_session* raw = nullptr;
    memory_ = std::make_unique<SessionMemory>();
    if (nghttp2_session_server_new3(&raw, raw_callbacks, this, raw_option, memory_->mem()) != 0) return false;
    session_.reset(raw);

    std::vector<nghttp2_settings_entry> settings{
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, static_cast<std::uint32_t>(settingsMaxStreams(limits))},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(initial_window_)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(limits.max_header_bytes)},
        // RFC 9218: no RFC 7540 priorities (nghttp2 then keeps no priority tree).
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    // RFC 8441 3: extended CONNECT (WebSockets over streams), unless the listener turned it off.
    // Not advertised while Stream cannot carry a WebSocket yet: a browser told it may would send
    // its wss:// over this connection and fail instead of opening an HTTP/1.1 one.
    if (listener_->http2_extended_connect && Stream::kServesExtendedConnect)
        settings.push_back({NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1});
    if (nghttp2_submit_settings(raw, NGHTTP2_FLAG_NONE, settings.data(), settings.size()) != 0) return false;
    // The connection's own window: the request budget (returnConnectionWindow keeps it so).
    nghttp2_session_set_local_window_size(raw, NGHTTP2_FLAG_NONE, 0, static_cast<std::int32_t>(buffer_budget_));
    net::addTimer(worker_.loop(), tick_event_.get(), kTick);
    onReadable(*socket_);  // the preface may have come with the handshake
    return !closed_;
}

Stream* Connection::find(std::int32_t stream_id) {
    auto it = streams_.find(stream_id);
    return it == streams_.end() ? nullptr : it->second.get();
}

void Connection::onReadable(net::ByteStream& socket) {
    if (closed_) return;
    evbuffer* in = socket.input();
    while (evbuffer_get_length(in) > 0) {
        evbuffer_iovec chunk{};
        if (evbuffer_peek(in, -1, nullptr, &chunk, 1) < 1) break;
        const ssize_t used = nghttp2_session_mem_recv(session_.get(), static_cast<const std::uint8_t*>(chunk.iov_base),
                                                      chunk.iov_len);
        if (used < 0) {
            // A connection error nghttp2 could not answer with a GOAWAY of its own (a bad
            // preface, a flood): the connection ends here.
            LOG_INFO("client %s: HTTP/2: %s", client_.ip.c_str(), nghttp2_strerror(static_cast<int>(used)));
            evbuffer_drain(in, evbuffer_get_length(in));
            if (used == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {  // not HTTP/2 at all: nothing to say
                close("HTTP/2 protocol error");
                return;
            }
            // A flood (more ACKs queued than the client reads) or a framing error: GOAWAY
            // after what is queued, then the end.
            nghttp2_session_terminate_session(session_.get(), used == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM
                                                                                          : NGHTTP2_PROTOCOL_ERROR);
            break;
        }
        evbuffer_drain(in, static_cast<std::size_t>(used));
        if (closed_) return;
    }
    if (goaway_after_read_) goAway();
    sendNow();
}

void Connection::scheduleSend() {
    if (send_scheduled_ || closed_) return;
    send_scheduled_ = true;
    event_active(send_event_.get(), EV_TIMEOUT, 0);
}

void Connection::onSendEvent(int, short, void* arg) {
    auto* connection = static_cast<Connection*>(arg);
    connection->send_scheduled_ = false;
    connection->sendNow();
}

void Connection::sendNow() {
    if (closed_) return;
    // One socket, many streams: frames are made only while the socket takes them, so that a
    // client that does not read stops here (its streams' bytes wait in their own buffers and
    // each exchange stops reading its upstream), not in an unbounded output buffer.
    while (socket_->outputLength() < proxy::kHighWatermark) {
        const std::uint8_t* data = nullptr;
        const ssize_t length = nghttp2_session_mem_send(session_.get(), &data);
        if (length < 0) {
            LOG_INFO("client %s: HTTP/2 send: %s", client_.ip.c_str(), nghttp2_strerror(static_cast<int>(length)));
            close("HTTP/2 send error");
            return;
        }
        if (length == 0) break;
        evbuffer_add(socket_->output(), data, static_cast<std::size_t>(length));
    }
    socket_->flush();
    for (auto& [id, stream] : streams_) stream->afterSend();
    if (nghttp2_session_want_read(session_.get()) == 0 && nghttp2_session_want_write(session_.get()) == 0)
        close(going_away_ ? "shutting down" : "HTTP/2 session ended");
}

void Connection::onDrained(net::ByteStream&) { sendNow(); }

void Connection::onEof(net::ByteStream&) {
    client_gone_ = true;
    close("client closed");
}

void Connection::onError(net::ByteStream&, int error) {
    client_gone_ = true;
    LOG_DEBUG("client %s: %s", client_.ip.c_str(), strerror(error));
    close("client error");
}

void Connection::consume(std::int32_t stream_id, std::size_t bytes) {
    if (closed_ || bytes == 0) return;
    nghttp2_session_consume_stream(session_.get(), stream_id, bytes);
    scheduleSend();
}

void Connection::noteRequestBytes(std::size_t& recorded, std::size_t now) {
    request_bytes_ += now - recorded;  // modulo arithmetic: a fall is a wrap-around that unwraps
    recorded = now;
    returnConnectionWindow();
}

void Connection::returnConnectionWindow() {
    if (closed_ || in_data_chunk_) return;
    // nghttp2's count of the DATA received whose window has not gone back: the payload of every
    // DATA frame, padding and frames for streams already closed included (nghttp2 ignores those,
    // and its own return of them at half the window is undone by each WINDOW_UPDATE we submit:
    // counting only the bytes delivered to us leaked their window for good).
    const std::int32_t received = nghttp2_session_get_effective_recv_data_length(session_.get());
    // What Portico holds keeps its window (heads and chunk framing queued for upstreams count
    // too, though they came in no DATA: the budget covers them as well).
    if (received <= 0 || static_cast<std::size_t>(received) <= request_bytes_) return;
    const std::size_t returned = static_cast<std::size_t>(received) - request_bytes_;
    // One WINDOW_UPDATE per quarter of the window, or at once when the client is left less
    // than two frames: nghttp2's own batching (at half the window) could wait for bytes the
    // client cannot send while streams whose upstreams read nothing hold the rest.
    const std::int32_t left = nghttp2_session_get_local_window_size(session_.get());
    if (returned < buffer_budget_ / 4 && left >= static_cast<std::int32_t>(2 * kMinFrame)) return;
    // nghttp2 takes the increment off its count at once (nghttp2_submit_window_update).
    nghttp2_submit_window_update(session_.get(), NGHTTP2_FLAG_NONE, 0, static_cast<std::int32_t>(returned));
    scheduleSend();
}

std::size_t Connection::widenWindow(std::int32_t stream_id, std::size_t granted) {
    // Before the ACK the client may still use 65535 per stream (and nghttp2 holds it to that),
    // and a grant then would be on top of a window our SETTINGS have not set yet: none.
    if (!settings_acked_ || closed_) return granted;
    const std::size_t window = initial_window_ + granted;
    const std::size_t pool = buffer_budget_ / 4;
    // Doubling, up to http2_stream_window, out of what the pool has left.
    const std::size_t add = std::min({window, stream_window_ - std::min(stream_window_, window),
                                      pool - std::min(pool, widened_)});
    if (add < kMinFrame) return granted;
    const std::int32_t now = nghttp2_session_get_stream_effective_local_window_size(session_.get(), stream_id);
    // An increment only: the window the stream has now, plus `add` (a WINDOW_UPDATE of `add`).
    if (now < 0 || static_cast<std::size_t>(now) + add > 0x7fffffff ||
        nghttp2_session_set_local_window_size(session_.get(), NGHTTP2_FLAG_NONE, stream_id,
                                              now + static_cast<std::int32_t>(add)) != 0)
        return granted;
    widened_ += add;
    scheduleSend();
    return granted + add;
}

bool Connection::windowExhausted() const {
    return request_bytes_ > 0 && !closed_ &&
           nghttp2_session_get_local_window_size(session_.get()) < static_cast<std::int32_t>(kMinFrame);
}

bool Connection::socketBacklogged() const { return socket_->outputLength() >= proxy::kHighWatermark; }

std::uint64_t Connection::socketTaken() const { return socket_->sendProgress().written; }

bool Connection::sendBlocked(std::int32_t id) const {
    if (closed_ || socketBacklogged()) return true;
    return nghttp2_session_get_remote_window_size(session_.get()) <= 0 ||
           nghttp2_session_get_stream_remote_window_size(session_.get(), id) <= 0;
}

void Connection::goAway() {
    if (closed_ || going_away_) return;
    if (nghttp2_session_get_last_proc_stream_id(session_.get()) == 0 && net::hasUnreadInput(*socket_)) {
        goaway_after_read_ = true;
        return;
    }
    goaway_after_read_ = false;
    going_away_ = true;
    // RFC 9113 6.8: the last stream we will process; the streams in flight finish.
    nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_.get()),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    // WebSockets on streams are told too (Close 1001), as on HTTP/1.1 connections.
    std::vector<Stream*> streams;
    for (auto& [id, stream] : streams_) streams.push_back(stream.get());
    for (Stream* stream : streams) stream->goAway();
    scheduleSend();
}

void Connection::abort() {
    for (auto& [id, stream] : streams_) stream->onClosed(NGHTTP2_CANCEL);
}

void Connection::close(const char* reason) {
    if (closed_) return;
    closed_ = true;
    event_del(send_event_.get());
    event_del(tick_event_.get());
    abort();
    // What is queued (a GOAWAY, the end of a response) goes out before the socket closes, and
    // what the client still sends is read and dropped for a moment: closing with unread input
    // would reset the connection and could destroy the GOAWAY before the client reads it.
    if (socket_ && !client_gone_) {
        socket_->shutdownAfterFlush();
        net::closeGracefully(worker_.loop(), std::move(socket_), std::chrono::seconds(1));
    }
    owner_.onHttp2Closed(reason);
}

// ---- nghttp2's callbacks ----------------------------------------------------------------------

void Connection::onDataFrameSent() {
    earned_window_updates_ = std::min(earned_window_updates_ + 2, kEarnedWindowUpdates);
}

bool Connection::takeOverheadFrame(const char* what) {
    if (overhead_flooded_) return false;
    if (overhead_frames_.take(1, core::TokenBucket::Clock::now())) return true;
    overhead_flooded_ = true;
    LOG_WARN("client %s: HTTP/2 flood of frames without progress (%s, beyond http2_overhead_frame_rate): GOAWAY",
             client_.ip.c_str(), what);
    nghttp2_session_terminate_session(session_.get(), NGHTTP2_ENHANCE_YOUR_CALM);
    return false;
}

int Connection::onBeginFrame(std::uint8_t type, std::int32_t stream_id) {
    // Frames that cost a parse and move no request on (CVE-2019-9518 and kin; SETTINGS and PING
    // are onFrameReceived's, as is RST_STREAM (rapid reset), empty DATA onFrameRecvCallback's).
    switch (type) {
        case NGHTTP2_WINDOW_UPDATE:
            if (earned_window_updates_ > 0) {
                --earned_window_updates_;
                break;
            }
            takeOverheadFrame("WINDOW_UPDATE");
            break;
        case NGHTTP2_PRIORITY:
            takeOverheadFrame("PRIORITY");
            break;
        default:
            if (type > NGHTTP2_CONTINUATION) takeOverheadFrame("a frame of an extension type");
            break;
    }
    const char* error = nullptr;
    if (type == NGHTTP2_PRIORITY && stream_id == 0) {
        // RFC 9113 6.3 (a MUST still): nghttp2 skips PRIORITY frames unread once RFC 7540
        // priorities are off (SETTINGS_NO_RFC7540_PRIORITIES), and this check with them.
        error = "PRIORITY on stream 0";
    } else if (type == NGHTTP2_HEADERS && stream_id < highest_stream_id_) {
        for (const auto& [first, last] : skipped_ids_)
            if (stream_id >= first && stream_id <= last) error = "HEADERS on a stream id below one already used";
    }
    if (!error) return 0;
    // onReadable answers with GOAWAY PROTOCOL_ERROR.
    LOG_INFO("client %s: HTTP/2: %s", client_.ip.c_str(), error);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

int Connection::onBeginHeaders(std::int32_t stream_id) {
    const std::int32_t next = highest_stream_id_ == 0 ? 1 : highest_stream_id_ + 2;  // client ids are odd
    if (stream_id > next) {
        if (skipped_ids_.size() == kSkippedRanges) skipped_ids_.erase(skipped_ids_.begin());
        skipped_ids_.emplace_back(next, stream_id - 2);
    }
    highest_stream_id_ = std::max(highest_stream_id_, stream_id);
    // The configuration loaded last routes each new stream (a reload applies to the next request).
    auto stream = std::make_unique<Stream>(*this, stream_id, worker_.current());
    nghttp2_session_set_stream_user_data(session_.get(), stream_id, stream.get());
    streams_[stream_id] = std::move(stream);
    return 0;
}

int Connection::onHeader(std::int32_t stream_id, std::string_view name, std::string_view value, bool trailer) {
    if (Stream* stream = find(stream_id)) trailer ? stream->onTrailer(name, value) : stream->onField(name, value);
    return 0;
}

int Connection::onFrameReceived(std::uint8_t type, std::uint8_t flags, std::int32_t stream_id) {
    const bool end_stream = (flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (type) {
        case NGHTTP2_HEADERS:
            if (Stream* stream = find(stream_id)) {
                if ((flags & kTrailersFlag) == 0) {
                    stream->onHeadersComplete(end_stream);
                } else if (end_stream) {
                    stream->onEndStream();
                }
            }
            return 0;
        case NGHTTP2_DATA:
            if (Stream* stream = find(stream_id); stream && end_stream) stream->onEndStream();
            return 0;
        case NGHTTP2_RST_STREAM:
            if (!resets_.take(1, core::TokenBucket::Clock::now()) && !reset_flooded_) {
                reset_flooded_ = true;
                LOG_WARN("client %s: HTTP/2 rapid reset (beyond http2_reset_burst/_rate): GOAWAY", client_.ip.c_str());
                // Terminating: nghttp2 takes no new stream from here on, this read's included.
                nghttp2_session_terminate_session(session_.get(), NGHTTP2_ENHANCE_YOUR_CALM);
            }
            return 0;
        case NGHTTP2_SETTINGS:
            if ((flags & NGHTTP2_FLAG_ACK) != 0) settings_acked_ = true;  // ours: the one we sent
            [[fallthrough]];
        case NGHTTP2_PING:
            // SETTINGS and PING floods (CVE-2019-9515, -9512): each costs us an ACK.
            if ((flags & NGHTTP2_FLAG_ACK) == 0 && !control_frames_.take(1, core::TokenBucket::Clock::now())) {
                LOG_WARN("client %s: HTTP/2 SETTINGS/PING flood: GOAWAY", client_.ip.c_str());
                nghttp2_session_terminate_session(session_.get(), NGHTTP2_ENHANCE_YOUR_CALM);
            }
            return 0;
        default:
            return 0;
    }
}

int Connection::onDataChunk(std::int32_t stream_id, const std::uint8_t* data, std::size_t length) {
    // The connection's window comes back for what went on; what stayed queued keeps it until
    // it goes (noteRequestBytes), whatever the stream windows let the client send. Not before
    // the stream has noted these bytes: nghttp2 counts them received already, and a return
    // from inside onData (another stream's note) would give their window away.
    if (nghttp2_session_get_local_window_size(session_.get()) < static_cast<std::int32_t>(kMinFrame))
        window_short_at_ = std::chrono::steady_clock::now();  // no stream could send a frame now
    in_data_chunk_ = true;
    if (Stream* stream = find(stream_id)) {
        stream->onData(data, length);
        stream->noteBuffers();
    } else {
        nghttp2_session_consume_stream(session_.get(), stream_id, length);
    }
    in_data_chunk_ = false;
    returnConnectionWindow();
    return 0;
}

int Connection::onStreamClosed(std::int32_t stream_id, std::uint32_t error_code) {
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return 0;
    it->second->onClosed(error_code);
    // Never inside its own call chain: the loop deletes it.
    worker_.loop().deferDelete(std::shared_ptr<Stream>(std::move(it->second)));
    streams_.erase(it);
    if (streams_.empty()) idle_since_ = std::chrono::steady_clock::now();
    return 0;
}

// ---- timeouts -------------------------------------------------------------------------------

void Connection::onTick(int, short, void* arg) { static_cast<Connection*>(arg)->tick(); }

void Connection::tick() {
    if (closed_) return;
    returnConnectionWindow();  // DATA nghttp2 ignored (closed streams, padding) calls nothing of ours
    const config::Limits& limits = snapshot_->config().limits;
    const auto now = std::chrono::steady_clock::now();
    // client_send_timeout: a client that takes no byte of what the socket holds that long does
    // not read at all, and goes (one that reads but keeps a stream's window shut loses that
    // stream: Stream::tick).
    if (socket_->outputLength() == 0) {
        send_stall_.clear();
    } else if (send_stall_.left(socket_->sendProgress(), now, limits.client_send_timeout) <= tickSlack(limits.client_send_timeout)) {
        LOG_INFO("client %s: HTTP/2: took no byte for client_send_timeout", client_.ip.c_str());
        close("client send timeout");
        return;
    }
    if (streams_.empty()) {
        exchanges_.clear();  // idle at the tick: the connection holds no exchange, and none of
        if (memory_) memory_->trim();  // nghttp2's blocks on the free lists
        // No request in flight for keepalive_timeout: GOAWAY, and the session ends.
        if (now - idle_since_ >= limits.keepalive_timeout) {
            going_away_ = true;
            nghttp2_session_terminate_session(session_.get(), NGHTTP2_NO_ERROR);
            sendNow();
        }
        return;
    }
    // Busy: what stayed unused since the last tick goes (a burst's exchanges and nghttp2 blocks
    // are not kept for the life of a stream that outlives the burst).
    exchanges_.trimUnused();
    if (memory_) memory_->trimUnused();
    std::vector<Stream*> streams;
    streams.reserve(streams_.size());
    for (auto& [id, stream] : streams_) {
        // A header block not finished in time holds the whole connection (nothing else may come
        // between its frames): the connection goes (slowloris).
        if (!stream->headersComplete() && now - stream->started() >= limits.client_header_timeout) {
            LOG_INFO("client %s: HTTP/2 header block timed out", client_.ip.c_str());
            nghttp2_session_terminate_session(session_.get(), NGHTTP2_PROTOCOL_ERROR);
            sendNow();
            return;
        }
        streams.push_back(stream.get());
    }
    for (Stream* stream : streams) {
        stream->tick(now);
        // Upstreams that drained without a word since (onDrained comes at a low watermark)
        // are counted as they are now: a held connection window never waits for an event.
        stream->noteBuffers();
    }
    scheduleSend();
}

}  // namespace portico::http2
