// SPDX-License-Identifier: Apache-2.0
// net::Stream on a socketpair: peerClosed(), the FIN with the last bytes, detach() and how a
// finished side closes.

#include <catch2/catch.hpp>

#include <event2/event.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/net/event_loop.h"
#include "portico/net/lingering_close.h"
#include "portico/net/stream.h"

using namespace portico;

namespace {

struct Recorder final : net::StreamHandler {
    virtual ~Recorder() = default;
    int eofs = 0;
    int calls = 0;  // of any callback
    void onReadable(net::ByteStream&) override { ++calls; }
    void onEof(net::ByteStream&) override {
        ++eofs;
        ++calls;
    }
    void onError(net::ByteStream&, int) override { ++calls; }
    void onDrained(net::ByteStream&) override { ++calls; }
    std::string bytes;  // given to onBytes (direct read)
    void onBytes(net::ByteStream&, const char* data, std::size_t n) override {
        bytes.append(data, n);
        ++calls;
    }
};

}  // namespace

// Set once the peer's FIN was read, so that closing the socket needs no FIONREAD to know that
// nothing is left unread (net::closeFinished).
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

// An exchange that lets go of an upstream socket (its delete deferred to the loop's next turn)
// may serve another request at once: the old socket's bytes and EOF, already waiting, must not
// reach it any more.
TEST_CASE("a detached stream's due bytes and EOF reach no handler", "[net][stream]") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    net::EventLoop loop;
    Recorder owner;
    net::Stream stream(loop.base(), core::UniqueFd(fds[0]), &owner);
    REQUIRE(::write(fds[1], "late answer", 11) == 11);
    ::close(fds[1]);  // and the EOF after it

    SECTION("attached, the owner hears both") {
        event_base_loop(loop.base(), EVLOOP_NONBLOCK);
        CHECK(owner.calls >= 2);
    }
    SECTION("detached, nothing reaches the owner") {
        stream.detach();
        event_base_loop(loop.base(), EVLOOP_NONBLOCK);
        CHECK(owner.calls == 0);
    }
}

// Unread bytes from the peer make a close a reset that can destroy what is still queued to it:
// a finished session lingers for them (FIONREAD), except after both WebSocket Closes, when
// nothing may follow (RFC 6455 5.5.1) and the socket is closed at once without asking.
TEST_CASE("a finished side with unread input lingers, unless it ended after both Closes", "[net][stream]") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    core::UniqueFd peer(fds[1]);
    net::EventLoop loop;
    Recorder owner;
    auto stream = std::make_unique<net::Stream>(loop.base(), core::UniqueFd(fds[0]), &owner);
    REQUIRE(::write(peer.get(), "junk", 4) == 4);  // never read: the loop has not run
    auto stillOpen = [&] { return ::send(peer.get(), "x", 1, MSG_NOSIGNAL) == 1; };

    SECTION("finished: lingers (the socket stays open, half-closed)") {
        net::closeFinished(loop, std::move(stream), net::Ending::Finished);
        event_base_loop(loop.base(), EVLOOP_NONBLOCK);
        CHECK(stillOpen());
    }
    SECTION("after both Closes: closed at once") {
        net::closeFinished(loop, std::move(stream), net::Ending::AfterCloses);
        event_base_loop(loop.base(), EVLOOP_NONBLOCK);
        CHECK_FALSE(stillOpen());
    }
}

// A relay learns of the peer's FIN with the bytes before it (EPOLLRDHUP): the end in the same
// loop pass, without another recv. A stream that is not a relay reads the EOF as before.
TEST_CASE("a relay hears the bytes and the FIN that came together in one pass", "[net][stream]") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    net::EventLoop loop;
    Recorder handler;
    net::Stream stream(loop.base(), core::UniqueFd(fds[0]), &handler);
    const bool relay = GENERATE(true, false);
    stream.setDirectRead(relay);
    REQUIRE(::write(fds[1], "bye", 3) == 3);
    ::close(fds[1]);
    event_base_loop(loop.base(), EVLOOP_ONCE | EVLOOP_NONBLOCK);  // one pass
    CHECK((relay ? handler.bytes : std::string(stream.inputLength(), '.')) == (relay ? "bye" : "..."));
    CHECK(handler.eofs == (relay ? 1 : 0));
    CHECK(stream.peerClosed() == relay);
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    CHECK(handler.eofs == 1);
}
