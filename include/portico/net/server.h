// SPDX-License-Identifier: Apache-2.0
#pragma once
// The process: opens the listeners, starts one Worker per thread, and turns signals into
// actions (SIGTERM/SIGINT/SIGQUIT: graceful stop, a second one during it: stop now; SIGHUP:
// reload; SIGUSR1: reopen the access log).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/net/event_loop.h"
#include "portico/net/service_notices.h"
#include "portico/net/snapshot.h"
#include "portico/net/wakeup.h"
#include "portico/pubsub/backplane.h"

namespace portico::observe {
class AccessSink;
class Metrics;
}
namespace portico::pubsub {
class PubSubRegistry;
}

namespace portico::net {

class Worker;
class ConnectionBudget;
class IpLimits;
struct Snapshot;

class Server {
public:
    // `config_path` is re-read on SIGHUP.
    Server(std::string config_path, std::shared_ptr<const config::Config> config, TlsContexts tls);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Runs until a stop signal and every worker has finished. Returns the exit code.
    int run();

private:
    // Opens one socket per worker for `listener`; empty on failure (logged), also when another
    // process listens on its port already (net::portFree), unless a socket of this process still
    // listens there (net::listensHere: a listener removed by one reload, re-added by the next).
    // `port` is the one bound (the kernel's choice for port 0). Logging it is the caller's: the
    // listeners are opened ports-first (listenerBindOrder) and named in the config's order.
    std::vector<core::UniqueFd> openListener(const config::Listener& listener, std::uint16_t& port);
    // False (logged) when fewer descriptors are free than `workers` need to start.
    static bool startDescriptorsFree(const config::Config& config, unsigned workers);
    // The factory of every worker's pub/sub backplane; false (logged) when it cannot be made.
    static bool ioUringAllowed(const config::Config& config, unsigned rings);
    bool makeBackplane(const config::BackplaneSettings& settings, pubsub::BackplaneFactory& factory);
    void stop();
    void reload();
    static void onSignal(int signal, short, void* arg);
    // The SIGHUP taken in this loop pass, after every other signal of the pass: a stop that came
    // with it wins.
    static void onReloadDue(int, short, void* arg);
    // A worker applied a reload or ended: announces the reloads every worker has applied, and
    // ends the loop once a stop has every worker's thread ended.
    void onWorkerProgress();
    // The listener on port 0 of the running configuration (its address as configured) whose
    // port the kernel chose is the one `listener` names, on an address that overlaps; empty if
    // none. Our sockets share ports through SO_REUSEPORT, so a new listener there would join it
    // and the two would be one.
    std::string kernelPortTaken(const config::Listener& listener) const;
    // A reload every worker has applied: counted, logged, told to systemd.
    void announceReload(const Snapshot& applied);

    EventLoop loop_;  // the main thread's loop: signals and the workers' progress
    std::optional<Wakeup> progress_;  // Worker::reportProgressTo; made once the descriptors are counted
    // What systemd is told; holds the reloads handed to the workers and not announced yet.
    ServiceNotices notices_;
    std::string config_path_;
    std::shared_ptr<const Snapshot> snapshot_;
    unsigned worker_count_ = 1;
    std::uint64_t reloads_ok_ = 0;
    std::uint64_t reloads_failed_ = 0;
    std::shared_ptr<observe::AccessSink> access_sink_;
    std::shared_ptr<pubsub::PubSubRegistry> pubsub_;  // channels span every worker
    std::shared_ptr<observe::Metrics> metrics_;
    std::shared_ptr<IpLimits> ip_limits_;  // per-client-address counts, across every worker
    std::shared_ptr<ConnectionBudget> budget_;  // limits.max_connections, across every worker
    std::vector<std::unique_ptr<Worker>> workers_;
    // The ports the kernel gave the listeners on port 0, by their address as configured
    // ("127.0.0.1:0"): a reload may not add a listener that names one (kernelPortTaken).
    std::map<std::string, std::uint16_t> kernel_ports_;
    std::vector<core::EventPtr> signal_events_;
    core::EventPtr reload_due_;  // onReloadDue, made active by a SIGHUP
    bool stopping_ = false;
};

// Number of worker threads for `workers` (0 = one per CPU this process may run on).
unsigned effectiveWorkerCount(unsigned workers);

}  // namespace portico::net
