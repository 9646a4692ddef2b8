// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/client_context.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "portico/tls/errors.h"
#include "portico/tls/server_context.h"
#include "tls_fixture.h"

using namespace portico;
using namespace portico::tls;
using namespace portico::tls::testing;

namespace {

std::shared_ptr<ClientContext> clientOk(const config::UpstreamTls& tls) {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    auto context = ClientContext::build(tls, errors, warnings);
    INFO(joined(errors));
    REQUIRE(errors.empty());
    REQUIRE(context != nullptr);
    return context;
}

std::shared_ptr<ServerContext> server(const std::vector<std::string>& names) {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    auto context = ServerContext::build(listenerTls(names), errors, warnings);
    REQUIRE(context != nullptr);
    return context;
}

config::UpstreamTls trusting(const std::string& ca_file) {
    config::UpstreamTls tls;
    tls.ca = certs().path(ca_file);
    return tls;
}

// Connects a client session for `host` to a server session; returns "" on success or why the
// client's handshake failed.
std::string connect(const ClientContext& client, const ServerContext& server, const char* host,
                    SslPtr* keep = nullptr) {
    SslPtr c = client.newSession(host);
    SslPtr s = server.newSession();
    REQUIRE(c);
    REQUIRE(s);
    bool ok = handshake(c.get(), s.get());
    std::string why = ok ? "" : handshakeFailureString(c.get());
    if (keep != nullptr) *keep = std::move(c);
    return ok ? "" : (why.empty() ? "failed" : why);
}

}  // namespace

TEST_CASE("upstream TLS verifies the chain and the host name by default", "[tls]") {
    auto client = clientOk(trusting("ca.crt"));
    CHECK(client->verifies());
    auto site = server({"site-ec"});
    auto local = server({"localhost"});

    CHECK(connect(*client, *site, "site.test").empty());
    CHECK(connect(*client, *site, "www.site.test").empty());
    CHECK(connect(*client, *local, "localhost").empty());
    CHECK(connect(*client, *local, "127.0.0.1").empty());  // IP SAN

    std::string wrong_name = connect(*client, *site, "other.test");
    CHECK(wrong_name.find("certificate verify failed") != std::string::npos);
    CHECK(wrong_name.find("hostname mismatch") != std::string::npos);

    std::string wrong_ip = connect(*client, *local, "127.0.0.2");
    CHECK(wrong_ip.find("IP address mismatch") != std::string::npos);
}

TEST_CASE("upstream TLS refuses a server whose CA it does not trust", "[tls]") {
    auto client = clientOk(trusting("client-ca.crt"));
    auto site = server({"site-ec"});
    std::string why = connect(*client, *site, "site.test");
    CHECK(why.find("certificate verify failed") != std::string::npos);
    CHECK(why.find("unable to get local issuer certificate") != std::string::npos);
}

TEST_CASE("upstream sni: sent instead of the host, and verified", "[tls]") {
    config::UpstreamTls tls = trusting("ca.crt");
    tls.sni = "other.test";
    auto client = clientOk(tls);
    auto multi = server({"site-ec", "other"});
    // Host is an IP, as in `servers: [127.0.0.1:9443]`: SNI picks other.test's certificate.
    SslPtr kept;
    CHECK(connect(*client, *multi, "127.0.0.1", &kept).empty());
    CHECK(peerCommonName(kept.get()) == "other.test");
    CHECK(std::string(SSL_get_servername(kept.get(), TLSEXT_NAMETYPE_host_name)) == "other.test");
}

TEST_CASE("an IP host sends no SNI", "[tls]") {
    auto client = clientOk(trusting("ca.crt"));
    SslPtr ssl = client->newSession("127.0.0.1");
    REQUIRE(ssl);
    CHECK(SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name) == nullptr);
    SslPtr named = client->newSession("site.test");
    REQUIRE(SSL_get_servername(named.get(), TLSEXT_NAMETYPE_host_name) != nullptr);
    CHECK(std::string(SSL_get_servername(named.get(), TLSEXT_NAMETYPE_host_name)) == "site.test");
}

TEST_CASE("verify: false accepts any certificate, with a warning", "[tls]") {
    config::UpstreamTls tls;
    tls.verify = false;
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    auto client = ClientContext::build(tls, errors, warnings);
    REQUIRE(client);
    CHECK(errors.empty());
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("tls.verify: false") == 0);
    auto site = server({"site-ec"});
    CHECK(connect(*client, *site, "wrong.test").empty());
}

TEST_CASE("the system store is used when no ca is given", "[tls]") {
    auto client = clientOk(config::UpstreamTls{});
    auto site = server({"site-ec"});
    // Our test CA is not in the system store.
    CHECK(connect(*client, *site, "site.test").find("certificate verify failed") !=
          std::string::npos);
}

TEST_CASE("an unreadable or empty ca is an error", "[tls]") {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    config::UpstreamTls tls = trusting("nope.pem");
    CHECK(ClientContext::build(tls, errors, warnings) == nullptr);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "tls.ca: " + certs().path("nope.pem") + ": cannot read: No such file or directory");

    errors.clear();
    tls = trusting("site-ec.key");  // PEM, but no certificate in it
    CHECK(ClientContext::build(tls, errors, warnings) == nullptr);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("site-ec.key: no certificate found") != std::string::npos);
}

TEST_CASE("upstream sessions resume per server", "[tls]") {
    auto client = clientOk(trusting("ca.crt"));
    auto local = server({"localhost"});
    for (int round = 0; round < 3; ++round) {
        SslPtr c = client->newSession("localhost");
        SslPtr s = local->newSession();
        REQUIRE(handshake(c.get(), s.get()));
        // The first connection is full; the ticket it got makes the next ones resume.
        INFO("round " << round);
        CHECK((SSL_session_reused(c.get()) == 1) == (round > 0));
    }
    // Another key: nothing cached for it yet.
    SslPtr c = client->newSession("localhost", "localhost:8443");
    SslPtr s = local->newSession();
    REQUIRE(handshake(c.get(), s.get()));
    CHECK(SSL_session_reused(c.get()) == 0);
}

TEST_CASE("upstream sessions offer http/1.1 by ALPN", "[tls]") {
    auto client = clientOk(trusting("ca.crt"));
    auto site = server({"site-ec"});
    SslPtr kept;
    REQUIRE(connect(*client, *site, "site.test", &kept).empty());
    const unsigned char* data = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(kept.get(), &data, &length);
    CHECK(std::string(reinterpret_cast<const char*>(data), length) == "http/1.1");
}
