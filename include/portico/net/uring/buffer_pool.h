// SPDX-License-Identifier: Apache-2.0
#pragma once
// The provided buffers a worker's ring receives into (IORING_REGISTER_PBUF_RING, one group):
// kCount buffers of kSize bytes, 4 MiB per worker, made with the ring (the kernel takes them in
// ring order, so over time all of it becomes resident). A receive takes one
// (the kernel picks it); it is sent on as is when nothing waits before it and comes back here
// when that send completed; bytes that cannot go at once are copied into the tunnel's own
// queue and the buffer comes back at once (net/uring/send_queue.h). So the pool is shared, not
// reserved, and held only for a send's round trip: a stalled peer holds none of it. A receive
// that finds it empty waits (ENOBUFS) on the waiting list until a buffer comes back, its bytes
// held by the kernel's socket buffer meanwhile (TCP flow control, nothing lost).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "portico/net/uring/send_queue.h"

struct io_uring;
struct io_uring_buf_ring;

namespace portico::net::uring {

// A receive that found the pool empty (ENOBUFS) waits here for a buffer to come back.
class BufferWaiter {
public:
    virtual void onBuffersBack() = 0;

protected:
    ~BufferWaiter() = default;
};

class BufferPool {
public:
    static constexpr unsigned kCount = 256;           // a power of two (the kernel's ring)
    static constexpr std::size_t kSize = 16 * 1024;   // = net::Stream::kReadChunk: one read's worth
    static constexpr std::uint16_t kGroup = 0;
    static_assert(kSize == SendQueue::kBufferCost, "a queued buffer costs what it holds");

    BufferPool() = default;
    ~BufferPool();
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    // Registers the buffers with `ring`; false with `why` set when the kernel refuses.
    bool registerWith(io_uring& ring, std::string& why);
    char* data(std::uint16_t id) { return memory_.get() + static_cast<std::size_t>(id) * kSize; }
    // Hands buffer `id` back; the kernel sees it after publish().
    void give(std::uint16_t id);
    // Makes the buffers given back visible to the kernel (one store), once per batch, and then
    // wakes the receives that waited for one.
    void publish();
    void wait(BufferWaiter* waiter) { waiters_.push_back(waiter); }
    void stopWaiting(BufferWaiter* waiter);
    // Buffers the kernel may pick now (given back and published), for tests and leak checks.
    unsigned available() const { return available_; }
    void taken() { --available_; }

private:
    struct AlignedFree {
        void operator()(void* p) const;
    };
    std::unique_ptr<char[]> memory_;
    std::unique_ptr<io_uring_buf_ring, AlignedFree> ring_;
    unsigned unpublished_ = 0;
    unsigned available_ = 0;
    std::vector<BufferWaiter*> waiters_;  // each at most once (its receive is not armed)
    std::vector<BufferWaiter*> waking_;
};

}  // namespace portico::net::uring
