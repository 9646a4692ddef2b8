// SPDX-License-Identifier: Apache-2.0
// A ring going away with objects still on it (a worker stopping with tunnels open): what those
// objects' destructors ask of the ring after its queues are gone is refused, not done.
#include <catch2/catch.hpp>

#include "loop_ring.h"
#include "portico/net/event_loop.h"
#include "portico/net/uring/ring.h"

namespace {

using portico::net::uring::Ring;

// Like a Relay whose Stream still has a receive in flight: its destructor cancels it.
class CancelsOnDestruction final : public portico::net::uring::RingOwned {
public:
    CancelsOnDestruction(Ring& ring, bool& cancel_refused) : ring_(ring), cancel_refused_(cancel_refused) {}
    ~CancelsOnDestruction() override {
        ring_.cancel(this, 1);
        cancel_refused_ = ring_.keptCancels() == 1;  // not made: kept, and dropped with the ring
    }
    void onCompletion(unsigned, int, unsigned) override {}

private:
    Ring& ring_;
    bool& cancel_refused_;
};

}  // namespace

TEST_CASE("a ring torn down with objects on it refuses their requests", "[uring][ring]") {
    bool cancel_refused = false;
    {
        portico::net::EventLoop loop;
        Ring* ring = portico::net::test::giveLoopRing(loop);
        if (!ring) return;
        ring->adopt(new CancelsOnDestruction(*ring, cancel_refused));
    }  // the loop frees its ring, which deletes what it still owns
    CHECK(cancel_refused);
}
