// SPDX-License-Identifier: Apache-2.0
// The built-in handler part of a client connection's life (see client_connection.cpp for the
// rest): responses Portico writes itself at the head of a request (health, static, metrics,
// status, pubsub info, redirects, 404) and a publish, whose body is the message.

#include <event2/buffer.h>

#include "portico/handlers/pubsub.h"
#include "portico/http/simple_response.h"
#include "portico/net/builtin_requests.h"
#include "portico/net/client_connection.h"
#include "portico/net/snapshot.h"
#include "portico/net/worker.h"

namespace portico::net {

// A complete response written at the head (a redirect, a 404): the body, if any, is read and
// discarded after it, and the connection stays open when it can.
void ClientConnection::respondAtHead(int status, std::string_view content_type, std::string_view body,
                                     const http::HeaderList& extra) {
    state_ = State::Responding;
    http_->req.keep_alive = clientKeepAlive() && !bodyAwaitsContinue();
    http_->response.setKeepAlive(http_->req.keep_alive);
    http::respond(http_->response, status, content_type, body, extra, headOnly());
    http_->req.response_done = true;
}

// After a response written at the head: on a connection that stays open the body, if any, is
// read and discarded (processInput ends the request when it is complete); on one that closes,
// reading it is pointless, and the client may be waiting for a 100 it will not get: close now
// (the linger reads and drops whatever still comes).
http::HeadAction ClientConnection::answeredAtHead() {
    // An answer still to come (a backplane's) ends the request when it is written.
    if (http_->req.keep_alive || !hasBody() || !http_->req.response_done) return http::HeadAction::Continue;
    responseDone(false);
    return http::HeadAction::Abort;
}

// A pubsub request (GET/HEAD: the channel's info; POST: a publish with http_->req.body). The
// backplane may answer later (Redis): the response is written by onPubSubAnswer, and the request
// waits in Responding with response_done unset, like a body still arriving.
void ClientConnection::servePubSub() {
    const bool head_only = http_->parser.request().method == "HEAD";
    if (!alive_) alive_ = std::make_shared<char>();
    auto done = [this, alive = std::weak_ptr<char>(alive_), head_only](const handlers::PubSubAnswer& answer) {
        if (!alive.expired()) onPubSubAnswer(answer, head_only);
    };
    http_->req.answer_pending = true;
    answering_ = true;
    std::string body = std::move(http_->req.body);
    http_->req.body.clear();
    servePubSubRequest(worker_, snapshot_->config(), *http_->req.route, http_->parser.request(), std::move(body), std::move(done));
    answering_ = false;
}

void ClientConnection::onPubSubAnswer(const handlers::PubSubAnswer& answer, bool head_only) {
    if (state_ != State::Responding || http_->req.response_done) return;
    handlers::sendPubSubAnswer(http_->response, answer, head_only);
    http_->req.response_done = true;
    http_->response.flush();
    // Answered later, from the backplane's callback: end the request here (when its body is
    // complete; otherwise processInput does when it is). Answered at once, the caller does.
    if (!answering_ && http_->req.complete) responseDone(http_->req.keep_alive);
}

// A publish (POST to a pubsub route): the body is the message, answered once it is complete
// (onMessageComplete). Everything that can refuse it is decided here, before a byte of the body
// is read or buffered: an unauthenticated client cannot make us hold its body.
http::HeadAction ClientConnection::startPublish(const config::Route& route) {
    const bool authorized = publishAuthorized(route, http_->parser.request());
    if (!authorized) {
        respondError(401, "publish without a valid token", {{"WWW-Authenticate", "Bearer"}});
        return http::HeadAction::Abort;
    }
    const std::size_t limit = snapshot_->config().limits.max_body_bytes;
    if (http_->parser.hasContentLength() && !handlers::publishBodyFits(worker_.pubsub(), route, limit, http_->parser.contentLength())) {
        respondError(413, "body too large");
        return http::HeadAction::Abort;
    }
    state_ = State::Responding;
    http_->req.keep_alive = clientKeepAlive();
    http_->response.setKeepAlive(http_->req.keep_alive);
    if (bodyAwaitsContinue()) {
        // RFC 9110 15.2.1: the client waits for this before it sends the body.
        http::ResponseHead interim;
        interim.status = 100;
        http_->response.sendHead(interim, http::ResponseBody{false, std::nullopt});
        http_->response.flush();
    }
    return http::HeadAction::Continue;
}

void ClientConnection::respondInternal(const config::Route& route) {
    state_ = State::Responding;
    http_->req.keep_alive = clientKeepAlive() && !bodyAwaitsContinue();
    http_->response.setKeepAlive(http_->req.keep_alive);
    if (!serveBuiltin(worker_, route, http_->parser.request(), http_->response)) {
        servePubSub();  // PubSub GET/HEAD: the channel's info; Publish: 405 (POST went to startPublish)
        return;
    }
    http_->req.response_done = true;
    http_->response.flush();
}

}  // namespace portico::net
