// SPDX-License-Identifier: Apache-2.0
#pragma once
// HS256 JSON Web Tokens (RFC 7519, RFC 7515 with HMAC-SHA256, RFC 7518 3.2), as GRIP uses them:
// Portico signs a short-lived Grip-Sig for each bridge request (`websocket.http.sig_key`) and
// verifies the tokens publishers send (`publish.jwt_key`). OpenSSL's HMAC; nothing else.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "portico/core/json_reader.h"

namespace portico::core {

// A compact JWS "header.claims.signature" of `claims_json` (a JSON object) signed with `key`.
std::string signHs256(std::string_view claims_json, std::string_view key);

enum class JwtVerdict { Ok, Malformed, WrongAlgorithm, BadSignature, Expired, WrongIssuer };
const char* toString(JwtVerdict verdict);

// Checks `token`: three base64url parts, a header with "alg":"HS256", the signature (in constant
// time), "exp" when present against `now_unix` (seconds), and "iss" against `issuer` when that
// is not empty. The claims are stored in `claims` when given and the verdict is Ok.
JwtVerdict verifyHs256(std::string_view token, std::string_view key, std::int64_t now_unix, std::string_view issuer = {},
                       JsonValue* claims = nullptr);

}  // namespace portico::core
