// SPDX-License-Identifier: Apache-2.0
// tls::attachSocket: a server SSL on one end of a socketpair through Portico's socket BIO, a
// plain OpenSSL client (SSL_set_fd) on the other, driven in lock-step (non-blocking sockets).

#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "portico/core/handles.h"
#include "portico/tls/server_context.h"
#include "portico/tls/socket_bio.h"
#include "tls_fixture.h"

using namespace portico;
using namespace portico::tls::testing;

namespace {

struct SocketPair {
    core::UniqueFd server_fd, client_fd;
    tls::SslPtr server, client;
    PlainClient plain;

    SocketPair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
        server_fd = core::UniqueFd(fds[0]);
        client_fd = core::UniqueFd(fds[1]);
        std::vector<std::string> errors, warnings;
        static auto context = tls::ServerContext::build(listenerTls({"site-ec"}), errors, warnings);
        REQUIRE(context);
        server = context->newSession();
        REQUIRE(server);
        REQUIRE(tls::attachSocket(server.get(), server_fd.get()));
        SSL_set_accept_state(server.get());
        client = plain.make("site.test");
        SSL_set_fd(client.get(), client_fd.get());
    }

    void handshake() {
        bool client_done = false, server_done = false;
        for (int round = 0; round < 50 && !(client_done && server_done); ++round) {
            if (!client_done) client_done = SSL_do_handshake(client.get()) == 1;
            if (!server_done) server_done = SSL_do_handshake(server.get()) == 1;
        }
        REQUIRE(client_done);
        REQUIRE(server_done);
        // The client takes the session ticket: a socket closed with unread bytes is a reset.
        char byte;
        CHECK(SSL_read(client.get(), &byte, 1) <= 0);
        ERR_clear_error();
    }

    // Handshake, then the client goes away without close_notify (its socket closed).
    void handshakeAndDropClient() {
        handshake();
        client.reset();
        client_fd = core::UniqueFd();
        ERR_clear_error();
    }
};

// Blocks SIGPIPE on this thread while it lives, so that one raised by a write stays pending where
// the test can see it (its default action would end the test process; Portico ignores SIGPIPE,
// a library user may not, and nothing must depend on that).
class SigpipeWatch {
public:
    SigpipeWatch() {
        sigemptyset(&pipe_only_);
        sigaddset(&pipe_only_, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_only_, &previous_);
    }
    ~SigpipeWatch() {
        raised();
        pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    }
    SigpipeWatch(const SigpipeWatch&) = delete;
    SigpipeWatch& operator=(const SigpipeWatch&) = delete;
    // Was one raised since the last call? (It is taken off the pending set.)
    bool raised() {
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE) != 1) return false;
        int taken = 0;
        sigwait(&pipe_only_, &taken);
        return true;
    }

private:
    sigset_t pipe_only_{}, previous_{};
};

}  // namespace

TEST_CASE("socket BIO: handshake and records both ways; SSL_get_fd answers", "[tls][socket_bio]") {
    SocketPair p;
    p.handshake();
    CHECK(SSL_get_fd(p.server.get()) == p.server_fd.get());
    char buffer[256];
    // Nothing sent yet: the BIO's EAGAIN is a retry, not an error.
    ERR_clear_error();
    int n = SSL_read(p.server.get(), buffer, sizeof buffer);
    CHECK(n <= 0);
    CHECK(SSL_get_error(p.server.get(), n) == SSL_ERROR_WANT_READ);
    const std::string message(64, 'm');
    REQUIRE(SSL_write(p.client.get(), message.data(), static_cast<int>(message.size())) == 64);
    n = SSL_read(p.server.get(), buffer, sizeof buffer);
    REQUIRE(n == 64);
    CHECK(std::string(buffer, 64) == message);
    REQUIRE(SSL_write(p.server.get(), message.data(), 64) == 64);
    CHECK(SSL_read(p.client.get(), buffer, sizeof buffer) == 64);
}

TEST_CASE("socket BIO: a TCP close without close_notify is the end (BIO EOF), not an error", "[tls][socket_bio]") {
    SigpipeWatch sigpipe;
    SocketPair p;
    p.handshakeAndDropClient();
    char buffer[256];
    SECTION("ServerContext sessions ignore the missing close_notify") {
        // Portico's streams set it (startTls): the EOF must reach OpenSSL through BIO_eof.
        SSL_set_options(p.server.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
        const int n = SSL_read(p.server.get(), buffer, sizeof buffer);
        CHECK(SSL_get_error(p.server.get(), n) == SSL_ERROR_ZERO_RETURN);
    }
    SECTION("without the option OpenSSL names it (its alert to the closed socket raises no SIGPIPE)") {
        SSL_clear_options(p.server.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
        int n = SSL_read(p.server.get(), buffer, sizeof buffer);
        CHECK(SSL_get_error(p.server.get(), n) == SSL_ERROR_SSL);
        CHECK(ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
        ERR_clear_error();
        CHECK_FALSE(sigpipe.raised());
    }
}

TEST_CASE("socket BIO: writing to a peer that went away is EPIPE, never SIGPIPE", "[tls][socket_bio]") {
    SigpipeWatch sigpipe;
    SocketPair p;
    p.handshakeAndDropClient();
    const std::string message(64, 'w');
    const int n = SSL_write(p.server.get(), message.data(), 64);
    const int saved = errno;
    const int error = SSL_get_error(p.server.get(), n);
    ERR_clear_error();
    CHECK(n <= 0);
    CHECK(error == SSL_ERROR_SYSCALL);
    CHECK(saved == EPIPE);
    CHECK_FALSE(sigpipe.raised());
}

TEST_CASE("socket BIO: a duplicate (BIO_dup_chain, as SSL_dup makes) reads and writes the same socket", "[tls][socket_bio]") {
    SocketPair p;
    p.handshake();
    BIO* copy = BIO_dup_chain(SSL_get_rbio(p.server.get()));
    REQUIRE(copy != nullptr);
    int fd = -1;
    CHECK(BIO_get_fd(copy, &fd) == p.server_fd.get());
    CHECK(fd == p.server_fd.get());
    // Bytes written through the copy arrive on the client's socket.
    REQUIRE(BIO_write(copy, "x", 1) == 1);
    char byte = 0;
    CHECK(::recv(p.client_fd.get(), &byte, 1, 0) == 1);
    CHECK(byte == 'x');
    BIO_free_all(copy);
}
