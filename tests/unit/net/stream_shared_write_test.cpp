// SPDX-License-Identifier: Apache-2.0
// net::Stream::writeShared on a socketpair: shared blocks (a pub/sub frame encoded once for every
// subscriber) go in one sendmsg from their own memory; what the socket refuses waits in the
// output, in order, copied when small and referenced (the block held) when large.

#include <catch2/catch.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/core/shared_bytes.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"

using namespace portico;

namespace {

struct Quiet final : net::StreamHandler {
    int errors = 0;
    int last_error = 0;
    void onReadable(net::ByteStream&) override {}
    void onEof(net::ByteStream&) override {}
    void onError(net::ByteStream&, int error) override {
        ++errors;
        last_error = error;
    }
};

core::SharedBytesRef block(char fill, std::size_t size) {
    core::SharedBytesRef b = core::SharedBytes::make(size);
    REQUIRE(b);
    std::memset(b.get()->data(), fill, size);
    return b;
}

struct SocketPair {
    net::EventLoop loop;
    Quiet handler;
    core::UniqueFd peer;
    std::unique_ptr<net::Stream> stream;
    explicit SocketPair(int sndbuf = 0) {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        if (sndbuf > 0) ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        peer = core::UniqueFd(fds[1]);
        stream = std::make_unique<net::Stream>(loop.base(), core::UniqueFd(fds[0]), &handler);
    }
    // Everything the peer can read now.
    std::string drain() {
        std::string got;
        char buffer[65536];
        ssize_t n;
        while ((n = ::read(peer.get(), buffer, sizeof buffer)) > 0) got.append(buffer, static_cast<std::size_t>(n));
        return got;
    }
    // Reads and runs the loop (the write event sends the rest) until `want` bytes came.
    std::string readAll(std::size_t want) {
        std::string got;
        for (int round = 0; round < 10000 && got.size() < want; ++round) {
            got += drain();
            event_base_loop(loop.base(), EVLOOP_NONBLOCK);
        }
        return got;
    }
};

std::string expected(const core::SharedBytesRef* blocks, std::size_t n) {
    std::string all;
    for (std::size_t i = 0; i < n; ++i) all.append(reinterpret_cast<const char*>(blocks[i]->data()), blocks[i]->size());
    return all;
}

}  // namespace

TEST_CASE("writeShared sends the blocks whole when the socket takes them, holding none", "[net][stream]") {
    SocketPair pair;
    const core::SharedBytesRef blocks[] = {block('a', 70), block('b', 5000), block('c', 70)};
    pair.stream->writeShared(blocks, 3);
    CHECK(pair.stream->outputLength() == 0);
    for (const auto& b : blocks) CHECK(b->holders() == 1);  // only ours: nothing referenced
    CHECK(pair.drain() == expected(blocks, 3));
}

TEST_CASE("writeShared leaves what the socket refuses in the output, in order, large blocks referenced", "[net][stream]") {
    SocketPair pair(4096);
    const core::SharedBytesRef blocks[] = {block('a', 100), block('b', 512 * 1024), block('c', 100), block('d', 64 * 1024)};
    const std::size_t total = 100 + 512 * 1024 + 100 + 64 * 1024;
    pair.stream->writeShared(blocks, 4);
    CHECK(pair.stream->outputLength() > 0);
    CHECK(pair.stream->outputLength() < total);
    // The rest of the large blocks is referenced, not copied: the output holds them.
    CHECK(blocks[1]->holders() == 2);
    CHECK(blocks[3]->holders() == 2);
    // Queued behind them: a plain write goes after, as everything written later.
    pair.stream->write("tail", 4);
    const std::string got = pair.readAll(total + 4);
    CHECK(got == expected(blocks, 4) + "tail");
    CHECK(pair.handler.errors == 0);
    // Drained: the output let go of them.
    for (const auto& b : blocks) CHECK(b->holders() == 1);
}

TEST_CASE("writeShared behind queued bytes goes after them", "[net][stream]") {
    SocketPair pair(4096);
    const std::string first(256 * 1024, 'x');
    pair.stream->write(first.data(), first.size());  // the socket is full: the rest waits
    REQUIRE(pair.stream->outputLength() > 0);
    const core::SharedBytesRef blocks[] = {block('a', 100), block('b', 8192)};
    pair.stream->writeShared(blocks, 2);
    CHECK(pair.readAll(first.size() + 100 + 8192) == first + expected(blocks, 2));
}

TEST_CASE("a stream freed with shared blocks in its output releases them", "[net][stream]") {
    const core::SharedBytesRef big = block('z', 1024 * 1024);
    {
        SocketPair pair(4096);
        pair.stream->writeShared(&big, 1);
        REQUIRE(pair.stream->outputLength() > 0);
        CHECK(big->holders() == 2);
    }
    CHECK(big->holders() == 1);  // under ASan: no use after free once the stream's output went
}

TEST_CASE("SharedBytes::appendTo copies small remainders and references large ones", "[core][shared_bytes]") {
    const core::SharedBytesRef b = block('q', core::SharedBytes::kCopyBelow + 10);
    core::EvbufferPtr out(evbuffer_new());
    b->appendTo(out.get(), 20);  // 4086 bytes: copied
    CHECK(b->holders() == 1);
    b->appendTo(out.get());  // 4106 bytes: referenced
    CHECK(b->holders() == 2);
    CHECK(evbuffer_get_length(out.get()) == 2 * core::SharedBytes::kCopyBelow);  // 4086 + 4106
    evbuffer_drain(out.get(), evbuffer_get_length(out.get()));
    CHECK(b->holders() == 1);
}

// Out of memory while the socket is full (a frozen output refuses appends as a failed allocation
// would): the stream fails, reported from the loop, instead of leaving the frame cut short.
TEST_CASE("writeShared that cannot queue what the socket refuses fails the stream (ENOMEM)", "[net][stream]") {
    SocketPair pair(4096);
    const core::SharedBytesRef big = block('x', 1024 * 1024);
    evbuffer_freeze(pair.stream->output(), 0);
    pair.stream->writeShared(&big, 1);
    evbuffer_unfreeze(pair.stream->output(), 0);  // before the buffer goes back to the thread's spares
    CHECK(pair.handler.errors == 0);  // not from inside the call
    for (int i = 0; i < 10 && pair.handler.errors == 0; ++i) event_base_loop(pair.loop.base(), EVLOOP_NONBLOCK);
    CHECK(pair.handler.errors == 1);
    CHECK(pair.handler.last_error == ENOMEM);
    CHECK(big->holders() == 1);
}
