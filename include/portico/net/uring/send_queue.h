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
//
// The front chunk lives in the queue itself, the rest in a list: a tunnel whose peers keep up
// (and every upgrade's 101 or first frame) never allocates one (bench/RESULTS.md, session 13).

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
    static constexpr std::int32_t kBorrowed = -2;  // bytes that stay in their owner's buffer (pushBorrowed)
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
        push(Chunk{data, length, 0, 0, id, nullptr});
        cost_ += kBufferCost;
        unsent_ += length;
    }
    // A copy of `length` bytes: appended to the last heap chunk when it has room, else a new
    // chunk of at least kCopyChunk bytes.
    void pushCopy(const char* data, std::size_t length) {
        if (length == 0) return;
        unsent_ += static_cast<std::uint32_t>(length);
        if (!empty()) {
            Chunk& tail = back();
            if (tail.buffer == kCopy && tail.capacity - tail.length >= length) {
                std::memcpy(tail.copy.get() + tail.length, data, length);
                tail.length += static_cast<std::uint32_t>(length);
                return;
            }
        }
        const auto capacity = static_cast<std::uint32_t>(std::max<std::size_t>(length, kCopyChunk));
        push(ownChunk(data, static_cast<std::uint32_t>(length), capacity));
        cost_ += capacity;
    }

    // `length` bytes at `data` that stay where they are until sent: the front of a Stream's
    // output (the 101 a tunnel starts with), which the owner drains as sent() reports them
    // (frontBorrowed), so that nothing is copied. Only into an empty queue; they count their
    // length against the bound.
    void pushBorrowed(const char* data, std::uint32_t length) {
        push(Chunk{data, length, 0, length, kBorrowed, nullptr});
        cost_ += length;
        unsent_ += length;
    }
    bool frontBorrowed() const { return !empty() && head_.buffer == kBorrowed; }

    // The front chunk, if it is a pool buffer, becomes a heap copy of its unsent bytes; returns
    // the buffer's id to hand back (kCopy when the front was a copy already).
    std::int32_t unpoolFront() {
        if (empty() || head_.buffer < 0) return kCopy;
        Chunk& front = head_;
        const std::int32_t id = front.buffer;
        const std::uint32_t left = front.length - front.sent;
        front = ownChunk(front.data + front.sent, left, left);
        cost_ = cost_ - kBufferCost + left;
        return id;
    }

    bool empty() const { return head_.data == nullptr; }
    // What the next send carries.
    const char* next() const { return head_.data + head_.sent; }
    std::uint32_t nextLength() const { return head_.length - head_.sent; }

    // `n` bytes of the front chunk went. When it is all sent it leaves the queue, and its pool
    // buffer (if it was one) is returned to go back to the pool, kBorrowed for borrowed bytes;
    // otherwise kCopy.
    std::int32_t sent(std::size_t n) {
        Chunk& front = head_;
        front.sent += static_cast<std::uint32_t>(n);
        unsent_ -= static_cast<std::uint32_t>(n);
        if (front.sent < front.length) return kCopy;
        return popFront();
    }

    // Empties the queue: each pool buffer goes to `give`, each unsent byte range to `keep`
    // (data, length) first, in order (a tunnel's end hands them to the Stream's output).
    // Borrowed bytes are left where they are (at the front of the buffer they came from).
    template <typename Keep, typename Give>
    void drain(Keep&& keep, Give&& give) {
        auto each = [&](Chunk& c) {
            if (c.sent < c.length && c.buffer != kBorrowed) keep(c.data + c.sent, c.length - c.sent);
            if (c.buffer >= 0) give(static_cast<std::uint16_t>(c.buffer));
        };
        if (!empty()) each(head_);
        for (Chunk& c : rest_) each(c);
        head_ = Chunk{};
        rest_.clear();
        cost_ = unsent_ = 0;
    }

    std::size_t cost() const { return cost_; }
    std::size_t unsent() const { return unsent_; }
    std::size_t chunks() const { return empty() ? 0 : 1 + rest_.size(); }

private:
    static Chunk ownChunk(const char* data, std::uint32_t length, std::uint32_t capacity) {
        auto copy = std::make_unique_for_overwrite<char[]>(capacity);
        std::memcpy(copy.get(), data, length);
        const char* bytes = copy.get();
        return Chunk{bytes, length, 0, capacity, kCopy, std::move(copy)};
    }

    Chunk& back() { return rest_.empty() ? head_ : rest_.back(); }
    void push(Chunk chunk) {
        if (empty())
            head_ = std::move(chunk);
        else
            rest_.push_back(std::move(chunk));
    }

    std::int32_t popFront() {
        const std::int32_t id = head_.buffer;
        cost_ -= id < 0 ? head_.capacity : kBufferCost;
        if (rest_.empty()) {
            head_ = Chunk{};
        } else {
            head_ = std::move(rest_.front());
            rest_.erase(rest_.begin());  // a few dozen entries at most (the bound / kCopyChunk)
        }
        return id;
    }

    // The front chunk in the object itself: a queue that never holds more than one (a tunnel
    // whose peers take what they are sent, and every upgrade's first bytes) allocates no list.
    // Empty: data is null (a chunk in the queue always has bytes).
    Chunk head_;
    std::vector<Chunk> rest_;  // after the front, in order
    // At most the high watermark plus a receive's worth and the start's copies (a Stream's
    // buffers at the handover: bounded by the handshake's limits).
    std::uint32_t cost_ = 0;
    std::uint32_t unsent_ = 0;  // at most cost_
};

}  // namespace portico::net::uring
