#include "portico/net/server.h"

#include <csignal>
#include <event2/event.h>
#include <pthread.h>
#include <sched.h>
#include <thread>

#include "portico/core/log.h"
#include "portico/handlers/pubsub.h"
#include "portico/net/listen_socket.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"
#include "portico/observe/access_log.h"

namespace portico::net {

unsigned effectiveWorkerCount(unsigned workers) {
    if (workers > 0) return workers;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
    unsigned n = std::thread::hardware_concurrency();
    return n ? n : 1;
}

Server::Server(std::shared_ptr<const config::Config> config)
    : snapshot_(std::make_shared<Snapshot>(std::move(config))), pubsub_(std::make_shared<handlers::PubSubRegistry>()) {}

Server::~Server() = default;

bool Server::openListeners(unsigned workers, std::vector<std::vector<core::UniqueFd>>& per_worker) {
    per_worker.resize(workers);
    const auto& config = *snapshot_->config;
    for (const auto& listener : config.listeners) {
        std::uint16_t port = 0;
        for (unsigned w = 0; w < workers; ++w) {
            std::string error;
            std::uint16_t bound = 0;
            core::UniqueFd fd = openListenSocket(listener.address, port, bound, error);
            if (!fd) {
                LOG_ERROR("%s", error.c_str());
                return false;
            }
            port = bound;  // port 0: the kernel chose one; the other workers share it
            per_worker[w].push_back(std::move(fd));
        }
        std::string host = listener.address.host.empty() ? "*" : listener.address.host;
        if (host.find(':') != std::string::npos) host = "[" + host + "]";
        LOG_INFO("listening on %s:%u", host.c_str(), port);
    }
    return true;
}

int Server::run() {
    const auto& config = *snapshot_->config;
    core::setLogLevel(static_cast<core::LogLevel>(config.log.level));
    std::string error;
    access_sink_ = observe::AccessSink::open(config.log, error);
    if (!access_sink_) {
        LOG_ERROR("%s", error.c_str());
        return 1;
    }
    // Signal handlers first, so that a stop sent as soon as the ports are announced is handled;
    // then the signals are blocked while workers start (they inherit the mask: only this thread
    // takes signals) and unblocked again.
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
        signal_events_.emplace_back(evsignal_new(loop_.base(), s, &Server::onSignal, this));
        event_add(signal_events_.back().get(), nullptr);
    }
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    unsigned workers = effectiveWorkerCount(config.workers);
    std::vector<std::vector<core::UniqueFd>> listen_fds;
    if (!openListeners(workers, listen_fds)) return 1;
    std::size_t per_worker_limit = (config.limits.max_connections + workers - 1) / workers;
    for (unsigned w = 0; w < workers; ++w)
        workers_.push_back(std::make_unique<Worker>(w, snapshot_, access_sink_, pubsub_, std::move(listen_fds[w]),
                                                    per_worker_limit));
    for (auto& worker : workers_) worker->start();
    pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
    LOG_INFO("portico %s started with %u worker%s", PORTICO_VERSION, workers, workers == 1 ? "" : "s");

    loop_.run();
    for (auto& worker : workers_) worker->join();
    workers_.clear();
    LOG_INFO("stopped");
    return 0;
}

void Server::stop() {
    if (stopping_) return;
    stopping_ = true;
    LOG_INFO("stopping: finishing requests in flight (up to %lld ms)",
             static_cast<long long>(snapshot_->config->shutdown_timeout.count()));
    for (auto& worker : workers_) worker->requestStop();
    signal_events_.clear();  // nothing left to wait for on this loop once workers are told
    loop_.stop();
}

void Server::onSignal(int signal, short, void* arg) {
    auto* self = static_cast<Server*>(arg);
    switch (signal) {
        case SIGTERM:
        case SIGINT:
            self->stop();
            break;
        case SIGUSR1:
            LOG_INFO("reopening the access log");
            if (!self->access_sink_->reopen()) LOG_ERROR("cannot reopen the access log");
            break;
        case SIGHUP:
            LOG_WARN("SIGHUP: live reload is not implemented yet; configuration unchanged");
            break;
        default:
            break;
    }
}

}  // namespace portico::net
