// SPDX-License-Identifier: Apache-2.0
#include "portico/net/stream.h"

#include <cerrno>
#include <utility>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>  // drainedAtLastPoll: the active flag
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/ssl.h>

#include "portico/core/inline_event.h"
#include "portico/net/uring/stream_io.h"
#include "portico/tls/errors.h"
#include "portico/tls/ring_bio.h"
#include "net/stream_read_slot.h"
#include <algorithm>

namespace portico::net {

namespace {

constexpr short kReadEvents = EV_READ | EV_CLOSED | EV_PERSIST;
constexpr short kPeerShutEvents = EV_CLOSED | EV_ET | EV_PERSIST;  // while paused (stopReading)

// Where a read lands when input() is empty: a relay forwards it from here (onBytes) without an
// evbuffer chain; for everyone else only the bytes read are copied into input(), so that no
// 16 KiB reservation is allocated per read or left behind on an idle socket.
thread_local char t_scratch[Stream::kReadChunk];

// libevent keeps an empty chain (a reservation nothing was committed to) until the buffer is
// drained of at least one byte: give it that byte so that an idle socket holds no chain.
void releaseEmptyChains(evbuffer* buf) {
    if (evbuffer_get_length(buf) != 0) return;
    evbuffer_add(buf, "", 1);
    evbuffer_drain(buf, 1);
}

// Empty evbuffers of this thread's streams, for its next streams' input() and output(): a
// proxied upgrade makes three for its handshake (the client's head and the 101 it is sent, the
// upstream's 101) and lets them go once it relays (releaseIdle); each evbuffer_new and
// evbuffer_free cost about 500 instructions and a calloc. An empty evbuffer holds no chain (a
// reservation left uncommitted is released: releaseEmptyChains), so at most kSpare small
// objects are kept per thread.
class SpareBuffers {
public:
    static constexpr std::size_t kSpare = 32;
    SpareBuffers() = default;
    SpareBuffers(const SpareBuffers&) = delete;
    SpareBuffers& operator=(const SpareBuffers&) = delete;
    ~SpareBuffers() {
        for (std::size_t i = 0; i < count_; ++i) evbuffer_free(spare_[i]);
    }
    evbuffer* take() { return count_ > 0 ? spare_[--count_] : evbuffer_new(); }
    // Takes an empty buffer back (anything else is freed).
    void give(core::EvbufferPtr& buffer) {
        if (!buffer) return;
        if (count_ < kSpare && evbuffer_get_length(buffer.get()) == 0) spare_[count_++] = buffer.release();
        buffer.reset();
    }

private:
    evbuffer* spare_[kSpare] = {};
    std::size_t count_ = 0;
};
thread_local SpareBuffers t_spare_buffers;

}  // namespace

void StreamHandler::onBytes(ByteStream& stream, const char* data, std::size_t n) {
    evbuffer_add(stream.input(), data, n);
    onReadable(stream);
}

void StreamHandler::onPlainTextOnTls(Stream& stream) { onError(stream, EPROTO); }

Stream::Stream(event_base* base, core::UniqueFd fd, StreamHandler* handler, uring::Ring* ring)
    : Stream(base, std::move(fd), handler, ring, /*connecting=*/false) {}

// `connecting` (connectTo): no write event yet, the first send decides (firstSendTellsConnect);
// on the ring, reading starts once the connect is reported (reportConnected).
Stream::Stream(event_base* base, core::UniqueFd fd, StreamHandler* handler, uring::Ring* ring, bool connecting)
    : fd_(std::move(fd)), handler_(handler), connecting_(connecting), connect_unwatched_(connecting) {
    // EV_CLOSED (EPOLLRDHUP, in the same epoll_ctl): a relay learns of the peer's FIN with the
    // bytes before it, and needs no further read for it (readPlain). On the ring the event is
    // never added: it only carries reports due from the loop (event_active).
    event_assign(&read_event_, base, fd_.get(), kReadEvents, &Stream::onReadEvent, this);
    if (ring) ring_io_ = &uring::StreamIo::make(*ring, *this, fd_.get());
    resumeReading();
}

evbuffer* Stream::input() const {
    if (!input_) input_.reset(t_spare_buffers.take());
    return input_.get();
}

evbuffer* Stream::output() const {
    if (!output_) output_.reset(t_spare_buffers.take());
    return output_.get();
}

std::size_t Stream::inputLength() const { return input_ ? evbuffer_get_length(input_.get()) : 0; }

void Stream::releaseIdle() {
    // Nothing held (a relayed socket between messages, its writes sent from the ring's blocks):
    // the common case, asked after every send completion on the ring (onDrained).
    if (!input_ && !output_ && !write_event_ && !tls_ring_bio_ && !(ring_io_ && ring_io_->holdsSendBuffer())) return;
    if (input_ && evbuffer_get_length(input_.get()) == 0) t_spare_buffers.give(input_);
    if (tls_ring_bio_) {
        releaseIdleTls();
    } else if (ring_io_) {
        ring_io_->releaseIdle();  // the send buffer a write that could not go from a block made
    }
    if (write_armed_ || connecting_ || connect_unreported_ || handshaking_) return;
    if (output_ && evbuffer_get_length(output_.get()) == 0) t_spare_buffers.give(output_);
    write_event_.reset();  // not added: freeing it costs no epoll_ctl
}

// The events go first (the read event here, the write event by member order, before fd_):
// libevent queues their removal from epoll for its next poll (EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST),
// where it fails with EBADF, harmlessly, as the close has taken the socket out of epoll already. Closing after that poll instead would cost a
// timer and delay the FIN by a loop iteration (measured: more epoll_wait per upgrade).
Stream::~Stream() {
    core::cancelEvent(&read_event_);  // after detach() (a finished side) there is nothing to take off
    // Requests in flight name the ring's half, which keeps the socket open until they are done.
    if (ring_io_) ring_io_->release(std::move(fd_));
    if (holdsTlsBuffers()) TlsBufferSweep::remove(*this, event_get_base(&read_event_));
    t_spare_buffers.give(input_);
    t_spare_buffers.give(output_);
}

void Stream::listForSweep() { TlsBufferSweep::add(*this, event_get_base(&read_event_)); }

void Stream::pauseReading() { stopReading(/*watch_peer_shut=*/!peer_closed_ && !peer_shut_); }

// Paused, the read event is not taken off the loop but narrowed to the peer's FIN (EPOLLRDHUP,
// edge-triggered): a peer that closes behind bytes a relay holds back (its other side does not
// read) is noticed at once (onPeerShut), not when reading resumes. The change is one event
// (re-assigned while off the loop), so libevent's change list still makes it one epoll_ctl (MOD
// instead of DEL, and back): pausing and resuming cost what they did. Edge-triggered because
// libevent reports a reset (EPOLLERR, EPOLLHUP) as EV_READ | EV_WRITE only, which this event
// does not ask for: level-triggered, such a socket would wake every poll. A reset while paused
// is learnt at the next read or write, as before.
void Stream::stopReading(bool watch_peer_shut) {
    read_emptied_ = false;  // the poll stops watching: bytes may pile up unseen
    if (!reading_) return;
    reading_ = false;
    if (ring_io_) {
        ring_io_->stopReceiving();
        if (watch_peer_shut) ring_io_->watchPeerShut();
        return;
    }
    event_del(&read_event_);
    if (watch_peer_shut) {
        event_assign(&read_event_, event_get_base(&read_event_), fd_.get(), kPeerShutEvents, &Stream::onReadEvent, this);
        event_add(&read_event_, nullptr);
    }
    // event_del took a queued connect report off the active queue too: it is still due.
    if (connect_report_queued_) event_active(&read_event_, EV_WRITE, 0);
}

// The paused watch saw the peer's FIN: nothing more than what the socket holds will come.
void Stream::notePeerShut() {
    event_del(&read_event_);  // once is all it tells (and a queued connect report stays due)
    if (connect_report_queued_) event_active(&read_event_, EV_WRITE, 0);
    peer_shut_ = true;
    if (handler_) handler_->onPeerShut(*this);  // Worker::refuse makes its stream without one
}

void Stream::detach() {
    // A handler that ignores everything: the stream may be inside its own callback, which goes
    // on calling handler_ after the owner detached it.
    class Detached final : public StreamHandler {
        void onReadable(ByteStream&) override {}
        void onBytes(ByteStream&, const char*, std::size_t) override {}
        void onEof(ByteStream&) override {}
        void onError(ByteStream&, int) override {}
    };
    static Detached detached;
    handler_ = &detached;
    connect_report_queued_ = false;
    stopReading(/*watch_peer_shut=*/false);
    if (ring_io_) {  // paused before: its receive is cancelled already, its watch now
        ring_io_->stopReceiving();
        ring_io_->stopWatching();
    }
    // event_del also takes the event off the loop's list of those due now, a connect report that
    // an earlier pause queued again too (pauseReading returns early when already paused).
    core::cancelEvent(&read_event_);
    disarmWrite();
}

// libevent 2.1 has no call that tells a pending event from one due in this pass (event_pending
// answers both), hence the flag from event_struct.h: set while the event waits in the loop's
// active queue, cleared before its callback runs (and by event_del).
bool Stream::drainedAtLastPoll() const {
    if (drained_elsewhere_) return true;
    return read_emptied_ && reading_ && !ssl_ &&
           (read_event_.ev_evcallback.evcb_flags & (EVLIST_ACTIVE | EVLIST_ACTIVE_LATER)) == 0;
}

void Stream::resumeReading() {
    if (reading_) return;
    reading_ = true;
    if (ring_io_) {
        ringResume();
        return;
    }
    // event_add leaves an event that waits in the active queue out of epoll (libevent adds it
    // to the backend only when it is neither inserted nor active): a connect report queued by
    // pauseReading is taken off, the event added, and the report queued again. The paused
    // watch for the peer's FIN (stopReading) becomes the read event again.
    if (connect_report_queued_ || read_event_.ev_events != kReadEvents) {
        event_del(&read_event_);
        event_assign(&read_event_, event_get_base(&read_event_), fd_.get(), kReadEvents, &Stream::onReadEvent, this);
    }
    event_add(&read_event_, nullptr);
    if (connect_report_queued_) event_active(&read_event_, EV_WRITE, 0);
    // Records OpenSSL read ahead while we were paused make the socket no more readable.
    if (ssl_ && !handshaking_ && SSL_has_pending(ssl_.get())) event_active(&read_event_, EV_READ, 0);
}

std::size_t Stream::queuedLength() const { return output_ ? evbuffer_get_length(output_.get()) : 0; }

// Asked after every relayed write and send completion: no call for what is not there.
std::size_t Stream::outputLength() const {
    std::size_t n = output_ ? evbuffer_get_length(output_.get()) : 0;
    if (ring_io_) n += ring_io_->unsent();
    if (tls_ring_bio_) n += ciphertextLength();
    return n;
}

Stream::SendProgress Stream::sendProgress() const {
    SendProgress progress;
    progress.written = bytes_written_;
    if (ring_io_ && ring_io_->sendQueued()) {
        progress.unacknowledged = kNotAsked;
        return progress;
    }
    if (::ioctl(fd_.get(), SIOCOUTQ, &progress.unacknowledged) != 0) progress.unacknowledged = -1;
    return progress;
}

void Stream::armWrite() {
    connect_unwatched_ = false;
    if (write_armed_) return;
    write_armed_ = true;
    if (!write_event_) {
        write_event_.reset(event_new(event_get_base(&read_event_), fd_.get(), EV_WRITE | EV_PERSIST, &Stream::onWriteEvent, this));
        if (!write_event_) {
            // No memory for it: the stream cannot wait to write, so it fails (ENOMEM), reported
            // from the loop through the read event as settleConnect's report is (handleWrite).
            write_armed_ = false;
            if (pending_error_ == 0) pending_error_ = ENOMEM;
            connect_report_queued_ = true;
            event_active(&read_event_, EV_WRITE, 0);
            return;
        }
    }
    event_add(write_event_.get(), nullptr);
}

void Stream::flush() {
    if (firstSendTellsConnect() && outputLength() > 0) {
        connect_probed_ = true;
        const std::uint64_t before = bytes_written_;
        writeNow();  // a failure sets pending_error_; EAGAIN leaves the write event armed
        const bool up = bytes_written_ != before;
        if (up || pending_error_ != 0) settleConnect(up);
        return;
    }
    // While connecting or in the TLS handshake the write event (or the handshake) sends it.
    if (connecting_) watchConnect();
    if ((connecting_ && !connect_on_ring_) || handshaking_ || write_armed_ || pending_error_ != 0) return;
    if (ring_io_) {
        ringFlush();
        return;
    }
    writeNow();
}

bool Stream::canWriteNow() const {
    return !connecting_ && !handshaking_ && !write_armed_ && pending_error_ == 0 && !shutdown_after_flush_ &&
           outputLength() == 0;
}

void Stream::write(const char* data, std::size_t n) {
    if (ringWrites()) {
        // On the ring: queued, and sent with what else this loop pass writes (ringFlush). A
        // small plaintext write with nothing queued before it goes from the ring's send block
        // (StreamIo::stage): no evbuffer chain made and freed for it.
        // TLS: encrypted at once from the caller's bytes when nothing waits before them.
        const bool queued = output_ && evbuffer_get_length(output_.get()) > 0;
        if (n > 0 && !queued && !tls_ring_bio_ && ring_io_->stage(data, n)) {
            ring_io_->send();  // once per pass: a send already asked for takes these bytes too
            return;
        }
        if (n > 0 && !queued && tls_ring_bio_) {
            const std::size_t taken = ringWriteTls(data, n);
            data += taken;
            n -= taken;
        }
        if (n > 0 && evbuffer_add(output(), data, n) != 0) {
            failWrite(ENOMEM);
            return;
        }
        ringFlush();
        return;
    }
    if (tls_ring_bio_) {
        // TLS on the ring, written at once: encrypted from output() and sent (writeNow).
        if (n > 0 && evbuffer_add(output(), data, n) != 0) {
            failWrite(ENOMEM);
            return;
        }
        flush();
        return;
    }
    if (n == 0) {
        if (connecting_) watchConnect();
        return;
    }
    const bool tells_connect = firstSendTellsConnect() && outputLength() == 0;
    if (!tells_connect && !canWriteNow()) {
        evbuffer_add(output(), data, n);
        flush();
        return;
    }
    if (tells_connect) connect_probed_ = true;
    const std::size_t wanted = n;
    bool blocked = false;
    int error = 0;
    if (ssl_) {
        const std::size_t sent = writeTlsFrom(data, n, blocked);
        data += sent;
        n -= sent;
    }
    while (!ssl_ && n > 0) {
        const ssize_t k = ::send(fd_.get(), data, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        blocked = k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        if (k < 0 && !blocked) error = errno;
        if (k <= 0) break;
        bytes_written_ += static_cast<std::uint64_t>(k);
        data += k;
        n -= static_cast<std::size_t>(k);
    }
    if (tells_connect && (n < wanted || error != 0)) {
        const bool up = n < wanted;
        if (!up) pending_error_ = error;  // the connect failed (send took the error from the socket)
        settleConnect(up);
        if (!up) return;
    }
    if (n == 0) return;
    // The rest waits in output(): a full socket is retried when writable (with TLS the same
    // bytes again, as SSL_write asks); an error goes the usual way through writeNow().
    if (evbuffer_add(output(), data, n) != 0) {
        failWrite(ENOMEM);
        return;
    }
    sendRest(blocked);
}

void Stream::sendRest(bool blocked) {
    if (blocked) {
        armWrite();
    } else {
        writeNow();
    }
}

void Stream::sendFailed(int error) {
    pending_error_ = error;
    evbuffer* out = output();
    evbuffer_drain(out, evbuffer_get_length(out));
    if (evbuffer* ciphertext = tls_ring_bio_ ? tls::toSend(ssl_.get()) : nullptr)
        evbuffer_drain(ciphertext, evbuffer_get_length(ciphertext));
    if (ring_io_) ring_io_->dropUnsent();
    armWrite();  // a failed socket is writable: handleWrite reports the error
}

void Stream::failWrite(int error) {
    sendFailed(error);
    // Due in this loop pass though the socket may be full (no writable event would come).
    if (write_event_) event_active(write_event_.get(), EV_WRITE, 0);
}

void Stream::disarmWrite() {
    if (!write_armed_) return;
    write_armed_ = false;
    event_del(write_event_.get());
}

void Stream::writeNow() {
    for (;;) {
        // TLS on the ring, written at once: what was encrypted goes first.
        if (tls_ring_bio_ && !sendCiphertext()) return;
        if (queuedLength() == 0) break;
        evbuffer* out = output_.get();
        if (ssl_) {
            if (!writeTls()) return;
            continue;
        }
        // One contiguous segment (a response head and its small body, a request head): send(),
        // which skips the VFS layer and the iovec that evbuffer_write's writev costs.
        evbuffer_iovec first{};
        const bool single = !output_may_hold_files_ && evbuffer_peek(out, -1, nullptr, &first, 1) == 1;
        int n;
        if (single) {
            const ssize_t k = ::send(fd_.get(), first.iov_base, first.iov_len, MSG_NOSIGNAL);
            n = static_cast<int>(k);
            if (k > 0) evbuffer_drain(out, static_cast<std::size_t>(k));
        } else {
            n = evbuffer_write(out, fd_.get());
        }
        if (n > 0) {
            bytes_written_ += static_cast<std::uint64_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            armWrite();  // stays armed while the socket is full: no epoll_ctl churn
            return;
        }
        // Report from the loop: the caller of flush() may be in the middle of its own logic.
        sendFailed(n < 0 ? errno : EPIPE);
        return;
    }
    disarmWrite();
    if (shutdown_after_flush_ && !write_shut_) {
        if (ssl_ && !handshaking_ && (SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) == 0) {
            noteTlsIo();
            SSL_shutdown(ssl_.get());  // close_notify, best effort
            // On the ring it waits in the ciphertext queue: sent before the FIN.
            if (tls_ring_bio_ && !sendCiphertext()) return;
        }
        write_shut_ = true;
        ::shutdown(fd_.get(), SHUT_WR);
    }
}

void Stream::shutdownAfterFlush() {
    shutdown_after_flush_ = true;
    flush();
}

void Stream::onReadEvent(int, short what, void* arg) {
    auto* self = static_cast<Stream*>(arg);
    if ((what & EV_WRITE) && std::exchange(self->connect_report_queued_, false)) {  // settleConnect's report
        self->handleWrite();
        if ((what & (EV_READ | EV_CLOSED)) == 0 || !self->reading_) return;
    }
    if (self->ring_io_) {  // on the ring the event only carries reports
        if (what & EV_READ) self->ringReportHeld();
        return;
    }
    if (!self->reading_) {  // the paused watch (stopReading)
        if (what & EV_CLOSED) self->notePeerShut();
        return;
    }
    self->handleRead((what & EV_CLOSED) != 0);
}
void Stream::onWriteEvent(int, short, void* arg) { static_cast<Stream*>(arg)->handleWrite(); }

void Stream::handleRead(bool peer_shut) {
    if (handshaking_) {
        if (tls_server_ && !first_byte_checked_ && !startsWithTlsRecord()) return;
        driveHandshake();
        return;
    }
    bool eof = false;
    int error = 0;
    const std::size_t buffered = ssl_ ? readTls(eof, error) : readPlain(eof, error, peer_shut);
    // A send failed first and took the socket's error (a reset is reported once: to the send,
    // then reads see only the end): the end this read found is that failure, not a FIN.
    if (eof && pending_error_ != 0) {
        eof = false;
        error = pending_error_;
    }
    if (eof || error) stopReading(/*watch_peer_shut=*/false);  // level-triggered: a closed socket stays readable
    if (eof) peer_closed_ = true;
    if (buffered > 0) handler_->onReadable(*this);
    // The handler may have paused us or switched handlers; report the end to the current one.
    if (error) {
        handler_->onError(*this, error);
    } else if (eof) {
        handler_->onEof(*this);
    } else if (tls_write_wants_read_) {
        tls_write_wants_read_ = false;
        flush();
    }
    if (tls_read_more_ && reading_) {
        tls_read_more_ = false;
        event_active(&read_event_, EV_READ, 0);
    }
}

bool Stream::deliver(const char* data, std::size_t n) {
    StreamHandler* handler = handler_;
    handler->onBytes(*this, data, n);
    return handler_ == handler && reading_ && direct_read_;
}

bool Stream::openSlot(ReadSlot& slot, bool scratch, bool was_empty, int& error) {
    slot.was_empty = was_empty;
    slot.in = scratch ? nullptr : input();
    if (slot.in && evbuffer_reserve_space(slot.in, kReadChunk, &slot.vec, 1) < 1) {
        error = ENOMEM;
        return false;
    }
    slot.into = slot.in ? static_cast<char*>(slot.vec.iov_base) : t_scratch;
    return true;
}

bool Stream::fillSlot(ReadSlot& slot, std::size_t got, std::size_t& buffered) {
    if (!slot.in) {
        if (direct_read_) return deliver(slot.into, got);
        evbuffer_add(input(), slot.into, got);
    } else {
        slot.vec.iov_len = got;
        evbuffer_commit_space(slot.in, &slot.vec, 1);
    }
    buffered += got;
    return true;
}

void Stream::closeEmptySlot(ReadSlot& slot) {
    if (!slot.in) return;
    evbuffer_commit_space(slot.in, &slot.vec, 0);
    if (slot.was_empty) releaseEmptyChains(slot.in);
}

std::size_t Stream::readPlain(bool& eof, int& error, bool peer_shut) {
    std::size_t buffered = 0;
    // Read up to 4 chunks per wakeup: enough for large transfers, fair to other connections.
    for (int round = 0; round < 4; ++round) {
        const bool was_empty = inputLength() == 0;
        // Into the scratch area unless a bulk transfer is under way (then straight into a
        // reservation of input(), no copy).
        ReadSlot slot;
        if (!openSlot(slot, was_empty && (direct_read_ || !bulk_), was_empty, error)) return buffered;
        ssize_t n = ::recv(fd_.get(), slot.into, kReadChunk, 0);
        // A short read (or EAGAIN) took all the socket held; the handler may pause us below.
        read_emptied_ = n < 0 ? errno == EAGAIN || errno == EWOULDBLOCK : static_cast<std::size_t>(n) < kReadChunk;
        if (n > 0) {
            const auto got = static_cast<std::size_t>(n);
            bulk_ = got == kReadChunk;
            if (!fillSlot(slot, got, buffered)) return buffered;
            if (bulk_) continue;
            // The peer's FIN had come (EPOLLRDHUP): a relay, which ends its session at a peer's
            // end anyway, reads on to the recv that returns 0, as nginx does (pending_eof). A
            // short read does not prove it took all there was before the FIN: a read also stops
            // at TCP urgent data's mark (MSG_OOB), and the bytes sent after the mark were lost
            // (and, left unread, made the close a reset). One recv more when data and FIN come
            // together; the urgent byte itself is not relayed (nor by nginx). An HTTP connection
            // that stopped reading while it answers hears a half-close when it reads again.
            if (peer_shut && direct_read_) continue;
            return buffered;
        }
        bulk_ = false;
        closeEmptySlot(slot);
        if (n == 0) {
            eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            error = errno;
        }
        return buffered;
    }
    return buffered;
}

void Stream::handleWrite() {
    if (connect_unreported_) {
        // The first send went (settleConnect); the write event stays armed only for what
        // the socket did not take then.
        connect_unreported_ = false;
        // A later send of the same call failed and no write event could wait to report it
        // (armWrite without memory): it is reported in the next pass, after onConnected.
        if (pending_error_ != 0 && !write_armed_) {
            connect_report_queued_ = true;
            event_active(&read_event_, EV_WRITE, 0);
        }
        reportConnected();
        return;
    }
    if (connecting_) {
        int error = pending_error_;  // the first send's, which took it from the socket
        socklen_t length = sizeof error;
        if (error == 0 && getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
        if (error != 0) {
            disarmWrite();
            stopReading(/*watch_peer_shut=*/false);
            handler_->onError(*this, error);
            return;
        }
        connecting_ = false;
        disarmWrite();
        if (ssl_) {
            driveHandshake();  // onConnected comes when the handshake is done
            return;
        }
        reportConnected();
        return;
    }
    if (pending_error_ != 0) {
        disarmWrite();
        stopReading(/*watch_peer_shut=*/false);
        handler_->onError(*this, pending_error_);
        return;
    }
    if (handshaking_) {
        driveHandshake();
        return;
    }
    writeNow();
    if (pending_error_ == 0 && outputLength() <= low_watermark_)
        handler_->onDrained(*this);
}

}  // namespace portico::net
