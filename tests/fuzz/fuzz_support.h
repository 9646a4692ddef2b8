// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the fuzz targets share: FUZZ_CHECK for the invariants they assert, and FuzzInput to take a
// few control bytes off the front of an input before the bytes under test.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace portico::fuzz {

[[noreturn]] inline void checkFailed(const char* condition, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", file, line, condition);
    std::abort();  // libFuzzer keeps the input as a crash; the replay names the file
}

// An invariant Portico promises whatever the bytes were: a failure is a bug in Portico (or in the
// target), never an "invalid input".
#define FUZZ_CHECK(condition) \
    ((condition) ? static_cast<void>(0) : ::portico::fuzz::checkFailed(#condition, __FILE__, __LINE__))

// Reads an input from the front. Past the end, byte() gives 0 and take() an empty view, so a
// short input is still a valid one.
class FuzzInput {
public:
    FuzzInput(const std::uint8_t* data, std::size_t size)
        : rest_(reinterpret_cast<const char*>(data), data ? size : 0) {}

    std::uint8_t byte() {
        if (rest_.empty()) return 0;
        const auto b = static_cast<std::uint8_t>(rest_.front());
        rest_.remove_prefix(1);
        return b;
    }
    // Up to `n` bytes.
    std::string_view take(std::size_t n) {
        std::string_view part = rest_.substr(0, n);
        rest_.remove_prefix(part.size());
        return part;
    }
    // The bytes up to the next `separator` (which is consumed), or all that is left.
    std::string_view takeUntil(char separator) {
        const std::size_t at = rest_.find(separator);
        std::string_view part = rest_.substr(0, at);
        rest_.remove_prefix(at == std::string_view::npos ? rest_.size() : at + 1);
        return part;
    }
    std::string_view rest() const { return rest_; }
    bool empty() const { return rest_.empty(); }

private:
    std::string_view rest_;
};

// How the bytes under test are cut into the pieces a socket would deliver: `selector` 0 means
// all at once, otherwise pieces of `selector` bytes (1..255), so that every parser state is also
// reached at a buffer boundary.
inline std::size_t sliceSize(std::uint8_t selector, std::size_t total) {
    return selector == 0 ? (total == 0 ? 1 : total) : selector;
}

}  // namespace portico::fuzz
