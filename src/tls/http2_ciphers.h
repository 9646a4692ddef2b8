// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/tls: which TLS 1.2 cipher suites HTTP/2 may run over (RFC 9113 9.2.2), for the
// ALPN choice (h2 only over an acceptable suite) and for the warning about a `ciphers:` list that
// lets TLS 1.2 clients pick a forbidden one.

#include <string>
#include <vector>

#include <openssl/ssl.h>

namespace portico::tls::detail {

// True when HTTP/2 may run over `cipher`: every TLS 1.3 suite, and a TLS 1.2 suite with an
// ephemeral key exchange (ECDHE or DHE, also with PSK), certificate or PSK authentication and an
// AEAD cipher (GCM, CCM, ChaCha20-Poly1305). That is the rule Appendix A's list was built by
// (RFC 9113 9.2.2); for every suite OpenSSL 3.0 knows it gives the list's answer, except that it
// also refuses PSK-CHACHA20-POLY1305 and RSA-PSK-CHACHA20-POLY1305 (not ephemeral; defined after
// the list was written). Null: false.
bool http2Allows(const SSL_CIPHER* cipher);

// The names of the TLS 1.2 suites `ctx` enables that http2Allows refuses, in the context's order.
std::vector<std::string> http2ForbiddenSuites(const SSL_CTX* ctx);

}  // namespace portico::tls::detail
