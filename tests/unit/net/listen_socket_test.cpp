// SPDX-License-Identifier: Apache-2.0
// Listening sockets: what an accepted connection inherits, so that accepting costs no fcntl or
// setsockopt per connection.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/net/listen_socket.h"

using namespace portico;

TEST_CASE("a connection accepted with SOCK_NONBLOCK has TCP_NODELAY from the listening socket", "[net][listen_socket]") {
    config::HostPort address;
    address.host = "127.0.0.1";
    address.port = 0;
    std::uint16_t port = 0;
    std::string error;
    core::UniqueFd listener = net::openListenSocket(address, 0, port, error);
    REQUIRE(listener);
    REQUIRE(port != 0);

    core::UniqueFd client(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(client.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);

    core::UniqueFd accepted;
    for (int i = 0; i < 100 && !accepted; ++i) {
        accepted = core::UniqueFd(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!accepted) ::usleep(10000);
    }
    REQUIRE(accepted);
    int nodelay = 0;
    socklen_t length = sizeof nodelay;
    REQUIRE(::getsockopt(accepted.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &length) == 0);
    CHECK(nodelay != 0);
    CHECK((::fcntl(accepted.get(), F_GETFL) & O_NONBLOCK) != 0);
}
