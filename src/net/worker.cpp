// SPDX-License-Identifier: Apache-2.0
#include "portico/net/worker.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <stdexcept>
#include <string>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "portico/core/log.h"
#include "portico/http/simple_response.h"
#include "portico/net/client_connection.h"
#include "portico/net/lingering_close.h"
#include "portico/net/listen_socket.h"
#include "portico/net/snapshot.h"
#include "portico/net/stream.h"
#include "portico/net/uring/ring.h"

namespace portico::net {

Worker::Worker(unsigned index, std::shared_ptr<const Snapshot> snapshot, std::shared_ptr<observe::AccessSink> sink,
               const pubsub::BackplaneFactory& backplane, std::shared_ptr<observe::Metrics> metrics,
               std::vector<core::UniqueFd> listen_fds, std::shared_ptr<ConnectionBudget> budget,
               std::shared_ptr<IpLimits> ip_limits)
    : ip_limits_(std::move(ip_limits)),
      index_(index),
      snapshot_(std::move(snapshot)),
      access_log_(loop_, std::move(sink)),
      pubsub_(std::make_unique<handlers::PubSubHub>(loop_, backplane(loop_))),
      metrics_(std::move(metrics)),
      stats_(metrics_->addWorker()),
      budget_(std::move(budget)),
      control_(loop_, [this] { onControl(); }),
      stop_timer_(loop_.base(), -1, 0, &Worker::onStopTimeout, this) {
    http_phases_ = std::make_unique<HttpPhasePool>(loop_);
    current_ = std::make_shared<WorkerSnapshot>(loop_, snapshot_, stats_);
    drain_old_timer_.assign(loop_.base(), -1, 0, &Worker::onDrainOld, this);
    accept_backoff_timer_.assign(loop_.base(), -1, 0, &Worker::onAcceptBackoffEnd, this);
    session_count_timer_.assign(loop_.base(), -1, EV_PERSIST, &Worker::onSessionCountTimer, this);
    addTimer(loop_, session_count_timer_.get(), kSessionCountInterval);
    const std::vector<std::string> keys = listenerKeys(snapshot_->config->listeners);
    for (std::size_t i = 0; i < listen_fds.size(); ++i) {
        const std::string& key = keys[i];
        if (!addListener(i, key, std::move(listen_fds[i])))  // start-up: main reports it, exit 1
            throw std::runtime_error("cannot accept on " + key + ": no memory for its event");
    }
    applied_generation_ = snapshot_->generation;
    budget_->watch(&control_);  // last: a worker whose construction failed is never woken
}

Worker::~Worker() {
    connections_.clear();
    listeners_.clear();
    http_phases_->close();
}

bool Worker::addListener(std::size_t index, std::string key, core::UniqueFd fd) {
    config::HostPort bound = snapshot_->config->listeners[index].address;
    bound.port = boundPort(fd.get());
    observe::ListenerStats* stats = &stats_.listener(bound.toString());
    auto slot = std::make_unique<ListenerSlot>(ListenerSlot{this, index, std::move(key), stats, std::move(fd), nullptr});
    slot->event.reset(event_new(loop_.base(), slot->fd.get(), EV_READ | EV_PERSIST, &Worker::onAcceptable, slot.get()));
    if (!slot->event) return false;
    listeners_.push_back(std::move(slot));
    applyListenState();
    return true;
}

void Worker::onSessionCountTimer(int, short, void* arg) {
    auto* self = static_cast<Worker*>(arg);
    for (auto& c : self->connections_) c.connection->foldSessionCounts();
}

bool Worker::start(std::string& why) {
    // The ring is made on the worker's thread (SINGLE_ISSUER: the thread that makes it is the
    // only one that may submit), so under `io_uring: on` the start waits for it: a worker without
    // one fails the start, as the probe on the main thread (Server::ioUringAllowed) cannot see
    // this worker's descriptors or a seccomp profile refusing io_uring_register.
    std::promise<std::string> made;
    std::future<std::string> refused = made.get_future();
    thread_ = std::thread([this, &made] {
        std::string ring_why;
        const bool ok = ioRing(&ring_why) || snapshot_->config->io_uring != config::IoUring::On;
        made.set_value(ok ? std::string() : ring_why);
        if (ok) run();
    });
    why = refused.get();
    return why.empty();
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::run() {
    loop_.run();
    // Whatever is left after the stop timeout is closed here, on the worker's own thread.
    std::vector<ClientConnection*> left;
    for (auto& c : connections_) left.push_back(c.connection.get());
    for (auto* c : left) c->finish("shutdown timeout");
    event_base_loop(loop_.base(), EVLOOP_NONBLOCK);  // run the deferred deletions
    connections_.clear();
    access_log_.flush();
    finished_ = true;
    if (progress_) progress_->notify();
}

void Worker::requestStop() {
    stop_requested_ = true;
    control_.notify();
}

void Worker::requestStopNow() {
    stop_now_requested_ = true;
    requestStop();
}

void Worker::Reload::foldIn(Reload older) {
    if (!sink) sink = std::move(older.sink);
    new_fds.merge(older.new_fds);  // a key this reload has too stays in `older`, closed with it
    drains.insert(drains.begin(), older.drains.begin(), older.drains.end());
}

void Worker::requestReload(Reload reload) {
    if (const auto& drain = reload.snapshot->config->reload_drain_timeout)
        reload.drains.push_back({reload.snapshot->generation, std::chrono::steady_clock::now() + *drain});
    {
        std::lock_guard lock(reload_mutex_);
        // Two reloads in a row can both reach the worker before its loop runs.
        if (pending_reload_) reload.foldIn(std::move(*pending_reload_));
        pending_reload_ = std::move(reload);
    }
    control_.notify();
}

void Worker::onControl() {
    if (stop_requested_) {
        beginStop();
        if (stop_now_requested_) stopNow("stopping now");
        return;
    }
    applyReload();
    // Told after the reload's listeners and configuration are in place: the server announces a
    // reload once every worker has applied it, so that a client connecting after the
    // announcement gets the new configuration whichever worker accepts it.
    if (applied_generation_ != snapshot_->generation) {
        applied_generation_ = snapshot_->generation;
        if (progress_) progress_->notify();
    }
    // A place came free at the limit (ConnectionBudget::give), maybe on another worker.
    if (!accepting_ && !budget_->full()) resumeAccepting();
}

void Worker::applyReload() {
    std::optional<Reload> reload;
    {
        std::lock_guard lock(reload_mutex_);
        reload.swap(pending_reload_);
    }
    if (!reload || stopping_) return;
    // A listener this reload removes (or moves to another address) still has the connections
    // the kernel completed on it queued: closing its socket would reset them. They are accepted
    // first, under the configuration they came in with (as nginx and HAProxy serve what their
    // old sockets took), within limits.max_connections (beyond it they are reset as before).
    // Connections the kernel completes on it between the last accept and the close below are
    // the only ones lost: no call runs in between.
    const auto& next_listeners = reload->snapshot->config->listeners;
    for (const auto& slot : listeners_) {
        const bool stays = std::any_of(next_listeners.begin(), next_listeners.end(),
                                       [&](const config::Listener& l) { return l.address.toString() == slot->key; });
        if (!stays)
            while (acceptOne(*slot)) {
            }
    }
    snapshot_ = std::move(reload->snapshot);
    current_ = std::make_shared<WorkerSnapshot>(loop_, snapshot_, stats_);
    if (reload->sink) access_log_.setSink(std::move(reload->sink));
    // Re-lay the listeners out in the new order; a socket whose address stays is kept, so no
    // connection attempt is refused during a reload.
    std::vector<std::unique_ptr<ListenerSlot>> old = std::move(listeners_);
    listeners_.clear();
    const std::vector<std::string> keys = listenerKeys(snapshot_->config->listeners);
    for (std::size_t i = 0; i < keys.size(); ++i) {
        const std::string& key = keys[i];
        auto kept = std::find_if(old.begin(), old.end(), [&](const auto& slot) { return slot && slot->key == key; });
        if (kept != old.end()) {
            (*kept)->index = i;
            listeners_.push_back(std::move(*kept));
            continue;
        }
        auto fd = reload->new_fds.find(key);
        if (fd != reload->new_fds.end() && !addListener(i, key, std::move(fd->second)))
            LOG_ERROR("reload: worker %u does not accept on %s: no memory for its event", index_, key.c_str());
    }
    old.clear();  // listeners removed from the configuration: their sockets close here
    if (budget_->full())
        pauseAccepting();
    else
        resumeAccepting();
    // WebSockets are never cut by a reload, unless the operator asked for it.
    for (const DrainDeadline& drain : reload->drains) {
        auto later = std::find_if(drains_.begin(), drains_.end(),
                                  [&](const DrainDeadline& d) { return d.deadline > drain.deadline; });
        drains_.insert(later, drain);
    }
    if (!reload->drains.empty()) armDrainTimer();
    ioRing();  // a reload that turned io_uring on says so now
}

uring::Ring* Worker::ioRing(std::string* refused) {
    if (snapshot_->config->io_uring == config::IoUring::Off) return nullptr;
    if (!ring_tried_) {
        ring_tried_ = true;
        std::string why;
        std::unique_ptr<uring::Ring> ring = uring::Ring::make(loop_, why);
        const bool required = snapshot_->config->io_uring == config::IoUring::On;
        if (ring)
            LOG_INFO("worker %u: plaintext WebSocket tunnels on io_uring, and HTTP/1.1 and TLS sockets", index_);
        else if (required && refused)  // the start fails with it (Worker::start)
            *refused = "worker " + std::to_string(index_) + ": " + why;
        else if (required)
            // A reload to `on` checked that every worker's ring can be made (Server::reload): only
            // something else taking descriptors meanwhile gets here.
            LOG_ERROR("worker %u: io_uring: on, but no ring (tunnels on epoll): %s", index_, why.c_str());
        else
            LOG_WARN("worker %u: io_uring unavailable, tunnels on epoll: %s", index_, why.c_str());
        ring_refused_ = !ring;
        loop_.setRing(std::move(ring));
    }
    return loop_.ring();
}

void Worker::armDrainTimer() {
    if (drains_.empty()) return;
    auto wait = drains_.front().deadline - std::chrono::steady_clock::now();
    addTimerOnce(drain_old_timer_.get(), std::max(std::chrono::milliseconds(0),
                                                  std::chrono::duration_cast<std::chrono::milliseconds>(wait)));
}

void Worker::onDrainOld(int, short, void* arg) {
    auto* self = static_cast<Worker*>(arg);
    std::uint64_t below = 0;
    const auto now = std::chrono::steady_clock::now();
    while (!self->drains_.empty() && self->drains_.front().deadline <= now) {
        below = std::max(below, self->drains_.front().generation);
        self->drains_.pop_front();
    }
    self->armDrainTimer();
    std::vector<ClientConnection*> old;
    for (auto& c : self->connections_)
        if (c.connection->generation() < below && c.connection->state() == ClientConnection::State::Upgraded)
            old.push_back(c.connection.get());
    LOG_INFO("worker %u: reload_drain_timeout: closing %zu WebSockets of older configurations", self->index_, old.size());
    for (auto* c : old) c->drain();
}

void Worker::beginStop() {
    if (stopping_) return;
    // The connections the kernel completed on our listening sockets wait in their queues:
    // closing the sockets would reset them. They are accepted first, within
    // limits.max_connections (beyond it they are reset as before), and drained with the others
    // below: each has its request read and answered, then closes (as applyReload serves the
    // queue of a listener it removes). Connections the kernel completes between the last
    // accept and the close are reset: without a program choosing the reuseport socket (eBPF),
    // Linux offers no way to stop a listening socket's queue from filling and then empty it.
    for (const auto& slot : listeners_)
        while (acceptOne(*slot)) {
        }
    stopping_ = true;
    listeners_.clear();  // closes our listening sockets: the kernel sends new clients elsewhere
    {
        // A reload not applied yet is dropped, and the sockets of the listeners it added with it:
        // left listening until ~Worker, they would complete handshakes nobody accepts.
        std::lock_guard lock(reload_mutex_);
        pending_reload_.reset();
    }
    addTimer(loop_, stop_timer_.get(), snapshot_->config->shutdown_timeout);
    std::vector<ClientConnection*> all;
    for (auto& c : connections_) all.push_back(c.connection.get());
    for (auto* c : all) c->drain();
    if (connections_.empty()) loop_.stop();
}

void Worker::onStopTimeout(int, short, void* arg) { static_cast<Worker*>(arg)->stopNow("shutdown timeout"); }

void Worker::stopNow(const char* why) {
    LOG_INFO("worker %u: %s, closing %zu connections", index_, why, connections_.size());
    loop_.stop();
}

// One connection per wakeup, as nginx without multi_accept: the listening socket is
// level-triggered, so it wakes us again while more wait, and no accept4 ends in EAGAIN. The
// socket comes non-blocking (SOCK_NONBLOCK) and with TCP_NODELAY inherited from the listening
// socket (openListenSocket): no fcntl or setsockopt per connection.
void Worker::onAcceptable(int, short, void* arg) {
    auto* slot = static_cast<ListenerSlot*>(arg);
    slot->worker->acceptOne(*slot);
}

bool Worker::acceptOne(const ListenerSlot& slot) {
    if (stopping_ || backing_off_) return false;
    // The place first: at the limit the connection stays in the kernel's queue, not accepted
    // and closed. Accepting pauses until a place comes free (here or on another worker).
    if (!budget_->take()) {
        pauseAccepting();
        return false;
    }
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const int fd = ::accept4(slot.fd.get(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        budget_->give();
        // The queue is empty, or the client gave up already: nothing to do.
        if (error == EINTR || error == ECONNABORTED) return true;  // others may wait behind it
        if (error != EAGAIN && error != EWOULDBLOCK) acceptFailed(error);
        return false;
    }
    accept(fd, reinterpret_cast<const sockaddr*>(&peer), slot);
    return true;
}

// Holds a place in the budget (acceptOne): the connection keeps it until onConnectionFinished;
// a connection not admitted gives it back here.
void Worker::accept(int fd, const sockaddr* peer, const ListenerSlot& slot) {
    core::UniqueFd owned(fd);
    if (stopping_) {
        budget_->give();
        return;
    }
    if (accept_failures_ > 0) {
        // Throttled too: at the descriptor limit, failures and successes alternate.
        std::uint64_t ignored = 0;
        if (accept_recovery_log_.allow(std::chrono::steady_clock::now(), ignored))
            LOG_WARN("worker %u: accepting again after %llu failed accept() calls", index_,
                     static_cast<unsigned long long>(accept_failures_));
        accept_failures_ = 0;
        accept_backoff_ = kAcceptBackoffMin;
    }
    slot.stats->accepted.add();
    const config::Limits& limits = current_->config().limits;
    IpLimits::Lease lease;
    if (auto key = ipKeyOf(peer, limits.per_ip_ipv6_prefix)) {
        IpLimits::Admission admission = ip_limits_->admitConnection(*key, limits);
        if (!admission.admitted()) {
            budget_->give();  // its lingering close is not counted, as before
            noteRefusal(admission.verdict, key->toString(limits.per_ip_ipv6_prefix));
            refuse(std::move(owned), slot);
            return;
        }
        if (admission.verdict == IpLimits::Verdict::Untracked) stats_.limits.untracked.add();
        lease = std::move(admission.lease);
    }
    auto connection = std::make_unique<ClientConnection>(*this, std::move(owned), peer, current_, slot.index, *slot.stats);
    ClientConnection* raw = connection.get();
    raw->setWorkerSlot(static_cast<std::uint32_t>(connections_.size()));
    connections_.push_back(Connected{std::move(connection), std::move(lease)});
    raw->start();
    if (budget_->full()) pauseAccepting();  // the listeners rest until a place comes free
}

void Worker::refuse(core::UniqueFd fd, const ListenerSlot& slot) {
    // On a TLS listener a plaintext answer would be garbage to the client, and a handshake is
    // the expensive part a client over its limit must not get: closing is the answer there.
    if (current_->snapshot().tls.listeners[slot.index]) return;
    // RFC 6585 4: 429 Too Many Requests. Written before the request is read (as HAProxy's
    // "http-request deny deny_status 429" answers, but without waiting for the request), then a
    // lingering close, so that the request the client sends meanwhile does not turn our close
    // into a reset that destroys the response.
    auto stream = std::make_unique<Stream>(loop_.base(), std::move(fd), nullptr);
    http::writeErrorResponse(stream->output(), 429, false);
    closeGracefully(loop_, std::move(stream), std::chrono::seconds(1));
}

void Worker::noteRefusal(IpLimits::Verdict verdict, const std::string& client) {
    switch (verdict) {
        case IpLimits::Verdict::OverConnections: stats_.limits.rejected_connections.add(); break;
        case IpLimits::Verdict::OverWebSockets: stats_.limits.rejected_websockets.add(); break;
        case IpLimits::Verdict::OverRate: stats_.limits.rejected_rate.add(); break;
        default: return;
    }
    std::uint64_t suppressed = 0;
    if (refusal_log_.allow(std::chrono::steady_clock::now(), suppressed))
        LOG_WARN("worker %u: client %s refused by limits.%s (%llu more refusals not logged)", index_, client.c_str(),
                 IpLimits::toString(verdict), static_cast<unsigned long long>(suppressed));
}

void Worker::acceptFailed(int error) {
    // The listening socket stays readable while a connection waits in the backlog, so retrying
    // at once spins (nginx's ngx_event_accept disables accept events on EMFILE/ENFILE for the
    // same reason). Every listener of this worker rests for accept_backoff_; the waiting clients
    // stay in the kernel's backlog and are served once descriptors are free again. Any other
    // non-transient error (EINTR, EAGAIN and ECONNABORTED are retried at the next wakeup) gets the same
    // treatment: retrying it at once could only spin too.
    // A reserve descriptor to accept-and-close the waiting client (libev's trick) is left out on
    // purpose: it turns a short shortage into refused clients, where waiting serves them.
    stats_.limits.accept_errors.add();
    ++accept_failures_;
    const std::chrono::milliseconds pause = accept_backoff_;
    accept_backoff_ = std::min(accept_backoff_ * 2, kAcceptBackoffMax);
    std::uint64_t suppressed = 0;
    if (accept_error_log_.allow(std::chrono::steady_clock::now(), suppressed))
        LOG_ERROR("worker %u: accept: %s (%llu more failures not logged): accepting paused for %lld ms", index_,
                  strerror(error), static_cast<unsigned long long>(suppressed), static_cast<long long>(pause.count()));
    backing_off_ = true;
    applyListenState();
    addTimerOnce(accept_backoff_timer_.get(), pause);
}

void Worker::onAcceptBackoffEnd(int, short, void* arg) {
    auto* self = static_cast<Worker*>(arg);
    self->backing_off_ = false;
    self->applyListenState();
}

void Worker::applyListenState() {
    const bool listen = accepting_ && !backing_off_ && !stopping_;
    for (auto& l : listeners_) {
        if (listen == l->enabled) continue;
        l->enabled = listen;
        if (listen)
            event_add(l->event.get(), nullptr);
        else
            event_del(l->event.get());
    }
}

void Worker::pauseAccepting() {
    if (!accepting_) return;
    accepting_ = false;
    std::uint64_t suppressed = 0;
    if (limit_log_.allow(std::chrono::steady_clock::now(), suppressed))
        LOG_WARN("worker %u: %zu connections open (%zu here), limits.max_connections is %zu: accepting paused "
                 "(%llu more pauses not logged)",
                 index_, budget_->open(), connections_.size(), budget_->limit(),
                 static_cast<unsigned long long>(suppressed));
    applyListenState();
}

void Worker::resumeAccepting() {
    if (accepting_ || stopping_) return;
    accepting_ = true;
    applyListenState();
}

void Worker::onConnectionFinished(ClientConnection* connection) {
    const std::uint32_t slot = connection->workerSlot();
    if (slot >= connections_.size() || connections_[slot].connection.get() != connection) return;
    loop_.deferDelete(std::move(connections_[slot].connection));
    if (slot + 1 != connections_.size()) {
        connections_[slot] = std::move(connections_.back());
        connections_[slot].connection->setWorkerSlot(slot);
    }
    connections_.pop_back();
    budget_->give();
    if (!budget_->full()) resumeAccepting();
    if (stopping_ && connections_.empty()) loop_.stop();
}

}  // namespace portico::net
