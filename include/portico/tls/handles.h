// SPDX-License-Identifier: Apache-2.0
#pragma once
// RAII owners for the OpenSSL handles that cross folder boundaries, without including OpenSSL:
// the socket layer owns each connection's SSL through SslPtr.

#include <memory>

// OpenSSL's own spelling (openssl/types.h); repeating an identical typedef is allowed.
struct ssl_st;
struct ssl_ctx_st;
typedef struct ssl_st SSL;          // NOLINT(modernize-use-using): must match OpenSSL's typedef
typedef struct ssl_ctx_st SSL_CTX;  // NOLINT(modernize-use-using)

namespace portico::tls {

// SSL_free; a session whose handshake finished stays resumable even without close_notify.
struct SslDeleter { void operator()(SSL* p) const; };
struct SslCtxDeleter { void operator()(SSL_CTX* p) const; };  // SSL_CTX_free

using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

}  // namespace portico::tls
