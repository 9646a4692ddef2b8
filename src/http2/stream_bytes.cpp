// SPDX-License-Identifier: Apache-2.0
#include "http2/stream_bytes.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <utility>

#include "http2/stream.h"
#include "portico/net/event_loop.h"

namespace portico::http2 {

StreamBytes::StreamBytes(Stream& stream, net::EventLoop& loop, evbuffer* output)
    : stream_(&stream),
      output_(output),
      deliver_event_(loop.base(), -1, 0, &StreamBytes::onDeliverEvent, this) {}

StreamBytes::~StreamBytes() {
    if (stream_) stream_->onBytesClosed();
}

evbuffer* StreamBytes::input() const {
    if (!input_) input_.reset(evbuffer_new());
    return input_.get();
}

std::size_t StreamBytes::inputLength() const { return input_ ? evbuffer_get_length(input_.get()) : 0; }

std::size_t StreamBytes::outputLength() const { return evbuffer_get_length(output_); }

void StreamBytes::releaseIdle() {
    if (input_ && evbuffer_get_length(input_.get()) == 0) input_.reset();
}

void StreamBytes::giveBack(std::size_t n) {
    if (stream_ && n > 0) stream_->consumeWindow(n);
}

void StreamBytes::onData(const char* data, std::size_t n) {
    if (!handler_ || !reading_) {
        // Paused: the bytes wait, and so does their window (the client stops after a window).
        evbuffer_add(input(), data, n);
        withheld_ += n;
        return;
    }
    giveBack(n);  // offered to the session now: the client may send as much again
    if (direct_read_ && inputLength() == 0) {
        handler_->onBytes(*this, data, n);
        return;
    }
    evbuffer_add(input(), data, n);
    handler_->onReadable(*this);
}

void StreamBytes::addEarly(evbuffer* early) { evbuffer_add_buffer(input(), early); }

void StreamBytes::onEndStream() {
    eof_ = true;
    // As a socket reports its FIN: from the loop, after the bytes before it; paused, the session
    // hears of it at once (onPeerShut), as a paused socket's watch tells it.
    if (reading_) {
        event_active(deliver_event_.get(), EV_TIMEOUT, 0);
    } else if (handler_) {
        handler_->onPeerShut(*this);
    }
}

void StreamBytes::onStreamClosed() {
    stream_ = nullptr;
    reading_ = false;
    event_del(deliver_event_.get());
    // Synchronously: the stream (and with it the session) is deleted from the loop next, and
    // the session must end first, its upstream closed as after a client's error.
    if (net::StreamHandler* handler = handler_) handler->onError(*this, ECONNRESET);
}

void StreamBytes::resumeReading() {
    if (reading_ || !stream_) return;
    reading_ = true;
    if (withheld_ > 0 || (eof_ && !eof_reported_)) event_active(deliver_event_.get(), EV_TIMEOUT, 0);
}

void StreamBytes::onDeliverEvent(int, short, void* arg) { static_cast<StreamBytes*>(arg)->deliver(); }

void StreamBytes::deliver() {
    if (write_error_ != 0 && handler_) {
        handler_->onError(*this, write_error_);
        return;
    }
    if (!handler_ || !reading_) return;
    if (withheld_ > 0) {
        giveBack(std::exchange(withheld_, 0));
        net::StreamHandler* handler = handler_;
        handler->onReadable(*this);
        // The handler may have paused us, or ended the session (closeSide: no handler now).
        if (handler_ != handler || !reading_) return;
    }
    if (eof_ && !eof_reported_) {
        eof_reported_ = true;
        handler_->onEof(*this);
    }
}

void StreamBytes::failWrite(int error) {
    write_error_ = error;
    other_side_failed_ = true;  // no END_STREAM after a message cut short: a reset
    evbuffer_drain(output_, evbuffer_get_length(output_));
    event_active(deliver_event_.get(), EV_TIMEOUT, 0);
}

void StreamBytes::flush() {
    if (!stream_ || write_error_ != 0) return;
    // Nothing goes out before the connection's next send: the session is told onDrained then
    // (afterSend), as a socket tells it after a write that did not complete.
    if (outputLength() > 0) drain_wanted_ = true;
    stream_->sendPending();
}

void StreamBytes::write(const char* data, std::size_t n) {
    if (n == 0) return;
    evbuffer_add(output_, data, n);
    flush();
}

void StreamBytes::afterSend() {
    if (!drain_wanted_ || !handler_ || outputLength() > low_watermark_) return;
    drain_wanted_ = false;
    handler_->onDrained(*this);
}

void StreamBytes::close(net::EventLoop& loop, std::unique_ptr<ByteStream> self, net::Ending) {
    // Finished or not, the stream ends the same way: END_STREAM after what output() holds (or
    // RST_STREAM CONNECT_ERROR when the upstream failed); what the client still sends is
    // dropped, and a client that does not end its side is reset after a linger (Stream::tick).
    handler_ = nullptr;
    reading_ = false;
    event_del(deliver_event_.get());
    // The window held back while the session paused goes back too: the client's own Close may
    // be waiting for it (without, the stream ends in a reset and the close is not clean).
    giveBack(std::exchange(withheld_, 0));
    if (Stream* stream = stream_) {
        stream_ = nullptr;
        if (write_error_ != 0) evbuffer_drain(output_, evbuffer_get_length(output_));  // queued after the failure
        stream->onBytesClosed(other_side_failed_);
    }
    loop.deferDelete(std::shared_ptr<ByteStream>(std::move(self)));  // we may be in a callback of ours
}

}  // namespace portico::http2
