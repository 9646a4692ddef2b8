// SPDX-License-Identifier: Apache-2.0
#pragma once
// A unit test's loopback TCP server socket on a free port, and a loop runner for its events.

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include <event2/event.h>
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

// Runs `base` until `done`, at most `bound` (a bound for a broken build, not a timing claim);
// returns done().
template <class Done>
bool runLoopUntil(event_base* base, Done done, std::chrono::seconds bound = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

}  // namespace portico::net::test
