// SPDX-License-Identifier: Apache-2.0
#pragma once
// A socket address as the access log and X-Forwarded-For write it.

#include <cstdint>
#include <string>

#include <sys/socket.h>

namespace portico::net {

// "a.b.c.d" or the IPv6 text ("-" for another family); `hash` is set to the address's hash
// (the balancer's client hash; 0 for another family).
std::string peerAddress(const sockaddr* peer, std::uint32_t& hash);

}  // namespace portico::net
