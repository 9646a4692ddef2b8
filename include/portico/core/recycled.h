// SPDX-License-Identifier: Apache-2.0
#pragma once
// Storage for objects of one class that a thread makes and frees once per connection or so (an
// io_uring tunnel's Relay and its two Streams' StreamIo: three per upgrade): a freed block is
// kept for the thread's next object of the class, at most kKeep of them, instead of going back
// to malloc (a malloc and a free cost 150-300 instructions; the blocks are a few hundred bytes).
//
// Use: `class Relay final : public core::Recycled<Relay, 64>`; new and delete of the class then
// go through here. A block of another size (a class derived from T) goes to the global
// allocator. Blocks are kept per thread (no lock); one freed on another thread is kept there,
// which is correct, only not where it will be reused. What is kept is freed when the thread
// ends; a block freed after that (a thread's last objects, destroyed by other thread-local
// destructors) goes to the global allocator. Under AddressSanitizer nothing is kept: a freed
// block would go straight to the next object, past ASan's quarantine, and a late completion
// naming a freed Relay would land in a live one unreported (keeping is a speed, not a behaviour).

#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define PORTICO_RECYCLED_KEEPS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PORTICO_RECYCLED_KEEPS 0
#endif
#endif
#ifndef PORTICO_RECYCLED_KEEPS
#define PORTICO_RECYCLED_KEEPS 1
#endif

namespace portico::core {

template <typename T, std::size_t kKeep>
class Recycled {
public:
    static constexpr bool kKeeps = PORTICO_RECYCLED_KEEPS != 0;

    static void* operator new(std::size_t size) {
        // Blocks come from ::operator new(size), aligned for the default new alignment only.
        static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "an over-aligned class cannot be recycled");
        if (kKeeps && size == sizeof(T) && !gone()) {
            if (void* block = kept().take()) return block;
        }
        return ::operator new(size);
    }
    static void operator delete(void* block, std::size_t size) noexcept {
        if (kKeeps && block && size == sizeof(T) && !gone() && kept().give(block)) return;
        ::operator delete(block);
    }
    // How many freed blocks this thread keeps now (for tests).
    static std::size_t keptCount() { return gone() ? 0 : kept().count(); }

protected:
    Recycled() = default;
    ~Recycled() = default;

private:
    class Kept {
    public:
        Kept() = default;
        Kept(const Kept&) = delete;
        Kept& operator=(const Kept&) = delete;
        ~Kept() {
            gone() = true;
            for (std::size_t i = 0; i < count_; ++i) ::operator delete(blocks_[i]);
        }
        void* take() {
            if (count_ == 0) return nullptr;
            return blocks_[--count_];
        }
        bool give(void* block) {
            if (count_ == kKeep) return false;
            blocks_[count_++] = block;
            return true;
        }

        std::size_t count() const { return count_; }

    private:
        void* blocks_[kKeep] = {};
        std::size_t count_ = 0;
    };
    // Set once this thread's Kept is destroyed (a bool has no destructor: readable after).
    static bool& gone() {
        thread_local bool flag = false;
        return flag;
    }
    static Kept& kept() {
        thread_local Kept list;
        return list;
    }
};

}  // namespace portico::core

#undef PORTICO_RECYCLED_KEEPS
