// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/stalled_delivery.h"

#include <event2/event.h>

#include "portico/net/byte_stream.h"
#include "portico/net/event_loop.h"

namespace portico::ws {

StalledDelivery::StalledDelivery(net::EventLoop& loop, net::ByteStream& from, const net::ByteStream& to,
                                 Callback on_stall, void* context)
    : from_(from),
      to_(to),
      on_stall_(on_stall),
      context_(context),
      queued_(to.outputLength()),
      timer_(loop.base(), -1, EV_PERSIST, &StalledDelivery::onTimer, this) {
    net::addTimerOnce(timer_.get(), kStall);
}

void StalledDelivery::stop() { event_del(timer_.get()); }

void StalledDelivery::onTimer(int, short, void* arg) {
    auto* self = static_cast<StalledDelivery*>(arg);
    const std::size_t queued = self->to_.outputLength();
    // A drain (which resumed reading `from`) or a smaller queue: the other side takes bytes.
    const bool took = self->progressed_ || queued < self->queued_;
    self->progressed_ = false;
    self->queued_ = queued;
    if (took) return;
    self->stop();  // told once
    self->on_stall_(self->context_, self->from_);
}

}  // namespace portico::ws
