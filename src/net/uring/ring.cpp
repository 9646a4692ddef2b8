// SPDX-License-Identifier: Apache-2.0
#include "portico/net/uring/ring.h"

#include <cerrno>
#include <cstring>
#include <event2/event.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <utility>
#include <vector>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"

namespace portico::net::uring {

namespace {

constexpr std::uint64_t kOpMask = 7;


int initRing(io_uring& ring) {
    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                   IORING_SETUP_CQSIZE;
    params.cq_entries = Ring::kEntries * Ring::kCqPerSq;
    return io_uring_queue_init_params(Ring::kEntries, &ring, &params);
}

std::string refusal(int r) {
    std::string why = std::string("io_uring_setup: ") + std::strerror(-r);
    if (r == -EPERM) why += " (kernel.io_uring_disabled or a seccomp profile)";
    if (r == -ENOSYS) why += " (no io_uring in this kernel)";
    if (r == -EINVAL) why += " (a kernel older than 6.0: SINGLE_ISSUER)";
    return why;
}

}  // namespace

bool Ring::available(unsigned count, std::string& why) {
    // What make() asks of the kernel, `count` times at once (the descriptors of every worker's
    // ring, a seccomp profile refusing io_uring_register), all given back before returning.
    struct Probe {
        io_uring ring{};
        bool made = false;
        core::UniqueFd eventfd;
        ~Probe() {
            if (made) io_uring_queue_exit(&ring);
        }
    };
    std::vector<Probe> probes(count);
    for (Probe& probe : probes) {
        if (const int r = initRing(probe.ring); r < 0) {
            why = refusal(r);
            return false;
        }
        probe.made = true;
        probe.eventfd = core::UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (!probe.eventfd) {
            why = std::string("eventfd: ") + std::strerror(errno);
            return false;
        }
        if (const int r = io_uring_register_eventfd(&probe.ring, probe.eventfd.get()); r < 0) {
            why = std::string("io_uring_register_eventfd: ") + std::strerror(-r);
            return false;
        }
    }
    return true;
}

std::unique_ptr<Ring> Ring::make(EventLoop& loop, std::string& why) {
    std::unique_ptr<Ring> ring(new Ring(loop));
    if (!ring->setUp(loop, why)) return nullptr;
    return ring;
}

bool Ring::setUp(EventLoop& loop, std::string& why) {
    if (const int r = initRing(ring_); r < 0) {
        why = refusal(r);
        return false;
    }
    ring_made_ = true;
    // The eventfd is watched edge-triggered and never read: on a backend without edge triggering
    // (poll, select) it would stay readable and the loop would spin.
    if (!(event_base_get_features(loop.base()) & EV_FEATURE_ET)) {
        why = std::string("the event loop's backend (") + event_base_get_method(loop.base()) +
              ") has no edge-triggered events";
        return false;
    }
    eventfd_ = core::UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!eventfd_) {
        why = std::string("eventfd: ") + std::strerror(errno);
        return false;
    }
    if (const int r = io_uring_register_eventfd(&ring_, eventfd_.get()); r < 0) {
        why = std::string("io_uring_register_eventfd: ") + std::strerror(-r);
        return false;
    }
    if (!buffers_.registerWith(ring_, why)) return false;
    if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
        connects_ = io_uring_opcode_supported(probe, IORING_OP_CONNECT) != 0;
        io_uring_free_probe(probe);
    }
    event_assign(&signal_event_, loop.base(), eventfd_.get(), EV_READ | EV_PERSIST | EV_ET, &Ring::onSignal, this);
    event_assign(&flush_event_, loop.base(), -1, 0, &Ring::onFlush, this);
    events_assigned_ = true;
    if (event_add(&signal_event_, nullptr) != 0) {
        why = "cannot watch the ring's eventfd";
        return false;
    }
    return true;
}

Ring::~Ring() {
    if (events_assigned_) {
        event_del(&signal_event_);
        event_del(&flush_event_);
    }
    // Cancels what is still in flight and waits for it: no request names this memory after.
    if (ring_made_) io_uring_queue_exit(&ring_);
    // What is deleted below may still ask for requests (a Relay's Streams cancel a receive in
    // flight): entry() refuses them, and nothing is activated on the loop for this ring.
    ring_made_ = false;
    while (owned_) {
        RingOwned* object = owned_;
        owned_ = object->next_;
        delete object;
    }
}

void Ring::adopt(RingOwned* object) {
    object->prev_ = nullptr;
    object->next_ = owned_;
    if (owned_) owned_->prev_ = object;
    owned_ = object;
}

void Ring::retire(RingOwned* object) {
    if (object->prev_)
        object->prev_->next_ = object->next_;
    else
        owned_ = object->next_;
    if (object->next_) object->next_->prev_ = object->prev_;
    object->prev_ = object->next_ = nullptr;
    loop_.deferDelete(std::unique_ptr<RingOwned>(object));  // we may be in its completion
}

io_uring_sqe* Ring::entry() {
    if (!ring_made_) return nullptr;  // torn down (~Ring): its queues are unmapped
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe && submitWhenFull()) sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
        ++refused_;
        if ((refused_ & (refused_ - 1)) == 0)  // 1, 2, 4, 8, ...: a line per doubling
            LOG_ERROR("io_uring: submission queue full and the kernel refuses it: %llu request(s) refused so far "
                      "(a connection's request ends it; a cancel is made at the next pass)",
                      static_cast<unsigned long long>(refused_));
    }
    scheduleFlush();  // refused: the next pass tries again (the kept cancels)
    return sqe;
}

// Full: what is queued goes now, in order. A refusal (-EBUSY: completions the kernel holds in
// its overflow list; -EAGAIN, -ENOMEM) is tried once more after the kernel flushed its
// completions into the queue (they are dispatched by drain(), not here: the caller is in the
// middle of a change). Looping on it would spin the worker.
bool Ring::submitWhenFull() {
    if (refuse_when_full_) return false;
    if (io_uring_submit(&ring_) < 0) io_uring_submit_and_get_events(&ring_);
    return true;
}

bool Ring::reserve(unsigned count) {
    if (!ring_made_) return false;
    if (io_uring_sq_space_left(&ring_) < count && !refuse_when_full_) io_uring_submit(&ring_);
    return io_uring_sq_space_left(&ring_) >= count;
}

void Ring::track(io_uring_sqe* sqe, Completion* target, unsigned op) {
    io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uintptr_t>(target) | op);
    ++inflight_;
}

void Ring::quiet(io_uring_sqe* sqe) {
    io_uring_sqe_set_data64(sqe, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void Ring::cancel(Completion* target, unsigned op) {
    const KeptCancel cancel{target, reinterpret_cast<std::uintptr_t>(target) | op, -1};
    // Behind the kept ones, never ahead of them: the order of cancels is the order asked.
    if (!kept_cancels_.empty() || !prepareCancel(cancel)) kept_cancels_.push_back(cancel);
}

void Ring::cancelAll(Completion* owner, int fd) {
    const KeptCancel cancel{owner, 0, fd};
    if (!kept_cancels_.empty() || !prepareCancel(cancel)) kept_cancels_.push_back(cancel);
}

io_uring_sqe* Ring::prepareCancel(const KeptCancel& cancel) {
    io_uring_sqe* sqe = entry();
    if (!sqe) return nullptr;
    if (cancel.fd >= 0)
        io_uring_prep_cancel_fd(sqe, cancel.fd, IORING_ASYNC_CANCEL_ALL);
    else
        io_uring_prep_cancel64(sqe, cancel.data, 0);
    quiet(sqe);
    return sqe;
}

void Ring::makeKeptCancels() {
    std::size_t made = 0;
    while (made < kept_cancels_.size() && prepareCancel(kept_cancels_[made])) ++made;
    kept_cancels_.erase(kept_cancels_.begin(), kept_cancels_.begin() + static_cast<std::ptrdiff_t>(made));
}

void Ring::dropKeptCancels(Completion* owner) {
    std::erase_if(kept_cancels_, [owner](const KeptCancel& cancel) { return cancel.owner == owner; });
}

void Ring::scheduleFlush() {
    if (draining_ || flush_pending_ || !ring_made_) return;  // drain() submits before it returns
    flush_pending_ = true;
    event_active(&flush_event_, EV_TIMEOUT, 0);
}

void Ring::onFlush(int, short, void* arg) {
    auto* self = static_cast<Ring*>(arg);
    self->flush_pending_ = false;
    // Once deferred (below), the next flush enters whatever else is still active: a pass's
    // callbacks that keep activating each other cannot hold the requests back for longer.
    self->drain(/*may_defer=*/!std::exchange(self->deferred_, false));
}

void Ring::onSignal(int, short, void* arg) { static_cast<Ring*>(arg)->drain(/*may_defer=*/true); }

void Ring::wantSend(SendSource* source) {
    senders_.push_back(source);
    scheduleFlush();
}

// A source asked again while it prepares (it wrote more) joins the next batch.
void Ring::prepareSends() {
    if (!kept_cancels_.empty()) makeKeptCancels();
    if (senders_.empty()) return;
    preparing_.swap(senders_);
    for (SendSource* source : preparing_) source->prepareSends();
    preparing_.clear();
}

// Whether an io_uring_enter has work: requests to submit, or completion work the kernel has not
// run yet (TASKRUN_FLAG sets IORING_SQ_TASKRUN for it) or completions it holds on its overflow
// list. Otherwise what completed is in the completion queue already (the eventfd is signalled
// after a completion is posted there) and is reaped without a syscall: the enter that an
// eventfd wakeup always made (one per wakeup, nothing submitted) is saved.
bool Ring::mustEnter() const {
    const unsigned sq_flags = IO_URING_READ_ONCE(*ring_.sq.kflags);
    return io_uring_sq_ready(&ring_) > 0 || (sq_flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

void Ring::drain(bool may_defer) {
    draining_ = true;
    // Reaps what is posted, then submits what the completions queued (sends often complete
    // inline and post at once: reaped in the next round). Then back to the loop, even under
    // load: spinning here while traffic keeps arriving is busy polling, which on a shared
    // machine gets this thread preempted for whole time slices.
    reap();
    buffers_.publish();
    for (int round = 0;; ++round) {
        prepareSends();
        if (!mustEnter()) break;
        // Other callbacks of this loop pass are still to run (an upstream's connect reported
        // from the loop, a held read, the next socket of this wakeup): their requests go in the
        // same enter, after them (event_active puts the flush at the end of the pass's queue).
        // An upgrade's requests come in a chain of such callbacks (bench/RESULTS.md, session 13).
        if (may_defer && event_base_get_num_events(loop_.base(), EVENT_BASE_COUNT_ACTIVE) > 0) {
            draining_ = false;
            deferred_ = true;
            flush_pending_ = true;
            event_active(&flush_event_, EV_TIMEOUT, 0);  // in this pass, also if due as a timeout
            return;
        }
        if (round == kRoundsPerWakeup) break;
        if (io_uring_submit_and_get_events(&ring_) == -EBADR) noteDropped();
        reap();
        buffers_.publish();
    }
    draining_ = false;
    // Left for the next loop pass (after the events already due): requests still queued when
    // the rounds ran out, completions posted meanwhile, completion work waiting to run.
    if (mustEnter() || io_uring_cq_ready(&ring_) > 0 || !senders_.empty() || !kept_cancels_.empty()) {
        // As a zero timeout, not event_active: libevent would run an active event in this same
        // pass, again and again under saturation, and never poll the other sockets and timers.
        if (flush_pending_) return;
        flush_pending_ = true;
        static const timeval kNow{0, 0};
        event_add(&flush_event_, &kNow);
    }
}

// -EBADR: the completion queue overflowed and the kernel could not keep a completion (no memory
// for its overflow list). Its request stays counted in flight, so its relay never ends: rare
// enough (the CQ holds kCqPerSq x the SQ) to log, once per ring, with the count.
void Ring::noteDropped() {
    ++dropped_;
    if ((dropped_ & (dropped_ - 1)) == 0)  // 1, 2, 4, 8, ...: a line per doubling, not per pass
        LOG_ERROR("io_uring: %llu completion(s) dropped so far (-EBADR: completion queue overflow); tunnels "
                  "waiting for them never end", static_cast<unsigned long long>(dropped_));
}

unsigned Ring::reap() {
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    // One completion at a time (not io_uring_for_each_cqe over a batch): a handler may queue
    // requests, and submitting when the queue is full must not see completions twice.
    while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe) {
        const std::uint64_t data = cqe->user_data;
        const int result = cqe->res;
        const unsigned flags = cqe->flags;
        io_uring_cqe_seen(&ring_, cqe);
        ++seen;
        if (data == 0) continue;  // a quiet request that failed (a cancel that found nothing)
        if (!(flags & IORING_CQE_F_MORE)) --inflight_;
        auto* target = reinterpret_cast<Completion*>(data & ~kOpMask);
        target->onCompletion(static_cast<unsigned>(data & kOpMask), result, flags);
    }
    return seen;
}

}  // namespace portico::net::uring
