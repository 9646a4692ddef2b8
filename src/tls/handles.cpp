// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/handles.h"

#include <openssl/ssl.h>

namespace portico::tls {

void SslDeleter::operator()(SSL* p) const {
    if (p == nullptr) return;
    // OpenSSL forgets the session of an SSL freed after its handshake unless it sent
    // close_notify (SSL_free -> ssl_clear_bad_session): every connection that ends with a reset
    // or a timeout, and every pooled upstream connection we simply drop, would cost the next
    // client a full handshake. Since TLS 1.1 (RFC 4346 7.2.1) a connection closed without
    // close_notify may still be resumed; a fatal alert still removes the session (OpenSSL does
    // that when it sends or receives one). nginx does the same with a quiet shutdown.
    if (SSL_is_init_finished(p)) SSL_set_shutdown(p, SSL_get_shutdown(p) | SSL_SENT_SHUTDOWN);
    SSL_free(p);
}

void SslCtxDeleter::operator()(SSL_CTX* p) const { SSL_CTX_free(p); }

}  // namespace portico::tls
