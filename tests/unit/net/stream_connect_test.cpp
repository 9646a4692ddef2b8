// SPDX-License-Identifier: Apache-2.0
// net::Stream::connectTo on loopback: the first bytes written while connecting go at once when
// the socket is already up, a refusal seen by that send is a failed connect, and a connect that
// is not up yet still completes through the write event.

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "loopback_socket.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"

using namespace portico;
using portico::net::test::boundSocket;
using portico::net::test::runLoopUntil;

namespace {

struct ConnectRecorder final : net::StreamHandler {
    virtual ~ConnectRecorder() = default;
    int connected = 0;
    int errors = 0;
    int error = 0;
    void onReadable(net::ByteStream&) override {}
    void onEof(net::ByteStream&) override {}
    void onError(net::ByteStream&, int e) override {
        ++errors;
        error = e;
    }
    void onConnected(net::Stream& stream) override {
        ++connected;
        stream.flush();  // what was written while connecting goes now (as HttpExchange does)
    }
};

// A loopback server socket (listening with `backlog`, or only bound when negative, which
// refuses), a loop, and a stream connecting to it (start()).
struct Connect {
    sockaddr_in address{};
    core::UniqueFd server;
    net::EventLoop loop;
    ConnectRecorder handler;
    std::unique_ptr<net::Stream> stream;

    explicit Connect(int backlog) : server(boundSocket(address, backlog)) {}
    void start() {
        int error = 0;
        stream = net::Stream::connectTo(loop.base(), reinterpret_cast<const sockaddr*>(&address), sizeof address,
                                        &handler, error);
        REQUIRE(stream);
    }
    // Until the kernel has an answer to the connect (established or refused): a test's premise.
    void waitForOutcome() const {
        pollfd p{stream->fd(), POLLOUT, 0};
        REQUIRE(::poll(&p, 1, 2000) == 1);
    }
    template <class Done>
    void runUntil(Done done) {
        runLoopUntil(loop.base(), done, std::chrono::seconds(5));
    }
    core::UniqueFd acceptOne() const { return core::UniqueFd(::accept(server.get(), nullptr, nullptr)); }
};

// The first bytes for a connecting stream, the two ways an owner sends: write(), or queued in
// output() and flush()ed (a request with its body).
void sendFirst(net::Stream& stream, const std::string& bytes, bool queued) {
    if (queued) {
        evbuffer_add(stream.output(), bytes.data(), bytes.size());
        stream.flush();
    } else {
        stream.write(bytes.data(), bytes.size());
    }
}

std::string receiveNow(int fd) {
    char buf[64];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

TEST_CASE("bytes written to a connect that is up go at once; onConnected comes from the loop", "[net][stream]") {
    const bool queued = GENERATE(false, true);
    Connect c(16);
    c.start();
    c.waitForOutcome();
    sendFirst(*c.stream, "GET / HTTP/1.1\r\n", queued);
    CHECK(c.handler.connected == 0);  // never from inside write()
    CHECK(c.stream->outputLength() == 0);
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    CHECK(receiveNow(peer.get()) == "GET / HTTP/1.1\r\n");  // before the loop ran

    c.runUntil([&] { return c.handler.connected > 0; });
    CHECK(c.handler.connected == 1);
    CHECK(c.handler.errors == 0);
    CHECK_FALSE(c.stream->isConnecting());
    c.stream->write("more", 4);  // an established stream sends straight away
    CHECK(receiveNow(peer.get()) == "more");
}

// send() takes the socket's error (ECONNREFUSED): it must still be reported as the connect's
// failure, not be lost so that getsockopt(SO_ERROR) finds 0 and reports a connect.
TEST_CASE("a refusal seen by the first send is a failed connect", "[net][stream]") {
    const bool queued = GENERATE(false, true);
    Connect c(-1);  // bound, not listening: refuses
    c.start();
    c.waitForOutcome();
    sendFirst(*c.stream, "GET / HTTP/1.1\r\n", queued);
    CHECK(c.handler.errors == 0);  // never from inside write()
    c.runUntil([&] { return c.handler.errors > 0 || c.handler.connected > 0; });
    CHECK(c.handler.connected == 0);
    CHECK(c.handler.errors == 1);
    CHECK(c.handler.error == ECONNREFUSED);
}

// A listener whose accept queue is full drops the SYN: the first send finds the socket still
// connecting (EAGAIN) and the write event reports the connect once the SYN is retried (~1 s).
TEST_CASE("a connect that is not up at the first send completes later", "[net][stream]") {
    Connect c(0);  // an accept queue of one
    core::UniqueFd filler(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::connect(filler.get(), reinterpret_cast<const sockaddr*>(&c.address), sizeof c.address) == 0);
    c.start();
    c.stream->write("hello", 5);
    event_base_loop(c.loop.base(), EVLOOP_NONBLOCK);
    REQUIRE(c.stream->isConnecting());  // the premise: the SYN was dropped
    CHECK(c.handler.connected == 0);
    CHECK(c.stream->outputLength() == 5);  // kept for when the socket is up

    core::UniqueFd first = c.acceptOne();  // room for the retried SYN
    c.runUntil([&] { return c.handler.connected > 0 || c.handler.errors > 0; });
    CHECK(c.handler.connected == 1);
    CHECK(c.handler.errors == 0);
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    c.runUntil([&] { return c.stream->outputLength() == 0; });
    pollfd p{peer.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 2000) == 1);
    CHECK(receiveNow(peer.get()) == "hello");
}

// connectTo arms no write event: the owner's first send decides. A flush with nothing to send
// cannot tell, so it must arm the write event that reports the connect (else it never comes).
TEST_CASE("a connect whose first flush has nothing to send is still reported", "[net][stream]") {
    Connect c(16);
    c.start();
    c.stream->flush();
    c.runUntil([&] { return c.handler.connected > 0 || c.handler.errors > 0; });
    CHECK(c.handler.connected == 1);
    CHECK(c.handler.errors == 0);
    CHECK_FALSE(c.stream->isConnecting());
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    c.stream->write("after", 5);
    CHECK(receiveNow(peer.get()) == "after");
}

// The report of a connect told by the first send waits in the read event's active queue:
// pausing reading (event_del, which also empties that queue) before the loop runs must not lose
// it, nor may a refusal's report be lost that way.
TEST_CASE("a connect's report survives pausing reading before the loop runs", "[net][stream]") {
    const bool refused = GENERATE(false, true);
    Connect c(refused ? -1 : 16);
    c.start();
    c.waitForOutcome();
    c.stream->write("GET / HTTP/1.1\r\n", 16);
    c.stream->pauseReading();
    c.runUntil([&] { return c.handler.connected > 0 || c.handler.errors > 0; });
    CHECK(c.handler.connected == (refused ? 0 : 1));
    CHECK(c.handler.errors == (refused ? 1 : 0));
    if (refused) CHECK(c.handler.error == ECONNREFUSED);
}

// Paused and resumed before the loop runs: the report still comes, and the socket is read
// afterwards (event_add had left the event, active with the report, out of epoll: the answer
// was never read). Found in review.
TEST_CASE("a connect paused and resumed before the loop runs is reported and read", "[net][stream]") {
    struct Reader final : net::StreamHandler {
        int connected = 0;
        int readable = 0;
        void onReadable(net::ByteStream&) override { ++readable; }
        void onEof(net::ByteStream&) override {}
        void onError(net::ByteStream&, int) override {}
        void onConnected(net::Stream& stream) override {
            ++connected;
            stream.flush();
        }
    };
    Connect c(16);
    c.start();
    c.waitForOutcome();
    Reader reader;
    c.stream->setHandler(&reader);
    c.stream->write("GET / HTTP/1.1\r\n", 16);
    c.stream->pauseReading();
    c.stream->resumeReading();
    c.runUntil([&] { return reader.connected > 0; });
    REQUIRE(reader.connected == 1);
    core::UniqueFd peer = c.acceptOne();
    REQUIRE(peer);
    REQUIRE(::send(peer.get(), "HTTP/1.1 200 OK\r\n", 17, 0) == 17);
    c.runUntil([&] { return reader.readable > 0; });
    CHECK(reader.readable > 0);
    CHECK(c.stream->inputLength() == 17);
}
