// SPDX-License-Identifier: Apache-2.0
#pragma once
// Plain configuration structs decoded from portico.yaml. No libevent, no OpenSSL, no yaml-cpp here:
// the data plane reads these, the loader (config/loader.h) fills them.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace portico::config {

using Duration = std::chrono::milliseconds;

// Every struct here compares member by member (a defaulted operator== first in each): a
// test holds the defaults stated in the loader's key tables to the initialisers below.

// Where a value came from in the YAML file, for error messages and diagnostics.
struct SourceMark {
    bool operator==(const SourceMark&) const = default;
    int line = 0;    // 1-based; 0 = unknown
    int column = 0;  // 1-based
};

enum class LogLevel { Error, Warn, Info, Debug };
enum class AccessFormat { Json, Combined };

struct LogSettings {
    // Where a key was written is not a setting: writing `access: stdout` changes nothing.
    bool operator==(const LogSettings& o) const {
        return level == o.level && access == o.access && access_format == o.access_format;
    }
    LogLevel level = LogLevel::Info;             // error log on stderr at this level and above
    std::string access = "stdout";                // "stdout" | "off" | a file path (absolute after load)
    SourceMark access_mark;                       // where `access` was written (portico -t's errors)
    AccessFormat access_format = AccessFormat::Json;
};

struct Limits {
    bool operator==(const Limits&) const = default;
    std::size_t max_connections = 10000;          // per process; beyond it accepting pauses
    std::size_t max_header_bytes = 16 * 1024;     // request head; 431 beyond
    std::size_t max_body_bytes = 10 * 1024 * 1024;  // request body; 413 beyond; 0 = unlimited
    Duration client_header_timeout = std::chrono::seconds(10);  // 408 when the head is late
    Duration client_body_timeout = std::chrono::seconds(60);    // 408 when two successive reads
                                                                // of a request body are further
                                                                // apart (not while we stop
                                                                // reading for a slow upstream)
    Duration keepalive_timeout = std::chrono::seconds(75);      // idle client connection;
                                                                // 0 = no keep-alive
    Duration client_send_timeout = std::chrono::seconds(60);    // a client that takes no byte
                                                                // of a response this long: closed
    // Per client address (net/ip_limits.h); IPv6 clients are grouped by per_ip_ipv6_prefix.
    std::size_t per_ip_connections = 1000;  // concurrent connections; beyond: 429 and close; 0 = off
    std::size_t per_ip_websockets = 500;    // concurrent WebSockets; beyond: 429 to the upgrade; 0 = off
    unsigned per_ip_ipv6_prefix = 64;       // leading bits of an IPv6 address that name one client
    double per_ip_upgrade_rate = 0;         // WebSocket upgrades per second (token bucket); 0 = off
    std::size_t per_ip_upgrade_burst = 20;  // upgrades at once before the rate applies
    std::size_t per_ip_table_size = 65536;  // client addresses tracked at once; beyond: not limited
    // HTTP/2 connections (http2/): what one client connection may hold and do.
    std::size_t http2_max_concurrent_streams = 100;  // SETTINGS_MAX_CONCURRENT_STREAMS (fewer when the
                                                     // buffer below does not cover their windows:
                                                     // settingsMaxStreams); more anyway: GOAWAY
    std::size_t http2_stream_window = 256 * 1024;    // request body bytes a stream may have in flight
                                                     // before its client waits for the upstream
    std::size_t http2_connection_buffer = 3 << 20;  // per connection and direction: request body
                                                     // bytes queued for upstreams (beyond: the
                                                     // connection window is held back), response
                                                     // bytes waiting for the client's windows
                                                     // (beyond: the upstreams' reads pause); 3MiB
                                                     // covers 100 streams' windows of 22KiB
    std::size_t http2_reset_burst = 200;   // RST_STREAMs from a client at once (CVE-2023-44487)...
    std::size_t http2_reset_rate = 50;     // ...and per second after; beyond: GOAWAY
    std::size_t http2_control_frame_rate = 100;  // SETTINGS and PINGs per second (burst: twice as
                                                 // many); beyond: GOAWAY ENHANCE_YOUR_CALM
    std::size_t http2_overhead_frame_rate = 500;  // frames without request progress (empty DATA,
                                                  // PRIORITY, unearned WINDOW_UPDATE, unknown types)
                                                  // per second (burst: twice as many); beyond: GOAWAY
};

// host:port as written; host "" means every address ("*:port"), "[::1]" is stored as "::1".
struct HostPort {
    std::string host;
    std::uint16_t port = 0;
    std::string toString() const;  // "127.0.0.1:80", "[::1]:80", "*:80"
    bool operator==(const HostPort&) const = default;
};

enum class TlsVersion { Tls12, Tls13 };

// One certificate chain and its private key (PEM files); absolute paths after load.
struct CertificateFiles {
    bool operator==(const CertificateFiles&) const = default;
    std::string cert;  // certificate chain, leaf first; server names come from its SANs
    std::string key;   // private key matching `cert`; passphrase-protected keys are not supported
    SourceMark mark;
};

// A listener's `tls:` block: HTTPS and wss:// are terminated on this listener.
struct ListenerTls {
    bool operator==(const ListenerTls&) const = default;
    std::vector<CertificateFiles> certificates;  // never empty after load; [0] is the default,
                                                 // the others are chosen by SNI
    TlsVersion min_version = TlsVersion::Tls12;  // oldest protocol version accepted
    std::string ciphers;                         // TLS 1.2 cipher list; "" = OpenSSL's default
    std::vector<std::string> alpn = {"http/1.1"};  // protocols offered, in preference order
    bool session_tickets = true;                 // resumption with tickets (shared, rotated keys)
    std::string client_ca;  // "" = no client certificates; else PEM CA file (absolute after
                            // load): require and verify client certificates (mTLS)
    std::string keylog_file;  // "" = off; else (absolute after load) TLS secrets are appended
                              // in NSS key log format for Wireshark: debugging only
    SourceMark ciphers_mark;  // where `ciphers` was written (its errors and warnings)
};

struct Listener {
    bool operator==(const Listener&) const = default;
    HostPort address;
    std::optional<std::uint16_t> redirect_https;  // answer every request 308 to https://host:PORT
    std::optional<ListenerTls> tls;               // set: this listener speaks TLS
    bool http2 = false;                // cleartext: HTTP/2 with prior knowledge (h2c), no HTTP/1.1
                                       // (on TLS listeners h2 comes with tls.alpn)
    bool http2_extended_connect = true;  // RFC 8441: WebSockets over HTTP/2 streams
    SourceMark mark;
};

enum class Balance { RoundRobin, LeastConn, IpHash };

// An upstream's `tls:` block: Portico connects to its servers over TLS.
struct UpstreamTls {
    bool operator==(const UpstreamTls&) const = default;
    bool verify = true;  // verify the chain and host name; false is allowed, with a warning
    std::string ca;      // PEM CA bundle (absolute after load); "" = the system's default store
    std::string sni;     // server name sent and verified; "" = the server's host when it is a name
    std::string keylog_file;  // "" = off; else (absolute after load) as ListenerTls::keylog_file
};

struct Upstream {
    bool operator==(const Upstream&) const = default;
    std::string name;
    std::vector<HostPort> servers;
    Balance balance = Balance::RoundRobin;
    std::size_t keepalive = 32;                              // idle pooled connections per worker
    Duration connect_timeout = std::chrono::seconds(2);      // 504 when connecting takes longer
    Duration send_timeout = std::chrono::seconds(60);        // 504 when the upstream takes no byte
                                                             // of the request for this long while
                                                             // some wait to go (nginx's
                                                             // proxy_send_timeout)
    Duration read_timeout = std::chrono::seconds(60);        // 504 when the upstream sends nothing
                                                             // for this long once the whole
                                                             // request went out
    std::optional<UpstreamTls> tls;                          // set: connect to servers over TLS
    SourceMark mark;
};

enum class WebSocketMode { Tunnel, Frames, Http };

// `io_uring`: whether plain TCP sockets (HTTP/1.1 and h2c clients, plain upstreams, WebSocket
// tunnels) do their I/O through a per-worker io_uring (net/uring/) instead of epoll. off: never; auto: when the kernel allows a ring, else epoll;
// on: a ring is required (the start fails when io_uring_setup is refused).
enum class IoUring { Off, Auto, On };

// `websocket.http`: mode http, the WebSocket-over-HTTP bridge (bridge/): Portico terminates the
// WebSocket and exchanges its events with the route's upstream in HTTP POSTs.
struct WebSocketHttpSettings {
    bool operator==(const WebSocketHttpSettings&) const = default;
    std::size_t max_batch_bytes = 64 * 1024;            // client events queued for the next
                                                         // request; reading the client pauses
                                                         // beyond (one message always fits)
    Duration request_timeout = std::chrono::seconds(30);  // the app's answer (between reads);
                                                         // beyond: 504 before the 101, then 1011
    std::string sig_key;                                 // "" = no Grip-Sig; else the HS256 key
                                                         // of the Grip-Sig JWT on each request
};

// `websocket.rate`: token buckets per direction of a frames-mode or built-in session; over
// either limit the sender is closed 1008. 0 = that limit is off (the default: no limit).
struct WebSocketRate {
    bool operator==(const WebSocketRate&) const = default;
    double messages = 0;               // data messages per second (a fragmented one counts once)
    double bytes = 0;                  // frame bytes per second, headers included, as on the wire
    std::uint64_t burst_messages = 0;  // bucket size; 0 = one second's worth (`messages`)
    std::uint64_t burst_bytes = 0;     // bucket size; 0 = one second's worth (`bytes`)
    bool enabled() const { return messages > 0 || bytes > 0; }
};

// `websocket.permessage_deflate`: what the built-in endpoints (echo, pubsub) and the
// WebSocket-over-HTTP bridge agree to when a client offers permessage-deflate (RFC 7692). Tunnel
// and frames routes pass the upstream's answer through instead. The defaults keep no zlib state
// between messages in either direction, so an idle connection holds none (with context takeover
// one holds ~300 KiB at windows 15 and mem_level 8).
struct PermessageDeflateSettings {
    bool operator==(const PermessageDeflateSettings&) const = default;
    bool enabled = true;                      // false: decline every offer
    bool server_no_context_takeover = true;   // ours: the compressor starts afresh every message
    bool client_no_context_takeover = true;   // asked of every client: so does the decompressor
    std::uint8_t server_max_window_bits = 15; // 8..15: our compressor's window (2^bits bytes)
    std::uint8_t client_max_window_bits = 15; // 8..15: asked of clients that offer the parameter
    int level = 1;                            // zlib level 1 (fast) .. 9 (small)
    int mem_level = 8;                        // zlib memLevel 1..9 (hash memory 2^(n+9) bytes)
    std::size_t min_message_bytes = 64;       // shorter outgoing messages go uncompressed
    std::size_t max_inflating_per_worker = 256;  // compressed messages half-received at once on a
                                                 // worker (each holds a ~40 KiB decompressor);
                                                 // one more: close 1013; 0 = no bound
};

struct WebSocketSettings {
    bool operator==(const WebSocketSettings&) const = default;
    WebSocketMode mode = WebSocketMode::Tunnel;    // tunnel: opaque bytes; frames: parse and check;
                                                   // http: events to the upstream as HTTP POSTs
    std::size_t max_message_bytes = 1024 * 1024;   // frames mode and built-ins: close 1009 beyond
    Duration idle_timeout = std::chrono::minutes(10);  // no traffic either way: close; 0 = never
    Duration ping_interval = std::chrono::seconds(30); // frames mode/built-ins: ping the client;
                                                       // 0 = no pings
    std::vector<std::string> origins;              // empty: any Origin; else 403 on mismatch
                                                   // (scheme and host lower case after load)
    std::vector<std::string> subprotocols;         // empty: pass through; else allowed list
    WebSocketRate rate;                            // frames mode and built-ins; off by default
    Duration max_lifetime = Duration(0);           // session age: then Close 1001 (tunnel: TCP
                                                   // close); 0 = no limit
    Duration max_lifetime_grace = std::chrono::seconds(30);  // after that Close: wait this long
                                                   // for the peers' Close, then close TCP
    Duration close_timeout = std::chrono::seconds(5);  // frames mode: a Close went one way and
                                                   // no answer came this long: end the session
    bool trace = false;                            // frames mode and built-ins: one log line per
                                                   // frame (tunnel: no frames to trace)
    std::size_t trace_payload_bytes = 0;           // first bytes of text payloads in a trace
                                                   // line; 0 = none; at most kMaxTracePayloadBytes
    double trace_rate = 100;                       // trace lines per second per worker and route;
                                                   // beyond: counted, then one summary line
    WebSocketHttpSettings http;                    // mode http only
    PermessageDeflateSettings permessage_deflate;  // built-ins and mode http: what is agreed
};
// trace_payload_bytes bound: escaped (up to 4 characters a byte) it still fits one log line.
inline constexpr std::size_t kMaxTracePayloadBytes = 256;

struct PubSubSettings {
    bool operator==(const PubSubSettings&) const = default;
    bool client_publish = false;                   // a subscriber's message goes to its channel
    std::string publish_token;                     // HTTP POST needs "Authorization: Bearer TOKEN"
    std::size_t history = 100;                     // last N messages kept per channel
    std::size_t queue_bytes = 1024 * 1024;         // per-subscriber bound; beyond it close 1008
                                                   // (history replays wait for it to drain)
    std::size_t history_bytes = 1024 * 1024;       // per channel: kept bytes (payloads plus
                                                   // ~200 B bookkeeping each); oldest go first
    Duration history_ttl = std::chrono::minutes(10);  // kept messages older than this are
                                                      // dropped; 0 = no age limit
    Duration channel_idle_timeout = std::chrono::minutes(10);  // no subscriber and no publish
                                                   // this long: the channel and its history go
    std::size_t max_message_bytes = 256 * 1024;    // a publish (POST body: 413; a client's
                                                   // message: close 1009); at most queue_bytes
    double publish_rate = 100;                     // publishes per second per channel (POST:
                                                   // 429 + Retry-After beyond); 0 = unlimited
    std::uint64_t publish_burst = 0;               // token bucket size; 0 = one second's worth
};

// pubsub.backplane.redis, parsed (redis_url.h): where Redis listens and how to log in.
struct RedisAddress {
    bool operator==(const RedisAddress&) const = default;
    std::string host;            // TCP: a host name or address; empty for a Unix socket
    std::uint16_t port = 6379;
    std::string unix_path;       // unix:///run/redis/redis.sock
    unsigned db = 0;             // SELECT after connecting
    std::string username;        // an ACL user (redis://user:password@host); "" = default
    std::string password;        // from the URL; "" = none (see BackplaneSettings::password_file)
};

// `pubsub.backplane`: channels span every node that shares this Redis. Absent: in-process.
struct BackplaneSettings {
    bool operator==(const BackplaneSettings&) const = default;
    bool enabled = false;         // a `backplane:` block with `redis:` was given
    std::string redis;            // the URL as written (logged without its password)
    RedisAddress address;
    std::string key_prefix = "portico";                    // every key and Redis channel starts
                                                           // with it (then ':')
    Duration connect_timeout = std::chrono::seconds(2);    // a connection not up by then is
                                                           // retried (backoff with jitter)
    Duration publish_timeout = std::chrono::seconds(2);    // a publish (and a channel info)
                                                           // not answered by then: 503
    std::size_t max_pending_bytes = 16 * 1024 * 1024;      // commands written to one Redis
                                                           // connection and not answered yet
                                                           // (a stalled Redis); beyond: 503 at
                                                           // once (one command always goes)
    std::string password_file;    // the password's file (its first line), read at start; used
                                  // when the URL has none
};

// The top-level `pubsub:` block: bounds of the registry every pubsub route and worker shares.
struct PubSubLimits {
    bool operator==(const PubSubLimits&) const = default;
    std::size_t history_budget = 32 * 1024 * 1024;  // every channel's history together; beyond
                                                    // it the oldest messages (any channel) go
    std::size_t max_channels = 10000;               // beyond: a new channel is refused (POST 503,
                                                    // subscribe 503 or close 1013)
    BackplaneSettings backplane;                    // Redis; read at start (a reload keeps it)
};

// `handler: publish`: Pushpin's publish API (POST {"items": [...]}) into the GRIP channels.
// Without a token and a jwt_key anyone may publish (`portico -t` warns).
struct PublishSettings {
    bool operator==(const PublishSettings&) const = default;
    std::string token;    // "Authorization: Bearer TOKEN" (a GRIP URL's ?key=TOKEN); "" = none
    std::string jwt_key;  // HS256 key of "Authorization: Bearer JWT"; "" = no JWTs
    std::string iss;      // with jwt_key: the issuer the JWT must name; "" = any
};

enum class HandlerKind { None, Health, Static, Echo, PubSub, Metrics, Status, Dashboard, Publish };

struct Route {
    bool operator==(const Route&) const = default;
    std::string host;             // "" = any host; "example.com" exact; "*.example.com" wildcard
                                  // (lower case after load)
    std::string path = "/";       // prefix, without the leading "=" of an exact match
    bool exact_path = false;      // path was written "=/exact"
    std::string upstream;         // name in Config::upstreams, or "" for a handler route
    HandlerKind handler = HandlerKind::None;
    bool strip_prefix = false;    // remove `path` from the request target before proxying
    std::vector<std::pair<std::string, std::string>> set_headers;  // set on the upstream request
    std::string root;             // handler: static; absolute after load
    std::string status_url = "status";  // handler: dashboard: where the page reads the status
                                        // JSON; relative to the page (default: a sibling path)
                                        // or absolute ("/portico/status")
    WebSocketSettings websocket;  // upstream routes and built-in WebSocket handlers
    bool websocket_configured = false;  // a `websocket:` block was present
    PubSubSettings pubsub;        // handler: pubsub
    PublishSettings publish;      // handler: publish
    SourceMark mark;
};

struct Config {
    bool operator==(const Config&) const = default;
    std::string file;                                   // path the configuration was read from
    unsigned workers = 0;                               // 0 = auto (number of CPUs)
    Duration shutdown_timeout = std::chrono::seconds(10);  // SIGTERM: how long in-flight work gets
    std::optional<Duration> reload_drain_timeout;       // unset = off: a reload never closes old
                                                        // upgraded connections; set: they get
                                                        // close 1001 this long after the reload
    IoUring io_uring = IoUring::Off;                    // plaintext tunnels on io_uring (see IoUring)
    LogSettings log;
    Limits limits;
    PubSubLimits pubsub;                                // the process-wide pub/sub registry
    std::vector<Listener> listeners;
    std::map<std::string, Upstream> upstreams;          // by name
    std::vector<Route> routes;                          // first match wins

    // The upstream named `name`, or nullptr. The pointer lives as long as this Config.
    const Upstream* findUpstream(const std::string& name) const;
};

// Names as written in portico.yaml, for logs and the status endpoint.
const char* toString(LogLevel level);
const char* toString(Balance balance);
const char* toString(WebSocketMode mode);
const char* toString(IoUring mode);
const char* toString(HandlerKind handler);  // None is "none"
const char* toString(TlsVersion version);   // "1.2" | "1.3"

}  // namespace portico::config
