// SPDX-License-Identifier: Apache-2.0
#pragma once
// Turning OpenSSL's error queue and verification results into text for logs.

#include <string>

#include "portico/tls/handles.h"

namespace portico::tls {

// The reasons of every error queued by OpenSSL on this thread, oldest first, joined with "; "
// ("wrong version number", "certificate verify failed"); "" when the queue is empty. Clears the
// queue (call it after every failed SSL_* call, or stale errors show up on the next one).
std::string lastErrorString();

// Empties this thread's error queue ahead of an SSL_read, SSL_write or SSL_do_handshake whose
// failure SSL_get_error is to classify (a stale entry would turn a WANT_READ into
// SSL_ERROR_SSL). It looks first and clears only when something is queued, as SSL_get_error
// looks the same way (ERR_peek_error): ERR_clear_error walks every slot of the queue, about
// 840 instructions against the look's 200, and the data path calls this twice per proxied
// HTTPS request and per relayed wss message.
void clearStaleErrors();

// Why a handshake on `ssl` failed, for the info log: lastErrorString(), plus the certificate
// verification result when that is what failed ("certificate verify failed (hostname
// mismatch)"), or `fallback` when OpenSSL queued nothing (e.g. the peer closed the connection).
// `ssl` may be nullptr. Clears the error queue.
std::string handshakeFailureString(const SSL* ssl, const char* fallback = "connection closed");

}  // namespace portico::tls
