// SPDX-License-Identifier: Apache-2.0
// RFC 9113 9.2.2 on a listener offering h2: which TLS 1.2 suites HTTP/2 may use, ALPN keeping h2
// off the others (HTTP/1.1 instead), and the warning about a `ciphers:` list that allows them.

#include "tls/http2_ciphers.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "portico/tls/server_context.h"
#include "tls_fixture.h"

using namespace portico;
using namespace portico::tls;
using namespace portico::tls::testing;

namespace {

// Every suite OpenSSL knows, looked up by its IANA number.
const SSL_CIPHER* suite(SSL* all, unsigned id) {
    const unsigned char bytes[2] = {static_cast<unsigned char>(id >> 8), static_cast<unsigned char>(id & 0xff)};
    return SSL_CIPHER_find(all, bytes);
}

std::string alpnOf(const SSL* ssl) {
    const unsigned char* data = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl, &data, &length);
    return std::string(reinterpret_cast<const char*>(data), length);
}

config::ListenerTls h2Listener(const char* ciphers) {
    config::ListenerTls tls = listenerTls({"site-ec", "site-rsa"});
    tls.alpn = {"h2", "http/1.1"};
    tls.ciphers = ciphers;
    return tls;
}

}  // namespace

TEST_CASE("RFC 9113 Appendix A: the suites HTTP/2 may and may not use", "[tls]") {
    SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
    SslPtr all(SSL_new(ctx.get()));
    struct Case {
        unsigned id;
        bool allowed;
    };
    const Case cases[] = {
        // Forbidden: RSA key exchange, CBC, static DH/ECDH, anonymous, PSK without (EC)DHE.
        {0x002F, false},  // TLS_RSA_WITH_AES_128_CBC_SHA
        {0x009C, false},  // TLS_RSA_WITH_AES_128_GCM_SHA256 (AEAD, but no forward secrecy)
        {0xC013, false},  // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
        {0xC027, false},  // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
        {0x0033, false},  // TLS_DHE_RSA_WITH_AES_128_CBC_SHA
        {0x00A6, false},  // TLS_DH_anon_WITH_AES_128_GCM_SHA256
        {0x00A8, false},  // TLS_PSK_WITH_AES_128_GCM_SHA256
        {0xC09C, false},  // TLS_RSA_WITH_AES_128_CCM
        // Allowed: (EC)DHE with an AEAD cipher.
        {0xC02B, true},  // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (RFC 9113 9.2.2's mandatory one)
        {0xC02F, true},  // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        {0xC030, true},  // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        {0xCCA8, true},  // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        {0x009E, true},  // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
        {0xC0AC, true},  // TLS_ECDHE_ECDSA_WITH_AES_128_CCM
        {0x00AA, true},  // TLS_DHE_PSK_WITH_AES_128_GCM_SHA256
        {0x1301, true},  // TLS_AES_128_GCM_SHA256 (TLS 1.3)
        {0x1303, true},  // TLS_CHACHA20_POLY1305_SHA256 (TLS 1.3)
    };
    for (const Case& c : cases) {
        INFO("suite 0x" << std::hex << c.id);
        const SSL_CIPHER* cipher = suite(all.get(), c.id);
        REQUIRE(cipher != nullptr);
        CHECK(detail::http2Allows(cipher) == c.allowed);
    }
    CHECK_FALSE(detail::http2Allows(nullptr));
}

TEST_CASE("ALPN does not select h2 over a TLS 1.2 suite HTTP/2 forbids", "[tls]") {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    auto context = ServerContext::build(
        h2Listener("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA:AES128-SHA"), errors, warnings);
    REQUIRE(context != nullptr);
    PlainClient client;
    static const unsigned char both[] = "\x02h2\x08http/1.1";
    static const unsigned char h2_only[] = "\x02h2";
    auto connect = [&](const char* ciphers, int max_version, const unsigned char* offer, unsigned length,
                       SSL_SESSION* session = nullptr) {
        SslPtr server = context->newSession();
        SslPtr ssl = client.make("site.test");
        SSL_set_max_proto_version(ssl.get(), max_version);
        if (ciphers != nullptr) REQUIRE(SSL_set_cipher_list(ssl.get(), ciphers) == 1);
        SSL_set_alpn_protos(ssl.get(), offer, length);
        if (session != nullptr) SSL_set_session(ssl.get(), session);
        const bool ok = handshake(ssl.get(), server.get());
        return std::make_pair(std::move(ssl), ok);
    };

    for (const char* forbidden : {"ECDHE-ECDSA-AES128-SHA", "AES128-SHA"}) {
        INFO(forbidden);
        auto [ssl, ok] = connect(forbidden, TLS1_2_VERSION, both, sizeof both - 1);
        REQUIRE(ok);
        CHECK(std::string(SSL_get_cipher_name(ssl.get())) == forbidden);
        CHECK(alpnOf(ssl.get()) == "http/1.1");

        // A client that offers nothing else is refused as when no protocol is shared.
        auto [h2_ssl, h2_ok] = connect(forbidden, TLS1_2_VERSION, h2_only, sizeof h2_only - 1);
        CHECK_FALSE(h2_ok);

        // A resumed TLS 1.2 session keeps its suite, and h2 stays off it.
        SSL_SESSION* session = SSL_get1_session(ssl.get());
        REQUIRE(session != nullptr);
        auto [again, again_ok] = connect(nullptr, TLS1_2_VERSION, both, sizeof both - 1, session);
        REQUIRE(again_ok);
        CHECK(SSL_session_reused(again.get()) == 1);
        CHECK(alpnOf(again.get()) == "http/1.1");
        SSL_SESSION_free(session);
    }
    {
        auto [ssl, ok] = connect("ECDHE-ECDSA-AES128-GCM-SHA256", TLS1_2_VERSION, both, sizeof both - 1);
        REQUIRE(ok);
        CHECK(alpnOf(ssl.get()) == "h2");
    }
    {
        // TLS 1.3: every suite qualifies (the `ciphers:` list is for TLS 1.2 only).
        auto [ssl, ok] = connect(nullptr, TLS1_3_VERSION, h2_only, sizeof h2_only - 1);
        REQUIRE(ok);
        CHECK(alpnOf(ssl.get()) == "h2");
    }
}

TEST_CASE("a cipher list that lets TLS 1.2 clients pick a suite HTTP/2 forbids is a warning", "[tls]") {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    REQUIRE(ServerContext::build(h2Listener("ECDHE-ECDSA-AES128-GCM-SHA256:AES128-SHA:ECDHE-RSA-AES256-SHA"),
                                 errors, warnings) != nullptr);
    INFO(joined(warnings));
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].rfind("tls.ciphers: lets TLS 1.2 clients pick 2 suites HTTP/2 must not use "
                            "(RFC 9113 9.2.2", 0) == 0);
    CHECK(warnings[0].find("AES128-SHA, ECDHE-RSA-AES256-SHA; over one, ALPN selects HTTP/1.1 instead of h2") !=
          std::string::npos);

    // Only h2 offered: such a connection gets no protocol at all.
    config::ListenerTls only_h2 = h2Listener("AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256");
    only_h2.alpn = {"h2"};
    warnings.clear();
    REQUIRE(ServerContext::build(only_h2, errors, warnings) != nullptr);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("1 suite HTTP/2 must not use") != std::string::npos);
    CHECK(warnings[0].find("ALPN has no protocol left to select (no_application_protocol)") != std::string::npos);

    // No warning: only allowed suites; no h2 offered; TLS 1.3 only; OpenSSL's default list.
    config::ListenerTls good = h2Listener("ECDHE+AESGCM:ECDHE+CHACHA20");
    config::ListenerTls no_h2 = h2Listener("AES128-SHA");
    no_h2.alpn = {"http/1.1"};
    config::ListenerTls tls13 = h2Listener("AES128-SHA");
    tls13.min_version = config::TlsVersion::Tls13;
    config::ListenerTls defaults = h2Listener("");
    for (const config::ListenerTls* tls : {&good, &no_h2, &tls13, &defaults}) {
        warnings.clear();
        REQUIRE(ServerContext::build(*tls, errors, warnings) != nullptr);
        CHECK(warnings.empty());
    }
    CHECK(errors.empty());
}
