#include "portico/net/worker.h"

#include <algorithm>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>

#include "portico/core/log.h"
#include "portico/net/client_connection.h"
#include "portico/net/snapshot.h"

namespace portico::net {

Worker::Worker(unsigned index, std::shared_ptr<const Snapshot> snapshot, std::shared_ptr<observe::AccessSink> sink,
               std::shared_ptr<handlers::PubSubRegistry> pubsub, std::shared_ptr<observe::Metrics> metrics,
               std::vector<core::UniqueFd> listen_fds, std::size_t max_connections)
    : index_(index),
      snapshot_(std::move(snapshot)),
      access_log_(loop_, std::move(sink)),
      pubsub_(std::make_unique<handlers::PubSubHub>(loop_, std::move(pubsub))),
      metrics_(std::move(metrics)),
      stats_(metrics_->addWorker()),
      max_connections_(max_connections == 0 ? 1 : max_connections),
      control_event_(event_new(loop_.base(), -1, 0, &Worker::onControl, this)),
      stop_timer_(event_new(loop_.base(), -1, 0, &Worker::onStopTimeout, this)) {
    current_ = std::make_shared<WorkerSnapshot>(loop_, snapshot_, stats_);
    drain_old_timer_.reset(event_new(loop_.base(), -1, 0, &Worker::onDrainOld, this));
    for (std::size_t i = 0; i < listen_fds.size(); ++i)
        addListener(i, snapshot_->config->listeners[i].address.toString(), std::move(listen_fds[i]));
}

Worker::~Worker() {
    connections_.clear();
    listeners_.clear();
}

bool Worker::addListener(std::size_t index, std::string key, core::UniqueFd fd) {
    observe::ListenerStats* stats = &stats_.listener(key);
    auto slot = std::make_unique<ListenerSlot>(ListenerSlot{this, index, std::move(key), nullptr, stats});
    evconnlistener* l = evconnlistener_new(loop_.base(), &Worker::onAccept, slot.get(), LEV_OPT_CLOSE_ON_FREE, -1, fd.get());
    if (!l) return false;
    fd.release();
    slot->listener.reset(l);
    if (!accepting_) evconnlistener_disable(l);
    listeners_.push_back(std::move(slot));
    return true;
}

void Worker::start() {
    thread_ = std::thread([this] { run(); });
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::run() {
    loop_.run();
    // Whatever is left after the stop timeout is closed here, on the worker's own thread.
    std::vector<ClientConnection*> left;
    for (auto& [ptr, owned] : connections_) left.push_back(ptr);
    for (auto* c : left) c->finish("shutdown timeout");
    event_base_loop(loop_.base(), EVLOOP_NONBLOCK);  // run the deferred deletions
    connections_.clear();
    access_log_.flush();
}

void Worker::requestStop() {
    stop_requested_ = true;
    event_active(control_event_.get(), EV_TIMEOUT, 0);  // thread-safe: evthread_use_pthreads
}

void Worker::requestReload(std::shared_ptr<const Snapshot> snapshot, std::shared_ptr<observe::AccessSink> sink,
                           std::map<std::string, core::UniqueFd> new_fds) {
    {
        std::lock_guard lock(reload_mutex_);
        pending_reload_ = PendingReload{std::move(snapshot), std::move(sink), std::move(new_fds)};
    }
    event_active(control_event_.get(), EV_TIMEOUT, 0);
}

void Worker::onControl(int, short, void* arg) {
    auto* self = static_cast<Worker*>(arg);
    if (self->stop_requested_) {
        self->beginStop();
        return;
    }
    self->applyReload();
}

void Worker::applyReload() {
    std::optional<PendingReload> reload;
    {
        std::lock_guard lock(reload_mutex_);
        reload.swap(pending_reload_);
    }
    if (!reload || stopping_) return;
    snapshot_ = std::move(reload->snapshot);
    current_ = std::make_shared<WorkerSnapshot>(loop_, snapshot_, stats_);
    if (reload->sink) access_log_.setSink(std::move(reload->sink));
    // Re-lay the listeners out in the new order; a socket whose address stays is kept, so no
    // connection attempt is refused during a reload.
    std::vector<std::unique_ptr<ListenerSlot>> old = std::move(listeners_);
    listeners_.clear();
    const auto& listeners = snapshot_->config->listeners;
    for (std::size_t i = 0; i < listeners.size(); ++i) {
        std::string key = listeners[i].address.toString();
        auto kept = std::find_if(old.begin(), old.end(), [&](const auto& slot) { return slot && slot->key == key; });
        if (kept != old.end()) {
            (*kept)->index = i;
            listeners_.push_back(std::move(*kept));
            continue;
        }
        auto fd = reload->new_fds.find(key);
        if (fd != reload->new_fds.end()) addListener(i, key, std::move(fd->second));
    }
    old.clear();  // listeners removed from the configuration: their sockets close here
    // WebSockets are never cut by a reload, unless the operator asked for it.
    if (const auto& drain = snapshot_->config->reload_drain_timeout) {
        drains_.push_back({snapshot_->generation, std::chrono::steady_clock::now() + *drain});
        if (drains_.size() == 1) armDrainTimer();
    }
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
    for (auto& [ptr, owned] : self->connections_)
        if (ptr->generation() < below && ptr->state() == ClientConnection::State::Upgraded) old.push_back(ptr);
    LOG_INFO("worker %u: reload_drain_timeout: closing %zu WebSockets of older configurations", self->index_, old.size());
    for (auto* c : old) c->drain();
}

void Worker::beginStop() {
    if (stopping_) return;
    stopping_ = true;
    listeners_.clear();  // closes our listening sockets: the kernel sends new clients elsewhere
    addTimer(loop_, stop_timer_.get(), snapshot_->config->shutdown_timeout);
    std::vector<ClientConnection*> all;
    for (auto& [ptr, owned] : connections_) all.push_back(ptr);
    for (auto* c : all) c->drain();
    if (connections_.empty()) loop_.stop();
}

void Worker::onStopTimeout(int, short, void* arg) {
    auto* self = static_cast<Worker*>(arg);
    LOG_INFO("worker %u: shutdown timeout, closing %zu connections", self->index_, self->connections_.size());
    self->loop_.stop();
}

void Worker::onAccept(evconnlistener*, int fd, sockaddr* peer, int, void* arg) {
    auto* slot = static_cast<ListenerSlot*>(arg);
    slot->worker->accept(fd, peer, *slot);
}

void Worker::accept(int fd, const sockaddr* peer, const ListenerSlot& slot) {
    core::UniqueFd owned(fd);
    if (stopping_) return;
    slot.stats->accepted.add();
    auto connection = std::make_unique<ClientConnection>(*this, std::move(owned), peer, current_, slot.index, *slot.stats);
    ClientConnection* raw = connection.get();
    connections_.emplace(raw, std::move(connection));
    raw->start();
    if (connections_.size() >= max_connections_) pauseAccepting();
}

void Worker::pauseAccepting() {
    if (!accepting_) return;
    accepting_ = false;
    LOG_WARN("worker %u: %zu connections, the limit: accepting paused", index_, connections_.size());
    for (auto& l : listeners_) evconnlistener_disable(l->listener.get());
}

void Worker::resumeAccepting() {
    if (accepting_ || stopping_) return;
    accepting_ = true;
    for (auto& l : listeners_) evconnlistener_enable(l->listener.get());
}

void Worker::onConnectionFinished(ClientConnection* connection) {
    auto it = connections_.find(connection);
    if (it == connections_.end()) return;
    loop_.deferDelete(std::shared_ptr<ClientConnection>(std::move(it->second)));
    connections_.erase(it);
    if (connections_.size() < max_connections_) resumeAccepting();
    if (stopping_ && connections_.empty()) loop_.stop();
}

}  // namespace portico::net
