// SPDX-License-Identifier: Apache-2.0
#include "portico/net/fd_limit.h"

#include <sys/eventfd.h>
#include <sys/resource.h>
#include <vector>

#include "portico/core/handles.h"

namespace portico::net {

std::uint64_t raiseFdLimit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    return limit.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(limit.rlim_cur);
}

std::uint64_t fdsNeeded(const config::Config& config, unsigned workers) {
    return 2 * static_cast<std::uint64_t>(config.limits.max_connections) +
           static_cast<std::uint64_t>(config.listeners.size()) * workers + kFdReserve;
}

std::optional<std::string> fdLimitWarning(const config::Config& config, unsigned workers, std::uint64_t limit) {
    const std::uint64_t needed = fdsNeeded(config, workers);
    if (limit >= needed) return std::nullopt;
    return "limits.max_connections is " + std::to_string(config.limits.max_connections) + ", which may need " +
           std::to_string(needed) + " file descriptors (2 per proxied connection), but the open-file limit is " +
           std::to_string(limit) + ": raise it (ulimit -n, systemd LimitNOFILE=) or lower limits.max_connections; "
           "beyond it new connections wait while accepting backs off";
}

unsigned freeDescriptors(unsigned wanted) {
    std::vector<core::UniqueFd> probes;
    probes.reserve(wanted);
    while (probes.size() < wanted) {
        core::UniqueFd fd(::eventfd(0, EFD_CLOEXEC));  // any kind would do: this one needs no file
        if (!fd) break;
        probes.push_back(std::move(fd));
    }
    return static_cast<unsigned>(probes.size());
}

}  // namespace portico::net
