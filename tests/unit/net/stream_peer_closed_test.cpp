// SPDX-License-Identifier: Apache-2.0
// Stream::peerClosed(): set once the peer's FIN was read, so that closing the socket needs no
// FIONREAD to know that nothing is left unread (net::closeFinished).

#include <catch2/catch.hpp>

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/net/event_loop.h"
#include "portico/net/stream.h"

using namespace portico;

namespace {

struct Recorder final : net::StreamHandler {
    virtual ~Recorder() = default;
    int eofs = 0;
    void onReadable(net::ByteStream&) override {}
    void onEof(net::ByteStream&) override { ++eofs; }
    void onError(net::ByteStream&, int) override {}
};

}  // namespace

TEST_CASE("a stream knows its peer closed only after reading the FIN", "[net][stream]") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    net::EventLoop loop;
    Recorder handler;
    net::Stream stream(loop.base(), core::UniqueFd(fds[0]), &handler);
    REQUIRE(::write(fds[1], "hello", 5) == 5);
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    CHECK(stream.inputLength() == 5);
    CHECK_FALSE(stream.peerClosed());
    ::close(fds[1]);
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    CHECK(handler.eofs == 1);
    CHECK(stream.peerClosed());
}
