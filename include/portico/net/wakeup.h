// SPDX-License-Identifier: Apache-2.0
#pragma once
// The one way another thread reaches a worker's loop. Every event_base is built without locks
// (EVENT_BASE_FLAG_NOLOCK): only the thread that runs a loop may call into it (event_add,
// event_active, evbuffer calls on its streams). A thread that has work for another loop puts it
// in a queue of its own (under its own mutex) and calls notify(); the loop's thread runs the
// callback and drains the queue. See docs/threading.md.

#include <functional>

#include "portico/core/handles.h"
#include "portico/core/inline_event.h"

namespace portico::net {

class EventLoop;

class Wakeup {
public:
    // `on_wake` runs on `loop`'s thread, once per wakeup however many notify() calls led to it.
    Wakeup(EventLoop& loop, std::function<void()> on_wake);
    ~Wakeup();
    Wakeup(const Wakeup&) = delete;
    Wakeup& operator=(const Wakeup&) = delete;

    // Thread-safe (any thread, including the loop's own): makes the loop run on_wake soon.
    void notify();

private:
    static void onReadable(int fd, short, void* arg);

    core::UniqueFd fd_;  // an eventfd: notify() adds to its counter, the loop reads it to zero
    core::InlineEvent event_;
    std::function<void()> on_wake_;
};

}  // namespace portico::net
