// SPDX-License-Identifier: Apache-2.0
// net::Stream as a TLS server on a socketpair, the test playing the client with its own SSL over
// memory BIOs, so that it decides which bytes of a record reach the socket and when.

#include <catch2/catch.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <malloc.h>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "portico/core/shared_bytes.h"
#include "portico/net/event_loop.h"
#include "portico/net/stream.h"
#include "portico/net/tls_buffer_sweep.h"
#include "portico/tls/client_context.h"
#include "portico/tls/server_context.h"
#include "../tls/tls_fixture.h"

using namespace portico;
using namespace portico::tls::testing;

namespace {

struct Collector final : net::StreamHandler {
    std::string bytes;
    int errors = 0;
    int handshakes = 0;
    void onReadable(net::ByteStream& stream) override {
        evbuffer* in = stream.input();
        const std::size_t n = evbuffer_get_length(in);
        std::string chunk(n, '\0');
        evbuffer_remove(in, chunk.data(), n);
        bytes += chunk;
    }
    void onEof(net::ByteStream&) override {}
    void onError(net::ByteStream&, int) override { ++errors; }
    void onTlsHandshake(net::Stream&) override { ++handshakes; }
};

// The server: a Stream with a ServerContext's session on one end of a socketpair. The client:
// an SSL whose records the test moves between memory BIOs and the other end (`peer`).
struct TlsPair {
    std::unique_ptr<net::EventLoop> own_loop;
    net::EventLoop& loop;
    Collector handler;
    core::UniqueFd peer;
    std::unique_ptr<net::Stream> server;
    tls::SslPtr client;
    BIO* to_server = nullptr;    // the client's output (owned by client)
    BIO* from_server = nullptr;  // the client's input (owned by client)

    // On a loop of its own, or on `shared` (several streams on one loop: one sweep list).
    explicit TlsPair(net::EventLoop* shared = nullptr)
        : own_loop(shared ? nullptr : std::make_unique<net::EventLoop>()), loop(shared ? *shared : *own_loop) {
        std::vector<std::string> errors, warnings;
        auto server_context = tls::ServerContext::build(listenerTls({"site-ec"}), errors, warnings);
        REQUIRE(server_context);
        config::UpstreamTls upstream;
        upstream.verify = false;
        auto client_context = tls::ClientContext::build(upstream, errors, warnings);
        REQUIRE(client_context);
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        peer = core::UniqueFd(fds[1]);
        server = std::make_unique<net::Stream>(loop.base(), core::UniqueFd(fds[0]), &handler);
        server->startTls(server_context->newSession(), /*server=*/true);
        client = client_context->newSession("site.test");
        REQUIRE(client);
        to_server = BIO_new(BIO_s_mem());
        from_server = BIO_new(BIO_s_mem());
        SSL_set_bio(client.get(), from_server, to_server);
    }

    // Sends the first `limit` bytes the client has queued (all by default); keeps the rest.
    void send(std::size_t limit = SIZE_MAX) {
        char* data = nullptr;
        const long n = BIO_get_mem_data(to_server, &data);
        const std::size_t take = std::min(static_cast<std::size_t>(n), limit);
        if (take > 0) REQUIRE(::write(peer.get(), data, take) == static_cast<ssize_t>(take));
        std::vector<char> sink(take);
        if (take > 0) REQUIRE(BIO_read(to_server, sink.data(), static_cast<int>(take)) == static_cast<int>(take));
    }
    void receive() {
        char buffer[16384];
        ssize_t n;
        while ((n = ::read(peer.get(), buffer, sizeof buffer)) > 0) BIO_write(from_server, buffer, static_cast<int>(n));
    }
    void run() { event_base_loop(loop.base(), EVLOOP_NONBLOCK); }

    void handshake() {
        for (int round = 0; round < 20 && !(SSL_is_init_finished(client.get()) && handler.handshakes == 1); ++round) {
            SSL_do_handshake(client.get());
            send();
            run();
            receive();
        }
        REQUIRE(SSL_is_init_finished(client.get()));
        REQUIRE(handler.handshakes == 1);
        ERR_clear_error();
    }
    std::size_t queued() { return static_cast<std::size_t>(BIO_pending(to_server)); }
    // The client sends `text` in one record; the server reads it and answers the same.
    void echo(const std::string& text) {
        handler.bytes.clear();
        REQUIRE(SSL_write(client.get(), text.data(), static_cast<int>(text.size())) == static_cast<int>(text.size()));
        send();
        run();
        REQUIRE(handler.bytes == text);
        server->write(text.data(), text.size());
        receive();
        char back[64] = {};
        REQUIRE(SSL_read(client.get(), back, sizeof back) == static_cast<int>(text.size()));
        REQUIRE(std::string(back, text.size()) == text);
    }
};

// Heap bytes in use (glibc), to see OpenSSL's buffers go; 0 where a sanitizer replaces malloc.
std::size_t heapInUse() {
#if defined(__SANITIZE_ADDRESS__)
    return 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 0;
#else
    return mallinfo2().uordblks;
#endif
#else
    return mallinfo2().uordblks;
#endif
}

}  // namespace

// The data path empties the thread's error queue only when something is in it
// (tls::clearStaleErrors). A stale entry left by unrelated OpenSSL work on this thread must still
// not turn a read that finds half a record (SSL_ERROR_WANT_READ) into a failed connection.
TEST_CASE("a stale OpenSSL error does not fail a TLS read that waits for the rest of a record", "[net][stream][tls]") {
    TlsPair pair;
    pair.handshake();
    REQUIRE(SSL_write(pair.client.get(), "ping", 4) == 4);
    const std::size_t record = pair.queued();
    REQUIRE(record > 5);
    pair.send(3);  // part of the record header: the server's SSL_read wants more
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET_LENGTH);  // left behind by someone else
    pair.run();
    CHECK(pair.handler.errors == 0);
    CHECK(pair.handler.bytes.empty());
    pair.send();
    pair.run();
    CHECK(pair.handler.errors == 0);
    CHECK(pair.handler.bytes == "ping");
    ERR_clear_error();
}

// A connection busy through two sweep intervals keeps OpenSSL's record buffers (no
// SSL_MODE_RELEASE_BUFFERS) until it did no I/O through a whole interval: the next sweep frees them.
TEST_CASE("a TLS stream busy through two sweeps keeps its OpenSSL buffers until a sweep finds it idle", "[net][stream][tls]") {
    TlsPair pair;
    pair.handshake();
    pair.echo("ping");
    CHECK(pair.server->holdsTlsBuffers());
    CHECK(net::TlsBufferSweep::listed(pair.loop.base()) == 1);
    net::TlsBufferSweep::sweepNow(pair.loop.base());  // busy once
    pair.echo("one");
    net::TlsBufferSweep::sweepNow(pair.loop.base());  // busy twice: kept from now on
    pair.echo("two");
    const std::size_t busy = heapInUse();

    net::TlsBufferSweep::sweepNow(pair.loop.base());  // I/O since the last sweep: kept
    CHECK(pair.server->holdsTlsBuffers());
    net::TlsBufferSweep::sweepNow(pair.loop.base());  // none since: freed
    CHECK_FALSE(pair.server->holdsTlsBuffers());
    CHECK(net::TlsBufferSweep::listed(pair.loop.base()) == 0);
    if (busy != 0) CHECK(busy - heapInUse() >= 30000);  // two ~17 KB record buffers

    // The connection goes on as before (buffers made again, released per record until it is busy again).
    pair.echo("pong");
    CHECK(pair.server->holdsTlsBuffers());
    net::TlsBufferSweep::sweepNow(pair.loop.base());
    net::TlsBufferSweep::sweepNow(pair.loop.base());
    CHECK_FALSE(pair.server->holdsTlsBuffers());
    CHECK(pair.handler.errors == 0);
}

// malloc_trim locks every worker's arena: a sweep calls it once its loop has no stream holding
// buffers (a burst of busy connections all went idle), never while some stay busy, however many
// the sweep freed (it did at 32, under load too: tens of calls a second with 4 workers).
TEST_CASE("a sweep trims the heap once all its loop's busy TLS streams went idle, not before", "[net][stream][tls]") {
    net::EventLoop loop;
    std::vector<std::unique_ptr<TlsPair>> pairs;
    for (std::size_t i = 0; i < net::TlsBufferSweep::kTrimAfterStreams + 1; ++i) {
        pairs.push_back(std::make_unique<TlsPair>(&loop));
        pairs.back()->handshake();
    }
    auto echoAll = [&](std::size_t count) {
        for (std::size_t i = 0; i < count; ++i) pairs[i]->echo("x");
    };
    echoAll(pairs.size());
    net::TlsBufferSweep::sweepNow(loop.base());  // busy once
    echoAll(pairs.size());
    net::TlsBufferSweep::sweepNow(loop.base());  // busy twice: kept from now on
    echoAll(pairs.size());
    net::TlsBufferSweep::sweepNow(loop.base());  // I/O since the last sweep: kept
    REQUIRE(net::TlsBufferSweep::listed(loop.base()) == pairs.size());
    const std::size_t trims = net::TlsBufferSweep::trims();

    pairs.back()->echo("still busy");
    net::TlsBufferSweep::sweepNow(loop.base());  // 32 freed, one still busy
    CHECK(net::TlsBufferSweep::listed(loop.base()) == 1);
    CHECK(net::TlsBufferSweep::trims() == trims);
    net::TlsBufferSweep::sweepNow(loop.base());  // the last one idle too: the burst is over
    CHECK(net::TlsBufferSweep::listed(loop.base()) == 0);
#if defined(__GLIBC__)
    CHECK(net::TlsBufferSweep::trims() == trims + 1);
#endif
    for (auto& pair : pairs) CHECK(pair->handler.errors == 0);
}

// The same burst, but its last busy stream closes instead of going idle: the freed buffers' heap
// is still trimmed, at that close (found in review: the list was dropped without a trim), and the
// list and its timer go with it: none may outlive its loop (found in review: a list kept for a
// later sweep was freed after its event_base; a later loop at the same address inherited it).
TEST_CASE("a sweep trims the heap after the last busy TLS stream closed", "[net][stream][tls]") {
    const std::size_t lists = net::TlsBufferSweep::lists();
    {
        net::EventLoop loop;
        std::vector<std::unique_ptr<TlsPair>> pairs;
        for (std::size_t i = 0; i < net::TlsBufferSweep::kTrimAfterStreams + 1; ++i) {
            pairs.push_back(std::make_unique<TlsPair>(&loop));
            pairs.back()->handshake();
        }
        for (int round = 0; round < 3; ++round) {
            for (auto& pair : pairs) pair->echo("x");
            net::TlsBufferSweep::sweepNow(loop.base());
        }
        REQUIRE(net::TlsBufferSweep::listed(loop.base()) == pairs.size());
        const std::size_t trims = net::TlsBufferSweep::trims();

        pairs.back()->echo("still busy");
        net::TlsBufferSweep::sweepNow(loop.base());  // 32 freed, one still busy
        REQUIRE(net::TlsBufferSweep::listed(loop.base()) == 1);
        CHECK(net::TlsBufferSweep::trims() == trims);
        pairs.back()->server.reset();  // that one closes: the burst is over
        CHECK(net::TlsBufferSweep::listed(loop.base()) == 0);
        CHECK(net::TlsBufferSweep::lists() == lists);
#if defined(__GLIBC__)
        CHECK(net::TlsBufferSweep::trims() == trims + 1);
#endif
        net::TlsBufferSweep::sweepNow(loop.base());  // once per burst
#if defined(__GLIBC__)
        CHECK(net::TlsBufferSweep::trims() == trims + 1);
#endif
    }
    // A loop made after that one (perhaps at its address) starts with no list of its own.
    net::EventLoop next;
    CHECK(net::TlsBufferSweep::lists() == lists);
    CHECK(net::TlsBufferSweep::listed(next.base()) == 0);
}

// A handshake and one exchange do not make a connection busy: its buffers are released after
// every record as with RELEASE_BUFFERS alone, so a burst of such connections leaves no buffers.
TEST_CASE("a TLS stream with a single exchange holds no OpenSSL buffers between records", "[net][stream][tls]") {
    TlsPair pair;
    pair.handshake();
    pair.echo("ping");
    const std::size_t after_echo = heapInUse();
    net::TlsBufferSweep::sweepNow(pair.loop.base());
    net::TlsBufferSweep::sweepNow(pair.loop.base());
    CHECK_FALSE(pair.server->holdsTlsBuffers());
    if (after_echo != 0) CHECK(after_echo - std::min(after_echo, heapInUse()) < 4096);  // nothing big was held
}

// SSL_free_buffers refuses while a record is half read (the bytes read ahead live in the read
// buffer): the stream stays listed, and the record completes intact when the rest comes.
TEST_CASE("a TLS stream holding half a record keeps its buffers through sweeps", "[net][stream][tls]") {
    TlsPair pair;
    pair.handshake();
    REQUIRE(SSL_write(pair.client.get(), "half a record", 13) == 13);
    const std::size_t record = pair.queued();
    pair.send(record - 4);
    pair.run();
    CHECK(pair.handler.bytes.empty());
    for (int i = 0; i < 3; ++i) net::TlsBufferSweep::sweepNow(pair.loop.base());
    CHECK(pair.server->holdsTlsBuffers());
    pair.send();
    pair.run();
    CHECK(pair.handler.bytes == "half a record");
    CHECK(pair.handler.errors == 0);
}

// The sweep runs by itself: the loop's timer frees an idle stream's buffers within
// 2 * TlsBufferSweep::kInterval, then stops.
TEST_CASE("the sweep's timer frees an idle TLS stream's buffers within two intervals", "[net][stream][tls]") {
    TlsPair pair;
    pair.handshake();
    pair.echo("ping");
    REQUIRE(pair.server->holdsTlsBuffers());
    pair.server->pauseReading();  // only the sweep's timer is left on the loop
    const auto start = std::chrono::steady_clock::now();
    auto took = std::chrono::steady_clock::now() - start;
    while (pair.server->holdsTlsBuffers() && took < std::chrono::seconds(4)) {
        event_base_loop(pair.loop.base(), EVLOOP_ONCE);
        took = std::chrono::steady_clock::now() - start;
    }
    CHECK_FALSE(pair.server->holdsTlsBuffers());
    // Slack of one second for a loaded machine under ASan; a sweep that missed a turn would
    // take a third interval and more.
    CHECK(took <= 2 * net::TlsBufferSweep::kInterval + std::chrono::milliseconds(900));
}

// A pub/sub delivery over TLS (ByteStream::writeShared): one shared frame is encrypted straight
// from its memory (one SSL_write, nothing copied when the socket takes it), several go as one
// record from the output; what the socket refuses waits in the output and arrives intact, in order.
TEST_CASE("a TLS stream writes shared blocks from their memory, in order, whatever the socket takes", "[net][stream][tls]") {
    TlsPair pair;
    pair.handshake();
    auto block = [](char fill, std::size_t size) {
        core::SharedBytesRef b = core::SharedBytes::make(size);
        REQUIRE(b);
        std::memset(b.get()->data(), fill, size);
        return b;
    };
    auto readAll = [&](std::size_t want) {
        std::string got;
        char buffer[16384];
        for (int round = 0; round < 10000 && got.size() < want; ++round) {
            pair.receive();
            int n;
            while ((n = SSL_read(pair.client.get(), buffer, sizeof buffer)) > 0) got.append(buffer, static_cast<std::size_t>(n));
            pair.run();
        }
        return got;
    };
    const core::SharedBytesRef one = block('a', 70);
    pair.server->writeShared(&one, 1);
    CHECK(pair.server->outputLength() == 0);
    CHECK(one->holders() == 1);
    CHECK(readAll(70) == std::string(70, 'a'));

    const core::SharedBytesRef three[] = {block('b', 70), block('c', 5000), block('d', 70)};
    pair.server->writeShared(three, 3);
    CHECK(readAll(5140) == std::string(70, 'b') + std::string(5000, 'c') + std::string(70, 'd'));

    // Larger than the socket holds: the rest waits in the output and goes as the client reads.
    const core::SharedBytesRef big = block('e', 4 * 1024 * 1024);
    pair.server->writeShared(&big, 1);
    CHECK(pair.server->outputLength() > 0);
    // Referenced, not copied: a stalled wss subscriber holds no private copy of a large frame.
    CHECK(big->holders() == 2);
    const core::SharedBytesRef after = block('f', 70);
    pair.server->writeShared(&after, 1);
    CHECK(readAll(4 * 1024 * 1024 + 70) == std::string(4 * 1024 * 1024, 'e') + std::string(70, 'f'));
    CHECK(pair.handler.errors == 0);
    CHECK(pair.server->outputLength() == 0);
    CHECK(big->holders() == 1);
}
