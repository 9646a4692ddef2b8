// SPDX-License-Identifier: Apache-2.0
#pragma once
// What one side of an io_uring relay still has to send, in order. On the fast path (the socket
// took everything so far) it holds one received buffer of the ring's pool, sent as it is and
// handed back when sent; anything that cannot go at once (a send already in flight, a socket
// that took only part or nothing: MSG_DONTWAIT) is copied into the side's own heap chunks and
// the pool buffer handed back at once (unpoolFront), so a pool buffer is only ever held for
// one send's round trip and a stalled peer holds none of the shared pool. One send is in flight
// at a time: it reads the front chunk.
//
// The backpressure bound counts memory, not payload: a pool buffer counts BufferPool::kSize
// however few of its bytes a receive filled, a heap chunk its capacity (small copies share a
// chunk of kCopyChunk bytes: no allocation per small message). The relay stops receiving for a
// side whose queue is above proxy::kHighWatermark and resumes at proxy::kLowWatermark (the
// epoll tunnel's bounds, there on bytes in an evbuffer).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace portico::net::uring {

class SendQueue {
public:
    static constexpr std::int32_t kCopy = -1;  // a chunk that is not a pool buffer
    static constexpr std::uint32_t kBufferCost = 16 * 1024;  // = BufferPool::kSize (checked there)
    static constexpr std::uint32_t kCopyChunk = 4096;       // a heap chunk's least capacity

    struct Chunk {
        const char* data = nullptr;
        std::uint32_t length = 0;
        std::uint32_t sent = 0;
        std::uint32_t capacity = 0;    // a copy's allocation
        std::int32_t buffer = kCopy;   // the pool buffer's id, or kCopy
        std::unique_ptr<char[]> copy;  // a copy's own bytes
    };

    // A received pool buffer, `length` bytes at `data`.
    void pushBuffer(std::uint16_t id, const char* data, std::uint32_t length) {
        chunks_.push_back(Chunk{data, length, 0, 0, id, nullptr});
        cost_ += kBufferCost;
        unsent_ += length;
    }
    // A copy of `length` bytes: appended to the last heap chunk when it has room, else a new
    // chunk of at least kCopyChunk bytes.
    void pushCopy(const char* data, std::size_t length) {
        if (length == 0) return;
        unsent_ += static_cast<std::uint32_t>(length);
        if (!chunks_.empty()) {
            Chunk& tail = chunks_.back();
            if (tail.buffer == kCopy && tail.capacity - tail.length >= length) {
                std::memcpy(tail.copy.get() + tail.length, data, length);
                tail.length += static_cast<std::uint32_t>(length);
                return;
            }
        }
        const auto capacity = static_cast<std::uint32_t>(std::max<std::size_t>(length, kCopyChunk));
        chunks_.push_back(ownChunk(data, static_cast<std::uint32_t>(length), capacity));
        cost_ += capacity;
    }

    // The front chunk, if it is a pool buffer, becomes a heap copy of its unsent bytes; returns
    // the buffer's id to hand back (kCopy when the front was a copy already).
    std::int32_t unpoolFront() {
        if (chunks_.empty() || chunks_.front().buffer == kCopy) return kCopy;
        Chunk& front = chunks_.front();
        const std::int32_t id = front.buffer;
        const std::uint32_t left = front.length - front.sent;
        front = ownChunk(front.data + front.sent, left, left);
        cost_ = cost_ - kBufferCost + left;
        return id;
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
        unsent_ -= static_cast<std::uint32_t>(n);
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
    static Chunk ownChunk(const char* data, std::uint32_t length, std::uint32_t capacity) {
        auto copy = std::make_unique_for_overwrite<char[]>(capacity);
        std::memcpy(copy.get(), data, length);
        const char* bytes = copy.get();
        return Chunk{bytes, length, 0, capacity, kCopy, std::move(copy)};
    }

    std::int32_t popFront() {
        const std::int32_t id = chunks_.front().buffer;
        cost_ -= id == kCopy ? chunks_.front().capacity : kBufferCost;
        chunks_.erase(chunks_.begin());  // a few dozen entries at most (the bound / kCopyChunk)
        return id;
    }

    std::vector<Chunk> chunks_;
    // At most the high watermark plus a receive's worth and the start's copies (a Stream's
    // buffers at the handover: bounded by the handshake's limits).
    std::uint32_t cost_ = 0;
    std::uint32_t unsent_ = 0;  // at most cost_
};

}  // namespace portico::net::uring
