// SPDX-License-Identifier: Apache-2.0
// Stream::detach: an exchange that lets go of an upstream socket (its delete deferred to the
// loop's next turn) may serve another request at once; the old socket's events, bytes and EOF
// already waiting included, must not reach it any more.

#include <catch2/catch.hpp>

#include <chrono>
#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/core/handles.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"

using namespace portico;
using namespace std::chrono_literals;

namespace {

struct Recorder final : net::StreamHandler {
    int calls = 0;
    void onReadable(net::ByteStream&) override { ++calls; }
    void onEof(net::ByteStream&) override { ++calls; }
    void onError(net::ByteStream&, int) override { ++calls; }
    void onDrained(net::ByteStream&) override { ++calls; }
};

void runFor(net::EventLoop& loop, std::chrono::milliseconds duration) {
    event* stop = evtimer_new(
        loop.base(), [](int, short, void* base) { event_base_loopbreak(static_cast<event_base*>(base)); }, loop.base());
    net::addTimerOnce(stop, duration);
    loop.run();
    event_free(stop);
}

}  // namespace

TEST_CASE("a detached stream's due bytes and EOF reach no handler", "[net][stream]") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    net::EventLoop loop;
    Recorder owner;
    net::Stream stream(loop.base(), core::UniqueFd(fds[0]), &owner);
    REQUIRE(::write(fds[1], "late answer", 11) == 11);
    ::close(fds[1]);  // and the EOF after it

    SECTION("attached, the owner hears both") {
        runFor(loop, 50ms);
        CHECK(owner.calls >= 2);
    }
    SECTION("detached, nothing reaches the owner") {
        stream.detach();
        runFor(loop, 50ms);
        CHECK(owner.calls == 0);
    }
}
