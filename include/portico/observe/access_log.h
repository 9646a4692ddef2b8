// SPDX-License-Identifier: Apache-2.0
#pragma once
// The access log: one line per request, JSON or combined format, to stdout or a file.
// Each worker buffers its lines and writes them once per loop iteration (one write(2) for a
// whole batch); the file is shared and opened O_APPEND so lines never interleave mid-line.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "portico/config/config.h"
#include "portico/core/handles.h"

namespace portico::net {
class EventLoop;
}

namespace portico::observe {

struct AccessRecord {
    std::chrono::system_clock::time_point time;
    std::string_view client;      // client IP
    std::string_view method;
    std::string_view path;        // request-target as received
    std::string_view protocol = "HTTP/1.1";  // "HTTP/1.0", "HTTP/1.1", "HTTP/2.0"
    int status = 0;
    std::uint64_t bytes_in = 0;   // request head + body bytes
    std::uint64_t bytes_out = 0;  // response bytes written to the client
    std::string_view upstream;    // "127.0.0.1:8000" or "-"
    double duration_ms = 0;
    std::string_view referer;     // combined format
    std::string_view user_agent;  // combined format
};

// The destination shared by all workers: stdout, a file, or nothing.
class AccessSink {
public:
    // `target` is "stdout", "off" or a file path; returns nullptr with `error` set on failure.
    static std::shared_ptr<AccessSink> open(const config::LogSettings& settings, std::string& error);
    bool enabled() const { return fd_ >= 0; }
    config::AccessFormat format() const { return format_; }
    void write(const char* data, std::size_t length);
    // Reopens the file (logrotate, SIGUSR1); stdout is left alone. Returns false on failure.
    bool reopen();
    // `portico -t`: would open() succeed? An existing file is opened for appending as open()
    // does (and closed again: nothing written, nothing truncated); for a missing one the
    // folder must let us create it, which is checked without creating it (nginx -t opens, and
    // so creates, its log files). Returns what is wrong ("cannot open access log PATH: ...") or
    // an empty string.
    static std::string check(const config::LogSettings& settings);

private:
    std::mutex mutex_;  // guards fd_ against reopen() only; writes are single write(2) calls
    std::string path_;
    int fd_ = -1;
    bool owns_fd_ = false;
    config::AccessFormat format_ = config::AccessFormat::Json;

public:
    ~AccessSink();
};

// Formats one record as a line (with '\n') in `format`.
void formatAccessRecord(std::string& out, const AccessRecord& record, config::AccessFormat format);

class AccessLog {
public:
    AccessLog(net::EventLoop& loop, std::shared_ptr<AccessSink> sink);
    ~AccessLog();
    bool enabled() const { return sink_ && sink_->enabled(); }
    void write(const AccessRecord& record);
    void flush();
    void setSink(std::shared_ptr<AccessSink> sink);

    static constexpr std::size_t kFlushBytes = 32 * 1024;

private:
    static void onFlush(int, short, void* arg);
    std::shared_ptr<AccessSink> sink_;
    std::string buffer_;
    core::EventPtr flush_event_;
    bool flush_pending_ = false;
};

}  // namespace portico::observe
