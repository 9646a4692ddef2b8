// SPDX-License-Identifier: Apache-2.0
#pragma once
// The open-file limit (RLIMIT_NOFILE) against what limits.max_connections may need: checked once
// at start-up, so that running out of descriptors is a warning in the log and not a surprise
// under load.

#include <cstdint>
#include <optional>
#include <string>

#include "portico/config/config.h"

namespace portico::net {

// Descriptors that are not connections: stdio, the access log, and per worker its epoll
// instance, its wake-up eventfd and the listeners' sockets (counted separately below).
constexpr std::uint64_t kFdReserve = 32;

// Raises the soft RLIMIT_NOFILE to the hard limit (as nginx's worker_rlimit_nofile would, with
// the most the process may take). Returns the soft limit in force afterwards (RLIM_INFINITY as
// UINT64_MAX).
std::uint64_t raiseFdLimit();

// The descriptors `config` may need with `workers` threads: two per connection (a proxied
// connection holds the client's socket and the upstream's), one per listener and worker, and
// kFdReserve.
std::uint64_t fdsNeeded(const config::Config& config, unsigned workers);

// A warning when `limit` is below fdsNeeded(config, workers); nullopt when it is enough.
std::optional<std::string> fdLimitWarning(const config::Config& config, unsigned workers, std::uint64_t limit);

// What start-up makes, in descriptors, before it can serve: each event loop an epoll instance and
// libevent's signal pipe (libevent makes the pipe for every event_base, whether or not it watches
// a signal, and calls exit(1) itself when it cannot); each worker its loop, its control wakeup and
// the in-process backplane's inbox wakeup (eventfds; the Redis backplane has none and connects
// later, so with it this asks one more than needed). Something new a worker opens at start-up
// belongs in this count.
constexpr unsigned kEventLoopDescriptors = 3;
constexpr unsigned kWorkerStartDescriptors = kEventLoopDescriptors + 2;
// With `io_uring` other than off, each worker also makes its ring (the io_uring's descriptor) and
// the eventfd its completions are signalled on (net/uring/ring.h).
constexpr unsigned kWorkerRingDescriptors = 2;

// How many descriptors, up to `wanted`, could be opened now (it opens and closes them). Start-up
// asks before it makes what needs them, so that too low an open-file limit is Portico's message
// and exit status 1 with every descriptor still free, never a library's exit.
unsigned freeDescriptors(unsigned wanted);

}  // namespace portico::net
