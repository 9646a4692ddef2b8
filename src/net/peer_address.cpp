// SPDX-License-Identifier: Apache-2.0
#include "portico/net/peer_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace portico::net {

namespace {

// Dotted decimal, as inet_ntop writes it but without its sprintf (which was the largest part of
// the user-space cost of accepting a connection).
std::string ipv4Text(const in_addr& address) {
    const auto* octets = reinterpret_cast<const unsigned char*>(&address.s_addr);  // network order
    char text[INET_ADDRSTRLEN];  // 15 characters at most: within std::string's own buffer
    std::size_t n = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        const unsigned octet = octets[i];
        if (octet >= 100) text[n++] = static_cast<char>('0' + octet / 100);
        if (octet >= 10) text[n++] = static_cast<char>('0' + octet / 10 % 10);
        text[n++] = static_cast<char>('0' + octet % 10);
        text[n++] = '.';
    }
    return std::string(text, n - 1);  // without the last dot
}

}  // namespace

std::string peerAddress(const sockaddr* peer, std::uint32_t& hash) {
    char text[INET6_ADDRSTRLEN] = "-";
    hash = 0;
    if (peer->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(peer);
        hash = ntohl(in->sin_addr.s_addr) * 2654435761u;
        return ipv4Text(in->sin_addr);
    }
    if (peer->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(peer);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        for (unsigned char b : in6->sin6_addr.s6_addr) hash = hash * 31 + b;
    }
    return text;
}

}  // namespace portico::net
