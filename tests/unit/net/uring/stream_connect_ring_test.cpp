// SPDX-License-Identifier: Apache-2.0
// net::Stream::connectTo with the worker's ring (net/uring/stream_io.h): no connect(2) from the
// call, the connect made at the ring's next enter with what was written by then linked behind
// it and the first receive after that; onConnected once those bytes went, before any bytes
// come back; a refusal is one onError with the connect's own errno (the linked requests' cancel
// is not a second one); a Stream gone before or during the connect leaves nothing in flight;
// a ring that goes first fails the connect from the loop. Skipped where the kernel refuses a
// ring.
#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "../loopback_socket.h"
#include "loop_ring.h"
#include "ring_test_access.h"
#include "portico/core/handles.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"
#include "portico/net/uring/ring.h"

using namespace portico;
using portico::net::test::boundSocket;
using portico::net::test::runLoopUntil;

namespace {

struct Recorder final : net::StreamHandler {
    std::string events;  // c(onnected) b(ytes) r(eadable) e(of) x(error) d(rained)
    std::string got;
    int error = 0;
    std::size_t output_at_connect = 0;
    std::uint64_t written_at_connect = 0;
    bool flush_on_connect = true;
    void onConnected(net::Stream& stream) override {
        events += 'c';
        output_at_connect = stream.outputLength();
        written_at_connect = stream.sendProgress().written;
        if (flush_on_connect) stream.flush();
    }
    void onReadable(net::ByteStream& s) override {
        events += 'r';
        const std::size_t n = evbuffer_get_length(s.input());
        got.append(reinterpret_cast<const char*>(evbuffer_pullup(s.input(), -1)), n);
        evbuffer_drain(s.input(), n);
    }
    void onBytes(net::ByteStream&, const char* data, std::size_t n) override {
        events += 'b';
        got.append(data, n);
    }
    void onEof(net::ByteStream&) override { events += 'e'; }
    void onError(net::ByteStream&, int e) override {
        events += 'x';
        error = e;
    }
    void onDrained(net::ByteStream&) override { events += 'd'; }
};

struct RingConnect {
    sockaddr_in address{};
    core::UniqueFd server;
    net::EventLoop loop;
    net::uring::Ring* ring = nullptr;
    Recorder handler;
    std::unique_ptr<net::Stream> stream;

    explicit RingConnect(int backlog) : server(boundSocket(address, backlog)) { ring = net::test::giveLoopRing(loop); }
    void start() {
        int error = 0;
        stream = net::Stream::connectTo(loop.base(), reinterpret_cast<const sockaddr*>(&address), sizeof address,
                                        &handler, error, ring);
        REQUIRE(stream);
    }
    template <class Done>
    bool runUntil(Done done) {
        return runLoopUntil(loop.base(), done);
    }
    // With backlog 0: one connection nobody accepted fills the listener's queue, so the kernel
    // drops the next SYNs and a connect stays in flight until acceptOne() takes this one.
    core::UniqueFd fillBacklog() const {
        core::UniqueFd filler(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(::connect(filler.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
        return filler;
    }
    core::UniqueFd acceptOne() const {
        pollfd p{server.get(), POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) return {};
        return core::UniqueFd(::accept(server.get(), nullptr, nullptr));
    }
};

bool connected(int fd) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    return ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0;
}

std::string receiveAll(int fd, std::size_t want) {
    std::string got;
    char buf[256];
    while (got.size() < want) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) break;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
}

}  // namespace

TEST_CASE("a connect on the ring carries what was written before the enter; onConnected once it went, then bytes",
          "[net][uring][connect]") {
    const bool queued = GENERATE(false, true);
    RingConnect c(16);
    if (!c.ring) return;
    c.start();
    REQUIRE(c.stream->onRing());
    const std::string head = "GET / HTTP/1.1\r\n\r\n";
    if (queued) {
        evbuffer_add(c.stream->output(), head.data(), head.size());
        c.stream->flush();
    } else {
        c.stream->write(head.data(), head.size());
    }
    // No connect(2) was made by the call: the ring makes it, at its next enter.
    CHECK_FALSE(connected(c.stream->fd()));
    CHECK(c.stream->isConnecting());
    CHECK(c.handler.events.empty());
    REQUIRE(c.runUntil([&] { return !c.handler.events.empty(); }));
    CHECK(c.handler.events.front() == 'c');
    CHECK(c.handler.output_at_connect == 0);  // the request went with the connect: its answer is awaited
    CHECK(c.handler.written_at_connect == head.size());
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    CHECK(receiveAll(peer.get(), head.size()) == head);
    const std::string answer = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    REQUIRE(::send(peer.get(), answer.data(), answer.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(answer.size()));
    REQUIRE(c.runUntil([&] { return c.handler.got == answer; }));
    CHECK(c.handler.events.find('x') == std::string::npos);
    CHECK(c.handler.events.find('c') == 0);  // once, first
    CHECK(c.handler.events.rfind('c') == 0);
}

TEST_CASE("a connect on the ring with nothing written is reported, and what is written after goes",
          "[net][uring][connect]") {
    RingConnect c(16);
    if (!c.ring) return;
    c.start();
    REQUIRE(c.runUntil([&] { return c.handler.events.find('c') != std::string::npos; }));
    CHECK(c.handler.events.front() == 'c');
    CHECK_FALSE(c.stream->isConnecting());
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    c.stream->write("ping", 4);
    REQUIRE(c.runUntil([&] { return c.stream->outputLength() == 0; }));  // sent at the ring's next enter
    CHECK(receiveAll(peer.get(), 4) == "ping");
    ::shutdown(peer.get(), SHUT_WR);
    REQUIRE(c.runUntil([&] { return c.handler.events.find('e') != std::string::npos; }));
    CHECK(c.handler.events.find('x') == std::string::npos);
}

// Written while the connect is in flight with no send linked to it (the enter that made it
// carried nothing to send): the bytes wait for the connect, then go. The listener's queue is
// full (backlog 0, one connection nobody accepted), so the kernel drops the SYN and the connect
// stays in flight until that one is accepted (the SYN's retransmission then gets through).
TEST_CASE("bytes written while the ring's connect is in flight go once it is up", "[net][uring][connect]") {
    RingConnect c(0);
    if (!c.ring) return;
    core::UniqueFd filler = c.fillBacklog();
    c.start();
    REQUIRE(c.runUntil([&] { return c.ring->inflight() > 0; }));  // the connect, alone
    c.stream->write("late", 4);
    for (int i = 0; i < 5; ++i) event_base_loop(c.loop.base(), EVLOOP_NONBLOCK);
    CHECK(c.stream->isConnecting());
    CHECK(c.handler.events.empty());
    core::UniqueFd first = c.acceptOne();  // the filler: room in the queue again
    REQUIRE(first);
    REQUIRE(c.runUntil([&] { return c.handler.events.find('c') != std::string::npos; }));
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    CHECK(receiveAll(peer.get(), 4) == "late");
    CHECK(c.handler.events.find('x') == std::string::npos);
}

// Written while the chain (connect, head, receive) is in flight: the bytes wait for it and go
// after the head when it completes, also for an owner that does not flush in onConnected.
// Before, only the rest of the chain's own send went on: these stayed in output().
TEST_CASE("bytes written while the ring's connect chain is in flight go after its head", "[net][uring][connect]") {
    RingConnect c(0);
    if (!c.ring) return;
    c.handler.flush_on_connect = false;
    core::UniqueFd filler = c.fillBacklog();
    c.start();
    c.stream->write("head;", 5);
    REQUIRE(c.runUntil([&] { return c.ring->inflight() == 3; }));  // connect, send, receive
    c.stream->write("more", 4);
    for (int i = 0; i < 5; ++i) event_base_loop(c.loop.base(), EVLOOP_NONBLOCK);
    CHECK(c.stream->isConnecting());
    core::UniqueFd first = c.acceptOne();  // the filler: room in the queue again
    REQUIRE(first);
    REQUIRE(c.runUntil([&] { return c.handler.events.find('c') != std::string::npos; }));
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    CHECK(receiveAll(peer.get(), 9) == "head;more");
    CHECK(c.handler.events.find('x') == std::string::npos);
}

// No room for the chain's three adjacent entries (the queue full and the kernel refusing it):
// the connect goes alone and what was written goes after it, as with nothing written. Before,
// the chain's entries were taken anyway, the last one refused: the stream failed (or, had the
// refusal passed, a send went unlinked on a socket still connecting).
TEST_CASE("a ring connect without room for its chain goes alone, and the head after it", "[net][uring][connect]") {
    RingConnect c(16);
    if (!c.ring) return;
    const std::string head = "GET / HTTP/1.1\r\n\r\n";
    c.start();
    c.stream->write(head.data(), head.size());
    net::uring::RingTestAccess::fillAndRefuse(*c.ring, 2);
    REQUIRE(c.runUntil([&] { return !c.handler.events.empty(); }));
    net::uring::RingTestAccess::refuse(*c.ring, false);
    CHECK(c.handler.events.front() == 'c');
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    CHECK(receiveAll(peer.get(), head.size()) == head);
    REQUIRE(::send(peer.get(), "ok", 2, MSG_NOSIGNAL) == 2);
    REQUIRE(c.runUntil([&] { return c.handler.got == "ok"; }));
    CHECK(c.handler.events.find('x') == std::string::npos);
}

// The linked send and receive end with -ECANCELED when the connect fails: they are not
// reported as a second failure, nor as an error of their own.
TEST_CASE("a refused connect on the ring is one onError with ECONNREFUSED, and no onConnected",
          "[net][uring][connect]") {
    const bool with_bytes = GENERATE(false, true);
    RingConnect c(-1);  // bound, not listening: refuses
    if (!c.ring) return;
    c.start();
    if (with_bytes) c.stream->write("GET / HTTP/1.1\r\n\r\n", 18);
    REQUIRE(c.runUntil([&] { return !c.handler.events.empty(); }));
    // Nothing else comes: every request of the stream completes.
    REQUIRE(c.runUntil([&] { return c.ring->inflight() == 0; }));
    event_base_loop(c.loop.base(), EVLOOP_NONBLOCK);
    CHECK(c.handler.events == "x");
    CHECK(c.handler.error == ECONNREFUSED);
}

TEST_CASE("a Stream gone before its ring connect was made, or while it is in flight, leaves nothing in flight",
          "[net][uring][connect]") {
    const bool in_flight = GENERATE(false, true);
    // Backlog 0 and one connection nobody accepts: the kernel drops the next SYNs, so a
    // connect stays in flight (retransmitting) until it is cancelled.
    RingConnect c(0);
    if (!c.ring) return;
    core::UniqueFd filler = c.fillBacklog();
    c.start();
    c.stream->write("x", 1);
    if (in_flight) {
        REQUIRE(c.runUntil([&] { return c.ring->inflight() > 0; }));
        for (int i = 0; i < 5; ++i) event_base_loop(c.loop.base(), EVLOOP_NONBLOCK);
        CHECK(c.stream->isConnecting());
    }
    c.stream.reset();
    REQUIRE(c.runUntil([&] { return c.ring->inflight() == 0; }));
    CHECK(c.handler.events.empty());
}

TEST_CASE("a ring that goes first fails a connect it had not made, from the loop", "[net][uring][connect]") {
    RingConnect c(16);
    if (!c.ring) return;
    c.start();
    c.stream->write("x", 1);
    c.loop.setRing(nullptr);  // a worker stopping: the ring goes before its streams
    c.ring = nullptr;
    CHECK(c.handler.events.empty());  // not from inside the ring's end
    REQUIRE(c.runUntil([&] { return !c.handler.events.empty(); }));
    CHECK(c.handler.events == "x");
    CHECK(c.handler.error == ECONNABORTED);
}

// Kernels 6.0-6.1.7 answered a ring connect that found the socket's connect in progress with
// -EISCONN. Later kernels do not, so the answer is made real here: the socket is connected with
// connect(2) before the ring's enter, and the ring's connect then finds it connected. It must
// count as up: onConnected once, the head (if any) sent once, reading works, no error.
TEST_CASE("a ring connect answered -EISCONN is up: the head goes once and reading works", "[net][uring][connect]") {
    const bool with_head = GENERATE(false, true);
    RingConnect c(16);
    if (!c.ring) return;
    c.start();
    const std::string head = "GET / HTTP/1.1\r\n\r\n";
    if (with_head) c.stream->write(head.data(), head.size());
    REQUIRE(::connect(c.stream->fd(), reinterpret_cast<const sockaddr*>(&c.address), sizeof c.address) != 0);
    REQUIRE(errno == EINPROGRESS);
    pollfd p{c.stream->fd(), POLLOUT, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    // Up; the second connect(2) marks the socket connected (the first left it "connecting"), so
    // that the ring's connect, made at the next enter, is answered -EISCONN.
    REQUIRE(::connect(c.stream->fd(), reinterpret_cast<const sockaddr*>(&c.address), sizeof c.address) == 0);
    REQUIRE(c.runUntil([&] { return !c.handler.events.empty(); }));
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    if (with_head) CHECK(receiveAll(peer.get(), head.size()) == head);
    REQUIRE(::send(peer.get(), "ok", 2, MSG_NOSIGNAL) == 2);
    REQUIRE(c.runUntil([&] { return c.handler.got == "ok" || c.handler.events.find('x') != std::string::npos; }));
    CHECK(c.handler.got == "ok");
    CHECK(c.handler.error == 0);
    CHECK(c.handler.events.find('c') == 0);  // once, first
    CHECK(c.handler.events.rfind('c') == 0);
    // Nothing more than the head went: the re-sent chain did not send it twice.
    ::shutdown(c.stream->fd(), SHUT_WR);
    CHECK(receiveAll(peer.get(), head.size() + 1) == "");
}
