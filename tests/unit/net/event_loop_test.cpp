// SPDX-License-Identifier: Apache-2.0
// EventLoop::deferDelete: objects retired inside a callback live until it returns, then go in
// the order they were retired, owned alone (unique_ptr) or shared alike; what they retire while
// being destroyed goes too; whatever is pending when the loop is destroyed is freed then.

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include <event2/event.h>

#include "portico/net/event_loop.h"

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
