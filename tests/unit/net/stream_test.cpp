// SPDX-License-Identifier: Apache-2.0
// net::Stream on a socketpair: peerClosed(), the FIN with the last bytes, detach() and how a
// finished side closes.

#include <catch2/catch.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>
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

// A stream on one end of a socketpair, the test holding the other end (`peer`); the loop runs
// only when a test says so.
struct Pair {
    net::EventLoop loop;
    Recorder handler;
    core::UniqueFd peer;
    std::unique_ptr<net::Stream> stream;
    Pair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        peer = core::UniqueFd(fds[1]);
        stream = std::make_unique<net::Stream>(loop.base(), core::UniqueFd(fds[0]), &handler);
    }
    void send(const char* bytes) const { REQUIRE(::write(peer.get(), bytes, std::strlen(bytes)) > 0); }
    void closePeer() { peer = core::UniqueFd(); }
    void run(int flags = EVLOOP_NONBLOCK) { event_base_loop(loop.base(), flags); }
};

}  // namespace

// Set once the peer's FIN was read, so that closing the socket needs no FIONREAD to know that
// nothing is left unread (net::closeFinished).
TEST_CASE("a stream knows its peer closed only after reading the FIN", "[net][stream]") {
    Pair p;
    p.send("hello");
    p.run();
    CHECK(p.stream->inputLength() == 5);
    CHECK_FALSE(p.stream->peerClosed());
    p.closePeer();
    p.run();
    CHECK(p.handler.eofs == 1);
    CHECK(p.stream->peerClosed());
}

// An exchange that lets go of an upstream socket (its delete deferred to the loop's next turn)
// may serve another request at once: the old socket's bytes and EOF, already waiting, must not
// reach it any more.
TEST_CASE("a detached stream's due bytes and EOF reach no handler", "[net][stream]") {
    Pair p;
    p.send("late answer");
    p.closePeer();  // and the EOF after it

    SECTION("attached, the owner hears both") {
        p.run();
        CHECK(p.handler.calls >= 2);
    }
    SECTION("detached, nothing reaches the owner") {
        p.stream->detach();
        p.run();
        CHECK(p.handler.calls == 0);
    }
}

// Unread bytes from the peer make a close a reset that can destroy what is still queued to it:
// a finished session lingers for them (FIONREAD), except after both WebSocket Closes, when
// nothing may follow (RFC 6455 5.5.1) and the socket is closed at once without asking.
TEST_CASE("a finished side with unread input lingers, unless it ended after both Closes", "[net][stream]") {
    Pair p;
    p.send("junk");  // never read: the loop has not run
    auto stillOpen = [&] { return ::send(p.peer.get(), "x", 1, MSG_NOSIGNAL) == 1; };

    SECTION("finished: lingers (the socket stays open, half-closed)") {
        net::closeFinished(p.loop, std::move(p.stream), net::Ending::Finished);
        p.run();
        CHECK(stillOpen());
    }
    SECTION("after both Closes: closed at once") {
        net::closeFinished(p.loop, std::move(p.stream), net::Ending::AfterCloses);
        p.run();
        CHECK_FALSE(stillOpen());
    }
}

// A relay learns of the peer's FIN with the bytes before it (EPOLLRDHUP): the end in the same
// loop pass (it reads on to the recv that returns 0: a short read may have stopped at urgent
// data's mark). A stream that is not a relay reads the EOF as before.
TEST_CASE("a relay hears the bytes and the FIN that came together in one pass", "[net][stream]") {
    const bool relay = GENERATE(true, false);
    Pair p;
    p.stream->setDirectRead(relay);
    p.send("bye");
    p.closePeer();
    p.run(EVLOOP_ONCE | EVLOOP_NONBLOCK);  // one pass
    CHECK((relay ? p.handler.bytes : std::string(p.stream->inputLength(), '.')) == (relay ? "bye" : "..."));
    CHECK(p.handler.eofs == (relay ? 1 : 0));
    CHECK(p.stream->peerClosed() == relay);
    p.run();
    CHECK(p.handler.eofs == 1);
}

// A finished relay closes without FIONREAD when the loop's last poll saw nothing unread on the
// socket (Stream::drainedAtLastPoll): only after a read that emptied it, with reading on since,
// and not while the poll's report of new bytes waits for its callback in the same pass.
TEST_CASE("a stream is drained at the last poll only after a read emptied it and nothing new was reported", "[net][stream]") {
    Pair p;
    CHECK_FALSE(p.stream->drainedAtLastPoll());  // nothing read yet: unknown
    p.send("hello");
    p.run();
    CHECK(p.stream->drainedAtLastPoll());  // the read took less than it asked for

    SECTION("paused, the poll stops watching") {
        p.stream->pauseReading();
        CHECK_FALSE(p.stream->drainedAtLastPoll());
        p.stream->resumeReading();
        CHECK_FALSE(p.stream->drainedAtLastPoll());  // until a read empties it again
    }
    SECTION("new bytes reported by the poll, their callback not run yet") {
        // Two relayed sockets on one loop, new bytes on both: the callback that runs first in
        // the pass sees the other's read event due (not drained); the second sees the first
        // drained by its read.
        struct Watch final : net::StreamHandler {
            std::vector<std::pair<const net::Stream*, const net::Stream*>> pairs;  // (stream, the other)
            std::vector<bool> seen;  // the other's drainedAtLastPoll() at each read
            void onReadable(net::ByteStream& s) override {
                for (auto [self, other] : pairs)
                    if (self == &s) seen.push_back(other->drainedAtLastPoll());
            }
            void onBytes(net::ByteStream& s, const char*, std::size_t) override { onReadable(s); }
            void onEof(net::ByteStream&) override {}
            void onError(net::ByteStream&, int) override {}
        } watch;
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        core::UniqueFd peer2(fds[1]);
        net::Stream second(p.loop.base(), core::UniqueFd(fds[0]), &watch);
        p.stream->setHandler(&watch);
        for (net::Stream* s : {p.stream.get(), &second}) s->setDirectRead(true);
        watch.pairs = {{p.stream.get(), &second}, {&second, p.stream.get()}};
        REQUIRE(::write(peer2.get(), "a", 1) == 1);
        p.run();
        REQUIRE(second.drainedAtLastPoll());
        watch.seen.clear();
        p.send("b");
        REQUIRE(::write(peer2.get(), "b", 1) == 1);
        p.run(EVLOOP_ONCE | EVLOOP_NONBLOCK);  // one poll reports both
        CHECK(watch.seen == std::vector<bool>{false, true});
    }
}

// The buffers a stream lets go (releaseIdle, its end) serve the thread's next streams: a
// handshake's buffers are not made again for every connection. Only empty ones are kept.
TEST_CASE("a released empty buffer serves the next stream, which starts empty", "[net][stream]") {
    // Streams that hold buffers taken from the spare list (earlier tests may have filled it):
    // with the list empty, the next buffer released is the next one handed out.
    std::vector<std::unique_ptr<Pair>> holders;
    for (int i = 0; i < 32; ++i) {
        holders.push_back(std::make_unique<Pair>());
        holders.back()->stream->input();
    }
    Pair a;
    evbuffer* released = a.stream->input();
    a.stream->releaseIdle();
    Pair b;
    CHECK(b.stream->input() == released);
    CHECK(b.stream->inputLength() == 0);

    evbuffer_add(b.stream->output(), "left", 4);  // never sent: the loop does not run
    b.stream.reset();
    Pair c;
    CHECK(evbuffer_get_length(c.stream->output()) == 0);
    CHECK(evbuffer_get_length(c.stream->input()) == 0);
}
