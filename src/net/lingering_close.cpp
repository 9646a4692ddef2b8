// SPDX-License-Identifier: Apache-2.0
#include "portico/net/lingering_close.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "portico/core/inline_event.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"

namespace portico::net {

namespace {

class LingeringClose final : private StreamHandler {
public:
    LingeringClose(EventLoop& loop, std::unique_ptr<Stream> stream, std::chrono::milliseconds timeout)
        : loop_(loop), stream_(std::move(stream)), timer_(loop.base(), -1, 0, &LingeringClose::onTimer, this) {
        stream_->setHandler(this);
        stream_->setDirectRead(false);
        stream_->setLowWatermark(0);
        stream_->resumeReading();
        stream_->shutdownAfterFlush();
        addTimerOnce(timer_.get(), timeout);
    }

private:
    void onReadable(ByteStream& s) override { evbuffer_drain(s.input(), evbuffer_get_length(s.input())); }
    void onEof(ByteStream&) override { done(); }
    void onError(ByteStream&, int) override { done(); }
    static void onTimer(int, short, void* arg) { static_cast<LingeringClose*>(arg)->done(); }
    void done() {
        if (finished_) return;
        finished_ = true;
        event_del(timer_.get());
        stream_->pauseReading();
        loop_.disown(this);
    }

    EventLoop& loop_;
    std::unique_ptr<Stream> stream_;
    core::InlineEvent timer_;
    bool finished_ = false;
};

}  // namespace

void closeGracefully(EventLoop& loop, std::unique_ptr<Stream> stream, std::chrono::milliseconds timeout) {
    if (!stream) return;
    auto closer = std::make_shared<LingeringClose>(loop, std::move(stream), timeout);
    loop.own(closer.get(), closer);
}

namespace {

// Bytes the peer sent that nobody read: closing a socket with them makes Linux answer with a
// reset, which destroys what is still queued to the peer (RFC 9293 3.6.1; the same reason
// Worker::refuse lingers). A relay whose reading was paused by backpressure has them. After the
// peer's FIN, read to the end, nothing can be waiting, after both WebSocket Closes nothing
// may (Ending::AfterCloses), and a socket that a read emptied and the loop's last poll found
// with nothing new (Stream::drainedAtLastPoll: the tunnel's client side when the upstream
// closes first) has nothing either: no FIONREAD (one syscall per socket).
bool hasUnreadInput(const Stream& stream, Ending ending) {
    if (stream.inputLength() > 0) return true;
    if (stream.peerClosed() || ending == Ending::AfterCloses || stream.drainedAtLastPoll()) return false;
    int unread = 0;
    return ::ioctl(stream.fd(), FIONREAD, &unread) != 0 || unread > 0;
}

}  // namespace

bool hasUnreadInput(const Stream& stream) {
    if (stream.inputLength() > 0 || stream.tlsHoldsInput()) return true;
    if (stream.peerClosed()) return false;
    int unread = 0;
    return ::ioctl(stream.fd(), FIONREAD, &unread) == 0 && unread > 0;
}

void closeFinished(EventLoop& loop, std::unique_ptr<Stream> stream, Ending ending) {
    if (!stream) return;
    if (stream->outputLength() > 0 || stream->isTls() || hasUnreadInput(*stream, ending)) {
        closeGracefully(loop, std::move(stream));
        return;
    }
    // Off the loop for good, not paused: a pause would watch for the peer's FIN again (an
    // event_assign and event_add per socket, taken off once more by the destructor).
    stream->detach();
    loop.deferDelete(std::move(stream));  // we may be in its callback
}

// A socket's side of a session ends here (Stream::close is declared in stream.h): the lingering
// close is a socket's business, and stream.cpp stays about moving bytes.
void Stream::close(EventLoop& loop, std::unique_ptr<ByteStream> self, Ending ending) {
    std::unique_ptr<Stream> stream(static_cast<Stream*>(self.release()));
    if (stream->reset_on_close_) {
        // An abortive close: the socket's close() sends an RST and drops what is queued, the
        // TCP word for "the other side failed" (nothing to linger for).
        const ::linger abort{1, 0};
        ::setsockopt(stream->fd(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
        stream->detach();
        loop.deferDelete(std::move(stream));  // we may be in its callback
        return;
    }
    if (ending == Ending::Linger) {
        closeGracefully(loop, std::move(stream));
    } else {
        closeFinished(loop, std::move(stream), ending);
    }
}

void closeSide(EventLoop& loop, std::unique_ptr<ByteStream> stream, Ending ending) {
    if (!stream) return;
    ByteStream* side = stream.get();
    side->close(loop, std::move(stream), ending);
}

void closeBoth(EventLoop& loop, std::unique_ptr<ByteStream> a, std::unique_ptr<ByteStream> b, Ending ending) {
    closeSide(loop, std::move(a), ending);
    closeSide(loop, std::move(b), ending);
}

}  // namespace portico::net
