// SPDX-License-Identifier: Apache-2.0
// The bridge's timers: the deferred send of a batch, Keep-Alive-Interval requests to the app,
// and the GRIP keep-alive message to a client that heard nothing for a while.
#include "portico/bridge/bridge.h"

#include <event2/event.h>

#include "bridge/bridge_limits.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/net/event_loop.h"

namespace portico::bridge {

void Bridge::scheduleSend() {
    // Sent once the current callback returns, so that the messages of one read go together.
    if (!exchange_) event_active(send_event_.get(), EV_TIMEOUT, 0);
}

void Bridge::onSendEvent(int, short, void* arg) {
    auto* self = static_cast<Bridge*>(arg);
    if (self->exchange_) return;
    if (self->state_ == State::Opening || (self->state_ == State::Open && self->hasUnoffered())) self->sendRequest();
}

void Bridge::onKeepAlive(int, short, void* arg) {
    auto* self = static_cast<Bridge*>(arg);
    // Keep-Alive-Interval: a request after that much silence (empty when nothing is queued), so
    // that an app can answer with what it has for the client.
    if (self->state_ == State::Open && !self->exchange_ && !self->detached_) self->sendRequest();
}

// GRIP keep-alive: after `timeout` seconds without a message to the client, send it one.
void Bridge::sentToClient() {
    if (client_keepalive_) net::addTimer(loop_, client_keepalive_timer_.get(), std::chrono::seconds(client_keepalive_->timeout));
}

void Bridge::onClientKeepAlive(int, short, void* arg) {
    auto* self = static_cast<Bridge*>(arg);
    if (!self->session_ || !self->client_keepalive_) return;
    const ControlMessage& k = *self->client_keepalive_;
    switch (k.message_type) {
        case ControlMessage::MessageType::Text: self->session_->sendText(k.content); break;
        case ControlMessage::MessageType::Binary: self->session_->sendBinary(k.content); break;
        case ControlMessage::MessageType::Ping:
            self->session_->sendPing(std::string_view(k.content).substr(0, kMaxControlBytes));
            break;
        case ControlMessage::MessageType::Pong:
            self->session_->sendPong(std::string_view(k.content).substr(0, kMaxControlBytes));
            break;
    }
    self->session_->flush();
    self->sentToClient();
}

}  // namespace portico::bridge
