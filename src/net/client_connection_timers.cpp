// SPDX-License-Identifier: Apache-2.0
// What bounds a client connection in time: its one timer (HttpPhase::timer), what each state
// waits for when it fires, and limits.client_send_timeout for a client that takes no byte of a
// response. The rest of the connection's life is in client_connection.cpp.
#include "portico/net/client_connection.h"

#include <algorithm>
#include <event2/buffer.h>

#include "portico/core/log.h"
#include "portico/net/snapshot.h"
#include "portico/proxy/http_exchange.h"

namespace portico::net {

void ClientConnection::armTimer(std::chrono::milliseconds timeout) {
    http_->timer.set(timeout);
    http_->timer_checks_send = false;
}

void ClientConnection::armSendCheck(std::chrono::milliseconds timeout) {
    http_->timer.set(timeout);
    http_->timer_checks_send = true;
}

// `limits.client_send_timeout` (nginx's send_timeout): while a response the client has not
// taken yet is all that is left to do (the end of a large file, the wait of a pipelined request
// or of the linger after "Connection: close"), the keep-alive, header and linger timeouts wait;
// a client that takes no byte for client_send_timeout is closed.
// The timer looks every sendCheckInterval (net/send_stall.h): the timeout runs from the check
// that first saw the client's last take, not from the one after it.
void ClientConnection::watchClientReading() {
    http_->req.send_stall.watch(client_->sendProgress(), std::chrono::steady_clock::now());
    const std::chrono::milliseconds check = sendCheckInterval(snapshot_->config().limits.client_send_timeout);
    // Closing looks again at the linger's pace: the linger after the last byte stays short.
    armSendCheck(state_ == State::Closing ? std::min(check, kLingerTimeout) : check);
}

// At a timeout: true when the client is still taking a response (the timer is armed again) or
// was closed for taking none of it for client_send_timeout.
bool ClientConnection::awaitClientReading() {
    if (client_->outputLength() == 0) {
        if (!http_->timer_checks_send || !http_->req.send_stall.watching()) return false;
        // A look found the response out before the stream said so (onDrained ends the watch):
        // what follows it (keep-alive, the linger) starts now, not at this look's short timer.
        onDrained(*client_);
        return true;
    }
    const bool closing = state_ == State::Closing;
    const bool proxied_backlog = state_ == State::Proxying && http_->req.complete &&
                                 client_->outputLength() > proxy::kHighWatermark;
    if (!closing && !proxied_backlog && !(state_ == State::ReadingHead && !http_->parser.inMessage())) return false;
    const std::chrono::milliseconds timeout = snapshot_->config().limits.client_send_timeout;
    const std::chrono::milliseconds left =
        http_->req.send_stall.left(client_->sendProgress(), std::chrono::steady_clock::now(), timeout);
    if (left <= std::chrono::milliseconds::zero()) {
        LOG_INFO("client %s: took no byte of the response for client_send_timeout", client_ip_.c_str());
        if (proxied_backlog) {  // the response is cut: its exchange ends, its request is logged
            if (http_->exchange) http_->exchange->abort();
            logAccess();
        }
        finish("client send timeout");
        return true;
    }
    const std::chrono::milliseconds next = std::min(left, sendCheckInterval(timeout));
    armSendCheck(closing ? std::min(next, kLingerTimeout) : next);
    return true;
}

void ClientConnection::onTimer(int, short, void* arg) {
    auto* self = static_cast<ClientConnection*>(arg);
    if (!self->http_->timer.fired()) return;  // moved later, or cleared, since armed
    if (self->awaitClientReading()) return;
    switch (self->state_) {
        case State::ReadingHead:
            if (self->client_->isTls() && !self->client_->tlsEstablished()) {
                // client_header_timeout bounds the TLS handshake too (a ClientHello sent in part,
                // a client that never finishes): a failed handshake, counted and logged as one.
                self->listener_stats_.tls_failures.add();
                LOG_INFO("client %s: TLS handshake failed: not complete within client_header_timeout",
                         self->client_ip_.c_str());
                self->finish("TLS handshake timeout");
                return;
            }
            if (self->http_->parser.inMessage() || evbuffer_get_length(self->client_->input()) > 0 ||
                (self->http_->requests == 0 && self->http_->req.start != std::chrono::steady_clock::time_point{})) {
                self->respondError(408, "client header timeout");  // slowloris
            } else {
                self->finish("keep-alive timeout");
            }
            return;
        case State::Proxying:
        case State::Responding:
            // Armed only while a body is read (armBodyTimer): the client stopped sending it.
            if (!self->http_->req.complete) self->respondError(408, "client body timeout");
            return;
        case State::Closing:
            self->finish("linger timeout");
            return;
        default:
            return;
    }
}

}  // namespace portico::net
