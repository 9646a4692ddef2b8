// SPDX-License-Identifier: Apache-2.0
#include "portico/http2/session_memory.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

using portico::http2::SessionMemory;

TEST_CASE("session memory gives a freed block of the same class back", "[http2][memory]") {
    SessionMemory memory;
    void* a = memory.allocate(100);  // the 128-byte class
    REQUIRE(a);
    CHECK(reinterpret_cast<std::uintptr_t>(a) % 16 == 0);
    memory.release(a);
    CHECK(memory.freeBytes() == 128);
    CHECK(memory.allocate(128) == a);  // same class: reused
    CHECK(memory.freeBytes() == 0);
    void* b = memory.allocate(129);  // the next class: a new block
    CHECK(b != a);
    memory.release(a);
    memory.release(b);
    memory.release(nullptr);  // as free(NULL)
    CHECK(memory.freeBytes() == 128 + 256);
    memory.trim();
    CHECK(memory.freeBytes() == 0);
}

TEST_CASE("session memory keeps at most kMaxFreeBytes on its free lists", "[http2][memory]") {
    SessionMemory memory;
    std::vector<void*> blocks;
    const std::size_t n = 2 * SessionMemory::kMaxFreeBytes / SessionMemory::kLargestClass;
    for (std::size_t i = 0; i < n; ++i) blocks.push_back(memory.allocate(SessionMemory::kLargestClass));
    for (void* block : blocks) memory.release(block);
    CHECK(memory.freeBytes() == SessionMemory::kMaxFreeBytes);
    void* large = memory.allocate(SessionMemory::kLargestClass + 1);  // malloc's, never kept
    REQUIRE(large);
    memory.release(large);
    CHECK(memory.freeBytes() == SessionMemory::kMaxFreeBytes);
}

TEST_CASE("session memory zeroes what calloc asks for and keeps bytes through realloc", "[http2][memory]") {
    SessionMemory memory;
    auto* dirty = static_cast<unsigned char*>(memory.allocate(64));
    std::memset(dirty, 0xab, 64);
    memory.release(dirty);
    auto* zeroed = static_cast<unsigned char*>(memory.allocateZeroed(8, 8));  // the same block again
    REQUIRE(zeroed);
    for (int i = 0; i < 64; ++i) CHECK(zeroed[i] == 0);
    CHECK(memory.allocateZeroed(SIZE_MAX / 2, 4) == nullptr);  // count * size overflows

    for (int i = 0; i < 64; ++i) zeroed[i] = static_cast<unsigned char>(i);
    CHECK(memory.reallocate(zeroed, 50) == zeroed);  // fits where it is
    auto* grown = static_cast<unsigned char*>(memory.reallocate(zeroed, 10000));  // beyond the classes
    REQUIRE(grown);
    for (int i = 0; i < 64; ++i) CHECK(grown[i] == i);
    auto* again = static_cast<unsigned char*>(memory.reallocate(grown, 20000));
    REQUIRE(again);
    for (int i = 0; i < 64; ++i) CHECK(again[i] == i);
    memory.release(again);
    void* fresh = memory.reallocate(nullptr, 10);  // as malloc
    REQUIRE(fresh);
    memory.release(fresh);
}

TEST_CASE("session memory's trimUnused gives back the blocks that stayed free since its last call",
          "[http2][memory]") {
    // An HTTP/2 connection calls it once a second while it has streams: the blocks of a burst
    // of streams must not stay on the free lists for the life of one long stream.
    SessionMemory memory;
    std::vector<void*> blocks;
    for (int i = 0; i < 4; ++i) blocks.push_back(memory.allocate(100));  // the 128-byte class
    void* other = memory.allocate(1000);                                  // the 1024-byte class
    for (void* block : blocks) memory.release(block);
    memory.release(other);
    CHECK(memory.freeBytes() == 4 * 128 + 1024);
    memory.trimUnused();  // freed since the last call: kept this time
    CHECK(memory.freeBytes() == 4 * 128 + 1024);
    memory.release(memory.allocate(128));  // one of the 128-byte blocks is used again
    memory.trimUnused();                    // the three others and the 1024-byte one go
    CHECK(memory.freeBytes() == 128);
    void* again = memory.allocate(128);
    CHECK(again != nullptr);
    CHECK(memory.freeBytes() == 0);
    memory.release(again);
    memory.trimUnused();  // used since the last call
    CHECK(memory.freeBytes() == 128);
    memory.trimUnused();
    CHECK(memory.freeBytes() == 0);
    memory.release(memory.allocate(64));
    memory.trim();  // everything, used or not
    CHECK(memory.freeBytes() == 0);
}
