// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/server_context.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "portico/tls/client_context.h"
#include "portico/tls/errors.h"
#include "tls_fixture.h"

using namespace portico;
using namespace portico::tls;
using namespace portico::tls::testing;

namespace {

std::shared_ptr<ServerContext> buildOk(const config::ListenerTls& tls) {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    auto context = ServerContext::build(tls, errors, warnings);
    INFO(joined(errors));
    REQUIRE(errors.empty());
    REQUIRE(context != nullptr);
    return context;
}

}  // namespace

TEST_CASE("server context groups certificates by the names in their SANs", "[tls]") {
    // site-ec and site-rsa name the same hosts: one SSL_CTX with both keys.
    auto context = buildOk(listenerTls({"site-ec", "other", "site-rsa", "wild"}));
    CHECK(context->contextCount() == 3);
    CHECK(context->certificateFor("site.test") == 0);
    CHECK(context->certificateFor("www.site.test") == 0);
    CHECK(context->certificateFor("other.test") == 1);
    CHECK(context->certificateFor("a.wild.test") == 3);
}

TEST_CASE("SNI lookup: exact names, one-label wildcards, case, trailing dot, default", "[tls]") {
    auto context = buildOk(listenerTls({"site-ec", "other", "wild"}));
    struct Case {
        const char* name;
        std::size_t expected;
    };
    const Case cases[] = {
        {"OTHER.Test", 1},      // case-insensitive
        {"other.test.", 1},     // trailing dot
        {"x.wild.test", 2},     // wildcard: one label
        {"X-1.WILD.test", 2},
        {"wild.test", 0},       // the wildcard needs a label
        {"a.b.wild.test", 0},   // and only one (RFC 6125 6.4.3)
        {".wild.test", 0},
        {"unknown.test", 0},    // unknown: the default certificate
        {"", 0},
        {"site.test", 0},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        CHECK(context->certificateFor(c.name) == c.expected);
    }
    CHECK(context->certificateFor(std::string(300, 'a')) == 0);
}

TEST_CASE("SNI handshake serves the certificate whose names match", "[tls]") {
    auto context = buildOk(listenerTls({"site-ec", "other", "wild"}));
    PlainClient client;
    struct Case {
        const char* sni;
        const char* cn;
    };
    const Case cases[] = {
        {nullptr, "site.test"},
        {"other.test", "other.test"},
        {"deep.wild.test", "*.wild.test"},
        {"nobody.test", "site.test"},
    };
    for (const Case& c : cases) {
        INFO((c.sni != nullptr ? c.sni : "(no SNI)"));
        SslPtr server = context->newSession();
        SslPtr ssl = client.make(c.sni);
        REQUIRE(server);
        REQUIRE(handshake(ssl.get(), server.get()));
        CHECK(peerCommonName(ssl.get()) == c.cn);
    }
}

TEST_CASE("RSA and ECDSA for one name: the client's signature algorithms choose", "[tls]") {
    auto context = buildOk(listenerTls({"site-rsa", "site-ec"}));
    CHECK(context->contextCount() == 1);
    PlainClient client;
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        INFO("TLS version " << std::hex << version);
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        SSL_set_max_proto_version(ssl.get(), version);
        REQUIRE(handshake(ssl.get(), server.get()));
        CHECK(peerKeyType(ssl.get()) == "EC");  // OpenSSL's client prefers ECDSA

        server = context->newSession();
        ssl = client.make("site.test");
        SSL_set_max_proto_version(ssl.get(), version);
        REQUIRE(SSL_set1_sigalgs_list(ssl.get(), "rsa_pss_rsae_sha256:RSA+SHA256") == 1);
        REQUIRE(handshake(ssl.get(), server.get()));
        CHECK(peerKeyType(ssl.get()) == "RSA");
    }
}

TEST_CASE("the chain after the leaf is sent to clients", "[tls]") {
    auto context = buildOk(listenerTls({"site-ec"}));
    PlainClient client;
    SslPtr server = context->newSession();
    SslPtr ssl = client.make("site.test");
    REQUIRE(handshake(ssl.get(), server.get()));
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());
    REQUIRE(chain != nullptr);
    CHECK(sk_X509_num(chain) == 2);  // leaf + intermediate
}

TEST_CASE("ALPN selects the first of our protocols the client offers", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec"});
    tls.alpn = {"http/1.1", "http/1.0"};
    auto context = buildOk(tls);
    PlainClient client;

    auto alpnOf = [](const SSL* ssl) {
        const unsigned char* data = nullptr;
        unsigned int length = 0;
        SSL_get0_alpn_selected(ssl, &data, &length);
        return std::string(reinterpret_cast<const char*>(data), length);
    };
    SECTION("client prefers http/1.0 but ours comes first") {
        static const unsigned char offer[] = "\x08http/1.0\x02h2\x08http/1.1";
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        SSL_set_alpn_protos(ssl.get(), offer, sizeof offer - 1);
        REQUIRE(handshake(ssl.get(), server.get()));
        CHECK(alpnOf(ssl.get()) == "http/1.1");
    }
    SECTION("only one of ours offered") {
        static const unsigned char offer[] = "\x02h2\x08http/1.0";
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        SSL_set_alpn_protos(ssl.get(), offer, sizeof offer - 1);
        REQUIRE(handshake(ssl.get(), server.get()));
        CHECK(alpnOf(ssl.get()) == "http/1.0");
    }
    SECTION("no overlap fails the handshake with no_application_protocol") {
        static const unsigned char offer[] = "\x02h2\x03h2c";
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        SSL_set_alpn_protos(ssl.get(), offer, sizeof offer - 1);
        CHECK_FALSE(handshake(ssl.get(), server.get()));
        CHECK(handshakeFailureString(server.get()).find("no application protocol") !=
              std::string::npos);
    }
    SECTION("a client without ALPN is served") {
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        REQUIRE(handshake(ssl.get(), server.get()));
        CHECK(alpnOf(ssl.get()).empty());
    }
}

TEST_CASE("min_version 1.3 refuses a TLS 1.2 client; 1.2 accepts it", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec"});
    PlainClient client;
    {
        auto context = buildOk(tls);
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        SSL_set_max_proto_version(ssl.get(), TLS1_2_VERSION);
        REQUIRE(handshake(ssl.get(), server.get()));
        CHECK(SSL_version(server.get()) == TLS1_2_VERSION);
    }
    tls.min_version = config::TlsVersion::Tls13;
    auto context = buildOk(tls);
    SslPtr server = context->newSession();
    SslPtr ssl = client.make("site.test");
    SSL_set_max_proto_version(ssl.get(), TLS1_2_VERSION);
    CHECK_FALSE(handshake(ssl.get(), server.get()));
    CHECK(handshakeFailureString(server.get()).find("unsupported protocol") != std::string::npos);
}

TEST_CASE("client_ca requires a client certificate from that CA", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec"});
    tls.client_ca = certs().path("client-ca.crt");
    auto context = buildOk(tls);
    PlainClient client;

    auto attempt = [&](const char* who) {
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        if (who != nullptr) {
            REQUIRE(SSL_use_certificate_chain_file(ssl.get(), certs().path(std::string(who) + ".crt").c_str()) == 1);
            REQUIRE(SSL_use_PrivateKey_file(ssl.get(), certs().path(std::string(who) + ".key").c_str(),
                                            SSL_FILETYPE_PEM) == 1);
        }
        bool ok = handshake(ssl.get(), server.get());
        // TLS 1.3: the client finishes before the server checks its certificate; the server's
        // verdict is what counts.
        bool server_ok = ok && SSL_is_init_finished(server.get());
        std::string why = handshakeFailureString(server.get());
        return std::make_pair(server_ok, why);
    };
    auto [alice_ok, alice_why] = attempt("alice");
    INFO(alice_why);
    CHECK(alice_ok);
    auto [none_ok, none_why] = attempt(nullptr);
    CHECK_FALSE(none_ok);
    CHECK(none_why.find("certificate") != std::string::npos);
    auto [mallory_ok, mallory_why] = attempt("mallory");
    CHECK_FALSE(mallory_ok);
    CHECK(mallory_why.find("certificate verify failed") != std::string::npos);
}

TEST_CASE("session tickets resume, also across a rebuild that keeps the keys", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec"});
    auto first = buildOk(tls);
    PlainClient client;
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        INFO("TLS version " << std::hex << version);
        SslPtr server = first->newSession();
        SslPtr ssl = client.make("site.test");
        SSL_set_max_proto_version(ssl.get(), version);
        REQUIRE(handshake(ssl.get(), server.get()));
        SSL_SESSION* session = SSL_get1_session(ssl.get());
        REQUIRE(session != nullptr);
        CHECK(SSL_SESSION_has_ticket(session) == 1);

        auto resume = [&](const ServerContext& context) {
            SslPtr s = context.newSession();
            SslPtr c = client.make("site.test");
            SSL_set_max_proto_version(c.get(), version);
            SSL_set_session(c.get(), session);
            REQUIRE(handshake(c.get(), s.get()));
            return SSL_session_reused(c.get()) == 1;
        };
        CHECK(resume(*first));
        CHECK(resume(*first));

        // Reload: the new context inherits the ring, so the ticket still decrypts.
        std::vector<std::string> errors;
        std::vector<std::string> warnings;
        auto reloaded = ServerContext::build(tls, errors, warnings, first.get());
        REQUIRE(reloaded);
        CHECK(resume(*reloaded));
        // A fresh context has fresh keys: a full handshake, which still succeeds.
        auto fresh = buildOk(tls);
        CHECK_FALSE(resume(*fresh));
        SSL_SESSION_free(session);
    }
}

TEST_CASE("without tickets the session cache resumes", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec"});
    tls.session_tickets = false;
    auto context = buildOk(tls);
    PlainClient client;
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        INFO("TLS version " << std::hex << version);
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        SSL_set_max_proto_version(ssl.get(), version);
        REQUIRE(handshake(ssl.get(), server.get()));
        SSL_SESSION* session = SSL_get1_session(ssl.get());
        REQUIRE(session != nullptr);
        if (version == TLS1_2_VERSION) CHECK(SSL_SESSION_has_ticket(session) == 0);

        SslPtr server2 = context->newSession();
        SslPtr ssl2 = client.make("site.test");
        SSL_set_max_proto_version(ssl2.get(), version);
        SSL_set_session(ssl2.get(), session);
        REQUIRE(handshake(ssl2.get(), server2.get()));
        CHECK(SSL_session_reused(ssl2.get()) == 1);
        SSL_SESSION_free(session);
    }
}

TEST_CASE("server sessions are set up for low memory and no 0-RTT or renegotiation", "[tls]") {
    auto context = buildOk(listenerTls({"site-ec"}));
    SslPtr server = context->newSession();
    REQUIRE(server);
    CHECK(SSL_is_server(server.get()) == 1);
    CHECK((SSL_get_mode(server.get()) & SSL_MODE_RELEASE_BUFFERS) != 0);
    CHECK((SSL_get_options(server.get()) & SSL_OP_NO_RENEGOTIATION) != 0);
    CHECK(SSL_get_max_early_data(server.get()) == 0);
}

TEST_CASE("an SSL keeps its context alive after the last shared_ptr is gone", "[tls]") {
    auto context = buildOk(listenerTls({"site-ec", "other"}));
    std::weak_ptr<ServerContext> weak = context;
    SslPtr server = context->newSession();
    context.reset();
    CHECK_FALSE(weak.expired());
    // The SNI callback still reaches the (old) context: open connections keep their certificates.
    PlainClient client;
    SslPtr ssl = client.make("other.test");
    REQUIRE(handshake(ssl.get(), server.get()));
    CHECK(peerCommonName(ssl.get()) == "other.test");
    server.reset();
    CHECK(weak.expired());
}

TEST_CASE("plain HTTP on a TLS session fails with a readable reason", "[tls]") {
    auto context = buildOk(listenerTls({"site-ec"}));
    SslPtr server = context->newSession();
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    const char request[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    BIO_write(in, request, static_cast<int>(std::strlen(request)));
    SSL_set_bio(server.get(), in, out);
    CHECK(SSL_do_handshake(server.get()) <= 0);
    std::string why = handshakeFailureString(server.get());
    CHECK(why.find("http request") != std::string::npos);
    CHECK(lastErrorString().empty());  // the queue was cleared
}
