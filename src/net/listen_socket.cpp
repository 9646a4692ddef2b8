// SPDX-License-Identifier: Apache-2.0
#include "portico/net/listen_socket.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace portico::net {

namespace {

// A socket bound to `address` (`port` when non-zero), with SO_REUSEPORT when `share_port`.
core::UniqueFd bindSocket(const config::HostPort& address, std::uint16_t port, bool share_port, std::string& error) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (address.host.empty()) hints.ai_family = AF_INET;  // "*": every IPv4 address, as nginx's "listen 80"
    std::string service = std::to_string(port ? port : address.port);
    addrinfo* result = nullptr;
    int rc = getaddrinfo(address.host.empty() ? nullptr : address.host.c_str(), service.c_str(), &hints, &result);
    if (rc != 0 || !result) {
        error = std::string("cannot resolve ") + address.toString() + ": " + gai_strerror(rc);
        return {};
    }
    core::UniqueFd fd(::socket(result->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        error = std::string("socket: ") + strerror(errno);
        freeaddrinfo(result);
        return {};
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (share_port) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (result->ai_family == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd.get(), result->ai_addr, result->ai_addrlen) != 0) {
        const int bind_errno = errno;
        error = "bind " + address.toString() + ": " + strerror(bind_errno);
        freeaddrinfo(result);
        errno = bind_errno;  // for portFree
        return {};
    }
    freeaddrinfo(result);
    return fd;
}

}  // namespace

core::UniqueFd openListenSocket(const config::HostPort& address, std::uint16_t port, std::uint16_t& bound_port,
                                std::string& error) {
    core::UniqueFd fd = bindSocket(address, port, true, error);
    if (!fd) return {};
    // Requests and WebSocket messages are small and latency-bound: never wait for Nagle. Set on
    // the listening socket, it is inherited by every accepted one (no setsockopt per connection).
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::listen(fd.get(), 4096) != 0) {
        error = "listen " + address.toString() + ": " + strerror(errno);
        return {};
    }
    bound_port = boundPort(fd.get());
    return fd;
}

bool portFree(const config::HostPort& address, std::string& error) {
    // Without SO_REUSEPORT the bind fails (EADDRINUSE) where any socket listens; SO_REUSEADDR
    // still lets it past connections of an earlier process left in TIME_WAIT.
    if (bindSocket(address, 0, false, error)) return true;
    if (errno == EADDRINUSE) error += " (another process listens there)";
    return false;
}

bool listensHere(std::uint16_t port) {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return false;  // then portFree decides, as for any port
    bool found = false;
    // A worker may close one of these meanwhile (its number then fails, or is an accepted
    // socket's: not listening); only this thread opens listening sockets.
    while (dirent* entry = readdir(dir)) {
        const int fd = std::atoi(entry->d_name);
        if (entry->d_name[0] == '.' || fd == dirfd(dir)) continue;
        int listening = 0;
        socklen_t length = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && listening &&
            boundPort(fd) == port) {
            found = true;
            break;
        }
    }
    closedir(dir);
    return found;
}

std::uint16_t boundPort(int fd) {
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) return 0;
    return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

std::vector<std::string> listenerKeys(const std::vector<config::Listener>& listeners) {
    std::vector<std::string> keys;
    keys.reserve(listeners.size());
    std::map<std::string, unsigned> seen;
    for (const config::Listener& listener : listeners) {
        std::string key = listener.address.toString();
        const unsigned n = ++seen[key];
        if (n > 1) key += "#" + std::to_string(n);
        keys.push_back(std::move(key));
    }
    return keys;
}

}  // namespace portico::net
