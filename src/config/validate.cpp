// SPDX-License-Identifier: Apache-2.0
// Pass 2: cross-checks. Decoding has already reported every value that is wrong on its own; the
// checks here look at keys together. A check is skipped when the keys it reads already failed to
// decode, so that one typo gives one error, not a cascade.

#include <string>
#include <utility>

#include "config/decoder.h"
#include "config/passes.h"

namespace portico::config::detail {
namespace {

constexpr const char* kMissing = "required key is missing";

void requireKey(Decoder& d, const std::string& parent, const char* key) {
    std::string path = childPath(parent, key);
    if (!d.has(path)) d.error(d.markOf(parent), path, kMissing);
}

// Said at start-up, on every reload and by `portico -t` (they all load the file), so that a key
// log left on after a debugging session does not go unnoticed.
void warnKeyLog(Decoder& d, const std::string& tls_path, const std::string& file) {
    if (file.empty()) return;
    std::string key = childPath(tls_path, "keylog_file");
    d.warning(d.markOf(key), key,
              "TLS secrets are written to this file: whoever reads it can decrypt the traffic; "
              "for debugging only");
}

void validateListenerTls(Decoder& d, const std::string& path, const ListenerTls& tls) {
    warnKeyLog(d, path, tls.keylog_file);
    std::string certificates = childPath(path, "certificates");
    if (!d.has(certificates)) {
        d.error(d.markOf(path), certificates, kMissing);
    } else if (tls.certificates.empty() && !d.failedUnder(certificates)) {
        d.error(d.markOf(certificates), certificates, "at least one certificate is required");
    }
    for (std::size_t i = 0; i < tls.certificates.size(); ++i) {
        std::string entry = indexPath(certificates, i);
        if (d.failed(entry)) continue;
        requireKey(d, entry, "cert");
        requireKey(d, entry, "key");
    }
}

void validateListeners(Decoder& d, const Config& c) {
    if (!d.has("listeners")) {
        d.error(d.markOf(""), "listeners", kMissing);
    } else if (c.listeners.empty() && !d.failed("listeners")) {
        d.error(d.markOf("listeners"), "listeners", "at least one listener is required");
    }
    for (std::size_t i = 0; i < c.listeners.size(); ++i) {
        const Listener& listener = c.listeners[i];
        std::string path = indexPath("listeners", i);
        if (d.failed(path)) continue;
        std::string address = childPath(path, "address");
        if (!d.has(address)) {
            d.error(d.markOf(path), address, kMissing);
        } else if (!d.failed(address) && listener.address.port != 0) {
            // Port 0 asks the kernel for a free port: two of those never collide. A wildcard
            // overlaps every address on its port (the second bind would fail or, with
            // SO_REUSEPORT, silently share the traffic).
            for (std::size_t j = 0; j < i; ++j) {
                const Listener& other = c.listeners[j];
                std::string other_address = childPath(indexPath("listeners", j), "address");
                if (!d.has(other_address) || d.failed(other_address)) continue;
                if (other.address.port != listener.address.port) continue;
                if (other.address.host == listener.address.host) {
                    d.error(d.markOf(address), address,
                            "duplicate listener address " + listener.address.toString() +
                                " (also listeners[" + std::to_string(j) + "])");
                    break;
                }
                if (other.address.host.empty() || listener.address.host.empty()) {
                    d.error(d.markOf(address), address,
                            "listener address " + listener.address.toString() + " overlaps " +
                                other.address.toString() + " (listeners[" + std::to_string(j) +
                                "])");
                    break;
                }
            }
        }
        if (listener.tls) validateListenerTls(d, childPath(path, "tls"), *listener.tls);
        if (listener.http2) {
            // RFC 9113 3.3: prior knowledge is for cleartext; on TLS, ALPN says h2 (RFC 9113 3.2).
            std::string http2 = childPath(path, "http2");
            // With redirect_https its streams are redirected as HTTP/1.1 requests are (nginx's
            // `listen 80 http2` with `return 301 https://...`, HAProxy's h2c with
            // `http-request redirect scheme https`).
            if (listener.tls) {
                d.error(d.markOf(http2), http2, "a TLS listener negotiates HTTP/2 with tls.alpn: [h2, http/1.1]");
            }
        }
        if (listener.redirect_https) {
            std::string redirect = childPath(path, "redirect_https");
            if (listener.tls) {
                d.error(d.markOf(redirect), redirect, "a TLS listener cannot redirect to HTTPS");
            } else if (*listener.redirect_https == listener.address.port) {
                d.error(d.markOf(redirect), redirect,
                        "redirects to its own port: every request would loop");
            }
        }
    }
}

void validateUpstreams(Decoder& d, const Config& c) {
    for (const auto& [name, upstream] : c.upstreams) {
        std::string path = childPath("upstreams", name);
        std::string servers = childPath(path, "servers");
        if (!d.has(servers)) {
            d.error(d.markOf(path), servers, kMissing);
        } else if (upstream.servers.empty() && !d.failedUnder(servers)) {
            d.error(d.markOf(servers), servers, "at least one server is required");
        }
        if (upstream.tls) warnKeyLog(d, childPath(path, "tls"), upstream.tls->keylog_file);
        if (upstream.tls && !upstream.tls->verify) {
            std::string verify = childPath(childPath(path, "tls"), "verify");
            d.warning(d.markOf(verify), verify,
                      "certificates of this upstream are not verified: anyone on the path can "
                      "impersonate it");
        }
        bool used = false;
        for (const Route& route : c.routes) used = used || route.upstream == name;
        if (!used) d.warning(d.markOf(path), path, "not used by any route");
    }
}

bool isWebSocketHandler(HandlerKind handler) {
    return handler == HandlerKind::Echo || handler == HandlerKind::PubSub;
}

// True when `first`, listed before `later`, matches every request `later` matches. Only a
// prefix ending in '/' (or the same path) is certain to cover `later` whether prefixes match by
// string or by path segment.
bool shadows(const Route& first, const Route& later) {
    if (!first.host.empty() && first.host != later.host) return false;
    if (first.exact_path) return later.exact_path && first.path == later.path;
    if (first.path == later.path) return true;
    return first.path.ends_with('/') && later.path.starts_with(first.path);
}

// `burst.messages` sizes the message bucket: without a message rate there is no bucket.
void validateRate(Decoder& d, const WebSocketRate& rate, const std::string& path) {
    std::string burst = childPath(path, "burst");
    for (auto [key, set] : {std::pair{"messages", rate.messages > 0}, std::pair{"bytes", rate.bytes > 0}}) {
        std::string key_path = childPath(burst, key);
        if (d.has(key_path) && !set && !d.failed(childPath(path, key))) {
            d.error(d.markOf(key_path), key_path, std::string("needs ") + childPath(path, key));
        }
    }
}

void validateRoute(Decoder& d, const Config& c, std::size_t index) {
    const Route& route = c.routes[index];
    std::string path = indexPath("routes", index);
    std::string upstream = childPath(path, "upstream");
    std::string handler = childPath(path, "handler");
    bool has_upstream = d.has(upstream);
    bool has_handler = d.has(handler);

    if (!has_upstream && !has_handler) {
        d.error(d.markOf(path), path, "a route needs an upstream or a handler");
    } else if (has_upstream && has_handler) {
        d.error(d.markOf(handler), path, "a route has an upstream or a handler, not both");
    }
    if (has_upstream && !d.failed(upstream) && c.findUpstream(route.upstream) == nullptr) {
        d.error(d.markOf(upstream), upstream, "no upstream named \"" + route.upstream + "\"");
    }

    // Keys that only mean something for one kind of route. Skipped when the kind is unknown
    // (handler misspelt, or both upstream and handler given).
    bool known_kind = has_upstream != has_handler && !d.failed(handler);
    if (!known_kind) return;
    bool is_upstream = has_upstream;

    std::string root = childPath(path, "root");
    if (route.handler == HandlerKind::Static && !d.has(root)) {
        d.error(d.markOf(path), root, "required by handler: static");
    } else if (route.handler != HandlerKind::Static && d.has(root)) {
        d.error(d.markOf(root), root, "only for handler: static");
    }
    std::string status_url = childPath(path, "status_url");
    if (route.handler != HandlerKind::Dashboard && d.has(status_url)) {
        d.error(d.markOf(status_url), status_url, "only for handler: dashboard");
    }
    if (route.handler == HandlerKind::Dashboard && route.exact_path) {
        // The page loads its script and style sheet from paths below its own.
        d.error(d.markOf(childPath(path, "path")), childPath(path, "path"),
                "handler: dashboard needs a prefix path (it serves several files), e.g. /portico/");
    }
    std::string pubsub = childPath(path, "pubsub");
    if (route.handler != HandlerKind::PubSub && d.has(pubsub)) {
        d.error(d.markOf(pubsub), pubsub, "only for handler: pubsub");
    }
    std::string publish = childPath(path, "publish");
    if (route.handler != HandlerKind::Publish && d.has(publish)) {
        d.error(d.markOf(publish), publish, "only for handler: publish");
    } else if (route.handler == HandlerKind::Publish && route.publish.token.empty() && route.publish.jwt_key.empty()) {
        d.warning(d.markOf(path), path,
                  "handler: publish without publish.token or publish.jwt_key: anyone who reaches it can publish");
    } else if (!route.publish.iss.empty() && route.publish.jwt_key.empty()) {
        d.error(d.markOf(childPath(publish, "iss")), childPath(publish, "iss"), "needs publish.jwt_key");
    }
    for (const char* key : {"strip_prefix", "set_headers"}) {
        std::string key_path = childPath(path, key);
        if (!is_upstream && d.has(key_path)) {
            d.error(d.markOf(key_path), key_path, "only for routes to an upstream");
        }
    }

    std::string websocket = childPath(path, "websocket");
    if (route.websocket_configured) {
        validateRate(d, route.websocket.rate, childPath(websocket, "rate"));
        std::string mode = childPath(websocket, "mode");
        if (!is_upstream && !isWebSocketHandler(route.handler)) {
            d.error(d.markOf(websocket), websocket,
                    "only for routes to an upstream and handlers echo and pubsub");
        } else if (!is_upstream && d.has(mode)) {
            d.error(d.markOf(mode), mode,
                    "only for routes to an upstream: built-in handlers always parse frames");
        } else if (std::string http = childPath(websocket, "http");
                   d.has(http) && route.websocket.mode != WebSocketMode::Http && !d.failed(mode)) {
            d.error(d.markOf(http), http, "only for mode: http");
        } else if (is_upstream && route.websocket.mode == WebSocketMode::Tunnel &&
                   !d.failed(mode)) {
            // A tunnel does not parse frames, so it cannot count messages: an unenforced limit
            // would be a silent security gap, hence an error rather than a warning.
            std::string rate = childPath(websocket, "rate");
            if (d.has(rate)) {
                d.error(d.markOf(rate), rate,
                        "needs mode: frames (a tunnel does not parse frames and cannot count "
                        "them)");
            }
            // trace too: a tunnel copies bytes without knowing where frames begin; parsing a copy
            // would add a parser per direction to the one mode meant to never parse.
            for (const char* key : {"max_message_bytes", "ping_interval", "max_lifetime_grace", "close_timeout", "trace"}) {
                std::string key_path = childPath(websocket, key);
                if (d.has(key_path)) {
                    d.warning(d.markOf(key_path), key_path,
                              "has no effect in tunnel mode (set mode: frames)");
                }
            }
        }
        // Tunnel and frames routes pass the upstream's Sec-WebSocket-Extensions answer through:
        // Portico agrees to nothing there, so a setting would silently not apply.
        std::string deflate = childPath(websocket, "permessage_deflate");
        if (is_upstream && route.websocket.mode != WebSocketMode::Http && d.has(deflate) && !d.failed(mode)) {
            d.error(d.markOf(deflate), deflate,
                    "only for handlers echo and pubsub and mode: http (tunnel and frames pass the "
                    "upstream's answer through)");
        }
    }
}

void validateRoutes(Decoder& d, const Config& c) {
    bool all_redirect = !c.listeners.empty();
    for (const Listener& listener : c.listeners)
        all_redirect = all_redirect && listener.redirect_https;
    if (c.routes.empty() && !all_redirect && !d.failed("routes")) {
        d.warning(d.markOf("routes"), "routes", "no routes: every request is answered 404");
    }
    for (std::size_t i = 0; i < c.routes.size(); ++i) {
        std::string path = indexPath("routes", i);
        if (d.failed(path)) continue;
        validateRoute(d, c, i);
        if (d.failedUnder(path)) continue;
        for (std::size_t j = 0; j < i; ++j) {
            if (d.failedUnder(indexPath("routes", j))) continue;
            if (shadows(c.routes[j], c.routes[i])) {
                d.warning(d.markOf(path), path,
                          "never matches: routes[" + std::to_string(j) + "] matches first");
                break;
            }
        }
    }
}

}  // namespace

void validateBackplane(Decoder& d, const Config& c) {
    const std::string path = "pubsub.backplane";
    if (d.has(path) && !d.failedUnder(path) && !c.pubsub.backplane.enabled)
        d.error(d.markOf(path), childPath(path, "redis"), kMissing);
}

void validateConfig(Decoder& decoder, const Config& config) {
    validateBackplane(decoder, config);
    validateListeners(decoder, config);
    validateUpstreams(decoder, config);
    validateRoutes(decoder, config);
}

}  // namespace portico::config::detail
