// SPDX-License-Identifier: Apache-2.0
#include "portico/http2/session_memory.h"

#include <cstdlib>
#include <cstring>
#include <limits>

namespace portico::http2 {

namespace {

// In front of every block: its size class (or kLarge) and, for a large one, its size. 16 bytes,
// so that what nghttp2 gets stays aligned as malloc's own blocks are.
struct alignas(16) Header {
    std::size_t size_class;
    std::size_t size;
};
static_assert(sizeof(Header) == 16);
constexpr std::size_t kLarge = SessionMemory::kClasses;

Header* headerOf(void* block) { return reinterpret_cast<Header*>(static_cast<char*>(block) - sizeof(Header)); }
void* blockOf(Header* header) { return reinterpret_cast<char*>(header) + sizeof(Header); }

std::size_t classSize(std::size_t size_class) { return SessionMemory::kSmallestClass << size_class; }

std::size_t capacityOf(const Header* header) {
    return header->size_class == kLarge ? header->size : classSize(header->size_class);
}

SessionMemory& self(void* user_data) { return *static_cast<SessionMemory*>(user_data); }

}  // namespace

SessionMemory::SessionMemory() {
    mem_.mem_user_data = this;
    mem_.malloc = [](std::size_t size, void* user_data) { return self(user_data).allocate(size); };
    mem_.free = [](void* block, void* user_data) { self(user_data).release(block); };
    mem_.calloc = [](std::size_t count, std::size_t size, void* user_data) {
        return self(user_data).allocateZeroed(count, size);
    };
    mem_.realloc = [](void* block, std::size_t size, void* user_data) { return self(user_data).reallocate(block, size); };
}

SessionMemory::~SessionMemory() { trim(); }

void SessionMemory::trim() {
    unused_ = free_count_;
    trimUnused();
}

void SessionMemory::trimUnused() {
    for (std::size_t c = 0; c < kClasses; ++c) {
        // Any `unused_[c]` of the list's blocks will do: they are all alike.
        for (; unused_[c] > 0; --unused_[c], --free_count_[c]) {
            FreeBlock* block = free_[c];
            free_[c] = block->next;
            std::free(headerOf(block));
            free_bytes_ -= classSize(c);
        }
    }
    unused_ = free_count_;
}

void* SessionMemory::allocate(std::size_t size) {
    if (size > kLargestClass) {
        if (size > std::numeric_limits<std::size_t>::max() - sizeof(Header)) return nullptr;
        auto* header = static_cast<Header*>(std::malloc(sizeof(Header) + size));
        if (!header) return nullptr;
        header->size_class = kLarge;
        header->size = size;
        return blockOf(header);
    }
    std::size_t size_class = 0;
    while (classSize(size_class) < size) ++size_class;
    if (FreeBlock* block = free_[size_class]) {
        free_[size_class] = block->next;
        free_bytes_ -= classSize(size_class);
        if (--free_count_[size_class] < unused_[size_class]) unused_[size_class] = free_count_[size_class];
        return block;
    }
    auto* header = static_cast<Header*>(std::malloc(sizeof(Header) + classSize(size_class)));
    if (!header) return nullptr;
    header->size_class = size_class;
    header->size = 0;
    return blockOf(header);
}

void SessionMemory::release(void* block) {
    if (!block) return;
    Header* header = headerOf(block);
    if (header->size_class == kLarge || free_bytes_ + classSize(header->size_class) > kMaxFreeBytes) {
        std::free(header);
        return;
    }
    auto* free_block = static_cast<FreeBlock*>(block);
    free_block->next = free_[header->size_class];
    free_[header->size_class] = free_block;
    free_bytes_ += classSize(header->size_class);
    ++free_count_[header->size_class];
}

void* SessionMemory::allocateZeroed(std::size_t count, std::size_t size) {
    if (size != 0 && count > std::numeric_limits<std::size_t>::max() / size) return nullptr;
    void* block = allocate(count * size);
    if (block) std::memset(block, 0, count * size);
    return block;
}

void* SessionMemory::reallocate(void* block, std::size_t size) {
    if (!block) return allocate(size);
    const std::size_t capacity = capacityOf(headerOf(block));
    if (size <= capacity) return block;  // it fits where it is
    void* grown = allocate(size);
    if (!grown) return nullptr;  // the old block stays, as realloc leaves it
    std::memcpy(grown, block, size < capacity ? size : capacity);
    release(block);
    return grown;
}

}  // namespace portico::http2
