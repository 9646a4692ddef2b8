// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/errors.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace portico::tls {

std::string lastErrorString() {
    std::string text;
    // Bounded: the queue is small (16 entries in OpenSSL), but never trust a loop on it.
    for (int i = 0; i < 32; ++i) {
        unsigned long code = ERR_get_error();
        if (code == 0) break;
        const char* reason = ERR_reason_error_string(code);
        std::string part;
        if (reason != nullptr) {
            part = reason;
        } else {
            char buffer[256];
            ERR_error_string_n(code, buffer, sizeof buffer);
            part = buffer;
        }
        if (!text.empty()) {
            if (text.find(part) != std::string::npos) continue;  // the same reason again
            text += "; ";
        }
        text += part;
    }
    ERR_clear_error();
    return text;
}

void clearStaleErrors() {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

std::string handshakeFailureString(const SSL* ssl, const char* fallback) {
    std::string text = lastErrorString();
    if (ssl != nullptr) {
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
            std::string detail = X509_verify_cert_error_string(verify);
            text = text.empty() ? "certificate verify failed (" + detail + ")"
                                : text + " (" + detail + ")";
        }
    }
    if (text.empty() && fallback != nullptr) text = fallback;
    return text;
}

}  // namespace portico::tls
