// SPDX-License-Identifier: Apache-2.0
#include "tls/ticket_keys.h"

#include <cstring>

#include <openssl/crypto.h>
#include <openssl/rand.h>

namespace portico::tls::detail {

TicketKeyRing::TicketKeyRing(Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mutex_);
    addKey(now);
}

bool TicketKeyRing::ok() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return !keys_.empty();
}

std::size_t TicketKeyRing::size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return keys_.size();
}

bool TicketKeyRing::addKey(Clock::time_point now) {
    TicketKey key;
    // The name only has to be unique; the keys are secrets, from the private generator.
    if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1 ||
        RAND_priv_bytes(key.aes_key.data(), static_cast<int>(key.aes_key.size())) != 1 ||
        RAND_priv_bytes(key.hmac_key.data(), static_cast<int>(key.hmac_key.size())) != 1) {
        OPENSSL_cleanse(&key, sizeof key);
        return false;
    }
    key.created = now;
    keys_.push_front(key);
    OPENSSL_cleanse(&key, sizeof key);
    while (keys_.size() > kKeys) {
        OPENSSL_cleanse(&keys_.back(), sizeof(TicketKey));
        keys_.pop_back();
    }
    return true;
}

void TicketKeyRing::rotateIfDue(Clock::time_point now) {
    if (!keys_.empty() && now - keys_.front().created < kRotation) return;
    addKey(now);
    // After a long quiet spell the previous key is older than a ticket may live: drop it rather
    // than let it decrypt tickets for another kRotation.
    while (keys_.size() > 1 && now - keys_.back().created >= kRotation * kKeys) {
        OPENSSL_cleanse(&keys_.back(), sizeof(TicketKey));
        keys_.pop_back();
    }
}

bool TicketKeyRing::encryptionKey(TicketKey& out, Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mutex_);
    rotateIfDue(now);
    if (keys_.empty()) return false;
    out = keys_.front();
    return true;
}

int TicketKeyRing::decryptionKey(const unsigned char* name, TicketKey& out, Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mutex_);
    rotateIfDue(now);
    for (std::size_t i = 0; i < keys_.size(); ++i) {
        if (std::memcmp(keys_[i].name.data(), name, keys_[i].name.size()) != 0) continue;
        out = keys_[i];
        return i == 0 ? 1 : 2;
    }
    return 0;
}

}  // namespace portico::tls::detail
