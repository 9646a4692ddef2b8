// SPDX-License-Identifier: Apache-2.0
#include "tls/http2_ciphers.h"

#include <openssl/obj_mac.h>

namespace portico::tls::detail {

bool http2Allows(const SSL_CIPHER* cipher) {
    if (cipher == nullptr) return false;
    const int kx = SSL_CIPHER_get_kx_nid(cipher);
    if (kx == NID_kx_any) return true;  // TLS 1.3: the suite names no key exchange, all are AEAD
    const bool ephemeral =
        kx == NID_kx_ecdhe || kx == NID_kx_dhe || kx == NID_kx_ecdhe_psk || kx == NID_kx_dhe_psk;
    // Anonymous (ADH, AECDH) suites are forbidden too, AEAD or not.
    return ephemeral && SSL_CIPHER_get_auth_nid(cipher) != NID_auth_null &&
           SSL_CIPHER_is_aead(cipher) == 1;
}

std::vector<std::string> http2ForbiddenSuites(const SSL_CTX* ctx) {
    std::vector<std::string> forbidden;
    STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; ciphers != nullptr && i < sk_SSL_CIPHER_num(ciphers); ++i) {
        const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(ciphers, i);
        if (!http2Allows(cipher)) forbidden.emplace_back(SSL_CIPHER_get_name(cipher));
    }
    return forbidden;
}

}  // namespace portico::tls::detail
