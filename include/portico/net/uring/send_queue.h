// SPDX-License-Identifier: Apache-2.0
#pragma once
// What one side of an io_uring relay still has to send, in order: received buffers of the
// ring's pool (sent as they are, handed back when sent) and, at the start and end of a tunnel,
// copies of bytes that were in a net::Stream's buffers. One send is in flight at a time: it
// reads the front chunk.
//
// The backpressure bound counts memory, not payload: a pool buffer holds BufferPool::kSize
// bytes however few of them a receive filled, so queuing 64-byte messages would otherwise pin
// 16 KiB each. cost() counts kSize for a pool buffer and the length of a copy; the relay stops
// receiving for a side whose queue is above proxy::kHighWatermark and resumes at
// proxy::kLowWatermark (the epoll tunnel's bounds, there on bytes in an evbuffer).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace portico::net::uring {

class SendQueue {
public:
    static constexpr std::int32_t kCopy = -1;  // a chunk that is not a pool buffer
    static constexpr std::size_t kBufferCost = 16 * 1024;  // = BufferPool::kSize (checked there)

    struct Chunk {
        const char* data = nullptr;
        std::uint32_t length = 0;
        std::uint32_t sent = 0;
        std::int32_t buffer = kCopy;   // the pool buffer's id, or kCopy
        std::unique_ptr<char[]> copy;  // a copy's own bytes
    };

    // Each pool buffer costs `buffer_cost` bytes (BufferPool::kSize by default).
    explicit SendQueue(std::size_t buffer_cost = kBufferCost) : buffer_cost_(static_cast<std::uint32_t>(buffer_cost)) {}

    // A received pool buffer, `length` bytes at `data`.
    void pushBuffer(std::uint16_t id, const char* data, std::uint32_t length) {
        chunks_.push_back(Chunk{data, length, 0, id, nullptr});
        cost_ += buffer_cost_;
        unsent_ += length;
    }
    // A copy of `length` bytes (from a Stream's buffers).
    void pushCopy(const char* data, std::size_t length) {
        if (length == 0) return;
        auto copy = std::make_unique<char[]>(length);
        std::memcpy(copy.get(), data, length);
        const char* bytes = copy.get();
        chunks_.push_back(Chunk{bytes, static_cast<std::uint32_t>(length), 0, kCopy, std::move(copy)});
        cost_ += static_cast<std::uint32_t>(length);
        unsent_ += length;
    }

    bool empty() const { return chunks_.empty(); }
    // What the next send carries.
    const char* next() const { return chunks_.front().data + chunks_.front().sent; }
    std::uint32_t nextLength() const { return chunks_.front().length - chunks_.front().sent; }

    // `n` bytes of the front chunk went. When it is all sent it leaves the queue, and its pool
    // buffer (if it was one) is returned to go back to the pool; otherwise kCopy.
    std::int32_t sent(std::size_t n) {
        Chunk& front = chunks_.front();
        front.sent += static_cast<std::uint32_t>(n);
        unsent_ -= n;
        if (front.sent < front.length) return kCopy;
        return popFront();
    }

    // Empties the queue: each pool buffer goes to `give`, each unsent byte range to `keep`
    // (data, length) first, in order (a tunnel's end hands them to the Stream's output).
    template <typename Keep, typename Give>
    void drain(Keep&& keep, Give&& give) {
        for (Chunk& c : chunks_) {
            if (c.sent < c.length) keep(c.data + c.sent, c.length - c.sent);
            if (c.buffer != kCopy) give(static_cast<std::uint16_t>(c.buffer));
        }
        chunks_.clear();
        cost_ = unsent_ = 0;
    }

    std::size_t cost() const { return cost_; }
    std::size_t unsent() const { return unsent_; }
    std::size_t chunks() const { return chunks_.size(); }

private:
    std::int32_t popFront() {
        const std::int32_t id = chunks_.front().buffer;
        cost_ -= id == kCopy ? chunks_.front().length : buffer_cost_;
        chunks_.erase(chunks_.begin());  // a handful of entries at most (the bound)
        return id;
    }

    std::vector<Chunk> chunks_;
    std::uint32_t buffer_cost_;
    std::uint32_t cost_ = 0;    // at most the high watermark plus a buffer and the start's copies
    std::size_t unsent_ = 0;
};

}  // namespace portico::net::uring
