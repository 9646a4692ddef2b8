// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fixed-size blocks that the Streams on a worker's ring send small writes from
// (net/uring/stream_io.h, StreamIo::stage): a write that finds nothing queued before it is copied
// once into a block, which is sent as it is and taken back when that send completed. Before, each
// such write was appended to the Stream's output() (a new evbuffer chain, since the previous
// send's drain had freed the last one) and moved into the send buffer: a malloc and a free and
// several hundred instructions per relayed message (bench/RESULTS.md, session 13).
//
// Bounded: kCount blocks of kSize bytes, 4 MiB of address space per ring, reserved on first use
// and never touched until a block is used (a small write touches one page of it); blocks are
// reused last-in first-out, so only as many become resident as were ever in use at once. A block is held for one send's round trip only:
// the send goes with MSG_DONTWAIT, and what a full socket refuses moves into the Stream's own
// send buffer at once, so a stalled peer holds none. With every block in use, or a write larger
// than a block, the write goes to output() as before: the pool is a saving, never a limit.
// Under AddressSanitizer a block is unaddressable while pooled (core/asan_poison.h).

#include <cstddef>
#include <cstdint>
#include <memory>

#include "portico/core/asan_poison.h"

namespace portico::net::uring {

class SendBlocks {
public:
    static constexpr std::size_t kSize = 16 * 1024;  // = Stream::kReadChunk: a relayed read fits; larger: output()
    static constexpr std::uint16_t kCount = 256;  // at most one per socket with a send in flight
    static constexpr std::uint16_t kNone = 0xffff;

    SendBlocks() = default;
    SendBlocks(const SendBlocks&) = delete;
    SendBlocks& operator=(const SendBlocks&) = delete;

    // A block not in use, or kNone when every one is (or there is no memory for them).
    std::uint16_t take() {
        const std::uint16_t id = free_count_ > 0 ? free_[--free_count_] : makeBlock();
        if (id != kNone) core::unpoisonPooled(data(id), kSize);
        return id;
    }
    // Block `id` (from take) is free again.
    void give(std::uint16_t id) {
        core::poisonPooled(data(id), kSize);
        free_[free_count_++] = id;
    }
    char* data(std::uint16_t id) { return memory_.get() + static_cast<std::size_t>(id) * kSize; }
    // Blocks not in use (free, or not made yet): kCount when nobody holds one. For tests.
    unsigned available() const { return free_count_ + (kCount - made_); }

private:
    std::uint16_t makeBlock();

    std::unique_ptr<char[]> memory_;  // kCount * kSize, made by the first take()
    std::uint16_t free_[kCount] = {};  // the ids given back, the last one on top
    std::uint16_t free_count_ = 0;
    std::uint16_t made_ = 0;  // ids below it have been handed out at least once
};

}  // namespace portico::net::uring
