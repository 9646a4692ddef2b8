// SPDX-License-Identifier: Apache-2.0
#pragma once
// "Close after this long without traffic", cheap on the data path and in memory: touch() stores
// a time stamp and moves the timer to the tail of its loop's queue for that timeout; the queue
// (one per distinct timeout on an EventLoop) keeps its timers in order of their last activity
// and holds one libevent timer for the oldest. An idle connection holds no event of its own.

#include <chrono>

#include "portico/core/handles.h"
#include "portico/core/inline_event.h"

namespace portico::net {

class EventLoop;
class IdleQueue;

class IdleTimer {
public:
    // `on_idle(context)` runs (from the loop) once `timeout` has passed without touch(). A zero
    // timeout never fires. A function and a pointer rather than a std::function: an idle
    // session holds one or two of these, and every byte counts at 100k sessions.
    using Callback = void (*)(void* context);
    IdleTimer(EventLoop& loop, std::chrono::milliseconds timeout, Callback on_idle, void* context);
    ~IdleTimer();
    IdleTimer(const IdleTimer&) = delete;
    IdleTimer& operator=(const IdleTimer&) = delete;
    void start();
    void stop();
    void touch();
    // Moves the timer to the loop's queue for `timeout` (a zero one: never fires) and starts it
    // anew, the same callback: a session whose wait changed its nature (a WebSocket waiting for
    // the answer to a Close, websocket.close_timeout) bounds it with the timer it has.
    void retime(EventLoop& loop, std::chrono::milliseconds timeout);

private:
    friend class IdleQueue;
    bool queued() const;

    Callback on_idle_;
    void* context_;
    std::chrono::steady_clock::time_point last_activity_;
    IdleQueue* queue_ = nullptr;  // the loop's queue for the timeout; null: never fires
    IdleTimer* prev_ = nullptr;   // neighbours in the queue while started, oldest activity first
    IdleTimer* next_ = nullptr;
};

// The timers of one loop that share one timeout. Made by EventLoop::idleQueue().
class IdleQueue {
public:
    IdleQueue(EventLoop& loop, std::chrono::milliseconds timeout);
    ~IdleQueue();
    IdleQueue(const IdleQueue&) = delete;
    IdleQueue& operator=(const IdleQueue&) = delete;
    void append(IdleTimer* timer);  // the newest activity
    void remove(IdleTimer* timer);

private:
    friend class IdleTimer;
    static void onTimer(int, short, void* arg);

    std::chrono::milliseconds timeout_;
    // Armed while the queue is not empty, and left armed when it empties: the next timer in (a
    // connection after the last one closed) finds it pending, for a deadline no later than its
    // own, instead of one event_del and one event_add per connection at low concurrency. An
    // empty queue's event fires once, to no effect, and is not armed again.
    core::InlineEvent event_;
    bool armed_ = false;
    IdleTimer* head_ = nullptr;
    IdleTimer* tail_ = nullptr;
};

}  // namespace portico::net
