// SPDX-License-Identifier: Apache-2.0
#pragma once
// A unit test's loopback TCP server socket on a free port.

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include "portico/core/handles.h"

namespace portico::net::test {

// Bound to 127.0.0.1 on a port the kernel picks (written into `address`); listening with
// `backlog`, or only bound (a connect to it is refused) when negative.
inline core::UniqueFd boundSocket(sockaddr_in& address, int backlog) {
    core::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    if (backlog >= 0) REQUIRE(::listen(fd.get(), backlog) == 0);
    return fd;
}

}  // namespace portico::net::test
