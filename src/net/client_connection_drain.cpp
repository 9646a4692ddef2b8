// SPDX-License-Identifier: Apache-2.0
// A client connection at a graceful stop (Worker::stopping): an upgraded session is told to go
// away, a request in progress finishes, an idle keep-alive connection closes unless a request is
// already on its way (in input(), the socket, OpenSSL, or a ring receive not reaped yet).
// The rest of the connection's life is in client_connection.cpp.
#include "portico/net/client_connection.h"

#include "portico/net/lingering_close.h"
#include "portico/net/stream.h"
#include "portico/net/uring/stream_io.h"  // uring::RingSettled (Stream::receiveEnded)
#include "portico/proxy/http_exchange.h"
#include "portico/ws/session.h"

namespace portico::net {

void ClientConnection::drain() {
    draining_ = true;
    if (state_ == State::Http2 && http2_) {
        http2_->goAway();
        return;
    }
    if (state_ == State::Upgraded && session_) {
        session_->goAway();
        return;
    }
    // Idle: nothing of a request read, and none waiting in the socket. A request that is waiting
    // (a connection the stop accepted from the listen queue, a keep-alive request in flight) is
    // read and answered, and the connection closes after it (Worker::stopping): closing with it
    // unread would reset the connection, or, on the ring, drop a request a receive had taken.
    if (state_ != State::ReadingHead || http_->parser.inMessage()) return;
    // A request already in input() is answered as it is: nothing to wait for.
    if (!client_->onRing() || !client_->isReading() || hasUnreadInput(*client_)) {
        drainIdle(/*resume=*/false);
        return;
    }
    // A ring receive the kernel completed, its completion not reaped yet, holds bytes that
    // FIONREAD no longer sees: reading stops, and the answer waits for that receive to end.
    client_->pauseReading();
    if (client_->receiveEnded({&ClientConnection::onDrainReceiveEnded, this})) drainIdle(/*resume=*/true);
}

void ClientConnection::onDrainReceiveEnded(void* arg) { static_cast<ClientConnection*>(arg)->drainIdle(/*resume=*/true); }

void ClientConnection::drainIdle(bool resume) {
    if (state_ != State::ReadingHead || http_->parser.inMessage()) return;
    if (!hasUnreadInput(*client_)) {
        finish("shutting down");
        return;
    }
    if (resume) client_->resumeReading();  // held bytes are reported from the loop
}

}  // namespace portico::net
