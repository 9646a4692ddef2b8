// SPDX-License-Identifier: Apache-2.0
#pragma once
// nghttp2's memory for one session (nghttp2_mem), recycled. nghttp2 allocates for every stream
// (its state, its frames, copies of header fields) and frees it all when the stream closes; with
// a hundred streams in flight that is more blocks of one size than glibc's per-thread cache
// keeps (7), so most of them went through malloc's slow paths, several times per request.
// Blocks of up to kLargestClass bytes go back on free lists by size class, kMaxFreeBytes in
// all (then to free()); larger ones are malloc's. One session, one thread: no locking.

#include <array>
#include <cstddef>
#include <cstdint>

#include <nghttp2/nghttp2.h>

namespace portico::http2 {

class SessionMemory {
public:
    static constexpr std::size_t kSmallestClass = 64;
    static constexpr std::size_t kClasses = 7;  // 64, 128, ..., 4096 bytes
    static constexpr std::size_t kLargestClass = kSmallestClass << (kClasses - 1);
    static constexpr std::size_t kMaxFreeBytes = 256 * 1024;  // kept on the free lists at most

    SessionMemory();
    // Frees the free lists. The session must be gone first (its blocks given back).
    ~SessionMemory();
    SessionMemory(const SessionMemory&) = delete;
    SessionMemory& operator=(const SessionMemory&) = delete;

    // For nghttp2_session_server_new3; valid as long as this object.
    nghttp2_mem* mem() { return &mem_; }
    // Gives the free blocks back to malloc (an idle connection keeps none).
    void trim();
    // Gives back the free blocks that stayed free since the last call (per size class), so that
    // called at a steady period the free lists shrink to what the streams in flight use while
    // the connection lives on (a burst of requests, then one long WebSocket stream).
    void trimUnused();
    std::size_t freeBytes() const { return free_bytes_; }

    // nghttp2_mem's functions, with malloc's contracts.
    void* allocate(std::size_t size);
    void release(void* block);
    void* allocateZeroed(std::size_t count, std::size_t size);
    void* reallocate(void* block, std::size_t size);

private:
    struct FreeBlock {
        FreeBlock* next;
    };

    std::array<FreeBlock*, kClasses> free_{};
    std::array<std::uint32_t, kClasses> free_count_{};  // blocks on each list
    std::array<std::uint32_t, kClasses> unused_{};      // the fewest on it since trimUnused()
    std::size_t free_bytes_ = 0;
    nghttp2_mem mem_{};
};

}  // namespace portico::http2
