// SPDX-License-Identifier: Apache-2.0
#pragma once
// RAII owners for libevent and OpenSSL handles: unique_ptr with the C free function as deleter.

#include <memory>

struct event_base;
struct event;
struct evbuffer;
struct evconnlistener;

namespace portico::core {

struct EventBaseDeleter { void operator()(event_base* p) const; };
struct EventDeleter { void operator()(event* p) const; };
struct EvbufferDeleter { void operator()(evbuffer* p) const; };
struct ListenerDeleter { void operator()(evconnlistener* p) const; };

using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;
using EvbufferPtr = std::unique_ptr<evbuffer, EvbufferDeleter>;
using ListenerPtr = std::unique_ptr<evconnlistener, ListenerDeleter>;

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd();
    int get() const { return fd_; }
    int release() { int fd = fd_; fd_ = -1; return fd; }
    explicit operator bool() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

}  // namespace portico::core
