// SPDX-License-Identifier: Apache-2.0
// Pass 1: decoding. One table of known keys per section, in the order of portico.yaml (see
// issue 2's "YAML contract", extended by the WebSocket, TLS and operations issues). A table entry
// only checks what its one value can tell; relations between keys are validate.cpp's business.

#include <array>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "config/decoder.h"
#include "config/passes.h"
#include "portico/config/redis_url.h"
#include "portico/config/units.h"

namespace portico::config::detail {
namespace {

constexpr std::uint64_t kMaxWorkers = 1024;  // more threads than this is a typo, not a machine

// RFC 9110 5.6.2: tchar, the characters of a token (header names, subprotocols).
bool isTokenChar(unsigned char c) {
    if (std::isalnum(c)) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool isToken(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text) {
        if (!isTokenChar(static_cast<unsigned char>(c))) return false;
    }
    return true;
}

constexpr std::string_view kTokenPattern = R"([!#$%&'*+.^_`|~0-9A-Za-z-]+)";  // isToken

// RFC 9110 5.5: a field value is visible characters, spaces and tabs; CR, LF and NUL would let
// the configuration inject headers.
bool isFieldValue(std::string_view text) {
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

std::string toLower(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

// A host name as a route or an SNI value names it: labels of letters, digits, '-' and '_'.
bool isHostName(std::string_view host) {
    if (host.empty() || host.size() > 253) return false;
    std::size_t label = 0;
    for (char c : host) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
        if (++label > 63) return false;
    }
    return label != 0;
}

constexpr std::string_view kHostNamePattern = R"([A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*)";

// ---- log ----------------------------------------------------------------------------------

constexpr std::array<std::pair<std::string_view, LogLevel>, 4> kLogLevels{{
    {"error", LogLevel::Error},
    {"warn", LogLevel::Warn},
    {"info", LogLevel::Info},
    {"debug", LogLevel::Debug},
}};
constexpr std::array<std::pair<std::string_view, AccessFormat>, 2> kAccessFormats{{
    {"json", AccessFormat::Json},
    {"combined", AccessFormat::Combined},
}};

const std::array<KeyRule<LogSettings>, 3> kLogKeys{{
    {"level", type::choice<kLogLevels>(), "info",
     "error log on stderr at this level and above",
     [](Decoder& d, const Item& v, LogSettings& log) {
         d.readChoice(v, kLogLevels, log.level);
     }},
    {"access", type::string(), "stdout",
     "access log: stdout, off or a file path (reopened on SIGUSR1)",
     [](Decoder& d, const Item& v, LogSettings& log) {
         if (!v.node.IsScalar() || v.node.Scalar().empty()) {
             d.error(v, "expected stdout, off or a file path");
             return;
         }
         log.access = v.node.Scalar();
     }},
    {"access_format", type::choice<kAccessFormats>(), "json",
     "access log line format",
     [](Decoder& d, const Item& v, LogSettings& log) {
         d.readChoice(v, kAccessFormats, log.access_format);
     }},
}};

// ---- limits -------------------------------------------------------------------------------

void requirePositive(Decoder& d, const Item& v, bool positive) {
    if (!positive) d.error(v, "must be greater than 0");
}

const std::array<KeyRule<Limits>, 12> kLimitsKeys{{
    {"max_connections", type::count().aboveZero(), "10000",
     "open connections per process (split over workers); beyond it accepting pauses",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.max_connections)) requirePositive(d, v, l.max_connections > 0);
     }},
    {"max_header_bytes", type::size().aboveZero(), "16KiB",
     "request head size; 431 beyond",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readSize(v, l.max_header_bytes)) requirePositive(d, v, l.max_header_bytes > 0);
     }},
    {"max_body_bytes", type::size(), "10MiB",
     "request body size; 413 beyond; 0 = unlimited",
     [](Decoder& d, const Item& v, Limits& l) { d.readSize(v, l.max_body_bytes); }},
    {"client_header_timeout", type::duration().aboveZero(), "10s",
     "408 when the request head is not complete in time",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readDuration(v, l.client_header_timeout)) {
             requirePositive(d, v, l.client_header_timeout.count() > 0);
         }
     }},
    {"client_body_timeout", type::duration().aboveZero(), "60s",
     "408 when two successive reads of a request body are further apart",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readDuration(v, l.client_body_timeout)) requirePositive(d, v, l.client_body_timeout.count() > 0);
     }},
    {"keepalive_timeout", type::duration(), "75s",
     "idle client connection between requests; 0 = no keep-alive",
     [](Decoder& d, const Item& v, Limits& l) { d.readDuration(v, l.keepalive_timeout); }},
    {"per_ip_connections", type::count(), "1000",
     "open connections per client address; beyond: 429 and close; 0 = off",
     [](Decoder& d, const Item& v, Limits& l) { d.readCount(v, l.per_ip_connections); }},
    {"per_ip_websockets", type::count(), "500",
     "open WebSockets per client address; beyond: 429, no 101; 0 = off",
     [](Decoder& d, const Item& v, Limits& l) { d.readCount(v, l.per_ip_websockets); }},
    {"per_ip_ipv6_prefix", type::count().aboveZero().atMost(128), "64",
     "IPv6 clients are counted per prefix of this many bits (1..128)",
     [](Decoder& d, const Item& v, Limits& l) {
         std::size_t bits = 0;
         if (!d.readCount(v, bits)) return;
         if (bits < 1 || bits > 128) {
             d.error(v, "expected a prefix length from 1 to 128");
             return;
         }
         l.per_ip_ipv6_prefix = static_cast<unsigned>(bits);
     }},
    {"per_ip_upgrade_rate", type::rate("off"), "0",
     "WebSocket upgrades per client address: 10/s, 600/m, 0.5/s; 0 or off = no limit",
     [](Decoder& d, const Item& v, Limits& l) { d.readRate(v, RateOf::Events, true, l.per_ip_upgrade_rate); }},
    {"per_ip_upgrade_burst", type::count().aboveZero(), "20",
     "upgrades at once before per_ip_upgrade_rate applies",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.per_ip_upgrade_burst)) requirePositive(d, v, l.per_ip_upgrade_burst > 0);
     }},
    {"per_ip_table_size", type::count().aboveZero(), "65536",
     "client addresses tracked at once; beyond: not limited",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.per_ip_table_size)) requirePositive(d, v, l.per_ip_table_size > 0);
     }},
}};

// ---- listeners ----------------------------------------------------------------------------

constexpr std::array<std::pair<std::string_view, TlsVersion>, 2> kTlsVersions{{
    {"1.2", TlsVersion::Tls12},
    {"1.3", TlsVersion::Tls13},
}};
constexpr std::string_view kAlpnPattern = R"(http/1\.[01])";

const std::array<KeyRule<CertificateFiles>, 2> kCertificateKeys{{
    {"cert", type::path(), "",
     "PEM certificate chain, leaf first; its SANs name the hosts it serves",
     [](Decoder& d, const Item& v, CertificateFiles& c) { d.readPath(v, c.cert); }},
    {"key", type::path(), "",
     "PEM private key of cert (no passphrase)",
     [](Decoder& d, const Item& v, CertificateFiles& c) { d.readPath(v, c.key); }},
}};

const std::array<KeyRule<ListenerTls>, 7> kListenerTlsKeys{{
    {"certificates", type::mappingList<kCertificateKeys>(), "",
     "certificate chains: the first is the default, the others are chosen by SNI",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         d.forEachElement(v, [&](const Item& element) {
             CertificateFiles files;
             files.mark = toSourceMark(element.mark);
             decodeMapping(d, element, kCertificateKeys, files);
             tls.certificates.push_back(std::move(files));
         });
     }},
    {"min_version", type::choice<kTlsVersions>(), "1.2",
     "oldest TLS version accepted",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         d.readChoice(v, kTlsVersions, tls.min_version);
     }},
    {"ciphers", type::string(), "",
     "TLS 1.2 cipher list (OpenSSL syntax); absent = OpenSSL's default",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         if (d.readString(v, tls.ciphers) && tls.ciphers.empty()) {
             d.error(v, "expected an OpenSSL cipher list");
         }
     }},
    {"alpn", type::stringList(kAlpnPattern), "[http/1.1]",
     "protocols offered by ALPN, in preference order",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         std::vector<std::string> protocols;
         if (!d.readStringList(v, protocols)) return;
         bool ok = true;
         for (std::size_t i = 0; i < protocols.size(); ++i) {
             // Offering h2 would make browsers speak HTTP/2 to a server that only speaks HTTP/1.x
             // (RFC 7301 3.2: the server selects among the protocols it offers).
             if (protocols[i] != "http/1.1" && protocols[i] != "http/1.0") {
                 std::string path = indexPath(v.path, i);
                 d.error(d.markOf(path), path,
                         "unsupported protocol \"" + protocols[i] +
                             "\" (Portico speaks http/1.1 and http/1.0)");
                 ok = false;
             }
         }
         if (ok) tls.alpn = std::move(protocols);
     }},
    {"session_tickets", type::boolean(), "true",
     "TLS session resumption with tickets",
     [](Decoder& d, const Item& v, ListenerTls& tls) { d.readBool(v, tls.session_tickets); }},
    {"client_ca", type::path(), "",
     "PEM CA file: require and verify client certificates (mTLS)",
     [](Decoder& d, const Item& v, ListenerTls& tls) { d.readPath(v, tls.client_ca); }},
    {"keylog_file", type::path(), "",
     "write TLS secrets in the NSS key log format (for Wireshark); off unless set",
     [](Decoder& d, const Item& v, ListenerTls& tls) { d.readPath(v, tls.keylog_file); }},
}};

const std::array<KeyRule<Listener>, 3> kListenerKeys{{
    {"address", type::hostPort(), "",
     "host:port, [v6]:port or *:port (every IPv4 address); port 0 = any free port",
     [](Decoder& d, const Item& v, Listener& l) {
         std::string text;
         if (!d.readString(v, text)) return;
         auto address = parseHostPort(text);
         if (!address) {
             d.error(v,
                     "invalid address \"" + text + "\" (expected host:port, [v6]:port or *:port)");
             return;
         }
         l.address = *address;
     }},
    {"redirect_https", type::port(), "",
     "answer every request 308 to https://host:PORT",
     [](Decoder& d, const Item& v, Listener& l) {
         std::uint16_t port = 0;
         if (d.readPort(v, port)) l.redirect_https = port;
     }},
    {"tls", type::mapping<kListenerTlsKeys>(), "",
     "this listener speaks TLS (HTTPS and wss://)",
     [](Decoder& d, const Item& v, Listener& l) {
         l.tls.emplace();
         decodeMapping(d, v, kListenerTlsKeys, *l.tls);
     }},
}};

void decodeListeners(Decoder& d, const Item& v, Config& c) {
    d.forEachElement(v, [&](const Item& element) {
        Listener listener;
        listener.mark = toSourceMark(element.mark);
        decodeMapping(d, element, kListenerKeys, listener);
        c.listeners.push_back(std::move(listener));
    });
}

// ---- upstreams ----------------------------------------------------------------------------

constexpr std::array<std::pair<std::string_view, Balance>, 3> kBalances{{
    {"round_robin", Balance::RoundRobin},
    {"least_conn", Balance::LeastConn},
    {"ip_hash", Balance::IpHash},
}};
constexpr std::string_view kUpstreamNamePattern = "[A-Za-z0-9_-]+";  // isUpstreamName

const std::array<KeyRule<UpstreamTls>, 4> kUpstreamTlsKeys{{
    {"verify", type::boolean(), "true",
     "verify the server's chain and host name",
     [](Decoder& d, const Item& v, UpstreamTls& tls) { d.readBool(v, tls.verify); }},
    {"ca", type::path(), "",
     "PEM CA bundle; absent = the system's default store",
     [](Decoder& d, const Item& v, UpstreamTls& tls) { d.readPath(v, tls.ca); }},
    {"sni", type::string(kHostNamePattern), "",
     "server name sent and verified; absent = the server's host when it is a name",
     [](Decoder& d, const Item& v, UpstreamTls& tls) {
         std::string name;
         if (!d.readString(v, name)) return;
         if (!isHostName(name)) {
             d.error(v, "expected a host name");
             return;
         }
         tls.sni = toLower(std::move(name));
     }},
    {"keylog_file", type::path(), "",
     "write TLS secrets in the NSS key log format (for Wireshark); off unless set",
     [](Decoder& d, const Item& v, UpstreamTls& tls) { d.readPath(v, tls.keylog_file); }},
}};

const std::array<KeyRule<Upstream>, 7> kUpstreamKeys{{
    {"servers", type::hostPortList(), "",
     "host:port of each server",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (!v.node.IsNull() && !v.node.IsSequence()) {
             d.error(v, "expected a list of host:port");
             return;
         }
         d.forEachElement(v, [&](const Item& element) {
             std::string text;
             if (!d.readString(element, text)) return;
             auto server = parseHostPort(text);
             if (!server || server->host.empty() || server->port == 0) {
                 d.error(element, "invalid server address \"" + text +
                                      "\" (expected host:port or [v6]:port)");
                 return;
             }
             u.servers.push_back(*server);
         });
     }},
    {"balance", type::choice<kBalances>(), "round_robin",
     "how requests are spread over the servers",
     [](Decoder& d, const Item& v, Upstream& u) {
         d.readChoice(v, kBalances, u.balance);
     }},
    {"keepalive", type::count(), "32",
     "idle pooled connections per worker; 0 = no pooling",
     [](Decoder& d, const Item& v, Upstream& u) { d.readCount(v, u.keepalive); }},
    {"connect_timeout", type::duration().aboveZero(), "2s",
     "504 when connecting takes longer",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (d.readDuration(v, u.connect_timeout)) {
             requirePositive(d, v, u.connect_timeout.count() > 0);
         }
     }},
    {"send_timeout", type::duration().aboveZero(), "60s",
     "504 when the upstream takes no request bytes this long",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (d.readDuration(v, u.send_timeout)) requirePositive(d, v, u.send_timeout.count() > 0);
     }},
    {"read_timeout", type::duration().aboveZero(), "60s",
     "504 when the upstream is silent this long",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (d.readDuration(v, u.read_timeout)) requirePositive(d, v, u.read_timeout.count() > 0);
     }},
    {"tls", type::mapping<kUpstreamTlsKeys>(), "",
     "connect to the servers over TLS (tls: {} for the defaults)",
     [](Decoder& d, const Item& v, Upstream& u) {
         u.tls.emplace();  // `tls: {}` (or an empty `tls:`) means TLS with the defaults
         decodeMapping(d, v, kUpstreamTlsKeys, *u.tls);
     }},
}};

bool isUpstreamName(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    }
    return true;
}

void decodeUpstreams(Decoder& d, const Item& v, Config& c) {
    d.forEachEntry(v, [&](const std::string& name, const YAML::Mark& key_mark, const Item& value) {
        // Errors about the upstream as a whole (no servers) point at its name.
        d.remember(value.path, key_mark);
        if (!isUpstreamName(name)) {
            // Names appear in key paths and metrics labels: keep them plain.
            d.error(key_mark, value.path, "an upstream name is letters, digits, - and _");
        }
        Upstream upstream;
        upstream.name = name;
        upstream.mark = toSourceMark(key_mark);
        decodeMapping(d, value, kUpstreamKeys, upstream);
        c.upstreams.emplace(name, std::move(upstream));
    });
}

// ---- routes -------------------------------------------------------------------------------

// An Origin header value is scheme://host[:port] with no path (RFC 6454 6.1), so a configured
// origin with a path or a trailing slash would never match.
bool isOrigin(std::string_view text) {
    std::string_view rest;
    if (text.starts_with("https://")) {
        rest = text.substr(8);
    } else if (text.starts_with("http://")) {
        rest = text.substr(7);
    } else {
        return false;
    }
    if (rest.empty()) return false;
    for (char c : rest) {
        auto u = static_cast<unsigned char>(c);
        if (c == '/' || c == '?' || c == '#' || u <= 0x20 || u >= 0x7f) return false;
    }
    return true;
}

constexpr std::array<std::pair<std::string_view, WebSocketMode>, 3> kWebSocketModes{{
    {"tunnel", WebSocketMode::Tunnel},
    {"frames", WebSocketMode::Frames},
    {"http", WebSocketMode::Http},
}};
constexpr std::string_view kNonEmptyPattern = ".+";  // a key: any string but ""
// isOrigin: scheme://host[:port], visible ASCII but '/', '?' and '#'.
constexpr std::string_view kOriginPattern = R"(https?://[!"$-.0->@-~]+)";

const std::array<KeyRule<WebSocketRate>, 2> kBurstKeys{{
    {"messages", type::count().aboveZero(), "",
     "message bucket size; absent = one second's worth",
     [](Decoder& d, const Item& v, WebSocketRate& r) {
         std::size_t n = 0;
         if (!d.readCount(v, n)) return;
         requirePositive(d, v, n > 0);
         r.burst_messages = n;
     }},
    {"bytes", type::size().aboveZero(), "",
     "byte bucket size; absent = one second's worth",
     [](Decoder& d, const Item& v, WebSocketRate& r) {
         std::size_t n = 0;
         if (!d.readSize(v, n)) return;
         requirePositive(d, v, n > 0);
         r.burst_bytes = n;
     }},
}};

const std::array<KeyRule<WebSocketRate>, 3> kRateKeys{{
    {"messages", type::rate().aboveZero(), "",
     "data messages per second (100/s, 600/m), each direction: over it close 1008",
     [](Decoder& d, const Item& v, WebSocketRate& r) { d.readRate(v, RateOf::Events, false, r.messages); }},
    {"bytes", type::byteRate().aboveZero(), "",
     "frame bytes per second (1MiB/s), each direction: over it close 1008",
     [](Decoder& d, const Item& v, WebSocketRate& r) { d.readRate(v, RateOf::Bytes, false, r.bytes); }},
    {"burst", type::mapping<kBurstKeys>(), "",
     "token bucket sizes",
     [](Decoder& d, const Item& v, WebSocketRate& r) { decodeMapping(d, v, kBurstKeys, r); }},
}};

const std::array<KeyRule<WebSocketHttpSettings>, 3> kWebSocketHttpKeys{{
    {"max_batch_bytes", type::size().aboveZero(), "64KiB",
     "client events queued for the next request to the app; reading the client pauses beyond",
     [](Decoder& d, const Item& v, WebSocketHttpSettings& h) {
         if (d.readSize(v, h.max_batch_bytes)) requirePositive(d, v, h.max_batch_bytes > 0);
     }},
    {"request_timeout", type::duration().aboveZero(), "30s",
     "the app's answer: beyond it 504 before the 101, then close 1011",
     [](Decoder& d, const Item& v, WebSocketHttpSettings& h) {
         if (d.readDuration(v, h.request_timeout)) requirePositive(d, v, h.request_timeout.count() > 0);
     }},
    {"sig_key", type::string(kNonEmptyPattern), "",
     "HS256 key of the Grip-Sig JWT on each request to the app; absent = no Grip-Sig",
     [](Decoder& d, const Item& v, WebSocketHttpSettings& h) {
         if (d.readString(v, h.sig_key) && h.sig_key.empty()) d.error(v, "expected a key (leave sig_key out for none)");
     }},
}};

const std::array<KeyRule<WebSocketSettings>, 13> kWebSocketKeys{{
    {"mode", type::choice<kWebSocketModes>(), "tunnel",
     "tunnel: opaque bytes; frames: parse and check every frame; http: events to the upstream as HTTP POSTs",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         d.readChoice(v, kWebSocketModes, ws.mode);
     }},
    {"http", type::mapping<kWebSocketHttpKeys>(), "",
     "mode http: the WebSocket-over-HTTP bridge",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { decodeMapping(d, v, kWebSocketHttpKeys, ws.http); }},
    {"max_message_bytes", type::size().aboveZero(), "1MiB",
     "frames mode, http mode and built-ins: close 1009 beyond",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         if (d.readSize(v, ws.max_message_bytes)) requirePositive(d, v, ws.max_message_bytes > 0);
     }},
    {"idle_timeout", type::duration(), "10m",
     "no traffic either way this long: close; 0 = never",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readDuration(v, ws.idle_timeout); }},
    {"ping_interval", type::duration(), "30s",
     "frames mode and built-ins: ping the client this often; 0 = no pings",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readDuration(v, ws.ping_interval); }},
    {"origins", type::stringList(kOriginPattern), "",
     "allowed Origin values (scheme://host[:port]); absent = any; a mismatch gets 403",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         std::vector<std::string> origins;
         if (!d.readStringList(v, origins)) return;
         bool ok = true;
         for (std::size_t i = 0; i < origins.size(); ++i) {
             if (!isOrigin(origins[i])) {
                 std::string path = indexPath(v.path, i);
                 d.error(d.markOf(path), path,
                         "expected an origin like https://example.com (scheme://host[:port], no "
                         "path)");
                 ok = false;
             }
             origins[i] = toLower(std::move(origins[i]));  // RFC 6454 4: scheme and host are
                                                           // compared in lower case
         }
         if (ok) ws.origins = std::move(origins);
     }},
    {"subprotocols", type::stringList(kTokenPattern), "",
     "allowed subprotocols; absent = whatever the two sides agree",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         std::vector<std::string> protocols;
         if (!d.readStringList(v, protocols)) return;
         bool ok = true;
         for (std::size_t i = 0; i < protocols.size(); ++i) {
             // RFC 6455 4.1: each subprotocol is a token.
             if (!isToken(protocols[i])) {
                 std::string path = indexPath(v.path, i);
                 d.error(d.markOf(path), path, "expected a subprotocol name (an HTTP token)");
                 ok = false;
             }
         }
         if (ok) ws.subprotocols = std::move(protocols);
     }},
    {"rate", type::mapping<kRateKeys>(), "",
     "frames mode and built-ins: token buckets per direction; absent = no limit",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { decodeMapping(d, v, kRateKeys, ws.rate); }},
    {"max_lifetime", type::duration(), "0",
     "session age: then close 1001 (tunnel: TCP close); 0 = no limit",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readDuration(v, ws.max_lifetime); }},
    {"max_lifetime_grace", type::duration().aboveZero(), "30s",
     "after the max_lifetime close, wait this long for the peers' close",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         if (d.readDuration(v, ws.max_lifetime_grace)) requirePositive(d, v, ws.max_lifetime_grace.count() > 0);
     }},
    {"trace", type::boolean(), "false",
     "log one line per frame (not in tunnel mode)",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readBool(v, ws.trace); }},
    {"trace_payload_bytes", type::size().atMost(kMaxTracePayloadBytes), "0",
     "first bytes of text payloads in trace lines; 0 = none",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         std::size_t n = 0;
         if (!d.readSize(v, n)) return;
         if (n > kMaxTracePayloadBytes) {
             d.error(v, "at most " + std::to_string(kMaxTracePayloadBytes) + " bytes");
             return;
         }
         ws.trace_payload_bytes = n;
     }},
    {"trace_rate", type::rate().aboveZero(), "100/s",
     "trace lines per second per worker and route; beyond, counted and summarised",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readRate(v, RateOf::Events, false, ws.trace_rate); }},
}};

// RFC 6750 2.1: b64token, the characters a Bearer token may hold; any other could never match.
bool isBearerToken(std::string_view token) {
    std::size_t end = token.size();
    while (end > 0 && token[end - 1] == '=') --end;
    if (end == 0) return false;
    for (std::size_t i = 0; i < end; ++i) {
        char c = token[i];
        if (!std::isalnum(static_cast<unsigned char>(c)) &&
            std::string_view("-._~+/").find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

constexpr std::string_view kBearerTokenPattern = "[A-Za-z0-9._~+/-]+=*";  // isBearerToken

// publish_token and publish.token: `out` is left as it was unless the value is a bearer token.
void readBearerToken(Decoder& d, const Item& v, std::string& out) {
    std::string token;
    if (!d.readString(v, token)) return;
    if (!isBearerToken(token)) {
        d.error(v, "expected a bearer token (letters, digits and -._~+/)");
        return;
    }
    out = std::move(token);
}

const std::array<KeyRule<PublishSettings>, 3> kPublishKeys{{
    {"token", type::string(kBearerTokenPattern), "",
     "\"Authorization: Bearer TOKEN\" (a GRIP URL's ?key=TOKEN); absent = none",
     [](Decoder& d, const Item& v, PublishSettings& p) { readBearerToken(d, v, p.token); }},
    {"jwt_key", type::string(kNonEmptyPattern), "",
     "HS256 key of \"Authorization: Bearer JWT\"; absent = no JWTs",
     [](Decoder& d, const Item& v, PublishSettings& p) {
         if (d.readString(v, p.jwt_key) && p.jwt_key.empty()) d.error(v, "expected a key (leave jwt_key out for none)");
     }},
    {"iss", type::string(), "",
     "with jwt_key: the issuer the JWT must name; absent = any",
     [](Decoder& d, const Item& v, PublishSettings& p) { d.readString(v, p.iss); }},
}};

const std::array<KeyRule<PubSubSettings>, 10> kPubSubKeys{{
    {"client_publish", type::boolean(), "false",
     "a subscriber's message goes to its channel",
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readBool(v, ps.client_publish); }},
    {"publish_token", type::string(kBearerTokenPattern), "",
     "HTTP POST needs \"Authorization: Bearer TOKEN\"",
     [](Decoder& d, const Item& v, PubSubSettings& ps) { readBearerToken(d, v, ps.publish_token); }},
    {"history", type::count(), "100",
     "last N messages kept per channel; 0 = no history",
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readCount(v, ps.history); }},
    {"queue_bytes", type::size().aboveZero(), "1MiB",
     "per-subscriber queue bound; beyond it the subscriber is closed 1008",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         if (d.readSize(v, ps.queue_bytes)) requirePositive(d, v, ps.queue_bytes > 0);
     }},
    {"history_bytes", type::size(), "1MiB",
     "kept bytes per channel (payloads + ~200 B each); 0 = no history",
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readSize(v, ps.history_bytes); }},
    {"history_ttl", type::duration(), "10m",
     "kept messages older than this are dropped; 0 = no age limit",
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readDuration(v, ps.history_ttl); }},
    {"channel_idle_timeout", type::duration().aboveZero(), "10m",
     "no subscriber and no publish this long: the channel and its history go",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         if (d.readDuration(v, ps.channel_idle_timeout)) {
             requirePositive(d, v, ps.channel_idle_timeout.count() > 0);
         }
     }},
    {"max_message_bytes", type::size().aboveZero(), "256KiB",
     "a publish: POST 413, a client's message close 1009 beyond",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         if (d.readSize(v, ps.max_message_bytes)) requirePositive(d, v, ps.max_message_bytes > 0);
     }},
    {"publish_rate", type::rate("off"), "100/s",
     "publishes per second per channel (100/s, 600/m); beyond: 429 + Retry-After; off = no limit",
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readRate(v, RateOf::Events, true, ps.publish_rate); }},
    {"publish_burst", type::count().aboveZero(), "",
     "token bucket size; absent = one second's worth of publish_rate",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         std::size_t burst = 0;
         if (!d.readCount(v, burst)) return;
         requirePositive(d, v, burst > 0);
         ps.publish_burst = burst;
     }},
}};

// `pubsub.backplane`.
constexpr std::string_view kKeyPrefixPattern = "[^{} \\n]+";  // no braces: they are the hash tag
const std::array<KeyRule<BackplaneSettings>, 5> kBackplaneKeys{{
    {"redis", type::string(), "",
     "redis://[:password@]host:port/db or unix:///path/redis.sock",
     [](Decoder& d, const Item& v, BackplaneSettings& b) {
         if (!d.readString(v, b.redis)) return;
         std::string error;
         if (!parseRedisUrl(b.redis, b.address, error)) d.error(v, error);
         b.enabled = true;
     }},
    {"key_prefix", type::string(kKeyPrefixPattern), "portico",
     "every Redis key and channel starts with it",
     [](Decoder& d, const Item& v, BackplaneSettings& b) {
         if (!d.readString(v, b.key_prefix)) return;
         if (b.key_prefix.empty() || b.key_prefix.find_first_of("{} \n") != std::string::npos)
             d.error(v, "must be non-empty, without braces, spaces or newlines");
     }},
    {"connect_timeout", type::duration().aboveZero(), "2s",
     "connecting to Redis; beyond it the backplane is down and retried",
     [](Decoder& d, const Item& v, BackplaneSettings& b) {
         if (d.readDuration(v, b.connect_timeout)) requirePositive(d, v, b.connect_timeout.count() > 0);
     }},
    {"publish_timeout", type::duration().aboveZero(), "2s",
     "a publish Redis cannot take in time is answered 503",
     [](Decoder& d, const Item& v, BackplaneSettings& b) {
         if (d.readDuration(v, b.publish_timeout)) requirePositive(d, v, b.publish_timeout.count() > 0);
     }},
    {"password_file", type::string(), "",
     "file holding the Redis password (instead of one in the URL)",
     [](Decoder& d, const Item& v, BackplaneSettings& b) { d.readString(v, b.password_file); }},
}};

// The top-level `pubsub:` block.
const std::array<KeyRule<PubSubLimits>, 3> kPubSubLimitsKeys{{
    {"history_budget", type::size(), "32MiB",
     "every channel's history together; beyond it the oldest messages go",
     [](Decoder& d, const Item& v, PubSubLimits& l) { d.readSize(v, l.history_budget); }},
    {"max_channels", type::count().aboveZero(), "10000",
     "beyond: a new channel is refused (POST 503, subscribe 503 or close 1013)",
     [](Decoder& d, const Item& v, PubSubLimits& l) {
         if (d.readCount(v, l.max_channels)) requirePositive(d, v, l.max_channels > 0);
     }},
    {"backplane", type::mapping<kBackplaneKeys>(), "",
     "channels shared by every node through Redis; absent = channels stay in this process",
     [](Decoder& d, const Item& v, PubSubLimits& l) { decodeMapping(d, v, kBackplaneKeys, l.backplane); }},
}};

// Headers Portico owns: setting them from the configuration would break message framing
// (RFC 9112 6.1-6.3) or the connection's handling (RFC 9110 7.6.1).
bool isManagedHeader(const std::string& lower_name) {
    static constexpr std::array<std::string_view, 9> kManaged{
        "content-length", "transfer-encoding", "connection",       "keep-alive",          "te",
        "trailer",        "upgrade",           "proxy-connection", "sec-websocket-accept"};
    for (std::string_view name : kManaged) {
        if (lower_name == name) return true;
    }
    return false;
}

void decodeSetHeaders(Decoder& d, const Item& v, Route& r) {
    std::set<std::string> seen;  // header names are case-insensitive (RFC 9110 5.1)
    d.forEachEntry(v, [&](const std::string& name, const YAML::Mark& key_mark, const Item& value) {
        std::string lower = toLower(name);
        if (!isToken(name)) {
            d.error(key_mark, value.path, "expected a header name");
            return;
        }
        if (isManagedHeader(lower)) {
            d.error(key_mark, value.path, name + " is managed by Portico and cannot be set");
            return;
        }
        if (!seen.insert(lower).second) {
            d.error(key_mark, value.path, "duplicate header (names are case-insensitive)");
            return;
        }
        std::string text;
        if (!d.readString(value, text)) return;
        if (!isFieldValue(text)) {
            d.error(value, "a header value cannot hold control characters");
            return;
        }
        r.set_headers.emplace_back(name, std::move(text));
    });
}

constexpr std::array<std::pair<std::string_view, HandlerKind>, 8> kHandlers{{
    {"health", HandlerKind::Health},
    {"static", HandlerKind::Static},
    {"echo", HandlerKind::Echo},
    {"pubsub", HandlerKind::PubSub},
    {"metrics", HandlerKind::Metrics},
    {"status", HandlerKind::Status},
    {"dashboard", HandlerKind::Dashboard},
    {"publish", HandlerKind::Publish},
}};
constexpr std::string_view kRouteHostPattern = R"((\*\.)?[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*)";
// "/prefix" or "=/exact": visible ASCII but '?' and '#' (the query is never part of a route).
// status_url: visible ASCII but quotes, <, >, backslash and &, and no "//" (never another origin).
constexpr std::string_view kStatusUrlPattern = R"((?!.*//)[!#-%(-;=?-\[\]-~]+)";
constexpr std::string_view kRoutePathPattern = R"(=?/[!"$->@-~]*)";

const std::array<KeyRule<Route>, 11> kRouteKeys{{
    {"host", type::string(kRouteHostPattern), "",
     "exact host or *.example.com; absent = any host",
     [](Decoder& d, const Item& v, Route& r) {
         std::string host;
         if (!d.readString(v, host)) return;
         std::string_view name = host;
         if (name.starts_with("*.")) name.remove_prefix(2);
         if (!isHostName(name)) {
             d.error(v, "expected a host name like example.com or *.example.com");
             return;
         }
         r.host = toLower(std::move(host));  // RFC 9110 4.2.3: host names are case-insensitive
     }},
    {"path", type::string(kRoutePathPattern), "/",
     "prefix match; \"=/exact\" matches one path only",
     [](Decoder& d, const Item& v, Route& r) {
         std::string text;
         if (!d.readString(v, text)) return;
         bool exact = text.starts_with('=');
         std::string path = exact ? text.substr(1) : text;
         bool ok = !path.empty() && path.front() == '/';
         for (char c : path) {
             auto u = static_cast<unsigned char>(c);
             // RFC 9112 3.2: the origin-form's path; the query is never part of a route.
             if (u <= 0x20 || u >= 0x7f || c == '?' || c == '#') ok = false;
         }
         if (!ok) {
             d.error(v, "expected a path starting with / (prefix) or =/ (exact)");
             return;
         }
         r.path = std::move(path);
         r.exact_path = exact;
     }},
    {"upstream", type::string(), "",
     "name of the upstream that serves this route",
     [](Decoder& d, const Item& v, Route& r) {
         if (d.readString(v, r.upstream) && r.upstream.empty()) {
             d.error(v, "expected an upstream name");
         }
     }},
    {"handler", type::choice<kHandlers>(), "",
     "built-in handler that serves this route",
     [](Decoder& d, const Item& v, Route& r) {
         d.readChoice(v, kHandlers, r.handler);
     }},
    {"strip_prefix", type::boolean(), "false",
     "remove path from the request target before proxying",
     [](Decoder& d, const Item& v, Route& r) { d.readBool(v, r.strip_prefix); }},
    {"set_headers", type::stringMap(kTokenPattern), "",
     "headers set on the upstream request",
     decodeSetHeaders},
    {"root", type::path(), "",
     "handler static: the folder served",
     [](Decoder& d, const Item& v, Route& r) { d.readPath(v, r.root); }},
    {"status_url", type::string(kStatusUrlPattern), "status",
     "handler dashboard: where the page reads the status JSON, relative to the page or absolute",
     [](Decoder& d, const Item& v, Route& r) {
         if (!d.readString(v, r.status_url)) return;
         // The page puts it in an HTML attribute and fetches it from its own origin.
         bool ok = !r.status_url.empty() && r.status_url.find("//") == std::string::npos;
         for (char c : r.status_url) {
             auto u = static_cast<unsigned char>(c);
             if (u <= 0x20 || u >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '\'' || c == '&') ok = false;
         }
         if (!ok) d.error(v, "expected a path on this server: relative to the page (\"status\") or absolute (\"/portico/status\")");
     }},
    {"websocket", type::mapping<kWebSocketKeys>(), "",
     "WebSocket settings of upstream routes and built-in endpoints",
     [](Decoder& d, const Item& v, Route& r) {
         r.websocket_configured = true;
         decodeMapping(d, v, kWebSocketKeys, r.websocket);
     }},
    {"pubsub", type::mapping<kPubSubKeys>(), "", "handler pubsub: channel settings",
     [](Decoder& d, const Item& v, Route& r) { decodeMapping(d, v, kPubSubKeys, r.pubsub); }},
    {"publish", type::mapping<kPublishKeys>(), "", "handler publish: who may publish",
     [](Decoder& d, const Item& v, Route& r) { decodeMapping(d, v, kPublishKeys, r.publish); }},
}};

void decodeRoutes(Decoder& d, const Item& v, Config& c) {
    d.forEachElement(v, [&](const Item& element) {
        Route route;
        route.mark = toSourceMark(element.mark);
        decodeMapping(d, element, kRouteKeys, route);
        c.routes.push_back(std::move(route));
    });
}

// ---- root ---------------------------------------------------------------------------------

void decodeWorkers(Decoder& d, const Item& v, Config& c) {
    if (v.node.IsScalar()) {
        const std::string& text = v.node.Scalar();
        if (text == "auto") {
            c.workers = 0;
            return;
        }
        auto count = parseCount(text);
        if (count && *count > kMaxWorkers) {
            d.error(v, "at most " + std::to_string(kMaxWorkers) + " workers");
            return;
        }
        if (count && *count > 0) {
            c.workers = static_cast<unsigned>(*count);
            return;
        }
    }
    d.error(v, "expected auto or a positive integer");
}

void decodeDrainTimeout(Decoder& d, const Item& v, Config& c) {
    if (v.node.IsScalar()) {
        if (v.node.Scalar() == "off") {
            c.reload_drain_timeout.reset();
            return;
        }
        if (auto timeout = parseDuration(v.node.Scalar())) {
            c.reload_drain_timeout = *timeout;
            return;
        }
    }
    d.error(v, "expected off or a duration like 10m");
}

const std::array<KeyRule<Config>, 9> kRootKeys{{
    {"workers", type::count("auto").aboveZero().atMost(kMaxWorkers), "auto",
     "worker threads (1..1024); auto = number of CPUs",
     decodeWorkers},
    {"shutdown_timeout", type::duration(), "10s",
     "graceful stop: how long requests in flight may take",
     [](Decoder& d, const Item& v, Config& c) { d.readDuration(v, c.shutdown_timeout); }},
    {"reload_drain_timeout", type::duration("off"), "off",
     "after a reload, close old upgraded connections with 1001 this long later; off = never",
     decodeDrainTimeout},
    {"log", type::mapping<kLogKeys>(), "",
     "error and access logs",
     [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kLogKeys, c.log); }},
    {"limits", type::mapping<kLimitsKeys>(), "",
     "bounds on clients and requests",
     [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kLimitsKeys, c.limits); }},
    {"pubsub", type::mapping<kPubSubLimitsKeys>(), "",
     "the channel registry every pubsub route and worker shares",
     [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kPubSubLimitsKeys, c.pubsub); }},
    {"listeners", type::mappingList<kListenerKeys>(), "",
     "addresses Portico accepts connections on",
     decodeListeners},
    {"upstreams", type::namedMappings<kUpstreamKeys>(kUpstreamNamePattern), "",
     "backend server groups, by name",
     decodeUpstreams},
    {"routes", type::mappingList<kRouteKeys>(), "",
     "first match wins",
     decodeRoutes},
}};

}  // namespace

SectionDocs rootKeyDocs() {
    return type::docsOf<kRootKeys>();
}

Config decodeConfig(Decoder& decoder, const Item& root) {
    Config config;
    decoder.remember(root.path, root.mark);
    decodeMapping(decoder, root, kRootKeys, config);
    return config;
}

}  // namespace portico::config::detail
