// SPDX-License-Identifier: Apache-2.0
#include "portico/core/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "portico/core/base64.h"

namespace portico::core {

namespace {

// {"alg":"HS256","typ":"JWT"}
constexpr std::string_view kHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

std::string hmacSha256(std::string_view key, std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), digest, &length);
    return std::string(reinterpret_cast<const char*>(digest), length);
}

}  // namespace

std::string signHs256(std::string_view claims_json, std::string_view key) {
    std::string token(kHeader);
    token += '.';
    token += base64UrlEncode(claims_json);
    const std::string signature = hmacSha256(key, token);
    token += '.';
    token += base64UrlEncode(signature);
    return token;
}

const char* toString(JwtVerdict verdict) {
    switch (verdict) {
        case JwtVerdict::Ok: return "ok";
        case JwtVerdict::Malformed: return "malformed token";
        case JwtVerdict::WrongAlgorithm: return "algorithm is not HS256";
        case JwtVerdict::BadSignature: return "bad signature";
        case JwtVerdict::Expired: return "token expired";
        case JwtVerdict::WrongIssuer: return "wrong issuer";
    }
    return "?";
}

JwtVerdict verifyHs256(std::string_view token, std::string_view key, std::int64_t now_unix, std::string_view issuer,
                       JsonValue* claims) {
    const std::size_t first = token.find('.');
    const std::size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
        return JwtVerdict::Malformed;
    const auto header_json = base64UrlDecode(token.substr(0, first));
    const auto claims_json = base64UrlDecode(token.substr(first + 1, second - first - 1));
    const auto signature = base64UrlDecode(token.substr(second + 1));
    if (!header_json || !claims_json || !signature) return JwtVerdict::Malformed;
    const auto header = parseJson(*header_json);
    if (!header || !header->isObject()) return JwtVerdict::Malformed;
    // RFC 8725 3.1: the algorithm is ours to choose, never the token's ("none" is refused).
    const std::string* alg = header->findString("alg");
    if (!alg || *alg != "HS256") return JwtVerdict::WrongAlgorithm;
    const std::string expected = hmacSha256(key, token.substr(0, second));
    if (signature->size() != expected.size() || CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0)
        return JwtVerdict::BadSignature;
    auto parsed = parseJson(*claims_json);
    if (!parsed || !parsed->isObject()) return JwtVerdict::Malformed;
    if (const JsonValue* exp = parsed->find("exp")) {
        if (!exp->isNumber()) return JwtVerdict::Malformed;
        if (static_cast<double>(now_unix) >= exp->number) return JwtVerdict::Expired;
    }
    if (!issuer.empty()) {
        const std::string* iss = parsed->findString("iss");
        if (!iss || *iss != issuer) return JwtVerdict::WrongIssuer;
    }
    if (claims) *claims = std::move(*parsed);
    return JwtVerdict::Ok;
}

}  // namespace portico::core
