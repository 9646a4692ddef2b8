// SPDX-License-Identifier: Apache-2.0
#pragma once
// The client side of a WebSocket session, whatever carries it: a byte stream with an input and
// an output evbuffer, read callbacks, pause/resume, flush, a drained notification, EOF and
// errors. Two implementations: net::Stream (a TCP socket, plain or TLS) and http2::StreamBytes
// (the DATA frames of an RFC 8441 stream). The sessions (ws::Tunnel, ws::FrameRelay,
// handlers::EndpointSession) are written once against this interface (Envoy's
// Network::Connection and h2o's h2o_socket_t play the same part).
//
// Backpressure is the owner's job, le-proxy style: stop reading one side while the other side's
// output is above its high watermark, resume from onDrained(). On an HTTP/2 stream pausing
// stops giving the client its window back (it stops sending), and the output stays non-drained
// while the client's send window is closed.

#include <cerrno>
#include <cstddef>
#include <memory>

struct evbuffer;

namespace portico::core {
class SharedBytesRef;
}

namespace portico::net {

class ByteStream;
class EventLoop;
class Stream;

// How a session's side ends (closeSide).
enum class Ending {
    // The session still had something to say: what output() holds is delivered, then the peer
    // is told, and what it still sends is read and discarded for a while (lingering_close.h).
    Linger,
    // The session is over for both peers (one closed its side): closed at once when nothing is
    // left to send and nothing unread (the kernel is asked, FIONREAD, unless the peer's FIN was
    // read), as nginx closes both sides of an upgraded connection.
    Finished,
    // Over because both WebSocket Closes went through: as Finished, but nothing may follow a
    // Close (RFC 6455 5.5.1) and what came after it in the same read was discarded, so the
    // kernel is not asked for unread bytes (one ioctl per socket saved).
    AfterCloses,
};

// Callbacks a ByteStream makes. A handler must not destroy the stream inside a callback: defer it.
class StreamHandler {
public:
    virtual void onReadable(ByteStream& stream) = 0;           // new bytes were appended to input()
    // With setDirectRead(true): `n` bytes read while input() was empty, in an area that is valid
    // during this call only (a socket's per-thread scratch area, an HTTP/2 DATA frame). The
    // handler takes them all (forwards them, or appends what it cannot use yet to input()).
    // Relays use it: no evbuffer chain, no allocation and no copy for the common read that is
    // forwarded whole.
    virtual void onBytes(ByteStream& stream, const char* data, std::size_t n);
    virtual void onEof(ByteStream& stream) = 0;                // the peer closed its side (FIN, END_STREAM)
    virtual void onError(ByteStream& stream, int error) = 0;   // errno-style; also a failed connect or RST_STREAM
    virtual void onDrained(ByteStream& /*stream*/) {}          // output fell to the low watermark
    // The peer closed its side while reading was paused: what is still unread (in the socket,
    // or withheld in input()) is all that will come, and onEof follows it once reading resumes.
    // A relay whose other side stopped taking bytes would otherwise hold the session until
    // idle_timeout for a peer that is gone (ws::StalledDelivery).
    virtual void onPeerShut(ByteStream& /*stream*/) {}
    // Events only a socket makes (net::Stream): connect and TLS.
    virtual void onConnected(Stream& /*stream*/) {}        // an outgoing connect completed
    virtual void onTlsHandshake(Stream& /*stream*/) {}     // an incoming TLS handshake completed
    // An incoming connection on a TLS socket did not start with a TLS handshake record (plain
    // HTTP on an HTTPS port, say): TLS is off and nothing was read, so the handler may answer in
    // plain text. By default that is a failed handshake.
    virtual void onPlainTextOnTls(Stream& stream);

protected:
    ~StreamHandler() = default;
};

class ByteStream {
public:
    virtual ~ByteStream() = default;

    virtual void setHandler(StreamHandler* handler) = 0;
    // The buffers may be made on first use; a pointer stays valid until releaseIdle() or the
    // stream's end.
    virtual evbuffer* input() const = 0;
    virtual evbuffer* output() const = 0;
    virtual std::size_t inputLength() const = 0;
    virtual std::size_t outputLength() const = 0;

    // Reads while input() is empty go to the handler's onBytes instead of input() (a relay).
    virtual void setDirectRead(bool on) = 0;
    // Frees what an idle stream does not need (buffers while empty; made again on first use).
    // Invalidates pointers to the buffers.
    virtual void releaseIdle() = 0;

    virtual void pauseReading() = 0;
    // Bytes already waiting in input() (or an EOF) are reported from the loop, never from
    // inside this call.
    virtual void resumeReading() = 0;
    virtual bool isReading() const = 0;

    // Sends what output() holds as far as the peer takes it now; the rest goes later. An error
    // is reported through onError from the event loop, never from inside flush().
    virtual void flush() = 0;
    // Sends `n` bytes after what output() holds (a socket sends them straight from `data` when
    // nothing is queued).
    virtual void write(const char* data, std::size_t n) = 0;
    // Sends the `n` shared byte blocks after what output() holds, without copying what the
    // peer takes now: a plain socket with nothing queued gathers them into one sendmsg and
    // appends only what it did not take (SharedBytes::appendTo: small remainders copied, large
    // ones referenced). By default (an HTTP/2 stream, TLS with several blocks) they are appended
    // to output() and flushed. Errors as flush(); out of memory is failWrite(ENOMEM).
    virtual void writeShared(const core::SharedBytesRef* blocks, std::size_t n);
    // A write could not be queued (out of memory): the stream fails as on a send error, what
    // output() holds is dropped (no truncated frame goes out) and onError(error) comes from the
    // loop, never from inside this call.
    virtual void failWrite(int error) = 0;
    // onDrained fires when, after output() could not all go at once, it holds at most this many
    // bytes.
    virtual void setLowWatermark(std::size_t bytes) = 0;
    // Before closeSide: the relay ends because its other peer's connection failed (an error, a
    // reset, an HTTP/2 client's RST_STREAM; in frames mode an upstream's protocol violation or
    // end without a Close), not because it closed. RFC 9113 8.5 maps the two words both ways:
    // an HTTP/2 stream (RFC 8441) then ends with RST_STREAM CONNECT_ERROR after what output()
    // holds, instead of END_STREAM; a socket is reset (an RST, SO_LINGER {1, 0}) instead of a
    // FIN, which drops what it still had queued. `last_words`: output() holds a message that
    // must arrive (a frames relay's Close): the stream resets after it anyway; the socket, whose
    // RST could destroy it, closes as `ending` says.
    virtual void markOtherSideFailed(bool last_words) = 0;

private:
    friend void closeSide(EventLoop& loop, std::unique_ptr<ByteStream> stream, Ending ending);
    // closeSide's work; `self` is this stream, handed over.
    virtual void close(EventLoop& loop, std::unique_ptr<ByteStream> self, Ending ending) = 0;
};

// The end of a session's side: what output() holds is still delivered, then the peer is told
// (a socket's FIN, lingering to read what the peer still sends as `ending` says: see
// lingering_close.h; an HTTP/2 stream's END_STREAM). Takes `stream`; null does nothing. Its
// handler gets no more callbacks.
void closeSide(EventLoop& loop, std::unique_ptr<ByteStream> stream, Ending ending);

}  // namespace portico::net
