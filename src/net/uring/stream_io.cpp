// SPDX-License-Identifier: Apache-2.0
#include "portico/net/uring/stream_io.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <event2/buffer.h>
#include <poll.h>
#include <utility>

#include "portico/net/stream.h"

namespace portico::net::uring {

StreamIo& StreamIo::make(Ring& ring, Stream& stream, int fd) {
    auto* io = new StreamIo(ring, stream, fd);
    ring.adopt(io);
    return *io;
}

StreamIo::StreamIo(Ring& ring, Stream& stream, int fd) : ring_(ring), stream_(&stream), fd_(fd) {
    message_.msg_iov = iov_;
}

StreamIo::~StreamIo() {
    // After the last completion, or when the ring goes first (a worker stopping): the Stream, if
    // still there, then does its I/O without the ring (on epoll), and the pool forgets us.
    if (waiting_) ring_.buffers().stopWaiting(this);
    // Staged and never sent, when the ring goes first (a worker stopping): the bytes go back in
    // front of the Stream's output, which it then sends on epoll. A send in flight is not given
    // back: the kernel may have sent part of it.
    if (!send_inflight_) giveBackUnsent();
    dropBlock();
    if (stream_) stream_->ringGone();
}

void StreamIo::receive(bool poll_first) { submitReceive(poll_first); }

io_uring_sqe* StreamIo::submitReceive(bool poll_first) {
    if (recv_inflight_ || waiting_ || !stream_) return nullptr;
    io_uring_sqe* sqe = ring_.entry();
    if (!sqe) {
        stream_->ringReadEnded(-EBUSY, /*refused=*/true);
        return nullptr;
    }
    io_uring_prep_recv(sqe, fd_, nullptr, BufferPool::kSize, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BufferPool::kGroup;
    if (poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    ring_.track(sqe, this, kRecv);
    poll_first_ = poll_first;
    recv_inflight_ = true;
    ++inflight_;
    return sqe;
}

// A cancel the ring refuses now is made at its next pass (forgotten once nothing is in flight).
void StreamIo::cancel(Op op) { ring_.cancel(this, op); }

// A cancel that comes too late finds nothing, or (issued later than it was meant for) a newer
// request of the same kind: that one ends with -ECANCELED, which the Stream answers by arming
// it again while it reads. So a cancel is never wrong, at worst one request more.
void StreamIo::stopReceiving() {
    if (waiting_) {
        ring_.buffers().stopWaiting(this);
        waiting_ = false;
    }
    if (recv_inflight_) cancel(kRecv);
}

bool StreamIo::receiveEnded(RingSettled waiter) {
    recv_waiter_ = recv_inflight_ ? waiter : RingSettled{};
    return !recv_inflight_;
}

void StreamIo::stopWatching() {
    if (watch_inflight_) cancel(kWatch);
}

void StreamIo::watchPeerShut() {
    if (watch_inflight_ || !stream_) return;
    io_uring_sqe* sqe = ring_.entry();
    if (!sqe) return;  // no watch: the peer's FIN is learnt when reading resumes, as a reset is
    io_uring_prep_poll_add(sqe, fd_, POLLRDHUP);
    ring_.track(sqe, this, kWatch);
    watch_inflight_ = true;
    ++inflight_;
}

void StreamIo::connect(const sockaddr* address, socklen_t length) {
    std::memcpy(&connect_to_, address, std::min<std::size_t>(length, sizeof connect_to_));
    connect_length_ = length;
    connect_queued_ = true;
    send();  // made at the next enter, with the sends (prepareSends)
}

void StreamIo::send() {
    if (send_queued_ || send_inflight_ || !stream_) return;
    send_queued_ = true;
    ring_.wantSend(this);
}

bool StreamIo::stage(const char* data, std::size_t n) {
    if (send_inflight_ || !stream_) return false;
    SendBlocks& blocks = ring_.sendBlocks();
    if (block_ == SendBlocks::kNone) {
        // The block leads what this socket sends: nothing of an earlier send may wait before it.
        if (unsent_ != 0 || n > SendBlocks::kSize) return false;
        block_ = blocks.take();
        if (block_ == SendBlocks::kNone) return false;
    } else if (SendBlocks::kSize - block_length_ < n) {
        return false;
    }
    std::memcpy(blocks.data(block_) + block_length_, data, n);
    block_length_ = static_cast<std::uint16_t>(block_length_ + n);
    unsent_ += n;
    return true;
}

void StreamIo::dropBlock() {
    if (block_ == SendBlocks::kNone) return;
    ring_.sendBlocks().give(block_);
    block_ = SendBlocks::kNone;
    block_length_ = 0;
}

void StreamIo::dropUnsent() {
    if (send_inflight_) return;  // the completion drops the rest (stream_ failed)
    dropBlock();
    if (sending_) evbuffer_drain(sending_.get(), evbuffer_get_length(sending_.get()));
    unsent_ = 0;
}

void StreamIo::releaseIdle() {
    if (!send_inflight_ && !send_queued_ && unsent_ == 0) sending_.reset();
}

void StreamIo::prepareSends() {
    send_queued_ = false;
    if (std::exchange(connect_queued_, false) && stream_) submitConnect();
    // While the connect is in flight with no send linked to it, what is written waits for it
    // (onConnected).
    if (stream_ && !send_inflight_ && !connect_inflight_ && !settle_waiter_.done) {
        submitSend();
        // The Stream left the ring's writes after it queued this send (a file segment, an owner
        // that wants its bytes at once): with no ring send before them, what output() holds
        // goes the epoll way now (ringFlush), else it would wait for a send timeout.
        if (stream_ && !send_inflight_ && stream_->queuedLength() > 0) stream_->ringFlush();
    }
    maybeSettled();
    maybeFree();
}

// The connect, then what was written since connectTo (the request head) and the first receive,
// as one chain: each starts when the one before it succeeded, so all three go in this enter and
// the connect's outcome is known before the others complete (bench/RESULTS.md, session 15).
void StreamIo::submitConnect() {
    // Adjacent entries, or no chain: a full queue submitted between two of them would send the
    // connect unlinked and its send on a socket still connecting. Without room (the kernel
    // refused the full queue), the connect goes alone: what is written waits for it, and
    // reading starts once it is reported (onConnected), as with nothing written.
    const bool chain = ring_.reserve(3);
    io_uring_sqe* sqe = ring_.entry();
    if (!sqe) {
        stream_->ringConnected(-EBUSY);  // the ring refuses submissions: the connect fails
        return;
    }
    io_uring_prep_connect(sqe, fd_, reinterpret_cast<const sockaddr*>(&connect_to_), connect_length_);
    ring_.track(sqe, this, kConnect);
    connect_inflight_ = true;
    ++inflight_;
    // Linked only once the next one is prepared: a link flag on the last entry would chain
    // whatever request comes next, another socket's. (A send that fails to prepare fails the
    // stream, whose release cancels the connect.)
    if (settle_waiter_.done || !chain) return;
    if (io_uring_sqe* send = submitSend()) {
        sqe->flags |= IOSQE_IO_LINK;
        sqe = send;
    }
    if (!stream_ || !stream_->reading_) return;
    if (submitReceive(/*poll_first=*/true)) sqe->flags |= IOSQE_IO_LINK;
}

void StreamIo::onConnected(int result) {
    connect_inflight_ = false;
    if (!stream_) return;
    // Kernels 6.0 to 6.1.7 retried a connect that was in progress with a second connect(2) and
    // reported its -EISCONN instead of 0 (fixed by "io_uring/net: handle -EINPROGRESS correct
    // for IORING_OP_CONNECT"). On this socket, which only this connect used, it means up. The
    // chain behind it was broken by that "failure": the send and the receive end with
    // -ECANCELED, having done nothing, and go again (onSent, Stream::ringReadEnded).
    if (result == -EISCONN) {
        result = 0;
        relink_ = send_inflight_;
    }
    // Up, with the send linked behind it in flight: reported with the send's completion, next
    // (Stream::ringSent), once the bytes went, as the first send tells on epoll.
    if (result == 0 && send_inflight_) return;
    stream_->ringConnected(result);
    // Written while the connect was in flight with no send behind it: now.
    if (result == 0 && stream_ && !send_inflight_ && (unsent_ > 0 || stream_->queuedLength() > 0)) send();
}

io_uring_sqe* StreamIo::submitSend() {
    evbuffer* output = stream_->ringOutput();
    if (const std::size_t n = output ? evbuffer_get_length(output) : 0; n > 0) {
        if (!sending_) sending_.reset(evbuffer_new());
        if (!sending_ || evbuffer_add_buffer(sending_.get(), output) != 0) {
            stream_->ringSent(-ENOMEM);
            return nullptr;
        }
        unsent_ += n;
    }
    if (unsent_ == 0) return nullptr;
    io_uring_sqe* sqe = ring_.entry();
    if (!sqe) {
        stream_->ringSent(-EBUSY);  // the ring refuses submissions: the stream fails
        return nullptr;
    }
    const bool block = block_ != SendBlocks::kNone;
    char* block_data = block ? ring_.sendBlocks().data(block_) : nullptr;
    if (block && unsent_ == block_length_) {
        // The common case: the pass's small writes, all in the block. One buffer: a plain send.
        io_uring_prep_send(sqe, fd_, block_data, block_length_, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        std::size_t first = 0;
        if (block) iov_[first++] = iovec{block_data, block_length_};
        const int chains = evbuffer_peek(sending_.get(), -1, nullptr, iov_ + first, static_cast<int>(kIov - first));
        message_.msg_iovlen = first + std::min(static_cast<std::size_t>(chains), kIov - first);
        // A send that carries the block does not wait for room (see onSent).
        io_uring_prep_sendmsg(sqe, fd_, &message_, MSG_NOSIGNAL | (block ? MSG_DONTWAIT : 0));
    }
    ring_.track(sqe, this, kSend);
    send_inflight_ = true;
    ++inflight_;
    return sqe;
}

void StreamIo::onCompletion(unsigned op, int result, unsigned flags) {
    --inflight_;
    switch (op) {
        case kRecv:
            onReceived(result, flags);
            if (recv_waiter_.done && !recv_inflight_) {
                const RingSettled waiter = std::exchange(recv_waiter_, {});
                waiter.done(waiter.arg);
            }
            break;
        case kSend: onSent(result); break;
        case kConnect: onConnected(result); break;
        default: onWatch(result); break;
    }
    maybeSettled();
    maybeFree();
}

void StreamIo::onReceived(int result, unsigned flags) {
    recv_inflight_ = false;
    if (flags & IORING_CQE_F_BUFFER) {
        const auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        ring_.buffers().taken();
        // The handler takes the bytes during the call (onBytes, or input()): the buffer goes
        // back after it.
        if (result > 0 && stream_)
            stream_->ringReceived(ring_.buffers().data(id), static_cast<std::size_t>(result),
                                  (flags & IORING_CQE_F_SOCK_NONEMPTY) != 0);
        ring_.buffers().give(id);
        return;
    }
    if (!stream_) return;
    if (result == -ENOBUFS) {
        waiting_ = true;  // the pool is empty: onBuffersBack re-arms
        ring_.buffers().wait(this);
        return;
    }
    stream_->ringReadEnded(result, /*refused=*/false);
}

void StreamIo::onBuffersBack() {
    waiting_ = false;
    if (stream_) stream_->ringReadEnded(-EAGAIN, /*refused=*/false);  // re-armed if still reading
}

// A send that carried the block went with MSG_DONTWAIT: a full socket answers at once (-EAGAIN,
// or the part it took) instead of parking the send, so the block is held for one round trip
// only, never by a stalled peer; its rest goes on from the send buffer, with the kernel waiting
// for room as for any other send.
void StreamIo::onSent(int result) {
    send_inflight_ = false;
    // The send behind a connect that reported -EISCONN (onConnected): cancelled unsent, it goes
    // again, as a send the socket refused (nothing of it left).
    if (std::exchange(relink_, false) && result == -ECANCELED) result = -EAGAIN;
    std::size_t sent = result > 0 ? static_cast<std::size_t>(result) : 0;
    unsent_ -= sent;
    if (block_ != SendBlocks::kNone) {
        const bool failed = result < 0 && result != -EAGAIN && result != -EINTR;
        if (!unblock(sent, stream_ && !failed) && !failed) result = -ENOMEM;
    }
    if (sent > 0) evbuffer_drain(sending_.get(), sent);
    if (!stream_) return;  // released: what is left is dropped with us
    if (settle_waiter_.done && result >= 0) giveBackUnsent();
    stream_->ringSent(result);
}

bool StreamIo::unblock(std::size_t& sent, bool keep_rest) {
    const std::size_t of_block = std::min<std::size_t>(sent, block_length_);
    sent -= of_block;
    const std::size_t rest = block_length_ - of_block;
    bool kept = true;
    if (rest > 0 && keep_rest) {
        if (!sending_) sending_.reset(evbuffer_new());
        kept = sending_ && evbuffer_prepend(sending_.get(), ring_.sendBlocks().data(block_) + of_block, rest) == 0;
    }
    // Not kept (the stream failed or is gone, or no memory: it fails): dropped with the block.
    if (rest > 0 && (!keep_rest || !kept)) unsent_ -= rest;
    dropBlock();
    return kept;
}

void StreamIo::onWatch(int result) {
    watch_inflight_ = false;
    if (stream_ && result > 0 && (result & POLLRDHUP)) stream_->ringPeerShut();
}

bool StreamIo::settle(RingSettled waiter) {
    settle_waiter_ = {};
    if (inflight_ == 0 && !send_queued_) {
        giveBackUnsent();
        return true;
    }
    settle_waiter_ = waiter;
    return waiter.done == nullptr;
}

// Someone takes the socket over (settle): the rest of a partial send goes back in front of
// what the Stream holds, so that its new owner sends it first.
void StreamIo::giveBackUnsent() {
    if (unsent_ == 0 || !stream_) return;
    evbuffer* output = stream_->output();
    if (sending_) evbuffer_prepend_buffer(output, sending_.get());
    // A staged block (never sent: a send carrying one settles by unblock) leads them.
    const bool kept = block_ == SendBlocks::kNone ||
                      evbuffer_prepend(output, ring_.sendBlocks().data(block_), block_length_) == 0;
    dropBlock();
    unsent_ = 0;
    if (!kept) stream_->failWrite(ENOMEM);  // no memory to hand the bytes over: the stream fails
}

void StreamIo::maybeSettled() {
    if (!settle_waiter_.done || inflight_ > 0 || send_queued_) return;
    // A partial send's rest that was waiting for the next enter when the settle came.
    giveBackUnsent();
    const RingSettled waiter = std::exchange(settle_waiter_, {});
    waiter.done(waiter.arg);
}

void StreamIo::release(core::UniqueFd fd) {
    stream_ = nullptr;
    settle_waiter_ = {};
    recv_waiter_ = {};
    owned_fd_ = std::move(fd);
    if (waiting_) {
        ring_.buffers().stopWaiting(this);
        waiting_ = false;
    }
    connect_queued_ = false;
    // A connect in flight: its cancel ends the requests linked behind it too.
    if (connect_inflight_) cancel(kConnect);
    if (recv_inflight_) cancel(kRecv);
    if (watch_inflight_) cancel(kWatch);
    if (send_inflight_) cancel(kSend);
    maybeFree();
}

void StreamIo::maybeFree() {
    if (stream_ || inflight_ > 0 || send_queued_ || retired_) return;
    retired_ = true;
    ring_.forgetCancels(this);  // before the socket closes and this memory is reused
    dropBlock();  // staged when the Stream went, never sent: free for others now
    owned_fd_ = core::UniqueFd();  // the socket closes now: no request names it any more
    ring_.retire(this);
}

}  // namespace portico::net::uring
