// SPDX-License-Identifier: Apache-2.0
// A route's `websocket:` block: the mode, the bridge's `http:`, message and rate bounds, origins,
// subprotocols, lifetime, tracing and what the built-ins agree to for permessage-deflate.

#include "config/sections.h"

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/http/head.h"

namespace portico::config::detail {
namespace {

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

// A whole number from `low` to `high` into `out` (window bits, zlib's level and memLevel).
template <typename T>
void readBetween(Decoder& d, const Item& v, std::size_t low, std::size_t high, T& out) {
    std::size_t n = 0;
    if (!d.readCount(v, n)) return;
    if (n < low || n > high) {
        d.error(v, "expected a whole number from " + std::to_string(low) + " to " + std::to_string(high));
        return;
    }
    out = static_cast<T>(n);
}

// RFC 7692 7.1.2: an LZ77 window of 2^8 .. 2^15 bytes.
constexpr std::size_t kMinWindowBits = 8;
constexpr std::size_t kMaxWindowBits = 15;

const std::array<KeyRule<PermessageDeflateSettings>, 9> kPermessageDeflateKeys{{
    {"enabled", type::boolean(), "true",
     "false: decline every permessage-deflate offer",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) { d.readBool(v, p.enabled); }},
    {"server_no_context_takeover", type::boolean(), "true",
     "answered to every offer: Portico's compressor keeps nothing between messages",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) { d.readBool(v, p.server_no_context_takeover); }},
    {"client_no_context_takeover", type::boolean(), "true",
     "answered to every offer: the client's compressor, hence Portico's decompressor, keeps nothing",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) { d.readBool(v, p.client_no_context_takeover); }},
    {"server_max_window_bits", type::count().atLeast(kMinWindowBits).atMost(kMaxWindowBits), "15",
     "8..15: Portico's compressor window (a client may ask for less)",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) {
         readBetween(d, v, kMinWindowBits, kMaxWindowBits, p.server_max_window_bits);
     }},
    {"client_max_window_bits", type::count().atLeast(kMinWindowBits).atMost(kMaxWindowBits), "15",
     "8..15: asked of clients whose offer has client_max_window_bits",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) {
         readBetween(d, v, kMinWindowBits, kMaxWindowBits, p.client_max_window_bits);
     }},
    {"level", type::count().aboveZero().atMost(9), "1",
     "zlib compression level: 1 fast .. 9 small",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) { readBetween(d, v, 1, 9, p.level); }},
    {"mem_level", type::count().aboveZero().atMost(9), "8",
     "zlib memLevel 1..9: the compressor's hash memory, 2^(n+9) bytes",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) { readBetween(d, v, 1, 9, p.mem_level); }},
    {"min_message_bytes", type::size(), "64",
     "outgoing messages shorter than this are sent uncompressed",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) { d.readSize(v, p.min_message_bytes); }},
    {"max_inflating_per_worker", type::count(), "256",
     "compressed messages half-received at once per worker (a ~40 KiB decompressor each); one more: "
     "close 1013; 0 = no bound",
     [](Decoder& d, const Item& v, PermessageDeflateSettings& p) { d.readCount(v, p.max_inflating_per_worker); }},
}};

}  // namespace

const std::array<KeyRule<WebSocketSettings>, kWebSocketKeyCount> kWebSocketKeys =
    std::to_array<KeyRule<WebSocketSettings>>({
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
             if (!http::isToken(protocols[i])) {
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
    {"close_timeout", type::duration().aboveZero(), "5s",
     "frames mode: a Close went one way and no answer came: close the silent side's TCP, 1001 to the other",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) {
         if (d.readDuration(v, ws.close_timeout)) requirePositive(d, v, ws.close_timeout.count() > 0);
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
    {"permessage_deflate", type::mapping<kPermessageDeflateKeys>(), "",
     "built-ins and mode http: what Portico agrees to when a client offers permessage-deflate",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { decodeMapping(d, v, kPermessageDeflateKeys, ws.permessage_deflate); }},
    {"trace_rate", type::rate().aboveZero(), "100/s",
     "trace lines per second per worker and route; beyond, counted and summarised",
     [](Decoder& d, const Item& v, WebSocketSettings& ws) { d.readRate(v, RateOf::Events, false, ws.trace_rate); }},
});

}  // namespace portico::config::detail
