// SPDX-License-Identifier: Apache-2.0
#pragma once
// An RFC 8441 stream as the client side of a WebSocket session (net::ByteStream): the session
// (ws::Tunnel, ws::FrameRelay, handlers::EndpointSession) reads the stream's DATA and writes
// the bytes its DATA frames carry back, as it would a socket. No descriptor, no copy on the way
// in (a direct read hands the session nghttp2's DATA bytes), one on the way out (nghttp2 copies
// output() into the frames it makes).
//
// Flow control is the backpressure (RFC 9113 5.2):
// - in: DATA is given to the session while it reads, and its window given back
//   (nghttp2_session_consume) as it is given; while the session has paused reading, DATA waits
//   in input() and the window stays closed, so the client stops sending after
//   http2_stream_window bytes. The other streams on the connection go on.
// - out: output() is the stream's response buffer, emptied as the client's window lets frames
//   go. A closed window keeps it full: the session sees a non-drained output and stops reading
//   its upstream; onDrained follows once the frames went.
//
// Ends: the client's END_STREAM is EOF; RST_STREAM (or the connection's end) is an error
// (ECONNRESET), reported at once so that the session ends before the stream is deleted.
// closeSide() ends the stream with END_STREAM once the output went (Stream::onBytesClosed; a
// client that does not end its side is reset after a linger), or with RST_STREAM CONNECT_ERROR
// when the session's upstream failed (markOtherSideFailed; RFC 9113 8.5).
//
// Ownership: the session owns this object, the http2::Stream owns the session. Each knows the
// other until one of them ends (onStreamClosed, closeSide): never a dangling pointer either way.

#include <cstdint>
#include <memory>

#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/net/byte_stream.h"

namespace portico::http2 {

class Stream;

class StreamBytes final : public net::ByteStream {
public:
    // `output`: the stream's response buffer (it outlives the session that writes to it).
    StreamBytes(Stream& stream, net::EventLoop& loop, evbuffer* output);
    ~StreamBytes() override;
    StreamBytes(const StreamBytes&) = delete;
    StreamBytes& operator=(const StreamBytes&) = delete;

    // From the stream. DATA for the session (from nghttp2's callback: `data` is valid during
    // the call only).
    void onData(const char* data, std::size_t n);
    // Bytes that came before the session started: input() holds them, their window is back.
    void addEarly(evbuffer* early);
    void onEndStream();  // the client's END_STREAM: EOF once input() was offered
    // The stream closed under the session (RST_STREAM, the connection's end): detached, and the
    // session told onError at once.
    void onStreamClosed();
    void afterSend();  // frames went out: onDrained when output() fell to the low watermark
    // DATA waiting while the session paused (its window not given back yet).
    std::size_t withheld() const { return withheld_; }

    // net::ByteStream
    void setHandler(net::StreamHandler* handler) override { handler_ = handler; }
    evbuffer* input() const override;
    evbuffer* output() const override { return output_; }
    std::size_t inputLength() const override;
    std::size_t outputLength() const override;
    void setDirectRead(bool on) override { direct_read_ = on; }
    void releaseIdle() override;
    void pauseReading() override { reading_ = false; }
    void resumeReading() override;
    bool isReading() const override { return reading_; }
    void flush() override;
    void write(const char* data, std::size_t n) override;
    void setLowWatermark(std::size_t bytes) override { low_watermark_ = bytes; }
    void markOtherSideFailed(bool) override { other_side_failed_ = true; }  // after output() anyway
    // Out of memory queueing a write: nothing more goes, the stream is reset (CONNECT_ERROR)
    // when the session ends, and the session gets onError from the loop.
    void failWrite(int error) override;

private:
    void close(net::EventLoop& loop, std::unique_ptr<ByteStream> self, net::Ending ending) override;
    static void onDeliverEvent(int, short, void* arg);
    // From the loop: what waited in input() while paused (its window given back now), then EOF.
    void deliver();
    void giveBack(std::size_t n);

    Stream* stream_;  // null once the stream closed or the session's side ended
    net::StreamHandler* handler_ = nullptr;
    evbuffer* output_;
    mutable core::EvbufferPtr input_;  // made on first use
    core::InlineEvent deliver_event_;
    std::size_t low_watermark_ = 0;
    std::size_t withheld_ = 0;  // bytes in input() not yet offered: their window is not back
    bool reading_ = true;
    bool direct_read_ = false;
    bool eof_ = false;           // END_STREAM came
    bool eof_reported_ = false;
    bool drain_wanted_ = false;  // output() was left non-empty: onDrained when it drains
    bool other_side_failed_ = false;  // close() resets the stream (CONNECT_ERROR), not END_STREAM
    int write_error_ = 0;             // failWrite's, reported from the loop (deliver)
};

}  // namespace portico::http2
