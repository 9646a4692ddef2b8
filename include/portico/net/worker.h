#pragma once
// A worker thread: its own event loop, its own SO_REUSEPORT listening sockets, the connections
// it accepted and its view of the running configuration. Nothing on the data path is shared
// with other workers; the main thread talks to a worker only through requestStop().

#include <atomic>
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

namespace portico::net {

class ClientConnection;
class WorkerSnapshot;
struct Snapshot;

class Worker {
public:
    // `listen_fds` are bound, listening sockets this worker accepts on (ownership taken).
    Worker(unsigned index, std::shared_ptr<const Snapshot> snapshot, std::shared_ptr<observe::AccessSink> sink,
           std::shared_ptr<handlers::PubSubRegistry> pubsub, std::vector<core::UniqueFd> listen_fds,
           std::size_t max_connections);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void start();
    void join();
    // Thread-safe: stop accepting, let connections finish for up to shutdown_timeout.
    void requestStop();

    unsigned index() const { return index_; }
    EventLoop& loop() { return loop_; }
    observe::AccessLog& accessLog() { return access_log_; }
    handlers::PubSubHub& pubsub() { return *pubsub_; }
    bool stopping() const { return stopping_; }
    std::size_t connectionCount() const { return connections_.size(); }

    // Called by a connection from finish(): the worker defers its deletion.
    void onConnectionFinished(ClientConnection* connection);

private:
    void run();
    void accept(int fd, const sockaddr* peer, std::size_t listener_index);
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
    // One per configured listener, in configuration order (the index is the config's).
    struct ListenerSlot {
        Worker* worker;
        std::size_t index;
        core::ListenerPtr listener;
    };
    std::vector<std::unique_ptr<ListenerSlot>> listeners_;
    std::unordered_map<ClientConnection*, std::unique_ptr<ClientConnection>> connections_;
    std::size_t max_connections_;
    core::EventPtr control_event_;
    core::EventPtr stop_timer_;
    std::atomic<bool> stop_requested_{false};
    std::thread thread_;
    bool stopping_ = false;
    bool accepting_ = true;
};

}  // namespace portico::net
