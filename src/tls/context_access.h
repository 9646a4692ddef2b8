// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/tls: the builders behind ServerContext::build and ClientContext::build, which
// record structured problems (checkTlsFiles turns them into `portico -t` errors with the
// config's line and key path), and the OpenSSL callbacks that reach into the contexts.

#include <ctime>
#include <memory>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "portico/config/config.h"
#include "portico/tls/client_context.h"
#include "portico/tls/server_context.h"
#include "tls/certificate.h"

namespace portico::tls::detail {

struct ServerContextAccess {
    // Problems' keys start with "tls."; `now` decides what is expired.
    static std::shared_ptr<ServerContext> build(const config::ListenerTls& tls, Problems& problems,
                                                const ServerContext* previous, std::time_t now);

    static int onClientHello(SSL* ssl, int* alert, void* arg) noexcept;
    static int onServerName(SSL* ssl, int* alert, void* arg) noexcept;
    static int onAlpnSelect(SSL* ssl, const unsigned char** out, unsigned char* out_length,
                            const unsigned char* in, unsigned int in_length, void* arg) noexcept;
    static int onTicketKey(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                           EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) noexcept;
};

struct ClientContextAccess {
    static std::shared_ptr<ClientContext> build(const config::UpstreamTls& tls, Problems& problems);

    static int onNewSession(SSL* ssl, SSL_SESSION* session) noexcept;
};

}  // namespace portico::tls::detail
