// SPDX-License-Identifier: Apache-2.0
#include "portico/net/idle_timer.h"

#include <event2/event.h>
#include <time.h>

#include "portico/net/event_loop.h"

namespace portico::net {

namespace {

// Activity is stamped on every message a session moves (bench/RESULTS.md, "Tunnel per-message
// cost", session 12): CLOCK_MONOTONIC_COARSE reads the kernel's tick-time from the vDSO page,
// without the TSC and pvclock arithmetic of a CLOCK_MONOTONIC read. Both clocks share their
// epoch, so the stamps are steady_clock time points; coarse ones lag the precise clock by up to
// one tick.
std::chrono::steady_clock::time_point coarseNow() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return std::chrono::steady_clock::time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

// One tick of the coarse clock: the most a coarse stamp lags the moment it was taken.
std::chrono::nanoseconds coarseTick() {
    static const std::chrono::nanoseconds tick = [] {
        timespec res{};
        ::clock_getres(CLOCK_MONOTONIC_COARSE, &res);
        return std::chrono::seconds(res.tv_sec) + std::chrono::nanoseconds(res.tv_nsec);
    }();
    return tick;
}

}  // namespace

IdleTimer::IdleTimer(EventLoop& loop, std::chrono::milliseconds timeout, Callback on_idle, void* context)
    : on_idle_(on_idle), context_(context), queue_(timeout.count() > 0 ? &loop.idleQueue(timeout) : nullptr) {}

IdleTimer::~IdleTimer() { stop(); }

// In the queue: linked to a neighbour, or its only member.
bool IdleTimer::queued() const { return prev_ || next_ || (queue_ && queue_->head_ == this); }

void IdleTimer::start() {
    if (!queue_ || queued()) return;
    last_activity_ = coarseNow();
    queue_->append(this);
}

void IdleTimer::stop() {
    if (queue_ && queued()) queue_->remove(this);
}

void IdleTimer::retime(EventLoop& loop, std::chrono::milliseconds timeout) {
    stop();
    queue_ = timeout.count() > 0 ? &loop.idleQueue(timeout) : nullptr;
    start();
}

void IdleTimer::touch() {
    last_activity_ = coarseNow();
    if (!next_) return;  // not started, or already the newest
    queue_->remove(this);
    queue_->append(this);
}

IdleQueue::IdleQueue(EventLoop& loop, std::chrono::milliseconds timeout)
    : timeout_(timeout), event_(loop.base(), -1, 0, &IdleQueue::onTimer, this) {}

IdleQueue::~IdleQueue() {
    // Timers still queued (their owners outlive the loop's last callback) just stop.
    for (IdleTimer* t = head_; t != nullptr;) {
        IdleTimer* next = t->next_;
        t->queue_ = nullptr;
        t->prev_ = t->next_ = nullptr;
        t = next;
    }
}

void IdleQueue::append(IdleTimer* timer) {
    timer->prev_ = tail_;
    timer->next_ = nullptr;
    if (tail_) {
        tail_->next_ = timer;
    } else {
        head_ = timer;
        // The first: it is the oldest. Still armed for a timer that left: that deadline is
        // earlier than this one's, and onTimer re-arms for the rest.
        if (!armed_) {
            addTimerOnce(event_.get(), timeout_);
            armed_ = true;
        }
    }
    tail_ = timer;
}

void IdleQueue::remove(IdleTimer* timer) {
    (timer->prev_ ? timer->prev_->next_ : head_) = timer->next_;
    (timer->next_ ? timer->next_->prev_ : tail_) = timer->prev_;
    timer->prev_ = timer->next_ = nullptr;
}

// Fires for the oldest activity's deadline as it was when armed; activity since then moved
// timers back (or the queue emptied and filled again), so the deadline is checked again and the
// timer re-armed for the new oldest.
void IdleQueue::onTimer(int, short, void* arg) {
    auto* self = static_cast<IdleQueue*>(arg);
    self->armed_ = false;
    // A stamp may lag its moment by a tick (coarseNow): a timer is due one tick later than its
    // stamp says, so that none fires early; a few milliseconds late is nothing to an idle timeout.
    const auto now = std::chrono::steady_clock::now() - coarseTick();
    while (self->head_ && now - self->head_->last_activity_ >= self->timeout_) {
        IdleTimer* idle = self->head_;
        idle->stop();
        idle->on_idle_(idle->context_);  // may stop other timers; sessions defer their deletion to the loop
    }
    if (self->head_) {
        const auto left = self->timeout_ - (now - self->head_->last_activity_);
        addTimerOnce(self->event_.get(), std::chrono::ceil<std::chrono::milliseconds>(left));
        self->armed_ = true;
    }
}

}  // namespace portico::net
