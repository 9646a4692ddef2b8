// SPDX-License-Identifier: Apache-2.0
#include "portico/net/uring/buffer_pool.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <liburing.h>

namespace portico::net::uring {

void BufferPool::AlignedFree::operator()(void* p) const { std::free(p); }

BufferPool::~BufferPool() = default;  // the ring (unregistering the group) goes first: Ring's order

bool BufferPool::registerWith(io_uring& ring, std::string& why) {
    // The kernel reads the buffer ring's entries through a page-aligned mapping.
    const std::size_t ring_bytes = kCount * sizeof(io_uring_buf);
    ring_.reset(static_cast<io_uring_buf_ring*>(std::aligned_alloc(4096, ring_bytes)));
    memory_ = std::make_unique_for_overwrite<char[]>(static_cast<std::size_t>(kCount) * kSize);
    if (!ring_) {
        why = "no memory for the buffer ring";
        return false;
    }
    io_uring_buf_ring_init(ring_.get());
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_.get());
    reg.ring_entries = kCount;
    reg.bgid = kGroup;
    if (const int r = io_uring_register_buf_ring(&ring, &reg, 0); r < 0) {
        why = std::string("io_uring_register_buf_ring: ") + std::strerror(-r);
        return false;
    }
    for (unsigned i = 0; i < kCount; ++i) give(static_cast<std::uint16_t>(i));
    publish();
    return true;
}

void BufferPool::give(std::uint16_t id) {
    io_uring_buf_ring_add(ring_.get(), data(id), kSize, id, io_uring_buf_ring_mask(kCount),
                          static_cast<int>(unpublished_++));
}

void BufferPool::publish() {
    if (unpublished_ == 0) return;
    io_uring_buf_ring_advance(ring_.get(), static_cast<int>(unpublished_));
    available_ += unpublished_;
    unpublished_ = 0;
    if (waiters_.empty()) return;
    // A woken receive may find the pool empty again and wait anew: it joins waiters_, not the
    // batch being woken.
    waking_.swap(waiters_);
    for (BufferWaiter* waiter : waking_)
        if (waiter) waiter->onBuffersBack();
    waking_.clear();
}

void BufferPool::stopWaiting(BufferWaiter* waiter) {
    std::erase(waiters_, waiter);
    std::replace(waking_.begin(), waking_.end(), waiter, static_cast<BufferWaiter*>(nullptr));
}

}  // namespace portico::net::uring
