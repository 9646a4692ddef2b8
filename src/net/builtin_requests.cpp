// SPDX-License-Identifier: Apache-2.0
#include "portico/net/builtin_requests.h"

#include <algorithm>
#include <chrono>

#include "portico/handlers/dashboard.h"
#include "portico/handlers/http_handlers.h"
#include "portico/handlers/publish_api.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/simple_response.h"
#include "portico/net/worker.h"

namespace portico::net {

bool serveBuiltin(Worker& worker, const config::Route& route, const http::RequestHead& request, http::ResponseSink& out) {
    const bool head_only = request.method == "HEAD";
    switch (route.handler) {
        case config::HandlerKind::Health:
            handlers::serveHealth(out, request, worker.pubsub().backplane().health(), worker.pubsub().backplane().downShards());
            return true;
        case config::HandlerKind::Static:
            handlers::serveStatic(out, route, request);
            return true;
        case config::HandlerKind::Dashboard:
            handlers::serveDashboard(out, route, request);
            return true;
        case config::HandlerKind::Metrics:
        case config::HandlerKind::Status: {
            observe::ProcessInfo info = worker.metrics().processInfo();
            worker.pubsub().backplane().stats(info);
            const bool prometheus = route.handler == config::HandlerKind::Metrics;
            std::string body = prometheus ? worker.metrics().renderPrometheus(info) : worker.metrics().renderJson(info);
            http::respond(out, 200, prometheus ? "text/plain; version=0.0.4" : "application/json", body, {}, head_only);
            return true;
        }
        case config::HandlerKind::PubSub:
        case config::HandlerKind::Publish:
            return false;
        default:
            // WebSocket-only handlers (echo) and those of later issues answer 404 to plain HTTP.
            http::respondError(out, 404, {}, head_only);
            return true;
    }
}

bool publishAuthorized(const config::Route& route, const http::RequestHead& request) {
    const http::Header* authorization = http::findHeader(request.headers, "Authorization");
    const std::string_view credentials = authorization ? std::string_view(authorization->value) : std::string_view{};
    if (route.handler != config::HandlerKind::Publish) return handlers::publishAuthorized(route, credentials);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    return handlers::publishApiAuthorized(route, credentials, now.count());
}

void servePubSubRequest(Worker& worker, const config::Config& config, const config::Route& route,
                        const http::RequestHead& request, std::string body, handlers::PubSubAnswerDone done) {
    if (route.handler == config::HandlerKind::Publish) {
        handlers::servePublishApi(worker.pubsub(), handlers::gripChannels(config), request.method, body, std::move(done));
        return;
    }
    const http::Header* authorization = http::findHeader(request.headers, "Authorization");
    handlers::PubSubHttpRequest call;
    call.method = request.method;
    call.path = request.path();
    call.authorization = authorization ? std::string_view(authorization->value) : std::string_view{};
    const http::Header* idempotency = http::findHeader(request.headers, "Idempotency-Key");
    if (idempotency) call.idempotency_key = idempotency->value;
    call.body = std::move(body);
    handlers::servePubSubHttp(worker.pubsub(), route, std::move(call), std::move(done));
}

WebSocketAdmission admitWebSocket(Worker& worker, const config::Limits& limits, std::string_view client_ip) {
    return admitWebSocket(worker, limits, ipKeyOf(client_ip, limits.per_ip_ipv6_prefix));
}

WebSocketAdmission admitWebSocket(Worker& worker, const config::Limits& limits, const std::optional<IpKey>& key) {
    WebSocketAdmission result;
    if (!key) return result;
    IpLimits::Admission admission = worker.ipLimits().admitUpgrade(*key, limits);
    if (admission.admitted()) {
        if (admission.verdict == IpLimits::Verdict::Untracked) worker.stats().limits.untracked.add();
        result.lease = std::move(admission.lease);
        return result;
    }
    worker.noteRefusal(admission.verdict, key->toString(limits.per_ip_ipv6_prefix));
    result.admitted = false;
    result.reason = IpLimits::toString(admission.verdict);
    // RFC 6585 4: 429, and for a rate the time until the next token (RFC 9110 10.2.3: whole
    // seconds, rounded up so that a client that waits as told is admitted).
    if (admission.verdict == IpLimits::Verdict::OverRate) {
        const long long seconds = std::max<long long>(1, (admission.retry_after.count() + 999) / 1000);
        result.extra.push_back({"Retry-After", std::to_string(seconds)});
    }
    return result;
}

bool originAllowed(const config::Route& route, std::string_view origin) {
    const auto& origins = route.websocket.origins;
    return origins.empty() || std::any_of(origins.begin(), origins.end(),
                                          [&](const std::string& o) { return http::equalsIgnoreCase(o, origin); });
}

EndpointAcceptance acceptEndpoint(Worker& worker, const config::Route& route, const http::RequestHead& request,
                                  const ws::UpgradeRequest& upgrade) {
    EndpointAcceptance accepted;
    if (!route.websocket.subprotocols.empty())
        accepted.subprotocol = ws::selectSubprotocol(upgrade.subprotocols, route.websocket.subprotocols);
    if (!upgrade.extensions.empty())
        accepted.deflate = ws::negotiateDeflate(upgrade.extensions, route.websocket.permessage_deflate);
    if (route.handler == config::HandlerKind::Echo) {
        accepted.app = handlers::makeEchoApp();
        return accepted;
    }
    std::string channel = handlers::channelName(route, request.path());
    if (channel.empty()) {
        accepted.status = handlers::channelRefusal(route, request.path());
        accepted.reason = "no channel or not a plain name";
        return accepted;
    }
    handlers::SubscribeOptions options = handlers::parseSubscribeQuery(request.query());
    // Offered by the client, the pubsub subprotocol is taken whatever the route lists.
    if (std::find(upgrade.subprotocols.begin(), upgrade.subprotocols.end(), handlers::kPubSubSubprotocol) !=
        upgrade.subprotocols.end()) {
        accepted.subprotocol = handlers::kPubSubSubprotocol;
        options.json = true;
    }
    accepted.app = handlers::makeSubscriberApp(worker.pubsub(), route, std::move(channel), std::move(options));
    if (!accepted.app) {  // a new channel beyond pubsub.max_channels
        accepted.status = 503;
        accepted.reason = "too many channels";
        accepted.extra = {{"Retry-After", "5"}};
    }
    return accepted;
}

std::string httpsRedirectLocation(std::string_view host, std::uint16_t port, std::string_view target) {
    // Host was validated (checkRequestHead): it cannot smuggle a path.
    std::string_view name = host.front() == '[' ? host.substr(0, host.find(']') + 1) : host.substr(0, host.find(':'));
    std::string location = "https://" + std::string(name);
    if (port != 443) location += ":" + std::to_string(port);
    location += target;
    return location;
}

}  // namespace portico::net
