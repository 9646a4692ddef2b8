// SPDX-License-Identifier: Apache-2.0
// net::Stream's outgoing connect: made without a write event, told by the first send (loopback
// connects are usually up by then), reported from the loop through the read event. With the
// worker's ring (plain TCP) the ring makes it instead, with the first send and receive linked
// behind it (StreamIo::submitConnect), and the completions report it (ringConnected, ringSent).
#include "portico/net/stream.h"
#include "portico/net/uring/ring.h"
#include "portico/net/uring/stream_io.h"

#include <cerrno>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace portico::net {

namespace {

// A connection to an upstream: requests and WebSocket messages are small and latency-bound,
// never wait for Nagle (accepted sockets inherit it from the listening socket).
void setNoDelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

std::unique_ptr<Stream> Stream::connectTo(event_base* base, const sockaddr* address, socklen_t length,
                                          StreamHandler* handler, int& error, uring::Ring* ring) {
    core::UniqueFd fd(::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        error = errno;
        return nullptr;
    }
    setNoDelay(fd.get());
    if (ring && ring->connects() && (address->sa_family == AF_INET || address->sa_family == AF_INET6) &&
        length <= sizeof(sockaddr_in6)) {
        // No connect(2) and no send(2): the ring makes both, linked, with the first receive
        // (StreamIo::connect), and reports the outcome from the completion (ringConnected).
        std::unique_ptr<Stream> stream(new Stream(base, std::move(fd), handler, ring, /*connecting=*/true));
        stream->connect_on_ring_ = true;
        stream->connect_unwatched_ = false;  // no write event: the ring reports
        stream->ring_io_->connect(address, length);
        return stream;
    }
    if (::connect(fd.get(), address, length) != 0 && errno != EINPROGRESS) {
        error = errno;
        return nullptr;
    }
    // Connected or not, the outcome is reported from the loop. The caller's first send comes
    // before the loop runs again: it tells (settleConnect), or arms the write event that waits
    // for the connect (watchConnect). A write event made here would be freed unused on every
    // loopback connect (a malloc, an event_add and an event_del per upstream connection).
    return std::unique_ptr<Stream>(new Stream(base, std::move(fd), handler, ring, /*connecting=*/true));
}

// The connect's first send could not tell its outcome (TLS, EAGAIN, nothing to send): the write
// event waits for it, as it did from connectTo before.
void Stream::watchConnect() {
    if (connect_unwatched_) armWrite();
}

// A non-blocking connect answers EINPROGRESS even when the handshake is over by the time it
// returns (on loopback it usually is): the first send (write or flush) tells, as nginx's first
// write does. Sent: the socket is up, and the write event armed for the connect goes unused (its
// epoll_ctl, the MOD that removes it and the getsockopt(SO_ERROR) are saved). EAGAIN: still
// connecting, the write event reports the outcome as before. Any other error is the connect's
// (send takes it from the socket, so SO_ERROR would no longer show it): kept in pending_error_
// and reported as a failed connect.
bool Stream::firstSendTellsConnect() const {
    return connecting_ && !connect_on_ring_ && !connect_probed_ && !ssl_ && pending_error_ == 0 && !shutdown_after_flush_;
}

// The first send told: bytes went (`up`), or pending_error_ holds the connect's failure. Reported
// from the loop like any connect (event_active: no syscall), never from inside write or flush.
// The report goes through the read event (EV_WRITE in its result: onReadEvent), which every
// stream has: a loopback connect needs no write event at all.
void Stream::settleConnect(bool up) {
    connect_unwatched_ = false;
    if (up) {
        connecting_ = false;
        connect_unreported_ = true;
        // All went: a write event armed for the connect (flush with nothing to send) goes unused.
        // Not after an error on a later send of the same call: the write event reports it
        // (handleWrite, after onConnected).
        if (outputLength() == 0 && pending_error_ == 0) disarmWrite();
    }
    connect_report_queued_ = true;
    event_active(&read_event_, EV_WRITE, 0);
}

// The ring's connect completed (StreamIo::onConnected) with no send linked behind it, or failed:
// reported now, from the completion (a send linked behind it reports it: ringSent), before the
// receive linked after them completes, so that onConnected comes before any bytes. A failure
// ends the linked ones with -ECANCELED: pending_error_ keeps the send's from being reported a
// second time (ringFailed).
void Stream::ringConnected(int result) {
    if (result < 0) {
        pending_error_ = -result;
        stopReading(/*watch_peer_shut=*/false);
        handler_->onError(*this, -result);
        return;
    }
    connecting_ = false;
    reportConnected();
}

void Stream::reportConnected() {
    if (ring_io_ && reading_) ring_io_->receive(/*poll_first=*/true);  // on the ring from now on
    handler_->onConnected(*this);
    // Whoever stopped reading while we were connecting waits for this.
    if (!write_armed_ && pending_error_ == 0 && outputLength() <= low_watermark_) handler_->onDrained(*this);
}

}  // namespace portico::net
