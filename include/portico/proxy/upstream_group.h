// SPDX-License-Identifier: Apache-2.0
#pragma once
// The per-worker view of one configured upstream: its resolved servers, the balancer state and
// the pool of idle keep-alive connections. Owned by a worker; no locks.

#include <memory>
#include <string>
#include <sys/socket.h>
#include <vector>

#include "portico/config/config.h"
#include "portico/net/stream.h"
#include "portico/observe/metrics.h"
#include "portico/proxy/balancer.h"

namespace portico::net {
class EventLoop;
}
namespace portico::tls {
class ClientContext;
}

namespace portico::proxy {

class UpstreamGroup final : private net::StreamHandler {
public:
    // Resolves every server address (blocking getaddrinfo: called at start-up and reload only).
    // `tls` (may be null: plain TCP) must outlive the group (the snapshot owns both).
    // `on_ring`: plain connections do their I/O through the loop's io_uring when it has one
    // (config `io_uring` not off).
    UpstreamGroup(net::EventLoop& loop, const config::Upstream& upstream, std::shared_ptr<observe::UpstreamStats> stats,
                  const tls::ClientContext* tls, bool on_ring = false);
    ~UpstreamGroup();

    const config::Upstream& config() const { return upstream_; }
    Balancer& balancer() { return balancer_; }
    observe::UpstreamStats& stats() { return *stats_; }
    // Connect outcomes: the balancer's down marking, mirrored in the metrics.
    void markFailed(int server);
    void markSucceeded(int server);
    const std::string& serverName(int server) const { return servers_[static_cast<std::size_t>(server)].name; }

    // Starts a connection to `server`; nullptr with `error` set if it failed at once.
    std::unique_ptr<net::Stream> connect(int server, net::StreamHandler* handler, int& error);
    // The most recently parked idle connection to `server`, or nullptr.
    std::unique_ptr<net::Stream> takeIdle(int server);
    // Parks a connection whose last response ended cleanly. Beyond `keepalive` idle ones, the
    // oldest are closed before the loop next waits (trimToLimit): at the end of the pass that
    // follows one more poll without waiting, so that the requests read in this pass and in that
    // one take the freshest first instead of opening new connections.
    void putIdle(int server, std::unique_ptr<net::Stream> stream);
    std::size_t idleCount() const { return idle_.size(); }

private:
    struct Server {
        std::string name;          // "127.0.0.1:8000" for logs
        sockaddr_storage address{};
        socklen_t length = 0;
        bool resolved = false;
    };
    struct Idle {
        int server;
        std::unique_ptr<net::Stream> stream;
    };

    // An idle connection got bytes, EOF or an error: the server closed it or broke protocol.
    void onReadable(net::ByteStream& stream) override { discard(stream); }
    void onEof(net::ByteStream& stream) override { discard(stream); }
    void onError(net::ByteStream& stream, int) override { discard(stream); }
    void discard(const net::ByteStream& stream);
    // Closes the oldest idle connections beyond `keepalive` (nginx's keepalive cache does the
    // same, at once). Runs at the end of the pass after the one in which the pool went over the
    // limit (a timer due at once: that pass begins with an epoll_wait that does not wait).
    void trimToLimit();
    static void onTrim(int, short, void* arg);
    void setState(int server, observe::UpstreamStats::ServerState state);  // for status

    net::EventLoop& loop_;
    bool on_ring_;
    const config::Upstream& upstream_;
    Balancer balancer_;
    std::shared_ptr<observe::UpstreamStats> stats_;  // shared with the metrics while listed
    const tls::ClientContext* tls_;
    std::vector<Server> servers_;
    std::vector<Idle> idle_;  // LIFO: the freshest connection is reused first
    core::EventPtr trim_event_;  // pending while idle_ holds more than keepalive
};

}  // namespace portico::proxy
