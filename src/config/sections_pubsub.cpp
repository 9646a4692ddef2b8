// SPDX-License-Identifier: Apache-2.0
// Pub/sub: a route's `pubsub:` (handler pubsub) and `publish:` (handler publish) blocks, and the
// top-level `pubsub:` registry with its Redis `backplane:`.

#include "config/sections.h"

#include <array>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>

#include "portico/config/redis_url.h"

namespace portico::config::detail {
namespace {

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

// `pubsub.backplane`.
constexpr std::string_view kKeyPrefixPattern = "[^{} \\n]+";  // no braces: they are the hash tag
const std::array<KeyRule<BackplaneSettings>, 6> kBackplaneKeys{{
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
    {"max_pending_bytes", type::size().aboveZero(), "16MiB",
     "publishes a worker sent one Redis and has no answer to yet; beyond: 503 at once",
     [](Decoder& d, const Item& v, BackplaneSettings& b) {
         if (d.readSize(v, b.max_pending_bytes)) requirePositive(d, v, b.max_pending_bytes > 0);
     }},
    {"password_file", type::string(), "",
     "file holding the Redis password (instead of one in the URL)",
     [](Decoder& d, const Item& v, BackplaneSettings& b) { d.readString(v, b.password_file); }},
}};

}  // namespace

const std::array<KeyRule<PublishSettings>, kPublishKeyCount> kPublishKeys =
    std::to_array<KeyRule<PublishSettings>>({
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
});

const std::array<KeyRule<PubSubSettings>, kPubSubKeyCount> kPubSubKeys =
    std::to_array<KeyRule<PubSubSettings>>({
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
});

// The top-level `pubsub:` block.
const std::array<KeyRule<PubSubLimits>, kPubSubLimitsKeyCount> kPubSubLimitsKeys =
    std::to_array<KeyRule<PubSubLimits>>({
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
});

}  // namespace portico::config::detail
