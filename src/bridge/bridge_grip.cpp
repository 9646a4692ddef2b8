// SPDX-License-Identifier: Apache-2.0
// GRIP on a bridged WebSocket: the app's messages read through the grip extension (control
// messages, the message prefix) and the channel subscriptions they make, whose publishes reach
// the client through the worker's pub/sub hub.
#include "portico/bridge/bridge.h"

#include <algorithm>
#include <event2/buffer.h>
#include <event2/event.h>

#include "bridge/bridge_limits.h"
#include "portico/core/guarded.h"
#include "portico/core/log.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/http/header_rewrite.h"
#include "portico/ws/close_code.h"

namespace portico::bridge {

void Bridge::deliverGrip(bool text, std::string_view content) {
    if (text && content.substr(0, kControlPrefix.size()) == kControlPrefix) {
        applyControl(content.substr(kControlPrefix.size()));
        return;
    }
    const std::string& prefix = grip_->message_prefix;
    if (content.substr(0, prefix.size()) != prefix) {
        LOG_DEBUG("bridge %s: connection %s: dropping a message without the prefix", route_.path.c_str(), connection_id_.c_str());
        return;
    }
    content.remove_prefix(prefix.size());
    if (text) {
        session_->sendText(content);
    } else {
        session_->sendBinary(content);
    }
    sentToClient();
}

// A control message takes effect before the next event of the same answer is acted on.
void Bridge::applyControl(std::string_view json) {
    std::string error;
    const std::optional<ControlMessage> control = parseControlMessage(json, error);
    if (!control) {
        LOG_INFO("bridge %s: connection %s: ignoring a control message: %s", route_.path.c_str(), connection_id_.c_str(),
                 error.c_str());
        return;
    }
    switch (control->type) {
        case ControlMessage::Type::Subscribe:
            subscribe(control->channel);
            return;
        case ControlMessage::Type::Unsubscribe:
            unsubscribe(control->channel);
            return;
        case ControlMessage::Type::Detach:
            detached_ = true;
            event_del(keepalive_timer_.get());
            dropUnsent();
            if (holding_reading_ && session_) {
                holding_reading_ = false;
                session_->holdReading(false);
            }
            return;
        case ControlMessage::Type::KeepAlive:
            event_del(client_keepalive_timer_.get());
            client_keepalive_.reset();
            if (!control->content.empty() || control->message_type == ControlMessage::MessageType::Ping ||
                control->message_type == ControlMessage::MessageType::Pong) {
                client_keepalive_ = *control;
                armClientKeepAlive();
            }
            return;
        case ControlMessage::Type::SendDelayed:
            sendDelayed(*control);
            return;
        case ControlMessage::Type::FlushDelayed:
            flushDelayed();
            return;
        case ControlMessage::Type::Close:
            if (!session_) return;
            setState(State::Done);
            session_->close(control->code, control->reason);
            return;
        case ControlMessage::Type::SetMeta:
            if (!setMeta(control->name, control->value)) {
                LOG_INFO("bridge %s: connection %s: ignoring a set-meta: Meta-* over %zu bytes", route_.path.c_str(),
                         connection_id_.c_str(), kMaxMetaBytes);
            }
            return;
    }
}

// Through the worker's backplane, as a pubsub subscriber: with a Redis backplane the app's
// channels span every node. Both backplanes refuse (max_channels) before subscribe() returns;
// the position they answer later is of no use here (GRIP replays nothing).
void Bridge::subscribe(const std::string& channel) {
    if (std::find(subscriptions_.begin(), subscriptions_.end(), channel) != subscriptions_.end()) return;
    if (subscriptions_.size() >= kMaxSubscriptions) {
        LOG_WARN("bridge %s: connection %s: over %zu subscriptions, \"%s\" refused", route_.path.c_str(),
                 connection_id_.c_str(), kMaxSubscriptions, channel.c_str());
        return;
    }
    const std::string key = channels_.key(channel);
    // In the hub first, as a pubsub subscriber: what the backplane carries from now on is ours.
    hub_.add(key, this);
    subscriptions_.push_back(channel);
    hub_.backplane().subscribe(key, channels_.settings(),
                               core::guardedBy(alive_, [this, channel](bool ok, const pubsub::Position&) {
                                   if (!ok) onSubscriptionRefused(channel);
                               }));
}

void Bridge::onSubscriptionRefused(const std::string& channel) {
    LOG_WARN("bridge %s: connection %s: subscription to \"%s\" refused: pubsub.max_channels reached", route_.path.c_str(),
             connection_id_.c_str(), channel.c_str());
    auto it = std::find(subscriptions_.begin(), subscriptions_.end(), channel);
    if (it == subscriptions_.end()) return;
    hub_.remove(channels_.key(channel), this);
    subscriptions_.erase(it);  // nothing counted: no unsubscribe()
}

void Bridge::unsubscribe(const std::string& channel) {
    auto it = std::find(subscriptions_.begin(), subscriptions_.end(), channel);
    if (it == subscriptions_.end()) return;
    const std::string key = channels_.key(channel);
    hub_.remove(key, this);
    hub_.backplane().unsubscribe(key);
    subscriptions_.erase(it);
}

void Bridge::unsubscribeAll() {
    while (!subscriptions_.empty()) unsubscribe(subscriptions_.back());
}

// A message published to a channel the app subscribed this WebSocket to.
void Bridge::deliver(const pubsub::Message&, handlers::MessageFrames& message_frames) {
    if (!session_ || !session_->isOpen()) return;
    // Compressed when the client agreed permessage-deflate without server context takeover, as
    // for a pubsub subscriber: once per compressor among the message's listeners.
    const core::SharedBytesRef frame = message_frames.shared(false, session_->sharedDeflate());
    if (!frame) return;  // out of memory: not delivered, as a message lost on the way
    // As a pubsub subscriber: a client that does not read is closed rather than buffered for.
    const std::size_t limit = channels_.settings().queue_bytes;
    if (session_->queuedBytes() + frame->size() > limit) {
        LOG_INFO("bridge %s: connection %s: closing a slow subscriber (%zu bytes queued)", route_.path.c_str(),
                 connection_id_.c_str(), session_->queuedBytes());
        hub_.registry().countSlowClosed();
        handlers::EndpointSession* session = session_;
        session->close(ws::close_code::kPolicyViolation, "subscriber too slow");
        return;
    }
    // Written from the frame shared by every listener of the message (one send, no copy).
    session_->queueShared(frame);
    session_->flush();
    sentToClient();
}

// GRIP channels carry no position (Pushpin's neither): a bridged WebSocket gets what is
// published while it is subscribed, and what a reconnecting backplane missed is not replayed.
void Bridge::catchUp() {}


}  // namespace portico::bridge
