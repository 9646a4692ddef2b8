// SPDX-License-Identifier: Apache-2.0
#pragma once
// One event_base and the services every object on it needs: deferred deletion (never delete an
// object inside its own callback) and shared timer queues for the configured timeouts.

#include <chrono>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include <event2/event_struct.h>  // the reap event lives inside the loop
#include <sys/time.h>

#include "portico/core/handles.h"

struct timeval;

namespace portico::net {

class IdleQueue;
namespace uring {
class Ring;
}

class EventLoop {
public:
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    event_base* base() const { return base_.get(); }

    // Keeps `object` alive until the current callback has returned, then destroys it. Objects
    // retired within one callback are destroyed in the order they were retired.
    void deferDelete(std::shared_ptr<void> object);
    // The same for an object owned alone: no shared_ptr control block is made for it (a
    // connection retires a few per request; each block was a malloc and a free).
    template <typename T>
    void deferDelete(std::unique_ptr<T> object) {
        if (object) retire(Retired(object.release(), [](void* p) { delete static_cast<T*>(p); }));
    }

    // Keeps an object that owns itself (e.g. a lingering close) until disown(key); whatever is
    // still owned when the loop is destroyed is freed then (before its ring, as what is retired).
    void own(const void* key, std::shared_ptr<void> object);
    // Releases what own() kept under `key`; it is destroyed after the current callback.
    void disown(const void* key);

    // A timeval for event_add() that uses libevent's O(1) common-timeout queue for this
    // duration (all connections share a handful of configured timeouts).
    const timeval* timeout(std::chrono::milliseconds duration);

    // The queue of the idle timers with this timeout (net::IdleTimer), made on first use.
    IdleQueue& idleQueue(std::chrono::milliseconds timeout);

    // The loop's io_uring (net/uring/ring.h), null when none was made (config `io_uring: off`,
    // or the kernel refused one). Made by the worker in the loop's thread; destroyed after
    // every object own() kept (they may have requests on it), before the event_base.
    uring::Ring* ring() const { return ring_.get(); }
    void setRing(std::unique_ptr<uring::Ring> ring);

    // Runs until stop() or nothing is left.
    void run();
    void stop();

private:
    // One object waiting for onReap: an owned pointer and how to delete it, or a share of it.
    class Retired {
    public:
        Retired(void* object, void (*destroy)(void*)) : object_(object), destroy_(destroy) {}
        explicit Retired(std::shared_ptr<void> shared) : shared_(std::move(shared)) {}
        Retired(Retired&& other) noexcept
            : object_(std::exchange(other.object_, nullptr)), destroy_(other.destroy_), shared_(std::move(other.shared_)) {}
        Retired& operator=(Retired&&) = delete;
        ~Retired() {
            if (object_) destroy_(object_);
        }

    private:
        void* object_ = nullptr;
        void (*destroy_)(void*) = nullptr;
        std::shared_ptr<void> shared_;
    };

    void retire(Retired object);
    void reap();
    static void onReap(int, short, void* arg);

    core::EventBasePtr base_;
    std::unique_ptr<uring::Ring> ring_;  // after base_: destroyed before it (its events are on it)
    event reap_event_;  // inside the loop: deferDelete never depends on an allocation
    std::map<long long, std::unique_ptr<IdleQueue>> idle_queues_;
    std::vector<Retired> retired_;
    std::vector<Retired> reaping_;  // the batch onReap destroys; both keep their capacity
    std::map<const void*, std::shared_ptr<void>> owned_;
    std::map<long long, const timeval*> timeouts_;
    std::map<long long, timeval> plain_timeouts_;
};

// Arms `ev` (a timer or an event with a timeout) for `duration` on `loop`'s shared queue. For the
// configured durations only: each distinct duration makes a queue.
void addTimer(EventLoop& loop, event* ev, std::chrono::milliseconds duration);
// Arms `ev` for an arbitrary `duration` (e.g. the rest of an idle period) on libevent's heap.
void addTimerOnce(event* ev, std::chrono::milliseconds duration);

}  // namespace portico::net
