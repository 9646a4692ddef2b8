// SPDX-License-Identifier: Apache-2.0
#pragma once
// One io_uring per worker loop, beside libevent (config key `io_uring`): the plaintext sockets'
// I/O goes through it (net::Stream's receives and sends: net/uring/stream_io.h; WebSocket
// tunnels: net/uring/relay.h). libevent stays the loop: the ring's completions
// are signalled on an eventfd (io_uring_register_eventfd) that the loop watches, and the ring is
// entered from that event's callback, which reaps completions and submits what they asked for
// in the same io_uring_enter calls.
//
// Why no change to EventLoop::run: libevent 2.1 has no "before polling" hook, so a request
// queued outside the ring's own callback (a tunnel's start, a timer ending one) activates the
// ring's flush event instead (event_active, no syscall): libevent runs it in the same loop pass,
// after the callbacks that queued, so nothing waits past that pass and loopbreak/loopexit keep
// their meaning. Requests that completions queue while other callbacks of the pass are still
// active wait for them once (the flush event again, at the end of the pass's queue), so that
// one io_uring_enter carries what the whole pass queued; and a wakeup with nothing to submit
// and no completion work left in the kernel reaps the completion queue without entering.
//
// Setup flags, chosen by measurement (bench/RESULTS.md, session 10): SINGLE_ISSUER |
// COOP_TASKRUN | TASKRUN_FLAG. A completion is posted by task work that runs when this thread
// next leaves a syscall (epoll_wait returns early for it, no interrupt), which signals the
// eventfd; the callback then finds it in the completion queue. DEFER_TASKRUN was tried first
// (the completion work run only inside io_uring_enter): with an eventfd it stalled tunnels for
// 16-40 ms at a time (the kernel signals the eventfd only when its work list goes from empty,
// sometimes deferred by an RCU grace period), 7,000 msg/s at 64 connections against 35,000-43,000
// with COOP_TASKRUN. The eventfd is watched edge-triggered (EV_ET): each signal is a new edge, so
// it is never read (one syscall less per wakeup); its counter cannot overflow in practice.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <event2/event_struct.h>
#include <liburing.h>

#include "portico/core/handles.h"
#include "portico/net/uring/buffer_pool.h"
#include "portico/net/uring/send_blocks.h"

namespace portico::net {
class EventLoop;
}

namespace portico::net::uring {

// What a completion is for. A request's user_data is the address of its Completion (8-byte
// aligned) with the operation's number (0-7, the owner's own numbering) in the low bits;
// user_data 0 is a request whose success posts nothing (a cancel: IOSQE_CQE_SKIP_SUCCESS).
class Completion {
public:
    virtual void onCompletion(unsigned op, int result, unsigned flags) = 0;

protected:
    ~Completion() = default;
};

// An object that owns itself while requests name it (a Relay): the ring keeps it on an intrusive
// list (two pointers in the object: no map node, no shared_ptr block per idle tunnel), frees it
// when it lets go (retire(), after its last completion) and frees what is left when the ring
// itself goes (a worker stopping with tunnels open). Its requests' completions come to it (one
// vtable for both).
class RingOwned : public Completion {
public:
    virtual ~RingOwned() = default;

private:
    friend class Ring;
    RingOwned* prev_ = nullptr;
    RingOwned* next_ = nullptr;
};

// Bytes to send, prepared as late as possible: before each enter the ring asks every source that
// asked (Ring::wantSend) for its requests, so that what a loop pass wrote to one socket goes in
// one request, and the sends of many sockets in one io_uring_enter.
class SendSource {
public:
    virtual void prepareSends() = 0;

protected:
    ~SendSource() = default;
};

class Ring {
public:
    static constexpr unsigned kEntries = 256;  // submission queue
    // Completion queue entries per submission entry: each tunnel may have up to 4 requests in
    // flight, so the CQ holds 2,048 completions before the kernel keeps overflow on a list.
    static constexpr unsigned kCqPerSq = 8;
    static constexpr int kRoundsPerWakeup = 4;  // enters per wakeup, at most (then the next pass)

    // A ring for `loop`, made in the loop's thread (SINGLE_ISSUER: the only thread that may
    // submit). Null with `why` set when the kernel refuses one (io_uring_setup EPERM or ENOSYS:
    // kernel.io_uring_disabled, a seccomp profile; ENOMEM: RLIMIT_MEMLOCK on old kernels).
    static std::unique_ptr<Ring> make(EventLoop& loop, std::string& why);
    // Whether this process may make `count` rings at once (throwaway ones, with their eventfds
    // registered): `io_uring: on` refuses to start, or a reload to apply, without them.
    static bool available(unsigned count, std::string& why);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    // The next free submission entry (submits what is queued when the queue is full); it is
    // submitted before the loop next sleeps. Prepare it (io_uring_prep_*, which clears its
    // flags and data), then name its owner with track() or mark it quiet(). Null when the queue
    // is full and the kernel refuses to take it (submitted twice): the caller ends its relay.
    io_uring_sqe* entry();
    // Submits what is queued when fewer than `count` entries are free, so that the next `count`
    // entry() calls give adjacent entries (a chain of linked requests: IOSQE_IO_LINK). False when
    // the kernel refused that submission and fewer than `count` are free: no chain now.
    bool reserve(unsigned count);
    // Its completion goes to `target` with `op` (counted in flight until its last completion).
    void track(io_uring_sqe* sqe, Completion* target, unsigned op);
    // A request nobody waits for (a cancel): its success posts nothing.
    static void quiet(io_uring_sqe* sqe);
    // Cancels the request tracked for `target` with `op`, quietly; it completes with -ECANCELED.
    // A cancel the ring refuses now (its queue full and the kernel refusing it) is kept and made
    // at the ring's next drain: a parked send or an idle receive would otherwise hold its socket
    // until the peer writes or closes. `target` must forgetCancels() before its memory or its
    // descriptor can be reused.
    void cancel(Completion* target, unsigned op);
    // Cancels every request of `owner` on descriptor `fd` (IORING_ASYNC_CANCEL_ALL), quietly;
    // refused, kept as cancel()'s are.
    void cancelAll(Completion* owner, int fd);
    // `owner`'s requests have all completed (its socket closes, its memory may be reused): its
    // kept cancels are dropped, so that none finds another's request later.
    void forgetCancels(Completion* owner) {
        if (!kept_cancels_.empty()) dropKeptCancels(owner);
    }
    // Whether the kernel takes IORING_OP_CONNECT (probed when the ring is made; every kernel
    // that allows SINGLE_ISSUER has it, so this is for a kernel that hides opcodes): without it
    // upstream connects are made with connect(2), as on epoll.
    bool connects() const { return connects_; }
    BufferPool& buffers() { return buffers_; }
    SendBlocks& sendBlocks() { return send_blocks_; }  // small writes of its Streams (stream_io.h)
    EventLoop& loop() const { return loop_; }
    // `source` is asked for its requests before the next enter (in this loop pass). Once per
    // enter: the source keeps a flag so that it asks again only after prepareSends ran.
    void wantSend(SendSource* source);

    // Keeps `object` until retire(object) (destroyed after the current callback, by the loop) or
    // the ring's end.
    void adopt(RingOwned* object);
    void retire(RingOwned* object);

    // Requests in flight on this ring, for tests and the leak checks.
    std::uint64_t inflight() const { return inflight_; }
    // Cancels refused and kept for the next drain, for tests.
    std::size_t keptCancels() const { return kept_cancels_.size(); }

private:
    friend struct RingTestAccess;  // tests: a full queue the kernel refuses (refuse_when_full_)

    // A cancel the ring refused (cancel, cancelAll): by user_data, or by descriptor when fd >= 0.
    struct KeptCancel {
        Completion* owner;
        std::uint64_t data;
        int fd;
    };

    explicit Ring(EventLoop& loop) : loop_(loop) {}
    bool setUp(EventLoop& loop, std::string& why);
    void scheduleFlush();
    // Enters the ring (submits, runs completion work), dispatches the completions, and repeats
    // while they queued more requests, a few rounds at most; what is left goes in the next pass.
    // `may_defer`: when other callbacks of this loop pass are active, leaves the submission to
    // the flush event, run after them (once: the flush that follows does not defer again).
    void drain(bool may_defer);
    bool mustEnter() const;
    unsigned reap();
    void noteDropped();
    // The full queue's submission, before entry() takes the next entry; false when refused.
    bool submitWhenFull();
    // Makes the cancels kept since a refusal (while the ring takes them).
    void makeKeptCancels();
    void dropKeptCancels(Completion* owner);
    io_uring_sqe* prepareCancel(const KeptCancel& cancel);
    void prepareSends();
    static void onSignal(int, short, void* arg);
    static void onFlush(int, short, void* arg);

    EventLoop& loop_;
    RingOwned* owned_ = nullptr;  // the intrusive list's head
    io_uring ring_{};
    bool ring_made_ = false;
    core::UniqueFd eventfd_;
    event signal_event_{};
    event flush_event_{};
    bool events_assigned_ = false;
    bool connects_ = false;
    bool flush_pending_ = false;
    bool draining_ = false;
    bool deferred_ = false;  // the pending flush was deferred by drain(): it does not defer again
    std::uint64_t inflight_ = 0;
    bool refuse_when_full_ = false;  // tests: the kernel refuses to submit a full queue (-EBUSY)
    std::uint64_t refused_ = 0;  // entry() found no room twice (logged at 1, 2, 4, 8, ...)
    std::uint64_t dropped_ = 0;  // completions lost to -EBADR (logged at 1, 2, 4, 8, ...)
    BufferPool buffers_;
    SendBlocks send_blocks_;  // outlives the owned objects deleted in ~Ring (they give blocks back)
    std::vector<SendSource*> senders_;    // asked since the last enter (wantSend)
    std::vector<SendSource*> preparing_;  // the batch prepareSends asks (keeps its capacity)
    std::vector<KeptCancel> kept_cancels_;  // refused, made at the next drain (in order)
};

}  // namespace portico::net::uring
