// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/tls: reading PEM certificates and keys with precise problems, the names a
// certificate serves, and its expiry. Shared by ServerContext::build, ClientContext::build and
// checkTlsFiles so that `portico -t` and start-up report the same thing in the same words.

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "portico/config/config.h"

namespace portico::tls::detail {

struct X509Deleter { void operator()(X509* p) const { X509_free(p); } };
struct EvpPkeyDeleter { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// One thing wrong (or worth a warning) with the TLS files or settings.
struct Problem {
    bool warning = false;
    std::string key;       // path relative to the listener or upstream: "tls.certificates[1].key"
    int certificate = -1;  // index into ListenerTls::certificates it concerns, or -1
    std::string message;   // names the file first: "/etc/x.key: passphrase-protected keys ..."
};

class Problems {
public:
    void error(std::string key, std::string message, int certificate = -1);
    void warning(std::string key, std::string message, int certificate = -1);
    bool hasErrors() const { return errors_ > 0; }
    const std::vector<Problem>& list() const { return list_; }
    // Appends "KEY: MESSAGE" to `errors` or `warnings`.
    void flatten(std::vector<std::string>& errors, std::vector<std::string>& warnings) const;

private:
    std::vector<Problem> list_;
    std::size_t errors_ = 0;
};

// A certificate chain and its private key, checked to belong together.
struct LoadedCertificate {
    X509Ptr leaf;
    std::vector<X509Ptr> chain;      // the certificates after the leaf in the file, in order
    EvpPkeyPtr key;
    std::vector<std::string> names;  // DNS names from the SANs (the CN when there are none),
                                     // lower case; "*.example.com" for a wildcard
    std::string key_type;            // "RSA", "EC", "ED25519", ... for messages
};

constexpr std::size_t kMaxPemFileBytes = 4 * 1024 * 1024;  // larger files are refused: a PEM
                                                           // bundle is never that big
constexpr int kExpiryWarningDays = 14;  // issue 4: warn this long before a certificate expires

// Reads `files` (certificates[index] of the block whose key path is `prefix`, e.g. "tls").
// Errors: unreadable file, no certificate, no key, passphrase-protected key, key not matching
// the certificate. Warnings: expired, expiring within kExpiryWarningDays, not yet valid.
// Returns false (with errors added) when the pair cannot be used.
bool loadCertificate(const config::CertificateFiles& files, const std::string& prefix,
                     std::size_t index, std::time_t now, Problems& problems,
                     LoadedCertificate& out);

// Reads a PEM file of CA certificates (client_ca, an upstream's ca) into `out`. An unreadable
// file or one without a certificate is an error at `key`. Returns false then.
bool loadCaFile(const std::string& path, const std::string& key, Problems& problems,
                std::vector<X509Ptr>& out);

// Adds a warning at `key` when `cert` expired, expires within kExpiryWarningDays or is not yet
// valid at `now`; `what` starts the message ("/etc/site.crt").
void checkValidity(const X509* cert, std::time_t now, const std::string& key,
                   const std::string& what, int certificate, Problems& problems);

// The names a certificate serves for SNI (see LoadedCertificate::names).
std::vector<std::string> serverNames(const X509* cert);

// "CN=site.test" (or the whole subject in one line) for messages.
std::string subjectString(const X509* cert);

// True when `host` is an IPv4 or IPv6 literal (brackets allowed): SNI never carries those
// (RFC 6066 3) and they are verified against iPAddress SANs.
bool isIpLiteral(std::string_view host);

}  // namespace portico::tls::detail
