// SPDX-License-Identifier: Apache-2.0
#include "portico/net/event_loop.h"

#include <cerrno>
#include <cstring>
#include <event2/event.h>
#include <stdexcept>
#include <string>

#include "portico/net/fd_limit.h"
#include "portico/net/idle_timer.h"
#include "portico/net/uring/ring.h"

namespace portico::net {

EventLoop::EventLoop() {
    // libevent's epoll_init makes the signal pipe of every base and, when it cannot (EMFILE),
    // prints "evsig_init_: socketpair" and calls exit(1) itself. So the descriptors are asked for
    // first: loops are made at start-up before any other thread runs, so none is taken between.
    if (freeDescriptors(kEventLoopDescriptors) < kEventLoopDescriptors)
        throw std::runtime_error("cannot make an event loop: too few file descriptors left under the open-file "
                                 "limit (each loop needs " + std::to_string(kEventLoopDescriptors) +
                                 "): raise it (ulimit -n, systemd LimitNOFILE=)");
    event_config* cfg = event_config_new();
    // Changes that cancel out within one loop iteration cost no epoll_ctl.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    // No lock: only this loop's thread calls into the base; other threads reach it through a
    // net::Wakeup (docs/threading.md). The lock was about 10% of the instructions per message.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    // The environment does not choose the backend or its descriptors: EVENT_PRECISE_TIMER made
    // epoll_init open a timerfd beyond the 3 descriptors counted for a loop (kEventLoopDescriptors),
    // and libevent then exited by itself when the signal pipe found none left.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV);
    base_.reset(event_base_new_with_config(cfg));
    event_config_free(cfg);
    // No memory or no epoll descriptor left (EMFILE): the worker or server that wanted this loop
    // fails to start (Server::run, main), instead of every event_new on it crashing later.
    if (!base_) throw std::runtime_error(std::string("cannot make an event loop: ") + std::strerror(errno));
    event_assign(&reap_event_, base_.get(), -1, 0, &EventLoop::onReap, this);
}

EventLoop::~EventLoop() {
    // Everything owned or retired goes before the ring, in as many rounds as it takes: their
    // destructors may own or retire more (a connection destroyed here closes its TLS upstream
    // with a lingering close). A Stream still alive when the ring went would go on on epoll
    // without what the ring held for it (a TLS Stream: the ciphertext its BIO kept). Swapped out
    // first: an own() from a destructor must not reach the map being cleared.
    while (!owned_.empty() || !retired_.empty()) {
        std::map<const void*, std::shared_ptr<void>> owned;
        owned.swap(owned_);
        owned.clear();
        reap();
    }
    ring_.reset();  // after what may have had requests on it (relays: the ring keeps them on its own list and frees what is left)
    event_del(&reap_event_);
}

void EventLoop::setRing(std::unique_ptr<uring::Ring> ring) { ring_ = std::move(ring); }

void EventLoop::deferDelete(std::shared_ptr<void> object) { retire(Retired(std::move(object))); }

void EventLoop::retire(Retired object) {
    if (retired_.empty()) event_active(&reap_event_, EV_TIMEOUT, 0);
    retired_.push_back(std::move(object));
}

void EventLoop::own(const void* key, std::shared_ptr<void> object) { owned_[key] = std::move(object); }

void EventLoop::disown(const void* key) {
    auto it = owned_.find(key);
    if (it == owned_.end()) return;
    deferDelete(std::move(it->second));
    owned_.erase(it);
}

void EventLoop::onReap(int, short, void* arg) {
    static_cast<EventLoop*>(arg)->reap();
}

void EventLoop::reap() {
    // Destructors may retire more objects (a connection retiring its upstream): loop until quiet.
    while (!retired_.empty()) {
        reaping_.swap(retired_);
        reaping_.clear();
    }
}

const timeval* EventLoop::timeout(std::chrono::milliseconds duration) {
    long long ms = duration.count();
    auto it = timeouts_.find(ms);
    if (it != timeouts_.end()) return it->second;
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    const timeval* common = event_base_init_common_timeout(base_.get(), &tv);
    if (!common) {
        // libevent allows 256 common timeouts; beyond that, a plain (heap) timeout.
        auto& plain = plain_timeouts_[ms];
        plain = tv;
        return &plain;
    }
    timeouts_.emplace(ms, common);
    return common;
}

IdleQueue& EventLoop::idleQueue(std::chrono::milliseconds timeout) {
    std::unique_ptr<IdleQueue>& queue = idle_queues_[timeout.count()];
    if (!queue) queue = std::make_unique<IdleQueue>(*this, timeout);
    return *queue;
}

void EventLoop::run() { event_base_dispatch(base_.get()); }
void EventLoop::stop() { event_base_loopbreak(base_.get()); }

void addTimer(EventLoop& loop, event* ev, std::chrono::milliseconds duration) {
    event_add(ev, loop.timeout(duration));
}

void addTimerOnce(event* ev, std::chrono::milliseconds duration) {
    long long ms = duration.count() < 0 ? 0 : duration.count();
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    event_add(ev, &tv);
}

}  // namespace portico::net
