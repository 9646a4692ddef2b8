// SPDX-License-Identifier: Apache-2.0
#pragma once
// A relay side whose peer closed while its reading was paused (StreamHandler::onPeerShut):
// the bytes still unread on it were sent before the FIN and are owed to the other side, which
// gets them as it takes what it has queued (reading resumes at the low watermark, and the EOF is
// read after them: the session then ends as on any EOF). Nothing else would end the wait for a
// side that takes nothing: the peer that could send more is gone, and the idle timer may be
// kept alive by the other direction. This watch ends it: when the other side took no byte for
// kStall, the session is told (and ends as at that peer's EOF, the unread bytes dropped). nginx
// bounds the same wait with proxy_send_timeout.
//
// Made only when a peer closes behind backpressure: a session holds a null pointer otherwise.

#include <chrono>
#include <cstddef>

#include "portico/core/inline_event.h"

namespace portico::net {
class ByteStream;
class EventLoop;
}  // namespace portico::net

namespace portico::ws {

class StalledDelivery {
public:
    using Callback = void (*)(void* context, net::ByteStream& from);
    // `from` is the side whose peer closed, `to` the side its bytes are owed to; both outlive
    // this watch (the session frees it when it ends).
    StalledDelivery(net::EventLoop& loop, net::ByteStream& from, const net::ByteStream& to, Callback on_stall,
                    void* context);
    StalledDelivery(const StalledDelivery&) = delete;
    StalledDelivery& operator=(const StalledDelivery&) = delete;

    const net::ByteStream& from() const { return from_; }
    const net::ByteStream& to() const { return to_; }
    // `to` drained to its low watermark (reading `from` resumes): progress.
    void progress() { progressed_ = true; }
    // The session ended: its streams are gone (freed with the session, never in its callback).
    void stop();

    // How long the side owed the bytes may take none before the session ends: a reader that
    // takes nothing for this long after its peer has gone is not reading (the lingering close
    // gives what is queued at a session's end 2 s in all; this counts from the last byte taken).
    static constexpr std::chrono::seconds kStall{2};

private:
    static void onTimer(int, short, void* arg);

    net::ByteStream& from_;
    const net::ByteStream& to_;
    Callback on_stall_;
    void* context_;
    std::size_t queued_;  // to_'s output at the last check: less now means it took bytes
    bool progressed_ = false;
    core::InlineEvent timer_;  // inside the watch (made only when a peer closes behind backpressure)
};

}  // namespace portico::ws
