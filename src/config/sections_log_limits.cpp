// SPDX-License-Identifier: Apache-2.0
// `log:` and `limits:`, the two flat sections of the root.

#include "config/sections.h"

#include <array>
#include <string_view>
#include <utility>

namespace portico::config::detail {
namespace {

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

}  // namespace

const std::array<KeyRule<LogSettings>, kLogKeyCount> kLogKeys =
    std::to_array<KeyRule<LogSettings>>({
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
         log.access_mark = toSourceMark(v.mark);
     }},
    {"access_format", type::choice<kAccessFormats>(), "json",
     "access log line format",
     [](Decoder& d, const Item& v, LogSettings& log) {
         d.readChoice(v, kAccessFormats, log.access_format);
     }},
});

const std::array<KeyRule<Limits>, kLimitsKeyCount> kLimitsKeys =
    std::to_array<KeyRule<Limits>>({
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
    {"client_send_timeout", type::duration().aboveZero(), "60s",
     "close a client that takes no byte of its response this long",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readDuration(v, l.client_send_timeout)) requirePositive(d, v, l.client_send_timeout.count() > 0);
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
    {"http2_max_concurrent_streams", type::count().aboveZero(), "100",
     "HTTP/2: streams a client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS)",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.http2_max_concurrent_streams))
             requirePositive(d, v, l.http2_max_concurrent_streams > 0 && l.http2_max_concurrent_streams <= 0x7fffffff);
     }},
    {"http2_stream_window", type::size().aboveZero(), "256KiB",
     "HTTP/2: request body bytes a stream may send ahead of its upstream (flow-control window)",
     [](Decoder& d, const Item& v, Limits& l) {
         if (!d.readSize(v, l.http2_stream_window)) return;
         // RFC 9113 6.9.2: a window is at most 2^31-1 octets.
         if (l.http2_stream_window < 1024 || l.http2_stream_window > 0x7fffffff)
             d.error(v, "expected a window from 1KiB to 2GiB-1");
     }},
    {"http2_connection_buffer", type::size().aboveZero(), "3MiB",
     "HTTP/2: bytes one connection's streams may hold, each way: request bodies queued for their upstreams "
     "(beyond: the connection's flow-control window is held back) and responses waiting for the client's "
     "windows (beyond: the upstreams are not read)",
     [](Decoder& d, const Item& v, Limits& l) {
         if (!d.readSize(v, l.http2_connection_buffer)) return;
         // Below a stream's watermark the budget would pause streams that are not backlogged.
         if (l.http2_connection_buffer < 64 * 1024) d.error(v, "expected at least 64KiB");
     }},
    {"http2_reset_burst", type::count().aboveZero(), "200",
     "HTTP/2: stream resets a client may send at once before http2_reset_rate applies (CVE-2023-44487)",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.http2_reset_burst)) requirePositive(d, v, l.http2_reset_burst > 0);
     }},
    {"http2_reset_rate", type::count().aboveZero(), "50",
     "HTTP/2: stream resets per second a client may send; beyond: GOAWAY",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.http2_reset_rate)) requirePositive(d, v, l.http2_reset_rate > 0);
     }},
    {"http2_control_frame_rate", type::count().aboveZero(), "100",
     "HTTP/2: SETTINGS and PING frames per second a client may send (twice as many at once); beyond: GOAWAY",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.http2_control_frame_rate)) requirePositive(d, v, l.http2_control_frame_rate > 0);
     }},
    {"http2_overhead_frame_rate", type::count().aboveZero(), "500",
     "HTTP/2: frames that carry no request progress (empty DATA, PRIORITY, WINDOW_UPDATE beyond two per DATA "
     "frame sent, unknown types) per second a client may send (twice as many at once); beyond: GOAWAY",
     [](Decoder& d, const Item& v, Limits& l) {
         if (d.readCount(v, l.http2_overhead_frame_rate)) requirePositive(d, v, l.http2_overhead_frame_rate > 0);
     }},
});

}  // namespace portico::config::detail
