// SPDX-License-Identifier: Apache-2.0
// core::sha1: the FIPS 180-4 / RFC 3174 test vectors, and RFC 6455's handshake example.

#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "portico/core/base64.h"
#include "portico/core/sha1.h"

using portico::core::sha1;

namespace {
std::string hex(const portico::core::Sha1Digest& d) {
    static const char* const kDigits = "0123456789abcdef";
    std::string out;
    for (unsigned char b : d) {
        out.push_back(kDigits[b >> 4]);
        out.push_back(kDigits[b & 15]);
    }
    return out;
}
}  // namespace

TEST_CASE("sha1 gives the RFC 3174 digests of one and two blocks and of nothing", "[core][sha1]") {
    CHECK(hex(sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    CHECK(hex(sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(hex(sha1(std::string(1000000, 'a'))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST_CASE("sha1 of RFC 6455's sample key and GUID is the example's accept value", "[core][sha1]") {
    // RFC 6455 1.3: "dGhlIHNhbXBsZSBub25jZQ==" ++ GUID hashes to what base64 spells
    // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    const auto d = sha1("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    CHECK(portico::core::base64Encode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size())) ==
          "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("sha1 gives the same digest on another thread", "[core][sha1]") {
    portico::core::Sha1Digest from_thread{};
    std::thread([&] { from_thread = sha1("abc"); }).join();
    CHECK(from_thread == sha1("abc"));
}
