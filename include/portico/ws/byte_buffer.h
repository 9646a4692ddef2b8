// SPDX-License-Identifier: Apache-2.0
#pragma once
// A growable byte array that does not zero what it allocates: the reassembly buffer of the codec
// and the output of deflate/inflate. Payload bytes are written once, straight into it.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace portico::ws {

class ByteBuffer {
public:
    ByteBuffer() = default;
    ByteBuffer(ByteBuffer&& other) noexcept
        : data_(std::move(other.data_)),
          size_(std::exchange(other.size_, 0)),
          capacity_(std::exchange(other.capacity_, 0)) {}
    ByteBuffer& operator=(ByteBuffer&& other) noexcept {
        data_ = std::move(other.data_);
        size_ = std::exchange(other.size_, 0);
        capacity_ = std::exchange(other.capacity_, 0);
        return *this;
    }

    std::uint8_t* data() { return data_.get(); }
    const std::uint8_t* data() const { return data_.get(); }
    std::size_t size() const { return size_; }
    std::size_t capacity() const { return capacity_; }
    bool empty() const { return size_ == 0; }
    std::string_view view() const { return {reinterpret_cast<const char*>(data_.get()), size_}; }

    // Returns room for at least `n` more bytes after size(); write into it, then commit() what
    // was written. The pointer is invalidated by the next prepare()/append().
    std::uint8_t* prepare(std::size_t n) {
        if (capacity_ - size_ < n) grow(n);
        return data_.get() + size_;
    }
    void commit(std::size_t n) { size_ += n; }  // n <= the n of the last prepare()
    void append(const void* p, std::size_t n) {
        if (n == 0) return;
        std::memcpy(prepare(n), p, n);
        size_ += n;
    }
    void resize(std::size_t n) {  // shrinking only, or growing over prepared bytes
        if (n > capacity_) grow(n - size_);
        size_ = n;
    }
    void clear() { size_ = 0; }
    // Empties the buffer and gives its memory back when it holds more than `keep` bytes, so one big
    // message does not pin memory to an idle connection.
    void clearAndTrim(std::size_t keep) {
        size_ = 0;
        if (capacity_ > keep) {
            data_.reset();
            capacity_ = 0;
        }
    }

private:
    void grow(std::size_t extra) {
        // Doubling keeps appends amortized O(1); never less than what is asked for.
        std::size_t cap = capacity_ < 128 ? 256 : capacity_ * 2;
        if (cap - size_ < extra) cap = size_ + extra;
        auto bigger = std::make_unique_for_overwrite<std::uint8_t[]>(cap);
        if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
        data_ = std::move(bigger);
        capacity_ = cap;
    }

    std::unique_ptr<std::uint8_t[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace portico::ws
