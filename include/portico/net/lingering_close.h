// SPDX-License-Identifier: Apache-2.0
#pragma once
// Closing a socket without losing what was queued for it: flush the output, half-close, discard
// what the peer still sends, and free the socket when the peer closes or after `timeout`
// (nginx's lingering close). Used when a session ends with a final frame or error response.

#include <chrono>
#include <memory>

#include "portico/net/byte_stream.h"

namespace portico::net {

// Takes `stream`; the loop keeps it until it is done, and frees what is left when it stops.
void closeGracefully(EventLoop& loop, std::unique_ptr<Stream> stream,
                     std::chrono::milliseconds timeout = std::chrono::seconds(2));

// The peer sent bytes nobody has read yet: in `stream`'s input, or still in the kernel
// (FIONREAD). A graceful stop serves such a connection's request instead of closing it idle.
bool hasUnreadInput(const Stream& stream);

// The end of a relayed session that is over for both peers (Ending::Finished or AfterCloses,
// byte_stream.h): a socket with nothing left to send or unread (and no TLS close_notify due) is
// closed at once, as nginx closes both sides of an upgraded connection; any other goes through
// closeGracefully. Takes `stream`; null does nothing.
void closeFinished(EventLoop& loop, std::unique_ptr<Stream> stream, Ending ending);

// The end of a relay between two peers: both sides at once (closeSide, byte_stream.h).
void closeBoth(EventLoop& loop, std::unique_ptr<ByteStream> a, std::unique_ptr<ByteStream> b, Ending ending);

}  // namespace portico::net
