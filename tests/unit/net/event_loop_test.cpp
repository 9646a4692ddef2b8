// SPDX-License-Identifier: Apache-2.0
// EventLoop::deferDelete: objects retired inside a callback live until it returns, then go in
// the order they were retired, owned alone (unique_ptr) or shared alike; what they retire while
// being destroyed goes too; whatever is pending when the loop is destroyed is freed then, before
// the loop's io_uring.

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <event2/event.h>

#include "portico/net/event_loop.h"
#include "uring/loop_ring.h"

using namespace portico::net;

namespace {

struct Tracked {
    Tracked(std::vector<std::string>& log, std::string name, EventLoop* loop = nullptr,
            std::unique_ptr<Tracked> then = nullptr)
        : log_(log), name_(std::move(name)), loop_(loop), then_(std::move(then)) {}
    ~Tracked() {
        log_.push_back(name_);
        if (loop_ && then_) loop_->deferDelete(std::move(then_));  // as a connection retires its upstream
    }
    std::vector<std::string>& log_;
    std::string name_;
    EventLoop* loop_;
    std::unique_ptr<Tracked> then_;
};

}  // namespace

TEST_CASE("deferred deletions wait for the loop and keep their order", "[net][event_loop]") {
    std::vector<std::string> log;
    EventLoop loop;
    loop.deferDelete(std::make_unique<Tracked>(log, "a"));
    loop.deferDelete(std::shared_ptr<Tracked>(std::make_shared<Tracked>(log, "b")));
    loop.deferDelete(std::unique_ptr<Tracked>());  // nothing to delete: no harm
    loop.deferDelete(std::make_unique<Tracked>(log, "c", &loop, std::make_unique<Tracked>(log, "d")));
    CHECK(log.empty());
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    CHECK(log == std::vector<std::string>{"a", "b", "c", "d"});
    // The next batch reuses the loop's queue.
    loop.deferDelete(std::make_unique<Tracked>(log, "e"));
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    CHECK(log.back() == "e");
}

TEST_CASE("what is still retired when the loop goes is deleted with it", "[net][event_loop]") {
    std::vector<std::string> log;
    {
        EventLoop loop;
        loop.deferDelete(std::make_unique<Tracked>(log, "x", &loop, std::make_unique<Tracked>(log, "y")));
    }
    CHECK(log == std::vector<std::string>{"x", "y"});
}

namespace {
// Records whether the loop still had its ring when it was destroyed; on the way out it may own
// `then` (as a connection destroyed late closes its TLS upstream with a lingering close).
struct RingWitness {
    RingWitness(EventLoop& loop, std::vector<std::string>& log, std::string name, std::shared_ptr<RingWitness> then)
        : loop_(loop), log_(log), name_(std::move(name)), then_(std::move(then)) {}
    ~RingWitness() {
        log_.push_back(name_ + (loop_.ring() ? " before the ring" : " after the ring"));
        if (then_) loop_.own(then_.get(), std::move(then_));
    }
    EventLoop& loop_;
    std::vector<std::string>& log_;
    std::string name_;
    std::shared_ptr<RingWitness> then_;
};
}  // namespace

// A Stream still alive when the ring goes does its I/O on epoll without what the ring held for
// it (a TLS Stream: the ciphertext its BIO kept, then a bad record). What the loop owns or
// retires at its end goes first, also what their destructors own or retire meanwhile.
TEST_CASE("what the loop owns or retires at its end, and what they own then, goes before its ring", "[net][event_loop]") {
    std::vector<std::string> log;
    {
        EventLoop loop;
        if (!test::giveLoopRing(loop)) return;
        auto owned_late = std::make_shared<RingWitness>(loop, log, "owned by an owned one", nullptr);
        auto owned = std::make_shared<RingWitness>(loop, log, "owned", owned_late);
        loop.own(owned.get(), owned);
        auto retired_late = std::make_shared<RingWitness>(loop, log, "owned by a retired one", nullptr);
        loop.deferDelete(std::make_shared<RingWitness>(loop, log, "retired", retired_late));
        owned.reset();
        owned_late.reset();
        retired_late.reset();
    }
    std::sort(log.begin(), log.end());
    CHECK(log == std::vector<std::string>{"owned before the ring", "owned by a retired one before the ring",
                                          "owned by an owned one before the ring", "retired before the ring"});
}
