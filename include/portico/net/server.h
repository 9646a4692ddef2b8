#pragma once
// The process: opens the listeners, starts one Worker per thread, and turns signals into
// actions (SIGTERM/SIGINT: graceful stop; SIGUSR1: reopen the access log).

#include <memory>
#include <string>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"
#include "portico/net/event_loop.h"

namespace portico::observe {
class AccessSink;
}
namespace portico::handlers {
class PubSubRegistry;
}

namespace portico::net {

class Worker;
struct Snapshot;

class Server {
public:
    explicit Server(std::shared_ptr<const config::Config> config);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Runs until a stop signal and every worker has finished. Returns the exit code.
    int run();

private:
    bool openListeners(unsigned workers, std::vector<std::vector<core::UniqueFd>>& per_worker);
    void stop();
    static void onSignal(int signal, short, void* arg);

    EventLoop loop_;  // the main thread's loop: signals only
    std::shared_ptr<const Snapshot> snapshot_;
    std::shared_ptr<observe::AccessSink> access_sink_;
    std::shared_ptr<handlers::PubSubRegistry> pubsub_;  // channels span every worker
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<core::EventPtr> signal_events_;
    bool stopping_ = false;
};

// Number of worker threads for `workers` (0 = one per CPU this process may run on).
unsigned effectiveWorkerCount(unsigned workers);

}  // namespace portico::net
