// SPDX-License-Identifier: Apache-2.0
#pragma once
// Immutable bytes shared by reference on one thread: a pub/sub message's encoded frame, made
// once per worker and written to each of its subscribers from the same memory (one sendmsg
// over several of them, net::Stream::writeShared). What a socket does not take goes into its
// output evbuffer: copied when small, else by reference (evbuffer_add_reference), and the
// reference the buffer holds is released when it drains those bytes or is freed.
//
// The count is not atomic: every holder (a session's pending list, an output evbuffer) lives on
// the worker thread that made the bytes, and evbuffers are drained and freed on that thread.

#include <cstddef>
#include <cstdint>
#include <utility>

struct evbuffer;

namespace portico::core {

class SharedBytes;

// An owning reference (copy: one more holder; the last one frees the bytes).
class SharedBytesRef {
public:
    SharedBytesRef() = default;
    SharedBytesRef(const SharedBytesRef& other);
    SharedBytesRef(SharedBytesRef&& other) noexcept : bytes_(std::exchange(other.bytes_, nullptr)) {}
    SharedBytesRef& operator=(SharedBytesRef other) noexcept {
        std::swap(bytes_, other.bytes_);
        return *this;
    }
    ~SharedBytesRef() { reset(); }

    void reset();
    explicit operator bool() const { return bytes_ != nullptr; }
    const SharedBytes* operator->() const { return bytes_; }
    const SharedBytes& operator*() const { return *bytes_; }
    SharedBytes* get() const { return bytes_; }

private:
    friend class SharedBytes;
    explicit SharedBytesRef(SharedBytes* adopted) : bytes_(adopted) {}
    SharedBytes* bytes_ = nullptr;
};

class SharedBytes {
public:
    // `size` bytes to fill through data() before the reference is shared; nullptr when out of memory.
    static SharedBytesRef make(std::size_t size);

    // The bytes follow the object, in the same allocation (make).
    std::uint8_t* data() { return reinterpret_cast<std::uint8_t*>(this + 1); }
    const std::uint8_t* data() const { return reinterpret_cast<const std::uint8_t*>(this + 1); }
    std::size_t size() const { return size_; }
    // Holders besides the caller's own references: for tests.
    std::size_t holders() const { return count_; }

    // Appends bytes [offset, size()) to `out`: copied below kCopyBelow bytes (into the room
    // left in `out`'s last chain when there is some), else by reference, the buffer holding one
    // until it has drained them. False when out of memory.
    bool appendTo(evbuffer* out, std::size_t offset = 0) const;
    static constexpr std::size_t kCopyBelow = 4096;

    SharedBytes(const SharedBytes&) = delete;
    SharedBytes& operator=(const SharedBytes&) = delete;

private:
    friend class SharedBytesRef;
    explicit SharedBytes(std::size_t size) : size_(size) {}
    ~SharedBytes() = default;
    void ref() const { ++count_; }
    void unref() const;
    static void release(const void* data, std::size_t len, void* self);

    mutable std::size_t count_ = 1;
    std::size_t size_;
};

inline SharedBytesRef::SharedBytesRef(const SharedBytesRef& other) : bytes_(other.bytes_) {
    if (bytes_) bytes_->ref();
}

inline void SharedBytesRef::reset() {
    if (bytes_) std::exchange(bytes_, nullptr)->unref();
}

}  // namespace portico::core
