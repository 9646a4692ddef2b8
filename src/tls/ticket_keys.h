// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/tls: the session-ticket key ring of one listener (RFC 5077 4, RFC 8446 4.6.1).
// One ring is shared by every worker thread, so a ticket issued by one worker resumes on any
// other; the current key encrypts, the previous one still decrypts, and a new key takes over
// every kRotation. A reload hands the ring to the new ServerContext, so tickets survive it.

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>

namespace portico::tls::detail {

struct TicketKey {
    std::array<unsigned char, 16> name{};      // sent in clear at the start of the ticket
    std::array<unsigned char, 32> aes_key{};   // AES-256-CBC
    std::array<unsigned char, 32> hmac_key{};  // HMAC-SHA256
    std::chrono::system_clock::time_point created;
};

class TicketKeyRing {
public:
    using Clock = std::chrono::system_clock;
    static constexpr std::chrono::hours kRotation{12};  // a new key encrypts after this long
    static constexpr std::size_t kKeys = 2;  // current + previous: a ticket stays decryptable
                                             // for 12 to 24 hours, far beyond the 2-hour
                                             // session lifetime

    // Makes the first key. `ok()` is false when the random generator failed.
    explicit TicketKeyRing(Clock::time_point now = Clock::now());

    bool ok() const;
    // Copies the key that encrypts new tickets into `out`, rotating first when the current one
    // is kRotation old. Returns false when no key could be made (no randomness).
    bool encryptionKey(TicketKey& out, Clock::time_point now = Clock::now());
    // Finds the key named `name` (16 bytes). Returns 0 when it is unknown or retired (the
    // client gets a full handshake), 1 when it is the current key, 2 when it is an older one
    // (the ticket is accepted and a fresh one issued), as the ticket callback expects.
    int decryptionKey(const unsigned char* name, TicketKey& out, Clock::time_point now = Clock::now());
    std::size_t size() const;

private:
    void rotateIfDue(Clock::time_point now);  // with mutex_ held
    bool addKey(Clock::time_point now);       // with mutex_ held

    mutable std::mutex mutex_;
    std::deque<TicketKey> keys_;  // front is current
};

}  // namespace portico::tls::detail
