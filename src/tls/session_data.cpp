// SPDX-License-Identifier: Apache-2.0
#include "tls/session_data.h"

#include <new>

#include <openssl/crypto.h>

#include "portico/tls/key_log.h"

namespace portico::tls::detail {
namespace {

// CRYPTO_EX_free: called by SSL_free for every SSL, with our pointer or nullptr.
void freeSessionData(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/,
                     long /*argl*/, void* /*argp*/) {
    delete static_cast<SessionData*>(ptr);
}

// CRYPTO_EX_dup: SSL_dup copies ex_data pointers; give the copy its own SessionData so that
// each SSL frees only what it owns.
int dupSessionData(CRYPTO_EX_DATA* /*to*/, const CRYPTO_EX_DATA* /*from*/, void** from_d,
                   int /*idx*/, long /*argl*/, void* /*argp*/) {
    auto* slot = from_d;
    if (slot == nullptr || *slot == nullptr) return 1;
    auto* copy = new (std::nothrow) SessionData(*static_cast<SessionData*>(*slot));
    *slot = copy;
    return copy != nullptr ? 1 : 0;
}

int sessionDataIndex() {
    // Thread-safe static initialisation: registered once per process, never released.
    static const int index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, nullptr, nullptr,
                                                     dupSessionData, freeSessionData);
    return index;
}

}  // namespace

bool attachSessionData(SSL* ssl, std::unique_ptr<SessionData> data) {
    int index = sessionDataIndex();
    if (ssl == nullptr || index < 0) return false;
    if (SSL_set_ex_data(ssl, index, data.get()) != 1) return false;
    data.release();  // SSL_free deletes it through freeSessionData from now on
    return true;
}

SessionData* sessionData(const SSL* ssl) {
    int index = sessionDataIndex();
    if (ssl == nullptr || index < 0) return nullptr;
    return static_cast<SessionData*>(SSL_get_ex_data(ssl, index));
}

void onKeyLogLine(const SSL* ssl, const char* line) noexcept {
    const SessionData* data = sessionData(ssl);
    if (data != nullptr && data->keylog != nullptr && line != nullptr) data->keylog->write(line);
}

void enableKeyLog(SSL_CTX* ctx) noexcept { SSL_CTX_set_keylog_callback(ctx, onKeyLogLine); }

}  // namespace portico::tls::detail
