// SPDX-License-Identifier: Apache-2.0
#pragma once
// The bytes of a plaintext tunnel moved through the worker's io_uring: per side one receive in
// flight into the ring's buffer pool, the received buffer sent on as it is when nothing waits
// before it, else copied into the other side's heap queue and handed back (send_queue.h); one
// non-blocking send in flight per side, and a POLLOUT poll when its socket was full. The sockets stay net::Streams (their reading
// paused, libevent out of the way) so that the end is the epoll tunnel's: what is left queued
// goes back into the Stream's output and net::closeBoth flushes it, sends the FIN or the RST,
// and lingers as it does for ws::Tunnel.
//
// Why single-shot receives, not multishot: a multishot receive keeps taking buffers until its
// cancel is processed (up to 32 per wakeup in the kernel's retry loop), so the backpressure
// bound would be approximate; one receive armed at a time, re-armed from the completion while
// the other side's queue is below the bound, keeps it exact at the cost of one SQE per message
// (batched in the same io_uring_enter, no extra syscall).
//
// A peer that closes while its side's receiving is paused (the other side's queue is at the
// bound) is noticed at once, as the epoll tunnel's paused watch does (Stream::pauseReading,
// ws::StalledDelivery): a pause arms one POLLRDHUP poll on that side, left armed on resume (a
// FIN then is read by the receive as usual; a later pause re-arms it only if it fired), so it
// costs a request per pause at most, none per message. Once it fired while the side was paused,
// the bytes sent before the FIN still go as the other side takes them, and a ring timeout
// checks every kStall that the other side took some: when it took none, the relay ends as at
// that peer's EOF (the unread bytes dropped), not at the session's idle_timeout.
//
// Lifetime: requests in flight name the Relay, so the ring keeps it (Ring::adopt) and frees it
// after its last completion and once its observer (the session) let go, never earlier.

#include <chrono>
#include <cstdint>
#include <memory>

#include "portico/core/recycled.h"
#include "portico/net/stream.h"
#include "portico/net/uring/buffer_pool.h"
#include "portico/net/uring/ring.h"
#include "portico/net/uring/send_queue.h"

namespace portico::net::uring {

class RelayObserver {
public:
    virtual void onRelayActivity() = 0;  // bytes arrived (an idle timer's touch)
    // A peer closed or failed (`reason` as the log says it): the relay is ending by itself.
    virtual void onRelayEnd(const char* reason) = 0;

protected:
    ~RelayObserver() = default;
};

// Each idle tunnel holds one (bench/RESULTS.md counts its bytes): the relay itself waits for
// pool buffers (one entry on the pool's list for both sides), and a side keeps only what moving
// its bytes needs. Its storage is kept per thread for the next tunnel's (core::Recycled).
class Relay final : public RingOwned, private BufferWaiter, public core::Recycled<Relay, 64> {
public:
    // Takes both sockets (plain TCP, no TLS) for the ring's loop; nothing moves before begin().
    // The ring keeps it (see Lifetime above); the session that made it detach()es it.
    static Relay& make(Ring& ring, std::unique_ptr<Stream> client, std::unique_ptr<Stream> upstream,
                       RelayObserver& observer);
    // Moves the bytes from now on; what the Streams' buffers hold goes first: each one's unsent
    // output, then the bytes the other side's input holds (a frame behind the 101).
    void begin();

    // The session ends it (shutdown, reload drain, a timer): receiving stops, what was received
    // is flushed and both sockets are closed gracefully (lingering). Nothing is reported back.
    void stop();
    // The observer is gone (its session's destructor): stops the relay if it still ran; the
    // relay is freed when its last request completed.
    void detach();

    std::uint64_t fromClient() const { return sides_[0].received; }
    std::uint64_t toClient() const { return sides_[1].received; }

    // How long the side owed a gone peer's last bytes may take none of them (=
    // ws::StalledDelivery::kStall, checked where both are known: ws/uring_tunnel.cpp).
    static constexpr std::chrono::seconds kStall{2};

private:
    // + the side's index (0 client, 1 upstream). kGone names the side's POLLRDHUP poll while it
    // is armed (Side::watching), then, once its peer is gone, the stall timer (one at a time).
    enum Op : unsigned { kRecv = 0, kSend = 2, kPoll = 4, kGone = 6 };

    struct Side {
        std::unique_ptr<Stream> stream;
        SendQueue out;  // what the other side received, to send here
        std::uint64_t received = 0;
        int fd = -1;
        std::uint8_t index = 0;  // 0 client, 1 upstream
        bool receiving = false;  // a receive is in flight
        bool sending = false;    // a send of out's front is in flight
        bool polling = false;    // waiting for POLLOUT (the last send found the socket full)
        bool waiting = false;    // its receive waits for a pool buffer (ENOBUFS): the relay is on the pool's list
        bool poll_first = false; // the last receive left the socket empty: wait before trying
        bool watching = false;   // its POLLRDHUP poll is in flight (armed when paused)
        bool gone = false;       // its peer closed (or failed) while paused: the stall timer runs
        bool timing = false;     // the stall timer is in flight (for this side's gone peer)
        bool reset = false;      // the watch saw the peer fail (POLLERR): its end is an error, not a FIN
    };
    Relay(Ring& ring, RelayObserver& observer);
public:
    ~Relay() override;

private:
    Side& other(Side& s) { return sides_[1 - s.index]; }
    // begin()'s second half, once both Streams' own ring requests are done (Stream::settleRing).
    void transfer();
    static void onStreamSettled(void* self);

    void onCompletion(unsigned op, int result, unsigned flags) override;
    void onBuffersBack() override;
    void waitForBuffers(Side& s);
    void stopWaitingForBuffers();
    void onReceived(Side& from, int result, unsigned flags);
    void onSent(Side& to, int result);
    void armReceive(Side& s);
    void maybeReceive(Side& s);
    void sendNext(Side& s);
    void waitWritable(Side& s);
    bool armPoll(Side& s, unsigned mask, unsigned op);
    void onWritable(Side& s);
    void watchPeer(Side& s);
    void onPeerWatch(Side& s, int result);
    void armStallTimer(Side& s);
    void onStallTimer(Side& s);
    // What the peer of `s` sent that the other side has taken, modulo 2^32 (a gone peer leaves at
    // most its socket's receive buffer behind): changes only when the other side takes bytes
    // while `s` is paused.
    std::uint32_t delivered(Side& s) { return static_cast<std::uint32_t>(s.received - other(s).out.unsent()); }
    // A peer closed (`failed`: reset or error, the other side is reset too) or the session
    // stopped it: cancels what is in flight; finish() runs after the last completion.
    void end(net::Ending ending, const char* reason, Side* failed);
    void finish();
    void maybeFree();

    Ring& ring_;
    RelayObserver* observer_;
    Side sides_[2];
    std::uint32_t stall_mark_ = 0;  // delivered() at the stall timer's last check
    std::uint8_t inflight_ = 0;     // at most 8: per side a receive, a send, a poll, a watch or timer
    std::uint8_t settling_ = 0;     // Streams whose own ring requests are still in flight (begin)
    // Bit-fields: with them the object fits a smaller allocation (248 bytes on x86-64, each
    // side's SendQueue holding its front chunk: no list allocated while a peer keeps up).
    bool ending_ : 1 = false;
    bool linger_ : 1 = true;  // the sockets close lingering, else as Ending::Finished (lingering_close.h)
    bool finished_ : 1 = false;
    bool retired_ : 1 = false;
};

}  // namespace portico::net::uring
