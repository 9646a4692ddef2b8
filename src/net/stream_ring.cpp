// SPDX-License-Identifier: Apache-2.0
// net::Stream on the worker's io_uring (config `io_uring`, plain sockets): what its ring half
// (net/uring/stream_io.h) reports from the completions, turned into the handler's callbacks as
// the epoll path makes them. The calls an owner makes (write, flush, pause, resume) branch here
// from stream.cpp.
#include <cerrno>
#include <utility>
#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/net/stream.h"
#include "portico/net/uring/stream_io.h"
#include "portico/tls/ring_bio.h"

namespace portico::net {

evbuffer* Stream::ringOutput() {
    if (!ringWrites()) return nullptr;
    if (tls_ring_bio_) return ringTlsOutput();
    return output_ ? output_.get() : nullptr;
}

// One send in flight: its completion goes on with what was written meanwhile. Otherwise what
// output() holds goes at the ring's next enter, with everything else this loop pass wrote; file
// segments and writes wanted at once (after any ring send completed) and the half-close after
// the last byte go as on epoll (writeNow). Bytes the ring took and has not sent (a staged
// block, a partial send's rest) always go first: the ring sends them, or a settle waiting for a
// receive gives them back in front of output(); the epoll way starts after that.
void Stream::ringFlush() {
    if (ring_io_->sending()) return;
    if (ring_io_->unsent() > 0 || (ringWrites() && (queuedLength() > 0 || ciphertextLength() > 0))) {
        ring_io_->send();
        return;
    }
    if (!write_armed_ && pending_error_ == 0) writeNow();
}

bool Stream::settleRing(uring::RingSettled waiter) { return ring_io_ == nullptr || ring_io_->settle(waiter); }

bool Stream::receiveEnded(uring::RingSettled waiter) { return ring_io_ == nullptr || ring_io_->receiveEnded(waiter); }

void Stream::ringGone() {
    ring_io_ = nullptr;
    if (connecting_ && connect_on_ring_ && pending_error_ == 0) {
        // The ring went first (a worker stopping) with the connect not made or not reported:
        // it fails, from the loop, as an epoll connect's failure is.
        pending_error_ = ECONNABORTED;
        settleConnect(/*up=*/false);
    }
    if (tls_ring_bio_) ringGoneTls();
}

void Stream::ringResume() {
    // Reading starts once the connect is reported (reportConnected).
    if (connecting_ || connect_unreported_) return;
    ring_io_->stopWatching();
    if (ring_held_ || ring_eof_held_ || ring_held_error_ != 0 || (tls_ring_bio_ && ringTlsHeld())) {
        // Reported from the loop, never from inside resumeReading (ByteStream's promise).
        event_active(&read_event_, EV_READ, 0);
        return;
    }
    ring_io_->receive(ring_poll_first_);
}

void Stream::ringReportHeld() {
    if (!reading_) return;  // paused again meanwhile: the next resume reports
    if (tls_ring_bio_) {
        ringReportHeldTls();
        return;
    }
    if (std::exchange(ring_held_, false) && inputLength() > 0) {
        StreamHandler* handler = handler_;
        handler->onReadable(*this);
        if (!reading_ || handler_ != handler || !ring_io_) return;
    }
    if (std::exchange(ring_eof_held_, false)) {
        ringReadEnded(0, false);
        return;
    }
    if (const int error = std::exchange(ring_held_error_, 0); error != 0) {
        ringReadEnded(-error, false);
        return;
    }
    ring_io_->receive(ring_poll_first_);
}

// As readPlain: onBytes for a direct reader while input() is empty (parsed where the ring put
// it), else appended to input() and onReadable. Paused meanwhile (the receive's cancel came too
// late), the bytes wait in input() for resumeReading.
void Stream::ringReceived(const char* data, std::size_t n, bool more) {
    ring_poll_first_ = !more;
    if (tls_ring_bio_) {
        ringReceivedTls(data, n);
        return;
    }
    if (!reading_) {
        if (evbuffer_add(input(), data, n) == 0) {
            ring_held_ = true;
        } else {
            ring_held_error_ = ENOMEM;
        }
        return;
    }
    if (direct_read_ && inputLength() == 0) {
        handler_->onBytes(*this, data, n);
    } else if (evbuffer_add(input(), data, n) == 0) {
        handler_->onReadable(*this);
    } else {
        stopReading(/*watch_peer_shut=*/false);
        handler_->onError(*this, ENOMEM);
        return;
    }
    if (reading_ && ring_io_) ring_io_->receive(ring_poll_first_);
}

void Stream::ringReadEnded(int result, bool refused) {
    if (refused) {
        // No room in the ring for the receive: the stream fails, reported from the loop.
        ring_held_error_ = -result;
        if (reading_) event_active(&read_event_, EV_READ, 0);
        return;
    }
    if (result == -ECANCELED || result == -EAGAIN || result == -EINTR) {
        // Paused (the cancel), woken by a buffer coming back, or a stale cancel: again if reading.
        if (reading_ && ring_io_) ring_io_->receive(ring_poll_first_);
        return;
    }
    if (result == 0 && tls_ring_bio_) {
        // OpenSSL reads the end after the records before it (close_notify or not).
        tls::endReceived(ssl_.get(), 0);
        if (reading_) {
            handleRead();
            ringReadTlsDone();
            return;
        }
    }
    if (!reading_) {
        // Paused: held for resumeReading. The peer's FIN is what the paused watch reports.
        if (result == 0) {
            ring_eof_held_ = true;
            ringPeerShut();
        } else {
            ring_held_error_ = -result;
        }
        return;
    }
    stopReading(/*watch_peer_shut=*/false);
    if (result == 0) {
        peer_closed_ = true;
        handler_->onEof(*this);
    } else {
        handler_->onError(*this, -result);
    }
}

void Stream::ringPeerShut() {
    if (reading_ || peer_shut_ || peer_closed_) return;
    peer_shut_ = true;
    if (handler_) handler_->onPeerShut(*this);
}

void Stream::ringSent(int result) {
    // TLS counts the plaintext, as SSL_write took it (ringTlsOutput).
    if (result > 0 && !tls_ring_bio_) bytes_written_ += static_cast<std::uint64_t>(result);
    if (result < 0 && result != -EINTR && result != -EAGAIN) {
        ringFailed(-result);
        return;
    }
    if (pending_error_ != 0) return;  // failWrite: the write event reports it
    if (connecting_) {
        // The send linked behind the ring's connect (StreamIo::submitConnect) went: the connect
        // is reported now, with the bytes out (as the first send tells on epoll: the owner
        // then waits for the answer, not for its request to go). The rest of a partial send
        // goes on first, and what was written while the chain was in flight (waiting for the
        // connect: StreamIo::prepareSends) after it, whether the owner flushes in onConnected or
        // not; reportConnected tells onDrained.
        connecting_ = false;
        if (ring_io_->unsent() > 0 || queuedLength() > 0) ringFlush();
        reportConnected();
        return;
    }
    // Nothing left (the common case: a relayed message sent whole) needs no flush and no count.
    const bool empty = ring_io_->unsent() == 0 && queuedLength() == 0 && !tls_ring_bio_ && !shutdown_after_flush_;
    if (ring_io_->unsent() > 0) {
        ring_io_->send();  // the rest of a partial send
    } else if (!empty) {
        ringFlush();  // what was written meanwhile; or file segments, the half-close
    }
    if (std::exchange(tls_receive_after_send_, false) && pending_error_ == 0) ringReadTlsDone();
    // As the write event on epoll: the owner that stopped reading its other side resumes it.
    // Not after a send that took nothing (a block's send refused by a full socket: -EAGAIN):
    // the socket did not drain, and the rest's send, just asked for, reports when it does.
    if (pending_error_ == 0 && !write_armed_ && result >= 0 && (empty || outputLength() <= low_watermark_))
        handler_->onDrained(*this);
}

// A send failed: as sendFailed, but reported now (this is a completion, from the loop).
void Stream::ringFailed(int error) {
    if (pending_error_ != 0) return;
    pending_error_ = error;
    if (output_) evbuffer_drain(output_.get(), evbuffer_get_length(output_.get()));
    if (evbuffer* ciphertext = tls_ring_bio_ ? tls::toSend(ssl_.get()) : nullptr)
        evbuffer_drain(ciphertext, evbuffer_get_length(ciphertext));
    ring_io_->dropUnsent();
    disarmWrite();
    stopReading(/*watch_peer_shut=*/false);
    handler_->onError(*this, error);
}

}  // namespace portico::net
