// SPDX-License-Identifier: Apache-2.0
#pragma once
// A ring whose submission queue is full and whose kernel refuses to take it: what a completion
// queue overflow (-EBUSY) or a kernel short of memory does, which a test cannot cause on demand.

#include <liburing.h>

#include "portico/net/uring/ring.h"

namespace portico::net::uring {

struct RingTestAccess {
    // Fills the submission queue with quiet no-ops, leaving `free` entries, and refuses to submit
    // it (entry(), reserve()) until refuse(ring, false). The no-ops go at the next enter after.
    static void fillAndRefuse(Ring& ring, unsigned free) {
        while (io_uring_sq_space_left(&ring.ring_) > free) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring.ring_);
            if (!sqe) break;
            io_uring_prep_nop(sqe);
            Ring::quiet(sqe);
        }
        ring.refuse_when_full_ = true;
    }
    static void refuse(Ring& ring, bool on) { ring.refuse_when_full_ = on; }
};

}  // namespace portico::net::uring
