// SPDX-License-Identifier: Apache-2.0
#pragma once
// The error log: one line per event on stderr, filtered by level. Thread-safe (one write(2) per
// line). The level is process-wide and may change on reload.

#include <cstdarg>

namespace portico::core {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void setLogLevel(LogLevel level);
bool logEnabled(LogLevel level);
// printf-style; a newline is added.
void logLine(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace portico::core

#define PORTICO_LOG(level, ...)                                                     \
    do {                                                                            \
        if (::portico::core::logEnabled(level)) ::portico::core::logLine(level, __VA_ARGS__); \
    } while (0)
#define LOG_ERROR(...) PORTICO_LOG(::portico::core::LogLevel::Error, __VA_ARGS__)
#define LOG_WARN(...) PORTICO_LOG(::portico::core::LogLevel::Warn, __VA_ARGS__)
#define LOG_INFO(...) PORTICO_LOG(::portico::core::LogLevel::Info, __VA_ARGS__)
#define LOG_DEBUG(...) PORTICO_LOG(::portico::core::LogLevel::Debug, __VA_ARGS__)
