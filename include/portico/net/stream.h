// SPDX-License-Identifier: Apache-2.0
#pragma once
// A non-blocking TCP socket with an input and an output evbuffer, driven by one event_base.
//
// Why not bufferevent: a bufferevent defers every write to the next loop iteration and asks the
// kernel how much is readable before each read, which costs several syscalls per proxied
// request. A Stream writes immediately and only waits for EV_WRITE when the socket is full, and
// reads into a fixed-size reservation. Backpressure is the owner's job, le-proxy style: stop
// reading one side while the other side's output is above its high watermark, resume from
// onDrained().

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <sys/socket.h>

#include <event2/event_struct.h>  // the read event lives inside the stream

#include "portico/core/handles.h"
#include "portico/net/byte_stream.h"
#include "portico/net/tls_buffer_sweep.h"
#include "portico/tls/handles.h"

struct event_base;
struct evbuffer;

namespace portico::net {

namespace uring {
class Ring;
struct RingSettled;
class StreamIo;
}  // namespace uring

// A socket as a ByteStream (byte_stream.h); final, so that calls through a Stream& are direct.
class Stream final : public ByteStream {
public:
    // Adopts a connected, non-blocking socket (accept4 or socket with SOCK_NONBLOCK; accepted
    // ones inherit TCP_NODELAY from the listening socket). Reading starts at once.
    // With `ring` (the worker's io_uring, config `io_uring`) the socket's reads and writes go
    // through it (net/uring/stream_io.h), and the Stream keeps every promise made here; for a
    // plain socket only: a socket that turns to TLS is made without one and is handed the ring
    // by startTls, for after its handshake.
    Stream(event_base* base, core::UniqueFd fd, StreamHandler* handler, uring::Ring* ring = nullptr);
    ~Stream() override;
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    // Starts a non-blocking connect; the handler gets onConnected or onError, from the loop.
    // Bytes written meanwhile are sent at once when the socket is already up (a plain socket's
    // first write or flush tries: firstSendTellsConnect). The caller writes or flushes before it
    // returns to the loop (HttpExchange sends the request head at once): that first send tells
    // the connect's outcome or, when it cannot (EAGAIN, TLS, nothing to send), arms the write
    // event that waits for it. Returns nullptr and sets `error` when connect() fails at once.
    // With `ring` (a plain socket only, as for the constructor; TLS: startTls) the connect goes
    // through the ring too, for IPv4 and IPv6: made at the ring's next enter with what was
    // written by then sent behind it (net/uring/stream_io.h); its failures are all reported
    // from the loop (onError), none at once. Other families connect as without a ring; their
    // reads and writes after onConnected go through the ring.
    static std::unique_ptr<Stream> connectTo(event_base* base, const sockaddr* address,
                                             socklen_t length, StreamHandler* handler, int& error,
                                             uring::Ring* ring = nullptr);

    void setHandler(StreamHandler* handler) override { handler_ = handler; }
    // Its owner lets go ahead of a deferred delete: nothing more reaches the old handler, not
    // even events already due in this loop pass (the handler may be recycled for other work).
    void detach();
    // The buffers are made on first use (an idle relayed socket never needs them); a pointer
    // stays valid until releaseIdle() or the Stream's end.
    evbuffer* input() const override;
    evbuffer* output() const override;
    std::size_t inputLength() const override;
    int fd() const { return fd_.get(); }

    // Reads while input() is empty go to the handler's onBytes instead of input() (a relay).
    void setDirectRead(bool on) override { direct_read_ = on; }
    // Frees what an idle socket does not need: input() and output() when empty, and the write
    // event while nothing waits to be written (all made again on first use). For the owner of
    // a long-lived connection between bursts; invalidates pointers to the buffers.
    void releaseIdle() override;

    // Paused, the socket is still watched for the peer's FIN (edge-triggered EPOLLRDHUP, no
    // read): the handler hears it as onPeerShut, once.
    void pauseReading() override;
    void resumeReading() override;
    bool isReading() const override { return reading_; }
    // The peer's FIN (or TLS close_notify) was read: nothing more can arrive on this socket.
    bool peerClosed() const { return peer_closed_; }
    // The peer's FIN came while reading was paused (onPeerShut): what the socket holds is all.
    bool peerShut() const { return peer_shut_; }
    // The socket held nothing unread when the loop last polled it: a plain read emptied it (took
    // less than it asked for) and reading has stayed on since, so the poll watched it, and that
    // poll did not report it readable (its read event is not due in this pass). What arrives
    // after the poll is not seen: as with FIONREAD, which sees up to its own call. Lets a
    // finished relay close without asking FIONREAD (net::closeFinished).
    bool drainedAtLastPoll() const;
    // For a socket read by someone else while this Stream's reading is paused (the io_uring
    // relay): the peer's FIN was read, or a read emptied the socket and nothing more had arrived
    // when that reader stopped (as drainedAtLastPoll says for the loop's poll). Either spares
    // net::closeFinished its FIONREAD.
    void notePeerClosed() { peer_closed_ = true; }
    void noteDrained() { drained_elsewhere_ = true; }

    // Whether this socket's I/O goes through the worker's io_uring.
    bool onRing() const { return ring_io_ != nullptr; }
    // On the ring, writes go to the socket at once from now on (send(), the write event when it
    // is full), as on epoll, instead of with the loop pass's other sends at the ring's next
    // enter; reads stay on the ring. For an owner that judges its peer by what the socket
    // refuses right after a flush (a pub/sub subscriber's queue_bytes, a replay's slices).
    void writeAtOnce() { write_at_once_ = true; }
    // Before someone else reads and writes this socket itself (the io_uring relay), after
    // detach(): true when none of this Stream's ring requests is in flight any more; else
    // false, and `waiter` is told when none is (from a completion). What a send had not sent
    // by then is back at the front of output(), bytes a cancelled receive brought are in
    // input(). settleRing({}) stops the wait.
    bool settleRing(uring::RingSettled waiter);
    // After pauseReading: true when what the peer sent is in input() or still in the socket
    // (hasUnreadInput sees it); on the ring, while the cancelled receive has not ended (it may
    // hold bytes the kernel took from the socket), false, and `waiter` is told when it has
    // (from its completion). receiveEnded({}) stops the wait.
    bool receiveEnded(uring::RingSettled waiter);

    // The relay's other peer failed (an HTTP/2 client's RST_STREAM, a connection error): close()
    // resets this connection (SO_LINGER {1, 0}: an RST, what is queued is dropped) instead of a
    // FIN, so that the peer learns the end was abnormal (RFC 9113 8.5's mapping); not when
    // `last_words` wait in the output.
    void markOtherSideFailed(bool last_words) override { reset_on_close_ = !last_words; }

    // Sends as much of output() as the socket takes now; the rest goes when it is writable.
    // A write error is reported through onError from the event loop, never from inside flush().
    void flush() override;
    // The output may from now on hold file segments (evbuffer_add_file, sent with sendfile):
    // their bytes are not in memory, so output is written with evbuffer_write only, never with
    // the send() of a single in-memory segment.
    void outputMayHoldFiles() { output_may_hold_files_ = true; }
    // Sends `n` bytes after what output() holds: straight from `data` with one send (or
    // SSL_write) when nothing is queued, the socket is writable and TLS is established; whatever
    // the socket does not take now is copied into output() and goes as flush() would send it.
    void write(const char* data, std::size_t n) override;
    // ByteStream::writeShared: one sendmsg over the blocks when nothing is queued and the socket
    // is writable; with TLS one block is encrypted from the shared bytes (SSL_write, as write()
    // does) and what the socket refuses waits in output() as on a plain socket (a large rest
    // referenced, not copied), several are appended and flushed (one record for all).
    void writeShared(const core::SharedBytesRef* blocks, std::size_t n) override;
    static constexpr std::size_t kMaxSharedBlocks = 16;  // the iovec on the stack; more are appended
    std::size_t outputLength() const override;
    // Records received that the owner has not read yet, held by OpenSSL or (on the ring) kept
    // from a receive that completed while reading was paused: neither input() nor FIONREAD shows them.
    bool tlsHoldsInput() const { return ssl_ && tlsPending(); }
    // On the ring: received bytes OpenSSL has not taken yet, kept by the ring's BIO. At most one
    // receive's worth (uring::BufferPool::kSize): the next receive waits for them to be read.
    std::size_t tlsKeptLength() const;
    // ByteStream::failWrite: what output() holds is dropped, and onError(error) comes from the loop.
    void failWrite(int error) override;
    // How far the peer has taken what we sent: bytes written to the socket so far, and how
    // many of them the kernel still holds unacknowledged (SIOCOUTQ). Two calls compare equal
    // when the peer took nothing in between: a send timeout's test, exact even when a large
    // kernel send buffer wakes us (EV_WRITE) only after a third of it drained.
    // On the ring, while a send is queued for the ring's next enter (the bytes just written), the
    // kernel is not asked (unacknowledged is kNotAsked): the send goes in this loop pass, so a
    // later call differs in `written`, or (the socket was full) in `unacknowledged`, which then
    // counts as progress once: a send timeout measured from such a mark may wait one check
    // (net::sendCheckInterval) longer. Saves an ioctl per response and per proxied request.
    static constexpr int kNotAsked = -2;
    struct SendProgress {
        std::uint64_t written = 0;
        int unacknowledged = 0;
        bool operator==(const SendProgress&) const = default;
    };
    SendProgress sendProgress() const;
    bool isConnecting() const { return connecting_; }
    // onDrained fires when, after a blocked write, output() holds at most this many bytes.
    void setLowWatermark(std::size_t bytes) override { low_watermark_ = bytes; }
    // Half-closes the socket once output() is flushed (used for close-delimited responses and
    // after a WebSocket close frame).
    void shutdownAfterFlush();

    // TLS on this socket from now on: takes ownership of `ssl` (made by tls::ServerContext or
    // tls::ClientContext). The handshake runs before any data moves; for an outgoing connection
    // onConnected fires after it. A failed handshake is reported as onError(EPROTO) and its
    // reason is kept in tlsError().
    // With `ring` the handshake runs on epoll (OpenSSL reads and writes the socket itself, as a
    // connect does), and then the socket's reads and writes go through the ring: its receives
    // are decrypted where they landed and what SSL_write makes is sent with the loop pass's
    // other writes (tls/ring_bio.h). Every promise made here holds there too.
    void startTls(tls::SslPtr ssl, bool server, uring::Ring* ring = nullptr);
    bool isTls() const { return ssl_ != nullptr; }
    // TLS and its handshake completed.
    bool tlsEstablished() const { return ssl_ != nullptr && tls_established_; }
    const std::string& tlsError() const { return tls_error_; }
    // The ALPN protocol agreed, "" if none (valid after the handshake).
    std::string alpnProtocol() const;

    // On its loop's TlsBufferSweep list: the stream did TLS I/O and has not been idle through a
    // sweep since, so OpenSSL's record buffers may be held (they go within 2 s of the last I/O).
    bool holdsTlsBuffers() const { return tls_buffer_slot_ != TlsBufferSweep::kUnlisted; }

    static constexpr std::size_t kReadChunk = 16 * 1024;

private:
    friend class TlsBufferSweep;
    friend class uring::StreamIo;
    Stream(event_base* base, core::UniqueFd fd, StreamHandler* handler, uring::Ring* ring, bool connecting);
    friend struct TlsBufferSweepList;
    // ByteStream: closeFinished, or closeGracefully (lingering_close.cpp, where they live).
    void close(EventLoop& loop, std::unique_ptr<ByteStream> self, Ending ending) override;
    void stopReading(bool watch_peer_shut);
    void notePeerShut();
    static void onReadEvent(int fd, short what, void* arg);
    static void onWriteEvent(int fd, short what, void* arg);
    void handleRead(bool peer_shut = false);  // peer_shut: epoll saw the peer's FIN (EV_CLOSED)
    void handleWrite();
    // Both return the bytes appended to input() (bytes given to onBytes are not counted).
    struct ReadSlot;
    bool openSlot(ReadSlot& slot, bool scratch, bool was_empty, int& error);  // false: no memory
    bool fillSlot(ReadSlot& slot, std::size_t got, std::size_t& buffered);     // false: the reader stopped
    void closeEmptySlot(ReadSlot& slot);                                          // nothing was read
    std::size_t readPlain(bool& eof, int& error, bool peer_shut);
    std::size_t readTls(bool& eof, int& error);
    // Hands bytes read into the scratch area to the handler (direct read); false when reading
    // should stop for this wakeup (paused, handler changed, stream handed over).
    bool deliver(const char* data, std::size_t n);
    bool canWriteNow() const;
    bool writeTls();  // false: the socket is full (armed) or failed
    // SSL_write from `data` (16 KiB a record) until all went or it stopped: returns the bytes
    // taken; `blocked` when the socket is full (WANT_WRITE). What is left waits in output(): the
    // retry gives SSL_write the same bytes from there (ACCEPT_MOVING_WRITE_BUFFER).
    std::size_t writeTlsFrom(const char* data, std::size_t n, bool& blocked);
    // After a write left bytes in output(): the write event when the socket is full, else
    // writeNow() (which reports what stopped the write: an error, TLS wanting to read).
    void sendRest(bool blocked);
    // A send failed: output() dropped, onError(error) from the write event.
    void sendFailed(int error);
    void driveHandshake();
    bool startsWithTlsRecord();
    void failTls(const char* where);
    void armWrite();
    void disarmWrite();
    void writeNow();
    bool firstSendTellsConnect() const;
    void settleConnect(bool up);
    void watchConnect();
    void reportConnected();
    // Before every call that may make OpenSSL's buffers: a flag and, when they had been freed,
    // a place on the sweep's list. Nothing else on the data path.
    void noteTlsIo() {
        tls_io_ = true;
        if (tls_buffer_slot_ == TlsBufferSweep::kUnlisted) listForSweep();
    }
    void listForSweep();

    // On the ring (stream_ring.cpp): what StreamIo reports, from its completions.
    void ringReceived(const char* data, std::size_t n, bool more);  // `more`: the socket holds more
    void ringReadEnded(int result, bool refused);  // 0 EOF, else -errno; `refused`: no submission
    void ringPeerShut();                           // the paused watch saw the peer's FIN
    void ringSent(int result);
    void ringConnected(int result);  // the ring's connect: 0, or -errno
    evbuffer* ringOutput();  // the output a ring send may take now, or null
    void ringGone();         // the ring went first (a worker stopping)
    // Writes go through the ring unless the epoll path has them: a connect's first send and
    // what it left (the write event), file segments (sendfile stays synchronous, from output()),
    // an owner that wants them at once (writeAtOnce), a failure waiting to be reported. The epoll
    // path starts after what the ring took was sent (a send in flight, a staged block, a partial
    // send's rest) or a settle gave it back into output() (ringFlush): the bytes keep their order.
    bool ringWrites() const {
        return ring_io_ && (!connecting_ || connect_on_ring_) && !write_armed_ && !output_may_hold_files_ && !write_at_once_ &&
               pending_error_ == 0;
    }
    void ringFlush();
    void ringResume();
    void ringReportHeld();   // what came while paused, now that reading resumed (from the loop)
    void ringFailed(int error);
    // TLS on the ring (stream_tls_ring.cpp).
    void moveTlsToRing();
    void ringReceivedTls(const char* data, std::size_t n);
    void ringReadTlsDone();  // after a decrypting pass: what OpenSSL wrote goes, the next receive
    void ringReportHeldTls();
    bool ringTlsHeld();      // received bytes or an end wait for a decrypting pass
    bool tlsPending() const;  // records to read without reading the socket (read ahead, received)
    evbuffer* ringTlsOutput();  // output() encrypted, a slice at a time
    std::size_t ringWriteTls(const char* data, std::size_t n);  // a write with nothing queued
    bool sendCiphertext();   // writes at once: false when the socket is full (armed) or failed
    void ringGoneTls();
    void releaseIdleTls();  // for releaseIdle and the buffer sweep
    std::size_t ciphertextLength() const;  // encrypted and not yet taken by a ring send
    std::size_t queuedLength() const;  // in output() (outputLength() adds what a ring send holds)

    core::UniqueFd fd_;
    std::uint32_t tls_buffer_slot_ = TlsBufferSweep::kUnlisted;  // on the sweep's list (fits beside fd_)
    StreamHandler* handler_;
    mutable core::EvbufferPtr input_;
    mutable core::EvbufferPtr output_;
    // Inside the stream (event_assign), not event_new'd: a socket has it for its whole life, and
    // a separate allocation cost a malloc and a free per socket (two per proxied upgrade) and
    // 16 bytes of malloc overhead on an idle connection. Taken off the loop in ~Stream.
    event read_event_{};
    core::EventPtr write_event_;  // made when a write first blocks (or a connect waits)
    std::size_t low_watermark_ = 0;
    std::uint64_t bytes_written_ = 0;  // to the socket (plaintext on TLS)
    int pending_error_ = 0;     // a write error waiting to be reported from the loop
    bool reading_ = false;
    bool peer_closed_ = false;
    bool peer_shut_ = false;  // the paused watch saw the peer's FIN (notePeerShut)
    bool drained_elsewhere_ = false;  // noteDrained
    bool read_emptied_ = false;  // the last plain read took all the socket held; reading on since
    bool direct_read_ = false;
    bool bulk_ = false;  // the last plain read filled kReadChunk: read into input() directly
    bool write_armed_ = false;
    bool output_may_hold_files_ = false;
    bool write_at_once_ = false;  // writeAtOnce
    bool connecting_ = false;
    bool connect_probed_ = false;     // the first send while connecting was tried (once)
    bool connect_unreported_ = false;  // that send went: onConnected is due from the loop
    bool connect_unwatched_ = false;   // connectTo armed no write event: the first send decides
    bool connect_on_ring_ = false;  // connectTo left the connect to the ring (StreamIo::connect)
    bool connect_report_queued_ = false;  // settleConnect's report (or armWrite's ENOMEM) waits in the read event (EV_WRITE)
    bool shutdown_after_flush_ = false;
    bool write_shut_ = false;
    bool reset_on_close_ = false;  // markOtherSideFailed: close() resets the connection (RST)
    uring::StreamIo* ring_io_ = nullptr;  // owned by the ring (it outlives us while requests fly)
    int ring_held_error_ = 0;   // a receive failed while paused: reported when reading resumes
    bool ring_held_ = false;      // a receive brought bytes while paused (into input())
    bool ring_eof_held_ = false;  // ... or the peer's FIN
    bool ring_poll_first_ = false;  // the last receive emptied the socket
    bool tls_receive_after_send_ = false;  // ringReadTlsDone held the receive for ciphertext to go
    tls::SslPtr ssl_;  // its deleter keeps a cleanly finished session resumable
    uring::Ring* tls_ring_ = nullptr;  // startTls's ring, taken once the handshake is done
    std::string tls_error_;
    bool handshaking_ = false;
    bool tls_established_ = false;
    bool tls_server_ = false;
    bool first_byte_checked_ = false;  // a server's first byte was a TLS handshake record
    bool tls_write_wants_read_ = false;  // SSL_write said WANT_READ: retry it when readable
    bool tls_read_more_ = false;  // readTls stopped with records still read ahead in OpenSSL
    bool tls_io_ = false;    // TLS I/O since the last sweep (noteTlsIo)
    bool tls_warm_ = false;  // TLS I/O before the last sweep too: the next busy sweep keeps the buffers
    bool tls_ring_bio_ = false;  // OpenSSL reads and writes through tls/ring_bio.h (moveTlsToRing)
};

}  // namespace portico::net
