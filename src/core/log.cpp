// SPDX-License-Identifier: Apache-2.0
#include "portico/core/log.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <sys/time.h>
#include <unistd.h>

namespace portico::core {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
constexpr const char* kLevelNames[] = {"error", "warn", "info", "debug"};
}  // namespace

void setLogLevel(LogLevel level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool logEnabled(LogLevel level) {
    return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void logLine(LogLevel level, const char* format, ...) {
    char line[2048];
    timeval now{};
    gettimeofday(&now, nullptr);
    tm local{};
    localtime_r(&now.tv_sec, &local);
    std::size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &local);
    int head = snprintf(line + n, sizeof line - n, ".%03ld [%s] ", static_cast<long>(now.tv_usec / 1000),
                        kLevelNames[static_cast<int>(level)]);
    n += static_cast<std::size_t>(head > 0 ? head : 0);
    va_list args;
    va_start(args, format);
    int body = vsnprintf(line + n, sizeof line - n - 1, format, args);
    va_end(args);
    if (body > 0) n += std::min(static_cast<std::size_t>(body), sizeof line - n - 2);
    line[n++] = '\n';
    // One write per line so lines from different threads never interleave.
    ssize_t ignored = write(STDERR_FILENO, line, n);
    (void)ignored;
}

}  // namespace portico::core
