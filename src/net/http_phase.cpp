// SPDX-License-Identifier: Apache-2.0
// A connection's HTTP/1.1 phase (parser, exchange, response writer, timer) and the worker's pool
// of them: made once, handed from connection to connection, given back at the upgrade, at
// HTTP/2 and at the end (see docs/life-of-a-connection.md).
#include "portico/handlers/websocket_endpoint.h"
#include "portico/net/client_connection.h"
#include "portico/net/event_loop.h"

namespace portico::net {

ClientConnection::HttpPhase::HttpPhase(ClientConnection& connection, EventLoop& loop, std::size_t max_head_bytes)
    : owner(&connection),
      response(connection),
      parser(http::MessageParser::Kind::Request, static_cast<http::MessageParser::Handler*>(&connection), max_head_bytes),
      exchanges(loop, 1),
      resume_event(loop.base(), -1, 0, &HttpPhase::onResumeEvent, this),
      timer(loop.base(), &HttpPhase::onTimerEvent, this) {}

ClientConnection::HttpPhase::~HttpPhase() = default;

void ClientConnection::HttpPhase::onTimerEvent(int fd, short what, void* arg) {
    auto* phase = static_cast<HttpPhase*>(arg);
    if (phase->owner) {
        ClientConnection::onTimer(fd, what, phase->owner);
    } else {
        phase->timer.fired();  // a spare's: no deadline, only noted as no longer armed
    }
}

void ClientConnection::HttpPhase::onResumeEvent(int fd, short what, void* arg) {
    if (ClientConnection* connection = static_cast<HttpPhase*>(arg)->owner) ClientConnection::onResume(fd, what, connection);
}

void ClientConnection::HttpPhase::bind(ClientConnection& connection, std::size_t max_head_bytes) {
    response.bind(connection);
    parser.setHandler(static_cast<http::MessageParser::Handler*>(&connection));
    parser.setMaxHeadBytes(max_head_bytes);
    parser.reset();
    parser.forgetMessage();
    // give() took the resume event off the loop. The timer may still be armed for the last
    // connection's deadline: no later than the one this connection sets, Deadline::set adds no
    // event and the early firing re-arms for the rest (Deadline::fired); later (a keep-alive or
    // send timeout), Deadline::set adds the event again for the earlier one.
    owner = &connection;
    pending_app.reset();
    pending_deflate.reset();
    pending_deflate_response.clear();
    local_authority.clear();
    requests = 0;
    req = Request{};
}

HttpPhasePool::~HttpPhasePool() { close(); }

std::unique_ptr<ClientConnection::HttpPhase> HttpPhasePool::take(ClientConnection& connection, std::size_t max_head_bytes) {
    if (spare_.empty()) return std::make_unique<ClientConnection::HttpPhase>(connection, loop_, max_head_bytes);
    std::unique_ptr<ClientConnection::HttpPhase> phase = std::move(spare_.back());
    spare_.pop_back();
    phase->bind(connection, max_head_bytes);
    return phase;
}

void HttpPhasePool::give(std::unique_ptr<ClientConnection::HttpPhase> phase) {
    if (!phase) return;
    // Its events would call the connection that gave it back: nobody to call now. The timer's
    // deadline goes, but its event may stay armed (taken off and added again per connection, it
    // cost an event_del and an event_add: about 430 instructions); a spare's firing does nothing.
    phase->timer.clear();
    phase->resume_event.cancel();
    phase->owner = nullptr;
    if (closed_ || spare_.size() >= kSpare) {
        // Perhaps inside its own callback (the exchange's, the parser's): deleted after it.
        loop_.deferDelete(std::move(phase));
        return;
    }
    // What a request may have grown beyond a head (a publish's body) and a built-in endpoint
    // that never started go now; the rest is cleared by bind().
    phase->req = ClientConnection::Request{};
    phase->pending_app.reset();
    spare_.push_back(std::move(phase));
}

void HttpPhasePool::close() {
    closed_ = true;
    spare_.clear();
}

}  // namespace portico::net
