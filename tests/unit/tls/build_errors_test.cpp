// SPDX-License-Identifier: Apache-2.0
// ServerContext::build's errors and warnings: each names the key path and the file.

#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "portico/tls/server_context.h"
#include "tls_fixture.h"

using namespace portico;
using namespace portico::tls;
using namespace portico::tls::testing;

namespace {

struct Outcome {
    std::shared_ptr<ServerContext> context;
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
};

Outcome build(const config::ListenerTls& tls) {
    Outcome o;
    o.context = ServerContext::build(tls, o.errors, o.warnings);
    return o;
}

std::string writeFile(const std::string& name, const std::string& text) {
    std::string path = certs().path(name);
    std::ofstream(path) << text;
    return path;
}

}  // namespace

TEST_CASE("a key that does not match its certificate is an error naming both", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec", "other"});
    tls.certificates[1].key = certs().path("site-ec.key");
    Outcome o = build(tls);
    CHECK(o.context == nullptr);
    REQUIRE(o.errors.size() == 1);
    CHECK(o.errors[0].rfind("tls.certificates[1].key: " + certs().path("site-ec.key") + ": ", 0) == 0);
    CHECK(o.errors[0].find("does not match the certificate " + certs().path("other.crt")) !=
          std::string::npos);
}

TEST_CASE("a passphrase-protected key is refused as unsupported", "[tls]") {
    config::ListenerTls tls = listenerTls({"locked"});
    tls.certificates[0].key = certs().path("locked.key.enc");
    Outcome o = build(tls);
    CHECK(o.context == nullptr);
    REQUIRE(o.errors.size() == 1);
    CHECK(o.errors[0].find("tls.certificates[0].key: ") == 0);
    CHECK(o.errors[0].find("locked.key.enc: passphrase-protected keys are not supported") !=
          std::string::npos);
}

TEST_CASE("unreadable files are errors with the reason; every one is reported", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec"});
    tls.certificates[0].cert = certs().path("missing.crt");
    tls.certificates[0].key = certs().path("missing.key");
    tls.client_ca = certs().path("missing-ca.crt");
    Outcome o = build(tls);
    CHECK(o.context == nullptr);
    INFO(joined(o.errors));
    REQUIRE(o.errors.size() == 3);
    CHECK(o.errors[0] == "tls.certificates[0].cert: " + certs().path("missing.crt") +
                             ": cannot read: No such file or directory");
    CHECK(o.errors[1] == "tls.certificates[0].key: " + certs().path("missing.key") +
                             ": cannot read: No such file or directory");
    CHECK(o.errors[2] == "tls.client_ca: " + certs().path("missing-ca.crt") +
                             ": cannot read: No such file or directory");
}

TEST_CASE("a file without a certificate or key is an error", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec"});
    tls.certificates[0].cert = writeFile("garbage.crt", "hello\n");
    tls.certificates[0].key = writeFile("empty.key", "");
    Outcome o = build(tls);
    CHECK(o.context == nullptr);
    INFO(joined(o.errors));
    REQUIRE(o.errors.size() == 2);
    CHECK(o.errors[0].find("garbage.crt: no certificate found") != std::string::npos);
    CHECK(o.errors[1].find("empty.key: no private key found") != std::string::npos);

    // The key where the certificate belongs: a damaged or wrong PEM block.
    tls.certificates[0].cert = certs().path("site-ec.key");
    tls.certificates[0].key = certs().path("site-ec.key");
    o = build(tls);
    CHECK(o.context == nullptr);
    CHECK(contains(o.errors, "tls.certificates[0].cert: " + certs().path("site-ec.key") + ": no certificate found"));
    // A directory is not a file.
    tls = listenerTls({"site-ec"});
    tls.certificates[0].cert = certs().dir().string();
    o = build(tls);
    CHECK(contains(o.errors, "cannot read: is a directory"));
}

TEST_CASE("expired and soon-expiring certificates are warnings, not errors", "[tls]") {
    Outcome o = build(listenerTls({"site-ec", "expired", "soon"}));
    INFO(joined(o.errors) << joined(o.warnings));
    CHECK(o.context != nullptr);
    CHECK(o.errors.empty());
    REQUIRE(o.warnings.size() == 2);
    CHECK(o.warnings[0].rfind("tls.certificates[1].cert: " + certs().path("expired.crt") +
                                  ": certificate CN=expired.test expired on ",
                              0) == 0);
    CHECK(o.warnings[1].rfind("tls.certificates[2].cert: " + certs().path("soon.crt") +
                                  ": certificate CN=soon.test expires in 3 days (",
                              0) == 0);
    // A certificate valid for 30 days gives no warning.
    o = build(listenerTls({"site-ec"}));
    CHECK(o.warnings.empty());
}

TEST_CASE("two certificates with the same names and key type are an error", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec", "other"});
    tls.certificates[1] = tls.certificates[0];
    Outcome o = build(tls);
    CHECK(o.context == nullptr);
    REQUIRE(o.errors.size() == 1);
    CHECK(o.errors[0].find("tls.certificates[1].cert: ") == 0);
    CHECK(o.errors[0].find("same key type (EC) as certificates[0]") != std::string::npos);
}

TEST_CASE("a name served by two certificate groups warns and the first keeps it", "[tls]") {
    // site-ec: site.test + www.site.test; www: www.site.test + api.site.test.
    Outcome o = build(listenerTls({"site-ec", "www"}));
    REQUIRE(o.context != nullptr);
    REQUIRE(o.warnings.size() == 1);
    CHECK(o.warnings[0] == "tls.certificates[1].cert: " + certs().path("www.crt") +
                               ": www.site.test is already served by certificates[0], which SNI "
                               "picks for it");
    CHECK(o.context->certificateFor("www.site.test") == 0);
    CHECK(o.context->certificateFor("api.site.test") == 1);
}

TEST_CASE("a cipher list that selects nothing is an error", "[tls]") {
    config::ListenerTls tls = listenerTls({"site-ec"});
    tls.ciphers = "NO-SUCH-CIPHER";
    Outcome o = build(tls);
    CHECK(o.context == nullptr);
    REQUIRE(o.errors.size() == 1);
    CHECK(o.errors[0].find("tls.ciphers: \"NO-SUCH-CIPHER\" selects no usable cipher") == 0);

    tls.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
    o = build(tls);
    CHECK(o.context != nullptr);
}

TEST_CASE("a listener without certificates is an error", "[tls]") {
    Outcome o = build(config::ListenerTls{});
    CHECK(o.context == nullptr);
    CHECK(contains(o.errors, "tls.certificates: at least one certificate is required"));
}
