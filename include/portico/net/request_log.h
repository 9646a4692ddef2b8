// SPDX-License-Identifier: Apache-2.0
#pragma once
// The end of a request, for any client side (HTTP/1.1 connection or HTTP/2 stream): its
// listener's and route's counters and its access log line.

#include <chrono>
#include <cstdint>
#include <string_view>

#include "portico/config/config.h"
#include "portico/http/head.h"
#include "portico/observe/metrics.h"

namespace portico::net {

class Worker;
class WorkerSnapshot;

struct RequestSummary {
    const config::Route* route = nullptr;        // in `snapshot`'s configuration; null: not routed
    const http::RequestHead* request = nullptr;  // null or empty: no head was read
    std::string_view client_ip;
    std::string_view protocol = "HTTP/1.1";
    std::string_view upstream = "-";
    int status = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::chrono::steady_clock::time_point start{};  // unset: now
};

void logRequest(Worker& worker, WorkerSnapshot& snapshot, observe::ListenerStats& listener, const RequestSummary& summary);

}  // namespace portico::net
