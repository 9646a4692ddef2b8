#include "portico/tls/handles.h"

#include <openssl/ssl.h>

namespace portico::tls {

void SslDeleter::operator()(SSL* p) const { SSL_free(p); }
void SslCtxDeleter::operator()(SSL_CTX* p) const { SSL_CTX_free(p); }

}  // namespace portico::tls
