// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/file_check.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "portico/config/loader.h"
#include "tls_fixture.h"

using namespace portico;
using namespace portico::tls;
using namespace portico::tls::testing;

namespace {

// Paths are relative to the configuration file, which "lives" in the certificates folder.
const char* const kBrokenConfig = R"(listeners:
  - address: 127.0.0.1:0
    tls:
      certificates:
        - {cert: site-ec.crt, key: site-ec.key}
        - {cert: other.crt, key: site-ec.key}
        - {cert: locked.crt, key: locked.key.enc}
        - {cert: expired.crt, key: expired.key}
        - {cert: soon.crt, key: soon.key}
        - {cert: gone.crt, key: gone.key}
      client_ca: missing-ca.crt
upstreams:
  app:
    servers: [127.0.0.1:9]
    tls: {ca: missing-ca.pem, verify: false}
routes:
  - path: /
    upstream: app
)";

const config::ConfigError* findError(const std::vector<config::ConfigError>& errors,
                                     const std::string& key) {
    for (const config::ConfigError& e : errors)
        if (e.key == key) return &e;
    return nullptr;
}

}  // namespace

TEST_CASE("checkTlsFiles reports every TLS file problem with line and key path", "[tls]") {
    const std::string file = certs().path("portico.yaml");
    config::LoadResult loaded = config::loadConfigString(kBrokenConfig, file);
    INFO((loaded.errors.empty() ? std::string() : loaded.errors[0].toString()));
    REQUIRE(loaded.ok());
    std::size_t loader_warnings = loaded.warnings.size();  // verify: false

    checkTlsFiles(*loaded.config, loaded.errors, loaded.warnings);
    std::string all;
    for (const auto& e : loaded.errors) all += e.toString() + "\n";
    INFO(all << joined(loaded.warnings));

    struct Expected {
        const char* key;
        int line;
        std::string message;
    };
    const Expected expected[] = {
        {"listeners[0].tls.certificates[1].key", 6,
         certs().path("site-ec.key") + ": the key does not match the certificate " +
             certs().path("other.crt")},
        {"listeners[0].tls.certificates[2].key", 7,
         certs().path("locked.key.enc") + ": passphrase-protected keys are not supported"},
        {"listeners[0].tls.certificates[5].cert", 10,
         certs().path("gone.crt") + ": cannot read: No such file or directory"},
        {"listeners[0].tls.certificates[5].key", 10,
         certs().path("gone.key") + ": cannot read: No such file or directory"},
        {"listeners[0].tls.client_ca", 2,
         certs().path("missing-ca.crt") + ": cannot read: No such file or directory"},
        {"upstreams.app.tls.ca", 13,
         certs().path("missing-ca.pem") + ": cannot read: No such file or directory"},
    };
    CHECK(loaded.errors.size() == std::size(expected));
    for (const Expected& x : expected) {
        INFO(x.key);
        const config::ConfigError* e = findError(loaded.errors, x.key);
        REQUIRE(e != nullptr);
        CHECK(e->file == file);
        CHECK(e->line == x.line);
        CHECK(e->column > 0);
        CHECK(e->message.rfind(x.message, 0) == 0);
        // The printed form is what `portico -t` shows.
        CHECK(e->toString().rfind(file + ":" + std::to_string(x.line) + ":", 0) == 0);
    }

    // Warnings: the loader's verify: false once (not repeated), then the expiry warnings.
    REQUIRE(loaded.warnings.size() == loader_warnings + 2);
    CHECK(loaded.warnings[loader_warnings].rfind(
              file + ":8:", 0) == 0);
    CHECK(loaded.warnings[loader_warnings].find(
              "listeners[0].tls.certificates[3].cert: " + certs().path("expired.crt") +
              ": certificate CN=expired.test expired on ") != std::string::npos);
    CHECK(loaded.warnings[loader_warnings + 1].rfind(file + ":9:", 0) == 0);
    CHECK(loaded.warnings[loader_warnings + 1].find("expires in 3 days") != std::string::npos);
    CHECK_FALSE(contains(std::vector<std::string>(loaded.warnings.begin() + static_cast<long>(loader_warnings),
                                                  loaded.warnings.end()),
                         "verify"));
}

TEST_CASE("checkTlsFiles is silent on a good configuration", "[tls]") {
    const char* const good = R"(listeners:
  - address: 127.0.0.1:0
    tls:
      certificates:
        - {cert: site-ec.crt, key: site-ec.key}
        - {cert: site-rsa.crt, key: site-rsa.key}
        - {cert: wild.crt, key: wild.key}
      client_ca: client-ca.crt
      ciphers: "ECDHE+AESGCM"
  - address: 127.0.0.1:0
upstreams:
  app:
    servers: [127.0.0.1:9]
    tls: {ca: ca.crt, sni: site.test}
  plain:
    servers: [127.0.0.1:10]
routes:
  - path: /plain
    upstream: plain
  - path: /
    upstream: app
)";
    config::LoadResult loaded = config::loadConfigString(good, certs().path("good.yaml"));
    REQUIRE(loaded.ok());
    checkTlsFiles(*loaded.config, loaded.errors, loaded.warnings);
    std::string all;
    for (const auto& e : loaded.errors) all += e.toString() + "\n";
    INFO(all << joined(loaded.warnings));
    CHECK(loaded.errors.empty());
    CHECK(loaded.warnings.empty());
}

TEST_CASE("checkTlsFiles points at `ciphers` when it lets TLS 1.2 clients pick a suite h2 forbids", "[tls]") {
    const char* const text = R"(listeners:
  - address: 127.0.0.1:0
    tls:
      certificates:
        - {cert: site-ec.crt, key: site-ec.key}
      alpn: [h2, http/1.1]
      ciphers: "ECDHE+AESGCM:AES128-SHA"
  - address: 127.0.0.1:0
    tls:
      certificates:
        - {cert: site-ec.crt, key: site-ec.key}
      ciphers:   NO-SUCH-CIPHER
routes:
  - path: /
    handler: health
)";
    const std::string file = certs().path("ciphers.yaml");
    config::LoadResult loaded = config::loadConfigString(text, file);
    REQUIRE(loaded.ok());
    checkTlsFiles(*loaded.config, loaded.errors, loaded.warnings);
    INFO(joined(loaded.warnings));
    REQUIRE(loaded.warnings.size() == 1);
    CHECK(loaded.warnings[0].rfind(file + ":7:16: listeners[0].tls.ciphers: lets TLS 1.2 clients pick 1 suite "
                                   "HTTP/2 must not use", 0) == 0);
    CHECK(loaded.warnings[0].find("AES128-SHA; over one, ALPN selects HTTP/1.1 instead of h2") != std::string::npos);
    // The cipher list's error points at the key too, not at the listener.
    REQUIRE(loaded.errors.size() == 1);
    CHECK(loaded.errors[0].toString().rfind(file + ":12:18: listeners[1].tls.ciphers: \"NO-SUCH-CIPHER\" selects "
                                            "no usable cipher", 0) == 0);
}
