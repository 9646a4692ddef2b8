// SPDX-License-Identifier: Apache-2.0
// net::uring::Relay over socket pairs: bytes both ways (with bytes buffered before the start
// first), the backpressure bound (a peer that does not read holds at most the high watermark
// in its own heap queue, no pool buffer), a side's EOF ending it, a peer that closes behind
// backpressure, and the accounting after the end: every buffer back in the pool, nothing in
// flight. Skipped where the kernel refuses a ring.
#include <catch2/catch.hpp>

#include <cerrno>
#include <string>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "../loopback_socket.h"
#include "../run_for.h"
#include "ring_test_access.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"
#include "portico/net/uring/relay.h"
#include "portico/proxy/http_exchange.h"

using namespace portico::net;
using namespace std::chrono_literals;
using portico::net::test::readAll;

namespace {

struct Observer final : uring::RelayObserver {
    int activity = 0;
    std::string ended;
    void onRelayActivity() override { ++activity; }
    void onRelayEnd(const char* reason) override { ended = reason; }
};

struct Pair {
    int outer = -1;  // the test's end
    std::unique_ptr<Stream> inner;
};

struct Ignore final : StreamHandler {
    void onReadable(ByteStream&) override {}
    void onEof(ByteStream&) override {}
    void onError(ByteStream&, int) override {}
};

Pair makePair(EventLoop& loop, StreamHandler& handler) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    auto stream = std::make_unique<Stream>(loop.base(), portico::core::UniqueFd(fds[1]), &handler);
    stream->pauseReading();
    return Pair{fds[0], std::move(stream)};
}

std::unique_ptr<uring::Ring> ringOrSkip(EventLoop& loop) {
    std::string why;
    auto ring = uring::Ring::make(loop, why);
    if (!ring) WARN("io_uring refused here, skipped: " << why);
    return ring;
}

// A loop with its ring (none where the kernel refuses one: the test is skipped) and two socket
// pairs, the client's and the upstream's, whose inner ends a relay takes.
struct RelaySetup {
    EventLoop loop;
    uring::Ring* ring_ptr = nullptr;
    Ignore ignore;
    Observer observer;
    Pair client = makePair(loop, ignore);
    Pair upstream = makePair(loop, ignore);

    RelaySetup() {
        auto owner = ringOrSkip(loop);
        ring_ptr = owner.get();
        if (owner) loop.setRing(std::move(owner));
    }

    // The client writes up to 4 MiB in 1 KiB pieces while the upstream reads nothing: the relay
    // stops reading the client at its bound, and the client's socket fills. Returns the bytes
    // written.
    std::size_t fillUntilPaused() {
        std::string piece(1024, 'x');
        std::size_t written = 0;
        for (int round = 0; round < 200 && written < 4u * 1024 * 1024; ++round) {
            for (;;) {
                ssize_t n = ::send(client.outer, piece.data(), piece.size(), MSG_DONTWAIT);
                if (n <= 0) break;
                written += static_cast<std::size_t>(n);
            }
            test::runFor(loop, 2ms);
        }
        return written;
    }

    // After the relay ended and was let go: nothing in flight, every pool buffer back.
    void checkAllBack(uring::Relay& relay) {
        relay.detach();
        test::runFor(loop, 20ms);
        CHECK(ring_ptr->inflight() == 0);
        CHECK(ring_ptr->buffers().available() == uring::BufferPool::kCount);
        ::close(client.outer);
        ::close(upstream.outer);
    }
};

}  // namespace

TEST_CASE_METHOD(RelaySetup, "a relay moves bytes both ways, buffered ones first, and gives everything back", "[uring][relay]") {
    if (!ring_ptr) return;
    uring::Ring& ring = *ring_ptr;
    evbuffer_add(upstream.inner->input(), "early", 5);  // a frame behind the 101
    evbuffer_add(client.inner->output(), "101;", 4);     // the 101 the socket had not taken
    uring::Relay& relay = uring::Relay::make(ring, std::move(client.inner), std::move(upstream.inner), observer);
    relay.begin();
    test::runFor(loop, 50ms);
    CHECK(readAll(client.outer) == "101;early");
    REQUIRE(::send(client.outer, "ping", 4, 0) == 4);
    REQUIRE(::send(upstream.outer, "pong", 4, 0) == 4);
    test::runFor(loop, 50ms);
    CHECK(readAll(upstream.outer) == "ping");
    CHECK(readAll(client.outer) == "pong");
    CHECK(relay.fromClient() == 4);
    CHECK(relay.toClient() == 9);
    CHECK(observer.activity >= 2);

    ::shutdown(client.outer, SHUT_WR);  // the client's FIN ends it
    test::runFor(loop, 50ms);
    CHECK(observer.ended == "client closed");
    char c;
    CHECK(::recv(upstream.outer, &c, 1, 0) == 0);  // the upstream got its FIN
    checkAllBack(relay);
}

// A stalled direction holds its bytes in its own heap queue, up to the high watermark, and none
// of the worker's shared pool (sends are MSG_DONTWAIT: a full socket's bytes are copied out).
TEST_CASE_METHOD(RelaySetup, "a peer that does not read holds no pool buffer, and a bounded queue", "[uring][relay]") {
    if (!ring_ptr) return;
    uring::Ring& ring = *ring_ptr;
    uring::Relay& relay = uring::Relay::make(ring, std::move(client.inner), std::move(upstream.inner), observer);
    relay.begin();
    const std::size_t written = fillUntilPaused();
    const unsigned held = uring::BufferPool::kCount - ring.buffers().available();
    INFO("buffers held: " << held << ", written " << written);
    CHECK(held == 0);
    CHECK(written < 4u * 1024 * 1024);  // the relay stopped reading the client (the bound)
    // What the relay holds itself (received from the client, not yet in the upstream's socket)
    // is its high watermark and at most one receive more: a receive that went on delivering after
    // the bound (a multishot one, bounded only by the pool) held ~4 MB here.
    int in_upstream_socket = 0;
    REQUIRE(::ioctl(upstream.outer, FIONREAD, &in_upstream_socket) == 0);
    const std::uint64_t in_relay = relay.fromClient() - static_cast<std::uint64_t>(in_upstream_socket);
    INFO("held by the relay: " << in_relay);
    CHECK(in_relay <= portico::proxy::kHighWatermark + uring::BufferPool::kSize);
    // Reading resumes it: everything arrives, in order and whole.
    std::size_t got = 0;
    for (int round = 0; round < 2000 && got < written; ++round) {
        got += readAll(upstream.outer).size();
        test::runFor(loop, 1ms);
    }
    CHECK(got == written);
    relay.stop();
    checkAllBack(relay);
}

// A peer that closes while its side is paused (the other side takes nothing): its FIN is seen
// (a POLLRDHUP poll armed at the pause), and the relay ends as at that EOF when the other side
// took no byte for Relay::kStall, not at the session's idle_timeout (which would be the only end
// before). While the other side takes bytes, the wait goes on and everything arrives.
TEST_CASE_METHOD(RelaySetup, "a peer that closes behind backpressure ends the relay when nothing is taken", "[uring][relay]") {
    if (!ring_ptr) return;
    uring::Relay& relay = uring::Relay::make(*ring_ptr, std::move(client.inner), std::move(upstream.inner), observer);
    relay.begin();
    fillUntilPaused();
    ::shutdown(client.outer, SHUT_WR);
    test::runFor(loop, uring::Relay::kStall - 500ms);
    CHECK(observer.ended.empty());  // its bytes are still owed to the upstream
    test::runFor(loop, uring::Relay::kStall + 1s);
    CHECK(observer.ended == "client closed");
    checkAllBack(relay);
}

TEST_CASE_METHOD(RelaySetup, "a peer that closes behind backpressure still has its bytes delivered to a slow reader", "[uring][relay]") {
    if (!ring_ptr) return;
    // A small send buffer towards the upstream: each of its reads below takes a few KiB.
    const int small = 4096;
    REQUIRE(::setsockopt(upstream.inner->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    uring::Relay& relay = uring::Relay::make(*ring_ptr, std::move(client.inner), std::move(upstream.inner), observer);
    relay.begin();
    const std::size_t written = fillUntilPaused();
    ::shutdown(client.outer, SHUT_WR);
    // The upstream takes what its socket holds every 500 ms, across more than one kStall.
    std::size_t got = 0;
    for (int i = 0; i < 7; ++i) {
        test::runFor(loop, 500ms);
        got += readAll(upstream.outer).size();
    }
    INFO("taken slowly: " << got << " of " << written);
    CHECK(got < written);
    CHECK(observer.ended.empty());
    for (int round = 0; round < 2000 && got < written; ++round) {
        got += readAll(upstream.outer).size();
        test::runFor(loop, 1ms);
    }
    CHECK(got == written);
    test::runFor(loop, 20ms);
    CHECK(observer.ended == "client closed");  // the FIN after the bytes
    char c;
    CHECK(::recv(upstream.outer, &c, 1, MSG_DONTWAIT) == 0);
    checkAllBack(relay);
}

// A peer that fails (a reset: here a Unix socket closed with bytes it did not read, which the
// relay's side sees as ECONNRESET, POLLERR) while its side is paused ends as a failure once the
// other side took nothing for kStall, as the epoll tunnel's read of that error would: the other
// peer is to get an RST (markOtherSideFailed), not a clean close. Before, "client closed".
TEST_CASE_METHOD(RelaySetup, "a peer that resets behind backpressure ends the relay as a failure", "[uring][relay]") {
    if (!ring_ptr) return;
    uring::Relay& relay = uring::Relay::make(*ring_ptr, std::move(client.inner), std::move(upstream.inner), observer);
    relay.begin();
    // Bytes for the client that it never reads, so that its close is a reset.
    REQUIRE(::send(upstream.outer, "unread", 6, 0) == 6);
    test::runFor(loop, 20ms);
    fillUntilPaused();
    ::close(client.outer);
    client.outer = -1;
    test::runFor(loop, uring::Relay::kStall + 1s);
    CHECK(observer.ended == "client connection error");
    checkAllBack(relay);
}

// Ending while the ring refuses the cancels (its queue full, the kernel refusing to take it):
// they are kept and made at the ring's next pass, so the idle receives end, and so does the
// relay (its sockets closed, the peers told). Before, the cancels were dropped: both receives
// stayed in the kernel, holding the sockets and the relay until a peer wrote or closed.
TEST_CASE_METHOD(RelaySetup, "a relay stopped while the ring refuses its cancels ends at the ring's next pass",
                 "[uring][relay]") {
    if (!ring_ptr) return;
    uring::Relay& relay = uring::Relay::make(*ring_ptr, std::move(client.inner), std::move(upstream.inner), observer);
    relay.begin();
    test::runFor(loop, 20ms);
    REQUIRE(ring_ptr->inflight() == 2);  // a receive per side, idle
    uring::RingTestAccess::fillAndRefuse(*ring_ptr, 0);
    relay.stop();
    CHECK(ring_ptr->keptCancels() == 2);
    uring::RingTestAccess::refuse(*ring_ptr, false);
    REQUIRE(test::runLoopUntil(loop.base(), [&] { return ring_ptr->inflight() == 0; }));
    CHECK(ring_ptr->keptCancels() == 0);
    REQUIRE(test::runLoopUntil(loop.base(), [&] {
        char c;
        return ::recv(client.outer, &c, 1, MSG_DONTWAIT) == 0 && ::recv(upstream.outer, &c, 1, MSG_DONTWAIT) == 0;
    }));  // both peers see the end: the sockets closed
    checkAllBack(relay);
}
