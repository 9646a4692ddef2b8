// SPDX-License-Identifier: Apache-2.0
#include "portico/net/request_log.h"

#include "portico/net/snapshot.h"
#include "portico/net/worker.h"

namespace portico::net {

void logRequest(Worker& worker, WorkerSnapshot& snapshot, observe::ListenerStats& listener, const RequestSummary& summary) {
    const int status = summary.status;
    listener.requests.add();
    if (summary.route) snapshot.routeStats(*summary.route).requests[status >= 100 && status < 600 ? status / 100 : 0].add();
    observe::AccessLog& log = worker.accessLog();
    if (!log.enabled()) return;
    static const http::RequestHead kNone;
    const http::RequestHead& request = summary.request ? *summary.request : kNone;
    observe::AccessRecord record;
    record.time = std::chrono::system_clock::now();
    record.client = summary.client_ip;
    record.method = request.method.empty() ? std::string_view("-") : std::string_view(request.method);
    record.path = request.target.empty() ? std::string_view("-") : std::string_view(request.target);
    record.protocol = summary.protocol;
    record.status = status;
    record.bytes_in = summary.bytes_in;
    record.bytes_out = summary.bytes_out;
    record.upstream = summary.upstream;
    const auto now = std::chrono::steady_clock::now();
    const auto start = summary.start == std::chrono::steady_clock::time_point{} ? now : summary.start;
    record.duration_ms = std::chrono::duration<double, std::milli>(now - start).count();
    if (const http::Header* h = http::findHeader(request.headers, http::FieldName::Referer)) record.referer = h->value;
    if (const http::Header* h = http::findHeader(request.headers, http::FieldName::UserAgent)) record.user_agent = h->value;
    log.write(record);
}

}  // namespace portico::net
