// SPDX-License-Identifier: Apache-2.0
#include "portico/observe/access_log.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <event2/event.h>
#include <fcntl.h>
#include <unistd.h>

#include "portico/core/escape.h"
#include "portico/core/json.h"
#include "portico/net/event_loop.h"

namespace portico::observe {

std::shared_ptr<AccessSink> AccessSink::open(const config::LogSettings& settings, std::string& error) {
    auto sink = std::make_shared<AccessSink>();
    sink->format_ = settings.access_format;
    if (settings.access == "off") return sink;
    if (settings.access == "stdout") {
        sink->fd_ = STDOUT_FILENO;
        return sink;
    }
    sink->path_ = settings.access;
    sink->owns_fd_ = true;
    if (!sink->reopen()) {
        error = "cannot open access log " + sink->path_ + ": " + strerror(errno);
        return nullptr;
    }
    return sink;
}

std::string AccessSink::check(const config::LogSettings& settings) {
    if (settings.access == "off" || settings.access == "stdout") return {};
    const std::string& path = settings.access;
    // O_NONBLOCK: a FIFO with no reader would block the open (and `-t`, which systemd runs before
    // start and reload) until one comes; ENXIO says it is a FIFO that can be opened once read.
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        ::close(fd);
        return {};
    }
    if (errno == ENXIO) return {};
    if (errno == ENOENT) {
        // The file would be created: its folder must exist and take new files (the effective
        // ids, as open() would use them).
        const std::size_t slash = path.rfind('/');
        const std::string folder = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
        if (::faccessat(AT_FDCWD, folder.c_str(), W_OK | X_OK, AT_EACCESS) == 0) return {};
        if (errno == ENOENT) return "cannot open access log " + path + ": its folder " + folder + " does not exist";
    }
    return "cannot open access log " + path + ": " + strerror(errno);
}

AccessSink::~AccessSink() {
    if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

bool AccessSink::reopen() {
    if (!owns_fd_) return true;
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    std::lock_guard lock(mutex_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    return true;
}

void AccessSink::write(const char* data, std::size_t length) {
    std::lock_guard lock(mutex_);
    while (length > 0 && fd_ >= 0) {
        ssize_t n = ::write(fd_, data, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // a full disk must not stop the gateway
        data += n;
        length -= static_cast<std::size_t>(n);
    }
}

namespace {


// Combined format quotes fields; escape quotes and control bytes like nginx does (\xHH).
void appendQuoted(std::string& out, std::string_view s) {
    out.push_back('"');
    core::appendEscaped(out, s, "\"");
    out.push_back('"');
}

}  // namespace

void formatAccessRecord(std::string& out, const AccessRecord& r, config::AccessFormat format) {
    std::time_t seconds = std::chrono::system_clock::to_time_t(r.time);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.time.time_since_epoch()).count() % 1000;
    std::tm tm{};
    char stamp[64];
    char line[160];
    if (format == config::AccessFormat::Json) {
        gmtime_r(&seconds, &tm);
        std::size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + n, sizeof stamp - n, ".%03lldZ", static_cast<long long>(ms));
        out.append("{\"time\":\"");
        out.append(stamp);
        out.append("\",\"client\":");
        core::appendJsonString(out, r.client);
        out.append(",\"method\":");
        core::appendJsonString(out, r.method);
        out.append(",\"path\":");
        core::appendJsonString(out, r.path);
        out.append(",\"protocol\":");
        core::appendJsonString(out, r.protocol);
        snprintf(line, sizeof line, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"upstream\":", r.status,
                 static_cast<unsigned long long>(r.bytes_in), static_cast<unsigned long long>(r.bytes_out));
        out.append(line);
        core::appendJsonString(out, r.upstream);
        snprintf(line, sizeof line, ",\"duration_ms\":%.3f}\n", r.duration_ms);
        out.append(line);
        return;
    }
    localtime_r(&seconds, &tm);
    strftime(stamp, sizeof stamp, "%d/%b/%Y:%H:%M:%S %z", &tm);
    out.append(r.client);
    out.append(" - - [");
    out.append(stamp);
    out.append("] \"");
    out.append(r.method);
    out.push_back(' ');
    for (char c : r.path) out.push_back(c == '"' ? '\'' : c);
    out.push_back(' ');
    out.append(r.protocol);
    out.append("\" ");
    snprintf(line, sizeof line, "%d %llu ", r.status, static_cast<unsigned long long>(r.bytes_out));
    out.append(line);
    appendQuoted(out, r.referer.empty() ? "-" : r.referer);
    out.push_back(' ');
    appendQuoted(out, r.user_agent.empty() ? "-" : r.user_agent);
    out.push_back('\n');
}

AccessLog::AccessLog(net::EventLoop& loop, std::shared_ptr<AccessSink> sink)
    : sink_(std::move(sink)), flush_event_(event_new(loop.base(), -1, 0, &AccessLog::onFlush, this)) {}

AccessLog::~AccessLog() { flush(); }

void AccessLog::setSink(std::shared_ptr<AccessSink> sink) {
    flush();
    sink_ = std::move(sink);
}

void AccessLog::write(const AccessRecord& record) {
    if (!enabled()) return;
    formatAccessRecord(buffer_, record, sink_->format());
    if (buffer_.size() >= kFlushBytes || !flush_event_) {  // no event (event_new failed): no batching
        flush();
    } else if (!flush_pending_) {
        // Runs after the other callbacks of this loop iteration: one write for the batch.
        flush_pending_ = true;
        event_active(flush_event_.get(), EV_TIMEOUT, 0);
    }
}

void AccessLog::flush() {
    flush_pending_ = false;
    if (buffer_.empty() || !sink_) return;
    sink_->write(buffer_.data(), buffer_.size());
    buffer_.clear();
}

void AccessLog::onFlush(int, short, void* arg) { static_cast<AccessLog*>(arg)->flush(); }

}  // namespace portico::observe
