// Pass 1: decoding. One table of known keys per section, in the order of portico.yaml (see
// issue 2's "YAML contract", extended by the WebSocket, TLS and operations issues). A table entry
// only checks what its one value can tell; relations between keys are validate.cpp's business.

#include <array>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>

#include "config/decoder.h"
#include "config/passes.h"
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

// ---- log ----------------------------------------------------------------------------------

const std::array<KeyRule<LogSettings>, 3> kLogKeys{{
    {"level",
     [](Decoder& d, const Item& v, LogSettings& log) {
         d.readChoice(v,
                      {{"error", LogLevel::Error},
                       {"warn", LogLevel::Warn},
                       {"info", LogLevel::Info},
                       {"debug", LogLevel::Debug}},
                      log.level);
     }},
    {"access",
     [](Decoder& d, const Item& v, LogSettings& log) {
         if (!v.node.IsScalar() || v.node.Scalar().empty()) {
             d.error(v, "expected stdout, off or a file path");
             return;
         }
         log.access = v.node.Scalar();
     }},
    {"access_format",
     [](Decoder& d, const Item& v, LogSettings& log) {
         d.readChoice(v, {{"json", AccessFormat::Json}, {"combined", AccessFormat::Combined}},
                      log.access_format);
     }},
}};

// ---- limits -------------------------------------------------------------------------------

void requirePositive(Decoder& d, const Item& v, bool positive) {
    if (!positive) d.error(v, "must be greater than 0");
}

const std::array<KeyRule<Limits>, 12> kLimitsKeys{{
    {"max_connections",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.max_connections)) requirePositive(d, v, l.max_connections > 0);
     }},
    {"max_header_bytes",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readSize(v, l.max_header_bytes)) requirePositive(d, v, l.max_header_bytes > 0);
     }},
    {"max_body_bytes",  // 0 = unlimited
     [](Decoder& d, const Item& v, Limits& l) { d.readSize(v, l.max_body_bytes); }},
    {"client_header_timeout",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readDuration(v, l.client_header_timeout)) {
             requirePositive(d, v, l.client_header_timeout.count() > 0);
         }
     }},
    {"client_body_timeout",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readDuration(v, l.client_body_timeout)) requirePositive(d, v, l.client_body_timeout.count() > 0);
     }},
    {"keepalive_timeout",  // 0 = no keep-alive
     [](Decoder& d, const Item& v, Limits& l) { d.readDuration(v, l.keepalive_timeout); }},
    {"per_ip_connections",  // 0 = off
     [](Decoder& d, const Item& v, Limits& l) { d.readCount(v, l.per_ip_connections); }},
    {"per_ip_websockets",  // 0 = off
     [](Decoder& d, const Item& v, Limits& l) { d.readCount(v, l.per_ip_websockets); }},
    {"per_ip_ipv6_prefix",
     [](Decoder& d, const Item& v, Limits& l) {
         std::size_t bits = 0;
         if (!d.readCount(v, bits)) return;
         if (bits < 1 || bits > 128) {
             d.error(v, "expected a prefix length from 1 to 128");
             return;
         }
         l.per_ip_ipv6_prefix = static_cast<unsigned>(bits);
     }},
    {"per_ip_upgrade_rate",  // 0 / off = off
     [](Decoder& d, const Item& v, Limits& l) { d.readRate(v, RateOf::Events, true, l.per_ip_upgrade_rate); }},
    {"per_ip_upgrade_burst",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.per_ip_upgrade_burst)) requirePositive(d, v, l.per_ip_upgrade_burst > 0);
     }},
    {"per_ip_table_size",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.per_ip_table_size)) requirePositive(d, v, l.per_ip_table_size > 0);
     }},
}};

// ---- listeners ----------------------------------------------------------------------------

const std::array<KeyRule<CertificateFiles>, 2> kCertificateKeys{{
    {"cert", [](Decoder& d, const Item& v, CertificateFiles& c) { d.readPath(v, c.cert); }},
    {"key", [](Decoder& d, const Item& v, CertificateFiles& c) { d.readPath(v, c.key); }},
}};

const std::array<KeyRule<ListenerTls>, 6> kListenerTlsKeys{{
    {"certificates",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         d.forEachElement(v, [&](const Item& element) {
             CertificateFiles files;
             files.mark = toSourceMark(element.mark);
             decodeMapping(d, element, kCertificateKeys, files);
             tls.certificates.push_back(std::move(files));
         });
     }},
    {"min_version",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         d.readChoice(v, {{"1.2", TlsVersion::Tls12}, {"1.3", TlsVersion::Tls13}}, tls.min_version);
     }},
    {"ciphers",
     [](Decoder& d, const Item& v, ListenerTls& tls) {
         if (d.readString(v, tls.ciphers) && tls.ciphers.empty()) {
             d.error(v, "expected an OpenSSL cipher list");
         }
     }},
    {"alpn",
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
    {"session_tickets",
     [](Decoder& d, const Item& v, ListenerTls& tls) { d.readBool(v, tls.session_tickets); }},
    {"client_ca",
     [](Decoder& d, const Item& v, ListenerTls& tls) { d.readPath(v, tls.client_ca); }},
}};

const std::array<KeyRule<Listener>, 3> kListenerKeys{{
    {"address",
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
    {"redirect_https",
     [](Decoder& d, const Item& v, Listener& l) {
         std::uint16_t port = 0;
         if (d.readPort(v, port)) l.redirect_https = port;
     }},
    {"tls",
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

const std::array<KeyRule<UpstreamTls>, 3> kUpstreamTlsKeys{{
    {"verify", [](Decoder& d, const Item& v, UpstreamTls& tls) { d.readBool(v, tls.verify); }},
    {"ca", [](Decoder& d, const Item& v, UpstreamTls& tls) { d.readPath(v, tls.ca); }},
    {"sni",
     [](Decoder& d, const Item& v, UpstreamTls& tls) {
         std::string name;
         if (!d.readString(v, name)) return;
         if (!isHostName(name)) {
             d.error(v, "expected a host name");
             return;
         }
         tls.sni = toLower(std::move(name));
     }},
}};

const std::array<KeyRule<Upstream>, 6> kUpstreamKeys{{
    {"servers",
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
    {"balance",
     [](Decoder& d, const Item& v, Upstream& u) {
         d.readChoice(v,
                      {{"round_robin", Balance::RoundRobin},
                       {"least_conn", Balance::LeastConn},
                       {"ip_hash", Balance::IpHash}},
                      u.balance);
     }},
    {"keepalive",  // 0 = no pooled connections
     [](Decoder& d, const Item& v, Upstream& u) { d.readCount(v, u.keepalive); }},
    {"connect_timeout",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (d.readDuration(v, u.connect_timeout)) {
             requirePositive(d, v, u.connect_timeout.count() > 0);
         }
     }},
    {"read_timeout",
     [](Decoder& d, const Item& v, Upstream& u) {
         if (d.readDuration(v, u.read_timeout)) requirePositive(d, v, u.read_timeout.count() > 0);
     }},
    {"tls",
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

const std::array<KeyRule<WebSocketRate>, 2> kBurstKeys{{
    {"messages",
     [](Decoder& d, const Item& v, WebSocketRate& r) {
         std::size_t n = 0;
         if (!d.readCount(v, n)) return;
         requirePositive(d, v, n > 0);
         r.burst_messages = n;
     }},
    {"bytes",
     [](Decoder& d, const Item& v, WebSocketRate& r) {
         std::size_t n = 0;
         if (!d.readSize(v, n)) return;
         requirePositive(d, v, n > 0);
         r.burst_bytes = n;
     }},
}};

const std::array<KeyRule<WebSocketRate>, 3> kRateKeys{{
    {"messages", [](Decoder& d, const Item& v, WebSocketRate& r) { d.readRate(v, RateOf::Events, false, r.messages); }},
    {"bytes", [](Decoder& d, const Item& v, WebSocketRate& r) { d.readRate(v, RateOf::Bytes, false, r.bytes); }},
    {"burst", [](Decoder& d, const Item& v, WebSocketRate& r) { decodeMapping(d, v, kBurstKeys, r); }},
}};

const std::array<KeyRule<WebSocketHttpSettings>, 3> kWebSocketHttpKeys{{
    {"max_batch_bytes",
     [](Decoder& d, const Item& v, WebSocketHttpSettings& h) {
         if (d.readSize(v, h.max_batch_bytes)) requirePositive(d, v, h.max_batch_bytes > 0);
     }},
    {"request_timeout",
     [](Decoder& d, const Item& v, WebSocketHttpSettings& h) {
         if (d.readDuration(v, h.request_timeout)) requirePositive(d, v, h.request_timeout.count() > 0);
     }},
    {"sig_key",
     [](Decoder& d, const Item& v, WebSocketHttpSettings& h) {
         if (d.readString(v, h.sig_key) && h.sig_key.empty()) d.error(v, "expected a key (leave sig_key out for none)");
     }},
}};

const std::array<KeyRule<WebSocketSettings>, 10> kWebSocketKeys{{
    {"mode",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         d.readChoice(v,
                      {{"tunnel", WebSocketMode::Tunnel},
                       {"frames", WebSocketMode::Frames},
                       {"http", WebSocketMode::Http}},
                      ws.mode);
     }},
    {"http", [](Decoder& d, const Item& v, WebSocketSettings& ws) { decodeMapping(d, v, kWebSocketHttpKeys, ws.http); }},
    {"max_message_bytes",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         if (d.readSize(v, ws.max_message_bytes)) requirePositive(d, v, ws.max_message_bytes > 0);
     }},
    {"idle_timeout",  // 0 = never
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readDuration(v, ws.idle_timeout); }},
    {"ping_interval",  // 0 = no pings
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readDuration(v, ws.ping_interval); }},
    {"origins",
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
    {"subprotocols",
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
    {"rate", [](Decoder& d, const Item& v, WebSocketSettings& ws) { decodeMapping(d, v, kRateKeys, ws.rate); }},
    {"max_lifetime",  // 0 = no limit
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readDuration(v, ws.max_lifetime); }},
    {"max_lifetime_grace",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         if (d.readDuration(v, ws.max_lifetime_grace)) requirePositive(d, v, ws.max_lifetime_grace.count() > 0);
     }},
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

const std::array<KeyRule<PublishSettings>, 3> kPublishKeys{{
    {"token",
     [](Decoder& d, const Item& v, PublishSettings& p) {
         std::string token;
         if (!d.readString(v, token)) return;
         if (!isBearerToken(token)) {
             d.error(v, "expected a bearer token (letters, digits and -._~+/)");
             return;
         }
         p.token = std::move(token);
     }},
    {"jwt_key",
     [](Decoder& d, const Item& v, PublishSettings& p) {
         if (d.readString(v, p.jwt_key) && p.jwt_key.empty()) d.error(v, "expected a key (leave jwt_key out for none)");
     }},
    {"iss", [](Decoder& d, const Item& v, PublishSettings& p) { d.readString(v, p.iss); }},
}};

const std::array<KeyRule<PubSubSettings>, 10> kPubSubKeys{{
    {"client_publish",
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readBool(v, ps.client_publish); }},
    {"publish_token",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         std::string token;
         if (!d.readString(v, token)) return;
         if (!isBearerToken(token)) {
             d.error(v, "expected a bearer token (letters, digits and -._~+/)");
             return;
         }
         ps.publish_token = std::move(token);
     }},
    {"history",  // 0 = no history
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readCount(v, ps.history); }},
    {"queue_bytes",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         if (d.readSize(v, ps.queue_bytes)) requirePositive(d, v, ps.queue_bytes > 0);
     }},
    {"history_bytes",  // 0 = no history
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readSize(v, ps.history_bytes); }},
    {"history_ttl",  // 0 = no age limit
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readDuration(v, ps.history_ttl); }},
    {"channel_idle_timeout",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         if (d.readDuration(v, ps.channel_idle_timeout)) {
             requirePositive(d, v, ps.channel_idle_timeout.count() > 0);
         }
     }},
    {"max_message_bytes",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         if (d.readSize(v, ps.max_message_bytes)) requirePositive(d, v, ps.max_message_bytes > 0);
     }},
    {"publish_rate",  // off = no limit
     [](Decoder& d, const Item& v, PubSubSettings& ps) { d.readRate(v, RateOf::Events, true, ps.publish_rate); }},
    {"publish_burst",
     [](Decoder& d, const Item& v, PubSubSettings& ps) {
         std::size_t burst = 0;
         if (!d.readCount(v, burst)) return;
         requirePositive(d, v, burst > 0);
         ps.publish_burst = burst;
     }},
}};

// The top-level `pubsub:` block.
const std::array<KeyRule<PubSubLimits>, 2> kPubSubLimitsKeys{{
    {"history_budget",  // 0 = no history anywhere
     [](Decoder& d, const Item& v, PubSubLimits& l) { d.readSize(v, l.history_budget); }},
    {"max_channels",
     [](Decoder& d, const Item& v, PubSubLimits& l) {
         if (d.readCount(v, l.max_channels)) requirePositive(d, v, l.max_channels > 0);
     }},
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

const std::array<KeyRule<Route>, 10> kRouteKeys{{
    {"host",
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
    {"path",
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
    {"upstream",
     [](Decoder& d, const Item& v, Route& r) {
         if (d.readString(v, r.upstream) && r.upstream.empty()) {
             d.error(v, "expected an upstream name");
         }
     }},
    {"handler",
     [](Decoder& d, const Item& v, Route& r) {
         d.readChoice(v,
                      {{"health", HandlerKind::Health},
                       {"static", HandlerKind::Static},
                       {"echo", HandlerKind::Echo},
                       {"pubsub", HandlerKind::PubSub},
                       {"metrics", HandlerKind::Metrics},
                       {"status", HandlerKind::Status},
                       {"publish", HandlerKind::Publish}},
                      r.handler);
     }},
    {"strip_prefix", [](Decoder& d, const Item& v, Route& r) { d.readBool(v, r.strip_prefix); }},
    {"set_headers", decodeSetHeaders},
    {"root", [](Decoder& d, const Item& v, Route& r) { d.readPath(v, r.root); }},
    {"websocket",
     [](Decoder& d, const Item& v, Route& r) {
         r.websocket_configured = true;
         decodeMapping(d, v, kWebSocketKeys, r.websocket);
     }},
    {"pubsub",
     [](Decoder& d, const Item& v, Route& r) { decodeMapping(d, v, kPubSubKeys, r.pubsub); }},
    {"publish",
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
    {"workers", decodeWorkers},
    {"shutdown_timeout",
     [](Decoder& d, const Item& v, Config& c) { d.readDuration(v, c.shutdown_timeout); }},
    {"reload_drain_timeout", decodeDrainTimeout},
    {"log", [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kLogKeys, c.log); }},
    {"limits",
     [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kLimitsKeys, c.limits); }},
    {"pubsub",
     [](Decoder& d, const Item& v, Config& c) { decodeMapping(d, v, kPubSubLimitsKeys, c.pubsub); }},
    {"listeners", decodeListeners},
    {"upstreams", decodeUpstreams},
    {"routes", decodeRoutes},
}};

}  // namespace

Config decodeConfig(Decoder& decoder, const Item& root) {
    Config config;
    decoder.remember(root.path, root.mark);
    decodeMapping(decoder, root, kRootKeys, config);
    return config;
}

}  // namespace portico::config::detail
