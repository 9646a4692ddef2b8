// SPDX-License-Identifier: Apache-2.0
#include "portico/core/handles.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <utility>

#include <event2/buffer.h>
#include <fcntl.h>
#include <unistd.h>

#include "portico/core/log.h"

using namespace portico::core;

namespace {

bool isOpen(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// Both ends of a fresh pipe, each owned.
std::pair<UniqueFd, UniqueFd> makePipe() {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

TEST_CASE("UniqueFd closes its descriptor when destroyed", "[core][handles]") {
    int raw = -1;
    {
        auto [read_end, write_end] = makePipe();
        raw = read_end.get();
        CHECK(isOpen(raw));
        CHECK(static_cast<bool>(read_end));
    }
    CHECK_FALSE(isOpen(raw));
}

TEST_CASE("UniqueFd moves ownership and closes what it replaces", "[core][handles]") {
    auto [a, b] = makePipe();
    const int a_fd = a.get();
    const int b_fd = b.get();

    UniqueFd moved(std::move(a));
    CHECK(moved.get() == a_fd);
    CHECK_FALSE(static_cast<bool>(a));  // NOLINT(bugprone-use-after-move): the moved-from state is the point
    CHECK(isOpen(a_fd));

    moved = std::move(b);  // the old descriptor is closed, the new one kept
    CHECK_FALSE(isOpen(a_fd));
    CHECK(moved.get() == b_fd);
    CHECK(isOpen(b_fd));
}

TEST_CASE("UniqueFd::release hands the descriptor over without closing it", "[core][handles]") {
    auto [a, b] = makePipe();
    const int fd = a.release();
    CHECK(a.get() == -1);
    CHECK_FALSE(static_cast<bool>(a));
    CHECK(isOpen(fd));
    close(fd);
}

TEST_CASE("a default UniqueFd owns nothing", "[core][handles]") {
    UniqueFd none;
    CHECK(none.get() == -1);
    CHECK_FALSE(static_cast<bool>(none));
    UniqueFd other;
    other = std::move(none);
    CHECK(other.get() == -1);
}

TEST_CASE("EvbufferPtr frees its buffer (checked by the sanitizer build)", "[core][handles]") {
    EvbufferPtr buffer(evbuffer_new());
    REQUIRE(buffer);
    CHECK(evbuffer_add(buffer.get(), "abc", 3) == 0);
    CHECK(evbuffer_get_length(buffer.get()) == 3);
}

TEST_CASE("the error log filters by level", "[core][log]") {
    setLogLevel(LogLevel::Warn);
    CHECK(logEnabled(LogLevel::Error));
    CHECK(logEnabled(LogLevel::Warn));
    CHECK_FALSE(logEnabled(LogLevel::Info));
    CHECK_FALSE(logEnabled(LogLevel::Debug));
    setLogLevel(LogLevel::Debug);
    CHECK(logEnabled(LogLevel::Debug));
    setLogLevel(LogLevel::Info);  // the default, for the tests that follow
    CHECK(logEnabled(LogLevel::Info));
    CHECK_FALSE(logEnabled(LogLevel::Debug));
}
