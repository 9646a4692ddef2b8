// SPDX-License-Identifier: Apache-2.0
#pragma once
// A libevent event stored inside its owner (event_assign) instead of allocated (event_new): for
// an event its owner keeps for its whole life. Nothing to fail (event_new returns NULL without
// memory, and every caller had to handle that) and one malloc/free pair fewer per owner.
// Like net::Stream's read event and EventLoop's reap event.

#include <event2/event.h>
#include <event2/event_struct.h>

namespace portico::core {

// Takes `ev` (assigned) off its loop, whether it waits (fd, timeout) or is due in this pass; one
// that is neither costs no call into libevent (event_del would take the base's lock only to find
// nothing to do: about 80 instructions). For an owner that takes an event off more than once on
// its way out (a stream detached, then destroyed).
inline void cancelEvent(event* ev) {
    if ((ev->ev_evcallback.evcb_flags & (EVLIST_INSERTED | EVLIST_TIMEOUT | EVLIST_ACTIVE | EVLIST_ACTIVE_LATER)) != 0)
        event_del(ev);
}

class InlineEvent {
public:
    InlineEvent() = default;  // assign() before any other use
    InlineEvent(event_base* base, evutil_socket_t fd, short what, event_callback_fn callback, void* arg) {
        assign(base, fd, what, callback, arg);
    }
    ~InlineEvent() { del(); }
    // Its address is libevent's: it never moves.
    InlineEvent(const InlineEvent&) = delete;
    InlineEvent& operator=(const InlineEvent&) = delete;

    // (Re)targets the event; one that was pending is taken off its loop first.
    void assign(event_base* base, evutil_socket_t fd, short what, event_callback_fn callback, void* arg) {
        del();
        event_assign(&event_, base, fd, what, callback, arg);
    }
    event* get() { return &event_; }
    void cancel() { cancelEvent(&event_); }  // see cancelEvent

private:
    void del() {
        if (event_.ev_base != nullptr) cancel();
    }

    event event_{};  // ev_base null until assigned
};

}  // namespace portico::core
