// SPDX-License-Identifier: Apache-2.0
// What a libevent allocation that fails (event_new with no memory) does to the objects that used
// to event_new their events: the ones that keep an event all their life hold it inside
// (core::InlineEvent: nothing left to fail); a stream whose write must wait fails with ENOMEM,
// reported from the loop (it crashed on a null event).

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <event2/buffer.h>
#include <event2/event.h>
#include <memory>
#include <string>
#include <netinet/in.h>
#include <sys/socket.h>

#include "libevent_alloc_failure.h"
#include "portico/net/deadline.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"
#include "portico/pubsub/local_backplane.h"
#include "run_for.h"

using namespace portico;
using namespace std::chrono_literals;
using test::LibeventAllocFailure;

namespace {

struct ErrorRecorder final : net::StreamHandler {
    int error = 0;
    void onReadable(net::ByteStream&) override {}
    void onEof(net::ByteStream&) override {}
    void onError(net::ByteStream&, int e) override { error = e; }
};

struct Counter {
    explicit Counter(net::EventLoop& loop) : deadline(loop.base(), &Counter::onTimer, this) {}
    static void onTimer(int, short, void* arg) {
        auto* self = static_cast<Counter*>(arg);
        if (self->deadline.fired()) ++self->calls;
    }
    net::Deadline deadline;
    int calls = 0;
};

struct NoSink : pubsub::BackplaneSink {
    void onBackplaneMessage(const std::string&, const pubsub::MessagePtr&) override {}
    void onBackplaneResync(const std::string&) override {}
};

}  // namespace

TEST_CASE("the seam fails libevent's allocations while it lives", "[net][event_alloc]") {
    net::EventLoop loop;
    {
        LibeventAllocFailure failing;
        core::EventPtr ev(event_new(loop.base(), -1, 0, [](int, short, void*) {}, nullptr));
        CHECK(ev == nullptr);
        CHECK(LibeventAllocFailure::refused() == 1);
    }
    core::EventPtr ev(event_new(loop.base(), -1, 0, [](int, short, void*) {}, nullptr));
    CHECK(ev != nullptr);
}

TEST_CASE("a timeout made while libevent has no memory still fires (the event is inside its owner)",
          "[net][event_alloc]") {
    net::EventLoop loop;
    std::unique_ptr<Counter> counter;
    {
        LibeventAllocFailure failing;
        counter = std::make_unique<Counter>(loop);  // HttpExchange's and a connection's timer
    }
    counter->deadline.set(10ms);
    net::test::runFor(loop, 50ms);
    CHECK(counter->calls == 1);  // an event_new'd one was null: set() did nothing, no timeout ever
}

TEST_CASE("an in-process backplane made while libevent has no memory starts and sweeps", "[net][event_alloc]") {
    net::EventLoop loop;
    auto registry = std::make_shared<pubsub::PubSubRegistry>();
    std::unique_ptr<pubsub::LocalBackplane> backplane;
    {
        LibeventAllocFailure failing;
        backplane = std::make_unique<pubsub::LocalBackplane>(loop, registry);
    }
    NoSink sink;
    backplane->start(sink);  // its sweep timer: was event_add on a null event (a crash)
    net::test::runFor(loop, 10ms);
}

TEST_CASE("a stream whose write must wait, with no memory for its write event, fails with ENOMEM",
          "[net][event_alloc]") {
    net::EventLoop loop;
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    core::UniqueFd peer(fds[1]);
    ErrorRecorder handler;
    auto stream = std::make_unique<net::Stream>(loop.base(), core::UniqueFd(fds[0]), &handler);
    const std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 64; ++i) evbuffer_add(stream->output(), chunk.data(), chunk.size());  // more than the socket takes
    {
        LibeventAllocFailure failing;
        stream->flush();  // the socket fills: the stream must wait to write, and cannot
        CHECK(LibeventAllocFailure::refused() >= 1);
        CHECK(handler.error == 0);  // reported from the loop, not from inside flush()
    }
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    CHECK(handler.error == ENOMEM);
}

namespace {

struct ConnectErrorRecorder final : net::StreamHandler {
    int connected = 0;
    int error = 0;
    void onReadable(net::ByteStream&) override {}
    void onEof(net::ByteStream&) override {}
    void onError(net::ByteStream&, int e) override { error = e; }
    void onConnected(net::Stream&) override { ++connected; }
};

}  // namespace

TEST_CASE("a connecting stream whose first send went but whose write event cannot be made reports ENOMEM "
          "after onConnected",
          "[net][event_alloc]") {
    core::UniqueFd server(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(server.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(server.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    REQUIRE(::listen(server.get(), 4) == 0);

    net::EventLoop loop;
    ConnectErrorRecorder handler;
    int error = 0;
    auto stream = net::Stream::connectTo(loop.base(), reinterpret_cast<const sockaddr*>(&address), sizeof address,
                                         &handler, error);
    REQUIRE(stream != nullptr);
    const std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 256; ++i) evbuffer_add(stream->output(), chunk.data(), chunk.size());  // 16 MiB: the socket fills
    {
        LibeventAllocFailure failing;
        stream->flush();  // the first send tells the connect (up); the rest must wait, and cannot
    }
    net::test::runFor(loop, std::chrono::milliseconds(100));
    CHECK(handler.connected == 1);
    CHECK(handler.error == ENOMEM);  // was lost: the stream hung with its output queued and nothing armed
}
