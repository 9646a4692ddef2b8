// SPDX-License-Identifier: Apache-2.0
#pragma once
// A unit test's EventLoop with its own io_uring, where the kernel allows one.

#include <catch2/catch.hpp>

#include <string>
#include <utility>

#include "portico/net/event_loop.h"
#include "portico/net/uring/ring.h"

namespace portico::net::test {

// The ring now owned by `loop`, or nullptr with a warning (the test skips itself) where the
// kernel refuses one (io_uring disabled, a seccomp profile).
inline uring::Ring* giveLoopRing(EventLoop& loop) {
    std::string why;
    auto made = uring::Ring::make(loop, why);
    if (!made) {
        WARN("io_uring refused here, skipped: " << why);
        return nullptr;
    }
    uring::Ring* ring = made.get();
    loop.setRing(std::move(made));
    return ring;
}

}  // namespace portico::net::test
