// SPDX-License-Identifier: Apache-2.0
#pragma once
// A net::Stream's I/O through the worker's ring (config `io_uring`; TLS after its handshake, with
// the ciphertext: net/stream_tls_ring.cpp): how the Stream reads
// and writes, chosen when it is made; its owners see a Stream as on epoll.
//
// Reads: one receive in flight while the Stream reads, into the ring's provided buffers
// (net/uring/buffer_pool.h); the bytes go to the Stream's handler from the completion (onBytes,
// parsed where they landed, as from the scratch area on epoll) and the buffer back to the pool.
// Paused, the receive is cancelled and a poll for the peer's FIN (POLLRDHUP) takes its place:
// the epoll watch's onPeerShut. Bytes a cancelled receive still brought wait in input().
//
// Writes: the Stream's output() is taken at the ring's next enter (SendSource), so what a loop
// pass wrote goes in one sendmsg, and every socket's sends in one io_uring_enter. One send in
// flight per socket, from this object's own buffer (the bytes move there, chains not copied):
// nothing a request names belongs to the Stream. The kernel waits for room itself (no
// MSG_DONTWAIT): a full socket parks the send, a partial one completes with its count and the
// rest goes next.
//
// Lifetime: requests in flight name this object, so the ring owns it (RingOwned). The Stream
// lets go in its destructor (release): what is in flight is cancelled, the socket stays open
// until the last completion (so that its number cannot be reused under a request), then both go.

#include <cstddef>
#include <cstdint>
#include <sys/socket.h>
#include <sys/uio.h>

#include "portico/core/handles.h"
#include "portico/core/recycled.h"
#include "portico/net/uring/ring.h"

namespace portico::net {
class Stream;
}

namespace portico::net::uring {

// Told when a Stream's ring requests have all completed (Stream::settleRing): a function and
// its argument, so that the one who waits (the io_uring relay, kept small per tunnel) needs no
// interface of its own.
struct RingSettled {
    void (*done)(void* arg) = nullptr;
    void* arg = nullptr;
};

// Its storage is kept per thread for the next one (core::Recycled): each plain socket on the
// ring has one, two per proxied upgrade.
class StreamIo final : public RingOwned, private BufferWaiter, private SendSource, public core::Recycled<StreamIo, 64> {
public:
    static constexpr std::size_t kIov = 8;  // chains gathered per sendmsg (a response is one to three)

    // Made and adopted by `ring` for `stream`'s socket `fd`.
    static StreamIo& make(Ring& ring, Stream& stream, int fd);
    ~StreamIo() override;

    // One receive, unless one is in flight or waits for a buffer. `poll_first`: the socket was
    // empty when last read: wait for data before trying.
    void receive(bool poll_first);
    // Cancels the receive (a completion may still bring bytes).
    void stopReceiving();
    // A poll for the peer's FIN while reading is paused (Stream::ringPeerShut); cancelled by
    // stopWatching.
    void watchPeerShut();
    void stopWatching();
    bool receiving() const { return recv_inflight_ || waiting_; }
    // After stopReceiving: true when no receive is in flight; else false, and `waiter` hears
    // when it ended (what it brought is then in the Stream's input()). An empty waiter stops the
    // wait. A receive the kernel completed holds bytes that neither the socket (FIONREAD) nor
    // input() shows until its completion is reaped.
    bool receiveEnded(RingSettled waiter);

    // The Stream's output goes at the next enter.
    void send();
    // Bytes taken for a send and not yet sent.
    std::size_t unsent() const { return unsent_; }
    // Drops what was not sent yet (a failed stream). A send in flight keeps its bytes until it
    // completes.
    void dropUnsent();
    // Frees the send buffer while nothing waits in it (an idle connection's; made again on the
    // next send).
    void releaseIdle();
    bool sending() const { return send_inflight_ || send_queued_; }
    // A send waits for the ring's next enter (nothing of it offered to the kernel yet).
    bool sendQueued() const { return send_queued_ && !send_inflight_; }

    // Every request completed: `waiter` hears it (an empty one: nobody waits). Returns true,
    // and keeps no waiter, when nothing is in flight now. What a send left unsent goes back to
    // the front of the Stream's output. Receiving must have stopped (stopReceiving).
    bool settle(RingSettled waiter);

    // The Stream is gone (or turns to TLS, on epoll): cancels what is in flight; `fd` (if any)
    // closes after the last completion.
    void release(core::UniqueFd fd);

    Ring& ring() { return ring_; }

private:
    enum Op : unsigned { kRecv = 0, kSend = 1, kWatch = 2 };

    StreamIo(Ring& ring, Stream& stream, int fd);
    void onCompletion(unsigned op, int result, unsigned flags) override;
    void onBuffersBack() override;
    void prepareSends() override;
    void onReceived(int result, unsigned flags);
    void onSent(int result);
    void onWatch(int result);
    void cancel(Op op);
    void submitSend();
    void giveBackUnsent();  // a partial send's rest back in front of the Stream's output (settle)
    void maybeSettled();
    void maybeFree();

    Ring& ring_;
    Stream* stream_;
    int fd_;
    core::UniqueFd owned_fd_;   // after release, until the last completion
    core::EvbufferPtr sending_;  // bytes taken for a send, in order; the front is in flight
    std::size_t unsent_ = 0;     // its length (asked on every outputLength())
    iovec iov_[kIov]{};
    msghdr message_{};
    RingSettled settle_waiter_;
    RingSettled recv_waiter_;  // receiveEnded
    unsigned inflight_ = 0;
    bool recv_inflight_ = false;
    bool waiting_ = false;        // on the pool's waiting list (ENOBUFS)
    bool poll_first_ = false;     // for the receive re-armed after ENOBUFS
    bool watch_inflight_ = false;
    bool send_inflight_ = false;
    bool send_queued_ = false;    // on the ring's wantSend list
    bool retired_ = false;
};

}  // namespace portico::net::uring
