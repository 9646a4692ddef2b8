// SPDX-License-Identifier: Apache-2.0
#pragma once
// Listening sockets. Each worker gets its own socket per listener (SO_REUSEPORT), so the kernel
// spreads connections over workers without a shared accept lock.

#include <cstdint>
#include <string>
#include <vector>

#include "portico/config/config.h"
#include "portico/core/handles.h"

namespace portico::net {

// Opens, binds and listens on `address` ("" host = every IPv4 address); `port` overrides the
// configured port when non-zero (so that workers after the first share a port chosen by the
// kernel for port 0). Returns an invalid fd and sets `error` on failure; `bound_port` receives
// the port actually bound.
core::UniqueFd openListenSocket(const config::HostPort& address, std::uint16_t port, std::uint16_t& bound_port,
                                std::string& error);

// Whether no socket listens on `address` yet. SO_REUSEPORT would let openListenSocket share the
// port with another process of the same user (a second portico, say) that already listens
// there, each then taking part of the connections; checked before a port Portico does not hold
// itself is opened. Sets `error` ("bind ...: Address already in use ...") when not.
bool portFree(const config::HostPort& address, std::string& error);

// Whether a socket of this process listens on `port` (any address): a listener that a reload
// re-adds while a worker still holds the sockets the reload before removed. Read from
// /proc/self/fd when asked, not remembered: a port this process let go of may since have been
// taken by another process, which portFree must then see.
bool listensHere(std::uint16_t port);

// The local port a bound socket has (the kernel's choice for port 0); 0 on error.
std::uint16_t boundPort(int fd);

// What identifies each of `listeners` across reloads: its address ("127.0.0.1:8080"), and for
// the second and later listeners on one port-0 address (the only addresses the configuration may
// repeat: each gets a port of its own) "#2", "#3", ... after it, so that a reload keeps, opens and
// closes each of them, not only the first.
std::vector<std::string> listenerKeys(const std::vector<config::Listener>& listeners);

}  // namespace portico::net
