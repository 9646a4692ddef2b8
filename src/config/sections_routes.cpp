// SPDX-License-Identifier: Apache-2.0
// `routes:` host and path matching, what serves the route (upstream or handler), header rewriting
// and the nested websocket, pubsub and publish blocks.

#include "config/sections.h"

#include <array>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "portico/http/head.h"

namespace portico::config::detail {
namespace {

// RFC 9110 5.5: a field value is visible characters, spaces and tabs; CR, LF and NUL would let
// the configuration inject headers.
bool isFieldValue(std::string_view text) {
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

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
        if (!http::isToken(name)) {
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

}  // namespace

const std::array<KeyRule<Route>, kRouteKeyCount> kRouteKeys =
    std::to_array<KeyRule<Route>>({
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
});

}  // namespace portico::config::detail
