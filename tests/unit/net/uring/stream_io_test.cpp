// SPDX-License-Identifier: Apache-2.0
// net::Stream on the worker's ring (net/uring/stream_io.h) over socket pairs: what a loop pass
// writes goes in one send, in order, and nothing is reported from inside a call; a pause holds
// the bytes a late receive brought and reports them (and the peer's FIN, onPeerShut first) from
// the loop once reading resumes; a Stream destroyed with requests in flight leaves the ring
// with nothing in flight and closes its socket after them (the peer sees the end). Skipped
// where the kernel refuses a ring.
#include <catch2/catch.hpp>

#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

#include <event2/buffer.h>

#include "../loopback_socket.h"
#include "../run_for.h"
#include "loop_ring.h"
#include "ring_test_access.h"
#include "portico/net/event_loop.h"
#include "portico/net/lingering_close.h"
#include "portico/net/stream.h"
#include "portico/net/uring/ring.h"
#include "portico/net/uring/stream_io.h"

using namespace portico::net;
using namespace std::chrono_literals;
using portico::net::test::readAll;

namespace {

struct Recorder final : StreamHandler {
    std::string got;
    std::string events;  // one letter per callback: r(eadable) b(ytes) e(of) x(error) d(rained) s(hut)
    bool in_call = false;  // set by the test around its own calls: nothing may be reported then
    bool reported_inside = false;
    void note(char c) {
        events += c;
        if (in_call) reported_inside = true;
    }
    void onReadable(ByteStream& s) override {
        note('r');
        const std::size_t n = evbuffer_get_length(s.input());
        got.append(reinterpret_cast<const char*>(evbuffer_pullup(s.input(), -1)), n);
        evbuffer_drain(s.input(), n);
    }
    void onBytes(ByteStream&, const char* data, std::size_t n) override {
        note('b');
        got.append(data, n);
    }
    void onEof(ByteStream&) override { note('e'); }
    void onError(ByteStream&, int) override { note('x'); }
    void onDrained(ByteStream&) override { note('d'); }
    void onPeerShut(ByteStream&) override { note('s'); }
};

// A loop with its ring (none where the kernel refuses one: the test is skipped) and a socket
// pair whose inner end is a Stream on the ring.
struct Setup {
    EventLoop loop;
    uring::Ring* ring = nullptr;
    Recorder handler;
    int outer = -1;
    std::unique_ptr<Stream> stream;

    Setup() {
        ring = test::giveLoopRing(loop);
        if (!ring) return;
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
        outer = fds[0];
        stream = std::make_unique<Stream>(loop.base(), portico::core::UniqueFd(fds[1]), &handler, ring);
    }
    ~Setup() {
        stream.reset();
        if (ring) test::runFor(loop, 20ms);  // the released requests complete
        if (outer >= 0) ::close(outer);
    }
};

}  // namespace

TEST_CASE("a Stream on the ring sends a pass's writes in order, after the call, with onDrained") {
    Setup t;
    if (!t.ring) return;
    REQUIRE(t.stream->onRing());
    t.handler.in_call = true;
    t.stream->write("GET / ", 6);
    t.stream->write("HTTP/1.1\r\n", 10);
    evbuffer_add(t.stream->output(), "\r\n", 2);
    t.stream->flush();
    // Nothing went yet: the ring sends at its next enter, in this loop pass.
    CHECK(readAll(t.outer).empty());
    CHECK(t.stream->outputLength() == 18);
    CHECK(t.stream->sendProgress().written == 0);
    t.handler.in_call = false;
    test::runFor(t.loop, 50ms);
    CHECK(readAll(t.outer) == "GET / HTTP/1.1\r\n\r\n");
    CHECK(t.stream->outputLength() == 0);
    CHECK(t.stream->sendProgress().written == 18);
    CHECK(t.handler.events == "d");
    CHECK_FALSE(t.handler.reported_inside);
}

TEST_CASE("a Stream on the ring reads into its handler, direct or through input()") {
    Setup t;
    if (!t.ring) return;
    REQUIRE(::send(t.outer, "one", 3, 0) == 3);
    test::runFor(t.loop, 50ms);
    CHECK(t.handler.got == "one");
    CHECK(t.handler.events == "r");
    t.stream->setDirectRead(true);
    REQUIRE(::send(t.outer, "two", 3, 0) == 3);
    test::runFor(t.loop, 50ms);
    CHECK(t.handler.got == "onetwo");
    CHECK(t.handler.events == "rb");
    ::shutdown(t.outer, SHUT_WR);
    test::runFor(t.loop, 50ms);
    CHECK(t.handler.events == "rbe");
    CHECK(t.stream->peerClosed());
    CHECK_FALSE(t.stream->isReading());
}

TEST_CASE("paused on the ring: the peer's FIN is onPeerShut, the rest comes from the loop on resume") {
    Setup t;
    if (!t.ring) return;
    test::runFor(t.loop, 20ms);  // the receive is in flight
    t.stream->pauseReading();
    REQUIRE(::send(t.outer, "held", 4, 0) == 4);
    ::shutdown(t.outer, SHUT_WR);
    test::runFor(t.loop, 50ms);
    // Whether the cancel came before the bytes or not, the handler heard only the FIN so far.
    CHECK(t.handler.got.empty());
    CHECK(t.handler.events == "s");
    CHECK(t.stream->peerShut());
    t.handler.in_call = true;
    t.stream->resumeReading();
    t.handler.in_call = false;
    test::runFor(t.loop, 50ms);
    CHECK(t.handler.got == "held");
    CHECK(t.handler.events == "sre");
    CHECK_FALSE(t.handler.reported_inside);
}

// A graceful stop closes an idle connection unless the client sent something
// (ClientConnection::drain, net::hasUnreadInput: input() or FIONREAD). A receive the kernel
// completed before the loop reaped it holds bytes neither shows: a request that arrived as the
// stop came was dropped. receiveEnded waits for that receive, then the bytes are in input().
TEST_CASE("a receive completed but not reaped: receiveEnded waits for it, then its bytes are seen") {
    Setup t;
    if (!t.ring) return;
    test::runFor(t.loop, 20ms);  // the receive is in flight
    const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(::send(t.outer, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
    // The send woke the receive: the kernel moved the bytes into a pool buffer on the way back
    // from it (the ring's task work runs on this thread), and nobody reaped the completion.
    t.stream->pauseReading();
    INFO("what drain() asked before: no input, FIONREAD empty, so the connection was closed");
    CHECK_FALSE(hasUnreadInput(*t.stream));
    bool ended = false;
    const uring::RingSettled tell{[](void* flag) { *static_cast<bool*>(flag) = true; }, &ended};
    REQUIRE_FALSE(t.stream->receiveEnded(tell));
    test::runFor(t.loop, 50ms);
    CHECK(ended);
    CHECK(hasUnreadInput(*t.stream));
    CHECK(t.handler.events.empty());  // paused: nothing reported yet
    t.stream->resumeReading();
    test::runFor(t.loop, 50ms);
    CHECK(t.handler.got == request);
}

TEST_CASE("a Stream destroyed with ring requests in flight: nothing left in flight, the socket closes after them") {
    Setup t;
    if (!t.ring) return;
    test::runFor(t.loop, 20ms);  // its receive is in flight
    const std::string big(256 * 1024, 'x');  // more than the socket pair takes: a send stays parked
    t.stream->write(big.data(), big.size());
    test::runFor(t.loop, 20ms);
    CHECK(t.ring->inflight() >= 1);
    t.stream.reset();  // the socket stays open while the requests are cancelled
    test::runFor(t.loop, 50ms);
    CHECK(t.ring->inflight() == 0);
    CHECK(t.ring->buffers().available() == uring::BufferPool::kCount);
    // The peer reads what the kernel had taken, then the end.
    std::string got;
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(t.outer, buf, sizeof buf, MSG_DONTWAIT)) > 0) got.append(buf, static_cast<std::size_t>(n));
    CHECK(n == 0);
    CHECK(got.size() < big.size());
}

// The same while the ring refuses the cancels (its queue full, the kernel refusing it): they
// are kept and made at the ring's next pass. Before, they were dropped: the parked send and the
// idle receive stayed in the kernel with the socket open until the peer read or wrote.
TEST_CASE("a Stream destroyed while the ring refuses its cancels: they go at the next pass, the socket closes") {
    Setup t;
    if (!t.ring) return;
    test::runFor(t.loop, 20ms);
    const std::string big(256 * 1024, 'x');
    t.stream->write(big.data(), big.size());
    test::runFor(t.loop, 20ms);
    REQUIRE(t.ring->inflight() == 2);  // the receive, and the send parked on the full socket
    uring::RingTestAccess::fillAndRefuse(*t.ring, 0);
    t.stream.reset();
    CHECK(t.ring->keptCancels() == 2);
    uring::RingTestAccess::refuse(*t.ring, false);
    REQUIRE(test::runLoopUntil(t.loop.base(), [&] { return t.ring->inflight() == 0; }));
    CHECK(t.ring->keptCancels() == 0);
    std::string got;
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(t.outer, buf, sizeof buf, MSG_DONTWAIT)) > 0) got.append(buf, static_cast<std::size_t>(n));
    CHECK(n == 0);  // the end: the socket closed after the cancelled requests
}

// A settle (the io_uring relay taking the socket over) that comes while the rest of a partial
// send waits for the ring's next enter: that rest goes back in front of output(), so the new
// owner sends every byte, in order. Before, it stayed in the ring's send buffer and was lost
// (a tunnel's bytes cut; outputLength() counted them for ever).
TEST_CASE("a settle between a partial send and the next enter gives the unsent rest back") {
    Setup t;
    if (!t.ring) return;
    struct Settler final : StreamHandler {
        Stream* stream = nullptr;
        bool asked = false;
        bool settled = false;
        static void done(void* arg) { static_cast<Settler*>(arg)->settled = true; }
        void onReadable(ByteStream&) override {}
        void onEof(ByteStream&) override {}
        void onError(ByteStream&, int) override {}
        void onDrained(ByteStream&) override {
            if (std::exchange(asked, true)) return;
            stream->detach();
            if (stream->settleRing({&Settler::done, this})) settled = true;
        }
    } settler;
    settler.stream = t.stream.get();
    t.stream->setHandler(&settler);
    t.stream->setLowWatermark(std::size_t{1} << 30);  // every send's completion says drained
    const std::string sent(256 * 1024, 'q');
    t.stream->write(sent.data(), sent.size());
    for (int i = 0; i < 100 && !settler.settled; ++i) test::runFor(t.loop, 5ms);
    REQUIRE(settler.asked);
    REQUIRE(settler.settled);
    const std::string got = readAll(t.outer);
    INFO("sent by the ring: " << got.size());
    CHECK(got.size() < sent.size());  // the first send was partial (the socket pair filled)
    CHECK(got.size() + evbuffer_get_length(t.stream->output()) == sent.size());
}
