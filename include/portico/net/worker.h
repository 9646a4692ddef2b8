// SPDX-License-Identifier: Apache-2.0
#pragma once
// A worker thread: its own event loop, its own SO_REUSEPORT listening sockets, the connections
// it accepted and its view of the running configuration. Nothing on the data path is shared
// with other workers but the count of open connections (net::ConnectionBudget, one atomic);
// the main thread talks to a worker only through requestStop() and requestReload(), which
// leave their request under a lock and wake the loop (net::Wakeup).

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
#include <vector>

#include "portico/core/handles.h"
#include "portico/core/inline_event.h"
#include "portico/core/log_throttle.h"
#include "portico/net/connection_budget.h"
#include "portico/net/event_loop.h"
#include "portico/net/ip_limits.h"
#include "portico/net/wakeup.h"
#include "portico/handlers/pubsub.h"
#include "portico/observe/access_log.h"
#include "portico/observe/metrics.h"

namespace portico::net {
namespace uring {
class Ring;
}

class ClientConnection;
class HttpPhasePool;
class WorkerSnapshot;
struct Snapshot;

class Worker {
public:
    // `listen_fds` are bound, listening sockets (ownership taken), one per configured listener.
    // `backplane` makes this worker's pub/sub backplane on its loop.
    // `budget` counts the process's client connections against limits.max_connections, and
    // `ip_limits` is the process-wide per-client-address table (both shared by every worker).
    // Made on the main thread before any worker starts (the budget learns of its wakeup).
    Worker(unsigned index, std::shared_ptr<const Snapshot> snapshot, std::shared_ptr<observe::AccessSink> sink,
           const pubsub::BackplaneFactory& backplane, std::shared_ptr<observe::Metrics> metrics,
           std::vector<core::UniqueFd> listen_fds, std::shared_ptr<ConnectionBudget> budget,
           std::shared_ptr<IpLimits> ip_limits);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Starts the worker's thread; under `io_uring: on` it first makes the worker's ring, and
    // false (with `why`, the thread ended) says it could not: the start fails.
    bool start(std::string& why);
    void join();
    // Thread-safe: stop accepting, let connections finish for up to shutdown_timeout.
    void requestStop();
    // Thread-safe: a stop that is under way ends now, as at shutdown_timeout: what is left is
    // closed, the access log flushed, the thread ends (an operator's second stop signal).
    void requestStopNow();
    // Before start(): `progress` (the main thread's) is notified when this worker has applied a
    // reload (appliedGeneration) and when its thread has ended (finished).
    void reportProgressTo(Wakeup* progress) { progress_ = progress; }
    // Thread-safe: the generation of the configuration this worker's new connections use.
    std::uint64_t appliedGeneration() const { return applied_generation_; }
    // Thread-safe: the thread's loop has ended and its connections are closed.
    bool finished() const { return finished_; }
    // At `deadline`, upgraded connections of generations below `generation` are closed
    // (reload_drain_timeout after the reload that made generation `generation`).
    struct DrainDeadline {
        std::uint64_t generation;
        std::chrono::steady_clock::time_point deadline;
    };
    // What one reload hands a worker.
    struct Reload {
        std::shared_ptr<const Snapshot> snapshot;
        std::shared_ptr<observe::AccessSink> sink;      // null: the access log stays as it is
        std::map<std::string, core::UniqueFd> new_fds;  // by address key: listeners it added
        // Its reload_drain_timeout's deadline (set by requestReload, from when it was asked
        // for), and those of the reloads folded into it: each holds.
        std::vector<DrainDeadline> drains = {};

        // Folds in `older`, a reload this worker had not applied yet when this one came. The
        // newer snapshot wins, but the server opens a new listener's sockets and a new
        // access log once, in the reload that added them: those of `older` are kept unless this
        // reload brings its own. The drain deadlines of both are kept.
        void foldIn(Reload older);
    };
    // Thread-safe: new connections use `reload.snapshot` from now on; listeners are re-laid out
    // in its order, reusing the sockets of addresses that stay, taking `new_fds` for those that
    // are new and closing those that are gone (what their queues hold is accepted first, under
    // the configuration it came in with); `sink` replaces the access log sink; accepting pauses
    // or resumes at the budget's limit (the server set it before).
    void requestReload(Reload reload);

    // The configuration new requests use.
    const std::shared_ptr<WorkerSnapshot>& current() const { return current_; }

    // How often the messages and bytes of open WebSocket sessions reach the metrics: often
    // enough that rates read once a second (the dashboard) are smooth, cheap at 100k sessions.
    static constexpr std::chrono::milliseconds kSessionCountInterval{250};

    unsigned index() const { return index_; }
    EventLoop& loop() { return loop_; }
    observe::AccessLog& accessLog() { return access_log_; }
    handlers::PubSubHub& pubsub() { return *pubsub_; }
    observe::Metrics& metrics() { return *metrics_; }
    observe::WorkerStats& stats() { return stats_; }
    bool stopping() const { return stopping_; }
    std::size_t connectionCount() const { return connections_.size(); }
    IpLimits& ipLimits() { return *ip_limits_; }
    // The HTTP phases connections gave back (client_connection.h).
    HttpPhasePool& httpPhases() { return *http_phases_; }
    // Counts a refusal by a per-client-address limit and logs it (at most one line per
    // kRefusalLogInterval per worker, with the number not logged).
    void noteRefusal(IpLimits::Verdict verdict, const std::string& client);

    // The ring this worker's plaintext sockets use (config `io_uring`: HTTP/1.1 client and
    // upstream connections, WebSocket tunnels), or null: epoll. Made on first
    // use under auto/on (at the worker's start, or after the reload that turned it on); a
    // refusal is logged once and the worker stays on epoll (at the start, `refused` gets it
    // instead under `on`: Worker::start fails).
    uring::Ring* ioRing(std::string* refused = nullptr);
    // Thread-safe: this worker tried to make its ring and could not (it stays on epoll), so a
    // reload to `io_uring: on` fails.
    bool ringRefused() const { return ring_refused_; }

    // Called by a connection from finish(): the worker defers its deletion.
    void onConnectionFinished(ClientConnection* connection);

private:
    struct ListenerSlot;
    void run();
    // One connection from `slot`'s queue, within the budget; false when none was taken (empty
    // queue, the limit, an accept error).
    bool acceptOne(const ListenerSlot& slot);
    void accept(int fd, const sockaddr* peer, const ListenerSlot& slot);
    void applyReload();
    bool addListener(std::size_t index, std::string key, core::UniqueFd fd);
    static void onDrainOld(int, short, void* arg);
    static void onSessionCountTimer(int, short, void* arg);
    void beginStop();
    void pauseAccepting();
    void resumeAccepting();
    static void onAcceptable(int fd, short, void* arg);
    static void onAcceptBackoffEnd(int, short, void* arg);
    void acceptFailed(int error);
    // Answers a connection over limits.per_ip_connections: 429 and close (plain listeners).
    void refuse(core::UniqueFd fd, const ListenerSlot& slot);
    // Enables or disables every listener: they accept while !paused and not backing off.
    void applyListenState();
    // On the worker's thread after requestStop() or requestReload().
    void onControl();
    static void onStopTimeout(int, short, void* arg);
    // Ends the loop with connections still open (run() closes them): `why` is logged.
    void stopNow(const char* why);

    // First, so that it outlives connections the loop deletes late: their leases release into it.
    std::shared_ptr<IpLimits> ip_limits_;
    unsigned index_;
    bool ring_tried_ = false;  // ioRing() tried to make the loop's ring (once per worker)
    std::atomic<bool> ring_refused_{false};
    // Before loop_, so that it outlives connections the loop deletes late (~Worker closes it
    // while the loop is alive: its spares' events belong to the loop).
    std::unique_ptr<HttpPhasePool> http_phases_;
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
        std::string key;  // the configured address, e.g. "127.0.0.1:8080"; matched by reloads
        // The metrics label is the bound address ("127.0.0.1:41234" for "127.0.0.1:0"), so that
        // two listeners on port 0 get a series each.
        observe::ListenerStats* stats;
        core::UniqueFd fd;     // the listening socket
        core::EventPtr event;  // readable: a connection waits (freed before the socket closes)
        bool enabled = false;
    };
    std::vector<std::unique_ptr<ListenerSlot>> listeners_;
    struct Connected {
        std::unique_ptr<ClientConnection> connection;
        IpLimits::Lease lease;  // its count under limits.per_ip_connections, released with it
    };
    // In no order: a finished connection's place takes the last one (its workerSlot() follows).
    // A vector, not a map keyed by the pointer: no node to allocate per connection.
    std::vector<Connected> connections_;
    std::shared_ptr<ConnectionBudget> budget_;
    // requestStop() and requestReload() wake the loop through it, and the budget when a place
    // came free at the limit.
    Wakeup control_;
    core::InlineEvent stop_timer_;
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> stop_now_requested_{false};
    Wakeup* progress_ = nullptr;  // reportProgressTo
    std::atomic<std::uint64_t> applied_generation_{0};
    std::atomic<bool> finished_{false};
    std::mutex reload_mutex_;
    std::optional<Reload> pending_reload_;
    core::InlineEvent drain_old_timer_;  // reload_drain_timeout: closes older WebSockets
    core::InlineEvent session_count_timer_;  // folds open sessions' counts into the metrics
    // One deadline per reload that asked for a drain, the earliest first: a later reload never
    // postpones an earlier one, nor does an earlier, longer one postpone a later, shorter one.
    std::deque<DrainDeadline> drains_;
    void armDrainTimer();
    std::thread thread_;
    bool stopping_ = false;
    bool accepting_ = true;  // false while limits.max_connections are open (the budget is full)
    // accept() failed (out of descriptors, nginx's EMFILE case): every listener is disabled for
    // accept_backoff_, which doubles while the failures go on, up to kAcceptBackoffMax.
    static constexpr std::chrono::milliseconds kAcceptBackoffMin{100};
    static constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};
    static constexpr std::chrono::milliseconds kRefusalLogInterval{5000};
    core::InlineEvent accept_backoff_timer_;
    std::chrono::milliseconds accept_backoff_ = kAcceptBackoffMin;
    bool backing_off_ = false;
    std::uint64_t accept_failures_ = 0;  // since the last successful accept
    core::LogThrottle accept_error_log_{kRefusalLogInterval};
    core::LogThrottle accept_recovery_log_{kRefusalLogInterval};
    core::LogThrottle refusal_log_{kRefusalLogInterval};
    core::LogThrottle limit_log_{kRefusalLogInterval};  // "accepting paused" at the limit
};

}  // namespace portico::net
