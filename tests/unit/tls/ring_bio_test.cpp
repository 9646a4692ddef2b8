// SPDX-License-Identifier: Apache-2.0
// tls/ring_bio.h: a server SSL on the ring's BIO after a handshake over a BIO pair, the test
// handing it received ciphertext as the ring would (lent, kept, ended) and taking what it writes,
// a plain OpenSSL client on memory BIOs at the other end.

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "portico/tls/ring_bio.h"
#include "portico/tls/server_context.h"
#include "tls_fixture.h"

using namespace portico;
using namespace portico::tls::testing;

namespace {

struct RingPair {
    tls::SslPtr server, client;
    PlainClient plain;
    BIO* to_server = nullptr;    // the client's output (owned by client)
    BIO* from_server = nullptr;  // the client's input (owned by client)

    RingPair() {
        std::vector<std::string> errors, warnings;
        static auto context = tls::ServerContext::build(listenerTls({"site-ec"}), errors, warnings);
        REQUIRE(context);
        server = context->newSession();
        REQUIRE(server);
        SSL_set_options(server.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);  // as net::Stream sets it
        SSL_set_accept_state(server.get());
        client = plain.make("site.test");
        REQUIRE(handshake(client.get(), server.get()));
        REQUIRE(tls::attachRingBio(server.get(), 7));
        REQUIRE(tls::onRingBio(server.get()));
        to_server = BIO_new(BIO_s_mem());
        from_server = BIO_new(BIO_s_mem());
        SSL_set_bio(client.get(), from_server, to_server);
    }

    // What the client sends for `text` (one record).
    std::string record(const std::string& text) {
        REQUIRE(SSL_write(client.get(), text.data(), static_cast<int>(text.size())) == static_cast<int>(text.size()));
        return pending();
    }
    std::string pending() {
        char* data = nullptr;
        const long n = BIO_get_mem_data(to_server, &data);
        std::string bytes(data, static_cast<std::size_t>(n));
        (void)BIO_reset(to_server);
        return bytes;
    }
    // One SSL_read of the server: the plaintext, or "" with `error` set to SSL_get_error's answer.
    std::string read(int& error) {
        char buffer[4096];
        ERR_clear_error();
        const int n = SSL_read(server.get(), buffer, sizeof buffer);
        error = n > 0 ? SSL_ERROR_NONE : SSL_get_error(server.get(), n);
        return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
    }
    // The ring's receive: lent for the call, the rest kept.
    std::string receive(const std::string& bytes, int& error) {
        tls::borrowReceived(server.get(), bytes.data(), bytes.size());
        std::string got = read(error);
        REQUIRE(tls::keepBorrowed(server.get()));
        return got;
    }
};

}  // namespace

TEST_CASE("the ring BIO reads a record that came whole in one receive, with nothing kept", "[tls][ring_bio]") {
    RingPair pair;
    int error = 0;
    CHECK(pair.receive(pair.record("hello"), error) == "hello");
    CHECK(tls::receivedLength(pair.server.get()) == 0);
}

TEST_CASE("the ring BIO reads a record split across two receives", "[tls][ring_bio]") {
    RingPair pair;
    const std::string bytes = pair.record("split across receives");
    int error = 0;
    CHECK(pair.receive(bytes.substr(0, 9), error).empty());
    CHECK(error == SSL_ERROR_WANT_READ);
    CHECK(pair.receive(bytes.substr(9), error) == "split across receives");
    CHECK(tls::receivedLength(pair.server.get()) == 0);
}

TEST_CASE("the ring BIO keeps what one receive brought beyond the records read", "[tls][ring_bio]") {
    RingPair pair;
    // Two records and half a third in one receive; a read of one record at a time.
    std::string bytes = pair.record("one");
    bytes += pair.record("two");
    const std::string third = pair.record("three");
    bytes += third.substr(0, 4);
    int error = 0;
    tls::borrowReceived(pair.server.get(), bytes.data(), bytes.size());
    char byte[3];
    REQUIRE(SSL_read(pair.server.get(), byte, 3) == 3);
    REQUIRE(tls::keepBorrowed(pair.server.get()));
    CHECK(std::string(byte, 3) == "one");
    CHECK(pair.read(error) == "two");
    CHECK(pair.read(error).empty());
    CHECK(error == SSL_ERROR_WANT_READ);
    CHECK(pair.receive(third.substr(4), error) == "three");
    CHECK(tls::receivedLength(pair.server.get()) == 0);
}

TEST_CASE("the ring BIO: a close_notify ends the reads, a bare end too", "[tls][ring_bio]") {
    SECTION("close_notify") {
        RingPair pair;
        SSL_shutdown(pair.client.get());
        int error = 0;
        CHECK(pair.receive(pair.pending(), error).empty());
        CHECK(error == SSL_ERROR_ZERO_RETURN);
    }
    SECTION("the peer's FIN after a whole record: the record, then the end") {
        RingPair pair;
        int error = 0;
        tls::endReceived(pair.server.get(), 0);
        CHECK(tls::receivedEnded(pair.server.get()));
        CHECK(pair.receive(pair.record("last"), error) == "last");
        CHECK(pair.read(error).empty());
        CHECK(error == SSL_ERROR_ZERO_RETURN);  // SSL_OP_IGNORE_UNEXPECTED_EOF
    }
}

TEST_CASE("the ring BIO: an error in the middle of a record fails the read with it", "[tls][ring_bio]") {
    RingPair pair;
    const std::string bytes = pair.record("cut short");
    int error = 0;
    CHECK(pair.receive(bytes.substr(0, 10), error).empty());
    CHECK(error == SSL_ERROR_WANT_READ);
    tls::endReceived(pair.server.get(), ECONNRESET);
    CHECK(pair.read(error).empty());
    CHECK(error == SSL_ERROR_SYSCALL);
    CHECK(errno == ECONNRESET);
}

TEST_CASE("the ring BIO queues what SSL_write makes and holds no buffer once it is taken", "[tls][ring_bio]") {
    RingPair pair;
    CHECK(tls::toSend(pair.server.get()) == nullptr);
    REQUIRE(SSL_write(pair.server.get(), "answer", 6) == 6);
    evbuffer* out = tls::toSend(pair.server.get());
    REQUIRE(out != nullptr);
    const std::size_t n = tls::toSendLength(pair.server.get());
    REQUIRE(n > 6);
    std::string bytes(n, '\0');
    evbuffer_remove(out, bytes.data(), n);
    BIO_write(pair.from_server, bytes.data(), static_cast<int>(n));
    char back[16];
    REQUIRE(SSL_read(pair.client.get(), back, sizeof back) == 6);
    CHECK(std::string(back, 6) == "answer");
    tls::releaseIdle(pair.server.get());
    CHECK(tls::toSend(pair.server.get()) == nullptr);
    CHECK(SSL_get_fd(pair.server.get()) == 7);
}
