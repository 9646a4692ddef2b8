#pragma once
// A worker thread: its own event loop, its own SO_REUSEPORT listening sockets, the connections
// it accepted and its view of the running configuration. Nothing on the data path is shared
// with other workers; the main thread talks to a worker only through requestStop().

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <cstddef>
#include <memory>
#include <sys/socket.h>
#include <thread>
#include <unordered_map>
#include <vector>

#include "portico/core/handles.h"
#include "portico/net/event_loop.h"
#include "portico/handlers/pubsub.h"
#include "portico/observe/access_log.h"
#include "portico/observe/metrics.h"

namespace portico::net {

class ClientConnection;
class WorkerSnapshot;
struct Snapshot;

class Worker {
public:
    // `listen_fds` are bound, listening sockets this worker accepts on (ownership taken).
    // `listen_fds` are bound, listening sockets (ownership taken), one per configured listener.
    Worker(unsigned index, std::shared_ptr<const Snapshot> snapshot, std::shared_ptr<observe::AccessSink> sink,
           std::shared_ptr<handlers::PubSubRegistry> pubsub, std::shared_ptr<observe::Metrics> metrics,
           std::vector<core::UniqueFd> listen_fds, std::size_t max_connections);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void start();
    void join();
    // Thread-safe: stop accepting, let connections finish for up to shutdown_timeout.
    void requestStop();
    // Thread-safe: new connections use `snapshot` from now on; listeners are re-laid out in its
    // order, reusing the sockets of addresses that stay, taking `new_fds` (by address key) for
    // those that are new and closing those that are gone. `sink` replaces the access log sink.
    void requestReload(std::shared_ptr<const Snapshot> snapshot, std::shared_ptr<observe::AccessSink> sink,
                       std::map<std::string, core::UniqueFd> new_fds);

    // The configuration new requests use.
    const std::shared_ptr<WorkerSnapshot>& current() const { return current_; }

    unsigned index() const { return index_; }
    EventLoop& loop() { return loop_; }
    observe::AccessLog& accessLog() { return access_log_; }
    handlers::PubSubHub& pubsub() { return *pubsub_; }
    observe::Metrics& metrics() { return *metrics_; }
    observe::WorkerStats& stats() { return stats_; }
    bool stopping() const { return stopping_; }
    std::size_t connectionCount() const { return connections_.size(); }

    // Called by a connection from finish(): the worker defers its deletion.
    void onConnectionFinished(ClientConnection* connection);

private:
    struct ListenerSlot;
    void run();
    void accept(int fd, const sockaddr* peer, const ListenerSlot& slot);
    void applyReload();
    bool addListener(std::size_t index, std::string key, core::UniqueFd fd);
    static void onDrainOld(int, short, void* arg);
    void beginStop();
    void pauseAccepting();
    void resumeAccepting();
    static void onAccept(evconnlistener* listener, int fd, sockaddr* peer, int length, void* arg);
    static void onControl(int, short, void* arg);
    static void onStopTimeout(int, short, void* arg);

    unsigned index_;
    EventLoop loop_;
    std::shared_ptr<const Snapshot> snapshot_;
    std::shared_ptr<WorkerSnapshot> current_;
    observe::AccessLog access_log_;
    std::unique_ptr<handlers::PubSubHub> pubsub_;
    std::shared_ptr<observe::Metrics> metrics_;
    observe::WorkerStats& stats_;
    // One per configured listener, in configuration order (the index is the config's).
    struct ListenerSlot {
        Worker* worker;
        std::size_t index;
        std::string key;  // the configured address, e.g. "127.0.0.1:8080"
        core::ListenerPtr listener;
        observe::ListenerStats* stats;
    };
    std::vector<std::unique_ptr<ListenerSlot>> listeners_;
    std::unordered_map<ClientConnection*, std::unique_ptr<ClientConnection>> connections_;
    std::size_t max_connections_;
    core::EventPtr control_event_;
    core::EventPtr stop_timer_;
    std::atomic<bool> stop_requested_{false};
    struct PendingReload {
        std::shared_ptr<const Snapshot> snapshot;
        std::shared_ptr<observe::AccessSink> sink;
        std::map<std::string, core::UniqueFd> new_fds;
    };
    std::mutex reload_mutex_;
    std::optional<PendingReload> pending_reload_;
    core::EventPtr drain_old_timer_;  // reload_drain_timeout: closes older WebSockets
    // One deadline per reload that asked for a drain: at `deadline`, upgraded connections of
    // generations below `generation` are closed. A later reload never postpones an earlier one.
    struct DrainDeadline {
        std::uint64_t generation;
        std::chrono::steady_clock::time_point deadline;
    };
    std::deque<DrainDeadline> drains_;
    void armDrainTimer();
    std::thread thread_;
    bool stopping_ = false;
    bool accepting_ = true;
};

}  // namespace portico::net
