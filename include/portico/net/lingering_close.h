// SPDX-License-Identifier: Apache-2.0
#pragma once
// Closing a socket without losing what was queued for it: flush the output, half-close, discard
// what the peer still sends, and free the socket when the peer closes or after `timeout`
// (nginx's lingering close). Used when a session ends with a final frame or error response.

#include <chrono>
#include <memory>

namespace portico::net {

class EventLoop;
class Stream;

// Takes `stream`; the loop keeps it until it is done, and frees what is left when it stops.
void closeGracefully(EventLoop& loop, std::unique_ptr<Stream> stream,
                     std::chrono::milliseconds timeout = std::chrono::seconds(2));

}  // namespace portico::net
