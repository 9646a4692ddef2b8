// SPDX-License-Identifier: Apache-2.0
#include "portico/net/uring/relay.h"

#include <cerrno>
#include <event2/buffer.h>
#include <poll.h>
#include <sys/socket.h>

#include "portico/net/event_loop.h"
#include "portico/net/lingering_close.h"
#include "portico/net/uring/stream_io.h"
#include "portico/proxy/http_exchange.h"

namespace portico::net::uring {

namespace {

// What a Stream's buffer holds, copied into `queue` and taken out of the buffer.
void moveInto(SendQueue& queue, evbuffer* buffer) {
    const std::size_t n = evbuffer_get_length(buffer);
    if (n == 0) return;
    queue.pushCopy(reinterpret_cast<const char*>(evbuffer_pullup(buffer, static_cast<ev_ssize_t>(n))), n);
    evbuffer_drain(buffer, n);
}

}  // namespace

Relay& Relay::make(Ring& ring, std::unique_ptr<Stream> client, std::unique_ptr<Stream> upstream,
                   RelayObserver& observer) {
    auto* relay = new Relay(ring, observer);
    ring.adopt(relay);
    relay->sides_[0].stream = std::move(client);
    relay->sides_[1].stream = std::move(upstream);
    return *relay;
}

Relay::Relay(Ring& ring, RelayObserver& observer) : ring_(ring), observer_(&observer) { sides_[1].index = 1; }

Relay::~Relay() {
    // Only after the last completion (maybeFree), or when the loop itself goes (its ring is
    // destroyed after, cancelling anything left): the pool's waiting list must not name us.
    stopWaitingForBuffers();
    for (Side& s : sides_)
        if (s.stream) s.stream->settleRing({});  // freed with the ring before both settled
}

void Relay::begin() {
    if (ending_) return;  // stopped first
    for (Side& s : sides_) {
        s.fd = s.stream->fd();
        s.stream->detach();  // libevent stops watching it for reads; the ring does it now
    }
    // A Stream on the ring itself (io_uring for HTTP too: net/uring/stream_io.h) has its own
    // receive to cancel and maybe a send to finish: the relay's requests start after them, or
    // bytes could pass each other.
    for (Side& s : sides_)
        if (!s.stream->settleRing({&Relay::onStreamSettled, this})) ++settling_;
    if (settling_ == 0) transfer();
}

void Relay::onStreamSettled(void* arg) {
    auto* self = static_cast<Relay*>(arg);
    if (--self->settling_ == 0 && !self->ending_) self->transfer();
}

void Relay::transfer() {
    // In order, per side: what its Stream had not sent yet (the 101), then what the other side's
    // Stream had read past the handshake (a first frame behind the 101). The first is sent from
    // where it is (borrowed: no copy, no allocation per upgrade), drained as it goes (onSent).
    for (Side& s : sides_) {
        if (s.stream->outputLength() > 0) {  // settled: all of it in output()
            evbuffer* output = s.stream->output();
            const std::size_t n = evbuffer_get_length(output);
            const auto* bytes = reinterpret_cast<const char*>(evbuffer_pullup(output, static_cast<ev_ssize_t>(n)));
            if (n > 0 && !bytes) return end(net::Ending::Finished, "out of memory", &s);
            if (n > 0) s.out.pushBorrowed(bytes, static_cast<std::uint32_t>(n));
        }
        Side& from = other(s);
        if (from.stream->inputLength() > 0) {
            from.received += from.stream->inputLength();
            moveInto(s.out, from.stream->input());
        }
    }
    for (Side& s : sides_) {
        s.stream->releaseIdle();
        if (!s.out.empty()) sendNext(s);
    }
    for (Side& s : sides_) maybeReceive(s);
}

void Relay::onCompletion(unsigned op, int result, unsigned flags) {
    --inflight_;
    Side& s = sides_[op & 1];
    if (op >= kGone)
        s.watching ? onPeerWatch(s, result) : onStallTimer(s);
    else if (op >= kPoll)
        onWritable(s);
    else if (op >= kSend)
        onSent(s, result);
    else
        onReceived(s, result, flags);
    maybeFree();
}

void Relay::armReceive(Side& s) {
    io_uring_sqe* sqe = ring_.entry();
    if (!sqe) return end(net::Ending::Finished, "io_uring submission failed", &s);
    io_uring_prep_recv(sqe, s.fd, nullptr, BufferPool::kSize, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BufferPool::kGroup;
    // The last receive emptied the socket: skip the attempt that would find nothing and wait for
    // data at once (the kernel's poll), one failed recvmsg less per message.
    if (s.poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    ring_.track(sqe, this, kRecv + s.index);
    s.receiving = true;
    ++inflight_;
}

// Receives on `s` again unless it is ending, already receiving, waiting for a buffer, or the
// other side has a full queue (backpressure: proxy::kHighWatermark, resumed at kLowWatermark).
void Relay::maybeReceive(Side& s) {
    if (ending_ || s.receiving || s.waiting) return;
    const SendQueue& queue = other(s).out;
    if (queue.cost() > proxy::kHighWatermark) return watchPeer(s);
    armReceive(s);
}

// Paused: the peer's FIN (or reset) would not be seen until the other side drains. One poll
// for it, left armed across resumes (not cancelled: nothing per message, nothing per resume).
void Relay::watchPeer(Side& s) {
    if (s.watching || s.gone) return;
    if (armPoll(s, POLLRDHUP, kGone)) s.watching = true;
}

// The peer closed (POLLRDHUP; a reset adds POLLERR | POLLHUP, learnt from the receive that
// follows its bytes). Receiving again meanwhile, the receive reads up to the FIN as usual;
// still paused, its last bytes wait for the other side, which has kStall at a time to take some.
void Relay::onPeerWatch(Side& s, int result) {
    s.watching = false;
    if (ending_ || result <= 0 || s.receiving || s.waiting) return;
    s.gone = true;
    // A reset (POLLERR) ends as the epoll tunnel's would once its read met it: the other peer
    // gets an RST (markOtherSideFailed), not the FIN of a clean close.
    s.reset = (result & POLLERR) != 0;
    for (const Side& side : sides_)
        if (side.timing) return;  // both peers gone: the first one's wait bounds the relay
    stall_mark_ = delivered(s);
    armStallTimer(s);
}

void Relay::armStallTimer(Side& s) {
    // Read when the request is submitted (io_timeout_prep copies it): a constant will do.
    static const __kernel_timespec kStallSpec{kStall.count(), 0};
    io_uring_sqe* sqe = ring_.entry();
    if (!sqe) return end(net::Ending::Finished, "io_uring submission failed", &s);
    io_uring_prep_timeout(sqe, const_cast<__kernel_timespec*>(&kStallSpec), 0, 0);  // liburing 2.3's signature
    ring_.track(sqe, this, kGone + s.index);
    s.timing = true;
    ++inflight_;
}

// kStall after the peer of `s` left: the other side took bytes since the last check (its
// queue shrank, or `s` resumed and its bytes went on), or the relay ends as at that peer's EOF.
void Relay::onStallTimer(Side& s) {
    s.timing = false;
    if (ending_) return;  // cancelled by end(), or due meanwhile
    const std::uint32_t now = delivered(s);
    if (now != stall_mark_) {
        stall_mark_ = now;
        return armStallTimer(s);
    }
    if (s.reset)
        end(net::Ending::Finished, s.index == 0 ? "client connection error" : "upstream connection error", &s);
    else
        end(net::Ending::Finished, s.index == 0 ? "client closed" : "upstream closed", nullptr);
}

// The relay is on the pool's waiting list once, for one side or both.
void Relay::waitForBuffers(Side& s) {
    if (!sides_[0].waiting && !sides_[1].waiting) ring_.buffers().wait(this);
    s.waiting = true;
}

void Relay::stopWaitingForBuffers() {
    if (!sides_[0].waiting && !sides_[1].waiting) return;
    ring_.buffers().stopWaiting(this);
    sides_[0].waiting = sides_[1].waiting = false;
}

void Relay::onBuffersBack() {
    const bool waited[2] = {sides_[0].waiting, sides_[1].waiting};
    sides_[0].waiting = sides_[1].waiting = false;
    for (Side& s : sides_)
        if (waited[s.index]) maybeReceive(s);
}

void Relay::onReceived(Side& from, int result, unsigned flags) {
    from.receiving = false;
    if (flags & IORING_CQE_F_BUFFER) {
        const auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        ring_.buffers().taken();
        if (result <= 0 || ending_) {
            ring_.buffers().give(id);
        } else {
            Side& to = other(from);
            from.received += static_cast<std::uint64_t>(result);
            const char* data = ring_.buffers().data(id);
            if (!to.sending && !to.polling && to.out.empty()) {
                // The fast path: the pool buffer is sent as it is, and back once sent.
                to.out.pushBuffer(id, data, static_cast<std::uint32_t>(result));
                sendNext(to);
            } else {
                // Behind a send in flight or a full socket: the bytes wait in the side's own
                // heap chunks, the pool buffer goes back now (a stalled peer holds none).
                to.out.pushCopy(data, static_cast<std::size_t>(result));
                ring_.buffers().give(id);
            }
            from.poll_first = !(flags & IORING_CQE_F_SOCK_NONEMPTY);
            if (observer_) observer_->onRelayActivity();
            // Only while the other side's queue is below the high watermark (maybeReceive); past
            // it, the peer is watched for its FIN and onSent resumes below the low one.
            maybeReceive(from);
            return;
        }
    }
    if (ending_) {
        // The receive armed after one that emptied the socket was cancelled having taken
        // nothing: nothing had arrived by the end (net::closeFinished needs no FIONREAD).
        if (result == -ECANCELED && from.poll_first) from.stream->noteDrained();
        return;
    }
    if (result == 0) {
        from.stream->notePeerClosed();  // its FIN was read here, not by the Stream
        end(net::Ending::Finished, from.index == 0 ? "client closed" : "upstream closed", nullptr);
    } else if (result == -ENOBUFS) {
        waitForBuffers(from);  // the pool is empty: woken by BufferPool::publish
    } else if (result == -EINTR || result == -EAGAIN) {
        maybeReceive(from);
    } else if (result < 0) {
        end(net::Ending::Finished, from.index == 0 ? "client connection error" : "upstream connection error", &from);
    }
}

void Relay::sendNext(Side& s) {
    io_uring_sqe* sqe = ring_.entry();
    if (!sqe) return end(net::Ending::Finished, "io_uring submission failed", &s);
    // No MSG_WAITALL: a partial send completes with its count (the rest goes next), so a
    // cancelled send never leaves an unknown number of its bytes sent. MSG_DONTWAIT: a full
    // socket answers -EAGAIN at once instead of parking the send (and its pool buffer) in the
    // kernel until the peer reads; onSent then copies the bytes out and waits for POLLOUT.
    io_uring_prep_send(sqe, s.fd, s.out.next(), s.out.nextLength(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ring_.track(sqe, this, kSend + s.index);
    s.sending = true;
    ++inflight_;
}

void Relay::onSent(Side& to, int result) {
    to.sending = false;
    bool full = result == -EAGAIN;  // the socket took nothing, or (below) only part
    if (result > 0) {
        full = static_cast<std::size_t>(result) < to.out.nextLength();
        const bool borrowed = to.out.frontBorrowed();
        const std::int32_t done = to.out.sent(static_cast<std::size_t>(result));
        if (borrowed) {
            // The bytes left the Stream's output only now (the rest stays in front of it).
            evbuffer_drain(to.stream->output(), static_cast<std::size_t>(result));
            if (done == SendQueue::kBorrowed) to.stream->releaseIdle();
        } else if (done >= 0) {
            ring_.buffers().give(static_cast<std::uint16_t>(done));
        }
    }
    if (ending_) return;
    if (result <= 0 && result != -EINTR && result != -EAGAIN) {
        end(net::Ending::Finished, to.index == 0 ? "client connection error" : "upstream connection error", &to);
        return;
    }
    if (full) {
        const std::int32_t id = to.out.unpoolFront();
        if (id >= 0) ring_.buffers().give(static_cast<std::uint16_t>(id));
        waitWritable(to);
    } else if (!to.out.empty()) {
        sendNext(to);
    }
    if (to.out.cost() <= proxy::kLowWatermark) maybeReceive(other(to));
}

void Relay::waitWritable(Side& s) {
    if (armPoll(s, POLLOUT, kPoll)) s.polling = true;
}

// One poll on a side's socket, its completion as `op` + the side; false when the ring refused
// the request and the relay ended (as if that side had failed).
bool Relay::armPoll(Side& s, unsigned mask, unsigned op) {
    io_uring_sqe* sqe = ring_.entry();
    if (!sqe) {
        end(net::Ending::Finished, "io_uring submission failed", &s);
        return false;
    }
    io_uring_prep_poll_add(sqe, s.fd, mask);
    ring_.track(sqe, this, op + s.index);
    ++inflight_;
    return true;
}

// Writable, or an error the next send reports.
void Relay::onWritable(Side& s) {
    s.polling = false;
    if (!ending_ && !s.out.empty()) sendNext(s);
}

void Relay::stop() {
    if (!ending_) end(net::Ending::Linger, nullptr, nullptr);
}

void Relay::detach() {
    observer_ = nullptr;
    stop();
    maybeFree();
}

void Relay::end(net::Ending how, const char* reason, Side* failed) {
    ending_ = true;
    linger_ = how == net::Ending::Linger;
    // As ws::Tunnel::onError: the failed side's peer gets an RST, not a FIN (markOtherSideFailed).
    if (failed) other(*failed).stream->markOtherSideFailed(/*last_words=*/false);
    stopWaitingForBuffers();
    // A cancel the ring refuses now is made at its next pass (Ring::cancel): the receives of an
    // idle peer would otherwise hold both sockets until it writes.
    for (Side& s : sides_) {
        if (s.receiving || s.sending || s.polling || s.watching) ring_.cancelAll(this, s.fd);
        if (s.timing) ring_.cancel(this, kGone + s.index);  // a timeout names no descriptor
    }
    if (reason && observer_) observer_->onRelayEnd(reason);
    maybeFree();
}

// After the last completion: what is still queued for a side goes back into its Stream's
// output, and the Streams close as the epoll tunnel's do (flush, FIN or RST, linger).
void Relay::finish() {
    finished_ = true;
    ring_.forgetCancels(this);  // nothing left to cancel: the sockets close below
    for (Side& s : sides_) s.stream->settleRing({});  // ended before both settled
    for (Side& s : sides_) {
        evbuffer* output = s.stream->output();
        s.out.drain([&](const char* data, std::size_t n) { evbuffer_add(output, data, n); },
                    [&](std::uint16_t id) { ring_.buffers().give(id); });
    }
    closeBoth(ring_.loop(), std::move(sides_[0].stream), std::move(sides_[1].stream),
              linger_ ? net::Ending::Linger : net::Ending::Finished);
}

void Relay::maybeFree() {
    if (!ending_ || inflight_ > 0) return;
    if (!finished_) finish();
    if (!observer_ && !retired_) {
        retired_ = true;
        ring_.retire(this);
    }
}

}  // namespace portico::net::uring
