// SPDX-License-Identifier: Apache-2.0
#include "portico/proxy/upstream_group.h"

#include <cstring>
#include <netdb.h>

#include <event2/event.h>

#include "portico/core/log.h"
#include "portico/net/event_loop.h"
#include "portico/tls/client_context.h"

namespace portico::proxy {

UpstreamGroup::UpstreamGroup(net::EventLoop& loop, const config::Upstream& upstream, std::shared_ptr<observe::UpstreamStats> stats,
                             const tls::ClientContext* tls, bool on_ring)
    : loop_(loop),
      on_ring_(on_ring),
      upstream_(upstream),
      balancer_(upstream.balance, upstream.servers.size()),
      stats_(std::move(stats)),
      tls_(tls),
      trim_event_(event_new(loop.base(), -1, 0, &UpstreamGroup::onTrim, this)) {
    for (const auto& hp : upstream.servers) {
        Server s;
        s.name = hp.toString();
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        addrinfo* result = nullptr;
        std::string port = std::to_string(hp.port);
        int rc = getaddrinfo(hp.host.empty() ? "127.0.0.1" : hp.host.c_str(), port.c_str(), &hints, &result);
        if (rc == 0 && result) {
            std::memcpy(&s.address, result->ai_addr, result->ai_addrlen);
            s.length = result->ai_addrlen;
            s.resolved = true;
        } else {
            LOG_ERROR("upstream %s: cannot resolve %s: %s", upstream.name.c_str(), s.name.c_str(), gai_strerror(rc));
        }
        if (result) freeaddrinfo(result);
        servers_.push_back(std::move(s));
    }
}

UpstreamGroup::~UpstreamGroup() = default;

void UpstreamGroup::setState(int server, observe::UpstreamStats::ServerState state) {
    stats_->server_state[static_cast<std::size_t>(server)]->store(state, std::memory_order_relaxed);
}

void UpstreamGroup::markFailed(int server) {
    balancer_.markFailed(server, Balancer::Clock::now());
    setState(server, observe::UpstreamStats::ServerState::Down);
}

void UpstreamGroup::markSucceeded(int server) {
    balancer_.markSucceeded(server);
    setState(server, observe::UpstreamStats::ServerState::Up);
}

std::unique_ptr<net::Stream> UpstreamGroup::connect(int server, net::StreamHandler* handler, int& error) {
    const Server& s = servers_[static_cast<std::size_t>(server)];
    // A connect to a server marked down is the probe that decides whether it is back.
    if (balancer_.markedDown(server)) setState(server, observe::UpstreamStats::ServerState::Probing);
    if (!s.resolved) {
        error = EHOSTUNREACH;
        return nullptr;
    }
    // TLS goes to the ring after its handshake, on epoll (startTls).
    net::uring::Ring* ring = on_ring_ ? loop_.ring() : nullptr;
    auto stream = net::Stream::connectTo(loop_.base(), reinterpret_cast<const sockaddr*>(&s.address), s.length, handler,
                                         error, tls_ ? nullptr : ring);
    if (stream && tls_) {
        const auto& hp = upstream_.servers[static_cast<std::size_t>(server)];
        tls::SslPtr ssl = tls_->newSession(hp.host, s.name);
        if (!ssl) {
            error = ENOMEM;
            return nullptr;
        }
        stream->startTls(std::move(ssl), /*server=*/false, ring);
    }
    return stream;
}

std::unique_ptr<net::Stream> UpstreamGroup::takeIdle(int server) {
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
        if (it->server != server) continue;
        auto stream = std::move(it->stream);
        idle_.erase(std::next(it).base());
        return stream;
    }
    return nullptr;
}

void UpstreamGroup::putIdle(int server, std::unique_ptr<net::Stream> stream) {
    if (upstream_.keepalive == 0) {
        loop_.deferDelete(std::move(stream));
        return;
    }
    stream->setHandler(this);
    stream->resumeReading();
    idle_.push_back(Idle{server, std::move(stream)});
    // Over the limit: the oldest go before the loop next waits, not at once. A pass that takes
    // many responses back is often followed by one that reads as many requests (the same
    // clients' next ones: each came after its response was written, too late for the poll of
    // the pass that wrote it); closing the surplus at once, or when this pass ends, closes
    // connections the next pass opens again (bench/RESULTS.md, "HTTPS keep-alive: upstream
    // churn" and "... on a quiet machine"). A timer due now never lets the loop wait: the next
    // epoll_wait polls without waiting, the requests it finds take their connections, and the
    // trim runs after them. The surplus is bounded by the connections in use at once (each was
    // opened when no idle one was left).
    if (idle_.size() != upstream_.keepalive + 1) return;
    if (!trim_event_) {
        trimToLimit();  // event_new failed (no memory): the surplus closes now
    } else if (!event_pending(trim_event_.get(), EV_TIMEOUT, nullptr)) {
        static constexpr timeval kNextPoll{0, 0};
        event_add(trim_event_.get(), &kNextPoll);
    }
}

void UpstreamGroup::onTrim(int, short, void* arg) { static_cast<UpstreamGroup*>(arg)->trimToLimit(); }

void UpstreamGroup::trimToLimit() {
    if (idle_.size() <= upstream_.keepalive) return;
    const auto surplus = static_cast<std::ptrdiff_t>(idle_.size() - upstream_.keepalive);
    for (auto it = idle_.begin(); it != idle_.begin() + surplus; ++it) loop_.deferDelete(std::move(it->stream));
    idle_.erase(idle_.begin(), idle_.begin() + surplus);
}

void UpstreamGroup::discard(const net::ByteStream& stream) {
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (it->stream.get() != &stream) continue;
        loop_.deferDelete(std::move(it->stream));
        idle_.erase(it);
        return;
    }
}

}  // namespace portico::proxy
