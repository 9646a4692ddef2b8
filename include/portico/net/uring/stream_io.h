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
// nothing a request names belongs to the Stream. A send from the Stream's buffer lets the
// kernel wait for room itself (no MSG_DONTWAIT): a full socket parks the send, a partial one
// completes with its count and the rest goes next (a send carrying a block is the exception,
// below).
// Small writes (stage): a write that finds nothing queued is copied into a block of the ring's
// (net/uring/send_blocks.h), and so are the pass's next ones while they fit; the send carries
// the block first, with MSG_DONTWAIT, and the block goes back to the pool at its completion
// (what the socket refused moves to the front of the send buffer first). No evbuffer chain is
// made and freed per message.
//
// Connects (Stream::connectTo with a ring, TCP over IPv4 or IPv6): the connect is a request too,
// made at the next enter with the first send linked behind it (IOSQE_IO_LINK) when bytes wait
// by then, and the first receive behind that: an upstream connection's connect, request head and
// first receive cost no syscall of their own (connect(2), send(2)). A failed connect ends the
// linked ones with -ECANCELED; the Stream hears the connect's result first (ringConnected).
//
// Lifetime: requests in flight name this object, so the ring owns it (RingOwned). The Stream
// lets go in its destructor (release): what is in flight is cancelled, the socket stays open
// until the last completion (so that its number cannot be reused under a request), then both go.

#include <cstddef>
#include <cstdint>
#include <netinet/in.h>
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
    // Connects the socket to `address` (AF_INET or AF_INET6, copied) at the next enter, with what
    // is written meanwhile sent behind it; the Stream hears the outcome (ringConnected) before
    // any send or receive completion. Writes made while it is in flight wait for it.
    void connect(const sockaddr* address, socklen_t length);
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

    // Copies `n` bytes into this socket's send block (taking one from the ring's pool if it has
    // none) to go at the next enter, ahead of what output() holds: only for a write that finds
    // output() empty (the caller's test). False, and nothing taken, when a send is in flight,
    // bytes of an earlier send wait, the block has no room for them, or the pool has no block:
    // the caller appends to output(). The caller then asks for the send (Stream::ringFlush).
    bool stage(const char* data, std::size_t n);
    // The Stream's output goes at the next enter.
    void send();
    // Bytes taken for a send (staged ones included) and not yet sent.
    std::size_t unsent() const { return unsent_; }
    // Drops what was not sent yet (a failed stream). A send in flight keeps its bytes (and
    // its block) until it completes.
    void dropUnsent();
    // Frees the send buffer while nothing waits in it (an idle connection's; made again on the
    // next send that does not go from a block).
    void releaseIdle();
    bool holdsSendBuffer() const { return sending_ != nullptr; }
    bool sending() const { return send_inflight_ || send_queued_ || connect_inflight_; }
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
    enum Op : unsigned { kRecv = 0, kSend = 1, kWatch = 2, kConnect = 3 };

    StreamIo(Ring& ring, Stream& stream, int fd);
    void onCompletion(unsigned op, int result, unsigned flags) override;
    void onBuffersBack() override;
    void prepareSends() override;
    void onReceived(int result, unsigned flags);
    void onSent(int result);
    void onWatch(int result);
    void cancel(Op op);
    // Each prepares its request and returns its entry (null: none made, or the stream failed).
    io_uring_sqe* submitSend();
    io_uring_sqe* submitReceive(bool poll_first);
    void submitConnect();
    void onConnected(int result);
    // After a send that carried the block: `sent` of its bytes went (the rest of `sent` is the
    // send buffer's); what did not moves to the front of the send buffer, unless `keep_rest` is
    // false (the stream failed), and the block goes back. False: no memory for the move.
    bool unblock(std::size_t& sent, bool keep_rest);
    void dropBlock();
    void giveBackUnsent();  // a partial send's rest back in front of the Stream's output (settle)
    void maybeSettled();
    void maybeFree();

    Ring& ring_;
    Stream* stream_;
    int fd_;
    core::UniqueFd owned_fd_;   // after release, until the last completion
    core::EvbufferPtr sending_;  // bytes taken for a send, in order; the front is in flight
    std::size_t unsent_ = 0;     // its length and the block's (asked on every outputLength())
    iovec iov_[kIov]{};
    msghdr message_{};
    RingSettled settle_waiter_;
    RingSettled recv_waiter_;  // receiveEnded
    unsigned inflight_ = 0;
    // The send block (stage): its bytes go before sending_'s. Only while a send carries it or
    // one is queued to; sending_ is empty whenever a block is staged and not in flight.
    std::uint16_t block_ = SendBlocks::kNone;
    std::uint16_t block_length_ = 0;  // at most SendBlocks::kSize
    bool recv_inflight_ = false;
    bool waiting_ = false;        // on the pool's waiting list (ENOBUFS)
    bool poll_first_ = false;     // for the receive re-armed after ENOBUFS
    bool watch_inflight_ = false;
    bool send_inflight_ = false;
    bool send_queued_ = false;    // on the ring's wantSend list
    bool retired_ = false;
    bool connect_queued_ = false;    // connect() asked, made at the next enter
    bool connect_inflight_ = false;
    bool relink_ = false;            // the connect said -EISCONN: its linked send was cancelled unsent
    socklen_t connect_length_ = 0;
    sockaddr_in6 connect_to_{};      // until the enter that makes the connect (the kernel copies it)
};

}  // namespace portico::net::uring
