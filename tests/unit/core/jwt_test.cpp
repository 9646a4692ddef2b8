// SPDX-License-Identifier: Apache-2.0
#include "portico/core/base64.h"
#include "portico/core/jwt.h"

#include <catch2/catch.hpp>

#include <string>

using namespace portico::core;

namespace {
// Made with Python's hmac and base64 (an independent implementation).
constexpr const char* kToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJwb3J0aWNvIiwiZXhwIjoyMDAwMDAwMDAwfQ."
    "puFHkoQPH-eoQO6GJ0tfrGCfDspNClNSAmXAQohBEhQ";
}  // namespace

TEST_CASE("jwt: signing matches an independent HS256 implementation", "[core][jwt]") {
    CHECK(signHs256(R"({"iss":"portico","exp":2000000000})", "secret") == kToken);
}

TEST_CASE("jwt: verification checks signature, expiry and issuer", "[core][jwt]") {
    JsonValue claims;
    CHECK(verifyHs256(kToken, "secret", 1000, "portico", &claims) == JwtVerdict::Ok);
    CHECK(*claims.findString("iss") == "portico");
    CHECK(verifyHs256(kToken, "secret", 1000) == JwtVerdict::Ok);
    CHECK(verifyHs256(kToken, "wrong", 1000) == JwtVerdict::BadSignature);
    CHECK(verifyHs256(kToken, "secret", 2000000000) == JwtVerdict::Expired);
    CHECK(verifyHs256(kToken, "secret", 1000, "someone") == JwtVerdict::WrongIssuer);
    std::string tampered = kToken;
    tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
    CHECK(verifyHs256(tampered, "secret", 1000) == JwtVerdict::BadSignature);
    // The same signature spelt with other leftover bits is not the same token.
    std::string respelt = kToken;
    respelt.back() = 'R';
    CHECK(verifyHs256(respelt, "secret", 1000) == JwtVerdict::Malformed);
}

TEST_CASE("jwt: malformed tokens and alg none are refused", "[core][jwt]") {
    CHECK(verifyHs256("", "k", 0) == JwtVerdict::Malformed);
    CHECK(verifyHs256("a.b", "k", 0) == JwtVerdict::Malformed);
    CHECK(verifyHs256("a.b.c.d", "k", 0) == JwtVerdict::Malformed);
    CHECK(verifyHs256("!!.e30.", "k", 0) == JwtVerdict::Malformed);
    // {"alg":"none"} . {} . (no signature)
    CHECK(verifyHs256(base64UrlEncode(R"({"alg":"none"})") + ".e30.", "k", 0) == JwtVerdict::WrongAlgorithm);
}

TEST_CASE("jwt: base64url round-trips every length", "[core][jwt]") {
    std::string data;
    for (int i = 0; i < 40; ++i) {
        CHECK(base64UrlDecode(base64UrlEncode(data)) == data);
        data += static_cast<char>(i * 37);
    }
    CHECK(base64UrlEncode("\xfb\xff") == "-_8");
    CHECK_FALSE(base64UrlDecode("a"));
    CHECK_FALSE(base64UrlDecode("ab=="));
    CHECK_FALSE(base64UrlDecode("-_9"));  // non-zero leftover bits
}

TEST_CASE("base64: the standard alphabet with padding, strictly", "[core][base64]") {
    CHECK(base64Decode("") == std::string());
    CHECK(base64Decode("YQ==") == std::string("a"));
    CHECK(base64Decode("YWI=") == std::string("ab"));
    CHECK(base64Decode("+/8=") == std::string("\xfb\xff"));
    CHECK_FALSE(base64Decode("YQ"));    // padding required
    CHECK_FALSE(base64Decode("Y==="));
    CHECK_FALSE(base64Decode("YR=="));  // non-zero leftover bits
    CHECK_FALSE(base64Decode("-_8="));  // the url alphabet
    CHECK_FALSE(base64Decode("YQ=a"));
}
