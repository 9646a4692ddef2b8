// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/tls: what an SSL created by our contexts carries in its ex_data. The OpenSSL
// callbacks (SNI, ALPN, tickets, client session cache) get only the SSL; through this they reach
// the ServerContext or ClientContext that made it. Holding a shared_ptr also keeps that context
// and its callback data alive for as long as the connection lives, so a reload can drop the old
// contexts while open connections keep their certificates (issue 4).

#include <memory>
#include <string>

#include <openssl/ssl.h>

namespace portico::tls {
class ServerContext;
class ClientContext;
class KeyLog;
}  // namespace portico::tls

namespace portico::tls::detail {

struct SessionData {
    std::shared_ptr<const ServerContext> server;
    std::shared_ptr<const ClientContext> client;
    std::string cache_key;  // client: where a session for resumption is stored
    const KeyLog* keylog = nullptr;  // tls.keylog_file, owned by `server` or `client`; null: off
};

// Attaches `data` to `ssl`; SSL_free deletes it. Returns false (and deletes it) on failure.
bool attachSessionData(SSL* ssl, std::unique_ptr<SessionData> data);
// The data attached to `ssl`, or nullptr (an SSL made elsewhere).
SessionData* sessionData(const SSL* ssl);

// SSL_CTX_set_keylog_callback's callback for contexts with a key log: appends `line` to the
// session's KeyLog. Set only when a key log is configured, so it costs nothing otherwise.
void onKeyLogLine(const SSL* ssl, const char* line) noexcept;
// Sets onKeyLogLine on `ctx`.
void enableKeyLog(SSL_CTX* ctx) noexcept;

}  // namespace portico::tls::detail
