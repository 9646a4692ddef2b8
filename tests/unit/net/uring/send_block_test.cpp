// SPDX-License-Identifier: Apache-2.0
// Small writes of a Stream on the ring sent from the ring's send blocks (net/uring/send_blocks.h,
// StreamIo::stage): the bytes keep their order with what output() holds; a block goes back to
// the pool when its send completed, also when the socket refused part of it (a stalled peer
// holds none); an empty pool or a large write goes through output(); a Stream that goes with a
// block staged or in flight gives it back; a settle hands a staged block's bytes over in
// output(). Skipped where the kernel refuses a ring.
#include <catch2/catch.hpp>

#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <event2/buffer.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "../run_for.h"
#include "loop_ring.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"
#include "portico/net/uring/ring.h"
#include "portico/net/uring/send_blocks.h"
#include "portico/net/uring/stream_io.h"

using namespace portico::net;
using namespace std::chrono_literals;
using portico::net::test::readAll;
using uring::SendBlocks;

namespace {

struct Quiet final : StreamHandler {
    std::string got;
    int drained = 0;
    void onReadable(ByteStream& s) override {
        const std::size_t n = evbuffer_get_length(s.input());
        got.append(reinterpret_cast<const char*>(evbuffer_pullup(s.input(), -1)), n);
        evbuffer_drain(s.input(), n);
    }
    void onEof(ByteStream&) override {}
    void onError(ByteStream&, int) override {}
    void onDrained(ByteStream&) override { ++drained; }
};

struct Pair {
    int outer = -1;
    std::unique_ptr<Stream> stream;
    Pair(EventLoop& loop, uring::Ring* ring, StreamHandler* handler) {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
        outer = fds[0];
        stream = std::make_unique<Stream>(loop.base(), portico::core::UniqueFd(fds[1]), handler, ring);
    }
    ~Pair() {
        if (outer >= 0) ::close(outer);
    }
    Pair(const Pair&) = delete;
    Pair& operator=(const Pair&) = delete;
};

struct Setup {
    EventLoop loop;
    uring::Ring* ring = nullptr;
    Quiet handler;
    std::unique_ptr<Pair> pair;
    Setup() {
        ring = test::giveLoopRing(loop);
        if (ring) pair = std::make_unique<Pair>(loop, ring, &handler);
    }
    ~Setup() {
        pair.reset();
        if (ring) test::runFor(loop, 20ms);  // the released requests complete
    }
    Stream& stream() { return *pair->stream; }
    int outer() const { return pair->outer; }
};

std::string pattern(std::size_t n, std::size_t seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
    return s;
}

// Reads what the outer end gets for a while (the loop runs between reads), until `want` bytes.
std::string collect(EventLoop& loop, int fd, std::size_t want) {
    std::string got;
    for (int i = 0; i < 400 && got.size() < want; ++i) {
        test::runFor(loop, 2ms);
        got += readAll(fd);
    }
    return got;
}

// Fills the socket's send path (the Stream's own socket, behind its back) until it refuses more.
std::size_t fill(int fd) {
    const std::string chunk(65536, '#');
    std::size_t total = 0;
    for (;;) {
        const ssize_t k = ::send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k <= 0) break;
        total += static_cast<std::size_t>(k);
    }
    return total;
}

}  // namespace

TEST_CASE("send blocks are taken last-in first-out, kNone when all are in use") {
    SendBlocks blocks;
    CHECK(blocks.available() == SendBlocks::kCount);
    std::vector<std::uint16_t> ids;
    for (unsigned i = 0; i < SendBlocks::kCount; ++i) {
        ids.push_back(blocks.take());
        REQUIRE(ids.back() == i);
    }
    CHECK(blocks.available() == 0);
    CHECK(blocks.take() == SendBlocks::kNone);
    blocks.give(ids[3]);
    blocks.give(ids[9]);
    CHECK(blocks.available() == 2);
    CHECK(blocks.take() == ids[9]);  // the warmest first
    CHECK(blocks.take() == ids[3]);
    for (std::uint16_t id : ids) blocks.give(id);
    CHECK(blocks.available() == SendBlocks::kCount);
}

TEST_CASE("a small write on the ring goes from a send block, which comes back once sent") {
    Setup t;
    if (!t.ring) return;
    t.stream().write("hello ", 6);
    t.stream().write("world", 5);  // the same pass: into the same block
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount - 1);
    CHECK(evbuffer_get_length(t.stream().output()) == 0);  // nothing copied into output()
    CHECK(t.stream().outputLength() == 11);
    CHECK(t.stream().sendProgress().written == 0);
    test::runFor(t.loop, 30ms);
    CHECK(readAll(t.outer()) == "hello world");
    CHECK(t.stream().outputLength() == 0);
    CHECK(t.stream().sendProgress().written == 11);
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);
    CHECK(t.handler.drained == 1);
}

TEST_CASE("send blocks keep the order of writes with what output() holds") {
    Setup t;
    if (!t.ring) return;
    const std::string large = pattern(SendBlocks::kSize + 100, 1);  // never in a block
    SECTION("output() first: the write goes behind it, not into a block") {
        evbuffer_add(t.stream().output(), "A", 1);
        t.stream().write("B", 1);
        t.stream().flush();
        CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);
        CHECK(collect(t.loop, t.outer(), 2) == "AB");
    }
    SECTION("a block first, then output(), then a write behind both") {
        t.stream().write("A", 1);
        evbuffer_add(t.stream().output(), "B", 1);
        t.stream().write("C", 1);
        t.stream().write(large.data(), large.size());
        t.stream().write("D", 1);
        CHECK(collect(t.loop, t.outer(), 4 + large.size()) == "ABC" + large + "D");
    }
    SECTION("a write the block has no room for goes to output(), and so does every write after it") {
        const std::string most = pattern(SendBlocks::kSize - 10, 2);
        const std::string more = pattern(20, 3);
        t.stream().write(most.data(), most.size());
        t.stream().write(more.data(), more.size());
        t.stream().write("z", 1);
        CHECK(evbuffer_get_length(t.stream().output()) == 21);
        CHECK(collect(t.loop, t.outer(), most.size() + 21) == most + more + "z");
    }
    SECTION("writes while a send is in flight wait in output() and go next") {
        std::string want;
        for (int i = 0; i < 20; ++i) {
            const std::string piece = pattern(100 + static_cast<std::size_t>(i), static_cast<std::size_t>(i));
            t.stream().write(piece.data(), piece.size());
            want += piece;
            test::runFor(t.loop, 1ms);
        }
        CHECK(collect(t.loop, t.outer(), want.size()) == want);
    }
    test::runFor(t.loop, 10ms);
    CHECK(t.stream().outputLength() == 0);
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);
}

// A block's send goes with MSG_DONTWAIT: the socket refusing all or part of it completes the
// send at once, and what it refused waits in the Stream's own buffer, so a peer that stops
// reading holds no block of the ring's bounded pool.
TEST_CASE("a full socket refuses a block's send: the rest waits without the block, then goes in order") {
    Setup t;
    if (!t.ring) return;
    const std::size_t filled = fill(t.stream().fd());
    REQUIRE(filled > 0);
    const std::string message = pattern(SendBlocks::kSize, 4);
    t.stream().write(message.data(), message.size());
    test::runFor(t.loop, 30ms);
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);  // the stalled peer holds none
    CHECK(t.stream().outputLength() > 0);
    const std::string got = collect(t.loop, t.outer(), filled + message.size());
    REQUIRE(got.size() == filled + message.size());
    CHECK(got.substr(filled) == message);
    test::runFor(t.loop, 10ms);  // the send's completion
    CHECK(t.stream().outputLength() == 0);
    CHECK(t.stream().sendProgress().written == message.size());
}

TEST_CASE("a socket that takes part of a block's send: the rest goes next, in order") {
    Setup t;
    if (!t.ring) return;
    const std::size_t filled = fill(t.stream().fd());
    // Room for part of the next write only.
    char sink[8192];
    REQUIRE(::recv(t.outer(), sink, sizeof sink, MSG_DONTWAIT) == static_cast<ssize_t>(sizeof sink));
    std::string want;
    for (int i = 0; i < 8; ++i) {
        const std::string piece = pattern(SendBlocks::kSize / 2, static_cast<std::size_t>(i));
        t.stream().write(piece.data(), piece.size());
        want += piece;
        test::runFor(t.loop, 2ms);
    }
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);
    const std::string rest = collect(t.loop, t.outer(), filled - 8192 + want.size());
    REQUIRE(rest.size() >= filled - 8192);
    CHECK(rest.substr(filled - 8192) == want);
}

TEST_CASE("with every send block in use, writes go through output()") {
    Setup t;
    if (!t.ring) return;
    SendBlocks& blocks = t.ring->sendBlocks();
    std::vector<std::uint16_t> held;
    for (std::uint16_t id = blocks.take(); id != SendBlocks::kNone; id = blocks.take()) held.push_back(id);
    REQUIRE(held.size() == SendBlocks::kCount);
    t.stream().write("one ", 4);
    t.stream().write("two", 3);
    CHECK(evbuffer_get_length(t.stream().output()) == 7);
    CHECK(collect(t.loop, t.outer(), 7) == "one two");
    for (std::uint16_t id : held) blocks.give(id);
    t.stream().write("three", 5);  // a block again
    CHECK(blocks.available() == SendBlocks::kCount - 1);
    CHECK(collect(t.loop, t.outer(), 5) == "three");
    CHECK(blocks.available() == SendBlocks::kCount);
}

TEST_CASE("a Stream destroyed with a block staged gives it back, and nothing is sent") {
    Setup t;
    if (!t.ring) return;
    t.stream().write("never", 5);
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount - 1);
    const int outer = std::exchange(t.pair->outer, -1);
    t.pair.reset();
    test::runFor(t.loop, 30ms);
    CHECK(t.ring->inflight() == 0);
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);
    char buf[16];
    CHECK(::recv(outer, buf, sizeof buf, MSG_DONTWAIT) == 0);  // the end, and no bytes
    ::close(outer);
}

// The send of one Stream and the receive of another complete in the same enter; the receive's
// handler (reaped first) destroys the other Stream: its send's completion, reaped next, finds it
// gone and gives the block back.
TEST_CASE("a Stream destroyed while its block's send is in flight: the completion gives the block back") {
    Setup t;
    if (!t.ring) return;
    struct Killer final : StreamHandler {
        std::unique_ptr<Pair>* victim = nullptr;
        int outer = -1;
        void onReadable(ByteStream&) override {}
        void onBytes(ByteStream&, const char*, std::size_t) override {
            if (*victim) {
                outer = std::exchange((*victim)->outer, -1);
                victim->reset();
            }
        }
        void onEof(ByteStream&) override {}
        void onError(ByteStream&, int) override {}
    } killer;
    killer.victim = &t.pair;
    Pair reader(t.loop, t.ring, &killer);
    reader.stream->setDirectRead(true);
    test::runFor(t.loop, 20ms);  // the reader's receive is in flight
    t.stream().write("last words", 10);  // staged: submitted at the next enter
    REQUIRE(::send(reader.outer, "go", 2, 0) == 2);  // the receive completes (task work, now)
    test::runFor(t.loop, 30ms);
    REQUIRE(killer.outer >= 0);
    CHECK(t.ring->inflight() == 1);  // the reader's next receive
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);
    std::string got = readAll(killer.outer);
    CHECK((got.empty() || got == "last words"));  // sent before the end, or cancelled with it
    ::close(killer.outer);
}

// The io_uring relay takes a socket over (settleRing) after its Stream wrote the 101 and before
// the ring's next enter: the staged bytes go to output() for the relay to send first.
TEST_CASE("a settle before a staged block was sent hands its bytes over at the front of output()") {
    Setup t;
    if (!t.ring) return;
    t.stream().write("HTTP/1.1 101 ", 13);
    evbuffer_add(t.stream().output(), "Switching", 9);
    t.stream().detach();
    bool settled = false;
    const uring::RingSettled tell{[](void* flag) { *static_cast<bool*>(flag) = true; }, &settled};
    if (!t.stream().settleRing(tell)) {
        for (int i = 0; i < 50 && !settled; ++i) test::runFor(t.loop, 2ms);
    }
    REQUIRE((settled || t.stream().settleRing({})));
    evbuffer* out = t.stream().output();
    const std::size_t n = evbuffer_get_length(out);
    CHECK(std::string(reinterpret_cast<const char*>(evbuffer_pullup(out, -1)), n) == "HTTP/1.1 101 Switching");
    CHECK(t.stream().outputLength() == n);
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);
    CHECK(readAll(t.outer()).empty());
}

// A settle that waits for a receive still in flight holds a staged block back (it goes to
// output() when the receive ended). A write the epoll way meanwhile (writeAtOnce: a built-in
// endpoint's) must not pass it: it waits behind the block in output().
TEST_CASE("a write the epoll way while a settle waits never goes ahead of a staged block") {
    Setup t;
    if (!t.ring) return;
    // The new owner's way of stopping: off the loop once the receive in flight brought its bytes.
    struct StopAtRead final : StreamHandler {
        void onReadable(ByteStream& s) override {
            evbuffer_drain(s.input(), evbuffer_get_length(s.input()));
            static_cast<Stream&>(s).detach();
        }
        void onEof(ByteStream&) override {}
        void onError(ByteStream&, int) override {}
    } stop;
    t.stream().setHandler(&stop);
    test::runFor(t.loop, 20ms);  // the receive is in flight
    t.stream().write("first ", 6);  // staged
    bool settled = false;
    const uring::RingSettled tell{[](void* flag) { *static_cast<bool*>(flag) = true; }, &settled};
    REQUIRE_FALSE(t.stream().settleRing(tell));  // the receive holds it
    test::runFor(t.loop, 20ms);
    REQUIRE_FALSE(settled);
    t.stream().writeAtOnce();
    t.stream().write("second", 6);
    test::runFor(t.loop, 20ms);
    CHECK(readAll(t.outer()).empty());  // nothing passes the held block
    REQUIRE(::send(t.outer(), "x", 1, 0) == 1);  // the receive completes: the settle ends
    for (int i = 0; i < 50 && !settled; ++i) test::runFor(t.loop, 2ms);
    REQUIRE(settled);
    t.stream().flush();  // the new owner sends what output() holds, the block's bytes first
    CHECK(collect(t.loop, t.outer(), 12) == "first second");
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);
}

TEST_CASE("a pooled send block is unaddressable under AddressSanitizer") {
    SendBlocks blocks;
    const std::uint16_t id = blocks.take();
    REQUIRE(id != SendBlocks::kNone);
    blocks.data(id)[0] = 'x';  // in use: addressable
    blocks.data(id)[SendBlocks::kSize - 1] = 'y';
#if defined(__SANITIZE_ADDRESS__)
    CHECK_FALSE(__asan_address_is_poisoned(blocks.data(id)));
    blocks.give(id);
    CHECK(__asan_address_is_poisoned(blocks.data(id)));
    CHECK(__asan_address_is_poisoned(blocks.data(id) + SendBlocks::kSize - 1));
    CHECK(__asan_address_is_poisoned(blocks.data(1)));  // never handed out
    CHECK(blocks.take() == id);
    CHECK_FALSE(__asan_address_is_poisoned(blocks.data(id) + SendBlocks::kSize - 1));
#else
    blocks.give(id);
#endif
}

// The owner that paused its other side waits for onDrained: a send that took nothing did not
// drain the socket (it would read more for a peer that takes nothing, every refused send).
TEST_CASE("a block's send refused whole by a full socket reports no onDrained") {
    Setup t;
    if (!t.ring) return;
    t.stream().setLowWatermark(1 << 20);  // any send that took bytes would report
    const std::size_t filled = fill(t.stream().fd());
    REQUIRE(filled > 0);
    t.stream().write("refused", 7);
    test::runFor(t.loop, 30ms);
    CHECK(t.ring->sendBlocks().available() == SendBlocks::kCount);  // refused: the block went back
    CHECK(t.handler.drained == 0);
    CHECK(collect(t.loop, t.outer(), filled + 7).substr(filled) == "refused");
    test::runFor(t.loop, 10ms);
    CHECK(t.handler.drained == 1);  // the rest's send took it
}
