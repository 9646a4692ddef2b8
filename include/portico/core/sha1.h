// SPDX-License-Identifier: Apache-2.0
#pragma once
// SHA-1 (FIPS 180-4) of a short byte string, for the WebSocket handshake's accept value (RFC 6455
// 4.2.2) and Redis script digests: no secret is hashed, and the digest is not a security check.

#include <array>
#include <cstddef>
#include <string_view>

namespace portico::core {

inline constexpr std::size_t kSha1Length = 20;
using Sha1Digest = std::array<unsigned char, kSha1Length>;

// The digest of `data`. No allocation, no lookup: callable once per WebSocket upgrade.
Sha1Digest sha1(std::string_view data);

}  // namespace portico::core
