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

// GRIP keep-alive, mode "idle": after `timeout` seconds without a message to the client, send it
// one. Mode "interval" sends it every `timeout` seconds whatever else goes out.
void Bridge::sentToClient() {
    if (client_keepalive_ && !client_keepalive_->interval) armClientKeepAlive();
}

void Bridge::armClientKeepAlive() {
    net::addTimer(loop_, client_keepalive_timer_.get(), std::chrono::seconds(client_keepalive_->timeout));
}

void Bridge::onClientKeepAlive(int, short, void* arg) {
    auto* self = static_cast<Bridge*>(arg);
    if (!self->session_ || !self->client_keepalive_) return;
    self->sendControlContent(*self->client_keepalive_);
    self->session_->flush();
    self->armClientKeepAlive();
}

// As Pushpin: a new send-delayed sends the one still held first; flush-delayed sends it now.
void Bridge::sendDelayed(const ControlMessage& message) {
    flushDelayed();
    delayed_ = message;
    net::addTimer(loop_, delayed_timer_.get(), std::chrono::seconds(message.timeout));
}

void Bridge::flushDelayed() {
    if (!delayed_) return;
    event_del(delayed_timer_.get());
    const ControlMessage message = std::move(*delayed_);
    delayed_.reset();
    if (!session_) return;
    sendControlContent(message);
    sentToClient();
}

void Bridge::onDelayed(int, short, void* arg) {
    auto* self = static_cast<Bridge*>(arg);
    self->flushDelayed();
    if (self->session_) self->session_->flush();
}

void Bridge::sendControlContent(const ControlMessage& message) {
    const std::string_view content = message.content;
    switch (message.message_type) {
        case ControlMessage::MessageType::Text: session_->sendText(content); break;
        case ControlMessage::MessageType::Binary: session_->sendBinary(content); break;
        case ControlMessage::MessageType::Ping: session_->sendPing(content.substr(0, kMaxControlBytes)); break;
        case ControlMessage::MessageType::Pong: session_->sendPong(content.substr(0, kMaxControlBytes)); break;
    }
}

}  // namespace portico::bridge
