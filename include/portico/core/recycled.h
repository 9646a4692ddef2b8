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
// destructors) goes to the global allocator. Under AddressSanitizer a kept block is poisoned,
// so a use after delete is still reported.

#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define PORTICO_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define PORTICO_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define PORTICO_POISON(p, n) ((void)(p), (void)(n))
#define PORTICO_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace portico::core {

template <typename T, std::size_t kKeep>
class Recycled {
public:
    static void* operator new(std::size_t size) {
        if (size == sizeof(T) && !gone()) {
            if (void* block = kept().take()) return block;
        }
        return ::operator new(size);
    }
    static void operator delete(void* block, std::size_t size) noexcept {
        if (block && size == sizeof(T) && !gone() && kept().give(block)) return;
        ::operator delete(block);
    }

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
            for (std::size_t i = 0; i < count_; ++i) {
                PORTICO_UNPOISON(blocks_[i], sizeof(T));
                ::operator delete(blocks_[i]);
            }
        }
        void* take() {
            if (count_ == 0) return nullptr;
            void* block = blocks_[--count_];
            PORTICO_UNPOISON(block, sizeof(T));
            return block;
        }
        bool give(void* block) {
            if (count_ == kKeep) return false;
            PORTICO_POISON(block, sizeof(T));
            blocks_[count_++] = block;
            return true;
        }

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

#undef PORTICO_POISON
#undef PORTICO_UNPOISON
