// SPDX-License-Identifier: Apache-2.0
// The subscriber side of `handler: pubsub`: a WebSocket subscriber (PubSubSubscriber) and the
// worker's hub that hands each message to its listeners (subscribers and GRIP-bridged
// WebSockets), encoded once per frame form.

#include <algorithm>
#include <optional>

#include <event2/buffer.h>
#include <event2/event.h>

#include "portico/core/base64.h"
#include "portico/core/guarded.h"
#include "portico/core/json.h"
#include "portico/core/log.h"
#include "portico/handlers/pubsub.h"
#include "portico/handlers/websocket_endpoint.h"
#include "portico/net/event_loop.h"
#include "portico/ws/close_code.h"
#include "portico/ws/codec.h"

namespace portico::handlers {

namespace {

// A replay slice: at most this many messages per trip to the backplane, so that what is
// allocated for it stays small.
constexpr std::size_t kReplaySliceMessages = 64;

// The channel name in a channel key (channelKey(): route path, '\n', name).
std::string_view nameOf(const std::string& key) {
    std::string_view k = key;
    return k.substr(k.find('\n') + 1);
}

// portico.pubsub.v1: {"channel":"room","seq":12,"epoch":"k3x9","data":"..."}; a binary
// message's payload as "data_b64".
std::string messageJson(std::string_view channel, const pubsub::Message& m) {
    std::string json = "{\"channel\":";
    core::appendJsonString(json, channel);
    json += ",\"seq\":" + std::to_string(m.seq) + ",\"epoch\":";
    core::appendJsonString(json, m.epoch);
    if (m.text) {
        json += ",\"data\":";
        core::appendJsonString(json, m.payload);  // valid UTF-8: a text message is checked
    } else {
        json += ",\"data_b64\":\"" + core::base64Encode(m.payload) + "\"";
    }
    json += "}";
    return json;
}

// Appends `m` as one frame in the subscriber's form, compressed by `deflater` (its sharedDeflate's,
// no context takeover) when non-null, `m` is at least `min_deflate_bytes` and compression pays.
// A compression that fails goes uncompressed (Codec::encodeMessage), as live fan-out does.
// Returns false when out of memory (`out` may then hold part of the frame).
bool encodeFor(evbuffer* out, bool json, std::string_view channel, const pubsub::Message& m, ws::Deflater* deflater,
               std::size_t min_deflate_bytes) {
    std::string json_text;
    if (json) json_text = messageJson(channel, m);
    const std::string_view payload = json ? std::string_view(json_text) : std::string_view(m.payload);
    return ws::Codec::encodeMessage(out, json || m.text, payload.data(), payload.size(), deflater, min_deflate_bytes);
}

}  // namespace

std::string_view MessageFrames::payload(bool json) {
    if (!json) return message_.payload;
    if (json_text_.empty()) json_text_ = messageJson(channel_, message_);
    return json_text_;
}

core::SharedBytesRef MessageFrames::shared(bool json, const ws::SharedDeflate* deflate) {
    const bool text = json || message_.text;
    if (deflate != nullptr && payload(json).size() >= deflate->min_bytes) {
        for (const Compressed& c : compressed_)
            if (c.json == json && c.deflate.sameCompressor(*deflate)) return c.frame;
        const std::string_view p = payload(json);
        core::SharedBytesRef frame = ws::Codec::encodeShared(text, p.data(), p.size(), deflate);
        if (frame) compressed_.push_back(Compressed{json, *deflate, frame});
        return frame;
    }
    core::SharedBytesRef& frame = json ? json_ : bare_;
    if (!frame) {
        const std::string_view p = payload(json);
        frame = ws::Codec::encodeShared(text, p.data(), p.size());
    }
    return frame;
}

class PubSubSubscriber final : public EndpointApp, public ChannelListener {
public:
    PubSubSubscriber(PubSubHub& hub, const config::Route& route, std::string key, SubscribeOptions options)
        : hub_(hub), route_(route), settings_(route.pubsub), key_(std::move(key)), options_(std::move(options)) {}

    void onOpen(EndpointSession& session) override {
        session_ = &session;
        // In the hub first: a remote backplane answers later, and what arrives meanwhile tells
        // whether to catch up (pending_seq_).
        hub_.add(key_, this);
        in_hub_ = subscribing_ = true;
        hub_.backplane().subscribe(key_, settings_, core::guardedBy(alive_, [this](bool ok, const pubsub::Position& top) {
                                       onSubscribed(ok, top);
                                   }));
    }

    void onMessage(EndpointSession& session, bool is_text, std::string_view payload) override {
        if (!settings_.client_publish) {
            // RFC 6455 7.4.1: 1008 for a message that violates the endpoint's policy.
            session.close(ws::close_code::kPolicyViolation, "publishing is not allowed here");
            return;
        }
        if (payload.size() > publishLimit(route_, 0)) {
            hub_.registry().countRefusedSize();
            // RFC 6455 7.4.1: 1009 for a message too big to process.
            session.close(ws::close_code::kMessageTooBig, "message too big to publish");
            return;
        }
        // Beyond the channel's publish_rate (or with the backplane down) the message is dropped
        // (and counted), not the connection: the rate is the channel's, and the sender may not be
        // the one flooding it.
        pubsub::PublishRequest request;
        request.channel = key_;
        request.payload = std::string(payload);
        request.text = is_text;
        request.settings = &settings_;
        request.sender = this;
        hub_.backplane().publish(std::move(request), [](const pubsub::PublishResult&) {});
    }

    void onDrained(EndpointSession&) override { pump(); }

    void onClose(EndpointSession&) override {
        session_ = nullptr;
        alive_.reset();  // callbacks still held by the backplane find nobody
        if (in_hub_) hub_.remove(key_, this);
        in_hub_ = flush_asked_ = false;
        // Each subscribe() not refused is matched by one unsubscribe(), answered or not.
        if (subscribed_ || subscribing_) hub_.backplane().unsubscribe(key_);
        subscribed_ = subscribing_ = false;
    }

    void deliver(const pubsub::Message& message, MessageFrames& frames) override {
        if (!session_ || !session_->isOpen()) return;
        if (!subscribed_) {
            // Before the backplane's answer: remembered, so that anything after its position
            // comes from history.
            if (subscribing_) {
                pending_seq_ = std::max(pending_seq_, message.seq);
                pending_epoch_ = message.epoch;
            }
            return;
        }
        if (epoch_.empty()) epoch_ = message.epoch;  // the channel's state began after we asked
        if (message.epoch != epoch_) {
            // The channel's state was created anew (Redis flushed or evicted it): its seq
            // restarted, and what this subscriber missed of it is not known.
            if (replaying_) return;  // the replay's answer says so
            historyLost(message.epoch, message.seq - 1);
            if (!session_) return;
        }
        if (replaying_) {
            // History brings this message in order, unless the replay's answer was read before
            // it was published (a remote backplane: the answer and the message cross). Then
            // the replay goes on up to it (onSlice).
            if (message.seq > last_seq_) {
                if (pending_epoch_ != epoch_) pending_seq_ = 0;
                pending_seq_ = std::max(pending_seq_, message.seq);
                pending_epoch_ = epoch_;
            }
            return;
        }
        if (message.seq <= last_seq_) return;
        if (message.seq > last_seq_ + 1) {
            // Messages in between did not come live (a backplane that lost them, or an answer
            // that crossed this one): they come from history, then this one.
            catchUp();
            return;
        }
        last_seq_ = message.seq;
        if (message.sender == this) return;
        const core::SharedBytesRef frame = frames.shared(options_.json, session_->sharedDeflate());
        if (!frame) {
            last_seq_ = message.seq - 1;  // out of memory: left to history (the next one catches up)
            return;
        }
        // Counted whole, shared or not: the frames queued from the shared memory as well as the
        // bytes the socket left in the output.
        if (session_->queuedBytes() + frame->size() > settings_.queue_bytes) {
            // What this loop iteration queued has not been offered to the socket yet: offer it
            // before judging. A burst bigger than queue_bytes to a socket that takes it is not
            // a slow subscriber; one whose socket refuses the rest is.
            session_->flush();
            if (!session_) return;
            if (session_->queuedBytes() + frame->size() > settings_.queue_bytes) {
                closeSlow();
                return;
            }
        }
        // Written in the next loop pass (PubSubHub::flushLater) with whatever else came
        // meanwhile, from the frame's shared memory.
        session_->queueShared(frame);
        if (!flush_asked_) {
            flush_asked_ = true;
            hub_.flushLater(this);
        }
    }

    void flushDeliveries() override {
        flush_asked_ = false;
        if (session_) session_->flush();
    }

    // Whatever was published after last_seq_ comes from history.
    void catchUp() override {
        if (!subscribed_ || replaying_) return;
        replaying_ = true;
        pump();
    }

private:
    void onSubscribed(bool ok, const pubsub::Position& top) {
        subscribing_ = false;
        if (!session_) return;
        if (!ok) {
            hub_.remove(key_, this);
            in_hub_ = false;
            // 1013 Try Again Later (the IANA close code registry, RFC 6455 11.7): a capacity
            // limit, not a fault of the client. The 503 before the upgrade is the usual answer; this
            // is the race where the last channel was taken meanwhile.
            session_->close(ws::close_code::kTryAgainLater, "too many channels");
            session_ = nullptr;
            return;
        }
        subscribed_ = true;
        epoch_ = top.epoch;
        last_seq_ = top.seq;
        // The channel had no state when its position was read, and a message that created it
        // came meanwhile (on the subscribe connection, ahead of the position's answer on the
        // command connection): that message's epoch is the channel's, with or without since.
        if (epoch_.empty() && !pending_epoch_.empty()) epoch_ = pending_epoch_;
        if (!options_.since) {
            if (behindLive()) catchUp();
            return;
        }
        const std::uint64_t since = *options_.since;
        // A position in another epoch, or beyond this one's last seq (from an earlier life of
        // the channel): what came after it is not known here.
        if ((!options_.epoch.empty() && options_.epoch != top.epoch) || since > top.seq) {
            historyLost(top.epoch, top.seq);
            return;
        }
        accept_gap_ = since == 0;  // since=0: whatever is kept
        if (since < top.seq) {
            last_seq_ = since;
            catchUp();
            return;
        }
        // Messages that came before the answer but after its position: from history, as without
        // since (else the first of them was lost: nothing after it would bring it again).
        if (behindLive()) catchUp();
    }

    // A live message of this epoch after last_seq_ was left to history (it came before the
    // subscription's answer, or during a replay).
    bool behindLive() const { return pending_epoch_ == epoch_ && pending_seq_ > last_seq_; }

    // The subscriber's position cannot be resumed: with the subprotocol it is told and goes on
    // live after `top` of `epoch`; without it, Close 4410, so that it does not take a new
    // sequence for the old one.
    void historyLost(const std::string& epoch, std::uint64_t top) {
        hub_.registry().countReplayTruncated();
        if (!options_.json) {
            session_->close(ws::close_code::kHistoryLost, "history lost");
            session_ = nullptr;
            return;
        }
        std::string json = "{\"type\":\"history_lost\",\"channel\":";
        core::appendJsonString(json, nameOf(key_));
        json += ",\"epoch\":";
        core::appendJsonString(json, epoch);
        json += ",\"seq\":" + std::to_string(top) + "}";
        session_->sendText(json);
        session_->flush();  // also when told from a backplane's callback, outside a read
        epoch_ = epoch;
        last_seq_ = top;
        replaying_ = false;
    }

    // Sends history after last_seq_ in slices, each no bigger than the room left under
    // queue_bytes; continues from onDrained. Flow control by construction, as a live
    // subscriber: the queue never holds more than queue_bytes. A slice may be answered before
    // replay() returns (in-process) or later: pumping_ turns the first case into a loop.
    void pump() {
        if (pumping_) {
            pump_again_ = true;
            return;
        }
        pumping_ = true;
        do {
            pump_again_ = false;
            requestSlice();
        } while (pump_again_);
        pumping_ = false;
    }

    void requestSlice() {
        if (!replaying_ || slice_pending_ || !session_ || !session_->isOpen()) return;
        const std::size_t queued = session_->queuedBytes();
        pubsub::ReplayRequest request;
        request.channel = key_;
        request.after = last_seq_;
        request.epoch = epoch_;
        request.max_bytes = settings_.queue_bytes > queued ? settings_.queue_bytes - queued : 0;
        request.max_messages = kReplaySliceMessages;
        request.history_ttl = settings_.history_ttl;
        slice_pending_ = true;
        hub_.backplane().replay(request, core::guardedBy(alive_, [this](pubsub::ReplaySlice& slice) { onSlice(slice); }));
    }

    void onSlice(pubsub::ReplaySlice& slice) {
        slice_pending_ = false;
        if (!session_ || !session_->isOpen()) return;
        if (slice.unavailable) {
            // The channel's backplane (its Redis shard) is down: live again; its resync
            // (onBackplaneResync) catches up. Up (an answer later than publish_timeout): try
            // again shortly, else a message that came live during the replay (and was left to
            // it) would stay missing.
            replaying_ = false;
            if (hub_.backplane().reaches(key_)) retryCatchUp();
            return;
        }
        if (slice.lost || (slice.gap && !accept_gap_)) {
            historyLost(slice.epoch, slice.top);
            return;
        }
        if (slice.gap) hub_.registry().countReplayTruncated();  // since=0 starts at the oldest kept
        accept_gap_ = false;
        last_seq_ = slice.cursor;
        // Done, unless a live message left to this replay is beyond its answer: one more slice,
        // asked after that message came, so its answer has it.
        bool more = !slice.done;
        if (slice.done && behindLive()) {
            pending_seq_ = 0;
            more = true;
        }
        if (!more) replaying_ = false;
        if (!slice.messages.empty()) {
            core::EvbufferPtr frames(evbuffer_new());
            const std::string_view name = nameOf(key_);
            // Compressed as live messages are: each alone, for this subscriber only.
            const ws::SharedDeflate* deflate = session_->sharedDeflate();
            std::optional<ws::Deflater> deflater;
            if (deflate) deflater.emplace(deflate->deflater());
            for (const auto& m : slice.messages) {
                if (m->sender == this) continue;
                if (!encodeFor(frames.get(), options_.json, name, *m, deflater ? &*deflater : nullptr,
                               deflate ? deflate->min_bytes : 0)) {
                    // Out of memory: a message cannot be skipped, and asking again at once
                    // would only fail again. 1011, as a live send that cannot be encoded
                    // (ws::Codec); the client resumes with since= its last seq.
                    session_->close(ws::close_code::kInternalError, "out of memory");
                    return;
                }
            }
            session_->sendEncoded(frames.get());
        }
        if (!slice.messages.empty() || (slice.done && more)) {
            pump();
            return;
        }
        if (!replaying_) return;
        if (session_->queuedBytes() == 0) {
            // The next message alone is beyond queue_bytes: what a live one would get.
            closeSlow();
            return;
        }
        // Whatever the socket takes now; onDrained follows once a blocked write drains.
        session_->flush();
        if (session_->queuedBytes() == 0) pump();
    }

    void retryCatchUp() {
        if (!retry_timer_) retry_timer_.reset(evtimer_new(hub_.loop().base(), &PubSubSubscriber::onRetry, this));
        if (!retry_timer_) {  // no memory for the timer: the client tries again later instead
            session_->close(ws::close_code::kTryAgainLater, "backplane unavailable");
            return;
        }
        net::addTimerOnce(retry_timer_.get(), kReplayRetry);
    }

    static void onRetry(int, short, void* arg) { static_cast<PubSubSubscriber*>(arg)->catchUp(); }

    void closeSlow() {
        LOG_INFO("pubsub: closing a slow subscriber of %s (%zu bytes queued)", key_.c_str(), session_->queuedBytes());
        hub_.registry().countSlowClosed();
        session_->close(ws::close_code::kPolicyViolation, "subscriber too slow");
    }

    PubSubHub& hub_;
    const config::Route& route_;
    const config::PubSubSettings& settings_;
    std::string key_;
    SubscribeOptions options_;
    core::AliveToken alive_ = core::makeAliveToken();  // weakly held by pending callbacks
    EndpointSession* session_ = nullptr;
    std::string epoch_;           // of last_seq_
    std::uint64_t last_seq_ = 0;  // delivered (or skipped) up to here
    // The highest seq seen live but left to history (before the subscription's answer, or
    // during a replay), and its epoch.
    std::uint64_t pending_seq_ = 0;
    std::string pending_epoch_;
    bool in_hub_ = false;
    bool flush_asked_ = false;       // hub_.flushLater(this) not yet run
    core::EventPtr retry_timer_;     // made on the first replay the backplane could not answer
    static constexpr std::chrono::milliseconds kReplayRetry{200};
    bool subscribing_ = false;       // subscribe() asked, not answered
    bool subscribed_ = false;
    bool replaying_ = false;      // history after last_seq_ is being sent
    bool slice_pending_ = false;  // a replay() has not answered yet
    bool pumping_ = false;
    bool pump_again_ = false;
    bool accept_gap_ = false;     // the first replay of since=0 starts at the oldest kept
};

std::unique_ptr<EndpointApp> makeSubscriberApp(PubSubHub& hub, const config::Route& route, std::string channel,
                                               SubscribeOptions options) {
    std::string key = channelKey(route, channel);
    if (!hub.backplane().admits(key)) return nullptr;
    return std::make_unique<PubSubSubscriber>(hub, route, std::move(key), std::move(options));
}

// ---- the worker's hub ---------------------------------------------------------------------------

PubSubHub::PubSubHub(net::EventLoop& loop, std::unique_ptr<pubsub::Backplane> backplane)
    : loop_(loop), backplane_(std::move(backplane)), flush_event_(loop.base(), -1, 0, &PubSubHub::onFlush, this) {
    backplane_->start(*this);
}

void PubSubHub::flushLater(ChannelListener* listener) {
    // A zero timeout, not event_active (this iteration): libevent's next iteration polls
    // without waiting, runs the callbacks of the input it found, then the timers due, this one
    // among them. Input that came while these deliveries were queued is read first.
    static constexpr timeval kNextPass{0, 0};
    if (unflushed_.empty()) event_add(flush_event_.get(), &kNextPass);
    unflushed_.push_back(listener);
}

void PubSubHub::onFlush(int, short, void* arg) {
    auto* self = static_cast<PubSubHub*>(arg);
    // Messages published meanwhile on this worker (in the input just read) join these writes
    // instead of waiting for the inbox's wakeup and a write of their own. Their listeners are
    // in unflushed_ already or join it (flushLater does not re-arm: the list is not empty).
    self->backplane_->deliverWaiting();
    // A flush may close a listener (a write error is reported later, from the loop), which then
    // leaves the list through remove(): take the list first.
    std::vector<ChannelListener*> listeners;
    listeners.swap(self->unflushed_);
    for (std::size_t i = 0; i < listeners.size(); ++i) {
        if (!listeners[i]) continue;
        self->flushing_ = &listeners;
        listeners[i]->flushDeliveries();
    }
    self->flushing_ = nullptr;
    // Keep the capacity for the next iteration (no allocation per iteration).
    listeners.clear();
    if (self->unflushed_.empty()) self->unflushed_.swap(listeners);
}

PubSubHub::~PubSubHub() = default;

void PubSubHub::onBackplaneMessage(const std::string& channel, const pubsub::MessagePtr& message) {
    auto it = local_.find(channel);
    if (it == local_.end() || it->second.empty()) return;
    MessageFrames frames(nameOf(channel), *message);
    // A listener may close (and leave the list) while we deliver: iterate over a copy.
    std::vector<ChannelListener*> listeners = it->second;
    for (ChannelListener* l : listeners) l->deliver(*message, frames);
}

void PubSubHub::onBackplaneResync(const std::string& channel) {
    auto it = local_.find(channel);
    if (it == local_.end()) return;
    std::vector<ChannelListener*> listeners = it->second;  // catchUp may close one
    for (ChannelListener* l : listeners) l->catchUp();
}

void PubSubHub::add(const std::string& channel, ChannelListener* listener) { local_[channel].push_back(listener); }

void PubSubHub::remove(const std::string& channel, ChannelListener* listener) {
    auto it = local_.find(channel);
    if (it == local_.end()) return;
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), listener), list.end());
    if (list.empty()) local_.erase(it);
    std::erase(unflushed_, listener);
    if (flushing_) std::replace(flushing_->begin(), flushing_->end(), listener, static_cast<ChannelListener*>(nullptr));
}

}  // namespace portico::handlers
