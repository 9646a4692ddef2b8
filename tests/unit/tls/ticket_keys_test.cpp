// SPDX-License-Identifier: Apache-2.0
#include "tls/ticket_keys.h"

#include <catch2/catch.hpp>
#include <chrono>

using portico::tls::detail::TicketKey;
using portico::tls::detail::TicketKeyRing;
using namespace std::chrono_literals;

TEST_CASE("ticket keys: the current key encrypts until it is 12 hours old", "[tls]") {
    const auto t0 = TicketKeyRing::Clock::time_point{} + 1000h;
    TicketKeyRing ring(t0);
    REQUIRE(ring.ok());
    TicketKey first;
    TicketKey again;
    REQUIRE(ring.encryptionKey(first, t0));
    REQUIRE(ring.encryptionKey(again, t0 + 11h));
    CHECK(first.name == again.name);
    CHECK(first.aes_key == again.aes_key);
    CHECK(first.hmac_key != first.aes_key);

    TicketKey found;
    CHECK(ring.decryptionKey(first.name.data(), found, t0 + 11h) == 1);
    CHECK(found.hmac_key == first.hmac_key);

    // Rotation: a new key encrypts; the old one still decrypts, as "renew the ticket" (2).
    TicketKey second;
    REQUIRE(ring.encryptionKey(second, t0 + 12h));
    CHECK(second.name != first.name);
    CHECK(second.aes_key != first.aes_key);
    CHECK(ring.decryptionKey(first.name.data(), found, t0 + 12h) == 2);
    CHECK(ring.decryptionKey(second.name.data(), found, t0 + 12h) == 1);
    CHECK(ring.size() == 2);

    // The next rotation retires the first key.
    TicketKey third;
    REQUIRE(ring.encryptionKey(third, t0 + 24h));
    CHECK(ring.decryptionKey(first.name.data(), found, t0 + 24h) == 0);
    CHECK(ring.decryptionKey(second.name.data(), found, t0 + 24h) == 2);
    CHECK(ring.size() == 2);
}

TEST_CASE("ticket keys: after a long quiet spell old keys do not linger", "[tls]") {
    const auto t0 = TicketKeyRing::Clock::time_point{} + 1000h;
    TicketKeyRing ring(t0);
    TicketKey first;
    REQUIRE(ring.encryptionKey(first, t0));
    TicketKey found;
    // Three days later the first key is far past any ticket's life: unknown, full handshake.
    CHECK(ring.decryptionKey(first.name.data(), found, t0 + 72h) == 0);
    CHECK(ring.size() == 1);
}

TEST_CASE("ticket keys: an unknown name is not found", "[tls]") {
    TicketKeyRing ring;
    unsigned char name[16] = {0};
    TicketKey found;
    CHECK(ring.decryptionKey(name, found) == 0);
}
