// SPDX-License-Identifier: Apache-2.0
// A TLS net::Stream on the worker's io_uring, after its handshake (startTls with a ring): the
// ring's receives are decrypted where they landed (tls/ring_bio.h lends them to OpenSSL, what a
// record cut by the receive's end leaves is kept for the next), what SSL_write makes is sent by
// the ring with the loop pass's other sends. readTls, writeTls (stream_tls.cpp) and handleRead
// (stream.cpp) are the epoll path's own: close_notify, SSL_has_pending, read-ahead, the four
// records per pass, the buffer sweep and the errors are handled there for both.
//
// What stays on epoll: the handshake (OpenSSL drives the socket itself, as a connect does), and
// the writes an owner wants at once (writeAtOnce, file segments, a close_notify after the
// last byte): encrypted into the same queue and sent from it with send(), the write event
// waiting when the socket is full, after any ring send in flight completed.
#include <cerrno>
#include <utility>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "portico/core/inline_event.h"
#include "portico/net/stream.h"
#include "portico/net/uring/stream_io.h"
#include "portico/tls/ring_bio.h"
#include "portico/tls/socket_bio.h"

namespace portico::net {

namespace {
// Ciphertext encrypted ahead of the ring's send, at most (the rest waits as plaintext in
// output() for the send's completion): four records.
constexpr std::size_t kCiphertextSlice = 4 * Stream::kReadChunk;

// While it lives, the records OpenSSL writes go to the socket's send block when nothing is
// queued before them (StreamIo::stage: no evbuffer chain made and freed per record), else to
// the BIO's queue. Only around the encryption for the ring's next send: a record written at
// another time (an SSL_read's KeyUpdate answer, a close_notify sent on epoll) is queued, so the
// send that takes the queue never passes a block it does not know of.
class CiphertextToBlock {
public:
    CiphertextToBlock(SSL* ssl, uring::StreamIo* io) : ssl_(ssl) {
        if (io) tls::setCiphertextSink(ssl, {&CiphertextToBlock::take, io});
    }
    ~CiphertextToBlock() { tls::setCiphertextSink(ssl_, {}); }
    CiphertextToBlock(const CiphertextToBlock&) = delete;
    CiphertextToBlock& operator=(const CiphertextToBlock&) = delete;

private:
    static bool take(void* io, const char* data, std::size_t n) { return static_cast<uring::StreamIo*>(io)->stage(data, n); }
    SSL* ssl_;
};
}  // namespace

// Right after the handshake (driveHandshake), before the owner hears of it. Without memory for
// the BIO or the ring's half the socket simply stays on epoll.
void Stream::moveTlsToRing() {
    uring::Ring* ring = std::exchange(tls_ring_, nullptr);
    if (ring == nullptr || !tls::attachRingBio(ssl_.get(), fd_.get())) return;
    tls_ring_bio_ = true;
    const bool was_reading = reading_;
    stopReading(/*watch_peer_shut=*/false);
    core::cancelEvent(&read_event_);  // from now on it only carries reports (event_active)
    ring_io_ = &uring::StreamIo::make(*ring, *this, fd_.get());
    if (was_reading) resumeReading();
}

// An idle TLS connection on the ring holds no ciphertext buffers: the BIO's, the ring send's.
void Stream::releaseIdleTls() {
    if (!tls_ring_bio_) return;
    tls::releaseIdle(ssl_.get());
    if (ring_io_) ring_io_->releaseIdle();
}

std::size_t Stream::ciphertextLength() const { return tls_ring_bio_ ? tls::toSendLength(ssl_.get()) : 0; }

std::size_t Stream::tlsKeptLength() const { return tls_ring_bio_ ? tls::receivedLength(ssl_.get()) : 0; }

void Stream::ringReceivedTls(const char* data, std::size_t n) {
    SSL* ssl = ssl_.get();
    if (!reading_) {
        // Paused (the receive's cancel came too late): decrypted when reading resumes.
        if (tls::keepReceived(ssl, data, n)) {
            ring_held_ = true;
        } else {
            ring_held_error_ = ENOMEM;
        }
        return;
    }
    tls::borrowReceived(ssl, data, n);
    handleRead();
    if (!tls::keepBorrowed(ssl)) {
        if (!reading_) {
            ring_held_error_ = ENOMEM;
            return;
        }
        stopReading(/*watch_peer_shut=*/false);
        handler_->onError(*this, ENOMEM);
        return;
    }
    ringReadTlsDone();
}

void Stream::ringReadTlsDone() {
    // A KeyUpdate's answer, a session ticket, an alert: OpenSSL wrote while it read.
    if (ciphertextLength() > 0) flush();
    // Received bytes OpenSSL has not taken (handleRead stopped after its four records, or the
    // handler paused): the loop's next pass reads them and then receives. So no more than one
    // receive's bytes are ever kept, however small the peer's records. A record cut short is
    // not among them: OpenSSL's read-ahead took it into its own buffer (which holds a whole one).
    if (!reading_ || !ring_io_ || tls::receivedLength(ssl_.get()) != 0) return;
    // What OpenSSL writes while it reads (a KeyUpdate's answer) is bounded as the epoll path's
    // WANT_WRITE bounds it: a peer that sends and never reads gets no more receives while a
    // slice of ciphertext waits to go out; ringSent receives again once it went.
    if (ciphertextLength() > kCiphertextSlice) {
        tls_receive_after_send_ = true;
        return;
    }
    ring_io_->receive(ring_poll_first_);
}

// On the ring, received bytes OpenSSL did not take yet (more than its read-ahead buffer holds)
// are as pending as what it read ahead: no receive would bring them.
bool Stream::tlsPending() const {
    const SSL* ssl = ssl_.get();
    return SSL_has_pending(ssl) != 0 || (tls_ring_bio_ && tls::receivedLength(ssl) > 0);
}

bool Stream::ringTlsHeld() { return tlsPending() || tls::receivedEnded(ssl_.get()); }

// From the loop: bytes kept while paused, records OpenSSL read ahead, the peer's end, an error.
void Stream::ringReportHeldTls() {
    ring_held_ = false;
    ring_eof_held_ = false;  // the BIO has it (endReceived): handleRead reads up to it
    handleRead();
    if (!reading_ || !ring_io_) return;
    if (const int error = std::exchange(ring_held_error_, 0); error != 0) {
        ringReadEnded(-error, false);
        return;
    }
    ringReadTlsDone();
}

// A write that finds output() empty (write()): encrypted now from the caller's bytes, as on
// epoll, instead of copied into output() and encrypted from there at the enter (a chain made and
// freed per message). Only within the slice of ciphertext kept ahead of the send; what is not
// taken (a larger write, an SSL_write that failed: writeTls meets that again and fails the
// stream) goes to output() as before. Returns the bytes taken.
std::size_t Stream::ringWriteTls(const char* data, std::size_t n) {
    if (ciphertextLength() + n > kCiphertextSlice) return 0;
    const CiphertextToBlock to_block(ssl_.get(), ring_io_);
    bool blocked = false;
    return writeTlsFrom(data, n, blocked);
}

// From the send about to be submitted (StreamIo::submitSend), which takes a block staged here.
evbuffer* Stream::ringTlsOutput() {
    const CiphertextToBlock to_block(ssl_.get(), ring_io_);
    while (queuedLength() > 0 && ciphertextLength() < kCiphertextSlice && pending_error_ == 0) {
        if (!writeTls()) break;
    }
    return pending_error_ == 0 ? tls::toSend(ssl_.get()) : nullptr;
}

bool Stream::sendCiphertext() {
    evbuffer* out = tls_ring_bio_ ? tls::toSend(ssl_.get()) : nullptr;
    while (out != nullptr && evbuffer_get_length(out) > 0) {
        const int n = evbuffer_write(out, fd_.get());
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            armWrite();
            return false;
        }
        sendFailed(n < 0 ? errno : EPIPE);
        return false;
    }
    return true;
}

// The ring went first (a worker stopping): OpenSSL reads and writes the socket itself again.
// Ciphertext kept or not yet sent is lost with the ring's BIO: the next record fails the
// connection (a bad record MAC) rather than the stream waiting for bytes nobody receives.
void Stream::ringGoneTls() {
    tls_ring_bio_ = false;
    if (!tls::attachSocket(ssl_.get(), fd_.get())) pending_error_ = ENOMEM;
}

}  // namespace portico::net
