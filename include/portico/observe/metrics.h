// SPDX-License-Identifier: Apache-2.0
#pragma once
// Counters for `handler: metrics` (Prometheus text) and `handler: status` (JSON).
//
// Each worker owns a WorkerStats and is the only writer of its counters (a relaxed load and
// store, no locked instruction on the data path); a scrape, on any worker, reads every worker's
// counters and sums them. Series are created on first use under a mutex that only creation and
// scrapes take. Series are keyed by stable names (listener address, route, upstream), so they
// survive reloads and stay monotonic; a reload that removes a route or an upstream drops its
// series (WorkerStats::keepOnly).

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace portico::observe {

class Counter {
public:
    void add(std::uint64_t n = 1) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void sub(std::uint64_t n = 1) { value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
    std::uint64_t get() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

struct ListenerStats {
    Counter accepted;
    Counter open;             // gauge: accepted minus closed
    Counter requests;         // requests answered (a WebSocket handshake counts once)
    Counter tls_handshakes;   // completed
    Counter tls_failures;
};

// A `websocket: {mode: http}` route's bridge (bridge/bridge.h) at work.
struct BridgeStats {
    Counter requests;          // event requests sent to the app (OPEN, batches, keep-alives, last)
    Counter events_to_app;     // events in those requests
    Counter events_from_app;   // events in the app's answers
    Counter failed_error;      // requests that failed: connect, reset, malformed HTTP, oversize
    Counter failed_timeout;    // no answer within request_timeout (504 before the 101, 1011 after)
    Counter failed_answer;     // answers that ended the WebSocket: a status, a malformed stream
    Counter open;              // gauge: bridged WebSockets accepted by the app, client connected
    Counter reading_paused;    // times max_batch_bytes of queued events paused reading the client
};

struct RouteStats {
    std::array<Counter, 6> requests;  // by status class: [1] 1xx ... [5] 5xx, [0] other
    // What upgraded connections on this route are: "tunnel", "frames", "echo", "pubsub" or
    // "none" (no WebSocket). A string literal, set when a snapshot is built (a reload may change
    // it), read by scrapes on other threads.
    std::atomic<const char*> websocket_mode{"none"};
    Counter ws_open;                  // gauge
    // Messages and bytes of open sessions are added while they run (Worker folds them in every
    // kSessionCountInterval), the rest when a session ends.
    Counter ws_messages_in;           // from clients (frames relay and built-ins)
    Counter ws_messages_out;
    Counter ws_bytes_in;
    Counter ws_bytes_out;
    Counter ws_closed_rate;      // sessions closed 1008 for websocket.rate
    Counter ws_closed_lifetime;  // sessions closed for websocket.max_lifetime
    Counter ws_closed_inflating;  // closed 1013 for permessage_deflate.max_inflating_per_worker
    BridgeStats bridge;          // websocket.mode http only
};

struct UpstreamStats {
    // Upstream response time (request sent to response complete), seconds.
    static constexpr std::array<double, 11> kBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
    std::array<Counter, kBuckets.size()> buckets;  // not cumulative; summed at render time
    Counter count;
    Counter sum_us;
    enum class ServerState : std::uint8_t { Up, Down, Probing };
    // Per server, as this worker's balancer sees it: Down after a failed connect, Probing while
    // a connect to a server marked down is tried, Up after a connect succeeded.
    std::vector<std::unique_ptr<std::atomic<ServerState>>> server_state;
    std::vector<std::string> server_names;
    void observe(double seconds);
};

// The accept path and the per-client-address limits (net/worker.cpp, net/ip_limits.h).
struct LimitStats {
    Counter rejected_connections;  // 429 at accept: limits.per_ip_connections
    Counter rejected_websockets;   // 429 to an upgrade: limits.per_ip_websockets
    Counter rejected_rate;         // 429 to an upgrade: limits.per_ip_upgrade_rate
    Counter untracked;             // admitted uncounted: the address table was full (fails open)
    Counter accept_errors;         // accept() failed (EMFILE, ENFILE, ...): accepting backed off
};

class WorkerStats {
public:
    LimitStats limits;
    ListenerStats& listener(const std::string& key);
    // Shared: a worker's snapshot keeps its routes' counters alive for the connections still on
    // it after a reload dropped them from the map.
    std::shared_ptr<RouteStats> route(const std::string& key);
    // Shared likewise: an upstream group owns its stats with the map, so the stats of an upstream
    // a reload removed or re-served live as long as the old snapshot's group, then go.
    std::shared_ptr<UpstreamStats> upstream(const std::string& name, const std::vector<std::string>& servers);
    // A reload: the series of routes and upstreams not named here leave the scrapes. Counters
    // of those that stay go on.
    void keepOnly(const std::vector<std::string>& route_keys, const std::vector<std::string>& upstream_names);

private:
    friend class Metrics;
    friend struct StatsReader;  // metrics.cpp: sums every worker's series
    std::mutex mutex_;  // the maps' structure only
    std::map<std::string, std::unique_ptr<ListenerStats>> listeners_;
    std::map<std::string, std::shared_ptr<RouteStats>> routes_;
    std::map<std::string, std::shared_ptr<UpstreamStats>> upstreams_;
};

// The pub/sub registry's bounds at work (pubsub/pubsub_registry.h fills them).
struct PubSubStats {
    std::size_t history_messages = 0;
    std::size_t history_bytes = 0;     // accounted: payloads plus bookkeeping
    std::size_t history_budget = 0;    // pubsub.history_budget
    std::uint64_t evicted_count = 0;   // messages dropped from history: the channel's `history`
    std::uint64_t evicted_bytes = 0;   // its history_bytes
    std::uint64_t evicted_ttl = 0;     // history_ttl
    std::uint64_t evicted_budget = 0;  // pubsub.history_budget
    std::uint64_t evicted_idle = 0;    // with their channel (channel_idle_timeout)
    std::uint64_t channels_expired = 0;
    std::uint64_t refused_size = 0;    // publishes refused: max_message_bytes (413)
    std::uint64_t refused_rate = 0;    // publish_rate (429)
    std::uint64_t refused_channels = 0;    // a new channel beyond max_channels (503)
    std::uint64_t subscribes_refused = 0;  // a new channel beyond max_channels
    std::uint64_t replay_truncated = 0;    // ?since= replays missing evicted messages
    std::uint64_t slow_closed = 0;         // subscribers closed beyond queue_bytes
    // pubsub.backplane (pubsub/redis_backplane.h fills them; all 0 without one).
    const char* backplane = "local";       // "local", or the Redis backplane's "up" / "partial" / "down"
    std::uint64_t backplane_reconnects = 0;       // connections (re)made after a failure
    std::uint64_t backplane_publish_failures = 0; // publishes answered 503 (down or timeout)
    std::uint64_t backplane_silent = 0;           // subscriptions found silent by the probe
    std::uint64_t backplane_subscribe_callbacks = 0;  // held by hiredis for unanswered SSUBSCRIBEs
    std::vector<std::pair<std::string, bool>> backplane_shards;  // each Redis master ("host:port") and up
    std::uint64_t published = 0;           // messages published (every channel, ever)
};

// One channel in the status JSON (the busiest kStatusChannels of them).
struct ChannelSample {
    std::string name;
    std::size_t subscribers = 0;
    std::uint64_t published = 0;  // the channel's last sequence number: publishes since created
    std::size_t history = 0;      // messages kept
};

// Values the renderer asks for that live elsewhere (pub/sub registry, the server).
struct ProcessInfo {
    std::uint64_t reloads_ok = 0;
    std::uint64_t reloads_failed = 0;
    std::size_t pubsub_channels = 0;
    std::size_t pubsub_subscribers = 0;
    PubSubStats pubsub;
    // The channels with the most subscribers (then the most publishes), at most kStatusChannels:
    // the status JSON stays small however many channels there are.
    static constexpr std::size_t kStatusChannels = 50;
    std::vector<ChannelSample> top_channels;
    std::string config_file;
    double config_loaded_at = 0;  // Unix time
    std::uint64_t generation = 0;
    std::size_t ip_table_entries = 0;  // client addresses the per-IP limits track
};

class Metrics {
public:
    WorkerStats& addWorker();
    void setReloads(std::uint64_t ok, std::uint64_t failed);
    void setConfig(std::string file, double loaded_at, std::uint64_t generation);
    ProcessInfo processInfo() const;
    // Where processInfo() reads ip_table_entries (the per-IP table lives in net/).
    void setIpTableSize(std::function<std::size_t()> size);

    std::string renderPrometheus(const ProcessInfo& info);
    std::string renderJson(const ProcessInfo& info);

private:
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<WorkerStats>> workers_;
    ProcessInfo info_;
    std::function<std::size_t()> ip_table_size_;
};

// A route's series key: "host/path" ("*" for any host), e.g. "*/api/".
std::string routeKey(const std::string& host, const std::string& path, bool exact);

}  // namespace portico::observe
