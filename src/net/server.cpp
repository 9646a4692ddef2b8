// SPDX-License-Identifier: Apache-2.0
#include "portico/net/server.h"
#include "portico/net/uring/ring.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <systemd/sd-daemon.h>
#include <event2/event.h>
#include <pthread.h>
#include <sched.h>
#include <thread>

#include "portico/config/loader.h"
#include "portico/core/log.h"
#include "portico/config/redis_url.h"
#include "portico/handlers/pubsub.h"
#include "portico/net/fd_limit.h"
#include "portico/net/ip_limits.h"
#include "portico/net/listen_socket.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"
#include "portico/observe/access_log.h"
#include "portico/observe/metrics.h"
#include "portico/pubsub/local_backplane.h"
#include "portico/pubsub/redis_backplane.h"
#include "portico/tls/file_check.h"

namespace portico::net {

namespace {
double unixTime(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}
// Listeners with a port of their own are opened before those on port 0: the kernel gives port 0
// a port no socket holds, so it cannot hand out one that a later listener names (our sockets
// share ports with SO_REUSEPORT, so a listener named after it would then join the same port,
// and two listeners would be one).
std::vector<std::size_t> listenerBindOrder(const std::vector<config::Listener>& listeners) {
    std::vector<std::size_t> order(listeners.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_partition(order.begin(), order.end(), [&](std::size_t i) { return listeners[i].address.port != 0; });
    return order;
}

void logListening(const config::Listener& listener, std::uint16_t port) {
    std::string host = listener.address.host.empty() ? "*" : listener.address.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    LOG_INFO("listening on %s:%u", host.c_str(), port);
}
}  // namespace

unsigned effectiveWorkerCount(unsigned workers) {
    if (workers > 0) return workers;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
    unsigned n = std::thread::hardware_concurrency();
    return n ? n : 1;
}

Server::Server(std::string config_path, std::shared_ptr<const config::Config> config, TlsContexts tls)
    : notices_([](const std::string& message) { sd_notify(0, message.c_str()); }),
      config_path_(std::move(config_path)),
      snapshot_(std::make_shared<Snapshot>(std::move(config), std::move(tls))),
      pubsub_(std::make_shared<pubsub::PubSubRegistry>(snapshot_->config->pubsub)),
      metrics_(std::make_shared<observe::Metrics>()),
      ip_limits_(std::make_shared<IpLimits>()) {
    metrics_->setConfig(config_path_, unixTime(snapshot_->loaded_at), 0);
    metrics_->setIpTableSize([table = std::weak_ptr<IpLimits>(ip_limits_)] {
        auto t = table.lock();
        return t ? t->size() : 0;
    });
}

Server::~Server() = default;

// Every worker's backplane shares the process-wide registry (local bookkeeping, and the
// channels themselves without Redis). With Redis, each worker makes its own connections.
bool Server::makeBackplane(const config::BackplaneSettings& settings, pubsub::BackplaneFactory& factory) {
    if (!settings.enabled) {
        factory = [registry = pubsub_](EventLoop& loop) { return std::make_unique<pubsub::LocalBackplane>(loop, registry); };
        return true;
    }
    std::string password = settings.address.password;
    if (password.empty() && !settings.password_file.empty()) {
        std::ifstream file(settings.password_file);
        if (!file || !std::getline(file, password)) {
            LOG_ERROR("pubsub.backplane.password_file: cannot read %s", settings.password_file.c_str());
            return false;
        }
    }
    auto state = std::make_shared<pubsub::RedisBackplaneState>(config::redactRedisUrl(settings.redis));
    factory = [registry = pubsub_, state, settings, password](EventLoop& loop) {
        return std::make_unique<pubsub::RedisBackplane>(loop, settings, password, registry, state);
    };
    LOG_INFO("pubsub backplane: redis %s (key prefix %s)", config::redactRedisUrl(settings.redis).c_str(),
             settings.key_prefix.c_str());
    return true;
}

std::vector<core::UniqueFd> Server::openListener(const config::Listener& listener, std::uint16_t& port) {
    std::vector<core::UniqueFd> fds;
    std::string error;
    const std::uint16_t configured = listener.address.port;
    if (configured != 0 && !listensHere(configured) && !portFree(listener.address, error)) {
        LOG_ERROR("%s", error.c_str());
        return {};
    }
    port = 0;
    for (unsigned w = 0; w < worker_count_; ++w) {
        std::uint16_t bound = 0;
        core::UniqueFd fd = openListenSocket(listener.address, port, bound, error);
        if (!fd) {
            LOG_ERROR("%s", error.c_str());
            return {};
        }
        port = bound;  // port 0: the kernel chose one; the other workers share it
        fds.push_back(std::move(fd));
    }
    return fds;
}

// Everything the workers make at start-up, asked for at once before any of it is made: too low an
// open-file limit stops the start here with one message, every descriptor still free (for the
// log, and the sanitizers' own checks), rather than at whichever socket or eventfd ran out.
bool Server::startDescriptorsFree(const config::Config& config, unsigned workers) {
    const bool ring = config.io_uring != config::IoUring::Off;
    const unsigned per_worker = static_cast<unsigned>(config.listeners.size()) + kWorkerStartDescriptors +
                                (ring ? kWorkerRingDescriptors : 0);
    const unsigned needed = workers * per_worker + 1;  // and the main thread's wakeup (progress_)
    const unsigned free = freeDescriptors(needed);
    if (free >= needed) return true;
    LOG_ERROR("too few file descriptors to start %u worker%s: %u needed (%u each: a socket per listener, an event "
              "loop and two wakeups%s; one more to hear from them), %u free under the open-file limit %llu: raise it "
              "(ulimit -n, systemd LimitNOFILE=) or lower workers",
              workers, workers == 1 ? "" : "s", needed, per_worker, ring ? ", an io_uring and its eventfd" : "", free,
              static_cast<unsigned long long>(raiseFdLimit()));  // main raised it already: this reads it
    return false;
}

// `io_uring: on` asks for a ring: without one the start (or the reload) fails, saying why. The
// start probes one (each worker then makes its own and fails the start without it: Worker::start);
// a reload, whose workers make theirs after it applied, probes `rings` held at once.
bool Server::ioUringAllowed(const config::Config& config, unsigned rings) {
    if (config.io_uring != config::IoUring::On) return true;
    std::string why;
    if (uring::Ring::available(rings, why)) return true;
    LOG_ERROR("%s: io_uring: on, but this process cannot make a ring: %s (use auto or off)",
              config.file.c_str(), why.c_str());
    return false;
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
    if (!ioUringAllowed(config, 1)) return 1;
    // Signal handlers first, so that a stop sent as soon as the ports are announced is handled;
    // then the signals are blocked while workers start (they inherit the mask: only this thread
    // takes signals) and unblocked again.
    for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1}) {
        core::EventPtr watch(evsignal_new(loop_.base(), s, &Server::onSignal, this));
        if (!watch || event_add(watch.get(), nullptr) != 0) {
            LOG_ERROR("cannot watch SIG%s: no memory for its event", sigabbrev_np(s));
            return 1;
        }
        signal_events_.push_back(std::move(watch));
    }
    reload_due_.reset(event_new(loop_.base(), -1, 0, &Server::onReloadDue, this));
    if (!reload_due_) {
        LOG_ERROR("cannot watch SIGHUP: no memory for its event");
        return 1;
    }
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1}) sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    unsigned workers = worker_count_ = effectiveWorkerCount(config.workers);
    if (!startDescriptorsFree(config, workers)) return 1;
    progress_.emplace(loop_, [this] { onWorkerProgress(); });  // counted by startDescriptorsFree
    std::vector<std::vector<core::UniqueFd>> listen_fds(workers);
    for (auto& fds : listen_fds) fds.resize(config.listeners.size());
    std::vector<std::uint16_t> ports(config.listeners.size());
    for (std::size_t i : listenerBindOrder(config.listeners)) {
        auto fds = openListener(config.listeners[i], ports[i]);
        if (fds.empty()) return 1;
        for (unsigned w = 0; w < workers; ++w) listen_fds[w][i] = std::move(fds[w]);
    }
    const std::vector<std::string> keys = listenerKeys(config.listeners);
    for (std::size_t i = 0; i < ports.size(); ++i) {
        logListening(config.listeners[i], ports[i]);  // in the config's order
        if (config.listeners[i].address.port == 0) kernel_ports_[keys[i]] = ports[i];
    }
    // limits.max_connections holds for the process, whatever the number of workers.
    budget_ = std::make_shared<ConnectionBudget>(config.limits.max_connections);
    pubsub::BackplaneFactory backplane;
    if (!makeBackplane(config.pubsub.backplane, backplane)) return 1;
    for (unsigned w = 0; w < workers; ++w)
        workers_.push_back(std::make_unique<Worker>(w, snapshot_, access_sink_, backplane, metrics_,
                                                    std::move(listen_fds[w]), budget_, ip_limits_));
    for (auto& worker : workers_) {
        worker->reportProgressTo(&*progress_);
        if (worker->start(error)) continue;
        LOG_ERROR("%s: io_uring: on, but %s (use auto or off)", config.file.c_str(), error.c_str());
        for (auto& started : workers_) {
            started->requestStop();
            started->join();
        }
        workers_.clear();
        return 1;
    }
    pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
    LOG_INFO("portico %s started with %u worker%s", PORTICO_VERSION, workers, workers == 1 ? "" : "s");
    notices_.ready();

    loop_.run();
    // The stop is final: a stop signal from now on would find its handler gone (signal_events_
    // freed with the Server) and end the process by the signal, not with this exit code (seen
    // under ASan, whose exit takes a while). Blocked, it stays pending until the exit drops it.
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    for (auto& worker : workers_) worker->join();
    workers_.clear();
    LOG_INFO("stopped");
    return 0;
}

// The loop goes on until every worker has ended (onWorkerProgress), watching the signals: a
// second stop signal is what nginx and HAProxy take it for, stop now. Unwatched, it killed the
// process with the signal, the access log's last lines unwritten.
void Server::stop() {
    if (stopping_) {
        LOG_INFO("stop signal during the graceful stop: closing what is left now");
        for (auto& worker : workers_) worker->requestStopNow();
        return;
    }
    // A reload every worker applied before this signal, whose progress wakeup has not run yet, is
    // live: announce it as such rather than count it among the dropped ones below.
    onWorkerProgress();
    stopping_ = true;
    LOG_INFO("stopping: finishing requests in flight (up to %lld ms)",
             static_cast<long long>(snapshot_->config->shutdown_timeout.count()));
    // The workers drop a reload they have not applied yet (Worker::onControl).
    if (const std::size_t dropped = notices_.stopping())
        LOG_WARN("stopping during a reload: %zu reload%s not applied", dropped, dropped == 1 ? "" : "s");
    for (auto& worker : workers_) worker->requestStop();
}

void Server::onWorkerProgress() {
    std::uint64_t applied = snapshot_->generation;
    bool all_finished = true;
    for (const auto& worker : workers_) {
        applied = std::min(applied, worker->appliedGeneration());
        all_finished = all_finished && worker->finished();
    }
    notices_.applied(applied, [this](const Snapshot& reloaded) { announceReload(reloaded); });
    if (stopping_ && all_finished) loop_.stop();
}

std::string Server::kernelPortTaken(const config::Listener& listener) const {
    if (listener.address.port == 0) return {};
    const auto wildcard = [](const std::string& host) { return host.empty() || host == "0.0.0.0" || host == "::"; };
    const auto& listeners = snapshot_->config->listeners;
    const std::vector<std::string> keys = listenerKeys(listeners);
    for (std::size_t i = 0; i < listeners.size(); ++i) {
        const config::Listener& running = listeners[i];
        if (running.address.port != 0) continue;
        const auto bound = kernel_ports_.find(keys[i]);
        if (bound == kernel_ports_.end() || bound->second != listener.address.port) continue;
        const std::string& a = running.address.host;
        const std::string& b = listener.address.host;
        if (a == b || wildcard(a) || wildcard(b)) return running.address.toString();
    }
    return {};
}

void Server::announceReload(const Snapshot& applied) {
    ++reloads_ok_;
    metrics_->setConfig(config_path_, unixTime(applied.loaded_at), applied.generation);
    metrics_->setReloads(reloads_ok_, reloads_failed_);
    LOG_INFO("configuration reloaded (generation %llu)", static_cast<unsigned long long>(applied.generation));
}

void Server::reload() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    notices_.reloading(static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec / 1000));
    LOG_INFO("SIGHUP: reloading %s", config_path_.c_str());
    auto fail = [&](const char* why) {
        ++reloads_failed_;
        metrics_->setReloads(reloads_ok_, reloads_failed_);
        LOG_ERROR("reload failed (%s): still running the configuration loaded before", why);
        notices_.refused();
    };
    config::LoadResult loaded = config::loadConfigFile(config_path_);
    // As `portico -t` and start-up check them: errors with the file, line and key, and warnings
    // (a certificate about to expire).
    if (loaded.ok()) tls::checkTlsFiles(*loaded.config, loaded.errors, loaded.warnings);
    for (const auto& warning : loaded.warnings) LOG_WARN("%s", warning.c_str());
    if (!loaded.ok()) {
        for (const auto& error : loaded.errors) LOG_ERROR("%s", error.toString().c_str());
        fail("configuration errors");
        return;
    }
    const config::Config& next = *loaded.config;
    // Workers make their rings after the reload applied: under `on`, a reload from `off` asks
    // for all of them now, and one from `auto` finds a worker that is on epoll.
    const bool ringless = std::any_of(workers_.begin(), workers_.end(), [](const auto& w) { return w->ringRefused(); });
    if (next.io_uring == config::IoUring::On && ringless)
        LOG_ERROR("%s: io_uring: on, but a worker could not make its ring (use auto or off)", config_path_.c_str());
    if ((next.io_uring == config::IoUring::On && ringless) ||
        !ioUringAllowed(next, snapshot_->config->io_uring == config::IoUring::Off ? worker_count_ : 0)) {
        fail("io_uring");
        return;
    }
    if (effectiveWorkerCount(next.workers) != worker_count_)
        LOG_WARN("reload: a new worker count takes effect at the next restart");
    // Open the listeners that are new before changing anything: a reload either applies whole or
    // not at all.
    std::vector<std::map<std::string, core::UniqueFd>> new_fds(worker_count_);
    std::vector<std::uint16_t> ports(next.listeners.size());  // 0: not new
    const std::vector<std::string> running_keys = listenerKeys(snapshot_->config->listeners);
    const std::vector<std::string> next_keys = listenerKeys(next.listeners);
    const auto isNew = [&](std::size_t i) {
        return std::find(running_keys.begin(), running_keys.end(), next_keys[i]) == running_keys.end();
    };
    // Refused before any new socket listens (a connection it took would be reset at the refusal).
    for (std::size_t i = 0; i < next.listeners.size(); ++i) {
        if (!isNew(i)) continue;
        if (const std::string taken = kernelPortTaken(next.listeners[i]); !taken.empty()) {
            LOG_ERROR("%s: listeners[%zu] %s: port %u is the one the kernel gave listener %s (port 0): "
                      "the two would share one socket; name another port, or remove %s first",
                      config_path_.c_str(), i, next_keys[i].c_str(), next.listeners[i].address.port, taken.c_str(),
                      taken.c_str());
            fail("a new listener names a port the kernel gave a listener on port 0");
            return;
        }
    }
    for (std::size_t i : listenerBindOrder(next.listeners)) {
        if (!isNew(i)) continue;
        const config::Listener& listener = next.listeners[i];
        const std::string& key = next_keys[i];
        auto fds = openListener(listener, ports[i]);
        if (fds.empty()) {
            fail("cannot open a new listener");
            return;
        }
        for (unsigned w = 0; w < worker_count_; ++w) new_fds[w].emplace(key, std::move(fds[w]));
    }
    // What the listeners on port 0 got, for the next reload: those gone go, new ones come.
    std::map<std::string, std::uint16_t> kernel_ports;
    for (std::size_t i = 0; i < next.listeners.size(); ++i) {
        if (next.listeners[i].address.port != 0) continue;
        const std::string& key = next_keys[i];
        const auto running = kernel_ports_.find(key);
        if (ports[i] != 0) kernel_ports[key] = ports[i];
        else if (running != kernel_ports_.end()) kernel_ports[key] = running->second;
    }
    std::shared_ptr<observe::AccessSink> sink;
    const auto& old_log = snapshot_->config->log;
    if (next.log.access != old_log.access || next.log.access_format != old_log.access_format) {
        std::string error;
        sink = observe::AccessSink::open(next.log, error);
        if (!sink) {
            LOG_ERROR("%s", error.c_str());
            fail("cannot open the access log");
            return;
        }
    }
    TlsContexts tls;
    std::vector<std::string> tls_errors, tls_warnings;
    const bool tls_ok = buildTlsContexts(next, &snapshot_->tls, tls, tls_errors, tls_warnings);
    for (const auto& warning : tls_warnings) LOG_WARN("%s", warning.c_str());
    if (!tls_ok) {
        for (const auto& error : tls_errors) LOG_ERROR("%s", error.c_str());
        fail("TLS errors");
        return;
    }
    const config::BackplaneSettings& running = snapshot_->config->pubsub.backplane;
    if (next.pubsub.backplane.redis != running.redis || next.pubsub.backplane.key_prefix != running.key_prefix)
        LOG_WARN("pubsub.backplane changed: it takes effect at the next start, not on reload");
    auto snapshot = std::make_shared<Snapshot>(loaded.config, std::move(tls));
    snapshot->generation = snapshot_->generation + 1;
    snapshot_ = snapshot;
    kernel_ports_ = std::move(kernel_ports);
    for (std::size_t i = 0; i < ports.size(); ++i)  // once the reload can no longer fail
        if (ports[i] != 0) logListening(next.listeners[i], ports[i]);
    pubsub_->configure(next.pubsub);
    core::setLogLevel(static_cast<core::LogLevel>(next.log.level));
    // Only now: a reload that failed above leaves SIGUSR1 reopening the log the workers write.
    if (sink) access_sink_ = sink;
    budget_->setLimit(next.limits.max_connections);  // each worker looks again as it applies the reload
    for (unsigned w = 0; w < worker_count_; ++w)
        workers_[w]->requestReload({snapshot_, sink, std::move(new_fds[w])});
    // Announced (logged, counted, READY=1) once every worker has applied it: a client that
    // connects after the announcement gets the new configuration (onWorkerProgress).
    notices_.handedOut(snapshot_);
}

void Server::onReloadDue(int, short, void* arg) {
    auto* self = static_cast<Server*>(arg);
    // Workers that stop drop a reload: none is started (the default action, had the signal not
    // been watched any more, ended the process).
    if (self->stopping_)
        LOG_WARN("SIGHUP during the graceful stop: not reloading");
    else
        self->reload();
}

void Server::onSignal(int signal, short, void* arg) {
    auto* self = static_cast<Server*>(arg);
    switch (signal) {
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:  // nginx's graceful stop: an operator used to it sends this one
            self->stop();
            break;
        case SIGUSR1:
            LOG_INFO("reopening the access log");
            if (!self->access_sink_->reopen()) LOG_ERROR("cannot reopen the access log");
            break;
        case SIGHUP:
            // Not now: libevent runs the signals of one pass in signal-number order, SIGHUP
            // before SIGTERM. Reloading here told systemd RELOADING=1 for a reload the stop
            // right after it dropped. Made active now, onReloadDue runs after them.
            event_active(self->reload_due_.get(), 0, 0);
            break;
        default:
            break;
    }
}

}  // namespace portico::net
