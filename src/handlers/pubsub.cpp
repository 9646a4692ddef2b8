// SPDX-License-Identifier: Apache-2.0
#include "portico/handlers/pubsub.h"

#include <algorithm>
#include <charconv>
#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/core/escape.h"
#include "portico/core/json.h"
#include "portico/core/log.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/head.h"
#include "portico/http/simple_response.h"
#include "portico/net/event_loop.h"
#include "portico/ws/close_code.h"
#include "portico/ws/codec.h"
#include "portico/ws/utf8_validator.h"

namespace portico::handlers {

// ---- names and HTTP -----------------------------------------------------------------------------

std::string channelKey(const config::Route& route, std::string_view channel) {
    std::string key = route.path;
    key.push_back('\n');  // cannot appear in a path
    key.append(channel);
    return key;
}

std::string GripChannels::key(std::string_view channel) const {
    if (route) return channelKey(*route, channel);
    std::string key = "\ngrip\n";  // no route path starts with a newline
    key.append(channel);
    return key;
}

const config::PubSubSettings& GripChannels::settings() const {
    static const config::PubSubSettings kDefaults;
    return route ? route->pubsub : kDefaults;
}

GripChannels gripChannels(const config::Config& config) {
    for (const config::Route& route : config.routes)
        if (route.handler == config::HandlerKind::PubSub && !route.exact_path) return GripChannels{&route};
    return GripChannels{};
}

namespace {

constexpr std::size_t kMaxChannelName = 200;

std::string_view afterPrefix(const config::Route& route, std::string_view path) {
    return route.exact_path ? std::string_view{} : path.substr(std::min(route.path.size(), path.size()));
}

}  // namespace

std::string channelName(const config::Route& route, std::string_view path) {
    // RFC 3986 6.2.2.2: "/live/%61" and "/live/a" are the same resource, so the same channel.
    // Decoded whole (as nginx's $uri, which nchan's channel ids come from), not only unreserved
    // bytes, so that a path names every channel the publish API can: "room 1" is /live/room%201.
    // The name goes into JSON text frames (portico.pubsub.v1), which must be UTF-8: an escape
    // that makes it something else, or a control byte, is refused like a '/'.
    std::string_view raw = afterPrefix(route, path);
    std::string name;
    if (raw.empty() || !core::appendPercentDecoded(name, raw) || name.size() > kMaxChannelName ||
        std::any_of(name.begin(), name.end(), [](char c) { return c == '/' || c == 0x7f || (c >= 0 && c < 0x20); }) ||
        !ws::Utf8Validator::isValid(name))
        return {};
    return name;
}

int channelRefusal(const config::Route& route, std::string_view path) { return afterPrefix(route, path).empty() ? 404 : 400; }

SubscribeOptions parseSubscribeQuery(std::string_view query) {
    SubscribeOptions options;
    for (std::size_t at = 0; at <= query.size();) {
        std::size_t amp = query.find('&', at);
        std::string_view pair = query.substr(at, amp == std::string_view::npos ? std::string_view::npos : amp - at);
        if (pair.substr(0, 6) == "since=") {
            std::uint64_t value = 0;
            auto [end, ec] = std::from_chars(pair.data() + 6, pair.data() + pair.size(), value);
            if (ec == std::errc() && end == pair.data() + pair.size()) options.since = value;
        } else if (pair.substr(0, 6) == "epoch=" && pair.size() <= 6 + 64) {
            options.epoch = std::string(pair.substr(6));
        }
        if (amp == std::string_view::npos) break;
        at = amp + 1;
    }
    return options;
}

std::size_t publishLimit(const config::Route& route, std::size_t max_body_bytes) {
    std::size_t limit = std::min(route.pubsub.max_message_bytes, route.pubsub.queue_bytes);
    return max_body_bytes ? std::min(limit, max_body_bytes) : limit;
}

bool publishBodyFits(PubSubHub& hub, const config::Route& route, std::size_t max_body_bytes, std::size_t total) {
    if (total <= publishLimit(route, max_body_bytes)) return true;
    hub.registry().countRefusedSize();
    return false;
}

namespace {

// RFC 9110 10.2.3: Retry-After in seconds, with 429 (RFC 6585 4) and 503 (RFC 9110 15.6.4).
http::HeaderList retryAfter(std::chrono::seconds delay) { return {{"Retry-After", std::to_string(delay.count())}}; }

}  // namespace

bool publishAuthorized(const config::Route& route, std::string_view authorization) {
    const std::string& token = route.pubsub.publish_token;
    if (token.empty()) return true;
    constexpr std::string_view kBearer = "Bearer ";
    if (authorization.size() != kBearer.size() + token.size()) return false;
    if (!http::equalsIgnoreCase(authorization.substr(0, kBearer.size()), kBearer)) return false;
    // Constant-time comparison: the token is a secret.
    unsigned char diff = 0;
    for (std::size_t i = 0; i < token.size(); ++i)
        diff |= static_cast<unsigned char>(authorization[kBearer.size() + i] ^ token[i]);
    return diff == 0;
}

void servePubSubHttp(PubSubHub& hub, const config::Route& route, PubSubHttpRequest request, PubSubAnswerDone done) {
    const std::string channel = channelName(route, request.path);
    if (channel.empty()) return done(PubSubAnswer{channelRefusal(route, request.path), {}, {}});
    std::string key = channelKey(route, channel);
    std::string json = "{\"channel\":";
    core::appendJsonString(json, channel);
    if (request.method == "POST") {
        if (!publishAuthorized(route, request.authorization))
            return done(PubSubAnswer{401, {}, {{"WWW-Authenticate", "Bearer"}}});
        if (request.idempotency_key.size() > kMaxIdempotencyKey) return done(PubSubAnswer{400, {}, {}});
        pubsub::PublishRequest publish;
        publish.idempotency_key = std::string(request.idempotency_key);
        publish.channel = std::move(key);
        // A body that is not UTF-8 goes out as a binary message: a text frame must be UTF-8.
        publish.text = ws::Utf8Validator::isValid(request.body);
        publish.payload = std::move(request.body);
        publish.settings = &route.pubsub;
        hub.backplane().publish(std::move(publish), [json = std::move(json), done = std::move(done)](
                                                        const pubsub::PublishResult& result) mutable {
            switch (result.refused) {
                case pubsub::Refusal::Channels:
                case pubsub::Refusal::Unavailable:
                    return done(PubSubAnswer{503, {}, retryAfter(result.retry_after)});
                case pubsub::Refusal::Rate: return done(PubSubAnswer{429, {}, retryAfter(result.retry_after)});
                case pubsub::Refusal::None: break;
            }
            json += ",\"subscribers\":" + std::to_string(result.subscribers) + ",\"seq\":" + std::to_string(result.seq) +
                    ",\"epoch\":";
            core::appendJsonString(json, result.epoch);
            json += "}\n";
            done(PubSubAnswer{200, std::move(json), {}});
        });
        return;
    }
    if (request.method == "GET" || request.method == "HEAD") {
        hub.backplane().info(key, [json = std::move(json), done = std::move(done)](const pubsub::ChannelInfo& info,
                                                                                  bool available) mutable {
            if (!available) return done(PubSubAnswer{503, {}, retryAfter(std::chrono::seconds(1))});
            json += ",\"subscribers\":" + std::to_string(info.subscribers) + ",\"seq\":" + std::to_string(info.seq) +
                    ",\"epoch\":";
            core::appendJsonString(json, info.epoch);
            json += ",\"history\":" + std::to_string(info.history) + ",\"oldest\":" + std::to_string(info.oldest) +
                    "}\n";
            done(PubSubAnswer{200, std::move(json), {}});
        });
        return;
    }
    done(PubSubAnswer{405, {}, {{"Allow", "GET, HEAD, POST"}}});
}

void sendPubSubAnswer(http::ResponseSink& out, const PubSubAnswer& answer, bool head_only) {
    if (answer.body.empty()) return http::respondError(out, answer.status, answer.headers, head_only);
    http::respond(out, answer.status, answer.content_type, answer.body, answer.headers, head_only);
}

}  // namespace portico::handlers
